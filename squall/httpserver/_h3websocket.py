"""WebSockets over HTTP/3 (RFC 9220): one request stream opened by an
extended CONNECT, taken over as an IOStream.

aioquic's H3 layer advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and lets a
``:protocol`` pseudo-header through; `_H3Protocol` serves the request as
any other, with ``request.method == "CONNECT"`` and
``request.connection.protocol == "websocket"``, and `.WebSocketHandler`
answers it with a 200 and ``detach()``es the stream, as it does over
HTTP/2 (RFC 8441, whose mechanism RFC 9220 reuses): what it gets is an
`_H3Tunnel`, whose bytes travel in the stream's DATA frames.

Ends: closing the tunnel ends the stream (FIN after what is queued); the
peer's FIN is the end of the WebSocket's input; a reset or the connection
lost closes the WebSocket at once. Flow control is aioquic's (it credits
the peer as data arrives): a WebSocket that stops reading holds what came
here, bounded by the WebSocket's own message limit.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Optional, Union

from squall._h2 import tunnel_fields
from squall.httpserver._stream import take_received
from squall.ioloop import IOLoop
from squall.iostream import BaseIOStream
from squall.log import app_log

if TYPE_CHECKING:
    from squall.concurrent import Future
    from squall.httpserver._h3protocol import _H3Protocol
    from squall.httpserver._h3stream import _H3Stream

__all__ = ["_H3Tunnel", "drain_tunnels"]

_READ = IOLoop.READ


class _TunnelSink:
    """What the WebSocket writes its frames to directly (and
    `squall.websocket.broadcast` a shared frame): the stream's DATA frames."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: _H3Tunnel) -> None:
        self._tunnel = tunnel

    def write(self, data: bytes) -> None:
        """Send ``data`` on the stream, after what is queued.

        Raises:
            RuntimeError: the stream is closed (its WebSocket is not told yet).
        """
        tunnel = self._tunnel
        if tunnel._closed:
            raise RuntimeError("the HTTP/3 stream is closed")
        tunnel._send_data(bytes(data))

    def is_closing(self) -> bool:
        return self._tunnel._closed

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The UDP transport's (``sockname``, ``socket``...)."""
        transport = self._tunnel._proto._transport
        return default if transport is None else transport.get_extra_info(name, default)


class _H3Tunnel(BaseIOStream):
    """An IOStream over one HTTP/3 request stream (RFC 9220): what
    ``detach()`` gives the handler of an extended CONNECT answered 2xx.

    Made when the request arrives, so that DATA sent before the handler
    detaches waits here.
    """

    def __init__(self, proto: _H3Protocol, exchange: _H3Stream) -> None:
        super().__init__()
        self._proto = proto
        self._exchange = exchange
        #: A 2xx head answered the CONNECT: the stream carries the tunnel.
        self.accepted = False
        self.detached = False
        self._inbox = bytearray()
        self._eof = False
        self._owner: Any = None

    # -- the handler's side ----------------------------------------------------------

    def _head_fields(
        self, code: int, fields: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """The response head: a 2xx opens the tunnel (no Content-Length on it)."""
        if 200 <= code < 300:
            self.accepted = True
            return tunnel_fields(fields)
        return fields

    def _detach(self) -> _H3Tunnel:
        if self.detached:
            raise RuntimeError("the stream is already detached")
        self.detached = True
        if self._exchange._closed:
            self._lost()
        elif self._inbox or self._eof:
            self._drained = False
        return self

    @property
    def stream_id(self) -> int:
        """The QUIC stream carrying the tunnel."""
        return self._exchange.stream_id

    def adopt_websocket(self, ws: Any) -> None:
        """Makes a server WebSocket protocol the owner: told of the close
        and of a drain (``_going_away``)."""
        self._owner = ws
        if self._closed:
            self.io_loop.add_callback(ws.on_connection_close)

    @property
    def transport(self) -> _TunnelSink:
        """Where a write bypassing the stream goes: this stream's DATA frames,
        in order with `write`."""
        return _TunnelSink(self)

    def writing_paused(self) -> bool:
        """Never: aioquic buffers what congestion control holds back."""
        return False

    # -- BaseIOStream -------------------------------------------------------------------

    def fileno(self) -> Any:
        """The UDP socket, for logs (nothing is registered with the IOLoop)."""
        transport = self._proto._transport
        return None if transport is None else transport.get_extra_info("socket")

    def set_nodelay(self, value: bool) -> None:
        """Not per stream: QUIC paces the connection's packets."""

    def _set_state(self, state: int) -> None:
        # No fd: reads are fed by the protocol.
        if not self._closed:
            self._state = state

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        return take_received(self._inbox, buf, self._eof)

    def write_to_fd(self, data: memoryview) -> int:
        self._send_data(bytes(data))
        return len(data)

    def write(self, data: Union[bytes, bytearray, memoryview]) -> Future[None]:
        """Send ``data`` in DATA frames.

        Raises:
            StreamClosedError: the stream is closed.
        """
        self._check_closed()
        if not data:
            return self._proto._ready()
        return self._send_data(data if type(data) is bytes else bytes(data))

    def _send_data(self, data: bytes) -> asyncio.Future[None]:
        self._total_queued += len(data)
        return self._proto._send_body(self._exchange, data)

    def close_fd(self) -> None:
        """End the stream: FIN after what is queued."""
        exchange = self._exchange
        if exchange._closed or not self.accepted:
            return
        self._proto._end_tunnel(exchange)

    def close(self, exc_info: Any = False) -> None:
        """Close the stream (see `close_fd`) and tell the owner."""
        self._state = None
        super().close(exc_info)

    def _signal_closed(self) -> None:
        super()._signal_closed()
        owner = self._owner
        if owner is not None:
            self._owner = None
            self.io_loop.add_callback(owner.on_connection_close)

    # -- called by the protocol -----------------------------------------------------------

    def _feed(self, data: bytes) -> None:
        """DATA on the stream."""
        if self._closed:
            return
        self._inbox += data
        if self.detached:
            if self._read_future is not None:
                self._handle_events(None, _READ)
            else:
                self._drained = False

    def _feed_eof(self) -> None:
        """The peer's FIN: the end of the WebSocket's input."""
        self._eof = True
        if self._closed or not self.detached:
            return
        self._drained = False
        if self._read_future is not None:
            self._handle_events(None, _READ)

    def _lost(self) -> None:
        """The stream is gone (reset, the connection lost)."""
        self._eof = True
        if not self._closed:
            self.close()


def drain_tunnels(proto: _H3Protocol) -> None:
    """The server drains: each WebSocket over the connection closes with
    1001, as one over HTTP/1.1 does (RFC 6455 §7.4.1)."""
    for stream in list(proto._streams.values()):
        tunnel = stream._tunnel
        owner = tunnel._owner if tunnel is not None else None
        if owner is not None:
            try:
                owner._going_away()
            except Exception:
                app_log.error("Uncaught exception closing a WebSocket", exc_info=True)
