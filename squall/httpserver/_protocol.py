"""The server's hot path: one `asyncio.Protocol` per connection over `squall._h1`.

``data_received`` feeds the parser and hands every complete event to the
request's delegate at once: no Future or Task per read. Pipelined requests
are answered in order (the parser releases a request once the previous
response is complete) and the output of one batch goes out in one
``transport.write``. A delegate that returns an awaitable from
``headers_received`` or ``data_received`` pauses reading until it is done.

Policy: a malformed request gets a bare 400 (414, 431) and a close, logged
at INFO on ``squall.general``; an exception from the application is logged
on ``squall.application`` and closes the connection; nothing is raised out
of the protocol.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
import socket
import ssl
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Final, Optional, cast

from squall._compiled import mypyc_attr
from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Data,
    EndOfMessage,
    H1Connection,
    RemoteProtocolError,
    Request,
)
from squall.http1connection import HTTP1ConnectionParameters
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._flow import (
    BAD_REQUEST,
    FINISHED,
    ReadFlow,
    checked_host,
    deliver,
    request_line,
    sort_outcome,
    wait_on,
    wrap_fields,
)
from squall.httpserver._h1exchange import (
    _BLOCKED,
    _CLOSED,
    _CLOSING,
    _DETACHED,
    _HELD,
    _IDLE,
    _LINGER,
    _QUEUED,
    _REQUEST,
    _RESPONSE,
    _STALLED,
    _STOPPED,
    _TAKEN,
    _WRITE_PAUSED,
    _call_at,
    _closed_future,
    _loop_shared,
    _RequestConnection,
)
from squall.httpserver._intask import TaskedDelegate
from squall.httpserver._stream import _TransportStream
from squall.httputil import (
    HTTPConnection,
    HTTPInputError,
    HTTPMessageDelegate,
)
from squall.httputil._drivers import (
    _error_response,
    _GzipMessageDelegate,
    _lenient_after,
    _log_malformed,
    _new_h1,
)
from squall.httputil._exchange import DONE, IDLE
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log
from squall.platform.asyncio import _bound_reads

if TYPE_CHECKING:
    from squall.httpserver._h1driver import H1Driver
    from squall.httpserver._server import HTTPServer


# Pipelined bytes held while a response is in progress before reading pauses.
_PIPELINE_HIGH_WATER: Final = 256 * 1024

# Queued output past this size is written at once (outside data_received,
# see _send), or holds the next pipelined request back (inside, _process):
# the transports' default high-water mark.
_WRITE_NOW: Final = 64 * 1024

# Seconds close() lets buffered output drain before aborting the connection.
_CLOSE_GRACE = 1.0

# Seconds a connection closed after an error answer goes on reading (and
# discarding) what the client still sends (see _linger).
_LINGER_SECONDS = 2.0


# The connection states (_IDLE .. _CLOSED) and flow bits are documented in
# _h1exchange, beside the request connection that reads them.


# What a detached connection holds instead of its own H1Connection: one for
# the process, never fed (see _detach).
_spent: Optional[H1Connection] = None


def _spent_core(params: HTTP1ConnectionParameters) -> H1Connection:
    global _spent
    core = _spent
    if core is None:
        core = _spent = _new_h1("server", params, False)
    return core


def _no_request(protocol: object, request: HTTPConnection) -> HTTPMessageDelegate:
    raise RuntimeError("the connection was detached: no more requests start on it")


# Compiled by mypyc (the compiled build), it still dispatches through the type:
# _negotiate's sniffers subclass it and override data_received, _on_request.
@mypyc_attr(allow_interpreted_subclasses=True)
class _HTTPProtocol(asyncio.Protocol):
    """One accepted connection, served by `HTTPServer`."""

    __slots__ = (
        "_server",
        "_params",
        "_plain",
        "no_keep_alive",
        "_ssl",
        "loop",
        "h1",
        "transport",
        "context",
        "state",
        "flow",
        "_reading",
        "in_feed",
        "exchange",
        "delegate",
        "_leftover",
        "output",
        "_writes",
        "_drain_waiters",
        "done_future",
        "_timer_context",
        "_stream",
        "_idle_since",
        "_idle_timer",
        "_head_since",
        "_body_timer",
        "_write_timer",
        "_closed_event",
        "_tls_task",
        "_good_host",
        "_start_request",
    )

    def __init__(
        self,
        server: HTTPServer,
        params: HTTP1ConnectionParameters,
        ssl_context: Optional[ssl.SSLContext],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self._server = server
        self._use_params(params)
        self._ssl = ssl_context
        self.loop = loop
        self.h1: H1Connection = _new_h1("server", params, False)
        self.transport: Optional[asyncio.Transport] = None
        self.context: Optional[_HTTPRequestContext] = None
        self.state = _IDLE
        self.flow = 0
        # Whether we paused the transport's reading (the reasons are _flow's
        # bits: _STALLED, _WRITE_PAUSED, and the parser's backlog).
        self._reading = ReadFlow()
        # Set while _process runs: what the delegate writes then is flushed
        # once at its end, and a nested _process returns at once.
        self.in_feed = False
        self.exchange: Optional[_RequestConnection] = None
        # The request's delegate until its body has been read (None after).
        self.delegate: Optional[HTTPMessageDelegate] = None
        self._leftover: Optional[bytes] = None
        # Output queued for the next write; None once detached (the stream
        # writes to the transport itself, and an idle WebSocket keeps this
        # protocol for its lifetime).
        self.output: Optional[list[bytes]] = []
        self._drain_waiters: Optional[list[asyncio.Future[None]]] = None
        self.done_future, self._timer_context, self._writes = _loop_shared(loop)
        self._stream: Optional[_TransportStream] = None
        self._idle_since = 0.0
        self._idle_timer: Optional[asyncio.TimerHandle] = None
        # When the head now awaited began (0.0: none begun, the connection
        # is idle between exchanges).
        self._head_since = 0.0
        self._body_timer: Optional[asyncio.TimerHandle] = None
        self._write_timer: Optional[asyncio.TimerHandle] = None
        self._closed_event: Optional[asyncio.Future[None]] = None
        self._tls_task: Optional[asyncio.Task[None]] = None
        self._good_host: Optional[str] = None
        self._start_request = server._request_starter(in_task=self._in_task)

    @property
    def detached(self) -> bool:
        # Read by the transport stream (_stream.py).
        return self.state == _DETACHED

    @property
    def taken(self) -> bool:
        # Detached (even if lost before): read by the exchange's ``stream``.
        return bool(self.flow & _TAKEN)

    @property
    def write_paused(self) -> bool:
        # Read by the transport stream and by tests.
        return bool(self.flow & _WRITE_PAUSED)

    def _stop(self) -> None:
        """No more HTTP processing (the caller closes the transport)."""
        if self.state < _STOPPED:
            self.state = _STOPPED

    def _close_soon(self) -> None:
        """No more HTTP processing; close once the queued output is written."""
        if self.state < _CLOSING:
            self.state = _CLOSING

    def _hand_over(self) -> bool:
        """Another protocol (HTTP/2) takes the transport: step aside, closing
        nothing. Returns whether reading was paused (the caller resumes it)."""
        self.state = _CLOSED
        self._cancel_timers()
        return self._reading.release()

    # -- asyncio callbacks -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        transport = cast(asyncio.Transport, transport)
        first = self.transport is None
        self.transport = self._reading.transport = transport
        if first:
            _bound_reads(transport)
            server = self._server
            server._connections.add(self)
            if server._drain_params is not None:
                # Accepted while the server drains: one request, then close.
                self._use_params(server._drain_params)
            sock = transport.get_extra_info("socket")
            family = sock.family if sock is not None else socket.AF_UNSPEC
            # The loop may have run the TLS handshake already (see add_sockets).
            loop_tls = self._ssl is None and transport.get_extra_info("sslcontext") is not None
            self.context = _HTTPRequestContext(
                family,
                transport.get_extra_info("peername"),
                self._server.protocol,
                self._server.trusted_downstream,
                self._ssl is not None or loop_tls,
            )
            if loop_tls:
                select = server._h2_select
                if select is not None and select(self, transport):
                    return  # ALPN chose h2: an _H2Protocol has the connection now
            elif self._ssl is not None:
                # The handshake runs in a task so that its failure can be
                # logged our way; reading resumes under TLS.
                transport.pause_reading()
                self._tls_task = self.loop.create_task(self._start_tls(transport))
                return
        self._start_idle_timer()

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        assert self._ssl is not None
        try:
            # A handshake is bounded like a head (a client that opens
            # connections and stalls in TLS must not hold them for
            # asyncio's default of a minute).
            tls = await self.loop.start_tls(
                transport,
                self,
                self._ssl,
                server_side=True,
                ssl_handshake_timeout=self._params.header_timeout,
            )
        except (TimeoutError, ssl.SSLError, OSError) as exc:
            if isinstance(exc, ssl.SSLError):
                gen_log.warning("SSL Error on %s %s: %s", self.context, "handshake", exc)
            transport.abort()
            self._on_lost(None)
            return
        except asyncio.CancelledError:
            transport.abort()
            self._on_lost(None)
            raise
        # start_tls does not call connection_made again: adopt the transport here.
        self.transport = self._reading.transport = cast(asyncio.Transport, tls)
        self._tls_task = None
        select = self._server._h2_select
        if select is not None and select(self, self.transport):
            return  # ALPN chose h2: an _H2Protocol has the connection now
        self._start_idle_timer()
        if self.h1.buffered:
            # Requests that came with the end of the handshake.
            self._process()

    def data_received(self, data: bytes) -> None:
        if self.state >= _CLOSING:
            if self.state == _DETACHED:
                stream = self._stream
                assert stream is not None
                stream._feed(data)
            return
        self.h1.receive_data(data)
        if not self.flow & _STALLED and self._tls_task is None:
            self._process()

    def eof_received(self) -> Optional[bool]:
        if self.state >= _CLOSING:
            if self.state == _DETACHED:
                stream = self._stream
                assert stream is not None
                stream._feed_eof()
            return None
        self.h1.receive_data(b"")
        if not self.flow & _STALLED:
            self._process()
        return None

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._on_lost(exc)

    def pause_writing(self) -> None:
        self.flow |= _WRITE_PAUSED
        self._pause_reading()
        stream = self._stream
        if stream is not None:
            stream._unwritable()
        timeout = self._server.write_timeout
        if timeout is not None and self._write_timer is None:
            # A client that stops reading must not hold our buffer forever.
            self._write_timer = self.loop.call_later(timeout, self._write_timed_out)

    def resume_writing(self) -> None:
        self.flow &= ~_WRITE_PAUSED
        timer = self._write_timer
        if timer is not None:
            timer.cancel()
            self._write_timer = None
        waiters = self._drain_waiters
        if waiters is not None:
            self._drain_waiters = None
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
        stream = self._stream
        if stream is not None:
            stream._writable()
        if self.state != _DETACHED:
            if self.flow & _HELD:
                self._unhold()
            else:
                self._resume_reading()

    # -- the request cycle -----------------------------------------------------------

    def _process(self) -> None:
        """Hand every complete event to the delegate until the parser needs
        more bytes, a delegate blocks, or processing stops."""
        if self.in_feed:
            return
        self.in_feed = True
        h1 = self.h1
        # What this call has queued in _out (nothing is written meanwhile),
        # counted item by item as it grows: see the end of a message.
        queued = counted = 0
        try:
            leftover = self._leftover
            if leftover is not None:
                self._leftover = None
                self._deliver(leftover)
            while self.state < _CLOSING and not self.flow & _BLOCKED:
                event = h1.next_event()
                kind = type(event)
                # The type is the test (an isinstance() assert would cost a
                # call per event in pure Python).
                if kind is Request:
                    self._on_request(event)  # type: ignore[arg-type]
                elif kind is Data:
                    self._deliver(event.data)  # type: ignore[union-attr]
                elif kind is EndOfMessage:
                    self._on_end()
                    if not h1.has_input():
                        # Spares a parse that can only say NEED_DATA or PAUSED.
                        break
                    if self.state == _IDLE:
                        # A pipelined request follows. What this read's
                        # requests produce is written a loop round later
                        # (_WriteQueue), so pause_writing cannot stop them:
                        # none starts while the output is over the mark.
                        out = self.output
                        assert out is not None  # (None only once detached)
                        while counted < len(out):
                            queued += len(out[counted])
                            counted += 1
                        if queued >= _WRITE_NOW or self.flow & _WRITE_PAUSED:
                            self._hold()
                            break
                elif event is NEED_DATA:
                    if self.state == _IDLE and not self._head_since and h1.buffered:
                        self._head_started()
                    break
                elif event is PAUSED:
                    if h1.buffered > _PIPELINE_HIGH_WATER:
                        self._pause_reading()
                    break
                else:
                    assert isinstance(event, ConnectionClosed)
                    self.state = _CLOSING
                    break
        except RemoteProtocolError as exc:
            lenient = None
            if self.state == _IDLE and not h1.allow_bare_lf:
                lenient = _lenient_after(h1, self._params)
            if lenient is None:
                self._reject(exc.status_hint, str(exc))
            else:
                self.h1 = lenient
                self.in_feed = False
                self._process()
                return
        except HTTPInputError as err:
            # Not "exc" again: mypyc would type both handlers' names as one.
            self._reject(400, str(err), explain=True)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.abort()
        finally:
            self.in_feed = False
            if self.state == _CLOSING:
                self.flush()
            elif self.output and not self.flow & _QUEUED:
                self._writes.add(self)

    def _on_request(self, event: Request) -> None:
        start_line = request_line(event.method, event.target, event.version)
        fields = event.fields
        headers = wrap_fields(fields)
        hosts = fields.get("Host")
        # A keep-alive client sends the same Host each time: check it once.
        if hosts is None or len(hosts) != 1 or hosts[0] != self._good_host:
            self._good_host = checked_host(headers, event.version)
        req = _RequestConnection(self)
        self.exchange = req
        self.state = _REQUEST
        delegate = self._start_request(self, req)
        plain = self._plain
        if not plain:
            params = self._params
            if params.decompress:
                delegate = _GzipMessageDelegate(
                    delegate, params.chunk_size, self.h1.limits.max_body_size
                )
        self.delegate = delegate
        ret = delegate.headers_received(start_line, headers)
        if ret is not None:
            self._block(ret, True)
        elif not plain or self.h1.expects_continue or req._body_timeout is not None:
            self._head_done()

    def _in_task(self, delegate: HTTPMessageDelegate) -> HTTPMessageDelegate:
        """``delegate``, called from a Task of its request (see `TaskedDelegate`)."""
        return TaskedDelegate(delegate, self.loop, self._finished_in_task)

    def _finished_in_task(self, future: asyncio.Future[None]) -> None:
        # A TaskedDelegate's finish has been called: an error it raised is
        # answered as one raised by a direct call (_process) is.
        if future.cancelled():
            return
        if self.state >= _CLOSING:
            future.exception()  # retrieved: the exchange is over anyway
            return
        outcome, message = sort_outcome(future)
        if outcome == FINISHED:
            return
        if outcome == BAD_REQUEST:
            self._reject(400, message, explain=True)
        else:
            self.abort()
        self.flush()

    def _use_params(self, params: HTTP1ConnectionParameters) -> None:
        # What the request path reads of the (interpreted) parameters, as
        # fields: no decompression and no body timeout (_on_request), and
        # no_keep_alive (the exchange's head).
        self._params = params
        self._plain = not params.decompress and params.body_timeout is None
        self.no_keep_alive = bool(params.no_keep_alive)

    def _head_done(self) -> None:
        """The delegate has taken the head: ask for the body, start its clock."""
        h1 = self.h1
        req = self.exchange
        if req is None or self.state >= _CLOSING:
            return
        if h1.expects_continue and req._phase == IDLE:
            if h1.body_too_large:
                # RFC 9110 §10.1.1: a server may answer with the final
                # status instead of 100, and the client then need not send
                # the body (§15.5.14: 413 Content Too Large).
                self._reject(413, "Content-Length too long", final=True)
                return
            # RFC 9110 §10.1.1: the delegate is ready to read the body.
            out = self.output
            assert out is not None  # (None only once detached)
            out.append(h1.send_informational(100, "(Continue)"))
        timeout = req._body_timeout
        if timeout is None:
            timeout = self._params.body_timeout
        if timeout is not None and h1.their_state == "BODY":
            self._body_timer = self.loop.call_later(timeout, self._body_timed_out)

    def _deliver(self, data: bytes) -> None:
        delegate = self.delegate
        assert delegate is not None
        ret, rest = deliver(delegate, data, self._params.chunk_size)
        if ret is not None:
            if rest:
                self._leftover = rest
            self._block(ret, False)

    def _on_end(self) -> None:
        timer = self._body_timer
        if timer is not None:
            timer.cancel()
            self._body_timer = None
        delegate = self.delegate
        # The request is read: its delegate hears nothing more from us.
        self.delegate = None
        if self.state == _REQUEST:
            self.state = _RESPONSE
        delegate.finish()  # type: ignore[union-attr]
        req = self.exchange
        if req is not None and req._phase == DONE and self.exchange is req:
            self.end_exchange()

    def end_exchange(self) -> None:
        """Both the request and its response are complete."""
        self.exchange = None
        self.delegate = None
        self._head_since = 0.0
        self._idle_since = self.loop.time()
        if self.state < _CLOSING:
            self.state = _IDLE
            if self._idle_timer is None:
                # _check_idle found the exchange in progress and left it off.
                self._arm_idle_timer(self._idle_deadline(self._idle_since))
            if not self.in_feed:
                if self.flow & _WRITE_PAUSED and self.h1.has_input():
                    # As in _process: a pipelined request waits.
                    self._hold()
                    return
                self._resume_reading()
                self._process()

    def _hold(self) -> None:
        """Start no pipelined request until the output drains (`_unhold`):
        the transport takes it under its high-water mark, or resume_writing."""
        self.flow |= _HELD
        self._pause_reading()

    def _unhold(self) -> None:
        self.flow &= ~_HELD
        if self.state == _IDLE:
            self._resume_reading()
            self._process()

    def _block(self, awaitable: Awaitable[None], head: bool) -> None:
        """Hand no more events on until ``awaitable`` is done (``head``: it
        came from ``headers_received``, so the body is asked for then)."""
        self.flow |= _BLOCKED
        self._pause_reading()
        wait_on(awaitable, self.loop, self._unblock_head if head else self._unblock)

    def _unblock_head(self, future: asyncio.Future[None]) -> None:
        self._unblock(future, True)

    def _unblock(self, future: asyncio.Future[None], head: bool = False) -> None:
        self.flow &= ~_BLOCKED
        if self.state >= _CLOSING:
            return
        outcome, message = sort_outcome(future)
        if outcome != FINISHED:
            if outcome == BAD_REQUEST:
                self._reject(400, message, explain=True)
            else:
                self.abort()
            self.flush()
            return
        if head:
            self._head_done()
        self._resume_reading()
        self._process()

    # -- errors and timeouts ---------------------------------------------------------

    def _reject(
        self, status_hint: int, message: str, explain: bool = False, final: bool = False
    ) -> None:
        """Answer a request we cannot serve (``explain``: with ``message``
        as its body; ``final``: with ``status_hint`` itself, see
        `_error_response`), then close lingering (`_linger`)."""
        _log_malformed(self.context, message, status_hint)
        req = self.exchange
        out = self.output
        if out is not None and (req is None or req._phase == IDLE):
            out.append(_error_response(status_hint, message if explain else "", final))
        self.flow |= _LINGER
        self._close_soon()

    def abort(self) -> None:
        """Stop and close, sending only what was already queued."""
        if self.state == _DETACHED:
            # The stream owns the connection; only the transport is closed.
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        self._close_soon()
        if not self.in_feed:
            self.flush()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.state >= _CLOSING:
            return
        gen_log.info("Timeout reading body from %s", self.context)
        self.state = _STOPPED
        transport = self.transport
        if transport is not None:
            transport.close()

    def _write_timed_out(self) -> None:
        self._write_timer = None
        gen_log.info("Timeout writing to %s: the client stopped reading", self.context)
        self._stop()
        transport = self.transport
        if transport is not None:
            transport.abort()

    def _start_idle_timer(self) -> None:
        # A new connection owes its first head at once: both clocks run.
        self._idle_since = self._head_since = now = self.loop.time()
        self._arm_idle_timer(self._idle_deadline(now))

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
        server = self._server
        if self._params is server._drain_params and not self.h1.buffered:
            # The server drains and no byte of a next request has come: the
            # connection closes at the end of the drain's idle grace.
            closing = server._drain_idle_deadline
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

    # -- output ----------------------------------------------------------------------

    def send(self, data: bytes) -> asyncio.Future[None]:
        out = self.output
        assert out is not None  # (None only once detached)
        out.append(data)
        if not self.in_feed:
            if sum(map(len, out)) >= _WRITE_NOW:
                # Written now, not a round later: the transport's high-water
                # mark then decides (pause_writing) whether the future
                # returned waits, and a handler that awaits its flushes
                # cannot queue megabytes in between.
                self.flush()
            elif not self.flow & _QUEUED:
                self._writes.add(self)
        elif sum(map(len, out)) >= _WRITE_NOW:
            # A handler writing from inside this read (its Task starts
            # eagerly on 3.12+, in the server's callback): written now as well, so
            # that the high-water mark can make it wait, rather than queue
            # megabytes until the read is done.
            if self.state < _CLOSING:
                self.flush()
        if self.flow & _WRITE_PAUSED:
            waiter = self.loop.create_future()
            if self._drain_waiters is None:
                self._drain_waiters = [waiter]
            else:
                self._drain_waiters.append(waiter)
            return waiter
        transport = self.transport
        if transport is None or transport.is_closing():
            # The peer is gone (asyncio drops writes once a send failed, and
            # tells connection_lost a loop turn later): a handler that writes
            # and awaits in a loop must see it now, or it never yields.
            return _closed_future(self.loop)
        return self.done_future

    def flush(self) -> None:
        self.flow &= ~_QUEUED
        transport = self.transport
        out = self.output
        if transport is None or self.state == _CLOSED:
            if out:
                out.clear()
            return
        if out:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            transport.write(data)
        if self.state == _CLOSING:
            self.state = _STOPPED
            if self.flow & _LINGER and transport.can_write_eof():
                self._linger(transport)
            else:
                transport.close()
        elif self.flow & _HELD and not self.flow & _WRITE_PAUSED and not self.in_feed:
            # The socket took it (the transport stayed under its high-water
            # mark, so resume_writing will not come): go on at once.
            self._unhold()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close in stages after an error answer.

        RFC 9112 section 9.6: closed at once while the client is still
        sending (the rest of an overlong request line, a body we refused),
        the kernel answers the unread bytes with a reset, which can destroy
        our response before the client reads it. So: end our side once the
        answer is written, read and discard until the client closes too,
        and close anyway after `_LINGER_SECONDS`.
        """
        transport.write_eof()
        self._reading.resume()
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()
        self._idle_timer = self.loop.call_later(_LINGER_SECONDS, transport.close)

    def _pause_reading(self) -> None:
        self._reading.pause()

    def _resume_reading(self) -> None:
        # Once every reason to pause is gone: no delegate blocks, no
        # pipelined request is held, the transport takes our output.
        reading = self._reading
        if reading.paused and not self.flow & (_STALLED | _WRITE_PAUSED):
            reading.resume()

    def set_stream_reading(self, reading: bool) -> None:
        # A detached stream reads when it wants to, whatever the output.
        if reading:
            self._reading.resume()
        else:
            self._reading.pause()

    # -- taking over and closing -----------------------------------------------------

    def get_stream(self) -> _TransportStream:
        stream = self._stream
        if stream is None:
            assert self.transport is not None
            stream = self._stream = _TransportStream(
                self,
                self.transport,
                self._server.max_buffer_size,
                self._server.read_chunk_size,
            )
            if self.state == _CLOSED:
                stream._lost(None)
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
            stream._inbox += leftover
        # The stream decides from now on when to read.
        self.flow &= ~_BLOCKED
        self.set_stream_reading(True)
        self._server._forget(self)
        # No request will start here again: let the per-connection starter go
        # (an idle WebSocket keeps this protocol for its lifetime), and the
        # Host value kept to check the next request's.
        self._start_request = _no_request
        self._good_host = None
        self._server._detached.add(self)
        return stream

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
            # reference counting, not the cycle collector (issue 22).
            self._stream = None
            stream._lost(exc)
        req = self.exchange
        delegate = self.delegate
        self.exchange = None
        self.delegate = None
        if req is not None:
            # The delegate is set while the request's body was still coming.
            req._report_gone(delegate)
        if state == _DETACHED:
            # (_detach has already forgotten it: one server call, not two.)
            self._server._detached_lost(self)
        else:
            self._server._forget(self)
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


if TYPE_CHECKING:
    # The driver offers what the objects working for it read (mypy checks).
    _DRIVER: type[H1Driver] = _HTTPProtocol
