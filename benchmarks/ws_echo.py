"""WebSocket echo benchmark: Squall's server against Tornado's and aiohttp's.

Each server (benchmarks/servers/*_ws.py) runs in its own process pinned to
CPU 0; the load generator, the same for every server, runs pinned to CPU 1:
aiohttp's WebSocket client on uvloop with ``--connections`` connections, each
keeping ``--window`` small text messages in flight (send a window, read the
echoes back, repeat). The score is echoed messages per second. The machines
are shared and noisy: read the ratios, not the absolute numbers.

Usage: python benchmarks/ws_echo.py [--duration S] [--connections N] [--window W] [--size B]
Run it with the benchmark venv (.venv-bench), where the peers are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import free_port, pin, wait_listening  # noqa: E402

SERVERS = HERE / "servers"
CONTENDERS = [
    ("squall", "squall_ws.py", {}),
    ("squall-pure", "squall_ws.py", {"SQUALL_NO_SPEEDUPS": "1"}),
    ("tornado", "tornado_ws.py", {}),
    ("aiohttp", "aiohttp_ws.py", {}),
]
RATIOS = [
    ("squall", "tornado"),
    ("squall-pure", "tornado"),
    ("squall", "aiohttp"),
    ("squall-pure", "aiohttp"),
]


async def load(port: int, connections: int, window: int, size: int, duration: float) -> float:
    """Echo messages over many connections; return messages per second."""
    import aiohttp

    message = "m" * size
    counted = 0
    measuring = False
    stop = False

    async def one(session: aiohttp.ClientSession) -> None:
        nonlocal counted
        async with session.ws_connect(f"http://127.0.0.1:{port}/ws", autoping=False) as ws:
            while not stop:
                for _ in range(window):
                    await ws.send_str(message)
                for _ in range(window):
                    reply = await ws.receive()
                    if reply.type != aiohttp.WSMsgType.TEXT or len(reply.data) != size:
                        raise RuntimeError(f"unexpected reply {reply!r}")
                if measuring:
                    counted += window

    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        tasks = [asyncio.ensure_future(one(session)) for _ in range(connections)]
        await asyncio.sleep(1.0)  # warm-up: connections open, JIT-free steady state
        measuring = True
        start = time.perf_counter()
        await asyncio.sleep(duration)
        measuring = False
        elapsed = time.perf_counter() - start
        stop = True
        done, _ = await asyncio.wait(tasks, timeout=10)
        for task in done:
            task.result()
    return counted / elapsed


def measure(script: str, env: dict[str, str], args: argparse.Namespace) -> float:
    port = free_port()
    proc = subprocess.Popen(
        pin(0) + [sys.executable, str(SERVERS / script), str(port)],
        env=dict(os.environ, **env),
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 15)
        cmd = pin(1) + [
            sys.executable,
            __file__,
            "--client",
            str(port),
            "--duration",
            str(args.duration),
            "--connections",
            str(args.connections),
            "--window",
            str(args.window),
            "--size",
            str(args.size),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        return float(json.loads(out)["messages_per_s"])
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--window", type=int, default=4, help="messages in flight per connection")
    ap.add_argument("--size", type=int, default=64, help="message size in bytes")
    ap.add_argument("--repeat", type=int, default=1, help="runs per server; the best is kept")
    ap.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        import uvloop

        rate = uvloop.run(
            load(args.client, args.connections, args.window, args.size, args.duration)
        )
        print(json.dumps({"messages_per_s": rate}))
        return 0
    results: dict[str, float] = {}
    for _ in range(max(1, args.repeat)):
        for name, script, env in CONTENDERS:
            try:
                rate = measure(script, env, args)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"  {name}: failed: {exc}", file=sys.stderr)
                continue
            results[name] = max(results.get(name, 0.0), rate)
    print(
        f"== ws echo (c={args.connections}, window {args.window}, {args.size} B text, {args.duration:g}s)"
    )
    for name, rate in results.items():
        print(f"  {name:<14} {rate:>10.0f} msg/s")
    for a, b in RATIOS:
        if a in results and b in results:
            print(f"  ratio {a}/{b}: {results[a] / results[b]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
