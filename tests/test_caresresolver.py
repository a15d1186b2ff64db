"""squall.platform.caresresolver: c-ares lookups driven by the IOLoop."""

from __future__ import annotations

import importlib
import socket
import sys
from collections.abc import Iterator
from typing import Any

import pytest

import squall.compat
from squall.ioloop import IOLoop
from tests._dns import DNSResponder
from tests._wait import HANG_GUARD

pycares = pytest.importorskip("pycares", reason="pycares not installed (pip install squall[cares])")

from squall.platform.caresresolver import CaresResolver  # noqa: E402

TIMEOUT = HANG_GUARD  # a hang guard, not a measure of speed


async def _make() -> CaresResolver:
    # Made inside the loop, so that it watches its sockets on that IOLoop.
    return CaresResolver()


@pytest.fixture
def resolver() -> Iterator[CaresResolver]:
    loop = IOLoop(make_current=False)
    try:
        made = loop.run_sync(_make)
        yield made
        made.close()
    finally:
        loop.close(all_fds=False)


def run(resolver: CaresResolver, host: str, port: int, family: int = socket.AF_UNSPEC) -> object:
    return resolver.io_loop.run_sync(
        lambda: resolver.resolve(host, port, socket.AddressFamily(family)), timeout=TIMEOUT
    )


def test_localhost_comes_from_the_hosts_file(resolver: CaresResolver) -> None:
    found = run(resolver, "localhost", 80)
    assert (socket.AF_INET, ("127.0.0.1", 80)) in found or (
        socket.AF_INET6,
        ("::1", 80),
    ) in found, found


def test_family_filter(resolver: CaresResolver) -> None:
    found = run(resolver, "localhost", 443, socket.AF_INET)
    assert found == [(socket.AF_INET, ("127.0.0.1", 443))]


def test_ip_literals_need_no_lookup(resolver: CaresResolver) -> None:
    assert run(resolver, "127.0.0.7", 1) == [(socket.AF_INET, ("127.0.0.7", 1))]
    assert run(resolver, "::1", 2) == [(socket.AF_INET6, ("::1", 2))]
    with pytest.raises(OSError, match="requested socket family"):
        run(resolver, "::1", 2, socket.AF_INET)


def test_unknown_name_is_an_oserror_naming_it(resolver: CaresResolver) -> None:
    # RFC 6761 §6.4: ".invalid" never resolves, and c-ares answers it locally.
    with pytest.raises(OSError, match=r"C-Ares returned error .* no-such-host\.invalid"):
        run(resolver, "no-such-host.invalid", 80)


def test_configured_as_the_resolver(resolver: CaresResolver) -> None:
    from squall.netutil import Resolver

    Resolver.configure("squall.platform.caresresolver.CaresResolver")
    try:
        other = Resolver()
        assert isinstance(other, CaresResolver)
        other.close()
    finally:
        Resolver.configure(None)


def test_missing_pycares_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycares", None)
    monkeypatch.delitem(sys.modules, "squall.platform.caresresolver")
    with pytest.raises(ImportError, match=r"pip install squall\[cares\]"):
        importlib.import_module("squall.platform.caresresolver")


def test_tornado_name_maps_here() -> None:
    squall.compat.install()
    try:
        module = importlib.import_module("tornado.platform.caresresolver")
        assert module.CaresResolver is CaresResolver
    finally:
        squall.compat.uninstall()


TABLE = {"svc.test": ["10.0.0.5", "fd00::5"], "v4only.test": ["10.0.0.6"]}


async def _dns_resolver(port: int, **options: Any) -> CaresResolver:
    resolver = CaresResolver()
    resolver.channel.close()
    # DNS only (no hosts file), from our responder.
    resolver.channel = pycares.Channel(
        sock_state_cb=resolver._sock_state_cb,
        servers=["127.0.0.1"],
        udp_port=port,
        tcp_port=port,
        lookups="b",
        **options,
    )
    return resolver


def test_lookup_through_the_channel_sockets() -> None:
    async def main() -> None:
        server, port = await DNSResponder.start(TABLE)
        resolver = await _dns_resolver(port)
        try:
            found = await resolver.resolve("svc.test", 443)
            assert sorted(found) == sorted(
                [(socket.AF_INET, ("10.0.0.5", 443)), (socket.AF_INET6, ("fd00::5", 443))]
            )
            assert await resolver.resolve("svc.test", 1, socket.AF_INET6) == [
                (socket.AF_INET6, ("fd00::5", 1))
            ]
            assert ("svc.test", 1) in server.questions
            with pytest.raises(OSError, match="while resolving nothing.test"):
                await resolver.resolve("nothing.test", 80)
        finally:
            resolver.close()
            server.close()

    IOLoop(make_current=False).run_sync(main, timeout=TIMEOUT)


def test_unanswered_lookup_times_out_on_cares_clock() -> None:
    async def main() -> None:
        silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        silent.bind(("127.0.0.1", 0))
        try:
            resolver = await _dns_resolver(silent.getsockname()[1], timeout=0.05, tries=1)
            with pytest.raises(OSError, match="C-Ares returned error"):
                await resolver.resolve("svc.test", 80)
            resolver.close()
        finally:
            silent.close()

    IOLoop(make_current=False).run_sync(main, timeout=TIMEOUT)
