"""WebSocket echo benchmark: Squall's server against Tornado's and aiohttp's.

Each server (benchmarks/servers/*_ws.py) runs in its own process pinned to
CPU 0; the load generator, the same for every server, runs pinned to CPU 1
on uvloop with ``--connections`` connections, each keeping ``--window`` small
text messages in flight (send a window, read the echoes back, repeat). The
score is echoed messages per second. The machines are shared and noisy: read
the ratios, not the absolute numbers.

Two load generators:

* ``raw`` (default): a bare asyncio protocol that writes the upgrade request
  and pre-masked frames and only counts the frames that come back. It costs
  a few microseconds per message, so the server is always the bottleneck.
* ``aiohttp``: aiohttp's WebSocket client. It costs about as much per message
  as aiohttp's server, so against the fastest servers it measures itself
  (all of them then come out near the same number).

Usage: python benchmarks/ws_echo.py [--duration S] [--connections N] [--window W] [--size B] [--load raw|aiohttp]
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

from cpuclock import cpu_seconds  # noqa: E402
from run import free_port, pin, wait_listening  # noqa: E402

SERVERS = HERE / "servers"
CONTENDERS = [
    ("squall", "squall_ws.py", {}),
    ("squall-pure", "squall_ws.py", {"SQUALL_NO_SPEEDUPS": "1"}),
    ("tornado", "tornado_ws.py", {}),
    ("aiohttp", "aiohttp_ws.py", {}),
    ("aiohttp-uvloop", "aiohttp_ws.py", {"SQUALL_BENCH_UVLOOP": "1"}),
]
RATIOS = [
    ("squall", "tornado"),
    ("squall-pure", "tornado"),
    ("squall", "aiohttp-uvloop"),
    ("squall-pure", "aiohttp"),
]


UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class _RawLoad(asyncio.Protocol):
    """One connection: writes a window of masked frames, counts the echoes, repeats."""

    def __init__(self, batch: bytes, window: int, counter: list[int]) -> None:
        self.batch = batch
        self.window = window
        self.counter = counter
        self.buffer = bytearray()
        self.upgraded = False
        self.pending = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(UPGRADE)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"upgrade refused: {bytes(buffer[:80])!r}")
            del buffer[: end + 4]
            self.upgraded = True
            self.send()
        pos = 0
        count = 0
        while len(buffer) - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if len(buffer) - pos < 4:
                    break
                length = int.from_bytes(buffer[pos + 2 : pos + 4], "big")
                header = 4
            if len(buffer) - pos < header + length:
                break
            pos += header + length
            count += 1
        del buffer[:pos]
        self.pending -= count
        self.counter[1] += count
        if self.pending == 0:
            self.send()

    def send(self) -> None:
        if self.counter[0] and self.transport is not None:
            self.pending = self.window
            self.transport.write(self.batch)


async def raw_load(
    port: int, connections: int, window: int, size: int, duration: float, server_pid: int = 0
) -> tuple[float, float]:
    """Echo messages over many raw connections.

    Returns messages per second, and messages per CPU-second of the server
    process ``server_pid`` over the same window (nan without a pid).
    """
    frame = (
        bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2, "big")
    )
    # A real (non-zero) mask key, so that no server can skip unmasking; the
    # echo comes back unmasked, which is all the counting below needs.
    key = b"\x37\xfa\x21\x3d"
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(b"m" * size))
    batch = (frame + key + masked) * window
    counter = [1, 0]  # [running, frames received]
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(connections):
        transport, _ = await loop.create_connection(
            lambda: _RawLoad(batch, window, counter), "127.0.0.1", port
        )
        transports.append(transport)
    await asyncio.sleep(1.0)  # warm-up
    before = counter[1]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    start = time.perf_counter()
    await asyncio.sleep(duration)
    received = counter[1] - before
    elapsed = time.perf_counter() - start
    used = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    counter[0] = 0
    for transport in transports:
        transport.close()
    return received / elapsed, (received / used if used > 0 else float("nan"))


async def load(
    port: int, connections: int, window: int, size: int, duration: float, server_pid: int = 0
) -> tuple[float, float]:
    """Echo messages over many aiohttp client connections; returns as `raw_load`."""
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
        cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
        start = time.perf_counter()
        await asyncio.sleep(duration)
        measuring = False
        elapsed = time.perf_counter() - start
        used = cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
        stop = True
        done, _ = await asyncio.wait(tasks, timeout=10)
        for task in done:
            task.result()
    return counted / elapsed, (counted / used if used > 0 else float("nan"))


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
            "--load",
            args.load,
            "--server-pid",
            str(proc.pid),
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
    ap.add_argument("--load", choices=["raw", "aiohttp"], default="raw", help="load generator")
    ap.add_argument("--client", type=int, metavar="PORT", help=argparse.SUPPRESS)
    ap.add_argument("--server-pid", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.client:
        import uvloop

        run = raw_load if args.load == "raw" else load
        rate, per_cpu = uvloop.run(
            run(
                args.client,
                args.connections,
                args.window,
                args.size,
                args.duration,
                args.server_pid,
            )
        )
        print(json.dumps({"messages_per_s": rate, "messages_per_cpu_s": per_cpu}))
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
        f"== ws echo ({args.load} load, c={args.connections}, window {args.window}, "
        f"{args.size} B text, {args.duration:g}s)"
    )
    for name, rate in results.items():
        print(f"  {name:<14} {rate:>10.0f} msg/s")
    for a, b in RATIOS:
        if a in results and b in results:
            print(f"  ratio {a}/{b}: {results[a] / results[b]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
