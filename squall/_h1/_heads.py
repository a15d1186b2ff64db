"""Message-head parsers: the pure-Python backend and the backend interface.

The connection finds a complete head itself (``bytes.find`` of the empty
line), checks its size limits, and hands the backend the byte range, so both
backends see exactly the same bytes and never read past the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._events import Headers, Request
from ._quick import request_head as _quick_head

if TYPE_CHECKING:
    # A type only: the compiled build's C module binds request_head alone.
    from ._quick import QuickHead
from ._rules import parse_fields, parse_request_fields, parse_request_line, parse_status_line

__all__ = ["HeadParser", "PythonHeadParser"]

_METHODS: dict[bytes, str] = {
    m: m.decode() for m in [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH"]
}
_VERSIONS: dict[bytes, str] = {b"HTTP/1.1": "HTTP/1.1", b"HTTP/1.0": "HTTP/1.0"}

ResponseHead = tuple[str, int, str, Headers]


class HeadParser:
    """Parses one complete message head.

    ``buf[start:line_end]`` is the start line, ``buf[line_end:end]`` the field
    lines (each preceded by CRLF), and ``buf[end:end + 4]`` is CRLF CRLF.
    """

    __slots__ = ("max_header_count",)
    name = "python"

    def __init__(self, max_header_count: int) -> None:
        self.max_header_count = max_header_count

    def request(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> Request:
        """Parse a request head (RFC 9112 §3, §5)."""
        raise NotImplementedError

    def response(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> ResponseHead:
        """Parse a response head (RFC 9112 §4, §5)."""
        raise NotImplementedError


class PythonHeadParser(HeadParser):
    """Pure-Python backend: a split for the start line, one regex match for
    the whole field block, then ``str.partition`` per line into `Fields`.

    Args:
        quick: A fast path tried first (`squall._h1._quick`; the compiled
            build's C pass, None in pure Python); None to parse in Python only.
    """

    __slots__ = ("_quick",)

    def __init__(self, max_header_count: int, quick: QuickHead | None = _quick_head) -> None:
        super().__init__(max_header_count)
        self._quick = quick

    def request(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> Request:
        quick = self._quick
        if quick is not None:
            # The compiled build's C pass: a head in its common shape, or
            # None for anything it leaves to the code below.
            req = quick(buf, start, line_end, end, self.max_header_count)
            if req is not None:
                return req
        line = buf[start:line_end]
        if isinstance(line, bytearray):
            line = bytes(line)
        parts = line.split(b" ")
        # Fast path for the common methods and versions; anything else gets
        # the full checks (and their error messages) in parse_request_line.
        if len(parts) == 3:
            m, t, v = parts
            method = _METHODS.get(m)
            version = _VERSIONS.get(v)
            target = t.decode("latin-1")
            if not (
                method and version and t[:1] == b"/" and target.isascii() and target.isprintable()
            ):
                method, target, version = parse_request_line(line)
        else:
            method, target, version = parse_request_line(line)
        if line_end >= end:
            return Request(method, target, version, [], {})
        fields, block = parse_request_fields(buf, line_end + 2, end, self.max_header_count)
        return Request(method, target, version, None, fields, block)

    def response(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> ResponseHead:
        version, status, reason = parse_status_line(bytes(buf[start:line_end]))
        headers = parse_fields(buf, line_end + 2, end, self.max_header_count, True)
        return version, status, reason, headers
