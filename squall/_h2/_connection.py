"""The server side of one HTTP/2 connection (RFC 9113): bytes in, events out.

Our own framing and stream states (`squall._h2._base`), because this is on
every request's hot path: a request is one HEADERS frame in, and a response
HEADERS plus DATA frame out, and a general-purpose state machine spent
most of a small request's time on them. HPACK is ours too
(`squall._h2._hpack`).

Every request-head rule is checked in `_request` in one pass (RFC 9113
§8.2, §8.3); a malformed head resets its stream with PROTOCOL_ERROR. The
rules of HTTP semantics a driver needs around the core (Content-Length,
Expect, fields a response or trailer section may not carry) are in
`squall._h2._rules`.

No I/O and no clock: the driver passes the current time to `receive_data`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Sequence
from typing import Final, Optional, Union

from squall._h2._base import (
    _ENABLE_CONNECT,
    _END_STREAM,
    _MAX_STREAMS,
    PREFACE,
    ErrorCode,
    H2Base,
    _ConnectionError,
    _Stream,
)
from squall._h2._errors import LocalProtocolError, RemoteProtocolError
from squall._h2._events import Event, Fields, Request, Trailers
from squall._h2._hpack import (
    _FULL_INDEX,
    encoded_field,
    encoded_status,
    encoded_string,
    literal_name,
)
from squall._h2._limits import H2Limits
from squall._h2._rules import CONNECTION_FIELDS as _CONNECTION_FIELDS
from squall._h2._rules import NO_LENGTH, content_length
from squall._h2._rules import bad_value as _bad_value
from squall._h2._rules import field_octets as _field_octets
from squall._h2._rules import good_method as _method
from squall._h2._rules import good_name as _good_name
from squall._h2._rules import good_scheme as _scheme
from squall._h2._state import HALF_CLOSED_REMOTE

__all__ = ["PREFACE", "ErrorCode", "H2Connection"]

_base64url: Final = re.compile(r"[A-Za-z0-9_-]*=*\Z").match
# Lower stream ids a client skipped, remembered to tell a stream opened out
# of order from one already closed (RFC 9113 §5.1.1); the oldest go first.
_SKIPPED_MAX: Final = 16
_REFUSALS: Final = "more than %g refused streams a second"

# At most 512 fields of up to 512 characters: a bounded memo whatever a
# client sends.
_KNOWN_FIELDS_MAX: Final = 512
_KNOWN_VALUE_MAX: Final = 512
_REGULAR: Final = object()  # a plain field: passed every check, nothing more to do
_PSEUDO: Final = object()  # a pseudo-header field with a valid value

# Rendered response heads (see `H2Connection.encode_rendered_head`) are
# encoded line by line. Their names recur whatever the values: each maps to
# the start of its HPACK field (b"" for a connection-specific field, which
# HTTP/2 leaves out; None for a name that is no token). Whole lines recur
# too (the same Content-Type, the Date line for a second): each maps to its
# encoding. Both memos hold what depends on their key alone (the encoder
# keeps no table), are shared by every connection, and are bounded.
# (Final: the compiled build reads them as C globals, not from the
# module's dict at each use.)
_rendered_names: Final[dict[bytes, Optional[bytes]]] = {}
_rendered: Final[dict[bytes, bytes]] = {}
_RENDERED_MAX: Final = 4096
_RENDERED_LINE_MAX: Final = 256
# A string literal's length prefix (RFC 7541 §5.2, no Huffman coding), for
# the lengths that fit the prefix's seven bits.
_SHORT_LENGTHS: Final = [bytes((n,)) for n in range(127)]


def _rendered_name(name: bytes) -> Optional[bytes]:
    text = name.decode("latin-1").lower()
    if _good_name(text) is None:
        prefix: Optional[bytes] = None
    elif text in _CONNECTION_FIELDS:
        # RFC 9113 §8.2.2: HTTP/2 frames the message itself (as
        # `response_fields` leaves these out of a head given as fields).
        prefix = b""
    else:
        prefix = literal_name(text.encode())
    if len(_rendered_names) >= _RENDERED_MAX:
        _rendered_names.clear()
    _rendered_names[name] = prefix
    return prefix


def _rendered_status(line: bytes) -> Optional[bytes]:
    """``:status`` for a status line, "HTTP/1.1 200 OK"; None unless it is
    a final status other than 204 and 304 (whose heads carry more rules
    than a rendered head can tell)."""
    version, _, rest = line.partition(b" ")
    digits = rest[:3]
    if (
        version != b"HTTP/1.1"
        or len(digits) != 3
        or not digits.isdigit()
        or rest[3:4] not in (b"", b" ")
    ):
        return None
    status = int(digits)
    if status < 200 or status == 204 or status == 304:
        return None
    return encoded_status(status)


def _literal_field(prefix: bytes, name: bytes, value: bytes) -> bytes:
    # The HPACK field for ``name: value``, given the start of its name's
    # encoding (a non-empty prefix from `literal_name`).
    if prefix == _FULL_INDEX:
        return encoded_field(name.lower(), value)
    n = len(value)
    if n < 127:
        return prefix + _SHORT_LENGTHS[n] + value
    return prefix + encoded_string(value)


def _rendered_field(line: bytes) -> Optional[bytes]:
    """A ``Name: value`` line's HPACK encoding; None if it is not one. (Its
    value was checked by the caller: see `H2Connection.encode_rendered_head`.)"""
    name, sep, value = line.partition(b": ")
    prefix = _rendered_names.get(name)
    if prefix is None:
        prefix = _rendered_name(name)
        if prefix is None:
            return None
    if not sep:
        return None
    encoded = _literal_field(prefix, name, value) if prefix else b""  # b"": left out
    if len(line) <= _RENDERED_LINE_MAX:
        if len(_rendered) >= _RENDERED_MAX:
            _rendered.clear()
        _rendered[line] = encoded
    return encoded


# The start of each field name's HPACK encoding for `H2Connection.encode_fields`
# (keyed by the name as the application spelled it: see `literal_name`; b""
# for a connection-specific field, left out). Depends on the name alone and
# is shared by every connection; bounded.
_field_names: Final[dict[str, bytes]] = {}


def _field_name(name: str) -> bytes:
    text = name.lower()
    prefix = b"" if text in _CONNECTION_FIELDS else literal_name(text.encode("ascii"))
    if len(_field_names) >= _RENDERED_MAX:
        _field_names.clear()
    _field_names[name] = prefix
    return prefix


# Whole fields too, for `H2Connection.encode_fields`: name -> value -> the
# field's encoding (b"" for a connection-specific one). A head's values
# recur (the server's name, the content type, the second's Date, common
# lengths), and a memo hit is one lookup where an encoding is three new
# bytes objects. At most _VALUE_NAMES names of _VALUES_PER_NAME values of
# up to _VALUE_MAX characters each (a memo full of values that do not recur,
# such as cookies, starts again).
_field_values: Final[dict[str, dict[str, bytes]]] = {}
_VALUE_NAMES: Final = 256
_VALUES_PER_NAME: Final = 64
_VALUE_MAX: Final = 256


# ``:status`` of the final heads, the codes in common use pre-encoded.
_FINAL_STATUS: Final[dict[int, bytes]] = {code: encoded_status(code) for code in range(200, 600)}


def _final_status(status: int) -> bytes:
    # ``:status`` of a final head (a miss of _FINAL_STATUS). A head's status
    # is three digits and HTTP/2 has no 101 (RFC 9113 §8.6): HTTP/1.1 sends
    # that one, but an HTTP/2 client takes it as a broken connection, so it
    # is refused, as HTTP/1.1 refuses 99 or 1000.
    if not 200 <= status <= 999:
        if status == 101:
            raise ValueError("invalid final status code 101: HTTP/2 has no 101 Switching Protocols")
        raise ValueError(f"invalid final status code {status!r}")
    return encoded_status(status)


def _values_of(name: str) -> dict[str, bytes]:
    if len(_field_values) >= _VALUE_NAMES:
        _field_values.clear()
    memo: dict[str, bytes] = {}
    _field_values[name] = memo
    return memo


def _field(name: str, value: str, memo: dict[str, bytes]) -> bytes:
    # The HPACK field for ``name: value`` (b"" if HTTP/2 leaves it out),
    # remembered in ``memo`` (the name's) when the value is not too long.
    prefix = _field_names.get(name)
    if prefix is None:
        prefix = _field_name(name)
    if len(prefix) == 0:
        field = b""
    else:
        field = _literal_field(prefix, name.encode("ascii"), _field_octets(name, value))
    if len(value) <= _VALUE_MAX:
        if len(memo) >= _VALUES_PER_NAME:
            memo.clear()
        memo[value] = field
    return field


class H2Connection(H2Base):
    """The server side of an HTTP/2 connection: bytes in, events out.

    Args:
        limits: The limits in force (`H2Limits` defaults if None).
    """

    def __init__(self, limits: Optional[H2Limits] = None) -> None:
        super().__init__(limits, peer_opens=True)
        # Request fields whose value passed the checks, and which kind they
        # are (bounded).
        self._known_fields: dict[tuple[str, str], object] = {}
        self._skipped: list[tuple[int, int]] = []  # (first, last) ids never opened
        # The last decoded field list `_request` accepted, and the
        # Request's fields it made of it: HPACK's decoder hands back the
        # same list for a repeated block, which then needs no checking.
        self._last_raw: Optional[list[tuple[str, str]]] = None
        self._last_request: Optional[Request] = None
        #: (stream, reason) for each malformed request head reset so far;
        #: the driver logs and clears it.
        self.malformed: list[tuple[int, str]] = []

    # -- starting ----------------------------------------------------------------

    def initiate(self, upgrade_settings: Optional[str] = None) -> None:
        """Queue our SETTINGS (the server preface) and open the receive window.

        Args:
            upgrade_settings: The ``HTTP2-Settings`` field of an HTTP/1.1
                ``Upgrade: h2c`` request; the request becomes stream 1,
                already complete on the client's side.

        Raises:
            RemoteProtocolError: ``HTTP2-Settings`` is not valid base64url
                SETTINGS.
        """
        if upgrade_settings is not None:
            # RFC 9113 §3.2 (RFC 7540 §3.2.1): base64url, padding optional.
            text = upgrade_settings.strip()
            if _base64url(text) is None:
                raise RemoteProtocolError("invalid HTTP2-Settings: not base64url")
            try:
                payload = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            except (binascii.Error, ValueError):
                raise RemoteProtocolError("invalid HTTP2-Settings: not base64url") from None
            try:
                self._apply_settings(payload)
            except _ConnectionError as exc:
                raise RemoteProtocolError(f"invalid HTTP2-Settings: {exc}") from None
        # RFC 8441 §3: extended CONNECT (WebSockets over HTTP/2) is always
        # on; what a `:protocol` names is the application's to accept.
        self._send_settings(
            ((_MAX_STREAMS, self.limits.max_concurrent_streams), (_ENABLE_CONNECT, 1))
        )
        if upgrade_settings is not None:
            # The upgrade request is stream 1, half-closed (remote).
            self._new_stream(1).state = HALF_CLOSED_REMOTE
            self._highest = 1

    def _headers_done(
        self, sid: int, flags: int, fields: Fields, cyclic: bool, events: list[Event], now: float
    ) -> None:
        """A complete header block: a new request, or trailers."""
        end_stream = bool(flags & _END_STREAM)
        stream = self._streams.get(sid)
        if stream is not None:
            self._trailers(sid, stream, fields, end_stream, events)
            return
        if sid <= self._highest:
            if sid in self._reset_by_us:
                return  # trailers of a stream we reset, sent before the reset arrived
            if sid & 1 and not any(first <= sid <= last for first, last in self._skipped):
                raise _ConnectionError(ErrorCode.STREAM_CLOSED, f"HEADERS on closed stream {sid}")
            # RFC 9113 §5.1.1: a new stream's id is above every id opened.
            raise _ConnectionError(
                ErrorCode.PROTOCOL_ERROR, f"stream {sid} opened after stream {self._highest}"
            )
        if not sid & 1:
            raise _ConnectionError(ErrorCode.PROTOCOL_ERROR, f"client opened even stream {sid}")
        if sid > self._highest + 2:
            skipped = self._skipped
            skipped.append((self._highest + 1, sid - 1))
            if len(skipped) > _SKIPPED_MAX:
                del skipped[0]
        self._highest = sid
        if sid > self._goaway_last:
            # After our GOAWAY: not taken; REFUSED_STREAM tells the client
            # it may send it again elsewhere (RFC 9113 §8.7).
            self._send_reset(sid, ErrorCode.REFUSED_STREAM)
            return
        if cyclic:
            self._malformed(sid, "stream depends on itself")
            return
        if len(self._streams) >= self.max_concurrent_streams:
            # RFC 9113 §5.1.2: over the SETTINGS_MAX_CONCURRENT_STREAMS we
            # sent (or before the client has it): that stream is refused,
            # and may be sent again. Refusals count as resets.
            self._send_reset(sid, ErrorCode.REFUSED_STREAM)
            if not self._resets.take(now):
                self._calm(_REFUSALS % self.limits.max_resets_per_second)
            return
        request = self._request(sid, fields)
        if request is None:
            return
        declared = request.content_length
        if end_stream and declared > 0:
            self._malformed(sid, "Content-Length but no body")
            return
        stream = self._streams[sid] = _Stream(self._peer_initial, self._stream_window)
        stream.declared = declared
        events.append(request)
        if end_stream:
            self._remote_end(sid, stream, events)

    def _trailers(
        self,
        sid: int,
        stream: _Stream,
        fields: list[tuple[str, str]],
        end_stream: bool,
        events: list[Event],
    ) -> None:
        """HEADERS on an open stream: the request's trailer section (RFC 9113 §8.1)."""
        if not stream.state.peer_open:
            self._stream_error(sid, ErrorCode.STREAM_CLOSED, events)
            return
        problem = None
        out: list[tuple[str, str]] = []
        if not end_stream:
            problem = "trailers without END_STREAM"
        else:
            for name, value in fields:
                if name[:1] == ":":
                    problem = f"pseudo-header {name} in trailers"
                elif _good_name(name) is None:
                    problem = f"invalid field name {name!r}"
                elif value and _bad_value(value):
                    problem = f"invalid value of {name!r}"
                elif name in _CONNECTION_FIELDS or name == "te":
                    problem = f"connection-specific field {name!r}"
                if problem is not None:
                    break
                out.append((name, value))
        if problem is None and stream.declared >= 0 and stream.received != stream.declared:
            problem = "body shorter than Content-Length"
        if problem is not None:
            self.malformed.append((sid, problem))
            self._stream_error(sid, ErrorCode.PROTOCOL_ERROR, events)
            return
        if out:
            events.append(Trailers(sid, out))
        self._remote_end(sid, stream, events)

    def _request(self, sid: int, raw_fields: list[tuple[str, str]]) -> Optional[Request]:
        """Check a request head (RFC 9113 §8.2, §8.3); return it as a `Request`.

        A malformed head is a stream error: the stream is reset with
        PROTOCOL_ERROR and None is returned.
        """
        if raw_fields is self._last_raw:
            last = self._last_request
            assert last is not None
            return Request(
                sid,
                last.method,
                last.target,
                last.authority,
                last.scheme,
                list(last.headers),
                last.content_length,
                last.expect_continue,
                last.protocol,
            )
        method = target = authority = scheme = protocol = None
        fields: list[tuple[str, str]] = []
        cookies: Optional[list[str]] = None
        lengths: Optional[list[str]] = None
        expect: Optional[str] = None
        host: Optional[str] = None
        problem = None
        regular = False
        known = self._known_fields
        # Decoded as HTTP/1.1 heads are: every byte maps to one character.
        for field in raw_fields:
            kind = known.get(field)
            if kind is not None:
                # Checked before on this connection (the same user agent,
                # :scheme or :authority on every request).
                if kind is _REGULAR:
                    fields.append(field)
                    regular = True
                    continue
            else:
                if field[1] and _bad_value(field[1]):
                    problem = f"invalid value of {field[0]!r}"
                    break
                # RFC 9113 §8.3.1: an empty (or invalid) :method or :scheme
                # is malformed too.
                if (field[0] == ":method" and _method(field[1]) is None) or (
                    field[0] == ":scheme" and _scheme(field[1]) is None
                ):
                    problem = f"invalid {field[0]} {field[1][:100]!r}"
                    break
                if field[0][:1] == ":" and len(field[1]) <= _KNOWN_VALUE_MAX:
                    if len(known) >= _KNOWN_FIELDS_MAX:
                        known.clear()
                    known[field] = _PSEUDO
            name, value = field
            if name[:1] == ":":
                if regular:
                    problem = f"pseudo-header {name} after regular fields"
                    break
                if name == ":method" and method is None:
                    method = value
                elif name == ":path" and target is None:
                    target = value
                elif name == ":authority" and authority is None:
                    authority = value
                elif name == ":scheme" and scheme is None:
                    scheme = value
                elif name == ":protocol" and protocol is None:
                    protocol = value
                else:
                    problem = f"unexpected or repeated pseudo-header {name}"
                    break
                continue
            regular = True
            if _good_name(name) is None:
                problem = f"invalid field name {name!r}"
                break
            if name == "cookie":
                if cookies is None:
                    cookies = [value]
                else:
                    cookies.append(value)
                continue
            if name in _CONNECTION_FIELDS or (name == "te" and value != "trailers"):
                problem = f"connection-specific field {name!r}"
                break
            if name == "host":
                host = value
            elif name == "content-length":
                if lengths is None:
                    lengths = [value]
                else:
                    lengths.append(value)
            elif name == "expect":
                if expect is None:
                    expect = value  # not memoized: the request's own
            elif name != "te" and len(value) <= _KNOWN_VALUE_MAX:
                if len(known) >= _KNOWN_FIELDS_MAX:
                    known.clear()
                known[field] = _REGULAR
            fields.append(field)
        if problem is None:
            if method is None:
                problem = "no :method"
            elif method == "CONNECT" and protocol is None:
                if authority is None or target is not None or scheme is not None:
                    problem = "CONNECT needs :authority and no :path or :scheme"
            elif not target or scheme is None:
                problem = "no :path or no :scheme"
            elif target != "*" and target[0] != "/" and scheme in ("http", "https"):
                problem = f"invalid :path {target!r}"
            if problem is None and protocol is not None:
                # RFC 8441 §4: :protocol goes with CONNECT only (:scheme and
                # :path present, checked above), and names an upgrade token
                # (RFC 9110 §7.8). A malformed request otherwise (§8.1.1).
                if method != "CONNECT":
                    problem = f"unexpected :protocol with method {str(method)[:20]!r}"
                elif authority is None:
                    problem = "extended CONNECT without :authority"
                elif _method(protocol) is None:
                    problem = f"invalid :protocol {protocol[:100]!r}"
            if problem is None:
                # RFC 9113 §8.3.1: the target's host comes from one of them,
                # and they may not disagree.
                if authority is None and host is None:
                    problem = "no :authority or host"
                elif authority is not None and host is not None and host != authority:
                    problem = f"host {host!r} differs from :authority {authority!r}"
        if problem is not None:
            self._malformed(sid, problem)
            return None
        assert method is not None
        if cookies is not None:
            # RFC 9113 §8.2.3: split crumbs are joined before HTTP/1.1 semantics.
            fields.append(("cookie", "; ".join(cookies)))
        # The body's length is checked against the DATA frames when it is one
        # number; the driver answers anything else with 400.
        request = Request(
            sid,
            method,
            target or authority or "",
            authority,
            scheme or "https",
            fields,
            NO_LENGTH if lengths is None else content_length(lengths),
            # RFC 9110 §10.1.1: the client waits for 100 (Continue).
            expect is not None and expect.lower() == "100-continue",
            protocol,
        )
        self._last_raw = raw_fields
        self._last_request = request
        return request

    def _malformed(self, sid: int, problem: str) -> None:
        self.malformed.append((sid, problem))
        self._send_reset(sid, ErrorCode.PROTOCOL_ERROR)

    def send_headers(
        self,
        stream_id: int,
        status: int,
        headers: Sequence[tuple[Union[str, bytes], Union[str, bytes]]],
        end_stream: bool = False,
    ) -> None:
        """Send a response head; ``headers`` have lowercase names (bytes are
        sent as they are, text as UTF-8).

        Raises:
            LocalProtocolError: the stream is closed.
        """
        self.send_head_block(stream_id, self.encode_head(status, headers), end_stream)

    def encode_head(
        self, status: int, headers: Iterable[tuple[Union[str, bytes], Union[str, bytes]]]
    ) -> bytes:
        """A response head as the header block `send_head_block` sends
        (names lowercase; bytes as they are, text as UTF-8). Encoding uses
        no connection state: the block may be sent later.

        Raises:
            ValueError: ``status`` is no final status HTTP/2 can carry.
        """
        _final_status(status)
        return self._encoder.encode_response(status, headers)

    def encode_fields(self, status: int, fields: dict[str, list[str]]) -> bytes:
        """A response head given as `.HTTPHeaders` keep it (``{name: [value,
        ...]}``, names in any case) as the header block `send_head_block`
        sends: the same bytes as `encode_head` of `response_fields`, without
        the list of pairs between them.

        Raises:
            ValueError: a name or value is not text (or a name not ASCII).
        """
        parts = [_FINAL_STATUS.get(status) or _final_status(status)]
        memos = _field_values
        try:
            for name, values in fields.items():
                memo = memos.get(name)
                if memo is None:
                    memo = _values_of(name)
                for value in values:
                    field = memo.get(value)
                    if field is None:
                        field = _field(name, value, memo)
                    if len(field) != 0:
                        parts.append(field)
        except (TypeError, AttributeError, UnicodeEncodeError):
            raise ValueError("header fields must be (str, str) pairs") from None
        return b"".join(parts)

    def encode_rendered_head(self, head: bytes) -> Optional[bytes]:
        """A response head rendered for HTTP/1.1, as the header block
        `send_head_block` sends; None if it cannot go as it is.

        ``head`` is a status line and field lines, each ending with CRLF,
        then an empty line: what `.HTTPConnection.write_rendered_head` is
        given. The status becomes ``:status``, the names lowercase, the
        connection-specific fields are left out (RFC 9113 §8.2.2). None
        for anything else: an informational, 204 or 304 status, a line
        that is no ``Name: value`` field with a token for a name. As for
        HTTP/1.1's rendered heads, the caller vouches that no value holds
        a control octet. Each line's encoding is memoized, and each name's:
        a head's lines recur (the Date line changes once a second).
        """
        lines = head.split(b"\r\n")
        n = len(lines)
        if n < 3 or lines[n - 1] or lines[n - 2]:
            return None
        memo = _rendered
        line = lines[0]
        encoded = memo.get(line)
        if encoded is None:
            encoded = _rendered_status(line)
            if encoded is None:
                return None
            if len(line) <= _RENDERED_LINE_MAX:
                if len(memo) >= _RENDERED_MAX:
                    memo.clear()
                memo[line] = encoded
        parts = [encoded]
        for i in range(1, n - 2):
            line = lines[i]
            encoded = memo.get(line)
            if encoded is None:
                encoded = _rendered_field(line)
                if encoded is None:
                    return None
            parts.append(encoded)
        return b"".join(parts)

    def send_head_block(self, stream_id: int, block: bytes, end_stream: bool = False) -> None:
        """Send a response head encoded by `encode_head` or `encode_rendered_head`.

        Raises:
            LocalProtocolError: the stream is closed.
        """
        stream = self._streams.get(stream_id)
        if stream is None or not stream.state.self_open:
            raise LocalProtocolError(f"stream {stream_id} is closed")
        self._header_frames(stream_id, block, end_stream)
        if end_stream:
            self._local_end(stream_id, stream)

    def send_trailers(
        self, stream_id: int, headers: Sequence[tuple[Union[str, bytes], Union[str, bytes]]]
    ) -> bool:
        """End the response with a trailer section (after what is queued).

        Args:
            headers: The trailer fields, names lowercase (no pseudo-headers).

        Returns:
            True if the trailers went out, False if they wait behind queued data.

        Raises:
            LocalProtocolError: the stream is closed.
        """
        stream = self._open_stream(stream_id)
        if stream.end:
            raise LocalProtocolError(f"stream {stream_id} is closed")
        encode = self._encoder.encode_field
        block = b"".join([encode((name, value)) for name, value in headers])
        if not stream.size:
            self._header_frames(stream_id, block, True)
            self._local_end(stream_id, stream)
            return True
        stream.end = True
        stream.trailers = block
        return False

    def send_informational(
        self, stream_id: int, status: int, fields: Iterable[tuple[bytes, bytes]] = ()
    ) -> None:
        """Send a ``1xx`` head (``100 Continue``, ``103 Early Hints``) on
        ``stream_id``, with ``fields`` (names lowercase, as `response_fields`
        makes them).

        Raises:
            LocalProtocolError: the stream is closed.
        """
        self._open_stream(stream_id)
        self._header_frames(stream_id, self._encoder.encode_response(status, fields), False)

    def refuse(self, stream_id: int, now: float) -> None:
        """Refuse a new stream (REFUSED_STREAM); refusals count as resets.

        Raises:
            RemoteProtocolError: the client keeps opening streams it may not.
        """
        self.reset(stream_id, ErrorCode.REFUSED_STREAM)
        if not self._resets.take(now):
            message = _REFUSALS % self.limits.max_resets_per_second
            self._fail(ErrorCode.ENHANCE_YOUR_CALM, message)
            raise RemoteProtocolError(message, ErrorCode.ENHANCE_YOUR_CALM)
