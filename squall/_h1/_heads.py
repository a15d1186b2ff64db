"""Message-head parsers: the pure-Python backend and the backend interface.

The connection finds a complete head itself (``bytes.find`` of the empty
line), checks its size limits, and hands the backend the byte range, so both
backends see exactly the same bytes and never read past the head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ._events import Headers, Request
from ._quick import find_request_head as _quick_find
from ._quick import request_head as _quick_head

if TYPE_CHECKING:
    # A type only: the compiled build's C module binds request_head alone.
    from ._quick import QuickFind, QuickHead
from ._rules import parse_fields, parse_request_line, parse_status_line, request_fields

__all__ = ["HeadParser", "PythonHeadParser"]

_METHODS: Final[dict[str, str]] = {
    m: m for m in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
}
_VERSIONS: Final[dict[str, str]] = {"HTTP/1.1": "HTTP/1.1", "HTTP/1.0": "HTTP/1.0"}

ResponseHead = tuple[str, int, str, Headers]


class HeadParser:
    """Parses one complete message head.

    ``buf[start:line_end]`` is the start line, ``buf[line_end:end]`` the field
    lines (each preceded by CRLF), and ``buf[end:end + 4]`` is CRLF CRLF.

    Attributes:
        quick_find: `squall._h1._quick.find_request_head` where this backend
            lets the connection try it before finding the head itself;
            None otherwise.
    """

    __slots__ = ("max_header_count", "quick_find")
    name = "python"

    def __init__(self, max_header_count: int) -> None:
        self.max_header_count = max_header_count
        self.quick_find: QuickFind | None = None

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
        # The C pass that also finds the head comes with the one that does not.
        if quick is not None and quick is _quick_head:
            self.quick_find = _quick_find

    def request(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> Request:
        quick = self._quick
        if quick is not None:
            # The compiled build's C pass: a head in its common shape, or
            # None for anything it leaves to the code below.
            req = quick(buf, start, line_end, end, self.max_header_count)
            if req is not None:
                return req
        # One decode for the whole head: the start line is its first line.
        text = buf[start:end].decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ")
        # Fast path for the common methods and versions; anything else gets
        # the full checks (and their error messages) in parse_request_line.
        if len(parts) == 3:
            method = _METHODS.get(parts[0])
            version = _VERSIONS.get(parts[2])
            target = parts[1]
            if not (
                method
                and version
                and target[:1] == "/"
                and target.isascii()
                and target.isprintable()
            ):
                method, target, version = parse_request_line(bytes(buf[start:line_end]))
        else:
            method, target, version = parse_request_line(bytes(buf[start:line_end]))
        if len(lines) == 1:
            return Request(method, target, version, [], {})
        del lines[0]
        fields = request_fields(buf, line_end + 2, end, lines, self.max_header_count)
        return Request(method, target, version, None, fields, text[line_end + 2 - start :])

    def response(self, buf: bytes | bytearray, start: int, line_end: int, end: int) -> ResponseHead:
        version, status, reason = parse_status_line(bytes(buf[start:line_end]))
        headers = parse_fields(buf, line_end + 2, end, self.max_header_count, True)
        return version, status, reason, headers
