"""The per-connection driver: moves bytes between an IOStream and `squall._ws`, calls back its peer."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from squall import _ws
from squall._sizes import byte_count
from squall.concurrent import Future
from squall.escape import json_encode
from squall.httputil._websocket_link import WebSocketCarrier
from squall.ioloop import IOLoop
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log
from squall.websocket._done import loop_done as _loop_done
from squall.websocket._pings import PingWheel, wheel_for
from squall.websocket._pings import capped_ping_timeout as _capped_ping_timeout

if TYPE_CHECKING:
    from squall.iostream import BaseIOStream

__all__ = ["WebSocketClosedError", "WebSocketError", "WebSocketProtocol", "WebSocketProtocol13"]

_DEFAULT_MAX_MESSAGE_SIZE = _ws.DEFAULT_MAX_MESSAGE_SIZE
_READ_CHUNK = 65536
# Events dispatched from one read before yielding to the IOLoop, so that a
# flood of small frames does not starve other connections.
_EVENTS_PER_TURN = 64
_CLOSE_TIMEOUT = 5.0

MessageType = Union[str, bytes]
_Message = _ws.Message


class WebSocketError(Exception):
    """Root of the WebSocket errors; also raised for a failed client handshake."""


class WebSocketClosedError(WebSocketError):
    """Raised when writing to (or pinging) a closed WebSocket."""


class _Peer:
    """What a protocol calls back: implemented by the handler and the client connection."""

    def on_message(self, message: MessageType) -> Optional[Awaitable[None]]:
        raise NotImplementedError()

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass

    def on_ws_connection_close(
        self, close_code: Optional[int] = None, close_reason: Optional[str] = None
    ) -> None:
        pass

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        app_log.error("Uncaught exception in WebSocket", exc_info=(typ, value, tb))


class _PingsAndClose:
    """What a connection needs only once it pings, is pinged or closes.

    The close's timer and the state of pings, made by the first of those
    (`WebSocketProtocol13._pings_and_close`): an idle connection that does
    neither keeps none of it (memory per idle WebSocket).
    """

    __slots__ = (
        "close_timer",
        "ping_wheel",
        "ping_slot",
        "last_ping",
        "pings_sent",
        "pings_answered",
        "pong_future",
        "pending_pong",
        "failure",
    )

    def __init__(self) -> None:
        self.close_timer: Optional[object] = None
        # The wheel that pings this connection, and its slot there.
        self.ping_wheel: Optional[PingWheel] = None
        self.ping_slot = 0
        # When the oldest ping not answered yet was sent.
        self.last_ping = 0.0
        self.pings_sent = 0
        self.pings_answered = 0
        # The write of our last pong while it is not done, and the payload of
        # the latest ping received meanwhile (see _answer_ping).
        self.pong_future: Optional[Future[None]] = None
        self.pending_pong: Optional[bytes] = None
        # The code and reason of the close frame this end failed the
        # connection with (see WebSocketProtocol13.failure).
        self.failure: Optional[tuple[int, str]] = None


class WebSocketProtocol:
    """Base of the per-connection protocol objects (``handler.ws_connection``)."""

    # Fields in slots, and an instance dict only when something sets another
    # attribute (an idle WebSocket's bytes count; see WebSocketProtocol13).
    __slots__ = ("__dict__", "__weakref__")

    close_code: Optional[int] = None
    close_reason: Optional[str] = None

    def is_closing(self) -> bool:
        """Whether the connection is closed or closing."""
        raise NotImplementedError()

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Start the closing handshake (code and reason are sent to the peer)."""
        raise NotImplementedError()

    def write_message(
        self, message: Union[MessageType, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Send one message; a dict is sent as JSON."""
        raise NotImplementedError()

    def write_ping(self, data: bytes) -> None:
        """Send a ping frame carrying ``data``."""
        raise NotImplementedError()

    def set_nodelay(self, x: bool) -> None:
        """Set TCP_NODELAY on the connection's socket."""
        raise NotImplementedError()

    def on_connection_close(self) -> None:
        """Called when the underlying stream has closed."""
        raise NotImplementedError()


class WebSocketProtocol13(WebSocketProtocol):
    """Drives one connection over an `~squall.iostream.IOStream` with `squall._ws`.

    Args:
        peer: the handler or client connection to call back.
        client: True on the client side.
        ping_interval: seconds between pings we send (None or 0: none;
            read back as 0).
        ping_timeout: close if a ping is not answered within this many seconds
            (None: ``ping_interval``; 0: never; more than ``ping_interval``:
            ``ping_interval``, with a warning).
        max_message_size: the largest message accepted, in bytes.
    """

    # The fields in slots, and a __dict__ (the base's): applications and
    # Tornado's tests wrap methods of a live protocol (``_handle_message``,
    # ``_write_frame``) on the instance.
    __slots__ = (
        "peer",
        "client",
        "ping_interval",
        "ping_timeout",
        "max_message_size",
        "stream",
        "conn",
        "selected_subprotocol",
        "close_code",
        "close_reason",
        "_closed",
        "_close_seen",
        "_timers",
        "_task",
        "_cork",
        "_cork_future",
        "_direct",
        "_context",
        "_sink",
        "_plain",
        "_paused",
        "_done",
    )

    # What a message handed to the sink returns: its loop's resolved future,
    # shared (as the stream's own writes share one). Set with _plain, and
    # read only while _sink is set.
    _done: Future[None]

    # The bits of a frame's first byte (RFC 6455 §5.2).
    FIN = 0x80
    RSV1 = 0x40
    RSV2 = 0x20
    RSV3 = 0x10
    RSV_MASK = RSV1 | RSV2 | RSV3
    OPCODE_MASK = 0x0F

    @staticmethod
    def compute_accept_value(key: Union[str, bytes]) -> str:
        """The ``Sec-WebSocket-Accept`` value answering ``Sec-WebSocket-Key`` ``key``."""
        return _ws.accept_key(key.decode("ascii") if isinstance(key, bytes) else key)

    def __init__(
        self,
        peer: _Peer,
        client: bool,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = None,
        max_message_size: Optional[int] = _DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.peer: Optional[_Peer] = peer
        self.client = client
        # As Tornado's protocol reads them back: 0 for no pings, and a
        # timeout no longer than the interval (a longer one is cut to it).
        if not ping_interval:
            ping_interval = 0
        if ping_timeout is None:
            ping_timeout = ping_interval
        elif ping_interval and ping_timeout > ping_interval:
            ping_timeout = _capped_ping_timeout(ping_timeout, ping_interval)
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        if type(max_message_size) is not int:
            # (1e7, say: an int for the compiled WSConnection; see squall._sizes.)
            setting = "max_message_size" if client else "websocket_max_message_size"
            max_message_size = byte_count(setting, max_message_size)
        self.max_message_size = max_message_size
        self.stream: Optional[BaseIOStream] = None
        self.conn: Optional[_ws.WSConnection] = None
        self.selected_subprotocol: Optional[str] = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self._closed = False
        self._close_seen = False
        # Timers and pings (see _PingsAndClose), made when first needed.
        self._timers: Optional[_PingsAndClose] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._cork: Optional[list[bytes]] = None
        self._cork_future: Optional[Future[None]] = None
        # Reads come straight from the stream (see start_reading), in this context.
        self._direct = False
        self._context: Optional[contextvars.Context] = None
        # For squall.websocket.broadcast, whose loop reads only this: the
        # transport under the stream of a server connection without
        # compression while a shared frame may be written straight to it
        # (open, not inside its own callbacks, whose writes are held in
        # _cork, and its transport not paused, so that nothing is queued in
        # the stream either); None otherwise. _plain is that transport
        # until the connection starts closing, the sink's value whenever
        # it is set (see _uncork, set_write_paused).
        self._sink: Optional[asyncio.WriteTransport] = None
        self._plain: Optional[asyncio.WriteTransport] = None
        # Whether the transport is over its high-water mark (told by the
        # server's stream, see set_write_paused).
        self._paused = False

    # -- counters (read by tests and tools)

    @property
    def _message_bytes_in(self) -> int:
        return self.conn.message_bytes_in if self.conn else 0

    @property
    def _message_bytes_out(self) -> int:
        return self.conn.message_bytes_out if self.conn else 0

    @property
    def _wire_bytes_in(self) -> int:
        return self.conn.wire_bytes_in if self.conn else 0

    @property
    def _wire_bytes_out(self) -> int:
        return self.conn.wire_bytes_out if self.conn else 0

    # -- lifecycle

    def start(self, stream: BaseIOStream, conn: _ws.WSConnection) -> None:
        """Attaches the stream and the core; reading starts with `start_reading`."""
        core = getattr(stream, "message_core", None)
        if core is not None:
            # A stream that carries whole messages (ASGIAdapter's): its own
            # core stands in for the frame codec, with the same limits.
            conn = core(conn)
        self.stream = stream
        self.conn = conn
        adopt = None if self.client else getattr(stream, "adopt_websocket", None)
        if adopt is None:
            stream.set_close_callback(self.on_connection_close)
        else:
            # The server's own stream calls us back itself: on close, when
            # the server drains (going_away: RFC 6455 section 7.4.1), and
            # when its transport pauses or resumes writing (set_write_paused).
            adopt(self)
            if conn.extension is None:
                # Its transport takes writes directly while nothing is
                # queued in either of them (see _sink).
                carrier = cast(WebSocketCarrier, stream)
                self._sink = self._plain = carrier.transport
                self._done = _loop_done()
                if carrier.writing_paused():
                    self.set_write_paused(True)
        if self.ping_interval:
            state = self._pings_and_close()
            wheel = state.ping_wheel = wheel_for(self.ping_interval, self.ping_timeout)
            state.ping_slot = wheel.add(self)

    @property
    def failure(self) -> Optional[tuple[int, str]]:
        """The close code and reason this end failed the connection with
        (RFC 6455 section 7.1.7: the peer broke the protocol, 1002, sent text
        that is not UTF-8, 1007, or a message over ``max_message_size``,
        1009), or None. ``close_code`` stays the peer's (None then)."""
        state = self._timers
        return None if state is None else state.failure

    def _pings_and_close(self) -> _PingsAndClose:
        state = self._timers
        if state is None:
            state = self._timers = _PingsAndClose()
        return state

    def start_reading(self) -> None:
        """Starts reading frames and dispatching their events.

        A stream that can hand its reads over (``set_receiver``: the
        server's detached connections) is read without a Task or a Future
        per read: the events of each read are dispatched as it arrives.
        The first callback that returns an awaitable moves reading to a
        task (`_receive_loop`) for the rest of the connection, so that
        coroutines run inside a Task as they would anywhere. Other streams
        (the client's) are read by that task from the start.
        """
        if self._task is not None or self._closed or self._direct:
            return
        stream = self.stream
        set_receiver = getattr(stream, "set_receiver", None)
        if set_receiver is None:
            self._task = asyncio.ensure_future(self._receive_loop())
            return
        # Callbacks see the context reading started in, as they would in a
        # task created here. An empty one (the usual case) is made when a
        # read first needs it: an idle connection keeps none.
        context = contextvars.copy_context()
        self._context = context if len(context) else _EMPTY_CONTEXT
        self._direct = True
        if getattr(stream, "adopted_websocket", None) is self:
            # The server's stream calls receive_bytes itself: no bound method kept.
            pending = cast(WebSocketCarrier, stream).receive_to_websocket()
        else:
            pending = set_receiver(self.receive_bytes)
        if pending:
            self.receive_bytes(pending)

    def receive_bytes(self, data: bytes) -> None:
        """Bytes read from the peer, handed over by the stream (see `start_reading`)."""
        context = self._context
        if context is not None:
            if context is _EMPTY_CONTEXT:
                context = self._context = contextvars.Context()
            context.run(self._receive_in_context, data)

    def _receive_in_context(self, data: bytes) -> None:
        conn = self.conn
        if self._closed or conn is None:
            return
        events = conn.receive_data(data)
        if events:
            self._run_events(events, 0)

    def _run_events(self, events: list[_ws.Event], index: int) -> bool:
        """Dispatches ``events[index:]`` now.

        Returns:
            False if some are left for later: after ``_EVENTS_PER_TURN``
            of them (reading is paused and the rest continue on the next
            loop turn), or after an awaitable (they go to a reading task).
        """
        count = len(events)
        stop = index + _EVENTS_PER_TURN
        # Messages go straight to the peer's on_message unless
        # _handle_message is replaced (applications and tests wrap it on
        # the instance); the peer is set while not closed (checked below).
        # (Not by looking in self.__dict__: that would slow every later
        # attribute access on this object.)
        peer = self.peer
        if getattr(self._handle_message, "__func__", None) is not _HANDLE_MESSAGE:
            peer = None
        if count - index > 1:
            # What the callbacks of several events write goes out in one
            # write, after them. A read of one event (a client waiting for
            # its answer) is not held: its callback's writes leave as it
            # makes them, as Tornado's do, so that one that answers and then
            # blocks (a synchronous step) has its client see the answer.
            self._cork = []
            self._sink = None
        try:
            while index < count:
                event = events[index]
                index += 1
                if type(event) is _Message:
                    message = event.data
                    if peer is not None:
                        result = peer.on_message(message)
                    else:
                        result = self._handle_message(1 if type(message) is str else 2, message)
                else:
                    result = self._dispatch(event)
                if result is not None:
                    self._to_task(result, events, index)
                    return False
                if self._closed:
                    return True
                if index == stop and index < count:
                    self._set_receiving(False)
                    IOLoop.current().add_callback(self._run_later, events, index)
                    return False
        except (Exception, asyncio.CancelledError):
            # A callback's error (CancelledError too: no task is being
            # cancelled here) ends this connection only.
            self._log_callback_error()
        finally:
            self._uncork()
        return True

    def _run_later(self, events: list[_ws.Event], index: int) -> None:
        context = self._context
        if self._closed or context is None or not self._direct:
            return
        if context.run(self._run_events, events, index):
            self._set_receiving(True)

    def _set_receiving(self, receiving: bool) -> None:
        set_receiving = getattr(self.stream, "set_receiving", None)
        if set_receiving is not None:
            set_receiving(receiving)

    def _to_task(self, waiting: Awaitable[None], events: list[_ws.Event], index: int) -> None:
        self._direct = False
        stream = self.stream
        assert stream is not None
        set_receiver: Callable[[Optional[Callable[[bytes], None]]], bytes]
        set_receiver = getattr(stream, "set_receiver")  # noqa: B009 (not on BaseIOStream)
        pending = set_receiver(None)
        self._context = None
        self._hold_reading(bool(pending) or index < len(events))
        # Received and not yet delivered, should the connection end before
        # the task has them (see on_connection_close).
        self.__dict__["_undelivered"] = (events, index, pending)
        self._task = asyncio.ensure_future(self._receive_loop(waiting, events, index, pending))

    async def _receive_loop(
        self,
        waiting: Optional[Awaitable[None]] = None,
        events: Optional[list[_ws.Event]] = None,
        index: int = 0,
        pending: bytes = b"",
    ) -> None:
        stream = self.stream
        conn = self.conn
        assert stream is not None and conn is not None
        try:
            if waiting is not None:
                # (_to_task noted what is undelivered meanwhile.)
                await waiting
                self.__dict__.pop("_undelivered", None)
            if pending:
                events = (events or [])[index:] + conn.receive_data(pending)
                index = 0
            if self._closed:
                await self._hand_over_the_rest((events or [])[index:])
                return
            while not self._closed:
                if events is None or index >= len(events):
                    data = await stream.read_bytes(_READ_CHUNK, partial=True)
                    events = conn.receive_data(data)
                    index = 0
                    if not events:
                        continue
                # What the callbacks write while one read's events are
                # dispatched goes out in one stream write (a read of one
                # event: as they write, see _run_events).
                if len(events) - index > 1:
                    self._cork = []
                    self._sink = None
                handled = 0
                delivered = False
                while index < len(events):
                    event = events[index]
                    index += 1
                    kind = type(event)
                    if kind is _ws.Message:
                        message = cast(_ws.Message, event).data
                        result = self._handle_message(1 if type(message) is str else 2, message)
                        delivered = True
                    else:
                        if delivered and (kind is _ws.CloseReceived or kind is _ws.ProtocolFailed):
                            # One turn for the application to answer the
                            # messages before the close (a reader woken by
                            # them, an echo): they came first.
                            self._uncork()
                            if not await self._turn(events, index - 1):
                                return
                            self._cork = []
                            self._sink = None
                        result = self._dispatch(event)
                    if result is not None:
                        self._uncork()
                        self._hold_reading(index < len(events))
                        self.__dict__["_undelivered"] = (events, index, b"")
                        await result
                        self.__dict__.pop("_undelivered", None)
                        if self._closed:
                            await self._hand_over_the_rest(events[index:])
                            return
                        self._cork = []
                        self._sink = None
                    handled += 1
                    if handled % _EVENTS_PER_TURN == 0:
                        self._uncork()
                        if not await self._turn(events, index):
                            return
                        self._cork = []
                        self._sink = None
                    if self._closed:
                        return
                self._uncork()
        except StreamClosedError:
            pass
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                self._abort()
                raise
            self._log_callback_error()
        except Exception:
            self._log_callback_error()
        finally:
            self._uncork()
            self._task = None

    async def _turn(self, events: list[_ws.Event], index: int) -> bool:
        """Lets the loop run once while ``events[index:]`` wait; returns
        whether they are still this task's (the connection did not end)."""
        self._hold_reading(index < len(events))
        self.__dict__["_undelivered"] = (events, index, b"")
        await asyncio.sleep(0)
        self.__dict__.pop("_undelivered", None)
        if self._closed:
            await self._hand_over_the_rest(events[index:])
            return False
        return True

    def _hold_reading(self, left: bool) -> None:
        """The reading task waits for something other than the peer (the
        application, a loop turn), with what was received ``left`` to
        dispatch or not: if there is some, the stream does not read ahead
        meanwhile, so that a peer that half-closes after its close frame is
        seen after that frame, which is then answered (RFC 6455 section
        5.5.1), as Tornado's reading (frame by frame from its buffer) does.
        Should the connection end anyway, what was received is still
        delivered (_deliver_the_rest, or, to a server's handler,
        _hand_over_the_rest)."""
        if left:
            # (With none, the end is seen while the application takes its
            # time, as an idle stream sees it: nothing is left to answer.)
            hold = getattr(self.stream, "hold_reading_ahead", None)
            if hold is not None:
                hold()

    def _log_callback_error(self) -> None:
        peer = self.peer
        if peer is not None:
            peer.log_exception(*sys.exc_info())
        else:  # pragma: no cover - the peer is only dropped once closed
            app_log.error("Uncaught exception in WebSocket", exc_info=True)
        self._abort()

    def _dispatch(self, event: _ws.Event) -> Optional[Awaitable[None]]:
        kind = type(event)
        if kind is _ws.Message:
            data = cast(_ws.Message, event).data
            return self._handle_message(0x1 if type(data) is str else 0x2, data)
        if kind is _ws.Ping:
            return self._handle_message(0x9, cast(_ws.Ping, event).payload)
        if kind is _ws.Pong:
            return self._handle_message(0xA, cast(_ws.Pong, event).payload)
        if type(event) is _ws.CloseReceived:
            # (Narrowed by its type, not cast(): a call in the pure build.)
            self._close_seen = True
            self._sink = self._plain = None
            if self.close_code is None:
                self.close_code = event.code
                # A close frame with a code and no reason text leaves the
                # reason None, as on Tornado (code compares it with None).
                self.close_reason = event.reason or None
            # Section 5.5.1: echo the code, then the closing handshake is done.
            self._send_close(event.code, None)
            self._close_stream()
            return None
        self._close_seen = True
        self._sink = self._plain = None
        failed = cast(_ws.ProtocolFailed, event)
        gen_log.debug("Closing WebSocket: %s (close code %d)", failed.reason, failed.code)
        self._pings_and_close().failure = (failed.code, failed.reason)
        self._send_close(failed.code, failed.reason)
        self._close_stream()
        return None

    def _handle_message(self, opcode: int, data: Any) -> Optional[Awaitable[None]]:
        peer = self.peer
        if peer is None or self._closed:
            return None
        if opcode <= 2:
            return peer.on_message(data)
        if opcode == 0x9:
            if not self.is_closing():
                self._answer_ping(data)
            peer.on_ping(data)
            return None
        state = self._timers
        if state is not None:
            state.pings_answered = state.pings_sent
        peer.on_pong(data)
        return None

    def _answer_ping(self, data: bytes) -> None:
        # Every ping is answered, as peers (and Autobahn's 2.10/2.11) expect;
        # the pongs of one read go out in its single write. Only while an
        # earlier read's pong is still unwritten (the peer does not read)
        # is just the latest ping answered (RFC 6455 section 5.5.3 allows
        # it), so that a ping flood cannot pile pongs up in our buffer.
        state = self._pings_and_close()
        pending = state.pong_future
        if pending is not None and pending is not self._cork_future:
            state.pending_pong = data
            return
        future = self._write_frame(True, 0xA, data)
        if future is not pending and not future.done():
            state.pong_future = future
            future.add_done_callback(self._pong_written)

    def _pong_written(self, future: Future[None]) -> None:
        state = self._pings_and_close()
        state.pong_future = None
        pending = state.pending_pong
        if pending is not None and not self.is_closing():
            state.pending_pong = None
            self._answer_ping(pending)

    # -- writing

    def set_write_paused(self, paused: bool) -> None:
        """The server's stream says its transport paused or resumed writing."""
        self._paused = paused
        if paused:
            self._sink = None
        elif self._cork is None:
            self._sink = self._plain

    def _uncork(self) -> None:
        out = self._cork
        future = self._cork_future
        self._cork = None
        self._cork_future = None
        if self._plain is not None and not self._paused:
            self._sink = self._plain
        if not out:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        stream = self.stream
        try:
            if stream is None or stream.closed():
                raise StreamClosedError()
            written = stream.write(data)
        except StreamClosedError:
            if future is not None:
                future.set_exception(WebSocketClosedError())
                future.exception()  # nobody may be waiting: do not log it
            return
        if future is not None:
            if written.done():
                _translate_write(written, future)
            else:
                written.add_done_callback(lambda f: _translate_write(f, future))

    def _write(self, data: bytes) -> Future[None]:
        stream = self.stream
        if stream is None or stream.closed():
            raise WebSocketClosedError()
        cork = self._cork
        if cork is not None:
            cork.append(data)
            future = self._cork_future
            if future is None:
                future = self._cork_future = Future()
            return future
        try:
            future = stream.write(data)
        except StreamClosedError:
            raise WebSocketClosedError() from None
        if future.done():
            if future.exception() is None:
                return future
        translated: Future[None] = Future()
        future.add_done_callback(lambda f: _translate_write(f, translated))
        return translated

    def _write_frame(self, fin: bool, opcode: int, data: bytes, flags: int = 0) -> Future[None]:
        conn = self.conn
        if conn is None:
            raise WebSocketClosedError()
        try:
            frame = conn.send_frame(opcode, data, fin, bool(flags & 0x40))
        except _ws.LocalProtocolError:
            if conn.close_sent:
                raise WebSocketClosedError() from None
            raise
        return self._write(frame)

    def write_message(
        self, message: Union[str, bytes, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Sends a message; a dict is sent as JSON text.

        Returns:
            A future that resolves when the message has been written out.

        Raises:
            WebSocketClosedError: the connection is closed or closing.
        """
        conn = self.conn
        if self._closed or self._close_seen or conn is None or conn.close_sent:
            raise WebSocketClosedError()
        payload: Union[str, bytes]
        if type(message) is str or type(message) is bytes:
            payload = message
        elif isinstance(message, dict):
            payload = json_encode(message)
        elif isinstance(message, (str, bytes)):
            payload = message
        else:
            raise TypeError(
                f"a WebSocket message is str, bytes or dict, not {type(message).__name__}"
            )
        frame = conn.send_message(payload, binary)
        sink = self._sink
        if sink is not None:
            try:
                sink.write(frame)
                return self._done
            except RuntimeError:
                # A transport closed under a stream not told yet.
                pass
        cork = self._cork
        if cork is None:
            return self._write(frame)
        # Written with the rest of this read's answers by _uncork (which
        # also fails the future if the stream has closed meanwhile).
        cork.append(frame)
        future = self._cork_future
        if future is None:
            future = self._cork_future = Future()
        return future

    def write_ping(self, data: bytes) -> None:
        """Sends a ping.

        Raises:
            ValueError: ``data`` is over 125 bytes.
            WebSocketClosedError: the connection is closed or closing.
        """
        if len(data) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        if self.is_closing():
            raise WebSocketClosedError()
        self._write_frame(True, 0x9, data)

    def set_nodelay(self, x: bool) -> None:
        """Sets TCP_NODELAY on the connection's socket."""
        if self.stream is not None:
            self.stream.set_nodelay(x)

    # -- pings

    @staticmethod
    def ping_sleep_time(*, last_ping_time: float, interval: float, now: float) -> float:
        """Seconds to wait before the next ping (never negative)."""
        return max(0.0, last_ping_time + interval - now)

    def send_periodic_ping(self, now: float) -> None:
        """Sends the periodic ping (the ping wheel of this connection calls it)."""
        state = self._pings_and_close()
        if self.is_closing():
            return
        if state.pings_answered == state.pings_sent:
            state.last_ping = now
        state.pings_sent += 1
        try:
            self._write_frame(True, 0x9, b"")
        except WebSocketClosedError:
            return

    def check_pong(self, now: float, timeout: float) -> None:
        """Closes the connection if a ping has waited ``timeout`` for its pong."""
        state = self._timers
        if (
            state is not None
            and state.pings_answered < state.pings_sent
            and now - state.last_ping >= timeout
            and not self.is_closing()
        ):
            self.close(1000, "ping timed out")

    # -- closing

    def is_closing(self) -> bool:
        """Whether the connection is closed or a close frame was sent or received."""
        # The close frame counts once dispatched: messages parsed from the
        # same read before it may still be answered.
        conn = self.conn
        return self._closed or conn is None or conn.close_sent or self._close_seen

    def _send_close(self, code: Optional[int], reason: Optional[str]) -> None:
        conn = self.conn
        stream = self.stream
        if conn is None or stream is None or conn.close_sent:
            return
        self._sink = self._plain = None
        try:
            frame = conn.send_close(code, reason)
        except _ws.LocalProtocolError:
            # A code we may not send (1005, say): send an empty close frame.
            frame = conn.send_close(None, None)
        cork = self._cork
        if cork is not None:
            # Inside callbacks (an echoed close, say): after their answers,
            # in the same write, when the cork is let go (its _uncork).
            cork.append(frame)
            return
        if not stream.closed():
            try:
                stream.write(frame)
            except StreamClosedError:
                pass

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Starts (or completes) the closing handshake.

        Args:
            code: a close code (1000 when only a reason is given).
            reason: a short reason phrase.

        Raises:
            ValueError: ``reason`` is over 123 bytes of UTF-8, or ``code``
                does not fit a close frame's 16 bits (nothing is sent, as
                on Tornado: the caller learns it rather than the peer
                getting a close without the code).
        """
        if self._closed:
            return
        if reason is not None and len(reason.encode("utf-8")) > 123:
            raise ValueError(
                "a WebSocket close reason is at most 123 bytes of UTF-8 "
                f"(RFC 6455 section 5.5), got {len(reason.encode('utf-8'))}"
            )
        if code is not None and not 0 <= code <= 0xFFFF:
            raise ValueError(f"a WebSocket close code fits in 16 bits, got {code}")
        if code is None and reason is not None:
            code = 1000
        conn = self.conn
        if conn is None:
            self._close_stream()
            return
        self._send_close(code, reason)
        if self._close_seen:
            self._close_stream()
        else:
            state = self._pings_and_close()
            if state.close_timer is None:
                # The peer should echo the close frame and (server) close TCP.
                state.close_timer = IOLoop.current().call_later(_CLOSE_TIMEOUT, self._abort)

    @property
    def takes_direct_writes(self) -> bool:
        """Whether writes go to the server stream's transport directly now
        (not paused, nothing corked, no extension)."""
        return self._sink is not None

    def going_away(self) -> None:
        """The server drains: close with 1001 (RFC 6455 section 7.4.1)."""
        self.close(1001, "server shutting down")

    def _close_stream(self) -> None:
        self._sink = self._plain = None
        self._uncork()
        stream = self.stream
        if stream is not None and not stream.closed():
            stream.close()
        else:
            self.on_connection_close()

    def _abort(self) -> None:
        """Closes the connection at once, without a closing handshake."""
        self._close_stream()

    def on_connection_close(self) -> None:
        """Called when the stream closes: stops timers and tells the peer once."""
        if self._closed:
            return
        self._closed = True
        self._sink = self._plain = None
        state = self._timers
        if state is not None:
            # (IOLoop.current() only for a timer: a peer that closes first
            # leaves none, and the lookup was a tenth of the close's cost.)
            if state.close_timer is not None:
                IOLoop.current().remove_timeout(state.close_timer)
                state.close_timer = None
            wheel = state.ping_wheel
            if wheel is not None:
                state.ping_wheel = None
                wheel.remove(self, state.ping_slot)
        task = self._task
        if task is not None and task is not asyncio.current_task():
            self._deliver_the_rest()
            if "_undelivered" in self.__dict__ and self.peer is not None:
                # A handler's on_message is running (a coroutine): it is not
                # cancelled, and the messages received after it are still
                # handed over once it returns (_hand_over_the_rest), as on
                # Tornado, whose reading goes on through what was received.
                self.__dict__["_hand_over_to"] = self.peer
            else:
                task.cancel()
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.on_ws_connection_close(self.close_code, self.close_reason)

    async def _hand_over_the_rest(self, rest: list[_ws.Event]) -> None:
        """Gives a closed connection's handler the messages received before the end."""
        peer = self.__dict__.pop("_hand_over_to", None)
        if peer is None:
            return
        for event in rest:
            if type(event) is _ws.Message:
                result = peer.on_message(event.data)
                if result is not None:
                    await result

    def _deliver_the_rest(self) -> None:
        """Gives a client the messages received before the connection closed.

        Its reading waited for the application to take a message (the
        client's back-pressure) while the rest of what had arrived stayed
        parsed, or unparsed, here; the end of the connection must not drop
        them: a server that sends four messages and closes has the client
        read four. (A handler on the server side gets them in order, each
        awaited, from its reading task: _hand_over_the_rest.)
        """
        peer = self.peer
        conn = self.conn
        if not self.client or peer is None or conn is None:
            return
        left = self.__dict__.pop("_undelivered", None)
        if left is None:
            return
        events, index, pending = left
        rest = (events or [])[index:]
        if pending:
            rest = rest + conn.receive_data(pending)
        for event in rest:
            if type(event) is _ws.Message:
                peer.on_message(event.data)
            elif type(event) is _ws.CloseReceived:
                # The server's close frame came with the end: its code and
                # reason are the connection's (no answer can go any more).
                if self.close_code is None:
                    self.close_code = event.code
                    self.close_reason = event.reason or None
                break


# Stands for an empty context not made yet (see start_reading); never run.
_EMPTY_CONTEXT = contextvars.Context()


def _translate_write(source: Future[None], target: Future[None]) -> None:
    if target.done():
        return
    exc = source.exception()
    if exc is None:
        target.set_result(None)
    elif isinstance(exc, StreamClosedError):
        target.set_exception(WebSocketClosedError())
        target.exception()  # nobody may be waiting: do not log it
    else:
        target.set_exception(exc)


_HANDLE_MESSAGE = WebSocketProtocol13._handle_message
