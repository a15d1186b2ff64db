"""`HTTPServer`: a `~squall.tcpserver.TCPServer` whose connections are served by `_HTTPProtocol`."""

from __future__ import annotations

import asyncio
import logging
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
from squall.netutil import _listen_backlog
from squall.tcpserver import TCPServer
from squall.util import Configurable

__all__ = ["HTTPServer"]

# Tornado's default for idle_connection_timeout.
_DEFAULT_IDLE_TIMEOUT = 3600.0
# A head trickling in for longer than this is a slowloris, not a client.
_DEFAULT_HEADER_TIMEOUT = 10.0
# A client that reads nothing of a full write buffer for this long is gone.
_DEFAULT_WRITE_TIMEOUT = 60.0
# While draining, how long a keep-alive connection between requests stays
# open for one that may be on its way: far longer than a busy client takes
# to send its next request, short enough not to hold a restart up.
_DRAIN_IDLE_GRACE = 1.0

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
    object per connection (see `squall.httpserver`); the `~squall.tcpserver.TCPServer` API
    (`~squall.tcpserver.TCPServer.listen`, `add_sockets`, `~squall.tcpserver.TCPServer.bind`/`~squall.tcpserver.TCPServer.start`, `stop`) is unchanged.

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
        idle_connection_timeout: seconds a keep-alive connection may stay
            idle between requests (3600).
        header_timeout: seconds to receive a complete request head, from
            the connection opening or the head's first byte (10).
        body_timeout: seconds to receive a request body once its head has
            arrived (no limit).
        write_timeout: seconds a response may stay stuck in a full write
            buffer because the client stopped reading (60); then the
            connection is aborted. ``None`` waits forever.
        max_body_size: largest request body (100 MB).
        max_buffer_size: read buffer limit of detached streams.
        trusted_downstream: proxy addresses skipped in X-Forwarded-For.
        http2: also serve HTTP/2 (squall's own, no extra package): over
            TLS when the client picks ``h2`` by ALPN (the ``ssl_options``
            context is told to offer it), on plain ports by prior knowledge
            (the connection starts with the HTTP/2 preface) or by
            ``Upgrade: h2c``. HTTP/1.1 keeps working on the same port.
        http2_limits: a `squall._h2.H2Limits` (concurrency, flood rates,
            timeouts); its defaults otherwise.
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
        header_timeout: Optional[float] = None,
        write_timeout: Optional[float] = _DEFAULT_WRITE_TIMEOUT,
        http2: bool = False,
        http2_limits: Any = None,
    ) -> None:
        """Set the server up; the arguments are described on the class."""
        self.request_callback = request_callback
        self.xheaders = xheaders
        self.protocol = protocol
        self.conn_params = HTTP1ConnectionParameters(
            decompress=decompress_request,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            header_timeout=header_timeout or _DEFAULT_HEADER_TIMEOUT,
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
        self.idle_connection_timeout = idle_connection_timeout or _DEFAULT_IDLE_TIMEOUT
        self.write_timeout = write_timeout
        self._connections: set[Any] = set()
        # Connections taken over by detach() (WebSockets), until they close.
        self._detached: set[_HTTPProtocol] = set()
        self._detached_waiter: Optional[asyncio.Future[None]] = None
        # Set while draining: the parameters of connections asked to close.
        self._drain_params: Optional[HTTP1ConnectionParameters] = None
        # While draining: when (loop time) connections idle since then close.
        self._drain_idle_deadline = 0.0
        self._drain_waiter: Optional[asyncio.Future[None]] = None
        self._servers: list[asyncio.AbstractServer] = []
        self.trusted_downstream = trusted_downstream
        self._is_delegate = isinstance(request_callback, HTTPServerConnectionDelegate)
        self._protocol_class: type[_HTTPProtocol] = _HTTPProtocol
        # Set for http2: picks HTTP/2 after a TLS handshake (ALPN).
        self._h2_select: Optional[Callable[[_HTTPProtocol, asyncio.Transport], bool]] = None
        self._h2_limits: Any = None
        if http2:
            self._setup_http2(http2_limits)

    def _setup_http2(self, limits: Any) -> None:
        from squall._h2 import H2Limits
        from squall.httpserver import _negotiate

        if limits is None:
            # The HTTP/1.1 head limit bounds HTTP/2 header lists too.
            limits = H2Limits(max_header_list_size=self.conn_params.max_header_size)
        self._h2_limits = limits
        if self._ssl_context is not None:
            self._ssl_context.set_alpn_protocols(["h2", "http/1.1"])
            self._h2_select = _negotiate._negotiated_h2
        else:
            self._protocol_class = _negotiate._PrefaceSniffer

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

        io_loop = IOLoop.current()
        loop: asyncio.AbstractEventLoop = io_loop.asyncio_loop  # type: ignore[attr-defined]
        # IOLoop.close(all_fds=True) closes our listeners and connections too,
        # as it closes the sockets of IOStream-based servers.
        owners = getattr(io_loop, "_fd_owners", None)
        if owners is not None:
            owners.add(self)
        params = self.conn_params
        ssl_context = self._ssl_context
        # On asyncio's own loops a connection starts TLS itself (start_tls),
        # so that a failed handshake is logged as Tornado logs it. Other
        # loops (uvloop) start reading after connection_made() returns, past
        # a pause made in it, and the ClientHello would reach the protocol
        # instead of TLS: the loop runs the handshake there.
        loop_tls = ssl_context is not None and not isinstance(
            loop, asyncio.selector_events.BaseSelectorEventLoop
        )
        own_tls = None if loop_tls else ssl_context

        protocol_class = self._protocol_class

        def factory() -> _HTTPProtocol:
            return protocol_class(self, params, own_tls, loop)

        for sock in sockets:
            server = _run_now(
                loop.create_server(
                    factory,
                    sock=sock,
                    # start_serving() calls listen() again: with the backlog
                    # the socket has, not asyncio's default of 100.
                    backlog=_listen_backlog(sock),
                    ssl=ssl_context if loop_tls else None,
                    # A stalled TLS handshake is bounded like a head.
                    ssl_handshake_timeout=params.header_timeout if loop_tls else None,
                    start_serving=False,
                )
            )
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

    def _close_fds(self) -> None:
        # Called by IOLoop.close(all_fds=True): stop listening and drop every
        # connection at once (IOStream-based ones are closed by the loop).
        self.stop()
        for conn in list(self._connections) + list(self._detached):
            # HTTP/1 and HTTP/2 protocols; not IOStream connections (no such method).
            hard_close = getattr(conn, "_hard_close", None)
            if hard_close is not None:
                hard_close()

    async def close_all_connections(self) -> None:
        """Close every open HTTP connection and wait until they are closed.

        Call `stop` first, or new connections may arrive meanwhile. Output
        a connection has buffered gets a second to go out; a client that
        stops reading cannot make this wait longer. Connections taken over
        by ``detach()`` (WebSockets) are dropped too (`drain` ends them
        gracefully instead): test fixtures call this and then close the
        event loop, and a transport still open then is leaked.
        """
        while self._connections:
            conns = list(self._connections)
            await asyncio.gather(*(conn.close() for conn in conns))
            self._connections.difference_update(conns)
        if self._detached:
            from squall.ioloop import IOLoop

            loop: asyncio.AbstractEventLoop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
            self._detached_waiter = waiter = loop.create_future()
            for proto in list(self._detached):
                proto._hard_close()
            # An aborted transport reports connection_lost on a later turn.
            try:
                await asyncio.wait_for(waiter, 1.0)
            except TimeoutError:
                self._detached.clear()
            finally:
                self._detached_waiter = None

    async def drain(self, timeout: float = 30.0, idle_grace: float = _DRAIN_IDLE_GRACE) -> bool:
        """Stop gracefully: finish what is in flight, then close everything.

        Stops accepting; lets requests in progress finish, their responses
        carrying ``Connection: close``, and closes each connection after its
        response; asks detached connections to end (open WebSockets get
        close code 1001). A keep-alive connection between requests may have
        one on its way: it stays open for ``idle_grace`` seconds, a request
        arriving meanwhile is answered with ``Connection: close``, and it is
        closed once it has stayed idle that long. At the deadline, whatever
        is left is aborted.

        Usable from a Tornado-style ``main()``::

            server = HTTPServer(app)
            server.listen(8888)
            ...  # on SIGTERM:
            await server.drain(timeout=30)

        Args:
            timeout: seconds to wait for connections to end by themselves.
            idle_grace: seconds an idle keep-alive connection is kept open
                for a request that may be on its way.

        Returns:
            True when every connection ended before the deadline.
        """
        from squall.ioloop import IOLoop

        loop: asyncio.AbstractEventLoop = IOLoop.current().asyncio_loop  # type: ignore[attr-defined]
        self.stop()
        p = self.conn_params
        self._drain_params = HTTP1ConnectionParameters(
            no_keep_alive=True,
            chunk_size=p.chunk_size,
            max_header_size=p.max_header_size,
            header_timeout=p.header_timeout,
            max_body_size=p.max_body_size,
            body_timeout=p.body_timeout,
            decompress=p.decompress,
        )
        self._drain_waiter = waiter = loop.create_future()
        self._drain_idle_deadline = loop.time() + idle_grace
        closing: list[asyncio.Task[None]] = []
        # Let the loop poll once more, so that a request already in the
        # kernel's buffers makes its connection busy rather than idle: an
        # idle connection closed with unread bytes resets, and its client
        # loses a request it had sent.
        for _ in range(2):
            await asyncio.sleep(0)
        for conn in list(self._connections):
            if hasattr(conn, "_drain"):
                # _HTTPProtocol, and the HTTP/2 protocol (GOAWAY).
                conn._drain(self._drain_params)
            else:
                # An IOStream connection (handle_stream): closed at once.
                closing.append(loop.create_task(conn.close()))
        for proto in list(self._detached):
            stream = proto._stream
            hook = stream.on_drain if stream is not None else None
            if hook is not None:
                try:
                    hook()
                except Exception:
                    logging.getLogger("squall.application").error(
                        "Uncaught exception in on_drain", exc_info=True
                    )
        self._check_drained()
        clean = True
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            clean = False
            for conn in list(self._connections) + list(self._detached):
                if hasattr(conn, "_hard_close"):
                    conn._hard_close()
                else:
                    closing.append(loop.create_task(conn.close()))
            # Aborted transports report connection_lost on the next turns.
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 1.0)
            except TimeoutError:
                pass
        self._drain_waiter = None
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        return clean

    def _check_drained(self) -> None:
        waiter = self._drain_waiter
        if waiter is not None and not self._connections and not self._detached:
            if not waiter.done():
                waiter.set_result(None)

    def _detached_lost(self, proto: _HTTPProtocol) -> None:
        detached = self._detached
        detached.discard(proto)
        # (Each waiter tested here: a call to _check_drained per closed
        # WebSocket cost more than the test, issue 22.)
        if self._drain_waiter is not None:
            self._check_drained()
        waiter = self._detached_waiter
        if waiter is not None and not detached and not waiter.done():
            waiter.set_result(None)

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        """Serve a connection given as an `~squall.iostream.IOStream` (the `~squall.tcpserver.TCPServer` path)."""
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
            delegate: Any = callback  # (see on_close)
            return delegate.start_request  # type: ignore[no-any-return]
        return self.start_request

    def _forget(self, server_conn: object) -> None:
        """A driver's connection is over (closed, detached or handed over):
        untracked, and `on_close` called once."""
        if server_conn in self._connections:
            self.on_close(server_conn)

    def on_close(self, server_conn: object) -> None:
        """Forget a closed connection (and tell a delegate ``request_callback``)."""
        self._connections.discard(server_conn)
        if self._drain_waiter is not None:
            self._check_drained()
        if self._is_delegate:
            # (An HTTPServerConnectionDelegate: neither assert nor cast, a
            # call each in the pure build, per connection.)
            delegate: Any = self.request_callback
            delegate.on_close(server_conn)
