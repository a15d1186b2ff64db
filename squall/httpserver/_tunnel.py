"""What a WebSocket over one request stream of a multiplexed connection is,
whatever the protocol: the base of `_H2Tunnel` (``_h2websocket``, RFC 8441)
and `_H3Tunnel` (``_h3websocket``, RFC 9220, which reuses RFC 8441's
mechanism).

An extended CONNECT arrives as a request; its stream gets a tunnel when it
arrives, so that DATA sent before the handler detaches waits in the
tunnel's inbox. A 2xx head makes it ``accepted`` (`head_fields`); the
handler's ``detach()`` hands it over as a `BaseIOStream` whose reads are fed
by the protocol (`feed`, `feed_eof`) and whose writes become the stream's
DATA frames. The one WebSocket implementation runs over it, as over an
HTTP/1.1 connection's IOStream.

Each subclass writes how bytes reach its protocol (``_send_data``,
``sink_write``, ``_ready``), where its connection's transport is
(``carrier``), how it ends its stream (``close_fd``) and how DATA comes in
(``feed``: HTTP/2 gives flow-control window back as it is read).
"""

from __future__ import annotations

__all__: list[str] = []  # private to the drivers

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional, Union

from squall._h2 import tunnel_fields
from squall.httpserver._sockview import socket_view
from squall.httputil._websocket_link import WebSocketEndpoint
from squall.ioloop import IOLoop
from squall.iostream import BaseIOStream
from squall.log import app_log

if TYPE_CHECKING:
    from squall.concurrent import Future
    from squall.httpserver._muxstream import _MuxStream


_READ = IOLoop.READ


class _TunnelSink:
    """What a WebSocket writes its frames to directly (and
    `squall.websocket.broadcast` a shared frame): the stream's DATA frames,
    in order with the tunnel's writes (an HTTP/1.1 WebSocket's sink is its
    transport)."""

    __slots__ = ("_tunnel",)

    def __init__(self, tunnel: _Tunnel) -> None:
        self._tunnel = tunnel

    def write(self, data: bytes) -> None:
        """Send ``data`` on the stream, after what is queued.

        Raises:
            RuntimeError: the stream is closed (its WebSocket is not told yet).
        """
        tunnel = self._tunnel
        if tunnel.closed():
            raise RuntimeError(f"the {tunnel.carried_by} stream is closed")
        tunnel.sink_write(data)

    def is_closing(self) -> bool:
        return self._tunnel.closed()

    def get_write_buffer_size(self) -> int:
        return self._tunnel.get_write_buffer_size()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The connection's transport's (``peername``, ``socket``, ``ssl_object``...)."""
        transport = self._tunnel.carrier()
        return default if transport is None else transport.get_extra_info(name, default)


class _Tunnel(BaseIOStream):
    """An IOStream over one request stream: what ``detach()`` gives the
    handler of an extended CONNECT once it answered 2xx (see the module)."""

    __slots__ = ("_proto", "_exchange", "accepted", "detached", "_inbox", "_eof", "_owner")

    def __init__(self, proto: Any, exchange: _MuxStream) -> None:
        super().__init__()
        self._proto = proto
        self._exchange = exchange
        #: A 2xx head answered the CONNECT: the stream carries the tunnel.
        self.accepted = False
        self.detached = False
        self._inbox = bytearray()
        self._eof = False
        # The WebSocket protocol that owns the stream (see adopt_websocket).
        self._owner: Optional[WebSocketEndpoint] = None

    # -- what each protocol writes -------------------------------------------------------

    def carrier(self) -> Optional[asyncio.BaseTransport]:
        """The connection's transport (shared by its streams), or None."""
        raise NotImplementedError

    def _send_data(self, data: bytes) -> asyncio.Future[None]:
        """Queue ``data`` in DATA frames; the Future of a write."""
        raise NotImplementedError

    def sink_write(self, data: bytes) -> None:
        """Queue ``data`` for the sink (`_TunnelSink`): nobody waits for it."""
        raise NotImplementedError

    def _ready(self) -> asyncio.Future[None]:
        """The Future of an empty write (no empty DATA frame goes out)."""
        raise NotImplementedError

    # -- the handler's side ----------------------------------------------------------

    def head_fields(
        self, code: int, fields: list[tuple[bytes, bytes]]
    ) -> list[tuple[bytes, bytes]]:
        """The response head is written: a 2xx opens the tunnel (no
        Content-Length on it)."""
        if 200 <= code < 300:
            self.accepted = True
            return tunnel_fields(fields)
        return fields

    def hand_over(self) -> _Tunnel:
        """What the stream's ``detach()`` returns: this tunnel, once."""
        if self.detached:
            raise RuntimeError("the stream is already detached")
        self.detached = True
        if self._exchange.is_closed:
            self.lost(None)
        elif self._inbox or self._eof:
            self._drained = False
        return self

    @property
    def exchange(self) -> _MuxStream:
        """The request stream carrying the tunnel."""
        return self._exchange

    @property
    def carried_by(self) -> str:
        """The protocol of the stream carrying the tunnel (``"HTTP/2"``, ``"HTTP/3"``)."""
        return self._exchange.PROTOCOL

    @property
    def stream_id(self) -> int:
        """The stream carrying the tunnel."""
        return self._exchange.stream_id

    @property
    def adopted_websocket(self) -> Optional[WebSocketEndpoint]:
        """The WebSocket given to `adopt_websocket`, until the tunnel closes."""
        return self._owner

    def adopt_websocket(self, ws: WebSocketEndpoint) -> None:
        """Makes a server WebSocket protocol the owner (see
        `_TransportStream.adopt_websocket`): it is told of the close and of
        a drain (``going_away``)."""
        self._owner = ws
        if self._closed:
            self.io_loop.add_callback(ws.on_connection_close)

    @property
    def transport(self) -> _TunnelSink:
        """Where a write bypassing the stream goes (`squall.websocket.broadcast`):
        this stream's DATA frames, in order with `write`. (Made per call:
        the owner keeps the one it takes.)"""
        return _TunnelSink(self)

    def writing_paused(self) -> bool:
        """Whether the output is full (never, unless the protocol says)."""
        return False

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet sent (none, unless the protocol says)."""
        return 0

    @property
    def socket(self) -> Any:
        """The connection's socket (shared with its other streams), None
        once the tunnel is closed, as an HTTP/1.1 WebSocket's stream's is:
        Tornado programs test it to tell an open WebSocket from a closed
        one. Over TLS it also answers `ssl.SSLSocket`'s TLS methods."""
        if self._closed:
            return None
        transport = self.carrier()
        return None if transport is None else socket_view(transport)

    # -- BaseIOStream -------------------------------------------------------------------

    def fileno(self) -> Any:
        """The connection's socket, for logs (nothing is registered with the IOLoop)."""
        transport = self.carrier()
        return None if transport is None else transport.get_extra_info("socket")

    def set_nodelay(self, value: bool) -> None:
        """Not per stream: the connection's other streams share the socket."""

    def _set_state(self, state: int) -> None:
        # No fd: reads are fed by the protocol.
        if not self._closed:
            self._state = state

    def write_to_fd(self, data: memoryview) -> int:
        # (write() below never queues in the base class's buffer.)
        self._send_data(bytes(data))
        return len(data)

    def write(self, data: Union[bytes, bytearray, memoryview]) -> Future[None]:
        """Send ``data`` in DATA frames.

        Returns:
            A Future resolved once the protocol has let it all out.

        Raises:
            StreamClosedError: the stream is closed.
        """
        self._check_closed()
        if not data:
            return self._ready()
        return self._send_data(data if type(data) is bytes else bytes(data))

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

    def _readable(self) -> None:
        """Bytes (or the end) arrived for the WebSocket's reads: a pending read
        takes them now, the next one otherwise (as an fd that became readable)."""
        if self._read_future is not None:
            self._handle_events(None, _READ)
        else:
            self._drained = False

    def feed_eof(self) -> None:
        """The peer ended its side of the stream: the end of the WebSocket's input."""
        self._eof = True
        if self._closed or not self.detached:
            return
        self._input_ended()

    def _input_ended(self) -> None:
        self._readable()

    def lost(self, exc: Optional[BaseException] = None) -> None:
        """The stream is gone (reset, GOAWAY, the connection lost)."""
        self._eof = True
        if not self._closed:
            self.close(exc_info=exc if exc is not None else False)


def drain_tunnels(tunnels: Iterable[_Tunnel]) -> None:
    """The server drains: each WebSocket over the connection closes with
    1001, as one over HTTP/1.1 does (RFC 6455 §7.4.1)."""
    for tunnel in list(tunnels):
        owner = tunnel.adopted_websocket
        if owner is not None:
            try:
                owner.going_away()
            except Exception:
                app_log.error("Uncaught exception closing a WebSocket", exc_info=True)
