"""TCPClient: the Happy Eyeballs race (with fake attempts), and real connects over loopback."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import socket
import ssl
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Optional, TypeVar

import pytest

from squall.concurrent import Future
from squall.iostream import IOStream, SSLIOStream, StreamClosedError
from squall.netutil import Resolver, bind_sockets
from squall.tcpclient import _INITIAL_CONNECT_TIMEOUT, TCPClient, _Connector, _format_addr
from squall.tcpserver import TCPServer
from tests._paths import CERTS
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

CERTFILE = str(CERTS / "test.crt")
KEYFILE = str(CERTS / "test.key")

# Every wait is bounded so that a bug fails the test instead of hanging it.
LIMIT = HANG_GUARD  # a hang guard, not a measure of speed

# Stand-ins for two address families, so the race is tested without IPv6.
FAM_A, FAM_B = 101, 102


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


async def turn() -> None:
    """Lets the done-callbacks scheduled so far run (one loop iteration)."""
    await asyncio.sleep(0)


# -- _format_addr and split ------------------------------------------------------------


@pytest.mark.parametrize(
    ("addr", "text"),
    [
        (("10.0.0.1", 80), "10.0.0.1:80"),
        (("fe80::1", 8080, 0, 3), "[fe80::1]:8080"),
        (("example.com", 443), "example.com:443"),
        ("/run/app.sock", "/run/app.sock"),
        (("lonely",), "('lonely',)"),
    ],
)
def test_format_addr(addr: Any, text: str) -> None:
    assert _format_addr(addr) == text


def test_split_keeps_order_within_each_family() -> None:
    infos = [(FAM_B, "x"), (FAM_A, "y"), (FAM_B, "z"), (FAM_A, "w")]
    assert _Connector.split(infos) == ([(FAM_B, "x"), (FAM_B, "z")], [(FAM_A, "y"), (FAM_A, "w")])


def test_split_of_one_family_and_of_nothing() -> None:
    assert _Connector.split([(FAM_A, "x")]) == ([(FAM_A, "x")], [])
    assert _Connector.split([]) == ([], [])


# -- the race, with fake attempts ----------------------------------------------------------


class FakeStream:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Attempts:
    """A connect function whose attempts the test finishes by hand."""

    def __init__(self, fail_at_once: tuple[str, ...] = ()) -> None:
        self.fail_at_once = set(fail_at_once)
        self.futures: dict[str, Future[FakeStream]] = {}
        self.streams: dict[str, FakeStream] = {}
        self.order: list[str] = []

    def __call__(self, af: int, addr: str) -> tuple[FakeStream, Future[FakeStream]]:
        self.order.append(addr)
        if addr in self.fail_at_once:
            raise OSError(f"cannot even try {addr}")
        stream = self.streams[addr] = FakeStream(addr)
        future: Future[FakeStream] = Future()
        self.futures[addr] = future
        return stream, future

    def pending(self) -> set[str]:
        return {addr for addr, future in self.futures.items() if not future.done()}

    async def succeed(self, addr: str) -> None:
        self.futures[addr].set_result(self.streams[addr])
        await turn()

    async def fail(self, addr: str, error: Optional[BaseException] = None) -> None:
        self.futures[addr].set_exception(error or ConnectionRefusedError(addr))
        await turn()

    async def cancel(self, addr: str) -> None:
        self.futures[addr].cancel()
        await turn()


TWO_FAMILIES = [(FAM_A, "a1"), (FAM_A, "a2"), (FAM_B, "b1"), (FAM_B, "b2")]


def start(
    attempts: Attempts, infos: list[tuple[int, str]] = TWO_FAMILIES
) -> tuple[_Connector, Future[Any]]:
    connector = _Connector(infos, attempts)
    # Timers far away: the tests fire them by hand.
    future = connector.start(3600, connect_timeout=datetime.timedelta(hours=1))
    return connector, future


def test_first_address_wins() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        assert attempts.pending() == {"a1"}
        await attempts.succeed("a1")
        assert future.result() == (FAM_A, "a1", attempts.streams["a1"])
        assert not attempts.streams["a1"].closed
        assert connector.streams == set()

    run(main())


def test_failure_tries_next_address_and_starts_other_family_at_once() -> None:
    async def main() -> None:
        attempts = Attempts()
        _, future = start(attempts)
        await attempts.fail("a1")
        assert attempts.pending() == {"a2", "b1"}
        await attempts.succeed("b1")
        assert future.result()[1] == "b1"
        # The loser is closed when the winner is known.
        assert attempts.streams["a2"].closed
        assert attempts.streams["a1"].closed

    run(main())


def test_delay_starts_other_family_and_late_winner_is_closed() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        connector.on_timeout()
        assert attempts.pending() == {"a1", "b1"}
        await attempts.succeed("a1")
        assert future.result()[1] == "a1"
        assert attempts.streams["b1"].closed
        # b1 connecting anyway is closed and changes nothing.
        attempts.streams["b1"].closed = False
        await attempts.succeed("b1")
        assert attempts.streams["b1"].closed
        assert future.result()[1] == "a1"

    run(main())


def test_failure_after_the_race_is_won_starts_nothing() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        connector.on_timeout()
        await attempts.succeed("b1")
        await attempts.fail("a1")
        assert attempts.pending() == set()
        assert "a2" not in attempts.order
        assert future.result()[1] == "b1"

    run(main())


def test_delay_with_one_family_does_nothing() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts, [(FAM_A, "a1"), (FAM_A, "a2")])
        connector.on_timeout()
        assert attempts.pending() == {"a1"}
        await attempts.fail("a1")
        await attempts.fail("a2")
        with pytest.raises(ConnectionRefusedError, match="a2"):
            future.result()

    run(main())


def test_every_failure_fails_with_the_last_error() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        connector.on_timeout()
        await attempts.fail("b1")
        await attempts.fail("b2")
        assert attempts.pending() == {"a1"}
        await attempts.fail("a1")
        assert not future.done()
        await attempts.fail("a2", OSError("the very last"))
        with pytest.raises(OSError, match="the very last"):
            future.result()

    run(main())


def test_synchronous_failures_count_as_failed_attempts() -> None:
    async def main() -> None:
        attempts = Attempts(fail_at_once=("a1", "a2"))
        _, future = start(attempts)
        # The whole primary family failed at once: the other one started.
        assert attempts.pending() == {"b1"}
        await attempts.succeed("b1")
        assert future.result()[1] == "b1"

    run(main())


def test_synchronous_failures_everywhere_fail_at_once() -> None:
    attempts = Attempts(fail_at_once=("a1", "a2", "b1", "b2"))

    async def main() -> None:
        _, future = start(attempts)
        assert future.done()
        with pytest.raises(OSError, match="cannot even try"):
            future.result()

    run(main())
    assert sorted(attempts.order) == ["a1", "a2", "b1", "b2"]


def test_synchronous_failure_while_moving_on() -> None:
    async def main() -> None:
        attempts = Attempts(fail_at_once=("a2", "b1", "b2"))
        _, future = start(attempts)
        await attempts.fail("a1")
        with pytest.raises(OSError, match="cannot even try"):
            future.result()

    run(main())


def test_no_addresses() -> None:
    async def main() -> None:
        _, future = start(Attempts(), [])
        with pytest.raises(OSError, match="No addresses"):
            future.result()

    run(main())


def test_cancelled_attempt_is_a_failure_and_is_closed() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts, [(FAM_A, "a1"), (FAM_B, "b1")])
        connector.on_timeout()
        await attempts.cancel("a1")
        assert attempts.streams["a1"].closed
        assert not future.done()
        await attempts.cancel("b1")
        error = future.exception()
        assert isinstance(error, OSError)
        assert not isinstance(error, asyncio.CancelledError)
        assert "b1" in str(error) and "cancelled" in str(error)

    run(main())


def test_cancelling_the_race_closes_every_stream() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        connector.on_timeout()
        future.cancel()
        await turn()
        assert attempts.streams["a1"].closed and attempts.streams["b1"].closed

    run(main())


def test_a_caller_cancelled_as_the_race_is_won_closes_the_winner() -> None:
    # The caller's own deadline (a request timeout) fires in the loop
    # iteration that connected: the race's future holds the winner, the
    # caller never takes it, and nobody else would close it (seen as an
    # unclosed socket's ResourceWarning under load).
    async def main() -> None:
        attempts = Attempts()
        connector = _Connector([(FAM_A, "a1")], attempts)
        caller = asyncio.ensure_future(connector.winner())
        await turn()
        attempts.futures["a1"].set_result(attempts.streams["a1"])
        # One turn: the attempt's callback sets the race's result, and the
        # caller's wake-up is queued behind this task's.
        await turn()
        assert connector.future.done() and not caller.done()
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert attempts.streams["a1"].closed

    run(main())


def test_a_caller_of_winner_gets_it_open() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector = _Connector([(FAM_A, "a1")], attempts)
        caller = asyncio.ensure_future(connector.winner())
        await turn()
        await attempts.succeed("a1")
        assert await caller == (FAM_A, "a1", attempts.streams["a1"])
        assert not attempts.streams["a1"].closed

    run(main())


def test_connect_timeout_names_attempts_in_flight() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts)
        await attempts.fail("a1")
        connector.on_connect_timeout()
        with pytest.raises(TimeoutError) as info:
            future.result()
        # a1 had failed already: not in flight.
        assert str(info.value) == "Timeout while connecting to a2, b1"
        assert attempts.streams["a2"].closed and attempts.streams["b1"].closed
        # The delay firing later starts nothing more.
        connector.on_timeout()
        assert sorted(attempts.order) == ["a1", "a2", "b1"]

    run(main())


def test_connect_timeout_after_the_race_closes_only_losers() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector, future = start(attempts, [(FAM_A, "a1")])
        await attempts.succeed("a1")
        connector.on_connect_timeout()
        assert future.result()[1] == "a1"
        assert not attempts.streams["a1"].closed

    run(main())


def test_connect_timeout_with_nothing_in_flight() -> None:
    async def main() -> None:
        connector = _Connector([(FAM_A, "a1")], Attempts())
        connector.on_connect_timeout()
        with pytest.raises(TimeoutError, match="^Timeout while connecting$"):
            connector.future.result()

    run(main())


def test_timers_fire_by_themselves() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector = _Connector(TWO_FAMILIES, attempts)
        loop_time = connector.io_loop.time()
        future = connector.start(0.01, connect_timeout=loop_time + 0.05)
        with pytest.raises(TimeoutError, match="a1, b1"):
            await future
        # The secondary family had been started by the short delay.
        assert attempts.order == ["a1", "b1"]

    run(main())


def test_timers_are_removed_when_the_race_ends() -> None:
    async def main() -> None:
        attempts = Attempts()
        connector = _Connector(TWO_FAMILIES, attempts)
        future = connector.start(0.01, connect_timeout=connector.io_loop.time() + 0.02)
        await attempts.succeed("a1")
        await turn()
        assert future.result()[1] == "a1"
        assert connector._delay_handle is None and connector._deadline_handle is None

    run(main())


def test_initial_connect_timeout_follows_rfc_8305() -> None:
    assert 0.1 <= _INITIAL_CONNECT_TIMEOUT <= 0.5


# -- real connections ----------------------------------------------------------------


class QueueServer(TCPServer):
    """Hands each accepted stream to the test."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.accepted: asyncio.Queue[IOStream] = asyncio.Queue()
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self.add_sockets(sockets)

        self.streams: list[IOStream] = []

    def handle_stream(self, stream: IOStream, address: Any) -> None:
        self.streams.append(stream)
        self.accepted.put_nowait(stream)

    def stop(self) -> None:
        super().stop()
        for stream in self.streams:
            stream.close()


@contextlib.asynccontextmanager
async def served(**server_options: Any) -> AsyncIterator[tuple[QueueServer, TCPClient]]:
    """A listening `QueueServer` and a `TCPClient`, both closed after."""
    server = QueueServer(**server_options)
    client = TCPClient()
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


def server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTFILE, KEYFILE)
    return context


def verifying_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(CERTFILE)
    return context


class StaticResolver(Resolver):
    """Answers every lookup with fixed addresses (or a given awaitable)."""

    def initialize(self, answer: Any) -> None:
        self.answer = answer
        self.closed = False
        self.calls: list[tuple[str, int, int]] = []

    def resolve(self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC) -> Any:
        self.calls.append((host, port, family))
        return self.answer

    def close(self) -> None:
        self.closed = True


async def exchange(client: IOStream, server: IOStream) -> None:
    await client.write(b"ping")
    assert await server.read_bytes(4) == b"ping"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_connect(host: str) -> None:
    async def main() -> None:
        async with served() as (server, client):
            stream = await client.connect(host, server.port, af=socket.AF_INET)
            assert type(stream) is IOStream
            await exchange(stream, await server.accepted.get())
            stream.close()

    run(main())


def test_connect_to_an_ip_literal_with_the_port_as_a_string() -> None:
    # getaddrinfo takes the port as text and gives it back as a number; an
    # IP literal answered without it must do the same, or connect() gets
    # ("127.0.0.1", "8080") and fails with TypeError.
    async def main() -> None:
        async with served() as (server, client):
            stream = await client.connect("127.0.0.1", str(server.port))  # type: ignore[arg-type]
            await exchange(stream, await server.accepted.get())
            stream.close()
            with pytest.raises(OSError):
                await client.connect("127.0.0.1", "no-such-service")  # type: ignore[arg-type]

    run(main())


def test_connect_from_source_ip_and_port() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free_port = probe.getsockname()[1]
        async with served() as (server, client):
            stream = await client.connect("127.0.0.1", server.port, source_ip="127.0.0.1")
            assert stream.socket.getsockname()[0] == "127.0.0.1"
            stream.close()
            stream = await client.connect("127.0.0.1", server.port, source_port=free_port)
            assert stream.socket.getsockname()[1] == free_port
            stream.close()

    run(main())


def test_unusable_source_ip_fails_with_the_bind_error() -> None:
    async def main() -> None:
        async with served() as (server, client):
            with pytest.raises(OSError) as info:
                await client.connect("127.0.0.1", server.port, source_ip="192.0.2.77")
            assert not isinstance(info.value, StreamClosedError)

    run(main())


def test_refused_connection_raises() -> None:
    async def main() -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            # Bound but not listening: connections are refused.
            with pytest.raises(OSError):
                await TCPClient().connect("127.0.0.1", port)

    run(main())


def test_connect_with_tls_checks_the_host_name() -> None:
    async def main() -> None:
        async with served(ssl_options=server_context()) as (server, client):
            stream = await client.connect("localhost", server.port, ssl_options=verifying_context())
            assert isinstance(stream, SSLIOStream)
            await exchange(stream, await server.accepted.get())
            stream.close()

    run(main())


def test_tls_handshake_timeout_closes_the_connection() -> None:
    async def main() -> None:
        server = QueueServer()  # plain TCP: never answers the handshake
        client = TCPClient()
        try:
            with pytest.raises(TimeoutError) as info:
                await client.connect(
                    "127.0.0.1", server.port, ssl_options=verifying_context(), timeout=0.2
                )
            assert str(info.value) == f"Timeout during TLS handshake with 127.0.0.1:{server.port}"
            accepted = await server.accepted.get()
            # Completes only because the client closed its end.
            await accepted.read_until_close()
        finally:
            client.close()
            server.stop()

    run(main())


@pytest.mark.parametrize("timeout", [None, 3600.0])
def test_cancelling_during_tls_handshake_closes_the_connection(timeout: Optional[float]) -> None:
    async def main() -> None:
        async with served() as (server, client):
            connecting = asyncio.ensure_future(
                client.connect(
                    "127.0.0.1", server.port, ssl_options=verifying_context(), timeout=timeout
                )
            )
            accepted = await server.accepted.get()
            await accepted.read_bytes(1, partial=True)  # the ClientHello has started
            connecting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await connecting
            await accepted.read_until_close()

    run(main())


def test_resolve_timeout_cancels_the_lookup() -> None:
    async def main() -> None:
        lookup: Future[Any] = Future()
        client = TCPClient(resolver=StaticResolver(lookup))
        with pytest.raises(TimeoutError, match="^Timeout while resolving example.com$"):
            await client.connect("example.com", 80, timeout=datetime.timedelta(milliseconds=20))
        assert lookup.cancelled()

    run(main())


def test_connect_timeout_while_connecting() -> None:
    class HangingClient(TCPClient):
        def _create_stream(self, *args: Any, **kwargs: Any) -> tuple[IOStream, Future[IOStream]]:
            return IOStream(socket.socket()), Future()

    async def main() -> None:
        resolver = StaticResolver(_done([(socket.AF_INET, ("192.0.2.1", 443))]))
        with pytest.raises(TimeoutError, match=r"^Timeout while connecting to 192\.0\.2\.1:443$"):
            await HangingClient(resolver=resolver).connect("example.com", 443, timeout=0.05)

    run(main())


def test_resolver_may_answer_with_a_concurrent_future() -> None:
    async def main() -> None:
        server = QueueServer()
        answer: concurrent.futures.Future[Any] = concurrent.futures.Future()
        answer.set_result([(socket.AF_INET, ("127.0.0.1", server.port))])
        resolver = StaticResolver(answer)
        try:
            stream = await TCPClient(resolver=resolver).connect("anything", server.port)
            assert resolver.calls == [("anything", server.port, socket.AF_UNSPEC)]
            stream.close()
        finally:
            server.stop()

    run(main())


def test_bad_timeout_is_a_type_error() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="Unsupported timeout '5'"):
            await TCPClient().connect("127.0.0.1", 1, timeout="5")  # type: ignore[arg-type]

    run(main())


def test_close_closes_only_a_resolver_it_made() -> None:
    given = StaticResolver([])
    TCPClient(resolver=given).close()
    assert not given.closed

    async def main() -> None:
        client = TCPClient()
        closed: list[bool] = []
        client.resolver.close = lambda: closed.append(True)
        client.close()
        assert closed == [True]

    run(main())


def _done(value: Any) -> Any:
    async def answer() -> Any:
        return value

    return answer()


class FamilyCheckingResolver(Resolver):
    """Refuses an IPv6 literal asked for as IPv4 without suspending, as a
    test's stub resolver (or a cache) does."""

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        if family == socket.AF_INET and ":" in host:
            raise socket.gaierror(socket.EAI_FAMILY, "address family mismatch")
        return [(socket.AF_INET, ("127.0.0.1", port))]


def test_a_resolver_failing_at_once_raises_before_the_first_suspension() -> None:
    # Tornado awaits the resolver's coroutine in place: driven by
    # send(None), connect() raises the resolver's error at once instead
    # of suspending on a Task that runs the lookup.
    async def main() -> None:
        client = TCPClient(resolver=FamilyCheckingResolver())
        coro = client.connect(host="::1", port=1234, af=socket.AF_INET)
        with pytest.raises(socket.gaierror, match="family mismatch"):
            coro.send(None)
        coro.close()

    run(main())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_resolver_answering_at_once_adds_no_task() -> None:
    # The common path (an IP literal, answered without a lookup) does not
    # spawn a Task for the resolve step.
    created: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        factory = loop.get_task_factory()

        def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
            created.append(coro)
            return asyncio.Task(coro, loop=loop, **kwargs)

        loop.set_task_factory(counting)
        try:
            coro = TCPClient(resolver=FamilyCheckingResolver()).connect("127.0.0.1", _closed_port())
            with pytest.raises(OSError):
                await coro
        finally:
            loop.set_task_factory(factory)
        assert not any(getattr(c, "__name__", "") == "resolve" for c in created)

    run(main())
