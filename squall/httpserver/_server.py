"""`HTTPServer`: a `TCPServer` whose connections are served by `_HTTPProtocol`."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Optional, Union

from squall.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection
from squall.httpserver._context import _CallableAdapter, _HTTPRequestContext, _ProxyAdapter
from squall.httpserver._protocol import _HTTPProtocol
from squall.httputil import (
    HTTPConnection,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
)
from squall.iostream import IOStream, SSLIOStream
from squall.tcpserver import TCPServer
from squall.util import Configurable

__all__ = ["HTTPServer"]

# Tornado's default for idle_connection_timeout.
_DEFAULT_IDLE_TIMEOUT = 3600.0

_Callback = Union[HTTPServerConnectionDelegate, Callable[[HTTPServerRequest], Any]]


def _run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that does not need to wait, without a running loop.

    ``loop.create_server(..., start_serving=False)`` and
    ``Server.start_serving()`` only register the socket with the loop; the
    latter then yields once, which is all that is left undone here.
    """
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    return None


class HTTPServer(TCPServer, Configurable, HTTPServerConnectionDelegate):
    """A non-blocking, single-threaded HTTP/1.1 server.

    ``request_callback`` is an `.HTTPServerConnectionDelegate` (such as an
    `.Application`), or a plain callable taking an `.HTTPServerRequest` and
    writing the response through ``request.connection``.

    Listening sockets are served by the asyncio loop with one protocol
    object per connection (see `squall.httpserver`); the `TCPServer` API
    (`listen`, `add_sockets`, `bind`/`start`, `stop`) is unchanged.

    Args:
        request_callback: the delegate or callable.
        no_keep_alive: close each connection after one request.
        xheaders: take the client's address and scheme from
            ``X-Real-Ip``/``X-Forwarded-For`` and ``X-Scheme``/``X-Forwarded-Proto``.
        ssl_options: an `ssl.SSLContext` or a dict for
            `squall.netutil.ssl_options_to_context`, to serve HTTPS.
        protocol: force ``request.protocol`` (``"http"``/``"https"``).
        decompress_request: decode ``Content-Encoding: gzip`` request bodies.
        chunk_size: largest body piece given to ``data_received`` (64 KB).
        max_header_size: largest request head (64 KB; 431 beyond).
        idle_connection_timeout: seconds a connection may wait for a
            complete request head (3600).
        body_timeout: seconds to receive a request body (no limit).
        max_body_size: largest request body (100 MB).
        max_buffer_size: read buffer limit of detached streams.
        trusted_downstream: proxy addresses skipped in X-Forwarded-For.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Configurable.__new__ has called initialize() already.
        pass

    def initialize(
        self,
        request_callback: _Callback,
        no_keep_alive: bool = False,
        xheaders: bool = False,
        ssl_options: Union[dict[str, Any], Any, None] = None,
        protocol: Optional[str] = None,
        decompress_request: bool = False,
        chunk_size: Optional[int] = None,
        max_header_size: Optional[int] = None,
        idle_connection_timeout: Optional[float] = None,
        body_timeout: Optional[float] = None,
        max_body_size: Optional[int] = None,
        max_buffer_size: Optional[int] = None,
        trusted_downstream: Optional[list[str]] = None,
    ) -> None:
        """Set the server up; the arguments are described on the class."""
        self.request_callback = request_callback
        self.xheaders = xheaders
        self.protocol = protocol
        self.conn_params = HTTP1ConnectionParameters(
            decompress=decompress_request,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            header_timeout=idle_connection_timeout or _DEFAULT_IDLE_TIMEOUT,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            no_keep_alive=no_keep_alive,
        )
        TCPServer.__init__(
            self,
            ssl_options=ssl_options,
            max_buffer_size=max_buffer_size,
            read_chunk_size=chunk_size,
        )
        self._connections: set[Any] = set()
        self._servers: list[asyncio.AbstractServer] = []
        self.trusted_downstream = trusted_downstream
        self._is_delegate = isinstance(request_callback, HTTPServerConnectionDelegate)

    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return HTTPServer

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        return HTTPServer

    # -- listening -------------------------------------------------------------------

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Serve listening sockets on the current event loop."""
        from squall.ioloop import IOLoop

        loop: asyncio.AbstractEventLoop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
        params = self.conn_params
        ssl_context = self._ssl_context

        def factory() -> _HTTPProtocol:
            return _HTTPProtocol(self, params, ssl_context, loop)

        for sock in sockets:
            server = _run_now(loop.create_server(factory, sock=sock, start_serving=False))
            self._servers.append(server)
            _run_now(server.start_serving())
            # pytest-tornasync and pytest-jupyter find the port through
            # ``_sockets``; TCPServer.stop() closes the server via ``_handlers``.
            fd = sock.fileno()
            self._sockets[fd] = sock
            self._handlers[fd] = server.close

    def stop(self) -> None:
        """Stop accepting connections and close the listening sockets.

        Open connections stay open; see `close_all_connections`.
        """
        TCPServer.stop(self)
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()

    async def close_all_connections(self) -> None:
        """Close every open connection and wait until they are closed.

        Call `stop` first, or new connections may arrive meanwhile.
        """
        while self._connections:
            conn = next(iter(self._connections))
            await conn.close()
            self._connections.discard(conn)

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        """Serve a connection given as an `IOStream` (the `TCPServer` path)."""
        sock = stream.socket
        family = sock.family if sock is not None else socket.AF_UNSPEC
        context = _HTTPRequestContext(
            family,
            address,
            self.protocol,
            self.trusted_downstream,
            isinstance(stream, SSLIOStream),
        )
        conn = HTTP1ServerConnection(stream, self.conn_params, context)
        self._connections.add(conn)
        conn.start_serving(self)

    # -- HTTPServerConnectionDelegate -------------------------------------------------

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        """Return the delegate for a new request on ``server_conn``."""
        callback = self.request_callback
        if self._is_delegate:
            assert isinstance(callback, HTTPServerConnectionDelegate)
            delegate = callback.start_request(server_conn, request_conn)
        else:
            delegate = _CallableAdapter(callback, server_conn, request_conn)  # type: ignore[arg-type]
        if self.xheaders:
            delegate = _ProxyAdapter(delegate, getattr(request_conn, "context", None))
        return delegate

    def _request_starter(self) -> Callable[[object, HTTPConnection], HTTPMessageDelegate]:
        # What a new connection calls per request: the application's own
        # start_request when nothing of ours has to wrap its delegate.
        callback = self.request_callback
        if (
            self._is_delegate
            and not self.xheaders
            and type(self).start_request is HTTPServer.start_request
        ):
            assert isinstance(callback, HTTPServerConnectionDelegate)
            return callback.start_request
        return self.start_request

    def on_close(self, server_conn: object) -> None:
        """Forget a closed connection (and tell a delegate ``request_callback``)."""
        self._connections.discard(server_conn)
        if self._is_delegate:
            callback = self.request_callback
            assert isinstance(callback, HTTPServerConnectionDelegate)
            callback.on_close(server_conn)
