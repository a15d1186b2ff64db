"""Grammar checks shared by both parser backends and by the serializer.

Each check quotes the rule of RFC 9110 / RFC 9112 it enforces. The fast paths
are single C-level calls (``bytes.find``, one precompiled ``re.fullmatch`` per
header block, ``bytes.strip`` with a character set); the slower diagnosis
functions run only once a fast check has failed, to say precisely what was
wrong.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Final, cast

from ._errors import RemoteProtocolError
from ._events import FIELD_NAMES, Fields, Headers, field_name

# A C variable in the compiled build (a module global is a dict lookup).
_repeat: Final = repeat

# RFC 9110 §5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-"
#   / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
_TCHAR: Final = rb"!#$%&'*+\-.^_`|~0-9A-Za-z"
# RFC 9110 §5.5: field-content is VCHAR, SP, HTAB and obs-text (%x80-FF);
# CR, LF, NUL and the other controls are not allowed.
_VALUE_CHAR: Final = rb"\t\x20-\x7e\x80-\xff"

TOKEN_RE: Final = re.compile(b"[" + _TCHAR + b"]+")
STR_TOKEN_RE: Final = re.compile(TOKEN_RE.pattern.decode("latin-1"))
# RFC 9112 §5: field-line = field-name ":" OWS field-value OWS, one per CRLF.
# Matching the whole block at once also rejects obs-fold (a line starting
# with whitespace is not a token), whitespace before the colon, bare CR/LF,
# and control characters anywhere.
FIELDS_RE: Final = re.compile(b"(?:[" + _TCHAR + b"]+:[" + _VALUE_CHAR + b"]*\r\n)*")
STR_FIELDS_RE: Final = re.compile(FIELDS_RE.pattern.decode("latin-1"))
# The same octets for bytes.translate: deleting them leaves only odd ones.
_FIELD_OCTETS: Final = bytes([0x09, *range(0x20, 0x7F), *range(0x80, 0x100)])
STR_VALUE_RE: Final = re.compile((b"[" + _VALUE_CHAR + b"]*").decode("latin-1"))
_OBS_FOLD_RE: Final = re.compile(rb"\r\n[ \t]+")
_VERSION_RE: Final = re.compile(rb"HTTP/([0-9])\.([0-9])")
# RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then ":".
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# RFC 9112 §3.2's request-target is visible US-ASCII; octets above 0x7F
# (obs-text) are taken too, as Tornado takes them: curl sends a URL typed
# with non-ASCII characters as raw UTF-8, and they frame nothing.
_TARGET_RE: Final = re.compile(r"[\x21-\x7e\x80-\xff]+")
# RFC 3986 §3.2.2-3: uri-host (IP-literal, or a reg-name of unreserved,
# pct-encoded and sub-delims characters) ":" port.
_AUTHORITY_RE: Final = re.compile(r"(?:\[[0-9A-Za-z:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+):[0-9]*")
# RFC 9110 §6.5.1: fields that frame or route a message have no meaning in
# a trailer section; a peer that sends them there hopes that some layer
# merges them into the header section.
FORBIDDEN_TRAILERS: Final = frozenset(["content-length", "transfer-encoding", "host"])
_HEX: Final = b"0123456789abcdefABCDEF"
# RFC 9112 §7.1.1: chunk = chunk-size [ chunk-ext ] CRLF ...
#   chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
_QUOTED: Final = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_TOKEN: Final = b"[" + _TCHAR + b"]+"
CHUNK_LINE_RE: Final = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*"
    + _TOKEN
    + rb"(?:[ \t]*=[ \t]*(?:"
    + _TOKEN
    + b"|"
    + _QUOTED
    + b"))?)*"
)
# The methods seen on nearly every request skip the token check.
_COMMON_METHODS: Final = frozenset(
    [b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"]
)

#: Body framing codes (a non-negative value is a Content-Length).
CHUNKED: Final = -1
UNTIL_CLOSE: Final = -2


def bad(message: str, status: int = 400) -> RemoteProtocolError:
    """Build the error raised for a malformed message."""
    return RemoteProtocolError(message, status)


def parse_request_line(line: bytes) -> tuple[str, str, str]:
    """Split and check a request-line (RFC 9112 §3).

    request-line = method SP request-target SP HTTP-version; a single SP is
    required between the parts (we do not use §3's lenient whitespace
    parsing, a known request-smuggling vector).
    """
    parts = line.split(b" ")
    if len(parts) != 3:
        raise bad(f"Malformed HTTP request line: {line[:100]!r}")
    method, target, version = parts
    if method not in _COMMON_METHODS and TOKEN_RE.fullmatch(method) is None:
        raise bad(f"Malformed HTTP request line: invalid method {method[:100]!r}")
    # No whitespace or controls (see _TARGET_RE).
    starget = target.decode("latin-1")
    if _TARGET_RE.fullmatch(starget) is None:
        raise bad(f"Malformed HTTP request line: invalid request-target {target[:100]!r}")
    if method == b"CONNECT":
        # §3.2.3: CONNECT takes the authority-form, uri-host ":" port, only.
        if _AUTHORITY_RE.fullmatch(starget) is None:
            raise bad(f"Malformed HTTP request line: invalid CONNECT target {target[:100]!r}")
    elif starget[0] != "/" and not (
        # §3.2.4 asterisk-form (OPTIONS), §3.2.2 absolute-form (an
        # absolute-URI: a scheme, then ":").
        (starget == "*" and method == b"OPTIONS") or _SCHEME_RE.match(starget) is not None
    ):
        if line == b"PRI * HTTP/2.0":
            # RFC 9113 §3.4: an HTTP/2 client's preface (prior knowledge).
            raise bad(
                "HTTP/2 connection preface, but this connection is HTTP/1.1: serve"
                " HTTP/2 with HTTPServer(http2=True) or squall run --http2",
                505,
            )
        raise bad(f"Malformed HTTP request line: invalid request-target {target[:100]!r}")
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        check_version(version)
    return method.decode("ascii"), starget, version.decode("ascii")


def check_version(version: bytes) -> None:
    """Reject an HTTP-version other than HTTP/1.x (RFC 9112 §2.3)."""
    m = _VERSION_RE.fullmatch(version)
    if m is None:
        raise bad(f"Malformed HTTP version {version[:100]!r}")
    if m.group(1) != b"1":
        # RFC 9110 §15.6.6: 505 for a major version we do not support.
        raise bad(f"HTTP version not supported: {version[:100]!r}", 505)


def parse_status_line(line: bytes) -> tuple[str, int, str]:
    """Split and check a status-line (RFC 9112 §4).

    status-line = HTTP-version SP status-code SP [ reason-phrase ]. Lenient
    for real servers: the SP before an empty reason phrase may be missing.
    """
    version, _, rest = line.partition(b" ")
    if version != b"HTTP/1.1" and version != b"HTTP/1.0":
        check_version(version)
    code = rest[:3]
    sep = rest[3:4]
    if not (len(code) == 3 and code.isdigit() and sep in (b" ", b"")):
        raise bad(f"Malformed HTTP status line: {line[:100]!r}")
    status = int(code)
    if status < 100:
        raise bad(f"Malformed HTTP status line: status code {status} out of range")
    reason = rest[4:].decode("latin-1")
    if not reason.isprintable() and STR_VALUE_RE.fullmatch(reason) is None:
        raise bad(f"Malformed HTTP status line: invalid reason phrase {rest[4:104]!r}")
    return version.decode("ascii"), status, reason


def parse_fields(
    buf: bytes | bytearray, start: int, end: int, max_count: int, response: bool
) -> Headers:
    """Parse the field lines in ``buf[start:end]``; ``buf[end:end + 2]`` is CRLF.

    Args:
        max_count: Most field lines allowed (431 beyond).
        response: Accept obs-fold, replacing it with SP as RFC 9112 §5.2
            requires of a user agent; a server rejects it (400).
    """
    if start >= end:
        return []
    if buf.count(b"\r\n", start, end) >= max_count:
        raise bad(f"Too many header fields (more than {max_count})", 431)
    if FIELDS_RE.fullmatch(buf, start, end + 2) is None:
        block = bytes(buf[start:end])
        if not (response and _OBS_FOLD_RE.search(block)):
            raise diagnose_fields(block)
        block = _OBS_FOLD_RE.sub(b" ", block)
        if FIELDS_RE.fullmatch(block + b"\r\n") is None:
            raise diagnose_fields(block)
        text = block.decode("latin-1")
    else:
        text = buf[start:end].decode("latin-1")
    return [(n, v.strip(" \t")) for n, _, v in map(str.partition, text.split("\r\n"), _repeat(":"))]


def request_fields(
    buf: bytes | bytearray, start: int, end: int, lines: list[str], max_count: int
) -> Fields:
    """Parse a request's field lines in ``buf[start:end]`` (``buf[end:end + 2]``
    is CRLF) straight into `Fields`, with the checks and errors of
    `parse_fields` (a request: obs-fold is refused).

    Args:
        lines: The same lines, decoded as latin-1 and split at CRLF (the
            caller has them from decoding the whole head).
    """
    # As many CRLFs as lines less one: parse_fields' count, without a count.
    if len(lines) > max_count:
        raise bad(f"Too many header fields (more than {max_count})", 431)
    # The usual block takes one comprehension, without the regex. Its names
    # are all in FIELD_NAMES and followed by ": " (a token holds no colon,
    # so that is the line's first colon), each once, and its octets are all
    # field-content with no CR or LF left inside a line: then it is exactly
    # what FIELDS_RE accepts. Anything else (a new or repeated name, no
    # space after the colon, any odd octet) takes the regex and the loop.
    joined = "".join(lines)
    if not (
        "\r" in joined or "\n" in joined or joined.encode("latin-1").translate(None, _FIELD_OCTETS)
    ):
        get = FIELD_NAMES.get
        # A line without ": " (no colon at all, say) gets the key None.
        quick = {
            get(n) if c else None: [v.strip(" \t")]
            for n, c, v in map(str.partition, lines, _repeat(": "))
        }
        if len(quick) == len(lines) and None not in quick:
            return cast(Fields, quick)
    if FIELDS_RE.fullmatch(buf, start, end + 2) is None:
        raise diagnose_fields(bytes(buf[start:end]))
    fields: Fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        norm = field_name(name)
        values = fields.get(norm)
        if values is None:
            fields[norm] = [value.strip(" \t")]
        else:
            values.append(value.strip(" \t"))
    return fields


def diagnose_fields(block: bytes) -> RemoteProtocolError:
    """Say what is wrong in a field block that failed `FIELDS_RE`."""
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            # RFC 9112 §5.2: a server MUST reject obs-fold in a request.
            return bad(f"Malformed HTTP message: obs-fold in header line {line[:100]!r}")
        if b"\n" in line:
            return bad(f"Malformed HTTP message: bare LF in header line {line[:100]!r}")
        if b"\r" in line:
            return bad(f"Malformed HTTP message: bare CR in header line {line[:100]!r}")
        name, colon, value = line.partition(b":")
        if not colon:
            return bad(f"Malformed HTTP message: no colon in header line {line[:100]!r}")
        if name[-1:] in (b" ", b"\t"):
            # RFC 9112 §5.1: no whitespace between field name and colon.
            return bad(f"Malformed HTTP message: whitespace before colon in {line[:100]!r}")
        if TOKEN_RE.fullmatch(name) is None:
            return bad(f"Malformed HTTP message: invalid header name {name[:100]!r}")
        if b"\0" in value:
            return bad(f"Malformed HTTP message: NUL in header value {line[:100]!r}")
        if re.fullmatch(b"[" + _VALUE_CHAR + b"]*", value) is None:
            return bad(f"Malformed HTTP message: control character in header {line[:100]!r}")
    return bad(f"Malformed HTTP message: invalid header block {block[:100]!r}")


def parse_chunk_size(line: bytes | bytearray) -> int:
    """Return the size from a chunk-size line (RFC 9112 §7.1).

    chunk-size = 1*HEXDIG; no sign, prefix, underscore or whitespace (which
    ``int()`` would accept). Extensions are allowed and ignored; their length
    is bounded by `H1Limits.max_chunk_line`.
    """
    if 0 < len(line) <= 16 and not line.strip(_HEX):
        return int(line, 16)
    m = CHUNK_LINE_RE.fullmatch(line)
    if m is None:
        if b"\n" in line:
            raise bad("invalid chunk size line: bare LF")
        raise bad(f"invalid chunk size line {bytes(line[:100])!r}")
    digits = m.group(1)
    if len(digits.lstrip(b"0")) > 16:
        raise bad(f"invalid chunk size: {bytes(digits[:100])!r} overflows")
    return int(digits, 16)


_FRAMING_FIELDS: Final = {
    "content-length": 0,
    "transfer-encoding": 1,
    "connection": 2,
    "expect": 3,
}


def scan_fields(
    headers: Headers,
) -> tuple[list[str] | None, list[str] | None, list[str] | None, list[str] | None]:
    """Collect the fields that govern framing and connection reuse.

    Returns:
        The values of Content-Length, Transfer-Encoding, Connection and
        Expect, each None when the field is absent.
    """
    found: list[list[str] | None] = [None, None, None, None]
    get = _FRAMING_FIELDS.get
    for name, value in headers:
        # Cheap first-letter filter before lowercasing the whole name.
        if name[0] not in "cCtTeE":
            continue
        i = get(name.lower())
        if i is not None:
            lst = found[i]
            if lst is None:
                found[i] = [value]
            else:
                lst.append(value)
    return found[0], found[1], found[2], found[3]


def split_list(values: list[str]) -> list[str]:
    """Split a list-based field (RFC 9110 §5.6.1) into lowercase elements.

    Only SP and HTAB are OWS: other characters Python calls whitespace
    (such as U+00A0) stay and make the element invalid.
    """
    out = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if item:
                out.append(item.lower())
    return out


def parse_content_length(values: list[str]) -> int:
    """Return the message's Content-Length (RFC 9110 §8.6, RFC 9112 §6.3).

    Repeated fields or a list of identical values ("5, 5") are merged, as
    §8.6 allows; differing values are an unrecoverable framing error.
    """
    if len(values) == 1:
        value = values[0]
        if value.isdigit() and value.isascii() and len(value) <= 18:
            return int(value)
    items = {item.strip(" \t") for value in values for item in value.split(",")}
    if len(items) != 1:
        raise bad(f"Multiple unequal Content-Lengths: {', '.join(values)[:100]!r}")
    (item,) = items
    # Content-Length = 1*DIGIT: ASCII digits only, no sign or underscore.
    if not (item.isascii() and item.isdigit()):
        raise bad(f"Only integer Content-Length is allowed: {item[:100]!r}")
    # Beyond 18 digits the value exceeds any body limit; int() of a huge
    # string would also be slow.
    return int(item) if len(item) <= 18 else 1 << 62


def body_framing(cl: list[str] | None, te: list[str] | None, request: bool) -> int:
    """Decide how a message body is delimited (RFC 9112 §6.3, rules 3-7).

    Returns:
        A Content-Length, `CHUNKED`, or `UNTIL_CLOSE` (responses only).
    """
    if te is not None:
        if cl is not None:
            # Rule 3: both present is the classic smuggling shape; we reject
            # it rather than let Transfer-Encoding win.
            raise bad("Message with both Transfer-Encoding and Content-Length")
        codings = split_list(te)
        if codings != ["chunked"]:
            # Rule 4: the final coding must be chunked, and chunked may
            # appear once (RFC 9112 §6.1). We implement no other transfer
            # coding, so "gzip, chunked" is refused too: with 400, as
            # Tornado does, rather than §6.1's optional 501.
            raise bad(f"Unsupported Transfer-Encoding {','.join(te)[:100]}")
        return CHUNKED
    if cl is not None:
        return parse_content_length(cl)
    return 0 if request else UNTIL_CLOSE


def wants_keep_alive(version: str, connection: list[str] | None) -> bool:
    """Apply RFC 9112 §9.3: HTTP/1.1 persists unless "close"; HTTP/1.0 only
    with "keep-alive"."""
    if connection is None:
        return version != "HTTP/1.0"
    if len(connection) == 1:
        # The usual single value, without splitting.
        token = connection[0].lower()
        if token == "keep-alive":
            return True
        if token == "close":
            return False
    tokens = split_list(connection)
    if "close" in tokens:
        return False
    return version != "HTTP/1.0" or "keep-alive" in tokens
