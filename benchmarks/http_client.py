"""HTTP client benchmark: Squall's AsyncHTTPClient against aiohttp's ClientSession.

One small keep-alive HTTP/1.1 server (a raw asyncio protocol answering every
request with the same 13-byte response, so that it is never the bottleneck)
runs in its own process, pinned to one core; each client runs in a fresh
interpreter pinned to the other core and keeps ``--concurrency`` fetches in
flight (50 by default) for ``--seconds``. Both clients are measured in the
same run, alternately, ``--repeat`` times; the best run of each is kept and
the ratio printed. The machines are shared and noisy: compare ratios only.

Run under the benchmark venv (it has aiohttp):

    .venv-bench/bin/python benchmarks/http_client.py [--seconds 3] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nContent-Type: text/plain\r\n\r\nHello, world!"


def _pin(core: int) -> None:
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core % (os.cpu_count() or 1)})


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
    server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


async def _run_squall(url: str, concurrency: int, seconds: float) -> tuple[int, float]:
    from squall.simple_httpclient import SimpleAsyncHTTPClient

    client = SimpleAsyncHTTPClient(force_instance=True, max_clients=concurrency)
    done = 0
    end = 0.0

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < end:
            response = await client.fetch(url)
            assert response.body == b"Hello, world!"
            done += 1

    end = time.perf_counter() + seconds / 5
    await asyncio.gather(*(worker() for _ in range(concurrency)))  # warm-up
    done = 0
    cpu = time.process_time()
    end = time.perf_counter() + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu
    client.close()
    return done, cpu


async def _run_aiohttp(url: str, concurrency: int, seconds: float) -> tuple[int, float]:
    import aiohttp

    done = 0
    end = 0.0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                async with session.get(url) as response:
                    body = await response.read()
                assert body == b"Hello, world!"
                done += 1

        end = time.perf_counter() + seconds / 5
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        done = 0
        cpu = time.process_time()
        end = time.perf_counter() + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        cpu = time.process_time() - cpu
    return done, cpu


def _client_main(impl: str, url: str, concurrency: int, seconds: float) -> None:
    _pin(1)
    if impl == "squall":
        from squall.ioloop import IOLoop

        count, cpu = IOLoop.current().run_sync(lambda: _run_squall(url, concurrency, seconds))
    else:
        count, cpu = asyncio.run(_run_aiohttp(url, concurrency, seconds))
    print(json.dumps({"impl": impl, "rps": count / seconds, "per_cpu_s": count / cpu}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _pin(0)
        asyncio.run(_serve())
        return
    if args.client:
        _client_main(args.client, args.url, args.concurrency, args.seconds)
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None and server.stdin is not None
    url = f"http://127.0.0.1:{int(server.stdout.readline())}/"
    best: dict[str, float] = {}
    best_cpu: dict[str, float] = {}
    try:
        for _ in range(args.repeat):
            for impl in ("squall", "aiohttp"):
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
                result = json.loads(out.stdout.strip().splitlines()[-1])
                rps, per_cpu = result["rps"], result["per_cpu_s"]
                print(f"{impl:8s} {rps:10.0f} req/s {per_cpu:10.0f} req/CPU-s", flush=True)
                best[impl] = max(best.get(impl, 0.0), rps)
                best_cpu[impl] = max(best_cpu.get(impl, 0.0), per_cpu)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    print(f"best: squall {best['squall']:.0f} req/s, aiohttp {best['aiohttp']:.0f} req/s")
    print(f"ratio squall/aiohttp: {best['squall'] / best['aiohttp']:.2f}x (wall)")
    # Requests per second of the client's own CPU time: steadier than the
    # wall-clock rate on a machine others are using.
    print(
        f"ratio squall/aiohttp: {best_cpu['squall'] / best_cpu['aiohttp']:.2f}x "
        f"(per CPU-second: {best_cpu['squall']:.0f} vs {best_cpu['aiohttp']:.0f})"
    )


if __name__ == "__main__":
    main()
