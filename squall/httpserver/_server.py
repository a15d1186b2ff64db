"""`HTTPServer`: a `~squall.tcpserver.TCPServer` whose connections are served by `_HTTPProtocol`."""

from __future__ import annotations

import asyncio
import copy
import socket
import ssl
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Optional, Protocol, Union, runtime_checkable

from squall.http1connection import HTTP1ConnectionParameters, HTTP1ServerConnection
from squall.httpserver._context import _CallableAdapter, _HTTPRequestContext, _ProxyAdapter
from squall.httpserver._h1lifecycle import _H1Lifecycle
from squall.httpserver._intask import python_methods
from squall.httpserver._protocol import _HTTPProtocol
from squall.httputil import (
    HTTPConnection,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
)
from squall.httputil._drivers import _limits
from squall.iostream import IOStream, SSLIOStream
from squall.netutil import _listen_backlog, ssl_options_to_context
from squall.tcpserver import TCPServer, _log_unreadable_ssl_files
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


@runtime_checkable
class _DriverConnection(Protocol):
    """What `HTTPServer` asks of the connections of its own drivers (the
    HTTP/1.1, HTTP/2 and HTTP/3 protocols). A connection of ``handle_stream``
    (an `.HTTP1ServerConnection` over an IOStream) has ``census()`` only: it
    is drained and closed by its ``close()`` coroutine instead."""

    def _drain(self, params: HTTP1ConnectionParameters) -> None:
        """Finish what is in progress, take nothing new (``params``: the
        server's, with keep-alive off), then close."""

    def _hard_close(self) -> None:
        """Drop the connection now (its transport aborted)."""

    def census(self) -> tuple[str, int, int]:
        """The protocol's metrics label (``"http/1.1"``, ``"h2"``, ``"h3"``),
        the requests in flight and the WebSocket tunnels it carries."""


class ConnectionTable:
    """The connections an `HTTPServer` serves and the state of its drain.

    Shared with the HTTP/1.1 driver (`_H1Lifecycle`), which adds its
    connections to ``open``, moves them to ``detached`` when a WebSocket
    takes one over and reports them lost here; the HTTP/2 and HTTP/3
    drivers go through the server (``_connections``, ``_forget``).
    """

    __slots__ = (
        "open",
        "detached",
        "drain_params",
        "drain_idle_deadline",
        "drain_waiter",
        "detached_waiter",
        "h2_select",
    )

    def __init__(self) -> None:
        self.open: set[Any] = set()
        # Connections taken over by detach() (WebSockets), until they close.
        self.detached: set[_H1Lifecycle] = set()
        # Set while draining: the parameters of connections asked to close.
        self.drain_params: Optional[HTTP1ConnectionParameters] = None
        # While draining: when (loop time) connections idle since then close.
        self.drain_idle_deadline = 0.0
        self.drain_waiter: Optional[asyncio.Future[None]] = None
        # Set by close_all_connections while it waits for the detached.
        self.detached_waiter: Optional[asyncio.Future[None]] = None
        # Set for http2: picks HTTP/2 after a TLS handshake (ALPN).
        self.h2_select: Optional[Callable[[_HTTPProtocol, asyncio.Transport], bool]] = None

    def check_drained(self) -> None:
        """Ends a drain once no connection is left."""
        waiter = self.drain_waiter
        if waiter is not None and not self.open and not self.detached:
            if not waiter.done():
                waiter.set_result(None)

    def detached_lost(self, proto: _H1Lifecycle) -> None:
        """A detached connection (a WebSocket's) closed."""
        detached = self.detached
        detached.discard(proto)
        # (Each waiter tested here: a call to check_drained per closed
        # WebSocket cost more than the test, in a storm of closes.)
        if self.drain_waiter is not None:
            self.check_drained()
        waiter = self.detached_waiter
        if waiter is not None and not detached and not waiter.done():
            waiter.set_result(None)


def _on_another_thread(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` runs, in a thread other than the caller's."""
    if not loop.is_running():
        return False
    try:
        return asyncio.get_running_loop() is not loop
    except RuntimeError:
        return True


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
            `squall.netutil.ssl_options_to_context`, to serve HTTPS. A
            dict's files replaced on disk are served from the next
            handshake on (see `~squall.httpserver.HTTPServer.reload_ssl`).
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
        max_body_size: largest request body (``max_buffer_size`` if that
            is given, else 100 MB).
        max_buffer_size: read buffer limit of detached streams, and the
            default of ``max_body_size``.
        trusted_downstream: proxy addresses skipped in X-Forwarded-For.
        http2: also serve HTTP/2 (squall's own, no extra package): over
            TLS when the client picks ``h2`` by ALPN (the ``ssl_options``
            context is told to offer it), on plain ports by prior knowledge
            (the connection starts with the HTTP/2 preface) or by
            ``Upgrade: h2c``. HTTP/1.1 keeps working on the same port.
        h2c_upgrade: take ``Upgrade: h2c`` on a plain port (with ``http2``).
            The default (None) is to take it unless ``xheaders`` is set:
            behind a proxy the upgrade would turn the proxied connection
            into a tunnel the proxy no longer inspects (RFC 9113 §3.1
            deprecates it). Prior knowledge (the HTTP/2 preface) is taken
            either way.
        http2_limits: a `squall._h2.H2Limits` (concurrency, flood rates,
            timeouts); its defaults otherwise.
        http3: also serve HTTP/3 over QUIC (``pip install squall[http3]``,
            which brings qh3), on UDP at the port number of each TLS
            listening address, advertised on TCP responses by ``Alt-Svc``.
            Needs ``ssl_options``; the QUIC stack reads the certificate from files,
            so ``ssl_options`` is then a dict with ``certfile`` and
            ``keyfile``, or ``http3`` is such a dict itself (with
            ``password`` for an encrypted key). ``http2_limits``'
            ``max_concurrent_streams`` bounds its streams too.
        http3_retry_threshold: half-open QUIC connections (handshake not
            complete) past which a new connection's first Initial is
            answered with a Retry, to validate the client's address before
            any state is kept for it (RFC 9000 section 8.1.2); 100 by
            default, 0 to validate every address.
        http3_max_half_open: the most half-open QUIC connections kept
            (each about 33 KiB); Initials past it are dropped. 1,000 by
            default.
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
        h2c_upgrade: Optional[bool] = None,
        http3: Union[bool, dict[str, Any]] = False,
        http3_retry_threshold: Optional[int] = None,
        http3_max_half_open: Optional[int] = None,
    ) -> None:
        """Set the server up; the arguments are described on the class."""
        self.request_callback = request_callback
        self.xheaders = xheaders
        self.protocol = protocol
        if max_body_size is None and type(max_buffer_size) is int and max_buffer_size > 0:
            # Without a body limit of its own, a request body may be as large
            # as the read buffer: HTTPServer(app, max_buffer_size=...) is how
            # many programs raise (or lower) their upload limit. (A bad
            # max_buffer_size is refused below, by its own name.)
            max_body_size = max_buffer_size
        self.conn_params = HTTP1ConnectionParameters(
            decompress=decompress_request,
            chunk_size=chunk_size,
            max_header_size=max_header_size,
            header_timeout=header_timeout or _DEFAULT_HEADER_TIMEOUT,
            max_body_size=max_body_size,
            body_timeout=body_timeout,
            no_keep_alive=no_keep_alive,
        )
        # A limit the parser refuses (see H1Limits) is refused here, not
        # on each connection (asyncio drops a connection whose protocol
        # fails to build, unlogged).
        _limits(self.conn_params)
        TCPServer.__init__(
            self,
            ssl_options=ssl_options,
            max_buffer_size=max_buffer_size,
            read_chunk_size=chunk_size,
        )
        self.idle_connection_timeout = idle_connection_timeout or _DEFAULT_IDLE_TIMEOUT
        self.write_timeout = write_timeout
        # The connections and the drain (shared with the HTTP/1.1 driver);
        # _connections and _detached are its sets, by their old names.
        self._table = table = ConnectionTable()
        self._connections = table.open
        self._detached = table.detached
        self._servers: list[asyncio.AbstractServer] = []
        self.trusted_downstream = trusted_downstream
        self._is_delegate = isinstance(request_callback, HTTPServerConnectionDelegate)
        self._protocol_class: type[_HTTPProtocol] = _HTTPProtocol
        self._h2_limits: Any = None
        # Set by reload_ssl: the context new TLS connections are served with.
        self._ssl_current: Optional[ssl.SSLContext] = None
        # Called with reload_ssl's options (the HTTP/3 endpoint reloads its own).
        self._ssl_reload_hooks: list[Callable[[Any], None]] = []
        # HTTP/3 (None: off): the QUIC stack's configuration, the endpoints, and
        # the Alt-Svc value TCP responses carry.
        self._h3_config: Any = None
        self._h3_options: Optional[dict[str, Any]] = None
        self._h3_limits: dict[str, int] = {}
        self._h3_endpoints: list[Any] = []
        self._h3_sockets: list[socket.socket] = []
        self._h3_tasks: list[asyncio.Task[None]] = []
        self._h3_stopped = False
        self._alt_svc: Optional[str] = None
        if http2:
            self._setup_http2(http2_limits, not xheaders if h2c_upgrade is None else h2c_upgrade)
        if http3:
            self._setup_http3(http3, http2_limits)
            for key, value in (
                ("retry_threshold", http3_retry_threshold),
                ("max_half_open", http3_max_half_open),
            ):
                if value is not None:
                    if value < 0:
                        raise ValueError(f"http3_{key} must be 0 or more, not {value}")
                    self._h3_limits[key] = value

    def _setup_http2(self, limits: Any, h2c_upgrade: bool) -> None:
        from squall._h2 import H2Limits
        from squall.httpserver import _negotiate

        if limits is None:
            # The HTTP/1.1 head limit bounds HTTP/2 header lists too.
            limits = H2Limits(max_header_list_size=self.conn_params.max_header_size)
        self._h2_limits = limits
        if self._ssl_context is not None:
            self._ssl_context.set_alpn_protocols(["h2", "http/1.1"])
            self._table.h2_select = _negotiate.negotiated_h2
        elif h2c_upgrade:
            self._protocol_class = _negotiate.PrefaceSniffer
        else:
            self._protocol_class = _negotiate.PrefaceOnlySniffer

    def _setup_http3(self, http3: Union[bool, dict[str, Any]], limits: Any) -> None:
        try:
            from squall.httpserver._h3setup import quic_configuration
        except ImportError as exc:
            raise ImportError(
                f"HTTP/3 needs a QUIC stack: pip install 'squall[http3]' ({exc})"
            ) from None
        if self._ssl_context is None:
            raise ValueError("http3 needs ssl_options: HTTP/3 runs over QUIC, which is TLS")
        options = http3 if isinstance(http3, dict) else self.ssl_options
        self._h3_options = options if isinstance(options, dict) else None
        self._h3_config = quic_configuration(options, self.idle_connection_timeout)
        if limits is not None:
            self._h3_limits["max_concurrent_streams"] = limits.max_concurrent_streams
        self._ssl_reload_hooks.append(self._reload_http3)

    def _reload_http3(self, ssl_options: Any) -> None:
        from squall.httpserver._h3setup import quic_configuration

        options: Any = self._h3_options
        if isinstance(ssl_options, dict) and ssl_options.get("certfile"):
            options = ssl_options
        # (Else a context was given: the HTTP/3 certificate's own files,
        # read again.)
        config = quic_configuration(options, self.idle_connection_timeout)
        self._h3_config = config
        for endpoint in self._h3_endpoints:
            endpoint.set_configuration(config)

    def _start_http3(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        """Serve HTTP/3 on UDP where ``sock`` (a TLS listener) listens."""
        from squall.httpserver import _quicroute
        from squall.httpserver._h3protocol import _H3Endpoint
        from squall.httpserver._h3setup import udp_socket

        # Under squall run's supervisor, the socket of this worker's slot.
        route = _quicroute.worker_route
        udp = route.take(sock) if route is not None else None
        slot = route.slot if udp is not None and route is not None else None
        if udp is None:
            udp = udp_socket(sock)
        if udp is None:
            return
        self._h3_sockets.append(udp)
        if self._alt_svc is None:
            port = udp.getsockname()[1]
            self._alt_svc = f'h3=":{port}"; ma=86400'

        async def serve() -> None:
            endpoint = _H3Endpoint(self, self._h3_config, slot)
            await loop.create_datagram_endpoint(lambda: endpoint, sock=udp)
            # The transport owns the socket now (and closes it).
            self._h3_sockets.remove(udp)
            self._h3_endpoints.append(endpoint)
            if self._h3_stopped:
                endpoint.stop()
                self._h3_maybe_close()

        self._h3_tasks.append(loop.create_task(serve()))

    def _h3_maybe_close(self) -> None:
        """Once stopped, the UDP endpoints close with their last connection."""
        if not self._h3_stopped:
            return
        from squall.httpserver._h3protocol import _H3Protocol

        if any(isinstance(conn, _H3Protocol) for conn in self._connections):
            return
        endpoints, self._h3_endpoints = self._h3_endpoints, []
        for endpoint in endpoints:
            endpoint.close_transport()
        for task in self._h3_tasks:
            task.cancel()
        self._h3_tasks = []
        sockets, self._h3_sockets = self._h3_sockets, []
        for udp in sockets:
            udp.close()  # never handed to an endpoint

    def reload_ssl(self, ssl_options: Union[dict[str, Any], ssl.SSLContext, None] = None) -> None:
        """Serves connections accepted from now on with a new TLS context
        (a renewed certificate, say); connections already open keep theirs.

        The new context is made (its files read) before anything changes, so
        a certificate that does not load leaves the server as it was. New
        handshakes switch to it as soon as the client's hello is read (by
        the serving context's ``sni_callback``: a callback of the new
        context's own is called after the switch); the listening sockets and
        the connections in flight are not touched. With ``http2``, the new
        context is told to offer ``h2`` by ALPN.

        Args:
            ssl_options: an `ssl.SSLContext`, or a dict as for the
                constructor. None reads the files of the server's own
                ``ssl_options`` dict again (after they were replaced on disk).

        Raises:
            ValueError: the server does not serve TLS, or None was given
                and the server's ``ssl_options`` is a context (whose files
                it cannot know).
            OSError, ssl.SSLError: a certificate or key that does not load.
        """
        serving = self._ssl_context
        if serving is None:
            raise ValueError("reload_ssl: this server does not serve TLS")
        if ssl_options is None:
            ssl_options = self.ssl_options
            if not isinstance(ssl_options, dict):
                raise ValueError(
                    "reload_ssl: the server was given an SSLContext; pass the new context"
                )
            # Read now: the files' state need not make the next handshake read them again.
            self._ssl_files_replaced()
        context = ssl_options_to_context(ssl_options, server_side=True)
        if self._h2_limits is not None:
            context.set_alpn_protocols(["h2", "http/1.1"])
        for hook in self._ssl_reload_hooks:
            hook(ssl_options)
        if context is serving:
            self._ssl_current = None  # back to the first context: no switch
            return
        self._ssl_current = context
        # The context a connection starts with is the one the listeners and
        # protocols were given at add_sockets: rather than rebuild those, a
        # new handshake moves to the current context in its first callback.
        serving.sni_callback = self._on_client_hello

    def _on_client_hello(
        self, ssl_object: Any, server_name: Optional[str], serving: ssl.SSLContext
    ) -> Optional[int]:
        # Every handshake's first callback. The files of an ssl_options dict
        # replaced on disk (a renewed certificate) are read again first, as
        # Tornado, which reads them for every connection, serves them.
        if self._ssl_files_replaced():
            try:
                self.reload_ssl()
            except (OSError, ssl.SSLError, ValueError) as exc:
                _log_unreadable_ssl_files(exc)
        return self._switch_context(ssl_object, server_name, serving)

    def _switch_context(
        self, ssl_object: Any, server_name: Optional[str], serving: ssl.SSLContext
    ) -> Optional[int]:
        context = self._ssl_current
        if context is None:
            return None
        ssl_object.context = context
        own = context.sni_callback
        if own is not None:
            return own(ssl_object, server_name, context)  # type: ignore[arg-type]
        return None

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
        if (
            ssl_context is not None
            and isinstance(self.ssl_options, dict)
            and ssl_context.sni_callback is None
        ):
            # Our own context, made from files: see _on_client_hello.
            ssl_context.sni_callback = self._on_client_hello
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
            if self._h3_config is not None:
                self._start_http3(loop, sock)

    def stop(self) -> None:
        """Stop accepting connections and close the listening sockets.

        Open connections stay open; see `close_all_connections`. Called from
        another thread while the server's loop runs (a test fixture that
        serves from a thread and stops it from the test's), the stop is
        handed to the loop's thread and done there, before any callback
        added after it: the listeners are asyncio servers, whose bookkeeping
        the loop's thread updates as connections end.
        """
        loop = self._servers[0].get_loop() if self._servers else None
        if loop is not None and _on_another_thread(loop):
            loop.call_soon_threadsafe(self.stop)
            return
        TCPServer.stop(self)
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        if self._h3_config is not None:
            # QUIC connections share their endpoint's socket: it stops
            # taking new ones and closes after the last.
            self._h3_stopped = True
            for endpoint in self._h3_endpoints:
                endpoint.stop()
            self._h3_maybe_close()

    def _close_fds(self) -> None:
        # Called by IOLoop.close(all_fds=True): stop listening and drop every
        # connection at once (IOStream-based ones are closed by the loop).
        self.stop()
        for conn in list(self._connections) + list(self._detached):
            # Not IOStream connections: the loop closes their fds.
            if isinstance(conn, _DriverConnection):
                conn._hard_close()

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
            self._table.detached_waiter = waiter = loop.create_future()
            for proto in list(self._detached):
                proto._hard_close()
            # An aborted transport reports connection_lost on a later turn.
            try:
                await asyncio.wait_for(waiter, 1.0)
            except TimeoutError:
                self._detached.clear()
            finally:
                self._table.detached_waiter = None

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
        # The server's own parameters, but every response closes its connection.
        table = self._table
        params = table.drain_params = copy.copy(self.conn_params)
        params.no_keep_alive = True
        table.drain_waiter = waiter = loop.create_future()
        table.drain_idle_deadline = loop.time() + idle_grace
        closing: list[asyncio.Task[None]] = []
        # Let the loop poll once more, so that a request already in the
        # kernel's buffers makes its connection busy rather than idle: an
        # idle connection closed with unread bytes resets, and its client
        # loses a request it had sent.
        for _ in range(2):
            await asyncio.sleep(0)
        for conn in list(self._connections):
            if isinstance(conn, _DriverConnection):
                # HTTP/2 and HTTP/3 send a GOAWAY.
                conn._drain(params)
            else:
                # An IOStream connection (handle_stream): closed at once.
                closing.append(loop.create_task(conn.close()))
        for proto in list(self._detached):
            proto.ask_to_end()
        self._table.check_drained()
        clean = True
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except TimeoutError:
            clean = False
            for conn in list(self._connections) + list(self._detached):
                if isinstance(conn, _DriverConnection):
                    conn._hard_close()
                else:
                    closing.append(loop.create_task(conn.close()))
            # Aborted transports report connection_lost on the next turns.
            try:
                await asyncio.wait_for(asyncio.shield(waiter), 1.0)
            except TimeoutError:
                pass
        table.drain_waiter = None
        if closing:
            await asyncio.gather(*closing, return_exceptions=True)
        return clean

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
        elif type(self).start_request is not _stock_start_request:
            # Called by an instrumentation's wrapper (or a subclass's
            # start_request): it may wrap the delegate's bound methods.
            delegate = python_methods(delegate)
        return delegate

    def _request_starter(
        self,
        alt_svc: bool = True,
        in_task: Optional[Callable[[HTTPMessageDelegate], HTTPMessageDelegate]] = None,
    ) -> Callable[[object, HTTPConnection], HTTPMessageDelegate]:
        # What a new connection calls per request: the application's own
        # start_request when nothing of ours has to wrap its delegate.
        # ``in_task`` (the HTTP/1.1 driver's): how a delegate is made to run
        # in a Task of its request.
        value = self._alt_svc
        if alt_svc and value is not None:
            from squall.httpserver._altsvc import _AltSvcConnection

            inner = self._request_starter(alt_svc=False, in_task=in_task)

            def start(server_conn: object, request_conn: HTTPConnection) -> HTTPMessageDelegate:
                return inner(server_conn, _AltSvcConnection(request_conn, value))

            return start
        callback = self.request_callback
        if type(self).start_request is _stock_start_request:
            if self._is_delegate and not self.xheaders:
                delegate: Any = callback  # (see on_close)
                return delegate.start_request  # type: ignore[no-any-return]
            return self.start_request
        starter = self.start_request
        if in_task is None:
            return starter
        # An instrumentation's start_request (New Relic's agent wraps it on
        # the class) or a subclass's: the delegates it gives are called as
        # Tornado calls them, from a Task of the request. (A program's own
        # delegate or request callback is called in place: tests/COMPAT.md.)
        wrap = in_task

        def start_in_task(server_conn: object, request_conn: HTTPConnection) -> HTTPMessageDelegate:
            return wrap(starter(server_conn, request_conn))

        return start_in_task

    def _forget(self, server_conn: object) -> None:
        """A driver's connection is over (closed, detached or handed over):
        untracked, and `on_close` called once."""
        if server_conn in self._connections:
            self.on_close(server_conn)

    def on_close(self, server_conn: object) -> None:
        """Forget a closed connection (and tell a delegate ``request_callback``)."""
        self._connections.discard(server_conn)
        if self._h3_stopped:
            self._h3_maybe_close()
        if self._table.drain_waiter is not None:
            self._table.check_drained()
        if self._is_delegate:
            # (An HTTPServerConnectionDelegate: neither assert nor cast, a
            # call each in the pure build, per connection.)
            delegate: Any = self.request_callback
            delegate.on_close(server_conn)


# Compared with the class's attribute as it is when a connection starts: an
# instrumentation that replaced HTTPServer.start_request (New Relic's agent
# wraps it to see each request's delegate) is then called, not bypassed.
_stock_start_request = HTTPServer.start_request
