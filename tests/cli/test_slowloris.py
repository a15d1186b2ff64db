"""Slowloris: many connections trickling a head; live clients keep being served.

The server is the real ``squall run`` with ``--timeout-header 1``; 2,000
connections each send a request line and then one header byte every quarter
second, never finishing the head. Every one must be closed at the header
timeout, while a keep-alive client's requests all succeed quickly.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import threading
import time
from math import inf

from ._proc import Squall

TRICKLERS = 2000
HEADER_TIMEOUT = 1.0


def _trickle(
    address: tuple[str, int],
    started: threading.Event,
    finished: threading.Event,
    result: dict[str, object],
) -> None:
    # How late this client's own loop runs what is due (a timer's callback,
    # run past its time): on a starved machine, or while the loop works
    # through two thousand closes at once, it notices a close that much late.
    lateness = [0.0]

    def tick(loop: asyncio.AbstractEventLoop, when: float, done: asyncio.Future[None]) -> None:
        if not done.done():
            now = loop.time()
            lateness[0] = max(lateness[0], now - when)
            loop.call_at(now + 0.05, tick, loop, now + 0.05, done)

    async def one(lifetimes: list[tuple[float, float]]) -> None:
        # Before connecting: the server's clock starts later, never earlier
        # (the lower bound). After: a connect that waited for the server's
        # backlog (a SYN sent again, a second or three on a starved
        # machine) is not the server's header timeout (the upper bound).
        t0 = time.monotonic()
        reader, writer = await asyncio.open_connection(*address)
        connected = time.monotonic()
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")
        closed = asyncio.ensure_future(reader.read())
        # The close is timed on the loop turn after it is read, not when this
        # task next runs (after every other task woken by the same burst).
        closed_at: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        closed.add_done_callback(lambda _: closed_at.set_result(time.monotonic()))
        while not closed.done():
            writer.write(b"X")  # a header name that never ends
            await asyncio.wait([closed], timeout=0.25)  # the trickle's pace
            if time.monotonic() - connected > HEADER_TIMEOUT * 4:
                break
        # An end of stream or a reset (our byte raced the close): closed either way.
        if closed.done():
            end = await closed_at  # its callback runs the turn after the close
            lifetimes.append((end - t0, end - connected))
        else:
            lifetimes.append((inf, inf))
        if closed.done() and not closed.cancelled():
            closed.exception()
        else:
            closed.cancel()
        writer.close()

    async def main() -> None:
        lifetimes: list[tuple[float, float]] = []
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        tick(loop, loop.time(), done)
        tasks = []
        for i in range(TRICKLERS):
            tasks.append(asyncio.ensure_future(one(lifetimes)))
            if i % 100 == 99:
                await asyncio.sleep(0)  # let the connects proceed in batches
        await asyncio.sleep(0)
        started.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        done.set_result(None)
        result["lifetimes"] = lifetimes
        result["lateness"] = lateness[0]
        result["errors"] = [t.exception() for t in tasks if t.exception() is not None]

    try:
        asyncio.run(main())
    finally:
        finished.set()


def _live_latencies(
    address: tuple[str, int], count: int | None, until: threading.Event | None = None
) -> list[float]:
    """Latencies of requests on one keep-alive connection: ``count`` of
    them, or as many as are made until ``until`` is set (at most a minute's)."""
    latencies = []
    live = socket.create_connection(address, timeout=5)
    deadline = time.monotonic() + 60
    while (
        (len(latencies) < count)
        if count is not None
        else (until is not None and not until.is_set() and time.monotonic() < deadline)
    ):
        t0 = time.monotonic()
        live.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        data = b""
        while not data.endswith(b"}"):
            chunk = live.recv(65536)
            assert chunk, "the live connection was closed"
            data += chunk
        latencies.append(time.monotonic() - t0)
        assert data.startswith(b"HTTP/1.1 200")
    live.close()
    return latencies


def test_slowloris_connections_close_at_the_header_timeout_while_live_clients_are_served() -> None:
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--timeout-header",
        str(HEADER_TIMEOUT),
        "--no-access-log",
        "--backlog",
        "4096",
    ) as squall:
        address = squall.address()
        squall.expect("serving")
        # The same requests first with no attack: how quick this machine is
        # now, under whatever else it runs.
        baseline = _live_latencies(address, 100)
        started = threading.Event()
        finished = threading.Event()
        result: dict[str, object] = {}
        thread = threading.Thread(target=_trickle, args=(address, started, finished, result))
        thread.start()
        assert started.wait(10)
        # Served while the attack lasts, its closes included: how late the
        # server answers then bounds how late it may close a trickler.
        latencies = _live_latencies(address, None, until=finished)
        thread.join(30)
        lifetimes = result["lifetimes"]
        assert isinstance(lifetimes, list)
        assert result["errors"] == []
        assert len(lifetimes) == TRICKLERS
        # Closed by the server at its header timeout, not before nor much
        # after: after by at most twice the timeout, plus how late this
        # client's loop ran and how late the server answered a live request
        # while the attack lasted (seconds on a starved machine, milliseconds
        # on a calm one). A server that never closes them gives inf.
        lateness = result["lateness"]
        assert isinstance(lateness, float)
        since_connect = max(connected for _, connected in lifetimes)
        assert min(begun for begun, _ in lifetimes) > HEADER_TIMEOUT * 0.9
        assert since_connect < HEADER_TIMEOUT * 3 + lateness + max(latencies), (
            since_connect,
            lateness,
            max(latencies),
        )
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        print(
            f"slowloris: {len(latencies)} live requests, p50 {latencies[len(latencies) // 2] * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {latencies[-1] * 1000:.2f} ms; tricklers closed {min(c for _, c in lifetimes):.2f}..{since_connect:.2f} s after connecting, client late by up to {lateness:.2f} s"
        )
        # 50 ms (measured 5-13 ms on a loaded 2-core machine), or
        # on a machine so busy that requests with no attack at all are slow,
        # five times their own p99: the attack may not slow live clients
        # down by more than that, however loaded the machine.
        baseline.sort()
        calm_p99 = baseline[int(len(baseline) * 0.99)]
        assert p99 < max(0.05, 5 * calm_p99), (p99, calm_p99)
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
