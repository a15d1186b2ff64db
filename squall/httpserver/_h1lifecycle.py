"""The HTTP/1.1 driver's connection life (`_H1Lifecycle`, between `_H1Output`
and `_HTTPProtocol`): accepting (and TLS), the idle, head and body clocks,
handing the connection to an IOStream (``detach``), and closing.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
import ssl
from typing import TYPE_CHECKING, Optional

from squall._compiled import mypyc_attr
from squall._h1 import H1Connection
from squall.http1connection import HTTP1ConnectionParameters
from squall.httpserver._flow import ReadFlow
from squall.httpserver._h1exchange import (
    _BLOCKED,
    _CLOSED,
    _CLOSING,
    _DETACHED,
    _IDLE,
    _QUEUED,
    _REQUEST,
    _RESPONSE,
    _STOPPED,
    _TAKEN,
    _call_at,
    _loop_shared,
)
from squall.httpserver._h1output import _H1Output
from squall.httpserver._stream import _TLSTransportStream, _TransportStream
from squall.httputil import HTTPConnection, HTTPMessageDelegate
from squall.httputil._drivers import _new_h1
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log

if TYPE_CHECKING:
    from squall.httpserver._server import HTTPServer


# Seconds close() lets buffered output drain before aborting the connection.
_CLOSE_GRACE = 1.0


# What a detached connection holds instead of its own H1Connection: one for
# the process, never fed (see detach).
_spent: Optional[H1Connection] = None


def _spent_core(params: HTTP1ConnectionParameters) -> H1Connection:
    global _spent
    core = _spent
    if core is None:
        core = _spent = _new_h1("server", params, False)
    return core


def _no_request(protocol: object, request: HTTPConnection) -> HTTPMessageDelegate:
    raise RuntimeError("the connection was detached: no more requests start on it")


@mypyc_attr(allow_interpreted_subclasses=True)
class _H1Lifecycle(_H1Output):
    """One accepted connection, from ``connection_made`` to ``connection_lost``."""

    __slots__ = ()

    def __init__(
        self,
        server: HTTPServer,
        params: HTTP1ConnectionParameters,
        ssl_context: Optional[ssl.SSLContext],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._server = server
        # The server's connections and drain (public names: an interface
        # between the two modules).
        self._table = server._table
        self._use_params(params)
        self._ssl = ssl_context
        self.loop = loop
        self.h1 = _new_h1("server", params, False)
        self.transport = None
        self.context = None
        self.state = _IDLE
        self.flow = 0
        # Whether we paused the transport's reading (the reasons are _flow's
        # bits: _STALLED, _WRITE_PAUSED, and the parser's backlog).
        self._reading = ReadFlow()
        # Set while _process runs: what the delegate writes then is flushed
        # once at its end, and a nested _process returns at once.
        self.in_feed = False
        self.exchange = None
        # The request's delegate until its body has been read (None after).
        self.delegate = None
        self._leftover = None
        # Output queued for the next write; None once detached (the stream
        # writes to the transport itself, and an idle WebSocket keeps this
        # protocol for its lifetime).
        self.output = []
        self._drain_waiters = None
        self.done_future, self._timer_context, self._writes, self._arming = _loop_shared(loop)
        self._stream = None
        self._idle_since = 0.0
        self._idle_timer = None
        # When the head now awaited began (0.0: none begun, the connection
        # is idle between exchanges).
        self._head_since = 0.0
        self._body_timer = None
        self._write_timer = None
        self._closed_event = None
        self._tls_task = None
        self._good_host = None
        self._start_request = server._request_starter(in_task=self._in_task)

    @property
    def detached(self) -> bool:
        # Read by the transport stream (_stream.py).
        return self.state == _DETACHED

    @property
    def taken(self) -> bool:
        # Detached (even if lost before): read by the exchange's ``stream``.
        return bool(self.flow & _TAKEN)

    def _use_params(self, params: HTTP1ConnectionParameters) -> None:
        # What the request path reads of the (interpreted) parameters, as
        # fields: no decompression and no body timeout (_on_request), and
        # no_keep_alive (the exchange's head).
        self._params = params
        self._plain = not params.decompress and params.body_timeout is None
        self.no_keep_alive = bool(params.no_keep_alive)

    def _hand_over(self) -> bool:
        """Another protocol (HTTP/2) takes the transport: step aside, closing
        nothing. Returns whether reading was paused (the caller resumes it)."""
        self.state = _CLOSED
        self._cancel_timers()
        return self._reading.release()

    # -- asyncio callbacks -----------------------------------------------------------
    # (connection_made is _HTTPProtocol's: ALPN may hand the connection to HTTP/2.)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._on_lost(exc)

    # -- timeouts ------------------------------------------------------------------

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.state >= _CLOSING:
            return
        gen_log.info("Timeout reading body from %s", self.context)
        self.state = _STOPPED
        transport = self.transport
        if transport is not None:
            transport.close()

    def _start_idle_timer(self) -> None:
        # A new connection owes its first head at once: both clocks run. Its
        # timer is armed on the next turn if no exchange has begun (_ArmQueue).
        self._idle_since = self._head_since = self.loop.time()
        self._arm_next_turn()

    def _arm_next_turn(self) -> None:
        loop = self.loop
        if loop.is_running():
            self._arming.add(self)
        else:
            # Driven by hand outside a running loop (as tests do): armed now,
            # and nothing queued on a loop that may be closed unrun (the queue
            # is the loop's, which its connections would then keep alive).
            self._arm_idle_timer(self._idle_deadline(loop.time()))

    def arm_if_idle(self) -> None:
        """The turn after the accept (`_ArmQueue`): the idle timer, unless an
        exchange has begun, one is armed already, or the connection is
        done."""
        if self.state == _IDLE and self._idle_timer is None:
            self._arm_idle_timer(self._idle_deadline(self.loop.time()))

    def _head_started(self) -> None:
        """The first bytes of a head arrived on an idle connection."""
        self._head_since = now = self.loop.time()
        timeout = self._params.header_timeout
        if timeout is not None:
            timer = self._idle_timer
            if timer is None or timer.when() > now + timeout:
                self._arm_idle_timer(now + timeout)

    def _arm_idle_timer(self, when: Optional[float]) -> None:
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()
        self._idle_timer = (
            None
            if when is None
            else _call_at(self.loop, when, self._check_idle, self._timer_context)
        )

    def _idle_deadline(self, now: float) -> Optional[float]:
        """When the connection times out, if no exchange is in progress."""
        idle = self._server.idle_connection_timeout
        when = None if idle is None else self._idle_since + idle
        header = self._params.header_timeout
        if self._head_since and header is not None:
            head_when = self._head_since + header
            if when is None or head_when < when:
                when = head_when
        table = self._table
        if self._params is table.drain_params and not self.h1.buffered:
            # The server drains and no byte of a next request has come: the
            # connection closes at the end of the drain's idle grace.
            closing = table.drain_idle_deadline
            if when is None or closing < when:
                when = closing
        return when

    def _check_idle(self) -> None:
        """Close a connection idle for ``idle_connection_timeout`` between
        exchanges, or whose head took longer than ``header_timeout``."""
        self._idle_timer = None
        if self.state >= _CLOSING:
            return
        if self.state != _IDLE:
            # An exchange is in progress (its body has body_timeout): the
            # timer stays off until it ends (_end_exchange arms it again), so
            # that thousands of long polls cost no timer churn while they wait.
            return
        now = self.loop.time()
        when = self._idle_deadline(now)
        if when is not None and now >= when - 0.001:
            if self._head_since:
                gen_log.debug("Timeout reading a request head from %s", self.context)
            self.state = _STOPPED
            transport = self.transport
            if transport is not None:
                transport.close()
            return
        self._arm_idle_timer(when)

    # -- taking over and closing ---------------------------------------------------

    def get_stream(self) -> _TransportStream:
        stream = self._stream
        if stream is None:
            assert self.transport is not None
            # (Over TLS, a stream that also ends the TLS session well.)
            context = self.context
            tls = context is not None and context.tls
            stream_class = _TLSTransportStream if tls else _TransportStream
            stream = self._stream = stream_class(
                self,
                self.transport,
                self._server.max_buffer_size,
                self._server.read_chunk_size,
            )
            if self.state == _CLOSED:
                stream.connection_lost(None)
        return stream

    def detach(self) -> _TransportStream:
        if self.flow & _TAKEN:
            raise RuntimeError("the connection was already detached")
        self.flow |= _TAKEN
        self.flush()
        # Nothing is queued here again: the stream writes to the transport.
        self.output = None
        stream = self.get_stream()
        if self.state == _CLOSED:
            return stream  # already lost: nothing to take over
        self.state = _DETACHED
        self.exchange = None
        self.delegate = None
        self._cancel_timers()
        leftover = self.h1.detach()
        # The core is not read again: an idle WebSocket, which keeps this
        # protocol for its lifetime, need not keep it either.
        self.h1 = _spent_core(self._params)
        if leftover:
            stream.take_leftover(leftover)
        # The stream decides from now on when to read.
        self.flow &= ~_BLOCKED
        self.set_stream_reading(True)
        self._untrack()
        # No request will start here again: let the per-connection starter go
        # (an idle WebSocket keeps this protocol for its lifetime), and the
        # Host value kept to check the next request's.
        self._start_request = _no_request
        self._good_host = None
        self._table.detached.add(self)
        return stream

    def _untrack(self) -> None:
        """The server no longer serves this connection (closed, detached or
        handed over): untracked, and the server's ``on_close`` called once."""
        if self in self._table.open:
            self._server.on_close(self)

    def ask_to_end(self) -> None:
        """The server drains: a detached connection's stream is asked to
        end (its ``on_drain`` hook: an open WebSocket closes with 1001)."""
        stream = self._stream
        hook = stream.on_drain if stream is not None else None
        if hook is not None:
            try:
                hook()
            except Exception:
                app_log.error("Uncaught exception in on_drain", exc_info=True)

    def _cancel_timers(self) -> None:
        for timer in (self._idle_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._idle_timer = None
        self._body_timer = None

    def _on_lost(self, exc: Optional[BaseException]) -> None:
        state = self.state
        if state == _CLOSED:
            return
        self.state = _CLOSED
        self._reading.release()
        self._cancel_timers()
        timer = self._write_timer
        if timer is not None:
            timer.cancel()
            self._write_timer = None
        self.flow &= ~_QUEUED
        out = self.output
        if out:
            out.clear()
        waiters = self._drain_waiters
        if waiters is not None:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(StreamClosedError(real_error=exc))
                    waiter.exception()
        stream = self._stream
        if stream is not None:
            # The stream refers back to this protocol: let the pair go by
            # reference counting, not the cycle collector (which a
            # storm of short connections would otherwise keep busy).
            self._stream = None
            stream.connection_lost(exc)
        req = self.exchange
        delegate = self.delegate
        self.exchange = None
        self.delegate = None
        if req is not None:
            # The delegate is set while the request's body was still coming.
            req._report_gone(delegate)
        if state == _DETACHED:
            # (_detach has already forgotten it: one server call, not two.)
            self._table.detached_lost(self)
        else:
            self._untrack()
        event = self._closed_event
        if event is not None and not event.done():
            event.set_result(None)

    async def close(self) -> None:
        """Close the connection and wait until it is closed.

        Output still buffered goes out first, for at most
        ``_CLOSE_GRACE`` seconds (a client that stops reading cannot hold
        the close up); then the connection is aborted.
        """
        if self.state == _CLOSED:
            return
        if self._closed_event is None:
            self._closed_event = self.loop.create_future()
        event = self._closed_event
        self._stop()
        if self._tls_task is not None and not self._tls_task.done():
            self._tls_task.cancel()
        elif self.transport is not None:
            self.transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(event), _CLOSE_GRACE)
        except TimeoutError:
            self._hard_close()
            await event

    def census(self) -> tuple[str, int, int]:
        """What this connection carries, for metrics: ``("http/1.1", requests
        in flight (0 or 1), tunnels (0))``. A detached connection (a
        WebSocket) is counted by the server's ``_detached``, not here."""
        return ("http/1.1", 1 if _REQUEST <= self.state <= _RESPONSE else 0, 0)

    def _hard_close(self) -> None:
        """Drop the connection now, discarding unsent output."""
        if self.state == _CLOSED:
            return
        self._stop()
        task = self._tls_task
        if task is not None and not task.done():
            task.cancel()
        transport = self.transport
        if transport is not None:
            transport.abort()
        else:
            self._on_lost(None)

    def _drain(self, params: HTTP1ConnectionParameters) -> None:
        """The server drains: close after the current response, or once idle
        through the drain's grace.

        ``params`` are this connection's with ``no_keep_alive`` set, so
        that the response to a request still arriving says ``Connection:
        close``.
        """
        if self.state >= _DETACHED:
            return
        self._use_params(params)
        if self._tls_task is not None:
            # Still in the TLS handshake: no request has begun.
            self._hard_close()
            return
        if self.exchange is not None:
            # The response (written or not) ends the connection: the core
            # adds ``Connection: close`` to a head not yet sent.
            self.h1.end_after_exchange()
        elif self.state == _IDLE:
            # Between exchanges, a request may already be on its way: closing
            # now would lose it (the client sees its connection reset). The
            # connection stays open through the drain's idle grace; a request
            # arriving meanwhile is served with ``Connection: close`` (the
            # params above), and one that never comes lets the timer close.
            self._arm_idle_timer(self._idle_deadline(self.loop.time()))

    # -- the request cycle's -------------------------------------------------------

    def _in_task(self, delegate: HTTPMessageDelegate) -> HTTPMessageDelegate:
        """``delegate``, called from a Task of its request (`_HTTPProtocol`)."""
        raise NotImplementedError
