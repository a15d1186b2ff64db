"""TCP echo benchmark of the stream layer: Squall's IOStream against Tornado's.

Three workloads, each with an echo server and its client on one event loop in
one process (so both sides use the library under test):

* ping-pong: one line out, wait for the echo, repeat (latency-bound);
* pipelined: many small lines written back to back, echoed line by line;
* bulk: one 100 MB body, read with a single ``read_bytes``; reports MB/s and
  how much the process's peak memory grew while receiving it.

Each library runs in a fresh interpreter. Tornado is measured only when it is
importable (it lives in the benchmark venv, not in .venv); otherwise only
Squall's numbers are printed. The machines are shared and noisy: compare the
ratios, and repeat a run before trusting a small difference.

Throughput is given twice: per second of wall time, and per second of the
process's CPU time (user + system). Client and server share the process and
never wait on anything but each other, so the CPU figure is the same work
measured without the time other programs take the core away: on a busy
machine it is the stable one.

Each library is run ``--repeat`` times, alternating, every run pinned to the
same single core (``--cpu``) so the scheduler treats both alike, and the
median of each metric is reported, which damps the noise of a shared machine
without rewarding a lucky outlier.

Usage: python benchmarks/tcp_echo.py [--repeat N] [--scale F] [--cpu C] [--impl squall|tornado [--json]]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

MB = 1024 * 1024


def _modules(impl: str) -> tuple[Any, Any]:
    iostream = importlib.import_module(f"{impl}.iostream")
    netutil = importlib.import_module(f"{impl}.netutil")
    return iostream, netutil


async def _serve(impl: str) -> tuple[int, Any]:
    """Start an echo server; return its port and a stop function."""
    iostream, netutil = _modules(impl)
    [listener] = netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    streams: list[Any] = []

    async def echo_lines(stream: Any) -> None:
        try:
            while True:
                line = await stream.read_until(b"\n")
                if line == b"BULK\n":
                    size = int(await stream.read_until(b"\n"))
                    body = await stream.read_bytes(size)
                    await stream.write(b"%d\n" % len(body))
                    del body
                    continue
                stream.write(line)
        except iostream.StreamClosedError:
            pass

    def on_accept(conn: socket.socket, address: Any) -> None:
        stream = iostream.IOStream(conn)
        stream.set_nodelay(True)
        streams.append(stream)
        asyncio.ensure_future(echo_lines(stream))

    remove = netutil.add_accept_handler(listener, on_accept)

    def stop() -> None:
        remove()
        listener.close()
        for stream in streams:
            stream.close()

    return listener.getsockname()[1], stop


async def _client(impl: str, port: int) -> Any:
    iostream, _ = _modules(impl)
    stream = iostream.IOStream(socket.socket())
    await stream.connect(("127.0.0.1", port))
    stream.set_nodelay(True)
    return stream


async def ping_pong(impl: str, port: int, rounds: int) -> dict[str, float]:
    stream = await _client(impl, port)
    line = b"x" * 99 + b"\n"
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        stream.write(line)
        echoed = await stream.read_until(b"\n")
        assert echoed == line
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    stream.close()
    return {"round_trips_per_s": rounds / elapsed, "round_trips_per_cpu_s": rounds / cpu}


async def pipelined(impl: str, port: int, count: int) -> dict[str, float]:
    stream = await _client(impl, port)
    line = b"y" * 63 + b"\n"
    start, cpu_start = time.perf_counter(), time.process_time()

    async def produce() -> None:
        batch = 100
        for _ in range(count // batch):
            for _ in range(batch - 1):
                stream.write(line)
            await stream.write(line)

    async def consume() -> None:
        for _ in range(count // 100 * 100):
            echoed = await stream.read_until(b"\n")
            assert len(echoed) == 64

    await asyncio.gather(produce(), consume())
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    stream.close()
    return {
        "messages_per_s": count / elapsed,
        "messages_per_cpu_s": count / cpu,
        "mb_per_s": count * 64 / elapsed / MB,
    }


async def bulk(impl: str, port: int, size: int) -> dict[str, float]:
    stream = await _client(impl, port)
    payload = b"z" * size
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu_start = time.perf_counter(), time.process_time()
    stream.write(b"BULK\n%d\n" % size)
    stream.write(payload)
    reply = await stream.read_until(b"\n")
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    assert int(reply) == size
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stream.close()
    return {
        "mb_per_s": size / elapsed / MB,
        "mb_per_cpu_s": size / cpu / MB,
        # ru_maxrss is in KiB on Linux.
        "peak_growth_mb": (after - before) / 1024,
    }


async def run_all(impl: str, scale: float) -> dict[str, dict[str, float]]:
    port, stop = await _serve(impl)
    size = max(MB, int(100 * MB * scale))
    try:
        results = {
            "ping-pong": await ping_pong(impl, port, int(20_000 * scale)),
            "pipelined": await pipelined(impl, port, int(200_000 * scale)),
            f"bulk {size // MB} MB": await bulk(impl, port, size),
        }
    finally:
        stop()
    return results


def measure(impl: str, scale: float, cpu: int) -> dict[str, dict[str, float]]:
    """Run the workloads in a fresh interpreter and return its numbers."""
    command = [sys.executable, __file__, "--impl", impl, "--scale", str(scale), "--json"]
    if cpu >= 0:
        command += ["--cpu", str(cpu)]
    out = subprocess.run(
        command,
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, dict[str, float]] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=["squall", "tornado"], help="run one library here")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply workload sizes")
    parser.add_argument("--json", action="store_true", help="print raw JSON (with --impl)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per library; median is kept")
    parser.add_argument(
        "--cpu",
        type=int,
        default=None,
        help="core to pin runs to (-1: none; default: last allowed)",
    )
    args = parser.parse_args()
    cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    if args.impl:
        if cpu >= 0:
            os.sched_setaffinity(0, {cpu})
        results = asyncio.run(run_all(args.impl, args.scale))
        if args.json:
            print(json.dumps(results))
        else:
            print(json.dumps(results, indent=2))
        return
    impls = ["squall"]
    if importlib.util.find_spec("tornado") is not None:
        impls.append("tornado")
    runs: dict[str, list[dict[str, dict[str, float]]]] = {impl: [] for impl in impls}
    for _ in range(max(1, args.repeat)):
        for impl in impls:
            runs[impl].append(measure(impl, args.scale, cpu))
    table = {
        impl: {
            workload: {
                metric: statistics.median(run[workload][metric] for run in runs[impl])
                for metric in metrics
            }
            for workload, metrics in runs[impl][0].items()
        }
        for impl in impls
    }
    print(f"{'workload':<14}{'metric':<22}" + "".join(f"{impl:>12}" for impl in impls), end="")
    print(f"{'ratio':>10}" if len(impls) == 2 else "")
    for workload, metrics in table["squall"].items():
        for metric, value in metrics.items():
            row = f"{workload:<14}{metric:<22}{value:>12.1f}"
            if len(impls) == 2:
                other = table["tornado"][workload][metric]
                ratio = value / other if other else float("nan")
                row += f"{other:>12.1f}{ratio:>10.2f}"
            print(row)
    print(f"median of {max(1, args.repeat)} alternating runs per library, pinned to cpu {cpu}")
    if len(impls) == 2:
        print("ratio = squall / tornado (higher is better, except peak_growth_mb)")


if __name__ == "__main__":
    main()
