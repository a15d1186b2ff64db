"""Serving an ASGI application's ``websocket`` scope: `_WebSocketCycle`.

The upgrade request arrives through the HTTP delegate seam like any other;
``websocket.accept`` answers it with 101 and takes the connection over with
``detach()``, as `squall.websocket.WebSocketHandler` does, and from there
`WebSocketProtocol13` (over the sans-I/O `squall._ws` core) moves frames,
with this object as its peer. ``websocket.close`` before accepting is a 403;
the ``websocket.http.response`` extension sends any other response instead.

Over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) the request is an extended
CONNECT with ``:protocol websocket`` and no Upgrade, Connection or
Sec-WebSocket-Key; ``websocket.accept`` answers it with a 200, and
``detach()`` gives the stream's tunnel (``httpserver/_tunnel``), the
IOStream the Application's WebSocketHandler gets there too: the same
protocol object, limits and close codes run over it. Its back-pressure is
the tunnel's: over HTTP/2 the stream's flow-control window (given back as
the WebSocket reads) and 64 KiB queued behind it; over HTTP/3 the 64 KiB
of the stream's output the client has not acknowledged (QUIC acknowledges
what arrives, whether the client's application reads it or not).

Back-pressure is the native WebSocket's: ``websocket.send`` waits on the
stream's write future, pending while the transport is over its high-water
mark, so a client that does not read holds the application, and what is
buffered for it stays at that mark plus about one message; the connection's
``write_timeout`` ends a client that reads nothing at all. Incoming
messages are held up to `INBOX_HIGH_WATER`, then frames are not read.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the ASGI server

import asyncio
from typing import TYPE_CHECKING, Optional

from squall import _ws
from squall.asgi._cycle import (
    CLOSED,
    CONNECTING,
    INBOX_HIGH_WATER,
    LAST_STATE,
    OPEN,
    SessionCycle,
    header_pairs,
)
from squall.asgi._scope import _websocket_scope
from squall.asgi._types import ASGIProtocolError, ClientDisconnected, Message, expected, resolve
from squall.httputil import HTTPHeaders, RequestStartLine, ResponseStartLine, responses
from squall.httputil._headers import fields_of
from squall.websocket._protocol import MessageType, WebSocketProtocol13, _Peer

if TYPE_CHECKING:
    from squall.asgi._types import Scope  # the hook's annotation only

# After CONNECTING, instead of OPEN: the application answers with a response
# of its own (the websocket.http.response extension), its head given, then
# its body begun.
_DENYING = LAST_STATE + 1
_DENY_BODY = LAST_STATE + 2


def _check_tunnel(headers: HTTPHeaders) -> None:
    """An extended CONNECT's handshake (RFC 8441 §5): of the upgrade's
    fields only Sec-WebSocket-Version is left, and it is still 13.

    Raises:
        HandshakeError: another version (426, as over HTTP/1.1).
    """
    if (headers.get("Sec-WebSocket-Version") or "").strip() != _ws.VERSION:
        raise _ws.HandshakeError(
            "Unsupported WebSocket version", 426, [("Sec-WebSocket-Version", _ws.VERSION)]
        )


# The fields of HTTP/1.1's upgrade, which a 200 answering an extended
# CONNECT does not carry (HTTP/2 and 3 forbid Connection: RFC 9113 §8.2.2).
_UPGRADE_FIELDS = frozenset({"upgrade", "connection", "sec-websocket-accept"})


def _frameable_reason(reason: Optional[str]) -> Optional[str]:
    """An application's close reason cut to the 123 bytes of UTF-8 a close
    frame holds (RFC 6455 section 5.5), at a character boundary: the client
    still gets the code, and as much of the reason as fits."""
    if reason is None or len(reason) * 4 <= 123:
        return reason
    data = reason.encode("utf-8")
    if len(data) <= 123:
        return reason
    return data[:123].decode("utf-8", "ignore")


class _WebSocketCycle(SessionCycle, _Peer):
    """One WebSocket: the application's receive/send, and the protocol's peer."""

    _ACCEPTED = "WebSocket"
    _UNANSWERED = "ASGI callable returned without sending handshake"
    _CONNECT = "websocket.connect"

    _headers: HTTPHeaders
    _proto: Optional[WebSocketProtocol13]
    _close_code: Optional[int]
    _deny_head: Optional[tuple[int, HTTPHeaders]]
    _key: str

    def _take(self, start_line: RequestStartLine, headers: HTTPHeaders) -> Optional[Scope]:
        self._headers = headers
        self._proto = None
        self._close_code = None
        self._deny_head = None
        self._key = ""
        try:
            if self._tunnel:
                _check_tunnel(headers)
            else:
                self._key = _ws.check_request(start_line.method, headers)
        except _ws.HandshakeError as exc:
            # Not a valid upgrade.
            self._refuse(exc.status_hint, str(exc), exc.headers)
            return None
        server = self._server
        scope = _websocket_scope(server.http_scope(start_line, fields_of(headers), self._conn))
        scope["subprotocols"] = _ws.parse_subprotocols(headers.get("Sec-WebSocket-Protocol"))
        return scope

    # -- the HTTP driver's side ------------------------------------------------------

    def on_connection_close(self) -> None:
        """The connection closed before the handshake completed."""
        if self._state in (CONNECTING, _DENYING, _DENY_BODY):
            self._disconnected(1006, "")
        self.request_finished()

    # -- the protocol's peer ---------------------------------------------------------

    def on_message(self, message: MessageType) -> Optional[asyncio.Future[None]]:
        if isinstance(message, str):
            self._inbox.append({"type": "websocket.receive", "text": message})
        else:
            self._inbox.append({"type": "websocket.receive", "bytes": bytes(message)})
        self._wake()
        if len(self._inbox) >= INBOX_HIGH_WATER:
            space = self._space = self._loop.create_future()
            return space
        return None

    def on_ws_connection_close(
        self, close_code: Optional[int] = None, close_reason: Optional[str] = None
    ) -> None:
        proto = self._proto
        reason = close_reason or ""
        if proto is None or not proto._close_seen:
            code = 1006  # RFC 6455 §7.1.5: closed without a close frame
        elif proto.failure is not None:
            # The server failed the connection (§7.1.7): the app hears the
            # code and reason of the close frame sent (1002, 1007, 1009), as
            # uvicorn tells it, where the peer's close_code is None.
            code, reason = proto.failure
        else:
            code = close_code if close_code is not None else 1005
        self._disconnected(code, reason)

    def _disconnected(self, code: int, reason: str) -> None:
        if self._close_code is not None:
            return
        self._close_code = code
        self._state = CLOSED
        self._inbox.append({"type": "websocket.disconnect", "code": code, "reason": reason})
        self._wake()

    # -- the application's side ------------------------------------------------------

    async def receive(self) -> Message:
        """The next ``websocket.connect``, ``websocket.receive`` or ``websocket.disconnect``."""
        while True:
            inbox = self._inbox
            if inbox:
                message = inbox.popleft()
                space = self._space
                if space is not None and len(inbox) < INBOX_HIGH_WATER // 2:
                    self._space = None
                    resolve(space)
                return message
            if self._close_code is not None:
                return {"type": "websocket.disconnect", "code": self._close_code, "reason": ""}
            waiter = self._waiter = self._loop.create_future()
            await waiter

    async def send(self, message: Message) -> None:
        """Carry out one message from the application.

        Raises:
            ASGIProtocolError: a message out of order or malformed.
            ClientDisconnected: sending on a closed WebSocket.
        """
        kind = message.get("type")
        state = self._state
        if state == OPEN:
            if kind == "websocket.send":
                await self._send_message(message)
            elif kind == "websocket.close":
                self._state = CLOSED
                proto = self._proto
                assert proto is not None
                try:
                    reason = _frameable_reason(message.get("reason") or None)
                    proto.close(int(message.get("code") or 1000), reason)
                except ValueError:
                    # A code past 16 bits, a reason that is not text: the
                    # close still goes, without them (an empty close frame).
                    proto.close()
            else:
                raise expected("'websocket.send' or 'websocket.close'", message)
        elif state == CONNECTING:
            if kind == "websocket.accept":
                await self._accept(message)
            elif kind == "websocket.close":
                self._state = CLOSED
                self._respond(403, HTTPHeaders(), b"")
                # The application may go on receiving (Starlette's
                # WebSocketEndpoint does, to call on_disconnect): it hears
                # the WebSocket never opened, as uvicorn tells it.
                self._disconnected(1006, "")
            elif kind == "websocket.http.response.start":
                status = message.get("status")
                if not isinstance(status, int) or not 200 <= status <= 999:
                    raise ASGIProtocolError(f"invalid denial response status {status!r}")
                pairs = header_pairs(message, "websocket.http.response.start")
                self._deny_head = (status, HTTPHeaders._from_pairs(pairs))
                self._state = _DENYING
            else:
                raise expected(
                    "'websocket.accept', 'websocket.close' or 'websocket.http.response.start'",
                    message,
                )
        elif state in (_DENYING, _DENY_BODY):
            if kind != "websocket.http.response.body":
                raise expected("'websocket.http.response.body'", message)
            self._deny_body(message)
        elif kind == "websocket.send":
            raise ClientDisconnected("the WebSocket is closed")
        elif kind != "websocket.close":
            raise ASGIProtocolError(
                f"Unexpected ASGI message {kind!r} sent, after the WebSocket closed"
            )

    async def _send_message(self, message: Message) -> None:
        data = message.get("bytes")
        text = message.get("text")
        if (data is None) == (text is None):
            raise ASGIProtocolError("websocket.send needs exactly one of 'bytes' and 'text'")
        proto = self._proto
        if proto is None or proto.is_closing():
            raise ClientDisconnected("the WebSocket is closed")
        try:
            if text is not None:
                written = proto.write_message(str(text))
            else:
                written = proto.write_message(bytes(data or b""), binary=True)
            if not written.done():
                await written
            elif written.exception() is not None:
                written.result()
        except Exception as exc:
            if isinstance(exc, (OSError, _ws.LocalProtocolError)) or "Closed" in type(exc).__name__:
                raise ClientDisconnected("the WebSocket is closed") from None
            raise

    async def _accept(self, message: Message) -> None:
        await self._request_read()
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and not isinstance(subprotocol, str):
            raise ASGIProtocolError("websocket.accept 'subprotocol' must be a str or None")
        pairs = header_pairs(message, "websocket.accept")
        server = self._server
        extension_header: Optional[str] = None
        extension: Optional[_ws.PerMessageDeflate] = None
        offer = self._headers.get("Sec-WebSocket-Extensions")
        if offer and server.ws_per_message_deflate:
            accepted = _ws.server_accept(offer, {})
            if accepted is not None:
                extension_header, extension = accepted
        if self._tunnel:
            # RFC 8441 §5: a 2xx, with the subprotocol and extensions chosen.
            fields = []
            if subprotocol:
                fields.append(("Sec-WebSocket-Protocol", subprotocol))
            if extension_header:
                fields.append(("Sec-WebSocket-Extensions", extension_header))
            reserved = {*_UPGRADE_FIELDS, *(name.lower() for name, _ in fields)}
            line = ResponseStartLine(self._version, 200, "OK")
        else:
            fields = _ws.server_headers(self._key, subprotocol, extension_header)
            reserved = {name.lower() for name, _ in fields}
            line = ResponseStartLine(self._version, 101, "Switching Protocols")
        fields += [(n, v) for n, v in pairs if n.lower() not in reserved]
        conn = self._conn
        conn.write_headers(line, HTTPHeaders._from_pairs(fields))
        conn.finish()
        stream = conn.detach()
        self._state = OPEN
        proto = self._proto = WebSocketProtocol13(
            self,
            client=False,
            ping_interval=server.ws_ping_interval,
            max_message_size=server.ws_max_message_size,
        )
        proto.selected_subprotocol = subprotocol
        proto.start(stream, _ws.WSConnection(False, extension, server.ws_max_message_size))
        proto.start_reading()

    def _deny_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, (bytes, bytearray)):
            raise ASGIProtocolError("websocket.http.response.body 'body' must be bytes")
        more = bool(message.get("more_body", False))
        conn = self._conn
        if self._state == _DENYING:
            assert self._deny_head is not None
            status, headers = self._deny_head
            if not self._tunnel:
                headers["Connection"] = "close"
            if not more and "Content-Length" not in headers:
                headers["Content-Length"] = str(len(body))
            line = ResponseStartLine(self._version, status, responses.get(status, "Unknown"))
            conn.write_headers(line, headers, bytes(body))
            self._state = _DENY_BODY
        elif body:
            conn.write(bytes(body))
        if not more:
            self._state = CLOSED
            conn.finish()
            # The WebSocket never opened (1006, as after a refusal).
            self._disconnected(1006, "")

    def _abort(self) -> None:
        proto = self._proto
        if proto is not None:
            proto._abort()
            return
        self._drop_connection()

    # -- the application's end -------------------------------------------------------

    def _app_cancelled(self) -> None:
        self._abort()

    def _app_done(self, failed: bool) -> None:
        state = self._state
        if state == CONNECTING:
            self._state = CLOSED
            self._respond(500, HTTPHeaders(), b"")
        elif state == OPEN:
            self._state = CLOSED
            proto = self._proto
            assert proto is not None
            proto.close(1011 if failed else 1000)
        elif state in (_DENYING, _DENY_BODY):
            self._state = CLOSED
            self._abort()
