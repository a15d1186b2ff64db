"""The HTTP/1.1 driver's write side and fields (`_H1Output`, the base of `_HTTPProtocol`).

Output is queued in ``output`` and written once per loop round (the write
queue of ``_h1exchange``) or at once past `_WRITE_NOW`; the transport's
high-water mark pauses reading and holds pipelined requests back until it
drains. Reading is paused for several reasons at once (a delegate blocks, a
pipelined request is held, the transport is full): `_resume_reading` resumes
only once none is left.

The connection's life (``_h1lifecycle``) and the request cycle
(``_protocol``) are the subclasses; all the driver's fields are declared
here, so that the compiled build lays them out once.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
import contextvars
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Optional

from squall._compiled import mypyc_attr
from squall._h1 import Data, EndOfMessage, H1Connection, RemoteProtocolError
from squall.http1connection import HTTP1ConnectionParameters
from squall.httpserver._context import _HTTPRequestContext
from squall.httpserver._flow import ReadFlow
from squall.httpserver._h1exchange import (
    _CLOSED,
    _CLOSING,
    _DETACHED,
    _HELD,
    _IDLE,
    _LINGER,
    _QUEUED,
    _STALLED,
    _STOPPED,
    _WRITE_PAUSED,
    _ArmQueue,
    _closed_future,
    _RequestConnection,
    _WriteQueue,
)
from squall.httpserver._stream import _TransportStream
from squall.httputil import HTTPConnection, HTTPMessageDelegate
from squall.log import gen_log

if TYPE_CHECKING:
    from squall.httpserver._server import ConnectionTable, HTTPServer


# Queued output past this size is written at once (outside data_received,
# see send), or holds the next pipelined request back (inside, _process):
# the transports' default high-water mark.
_WRITE_NOW: Final = 64 * 1024

# Seconds a connection closed after an error answer goes on reading (and
# discarding) what the client still sends (see _linger).
_LINGER_SECONDS = 2.0


@mypyc_attr(allow_interpreted_subclasses=True)
class _H1Output(asyncio.Protocol):
    """Output and read flow of one accepted HTTP/1.1 connection."""

    __slots__ = (
        "_server",
        "_table",
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
        "_arming",
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

    # Set by _H1Lifecycle.__init__, which says what each holds.
    _server: HTTPServer
    _table: ConnectionTable
    _params: HTTP1ConnectionParameters
    _plain: bool
    no_keep_alive: bool
    _ssl: Optional[ssl.SSLContext]
    loop: asyncio.AbstractEventLoop
    h1: H1Connection
    transport: Optional[asyncio.Transport]
    context: Optional[_HTTPRequestContext]
    state: int
    flow: int
    _reading: ReadFlow
    in_feed: bool
    exchange: Optional[_RequestConnection]
    delegate: Optional[HTTPMessageDelegate]
    _leftover: Optional[bytes]
    output: Optional[list[bytes]]
    _writes: _WriteQueue
    _arming: _ArmQueue
    _drain_waiters: Optional[list[asyncio.Future[None]]]
    done_future: asyncio.Future[None]
    _timer_context: contextvars.Context
    _stream: Optional[_TransportStream]
    _idle_since: float
    _idle_timer: Optional[asyncio.TimerHandle]
    _head_since: float
    _body_timer: Optional[asyncio.TimerHandle]
    _write_timer: Optional[asyncio.TimerHandle]
    _closed_event: Optional[asyncio.Future[None]]
    _tls_task: Optional[asyncio.Task[None]]
    _good_host: Optional[str]
    _start_request: Callable[[object, HTTPConnection], HTTPMessageDelegate]

    # -- state ---------------------------------------------------------------------

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

    # -- output --------------------------------------------------------------------

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

    @property
    def write_timeout(self) -> Optional[float]:
        """The server's ``write_timeout``: how long a client may stop reading."""
        return self._server.write_timeout

    def add_drain_waiter(self, waiter: asyncio.Future[None]) -> None:
        """Resolves ``waiter`` when the transport takes more output
        (`resume_writing`), or fails it when the connection is lost."""
        waiters = self._drain_waiters
        if waiters is None:
            self._drain_waiters = [waiter]
        else:
            waiters.append(waiter)

    def drop_drain_waiter(self, waiter: asyncio.Future[None]) -> None:
        waiters = self._drain_waiters
        if waiters is not None and waiter in waiters:
            waiters.remove(waiter)

    def flush_with_round(self) -> None:
        """Write the queued output with the rest of this loop round's (see
        `_WriteQueue`): the end of a response from its request's Task."""
        if self.output and not self.flow & _QUEUED:
            self._writes.add(self)

    def write_out(self) -> None:
        """Write the queued output now, changing nothing else (`flush` also
        closes a connection that is closing, and resumes one held). flush
        writes the same way itself rather than calling this: it runs once
        per response, and a call more there is one more per request."""
        self.flow &= ~_QUEUED
        out = self.output
        transport = self.transport
        if out and transport is not None and self.state != _CLOSED:
            data = out[0] if len(out) == 1 else b"".join(out)
            out.clear()
            transport.write(data)

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
            if self.flow & _LINGER and (transport.can_write_eof() or self.h1.their_state == "BODY"):
                self._linger(transport)
            else:
                transport.close()
        elif self.flow & _HELD and not self.flow & _WRITE_PAUSED and not self.in_feed:
            # The socket took it (the transport stayed under its high-water
            # mark, so resume_writing will not come): go on at once.
            self._unhold()

    def _linger(self, transport: asyncio.Transport) -> None:
        """Close in stages after an error answer, or one given before the
        request's body was read.

        RFC 9112 section 9.6: closed at once while the client is still
        sending (the rest of an overlong request line, a body we refused or
        did not wait for), the kernel answers the unread bytes with a
        reset, which can destroy our response before the client reads it
        (a client that sends its whole body before it reads, as Python's
        http.client and requests do, then sees only the reset). So: end
        our side once the answer is written, read and discard until the
        client closes too, and close anyway after `_LINGER_SECONDS`. Over
        TLS our side cannot end alone (close_notify closes the connection,
        and a TLS layer that then receives the client's records aborts
        it): the answer stands as written while the rest is discarded.
        """
        if transport.can_write_eof():
            transport.write_eof()
        self._reading.resume()
        timer = self._idle_timer
        if timer is not None:
            timer.cancel()
        self._idle_timer = self.loop.call_later(_LINGER_SECONDS, transport.close)
        self._discard(None)  # (the parser may hold the body's end already)

    def _discard(self, data: Optional[bytes]) -> None:
        """Lingering after an answer given before the request's body
        ended: the body is read on (``data``, or what the parser holds) and
        dropped, and once it has ended the connection closes with nothing
        unread: over TLS, where our side cannot end alone, the client then
        learns at once that the connection is closed."""
        h1 = self.h1
        if h1.their_state != "BODY":
            return  # (an error in the request: dropped until the timer)
        try:
            if data is not None:
                h1.receive_data(data)
            event = h1.next_event()
            while type(event) is Data:
                event = h1.next_event()
        except RemoteProtocolError:
            return
        transport = self.transport
        if type(event) is EndOfMessage and transport is not None:
            transport.close()

    def pause_writing(self) -> None:
        self.flow |= _WRITE_PAUSED
        self._pause_reading()
        stream = self._stream
        if stream is not None:
            stream.pause_writing()
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
            stream.resume_writing()
        if self.state != _DETACHED:
            if self.flow & _HELD:
                self._unhold()
            else:
                self._resume_reading()

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

    def _write_timed_out(self) -> None:
        self._write_timer = None
        gen_log.info("Timeout writing to %s: the client stopped reading", self.context)
        self._stop()
        transport = self.transport
        if transport is not None:
            transport.abort()

    # -- reading -------------------------------------------------------------------

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

    # -- the request cycle's -------------------------------------------------------

    def _process(self) -> None:
        """Hand the parser's events on (the request cycle, `_HTTPProtocol`)."""
        raise NotImplementedError
