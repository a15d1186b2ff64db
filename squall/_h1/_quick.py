"""A fast path for request heads: the common shape, found and parsed at once.

``find_request_head(buf, pos, scan, max_start_line, max_header_size,
max_count)`` finds the head starting at ``pos`` as `H1Connection` does (a
complete head within the limits, no empty line before it) and, if it has the
common shape (a common method, an origin-form target, HTTP/1.x, at most
``max_count`` well-formed fields whose names are known), returns ``(Request,
position after the head)``; otherwise None, and the connection finds and
parses the head itself with `PythonHeadParser`, which then accepts it or
raises its own error. So a fast path never rejects anything and never words
an error.

The compiled build replaces this module with a C extension (speedups/c/quick.c)
that also has ``request_head(buf, start, line_end, end, max_count)``: the
same pass over a head already found. Pure Python has ``find_request_head``
only (``request_head`` is None): it does in a few C-level string calls what
the full parser does in several steps, in one Python frame. Both are tested
against the full parser (tests/h1/test_quick.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Optional, cast

from ._events import FIELD_NAMES, Fields, Request

__all__ = ["QuickFind", "QuickHead", "find_request_head", "request_head"]

#: ``(buf, start, line_end, end, max_count) -> Request | None``; the buffer
#: layout is `HeadParser`'s.
QuickHead = Callable[[bytes | bytearray, int, int, int, int], Optional[Request]]

#: ``(buf, pos, scan, max_start_line, max_header_size, max_count) ->
#: tuple[Request, int] | None``.
QuickFind = Callable[[bytes | bytearray, int, int, int, int, int], Optional[tuple[Request, int]]]

request_head: QuickHead | None = None

_METHODS: Final[dict[str, str]] = {
    m: m for m in ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
}
_VERSIONS: Final[dict[str, str]] = {"HTTP/1.1": "HTTP/1.1", "HTTP/1.0": "HTTP/1.0"}
# For bytes.translate, which returns the very object when no octet changes:
# the octets of field-content (RFC 9110 §5.5: HTAB, SP to "~", obs-text),
# and CR and LF, map to themselves; every other octet to another.
_SAME_IF_VALID: Final = bytes(
    c if c in (0x09, 0x0A, 0x0D) or 0x20 <= c < 0x7F or c >= 0x80 else c ^ 0x40 for c in range(256)
)


def _find_request_head(
    buf: bytes | bytearray,
    pos: int,
    scan: int,
    max_start_line: int,
    max_header_size: int,
    max_count: int,
) -> Optional[tuple[Request, int]]:
    if type(buf) is not bytes and type(buf) is not bytearray:
        return None
    end = buf.find(b"\r\n\r\n", scan if scan > pos else pos)
    if end < 0 or end + 4 - pos > max_header_size:
        return None
    raw = buf[pos:end]
    if type(raw) is not bytes:
        raw = bytes(raw)  # translate() makes a new bytearray whatever it holds
    # No control character but HTAB, CR and LF anywhere in the head.
    if raw.translate(_SAME_IF_VALID) is not raw:
        return None
    text = raw.decode("latin-1")
    lines = text.split("\r\n")
    # No bare CR or LF.
    joined = "".join(lines)
    if "\r" in joined or "\n" in joined:
        return None
    line = lines[0]
    if len(line) > max_start_line or len(lines) > max_count + 1:
        return None
    # RFC 9112 §3: method SP request-target SP HTTP-version. An empty line
    # first (RFC 9112 §2.2) spoils the method. Lookups by subscript: a
    # KeyError (or a ValueError from unpacking) leaves the head.
    names = FIELD_NAMES
    fields: dict[Optional[str], list[str]] = {}
    try:
        method, target, version = line.split(" ")
        method = _METHODS[method]
        version = _VERSIONS[version]
        # Origin-form of visible ASCII: the checks above left no control
        # but HTAB, and the split no SP.
        if target[:1] != "/" or not target.isascii() or "\t" in target:
            return None
        if len(lines) == 1:
            return Request(method, target, version, [], {}), end + 4
        del lines[0]
        # The fields of request_fields' quick case: every name known (so a
        # token) and followed by ": ", each name once. (A loop costs less
        # than a comprehension here.)
        for field in lines:
            n, c, v = field.partition(": ")
            fields[names[n] if c else None] = [v.strip(" \t")]
    except (KeyError, ValueError):
        return None
    if len(fields) != len(lines) or None in fields:
        return None
    # The lines are the block the pairs (Request.headers) come from if asked.
    return Request(method, target, version, None, cast(Fields, fields), lines), end + 4


find_request_head: QuickFind | None = _find_request_head
