"""Client connections: an `asyncio.Protocol` around the sans-I/O core, and
how one is opened (resolve, TCP, proxy CONNECT tunnel, TLS).

A `ClientConnection` keeps reading while it sits idle in the pool, so a
server that closes it (or sends bytes nobody asked for) is noticed as soon
as the loop runs; the pool also asks the kernel directly before reusing it
(`ClientConnection.is_reusable`), since the loop may not have run since the
server's FIN or RST arrived. During an exchange it hands the bytes it
receives to the current handler (see ``_exchange``), with no Future per
read.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import select
import socket
import ssl
from collections.abc import Callable, Hashable
from typing import Any, Optional, Protocol, Union, cast

from squall._h1 import (
    NEED_DATA,
    ConnectionClosed,
    H1Connection,
    H1Limits,
    ProtocolError,
    Response,
)
from squall.httputil import encode_username_password
from squall.log import gen_log
from squall.netutil import Resolver, ssl_options_to_context
from squall.platform.asyncio import _bound_reads
from squall.tcpclient import _Connector, _format_addr

__all__ = [
    "ClientConnection",
    "ConnectWatcher",
    "open_connection",
    "peer_silent",
    "proxy_authorization",
    "ssl_context_for",
    "tls_key",
]

_SSLOptions = Union[dict[str, Any], ssl.SSLContext]

# Contexts are costly to build (the CA store is loaded each time); requests
# with the same TLS settings share one.
_CONTEXTS: dict[tuple[bool, Optional[str], Optional[str], Optional[str]], ssl.SSLContext] = {}


def ssl_context_for(
    validate_cert: bool,
    ca_certs: Optional[str],
    client_cert: Optional[str],
    client_key: Optional[str],
    ssl_options: Optional[_SSLOptions],
) -> ssl.SSLContext:
    """The client TLS context for a request's options (``ssl_options`` wins)."""
    if ssl_options is not None:
        return ssl_options_to_context(ssl_options, server_side=False)
    key = (bool(validate_cert), ca_certs, client_cert, client_key)
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_certs)
        if not validate_cert:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if client_cert is not None:
            ctx.load_cert_chain(client_cert, client_key)
        # TLS compression enables the CRIME attack.
        ctx.options |= ssl.OP_NO_COMPRESSION
        _CONTEXTS[key] = ctx
    return ctx


def tls_key(
    validate_cert: bool,
    ca_certs: Optional[str],
    client_cert: Optional[str],
    client_key: Optional[str],
    ssl_options: Optional[_SSLOptions],
) -> Hashable:
    """The part of a pool key that tells TLS settings apart."""
    if ssl_options is None:
        return (bool(validate_cert), ca_certs, client_cert, client_key)
    if isinstance(ssl_options, ssl.SSLContext):
        return ("context", id(ssl_options))
    return ("options", repr(sorted(ssl_options.items())))


def proxy_authorization(
    username: Optional[str], password: Optional[str], mode: Optional[str]
) -> Optional[str]:
    """The ``Proxy-Authorization`` value for a proxy's credentials, if any.

    Raises:
        ValueError: For an auth mode other than basic.
    """
    if username is None:
        return None
    if mode not in (None, "basic"):
        raise ValueError(f"Unsupported proxy_auth_mode {mode!r} (only 'basic' is)")
    token = base64.b64encode(encode_username_password(username, password or ""))
    return "Basic " + token.decode("ascii")


if hasattr(select, "poll"):

    def _nothing_received(fd: int) -> bool:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return not poller.poll(0)

else:  # pragma: no cover - platforms without poll(2)

    def _nothing_received(fd: int) -> bool:
        readable, _, errored = select.select((fd,), (), (fd,), 0)
        return not readable and not errored


def peer_silent(sock: socket.socket) -> bool:
    """Whether the kernel holds nothing from the peer of ``sock``: no bytes,
    no FIN, no RST (a zero-timeout poll, about a microsecond; it does not
    depend on the event loop having run)."""
    fd = sock.fileno()
    return fd >= 0 and _nothing_received(fd)


class ConnectWatcher(Protocol):
    """Told what `open_connection` is doing, so a timeout can say where it struck."""

    def connect_phase(self, phase: Union[str, Callable[[], str]]) -> None:
        """``phase`` reads after "Timeout " (``"while resolving example.com"``);
        a function gives it when a timeout strikes."""
        ...


class Handler(Protocol):
    """The exchange a connection feeds (see ``_exchange.Exchange``)."""

    def pump(self) -> None:
        """Process what the connection's parser has buffered."""
        ...


class ClientConnection(asyncio.Protocol):
    """An open connection to an origin (or a proxy) and its HTTP/1.1 state.

    Attributes:
        transport: The asyncio transport (TLS or not).
        h1: The client-role `~squall._h1.H1Connection`.
        key: The pool key it belongs to.
        via_proxy: Requests go to a proxy in absolute form.
        uses: How many requests have started on it.
        handler: The exchange in progress, if any.
        closed: The transport is gone.
        error: The exception that closed it, if any.
    """

    __slots__ = (
        "transport",
        "h1",
        "key",
        "via_proxy",
        "uses",
        "handler",
        "closed",
        "error",
        "sock",
        "_tunnel",
        "_write_paused",
        "_drain",
        "_on_flushed",
    )

    def __init__(self, key: Hashable, limits: H1Limits, via_proxy: bool) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.sock: Optional[socket.socket] = None
        # A bare LF ends a response's head lines, as for Tornado's client
        # (RFC 9112 section 2.2 allows it; old and embedded servers send it).
        self.h1 = H1Connection("client", limits=limits, allow_bare_lf=True)
        self.key = key
        self.via_proxy = via_proxy
        self.uses = 0
        self.handler: Optional[Handler] = None
        self.closed = False
        self.error: Optional[BaseException] = None
        self._tunnel: Optional[tuple[H1Connection, asyncio.Future[Response]]] = None
        self._write_paused = False
        self._drain: Optional[asyncio.Future[None]] = None
        self._on_flushed: Optional[Callable[[], None]] = None

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have Transport's methods but not its class.
        self.transport = cast(asyncio.Transport, transport)
        _bound_reads(transport)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel_data(data)
            return
        handler = self.handler
        if handler is None:
            # Bytes nobody asked for: the connection cannot be trusted.
            self.close()
            return
        self.h1.receive_data(data)
        handler.pump()

    def eof_received(self) -> bool:
        # Close first: the transport's final callback is then queued before
        # anything the end of the response wakes up.
        if self.transport is not None:
            self.transport.close()
        if self._tunnel is not None:
            self._tunnel_data(b"")
            return False
        self.h1.receive_data(b"")
        handler = self.handler
        if handler is not None:
            handler.pump()
        else:
            # Idle: the pool must not hand it out before connection_lost.
            self.closed = True
        return False

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.error = exc
        if self._tunnel is not None:
            self._tunnel_data(b"")
        self.h1.receive_data(b"")
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        handler = self.handler
        if handler is not None:
            handler.pump()

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        on_flushed = self._on_flushed
        if on_flushed is not None:
            self._on_flushed = None
            if self.transport is not None:
                self.transport.set_write_buffer_limits()
            on_flushed()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    # -- for the exchange and the pool ---------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (dropped if the connection is closed)."""
        transport = self.transport
        if data and transport is not None and not self.closed:
            transport.write(data)

    def flushed(self, on_flushed: Callable[[], None]) -> bool:
        """Whether all that was written has been handed to the kernel.

        If not, and the transport is still writing, ``on_flushed`` is
        called once its buffer is empty. A write that failed (the
        transport is closing) is never flushed.
        """
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return False
        if not transport.get_write_buffer_size():
            return True
        self._on_flushed = on_flushed
        # A high-water mark of 0 pauses writing now and resumes it exactly
        # when the buffer is empty; resume_writing restores the defaults.
        transport.set_write_buffer_limits(high=0)
        return False

    def drain(self) -> asyncio.Future[None]:
        """A Future done when the write buffer is below its high-water mark."""
        loop = asyncio.get_running_loop()
        if not self._write_paused or self.closed:
            done: asyncio.Future[None] = loop.create_future()
            done.set_result(None)
            return done
        if self._drain is None or self._drain.done():
            self._drain = loop.create_future()
        return self._drain

    def can_keep(self) -> bool:
        """After a response: whether it left the connection fit for another
        request (keep-alive, both sides idle, nothing unread, still open)."""
        h1 = self.h1
        return (
            not self.closed
            and h1.keep_alive
            and not h1.buffered
            and h1.our_state == "IDLE"
            and h1.their_state == "IDLE"
        )

    def is_reusable(self) -> bool:
        """For the pool: still open and idle, with nothing from the server.

        `can_keep` held when it was released, and only bytes, an EOF or a
        reset from the server could change that. An idle connection keeps
        reading, so the loop closes it when it sees one of those; but the
        loop may not have run since it arrived (a request that follows a
        response in the next loop iteration), so the kernel is asked too.
        A request is never sent on a connection the server is known to
        have closed.
        """
        if self.handler is not None or self.closed:
            return False
        sock = self.sock
        return sock is None or peer_silent(sock)

    def close(self) -> None:
        """Close the connection (at once; unsent data is dropped)."""
        self.handler = None
        self._on_flushed = None
        if self.transport is not None and not self.closed:
            self.transport.abort()
        # abort() unregisters the socket at once but closes it on the next
        # loop iteration, which may never come (a loop closed right after
        # a client): close it now, as a stream would.
        if self.sock is not None:
            self.sock.close()
        self.closed = True

    # -- CONNECT tunnel ----------------------------------------------------

    async def tunnel(self, host: str, port: int, proxy_auth: Optional[str]) -> None:
        """Ask the proxy for a tunnel to ``host:port`` (RFC 9110 §9.3.6).

        Raises:
            HTTPClientError: The proxy refused (599, with its status).
            OSError: The connection closed.
        """
        h1 = H1Connection("client", limits=self.h1.limits, allow_bare_lf=True)
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers = [("Host", authority)]
        if proxy_auth is not None:
            headers.append(("Proxy-Authorization", proxy_auth))
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._tunnel = (h1, waiter)
        try:
            self.write(h1.send_request_head("CONNECT", authority, headers) + h1.send_end())
            response = await waiter
        finally:
            self._tunnel = None
        if not 200 <= response.status < 300:
            from squall.httpclient import HTTPClientError

            raise HTTPClientError(
                599, f"Proxy CONNECT to {authority} failed: {response.status} {response.reason}"
            )
        if h1.detach():
            raise ProtocolError("proxy sent data after its CONNECT response")

    def _tunnel_data(self, data: bytes) -> None:
        assert self._tunnel is not None
        h1, waiter = self._tunnel
        if waiter.done():
            return
        try:
            h1.receive_data(data)
            while True:
                event = h1.next_event()
                if event is NEED_DATA:
                    return
                if isinstance(event, Response):
                    waiter.set_result(event)
                    return
                if isinstance(event, ConnectionClosed):
                    raise ConnectionResetError("proxy closed the connection during CONNECT")
                # Interim responses before the final one are skipped.
        except Exception as exc:
            waiter.set_exception(exc)


class _Attempt:
    """One connection attempt of the race in `connect_socket`: a socket and
    the task connecting it. `close` gives the socket up, whether the attempt
    is still connecting (the task is cancelled and closes it once asyncio
    has let go of it) or has connected and lost the race."""

    __slots__ = ("sock", "task")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.task: Optional[asyncio.Task[_Attempt]] = None

    async def run(self, loop: asyncio.AbstractEventLoop, address: Any) -> _Attempt:
        try:
            await loop.sock_connect(self.sock, address)
        except OSError as exc:
            if exc.errno is None:
                raise
            # asyncio's message ("Connect call failed ...") hides the
            # system's text; callers show the error and some compare it
            # (Salt's http.query returns str(error)), so it is the text
            # Tornado's client gives: "[Errno 111] Connection refused".
            raise type(exc)(exc.errno, os.strerror(exc.errno)) from None
        return self

    def finished(self, task: asyncio.Task[_Attempt]) -> None:
        # A failed or cancelled attempt's socket is closed here, after the
        # task is done: a task cancelled before its first step never enters
        # `run`, and closing a socket asyncio still watches would let a new
        # socket reusing the number lose its registration.
        if task.cancelled() or task.exception() is not None:
            self.sock.close()
        # The task's result is this attempt: without the task, no cycle
        # keeps either for the collector (a connection's garbage is freed
        # by reference counting, as on Tornado).
        self.task = None

    def close(self) -> None:
        task = self.task
        if task is None or task.done():
            self.sock.close()
        else:
            task.cancel()


def _start_attempt(
    loop: asyncio.AbstractEventLoop,
    source_ip: Optional[str],
    family: socket.AddressFamily,
    address: Any,
) -> tuple[_Attempt, asyncio.Task[_Attempt]]:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if source_ip is not None:
            try:
                sock.bind((source_ip, 0))
            except OSError as exc:
                raise ValueError(
                    f"Failed binding local connection end to {source_ip!r}: {exc}"
                ) from exc
    except BaseException:
        sock.close()
        raise
    attempt = _Attempt(sock)
    task = attempt.task = loop.create_task(attempt.run(loop, address))
    task.add_done_callback(attempt.finished)
    return attempt, task


async def connect_socket(
    loop: asyncio.AbstractEventLoop,
    resolver: Resolver,
    host: str,
    port: int,
    af: socket.AddressFamily,
    source_ip: Optional[str],
    watcher: ConnectWatcher,
) -> tuple[socket.socket, Any]:
    """The connected socket and the address it is connected to."""
    watcher.connect_phase(f"while resolving {host}")
    addrinfo = await resolver.resolve(host, port, af)
    if not addrinfo:
        raise OSError(f"no address found for {host}:{port}")
    # The addresses are raced as TCPClient races them (RFC 8305), so that
    # a host whose first family does not answer (IPv6 routed into a black
    # hole, say) is reached on the other after a moment, as on Tornado,
    # instead of the request waiting out its connect timeout. Within a
    # family, addresses are tried one after another in the resolver's order.
    connector = _Connector(addrinfo, functools.partial(_start_attempt, loop, source_ip))
    # A timeout names the addresses still being tried, as Tornado's does.
    watcher.connect_phase(connector.connecting_phase)
    _family, address, attempt = await connector.winner()
    return cast(_Attempt, attempt).sock, address


async def open_connection(
    *,
    resolver: Resolver,
    key: Hashable,
    scheme: str,
    host: str,
    port: int,
    af: socket.AddressFamily,
    source_ip: Optional[str],
    ssl_context: Optional[ssl.SSLContext],
    proxy: Optional[tuple[str, int, Optional[str]]],
    limits: H1Limits,
    watcher: ConnectWatcher,
) -> ClientConnection:
    """Open a connection for ``scheme://host:port``, through ``proxy`` if given.

    With a proxy ``(proxy_host, proxy_port, proxy_authorization)``, http
    requests are sent to the proxy in absolute form; https ones go through
    a CONNECT tunnel, then TLS with the origin. Cancelling the coroutine
    closes whatever was opened.

    Raises:
        OSError: Resolution or connection failures (the socket's error).
        ssl.SSLError: A failed TLS handshake (also logged, without a stack).
        ValueError: A ``source_ip`` that cannot be bound.
    """
    loop = asyncio.get_running_loop()
    target_host, target_port = (proxy[0], proxy[1]) if proxy is not None else (host, port)
    sock, address = await connect_socket(
        loop, resolver, target_host, target_port, af, source_ip, watcher
    )
    conn = ClientConnection(key, limits, proxy is not None and scheme == "http")
    conn.sock = sock
    try:
        if proxy is not None and scheme == "https":
            await loop.create_connection(lambda: conn, sock=sock)
            watcher.connect_phase(f"during CONNECT to {host}:{port} through the proxy")
            await conn.tunnel(host, port, proxy[2])
            if ssl_context is not None:
                watcher.connect_phase(f"during TLS handshake with {host}:{port}")
                assert conn.transport is not None
                tls = await loop.start_tls(conn.transport, conn, ssl_context, server_hostname=host)
                conn.transport = cast(asyncio.Transport, tls)
        elif ssl_context is not None:
            # Named by the address connected to, as Tornado's TCPClient says.
            watcher.connect_phase(f"during TLS handshake with {_format_addr(address)}")
            await loop.create_connection(
                lambda: conn, sock=sock, ssl=ssl_context, server_hostname=host
            )
        else:
            await loop.create_connection(lambda: conn, sock=sock)
    except ssl.SSLError as exc:
        conn.close()
        sock.close()
        gen_log.warning("SSL Error on connection to %s:%d: %s", host, port, exc)
        raise
    except BaseException:
        conn.close()
        sock.close()
        raise
    return conn
