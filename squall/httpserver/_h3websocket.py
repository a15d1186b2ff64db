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
here, bounded by the WebSocket's own message limit. Output: the stream is
full while more than the session's high-water mark of it waits for the
client's acknowledgement (the mark its writes' Futures wait on); the
WebSocket's direct writes and `squall.websocket.broadcast` stop going to
it then and resume when the client has taken enough, as over HTTP/1.1
and HTTP/2.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Optional, Protocol, Union

from squall.httpserver._stream import take_received
from squall.httpserver._tunnel import _Tunnel
from squall.httpserver._tunnel import drain_tunnels as _drain_tunnels

if TYPE_CHECKING:
    from squall.httpserver._h3stream import _H3Stream

__all__ = ["H3TunnelCarrier", "drain_tunnels"]


class H3TunnelCarrier(Protocol):
    """What an `_H3Tunnel` asks of its connection (`_H3Protocol`)."""

    def send_body(self, stream: _H3Stream, chunk: bytes) -> asyncio.Future[None]:
        """DATA on ``stream``; the Future of the write."""

    def write_ready(self) -> asyncio.Future[None]:
        """The Future of an empty write."""

    def flush_now(self) -> None:
        """Send what is queued now, even inside a round."""

    def end_tunnel(self, stream: _H3Stream) -> None:
        """FIN after what is queued; the stream is done on our side."""

    def tunnels(self) -> list[_H3Tunnel]:
        """The tunnels of the connection's streams."""

    def stream_backlog(self, stream: _H3Stream) -> int:
        """Bytes of ``stream``'s output the client has not taken yet."""

    def stream_full(self, stream: _H3Stream) -> bool:
        """Whether writes on ``stream`` wait for the client."""


class _H3Tunnel(_Tunnel):
    """An IOStream over one HTTP/3 request stream (RFC 9220): what
    ``detach()`` gives the handler of an extended CONNECT answered 2xx (see
    `_Tunnel`). aioquic buffers what flow and congestion control hold back;
    the output is full while the client has not acknowledged more than the
    session's high-water mark of it."""

    __slots__ = ()

    _proto: H3TunnelCarrier
    _exchange: _H3Stream

    # -- the protocol's side of _Tunnel ------------------------------------------------

    def carrier(self) -> Optional[asyncio.BaseTransport]:
        return self._exchange.transport

    def _send_data(self, data: bytes) -> asyncio.Future[None]:
        self._total_queued += len(data)
        return self._proto.send_body(self._exchange, data)

    def sink_write(self, data: bytes) -> None:
        # On the wire now, as over HTTP/2 (see _H2Tunnel.sink_write).
        self._send_data(bytes(data))
        self._proto.flush_now()

    def _ready(self) -> asyncio.Future[None]:
        return self._proto.write_ready()

    # -- the handler's side ----------------------------------------------------------

    def writing_paused(self) -> bool:
        """Whether the output is full (see `H3TunnelCarrier.stream_full`)."""
        return self._proto.stream_full(self._exchange)

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet acknowledged by the client."""
        return self._proto.stream_backlog(self._exchange)

    def set_paused(self, paused: bool) -> None:
        """The session says the output went over its high-water mark, or
        back under it: the owner's direct writes stop, or resume."""
        owner = self._owner
        if owner is not None and not self._closed:
            owner.set_write_paused(paused)

    # -- BaseIOStream -------------------------------------------------------------------

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        return take_received(self._inbox, buf, self._eof)

    def close_fd(self) -> None:
        """End the stream: FIN after what is queued."""
        exchange = self._exchange
        if exchange.is_closed or not self.accepted:
            return
        self._proto.end_tunnel(exchange)

    # -- called by the protocol -----------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """DATA on the stream."""
        if self._closed:
            return
        self._inbox += data
        if self.detached:
            self._readable()


def drain_tunnels(proto: H3TunnelCarrier) -> None:
    """The server drains: each WebSocket over the connection closes with
    1001, as one over HTTP/1.1 does (RFC 6455 §7.4.1)."""
    _drain_tunnels(proto.tunnels())
