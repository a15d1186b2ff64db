"""The exceptions of the stream layer.

``StreamClosedError`` is an ``OSError`` so that code which catches socket
errors also catches a closed stream; the cause of the close, when there was
one, rides along in ``real_error``.
"""

from __future__ import annotations

import errno
import ssl
from typing import Optional

__all__ = ["StreamBufferFullError", "StreamClosedError", "UnsatisfiableReadError"]


class StreamClosedError(OSError):
    """Raised by a stream operation that cannot complete because the stream is closed.

    Args:
        real_error: the exception that closed the stream, if it was closed by
            an error rather than by a clean EOF or a call to ``close()``.
    """

    def __init__(self, real_error: Optional[BaseException] = None) -> None:
        super().__init__("Stream is closed")
        self.real_error = real_error


class UnsatisfiableReadError(Exception):
    """Raised when ``read_until`` or ``read_until_regex`` cannot be satisfied.

    This happens when the delimiter is not found within ``max_bytes`` bytes.
    """


class StreamBufferFullError(Exception):
    """Raised when a read or write buffer reaches its configured maximum size."""


# Errors that mean "the peer went away"; they close the stream like an EOF and
# are not worth a log line.
_CONNRESET_ERRNOS = frozenset(
    {
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.ENOTCONN,
        errno.ESHUTDOWN,
    }
)


def is_connreset(exc: Optional[BaseException]) -> bool:
    """Whether ``exc`` reports that the peer closed or reset the connection."""
    if isinstance(exc, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        return True
    if isinstance(exc, ssl.SSLEOFError):
        return True
    if isinstance(exc, ssl.SSLZeroReturnError):
        return True
    return isinstance(exc, OSError) and exc.errno in _CONNRESET_ERRNOS
