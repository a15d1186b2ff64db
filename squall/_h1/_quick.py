"""A fast path for request heads, filled in by the compiled build.

squall-speedups replaces this module with a C extension (speedups/c/quick.c)
whose ``request_head(buf, start, line_end, end, max_count)`` returns the
`Request` of a head in its common shape (a common method, an origin-form
target, HTTP/1.x, well-formed fields), or None to leave the head to the
Python parser, which then accepts it or raises its own error. So the C code
never rejects anything and never words an error. ``find_request_head(buf,
pos, scan, max_start_line, max_header_size, max_count)`` first finds the
head starting at ``pos`` as `H1Connection` does (a complete head within the
limits, no empty line before it; otherwise None) and returns ``(Request,
position after the head)``.

Pure Python has no such path: here both are None and `PythonHeadParser` is
the only parser, and the reference the C code is tested against
(tests/h1/test_quick.py).
"""

from __future__ import annotations

from collections.abc import Callable

from ._events import Request

__all__ = ["QuickFind", "QuickHead", "find_request_head", "request_head"]

#: ``(buf, start, line_end, end, max_count) -> Request | None``; the buffer
#: layout is `HeadParser`'s.
QuickHead = Callable[[bytes | bytearray, int, int, int, int], Request | None]

#: ``(buf, pos, scan, max_start_line, max_header_size, max_count) ->
#: tuple[Request, int] | None``.
QuickFind = Callable[[bytes | bytearray, int, int, int, int, int], tuple[Request, int] | None]

request_head: QuickHead | None = None
find_request_head: QuickFind | None = None
