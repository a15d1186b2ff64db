"""One HTTP/2 connection's state and output: `_H2Session`, the base of
``_h2protocol``'s `_H2Protocol`, which adds the frames in (the dispatch of
the core's events, the requests' start and their bodies).

The session owns the stream table, the output (a head held for a moment,
DATA handed to the core, whose flow-control windows keep what may not go
yet, one transport write per round), the streams that wait for window and
the timeouts that watch them (one sweep per connection, no timer per
stream), what the tunnels ask of their connection, GOAWAY, drain and close.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
from typing import TYPE_CHECKING, Final, Optional, cast

from squall._h2 import ErrorCode, H2Connection, H2Limits, LocalProtocolError
from squall.http1connection import HTTP1ConnectionParameters
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._flow import ReadFlow, body_limit

# The HTTP/1.1 driver's: the done Future of a write to a closed stream.
from squall.httpserver._h1exchange import _closed_future
from squall.httpserver._h2stream import _H2Stream
from squall.httpserver._h2websocket import _H2Tunnel, drain_tunnels, tunnels
from squall.httpserver._muxstream import StreamSlots, stream_census, sweep_by
from squall.log import gen_log

if TYPE_CHECKING:
    from squall.httpserver._server import HTTPServer


# Seconds a connection closed for a protocol error keeps reading (and
# dropping) the client's bytes so that the GOAWAY reaches it.
_LINGER: Final = 1.0


class _H2Session(asyncio.Protocol):
    """One HTTP/2 connection's streams, output, timeouts and close."""

    __slots__ = (
        "_server",
        "_params",
        "_loop",
        "context",
        "limits",
        "core",
        "transport",
        "_streams",
        "slots",
        "_good_host",
        "_start_request",
        "_max_body",
        "_in_feed",
        "_flush_handle",
        "_heads",
        "write_paused",
        "_paused_since",
        "_reading",
        "_waiting_window",
        "_waiting_sent",
        "_closing",
        "_closed",
        "_lingering",
        "_idle_since",
        "_idle_due",
        "_sweep_handle",
        "_closed_event",
        "_done_future",
    )

    def __init__(
        self,
        server: HTTPServer,
        params: HTTP1ConnectionParameters,
        loop: asyncio.AbstractEventLoop,
        context: Optional[_HTTPRequestContext],
        limits: H2Limits,
    ) -> None:
        self._server = server
        self._params = params
        self._loop = loop
        self.context = context
        self.limits = limits
        self.core = H2Connection(limits)
        self.transport: Optional[asyncio.Transport] = None
        self._streams: dict[int, _H2Stream] = {}
        #: The streams served at once (their slots: see ``_muxstream``).
        self.slots = StreamSlots()
        self._good_host: Optional[str] = None
        self._start_request = server._request_starter()
        self._max_body = body_limit(params, limits.max_body_size)
        self._in_feed = False
        self._flush_handle: Optional[asyncio.Handle] = None
        self._heads: list[_H2Stream] = []
        self.write_paused = False
        self._paused_since = 0.0
        # Reading pauses only while the transport is over its write mark: a
        # busy stream is slowed by its window, not by the connection.
        self._reading = ReadFlow()
        # Streams whose output waits for window, and since when.
        self._waiting_window: dict[int, float] = {}
        # Their bytes sent so far, as the last sweep saw them.
        self._waiting_sent: dict[int, int] = {}
        self._closing = False
        self._closed = False
        self._lingering = False
        self._idle_since = loop.time()
        # The last stream ended inside a feed: _idle_since is stamped at its end.
        self._idle_due = False
        self._sweep_handle: Optional[asyncio.TimerHandle] = None
        self._closed_event: Optional[asyncio.Future[None]] = None
        self._done_future: Optional[asyncio.Future[None]] = None

    # -- asyncio callbacks ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Only reached through take_over, which sets the transport itself.
        self.transport = self._reading.transport = cast(asyncio.Transport, transport)

    def eof_received(self) -> Optional[bool]:
        if self._lingering and self.transport is not None:
            self.transport.close()
        # Otherwise the client may still read the responses it waits for.
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._on_lost(exc)

    def pause_writing(self) -> None:
        self.write_paused = True
        self._paused_since = self._loop.time()
        # Stop reading too: a client that does not read must not make us
        # produce more (PING and SETTINGS answers, new responses).
        self._reading.pause()
        self._pause_tunnels(True)

    def resume_writing(self) -> None:
        self.write_paused = False
        if not self._closed:
            self._reading.resume()
        for stream in list(self._streams.values()):
            if stream.writers_waiting() and self.core.pending(stream.stream_id) == 0:
                stream.wake_writers()
        self._pause_tunnels(False)

    def _pause_tunnels(self, paused: bool) -> None:
        """The transport paused or resumed writing: the tunnels' WebSockets hear of it."""
        for tunnel in tunnels(self):
            tunnel.set_paused(paused)

    # -- output ---------------------------------------------------------------------------

    def queue_head(self, stream: _H2Stream) -> asyncio.Future[None]:
        """A head was written: hold it briefly, so that a finish() right after
        goes out with it (HEADERS, DATA with END_STREAM: no empty frame)."""
        self._heads.append(stream)
        if not self._in_feed and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)
        return self.write_ready(stream)

    def _send_head(self, stream: _H2Stream, end: bool) -> bool:
        """Hand the held head to h2; return False if its data waits for window."""
        head = stream.held_head
        assert head is not None
        stream.held_head = None
        block, chunk = head
        sid = stream.stream_id
        try:
            if not chunk:  # (a bodiless response's: see _H2Stream._emit_head)
                self.core.send_head_block(sid, block, end)
                return True
            self.core.send_head_block(sid, block, False)
            sent = self.core.send_data(sid, chunk, end)
        except LocalProtocolError:
            # The stream is closed in h2 but not here: the client reset it
            # (or broke it) in the read that opened it, and that reset is
            # an event after this request's. A reset is never answered
            # with one (RFC 9113 §5.4.2); h2 answered a stream error itself.
            self._lose_stream(stream)
            return True
        if not sent:
            self._waiting_window.setdefault(sid, self._loop.time())
        return sent

    def send_body(self, stream: _H2Stream, chunk: bytes) -> asyncio.Future[None]:
        """DATA on ``stream`` (after its held head, if any); the Future of
        the write (`write_ready`)."""
        if stream.held_head is not None:
            self._send_head(stream, False)
        if not self.queue_body(stream, chunk):
            return _closed_future(self._loop)
        return self.write_ready(stream)

    def queue_body(self, stream: _H2Stream, chunk: bytes) -> bool:
        """Hand ``chunk`` to the core (which holds what the windows do not
        let out); False if the stream is closed there."""
        try:
            sent = self.core.send_data(stream.stream_id, chunk)
        except LocalProtocolError:
            return False
        if not sent:
            self._waiting_window.setdefault(stream.stream_id, self._loop.time())
        self.flush_soon()
        return True

    def write_ready(self, stream: _H2Stream) -> asyncio.Future[None]:
        """The Future a write returns: done now, or once the bytes can go out."""
        if not self.write_paused and (
            stream.held_head is not None or self.core.pending(stream.stream_id) == 0
        ):
            done = self._done_future
            if done is None:
                done = self._done_future = self._loop.create_future()
                done.set_result(None)
            return done
        return stream.output_waiter()

    def wake_writers(self, stream: _H2Stream) -> None:
        """The stream's output went out: its writes waiting resume."""
        stream.wake_writers()

    def open_tunnel(self, stream: _H2Stream) -> None:
        """The 2xx of an extended CONNECT goes out without END_STREAM: it
        opens the tunnel (RFC 8441 §5), which holds the stream from now on."""
        if stream.held_head is not None:
            self._send_head(stream, False)
        self.flush_soon()

    def end_response(self, stream: _H2Stream) -> None:
        sid = stream.stream_id
        tunnel = stream.tunnel
        if tunnel is not None and tunnel.accepted:
            self.open_tunnel(stream)
            return
        trailers = stream.trailers_out
        sent = True
        if trailers is not None:
            stream.trailers_out = None
            if stream.held_head is not None:
                self._send_head(stream, False)
            try:
                sent = self.core.send_trailers(sid, trailers)
            except LocalProtocolError:
                pass
        elif stream.held_head is not None:
            sent = self._send_head(stream, True)
        else:
            try:
                sent = self.core.end_stream(sid)
            except LocalProtocolError:
                pass
        if not sent and not stream.is_closed:
            # RFC 9113 §5.1: the stream is open until its END_STREAM goes
            # out. Until then it counts as active, for the idle timeout (a
            # response held by flow control is not idle) and the stream
            # limit; its delegate hears nothing more. Drained completes it.
            self._waiting_window.setdefault(sid, self._loop.time())
            stream.abandon_read()
            stream.retire()
        else:
            self._complete(stream)
        if not self._in_feed and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _complete(self, stream: _H2Stream) -> None:
        """The response's last frame is out (or the stream is gone)."""
        if stream.response_sent() and stream.tunnel is None:
            self._retire(stream)
        elif stream.mark_closed():  # (what its inbox holds goes nowhere)
            # RFC 9113 §8.1: the response is complete; the rest of the
            # request body (or a refused tunnel's DATA) is not wanted.
            self.core.reset(stream.stream_id, ErrorCode.NO_ERROR)
            self._retire(stream)
            if stream.tunnel is not None:
                stream.tunnel.lost(None)  # gives back the window it held

    def streams_idle(self) -> None:
        """The last stream gave its slot back (see `StreamSlots`)."""
        if self._in_feed:
            # Stamped once when the feed ends (_end_round), not per
            # response: a read of many requests asks the clock once.
            self._idle_due = True
        else:
            self._idle_since = self._loop.time()
        if self._closing:
            self._close_soon()

    def _end_round(self) -> None:
        """Ends a round begun by setting ``_in_feed`` (a read, or a stream
        unblocked): what it produced goes out in one write. If the round
        left the connection idle at some point, its idle time starts now,
        unless a stream is open (only the sweep reads it, never inside a
        round; a stream opened later in the round counts from its own
        release)."""
        self._in_feed = False
        if self._idle_due:
            self._idle_due = False
            if not self.slots.active:
                self._idle_since = self._loop.time()
        self._flush()

    def _retire(self, stream: _H2Stream) -> None:
        """The exchange is over on our side: forget the stream."""
        self._streams.pop(stream.stream_id, None)
        stream.retire()

    def flush_soon(self) -> None:
        """Write what the core has queued, at the end of this feed or on the next turn."""
        if not self._in_feed and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def flush_now(self) -> None:
        """Write what is queued now, even inside a round (see `MuxDriver`)."""
        self._flush()

    def _flush(self) -> None:
        handle = self._flush_handle
        if handle is not None:
            self._flush_handle = None
            handle.cancel()
        heads = self._heads
        if heads:
            self._heads = []
            for stream in heads:
                if stream.held_head is not None:
                    self._send_head(stream, False)
        transport = self.transport
        data = self.core.data_to_send()
        # Nothing goes after our EOF (lingering): asyncio's transport
        # would raise RuntimeError; the client has been told GOAWAY already.
        if data and transport is not None and not self._closed and not self._lingering:
            transport.write(data)

    # -- closing streams ----------------------------------------------------------------

    def reset_stream(self, stream: _H2Stream, code: int) -> None:
        """Reset ``stream`` on our side and tell its delegate."""
        if stream.is_closed:
            return
        self.core.reset(stream.stream_id, code)
        self._waiting_window.pop(stream.stream_id, None)
        self._lose_stream(stream)
        if not self._in_feed and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _lose_stream(self, stream: _H2Stream, exc: Optional[BaseException] = None) -> None:
        """The stream is gone (reset, timed out, connection lost)."""
        if stream.is_closed:
            return
        self._streams.pop(stream.stream_id, None)
        self._waiting_window.pop(stream.stream_id, None)
        stream.lost(exc)  # (its writes waiting fail, its tunnel closes)

    # -- timeouts ------------------------------------------------------------------------

    def _schedule_sweep(self) -> None:
        limits = self.limits
        interval = min(limits.send_timeout, limits.idle_stream_timeout) / 4
        timeout = self._idle_timeout()
        if timeout is not None:
            interval = min(interval, timeout / 4)
        self._sweep_handle = self._loop.call_later(max(interval, 0.01), self._sweep)

    def _idle_timeout(self) -> Optional[float]:
        # HTTPServer's idle_connection_timeout: no stream open for that long.
        timeout: Optional[float] = getattr(
            self._server, "idle_connection_timeout", self._params.header_timeout
        )
        return timeout

    def _sweep(self) -> None:
        """Check the timeouts: one timer per connection, none per stream."""
        self._sweep_handle = None
        if self._closed:
            return
        now = self._loop.time()
        limits = self.limits
        if self.write_paused and now - self._paused_since > limits.send_timeout:
            gen_log.info("HTTP/2 client %s does not read; closing", self.context)
            self._abort()
            return
        sent_before = self._waiting_sent
        self._waiting_sent = {}
        for sid, since in list(self._waiting_window.items()):
            stream = self._streams.get(sid)
            if stream is not None:
                sent = stream.written - self.core.pending(sid)
                self._waiting_sent[sid] = sent
                if sent != sent_before.get(sid, sent):
                    # Bytes went out since the last look: the client reads
                    # slowly, it does not hold its window shut.
                    self._waiting_window[sid] = now
                    continue
            if now - since > limits.send_timeout:
                del self._waiting_window[sid]
                gen_log.info(
                    "HTTP/2 stream %d of %s: flow-control window closed for %gs; reset",
                    sid,
                    self.context,
                    limits.send_timeout,
                )
                if stream is not None:
                    self.reset_stream(stream, ErrorCode.CANCEL)
                else:
                    self.core.reset(sid, ErrorCode.CANCEL)
        body_timeout = self._params.body_timeout
        earliest: Optional[float] = None  # the next body deadline
        for stream in list(self._streams.values()):
            if not stream.reading():
                continue
            if now - stream.last_active > limits.idle_stream_timeout or stream.body_overdue(
                now, body_timeout
            ):
                gen_log.info(
                    "HTTP/2 stream %d of %s: request not completed in time; reset",
                    stream.stream_id,
                    self.context,
                )
                self.reset_stream(stream, ErrorCode.CANCEL)
            else:
                due = stream.body_deadline(body_timeout)
                if due is not None and (earliest is None or due < earliest):
                    earliest = due
        idle = self._idle_timeout()
        if idle is not None and not self.slots.active and now - self._idle_since > idle:
            self.core.goaway(ErrorCode.NO_ERROR, "idle")
            self._abort()
            return
        self._flush()
        self._schedule_sweep()
        if earliest is not None:
            self.check_timeouts_by(earliest)

    def check_timeouts_by(self, when: float) -> None:
        """The next `_sweep` comes no later than just after ``when`` (see `sweep_by`)."""
        if not self._closed:
            self._sweep_handle = sweep_by(self._sweep_handle, self._loop, when, self._sweep)

    # -- closing the connection ---------------------------------------------------------

    def _close_soon(self) -> None:
        self._loop.call_soon(self._abort, True)

    def _abort(self, linger: bool = False) -> None:
        """Send what is queued (a GOAWAY, say) and close.

        With ``linger``, the close waits (up to ``_LINGER`` seconds) for the
        client's EOF while its further bytes are read and dropped: closing
        a socket with unread input makes the kernel send a reset, which
        can destroy the GOAWAY that says why before the client reads it.
        """
        if self._closed or (linger and self._lingering):
            # (Lingering already: its timer or the client's EOF ends it.)
            return
        self._flush()
        self._closing = True
        transport = self.transport
        if transport is None:
            return
        if linger and not self._lingering and transport.can_write_eof():
            self._lingering = True
            try:
                transport.write_eof()
            except OSError:
                # The client is already gone (ENOTCONN): nothing to wait for.
                transport.abort()
                return
            self._loop.call_later(_LINGER, self._hard_close)
            self._reading.resume()
            return
        transport.close()

    def _shutdown(self) -> None:
        """Graceful stop: GOAWAY now, close when the streams in flight are done."""
        if self._closed:
            return
        self._closing = True
        drain_tunnels(self)  # their close frames first, then the GOAWAY
        self.core.goaway(ErrorCode.NO_ERROR)
        self._flush()
        if not self.slots.active:
            self._abort(linger=True)

    def _drain(self, params: HTTP1ConnectionParameters) -> None:
        """The server drains (`HTTPServer.drain`): GOAWAY, close once idle."""
        self._shutdown()

    def census(self) -> tuple[str, int, int]:
        """What this connection carries, for metrics: ``("h2", requests in
        flight, WebSocket tunnels)`` (see `stream_census`)."""
        return ("h2", *stream_census(self._streams.values()))

    def _hard_close(self) -> None:
        """Drop the connection now, discarding unsent output."""
        transport = self.transport
        if transport is not None and not self._closed:
            transport.abort()

    def _on_lost(self, exc: Optional[BaseException]) -> None:
        if self._closed:
            return
        self._closed = True
        self._reading.release()
        for handle in (self._sweep_handle, self._flush_handle):
            if handle is not None:
                handle.cancel()
        self._sweep_handle = self._flush_handle = None
        for stream in list(self._streams.values()):
            self._lose_stream(stream, exc)
        self._streams.clear()
        self._waiting_window.clear()
        self._server._forget(self)
        event = self._closed_event
        if event is not None and not event.done():
            event.set_result(None)

    async def close(self) -> None:
        """Send GOAWAY, close the connection and wait until it is closed."""
        if self._closed:
            return
        if self._closed_event is None:
            self._closed_event = self._loop.create_future()
        event = self._closed_event
        self.core.goaway(ErrorCode.NO_ERROR)
        self._abort(linger=True)
        await event

    # -- what a tunnel asks of its connection (_h2websocket.H2TunnelCarrier) ------------

    def end_tunnel(self, stream: _H2Stream) -> bool:
        """END_STREAM after what ``stream`` queued; False while that waits
        for window (the stream stays open until Drained, RFC 9113 §5.1)."""
        try:
            sent = self.core.end_stream(stream.stream_id)
        except LocalProtocolError:
            sent = True
        if not sent:
            self._waiting_window.setdefault(stream.stream_id, self._loop.time())
        self.flush_soon()
        return sent

    def tunnel_ended(self, stream: _H2Stream) -> None:
        """The tunnel's END_STREAM is out: the stream is done on our side;
        the rest of what the peer sends is not wanted (RFC 9113 §8.1; the
        core sends no reset if the peer's END_STREAM came first)."""
        self._waiting_window.pop(stream.stream_id, None)
        stream.mark_closed()
        self.core.reset(stream.stream_id, ErrorCode.NO_ERROR)
        stream.free_slot()
        self._retire(stream)

    def tunnels(self) -> list[_H2Tunnel]:
        """The tunnels of the connection's streams (accepted or not yet)."""
        return [s.tunnel for s in self._streams.values() if s.tunnel is not None]
