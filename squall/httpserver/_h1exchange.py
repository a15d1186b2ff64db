"""The HTTP/1.1 driver's connection state and its `request.connection`.

Split from ``_protocol`` (which holds `_HTTPProtocol`, the driver itself):
the states and flow bits of a connection, the per-loop write queue, and
`_RequestConnection`, the exchange contract (`squall.httputil._exchange`)
for one request on that protocol. Compiled by mypyc with ``_protocol`` (see
speedups/squall_build.py): each reads the other's fields natively, by the
public names `squall.httpserver._h1driver.H1Driver` declares (the code names the concrete class, which
mypyc reads without a lookup).
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable
from http.client import responses
from typing import IO, TYPE_CHECKING, Final, Optional, cast

from squall._h1 import LocalProtocolError
from squall._sizes import required_byte_count
from squall.httpserver._sendfile import send_file
from squall.httpserver._stream import _TransportStream
from squall.httputil import HTTPHeaders, HTTPOutputError
from squall.httputil._drivers import _body
from squall.httputil._exchange import DONE, GONE, HEAD, IDLE, Exchange
from squall.httputil._response import _ResponseHeaders
from squall.httputil._startline import StartLine
from squall.iostream import StreamClosedError
from squall.log import app_log
from squall.platform.asyncio import _write_at_stop

if TYPE_CHECKING:
    from squall.httpserver._h1lifecycle import _H1Lifecycle
    from squall.httpserver._h1output import _H1Output
    from squall.httpserver._protocol import _HTTPProtocol


def _call_at(
    loop: asyncio.AbstractEventLoop,
    when: float,
    callback: Callable[[], None],
    context: contextvars.Context,
) -> asyncio.TimerHandle:
    """``loop.call_at``, by the loop's cheaper way to it.

    asyncio's call_later calls its call_at; uvloop's call_at calls its
    call_later, through a Python-level call that cost 2.2k instructions
    more per timer (callgrind, arm and cancel). Every connection arms one
    (the idle timer) as it is made, so a handshake pays it too.
    """
    if isinstance(loop, asyncio.BaseEventLoop):
        return loop.call_at(when, callback, context=context)
    return loop.call_later(when - loop.time(), callback, context=context)


# A C variable in the compiled build (a module global is a dict lookup).
_ResponseHeadersType: Final = _ResponseHeaders

# -- connection state -------------------------------------------------------------
#
# ``_HTTPProtocol.state`` is one of these, in this order; HTTP processing
# goes on while it is below _CLOSING (h11-style: one explicit state per
# connection rather than a flag per condition).
#
#   _IDLE      between exchanges (and before the first): a head is awaited.
#              -> _REQUEST when a request head is handed to its delegate.
#   _REQUEST   the request's body is being read; its response may be under
#              way or even finished. -> _RESPONSE at the end of the body if
#              the response is unfinished, else -> _IDLE.
#   _RESPONSE  the request is read, its response unfinished. -> _IDLE when
#              the response finishes.
#   _CLOSING   no more HTTP: the queued output goes out, then the transport
#              is closed. -> _STOPPED by that flush.
#   _STOPPED   no more HTTP; the transport is closing.
#   _DETACHED  an IOStream has the transport (`_RequestConnection.detach`).
#   _CLOSED    the connection is lost, or handed to HTTP/2. Final.
#
# An error, a timeout, close(), or a response that ends the connection
# moves any state below _CLOSING to _CLOSING or _STOPPED; detach() moves an
# exchange to _DETACHED; connection_lost moves anything to _CLOSED.
_IDLE: Final = 0
_REQUEST: Final = 1
_RESPONSE: Final = 2
_CLOSING: Final = 3
_STOPPED: Final = 4
_DETACHED: Final = 5
_CLOSED: Final = 6

# Flow control (``_HTTPProtocol.flow``), independent of the state above:
# bits, any combination.
_BLOCKED: Final = 1  # a delegate's awaitable is pending: no events handed on
_WRITE_PAUSED: Final = 4  # the transport is over its high-water mark
_TAKEN: Final = 8  # detach() was called (once only, even on a lost connection)
_QUEUED: Final = 16  # output waits in the loop's _WriteQueue
_HELD: Final = 32  # pipelined requests wait for the output to drain (_hold)
_STALLED: Final = _BLOCKED | _HELD
_LINGER: Final = 64  # an error answer, or one before the body: close in stages (_linger)


class _NextTurn:
    """Connections of one loop with something to do on the loop's next turn,
    done for all of them in one callback; what, the subclass says (`_each`)."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        # No reference to the loop: the queues are kept on the loop (see
        # _LoopShared), and a loop that refers to itself through one would
        # be freed only by the cycle collector.
        self._pending: list[_H1Output] = []

    def _push(self, proto: _H1Output) -> None:
        pending = self._pending
        if not pending:
            proto.loop.call_soon(self.run)
        pending.append(proto)

    def run(self) -> None:
        """Do it now for every connection waiting (the loop's next turn, or
        its stop: see `_write_held_output`)."""
        pending = self._pending
        self._pending = []
        for proto in pending:
            self._each(proto)

    def _each(self, proto: _H1Output) -> None:
        raise NotImplementedError


class _WriteQueue(_NextTurn):
    """The connections of one loop whose output waits to be written.

    What a connection's requests produce is written one loop round later,
    together with every other connection's, not at the end of each
    connection's read: the loop first reads every connection that is ready,
    then the writes leave in one burst. Written one by one between reads,
    each response woke the client for itself; under wrk (50 connections,
    varied requests, pure Python) that cost 10.8 microseconds of kernel time
    per request against about 5.5 batched, more than parse and routing
    together. The same holds for responses ended from their requests'
    Tasks, one after another in a round (`_H1Output.flush_with_round`).
    Compiled 3.11 on uvloop, wrk's varied hello, requests per server
    CPU-second, 3 alternated rounds (2026-11): under 50 connections
    64,264 written each at its end, 75,843 with the round; under 8, 60,837
    and 55,627, under 1, 19,273 and 18,276 (a loop turn per response that
    few share). Going at once while fewer than 16 requests were open kept
    8 and 1 and lost the gain under 50 (63,233): it comes from the client
    falling into step with the server's rounds, which such a switch never
    lets happen.
    """

    __slots__ = ()

    def add(self, proto: _H1Output) -> None:
        """Writes ``proto``'s output with the rest of this round's."""
        proto.flow |= _QUEUED
        self._push(proto)

    def _each(self, proto: _H1Output) -> None:
        # A connection flushed or lost meanwhile has dropped its mark.
        if proto.flow & _QUEUED:
            try:
                proto.flush()
            except Exception:
                app_log.error("Uncaught exception writing a response", exc_info=True)
                proto.abort()


class _ArmQueue(_NextTurn):
    """The new connections of one loop whose first idle timer waits a turn.

    A connection owes its first head from its accept, and most send it at
    once: the next read brings it, and the exchange it starts runs no idle
    timer. So the timer is armed on the loop's next turn, for those still
    idle then, at the deadline counted from the accept: the others are
    spared a timer made and cancelled (the loop's timer handle, its heap
    entry, a bound method). In a crowd of WebSocket handshakes that was 3%
    of each one's instructions, and three of the objects in flight that
    make the cycle collector run more often (callgrind_handshake.py
    --crowd).
    """

    __slots__ = ()

    def add(self, proto: _H1Lifecycle) -> None:
        """Arms ``proto``'s idle timer on the next turn if it is idle then."""
        self._push(proto)

    def _each(self, proto: _H1Output) -> None:
        cast("_H1Lifecycle", proto).arm_if_idle()


# Shared by the connections of one loop (per-connection ones would cost
# every idle connection): the resolved future a write returns while the
# transport takes more, the context idle timers run in (asyncio would copy
# the current context for each timer; _check_idle runs no application code,
# and what it triggers later, connection_lost, gets a copy of its own), and
# the write queue and the queue of first idle timers. Per loop, not global: a Context cannot be entered by two
# threads.
#
# Kept on the loop itself (asyncio's and uvloop's loops take attributes), so
# that it goes with the loop; a loop class that takes no attributes gets a
# WeakKeyDictionary. Either way nothing in it refers to the loop strongly:
# not the queue (it asks the connection for its loop), not the future (a
# future holds its loop, so the entry holds it by a weak reference, and the
# connections hold it; the next connection makes a new one once they are
# all gone). A reference back would make every loop that served a
# connection a reference cycle, left to the cycle collector (Tornado's
# circlerefs_test), and in the dictionary it would keep the loop for ever.
_SHARED_ATTR: Final = "_squall_shared"


class _LoopShared:
    """What one loop's connections share (see above)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop_ref: weakref.ReferenceType[asyncio.AbstractEventLoop] = weakref.ref(loop)
        self.context = contextvars.Context()
        self.writes = _WriteQueue()
        self.arming = _ArmQueue()
        self.done_ref: Optional[weakref.ReferenceType[asyncio.Future[None]]] = None

    def done_future(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
        """The loop's resolved future, made again once nobody holds it."""
        ref = self.done_ref
        if ref is not None:
            future = ref()
            if future is not None:
                return future
        future = loop.create_future()
        future.set_result(None)
        self.done_ref = weakref.ref(future)
        return future


_per_loop: Final[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopShared]] = (
    weakref.WeakKeyDictionary()
)

# The last loop's entry: a server's connections all ask for the same one,
# and WeakKeyDictionary.get (a weak reference made, then a lookup, in
# Python) cost 2.3k instructions per connection (a WebSocket handshake,
# callgrind_handshake.py). The entry refers to its loop weakly: keeping it
# here keeps no loop alive.
_last_shared: Optional[_LoopShared] = None


def _loop_shared(
    loop: asyncio.AbstractEventLoop,
) -> tuple[asyncio.Future[None], contextvars.Context, _WriteQueue, _ArmQueue]:
    global _last_shared
    shared = _last_shared
    if shared is None or shared.loop_ref() is not loop:
        found = getattr(loop, _SHARED_ATTR, None)
        if found is None:
            found = _per_loop.get(loop)
        if found is None:
            found = _LoopShared(loop)
            try:
                setattr(loop, _SHARED_ATTR, found)
            except AttributeError:
                _per_loop[loop] = found
        shared = _last_shared = found
    return shared.done_future(loop), shared.context, shared.writes, shared.arming


def _write_held_output(loop: asyncio.AbstractEventLoop) -> None:
    """Write now what the loop's connections hold for its next round: the
    loop has stopped (`IOLoop.start` returns), and a handler that finished
    and then stopped it must still have its answer sent."""
    shared = getattr(loop, _SHARED_ATTR, None)
    if shared is None:
        shared = _per_loop.get(loop)
    if shared is not None:
        shared.writes.run()


_write_at_stop(_write_held_output)


def _closed_future(loop: asyncio.AbstractEventLoop) -> asyncio.Future[None]:
    future: asyncio.Future[None] = loop.create_future()
    future.set_exception(StreamClosedError())
    future.exception()  # nobody has to look at a write to a closed connection
    return future


class _RequestConnection(Exchange):
    """`request.connection` for one request on the protocol path.

    An `.Exchange`: its phase, `head_written`, the close callback, `write`
    and `finish` are the contract's; this class writes the emit hooks and
    its own `write_headers` (the core renders the head and keeps the
    Content-Length accounting, so Exchange's ``_declared`` stays None).
    Compiled with `.Exchange` (speedups/squall_build.py): a native subclass,
    whose hooks are called natively.
    """

    __slots__ = ("_proto", "_body_timeout", "loop")

    def __init__(self, proto: _HTTPProtocol) -> None:
        # Exchange.__init__'s fields, set here: a call fewer per request
        # (in the pure build, 1.4k instructions of a hello request's 174k).
        self.context = proto.context
        # The close callback is the plain attribute, called from
        # connection_lost only (see HTTPConnection.close_callback_attribute).
        self.close_callback_attribute = True
        self.close_callback = None
        self._phase = IDLE
        self._declared = None
        self._written = 0
        self._bodiless = False
        # (Exchange.loop: the protocol calls the delegate from its loop only.)
        self.loop = proto.loop
        self._proto = proto
        self._body_timeout: Optional[float] = None

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> asyncio.Future[None]:
        """Write the status line and headers, and optionally the first body chunk.

        Raises:
            HTTPOutputError: invalid headers, or a response already started.
        """
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING:
            return _closed_future(p.loop)
        # A ResponseStartLine (not asserted: isinstance() costs a call).
        code: int = start_line[1]  # type: ignore[assignment]
        # A handler's headers hold checked str values only.
        checked = type(headers) is _ResponseHeadersType and not headers._unchecked
        try:
            data = p.h1.send_fields(
                code,
                start_line[2],
                headers._as_list,
                chunk or b"",
                checked,
                p.no_keep_alive,
            )
        except LocalProtocolError as exc:
            # A head refused is not sent (the caller may still answer with
            # an error instead); a head taken with a first chunk it refuses
            # (more than its Content-Length) counts as started, and, as for
            # a later chunk of that kind, the connection is dropped: the
            # response cannot be framed, so finishing it is then quiet.
            if p.h1.our_state != "IDLE":
                self._phase = HEAD
                p.abort()
            raise HTTPOutputError(str(exc)) from None
        return self._send_head(p, data)

    def write_rendered_head(
        self, head: bytes, framing: int, chunk: bytes
    ) -> Optional[asyncio.Future[None]]:
        """Write a response head already rendered and checked, with the first body chunk.

        For a caller that renders heads from bytes (the ASGI driver): see
        `H1Connection.send_rendered_head` for what it vouches for. None,
        nothing written, where the plain case does not apply (a HEAD
        request, HTTP/1.0, a connection to close...): the caller then goes
        through `write_headers`.
        """
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING or p.no_keep_alive:
            return None
        data = p.h1.send_rendered_head(head, framing, chunk)
        if data is None:
            return None
        return self._send_head(p, data)

    def _send_head(self, p: _HTTPProtocol, data: bytes) -> asyncio.Future[None]:
        # The head (and any first chunk) rendered: the exchange has started.
        self._phase = HEAD
        if p.in_feed and not p.flow & _WRITE_PAUSED:
            # _send() for the usual case, in this frame (for the ASGI
            # driver, _send measured +1k instructions per request, pure):
            # written while the request is processed, so _process flushes
            # it at its end.
            out = p.output
            assert out is not None  # (None only once detached)
            out.append(data)
            return p.done_future
        return p.send(data)

    def send_now(self) -> None:
        """Write the connection's queued output now, not with the round's
        (an explicit flush or finish: see `Exchange.send_now`).

        After this exchange's end the connection may have begun the next
        pipelined request: what is queued is still in the wire's order."""
        p = self._proto
        if not p.output:
            return
        if p.state < _CLOSING:
            p.flush()
        elif p.state == _CLOSING and p.in_feed:
            # A last answer, from inside a read: _process closes the
            # connection at the read's end, as it would have.
            p.write_out()

    def sendfile(self, file: IO[bytes], count: int) -> Optional[Awaitable[None]]:
        """Send ``count`` body bytes of ``file`` (from its offset) by sendfile(2).

        The bytes go from the file to the socket in the kernel, not through
        user space (see `squall.httpserver._sendfile`). None, with nothing
        done, where the connection cannot: TLS, or a body not framed by a
        Content-Length; the caller then writes the bytes itself.

        Raises:
            HTTPOutputError: more bytes than the Content-Length.
        """
        p = self._proto
        transport = p.transport
        if (
            p.exchange is not self
            or p.state >= _CLOSING
            or transport is None
            or self._phase == IDLE
            or transport.get_extra_info("ssl_object") is not None
            or transport.get_extra_info("socket") is None
        ):
            return None
        try:
            if not p.h1.send_counted(count):
                return None
        except LocalProtocolError as exc:
            p.abort()
            raise HTTPOutputError(str(exc)) from None
        if p.output:
            p.flush()
        return send_file(p, transport, file, count)

    # -- the emit hooks (Exchange) -----------------------------------------------------
    #
    # Each first checks that the protocol still serves this exchange: an
    # error, a timeout or close() stops HTTP on the connection (_CLOSING)
    # before connection_lost moves the phase to GONE.

    def _emit_raw(self, chunk: bytes) -> asyncio.Future[None]:
        # Tornado's legacy interface: the application writes the whole
        # response itself; we close after it.
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING:
            return _closed_future(p.loop)
        return p.send(chunk)

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING:
            return _closed_future(p.loop)
        try:
            data = _body(p.h1, chunk)
        except HTTPOutputError:
            p.abort()
            raise
        return p.send(data)

    def _emit_end(self, phase: int) -> None:
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING:
            # Not ended: the connection stops, and connection_lost reports
            # the unfinished response to the close callback.
            if phase != GONE:
                self._phase = phase
            return
        if phase == IDLE:
            p.state = _CLOSING
            if not p.in_feed:
                p.flush()
            return
        try:
            data = p.h1.send_end()
        except LocalProtocolError as exc:
            self._phase = phase
            p.abort()
            raise HTTPOutputError(str(exc)) from None
        if data:
            out = p.output
            assert out is not None  # (None only once detached)
            out.append(data)
        if not p.h1.keep_alive:
            p.state = _CLOSING
            if p.delegate is not None:
                # Answered before the request's body was read (a 401 or a
                # 413 from prepare): the client may still be sending it.
                p.flow |= _LINGER
            if not p.in_feed:
                p.flush()
        elif not p.in_feed:
            # Ended from the request's Task (every request on 3.11): it
            # leaves with the round's other responses, as one read's do.
            p.flush_with_round()
        if p.delegate is None:
            # The request was read to its end: the exchange is over.
            p.end_exchange()

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        # Declined to an HTTP/1.0 client (RFC 9110 section 15.2).
        p = self._proto
        if p.exchange is not self or p.state >= _CLOSING or not p.h1.takes_informational:
            return False
        try:
            data = p.h1.send_informational(code, responses.get(code, ""), headers.get_all())
        except LocalProtocolError as exc:
            raise HTTPOutputError(str(exc)) from None
        p.send(data)
        return True

    def _refuse(self) -> None:
        # (Unused while _declared stays None: the core counts the body.)
        self._proto.abort()

    # A method, not a property: the driver's question, not an attribute the
    # application should see on its connection (tests/test_surface.py).
    def response_done(self) -> bool:
        """Whether the response is complete (asked by the driver at the end
        of the request: both done ends the exchange)."""
        return self._phase == DONE

    def set_body_timeout(self, timeout: Optional[float]) -> None:
        """Limit the time to receive this request's body (seconds; None:
        the server's ``body_timeout``)."""
        self._body_timeout = timeout

    def set_max_body_size(self, max_body_size: object) -> None:
        """Limit the size of this request's body (bytes: any real number,
        as `squall._sizes.byte_count` takes it)."""
        size = required_byte_count("max_body_size", max_body_size)
        p = self._proto
        if p.exchange is self:
            p.h1.set_max_body_size(size)

    @property
    def transport(self) -> Optional[asyncio.BaseTransport]:
        """The asyncio transport of the connection."""
        return self._proto.transport

    @property
    def stream(self) -> Optional[_TransportStream]:
        """An `~squall.iostream.IOStream` over the connection, for raw writes; see `detach`.

        None once the connection is detached: the stream is the detacher's
        then, and code that tells an upgraded connection by this None (Dask's
        WebSocket comm) sees what it sees on Tornado.
        """
        proto = self._proto
        if proto.taken:
            return None
        return proto.get_stream()

    def detach(self) -> _TransportStream:
        """Take the connection over as an `~squall.iostream.IOStream`; HTTP processing stops.

        Bytes received after the request are readable from the stream.
        """
        return self._proto.detach()

    def close(self) -> None:
        """Close the connection."""
        self._proto.abort()
