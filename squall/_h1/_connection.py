"""The HTTP/1.1 connection state machine for both roles (see the package
docstring for the API and the rules it keeps)."""

from __future__ import annotations

from typing import Final

from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    Headers,
    InformationalResponse,
    Response,
    Sentinel,
)
from ._heads import HeadParser, PythonHeadParser
from ._limits import DEFAULT_LIMITS, H1Limits
from ._quick import find_request_head as _quick_find
from ._rules import (
    CHUNKED,
    FORBIDDEN_TRAILERS,
    TOKEN_RE,
    UNTIL_CLOSE,
    bad,
    body_framing,
    parse_chunk_size,
    parse_fields,
    scan_fields,
    split_list,
    wants_keep_alive,
)

__all__ = ["H1Connection"]

from ._sending import _Sender
from ._states import (
    _C_CRLF,
    _C_DATA,
    _C_SIZE,
    _C_TRAILER,
    _R_CHUNKED,
    _R_CL,
    _R_CLOSE,
    _R_CLOSED,
    _R_DONE,
    _R_EOM,
    _R_ERROR,
    _R_HEAD,
    _R_IDLE,
    _R_MUST_CLOSE,
    _R_SWITCHED,
    _S_BODY,
    _S_DONE,
    _S_IDLE,
    _S_MUST_CLOSE,
    _S_SWITCHED,
    _SEND_NAMES,
    _STATE_NAMES,
)

#: The backend "auto" selects. Measured (benchmarks/h1_parse.py: varied
#: heads, each wrapped in HTTPHeaders as the server does; CPU time, 2026-11),
#: the Python head parser is the faster: 122k requests/s against llhttp's
#: 101k in pure Python, 376k against 145k in the compiled build (where a C
#: pass over the head, squall._h1._quick, runs first). llhttp makes one
#: Python callback per header field and its result must be cross-checked.
#: Bodies are shared code.
AUTO_PARSER: Final = "python"

# How many bytes of an incomplete request head are checked for a method.
_METHOD_PREFIX: Final = 32
_LINE_ENDS: Final = (b"\r", b"\n")
# The end of every message without trailers (events are read, not changed).
_NO_TRAILERS: Final = EndOfMessage()
# RFC 9112 §9.3: a single Connection value that decides persistence for
# either version.
_KEEP_ALIVE: Final[dict[str, bool]] = {
    "keep-alive": True,
    "Keep-Alive": True,
    "close": False,
    "Close": False,
}


def _make_head_parser(parser: str, limits: H1Limits) -> HeadParser:
    if parser not in ("auto", "python", "httptools"):
        raise ValueError(f"parser must be 'auto', 'python' or 'httptools', not {parser!r}")
    if parser == "auto":
        parser = AUTO_PARSER
    if parser == "httptools":
        from ._llhttp import LLHTTPHeadParser

        return LLHTTPHeadParser(limits.max_header_count)
    # The Python parser keeps no state between calls: connections share it
    # (an idle connection costs that much less).
    count = limits.max_header_count
    shared = _PYTHON_PARSERS.get(count)
    if shared is None:
        shared = _PYTHON_PARSERS[count] = PythonHeadParser(count)
        if shared.quick_find is None:
            # Pure Python: its own pass that finds and parses the common head.
            shared.quick_find = _quick_find
    return shared


_PYTHON_PARSERS: Final[dict[int, PythonHeadParser]] = {}


def _one_content_length(headers: Headers, value: str) -> Headers:
    """``headers`` with its Content-Length fields made one, of ``value``,
    where the first was."""
    out: Headers = []
    for name, field in headers:
        if name.lower() == "content-length":
            if value:
                out.append((name, value))
                value = ""
        else:
            out.append((name, field))
    return out


class H1Connection(_Sender):
    """One HTTP/1.1 connection, for the server or the client role.

    Args:
        role: ``"server"`` (parses requests, sends responses) or ``"client"``
            (sends requests, parses responses).
        limits: Size limits; `H1Limits()` by default.
        parser: ``"python"``, ``"httptools"`` (ImportError if httptools is
            missing) or ``"auto"`` (the faster of the two as measured; see
            `AUTO_PARSER`).
        allow_bare_lf: Accept a bare LF as the line terminator of the start
            line and header fields (RFC 9112 §2.2 allows it; Tornado does).
            Off by default. Chunk framing always requires CRLF.

    Attributes:
        keep_alive: False once either side has said the connection ends
            with the current exchange; the driver closes after it. Read
            it; to end the connection yourself, call `end_after_exchange`.
        expects_continue: Server: the client sent ``Expect: 100-continue``
            (HTTP/1.1) and is waiting; send `send_informational` (100)
            before reading the body, or a final response (RFC 9110
            §10.1.1). Read only.

    (Plain attributes rather than properties: a driver reads both for every
    request.)
    """

    __slots__ = ()

    def __init__(
        self,
        role: str = "server",
        *,
        limits: H1Limits | None = None,
        parser: str = "auto",
        allow_bare_lf: bool = False,
    ) -> None:
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        self._client = role == "client"
        self._limits = DEFAULT_LIMITS if limits is None else limits
        self._heads = _make_head_parser(parser, self._limits)
        self._bare_lf = allow_bare_lf
        self._buf: bytes | bytearray = b""
        self._pos = 0
        self._scan = 0
        self._eof = False
        self._rstate = _R_IDLE if self._client else _R_HEAD
        self._sstate = _S_IDLE
        self._error: RemoteProtocolError | None = None
        self._closed_event: ConnectionClosed | None = None
        self.keep_alive = True
        self._method = ""
        self._is11 = True
        self.expects_continue = False
        self._switching = False
        self._informational = self._remaining = self._total = self._received = 0
        self._max_body = self._limits.max_body_size
        self._checked = False
        self._cstate = _C_SIZE
        self._trailers: Headers | None = None
        self._out = 0
        self._out_chunked = False

    # -- introspection -------------------------------------------------

    @property
    def role(self) -> str:
        """``"server"`` or ``"client"``."""
        return "client" if self._client else "server"

    @property
    def parser(self) -> str:
        """The head parser in use: ``"python"`` or ``"httptools"``."""
        return self._heads.name

    @property
    def their_state(self) -> str:
        """The peer's side: HEAD, BODY, DONE, IDLE, MUST_CLOSE, CLOSED,
        SWITCHED or ERROR (for logs and tests)."""
        return _STATE_NAMES[self._rstate]

    @property
    def our_state(self) -> str:
        """Our side: IDLE, BODY, DONE, MUST_CLOSE or SWITCHED."""
        return _SEND_NAMES[self._sstate]

    @property
    def allow_bare_lf(self) -> bool:
        """Whether a bare LF ends lines of a head (the ``allow_bare_lf`` argument)."""
        return self._bare_lf

    def end_after_exchange(self) -> None:
        """End the connection with the current exchange (a server draining,
        say): `keep_alive` becomes False, and a response head not yet sent
        says ``Connection: close`` (HTTP/1.1)."""
        self.keep_alive = False

    @property
    def switched(self) -> bool:
        """The connection now carries another protocol (after 101 or a
        successful CONNECT); take the remaining bytes with `detach`."""
        return self._rstate == _R_SWITCHED

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed (for back-pressure)."""
        return len(self._buf) - self._pos

    @property
    def limits(self) -> H1Limits:
        """The limits in force."""
        return self._limits

    def has_input(self) -> bool:
        """Whether `next_event` has anything to look at: unparsed bytes or
        the peer's EOF (if not, it can only return `NEED_DATA` or `PAUSED`)."""
        return self._eof or self._pos < len(self._buf)

    @property
    def body_too_large(self) -> bool:
        """Whether the message being received declares a Content-Length over
        the body limit (what a server looks at before a 100 Continue)."""
        return self._rstate == _R_CL and self._total > self._max_body

    def set_max_body_size(self, size: int) -> None:
        """Override `H1Limits.max_body_size` for the message being received
        (call it after its head event; the next message uses the default)."""
        self._max_body = size

    # -- receiving -----------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes read from the peer; ``b""`` means the peer closed (EOF)."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("received data after end of stream")
        if self._rstate == _R_MUST_CLOSE:
            # RFC 9112 §9.6: nothing after a "close" message is processed.
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data
            self._pos = 0
            self._scan = 0
        elif type(buf) is bytearray:
            if pos > 65536:
                del buf[:pos]
                self._scan -= pos
                self._pos = 0
            buf += data
        else:
            rest = buf[pos:] if pos else buf
            # A growing partial message is kept in a bytearray so that many
            # small reads cost linear, not quadratic, copying.
            self._buf = bytearray(rest) + data if len(rest) > 4096 else rest + data
            self._scan -= pos
            self._pos = 0

    def detach(self) -> bytes:
        """Return and drop the bytes received but not parsed (for a switched
        protocol, or a driver that takes over the transport)."""
        data = bytes(self._buf[self._pos :])
        self._buf = b""
        self._pos = 0
        self._scan = 0
        return data

    def next_event(self) -> Event | Sentinel:
        """Return the next event parsed from the received bytes.

        Returns:
            An event; `NEED_DATA` when more bytes are needed; `PAUSED` when
            the next message must wait for our side (a server's response in
            progress, a client with no request outstanding, a switched
            protocol, or a connection that must close).

        Raises:
            RemoteProtocolError: The peer broke the protocol (raised again on
                every later call).
        """
        st = self._rstate
        try:
            if st == _R_HEAD:
                if self._client:
                    return self._read_response_head()
                return self._read_request_head()
            if st == _R_EOM:
                return self._end_message()
            if st == _R_CL:
                return self._read_cl()
            if st == _R_CHUNKED:
                return self._read_chunked()
            if st == _R_CLOSE:
                return self._read_until_close()
        except RemoteProtocolError as exc:
            self._fail(exc)
            raise
        if st == _R_ERROR:
            assert self._error is not None
            raise self._error
        if st == _R_CLOSED:
            assert self._closed_event is not None
            return self._closed_event
        if self._eof and (st == _R_MUST_CLOSE or st == _R_IDLE and self._pos >= len(self._buf)):
            return self._closed(False)
        return PAUSED

    def _fail(self, exc: RemoteProtocolError) -> None:
        self._rstate = _R_ERROR
        self._error = exc
        self.keep_alive = False
        self.expects_continue = False

    def _closed(self, truncated: bool) -> ConnectionClosed:
        self._rstate = _R_CLOSED
        self.keep_alive = False
        self.expects_continue = False
        ev = self._closed_event = ConnectionClosed(truncated)
        return ev

    def _next_head(self) -> tuple[bytes | bytearray, int, int, int, int] | Event | Sentinel:
        """The next complete head, as `_find_head` locates it; while there is
        none, what to return instead: NEED_DATA, or the close at EOF."""
        found = self._find_head()
        if found is None:
            if self._eof:
                return self._closed(self._pos < len(self._buf))
            return NEED_DATA
        return found

    def _find_head(self) -> tuple[bytes | bytearray, int, int, int, int] | None:
        """Locate a complete head: (buffer, start, start-line end, head end,
        next position), with ``buffer[head end:head end + 4] == CRLF CRLF``;
        None if the head is incomplete."""
        buf = self._buf
        pos = self._pos
        # RFC 9112 §2.2: ignore at least one empty line before a message.
        # (A one-octet slice is a cached object: the usual first octet, a
        # letter, costs no call.)
        if buf[pos : pos + 1] in _LINE_ENDS:
            while buf.startswith(b"\r\n", pos) or (self._bare_lf and buf.startswith(b"\n", pos)):
                pos += 2 if buf[pos] == 13 else 1
            self._pos = pos
        if self._bare_lf:
            return self._find_head_lf(pos)
        scan = self._scan
        end = buf.find(b"\r\n\r\n", scan if scan > pos else pos)
        if end < 0:
            n = len(buf) - pos
            if n:
                self._check_partial_head(pos, n)
            self._scan = max(pos, len(buf) - 3)
            return None
        line_end = buf.find(b"\r\n", pos, end + 2)
        limits = self._limits
        if line_end - pos > limits.max_start_line or end + 4 - pos > limits.max_header_size:
            if line_end - pos > limits.max_start_line:
                self._start_line_too_long()
            raise bad("Header block too large", 431)
        return buf, pos, line_end, end, end + 4

    def _check_partial_head(self, pos: int, n: int) -> None:
        buf = self._buf
        limits = self._limits
        if n > limits.max_header_size:
            raise bad("Header block too large", 431)
        if n > limits.max_start_line and buf.find(b"\r\n", pos) < 0:
            self._start_line_too_long()
        # A bare LF would otherwise make us wait for a CRLF CRLF that a
        # lenient peer never sends. Only the bytes not checked before are
        # counted (a CRLF pair may straddle the boundary).
        s = max(pos, self._scan)
        if not self._client and s < pos + _METHOD_PREFIX:
            self._check_method_prefix(self._buf, pos)
        if buf.count(b"\n", s) != buf.count(b"\r\n", s - 1 if s > pos else s):
            raise bad("Malformed HTTP message: bare LF in message head")

    @staticmethod
    def _check_method_prefix(buf: bytes | bytearray, pos: int) -> None:
        # RFC 9112 §3: a request starts with a method, a token. Anything else
        # (a TLS ClientHello's 0x16, a binary protocol) is refused now rather
        # than after the header timeout. Only the first bytes are looked at,
        # and only while a head is incomplete or has failed to parse; a
        # leading CR or LF is left to the empty-line and bare-LF rules. The
        # message names the first bad byte, so it does not depend on how the
        # head was split into reads.
        raw = bytes(buf[pos : pos + _METHOD_PREFIX])
        if raw[:1] in (b"\r", b"\n"):
            return
        m = TOKEN_RE.match(raw)
        i = m.end() if m is not None else 0
        if i == len(raw) or (i and raw[i] == 32):
            return
        raise bad(f"Malformed HTTP request line: invalid method: {raw[i : i + 1]!r} at offset {i}")

    @staticmethod
    def _check_bare_lf(buf: bytes | bytearray, start: int, end: int) -> None:
        # Report a bare LF the same way whether the head came in one read or
        # in pieces (where `_check_partial_head` would have seen it first).
        if buf.count(b"\n", start, end) != buf.count(b"\r\n", start, end):
            raise bad("Malformed HTTP message: bare LF in message head")

    def _start_line_too_long(self) -> None:
        if self._client:
            raise bad("Status line too long", 400)
        raise bad("Request line too long", 414)

    def _find_head_lf(self, pos: int) -> tuple[bytes | bytearray, int, int, int, int] | None:
        # Lenient mode: lines may end with LF alone. A head that has one is
        # rewritten to the strict CRLF form, so that both backends parse the
        # same bytes; a strict head is parsed in place.
        buf = self._buf
        scan = max(pos, self._scan)
        i = buf.find(b"\n\n", scan)
        k = buf.find(b"\n\r\n", scan)
        if i < 0 or (0 <= k < i):
            i = k
            skip = 3
        else:
            skip = 2
        limits = self._limits
        if i < 0:
            n = len(buf) - pos
            if n and not self._client and scan < pos + _METHOD_PREFIX:
                self._check_method_prefix(self._buf, pos)
            if n > limits.max_header_size:
                raise bad("Header block too large", 431)
            if n > limits.max_start_line and buf.find(b"\n", pos) < 0:
                self._start_line_too_long()
            self._scan = max(pos, len(buf) - 3)
            return None
        if i + skip - pos > limits.max_header_size:
            raise bad("Header block too large", 431)
        content_end = i - 1 if i > pos and buf[i - 1] == 13 else i
        if (
            skip == 3
            and content_end < i
            and buf.count(b"\n", pos, content_end) == buf.count(b"\r\n", pos, content_end)
        ):
            line_end = buf.find(b"\r\n", pos, content_end + 2)
            if line_end - pos > limits.max_start_line:
                self._start_line_too_long()
            return buf, pos, line_end, content_end, i + skip
        head = bytes(buf[pos:content_end]).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        hbuf = head + b"\r\n\r\n"
        line_end = hbuf.find(b"\r\n")
        if line_end > limits.max_start_line:
            self._start_line_too_long()
        return hbuf, 0, line_end, len(head), i + skip

    def _read_request_head(self) -> Event | Sentinel:
        if self._pos >= len(self._buf) and not self._eof:
            # Nothing received past the last message (what a keep-alive
            # connection has after each response): no head to look for.
            return NEED_DATA
        heads = self._heads
        quick = heads.quick_find
        got = None
        if quick is not None and not self._bare_lf:
            # The compiled build's C pass finds and parses a complete head in
            # its common shape; None leaves everything to the code below.
            limits = self._limits
            got = quick(
                self._buf,
                self._pos,
                self._scan,
                limits.max_start_line,
                limits.max_header_size,
                limits.max_header_count,
            )
        if got is not None:
            req, after = got
        else:
            found = self._next_head()
            if not isinstance(found, tuple):
                return found
            hbuf, start, line_end, end, after = found
            try:
                req = heads.request(hbuf, start, line_end, end)
            except RemoteProtocolError:
                self._check_method_prefix(hbuf, start)
                self._check_bare_lf(hbuf, start, end)
                raise
        self._pos = after
        self._scan = after
        self._method = req.method
        version = req.version
        self._is11 = is11 = version != "HTTP/1.0"
        fields = req.fields
        if "Connection" in fields:
            conn = fields["Connection"]
            # The usual single value, whatever the version, without a call.
            keep = _KEEP_ALIVE.get(conn[0]) if len(conn) == 1 else None
            self.keep_alive = wants_keep_alive(version, conn) if keep is None else keep
        else:
            self.keep_alive = is11
        if "Content-Length" not in fields and "Transfer-Encoding" not in fields:
            # No body (RFC 9112 §6.3 rule 7): _start_body(0), inlined.
            self.expects_continue = False
            self._max_body = self._limits.max_body_size
            self._received = 0
            self._rstate = _R_EOM
            return req
        cl = fields.get("Content-Length")
        framing = body_framing(cl, fields.get("Transfer-Encoding"), True)
        if cl is not None and (len(cl) > 1 or "," in cl[0]):
            # Repeated or listed equal values, merged (RFC 9110 §8.6): the
            # application reads one, as on Tornado (int() of the field).
            fields["Content-Length"] = [str(framing)]
        # RFC 9110 §10.1.1: the expectation is ignored for HTTP/1.0, and
        # pointless without a body.
        expect = fields.get("Expect")
        self.expects_continue = (
            is11 and expect is not None and framing != 0 and "100-continue" in split_list(expect)
        )
        self._start_body(framing)
        return req

    def _read_response_head(self) -> Event | Sentinel:
        found = self._next_head()
        if not isinstance(found, tuple):
            return found
        hbuf, start, line_end, end, after = found
        try:
            version, status, reason, headers = self._heads.response(hbuf, start, line_end, end)
        except RemoteProtocolError:
            self._check_bare_lf(hbuf, start, end)
            raise
        self._pos = after
        self._scan = self._pos
        if status < 200 and status != 101:
            # RFC 9110 §15.2: interim responses precede the final one; a
            # bounded number of them, so a peer cannot keep us reading.
            self._informational += 1
            if self._informational > self._limits.max_informational:
                raise bad("Too many 1xx responses")
            return InformationalResponse(version, status, reason, headers)
        cl, te, conn, _ = scan_fields(headers) if headers else (None, None, None, None)
        method = self._method
        if method == "HEAD" or status == 304:
            # RFC 9112 §6.3 rule 1: no body, whatever the fields say; so
            # they are not checked either (a HEAD's Content-Length is the
            # GET's, and a sloppy one does not fail the request, as on
            # Tornado).
            framing = 0
        else:
            framing = body_framing(cl, te, False)
            if cl is not None and (len(cl) > 1 or "," in cl[0]):
                # Repeated or listed equal values, merged (RFC 9110 §8.6):
                # the application reads one, as on Tornado.
                headers = _one_content_length(headers, str(framing))
        if status == 101 or (method == "CONNECT" and status < 300):
            # RFC 9110 §15.2.2, §9.3.6: the connection changes protocol
            # right after this head.
            self._switching = True
            framing = 0
        elif status == 204:
            # RFC 9112 §6.3 rule 1: no body. A length or a chunked coding says
            # the server meant to send one anyway (the bytes would be taken
            # for the next response): refused, as Tornado refuses both.
            if framing > 0 or framing == CHUNKED:
                raise bad("Response with code 204 should not have body")
            framing = 0
        if framing == UNTIL_CLOSE or not wants_keep_alive(version, conn):
            self.keep_alive = False
        self._start_body(framing)
        return Response(version, status, reason, headers)

    def _start_body(self, framing: int) -> None:
        self._max_body = self._limits.max_body_size
        self._received = 0
        if framing == 0:
            self._rstate = _R_EOM
        elif framing > 0:
            self._rstate = _R_CL
            self._remaining = self._total = framing
            self._checked = False
        elif framing == CHUNKED:
            self._rstate = _R_CHUNKED
            self._cstate = _C_SIZE
        else:
            self._rstate = _R_CLOSE

    def _end_message(self) -> EndOfMessage:
        trailers = self._trailers
        if trailers:
            ev = EndOfMessage(trailers)
            self._trailers = None
        else:
            ev = _NO_TRAILERS
        if self._pos >= len(self._buf):
            # Everything received is parsed: hold no bytes while idle.
            self._buf = b""
            self._pos = self._scan = 0
        self.expects_continue = False
        if self._switching and self._sstate != _S_BODY:
            self._rstate = _R_SWITCHED
            self._sstate = _S_SWITCHED
            return ev
        self._rstate = _R_DONE
        if self._sstate == _S_BODY and self._client:
            # The server answered before our request body ended: that body
            # can no longer be delimited for reuse (h11 does the same).
            self.keep_alive = False
        if self._sstate == _S_DONE:
            self._end_cycle()
        return ev

    def _end_cycle(self) -> None:
        """Both messages of an exchange are complete: reset for the next one
        or, without keep-alive, refuse any more (RFC 9112 §9.3, §9.6)."""
        if self._switching:
            self._rstate = _R_SWITCHED
            self._sstate = _S_SWITCHED
            return
        if not self.keep_alive:
            self._rstate = _R_MUST_CLOSE
            self._sstate = _S_MUST_CLOSE
            return
        self._sstate = _S_IDLE
        self._rstate = _R_IDLE if self._client else _R_HEAD
        self._informational = 0
        self._method = ""
        self._is11 = True

    def _read_cl(self) -> Event | Sentinel:
        if not self._checked:
            if self._total > self._max_body:
                raise bad("Content-Length too long", 413)
            self._checked = True
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if avail <= 0:
            if self._eof:
                return self._closed(True)
            return NEED_DATA
        rem = self._remaining
        if avail >= rem:
            data = buf[pos : pos + rem] if (pos or avail != rem) else buf
            self._pos = pos + rem
            self._rstate = _R_EOM
        else:
            data = buf[pos:] if pos else buf
            self._pos = len(buf)
            self._remaining = rem - avail
        return Data(data if type(data) is bytes else bytes(data))

    def _read_until_close(self) -> Event | Sentinel:
        buf = self._buf
        pos = self._pos
        if len(buf) > pos:
            data = bytes(buf[pos:]) if pos or type(buf) is not bytes else buf
            self._pos = len(buf)
            self._received += len(data)
            if self._received > self._max_body:
                raise bad("Content-Length too long", 413)
            return Data(data)
        if self._eof:
            # RFC 9112 §6.3 rule 8: the close ends the body.
            return self._end_message()
        return NEED_DATA

    def _read_chunked(self) -> Event | Sentinel:
        buf = self._buf
        pos = self._pos
        cs = self._cstate
        limits = self._limits
        pieces: list[bytes | bytearray] = []
        size = 0
        done = False
        while True:
            if cs == _C_DATA:
                avail = len(buf) - pos
                if avail <= 0:
                    break
                rem = self._remaining
                take = rem if avail >= rem else avail
                pieces.append(buf[pos : pos + take])
                pos += take
                size += take
                if take < rem:
                    self._remaining = rem - take
                    break
                cs = _C_CRLF
            elif cs == _C_CRLF:
                # RFC 9112 §7.1: chunk-data is followed by CRLF exactly.
                if len(buf) - pos < 2:
                    if len(buf) > pos and buf[pos] != 13:
                        raise bad("improperly terminated chunk")
                    break
                if buf[pos] != 13 or buf[pos + 1] != 10:
                    raise bad("improperly terminated chunk")
                pos += 2
                cs = _C_SIZE
                if size >= limits.max_data_event:
                    break
            elif cs == _C_SIZE:
                i = buf.find(b"\r\n", pos)
                if i < 0 or i - pos > limits.max_chunk_line:
                    n = (len(buf) if i < 0 else i) - pos
                    if n > limits.max_chunk_line:
                        raise bad("chunk size line too long")
                    if buf.find(b"\n", pos) >= 0:
                        raise bad("invalid chunk size line: bare LF")
                    break
                n = parse_chunk_size(buf[pos:i])
                pos = i + 2
                if n == 0:
                    cs = _C_TRAILER
                    continue
                self._received += n
                if self._received > self._max_body:
                    raise bad("chunked body too large", 413)
                self._remaining = n
                cs = _C_DATA
            else:
                # RFC 9112 §7.1.2: trailer-section, then the final CRLF.
                if buf.startswith(b"\r\n", pos):
                    pos += 2
                    done = True
                    break
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    if len(buf) - pos > limits.max_trailer_size:
                        raise bad("Trailer section too large", 431)
                    if buf.count(b"\n", pos) != buf.count(b"\r\n", pos):
                        raise bad("Malformed HTTP message: bare LF in trailer section")
                    break
                if end + 4 - pos > limits.max_trailer_size:
                    raise bad("Trailer section too large", 431)
                # The error a partial section gets above, whatever the reads.
                if buf.count(b"\n", pos, end) != buf.count(b"\r\n", pos, end):
                    raise bad("Malformed HTTP message: bare LF in trailer section")
                trailers = parse_fields(buf, pos, end, limits.max_header_count, self._client)
                for name, _ in trailers:
                    if name.lower() in FORBIDDEN_TRAILERS:
                        raise bad(f"Malformed HTTP message: {name[:100]!r} in trailer section")
                self._trailers = trailers
                pos = end + 4
                done = True
                break
        self._pos = pos
        self._cstate = cs
        if done:
            self._rstate = _R_EOM
        if pieces:
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
            return Data(data if type(data) is bytes else bytes(data))
        if done:
            return self._end_message()
        if self._eof:
            return self._closed(True)
        return NEED_DATA
