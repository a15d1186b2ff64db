"""One HTTP/3 client under load, for ``benchmarks/h3client_bench.py``.

Keeps ``--streams`` requests (``GET /?n=bench``) in flight on each of
``--connections`` QUIC connections to ``127.0.0.1:PORT`` for ``--warm-up``
plus ``--duration`` seconds, and prints one JSON line: the responses
completed in the measured window, the window's length, and this process's
CPU time over it (user + system, `time.process_time`). Run it pinned to a
core of its own.

Clients (``--client``):
- ``squall``: `squall.h3client.H3AsyncHTTPClient` (``http3_prior_knowledge``),
  one instance per connection, ``--streams`` coroutines each looping
  ``await client.fetch(url)``.
- ``aioquic``: the shape of aioquic's example client, ``h3load.py``'s
  `Loader` (H3 events on a `QuicConnectionProtocol`, the next request sent
  as one ends): no policy, no response objects.
- ``niquests``: niquests' `AsyncSession` (HTTP/3 through qh3), HTTP/1.1 and
  HTTP/2 disabled so that it speaks HTTP/3 at once, ``multiplexed=True``:
  ``--streams`` lazy responses sent together, then gathered, in a loop.
  Needs an interpreter with niquests (``--python`` of h3client_bench.py).

    python benchmarks/h3client_load.py PORT --client squall [--connections 4]
        [--streams 16] [--duration 5] [--warm-up 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any


class Meter:
    """Responses counted, and the CPU and wall clock at the window's edges."""

    def __init__(self) -> None:
        self.done = 0
        self.errors = 0
        self.running = True
        self.marks: list[tuple[int, float, float]] = []
        # How many responses so far, where the client keeps that count itself.
        self.count: Any = None

    def ok(self, good: bool) -> None:
        if good:
            self.done += 1
        else:
            self.errors += 1

    def mark(self) -> None:
        done = self.done if self.count is None else self.count()
        self.marks.append((done, time.process_time(), time.monotonic()))


async def squall_client(args: argparse.Namespace, meter: Meter) -> None:
    from squall.h3client import H3AsyncHTTPClient

    url = f"https://127.0.0.1:{args.port}/?n=bench"
    clients = [
        H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
        for _ in range(args.connections)
    ]

    async def worker(client: Any) -> None:
        while meter.running:
            response = await client.fetch(url, validate_cert=False, raise_error=False)
            meter.ok(response.code == 200)

    try:
        await asyncio.gather(*(worker(c) for c in clients for _ in range(args.streams)))
    finally:
        for client in clients:
            client.close()


async def aioquic_client(args: argparse.Namespace, meter: Meter) -> None:
    import ssl

    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from h3load import contextlib_group

    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    config.verify_mode = ssl.CERT_NONE
    async with contextlib_group(args.connections, args.port, config) as loaders:
        for loader in loaders:
            loader.deadline = float("inf")
            loader.counting_from = 0.0
            for _ in range(args.streams):
                loader.fire()
            loader.transmit()
        meter.count = lambda: sum(loader.done for loader in loaders)
        while meter.running:
            await asyncio.sleep(0.05)
        meter.errors = sum(loader.errors for loader in loaders)


async def niquests_client(args: argparse.Namespace, meter: Meter) -> None:
    import niquests

    url = f"https://127.0.0.1:{args.port}/?n=bench"

    async def connection() -> None:
        async with niquests.AsyncSession(
            multiplexed=True, disable_http1=True, disable_http2=True
        ) as session:
            while meter.running:
                responses = [await session.get(url, verify=False) for _ in range(args.streams)]
                await session.gather(*responses)
                for response in responses:
                    meter.ok(response.status_code == 200 and response.http_version == 30)

    await asyncio.gather(*(connection() for _ in range(args.connections)))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--client", choices=["squall", "aioquic", "niquests"], required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warm-up", type=float, default=1.0)
    args = parser.parse_args()
    # Imported before the clock starts (a second or more on a busy core).
    if args.client == "niquests":
        import niquests  # noqa: F401
    else:
        import aioquic.asyncio  # noqa: F401
        import h3load  # noqa: F401

        if args.client == "squall":
            import squall.h3client  # noqa: F401
    meter = Meter()
    loop = asyncio.get_running_loop()
    loop.call_later(args.warm_up, meter.mark)

    def stop() -> None:
        meter.mark()
        meter.running = False

    loop.call_later(args.warm_up + args.duration, stop)
    run = {"squall": squall_client, "aioquic": aioquic_client, "niquests": niquests_client}
    await asyncio.wait_for(run[args.client](args, meter), args.warm_up + args.duration + 30)
    (done0, cpu0, wall0), (done1, cpu1, wall1) = meter.marks[:2]
    print(
        json.dumps(
            {
                "requests": done1 - done0,
                "cpu": cpu1 - cpu0,
                "seconds": wall1 - wall0,
                "errors": meter.errors,
            }
        )
    )


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    try:
        import uvloop  # every client on the same loop, uvloop where installed

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    asyncio.run(main())
