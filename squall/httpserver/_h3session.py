"""One HTTP/3 connection's state and output: `_H3Session`, the base of
``_h3protocol``'s `_H3Protocol`, which adds what comes in (the QUIC and
H3 events, the requests' start and their bodies).

The session owns the stream table and the output: a response's head held
until the response ends or the loop turns, writes that go to aioquic's
per-stream send buffer and whose future waits while that buffer holds
more than `_HIGH_WATER` bytes the client has not acknowledged (so
``await self.flush()`` waits for a slow client), the sweep that resets a
stream whose buffer does not move for the server's ``write_timeout`` (a
response's, a tunnel's or a WebTransport stream's), a body that does not
arrive in time and an idle connection, the handshake timeout, and GOAWAY,
drain, close and release. It is also what the tunnels and WebTransport
sessions ask of their connection (`quic`, `tunnels`,
`webtransport_sessions`, `stream_writable`).
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
from typing import TYPE_CHECKING, Any, Optional

from squall._quicstack import (
    FrameType,
    H3Connection,
    H3Error,
    QuicConnection,
    QuicConnectionProtocol,
    TransmitError,
    amplification_room,
    encode_frame,
    encode_uint_var,
    ends_unacknowledged,
    send_backlog,
    send_stopped,
    set_stream_credit,
)
from squall.httpserver import _flow as flow
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._h3stream import _H3Stream
from squall.httpserver._h3websocket import _H3Tunnel, drain_tunnels
from squall.httpserver._h3webtransport import (
    SessionTable,
    drain_sessions,
    send_datagrams,
    stream_timed_out,
)
from squall.httpserver._muxstream import StreamSlots, stream_census, sweep_by
from squall.iostream import StreamClosedError
from squall.log import gen_log

if TYPE_CHECKING:
    from squall.http1connection import HTTP1ConnectionParameters
    from squall.httpserver._server import HTTPServer

# HTTP/3's largest request body when the server sets none (aioquic's core
# has no body limit of its own): the same as HTTP/1.1's and HTTP/2's.
_MAX_BODY_SIZE = 100 * 1024 * 1024
_DEFAULT_MAX_STREAMS = 100
# Unacknowledged bytes a stream's send buffer may hold before its writes wait.
_HIGH_WATER = 256 * 1024


def _ignore(*args: object) -> None:
    """A callback that does nothing (a released connection's)."""


class _H3Session(QuicConnectionProtocol):
    """One QUIC connection carrying HTTP/3: its state and output (see the module)."""

    INTERNAL_ERROR = H3Error.H3_INTERNAL_ERROR
    REQUEST_CANCELLED = H3Error.H3_REQUEST_CANCELLED

    def __init__(
        self,
        quic: Any,
        server: HTTPServer,
        limits: dict[str, int],
        half_open: Optional[set[_H3Session]] = None,
    ) -> None:
        super().__init__(quic)
        self._server = server
        # The endpoint's half-open connections: this one leaves it when its
        # handshake completes.
        self._half_open = half_open
        params: HTTP1ConnectionParameters = server.conn_params
        self._params = params
        self.max_streams: int = limits.get("max_concurrent_streams", _DEFAULT_MAX_STREAMS)
        self.max_header_size: int = params.max_header_size or 65536
        # The initial MAX_STREAMS credit (a transport parameter), set before
        # the handshake where the stack lets it be (see _quicstack); where
        # not, streams over the limit are refused as they open.
        self.stream_credit = set_stream_credit(quic, self.max_streams)
        self.h3: Optional[H3Connection] = None
        self._streams: dict[int, _H3Stream] = {}
        #: The streams served at once (their slots: see ``_muxstream``).
        self.slots = StreamSlots()
        self._max_body = flow.body_limit(params, _MAX_BODY_SIZE)
        self.context: Optional[_HTTPRequestContext] = None
        self._start_request = server._request_starter(alt_svc=False)
        self._good_host: Optional[str] = None
        # The first request stream not processed (GOAWAY's identifier).
        self._next_stream = 0
        # WebTransport sessions and seats (squall.httpserver._h3webtransport);
        # true while a session is open.
        self._webtransport: Optional[SessionTable] = None
        self._closing = False
        # Draining, done, waiting for the client to acknowledge the last bytes.
        self._close_pending = False
        self._gone = False
        self._done_future: Optional[asyncio.Future[None]] = None
        self._closed_waiter: Optional[asyncio.Future[None]] = None
        self._flush_handle: Optional[asyncio.Handle] = None
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        # Writes waiting for the client to take a stream's output, by
        # stream; since when, and how much it held at the last sweep.
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        # Response heads (and first chunks) not yet given to aioquic, by
        # stream: see `_send_head`.
        self._held: dict[int, tuple[list[tuple[bytes, bytes]], bytes]] = {}
        self._stalled: dict[int, tuple[float, int]] = {}
        # Since when no request has been in progress (the idle timeout).
        self._idle_since = self._loop.time()
        server._connections.add(self)
        self._schedule_sweep()
        self._handshake_timer: Optional[asyncio.TimerHandle] = self._loop.call_later(
            params.header_timeout or 10.0, self._handshake_timed_out
        )

    @property
    def transport(self) -> Optional[asyncio.DatagramTransport]:
        """The UDP transport the connection's datagrams go through (shared
        with the endpoint's other connections); None before it is known."""
        return self._transport

    # -- the handshake timeout, and responses (called by _H3Stream) ------------------

    def _handshake_timed_out(self) -> None:
        self._handshake_timer = None
        if self._gone:
            return
        # Debug, as HTTP/1.1's head timeout: a flood of Initials that never
        # complete (23,625 in a 10-minute make soak) would otherwise write a
        # line each, a log volume the sender decides.
        gen_log.debug("HTTP/3: handshake from %s not completed in time; dropped", self.context)
        # RFC 9000 section 8.1: until the client's address is validated it
        # gets at most three times what it sent, and aioquic does not count
        # a CONNECTION_CLOSE against that: the datagrams of the close that
        # do not fit are not sent (the client's own timeout ends it then).
        quic = self._quic
        room = amplification_room(quic)
        transport = self._transport
        if room is None or transport is None:
            self._close_quic()
            return
        quic.close(error_code=H3Error.H3_NO_ERROR)
        for data, addr in quic.datagrams_to_send(now=self._loop.time()):
            if len(data) <= room:
                room -= len(data)
                transport.sendto(data, addr)
        # The connection's timer, for its draining period (what else aioquic
        # would send now is held to the limit by aioquic itself).
        self.transmit()
        self._on_lost()

    def transmit(self) -> None:
        if self._webtransport:
            send_datagrams(self)  # what the sessions queued, if the stack has room
        try:
            super().transmit()
        except TransmitError as exc:
            # The stack could not build this turn's datagrams (see
            # _quicstack.TransmitError); the client's next datagram (its
            # own retransmission at worst) brings another try.
            gen_log.debug("HTTP/3: nothing sent to %s this turn: %s", self.context, exc)
        if self._close_pending and not self._unfinished():
            self._close_pending = False
            self._close_quic()
        if self._waiters:
            # Acknowledgements came in: wake the writes whose stream took them.
            for sid in list(self._waiters):
                if self._unacked(sid) <= _HIGH_WATER:
                    self._stalled.pop(sid, None)
                    self._wake(sid)
                    stream = self._streams.get(sid)
                    if stream is not None and stream.tunnel is not None:
                        stream.tunnel.set_paused(False)

    def _unacked(self, sid: int) -> int:
        return send_backlog(self._quic, sid)

    def _wake(self, sid: int, exc: Optional[BaseException] = None) -> None:
        for waiter in self._waiters.pop(sid, ()):
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)
                    waiter.exception()

    def abandon_writes(self, sid: int) -> None:
        """Stream ``sid`` is gone (a WebTransport stream reset: by either
        side, its session's end or the write timeout): the writes that wait
        on it fail with `ConnectionResetError`."""
        self._stalled.pop(sid, None)
        if sid in self._waiters:
            self._wake(sid, ConnectionResetError(f"WebTransport stream {sid} reset"))

    def stream_writable(self, sid: int) -> asyncio.Future[None]:
        """What a write on stream ``sid`` returns (a response's, a WebTransport
        stream's): done, or a wait while the stream holds more than the
        high-water mark of output the client has not acknowledged."""
        if self._unacked(sid) <= _HIGH_WATER:
            return self.write_ready()
        waiter = self._loop.create_future()
        self._waiters.setdefault(sid, []).append(waiter)
        self._stalled.setdefault(sid, (self._loop.time(), self._unacked(sid)))
        stream = self._streams.get(sid)
        if stream is not None and stream.tunnel is not None:
            # A WebSocket's direct writes (and broadcast's) stop going to
            # the stream until the client takes its output (see transmit),
            # as an HTTP/1.1 transport's pause_writing stops them.
            stream.tunnel.set_paused(True)
        return waiter

    def write_ready(self) -> asyncio.Future[None]:
        done = self._done_future
        if done is None:
            done = self._done_future = self._loop.create_future()
            done.set_result(None)
        return done

    def send_head(
        self, stream: _H3Stream, fields: list[tuple[bytes, bytes]], chunk: bytes
    ) -> asyncio.Future[None]:
        if stream.tunnel is None:
            # Held until the response ends or the loop turns, whichever is
            # first: most responses end in the call that starts them, and
            # then HEADERS, DATA and the FIN go to aioquic at once (one
            # QUIC stream write fewer, and no empty DATA frame to end it).
            self._held[stream.stream_id] = (fields, chunk)
            self.flush_soon()
            return self.write_ready()
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(stream.stream_id, fields, False)
            if chunk:
                h3.send_data(stream.stream_id, chunk, False)
        except Exception:
            self._send_failed(stream)
        self.flush_soon()
        return self.stream_writable(stream.stream_id)

    def _release(self, sid: int, end: bool) -> None:
        """Gives a held head (and its chunk) to aioquic; ``end``: with the FIN."""
        h3 = self.h3
        assert h3 is not None
        fields, chunk = self._held.pop(sid)
        h3.send_headers(sid, fields, end and not chunk)
        if chunk:
            h3.send_data(sid, chunk, end)

    def _release_held(self) -> None:
        for sid in list(self._held):
            try:
                self._release(sid, False)
            except Exception:
                stream = self._streams.get(sid)
                if stream is not None:
                    self._send_failed(stream)

    def send_body(self, stream: _H3Stream, chunk: bytes) -> asyncio.Future[None]:
        h3 = self.h3
        assert h3 is not None
        try:
            if stream.stream_id in self._held:
                self._release(stream.stream_id, False)
            h3.send_data(stream.stream_id, chunk, False)
        except Exception:
            self._send_failed(stream)
        self.flush_soon()
        return self.stream_writable(stream.stream_id)

    def send_interim(self, stream: _H3Stream, fields: list[tuple[bytes, bytes]]) -> bool:
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_headers(stream.stream_id, fields, False)
        except Exception:
            return False
        self.flush_soon()
        return True

    def end_response(self, stream: _H3Stream) -> None:
        h3 = self.h3
        assert h3 is not None
        trailers = stream.trailers_out
        try:
            if trailers is not None:
                # The trailer section ends the stream (RFC 9114 section 4.1).
                stream.trailers_out = None
                if stream.stream_id in self._held:
                    self._release(stream.stream_id, False)
                h3.send_headers(stream.stream_id, trailers, True)
            elif stream.stream_id in self._held:
                self._release(stream.stream_id, True)
            else:
                h3.send_data(stream.stream_id, b"", True)
        except Exception:
            self._send_failed(stream)
            return
        if stream.response_sent():
            self._retire(stream)
        else:
            # RFC 9114 section 4.1.1: the response is complete; the rest of
            # the request is not wanted.
            try:
                self._quic.stop_stream(stream.stream_id, H3Error.H3_NO_ERROR)
            except Exception:
                pass
            stream.mark_closed()
            self._retire(stream)
        self.flush_soon()

    def end_tunnel(self, stream: _H3Stream) -> None:
        """The WebSocket closed its tunnel: FIN after what is queued."""
        h3 = self.h3
        assert h3 is not None
        try:
            h3.send_data(stream.stream_id, b"", True)
        except Exception:
            pass
        stream.mark_closed()
        stream.free_slot()
        self._retire(stream)
        self.flush_soon()

    def streams_idle(self) -> None:
        """The last stream gave its slot back (see `StreamSlots`)."""
        self._idle_since = self._loop.time()
        if self._closing:
            self._loop.call_soon(self._close_when_acknowledged)

    def _retire(self, stream: _H3Stream) -> None:
        """The exchange is over on our side: forget the stream."""
        self._streams.pop(stream.stream_id, None)
        stream.retire()

    def reset_stream(self, stream: _H3Stream, code: int) -> None:
        """Reset ``stream`` on our side and tell its delegate."""
        if stream.is_closed:
            return
        try:
            self._quic.reset_stream(stream.stream_id, code)
            if not stream.read_done:
                self._quic.stop_stream(stream.stream_id, code)
        except Exception:
            pass
        self._lose_stream(stream)
        self.flush_soon()

    def _send_failed(self, stream: _H3Stream) -> None:
        """The QUIC stack raised on a write of ``stream``'s response (called
        in the ``except``). If the client stopped the stream meanwhile (its
        STOP_SENDING, read in the datagram this write follows, is not yet
        handled), the stream is forgotten quietly. Any other cause (a field
        section the stack refuses, a fault of ours) is logged and the stream
        reset towards the client (H3_INTERNAL_ERROR, and STOP_SENDING if the
        request is still read), which would otherwise wait for a response
        until its own timeout."""
        if stream.is_closed:
            return
        if send_stopped(self._quic, stream.stream_id):
            self._lose_stream(stream)
            return
        gen_log.error(
            "HTTP/3 stream %d of %s: the response could not be sent; reset",
            stream.stream_id,
            self.context,
            exc_info=True,
        )
        self.reset_stream(stream, H3Error.H3_INTERNAL_ERROR)

    def _lose_stream(self, stream: _H3Stream) -> None:
        if stream.is_closed:
            return
        self._stalled.pop(stream.stream_id, None)
        self._held.pop(stream.stream_id, None)
        if stream.stream_id in self._waiters:
            self._wake(stream.stream_id, StreamClosedError())
        self._streams.pop(stream.stream_id, None)
        stream.lost()  # (and its tunnel, if any)

    def flush_soon(self) -> None:
        if self._flush_handle is None and not self._gone:
            self._flush_handle = self._loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Send what is queued now, not on the next turn (see `MuxDriver`)."""
        handle = self._flush_handle
        if handle is not None:
            handle.cancel()
        self._flush()

    def _flush(self) -> None:
        self._flush_handle = None
        if not self._gone and self._transport is not None:
            if self._held:
                self._release_held()
            self.transmit()

    # -- timeouts ---------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        interval = self._params.header_timeout or 10.0
        for timeout in (self._server.write_timeout, self._server.idle_connection_timeout):
            if timeout is not None:
                interval = min(interval, timeout)
        interval /= 4
        self._sweep_handle = self._loop.call_later(max(interval, 0.01), self._sweep)

    def _sweep(self) -> None:
        """A request whose head came but whose body does not, in time: reset.

        (QUIC's idle timeout ends a connection that sends nothing at all.)
        """
        self._sweep_handle = None
        if self._gone:
            return
        now = self._loop.time()
        write_timeout = self._server.write_timeout
        for sid, (since, held) in list(self._stalled.items()):
            unacked = self._unacked(sid)
            if unacked < held:
                self._stalled[sid] = (now, unacked)  # slow, not stopped
            elif write_timeout is not None and now - since > write_timeout:
                stalled = self._streams.get(sid)
                gen_log.info(
                    "HTTP/3 stream %d of %s: the client took nothing for %gs; reset",
                    sid,
                    self.context,
                    write_timeout,
                )
                if stalled is not None:
                    self.reset_stream(stalled, H3Error.H3_REQUEST_CANCELLED)
                elif not (self._webtransport and stream_timed_out(self, sid)):
                    self._stalled.pop(sid, None)
        body_timeout = self._params.body_timeout
        earliest: Optional[float] = None  # the next body deadline
        for stream in list(self._streams.values()):
            if stream.reading() and stream.body_overdue(now, body_timeout):
                gen_log.info(
                    "HTTP/3 stream %d of %s: request not completed in time; reset",
                    stream.stream_id,
                    self.context,
                )
                self.reset_stream(stream, H3Error.H3_REQUEST_CANCELLED)
            else:
                due = stream.body_deadline(body_timeout)
                if due is not None and (earliest is None or due < earliest):
                    earliest = due
        # HTTPServer's idle_connection_timeout: no request for that long.
        # (QUIC's own idle timeout counts packets: a client that only
        # sends PINGs would keep the connection for ever.)
        idle = self._server.idle_connection_timeout
        if not self.slots.active and idle is not None and now - self._idle_since > idle:
            gen_log.debug("HTTP/3 connection of %s idle for %gs; closed", self.context, idle)
            self._goaway()
            self._close_quic()
            return
        self._schedule_sweep()
        if earliest is not None:
            self.check_timeouts_by(earliest)

    def check_timeouts_by(self, when: float) -> None:
        """The next `_sweep` comes no later than just after ``when`` (see `sweep_by`)."""
        if not self._gone:
            self._sweep_handle = sweep_by(self._sweep_handle, self._loop, when, self._sweep)

    # -- closing ------------------------------------------------------------------------

    def _goaway(self) -> None:
        h3 = self.h3
        control = getattr(h3, "_local_control_stream_id", None)
        if h3 is None or control is None:
            return
        # RFC 9114 section 5.2: requests on streams from this one on were
        # not processed (aioquic has no call for it: the frame is written
        # on its control stream).
        frame = encode_frame(FrameType.GOAWAY, encode_uint_var(self._next_stream))
        try:
            self._quic.send_stream_data(control, frame)
        except Exception:
            pass

    def _drain(self, params: Any = None) -> None:
        """The server drains: GOAWAY, close once the streams in flight are done."""
        if self._gone or self._closing:
            return
        self._closing = True
        drain_tunnels(self)  # their close frames first, then the GOAWAY
        if self._webtransport:
            drain_sessions(self)
        self._goaway()
        if not self.slots.active:
            self._close_when_acknowledged()
        else:
            self.flush_soon()

    def _unfinished(self) -> bool:
        """Whether a response stream's end (FIN or reset) is not yet acknowledged."""
        return ends_unacknowledged(self._quic)

    def _close_when_acknowledged(self) -> None:
        # A CONNECTION_CLOSE sent with response bytes in flight would lose
        # them (the client discards its streams): wait for the acknowledgements
        # (each datagram in comes through transmit); the drain's deadline
        # bounds the wait.
        if self._gone:
            return
        if self._unfinished():
            self._close_pending = True
            self.flush_soon()
        else:
            self._close_quic()

    def _close_quic(self, code: int = H3Error.H3_NO_ERROR) -> None:
        if self._gone:
            return
        self._quic.close(error_code=code)
        self.transmit()
        # The QUIC close lingers for its drain period in aioquic (three
        # probe timeouts); the server is done with the connection now.
        self._on_lost()

    def census(self) -> tuple[str, int, int]:
        """What this connection carries, for metrics: ``("h3", requests in
        flight, WebSocket tunnels)`` (see `stream_census`)."""
        return ("h3", *stream_census(self._streams.values()))

    def _hard_close(self) -> None:
        self._close_quic()

    async def close(self) -> None:  # type: ignore[override]
        """GOAWAY, close the connection now (streams in flight are reset)."""
        if not self._gone:
            self._goaway()
            self._close_quic()

    def release(self) -> None:
        """Free aioquic's state of this terminated connection now.

        That state is a web of reference cycles (its frame handler table,
        TLS callbacks and loss recovery hold bound methods of the
        connection; aioquic's server gave this protocol callbacks that hold
        it), so without this an ended connection's state (tens of KiB)
        waits for a full collection, which CPython runs by object counts,
        not bytes: under ``make soak``'s HTTP/3 clients alone RSS settled
        about 30 MB higher. Emptying the connection's attributes breaks
        every cycle at once, whatever aioquic's version keeps. Skipped while
        a WebTransport session has yet to see its end (its tasks may still
        reach the connection): the collector frees that one.
        """
        if not self._gone or self._webtransport:
            return
        vars(self._quic).clear()
        self._connection_id_issued_handler = _ignore
        self._connection_id_retired_handler = _ignore
        self._connection_terminated_handler = _ignore

    def _on_lost(self) -> None:
        if self._gone:
            return
        self._gone = True
        for handle in (self._sweep_handle, self._flush_handle, self._handshake_timer):
            if handle is not None:
                handle.cancel()
        self._sweep_handle = self._flush_handle = self._handshake_timer = None
        for stream in list(self._streams.values()):
            self._lose_stream(stream)
        self._streams.clear()
        self._server._forget(self)

    # -- what tunnels and WebTransport sessions ask (_h3websocket, _h3webtransport) -----

    @property
    def quic(self) -> QuicConnection:
        """aioquic's connection (QuicConnectionProtocol keeps it as ``_quic``)."""
        return self._quic

    def tunnels(self) -> list[_H3Tunnel]:
        """The tunnels of the connection's streams (accepted or not yet)."""
        return [s.tunnel for s in list(self._streams.values()) if s.tunnel is not None]

    def stream_backlog(self, stream: _H3Stream) -> int:
        """Bytes of ``stream``'s output the client has not taken yet (none
        once the connection is gone: its QUIC state may be released)."""
        return 0 if self._gone else self._unacked(stream.stream_id)

    def stream_full(self, stream: _H3Stream) -> bool:
        """Whether writes on ``stream`` wait: its backlog is over the high-water mark."""
        return self.stream_backlog(stream) > _HIGH_WATER

    def webtransport_sessions(self) -> SessionTable:
        """The WebTransport sessions and seats (the table made on first use)."""
        found = self._webtransport
        if found is None:
            found = self._webtransport = SessionTable()
        return found
