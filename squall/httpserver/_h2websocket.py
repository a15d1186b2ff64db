"""WebSockets over HTTP/2 (RFC 8441): one stream opened by an extended CONNECT,
taken over as an IOStream.

The core (`squall._h2`) advertises SETTINGS_ENABLE_CONNECT_PROTOCOL and
checks the request (``:method CONNECT`` with ``:protocol``, ``:scheme``,
``:path`` and ``:authority``); `_H2Protocol` serves it as any request, with
``request.method == "CONNECT"`` and ``request.connection.protocol`` set to the
``:protocol`` value. `.WebSocketHandler` answers it with a 200 and then
``detach()``es the stream, as it detaches an HTTP/1.1 connection after its
101: what it gets is an `_H2Tunnel`, a `BaseIOStream` whose bytes travel in
the stream's DATA frames, so the one WebSocket implementation
(`squall.websocket.WebSocketProtocol13`) runs over both.

Flow control, both ways (RFC 9113 §5.2): a write goes to the core, which
sends what the windows allow and queues the rest; its Future resolves once
the queue is empty (as a response body's does). What the peer sends is
given back with WINDOW_UPDATE only as it is consumed: when the WebSocket
takes it, not when it arrives, so a WebSocket that stops reading stops its
peer.

Ends (RFC 8441 §6, RFC 6455 §7): closing the stream sends END_STREAM
after what is queued (the close frame), and a reset (NO_ERROR) if the peer
has not ended its side; the peer's END_STREAM is the end of the WebSocket's
input (EOF); its RST_STREAM, a GOAWAY, or the connection lost close the
WebSocket at once (``on_close`` with ``close_code`` None).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Protocol, Union

from squall.httpserver._stream import take_received
from squall.httpserver._tunnel import _Tunnel
from squall.httpserver._tunnel import drain_tunnels as _drain_tunnels

if TYPE_CHECKING:
    from squall._h2 import H2Connection
    from squall.httpserver._h2stream import _H2Stream

__all__ = ["H2TunnelCarrier", "drain_tunnels", "tunnels"]

# Bytes queued on a stream for want of window (or in a paused transport)
# above which a WebSocket's output counts as full: asyncio's default
# high-water mark, which a WebSocket over HTTP/1.1 is held to.
HIGH_WATER = 64 * 1024


class H2TunnelCarrier(Protocol):
    """What an `_H2Tunnel` asks of its connection (`_H2Protocol`): the
    protocol owns the streams' output and their accounting; the tunnel
    calls these, it does not change the protocol's fields."""

    transport: Optional[asyncio.Transport]

    @property
    def core(self) -> H2Connection:
        """The connection's HTTP/2 core (window accounting: ``pending``, ``consumed``)."""

    @property
    def write_paused(self) -> bool:
        """Whether the transport is over its write mark."""

    def send_body(self, stream: _H2Stream, chunk: bytes) -> asyncio.Future[None]:
        """DATA on ``stream``; the Future of the write."""

    def queue_body(self, stream: _H2Stream, chunk: bytes) -> bool:
        """DATA on ``stream``, nobody waiting for it."""

    def write_ready(self, stream: _H2Stream) -> asyncio.Future[None]:
        """The Future of an empty write."""

    def flush_soon(self) -> None:
        """Write what the core has queued, soon."""

    def flush_now(self) -> None:
        """Write what is queued now, even inside a round."""

    def open_tunnel(self, stream: _H2Stream) -> None:
        """Send the held 2xx head without END_STREAM."""

    def wake_writers(self, stream: _H2Stream) -> None:
        """Resolve the Futures of the stream's writes."""

    def end_tunnel(self, stream: _H2Stream) -> bool:
        """END_STREAM after what is queued; False while it waits for window."""

    def tunnel_ended(self, stream: _H2Stream) -> None:
        """Our END_STREAM is out: the stream is done on our side."""

    def tunnels(self) -> list[_H2Tunnel]:
        """The tunnels of the connection's streams."""


class _H2Tunnel(_Tunnel):
    """An IOStream over one HTTP/2 stream (RFC 8441): what ``detach()`` gives
    the handler of an extended CONNECT once it answered 2xx (see `_Tunnel`).

    What the peer sends waits in the inbox with its window not given back
    until it is read.
    """

    __slots__ = ("_held", "_receiver", "_receiving", "_delivering")

    _proto: H2TunnelCarrier
    _exchange: _H2Stream

    def __init__(self, proto: H2TunnelCarrier, exchange: _H2Stream) -> None:
        super().__init__(proto, exchange)
        # Flow-control bytes of what is in the inbox: given back once read.
        self._held = 0
        self._receiver: Optional[Callable[[bytes], None]] = None
        self._receiving = True
        self._delivering: Optional[asyncio.Handle] = None

    # -- the protocol's side of _Tunnel ------------------------------------------------

    def carrier(self) -> Optional[asyncio.BaseTransport]:
        return self._proto.transport

    def _send_data(self, data: bytes) -> asyncio.Future[None]:
        self._total_queued += len(data)
        future = self._proto.send_body(self._exchange, data)
        self._check_full()
        return future

    def sink_write(self, data: bytes) -> None:
        # No Future: nobody waits for a broadcast's write. It goes on the
        # wire now, as a WebSocket's write over HTTP/1.1 does (the
        # WebSocket batches a read's several answers itself), so that a
        # synchronous callback that answers and then blocks has its client
        # see the answer meanwhile.
        self._total_queued += len(data)
        self._proto.queue_body(self._exchange, data)
        self._check_full()
        self._proto.flush_now()

    def _ready(self) -> asyncio.Future[None]:
        return self._proto.write_ready(self._exchange)

    # -- the handler's side ----------------------------------------------------------

    def open(self) -> None:
        """The 2xx ends the response: its head goes out, without END_STREAM;
        the stream stays open (and counted against the connection's
        streams) until the tunnel ends."""
        self._proto.open_tunnel(self._exchange)

    def writing_paused(self) -> bool:
        """Whether the output is full: `HIGH_WATER` bytes wait for window, or the
        connection's transport is over its own mark."""
        return self._proto.write_paused or self.get_write_buffer_size() >= HIGH_WATER

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet sent: queued for want of window."""
        return self._proto.core.pending(self._exchange.stream_id)

    # -- BaseIOStream -------------------------------------------------------------------

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        n = take_received(self._inbox, buf, self._eof)
        if not self._inbox:
            self._give_back()  # read: the peer may send as much again
        return n

    def _check_full(self) -> None:
        # Over HIGH_WATER: the owner's sink stops taking broadcasts, which
        # then skip this connection (see squall.websocket.broadcast).
        owner = self._owner
        if owner is not None and owner.takes_direct_writes and self.writing_paused():
            owner.set_write_paused(True)

    def close_fd(self) -> None:
        """End the stream: END_STREAM after what is queued (RFC 8441 §6)."""
        exchange = self._exchange
        handle = self._delivering
        if handle is not None:
            handle.cancel()
            self._delivering = None
        if self._held:
            self._give_back()
        if exchange.is_closed or not self.accepted:
            return
        # RFC 9113 §5.1: else open until the END_STREAM goes out (Drained).
        if self._proto.end_tunnel(exchange):
            self._proto.tunnel_ended(exchange)

    def close(self, exc_info: Any = False) -> None:
        """Close the stream (see `close_fd`) and tell the owner."""
        super().close(exc_info)
        self._receiver = None

    # -- reads handed over (the WebSocket's direct reads) ----------------------------

    def receive_to_websocket(self) -> bytes:
        """`set_receiver` with the adopted WebSocket's ``receive_bytes``
        (see `_TransportStream.receive_to_websocket`)."""
        owner = self._owner
        if owner is None:
            raise RuntimeError("no WebSocket was adopted")
        return self.set_receiver(owner.receive_bytes)

    def set_receiver(self, receiver: Optional[Callable[[bytes], None]]) -> bytes:
        """As `_TransportStream.set_receiver`: later reads go to ``receiver``.

        Returns:
            The bytes received and not yet read.
        """
        if self._read_future is not None:
            raise RuntimeError("a read is pending on the stream")
        self._receiver = receiver
        pending = b""
        if receiver is not None:
            rbuf = self._rbuf
            if rbuf[self._rpos :] or self._inbox:
                pending = bytes(rbuf[self._rpos :]) + bytes(self._inbox)
            self._rbuf = bytearray()
            self._rpos = 0
            self._inbox = bytearray()
            self._give_back()
            self._receiving = True
            if self._eof:
                self._schedule_delivery()
        return pending

    def set_receiving(self, receiving: bool) -> None:
        """Pause (False) or resume the reads that go to the receiver; while
        paused the peer's bytes wait here, their window not given back."""
        self._receiving = receiving
        if receiving and (self._inbox or self._eof):
            self._schedule_delivery()

    def _schedule_delivery(self) -> None:
        if self._delivering is None and not self._closed:
            self._delivering = self._aloop.call_soon(self._deliver_held)

    def _deliver_held(self) -> None:
        self._delivering = None
        receiver = self._receiver
        if self._closed or receiver is None or not self._receiving:
            return
        inbox = self._inbox
        if inbox:
            data = bytes(inbox)
            inbox.clear()
            self._give_back()
            receiver(data)
        if self._eof and not self._closed and not self._inbox:
            self.close()

    # -- called by the protocol -----------------------------------------------------------

    def feed(self, data: bytes, flow: int) -> None:
        """DATA on the stream."""
        if self._closed:
            self._proto.core.consumed(self._exchange.stream_id, flow)
            return
        receiver = self._receiver
        if receiver is not None and self._receiving and not self._inbox:
            self._proto.core.consumed(self._exchange.stream_id, flow)
            receiver(data)
            return
        self._inbox += data
        self._held += flow
        if receiver is None:
            self._readable()

    def _input_ended(self) -> None:
        if self._receiver is not None:
            if not self._inbox and self._receiving:
                self.close()
            return
        self._readable()

    def _give_back(self) -> None:
        held = self._held
        if held:
            self._held = 0
            proto = self._proto
            proto.core.consumed(self._exchange.stream_id, held)
            proto.flush_soon()  # its WINDOW_UPDATE, if one is due

    def window_opened(self) -> None:
        """Everything queued went out (our END_STREAM too, if it was queued)."""
        proto = self._proto
        exchange = self._exchange
        if self._closed:
            if not exchange.is_closed:
                proto.tunnel_ended(exchange)
            return
        if not proto.write_paused:
            proto.wake_writers(exchange)
            owner = self._owner
            if owner is not None:
                owner.set_write_paused(False)

    def set_paused(self, paused: bool) -> None:
        """The connection's transport paused or resumed writing."""
        owner = self._owner
        if owner is not None:
            owner.set_write_paused(paused or self.writing_paused())


def tunnels(proto: H2TunnelCarrier) -> list[_H2Tunnel]:
    """The connection's streams that carry a tunnel (accepted or not yet)."""
    return proto.tunnels()


def drain_tunnels(proto: H2TunnelCarrier) -> None:
    """The server drains: each WebSocket over the connection closes with
    1001, as one over HTTP/1.1 does (RFC 6455 §7.4.1)."""
    _drain_tunnels(tunnels(proto))
