"""The per-request HTTP cycle of a served ASGI application: `_HTTPCycle`.

The driver calls ``headers_received``, ``data_received`` and ``finish`` on it;
it runs the application in a Task and turns its ``send`` calls into
``write_headers`` / ``write`` / ``finish`` on the request's connection.

Flow control, both ways:

* request body: ``data_received`` keeps at most `_BODY_HIGH_WATER` bytes the
  application has not taken with ``receive()``; past it, it returns a Future
  that the driver waits on before reading more (the transport pauses).
* response body: ``send()`` of a body piece waits on the Future the
  connection's ``write`` returns, which is pending while the transport is
  over its high-water mark.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the ASGI server

import asyncio
import os
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Final, Optional, Union

from squall._fastpaths import new_instance
from squall._h1._rules import STR_TOKEN_RE
from squall._request_task import start
from squall.asgi._scope import _date_cache, _http_date, _http_scope, _is_websocket
from squall.asgi._types import (
    ASGIProtocolError,
    ClientDisconnected,
    Message,
    Scope,
    Takeover,
    expected,
    resolve,
)
from squall.asgi._websocket import _WebSocketCycle
from squall.asgi._webtransport import WebTransportCycle
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPInputError,
    HTTPMessageDelegate,
    HTTPOutputError,
    RequestStartLine,
    ResponseStartLine,
    responses,
)
from squall.httputil._exchange import loop_of
from squall.httputil._headers import _canonical
from squall.httputil._response import _ResponseHeaders
from squall.iostream import StreamClosedError
from squall.log import app_log

if TYPE_CHECKING:
    from squall.asgi._host import CycleHost


# Request body bytes held for an application that is not receiving.
_BODY_HIGH_WATER: Final = 64 * 1024
# C variables in the compiled build (a module global is a dict lookup).
_resolve: Final = resolve
_start: Final = start

_DISCONNECT: Final[dict[str, Any]] = {"type": "http.disconnect"}

# Final responses' start lines, built once (ResponseStartLine is a NamedTuple).
_START_LINES: Final[dict[int, ResponseStartLine]] = {
    code: ResponseStartLine("HTTP/1.1", code, reason)
    for code, reason in responses.items()
    if code >= 200
}

# Final responses' status lines as bytes, without their CRLF (see
# _start_response: each field line starts with one).
_STATUS_HEADS: Final[dict[int, bytes]] = {
    code: f"HTTP/1.1 {code} {reason}".encode("latin-1")
    for code, reason in responses.items()
    if code >= 200
}

# The start of a response field's line, ``b"\r\nName: "``, by the name as
# the application sends it (bytes), canonical as HTTPHeaders writes it; only
# names that are tokens (RFC 9110 §5.1), so a name found here needs no
# check. The fields the head's framing depends on are these very objects
# whatever the name's case: _start_response tells them by identity.
_CONTENT_LENGTH: Final = b"\r\nContent-Length: "
_TRANSFER_ENCODING: Final = b"\r\nTransfer-Encoding: "
_CONNECTION: Final = b"\r\nConnection: "
_DATE: Final = b"\r\nDate: "
_SPECIAL_PREFIXES: Final[dict[str, bytes]] = {
    "Content-Length": _CONTENT_LENGTH,
    "Transfer-Encoding": _TRANSFER_ENCODING,
    "Connection": _CONNECTION,
    "Date": _DATE,
}
_PREFIXES: Final[dict[Any, bytes]] = {}

_new_headers: Final = new_instance

# RFC 9110 §5.5: the octets a field value may hold (HTAB, VCHAR, SP,
# obs-text) map to themselves, every other octet (CR and LF among them) to
# another, so that bytes.translate returns the very object it was given
# when all are valid (no table is built per call, as deleting characters
# would).
_SAME_IF_VALUES: Final = bytes(
    c if c == 0x09 or 0x20 <= c < 0x7F or c >= 0x80 else c ^ 0x40 for c in range(256)
)


def _response_prefix(name: Any) -> bytes:
    """``b"\r\nName: "`` for a response header name (canonical), cached.

    Raises:
        ASGIProtocolError: the name is not a token.
        TypeError: the name is not bytes-like.
    """
    if type(name) is not bytes:
        name = bytes(name)
    text = name.decode("latin-1")
    if STR_TOKEN_RE.fullmatch(text) is None:
        # RFC 9110 §5.1 (a colon would read as a shorter name).
        raise ASGIProtocolError(f"invalid response header name {name!r}")
    key = _canonical(text)
    prefix = _SPECIAL_PREFIXES.get(key)
    if prefix is None:
        prefix = b"\r\n" + key.encode("latin-1") + b": "
    if len(_PREFIXES) < 1024:
        _PREFIXES[name] = prefix
    return prefix


def _status_head(status: int) -> bytes:
    """``b"HTTP/1.1 200 OK"`` for a final status (no CRLF)."""
    head = _STATUS_HEADS.get(status)
    if head is None:
        head = f"HTTP/1.1 {status} {responses.get(status, 'Unknown')}".encode("latin-1")
    return head


# States of a response.
# (Final, as the other module constants: the compiled build reads them as
# C constants, not from the module's dict at each use.)
_START: Final = 0
_HEAD_PENDING: Final = 1
_BODY: Final = 2
_TRAILERS: Final = 3
_DONE: Final = 4

# Bytes read from a file per write by http.response.pathsend.
_PATHSEND_CHUNK: Final = 256 * 1024


class _HTTPCycle(HTTPMessageDelegate):
    """One request: the driver's `HTTPMessageDelegate` and the application's receive/send."""

    __slots__ = (
        "_server",
        "_conn",
        "_loop",
        "_ws",
        "_chunks",
        "_buffered",
        "_body_done",
        "_final_sent",
        "_disconnected",
        "_waiter",
        "_drain",
        "_gate",
        "_state",
        "_status",
        "_parts",
        "_block",
        "_length",
        "_plain",
        "_dated",
        "_clean",
        "_method",
        "_no_body",
        "_task",
        "_ready",
        "_trailers",
    )

    def __init__(self, server: CycleHost, server_conn: object, conn: HTTPConnection) -> None:
        # The arguments of start_request after the delegate: the driver
        # makes the cycle by calling partial(_HTTPCycle, server), no Python
        # frame in between (see ASGIServerDelegate.__init__).
        self._server = server
        self._conn = conn
        loop = self._loop = loop_of(conn)
        # A WebSocket upgrade or a WebTransport session handed on.
        self._ws: Optional[Takeover] = None
        self._chunks: list[bytes] = []
        self._buffered = 0
        self._body_done = False
        self._final_sent = False
        self._disconnected = False
        self._waiter: Optional[asyncio.Future[None]] = None
        self._drain: Optional[asyncio.Future[None]] = None
        self._gate: Optional[asyncio.Future[None]] = None
        self._state = _START
        # The response's head as _start_response took it (see there).
        self._status = 0
        self._parts: list[bytes] = []
        self._block = b""
        self._length: Optional[bytes] = None
        self._plain = False
        self._dated = False
        self._clean = False
        self._method = "GET"
        self._no_body = False
        self._task: Optional[asyncio.Task[None]] = None
        # What send() returns when the message is written: a done future of
        # this loop (awaiting it costs no coroutine; gather() accepts it).
        ready = server.ready
        if ready is None or ready.get_loop() is not loop:
            ready = server.ready_future(loop)
        self._ready = ready
        # The trailer fields gathered, when the response announced trailers.
        self._trailers: Optional[list[tuple[str, str]]] = None

    # -- the driver's side -----------------------------------------------------------

    def headers_received(
        self, start_line: Union[RequestStartLine, ResponseStartLine], headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        # A RequestStartLine (not asserted: isinstance() costs a call).
        request_line: RequestStartLine = start_line  # type: ignore[assignment]
        server = self._server
        fields = headers._as_list
        if "Upgrade" in fields and _is_websocket(request_line, headers):
            self._ws = _WebSocketCycle(server, self._conn, request_line, headers)
            return None
        if request_line.method == "CONNECT":
            # An extended CONNECT (HTTP/2 and 3): its :protocol says what
            # the stream is to carry.
            protocol = getattr(self._conn, "protocol", None)
            if protocol == "websocket":
                # RFC 8441 and RFC 9220: a WebSocket over this stream.
                self._ws = _WebSocketCycle(server, self._conn, request_line, headers)
                return None
            if protocol == "webtransport":
                self._ws = WebTransportCycle(server, self._conn, request_line, headers)
                return None
            if protocol is not None:
                # Another :protocol (connect-udp, ...): what the client
                # sends goes to the stream's tunnel, which no ASGI scope
                # takes, and an http scope's 2xx would hold the stream
                # open for good. (The application never sees it.)
                self._answer(501, f"An extended CONNECT for {protocol!r} is not served.".encode())
                return None
        self._method = request_line.method
        conn = self._conn
        gate = None
        expect = fields.get("Expect")
        if expect is not None and request_line.version != "HTTP/1.0":
            if any("100-continue" in value.lower() for value in expect):
                # The driver sends "100 Continue" once this resolves: when
                # the application first asks for the body, not before. Set
                # before the application starts (it may start at once).
                gate = self._gate = self._loop.create_future()
        if (
            "Content-Length" not in fields
            and "Transfer-Encoding" not in fields
            and request_line.version.startswith("HTTP/1.")
        ):
            # RFC 9112 §6.3: no framing field, no body. Known now, so an
            # application that reads the body before answering gets the
            # empty one at once rather than waiting for finish().
            self._body_done = True
        scope = _http_scope(
            request_line,
            fields,
            conn,
            server.root_path,
            server.prefix_in_path,
            server.lifespan.state,
            server._proxy,
        )
        task = self._task = _start(self._loop, self._run_app(scope))
        if task is not None:
            # Running in a Task of its own (see _request_task), which
            # takes itself out of `tasks` as it ends. An app that ended in
            # an eager first step never hears of the client's going away.
            server.tasks.add(task)
            set_close = getattr(conn, "set_close_callback", None)
            if set_close is not None:
                set_close(self._on_disconnect)
        return gate

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        if self._ws is not None or self._state == _DONE:
            return None  # nobody will read it: an upgrade, or a response already sent
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake()
        if self._buffered >= _BODY_HIGH_WATER:
            drain = self._drain = self._loop.create_future()
            return drain
        return None

    def finish(self) -> None:
        if self._ws is not None:
            self._ws.request_finished()
            return
        self._body_done = True
        self._wake()

    def on_connection_close(self) -> None:
        if self._ws is not None:
            self._ws.on_connection_close()
            return
        self._on_disconnect()

    def _on_disconnect(self) -> None:
        self._disconnected = True
        self._wake()
        self._release()

    def _wake(self) -> None:
        waiter = self._waiter
        self._waiter = None
        _resolve(waiter)

    def _release(self) -> None:
        """Let the driver go on: the application no longer waits for the body."""
        gate = self._gate
        self._gate = None
        _resolve(gate)
        drain = self._drain
        self._drain = None
        _resolve(drain)

    # -- the application's side ------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``http.request`` piece, or ``http.disconnect``."""
        gate = self._gate
        self._gate = None
        _resolve(gate)
        while True:
            chunks = self._chunks
            if chunks:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._chunks = []
                self._buffered = 0
                drain = self._drain
                self._drain = None
                _resolve(drain)
                more = not self._body_done
                self._final_sent = not more
                return {"type": "http.request", "body": body, "more_body": more}
            if self._body_done and not self._final_sent:
                self._final_sent = True
                return {"type": "http.request", "body": b"", "more_body": False}
            if self._disconnected or self._state == _DONE:
                return dict(_DISCONNECT)
            waiter = self._waiter = self._loop.create_future()
            await waiter

    def send(self, message: Message) -> Awaitable[None]:
        """Turn one response message into writes on the connection.

        A plain method returning what to await: a done future when the
        message is written (the usual case, no coroutine made), else a wait
        for the transport.

        Raises:
            ASGIProtocolError: a message out of order or malformed.
            ClientDisconnected: the client has gone away.
        """
        # Messages are dicts (ASGI says so; another mapping is copied into
        # one): the compiled build then reads them with dict operations,
        # not a method call by name per field.
        msg: dict[str, Any] = message if type(message) is dict else dict(message)
        kind = msg.get("type")
        state = self._state
        if state == _START:
            if kind != "http.response.start":
                if kind == "http.response.early_hint":
                    return self._early_hint(msg)
                raise expected("'http.response.start'", message)
            self._start_response(msg)
            return self._ready
        if state == _DONE:
            raise ASGIProtocolError(
                f"Unexpected ASGI message {kind!r} sent, after response already completed"
            )
        if kind != "http.response.body":
            if state == _TRAILERS:
                return self._send_trailers(kind, message)
            if kind == "http.response.pathsend":
                return self._pathsend(message)
            raise expected("'http.response.body'", message)
        if state == _TRAILERS:
            raise expected("'http.response.trailers'", message)
        body = msg.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, (bytearray, memoryview)):
                raise ASGIProtocolError(
                    f"http.response.body 'body' must be bytes, not {type(body).__name__}"
                )
            body = bytes(body)
        more = msg.get("more_body", False)
        if self._disconnected and (body or more):
            # (An empty last piece only ends a response the client may
            # well have had in full: it finishes quietly.)
            raise ClientDisconnected("the client disconnected")
        conn = self._conn
        if self._no_body:
            body = b""  # RFC 9110 §15.3.5, §15.4.5: 204 and 304 have no content
        if state == _HEAD_PENDING:
            # Head and body in one write when the body is complete.
            written: Optional[asyncio.Future[None]] = None
            if self._plain:
                # The head rendered here from the application's bytes, which
                # _start_response checked: a connection that can (HTTP/1.1)
                # takes it as it is when its state needs nothing added; the
                # others decline (None: HTTPConnection.write_rendered_head).
                length = self._length
                framing = -1
                extra = b""
                if length is None:
                    if not more:
                        framing = len(body)
                        extra = b"\r\nContent-Length: " + str(framing).encode()
                elif length.isdigit() and len(length) <= 18:
                    framing = int(length)
                if framing >= 0:
                    if self._dated:
                        tail = b"\r\n\r\n"
                    else:
                        date = _date_cache
                        if time.time() >= date[0]:
                            _http_date()
                        tail = date[2]
                    head = b"".join((_status_head(self._status), self._block, extra, tail))
                    written = conn.write_rendered_head(head, framing, body)
            if written is None:
                body_length: Optional[int] = None
                if not more and not self._no_body and (body or self._method != "HEAD"):
                    body_length = len(body)
                start_line, headers = self._general_head(body_length)
                written = conn.write_headers(start_line, headers, body)
            self._state = _BODY
        elif body:
            written = conn.write(body)
        else:
            written = None
        if not more:
            if self._trailers is not None:
                # ASGI HTTP 2.4: http.response.trailers messages follow.
                self._state = _TRAILERS
                return self._ready
            self._end()
            return self._ready
        if written is None:
            return self._ready
        if written.done():
            if written.exception() is not None:
                raise ClientDisconnected("the client disconnected")
            return self._after_write()
        return self._wait_written(written)

    def _early_hint(self, message: dict[str, Any]) -> Awaitable[None]:
        """``http.response.early_hint`` (the ASGI extension): a 103 with its
        Link values, before ``http.response.start``; a connection that cannot
        carry it (an HTTP/1.0 client) drops it, as the extension allows."""
        links = message.get("links")
        headers = HTTPHeaders()
        try:
            if isinstance(links, (bytes, str)):
                raise TypeError
            for link in links:  # type: ignore[union-attr]
                if type(link) is not bytes:
                    raise TypeError
                headers.add("Link", link.decode("latin-1"))
        except (TypeError, ValueError, HTTPInputError) as exc:
            raise ASGIProtocolError(
                "http.response.early_hint 'links' must be an iterable of byte strings"
                + (f" ({exc})" if str(exc) else "")
            ) from None
        if headers and not self._disconnected:
            try:
                self._conn.write_informational(103, headers)
            except HTTPOutputError as exc:
                raise ASGIProtocolError(f"http.response.early_hint refused: {exc}") from None
        return self._ready

    def _end(self) -> None:
        """The response is complete: finish it on the connection."""
        self._state = _DONE
        conn = self._conn
        conn.finish()
        if self._task is not None:
            # receive() says http.disconnect from now on, whatever the
            # client does: the close callback set for the running app is
            # let go, and with it the cycle it made (this object, the
            # connection, the bound method), which only the cycle
            # collector would otherwise free, once per request.
            set_close = getattr(conn, "set_close_callback", None)
            if set_close is not None:
                set_close(None)
        if self._waiter is not None:
            self._wake()
        if self._gate is not None or self._drain is not None:
            self._release()

    def _send_trailers(self, kind: Any, message: Message) -> Awaitable[None]:
        """``http.response.trailers``: gathered until ``more_trailers`` is false."""
        if kind != "http.response.trailers":
            raise expected("'http.response.trailers'", message)
        trailers = self._trailers
        assert trailers is not None
        try:
            for name, value in message.get("headers", ()):
                trailers.append((bytes(name).decode("latin-1"), bytes(value).decode("latin-1")))
        except (TypeError, ValueError):
            raise ASGIProtocolError(
                "http.response.trailers 'headers' must be an iterable of [name, value] byte pairs"
            ) from None
        if message.get("more_trailers", False):
            return self._ready
        set_trailers = getattr(self._conn, "set_trailers", None)
        if set_trailers is not None and trailers:
            # RFC 9113 §8.1: a HEADERS frame that ends the stream. (HTTP/1.1
            # does not advertise the extension: trailers sent anyway are dropped.)
            set_trailers(HTTPHeaders._from_pairs(trailers))
        self._end()
        return self._ready

    async def _pathsend(self, message: Message) -> None:
        """``http.response.pathsend``: the file at ``path`` is the whole body."""
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ASGIProtocolError(
                f"http.response.pathsend 'path' must be an absolute path (str), got {path!r}"
            )
        state = self._state
        if state not in (_HEAD_PENDING, _BODY):
            raise expected("'http.response.body'", message)
        if self._disconnected:
            raise ClientDisconnected("the client disconnected")
        conn = self._conn
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if state == _HEAD_PENDING:
                start_line, headers = self._general_head(None if self._no_body else size)
                conn.write_headers(start_line, headers)
                self._state = _BODY
            sent = None
            if not self._no_body and self._method != "HEAD" and size:
                # Zero-copy where the connection can (plain HTTP/1.1); None
                # from it (TLS, a chunked body, another protocol) means copy.
                sent = conn.sendfile(file, size)
            if sent is not None:
                try:
                    await sent
                except StreamClosedError:
                    self._disconnected = True
                    raise ClientDisconnected("the client disconnected") from None
            elif not self._no_body and self._method != "HEAD":
                read = file.read
                # The body is the file as long as it was when its length was
                # announced: bytes appended meanwhile are not sent (beyond the
                # Content-Length they would reset the HTTP/2 stream, or break
                # the HTTP/1.1 connection's framing), as sendfile's path does.
                remaining = size
                while remaining > 0:
                    chunk = read(min(_PATHSEND_CHUNK, remaining))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if self._disconnected:
                        raise ClientDisconnected("the client disconnected")
                    written = conn.write(chunk)
                    if written.done():
                        if written.exception() is not None:
                            raise ClientDisconnected("the client disconnected")
                        # Let the connection flush (and meet back-pressure).
                        await asyncio.sleep(0)
                    else:
                        await self._wait_written(written)
        if self._trailers is not None:
            self._state = _TRAILERS
        else:
            self._end()

    async def _after_write(self) -> None:
        # The connection flushes on the next loop iteration and only then
        # learns whether the transport is full: let it, so that a producer
        # that never waits still meets the back-pressure.
        await asyncio.sleep(0)
        if self._disconnected:
            raise ClientDisconnected("the client disconnected")

    async def _wait_written(self, written: asyncio.Future[None]) -> None:
        try:
            await written
        except OSError:
            raise ClientDisconnected("the client disconnected") from None

    def _start_response(self, message: dict[str, Any]) -> None:
        status: Any = message.get("status")
        if type(status) is not int:
            try:
                status = int(status)
            except (TypeError, ValueError):
                raise ASGIProtocolError(
                    f"http.response.start needs an integer 'status', got {status!r}"
                ) from None
        if status not in _STATUS_HEADS and not 200 <= status <= 999:
            # 1xx are not final responses (and 101 would switch protocols
            # under the application's feet).
            raise ASGIProtocolError(f"invalid response status {status}")
        # The fields kept as the bytes of their lines, each as two parts
        # (``b"\r\nName: "``, then ``b"value"``: no bytes made per field):
        # names through a cache of their line's start (refused here unless
        # tokens), values as given. One check over the joined values tells
        # whether any holds a control octet; if none does and no field
        # asks for more than Content-Length framing, send() writes the head
        # from these bytes (see _RequestConnection.write_rendered_head).
        # Otherwise, and on HTTP/2, the fields go to write_headers as
        # HTTPHeaders (_general_head), which checks a head marked unchecked
        # and raises HTTPOutputError naming the bad field.
        prefixes = _PREFIXES
        parts: list[bytes] = []
        values: list[bytes] = []
        length: Optional[bytes] = None
        plain = True
        dated = False
        try:
            items = message.get("headers", ())
            if not isinstance(items, list):
                items = list(items)  # (a list is read by index when compiled)
            for item in items:
                if isinstance(item, tuple) and len(item) == 2:
                    # The usual pair: read by index, not unpacked as any iterable.
                    name = item[0]
                    value = item[1]
                else:
                    name, value = item
                prefix = prefixes.get(name) if type(name) is bytes else None
                if prefix is None:
                    prefix = _response_prefix(name)
                if type(value) is not bytes:
                    value = bytes(value)
                if prefix is _CONTENT_LENGTH:
                    if length is not None:
                        plain = False
                    length = value
                elif prefix is _DATE:
                    dated = True
                elif prefix is _TRANSFER_ENCODING or prefix is _CONNECTION:
                    plain = False
                parts.append(prefix)
                parts.append(value)
                values.append(value)
        except (TypeError, ValueError):
            raise ASGIProtocolError(
                "http.response.start 'headers' must be an iterable of [name, value] byte pairs"
            ) from None
        # (The values apart: the prefixes' CRLFs are ours.)
        joined = b"".join(values)
        clean = joined.translate(_SAME_IF_VALUES) is joined
        block = b"".join(parts)
        self._status = status
        self._parts = parts
        self._block = block
        self._length = length
        self._dated = dated
        self._clean = clean
        self._no_body = status == 204 or status == 304
        self._plain = plain and clean and not self._no_body
        if message.get("trailers"):
            self._trailers = []
        self._state = _HEAD_PENDING

    def _general_head(self, length: Optional[int]) -> tuple[ResponseStartLine, HTTPHeaders]:
        """The response's head for `HTTPConnection.write_headers`; with a
        Content-Length of ``length`` (unless None) if the application's head
        has no framing field."""
        status = self._status
        start_line = _START_LINES.get(status)
        if start_line is None:
            start_line = ResponseStartLine("HTTP/1.1", status, responses.get(status, "Unknown"))
        fields: dict[str, list[str]] = {}
        parts = self._parts
        for i in range(0, len(parts), 2):
            # (The prefix b"\r\nName: ": the name is between.)
            key = parts[i][2:-2].decode("latin-1")
            text = parts[i + 1].decode("latin-1")
            if key in fields:
                fields[key].append(text)
            else:
                fields[key] = [text]
        if not self._dated:
            fields["Date"] = [_http_date()]
        if length is not None and "Content-Length" not in fields:
            if "Transfer-Encoding" not in fields:
                fields["Content-Length"] = [str(length)]
        headers = _new_headers(_ResponseHeaders)
        headers._as_list = fields
        headers._unchecked = not self._clean
        return start_line, headers

    async def _run_app(self, scope: Scope) -> None:
        server = self._server
        try:
            try:
                app: Any = server.app
                result = await app(scope, self.receive, self.send)
            except asyncio.CancelledError:
                self._abandon()
                raise
            except Exception as exc:
                if not (self._disconnected and isinstance(exc, ClientDisconnected)):
                    app_log.error("Exception in ASGI application", exc_info=True)
                # (else the client left and a send said so: nothing to report)
                self._fail()
                return
            if result is not None:
                app_log.error("ASGI callable returned %r instead of None", type(result).__name__)
            state = self._state
            if state == _DONE:
                return
            if state == _START:
                app_log.error("ASGI callable returned without starting response")
                self._fail()
            elif state == _HEAD_PENDING:
                # Nothing is written before the first body message: a 500 still fits.
                app_log.error("ASGI callable returned without sending the response body")
                self._fail()
            else:
                app_log.error("ASGI callable returned without completing response")
                self._abandon()
        finally:
            # None when the coroutine ran to its end in its first step
            # (see headers_received): it was never put in `tasks` then.
            task = self._task
            if task is not None:
                self._task = None
                server.tasks.discard(task)

    def _fail(self) -> None:
        """An application error: 500 if nothing was sent yet, else close."""
        if self._state not in (_START, _HEAD_PENDING) or self._disconnected:
            self._abandon()
            return
        self._answer(500, b"Internal Server Error")

    def _answer(self, status: int, body: bytes) -> None:
        """A whole plain-text response from the server, not the application;
        the connection closes after it (on HTTP/1.1: HTTP/2 and 3 drop the
        Connection field, and end the stream)."""
        self._state = _DONE
        headers = HTTPHeaders(
            {
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Length": str(len(body)),
                "Connection": "close",
                "Date": _http_date(),
            }
        )
        conn = self._conn
        try:
            line = _START_LINES.get(status)
            if line is None:
                line = ResponseStartLine("HTTP/1.1", status, responses.get(status, "Unknown"))
            conn.write_headers(line, headers, body)
            conn.finish()
        except Exception:
            self._abandon()
        self._release()

    def _abandon(self) -> None:
        """A response that cannot be completed: close the connection."""
        if self._state != _DONE:
            self._state = _DONE
            close = getattr(self._conn, "close", None)
            if close is not None:
                close()
        self._release()
