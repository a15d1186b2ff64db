"""`_TransportStream`: the `BaseIOStream` API over an asyncio transport.

The server reads connections through an `asyncio.Protocol`, not an
`~squall.iostream.IOStream`; code that takes a connection over (`HTTPConnection.detach`,
WebSocket) still expects an `~squall.iostream.IOStream`. This one keeps the base class's
buffering and Futures and replaces the fd with the protocol: bytes the
protocol receives land in an inbox that ``read_from_fd`` drains; writes go
to ``transport.write``; interest in READ pauses and resumes the transport.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from squall.httpserver._sockview import socket_view
from squall.httputil._websocket_link import WebSocketEndpoint
from squall.ioloop import IOLoop
from squall.iostream import BaseIOStream

if TYPE_CHECKING:
    import asyncio

    from squall.concurrent import Future
    from squall.httpserver._h1lifecycle import _H1Lifecycle

__all__ = ["take_received"]

_READ = IOLoop.READ
_WRITE = IOLoop.WRITE
# Most bytes handed to the transport at once. A large write goes over in
# pieces while the transport takes them (not paused), so that it stays in
# the stream, pending, once the peer stops reading: its Future resolves
# when the transport has it all, fails if the connection closes first, and
# the transport never holds (and copies) a whole large write at once.
_WRITE_CHUNK = 256 * 1024
# The inbox and the read buffer of a stream whose reads go to a receiver
# (see set_receiver).
_NO_INBOX = bytearray()


def take_received(inbox: bytearray, buf: Union[bytearray, memoryview], eof: bool) -> Optional[int]:
    """``read_from_fd`` of a stream fed by a protocol: move what ``inbox``
    holds into ``buf``; 0 at the end (``eof``), None while nothing waits."""
    if not inbox:
        return 0 if eof else None
    n = min(len(buf), len(inbox))
    buf[:n] = inbox[:n]
    del inbox[:n]
    return n


def _to_websocket(data: bytes) -> None:
    """The receiver that stands for the adopted WebSocket's ``receive_bytes`` (never called)."""
    raise AssertionError("_TransportStream.feed_data calls the WebSocket's _receive instead")


class _TransportStream(BaseIOStream):
    """An IOStream over the transport of one server connection.

    Reads see nothing until the connection is detached from the HTTP
    driver; writes go out at once (after any HTTP output queued before).
    """

    __slots__ = (
        "_proto",
        "_transport",
        "_inbox",
        "_eof",
        "_receiver",
        "_receiving",
        "_ws",
    )

    # Most writes go to the transport at once (see write): the shared empty
    # write buffer until one is queued.
    _lazy_write_buffer = True
    # See on_drain: in the instance dict once set (few owners set one; an
    # idle WebSocket's stream keeps no slot for it).
    _on_drain: Optional[Callable[[], None]] = None

    def __init__(
        self,
        proto: _H1Lifecycle,
        transport: asyncio.Transport,
        max_buffer_size: Optional[int] = None,
        read_chunk_size: Optional[int] = None,
    ) -> None:
        # (Not super(): its lookup costs more than the call, once per WebSocket.)
        BaseIOStream.__init__(self, max_buffer_size, read_chunk_size)
        self._proto = proto
        self._transport = transport
        self._inbox = bytearray()
        self._eof = False
        # See `set_receiver`: a callback that takes reads directly.
        self._receiver: Optional[Callable[[bytes], None]] = None
        self._receiving = True
        # The WebSocket protocol that owns the detached connection, if any
        # (see `adopt_websocket`).
        self._ws: Optional[WebSocketEndpoint] = None

    @property
    def on_drain(self) -> Optional[Callable[[], None]]:
        """Called when the server drains (`HTTPServer.drain`).

        So that the owner of a detached connection can end it politely
        (a WebSocket sends close 1001); without one, the connection is
        aborted at the drain's deadline.
        """
        hook = self._on_drain
        if hook is None and self._ws is not None:
            return self._ws.going_away
        return hook

    @on_drain.setter
    def on_drain(self, hook: Optional[Callable[[], None]]) -> None:
        self._on_drain = hook

    @property
    def adopted_websocket(self) -> Optional[WebSocketEndpoint]:
        """The WebSocket given to `adopt_websocket`, until the stream closes."""
        return self._ws

    def adopt_websocket(self, ws: WebSocketEndpoint) -> None:
        """Makes a server WebSocket protocol (`~squall.websocket.WebSocketProtocol13`) the owner.

        The stream then calls it back itself, with no bound method kept per
        connection (an idle WebSocket's bytes count): its
        ``on_connection_close`` once closed (as `set_close_callback`
        would), its ``going_away`` when the server drains (unless
        `on_drain` is set), and its ``set_write_paused`` when the transport
        pauses and resumes writing (so that `squall.websocket.broadcast`
        needs no test of its own per connection).
        """
        self._ws = ws
        if self._closed:
            self.io_loop.add_callback(ws.on_connection_close)
        elif not self._buffered():
            # As set_close_callback: listen for EOF, which only a read sees.
            self._want(_READ)

    # -- direct writes (squall.websocket.broadcast)

    @property
    def transport(self) -> asyncio.Transport:
        """The asyncio transport under the stream.

        Bytes written straight to it keep their order with the stream's
        `write` while `get_write_buffer_size` is 0: nothing is then queued
        in the stream or the transport, and the transport is not paused.
        """
        return self._transport

    def writing_paused(self) -> bool:
        """Whether the transport is over its high-water mark (the peer reads too slowly)."""
        return self._proto.write_paused

    def get_write_buffer_size(self) -> int:
        """Bytes written and not yet handed to the kernel: the stream's and the transport's."""
        return len(self._write_buffer) + self._transport.get_write_buffer_size()

    @property
    def socket(self) -> Any:
        """The connection's socket; None once closed, as an IOStream's.

        Over TLS it also answers `ssl.SSLSocket`'s TLS methods
        (``getpeercert``, ``cipher``, ``version``...), as Tornado's does.
        """
        if self._closed:
            return None
        return socket_view(self._transport)

    def fileno(self) -> Any:
        """The socket, for logs; the stream never registers it with the IOLoop."""
        return self.socket

    def close_fd(self) -> None:
        """Close the transport (after the data already written goes out)."""
        self._transport.close()

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Move bytes the protocol received into ``buf``."""
        return take_received(self._inbox, buf, self._eof)

    def write(self, data: Union[bytes, bytearray, memoryview]) -> Future[None]:
        """Queue ``data`` for writing (see `BaseIOStream.write`).

        With nothing queued before it and the transport taking more, bytes
        go to the transport at once, without the base class's buffer and
        memoryview: the case of every WebSocket answer.
        """
        if (
            type(data) is bytes
            and len(data) <= _WRITE_CHUNK
            and not self._write_futures
            and not self._write_buffer._size
            and not self._closed
            and self.max_write_buffer_size is None
        ):
            proto = self._proto
            transport = self._transport
            if not proto.write_paused and not transport.is_closing():
                proto.flush()
                size = len(data)
                self._total_queued += size
                self._total_written += size
                transport.write(data)
                if transport.is_closing():
                    return self._lost_write()
                # The loop's resolved future the protocol's own writes
                # return, not one made per stream.
                return proto.done_future
        return super().write(data)

    def _lost_write(self) -> Future[None]:
        # The transport's send failed (the peer had gone: a reset, a broken
        # pipe) and it closes itself, telling the protocol a loop turn
        # later. The write fails now, as an fd stream's does (its future
        # waiting, then the write error closing the stream), rather than
        # report bytes sent that were not.
        future: Future[None] = self._new_future()
        self._wait_for_write(future)
        self._write_failed(BrokenPipeError("the connection is closed"))
        return future

    def write_to_fd(self, data: memoryview) -> int:
        """Hand ``data`` to the transport; 0 while the transport is over its high-water mark."""
        transport = self._transport
        if transport.is_closing():
            raise BrokenPipeError("the connection is closed")
        proto = self._proto
        if proto.write_paused:
            return 0
        proto.flush()
        n = len(data)
        if n <= _WRITE_CHUNK:
            transport.write(bytes(data))
        else:
            # A view of a piece, released at once: an error's traceback keeps
            # this frame, and a live view would pin the caller's bytearray.
            with data[:_WRITE_CHUNK] as piece:
                transport.write(bytes(piece))
            n = _WRITE_CHUNK
        if transport.is_closing():
            # Its send failed (see _lost_write): not written.
            raise BrokenPipeError("the connection is closed")
        return n

    def set_nodelay(self, value: bool) -> None:
        """Set TCP_NODELAY on the socket, if it is a TCP socket."""
        sock = None if self._closed else self._transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if value else 0)
            except OSError:
                pass  # the connection is already gone

    def _set_state(self, state: int) -> None:
        # No fd registration: READ interest maps to the transport's reading
        # (unless a receiver decides it).
        if self._closed:
            return
        self._state = state
        proto = self._proto
        if proto.detached and self._receiver is None:
            proto.set_stream_reading(bool(state & _READ))

    def set_receiver(self, receiver: Optional[Callable[[bytes], None]]) -> bytes:
        """Hands every later read to ``receiver`` as it arrives, with no read Future.

        The owner of a detached connection that parses its own bytes (a
        WebSocket) uses this instead of ``read_bytes``, and `set_receiving`
        instead of read interest. None gives reading back to the stream.

        Returns:
            The bytes received and not yet read (the receiver's first input).
        """
        if self._read_future is not None:
            raise RuntimeError("a read is pending on the stream")
        self._receiver = receiver
        rbuf = self._rbuf
        inbox = self._inbox
        if rbuf or inbox:
            pending = bytes(rbuf[self._rpos :]) + bytes(inbox)
        else:
            # (The usual handshake: the client waits for the 101 before
            # it sends a frame.)
            pending = b""
        self._rpos = 0
        # While a receiver takes the reads, the read buffer and the inbox
        # stay empty: the shared empty one (never written to) instead of
        # two per connection.
        if receiver is None:
            self._rbuf = bytearray()
            self._inbox = bytearray()
        else:
            self._rbuf = self._inbox = _NO_INBOX
        self._receiving = True
        proto = self._proto
        if proto.detached and not self._closed:
            # Reading on, as the receiver expects, or as the stream's idle
            # state does.
            proto.set_stream_reading(True)
        return pending

    def receive_to_websocket(self) -> bytes:
        """`set_receiver` with the adopted WebSocket's ``receive_bytes`` (see `adopt_websocket`).

        The stream calls it itself, rather than keep a bound method per
        connection.
        """
        return self.set_receiver(_to_websocket)

    def set_receiving(self, receiving: bool) -> None:
        """Pauses (False) or resumes the reads that go to the receiver."""
        self._receiving = receiving
        proto = self._proto
        if proto.detached and not self._closed and not (receiving and proto.write_paused):
            # (While writes are paused, reading resumes with them: resume_writing.)
            proto.set_stream_reading(receiving)

    def close(self, exc_info: Any = False) -> None:
        """Close the stream and its transport."""
        # Nothing is registered with the IOLoop; keep the base class from trying.
        self._state = None
        inbox = self._inbox
        if inbox and self._receiver is None:
            # Bytes the transport delivered that no read took yet (a
            # read_into takes only what it asks): a read after the close
            # still finds them, as it finds an fd stream's read-ahead.
            self._rbuf += inbox
            inbox.clear()
        BaseIOStream.close(self, exc_info)
        # None of these is called once closed (the adopted WebSocket's
        # on_connection_close is scheduled by _signal_closed above); each
        # refers to the stream's owner, a WebSocket protocol that holds the
        # stream: dropped, the pair is freed by reference counting, not left
        # for the cycle collector (a collection per handshake otherwise).
        self._receiver = None
        if self._on_drain is not None:
            self._on_drain = None
        ws = self._ws
        if ws is not None:
            # Its on_connection_close comes a loop turn later: meanwhile its
            # writes must not go straight to the transport (write_message
            # and broadcast write to it while it takes writes), but find the
            # stream closed.
            ws.set_write_paused(True)
            self._ws = None

    def _signal_closed(self) -> None:
        super()._signal_closed()
        ws = self._ws
        if ws is not None:
            aloop = self._aloop
            if aloop is None:
                self.io_loop.add_callback(ws.on_connection_close)
            else:
                # add_callback's effect (run a loop turn later by the IOLoop's
                # _run_callback, which logs an exception), without its
                # thread test and partial: this runs on the loop's thread, in
                # a transport callback or a close() made there (one fewer
                # call per closed WebSocket).
                try:
                    aloop.call_soon(self.io_loop._run_callback, ws.on_connection_close)
                except RuntimeError:
                    pass  # the loop is closed (as add_callback: the call is dropped)

    # -- called by the protocol ----------------------------------------------------

    def take_leftover(self, data: bytes) -> None:
        """Bytes the HTTP parser read past the last request: the stream's
        first input (the connection is being detached, nothing reads yet)."""
        self._inbox += data

    def feed_data(self, data: bytes) -> None:
        receiver = self._receiver
        if receiver is not None:
            if not self._closed:
                if receiver is _to_websocket:
                    ws = self._ws
                    assert ws is not None  # (receive_to_websocket follows adopt_websocket)
                    ws.receive_bytes(data)
                else:
                    receiver(data)
            return
        if self._closed:
            if self._rbuf is not _NO_INBOX:
                # Delivered as the transport closed (the TLS layer's last
                # records): a read after the close still finds them.
                self._rbuf += data
            return
        self._inbox += data
        self._handle_events(None, _READ)
        if self._read_future is None and not self._closed and (self._inbox or self._buffered()):
            # Nobody is reading: stop the transport until someone asks, as
            # an fd-based stream stops listening.
            state = self._state
            if state is not None and state & _READ:
                self._unwant(_READ)
            else:
                self._proto.set_stream_reading(False)

    def feed_eof(self) -> None:
        self._eof = True
        if self._closed:
            return
        state = self._state
        if (
            self._receiver is None
            and self._read_future is None
            and state is not None
            and not state & _READ
        ):
            # Not listening (its owner holds reading back: a WebSocket with
            # frames still to dispatch, hold_reading_ahead): the end is seen
            # by the next read, as an fd-based stream's would be, after the
            # owner has answered what came before it.
            return
        self._handle_events(None, _READ)

    def pause_writing(self) -> None:
        # The transport is over its high-water mark.
        ws = self._ws
        if ws is not None:
            ws.set_write_paused(True)

    def resume_writing(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.set_write_paused(False)
        if self._closed:
            return
        if len(self._write_buffer):
            self._handle_events(None, _WRITE)
        # The protocol paused reading along with writing (pause_writing);
        # a stream whose READ interest never changed meanwhile would not ask
        # again, and a peer waiting for an answer (a WebSocket close after a
        # large echo) would wait for ever.
        proto = self._proto
        state = self._state
        if self._receiver is not None:
            wanted = self._receiving
        else:
            wanted = state is not None and bool(state & _READ)
        if wanted and not self._closed and proto.detached and not proto.write_paused:
            proto.set_stream_reading(True)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        if self._closed:
            return
        # What arrived before the close stays readable after it.
        if self._inbox:
            self._rbuf += self._inbox
            self._inbox = bytearray()
        self._eof = True
        self.close(exc_info=exc if exc is not None else False)


class _TLSTransportStream(_TransportStream):
    """The stream of a connection over TLS (asyncio's TLS transport)."""

    __slots__ = ()

    def close_fd(self) -> None:
        # Records the peer sent that nobody read make the session's close
        # fail (OpenSSL will not send close_notify with application data
        # unread), and the connection would end without close_notify: a
        # truncation, to the peer. Reading on (if we had paused it) lets
        # the TLS layer take them first (feed_data keeps them for a read
        # after the close).
        self._proto.set_stream_reading(True)
        self._transport.close()
