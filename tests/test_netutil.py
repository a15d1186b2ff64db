"""Tests for squall.netutil."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import os
import socket
import ssl
import stat
import sys
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import squall
from squall import netutil
from squall.ioloop import IOLoop
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed
CERTS = Path(squall.__file__).parent / "_certs"
CERTFILE = str(CERTS / "test.crt")
KEYFILE = str(CERTS / "test.key")


def run(test: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    return asyncio.run(asyncio.wait_for(test(), LIMIT))


@pytest.fixture
def closing() -> Iterator[list[socket.socket]]:
    """Sockets to close at the end of the test."""
    socks: list[socket.socket] = []
    yield socks
    for s in socks:
        s.close()


def fake_getaddrinfo(
    entries: list[tuple[int, tuple[Any, ...]]], calls: list[tuple[Any, ...]]
) -> Callable[..., list[tuple[Any, ...]]]:
    def getaddrinfo(*args: Any) -> list[tuple[Any, ...]]:
        calls.append(args)
        return [(af, socket.SOCK_STREAM, 6, "", addr) for af, addr in entries]

    return getaddrinfo


# -- bind_sockets -------------------------------------------------------------


def test_bind_sockets_loopback(closing: list[socket.socket]) -> None:
    socks = netutil.bind_sockets(0, "127.0.0.1")
    closing.extend(socks)
    assert len(socks) == 1
    sock = socks[0]
    host, port = sock.getsockname()
    assert host == "127.0.0.1" and port > 0
    assert sock.getblocking() is False
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
    with socket.create_connection(("127.0.0.1", port), timeout=LIMIT):
        pass


def test_bind_sockets_localhost_shares_one_port(closing: list[socket.socket]) -> None:
    socks = netutil.bind_sockets(0, "localhost")
    closing.extend(socks)
    assert socks
    ports = {s.getsockname()[1] for s in socks}
    assert len(ports) == 1
    for s in socks:
        if s.family == socket.AF_INET6:
            assert s.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1


def test_bind_sockets_port_zero_reused_for_later_addresses(
    monkeypatch: pytest.MonkeyPatch, closing: list[socket.socket]
) -> None:
    # Two IPv4 loopback addresses: the second gets the first one's port.
    calls: list[tuple[Any, ...]] = []
    entries = [
        (socket.AF_INET, ("127.0.0.1", 0)),
        (socket.AF_INET, ("127.0.0.1", 0)),  # a duplicate is skipped
        (socket.AF_INET, ("127.0.0.2", 0)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(entries, calls))
    socks = netutil.bind_sockets(0, "")
    closing.extend(socks)
    assert len(socks) == 2
    assert socks[0].getsockname()[1] == socks[1].getsockname()[1]
    # "" means every interface, passive.
    assert calls == [(None, 0, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)]


def test_bind_sockets_flags_backlog_and_family(
    monkeypatch: pytest.MonkeyPatch, closing: list[socket.socket]
) -> None:
    calls: list[tuple[Any, ...]] = []
    entries = [(socket.AF_INET, ("127.0.0.1", 0))]
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(entries, calls))
    monkeypatch.setattr(socket, "has_ipv6", False)
    closing.extend(netutil.bind_sockets(0, "127.0.0.1", backlog=5, flags=socket.AI_NUMERICHOST))
    # Without IPv6 support, the unspecified family narrows to IPv4.
    assert calls == [("127.0.0.1", 0, socket.AF_INET, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)]


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_bind_sockets_reuse_port(closing: list[socket.socket]) -> None:
    first = netutil.bind_sockets(0, "127.0.0.1", reuse_port=True)
    closing.extend(first)
    port = first[0].getsockname()[1]
    second = netutil.bind_sockets(port, "127.0.0.1", reuse_port=True)
    closing.extend(second)
    assert second[0].getsockname()[1] == port
    assert second[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) != 0


def test_bind_sockets_reuse_port_unsupported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "SO_REUSEPORT", raising=False)
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        netutil.bind_sockets(0, "127.0.0.1", reuse_port=True)


def test_bind_sockets_address_in_use(closing: list[socket.socket]) -> None:
    first = netutil.bind_sockets(0, "127.0.0.1")
    closing.extend(first)
    with pytest.raises(OSError) as info:
        netutil.bind_sockets(first[0].getsockname()[1], "127.0.0.1")
    assert info.value.errno == errno.EADDRINUSE


class _FakeSocket:
    """Stands in for socket.socket to drive error paths."""

    created: list[_FakeSocket] = []

    def __init__(self, af: int, socktype: int, proto: int, *, bind_error: int = 0) -> None:
        self.af = af
        self.bind_error = bind_error
        self.closed = False
        self.created.append(self)

    def setsockopt(self, *args: Any) -> None:
        if args[1] == socket.SO_REUSEADDR and self.af == socket.AF_INET:
            raise OSError(errno.EINVAL, "not here")

    def setblocking(self, flag: bool) -> None:
        pass

    def bind(self, addr: Any) -> None:
        if self.bind_error:
            raise OSError(self.bind_error, os.strerror(self.bind_error))

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 4321)

    def listen(self, backlog: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_bind_sockets_skips_unsupported_family_and_unconfigured_ipv6(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    entries = [
        (socket.AF_INET, ("127.0.0.1", 0)),
        (socket.AF_INET6, ("::1", 0, 0, 0)),
        (socket.AF_INET6, ("fe80::1", 0, 0, 1)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(entries, []))
    _FakeSocket.created = []

    def factory(af: int, socktype: int, proto: int) -> _FakeSocket:
        if af == socket.AF_INET6 and len(_FakeSocket.created) > 1:
            raise OSError(errno.EAFNOSUPPORT, "no such family")
        bind_error = errno.EADDRNOTAVAIL if af == socket.AF_INET6 else 0
        return _FakeSocket(af, socktype, proto, bind_error=bind_error)

    monkeypatch.setattr(socket, "socket", factory)
    socks = netutil.bind_sockets(0, "localhost")
    # IPv4 bound (its EINVAL on SO_REUSEADDR ignored); ::1 not available and
    # closed; the last family unsupported.
    assert [s.af for s in socks] == [socket.AF_INET]  # type: ignore[attr-defined]
    assert [f.closed for f in _FakeSocket.created] == [False, True]


def test_bind_sockets_other_errors_propagate_and_close(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [(socket.AF_INET, ("127.0.0.1", 0)), (socket.AF_INET6, ("::1", 0, 0, 0))]
    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo(entries, []))
    _FakeSocket.created = []

    def factory(af: int, socktype: int, proto: int) -> _FakeSocket:
        bind_error = errno.EACCES if af == socket.AF_INET6 else 0
        return _FakeSocket(af, socktype, proto, bind_error=bind_error)

    monkeypatch.setattr(socket, "socket", factory)
    with pytest.raises(PermissionError):
        netutil.bind_sockets(80, "localhost")
    # The failed socket and the one bound before it are both closed.
    assert [f.closed for f in _FakeSocket.created] == [True, True]


def test_bind_sockets_socket_creation_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_getaddrinfo([(socket.AF_INET, ("127.0.0.1", 0))], [])
    )

    def factory(*args: Any) -> Any:
        raise OSError(errno.EMFILE, "too many files")

    monkeypatch.setattr(socket, "socket", factory)
    with pytest.raises(OSError, match="too many"):
        netutil.bind_sockets(0, "127.0.0.1")


def test_bind_sockets_setsockopt_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        socket, "getaddrinfo", fake_getaddrinfo([(socket.AF_INET6, ("::1", 0, 0, 0))], [])
    )
    _FakeSocket.created = []

    class Refusing(_FakeSocket):
        def setsockopt(self, *args: Any) -> None:
            raise OSError(errno.ENOPROTOOPT, "no")

    monkeypatch.setattr(socket, "socket", Refusing)
    with pytest.raises(OSError, match="no"):
        netutil.bind_sockets(0, "::1")
    assert _FakeSocket.created[0].closed


# -- bind_unix_socket ----------------------------------------------------------


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_bind_unix_socket(tmp_path: Path, closing: list[socket.socket]) -> None:
    path = str(tmp_path / "s.sock")
    sock = netutil.bind_unix_socket(path, mode=0o640, backlog=4)
    closing.append(sock)
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert sock.getblocking() is False
    client = socket.socket(socket.AF_UNIX)
    closing.append(client)
    client.connect(path)
    # A stale socket file is replaced.
    sock.close()
    again = netutil.bind_unix_socket(path)
    closing.append(again)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_bind_unix_socket_refuses_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(ValueError) as caught:
        netutil.bind_unix_socket(str(path))
    assert str(caught.value) == f"File {path} exists and is not a socket"
    assert path.read_text() == "keep me"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract namespace is Linux")
def test_bind_unix_socket_abstract(closing: list[socket.socket]) -> None:
    name = "\0squall-" + uuid.uuid4().hex
    sock = netutil.bind_unix_socket(name)
    closing.append(sock)
    client = socket.socket(socket.AF_UNIX)
    closing.append(client)
    client.connect(name)


@pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no unix sockets")
def test_bind_unix_socket_setsockopt_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, closing: list[socket.socket]
) -> None:
    real_socket = socket.socket
    made: list[socket.socket] = []

    def factory(errnum: int) -> Callable[..., socket.socket]:
        def make(*args: Any) -> socket.socket:
            class S(real_socket):
                def setsockopt(self, *a: Any) -> None:  # type: ignore[override]
                    raise OSError(errnum, "refused")

            s = S(*args)
            made.append(s)
            return s

        return make

    monkeypatch.setattr(socket, "socket", factory(errno.EINVAL))
    closing.append(netutil.bind_unix_socket(str(tmp_path / "a.sock")))
    monkeypatch.setattr(socket, "socket", factory(errno.EPERM))
    with pytest.raises(OSError, match="refused"):
        netutil.bind_unix_socket(str(tmp_path / "b.sock"))
    assert made[-1].fileno() == -1  # closed


# -- add_accept_handler ---------------------------------------------------------


def test_add_accept_handler(closing: list[socket.socket]) -> None:
    async def main() -> None:
        [listener] = netutil.bind_sockets(0, "127.0.0.1")
        closing.append(listener)
        port = listener.getsockname()[1]
        accepted: asyncio.Future[tuple[socket.socket, Any]] = asyncio.Future()

        def on_accept(conn: socket.socket, address: Any) -> None:
            closing.append(conn)
            accepted.set_result((conn, address))

        remove = netutil.add_accept_handler(listener, on_accept)
        client = socket.socket()
        closing.append(client)
        client.setblocking(False)
        await asyncio.get_running_loop().sock_connect(client, ("127.0.0.1", port))
        conn, address = await accepted
        assert address == client.getsockname()
        assert conn.getpeername() == client.getsockname()
        remove()

    run(main)


def test_add_accept_handler_remove_from_callback(closing: list[socket.socket]) -> None:
    async def main() -> None:
        [listener] = netutil.bind_sockets(0, "127.0.0.1")
        closing.append(listener)
        port = listener.getsockname()[1]
        clients = []
        for _ in range(3):
            c = socket.socket()
            closing.append(c)
            c.connect(("127.0.0.1", port))
            clients.append(c)
        seen: list[Any] = []
        done: asyncio.Future[None] = asyncio.Future()

        def on_accept(conn: socket.socket, address: Any) -> None:
            closing.append(conn)
            seen.append(address)
            remove()
            asyncio.get_running_loop().call_soon(done.set_result, None)

        remove = netutil.add_accept_handler(listener, on_accept)
        await done
        # Three connections were waiting, but removal stopped the accept loop.
        assert len(seen) == 1

    run(main)


def test_add_accept_handler_removed_after_the_socket_was_closed(
    closing: list[socket.socket],
) -> None:
    # A program that closes its listening sockets before TCPServer.stop():
    # the loop must forget the descriptor, or the next socket given the same
    # number cannot be watched ("fd N added twice").
    async def main() -> None:
        [listener] = netutil.bind_sockets(0, "127.0.0.1")
        fd = listener.fileno()
        remove = netutil.add_accept_handler(listener, lambda conn, address: conn.close())
        listener.close()
        remove()
        remove()  # again: nothing more to do
        [fresh] = netutil.bind_sockets(0, "127.0.0.1")
        closing.append(fresh)
        if fresh.fileno() != fd:
            os.dup2(fresh.fileno(), fd)
            fresh = socket.socket(fileno=fd)
            closing.append(fresh)
        accepted: asyncio.Future[socket.socket] = asyncio.Future()

        def on_accept(conn: socket.socket, address: Any) -> None:
            closing.append(conn)
            accepted.set_result(conn)

        remove_fresh = netutil.add_accept_handler(fresh, on_accept)
        client = socket.socket()
        closing.append(client)
        client.connect(fresh.getsockname())
        conn = await accepted
        assert conn.getpeername() == client.getsockname()
        remove_fresh()

    run(main)


class _AbortingListener:
    """Delegates to a real listener, but the first accept sees an aborted peer."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.aborted = False

    def fileno(self) -> int:
        return self.sock.fileno()

    def accept(self) -> tuple[socket.socket, Any]:
        if not self.aborted:
            self.aborted = True
            raise ConnectionAbortedError()
        return self.sock.accept()


def test_add_accept_handler_skips_aborted_connections(closing: list[socket.socket]) -> None:
    async def main() -> None:
        [listener] = netutil.bind_sockets(0, "127.0.0.1")
        closing.append(listener)
        client = socket.socket()
        closing.append(client)
        client.connect(listener.getsockname())
        wrapper = _AbortingListener(listener)
        accepted: asyncio.Future[socket.socket] = asyncio.Future()

        def on_accept(conn: socket.socket, address: Any) -> None:
            closing.append(conn)
            accepted.set_result(conn)

        remove = netutil.add_accept_handler(wrapper, on_accept)  # type: ignore[arg-type]
        conn = await accepted
        assert wrapper.aborted and conn.getpeername() == client.getsockname()
        remove()

    run(main)


# -- is_valid_ip ------------------------------------------------------------------


@pytest.mark.parametrize(
    "ip", ["127.0.0.1", "4.4.4.4", "::1", "2620:0:1cfe:face:b00c::3", "fe80::1%eth0"]
)
def test_is_valid_ip_true(ip: str) -> None:
    assert netutil.is_valid_ip(ip)


@pytest.mark.parametrize(
    "ip",
    ["www.google.com", "localhost", "4.4.4.4<", " 127.0.0.1", "", " ", "\n", "\x00", "a" * 100],
)
def test_is_valid_ip_false(ip: str) -> None:
    assert not netutil.is_valid_ip(ip)


def _an_interface() -> str:
    names = [name for _index, name in socket.if_nameindex()]
    if not names:
        pytest.skip("this host lists no network interfaces")
    return names[0]


@pytest.mark.parametrize(
    "ip", ["fe80::1%1", "::1%0", "fe80::1%4294967295", "fe80::1%{if}", "ff02::1%{if}"]
)
def test_is_valid_ip_takes_the_zones_getaddrinfo_takes(ip: str) -> None:
    assert netutil.is_valid_ip(ip.replace("{if}", _an_interface()))


@pytest.mark.parametrize(
    "ip",
    [
        # Text that is no zone: whitespace, line breaks, signs, other digits.
        "::1%1\n",
        "fe80::1%{if}\n",
        "fe80::1%a b",
        "fe80::1% 1",
        "fe80::1%+1",
        "fe80::1%0x1",
        "fe80::1%\u0661",
        "fe80::1%" + "x" * 300,
        # A number too large for a scope id.
        "fe80::1%4294967296",
        # A name only for link-local addresses, and only a real interface's.
        "::1%{if}",
        "2001:db8::1%{if}",
        "ff05::1%{if}",
        "fe80::1%no-such-interface-here",
        # No zones on IPv4, nor empty or doubled ones.
        "1.2.3.4%1",
        "fe80::1%",
        "fe80::1%1%2",
    ],
)
def test_is_valid_ip_refuses_other_zones(ip: str) -> None:
    assert not netutil.is_valid_ip(ip.replace("{if}", _an_interface()))


# -- resolvers --------------------------------------------------------------------


def _failing_getaddrinfo(*args: Any) -> Any:
    raise socket.gaierror(socket.EAI_NONAME, "mock: no such name")


def test_default_resolver_is_loop_resolver() -> None:
    async def main() -> None:
        resolver = netutil.Resolver()
        assert isinstance(resolver, netutil.DefaultLoopResolver)
        result = await resolver.resolve("127.0.0.1", 80)
        assert result == [(socket.AF_INET, ("127.0.0.1", 80))]
        resolver.close()

    run(main)


def test_configure_resolver() -> None:
    saved = netutil.Resolver._save_configuration()
    try:
        netutil.Resolver.configure("squall.netutil.BlockingResolver")
        assert isinstance(netutil.Resolver(), netutil.BlockingResolver)
    finally:
        netutil.Resolver._restore_configuration(saved)
    assert netutil.Resolver.configured_class() is netutil.DefaultLoopResolver


def test_base_resolve_is_abstract() -> None:
    class Half(netutil.Resolver):
        pass

    with pytest.raises(NotImplementedError):
        Half().resolve("localhost", 80)


@pytest.mark.parametrize(
    "make",
    [
        netutil.DefaultLoopResolver,
        netutil.DefaultExecutorResolver,
        netutil.BlockingResolver,
        netutil.ThreadedResolver,
    ],
)
def test_resolvers_resolve_and_fail(make: Callable[[], netutil.Resolver]) -> None:
    async def main() -> None:
        resolver = make()
        try:
            v6 = await resolver.resolve("::1", 443, socket.AF_INET6)
            assert v6 == [(socket.AF_INET6, ("::1", 443, 0, 0))]
            local = await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
            assert (socket.AF_INET, ("127.0.0.1", 80)) in local or (
                socket.AF_INET6,
                ("::1", 80, 0, 0),
            ) in local
            real = socket.getaddrinfo
            socket.getaddrinfo = _failing_getaddrinfo
            try:
                with pytest.raises(OSError):
                    await resolver.resolve("an invalid domain", 80)
            finally:
                socket.getaddrinfo = real
        finally:
            resolver.close()

    run(main)


def test_threaded_resolver_shares_pool_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    a = netutil.ThreadedResolver()
    b = netutil.ThreadedResolver(num_threads=3)
    assert a.executor is b.executor is netutil.ThreadedResolver._threadpool
    assert not a.close_executor
    # After a fork the inherited pool has no threads: a new one is made.
    monkeypatch.setattr(netutil.ThreadedResolver, "_threadpool_pid", -1)
    c = netutil.ThreadedResolver()
    assert c.executor is not a.executor
    for r in (a, b, c):
        r.close()
        assert r.executor is None
    assert c.executor is None
    pool = netutil.ThreadedResolver._threadpool
    assert pool is not None
    pool.shutdown(wait=True)
    netutil.ThreadedResolver._threadpool = None


def test_executor_resolver_owns_its_executor() -> None:
    async def main() -> None:
        pool = concurrent.futures.ThreadPoolExecutor(1)
        resolver = netutil.ExecutorResolver(executor=pool)
        assert await resolver.resolve("127.0.0.1", 1) == [(socket.AF_INET, ("127.0.0.1", 1))]
        resolver.close()
        with pytest.raises(RuntimeError):
            pool.submit(print)
        with pytest.raises(RuntimeError, match="closed"):
            resolver.resolve("127.0.0.1", 1)

        kept = concurrent.futures.ThreadPoolExecutor(1)
        borrowed = netutil.ExecutorResolver(executor=kept, close_executor=False)
        borrowed.close()
        assert kept.submit(int, "4").result(timeout=LIMIT) == 4
        kept.shutdown()

    run(main)


class _RecordingResolver(netutil.Resolver):
    def initialize(self) -> None:
        self.closed = False

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        return [(family, (host, port))]

    def close(self) -> None:
        self.closed = True


def test_override_resolver() -> None:
    async def main() -> None:
        inner = _RecordingResolver()
        mapping = {
            ("a.example", 80, socket.AF_INET6): ("::1", 8080),
            ("a.example", 80): ("127.0.0.2", 8000),
            "b.example": "127.0.0.3",
        }
        r = netutil.OverrideResolver(resolver=inner, mapping=mapping)
        assert r.resolver is inner and r.mapping is mapping
        inet6 = socket.AF_INET6
        assert await r.resolve("a.example", 80, inet6) == [(inet6, ("::1", 8080))]
        assert await r.resolve("a.example", 80) == [(socket.AF_UNSPEC, ("127.0.0.2", 8000))]
        assert await r.resolve("b.example", 81) == [(socket.AF_UNSPEC, ("127.0.0.3", 81))]
        assert await r.resolve("c.example", 82) == [(socket.AF_UNSPEC, ("c.example", 82))]
        r.close()
        assert inner.closed

    run(main)


# -- TLS ---------------------------------------------------------------------------


def test_ssl_context_passes_through() -> None:
    ctx = ssl.create_default_context()
    assert netutil.ssl_options_to_context(ctx) is ctx
    assert netutil.ssl_options_to_context(ctx, server_side=True) is ctx


def test_ssl_options_bad_input() -> None:
    with pytest.raises(ValueError, match="'certfle'"):
        netutil.ssl_options_to_context({"certfle": CERTFILE})
    with pytest.raises(TypeError, match="list"):
        netutil.ssl_options_to_context([])  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        netutil.ssl_options_to_context({"certfile": "/nonexistent.crt"})


def test_ssl_options_server_context() -> None:
    ctx = netutil.ssl_options_to_context(
        {"certfile": CERTFILE, "keyfile": KEYFILE, "ciphers": "HIGH"}, server_side=True
    )
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    assert ctx.options & ssl.OP_NO_COMPRESSION


def test_ssl_options_client_contexts() -> None:
    ctx = netutil.ssl_options_to_context({"ca_certs": CERTFILE}, server_side=False)
    assert ctx.protocol == ssl.PROTOCOL_TLS_CLIENT
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert ctx.cert_store_stats()["x509"] == 1
    lax = netutil.ssl_options_to_context({"cert_reqs": ssl.CERT_NONE}, server_side=False)
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    optional = netutil.ssl_options_to_context({"cert_reqs": ssl.CERT_OPTIONAL}, server_side=False)
    assert optional.verify_mode == ssl.CERT_OPTIONAL


def test_ssl_options_either_side_and_explicit_version() -> None:
    # No side given: the generic protocol, with no deprecation warning escaping.
    ctx = netutil.ssl_options_to_context({})
    assert ctx.protocol == ssl.PROTOCOL_TLS
    assert ctx.verify_mode == ssl.CERT_NONE
    explicit = netutil.ssl_options_to_context(
        {"ssl_version": ssl.PROTOCOL_TLS_CLIENT}, server_side=True
    )
    assert explicit.protocol == ssl.PROTOCOL_TLS_CLIENT


def _handshake(a: ssl.SSLSocket, b: ssl.SSLSocket) -> None:
    """Drives both ends of a non-blocking handshake until it completes."""
    pending = {a, b}
    for _ in range(100):
        for s in list(pending):
            try:
                s.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            pending.discard(s)
        if not pending:
            return
    raise AssertionError("handshake did not complete")


def test_ssl_wrap_socket_handshake() -> None:
    left, right = socket.socketpair()
    left.setblocking(False)
    right.setblocking(False)
    server = netutil.ssl_wrap_socket(
        left,
        {"certfile": CERTFILE, "keyfile": KEYFILE},
        server_side=True,
        do_handshake_on_connect=False,
    )
    client_ctx = ssl.create_default_context(cafile=CERTFILE)
    client = netutil.ssl_wrap_socket(
        right, client_ctx, server_hostname="localhost", do_handshake_on_connect=False
    )
    try:
        assert server.server_side and not client.server_side
        _handshake(server, client)
        assert client.getpeercert()["subject"] == ((("commonName", "localhost"),),)
        client.sendall(b"ping")
        for _ in range(100):
            try:
                assert server.recv(4) == b"ping"
                break
            except ssl.SSLWantReadError:
                continue
    finally:
        server.close()
        client.close()


def test_ioloop_current_used_by_accept_handler() -> None:
    async def main() -> None:
        [listener] = netutil.bind_sockets(0, "127.0.0.1")
        try:
            remove = netutil.add_accept_handler(listener, lambda c, a: c.close())
            remove()
            # Removal unregistered the fd: it can be registered again.
            IOLoop.current().add_handler(listener, lambda fd, ev: None, IOLoop.READ)
            IOLoop.current().remove_handler(listener)
        finally:
            listener.close()

    run(main)


@pytest.mark.parametrize(
    ("host", "family"),
    [
        ("127.0.0.1", socket.AF_UNSPEC),
        ("127.0.0.1", socket.AF_INET),
        ("::1", socket.AF_UNSPEC),
        ("::1", socket.AF_INET6),
        ("localhost", socket.AF_INET),
    ],
)
def test_default_resolver_answers_like_getaddrinfo(host: str, family: socket.AddressFamily) -> None:
    expected = [
        (fam, addr)
        for fam, _t, _p, _c, addr in socket.getaddrinfo(host, 80, family, socket.SOCK_STREAM)
    ]

    async def main() -> list[tuple[int, object]]:
        return await netutil.DefaultLoopResolver().resolve(host, 80, family)

    assert asyncio.run(main()) == expected


def test_ip_literal_needs_no_lookup_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> list[tuple[int, object]]:
        loop = asyncio.get_running_loop()

        def refuse(*args: object, **kwargs: object) -> None:
            raise AssertionError("getaddrinfo was called for an IP literal")

        monkeypatch.setattr(loop, "getaddrinfo", refuse)
        return await netutil.DefaultLoopResolver().resolve("10.1.2.3", 8080)

    assert asyncio.run(main()) == [(socket.AF_INET, ("10.1.2.3", 8080))]


@pytest.mark.parametrize("port", ["8080", "http"])
def test_ip_literal_with_a_port_as_text_gets_the_port_number(port: str) -> None:
    # As getaddrinfo answers: the address carries the number, whatever the
    # resolver (the IP-literal shortcut included).
    number = socket.getservbyname(port) if not port.isdigit() else int(port)

    async def main() -> list[list[tuple[int, object]]]:
        return [
            await make().resolve("10.1.2.3", port)  # type: ignore[arg-type]
            for make in (netutil.DefaultLoopResolver, netutil.DefaultExecutorResolver)
        ]

    for answer in asyncio.run(main()):
        assert answer == [(socket.AF_INET, ("10.1.2.3", number))]


@pytest.mark.parametrize(
    ("host", "port"), [("127.0.0.1", -1), ("127.0.0.1", 70000), (b"127.0.0.1", 80)]
)
def test_ip_literal_with_odd_arguments_is_answered_as_getaddrinfo_answers(
    host: Any, port: int
) -> None:
    # Not taken as given: a port out of range or a host as bytes is left to
    # getaddrinfo, which fails or answers in its own way.
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM)
    except OSError as e:
        expected: Any = type(e)
    else:
        expected = [(fam, addr) for fam, _t, _p, _c, addr in infos]

    async def main() -> Any:
        try:
            return await netutil.DefaultLoopResolver().resolve(host, port)
        except OSError as e:
            return type(e)

    assert asyncio.run(main()) == expected


@pytest.mark.parametrize(
    "host", ["0:0:0:0:0:0:0:1", "::0001", "::FFFF:1.2.3.4", "2001:DB8::1", "127.0.0.1\x00"]
)
def test_ip_literal_comes_back_as_getaddrinfo_spells_it(host: str) -> None:
    # The IP-literal shortcut must not show through: an IPv6 address in a
    # long or upper-case spelling comes back in the short lower-case one,
    # and a host with a NUL is read up to the NUL, as getaddrinfo does
    # (and as every other resolver does, since they all call it).
    expected = [
        (fam, addr)
        for fam, _t, _p, _c, addr in socket.getaddrinfo(
            host, 80, socket.AF_UNSPEC, socket.SOCK_STREAM
        )
    ]

    async def main() -> list[tuple[int, object]]:
        return await netutil.DefaultLoopResolver().resolve(host, 80)

    assert asyncio.run(main()) == expected
