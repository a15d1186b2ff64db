"""What a request stream of a multiplexed connection is, whatever the
protocol: the base of `_H2Stream` (``_h2stream``) and `_H3Stream` (``_h3stream``).

Both are `.Exchange`s whose connection is shared by other streams: closing
one resets it (the connection stays), only an accepted extended CONNECT
(RFC 8441, RFC 9220: a WebSocket) can be detached, and a broken
Content-Length resets the stream. Their read side is the same too, and
is this class's: the head handed to the delegate (`start`), body delivery,
the inbox that holds the body while the delegate is busy, the body limit
(413) and timeout, what an error of the request or of the application does
(the same answer over both protocols), and the stream's slot in its
connection's concurrency count (`StreamSlots`); so are the writes waiting
for its output, which fail when it is lost. A driver asks its streams
through these methods, reads their state by public names (`is_closed`,
`read_done`, `response_done`), and keeps only what is its own: resetting a
stream and answering a request it refuses (`MuxDriver`). The fields are
set by the one ``__init__`` (with HTTP/2's write-side fields, which an
HTTP/3 stream leaves as set: one call per stream on HTTP/2's request path)
and changed by this class's methods only. Each subclass names its protocol
and its reset codes, and writes the emit hooks that move frames (what they
call on their driver: ``_h2stream``'s `H2Driver`, ``_h3stream``'s
`H3Driver`).

The slot: a stream holds one from its head until it is over on both sides,
on the wire (its response's last frame out, or the stream reset, refused,
timed out or lost) and in the application (no awaitable of its delegate
pending, and no handler that took the whole request and has not finished
its response). Every way a stream ends gives it back once (`free_slot`,
`settle`); a stream reset while its handler runs keeps it until the
handler is done, so that resetting starts no more work than the limit
(CVE-2023-44487).
"""

from __future__ import annotations

__all__: list[str] = []  # private to the drivers

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, Final, Optional, Protocol

from squall._compiled import mypyc_attr
from squall._h2 import trailer_fields
from squall._sizes import required_byte_count
from squall.httpserver._flow import (
    APP_ERROR,
    FINISHED,
    body_overdue,
    deliver,
    sort_outcome,
)
from squall.httputil import (
    HTTPHeaders,
    HTTPInputError,
    HTTPMessageDelegate,
    HTTPOutputError,
    RequestStartLine,
)
from squall.httputil._exchange import DONE, GONE, IDLE, Exchange, report_closed
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log

# A timeout check for a deadline comes this long after it (seconds): the
# check is strict, and the loop may run a timer a moment early.
PAST_DEADLINE: Final = 0.001


def sweep_by(
    handle: Optional[asyncio.TimerHandle],
    loop: asyncio.AbstractEventLoop,
    when: float,
    sweep: Callable[[], None],
) -> asyncio.TimerHandle:
    """A connection's next look at its streams' timeouts (``sweep``), no
    later than just after ``when`` (a body's deadline: `body_overdue` is
    strict): ``handle`` (the one scheduled, at the usual interval, seconds
    long) if it comes in time, else a new one in its place."""
    when += PAST_DEADLINE
    if handle is not None:
        if handle.when() <= when:
            return handle
        handle.cancel()
    return loop.call_at(when, sweep)


class MuxDriver(Protocol):
    """What a multiplexed stream asks of its connection's driver (HTTP/2's
    `_H2Protocol`, HTTP/3's `_H3Protocol`): the parts that are the protocol's."""

    def reset_stream(self, stream: Any, code: int) -> None:
        """Reset ``stream`` with ``code`` and tell it it is gone (`_MuxStream.lost`)."""

    def refuse_request(self, stream: Any, status: int, message: str) -> None:
        """Answer the request with ``status`` and an empty body, read no more
        of it, and tell the stream (`_MuxStream.refused`)."""

    def end_response(self, stream: Any) -> None:
        """The response finished: its last frame goes out."""

    def streams_idle(self) -> None:
        """The last stream gave its slot back: no request is in flight."""

    def flush_now(self) -> None:
        """Write what the connection holds for the wire now, not at the end
        of the round (a handler's explicit flush or finish: `send_now`)."""

    def check_timeouts_by(self, when: float) -> None:
        """Look at the streams' timeouts no later than just after ``when``
        (loop time: a body's deadline), not only at the usual interval."""


class StreamSlots:
    """A connection's count of the request streams it serves at once.

    Each `_MuxStream` takes a slot when it starts and gives it back once
    (see the module); when the count falls to zero the stream tells its
    driver (`MuxDriver.streams_idle`: the idle clock, a graceful close
    waiting for the last stream). It holds nothing else: no reference
    back to the driver, which owns it (no cycle to collect).
    """

    __slots__ = ("active",)

    def __init__(self) -> None:
        #: Streams holding a slot.
        self.active = 0


@mypyc_attr(allow_interpreted_subclasses=True)
class _MuxStream(Exchange):
    """A request stream of an HTTP/2 or HTTP/3 connection (see the module).

    ``_closed`` (`is_closed`): the stream was reset, timed out or its
    connection lost; nothing more goes out (it may come after the response
    is done).
    """

    __slots__ = (
        "_proto",
        "stream_id",
        "_delegate",
        "_read_done",
        "_head_request",
        "_closed",
        "_counted",
        "_slots",
        "_handed",
        "_inbox",
        "_blocked",
        "_received",
        "_length",
        "_max_body",
        "_body_timeout",
        "_started",
        "protocol",
        "tunnel",
        # HTTP/2's (HTTP/3 leaves them as __init__ sets them): see _H2Stream.
        "_waiters",
        "held_head",
        "last_active",
        "expect_continue",
        "trailers",
        "trailers_out",
    )

    #: The protocol's name, in what is raised.
    PROTOCOL: ClassVar[str]
    #: The stream reset a broken response gets, the one close() (and a body
    #: over its limit, or late) gets, and the one a malformed body gets.
    INTERNAL_ERROR: ClassVar[int]
    CANCEL: ClassVar[int]
    MESSAGE_ERROR: ClassVar[int]

    # The driver's protocol (each subclass's own type). Compiled (mypyc,
    # with _H2Stream), a subclass cannot narrow a field's type: a method
    # names the protocol's type on a local.
    _proto: Any
    stream_id: int
    _delegate: Optional[HTTPMessageDelegate]
    _read_done: bool
    # The request is a HEAD: its response is bodiless whatever its status
    # (what a head refused by the protocol leaves `_bodiless` to).
    _head_request: bool
    _closed: bool
    _counted: bool
    _slots: StreamSlots
    # The delegate took the whole request (its finish() was called) and the
    # response is not finished: the application works for this stream.
    _handed: bool
    _inbox: Optional[list[Any]]
    _blocked: bool
    _received: int
    # The request's Content-Length (-1 without one), held against the body
    # limit once the delegate has taken the head (see `start`).
    _length: int
    _max_body: int
    _body_timeout: Optional[float]
    _started: float
    #: The ``:protocol`` of an extended CONNECT (``"websocket"``), or None;
    #: its stream is taken over by `detach` after a 2xx.
    protocol: Optional[str]
    #: The extended CONNECT's tunnel (its driver's: `_H2Tunnel`, `_H3Tunnel`),
    #: set by the driver with the head; None for any other request.
    tunnel: Any
    # Writes waiting for the stream's output to go out (HTTP/2's windows).
    _waiters: Optional[list[asyncio.Future[None]]]
    # A response head (its header block) and first chunk not yet handed to
    # the core: sent with the end of the stream when finish() follows at once.
    held_head: Optional[tuple[bytes, bytes]]
    # When the request last sent something (HTTP/2's idle stream timeout).
    last_active: float
    expect_continue: bool
    #: The request's trailer section, once the client sent one after the
    #: body (None otherwise).
    trailers: Optional[HTTPHeaders]
    trailers_out: Optional[list[tuple[bytes, bytes]]]

    def __init__(
        self,
        proto: Any,
        stream_id: int,
        now: float,
        context: Any,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
        slots: StreamSlots,
    ) -> None:
        # The protocol's context, loop and body limit come as arguments: the
        # compiled HTTP/2 driver reads them from its own fields, where this
        # (for a protocol typed Any) would go through getattr for each.
        # The close callback is the plain attribute; a reset from the
        # application's own first step reaches it on the next loop turn
        # (see HTTPConnection.close_callback_attribute).
        super().__init__(context, False, True)
        # The loop the protocol's callbacks run on: the application's
        # delegate takes it from here, not from get_running_loop() (a getpid
        # system call per request on Python 3.11).
        self.loop = loop
        self._proto = proto
        self.stream_id = stream_id
        self._max_body = max_body
        self._started = self.last_active = now
        # A slot of the connection's stream limit, until the stream is over
        # on both sides (see the module).
        self._counted = True
        self._slots = slots
        slots.active += 1
        # _closed: reset, timed out or the connection lost (nothing more goes
        # out); _inbox: body pieces (and the end, as None) held while the
        # delegate is busy.
        self._read_done = self._closed = self._blocked = self.expect_continue = False
        self._head_request = False
        self._handed = False
        self._received = 0
        self._delegate = self._inbox = self._body_timeout = self.protocol = None
        self.tunnel = self._waiters = self.held_head = self.trailers = self.trailers_out = None

    def _emit_end(self, phase: int) -> None:
        self._handed = False
        if phase == GONE:
            self.settle()  # lost before; its handler is done now
        elif phase == IDLE:
            # Nothing was written: the stream cannot carry a response.
            p: MuxDriver = self._proto
            p.reset_stream(self, self.INTERNAL_ERROR)
            self.settle()
        else:
            p = self._proto
            p.end_response(self)

    def send_now(self) -> None:
        """What the connection holds for its round goes out now (see
        `Exchange.send_now`): the streams share one write per round, which
        a handler that answers and then blocks would hold back."""
        if not self._closed:
            p: MuxDriver = self._proto
            p.flush_now()

    def _emit_raw(self, chunk: bytes) -> Any:
        raise HTTPOutputError(f"write_headers must come first on an {self.PROTOCOL} stream")

    def _refuse(self) -> None:
        p: MuxDriver = self._proto
        if self._phase == DONE:
            self._handed = False  # finish() came, and fails: the handler is done
        p.reset_stream(self, self.INTERNAL_ERROR)
        self.settle()

    # -- the slot -----------------------------------------------------------------------

    def free_slot(self) -> None:
        """Give the stream's slot back to its connection (the first call only)."""
        if self._counted:
            self._counted = False
            slots = self._slots
            slots.active -= 1
            if not slots.active:
                p: MuxDriver = self._proto
                p.streams_idle()

    def response_sent(self) -> bool:
        """The response's last frame is out: the slot goes back (`free_slot`).
        Returns whether the request was read to its end; if not, the driver
        tells the client the rest is not wanted (RFC 9113 section 8.1,
        RFC 9114 section 4.1.1) and marks the stream closed (`mark_closed`)."""
        self.free_slot()
        return self._read_done

    def settle(self) -> None:
        """Give the slot back if the stream is over on both sides: closed on
        the wire, and no application code in flight for it (see the module)."""
        if self._counted and self._closed and not self._blocked and not self._handed:
            self.free_slot()

    def lost(self, exc: Optional[BaseException] = None) -> None:
        """The stream is gone (reset either way, timed out, its connection
        lost: ``exc``, if that was an error); the driver calls it once
        (`is_closed` is then True). Nothing more goes out: writes waiting for
        the stream's output fail (`StreamClosedError`); its delegate hears
        of it if the request was still read, the close callback if the
        response was unfinished; the slot goes back once nothing runs for
        it (`settle`); an extended CONNECT's tunnel closes."""
        self._closed = True
        self.held_head = None
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(StreamClosedError(real_error=exc))
                    waiter.exception()
        delegate = self._delegate
        self._delegate = None
        if self._read_done:
            delegate = None
        self._read_done = True
        self._report_gone(delegate)
        self.settle()
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.lost(exc)  # its IOStream closes (the WebSocket hears of it)

    def refused(self) -> None:
        """The driver answered the request itself and reads no more of it."""
        self._phase = DONE  # the application never answers it
        self._closed = True
        self._delegate = None
        self._handed = False
        self.settle()

    # -- the request's input --------------------------------------------------------

    def start(
        self,
        delegate: HTTPMessageDelegate,
        start_line: RequestStartLine,
        headers: HTTPHeaders,
        length: int = -1,
    ) -> Optional[Awaitable[None]]:
        """Hand the request's head to ``delegate`` (the server's, for this
        stream), which then gets its body and end.

        Returns:
            The awaitable the delegate answered with (the driver blocks the
            stream on it, `block`); None if it took the head at once, or if
            it raised: a request at fault is refused with 400, an
            application error logged and the stream reset; the stream is
            `is_closed` then.
        """
        if start_line.method == "HEAD":
            self._bodiless = self._head_request = True
        self._delegate = delegate
        self._length = length
        try:
            ret = delegate.headers_received(start_line, headers)
        except HTTPInputError as exc:
            p: MuxDriver = self._proto
            p.refuse_request(self, 400, str(exc))
            return None
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.app_failed()
            return None
        if ret is None and length > self._max_body:
            # Judged once the delegate has the head, not before: a handler
            # that streams its body may raise its limit in prepare()
            # (``set_max_body_size``), as over HTTP/1.1.
            self.over_limit()
        return ret

    def wants_body(self) -> bool:
        """Whether a body piece that arrives goes anywhere: False once the
        delegate is gone (the response went first, the request was
        refused, the stream closed); the driver drops the piece then."""
        return self._delegate is not None and not self._closed

    def off_its_length(self, ended: bool) -> bool:
        """Whether the body received so far breaks the request's
        Content-Length: more bytes than it said, or, once the body has
        ``ended``, fewer (a malformed request, RFC 9114 section 4.1.2).
        False where no body is wanted any more (answered, refused)."""
        length = self._length
        if length < 0 or self._delegate is None or self._closed:
            return False
        received = self._received
        return received > length or (ended and received != length)

    def took(self, size: int) -> bool:
        """Count ``size`` more body bytes received: False, and the request
        failed with 413 (`fail`), once they pass the body limit."""
        received = self._received = self._received + size
        if received > self._max_body:
            if self._blocked:
                # The delegate is busy (its prepare() may still change the
                # limit): the piece is held, and the limit judged once the
                # delegate is done (`unblocked`), as HTTP/1.1 reads no body
                # meanwhile.
                return True
            self.fail(413, "body too large", self.CANCEL)
            return False
        return True

    def over_limit(self) -> bool:
        """Whether the request's Content-Length, or the body received so
        far, is past the body limit (which the delegate may have changed
        while it was busy): if so, and the request is still read and not
        answered, it is failed with 413 (`fail`)."""
        limit = self._max_body
        too_long = self._length > limit
        if not too_long and self._received <= limit:
            return False
        if self._delegate is None or self._phase >= DONE:
            return False  # answered already: the rest is not wanted anyway
        self.fail(413, "Content-Length too long" if too_long else "body too large", self.CANCEL)
        return True

    def fail(self, status: int, message: str, code: int) -> None:
        """The request is at fault: answered with ``status`` if no response
        has started, else the stream is reset with ``code``. A delegate
        still reading the request hears that the exchange is gone."""
        p: MuxDriver = self._proto
        if self._phase != IDLE:
            gen_log.info("Malformed %s request from %s: %s", self.PROTOCOL, self.context, message)
            p.reset_stream(self, code)
            return
        delegate = self._delegate
        p.refuse_request(self, status, message)
        if delegate is not None and not self._read_done:
            self._read_done = True
        else:
            delegate = None
        self._report_gone(delegate)

    def app_failed(self) -> None:
        """The application raised while it had the request: logged (by the
        caller, or `sort_outcome`), the stream reset with ``INTERNAL_ERROR``."""
        self._handed = False
        p: MuxDriver = self._proto
        p.reset_stream(self, self.INTERNAL_ERROR)

    def deliver(self, data: bytes, size: int) -> tuple[Optional[Awaitable[None]], bytes]:
        """Hand a body piece to the delegate in pieces of at most ``size``
        bytes (`squall.httpserver._flow.deliver`).

        Returns:
            The awaitable the delegate answered with (the driver blocks the
            stream on it) and the bytes not handed on yet (the driver holds
            them first in the inbox); ``(None, b"")`` if all was taken, or
            if the delegate raised: a request at fault is answered or reset
            (`fail`), an application error logged and the stream reset;
            and once the delegate is gone (the response complete).
        """
        delegate = self._delegate
        if delegate is None:
            # Its response went before the body ended: the rest is not wanted.
            return None, b""
        try:
            return deliver(delegate, data, size)
        except HTTPInputError as exc:
            self.fail(400, str(exc), self.MESSAGE_ERROR)
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.app_failed()
        return None, b""

    def hold(self, item: Any, first: bool = False) -> None:
        """Keep a body piece (or the end of the body, as None) until the
        delegate is ready for it (``first``: the rest of a piece `deliver`
        did not hand on, ahead of what came later)."""
        inbox = self._inbox
        if inbox is None:
            self._inbox = [item]
        elif first:
            inbox.insert(0, item)
        else:
            inbox.append(item)

    def hold_if_busy(self, item: Any) -> bool:
        """Keep a body piece if the delegate is busy or earlier pieces wait
        (see `hold`): True if it was kept, False if the driver hands it on now."""
        if self._blocked or self._inbox:
            self.hold(item)
            return True
        return False

    def block(self) -> None:
        """The delegate answered with an awaitable: it is busy until the
        driver calls `unblocked`."""
        self._blocked = True

    def unblocked(self, future: asyncio.Future[None]) -> bool:
        """The delegate's awaitable is done: True if the stream goes on (the
        driver then `drain`s it). Otherwise the stream was closed meanwhile
        (its slot given back if nothing else holds it), the request was at
        fault (`fail`) or the application failed (logged, the stream reset)."""
        self._blocked = False
        if self._closed:
            if not future.cancelled():
                future.exception()  # the exchange is gone: nobody to answer
            self.settle()
            return False
        outcome, message = sort_outcome(future)
        if outcome == FINISHED:
            return not self.over_limit()
        if outcome == APP_ERROR:
            self.app_failed()
        else:
            self.fail(400, message, self.MESSAGE_ERROR)
        return False

    def drain(self, piece: Callable[[Any, Any], None], end: Callable[[Any], None]) -> None:
        """Hand on, in order, what the inbox kept while the delegate was
        busy: each body piece to ``piece(stream, item)``, the end of the
        body to ``end(stream)``; stops when the delegate is busy again or
        the stream closes."""
        inbox = self._inbox
        while inbox and not self._blocked and not self._closed:
            item = inbox.pop(0)
            if item is None:
                self._inbox = None
                end(self)
                return
            piece(self, item)

    def end_request(self) -> bool:
        """The end of the body: the delegate's ``finish``, unless it is busy
        or pieces wait (kept in the inbox until then). A request at fault is
        answered or reset (`fail`); an application error is logged and the
        stream reset.

        Returns:
            True if the stream is done with (its response complete, its
            slot given back): the driver forgets it. Otherwise its response
            is still to come (or waits: HTTP/2, for window), or it is gone.
        """
        if self.hold_if_busy(None):
            return False
        self._read_done = True
        delegate = self._delegate
        if delegate is None:
            return False  # refused
        # Before the call: a handler may answer within it.
        self._handed = True
        try:
            delegate.finish()
        except HTTPInputError as exc:
            self._handed = False
            self.fail(400, str(exc), self.MESSAGE_ERROR)
            return False
        except Exception:
            app_log.error("Uncaught exception", exc_info=True)
            self.app_failed()
            return False
        return bool(self._phase >= DONE and not self._counted)

    def reading(self) -> bool:
        """Whether the request's body is still to come (for the sweeps)."""
        return not (self._read_done or self._closed or self._phase >= DONE)

    def take_continue(self) -> bool:
        """Whether a client that sent ``Expect: 100-continue`` is to get its
        100 now (RFC 9110 section 10.1.1): the delegate took the head, no
        response has started and the body is still to come. Answered once:
        the expectation is cleared."""
        self.expect_continue = False
        return self._phase == IDLE and not self._closed and not self._read_done

    # -- the stream's state, for its driver ----------------------------------------

    @property
    def is_closed(self) -> bool:
        """The stream was reset, timed out, refused or its connection lost
        (`lost`), or it is over on the wire (`mark_closed`): nothing more
        goes out (this may come after the response is done)."""
        return self._closed

    @property
    def read_done(self) -> bool:
        """The request was read to its end (or refused, or the stream lost)."""
        return self._read_done

    @property
    def response_done(self) -> bool:
        """The response was finished (or the exchange is gone)."""
        return self._phase >= DONE

    @property
    def written(self) -> int:
        """Bytes of the response's body written so far."""
        return self._written

    def mark_closed(self) -> bool:
        """The stream is over on the wire with no reset of ours: its
        response is complete and the rest of the request is not wanted, or
        its tunnel ended. False if it was closed already."""
        if self._closed:
            return False
        self._closed = True
        self.abandon_read()
        return True

    def retire(self) -> None:
        """The exchange is over on the driver's side: the delegate and the
        close callback are let go (they hear nothing more)."""
        self._delegate = None
        self.close_callback = None

    def abandon_read(self) -> None:
        """The response is complete and the rest of the request is not
        wanted: a delegate still reading it is told the exchange is gone,
        as over HTTP/1.1, whose connection then closes (a handler that
        streams its body waits for that body's end until it hears of it).
        Told on the loop's next turn, as a close is: the response may have
        ended inside the handler's finish(), whose on_finish() comes first."""
        delegate = self._delegate
        if delegate is not None and not self._read_done:
            # (Not read_done: the driver still tells the client the rest
            # is not wanted. Without its delegate, the stream reports once.)
            self._delegate = None
            loop = self.loop
            assert loop is not None  # (__init__ sets it)
            loop.call_soon(report_closed, delegate, None)

    # -- writes waiting for the stream's output (HTTP/2's windows) -----------------

    def output_waiter(self) -> asyncio.Future[None]:
        """A Future for a write that waits until the stream's output goes out
        (`wake_writers`), or fails once the stream is `lost`."""
        loop = self.loop
        assert loop is not None  # (__init__ sets it)
        waiter = loop.create_future()
        waiters = self._waiters
        if waiters is None:
            self._waiters = [waiter]
        else:
            waiters.append(waiter)
        return waiter

    def writers_waiting(self) -> bool:
        """Whether writes wait for the stream's output (`output_waiter`)."""
        return bool(self._waiters)

    def wake_writers(self) -> None:
        """The stream's output went out: the writes waiting resume."""
        waiters = self._waiters
        self._waiters = None
        if waiters:
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def body_overdue(self, now: float, default: Optional[float]) -> bool:
        """Whether the body is past its time (`flow.body_overdue`): the
        stream's own timeout, else the server's ``default``."""
        return body_overdue(self._body_timeout, default, now - self._started)

    def set_trailers(self, trailers: HTTPHeaders) -> None:
        """Send ``trailers`` as the response's trailer section, after the body.

        They go out when the response finishes (`finish`), in a HEADERS
        frame that ends the stream (RFC 9113 §8.1, RFC 9114 §4.1). HTTP/2
        and HTTP/3 only: an HTTP/1.1 connection has no such method. A
        handler sends them with
        ``self.request.connection.set_trailers(HTTPHeaders({...}))``
        before ``finish()``.

        Raises:
            HTTPOutputError: the response already finished, or a field may
                not be a trailer (RFC 9110 §6.5.1). `.HTTPHeaders` itself
                refuses CR, LF and NUL.
        """
        if self._phase >= DONE:
            raise HTTPOutputError("the response already finished")
        try:
            fields = trailer_fields(trailers.get_all())
        except ValueError as exc:
            raise HTTPOutputError(str(exc)) from None
        if not self._bodiless:  # (a response with no body has no trailers)
            self.trailers_out = fields

    def body_deadline(self, default: Optional[float]) -> Optional[float]:
        """When the body is due (loop time), if it is still to come and has
        a time limit: the stream's own, else the server's ``default``."""
        limit = self._body_timeout or default
        if limit is None or not self.reading():
            return None
        return self._started + limit

    def set_body_timeout(self, timeout: Optional[float]) -> None:
        """Limit the time to receive this request's body (seconds; None:
        the server's ``body_timeout``)."""
        self._body_timeout = timeout
        if timeout and self.reading():
            # Cut at its time, as over HTTP/1.1, not at the connection's
            # next look at its timeouts (seconds apart).
            p: MuxDriver = self._proto
            p.check_timeouts_by(self._started + timeout)

    def set_max_body_size(self, max_body_size: object) -> None:
        """Limit the size of this request's body (bytes: any real number,
        as `squall._sizes.byte_count` takes it)."""
        self._max_body = required_byte_count("max_body_size", max_body_size)

    def detach(self) -> Any:
        """Take over the stream of an extended CONNECT answered with a 2xx
        (RFC 8441, RFC 9220: a WebSocket over HTTP/2 or HTTP/3), as an
        IOStream whose bytes travel in the stream's DATA frames (the
        protocol's tunnel).

        An extended CONNECT whose stream is already gone (reset, or its
        connection lost, before the answer could go out) gives a closed
        stream, as the detach of an HTTP/1.1 connection lost meanwhile does.

        Raises:
            HTTPOutputError: any other stream (the connection is shared by
                other streams; only the stream of an accepted extended
                CONNECT can be handed over).
            RuntimeError: already detached.
        """
        tunnel = self.tunnel
        if tunnel is None or not tunnel.accepted or self._phase < DONE:
            if tunnel is not None and self._closed and self._phase >= DONE:
                # The client left (a reset, the connection lost) before the
                # 2xx could go out: a closed stream, as an HTTP/1.1 detach
                # of a connection lost meanwhile gives; its WebSocket closes
                # at once, and the handler is finished once, not failed.
                return tunnel.hand_over()
            raise HTTPOutputError(f"an {self.PROTOCOL} stream cannot be detached")
        return tunnel.hand_over()

    def close(self) -> None:
        """Reset the stream (the connection stays open for other streams)."""
        p: MuxDriver = self._proto
        p.reset_stream(self, self.CANCEL)


def stream_census(streams: Iterable[_MuxStream]) -> tuple[int, int]:
    """Requests in flight and WebSocket tunnels among a connection's streams.

    A WebSocket over HTTP/2 or HTTP/3 (RFC 8441, RFC 9220) holds its stream
    for as long as it is open: it is a connection, not a request in flight.
    """
    busy = tunnels = 0
    for stream in streams:
        if stream.tunnel is None:
            busy += 1
        else:
            tunnels += 1
    return busy, tunnels
