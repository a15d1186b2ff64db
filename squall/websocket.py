"""WebSocket (RFC 6455) for servers (`WebSocketHandler`) and clients (`websocket_connect`).

Every protocol rule lives in the sans-I/O core `squall._ws`; this module only
moves bytes between it and an `~squall.iostream.IOStream` and calls the
application:

* server: `WebSocketHandler.get` checks the upgrade, answers 101 through the
  ordinary response path, then takes the connection's stream over with
  `~squall.web.RequestHandler.detach`;
* client: `websocket_connect` opens a TCP (or TLS) stream with
  `~squall.tcpclient.TCPClient`, writes the upgrade request and reads the
  response head itself. A dedicated path is simpler and sturdier than
  bending the pooled HTTP client to hand its connection over.

In both roles one task per connection reads with ``read_bytes(partial=True)``
(one Future per read, however many frames a read holds), feeds the core and
dispatches the events in order; a coroutine ``on_message`` is awaited before
the next message is dispatched.

Errors::

    WebSocketError
     +-- WebSocketClosedError   write or ping on a closed connection
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from squall import _ws
from squall.concurrent import Future, future_set_result_unless_cancelled
from squall.escape import json_encode, utf8
from squall.httpclient import HTTPClientError, HTTPRequest
from squall.httputil import HTTPHeaders, parse_response_start_line
from squall.ioloop import IOLoop
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log
from squall.web import Application, RequestHandler

if TYPE_CHECKING:
    from squall.iostream import BaseIOStream
    from squall.netutil import Resolver

__all__ = [
    "WebSocketClientConnection",
    "WebSocketClosedError",
    "WebSocketError",
    "WebSocketHandler",
    "WebSocketProtocol",
    "WebSocketProtocol13",
    "websocket_connect",
]

_DEFAULT_MAX_MESSAGE_SIZE = _ws.DEFAULT_MAX_MESSAGE_SIZE
_READ_CHUNK = 65536
# Events dispatched from one read before yielding to the IOLoop, so that a
# flood of small frames does not starve other connections.
_EVENTS_PER_TURN = 64
_CLOSE_TIMEOUT = 5.0

MessageType = Union[str, bytes]


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
        self, close_code: Optional[int], close_reason: Optional[str]
    ) -> None:
        pass

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        app_log.error("Uncaught exception in WebSocket", exc_info=(typ, value, tb))


class WebSocketProtocol:
    """Base of the per-connection protocol objects (``handler.ws_connection``)."""

    close_code: Optional[int] = None
    close_reason: Optional[str] = None

    def is_closing(self) -> bool:
        """Whether the connection is closed or closing."""
        raise NotImplementedError()


class WebSocketProtocol13(WebSocketProtocol):
    """Drives one connection over an `~squall.iostream.IOStream` with `squall._ws`.

    Args:
        peer: the handler or client connection to call back.
        client: True on the client side.
        ping_interval: seconds between pings we send (None or 0: none).
        ping_timeout: close if a ping is not answered within this many seconds
            (None: ``ping_interval``; 0: never).
        max_message_size: the largest message accepted, in bytes.
    """

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
        self.ping_interval = ping_interval
        self.ping_timeout = ping_interval if ping_timeout is None else ping_timeout
        self.max_message_size = max_message_size
        self.stream: Optional[BaseIOStream] = None
        self.conn: Optional[_ws.WSConnection] = None
        self.selected_subprotocol: Optional[str] = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self._closed = False
        self._close_seen = False
        self._close_timer: Optional[object] = None
        self._ping_timer: Optional[object] = None
        self._last_ping = 0.0
        self._pings_sent = 0
        self._pings_answered = 0
        self._pong_future: Optional[Future[None]] = None
        self._pending_pong: Optional[bytes] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._cork: Optional[list[bytes]] = None
        self._cork_future: Optional[Future[None]] = None

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
        self.stream = stream
        self.conn = conn
        stream.set_close_callback(self.on_connection_close)
        if self.ping_interval:
            self._last_ping = IOLoop.current().time()
            self._schedule_ping(self.ping_interval)

    def start_reading(self) -> None:
        """Starts the task that reads frames and dispatches their events."""
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._receive_loop())

    async def _receive_loop(self) -> None:
        stream = self.stream
        conn = self.conn
        assert stream is not None and conn is not None
        try:
            while not self._closed:
                data = await stream.read_bytes(_READ_CHUNK, partial=True)
                events = conn.receive_data(data)
                if not events:
                    continue
                # What the callbacks write while one read's events are
                # dispatched goes out in one stream write.
                self._cork = []
                handled = 0
                for event in events:
                    result = self._dispatch(event)
                    if result is not None:
                        self._uncork()
                        await result
                        self._cork = []
                    handled += 1
                    if handled % _EVENTS_PER_TURN == 0:
                        self._uncork()
                        await asyncio.sleep(0)
                        self._cork = []
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
        if kind is _ws.CloseReceived:
            self._close_seen = True
            close = cast(_ws.CloseReceived, event)
            if self.close_code is None:
                self.close_code = close.code
                self.close_reason = close.reason
            # Section 5.5.1: echo the code, then the closing handshake is done.
            self._send_close(close.code, None)
            self._close_stream()
            return None
        self._close_seen = True
        failed = cast(_ws.ProtocolFailed, event)
        gen_log.debug("Closing WebSocket: %s (close code %d)", failed.reason, failed.code)
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
        self._pings_answered = self._pings_sent
        peer.on_pong(data)
        return None

    def _answer_ping(self, data: bytes) -> None:
        # While a pong is being written, only the latest ping is answered.
        if self._pong_future is not None:
            self._pending_pong = data
            return
        future = self._write_frame(True, 0xA, data)
        if not future.done():
            self._pong_future = future
            future.add_done_callback(self._pong_written)

    def _pong_written(self, future: Future[None]) -> None:
        self._pong_future = None
        pending = self._pending_pong
        if pending is not None and not self.is_closing():
            self._pending_pong = None
            self._answer_ping(pending)

    # -- writing

    def _uncork(self) -> None:
        out = self._cork
        future = self._cork_future
        self._cork = None
        self._cork_future = None
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
        if self._closed or conn is None or conn.close_sent:
            raise WebSocketClosedError()
        if isinstance(message, dict):
            message = json_encode(message)
        elif not isinstance(message, (str, bytes)):
            raise TypeError(
                f"a WebSocket message is str, bytes or dict, not {type(message).__name__}"
            )
        return self._write(conn.send_message(message, binary))

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

    def set_nodelay(self, value: bool) -> None:
        """Sets TCP_NODELAY on the connection's socket."""
        if self.stream is not None:
            self.stream.set_nodelay(value)

    # -- pings

    @staticmethod
    def ping_sleep_time(*, last_ping_time: float, interval: float, now: float) -> float:
        """Seconds to wait before the next ping (never negative)."""
        return max(0.0, last_ping_time + interval - now)

    def _schedule_ping(self, delay: float) -> None:
        self._ping_timer = IOLoop.current().call_later(delay, self._send_periodic_ping)

    def _send_periodic_ping(self) -> None:
        self._ping_timer = None
        if self.is_closing() or not self.ping_interval:
            return
        loop = IOLoop.current()
        now = loop.time()
        self._last_ping = now
        self._pings_sent += 1
        try:
            self._write_frame(True, 0x9, b"")
        except WebSocketClosedError:
            return
        if self.ping_timeout:
            loop.call_later(self.ping_timeout, self._check_pong, self._pings_sent)
        self._schedule_ping(
            self.ping_sleep_time(
                last_ping_time=self._last_ping, interval=self.ping_interval, now=loop.time()
            )
        )

    def _check_pong(self, ping_number: int) -> None:
        if self._pings_answered < ping_number and not self.is_closing():
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
        self._uncork()
        try:
            frame = conn.send_close(code, reason)
        except _ws.LocalProtocolError:
            # A code we may not send (1005, say): send an empty close frame.
            frame = conn.send_close(None, None)
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
        """
        if self._closed:
            return
        if code is None and reason is not None:
            code = 1000
        conn = self.conn
        if conn is None:
            self._close_stream()
            return
        self._send_close(code, reason)
        if self._close_seen:
            self._close_stream()
        elif self._close_timer is None:
            # The peer should echo the close frame and (server) close TCP.
            self._close_timer = IOLoop.current().call_later(_CLOSE_TIMEOUT, self._abort)

    def _close_stream(self) -> None:
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
        loop = IOLoop.current()
        for timer in (self._close_timer, self._ping_timer):
            if timer is not None:
                loop.remove_timeout(timer)
        self._close_timer = self._ping_timer = None
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.on_ws_connection_close(self.close_code, self.close_reason)


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


def _not_supported(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("Method not supported for Web Sockets")


_HTTP_METHODS_AFTER_UPGRADE = (
    "write",
    "redirect",
    "set_header",
    "set_cookie",
    "set_status",
    "flush",
    "finish",
)


class WebSocketHandler(RequestHandler, _Peer):
    """A request handler that upgrades its GET request to a WebSocket.

    Override `open`, `on_message` and `on_close`; send with `write_message`.
    `open` and `on_message` may be coroutines: no message is delivered before
    `open` finishes, and each `on_message` finishes before the next starts.

    Application settings: ``websocket_ping_interval``,
    ``websocket_ping_timeout``, ``websocket_max_message_size`` (10 MiB by
    default).
    """

    def __init__(self, application: Application, request: Any, **kwargs: Any) -> None:
        self.ws_connection: Optional[WebSocketProtocol13] = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self._on_close_called = False
        self.open_args: tuple[Any, ...] = ()
        self.open_kwargs: dict[str, Any] = {}
        super().__init__(application, request, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Checks the upgrade request and, if valid, runs the WebSocket."""
        self.open_args = args
        self.open_kwargs = kwargs
        headers = self.request.headers
        # Section 4.2.1; the order of checks follows the statuses callers see.
        if (headers.get("Upgrade") or "").lower() != "websocket":
            self.set_status(400)
            self.finish('Can "Upgrade" only to "WebSocket".')
            return
        connection_tokens = [
            t.strip().lower() for t in (headers.get("Connection") or "").split(",")
        ]
        if "upgrade" not in connection_tokens:
            self.set_status(400)
            self.finish('"Connection" must be "Upgrade".')
            return
        origin = headers.get("Origin") or headers.get("Sec-Websocket-Origin")
        if origin is not None and not self.check_origin(origin):
            self.set_status(403)
            self.finish("Cross origin websockets not allowed")
            return
        protocol = self.get_websocket_protocol()
        if protocol is None:
            self.set_status(426)
            self.set_header("Sec-WebSocket-Version", "13")
            self.finish()
            return
        self.ws_connection = protocol
        await self._accept(protocol)

    async def _accept(self, protocol: WebSocketProtocol13) -> None:
        request = self.request
        try:
            key = _ws.check_request(request.method or "", request.headers)
        except _ws.HandshakeError as exc:
            self.ws_connection = None
            self.set_status(exc.status_hint)
            for name, value in exc.headers:
                self.set_header(name, value)
            self.finish(str(exc))
            return
        offered = _ws.parse_subprotocols(request.headers.get("Sec-WebSocket-Protocol"))
        selected = self.select_subprotocol(offered)
        if selected is not None and selected not in offered:
            raise ValueError(
                f"select_subprotocol returned {selected!r}, which the client did not offer"
            )
        extension_header: Optional[str] = None
        extension: Optional[_ws.PerMessageDeflate] = None
        options = self.get_compression_options()
        offer = request.headers.get("Sec-WebSocket-Extensions")
        if options is not None and offer:
            accepted = _ws.server_accept(offer, options)
            if accepted is not None:
                extension_header, extension = accepted
        for name, value in _ws.server_headers(key, selected, extension_header):
            self.set_header(name, value)
        self.clear_header("Content-Type")
        self.set_status(101)
        self.finish()
        stream = self.detach()
        for method in _HTTP_METHODS_AFTER_UPGRADE:
            setattr(self, method, _not_supported)
        protocol.selected_subprotocol = selected
        protocol.start(stream, _ws.WSConnection(False, extension, protocol.max_message_size))
        try:
            result = self.open(*self.open_args, **self.open_kwargs)
            if result is not None:
                await result
        except Exception:
            self.log_exception(*sys.exc_info())
            protocol._abort()
            return
        protocol.start_reading()

    def get_websocket_protocol(self) -> Optional[WebSocketProtocol13]:
        """The protocol for this request's ``Sec-WebSocket-Version`` (only 13), or None."""
        if (self.request.headers.get("Sec-WebSocket-Version") or "").strip() != "13":
            return None
        settings = self.settings
        return WebSocketProtocol13(
            self,
            client=False,
            ping_interval=settings.get("websocket_ping_interval"),
            ping_timeout=settings.get("websocket_ping_timeout"),
            max_message_size=self.max_message_size,
        )

    @property
    def ping_interval(self) -> Optional[float]:
        """The ``websocket_ping_interval`` setting."""
        return cast(Optional[float], self.settings.get("websocket_ping_interval"))

    @property
    def ping_timeout(self) -> Optional[float]:
        """The ``websocket_ping_timeout`` setting."""
        return cast(Optional[float], self.settings.get("websocket_ping_timeout"))

    @property
    def max_message_size(self) -> int:
        """The largest message accepted (``websocket_max_message_size``, 10 MiB by default)."""
        return cast(int, self.settings.get("websocket_max_message_size", _DEFAULT_MAX_MESSAGE_SIZE))

    # -- application hooks

    def open(self, *args: Any, **kwargs: Any) -> Optional[Awaitable[None]]:
        """Called when the WebSocket is open, with the URL's path arguments; may be a coroutine."""
        return None

    def on_message(self, message: MessageType) -> Optional[Awaitable[None]]:
        """Called with each message (``str`` for text, ``bytes`` for binary); may be a coroutine."""
        raise NotImplementedError()

    def on_ping(self, data: bytes) -> None:
        """Called with the payload of each ping (it is answered automatically)."""

    def on_pong(self, data: bytes) -> None:
        """Called with the payload of each pong."""

    def on_close(self) -> None:
        """Called once when the WebSocket closes; see `close_code` and `close_reason`."""

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        """Chooses one of the client's subprotocols (or None, the default).

        Args:
            subprotocols: the offered subprotocols, in the client's order
                (empty when the client offered none).
        """
        return None

    @property
    def selected_subprotocol(self) -> Optional[str]:
        """The subprotocol chosen by `select_subprotocol`, once open."""
        assert self.ws_connection is not None
        return self.ws_connection.selected_subprotocol

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        """Compression options to enable permessage-deflate; None (the default) disables it.

        An empty dict enables it with defaults; keys: ``compression_level``,
        ``mem_level``, ``server_no_context_takeover``,
        ``client_no_context_takeover``, ``server_max_window_bits``,
        ``client_max_window_bits``.
        """
        return None

    def check_origin(self, origin: str) -> bool:
        """Whether to accept a connection from this ``Origin``.

        By default: the browser's ``Sec-Fetch-Site`` decides when present
        (``same-origin`` and ``none`` pass); otherwise the origin's host must
        be this request's ``Host``. Origins accepted by
        `~squall.web.RequestHandler.check_trusted_origin` pass either way.
        Override to accept cross-origin connections (then authenticate them
        some other way).
        """
        site = self.request.headers.get("Sec-Fetch-Site")
        if site is not None:
            if site.strip().lower() in ("same-origin", "none"):
                return True
            return self.check_trusted_origin(origin)
        parsed = urllib.parse.urlsplit(origin)
        host = (self.request.headers.get("Host") or "").lower()
        if parsed.scheme and parsed.netloc and parsed.netloc.lower() == host:
            return True
        return self.check_trusted_origin(origin)

    # -- sending

    def write_message(
        self, message: Union[str, bytes, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Sends a message (a dict as JSON); binary sends a binary message.

        Returns:
            A future resolved once the message is written out.

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing():
            raise WebSocketClosedError()
        return protocol.write_message(message, binary)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Sends a ping with ``data`` (at most 125 bytes).

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        protocol = self.ws_connection
        if protocol is None or protocol.is_closing():
            raise WebSocketClosedError()
        protocol.write_ping(utf8(data))

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Closes the WebSocket, optionally with a close code and reason."""
        protocol = self.ws_connection
        if protocol is not None:
            protocol.close(code, reason)

    def set_nodelay(self, value: bool) -> None:
        """Sets TCP_NODELAY: send small messages at once instead of coalescing them."""
        protocol = self.ws_connection
        assert protocol is not None, "set_nodelay needs an open WebSocket"
        protocol.set_nodelay(value)

    # -- connection end

    def on_ws_connection_close(
        self, close_code: Optional[int], close_reason: Optional[str]
    ) -> None:
        self.close_code = close_code
        self.close_reason = close_reason
        self.ws_connection = None
        if not self._on_close_called:
            self._on_close_called = True
            self.on_close()

    def on_connection_close(self) -> None:
        """Called when the connection closes before the upgrade finished."""
        protocol = self.ws_connection
        if protocol is not None:
            protocol.on_connection_close()
        elif not self._on_close_called:
            self._on_close_called = True
            self.on_close()

    def send_error(self, *args: Any, **kwargs: Any) -> None:
        """After the upgrade there is no HTTP response to send: close the connection."""
        protocol = self.ws_connection
        if protocol is not None and protocol.stream is not None:
            protocol._abort()
            return
        super().send_error(*args, **kwargs)


class WebSocketClientConnection(_Peer):
    """A client WebSocket; get one from `websocket_connect`.

    Attributes:
        headers: the server's 101 response headers.
        protocol: the `WebSocketProtocol13` driving the connection.
    """

    def __init__(
        self,
        request: HTTPRequest,
        on_message_callback: Optional[Callable[[Optional[MessageType]], None]] = None,
        compression_options: Optional[dict[str, Any]] = None,
        ping_interval: Optional[float] = None,
        ping_timeout: Optional[float] = None,
        max_message_size: int = _DEFAULT_MAX_MESSAGE_SIZE,
        subprotocols: Optional[list[str]] = None,
        resolver: Optional[Resolver] = None,
    ) -> None:
        self.request = request
        self._on_message_callback = on_message_callback
        self.compression_options = compression_options
        self.subprotocols = list(subprotocols or [])
        self.resolver = resolver
        self.protocol = WebSocketProtocol13(
            self,
            client=True,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_message_size=max_message_size,
        )
        self.headers = HTTPHeaders()
        self.stream: Optional[BaseIOStream] = None
        self._messages: deque[Optional[MessageType]] = deque()
        self._readers: deque[Future[Optional[MessageType]]] = deque()
        self._space: Optional[Future[None]] = None
        self._closed = False

    # -- handshake

    async def _connect(self) -> WebSocketClientConnection:
        from squall.tcpclient import TCPClient

        request = self.request
        parsed = urllib.parse.urlsplit(request.url)
        scheme = parsed.scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"unsupported WebSocket URL scheme: {request.url!r}")
        secure = scheme in ("wss", "https")
        host = parsed.hostname
        if not host:
            raise ValueError(f"no host in WebSocket URL {request.url!r}")
        port = parsed.port or (443 if secure else 80)
        ssl_options: Any = None
        if secure:
            ssl_options = _client_ssl_options(request)
        client = TCPClient(resolver=self.resolver)
        stream = await client.connect(
            host,
            port,
            ssl_options=ssl_options,
            timeout=request.connect_timeout,
        )
        self.stream = stream
        try:
            key = _ws.new_key()
            offer = (
                _ws.client_offer(self.compression_options)
                if self.compression_options is not None
                else None
            )
            stream.write(self._request_head(parsed, key, offer))
            head = await stream.read_until(b"\r\n\r\n", max_bytes=65536)
            start, _, rest = head.decode("latin-1").partition("\r\n")
            status = parse_response_start_line(start)
            headers = HTTPHeaders.parse(rest)
            if status.code != 101:
                if 200 <= status.code < 300:
                    raise WebSocketError("Non-websocket response")
                raise HTTPClientError(status.code, status.reason)
            try:
                selected = _ws.check_response(status.code, headers, key, self.subprotocols)
                extension: Optional[_ws.PerMessageDeflate] = None
                answer = headers.get("Sec-WebSocket-Extensions")
                if answer:
                    if offer is None:
                        raise _ws.HandshakeError(
                            "the server enabled an extension we did not offer", 0
                        )
                    extension = _ws.client_accept(answer, self.compression_options or {})
            except _ws.HandshakeError as exc:
                raise WebSocketError(f"WebSocket handshake failed: {exc}") from exc
        except BaseException:
            stream.close()
            raise
        self.headers = headers
        protocol = self.protocol
        protocol.selected_subprotocol = selected
        protocol.start(stream, _ws.WSConnection(True, extension, protocol.max_message_size))
        protocol.start_reading()
        return self

    def _request_head(
        self, parsed: urllib.parse.SplitResult, key: str, offer: Optional[str]
    ) -> bytes:
        target = parsed.path or "/"
        if parsed.query:
            target += "?" + parsed.query
        lines = [f"GET {target} HTTP/1.1"]
        user = HTTPHeaders(self.request.headers or {})
        if "Host" not in user:
            default_port = parsed.port is None or parsed.port == (
                443 if parsed.scheme in ("wss", "https") else 80
            )
            host = parsed.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            lines.append(f"Host: {host if default_port else f'{host}:{parsed.port}'}")
        ours = _ws.client_headers(key, self.subprotocols, offer)
        own_names = {name.lower() for name, _ in ours}
        for name, value in user.get_all():
            if name.lower() not in own_names:
                lines.append(f"{name}: {value}")
        lines.extend(f"{name}: {value}" for name, value in ours)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # -- reading

    def on_message(self, message: MessageType) -> Optional[Awaitable[None]]:
        if self._on_message_callback is not None:
            self._on_message_callback(message)
            return None
        if self._readers:
            future_set_result_unless_cancelled(self._readers.popleft(), message)
            return None
        self._messages.append(message)
        # Back-pressure: stop reading until the application takes a message.
        space: Future[None] = Future()
        self._space = space
        return space

    def read_message(
        self, callback: Optional[Callable[[Future[Optional[MessageType]]], None]] = None
    ) -> Future[Optional[MessageType]]:
        """Reads the next message.

        Returns:
            A future with the message (``str`` or ``bytes``), or None once the
            connection is closed.
        """
        future: Future[Optional[MessageType]] = Future()
        if self._messages:
            future.set_result(self._messages.popleft())
            space = self._space
            if space is not None and not self._messages:
                self._space = None
                future_set_result_unless_cancelled(space, None)
        elif self._closed:
            future.set_result(None)
        else:
            self._readers.append(future)
        if callback is not None:
            IOLoop.current().add_future(future, callback)
        return future

    def on_ping(self, data: bytes) -> None:
        pass

    def on_pong(self, data: bytes) -> None:
        pass

    def on_ws_connection_close(
        self, close_code: Optional[int], close_reason: Optional[str]
    ) -> None:
        self._closed = True
        space = self._space
        if space is not None:
            self._space = None
            future_set_result_unless_cancelled(space, None)
        if self._on_message_callback is not None:
            self._on_message_callback(None)
        while self._readers:
            future_set_result_unless_cancelled(self._readers.popleft(), None)

    # -- writing and closing

    def write_message(
        self, message: Union[str, bytes, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Sends a message (a dict as JSON).

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        protocol = self.protocol
        if protocol.is_closing():
            raise WebSocketClosedError()
        return protocol.write_message(message, binary)

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Sends a ping (at most 125 bytes of ``data``).

        Raises:
            ValueError: ``data`` is too long.
            WebSocketClosedError: the connection is closed.
        """
        payload = utf8(data)
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        if self.protocol.is_closing():
            raise WebSocketClosedError()
        self.protocol.write_ping(payload)

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Closes the connection, optionally with a close code and reason."""
        self.protocol.close(code, reason)

    @property
    def selected_subprotocol(self) -> Optional[str]:
        """The subprotocol the server selected, or None."""
        return self.protocol.selected_subprotocol

    @property
    def close_code(self) -> Optional[int]:
        """The close code the server sent, once closed."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> Optional[str]:
        """The close reason the server sent, once closed."""
        return self.protocol.close_reason

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        app_log.error("Uncaught exception in WebSocket client", exc_info=(typ, value, tb))


def _client_ssl_options(request: HTTPRequest) -> Any:
    if request.ssl_options is not None:
        return request.ssl_options
    import ssl

    context = ssl.create_default_context(cafile=request.ca_certs)
    if request.validate_cert is False:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if request.client_cert is not None:
        context.load_cert_chain(request.client_cert, request.client_key)
    return context


def websocket_connect(
    url: Union[str, HTTPRequest],
    callback: Optional[Callable[[Future[WebSocketClientConnection]], None]] = None,
    connect_timeout: Optional[float] = None,
    on_message_callback: Optional[Callable[[Optional[MessageType]], None]] = None,
    compression_options: Optional[dict[str, Any]] = None,
    ping_interval: Optional[float] = None,
    ping_timeout: Optional[float] = None,
    max_message_size: int = _DEFAULT_MAX_MESSAGE_SIZE,
    subprotocols: Optional[list[str]] = None,
    resolver: Optional[Resolver] = None,
) -> Future[WebSocketClientConnection]:
    """Opens a client WebSocket.

    Args:
        url: a ``ws://`` or ``wss://`` URL, or an `~squall.httpclient.HTTPRequest`
            (for extra headers, timeouts and TLS options).
        callback: called with the future once it resolves (prefer awaiting).
        connect_timeout: seconds allowed for the TCP (and TLS) connection.
        on_message_callback: called with each message, and None on close,
            instead of queuing them for `~WebSocketClientConnection.read_message`.
        compression_options: a dict (possibly empty) to offer
            permessage-deflate; None disables it.
        ping_interval: seconds between pings; ping_timeout: seconds to wait
            for each pong (default ``ping_interval``; 0 for no limit).
        max_message_size: the largest message accepted.
        subprotocols: subprotocols to offer, in preference order.
        resolver: the `~squall.netutil.Resolver` for the host name.

    Returns:
        A future with the `WebSocketClientConnection`. It fails with
        `~squall.httpclient.HTTPClientError` when the server answers with an
        HTTP error, `WebSocketError` when it answers without upgrading, and
        `OSError` when it cannot be reached.
    """
    if isinstance(url, HTTPRequest):
        request = url
        if connect_timeout is not None and request.connect_timeout is None:
            request.connect_timeout = connect_timeout
    else:
        request = HTTPRequest(url, connect_timeout=connect_timeout)
    connection = WebSocketClientConnection(
        request,
        on_message_callback=on_message_callback,
        compression_options=compression_options,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        max_message_size=max_message_size,
        subprotocols=subprotocols,
        resolver=resolver,
    )
    future: Future[WebSocketClientConnection] = Future()

    def done(task: asyncio.Task[WebSocketClientConnection]) -> None:
        if future.done():
            return
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(cast(BaseException, task.exception()))
        else:
            future.set_result(task.result())

    asyncio.ensure_future(connection._connect()).add_done_callback(done)
    if callback is not None:
        IOLoop.current().add_future(future, callback)
    return future
