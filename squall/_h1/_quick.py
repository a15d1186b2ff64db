"""A fast path for request heads, filled in by the compiled build.

squall-speedups replaces this module with a C extension (speedups/c/quick.c)
whose ``request_head(buf, start, line_end, end, max_count)`` returns the
`Request` of a head in its common shape (a common method, an origin-form
target, HTTP/1.x, well-formed fields), or None to leave the head to the
Python parser, which then accepts it or raises its own error. So the C code
never rejects anything and never words an error.

Pure Python has no such path: here ``request_head`` is None and
`PythonHeadParser` is the only parser, and the reference the C code is
tested against (tests/test_speedups.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ._events import Request

__all__ = ["QuickHead", "request_head"]

#: ``(buf, start, line_end, end, max_count) -> Request | None``; the buffer
#: layout is `HeadParser`'s.
QuickHead = Callable[[bytes | bytearray, int, int, int, int], Request | None]

request_head: QuickHead | None = None
