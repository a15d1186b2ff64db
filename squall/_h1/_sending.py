"""The sending half of `H1Connection`: heads, bodies and ends serialized
(RFC 9112 §4-§7; connection rules of §9)."""

from __future__ import annotations

__all__: list[str] = []

from collections.abc import Iterable
from typing import Final, Optional

from ._errors import LocalProtocolError, RemoteProtocolError
from ._events import Fields
from ._rules import (
    CHUNKED,
    STR_TOKEN_RE,
    STR_VALUE_RE,
    UNTIL_CLOSE,
    parse_content_length,
    split_list,
    wants_keep_alive,
)
from ._states import (
    _NO_BODY,
    _R_CLOSED,
    _R_DONE,
    _R_EOM,
    _R_ERROR,
    _R_HEAD,
    _R_IDLE,
    _R_SWITCHED,
    _S_BODY,
    _S_DONE,
    _S_IDLE,
    _S_MUST_CLOSE,
    _S_SWITCHED,
)
from ._writer import check_block, chunk, encode_fields, encode_lines, find_values

# The status lines sent, by code: (reason, line); the usual few, bounded.
_STATUS_LINES: Final[dict[int, tuple[str, str]]] = {}

# Content-Length, Transfer-Encoding and Connection values (None: absent).
_FramingFields = tuple[Optional[list[str]], Optional[list[str]], Optional[list[str]]]


class _Sender:
    """Methods of `H1Connection` that produce bytes to send. It holds the
    slots of the whole connection (mypy checks slot assignments per class)."""

    __slots__ = (
        "_client",
        "_limits",
        "_heads",
        "_bare_lf",
        "_buf",
        "_pos",
        "_scan",
        "_eof",
        "_rstate",
        "_sstate",
        "_error",
        "_closed_event",
        "keep_alive",
        "_method",
        "_is11",
        "expects_continue",
        "_switching",
        "_informational",
        "_remaining",
        "_total",
        "_received",
        "_max_body",
        "_checked",
        "_cstate",
        "_trailers",
        "_out",
        "_out_chunked",
    )

    _client: bool
    _rstate: int
    _sstate: int
    keep_alive: bool
    _method: str
    _is11: bool
    expects_continue: bool
    _switching: bool
    _informational: int
    _out: int
    _out_chunked: bool

    def _end_cycle(self) -> None:
        raise NotImplementedError

    @property
    def takes_informational(self) -> bool:
        """Server: whether an interim (1xx) head may be sent now: a request
        has arrived, no response has started, and the client speaks
        HTTP/1.1 (RFC 9110 section 15.2: none to an HTTP/1.0 client)."""
        return (
            not self._client
            and self._sstate == _S_IDLE
            and self._rstate not in (_R_HEAD, _R_ERROR)
            and self._is11
        )

    def send_informational(
        self, status: int = 100, reason: str = "Continue", headers: Iterable[tuple[str, str]] = ()
    ) -> bytes:
        """Server: serialize an interim ``1xx`` response (not 101).

        Raises:
            LocalProtocolError: Not a server, no request received, a final
                response already started, or the request is HTTP/1.0
                (RFC 9110 §15.2: no 1xx to an HTTP/1.0 client).
        """
        if self._client or self._sstate != _S_IDLE or self._rstate in (_R_HEAD, _R_ERROR):
            raise LocalProtocolError("an interim response needs a request and no response yet")
        if not (100 <= status < 200) or status == 101:
            raise LocalProtocolError(f"{status} is not an interim (1xx) status; 101 is final here")
        if not self._is11:
            raise LocalProtocolError("cannot send a 1xx response to an HTTP/1.0 client")
        if status == 100:
            self.expects_continue = False
        return self._encode_head(f"HTTP/1.1 {status} {_reason(reason)}\r\n", headers)

    def send_response_head(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]]
    ) -> bytes:
        """Server: serialize a final response head.

        Chooses the body framing from the fields (RFC 9112 §6.1, §6.3): a
        Content-Length is honoured; without one, an HTTP/1.1 request gets
        ``Transfer-Encoding: chunked`` added, an HTTP/1.0 one a body ended
        by closing. HEAD, 204 and 304 responses carry no body. Adds
        ``Connection: close`` (HTTP/1.1) or ``Connection: Keep-Alive``
        (HTTP/1.0 keep-alive) when the application did not set Connection.
        Fields that set both Content-Length and Transfer-Encoding are sent
        as given, the body delimited by Content-Length, and the connection
        closed afterwards (Tornado's behaviour; its clients reject such a
        response).

        Raises:
            LocalProtocolError: Not a server, no request to answer, a
                response already started, or an invalid status or field.
        """
        return self._response_head(status, reason, headers, -1)

    def send_response_start(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        data: bytes,
        framing_fields: Optional[_FramingFields] = None,
        lines: Optional[list[str]] = None,
    ) -> bytes:
        """Server: `send_response_head` and `send_data` of a first body
        piece in one call (what a framework's first flush sends).

        Args:
            framing_fields: The values of Content-Length, Transfer-Encoding
                and Connection in ``headers`` (None for an absent field),
                when the caller keeps its fields by name anyway; spares
                looking for them in the serialized block.
            lines: The fields already rendered as ``"Name: value"`` lines
                (``headers`` is then not read); checked all the same.

        Raises:
            LocalProtocolError: As `send_response_head`; or ``data`` longer
                than the Content-Length (nothing is then to be sent).
        """
        head = self._response_head(status, reason, headers, -1, framing_fields, lines)
        if not data:
            return head
        out = self._out
        if out >= len(data):  # a Content-Length body (the framings are negative)
            self._out = out - len(data)
            return head + data
        return head + self.send_data(data)

    def send_head(
        self,
        status: int,
        reason: str,
        lines: list[str],
        cl: Optional[list[str]],
        te: Optional[list[str]],
        conn: Optional[list[str]],
        data: bytes = b"",
        checked: bool = False,
        length: int = -1,
    ) -> bytes:
        """Server: a final response head from fields the caller has rendered,
        with the first body piece (what a framework's first flush sends).

        The head is built once: the status line, ``lines`` joined, the
        framing and connection fields this side adds, encoded in one go.

        Args:
            lines: One ``"Name: value\\r\\n"`` string per field.
            cl, te, conn: The values of Content-Length, Transfer-Encoding
                and Connection among ``lines`` (None for an absent field).
            data: The first piece of the body.
            checked: The caller vouches that every name is a token and no
                value holds a control character (its fields were validated
                when they were set); otherwise the block is checked here.
            length: The length of the whole body, when it is known (then
                Content-Length is added if no framing field is set).

        Raises:
            LocalProtocolError: As `send_response_start`.
        """
        text = lines[0] if len(lines) == 1 else "".join(lines)
        if not checked:
            check_block(text, lines)
        if self._client:
            raise LocalProtocolError("a client cannot send a response")
        rst = self._rstate
        if self._sstate != _S_IDLE or rst == _R_HEAD:
            raise LocalProtocolError("no request to answer, or a response already started")
        if rst == _R_ERROR or rst == _R_CLOSED:
            # Answering a malformed request (400, 431...): close after it.
            self.keep_alive = False
        if not (100 <= status <= 999) or (status < 200 and status != 101):
            raise LocalProtocolError(f"invalid final status code {status!r}")
        is11 = self._is11
        method = self._method
        if te is None and conn is None and (cl is None or len(cl) == 1):
            # The common response: at most one Content-Length, no
            # Transfer-Encoding or Connection.
            if cl is None:
                if length >= 0 and status >= 200 and status not in (204, 304):
                    # send_response's body: we know its length.
                    text += f"Content-Length: {length}\r\n"
                    framing = length
                else:
                    framing = _NO_BODY
            else:
                value = cl[0]
                if value.isdigit() and value.isascii() and len(value) <= 18:
                    framing = int(value)
                else:
                    framing = self._out_framing(cl, None)
        elif te is not None and cl is not None:
            # Tornado sends what the application set, both fields included,
            # and delimits the body by Content-Length; its clients must then
            # detect the malformed response (RFC 9112 §6.3 rule 3). We do
            # the same, but close afterwards so nothing can follow it.
            framing = self._out_framing(cl, None)
            self.keep_alive = False
        elif (
            length >= 0 and cl is None and te is None and status >= 200 and status not in (204, 304)
        ):
            text += f"Content-Length: {length}\r\n"
            framing = length
        else:
            framing = self._out_framing(cl, te)
        extra = ""
        if status == 101 or (method == "CONNECT" and 200 <= status < 300 and rst != _R_ERROR):
            self._switching = True
            framing = _NO_BODY
        elif method == "HEAD" or status == 204 or status == 304:
            framing = _NO_BODY
        elif framing == _NO_BODY:
            if is11:
                framing = CHUNKED
                extra = "Transfer-Encoding: chunked\r\n"
            else:
                framing = UNTIL_CLOSE
                self.keep_alive = False
        elif framing == CHUNKED and not is11:
            raise LocalProtocolError("chunked coding cannot be sent to an HTTP/1.0 client")
        if conn is not None:
            if "close" in split_list(conn):
                self.keep_alive = False
        elif not self._switching:
            if not self.keep_alive:
                if is11:
                    extra += "Connection: close\r\n"
            elif not is11:
                extra += "Connection: Keep-Alive\r\n"
        self.expects_continue = False
        if not reason.isprintable():
            reason = _reason(reason)
        try:
            head = f"HTTP/1.1 {status} {reason}\r\n{text}{extra}\r\n".encode("latin-1")
        except UnicodeEncodeError:
            head = self._encode_head(f"HTTP/1.1 {status} {reason}\r\n{text}{extra}", ())
        # _set_out(), inlined.
        self._sstate = _S_BODY
        self._out_chunked = framing == CHUNKED
        self._out = framing
        if not data:
            return head
        if framing >= len(data):  # a Content-Length body (the framings are negative)
            self._out = framing - len(data)
            return head + data
        return head + self.send_data(data)

    def send_fields(
        self,
        status: int,
        reason: str,
        fields: Fields,
        data: bytes = b"",
        checked: bool = False,
        close: bool = False,
    ) -> bytes:
        """Server: `send_head` for fields grouped by name, as ``HTTPHeaders``
        keeps them (`Fields`: canonical names, values in order), rendered
        here.

        Args:
            checked: As `send_head` (then every value is a str).
            close: Add ``Connection: close`` unless the fields set Connection
                (a server that does not keep connections alive).

        Raises:
            LocalProtocolError: As `send_head`; or a name or value that is
                not a str.
        """
        # lines[0] is the status line's place: the usual answer is then
        # encoded from one join.
        lines: list[str] = [""]
        if checked:
            # Pieces, joined once below: a formatted line per field would
            # cost an allocation (and its release) each.
            for name, values in fields.items():
                for value in values:
                    lines.append(name)
                    lines.append(": ")
                    lines.append(value)
                    lines.append("\r\n")
        else:
            try:
                for name, values in fields.items():
                    for value in values:
                        # Concatenated, not formatted: a value that is not a
                        # str is refused rather than rendered by str().
                        lines.append(name + ": " + value + "\r\n")
            except TypeError:
                raise LocalProtocolError("header fields must be (str, str) pairs") from None
        if status == 101 and checked and not data:
            head = self._switching_head(reason, fields, lines)
            if head is not None:
                return head
        # The usual answer takes the few lines below: checked fields, one
        # valid Content-Length covering the data, no Transfer-Encoding or
        # Connection, a final status with a body, on a kept-alive HTTP/1.1
        # exchange with nothing sent yet. Anything else (and any error) is
        # send_head's, from the same arguments.
        if (
            checked
            and not close
            and "Transfer-Encoding" not in fields
            and "Connection" not in fields
        ):
            cl = fields.get("Content-Length")
            rst = self._rstate
            method = self._method
            if (
                cl is not None
                and len(cl) == 1
                and 200 <= status <= 999
                and status != 204
                and status != 304
                and self._sstate == _S_IDLE
                and (rst == _R_DONE or rst == _R_EOM)
                and self.keep_alive
                and self._is11
                and method != "HEAD"
                and method != "CONNECT"
                and not self._client
            ):
                value = cl[0]
                n = len(data)
                if value == str(n):
                    # The whole body, as a framework's finish() sends it.
                    framing = n
                elif value.isdigit() and value.isascii() and len(value) <= 18:
                    framing = int(value)
                else:
                    framing = -1
                line = _STATUS_LINES.get(status)
                if line is None or line[0] != reason:
                    line = (reason, f"HTTP/1.1 {status} {reason}\r\n")
                    if not reason.isprintable():
                        framing = -1
                    elif len(_STATUS_LINES) < 64:
                        _STATUS_LINES[status] = line
                if framing >= n:
                    lines[0] = line[1]
                    lines.append("\r\n")
                    try:
                        head = "".join(lines).encode("latin-1")
                    except UnicodeEncodeError:
                        del lines[-1]
                    else:
                        self.expects_continue = False
                        self._sstate = _S_BODY
                        self._out_chunked = False
                        self._out = framing - n
                        return head + data if data else head
        del lines[0]
        get = fields.get
        cl = get("Content-Length")
        te = get("Transfer-Encoding")
        conn = get("Connection")
        if conn is None and close:
            conn = ["close"]
            lines.append("Connection: close\r\n")
        return self.send_head(status, reason, lines, cl, te, conn, data, checked)

    def _switching_head(self, reason: str, fields: Fields, lines: list[str]) -> Optional[bytes]:
        """`send_fields`'s 101 of an upgrade (a WebSocket handshake), or None.

        The case it takes: ``Connection: Upgrade`` alone, no Content-Length
        or Transfer-Encoding, the request read, an HTTP/1.1 exchange;
        `send_head` renders the same bytes and sets the same state, but
        reaches them through its general framing rules. ``lines`` are the
        checked fields with their status line's place first (left as they
        were when None is returned).
        """
        conn = fields.get("Connection")
        rst = self._rstate
        if (
            conn is None
            or len(conn) != 1
            or conn[0].lower() != "upgrade"
            or "Content-Length" in fields
            or "Transfer-Encoding" in fields
            or self._sstate != _S_IDLE
            or not (rst == _R_DONE or rst == _R_EOM)
            or self._client
            or not self._is11
            or not reason.isprintable()
        ):
            return None
        lines[0] = f"HTTP/1.1 101 {reason}\r\n"
        lines.append("\r\n")
        try:
            head = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            lines[0] = ""
            del lines[-1]
            return None
        # RFC 9110 §15.2.2: the connection changes protocol after this head,
        # which has no body.
        self._switching = True
        self.expects_continue = False
        self._sstate = _S_BODY
        self._out_chunked = False
        self._out = _NO_BODY
        return head

    def send_rendered_head(self, head: bytes, framing: int, data: bytes) -> Optional[bytes]:
        """Server: a final response head the caller rendered and checked
        whole, with the first body piece; None, nothing done, unless it is
        the plain case this needs no more than state to decide.

        The caller vouches for ``head``: a final status other than 204 and
        304, names that are tokens, values without control octets, exactly
        one Content-Length (``framing``, at least ``len(data)``), no
        Transfer-Encoding or Connection field. The plain case: a kept-alive
        HTTP/1.1 exchange whose request is read, not HEAD or CONNECT, with
        nothing sent yet; anything else goes through `send_head`, which
        adds what the connection's rules need.
        """
        rst = self._rstate
        method = self._method
        if (
            self._sstate != _S_IDLE
            or not (rst == _R_DONE or rst == _R_EOM)
            or not self.keep_alive
            or not self._is11
            or method == "HEAD"
            or method == "CONNECT"
            or self._client
            or framing < len(data)
        ):
            return None
        self.expects_continue = False
        self._sstate = _S_BODY
        self._out_chunked = False
        self._out = framing - len(data)
        return head + data if data else head

    def _response_head(
        self,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        length: int,
        framing_fields: Optional[_FramingFields] = None,
        lines: Optional[list[str]] = None,
    ) -> bytes:
        if lines is None:
            text = encode_fields(headers)
        else:
            text = encode_lines(lines)
        if framing_fields is not None:
            cl, te, conn = framing_fields
        else:
            low = "\n" + text.lower()
            # Most responses set neither Transfer-Encoding nor Connection: a
            # substring test spares the scan.
            cl = find_values(text, low, "\ncontent-length:") if "\ncontent-length:" in low else None
            te = (
                find_values(text, low, "\ntransfer-encoding:")
                if "\ntransfer-encoding:" in low
                else None
            )
            conn = find_values(text, low, "\nconnection:") if "\nconnection:" in low else None
        return self.send_head(status, reason, [text], cl, te, conn, b"", True, length)

    def send_request_head(
        self,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]],
        version: str = "HTTP/1.1",
    ) -> bytes:
        """Client: serialize a request head.

        Framing: a Content-Length or ``Transfer-Encoding: chunked`` field is
        honoured; without either, POST, PUT and PATCH get chunked added
        (HTTP/1.1), other methods send no body. The caller adds Host.

        Raises:
            LocalProtocolError: Not a client, the previous exchange is not
                finished (we do not pipeline), or an invalid method, target
                or field.
        """
        if not self._client:
            raise LocalProtocolError("a server cannot send a request")
        if self._sstate != _S_IDLE or self._rstate not in (_R_IDLE,):
            raise LocalProtocolError("the previous exchange is not finished")
        if STR_TOKEN_RE.fullmatch(method) is None:
            raise LocalProtocolError(f"invalid method {method!r}")
        if not (target and target.isascii() and target.isprintable() and " " not in target):
            raise LocalProtocolError(f"invalid request-target {target!r}")
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            raise LocalProtocolError(f"unsupported HTTP version {version!r}")
        text = encode_fields(headers)
        low = "\n" + text.lower()
        cl = find_values(text, low, "\ncontent-length:")
        te = find_values(text, low, "\ntransfer-encoding:")
        conn = find_values(text, low, "\nconnection:")
        is11 = version == "HTTP/1.1"
        framing = self._out_framing(cl, te)
        extra = ""
        if framing == _NO_BODY and method in ("POST", "PUT", "PATCH") and is11:
            framing = CHUNKED
            extra = "Transfer-Encoding: chunked\r\n"
        elif framing == CHUNKED and not is11:
            raise LocalProtocolError("chunked coding cannot be sent in an HTTP/1.0 request")
        head = self._encode_head(f"{method} {target} {version}\r\n{text}{extra}", ())
        self._method = method
        self._is11 = is11
        self.keep_alive = wants_keep_alive(version, conn)
        self._switching = False
        self._informational = 0
        self._set_out(framing)
        self._rstate = _R_HEAD
        return head

    def _out_framing(self, cl: list[str] | None, te: list[str] | None) -> int:
        if te is not None:
            if cl is not None:
                raise LocalProtocolError("both Transfer-Encoding and Content-Length set")
            if split_list(te) != ["chunked"]:
                raise LocalProtocolError(f"unsupported Transfer-Encoding {', '.join(te)!r}")
            return CHUNKED
        if cl is not None:
            try:
                return parse_content_length(cl)
            except RemoteProtocolError as exc:
                raise LocalProtocolError(str(exc)) from None
        return _NO_BODY

    def _set_out(self, framing: int) -> None:
        self._sstate = _S_BODY
        self._out_chunked = framing == CHUNKED
        self._out = framing

    @staticmethod
    def _encode_head(start: str, headers: Iterable[tuple[str, str]]) -> bytes:
        text = start + encode_fields(headers) + "\r\n" if headers else start + "\r\n"
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError as exc:
            # Name the whole field line the character is in.
            first = text.rfind("\r\n", 0, exc.start) + 2
            last = text.find("\r\n", exc.end)
            raise LocalProtocolError(
                f"header text must be latin-1: {text[first:last][:200]!r}"
            ) from None

    def send_data(self, data: bytes) -> bytes:
        """Serialize a piece of the body being sent.

        Raises:
            LocalProtocolError: No body in progress, more bytes than the
                Content-Length, or a body on a response that has none
                (204, 304; a HEAD response silently drops it).
        """
        if self._sstate != _S_BODY:
            raise LocalProtocolError("no message body in progress")
        if not data:
            return b""
        if self._out_chunked:
            return chunk(data)
        out = self._out
        if out >= 0:
            n = len(data)
            if n > out:
                raise LocalProtocolError("Tried to write more data than Content-Length")
            self._out = out - n
            return data
        if out == UNTIL_CLOSE:
            return data
        if self._method == "HEAD":
            # RFC 9110 §9.3.2: the body a GET would carry is not sent.
            return b""
        raise LocalProtocolError("this message cannot have a body")

    def send_counted(self, n: int) -> bool:
        """Count ``n`` body bytes the caller sends by other means (sendfile).

        Only a body framed by Content-Length can be sent so: a chunked one
        needs its framing around the bytes. Returns False, counting
        nothing, for any other body.

        Raises:
            LocalProtocolError: No body in progress, or more bytes than the
                Content-Length.
        """
        if self._sstate != _S_BODY:
            raise LocalProtocolError("no message body in progress")
        out = self._out
        if self._out_chunked or out < 0:
            return False
        if n > out:
            raise LocalProtocolError("Tried to write more data than Content-Length")
        self._out = out - n
        return True

    def send_end(self, trailers: Iterable[tuple[str, str]] | None = None) -> bytes:
        """Serialize the end of the message being sent: ``0\\r\\n`` plus
        trailers and CRLF for a chunked body, nothing otherwise.

        Raises:
            LocalProtocolError: No body in progress, fewer bytes sent than
                the Content-Length, or trailers on a non-chunked body.
        """
        if self._sstate != _S_BODY:
            raise LocalProtocolError("no message body in progress")
        out = b""
        if self._out_chunked:
            out = b"0\r\n\r\n"
            if trailers:
                out = b"0\r\n" + self._encode_head("", trailers)
        else:
            if trailers:
                raise LocalProtocolError("trailers need a chunked body")
            if self._out > 0:
                raise LocalProtocolError(
                    f"Tried to write {self._out} bytes less than Content-Length"
                )
        if self._switching:
            self._sstate = _S_SWITCHED
            if self._rstate == _R_DONE:
                self._rstate = _R_SWITCHED
            return out
        rst = self._rstate
        if rst == _R_DONE:
            if self.keep_alive and not self._client:
                # _end_cycle() for a server's next request, inlined.
                self._sstate = _S_IDLE
                self._rstate = _R_HEAD
                self._informational = 0
                self._method = ""
                self._is11 = True
                return out
            self._sstate = _S_DONE
            self._end_cycle()
            return out
        self._sstate = _S_DONE
        if rst == _R_ERROR or rst == _R_CLOSED:
            self._sstate = _S_MUST_CLOSE
        elif not self._client and rst != _R_EOM:
            # The response ended before the request body: the rest of that
            # body would have to be read and discarded; close instead.
            self.keep_alive = False
        return out

    def send_response(
        self, status: int, reason: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> bytes:
        """Server: serialize a whole response (head, body and end) in one
        call; Content-Length is added when no framing field is present."""
        head = self._response_head(status, reason, headers, len(body))
        if not self._out_chunked and self._out == len(body):
            # The common case: a fixed-length body sent whole.
            self._out = 0
            return head + body + self.send_end() if body else head + self.send_end()
        return head + self.send_data(body) + self.send_end()

    def send_request(
        self, method: str, target: str, headers: Iterable[tuple[str, str]], body: bytes = b""
    ) -> bytes:
        """Client: serialize a whole request; Content-Length is added when a
        body is given and no framing field is present."""
        headers = list(headers)
        if body:
            low = [n.lower() for n, _ in headers]
            if "content-length" not in low and "transfer-encoding" not in low:
                headers.append(("Content-Length", str(len(body))))
        return (
            self.send_request_head(method, target, headers) + self.send_data(body) + self.send_end()
        )


def _reason(reason: str) -> str:
    # RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ); a CR
    # or LF here would inject fields.
    # str.isprintable() is False for every control character.
    if reason.isprintable() or STR_VALUE_RE.fullmatch(reason) is not None:
        return reason
    raise LocalProtocolError(f"invalid reason phrase {reason!r}")
