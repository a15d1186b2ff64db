"""squall.platform.twisted: Deferreds in coroutines, TwistedResolver, install()."""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import squall.compat
from squall import gen
from squall.ioloop import IOLoop
from tests._dns import DNSResponder
from tests._wait import HANG_GUARD

pytest.importorskip("twisted", reason="Twisted not installed (pip install squall[twisted])")

from twisted.internet import defer  # noqa: E402
from twisted.names import hosts, resolve  # noqa: E402

from squall.platform.twisted import TwistedResolver  # noqa: E402

TIMEOUT = HANG_GUARD  # a hang guard, not a measure of speed


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    loop = IOLoop(make_current=False)
    yield loop
    loop.close(all_fds=False)


def test_coroutine_yields_a_deferred(io_loop: IOLoop) -> None:
    @gen.coroutine
    def twice() -> Any:
        first = yield defer.succeed(20)
        # A Deferred that fires later, from the loop.
        later: defer.Deferred[int] = defer.Deferred()
        io_loop.add_callback(later.callback, 22)
        second = yield later
        return first + second

    assert io_loop.run_sync(twice, timeout=TIMEOUT) == 42


def test_deferred_failure_raises_its_exception(io_loop: IOLoop) -> None:
    @defer.inlineCallbacks
    def failing() -> Any:
        yield defer.succeed(None)
        raise ZeroDivisionError("from twisted")

    @gen.coroutine
    def caller() -> Any:
        yield failing()

    with pytest.raises(ZeroDivisionError, match="from twisted"):
        io_loop.run_sync(caller, timeout=TIMEOUT)


async def _make() -> TwistedResolver:
    return TwistedResolver()


def test_resolver_reads_the_hosts_file(io_loop: IOLoop) -> None:
    resolver = io_loop.run_sync(_make)
    found = io_loop.run_sync(lambda: resolver.resolve("localhost", 80), timeout=TIMEOUT)
    assert found in ([(socket.AF_INET, ("127.0.0.1", 80))], [(socket.AF_INET6, ("::1", 80))])


def test_resolver_ip_literals_and_family(io_loop: IOLoop) -> None:
    resolver = io_loop.run_sync(_make)
    assert io_loop.run_sync(lambda: resolver.resolve("10.1.2.3", 5)) == [
        (socket.AF_INET, ("10.1.2.3", 5))
    ]
    assert io_loop.run_sync(lambda: resolver.resolve("::1", 6)) == [(socket.AF_INET6, ("::1", 6))]
    with pytest.raises(OSError, match="requested socket family"):
        io_loop.run_sync(lambda: resolver.resolve("::1", 6, socket.AF_INET))


def test_resolver_unknown_name_is_an_oserror(io_loop: IOLoop) -> None:
    resolver = io_loop.run_sync(_make)
    # Only the hosts file: no DNS server is asked, so the answer is immediate.
    resolver.resolver = resolve.ResolverChain([hosts.Resolver("/etc/hosts")])
    with pytest.raises(OSError, match=r"cannot resolve 'no-such-host\.invalid'"):
        io_loop.run_sync(lambda: resolver.resolve("no-such-host.invalid", 80), timeout=TIMEOUT)


def test_install_sets_the_asyncio_reactor(monkeypatch: pytest.MonkeyPatch) -> None:
    import twisted.internet.asyncioreactor as asyncioreactor

    from squall.platform import twisted as bridge

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(asyncioreactor, "install", lambda *a: calls.append(a))
    bridge.install()
    assert calls == [()]


def test_missing_twisted_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "twisted.internet.asyncioreactor", None)
    monkeypatch.delitem(sys.modules, "squall.platform.twisted")
    with pytest.raises(ImportError, match=r"pip install squall\[twisted\]"):
        importlib.import_module("squall.platform.twisted")


def test_tornado_name_maps_here() -> None:
    squall.compat.install()
    try:
        module = importlib.import_module("tornado.platform.twisted")
        assert module.TwistedResolver is TwistedResolver
    finally:
        squall.compat.uninstall()


def test_resolver_asks_dns_servers(io_loop: IOLoop) -> None:
    from twisted.names import client

    async def main() -> None:
        server, port = await DNSResponder.start({"svc.test": ["10.0.0.5", "fd00::5"]})
        resolver = TwistedResolver()
        resolver.resolver = client.Resolver(
            servers=[("127.0.0.1", port)], reactor=resolver.reactor, timeout=(1,)
        )
        try:
            # At most one address, of either family, without a family asked for.
            assert await resolver.resolve("svc.test", 80) in (
                [(socket.AF_INET, ("10.0.0.5", 80))],
                [(socket.AF_INET6, ("fd00::5", 80))],
            )
            assert await resolver.resolve("svc.test", 80, socket.AF_INET) == [
                (socket.AF_INET, ("10.0.0.5", 80))
            ]
            assert await resolver.resolve("svc.test", 80, socket.AF_INET6) == [
                (socket.AF_INET6, ("fd00::5", 80))
            ]
            with pytest.raises(OSError, match="cannot resolve 'gone.test'"):
                await resolver.resolve("gone.test", 80)
            with pytest.raises(OSError, match="cannot resolve 'gone.test'"):
                await resolver.resolve("gone.test", 80, socket.AF_INET)
        finally:
            server.close()

    io_loop.run_sync(main, timeout=TIMEOUT)


def test_resolver_timeout_is_an_oserror(io_loop: IOLoop) -> None:
    from twisted.names import client

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))

    async def main() -> None:
        resolver = TwistedResolver()
        resolver.resolver = client.Resolver(
            servers=[silent.getsockname()], reactor=resolver.reactor, timeout=(0.05,)
        )
        with pytest.raises(OSError, match="timed out resolving 'svc.test'"):
            await resolver.resolve("svc.test", 80, socket.AF_INET)

    try:
        io_loop.run_sync(main, timeout=TIMEOUT)
    finally:
        silent.close()
