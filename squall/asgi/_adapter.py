"""A Squall `Application` as an ASGI application: `ASGIAdapter`.

The adapter is one more driver in front of the delegate seam: per ASGI
connection it calls ``app.start_request`` with `_ASGIConnection` as the
request's `HTTPConnection`, feeds ``headers_received`` / ``data_received`` /
``finish`` from ``receive()``, and turns the connection's ``write_headers``
/ ``write`` / ``finish`` into ``send()`` messages, which one coroutine (the
ASGI call itself) sends in order. A ``write`` Future resolves once its
message is sent, so a handler's ``await self.flush()`` waits on the ASGI
server's own flow control, and a ``data_received`` that returns an awaitable
(``@stream_request_body``) holds back ``receive()``.

A `WebSocketHandler` works over the ``websocket`` scope: its 101 response
becomes ``websocket.accept`` and its ``detach()`` returns `_ASGIChannel`,
which carries its messages as ASGI messages, unframed (see _adapter_ws).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Optional, Union

from squall.asgi._types import Message, Receive, Scope, Send, address_tuple
from squall.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from squall.httputil._exchange import DONE, GONE, IDLE, Exchange, OneShot
from squall.iostream import StreamClosedError
from squall.log import app_log

__all__ = ["ASGIAdapter"]

_Hook = Callable[[], Union[None, Awaitable[None]]]

# Response headers the ASGI server writes itself for a WebSocket accept.
_WS_OWN_HEADERS = frozenset(
    (b"upgrade", b"connection", b"sec-websocket-accept", b"sec-websocket-protocol",
     b"sec-websocket-extensions", b"date")
)  # fmt: skip


class _ASGIContext:
    """``request.connection.context``: what `HTTPServerRequest` reads of the client."""

    __slots__ = ("address", "remote_ip", "protocol")

    def __init__(self, scope: Scope) -> None:
        self.address = address_tuple(scope.get("client"))
        self.remote_ip = self.address[0] if self.address is not None else "0.0.0.0"
        scheme = scope.get("scheme") or "http"
        self.protocol = {"ws": "http", "wss": "https"}.get(scheme, scheme)

    def __str__(self) -> str:
        return self.remote_ip


class ASGIAdapter:
    """Runs a Squall `~squall.web.Application` (any `~squall.httputil.HTTPServerConnectionDelegate`) under ASGI.

    ``uvicorn module:asgi_app`` with ``asgi_app = ASGIAdapter(Application(...))``.

    Args:
        app: the Application (or another connection delegate).
        on_startup: callables (plain or coroutine functions) run on
            ``lifespan.startup``.
        on_shutdown: callables run on ``lifespan.shutdown``.
    """

    def __init__(
        self,
        app: HTTPServerConnectionDelegate,
        on_startup: Sequence[_Hook] = (),
        on_shutdown: Sequence[_Hook] = (),
    ) -> None:
        self.app = app
        self.on_startup = list(on_startup)
        self.on_shutdown = list(on_shutdown)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            await _ASGIConnection(self.app, scope, receive, send).run()
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise ValueError(f"ASGIAdapter serves http, websocket and lifespan, not {kind!r}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            stage = message["type"].rpartition(".")[2]  # startup or shutdown
            hooks = self.on_startup if stage == "startup" else self.on_shutdown
            try:
                for hook in hooks:
                    result = hook()
                    if result is not None:
                        await result
            except Exception as exc:
                app_log.error("lifespan %s hook failed", stage, exc_info=True)
                await send({"type": f"lifespan.{stage}.failed", "message": str(exc)})
                return
            await send({"type": f"lifespan.{stage}.complete"})
            if stage == "shutdown":
                return


class _ASGIConnection(Exchange):
    """``request.connection`` for one ASGI request (or WebSocket).

    The exchange contract's phase, Content-Length accounting and close
    callback are `.Exchange`'s; the emit hooks queue ASGI messages.
    """

    def __init__(
        self, app: HTTPServerConnectionDelegate, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # A HEAD request's response declares the Content-Length of the body
        # it does not carry (the handler writes none; the ASGI server sends
        # none): finish() must not miss the bytes.
        Exchange.__init__(self, _ASGIContext(scope), scope.get("method") == "HEAD")
        self._app = app
        self._scope = scope
        self._receive = receive
        self._send = send
        self._websocket = scope["type"] == "websocket"
        self._out: deque[tuple[Message, Optional[asyncio.Future[None]]]] = deque()
        self._wakeup = OneShot()
        self._delegate: Optional[HTTPMessageDelegate] = None
        self._read_done = False
        self._max_body: Optional[int] = None
        self._stream: Any = None
        self._denied = False
        # The WebSocket's channel (_stream) closed (see channel_closed).
        self._channel_closed = False

    @property
    def gone(self) -> bool:
        """The client is gone (or the response was abandoned): nothing more is sent."""
        return self._phase == GONE

    # -- the emit hooks (Exchange) -----------------------------------------------------

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        """Queue ``http.response.start`` (and the first body piece)."""
        # Date is the ASGI server's to write (uvicorn, Hypercorn, Granian all do).
        pairs = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in headers.get_all()
            if name != "Date"
        ]
        if self._websocket:
            return self._websocket_head(start_line.code, pairs, chunk)
        if not self._read_done and "Connection" not in headers:
            # Answered before the request body ended: as Squall's own server
            # does, close after the response rather than read the rest.
            pairs.append((b"connection", b"close"))
        self.queue({"type": "http.response.start", "status": start_line.code, "headers": pairs})
        return self.queue({"type": "http.response.body", "body": chunk, "more_body": True}, True)

    def _websocket_head(
        self, code: int, pairs: list[tuple[bytes, bytes]], chunk: Optional[bytes]
    ) -> asyncio.Future[None]:
        if code == 101:
            protocol = None
            for name, value in pairs:
                if name == b"sec-websocket-protocol":
                    protocol = value.decode("latin-1")
            extra = [(n, v) for n, v in pairs if n not in _WS_OWN_HEADERS]
            return self.queue(
                {"type": "websocket.accept", "subprotocol": protocol, "headers": extra}, True
            )
        self._denied = True
        if "websocket.http.response" in (self._scope.get("extensions") or {}):
            self.queue({"type": "websocket.http.response.start", "status": code, "headers": pairs})
            return self.queue(
                {"type": "websocket.http.response.body", "body": chunk or b"", "more_body": True},
                True,
            )
        # Without the extension the only refusal is a close (a 403).
        return self.queue({"type": "websocket.close", "code": 1000}, True)

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        """Queue a piece of the response body."""
        if self._websocket:
            if self._denied and "websocket.http.response" in (self._scope.get("extensions") or {}):
                kind = "websocket.http.response.body"
            else:
                return self.queue(None, True)  # nowhere to put it
        else:
            kind = "http.response.body"
        return self.queue({"type": kind, "body": bytes(chunk), "more_body": True}, True)

    def _emit_raw(self, chunk: bytes) -> asyncio.Future[None]:
        raise HTTPOutputError("ASGI responses need write_headers before write")

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        # ASGI carries one kind of interim head, 103, by an extension the
        # server advertises in the scope: http.response.early_hint, whose
        # message holds the Link values only.
        if (
            code != 103
            or self._websocket
            or "http.response.early_hint" not in (self._scope.get("extensions") or {})
        ):
            return False
        try:
            links = [value.encode("latin-1") for value in headers.get_list("Link")]
        except UnicodeEncodeError:
            raise HTTPOutputError("Link values must be latin-1") from None
        if links:
            self.queue({"type": "http.response.early_hint", "links": links})
        return True

    def _emit_end(self, phase: int) -> None:
        """Queue the end of the response."""
        if phase == GONE:
            return
        if self._websocket:
            if self._denied and "websocket.http.response" in (self._scope.get("extensions") or {}):
                self.queue({"type": "websocket.http.response.body", "more_body": False})
            return
        if phase == IDLE:
            raise HTTPOutputError("finish() before write_headers()")
        self.queue({"type": "http.response.body", "body": b"", "more_body": False})

    def _refuse(self) -> None:
        # A broken Content-Length: the response is abandoned.
        self._disconnect()

    # -- HTTPConnection ----------------------------------------------------------------

    def set_body_timeout(self, timeout: float) -> None:
        """Accepted for compatibility; the ASGI server owns the timeouts."""

    def set_max_body_size(self, max_body_size: int) -> None:
        """Limit the size of this request's body (bytes)."""
        self._max_body = max_body_size

    def detach(self) -> Any:
        """After a 101: the WebSocket's channel of ASGI messages (see `_ASGIChannel`)."""
        if not self._websocket:
            raise HTTPOutputError("an ASGI HTTP connection cannot be detached")
        from squall.asgi._adapter_ws import _ASGIChannel

        self._stream = _ASGIChannel(self)
        self.wake_pump()
        return self._stream

    def close(self) -> None:
        """Abandon the response: the ASGI call returns and the server closes."""
        self._disconnect()

    # -- the outbound queue --------------------------------------------------------------

    def queue(self, message: Optional[Message], future: bool = False) -> asyncio.Future[None]:
        """Queue ``message`` for the ASGI server; with ``future``, the Future
        resolved once the server has taken it (None: a done Future, nothing queued)."""
        result: Optional[asyncio.Future[None]] = None
        if future:
            result = asyncio.get_running_loop().create_future()
        if message is None:
            assert result is not None
            result.set_result(None)
            return result
        self._out.append((message, result))
        self.wake_pump()
        return result  # type: ignore[return-value]

    def wake_pump(self) -> None:
        """Wake the coroutine that sends the queue (something was queued, or it should end)."""
        self._wakeup.wake()

    def channel_closed(self) -> None:
        """The WebSocket's channel closed: the call ends once the queue is
        out (or the client is gone)."""
        self._channel_closed = True
        self._wakeup.wake()

    def queued(self) -> int:
        """Messages queued and not yet taken by the ASGI server."""
        return len(self._out)

    def queued_bytes(self) -> int:
        """Bytes (or characters) of the messages' payloads queued and not yet taken."""
        size = 0
        for message, _ in self._out:
            size += len(message.get("text") or message.get("bytes") or b"")
        return size

    def _done(self) -> bool:
        stream = self._stream
        if stream is not None:
            # A WebSocket ends when the handler's stream has closed (after
            # the close frame it was fed, when the client left first).
            return self._channel_closed and (self.gone or not self._out)
        phase = self._phase
        return phase == GONE or (phase == DONE and not self._out)

    async def _pump(self) -> None:
        """Send queued messages in order until the exchange is over."""
        out = self._out
        send = self._send
        while not self._done():
            if not out:
                await self._wakeup.wait()
                continue
            message, future = out.popleft()
            futures = [future]
            if message.get("more_body") and out:
                # Body pieces queued together go out as one message.
                kind = message["type"]
                parts = [message.get("body", b"")]
                more = True
                while more and out and out[0][0]["type"] == kind:
                    nxt, fut = out.popleft()
                    parts.append(nxt.get("body", b""))
                    futures.append(fut)
                    more = bool(nxt.get("more_body"))
                message = {"type": kind, "body": b"".join(parts), "more_body": more}
            try:
                await send(message)
            except OSError:
                self._disconnect()
                for fut in futures:
                    if fut is not None and not fut.done():
                        fut.set_exception(StreamClosedError())
                        fut.exception()
                return
            for fut in futures:
                if fut is not None and not fut.done():
                    fut.set_result(None)

    def _disconnect(self, code: int = 1006, reason: str = "") -> None:
        if self._phase == GONE:
            return
        self.wake_pump()
        for _message, fut in self._out:
            if fut is not None and not fut.done():
                fut.set_exception(StreamClosedError())
                fut.exception()
        self._out.clear()
        delegate = self._delegate
        if delegate is not None and not self._read_done:
            self._read_done = True
        else:
            delegate = None
        self._report_gone(delegate)
        stream = self._stream
        if stream is not None:
            stream.peer_gone(code, reason)

    # -- the exchange ------------------------------------------------------------------

    def _start_line(self) -> RequestStartLine:
        scope = self._scope
        raw = scope.get("raw_path")
        if raw:
            target = bytes(raw).decode("latin-1")
        else:
            import urllib.parse

            target = urllib.parse.quote(scope.get("path") or "/", safe="/%!$&'()*+,;=:@~")
        query = scope.get("query_string") or b""
        if query:
            target += "?" + bytes(query).decode("latin-1")
        version = str(scope.get("http_version") or "1.1")
        method = "GET" if self._websocket else str(scope.get("method") or "GET")
        return RequestStartLine(
            method, target, "HTTP/" + (version + ".0" if "." not in version else version)
        )

    def _headers(self) -> HTTPHeaders:
        pairs = [
            (bytes(name).decode("latin-1"), bytes(value).decode("latin-1"))
            for name, value in self._scope.get("headers") or ()
        ]
        headers = HTTPHeaders._from_pairs(pairs)
        if self._websocket:
            # The ASGI server negotiates compression itself; the handler's
            # frames reach it uncompressed.
            headers.pop("Sec-Websocket-Extensions", None)
            headers.setdefault("Upgrade", "websocket")
            headers.setdefault("Connection", "Upgrade")
            headers.setdefault("Sec-Websocket-Version", "13")
            if "Sec-Websocket-Protocol" not in headers:
                # Some ASGI servers (uvicorn's wsproto) leave the handshake's
                # fields out of the scope's headers and give the offered
                # subprotocols only here: select_subprotocol still sees them.
                offered = self._scope.get("subprotocols")
                if offered:
                    headers["Sec-Websocket-Protocol"] = ", ".join(offered)
            if "Sec-Websocket-Key" not in headers:
                from squall import _ws

                headers["Sec-Websocket-Key"] = _ws.new_key()
        return headers

    async def run(self) -> None:
        """The ASGI call: drive the delegate and send what it writes."""
        if self._websocket:
            first = await self._receive()
            if first.get("type") != "websocket.connect":
                return
        delegate = self._delegate = self._app.start_request(self, self)
        reader = asyncio.ensure_future(self._read(delegate))
        try:
            await self._pump()
        finally:
            if not reader.done():
                reader.cancel()
            stream = self._stream
            if stream is not None and not stream.closed():
                stream.close()
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            raise reader.exception()  # type: ignore[misc]

    async def _read(self, delegate: HTTPMessageDelegate) -> None:
        result = delegate.headers_received(self._start_line(), self._headers())
        if result is not None:
            await result
        receive = self._receive
        if self._websocket:
            self._read_done = True
            delegate.finish()
            while not self.gone:
                message = await receive()
                kind = message.get("type")
                if kind == "websocket.disconnect":
                    self._disconnect(int(message.get("code") or 1005), message.get("reason") or "")
                    return
                stream = self._stream
                if kind == "websocket.receive" and stream is not None:
                    waiting = stream.on_message(message)
                    if waiting is not None:
                        await waiting
            return
        size = 0
        while True:
            message = await receive()
            kind = message.get("type")
            if kind == "http.disconnect":
                self._disconnect()
                return
            if kind != "http.request":
                continue
            body = message.get("body") or b""
            if body:
                size += len(body)
                if self._max_body is not None and size > self._max_body:
                    app_log.info("request body over max_body_size from %s", self.context)
                    self._disconnect()
                    return
                result = delegate.data_received(bytes(body))
                if result is not None:
                    await result
            if not message.get("more_body", False):
                break
        self._read_done = True
        delegate.finish()
        while not self.gone:
            message = await receive()
            if message.get("type") == "http.disconnect":
                self._disconnect()
                return
