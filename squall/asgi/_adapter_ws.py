"""`_ASGIWebSocketStream`: a `WebSocketHandler`'s detached stream, carried over ASGI messages.

The handler's protocol keeps speaking RFC 6455 frames to what it takes for
a socket. This stream reads those frames with a client-side
`squall._ws.WSConnection` and sends each message as ``websocket.send`` (a
close frame as ``websocket.close``); ``websocket.receive`` messages from the
ASGI server come back as masked client frames, so the handler's own parser,
limits and callbacks run unchanged. The handler's pings are answered here:
the ASGI server keeps the real connection alive itself.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional, Union

from squall import _ws
from squall.ioloop import IOLoop
from squall.iostream import BaseIOStream

if TYPE_CHECKING:
    from squall.asgi._adapter import _ASGIConnection

__all__ = ["_ASGIWebSocketStream"]

_READ = IOLoop.READ
_WRITE = IOLoop.WRITE

# Bytes of outgoing messages not yet sent before writes wait, and of
# incoming frames not yet read before receive() does.
_HIGH_WATER = 1024 * 1024


class _ASGIWebSocketStream(BaseIOStream):
    """An `IOStream` whose other end is an ASGI ``websocket`` scope."""

    def __init__(self, conn: _ASGIConnection) -> None:
        super().__init__()
        self._conn = conn
        # The peer of the handler's frames: it parses what the handler
        # writes and builds (masked) what the client sent.
        self._codec = _ws.WSConnection(client=True, max_message_size=None)
        self._inbox = bytearray()
        self._eof = False
        self._unsent = 0
        self._space: Optional[asyncio.Future[None]] = None
        self._close_queued = False

    def fileno(self) -> Any:
        """No file descriptor: the stream's other end is an ASGI server."""
        return self

    def close_fd(self) -> None:
        """The handler closed its side: tell the ASGI server, if not done yet."""
        conn = self._conn
        if not self._close_queued and not conn._gone:
            self._close_queued = True
            conn._queue({"type": "websocket.close", "code": 1011 if self.error else 1000})
        self._release()
        conn._kick()

    def close(self, exc_info: Any = False) -> None:
        """Close the stream; the ASGI call ends once what is queued is sent."""
        self._state = None
        super().close(exc_info)
        self._conn._kick()

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Move client frames into ``buf``."""
        inbox = self._inbox
        if not inbox:
            return 0 if self._eof else None
        n = min(len(buf), len(inbox))
        buf[:n] = inbox[:n]
        del inbox[:n]
        if len(inbox) < _HIGH_WATER:
            self._release()
        return n

    def write_to_fd(self, data: memoryview) -> int:
        """Turn the handler's frames into ASGI messages; 0 while too much is unsent."""
        conn = self._conn
        if conn._gone:
            return len(data)  # the client left: the frames go nowhere
        if self._unsent > _HIGH_WATER:
            return 0
        n = len(data)
        for event in self._codec.receive_data(bytes(data)):
            kind = type(event)
            if kind is _ws.Message:
                message = event.data  # type: ignore[attr-defined]
                if isinstance(message, str):
                    self._unsent += len(message)
                    conn._queue({"type": "websocket.send", "text": message})
                else:
                    self._unsent += len(message)
                    conn._queue({"type": "websocket.send", "bytes": message})
            elif kind is _ws.Ping:
                # Answered for the client, which the ASGI server keeps alive.
                self._feed(self._codec.send_pong(event.payload))  # type: ignore[attr-defined]
            elif kind is _ws.CloseReceived and not self._close_queued:
                self._close_queued = True
                code = event.code  # type: ignore[attr-defined]
                conn._queue(
                    {
                        "type": "websocket.close",
                        "code": code if code is not None else 1000,
                        "reason": event.reason or "",  # type: ignore[attr-defined]
                    }
                )
            elif kind is _ws.ProtocolFailed and not self._close_queued:
                self._close_queued = True
                conn._queue({"type": "websocket.close", "code": 1011})
        return n

    def _set_state(self, state: int) -> None:
        # Nothing to register: READ interest is served from the inbox.
        if self._closed:
            return
        self._state = state
        if state & _READ and (self._inbox or self._eof):
            self.io_loop.add_callback(self._handle_events, None, _READ)

    # -- called by the connection --------------------------------------------------

    def _feed(self, frames: bytes) -> None:
        self._inbox += frames
        if not self._closed:
            self._handle_events(None, _READ)

    def _on_message(self, message: dict[str, Any] | Any) -> Optional[asyncio.Future[None]]:
        """A ``websocket.receive``: feed it to the handler as a client frame."""
        if self._closed or self._codec.close_sent:
            return None
        text = message.get("text")
        if text is not None:
            self._feed(self._codec.send_message(text))
        else:
            self._feed(self._codec.send_message(bytes(message.get("bytes") or b""), binary=True))
        if len(self._inbox) >= _HIGH_WATER and not self._closed:
            space = self._space = asyncio.get_running_loop().create_future()
            return space
        return None

    def _peer_gone(self, code: int, reason: str) -> None:
        """The client disconnected: a close frame with its code (unless it sent none), then EOF."""
        if self._closed:
            return
        if code not in (1005, 1006) and not self._codec.close_sent:
            try:
                self._inbox += self._codec.send_close(code, reason or None)
            except _ws.LocalProtocolError:
                self._inbox += self._codec.send_close(None)
        elif code == 1005 and not self._codec.close_sent:
            self._inbox += self._codec.send_close(None)
        self._eof = True
        self._handle_events(None, _READ)

    def _sent(self) -> None:
        """The connection sent some messages: writes may go on."""
        if self._unsent and not self._conn._out:
            self._unsent = 0
            if not self._closed and len(self._write_buffer):
                self._handle_events(None, _WRITE)

    def _release(self) -> None:
        space = self._space
        if space is not None:
            self._space = None
            if not space.done():
                space.set_result(None)
