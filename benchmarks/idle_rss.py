"""Server memory per idle keep-alive connection, or per idle WebSocket (``--ws``).

Starts each server (benchmarks/servers/*_web.py, pinned to CPU 0), warms it
up, reads its resident set (VmRSS, /proc/PID/status), opens ``--connections``
keep-alive connections that each send one request (a varied ~400-byte GET)
and read the whole response, then stay open and idle, and reads the RSS
again. Reports (after - before) / connections. The file descriptor limit is
raised to the hard limit for this process and the servers it starts.

With ``--ws`` the servers are the WebSocket echo servers
(benchmarks/servers/*_ws.py) and each connection upgrades (a browser's
request, with its own key and an offer of permessage-deflate) and then
stays idle: no message either way.

Usage: python benchmarks/idle_rss.py [--ws] [--connections 10000] [--only squall,aiohttp]
Run it with the benchmark venv (.venv-bench), where the peers are installed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import request_stream  # noqa: E402
from run import SERVERS, WEB, WS, free_port, pin, wait_listening  # noqa: E402


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class _Client(asyncio.Protocol):
    """Sends one request, completes ``done`` when the response's body is in, stays open."""

    def __init__(self, request: bytes, done: asyncio.Future[None]) -> None:
        self.request = request
        self.done = done
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.done.done():
            return
        if self.buf.startswith(b"HTTP/1.1 101"):
            self.done.set_result(None)  # a WebSocket, open and idle from now on
            self.buf = b""
            return
        head = self.buf[:end].lower()
        i = head.find(b"content-length:")
        length = int(head[i + 15 :].split(b"\r\n", 1)[0]) if i >= 0 else 0
        if len(self.buf) >= end + 4 + length:
            if not self.buf.startswith(b"HTTP/1.1 200"):
                self.done.set_exception(RuntimeError(f"bad response {self.buf[:60]!r}"))
            else:
                self.done.set_result(None)
            self.buf = b""

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"connection lost early: {exc}"))


async def hold(port: int, requests: list[bytes], batch: int) -> list[asyncio.BaseTransport]:
    """Opens len(requests) connections, one request each; returns their transports."""
    loop = asyncio.get_running_loop()
    transports: list[asyncio.BaseTransport] = []
    for start in range(0, len(requests), batch):
        waits = []
        for req in requests[start : start + batch]:
            done: asyncio.Future[None] = loop.create_future()
            transport, _ = await loop.create_connection(
                lambda req=req, done=done: _Client(req, done), "127.0.0.1", port
            )
            transports.append(transport)
            waits.append(done)
        await asyncio.wait_for(asyncio.gather(*waits), 60)
    return transports


_UPGRADE = (
    "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0\r\n"
    "Origin: http://127.0.0.1\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Key: {key}\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)


def upgrades(count: int) -> list[bytes]:
    """``count`` WebSocket upgrade requests, each with its own key."""
    return [
        _UPGRADE.format(key=base64.b64encode(n.to_bytes(16, "big")).decode()).encode()
        for n in range(1, count + 1)
    ]


async def measure(pid: int, port: int, count: int, ws: bool = False) -> tuple[int, int]:
    """RSS in KB before and after ``count`` idle connections (WebSockets if ``ws``)."""
    requests = upgrades(count + 200) if ws else request_stream("varied", count + 200)
    # Warm-up: every code path and lazily built structure used once.
    warm = await hold(port, requests[:200], 50)
    for t in warm:
        t.close()
    await asyncio.sleep(0.5)  # let the server see the closes
    before = rss_kb(pid)
    transports = await hold(port, requests[200:], 200)
    await asyncio.sleep(0.5)  # let the server finish its bookkeeping
    after = rss_kb(pid)
    for t in transports:
        t.close()
    return before, after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--only", help="comma-separated contender names")
    ap.add_argument("--ws", action="store_true", help="idle WebSockets instead")
    ap.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/idle-rss[-ws].json (squall against each other "
        "contender) and regenerate the README's tables",
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 2 * args.connections + 1000
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < args.connections + 500:
        print(f"fd limit {hard} too low for {args.connections} connections", file=sys.stderr)
        return 2
    only = set(args.only.split(",")) if args.only else None
    what = "WebSockets" if args.ws else "keep-alive connections"
    print(f"== idle {what}: server RSS per connection ({args.connections} held)")
    contenders = list(WS if args.ws else WEB)
    kb: dict[str, float] = {}
    for c in contenders:
        if only is not None and c.name not in only:
            continue
        port = free_port()
        log = tempfile.TemporaryFile()
        proc = subprocess.Popen(
            pin(0) + [sys.executable, str(SERVERS / c.script), str(port)],
            env=dict(os.environ, **c.env),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_listening(port, proc, time.monotonic() + 15)
            before, after = asyncio.run(measure(proc.pid, port, args.connections, args.ws))
            per = (after - before) * 1024 / args.connections
            kb[c.name] = per / 1024
            print(
                f"  {c.name:<20} {per / 1024:6.2f} KB per connection "
                f"(RSS {before / 1024:.1f} MB -> {after / 1024:.1f} MB)"
            )
        except (TimeoutError, RuntimeError, OSError) as exc:
            print(f"  {c.name:<20} failed: {exc}")
            log.seek(0)
            sys.stdout.write(log.read()[-2000:].decode(errors="replace"))
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    if args.record:
        record(args, kb)
    return 0


def record(args: argparse.Namespace, kb: dict[str, float]) -> None:
    """Writes Squall's memory per connection against each other contender's."""
    import figures
    from run import CONTENDER_LABELS

    if "squall" not in kb:
        raise SystemExit("--record: squall did not run")
    what = "idle WebSocket" if args.ws else "idle keep-alive connection"
    rows = [
        {
            "label": f"server memory per {what}, Squall / {CONTENDER_LABELS[name]}",
            "squall": round(kb["squall"], 2),
            "other": round(other, 2),
            "unit": "KB",
        }
        for name, other in kb.items()
        if name not in ("squall", "squall-pure")
    ]
    path = figures.record(
        "idle-rss-ws" if args.ws else "idle-rss",
        Path(__file__).resolve(),
        figures.squall_build(),
        {
            "rows": rows,
            "connections": args.connections,
            "kb_per_connection": {k: round(v, 3) for k, v in kb.items()},
        },
    )
    figures.main_update()
    print(f"recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
