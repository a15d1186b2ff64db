"""Opening client connections: resolve, TCP, proxy CONNECT tunnel, TLS.

A `ClientConnection` is one open stream plus its sans-I/O HTTP/1.1 state
(`squall._h1.H1Connection` in the client role); it lives in the pool
between requests. `open_connection` makes one, reporting each phase to a
`ConnectWatcher` so that a connect timeout can say where it struck and close
the socket being set up.
"""

from __future__ import annotations

import base64
import select
import socket
import ssl
from collections.abc import Callable, Hashable
from typing import Any, Optional, Protocol, Union

from squall._h1 import (
    NEED_DATA,
    ConnectionClosed,
    H1Connection,
    H1Limits,
    ProtocolError,
    Response,
)
from squall.httputil import encode_username_password
from squall.iostream import IOStream, StreamClosedError
from squall.netutil import Resolver, ssl_options_to_context

__all__ = ["ClientConnection", "ConnectWatcher", "open_connection", "ssl_context_for"]

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


class ConnectWatcher(Protocol):
    """Told what `open_connection` is doing, for timeouts and cancellation."""

    def connect_phase(self, phase: str, abort: Optional[Callable[[], object]]) -> None:
        """``phase`` reads after "Timeout " (``"while resolving example.com"``);
        ``abort`` closes what is being set up."""
        ...

    def cancelled(self) -> bool:
        """True once the request gave up; the connection is then closed."""
        ...


class ClientConnection:
    """An open connection to an origin (or a proxy) and its HTTP/1.1 state.

    Attributes:
        stream: The `~squall.iostream.IOStream` (TLS or not).
        h1: The client-role `~squall._h1.H1Connection`.
        key: The pool key it belongs to.
        via_proxy: Requests go to a proxy in absolute form.
        uses: How many requests have started on it.
    """

    __slots__ = ("stream", "h1", "key", "via_proxy", "uses")

    def __init__(self, stream: IOStream, h1: H1Connection, key: Hashable, via_proxy: bool) -> None:
        self.stream = stream
        self.h1 = h1
        self.key = key
        self.via_proxy = via_proxy
        self.uses = 0

    def can_keep(self) -> bool:
        """After a response: whether it left the connection fit for another
        request (keep-alive, both sides idle, nothing unread, still open)."""
        h1 = self.h1
        return (
            h1.keep_alive
            and not h1.buffered
            and h1.our_state == "IDLE"
            and h1.their_state == "IDLE"
            and not self.stream.closed()
        )

    def is_reusable(self) -> bool:
        """Open, idle on both sides, keep-alive, with nothing unread.

        A server that closed the idle connection (or sent bytes nobody asked
        for) makes the socket readable: then it is not reused.
        """
        if not self.can_keep():
            return False
        sock = self.stream.socket
        try:
            readable, _, _ = select.select([sock], [], [], 0)
        except (OSError, ValueError):
            return False
        if not readable:
            return True
        if isinstance(sock, ssl.SSLSocket):
            # TLS 1.3 session tickets arrive after the handshake and make the
            # socket readable; reading consumes them and yields no data.
            try:
                data = sock.recv(1)
            except ssl.SSLWantReadError:
                return True
            except (OSError, ssl.SSLError):
                return False
            # Data nobody asked for, or EOF: either way not reusable.
            del data
            return False
        return False

    def close(self) -> None:
        """Close the stream."""
        self.stream.close()


async def _resolve_and_connect(
    resolver: Resolver,
    host: str,
    port: int,
    af: socket.AddressFamily,
    source_ip: Optional[str],
    max_buffer_size: int,
    watcher: ConnectWatcher,
) -> Optional[IOStream]:
    watcher.connect_phase(f"while resolving {host}", None)
    addrinfo = await resolver.resolve(host, port, af)
    if watcher.cancelled():
        return None
    if not addrinfo:
        raise OSError(f"no address found for {host}:{port}")
    last: Optional[BaseException] = None
    # Addresses are tried in order; the resolver puts the preferred first.
    for family, address in addrinfo:
        sock = socket.socket(family, socket.SOCK_STREAM)
        if source_ip is not None:
            try:
                sock.bind((source_ip, 0))
            except OSError as exc:
                sock.close()
                raise ValueError(
                    f"Failed binding local connection end to {source_ip!r}: {exc}"
                ) from exc
        stream = IOStream(sock, max_buffer_size=max_buffer_size)
        watcher.connect_phase(f"while connecting to {host}:{port}", stream.close)
        try:
            await stream.connect(address)
        except StreamClosedError as exc:
            last = exc.real_error or exc
            if watcher.cancelled():
                return None
            continue
        if watcher.cancelled():
            stream.close()
            return None
        return stream
    assert last is not None
    raise last


async def _tunnel(
    stream: IOStream,
    host: str,
    port: int,
    proxy_auth: Optional[str],
    max_header_size: int,
) -> None:
    # RFC 9110 §9.3.6: CONNECT host:port; a 2xx makes the connection a tunnel.
    h1 = H1Connection("client", limits=H1Limits(max_header_size=max_header_size))
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = [("Host", authority)]
    if proxy_auth is not None:
        headers.append(("Proxy-Authorization", proxy_auth))
    await stream.write(h1.send_request_head("CONNECT", authority, headers) + h1.send_end())
    while True:
        event = h1.next_event()
        if event is NEED_DATA:
            try:
                data = await stream.read_bytes(65536, partial=True)
            except StreamClosedError:
                data = b""
            h1.receive_data(data)
            continue
        if isinstance(event, Response):
            if 200 <= event.status < 300:
                if h1.detach():
                    raise ProtocolError("proxy sent data after its CONNECT response")
                return
            from squall.httpclient import HTTPClientError

            raise HTTPClientError(
                599,
                f"Proxy CONNECT to {authority} failed: {event.status} {event.reason}",
            )
        if isinstance(event, ConnectionClosed):
            raise StreamClosedError()
        # Interim responses before the final one are skipped.


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
    max_buffer_size: int,
    watcher: ConnectWatcher,
) -> Optional[ClientConnection]:
    """Open a connection for ``scheme://host:port``, through ``proxy`` if given.

    With a proxy ``(proxy_host, proxy_port, proxy_authorization)``, http
    requests are sent to the proxy in absolute form; https ones go through
    a CONNECT tunnel, then TLS with the origin.

    Returns:
        The connection, or None if the watcher cancelled meanwhile.

    Raises:
        OSError: Resolution or connection failures (the socket's error).
        ssl.SSLError: A failed TLS handshake.
        ValueError: A ``source_ip`` that cannot be bound.
    """
    if proxy is not None:
        target_host, target_port = proxy[0], proxy[1]
    else:
        target_host, target_port = host, port
    stream = await _resolve_and_connect(
        resolver, target_host, target_port, af, source_ip, max_buffer_size, watcher
    )
    if stream is None:
        return None
    try:
        stream.set_nodelay(True)
        via_proxy = proxy is not None and scheme == "http"
        if proxy is not None and scheme == "https":
            watcher.connect_phase(
                f"during CONNECT to {host}:{port} through the proxy", stream.close
            )
            await _tunnel(stream, host, port, proxy[2], limits.max_header_size)
        if ssl_context is not None:
            handshake = stream.start_tls(False, ssl_context, server_hostname=host)
            # The socket now belongs to the TLS stream; cancelling the
            # handshake closes it.
            watcher.connect_phase(f"during TLS handshake with {host}:{port}", handshake.cancel)
            stream = await handshake
        if watcher.cancelled():
            stream.close()
            return None
    except BaseException:
        stream.close()
        raise
    h1 = H1Connection("client", limits=limits)
    return ClientConnection(stream, h1, key, via_proxy)
