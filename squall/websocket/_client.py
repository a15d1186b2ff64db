"""The client side: `websocket_connect` and `WebSocketClientConnection`."""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
import urllib.parse
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from io import BytesIO
from typing import TYPE_CHECKING, Any, Optional, Union, cast

from squall import _ws, gen
from squall.concurrent import Future, _held_future, future_set_result_unless_cancelled
from squall.escape import utf8
from squall.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from squall.httputil import (
    HTTPHeaders,
    ResponseStartLine,
    parse_response_start_line,
    split_host_and_port,
)
from squall.ioloop import IOLoop
from squall.iostream import StreamClosedError
from squall.log import app_log
from squall.queues import QueueEmpty

if TYPE_CHECKING:
    from squall.iostream import BaseIOStream
    from squall.netutil import Resolver

from squall.websocket._protocol import (
    _DEFAULT_MAX_MESSAGE_SIZE,
    MessageType,
    WebSocketClosedError,
    WebSocketError,
    WebSocketProtocol13,
    _Peer,
)

__all__ = ["WebSocketClientConnection", "websocket_connect"]


class WebSocketClientConnection(_Peer):
    """A client WebSocket; get one from `websocket_connect`.

    Attributes:
        headers: the server's 101 response headers.
        code: None once connected (as in Tornado, where a WebSocket answer
            carries no status worth reporting); the status of a refused
            handshake otherwise.
        reason: the reason phrase of a refused handshake, else None.
        protocol: the `WebSocketProtocol13` driving the connection.
        parsed: the request's URL split by `urllib.parse.urlsplit`, its
            scheme spelled ``http``/``https`` (set when connecting starts;
            Dask reads ``parsed.netloc`` for the peer's address).
        parsed_hostname: the host of ``parsed`` (brackets of an IPv6
            literal removed).
        io_loop: the `.IOLoop` current when the connection was made.
        tcp_client: the `.TCPClient` that opens the connection.
        connect_future: the future `websocket_connect` returned: made, and
            the connection started, by the constructor (as Tornado's, so
            that a subclass made directly connects too).
        start_time: `.IOLoop.time` when the connection was made.
        start_wall_time: `time.time` when the connection was made.
        final_callback: always None (kept for code written for Tornado,
            whose client connection shares it with the HTTP client's).
    """

    # No __slots__: callers hang their own state on a connection object.

    # On the class as well as on each connection, as on Tornado (a test's
    # ``Mock(spec=WebSocketClientConnection)`` offers the class's names);
    # every connection sets its own in __init__.
    protocol: WebSocketProtocol13 = None  # type: ignore[assignment]
    # Whether the application called close() (see write_message, ping).
    _closed_here = False

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
        # What Tornado's client connection carries from its HTTP-client base
        # and instrumentation or libraries read (Dask: ``parsed``).
        self.io_loop = IOLoop.current()
        self.start_time = self.io_loop.time()
        self.start_wall_time = time.time()
        self.final_callback: Optional[Callable[..., Any]] = None
        from squall.tcpclient import TCPClient

        self.tcp_client = TCPClient(resolver=resolver)
        self.protocol = WebSocketProtocol13(
            self,
            client=True,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_message_size=max_message_size,
        )
        self.headers = HTTPHeaders()
        self.code: Optional[int] = None
        self.reason: Optional[str] = None
        self.stream: Optional[BaseIOStream] = None
        self._messages: deque[Optional[MessageType]] = deque()
        self._readers: deque[Future[Optional[MessageType]]] = deque()
        self._space: Optional[Future[None]] = None
        self._closed = False
        # The handshake's headers go into the request, where Tornado's client
        # puts them and code written for it reads them (jupyter-server-proxy's
        # tests: the Sec-WebSocket-Protocol offered).
        self._key = _ws.new_key()
        #: The Sec-WebSocket-Key sent, as bytes (Tornado's attribute).
        self.key = self._key.encode("ascii")
        self._offer = (
            _ws.client_offer(compression_options) if compression_options is not None else None
        )
        request.headers.update(_ws.client_headers(self._key, self.subprotocols, self._offer))
        # Connecting starts here, as in Tornado, whose constructor starts its
        # HTTP connection: a subclass made directly (jupyter-server-proxy's
        # PingableWSClientConnection) awaits its connect_future.
        future: Future[WebSocketClientConnection] = Future()
        self.connect_future = future

        def done(task: asyncio.Future[WebSocketClientConnection]) -> None:
            if future.done():
                return
            if task.cancelled():
                future.cancel()
            elif task.exception() is not None:
                future.set_exception(cast(BaseException, task.exception()))
            else:
                future.set_result(task.result())

        _held_future(self._connect()).add_done_callback(done)

    # -- handshake

    async def _connect(self) -> WebSocketClientConnection:

        request = self.request
        parsed = urllib.parse.urlsplit(request.url)
        scheme = parsed.scheme.lower()
        if scheme not in ("ws", "wss", "http", "https"):
            raise ValueError(f"unsupported WebSocket URL scheme: {request.url!r}")
        secure = scheme in ("wss", "https")
        self.parsed = urllib.parse.SplitResult(
            "https" if secure else "http", parsed.netloc, parsed.path, parsed.query, parsed.fragment
        )
        host = parsed.hostname
        if not host:
            raise ValueError(f"no host in WebSocket URL {request.url!r}")
        # As written in the URL (case kept), without userinfo or port.
        named, _ = split_host_and_port(parsed.netloc.rpartition("@")[2])
        self.parsed_hostname = named[1:-1] if named.startswith("[") else named
        port = parsed.port or (443 if secure else 80)
        ssl_options: Any = None
        if secure:
            ssl_options = _client_ssl_options(request)
        try:
            stream = await self._open_stream(host, port, ssl_options)
        except StreamClosedError as exc:
            # As with Tornado's client, a failed connect raises its cause
            # (ConnectionRefusedError, a TLS error...), which is what callers catch.
            if exc.real_error is None:
                raise
            raise exc.real_error from None
        self.stream = stream
        try:
            key, offer = self._key, self._offer
            stream.write(self._request_head(parsed, key, offer))
            status, headers = await self._read_head(stream)
            if status.code != 101:
                self.code, self.reason = status.code, status.reason
                if 200 <= status.code < 300:
                    raise WebSocketError("Non-websocket response")
                # As Tornado's client: the error carries the response, its
                # body read (a server's 401 or 403 says why in it).
                try:
                    body = await self._read_refusal_body(stream, status.code, headers)
                except StreamClosedError as exc:
                    raise _RefusalCutShort(exc.real_error) from None
                response = HTTPResponse(
                    request,
                    status.code,
                    headers=headers,
                    buffer=BytesIO(body),
                    reason=status.reason,
                    request_time=self.io_loop.time() - self.start_time,
                    start_time=self.start_wall_time,
                )
                raise cast(HTTPClientError, response.error)
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
        except StreamClosedError as exc:
            # Closed before the handshake's answer: as Tornado's client, the
            # socket's own error, else a 599 HTTPStreamClosedError saying
            # "Stream closed" (the fetch's wording when no response head
            # came, which retry checks match); closed within a refusal's
            # body, Tornado's raises StreamClosedError.
            stream.close()
            if isinstance(exc, _RefusalCutShort):
                raise StreamClosedError(exc.real_error) from None
            if exc.real_error is not None:
                raise exc.real_error from None
            from squall.simple_httpclient import HTTPStreamClosedError

            raise HTTPStreamClosedError("Stream closed") from None
        except BaseException:
            stream.close()
            raise
        self.headers = headers
        protocol = self.protocol
        protocol.selected_subprotocol = selected
        protocol.start(stream, _ws.WSConnection(True, extension, protocol.max_message_size))
        protocol.start_reading()
        return self

    async def _open_stream(self, host: str, port: int, ssl_options: Any) -> BaseIOStream:
        """Connects to the server, through an HTTP proxy's CONNECT tunnel if one is set."""
        request = self.request
        client = self.tcp_client
        timeout = request.connect_timeout
        if not request.proxy_host:
            return await client.connect(host, port, ssl_options=ssl_options, timeout=timeout)
        stream = await client.connect(request.proxy_host, request.proxy_port or 80, timeout=timeout)
        try:
            authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
            if request.proxy_username is not None:
                if request.proxy_auth_mode not in (None, "basic"):
                    raise ValueError(f"unsupported proxy_auth_mode {request.proxy_auth_mode!r}")
                token = f"{request.proxy_username}:{request.proxy_password or ''}"
                encoded = base64.b64encode(token.encode("utf-8")).decode("ascii")
                lines.append(f"Proxy-Authorization: Basic {encoded}")
            stream.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, _ = await self._read_head(stream)
            if not 200 <= status.code < 300:
                raise HTTPClientError(
                    599, f"Proxy CONNECT to {authority} failed: {status.code} {status.reason}"
                )
            if ssl_options is not None:
                return await stream.start_tls(False, ssl_options, server_hostname=host)
        except BaseException:
            stream.close()
            raise
        return stream

    def _deadline(self) -> Optional[float]:
        """When reading the handshake's answer must end: ``request_timeout``
        from now, or None for no limit."""
        timeout = self.request.request_timeout
        if timeout is None:
            timeout = HTTPRequest._DEFAULTS["request_timeout"]
        return IOLoop.current().time() + timeout if timeout else None

    async def _timed(self, reading: Awaitable[bytes], deadline: Optional[float]) -> bytes:
        """``reading``, if it ends before ``deadline``."""
        if deadline is None:
            return await reading
        try:
            read: bytes = await gen.with_timeout(
                deadline, reading, quiet_exceptions=(StreamClosedError,)
            )
        except gen.TimeoutError:
            raise HTTPClientError(
                599, "Timeout while waiting for the WebSocket handshake"
            ) from None
        return read

    async def _read_head(self, stream: BaseIOStream) -> tuple[ResponseStartLine, HTTPHeaders]:
        head = await self._timed(stream.read_until(b"\r\n\r\n", max_bytes=65536), self._deadline())
        start, _, rest = head.decode("latin-1").partition("\r\n")
        return parse_response_start_line(start), HTTPHeaders.parse(rest)

    async def _read_refusal_body(
        self, stream: BaseIOStream, code: int, headers: HTTPHeaders
    ) -> bytes:
        """The body of a response that refused the handshake, within one
        ``request_timeout``, up to `_REFUSAL_BODY_LIMIT` bytes (b"" when it
        says it is longer, or has none): by its Content-Length, its chunks,
        or to the end of the connection."""
        if code < 200 or code in (204, 304):
            return b""
        deadline = self._deadline()
        if "Content-Length" in headers:
            try:
                length = int(headers["Content-Length"])
            except ValueError:
                return b""
            if not 0 < length <= _REFUSAL_BODY_LIMIT:
                return b""
            return await self._timed(stream.read_bytes(length), deadline)
        if headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            size = 0
            while True:
                line = await self._timed(stream.read_until(b"\r\n", max_bytes=1024), deadline)
                try:
                    chunk = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return b""
                if chunk == 0:
                    return b"".join(chunks)
                size += chunk
                if chunk < 0 or size > _REFUSAL_BODY_LIMIT:
                    return b""
                chunks.append((await self._timed(stream.read_bytes(chunk + 2), deadline))[:-2])
        # Neither: the body ends with the connection.
        return await self._timed(_read_to_close(stream, _REFUSAL_BODY_LIMIT), deadline)

    def _request_head(
        self, parsed: urllib.parse.SplitResult, key: str, offer: Optional[str]
    ) -> bytes:
        from squall.simple_httpclient._auth import basic_authorization
        from squall.simple_httpclient._policy import ascii_target, default_user_agent

        target = parsed.path or "/"
        if parsed.query:
            target += "?" + parsed.query
        # Non-ASCII characters percent-encoded as UTF-8, as the HTTP client
        # sends them (they went out as latin-1 octets: not even UTF-8).
        lines = [f"GET {ascii_target(target)} HTTP/1.1"]
        user = HTTPHeaders(self.request.headers or {})
        if "Host" not in user:
            default_port = parsed.port is None or parsed.port == (
                443 if parsed.scheme in ("wss", "https") else 80
            )
            host = parsed.hostname or ""
            if ":" in host:
                host = f"[{host}]"
            lines.append(f"Host: {host if default_port else f'{host}:{parsed.port}'}")
        # The request's credentials and User-Agent, as Tornado's client (its
        # HTTP client's) sends them with the handshake.
        request = self.request
        if "Authorization" not in user:
            if parsed.username is not None:
                username: Optional[str] = urllib.parse.unquote(parsed.username)
                password = urllib.parse.unquote(parsed.password or "")
            else:
                username = getattr(request, "auth_username", None)
                password = getattr(request, "auth_password", None) or ""
            if username is not None:
                mode = getattr(request, "auth_mode", None)
                if mode not in (None, "basic"):
                    raise ValueError(f"unsupported auth_mode {mode}")
                lines.append(f"Authorization: {basic_authorization(username, password)}")
        agent = getattr(request, "user_agent", None)
        if agent:
            user["User-Agent"] = agent
        elif "User-Agent" not in user:
            lines.append(f"User-Agent: {default_user_agent()}")
        ours = _ws.client_headers(key, self.subprotocols, offer)
        own_names = {name.lower() for name, _ in ours}
        for name, value in user.get_all():
            if name.lower() not in own_names:
                lines.append(f"{name}: {value}")
        lines.extend(f"{name}: {value}" for name, value in ours)
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    # -- reading

    @property
    def read_queue(self) -> _ReadQueue:
        """The unread messages as a queue (Tornado's attribute, read by Bokeh's tests).

        ``await conn.read_queue.get()`` is `read_message`: the next message,
        or None once the connection is closed.
        """
        return _ReadQueue(self, self._messages)

    def on_message(self, message: MessageType) -> Optional[Awaitable[None]]:
        if self._on_message_callback is not None:
            self._on_message_callback(message)
            return None
        if self._readers:
            future_set_result_unless_cancelled(self._readers.popleft(), message)
            return None
        messages = self._messages
        messages.append(message)
        if len(messages) < 2 or self.protocol.is_closing():
            # One message waits for the application while reading goes on
            # (Tornado's client queues one the same way), so that a close
            # frame behind it is answered at once. Closing: keep reading,
            # so that the peer's close frame (and EOF) is seen and the
            # socket closed, even if nobody reads messages.
            return None
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
            if space is not None and len(self._messages) < 2:
                self._space = None
                future_set_result_unless_cancelled(space, None)
        elif self._closed:
            future.set_result(None)
        else:
            self._readers.append(future)
        if callback is not None:
            IOLoop.current().add_future(future, callback)
        return future

    def on_ws_connection_close(
        self, close_code: Optional[int] = None, close_reason: Optional[str] = None
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
        # The TCPClient is this connection's alone: closing it closes the
        # resolver it made (a configured Resolver may hold a c-ares channel
        # or an executor), as Tornado's client does once its connection
        # closes. A resolver the caller passed in is left open.
        self.tcp_client.close()

    # -- writing and closing

    def write_message(
        self, message: Union[str, bytes, dict[str, Any]], binary: bool = False
    ) -> Future[None]:
        """Sends a message (a dict as JSON).

        Raises:
            WebSocketClosedError: the connection is closed.
        """
        # (The protocol refuses it once closing.)
        try:
            return self.protocol.write_message(message, binary)
        except WebSocketClosedError:
            if self._closed_here:
                # Tornado's words once the application closed the connection.
                raise WebSocketClosedError("Client connection has been closed") from None
            raise

    def ping(self, data: Union[str, bytes] = b"") -> None:
        """Sends a ping (at most 125 bytes of ``data``).

        Raises:
            ValueError: ``data`` is too long.
            WebSocketClosedError: `close` was called.
            squall.iostream.StreamClosedError: the server or the network
                closed the connection.
        """
        payload = utf8(data)
        if len(payload) > 125:
            raise ValueError("a ping payload is at most 125 bytes")
        if self.protocol.is_closing():
            if self._closed_here:
                raise WebSocketClosedError()
            # Closed by the server or the network, not by close(): what
            # Tornado's client raises then is its stream's error, and code
            # written for it catches that.
            raise StreamClosedError()
        self.protocol.write_ping(payload)

    def close(self, code: Optional[int] = None, reason: Optional[str] = None) -> None:
        """Closes the connection, optionally with a close code and reason.

        Unread messages stay readable; reading from the network resumes (if
        it waited for the application) so that the closing handshake ends.
        """
        self.protocol.close(code, reason)
        self._closed_here = True
        space = self._space
        if space is not None:
            self._space = None
            future_set_result_unless_cancelled(space, None)

    @property
    def selected_subprotocol(self) -> Optional[str]:
        """The subprotocol the server selected, or None."""
        return self.protocol.selected_subprotocol

    def get_websocket_protocol(self) -> WebSocketProtocol13:
        """The `WebSocketProtocol13` driving the connection (``protocol``)."""
        return self.protocol

    @property
    def close_code(self) -> Optional[int]:
        """The close code the server sent, once closed."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> Optional[str]:
        """The close reason the server sent, once closed."""
        return self.protocol.close_reason

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        app_log.error("Uncaught exception %s", value, exc_info=(typ, value, tb))


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
        callback: called with the future once it resolves (deprecated, as in
            Tornado: await the future instead).
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
        HTTP error (its ``response`` is that answer: status, headers, and
        a body up to 1 MiB), `WebSocketError` when it answers without
        upgrading, and `OSError` when it cannot be reached.
    """
    if isinstance(url, HTTPRequest):
        request = url
        if connect_timeout is not None and request.connect_timeout is None:
            request.connect_timeout = connect_timeout
    else:
        request = HTTPRequest(url, connect_timeout=connect_timeout)
    # As Tornado's: the request gets a copy of its headers, which the
    # handshake's are added to; the caller's headers object is left as it was.
    request.headers = HTTPHeaders(request.headers)
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
    future = connection.connect_future
    if callback is not None:
        warnings.warn(
            "The callback argument to websocket_connect is deprecated. "
            "Use the returned Future instead.",
            DeprecationWarning,
            stacklevel=2,
        )
        IOLoop.current().add_future(future, callback)
    return future


# How much of the body of a response refusing a handshake is read, to give
# the HTTPClientError's response: enough for any error page, and a bound on
# what a server that refuses can make the client hold.
_REFUSAL_BODY_LIMIT = 1024 * 1024


class _RefusalCutShort(StreamClosedError):
    """The connection closed within the body of a refusal."""


async def _read_to_close(stream: BaseIOStream, limit: int) -> bytes:
    """What ``stream`` sends until it closes, its first ``limit`` bytes."""
    parts: list[bytes] = []
    size = 0
    try:
        while size < limit:
            part = await stream.read_bytes(limit - size, partial=True)
            parts.append(part)
            size += len(part)
    except StreamClosedError:
        pass
    return b"".join(parts)


class _ReadQueue:
    """A queue's reading half over a client connection's unread messages.

    Tornado keeps a client's messages in a `squall.queues.Queue` of size 1
    exposed as ``read_queue``; Squall keeps them in the connection, and this
    view gives the calls programs make on that queue.
    """

    __slots__ = ("_conn", "_messages")

    #: As Tornado's: one message waits while reading is paused.
    maxsize = 1

    def __init__(
        self, conn: WebSocketClientConnection, messages: deque[Optional[MessageType]]
    ) -> None:
        self._conn = conn
        # The connection's own deque of unread messages (never replaced).
        self._messages = messages

    def get(self, timeout: Optional[Union[float, datetime.timedelta]] = None) -> Awaitable[Any]:
        """The next message (None once closed); `squall.util.TimeoutError` after ``timeout``."""
        future = self._conn.read_message()
        if timeout is None:
            return future
        return gen.with_timeout(timeout, future)

    def get_nowait(self) -> Optional[MessageType]:
        """The next message if one is waiting (None once closed and read out).

        Raises:
            QueueEmpty: no message is waiting and the connection is open.
        """
        conn = self._conn
        if not self._messages and not conn._closed:
            raise QueueEmpty()
        return conn.read_message().result()

    def qsize(self) -> int:
        return len(self._messages)

    def empty(self) -> bool:
        return not self._messages

    def full(self) -> bool:
        return len(self._messages) >= self.maxsize
