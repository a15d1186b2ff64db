"""Network helpers: listening sockets, accept loops, name resolution and TLS contexts.

- :func:`bind_sockets` / :func:`bind_unix_socket` create non-blocking
  listening sockets; :func:`add_accept_handler` accepts on one from the IOLoop.
- :class:`Resolver` turns a host name into addresses without blocking the
  loop. It is :class:`~squall.util.Configurable`: ``Resolver.configure(...)``
  picks the implementation every ``Resolver()`` creates. The default,
  :class:`DefaultLoopResolver`, uses the event loop's ``getaddrinfo``.
- :func:`ssl_options_to_context` / :func:`ssl_wrap_socket` turn Tornado-style
  ``ssl_options`` dicts into :class:`ssl.SSLContext` objects.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import os
import socket
import ssl
import stat
import struct
import sys
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from squall.concurrent import Future, chain_future, dummy_executor
from squall.ioloop import IOLoop
from squall.util import Configurable, errno_from_exception

__all__ = [
    "bind_sockets",
    "bind_unix_socket",
    "add_accept_handler",
    "is_valid_ip",
    "Resolver",
    "DefaultExecutorResolver",
    "DefaultLoopResolver",
    "ExecutorResolver",
    "BlockingResolver",
    "ThreadedResolver",
    "OverrideResolver",
    "ssl_options_to_context",
    "ssl_wrap_socket",
]

# The listen() backlog when none is given. Also the most connections one
# readiness event of a listening socket accepts, so that a flood of clients
# cannot keep the loop from running other callbacks.
_DEFAULT_BACKLOG = 128

# The backlog each listening socket made here was given, for the servers that
# hand the socket to asyncio: its create_server() calls listen() again, with
# a backlog of its own (100) unless told the one to keep.
_backlogs: weakref.WeakKeyDictionary[socket.socket, int] = weakref.WeakKeyDictionary()

# Linux's struct tcp_info: for a listening socket, tcpi_sacked (the eighth
# field after the first eight bytes) is the backlog listen() was given, as
# the kernel keeps it (clamped to net.core.somaxconn).
_TCP_INFO_LISTEN = 10  # tcpi_state for TCP_LISTEN
_TCP_INFO_MAX_BACKLOG = struct.Struct("=I")
_TCP_INFO_MAX_BACKLOG_OFFSET = 28

# The keys an ssl_options dict may have.
_SSL_CONTEXT_KEYWORDS = frozenset(
    ["ssl_version", "certfile", "keyfile", "cert_reqs", "ca_certs", "ciphers"]
)

_AddrInfo = list[tuple[int, Any]]


def bind_sockets(
    port: int,
    address: Optional[str] = None,
    family: socket.AddressFamily = socket.AF_UNSPEC,
    backlog: int = _DEFAULT_BACKLOG,
    flags: Optional[int] = None,
    reuse_port: bool = False,
) -> list[socket.socket]:
    """Creates non-blocking listening TCP sockets bound to a port and address.

    One socket is returned per address the host resolves to: typically one
    IPv4 and one IPv6 socket for a name like ``localhost`` or for all
    interfaces. With ``port`` 0, the first socket gets a free port from the
    system and the others are bound to the same port.

    Args:
        port: the port; 0 for any free one.
        address: an IP address or host name; None or "" for every interface.
        family: ``AF_INET`` or ``AF_INET6`` to keep to one family; by default
            both are used if available.
        backlog: the ``listen()`` backlog.
        flags: ``AI_*`` flags for ``getaddrinfo`` (default ``AI_PASSIVE``).
        reuse_port: set ``SO_REUSEPORT`` on every socket.

    Returns:
        The listening sockets.

    Raises:
        ValueError: if ``reuse_port`` is set on a platform without SO_REUSEPORT.
        OSError: if the address cannot be resolved or bound.
    """
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port=True needs SO_REUSEPORT, which this platform lacks")
    if address == "":
        address = None
    if not socket.has_ipv6 and family == socket.AF_UNSPEC:
        # getaddrinfo may list IPv6 addresses even when Python cannot use them.
        family = socket.AF_INET
    if flags is None:
        flags = socket.AI_PASSIVE

    sockets: list[socket.socket] = []
    bound_port: Optional[int] = None
    seen: set[tuple[Any, ...]] = set()
    infos = socket.getaddrinfo(address, port, family, socket.SOCK_STREAM, 0, flags)
    # Sorting by family puts IPv4 first, so that with port 0 the port is
    # picked where it is most likely to be free on both families.
    for af, socktype, proto, _canonname, sockaddr in sorted(infos, key=lambda info: info[0]):
        if (af, sockaddr) in seen:
            continue
        seen.add((af, sockaddr))
        if (
            sys.platform == "darwin"
            and address == "localhost"
            and af == socket.AF_INET6
            and sockaddr[3] != 0
        ):
            # macOS also lists a link-local fe80::1%lo0 for localhost, which
            # cannot share the port; the ::1 entry is enough.
            continue
        try:
            sock = socket.socket(af, socktype, proto)
        except OSError as exc:
            if errno_from_exception(exc) == errno.EAFNOSUPPORT:
                continue
            raise
        try:
            _configure_listener(sock, af, reuse_port)
            host, requested_port = sockaddr[:2]
            if requested_port == 0 and bound_port is not None:
                sockaddr = (host, bound_port, *sockaddr[2:])
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if (
                    errno_from_exception(exc) == errno.EADDRNOTAVAIL
                    and address == "localhost"
                    and sockaddr[0] == "::1"
                ):
                    # IPv6 is compiled in but not configured on this host.
                    sock.close()
                    continue
                raise
            bound_port = sock.getsockname()[1]
            sock.listen(backlog)
            _backlogs[sock] = backlog
        except BaseException:
            sock.close()
            for other in sockets:
                other.close()
            raise
        sockets.append(sock)
    return sockets


def _configure_listener(sock: socket.socket, af: int, reuse_port: bool) -> None:
    if os.name != "nt":
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        except OSError as exc:
            # Some socket types (e.g. under WSL or sandboxes) refuse it.
            if errno_from_exception(exc) != errno.EINVAL:
                raise
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
        # One socket per family: keep the IPv6 socket from also taking the
        # IPv4 port (the Linux default), which would clash with the IPv4 one.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)


if hasattr(socket, "AF_UNIX"):

    def bind_unix_socket(
        file: str, mode: int = 0o600, backlog: int = _DEFAULT_BACKLOG
    ) -> socket.socket:
        """Creates a non-blocking listening Unix-domain stream socket.

        A stale socket file at ``file`` is removed first. A name that starts
        with a NUL character is in Linux's abstract namespace: no file is
        made and ``mode`` does not apply.

        Args:
            file: the socket path.
            mode: the permission bits of the socket file.
            backlog: the ``listen()`` backlog.

        Raises:
            ValueError: if ``file`` exists and is not a socket.
            OSError: if it cannot be bound.
        """
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            except OSError as exc:
                if errno_from_exception(exc) != errno.EINVAL:
                    raise
            sock.setblocking(False)
            abstract = file.startswith("\0")
            if not abstract:
                try:
                    st = os.stat(file)
                except FileNotFoundError:
                    pass
                else:
                    if not stat.S_ISSOCK(st.st_mode):
                        raise ValueError(f"File {file} exists and is not a socket")
                    os.remove(file)
            sock.bind(file)
            if not abstract:
                os.chmod(file, mode)
            sock.listen(backlog)
            _backlogs[sock] = backlog
        except BaseException:
            sock.close()
            raise
        return sock


def _remember_backlog(sock: socket.socket, backlog: int) -> None:
    """Record the backlog ``sock`` listens with (for a socket made elsewhere)."""
    _backlogs[sock] = backlog


def _listen_backlog(sock: socket.socket) -> int:
    """The backlog a listening socket has, to give again to asyncio's listen().

    Read from the kernel for TCP on Linux (whoever made the socket); else
    the one recorded when it was made here (`bind_sockets`,
    `bind_unix_socket`, `_remember_backlog`); else ``_DEFAULT_BACKLOG``.
    """
    if sys.platform.startswith("linux") and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 64)
        except OSError:
            info = b""
        if len(info) >= _TCP_INFO_MAX_BACKLOG_OFFSET + 4 and info[0] == _TCP_INFO_LISTEN:
            (backlog,) = _TCP_INFO_MAX_BACKLOG.unpack_from(info, _TCP_INFO_MAX_BACKLOG_OFFSET)
            return int(backlog)
    return _backlogs.get(sock, _DEFAULT_BACKLOG)


def add_accept_handler(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None]
) -> Callable[[], None]:
    """Accepts connections on a listening socket from the current IOLoop.

    ``callback(connection, address)`` runs for each accepted connection.
    Each readiness event accepts at most ``_DEFAULT_BACKLOG`` connections
    before yielding to the loop.

    Args:
        sock: a non-blocking listening socket.
        callback: called with each new connection and its peer address.

    Returns:
        A function that stops accepting (it does not close ``sock``). It
        may be called after ``sock`` was closed, and more than once.
    """
    io_loop = IOLoop.current()
    # The loop knows the socket by this number; once the socket is closed,
    # fileno() says -1 and the number is the only way to reach its entry.
    fd = sock.fileno()
    removed = False

    def accept_handler(fd: Any, events: int) -> None:
        for _ in range(_DEFAULT_BACKLOG):
            # The callback may have called the remove function.
            if removed:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return  # nothing more to accept now
            except ConnectionAbortedError:
                # The peer gave up before we accepted: nothing to hand over.
                continue
            callback(connection, address)

    def remove_handler() -> None:
        nonlocal removed
        if removed:
            # The number may belong to another file by now.
            return
        removed = True
        io_loop.remove_handler(fd if sock.fileno() == -1 else sock)

    io_loop.add_handler(sock, accept_handler, IOLoop.READ)
    return remove_handler


def is_valid_ip(ip: str) -> bool:
    """Returns True if ``ip`` is an IPv4 or IPv6 address literal.

    An IPv6 address may carry a zone after ``%``, as ``getaddrinfo`` takes
    one: a number (``fe80::1%2``, up to 2**32 - 1), or, for a link-local
    address (``fe80::/10``, or multicast of interface- or link-local
    scope), the name of one of this host's interfaces (``fe80::1%eth0``).
    Host names, surrounding whitespace and other text are not addresses.
    """
    if not ip or "\x00" in ip:
        return False
    address, percent, zone = ip.partition("%")
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if not percent:
        return True
    return isinstance(parsed, ipaddress.IPv6Address) and _valid_zone(parsed, zone)


def _valid_zone(address: ipaddress.IPv6Address, zone: str) -> bool:
    """Whether ``zone`` may follow ``address`` after its ``%``.

    Without this check ``ipaddress`` would take any text as a zone, spaces
    and line breaks included, and an ``X-Real-Ip`` header could put that
    text in ``remote_ip`` (and so in the logs).
    """
    if zone.isascii() and zone.isdigit():
        return int(zone) <= 0xFFFFFFFF
    packed = address.packed
    link_scoped = address.is_link_local or (packed[0] == 0xFF and packed[1] & 0x0F in (1, 2))
    if not link_scoped:
        return False
    try:
        socket.if_nametoindex(zone)
    except (OSError, ValueError, UnicodeError):
        return False
    return True


class Resolver(Configurable):
    """Resolves host names to socket addresses without blocking the IOLoop.

    ``Resolver()`` creates the configured implementation (see
    :meth:`~squall.util.Configurable.configure`); the default is
    :class:`DefaultLoopResolver`. Others: :class:`DefaultExecutorResolver`,
    :class:`ThreadedResolver`, :class:`BlockingResolver`,
    :class:`OverrideResolver`.
    """

    @classmethod
    def configurable_base(cls) -> type[Resolver]:
        return Resolver

    @classmethod
    def configurable_default(cls) -> type[Resolver]:
        return DefaultLoopResolver

    def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> Awaitable[_AddrInfo]:
        """Resolves a host and port to a list of addresses.

        Args:
            host: a host name or address literal.
            port: the port.
            family: ``AF_INET``/``AF_INET6`` to keep to one family.

        Returns:
            An awaitable of ``(family, address)`` pairs, where ``address`` is
            a tuple to pass to ``socket.connect``.

        Raises:
            OSError: (through the awaitable) if the name cannot be resolved.
        """
        raise NotImplementedError()

    def close(self) -> None:
        """Releases the resolver's resources (threads, connections)."""


def _resolve_addr(
    host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
) -> _AddrInfo:
    # Looked up on the module at each call so that tests can replace it.
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    return [(fam, address) for fam, _type, _proto, _canon, address in infos]


class DefaultExecutorResolver(Resolver):
    """Runs the blocking ``getaddrinfo`` on the event loop's default executor."""

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> _AddrInfo:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, _resolve_addr, host, port, family)


def _numeric_address(host: str, port: int, family: socket.AddressFamily) -> Optional[_AddrInfo]:
    """The one address of an IP literal, or None when ``host`` needs a lookup.

    ``getaddrinfo`` returns the same for a numeric host, but costs a trip to
    a worker thread; a literal of the wrong family is left to it (it raises
    the usual error). Scoped IPv6 literals (``fe80::1%eth0``) are looked up.
    """
    if type(port) is not int or not 0 <= port <= 65535 or type(host) is not str or "\x00" in host:
        # The rest is getaddrinfo's to answer: a port given as a string
        # ("80", "http"; the address must carry the number), one out of
        # range (an error, or what the platform makes of it), a host as
        # bytes, or one with a NUL (getaddrinfo reads it up to the NUL,
        # where inet_pton would raise ValueError).
        return None
    if family in (socket.AF_UNSPEC, socket.AF_INET):
        try:
            # Strict dotted quads only ("127.1" and "0177.0.0.1" are left to
            # getaddrinfo), so the text is already in getaddrinfo's spelling.
            socket.inet_pton(socket.AF_INET, host)
        except OSError:
            pass
        else:
            return [(socket.AF_INET, (host, port))]
    if family in (socket.AF_UNSPEC, socket.AF_INET6) and "%" not in host:
        try:
            packed = socket.inet_pton(socket.AF_INET6, host)
        except OSError:
            pass
        else:
            # Given back in getaddrinfo's spelling: "0:0:0:0:0:0:0:1" and
            # "::0001" as "::1", "::FFFF:1.2.3.4" as "::ffff:1.2.3.4".
            return [(socket.AF_INET6, (socket.inet_ntop(socket.AF_INET6, packed), port, 0, 0))]
    return None


class DefaultLoopResolver(Resolver):
    """Resolves with the event loop's own ``getaddrinfo`` (the default).

    IP literals are answered at once, without the lookup thread.
    """

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> _AddrInfo:
        numeric = _numeric_address(host, port, family)
        if numeric is not None:
            return numeric
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, family=family, type=socket.SOCK_STREAM
        )
        return [(fam, address) for fam, _type, _proto, _canon, address in infos]


class ExecutorResolver(Resolver):
    """Runs the blocking ``getaddrinfo`` on a :class:`concurrent.futures.Executor`.

    Arguments are given to the constructor.

    Args:
        executor: the executor; by default one that runs each call at once,
            blocking the loop.
        close_executor: whether :meth:`close` shuts ``executor`` down.

    .. deprecated:: 5.0
        The default :class:`Resolver` uses the event loop's ``getaddrinfo``;
        use it instead.
    """

    def initialize(
        self,
        executor: Optional[concurrent.futures.Executor] = None,
        close_executor: bool = True,
    ) -> None:
        if executor is None:
            self.executor: Optional[concurrent.futures.Executor] = dummy_executor
            self.close_executor = False
        else:
            self.executor = executor
            self.close_executor = close_executor

    def close(self) -> None:
        if self.close_executor and self.executor is not None:
            self.executor.shutdown()
        self.executor = None

    def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> Awaitable[_AddrInfo]:
        if self.executor is None:
            raise RuntimeError(f"{type(self).__name__} is closed")
        result: Future[_AddrInfo] = Future()
        chain_future(self.executor.submit(_resolve_addr, host, port, family), result)
        return result


class BlockingResolver(ExecutorResolver):
    """Calls ``getaddrinfo`` directly on the IOLoop's thread, blocking it.

    .. deprecated:: 5.0
        The default :class:`Resolver` uses the event loop's ``getaddrinfo``;
        use it instead.
    """

    def initialize(self) -> None:  # type: ignore[override]
        super().initialize()


class ThreadedResolver(ExecutorResolver):
    """Runs ``getaddrinfo`` on a thread pool shared by all instances.

    Arguments are given to the constructor.

    Args:
        num_threads: the size of the pool, fixed by the first instance
            created in a process.

    .. deprecated:: 5.0
        The default :class:`Resolver` uses the event loop's ``getaddrinfo``
        on its executor; use it instead.
    """

    _threadpool: Optional[concurrent.futures.ThreadPoolExecutor] = None
    _threadpool_pid: Optional[int] = None

    def initialize(self, num_threads: int = 10) -> None:  # type: ignore[override]
        threadpool = ThreadedResolver._create_threadpool(num_threads)
        super().initialize(executor=threadpool, close_executor=False)

    @classmethod
    def _create_threadpool(cls, num_threads: int) -> concurrent.futures.ThreadPoolExecutor:
        pid = os.getpid()
        if cls._threadpool_pid != pid:
            # A pool inherited through fork() has no threads in this process.
            cls._threadpool = None
        if cls._threadpool is None:
            cls._threadpool = concurrent.futures.ThreadPoolExecutor(num_threads)
            cls._threadpool_pid = pid
        return cls._threadpool


class OverrideResolver(Resolver):
    """Wraps another resolver, redirecting some lookups.

    Arguments are given to the constructor.

    Args:
        resolver: the resolver that does the lookups.
        mapping: maps ``(host, port, family)``, ``(host, port)`` or ``host``
            to a replacement ``(host, port)`` pair (or, for a bare host key,
            a host), tried in that order. For example::

                {
                    "example.com": "127.0.1.1",
                    ("login.example.com", 443): ("localhost", 1443),
                    ("login.example.com", 443, socket.AF_INET6): ("::1", 1443),
                }
    """

    def initialize(self, resolver: Resolver, mapping: dict[Any, Any]) -> None:
        self.resolver = resolver
        self.mapping = mapping

    def close(self) -> None:
        self.resolver.close()

    def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> Awaitable[_AddrInfo]:
        mapping = self.mapping
        if (host, port, family) in mapping:
            host, port = mapping[(host, port, family)]
        elif (host, port) in mapping:
            host, port = mapping[(host, port)]
        elif host in mapping:
            host = mapping[host]
        return self.resolver.resolve(host, port, family)


def _check_ssl_option_keys(ssl_options: dict[str, Any]) -> None:
    """Raises ValueError naming any key of an ``ssl_options`` dict that is not known."""
    unknown = set(ssl_options) - _SSL_CONTEXT_KEYWORDS
    if unknown:
        raise ValueError(
            f"unknown ssl_options keys {sorted(unknown)}; allowed: {sorted(_SSL_CONTEXT_KEYWORDS)}"
        )


def ssl_options_to_context(
    ssl_options: Union[dict[str, Any], ssl.SSLContext], server_side: Optional[bool] = None
) -> ssl.SSLContext:
    """Turns an ``ssl_options`` dict into an :class:`ssl.SSLContext`.

    A context is returned as it is. A dict may have the keys
    ``ssl_version``, ``certfile``, ``keyfile``, ``cert_reqs``, ``ca_certs``
    and ``ciphers``, with the meaning of the old ``ssl.wrap_socket``
    arguments.

    Args:
        ssl_options: the dict or context.
        server_side: True for a server context, False for a client one;
            None gives a context usable for either, with no certificate
            verification unless ``cert_reqs`` asks for it.

    Raises:
        ValueError: if the dict has an unknown key.
        OSError, ssl.SSLError: if a certificate or key cannot be loaded.
    """
    if isinstance(ssl_options, ssl.SSLContext):
        return ssl_options
    if not isinstance(ssl_options, dict):
        raise TypeError(
            f"ssl_options must be a dict or an ssl.SSLContext, not {type(ssl_options).__name__}"
        )
    _check_ssl_option_keys(ssl_options)
    if "ssl_version" in ssl_options:
        protocol = ssl_options["ssl_version"]
    elif server_side:
        protocol = ssl.PROTOCOL_TLS_SERVER
    elif server_side is not None:
        protocol = ssl.PROTOCOL_TLS_CLIENT
    else:
        protocol = None
    if protocol is None or protocol == ssl.PROTOCOL_TLS:
        # Only the generic protocol serves both sides; Python deprecates it,
        # but a caller that did not say which side it is needs it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS)
    else:
        context = ssl.SSLContext(protocol)
    if "certfile" in ssl_options:
        context.load_cert_chain(ssl_options["certfile"], ssl_options.get("keyfile"))
    if "cert_reqs" in ssl_options:
        if ssl_options["cert_reqs"] == ssl.CERT_NONE:
            # A client context checks host names by default, which is not
            # allowed together with CERT_NONE.
            context.check_hostname = False
        context.verify_mode = ssl_options["cert_reqs"]
    if "ca_certs" in ssl_options:
        context.load_verify_locations(ssl_options["ca_certs"])
    if "ciphers" in ssl_options:
        context.set_ciphers(ssl_options["ciphers"])
    # TLS compression enables the CRIME attack.
    context.options |= ssl.OP_NO_COMPRESSION
    return context


def ssl_wrap_socket(
    socket: socket.socket,
    ssl_options: Union[dict[str, Any], ssl.SSLContext],
    server_hostname: Optional[str] = None,
    server_side: Optional[bool] = None,
    **kwargs: Any,
) -> ssl.SSLSocket:
    """Wraps a socket in TLS according to ``ssl_options``.

    Args:
        socket: the connected (or listening) socket.
        ssl_options: a dict (see :func:`ssl_options_to_context`) or context.
        server_hostname: the name to send with SNI and check the
            certificate against (client side).
        server_side: True for the server end; None means client.
        **kwargs: passed to :meth:`ssl.SSLContext.wrap_socket`
            (e.g. ``do_handshake_on_connect``).

    Returns:
        The :class:`ssl.SSLSocket`.
    """
    context = ssl_options_to_context(ssl_options, server_side=server_side)
    return context.wrap_socket(
        socket, server_hostname=server_hostname, server_side=bool(server_side), **kwargs
    )
