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
from typing import TYPE_CHECKING, Any, Optional, Union

from squall._h2 import ErrorCode, LocalProtocolError
from squall.httpserver._stream import take_received
from squall.httpserver._tunnel import _Tunnel
from squall.httpserver._tunnel import drain_tunnels as _drain_tunnels

if TYPE_CHECKING:
    from squall.httpserver._h2protocol import _H2Protocol
    from squall.httpserver._h2stream import _H2Stream

__all__ = ["drain_tunnels", "tunnels"]

# Bytes queued on a stream for want of window (or in a paused transport)
# above which a WebSocket's output counts as full: asyncio's default
# high-water mark, which a WebSocket over HTTP/1.1 is held to.
HIGH_WATER = 64 * 1024


class _H2Tunnel(_Tunnel):
    """An IOStream over one HTTP/2 stream (RFC 8441): what ``detach()`` gives
    the handler of an extended CONNECT once it answered 2xx (see `_Tunnel`).

    What the peer sends waits in the inbox with its window not given back
    until it is read.
    """

    __slots__ = ("_held", "_receiver", "_receiving", "_delivering")

    _proto: _H2Protocol
    _exchange: _H2Stream

    def __init__(self, proto: _H2Protocol, exchange: _H2Stream) -> None:
        super().__init__(proto, exchange)
        # Flow-control bytes of what is in the inbox: given back once read.
        self._held = 0
        self._receiver: Optional[Callable[[bytes], None]] = None
        self._receiving = True
        self._delivering: Optional[asyncio.Handle] = None

    # -- the protocol's side of _Tunnel ------------------------------------------------

    def _carrier(self) -> Optional[asyncio.BaseTransport]:
        return self._proto.transport

    def _send_data(self, data: bytes) -> asyncio.Future[None]:
        self._total_queued += len(data)
        future = self._proto.send_body(self._exchange, data)
        self._check_full()
        return future

    def _sink_write(self, data: bytes) -> None:
        # No Future: nobody waits for a broadcast's write.
        self._total_queued += len(data)
        self._proto.queue_body(self._exchange, data)
        self._check_full()

    def _ready(self) -> asyncio.Future[None]:
        return self._proto.write_ready(self._exchange)

    # -- the handler's side ----------------------------------------------------------

    def _open(self) -> None:
        """The 2xx ends the response: its head goes out, without END_STREAM;
        the stream stays open (and counted against the connection's
        streams) until the tunnel ends."""
        exchange = self._exchange
        proto = self._proto
        if exchange.held_head is not None:
            proto._send_head(exchange, False)
        proto.flush_soon()

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
        proto = self._proto
        handle = self._delivering
        if handle is not None:
            handle.cancel()
            self._delivering = None
        if self._held:
            self._give_back()
        if exchange._closed or not self.accepted:
            return
        try:
            sent = proto.core.end_stream(exchange.stream_id)
        except LocalProtocolError:
            sent = True
        if sent:
            self._ended()
        else:
            # RFC 9113 §5.1: open until the END_STREAM goes out (Drained).
            proto._waiting_window.setdefault(exchange.stream_id, proto._loop.time())
        proto.flush_soon()

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
            self._delivering = self._proto._loop.call_soon(self._deliver_held)

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

    def _feed(self, data: bytes, flow: int) -> None:
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

    def _window_opened(self) -> None:
        """Everything queued went out (our END_STREAM too, if it was queued)."""
        proto = self._proto
        exchange = self._exchange
        if self._closed:
            if not exchange._closed:
                self._ended()
            return
        if not proto.write_paused:
            proto.wake_writers(exchange)
            owner = self._owner
            if owner is not None:
                owner.set_write_paused(False)

    def _ended(self) -> None:
        """Our END_STREAM is out: the stream is done on our side."""
        proto = self._proto
        exchange = self._exchange
        proto._waiting_window.pop(exchange.stream_id, None)
        exchange._closed = True
        # The rest of what the peer sends is not wanted (RFC 9113 §8.1; the
        # core sends nothing if the peer's END_STREAM came first).
        proto.core.reset(exchange.stream_id, ErrorCode.NO_ERROR)
        exchange.free_slot()
        proto._retire(exchange)

    def _set_paused(self, paused: bool) -> None:
        """The connection's transport paused or resumed writing."""
        owner = self._owner
        if owner is not None:
            owner.set_write_paused(paused or self.writing_paused())


def tunnels(proto: _H2Protocol) -> list[_H2Tunnel]:
    """The connection's streams that carry a tunnel (accepted or not yet)."""
    return [s.tunnel for s in proto._streams.values() if s.tunnel is not None]


def drain_tunnels(proto: _H2Protocol) -> None:
    """The server drains: each WebSocket over the connection closes with
    1001, as one over HTTP/1.1 does (RFC 6455 §7.4.1)."""
    _drain_tunnels(tunnels(proto))
