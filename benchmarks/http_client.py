"""HTTP client benchmark: Squall's AsyncHTTPClient against aiohttp's ClientSession.

One small keep-alive HTTP/1.1 server (a raw asyncio protocol on uvloop when
it is installed, answering every request with the same 13-byte response, so
that it is never the bottleneck) runs in its own process pinned to core 0.
Each client runs in a fresh interpreter pinned to core 1 (the same as
``taskset -c 0`` / ``taskset -c 1``) on the standard asyncio loop and keeps
``--concurrency`` fetches in flight (50 by default) for ``--seconds``:

* ``squall``: `squall.simple_httpclient.SimpleAsyncHTTPClient`, pooled
  keep-alive connections;
* ``aiohttp``: ``aiohttp.ClientSession`` with a ``TCPConnector(limit=50)``;
* ``tornado``: Tornado's own ``SimpleAsyncHTTPClient``, for reference (it
  opens a connection per request).

The clients run one after another in each of ``--repeat`` rounds; each round
gives a squall/aiohttp ratio and the median of those is reported, for
requests per second and for requests per CPU-second of the client process
(steadier on a machine others are using: it does not count the time the
client waited for a core). Compare ratios, not absolute numbers.

Run under the benchmark venv (it has aiohttp, tornado and uvloop):

    .venv-bench/bin/python benchmarks/http_client.py [--seconds 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"
BODY = b"Hello, world!"
SERVER_CORE = 0
CLIENT_CORE = 1
CLIENTS = ("squall", "aiohttp", "tornado")


def _pin(core: int) -> None:
    count = os.cpu_count() or 1
    if hasattr(os, "sched_setaffinity") and count > 1:
        os.sched_setaffinity(0, {core % count})


class _Server(asyncio.Protocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        count = buf.count(b"\r\n\r\n")
        if count:
            self.transport.write(RESPONSE * count)
            buf = buf[buf.rfind(b"\r\n\r\n") + 4 :]
        self.buf = buf


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Server, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], type(loop).__module__, flush=True)
    await loop.run_in_executor(None, sys.stdin.read)


def _server_main() -> None:
    _pin(SERVER_CORE)
    try:
        import uvloop
    except ImportError:
        asyncio.run(_serve())
    else:
        uvloop.run(_serve())


async def _drive(
    fetch: Callable[[], Awaitable[bytes]], concurrency: int, seconds: float
) -> tuple[int, float, float]:
    """Keep ``concurrency`` fetches in flight for ``seconds`` (after a short
    warm-up); return the count, the elapsed wall time and the CPU time."""
    done = 0
    end = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            body = await fetch()
            if body != BODY:
                raise AssertionError(f"unexpected body {body!r}")
            done += 1

    end = time.perf_counter() + min(1.0, seconds / 5)
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = 0
    cpu = time.process_time()
    start = time.perf_counter()
    end = start + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done, time.perf_counter() - start, time.process_time() - cpu


async def _run_squall(url: str, concurrency: int, seconds: float) -> tuple[int, float, float]:
    from squall.simple_httpclient import SimpleAsyncHTTPClient

    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=concurrency)

    async def fetch() -> bytes:
        return (await client.fetch(url)).body

    try:
        return await _drive(fetch, concurrency, seconds)
    finally:
        client.close()


async def _run_tornado(url: str, concurrency: int, seconds: float) -> tuple[int, float, float]:
    from tornado.simple_httpclient import SimpleAsyncHTTPClient

    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=concurrency)

    async def fetch() -> bytes:
        return (await client.fetch(url)).body

    try:
        return await _drive(fetch, concurrency, seconds)
    finally:
        client.close()


async def _run_aiohttp(url: str, concurrency: int, seconds: float) -> tuple[int, float, float]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def fetch() -> bytes:
            async with session.get(url) as response:
                return await response.read()

        return await _drive(fetch, concurrency, seconds)


_RUNNERS = {"squall": _run_squall, "aiohttp": _run_aiohttp, "tornado": _run_tornado}


def _client_main(impl: str, url: str, concurrency: int, seconds: float) -> None:
    _pin(CLIENT_CORE)
    count, wall, cpu = asyncio.run(_RUNNERS[impl](url, concurrency, seconds))
    print(json.dumps({"impl": impl, "rps": count / wall, "per_cpu_s": count / max(cpu, 1e-9)}))


def _measure(impl: str, url: str, args: argparse.Namespace) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client",
            impl,
            "--url",
            url,
            "--seconds",
            str(args.seconds),
            "--concurrency",
            str(args.concurrency),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--clients", default=",".join(CLIENTS), help="comma-separated, from " + ", ".join(CLIENTS)
    )
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _server_main()
        return
    if args.client:
        _client_main(args.client, args.url, args.concurrency, args.seconds)
        return
    clients = [name for name in args.clients.split(",") if name]
    unknown = set(clients) - set(CLIENTS)
    if unknown:
        parser.error(f"unknown clients: {', '.join(sorted(unknown))}")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    port, server_loop = server.stdout.readline().split()
    url = f"http://127.0.0.1:{int(port)}/"
    print(
        f"server: {server_loop} loop on core {SERVER_CORE}; clients on core {CLIENT_CORE}, "
        f"c={args.concurrency}, {args.seconds:g} s each, {args.repeat} rounds"
    )
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        for number in range(1, args.repeat + 1):
            results = {impl: _measure(impl, url, args) for impl in clients}
            rounds.append(results)
            for impl, result in results.items():
                print(
                    f"round {number}  {impl:8s} {result['rps']:9.0f} req/s "
                    f"{result['per_cpu_s']:9.0f} req/CPU-s",
                    flush=True,
                )
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    print()
    print(f"{'client':8s} {'req/s (median)':>15s} {'req/CPU-s (median)':>19s}")
    for impl in clients:
        rps = statistics.median(r[impl]["rps"] for r in rounds)
        per_cpu = statistics.median(r[impl]["per_cpu_s"] for r in rounds)
        print(f"{impl:8s} {rps:15.0f} {per_cpu:19.0f}")
    if "squall" in clients:
        for other in clients:
            if other == "squall":
                continue
            wall = [r["squall"]["rps"] / r[other]["rps"] for r in rounds]
            cpu = [r["squall"]["per_cpu_s"] / r[other]["per_cpu_s"] for r in rounds]
            print(
                f"squall/{other}: {statistics.median(wall):.2f}x req/s, "
                f"{statistics.median(cpu):.2f}x req/CPU-s (median of per-round ratios; "
                f"rounds: {', '.join(f'{x:.2f}' for x in wall)})"
            )


if __name__ == "__main__":
    main()
