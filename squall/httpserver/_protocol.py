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
    RemoteProtocolError,
    Request,
)
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._flow import (
    BAD_REQUEST,
    FINISHED,
    checked_host,
    deliver,
    request_line,
    sort_outcome,
    wait_on,
    wrap_fields,
)
from squall.httpserver._h1exchange import (
    _BLOCKED,
    _CLOSING,
    _DETACHED,
    _IDLE,
    _LINGER,
    _QUEUED,
    _REQUEST,
    _RESPONSE,
    _STALLED,
    _STOPPED,
    _WRITE_PAUSED,
    _RequestConnection,
)
from squall.httpserver._h1lifecycle import _H1Lifecycle
from squall.httpserver._h1output import _WRITE_NOW
from squall.httpserver._intask import TaskedDelegate
from squall.httputil import (
    HTTPInputError,
    HTTPMessageDelegate,
)
from squall.httputil._drivers import (
    _error_response,
    _GzipMessageDelegate,
    _lenient_after,
    _log_malformed,
)
from squall.log import app_log, gen_log
from squall.platform.asyncio import _bound_reads

if TYPE_CHECKING:
    from squall.httpserver._h1driver import H1Driver


# Pipelined bytes held while a response is in progress before reading pauses.
_PIPELINE_HIGH_WATER: Final = 256 * 1024

# The connection states (_IDLE .. _CLOSED) and flow bits are documented in
# _h1exchange, beside the request connection that reads them; the fields,
# output and read flow are _h1output's, the connection's life _h1lifecycle's.


# Compiled by mypyc (the compiled build), it still dispatches through the type:
# _negotiate's sniffers subclass it and override data_received, _on_request.
@mypyc_attr(allow_interpreted_subclasses=True)
class _HTTPProtocol(_H1Lifecycle):
    """One accepted connection, served by `HTTPServer`."""

    __slots__ = ()

    # -- accepting -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        transport = cast(asyncio.Transport, transport)
        first = self.transport is None
        self.transport = self._reading.transport = transport
        if first:
            _bound_reads(transport)
            table = self._table
            table.open.add(self)
            drain_params = table.drain_params
            if drain_params is not None:
                # Accepted while the server drains: one request, then close.
                self._use_params(drain_params)
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
                select = table.h2_select
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
        select = self._table.h2_select
        if select is not None and select(self, self.transport):
            return  # ALPN chose h2: an _H2Protocol has the connection now
        self._start_idle_timer()
        if self.h1.buffered:
            # Requests that came with the end of the handshake.
            self._process()

    # -- input ---------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.state >= _CLOSING:
            if self.state == _DETACHED:
                stream = self._stream
                assert stream is not None
                stream.feed_data(data)
            elif self.flow & _LINGER and self.state == _STOPPED:
                self._discard(data)
            return
        self.h1.receive_data(data)
        if not self.flow & _STALLED and self._tls_task is None:
            self._process()

    def eof_received(self) -> Optional[bool]:
        if self.state >= _CLOSING:
            if self.state == _DETACHED:
                stream = self._stream
                assert stream is not None
                stream.feed_eof()
            return None
        self.h1.receive_data(b"")
        if not self.flow & _STALLED:
            self._process()
        return None

    # -- the request cycle ---------------------------------------------------------

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

    def _head_done(self) -> None:
        """The delegate has taken the head: ask for the body, start its clock."""
        h1 = self.h1
        req = self.exchange
        if req is None or self.state >= _CLOSING:
            return
        if h1.expects_continue and not req.head_written:
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
        if req is not None and req.response_done() and self.exchange is req:
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
                # _check_idle found the exchange in progress and left it off,
                # or none was armed yet: armed on the next turn if the
                # connection is idle then (a 101's is detached by then).
                self._arm_next_turn()
            if not self.in_feed:
                more = self.h1.has_input()
                if more and self.flow & _WRITE_PAUSED:
                    # As in _process: a pipelined request waits.
                    self._hold()
                    return
                if more:
                    # A pipelined request is taken on the loop's next turn,
                    # not inside the finish() that ended this response:
                    # that handler's log line and on_finish() come first,
                    # as on Tornado, which reads the next request then.
                    self.loop.call_soon(self._take_next)
                else:
                    # (Without input the parser can only say NEED_DATA: the
                    # usual end of a response from the request's Task.)
                    self._resume_reading()

    def _take_next(self) -> None:
        """Go on to the pipelined request that waited for the response
        before it (see `end_exchange`), unless the connection has moved on."""
        if self.state == _IDLE and not self.in_feed:
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

    # -- errors --------------------------------------------------------------------

    def _reject(
        self, status_hint: int, message: str, explain: bool = False, final: bool = False
    ) -> None:
        """Answer a request we cannot serve (``explain``: with ``message``
        as its body; ``final``: with ``status_hint`` itself, see
        `_error_response`), then close lingering (`_linger`)."""
        _log_malformed(self.context, message, status_hint)
        req = self.exchange
        out = self.output
        if out is not None and (req is None or not req.head_written):
            out.append(_error_response(status_hint, message if explain else "", final))
        self.flow |= _LINGER
        self._close_soon()


if TYPE_CHECKING:
    # The driver offers what the objects working for it read (mypy checks).
    _DRIVER: type[H1Driver] = _HTTPProtocol
