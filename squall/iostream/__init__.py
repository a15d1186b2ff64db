"""Buffered, Future-returning streams over non-blocking sockets, TLS and pipes.

* `BaseIOStream`: the reading and writing machinery, over an abstract fd.
* `IOStream`: a socket; `IOStream.connect`, `IOStream.start_tls`.
* `SSLIOStream`: TLS over a socket, with a non-blocking handshake.
* `PipeIOStream`: a pipe.

Errors: `StreamClosedError` (an `OSError`; the cause in ``real_error``),
`UnsatisfiableReadError` (a delimiter not found within ``max_bytes``) and
`StreamBufferFullError` (a buffer limit reached).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from squall.iostream._base import BaseIOStream
from squall.iostream._buffer import _StreamBuffer
from squall.iostream._errors import (
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
)
from squall.iostream._streams import IOStream, PipeIOStream, SSLIOStream

if TYPE_CHECKING:
    import unittest

__all__ = [
    "BaseIOStream",
    "IOStream",
    "PipeIOStream",
    "SSLIOStream",
    "StreamBufferFullError",
    "StreamClosedError",
    "UnsatisfiableReadError",
]

for _obj in (
    BaseIOStream,
    IOStream,
    PipeIOStream,
    SSLIOStream,
    StreamBufferFullError,
    StreamClosedError,
    UnsatisfiableReadError,
    _StreamBuffer,
):
    _obj.__module__ = __name__
del _obj


def doctests() -> unittest.TestSuite:
    """The examples in this package's docstrings, as a `unittest.TestSuite`."""
    import doctest
    import unittest

    from squall.iostream import _base, _errors, _streams

    suite = unittest.TestSuite()
    for module in (_base, _errors, _streams):
        suite.addTests(doctest.DocTestSuite(module))
    return suite
