"""The c10k load generator: uvloop protocols that count bytes, one process, one core.

Runs every phase against one server and prints one JSON object:

1. ``subscribers`` WebSockets opened ``batch`` at a time (handshake done when
   the 101 head is in): time, server CPU per handshake, server RSS per idle
   WebSocket (VmRSS after minus before, the server warmed up first);
2. broadcast: ``rounds`` single 100-byte messages, each time from sending
   ``/publish`` to every subscriber having the frame (p50, p99, last), then
   ``messages`` messages in one publish: server CPU per delivered message;
   for each style the server has (``loop``, and ``helper`` for Squall);
   Then, if ``crowd``: that many more subscribers connecting at once (all
   their connects issued together, no batches) beside the N open ones, first
   alone, then while the server sends one message to every subscriber each
   ``broadcast_per`` new subscribers (``/ticker``): server CPU per handshake over
   the crowd's arrival (the second includes the broadcasts, as a server
   that is also writing spends it), time for the crowd, publishes made;
3. ``polls`` long polls held, woken by one ``/wake``: time until the last
   client has its response;
4. a storm: ``storm`` clients connecting at once, each sending ``GET
   /hello``: time until the last response, and the kernel's listen-queue
   overflows meanwhile (TcpExt ListenOverflows, /proc/net/netstat; the
   counter is the machine's, so other traffic adds to it).

Connections are closed with a reset (SO_LINGER 0) so that no TIME_WAIT
holds the loopback's ephemeral ports between phases.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cpuclock import cpu_seconds  # noqa: E402

FRAME_SIZE = 102  # a 100-byte text frame from a server: 2 bytes of header
LINGER_RESET = struct.pack("ii", 1, 0)
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def listen_overflows() -> int:
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=True))
            return int(table["ListenOverflows"])
    return 0


def reset(transport: Any) -> None:
    """Close with RST: no TIME_WAIT left on either side."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        except OSError:
            pass
    transport.abort()


class Subscriber(asyncio.Protocol):
    """A WebSocket client that counts the bytes of frames received."""

    __slots__ = ("bench", "transport", "head", "opened", "received", "target")

    def __init__(self, bench: Bench, opened: asyncio.Future[None]) -> None:
        self.bench = bench
        self.opened: Optional[asyncio.Future[None]] = opened
        self.head = b""
        self.received = 0
        self.target = 0

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(UPGRADE)

    def data_received(self, data: bytes) -> None:
        opened = self.opened
        if opened is not None:
            head = self.head + data
            end = head.find(b"\r\n\r\n")
            if end < 0:
                self.head = head
                return
            self.head = b""
            self.opened = None
            if not head.startswith(b"HTTP/1.1 101"):
                opened.set_exception(RuntimeError(f"no upgrade: {head[:80]!r}"))
                return
            opened.set_result(None)
            data = head[end + 4 :]
            if not data:
                return
        self.received += len(data)
        if self.target and self.received >= self.target:
            self.target = 0
            self.bench.arrived(self)

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if self.opened is not None and not self.opened.done():
            self.opened.set_exception(RuntimeError(f"lost before the upgrade: {exc}"))


class OneResponse(asyncio.Protocol):
    """Sends one request; resolves ``done`` when a whole response is in."""

    __slots__ = ("request", "done", "buf", "transport")

    def __init__(self, request: bytes, done: asyncio.Future[float]) -> None:
        self.request = request
        self.done = done
        self.buf = b""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            self.buf = buf
            return
        i = buf.lower().find(b"content-length:", 0, end)
        length = int(buf[i + 15 : buf.find(b"\r\n", i)]) if i >= 0 else 0
        if len(buf) < end + 4 + length:
            self.buf = buf
            return
        self.buf = b""
        if not self.done.done():
            if buf.startswith(b"HTTP/1.1 200"):
                self.done.set_result(time.perf_counter())
            else:
                self.done.set_exception(RuntimeError(f"bad response {buf[:80]!r}"))

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            self.done.set_exception(RuntimeError(f"connection lost: {exc}"))


class Bench:
    def __init__(self, port: int, pid: int) -> None:
        self.port = port
        self.pid = pid
        self.loop = asyncio.get_running_loop()
        self.subs: list[Subscriber] = []
        self.pending = 0
        self.times: list[float] = []
        self.all_in: Optional[asyncio.Future[None]] = None

    def arrived(self, sub: Subscriber) -> None:
        self.times.append(time.perf_counter())
        self.pending -= 1
        if self.pending == 0 and self.all_in is not None and not self.all_in.done():
            self.all_in.set_result(None)

    async def control(self, path: str) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n".encode())
        data = await reader.read()
        writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{path}: {head[:80]!r}")
        if b"chunked" in head.lower():
            body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
        return body

    async def stats(self) -> dict[str, int]:
        result: dict[str, int] = json.loads(await self.control("/stats"))
        return result

    async def wait_stats(self, key: str, value: int, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while (await self.stats())[key] != value:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server never reported {key}={value}")
            await asyncio.sleep(0.05)

    async def open_subscribers(self, count: int, batch: int) -> list[Subscriber]:
        subs: list[Subscriber] = []
        for start in range(0, count, batch):
            waits = []
            for _ in range(min(batch, count - start)):
                opened = self.loop.create_future()
                waits.append(opened)
                _, sub = await self.loop.create_connection(
                    lambda o=opened: Subscriber(self, o), "127.0.0.1", self.port
                )
                subs.append(sub)
            await asyncio.gather(*waits)
        return subs

    async def deliver(self, path: str, frames: int) -> tuple[float, list[float]]:
        """Publish; returns when the publish was sent and the arrival times."""
        self.times = []
        self.pending = len(self.subs)
        self.all_in = self.loop.create_future()
        for sub in self.subs:
            sub.target = sub.received + frames * FRAME_SIZE
        start = time.perf_counter()
        await self.control(path)
        await asyncio.wait_for(self.all_in, 120)
        return start, self.times

    async def open_crowd(self, count: int) -> list[Subscriber]:
        """``count`` subscribers connecting at once (no batches); returns when all are open."""
        waits: list[asyncio.Future[None]] = [self.loop.create_future() for _ in range(count)]

        async def one(opened: asyncio.Future[None]) -> Subscriber:
            _, sub = await self.loop.create_connection(
                lambda: Subscriber(self, opened), "127.0.0.1", self.port
            )
            return sub

        subs = await asyncio.gather(*(one(w) for w in waits))
        await asyncio.gather(*waits)
        return list(subs)

    async def crowd(self, args: argparse.Namespace, out: dict[str, Any]) -> None:
        """``crowd`` subscribers connecting at once beside the N already open: first
        alone, then while the server broadcasts one message to every subscriber
        each time ``broadcast_per`` more have opened (``/ticker``, a handler of
        its own), so every server makes the same number of broadcasts however
        long its crowd takes. Server CPU over the crowd's arrival, per
        handshake; the broadcasts' CPU is inside the second. A server without
        ``/ticker`` (the floor) gets the first only."""
        for key, publishing in (("crowd", False), ("crowd_bcast", True)):
            expected = len(self.subs) + args.crowd
            ticks0 = sent0 = 0
            if publishing:
                started = (await self.control(f"/ticker?per={args.broadcast_per}")).split()
                if len(started) != 2:
                    return  # no /ticker here
                ticks0, sent0 = int(started[0]), int(started[1])
            cpu0 = cpu_seconds(self.pid)
            t0 = time.perf_counter()
            try:
                self.subs += await self.open_crowd(args.crowd)
            except RuntimeError as exc:
                raise RuntimeError(f"{key}: {exc}") from exc
            if publishing:
                # Stops the ticker; a server whose sends are awaited answers
                # once the broadcasts under way are written.
                ticks1, sent1 = (int(n) for n in (await self.control("/ticker?per=0")).split())
            out[f"{key}_s"] = time.perf_counter() - t0
            cpu1 = cpu_seconds(self.pid)
            out[f"handshake_{key}_cpu_us"] = (cpu1 - cpu0) / args.crowd * 1e6
            if publishing:
                out[f"{key}_publishes"] = ticks1 - ticks0
                # Less the broadcasts, at this server's CPU per delivered
                # message (phase 2) times the messages the server counted.
                per = out.get("deliver_loop_cpu_us")
                if per is not None:
                    net = (cpu1 - cpu0) * 1e6 - (sent1 - sent0) * per
                    out[f"handshake_{key}_net_cpu_us"] = net / args.crowd
            await self.wait_stats("subs", expected)

    async def run(self, args: argparse.Namespace) -> dict[str, Any]:
        out: dict[str, Any] = {}
        # Warm up: the first connections import and build what the rest reuse.
        warm = await self.open_subscribers(50, 50)
        for sub in warm:
            reset(sub.transport)
        await self.wait_stats("subs", 0)
        for _ in range(3):
            await self.control("/hello")

        # 1. Subscribers, batch at a time.
        rss0, cpu0 = rss_kb(self.pid), cpu_seconds(self.pid)
        t0 = time.perf_counter()
        self.subs = await self.open_subscribers(args.subscribers, args.batch)
        out["connect_s"] = time.perf_counter() - t0
        cpu1 = cpu_seconds(self.pid)
        await self.wait_stats("subs", args.subscribers)
        out["handshake_cpu_us"] = (cpu1 - cpu0) / args.subscribers * 1e6
        out["rss_per_ws_kb"] = (rss_kb(self.pid) - rss0) / args.subscribers

        # 2. Broadcast.
        for style in args.styles.split(","):
            latencies: list[float] = []
            for _ in range(args.rounds):
                start, times = await self.deliver(f"/publish?n=1&style={style}", 1)
                latencies.extend(t - start for t in times)
            latencies.sort()
            out[f"bcast_{style}_p50_ms"] = latencies[len(latencies) // 2] * 1e3
            out[f"bcast_{style}_p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1e3
            out[f"bcast_{style}_last_ms"] = latencies[-1] * 1e3
            cpu0 = cpu_seconds(self.pid)
            await self.deliver(f"/publish?n={args.messages}&style={style}", args.messages)
            cpu1 = cpu_seconds(self.pid)
            out[f"deliver_{style}_cpu_us"] = (cpu1 - cpu0) / (args.messages * len(self.subs)) * 1e6
        # 2b. Handshakes in a crowd (a reconnect storm).
        if args.crowd:
            await self.crowd(args, out)
        for sub in self.subs:
            reset(sub.transport)
        self.subs = []
        await self.wait_stats("subs", 0)

        # 3. Long polls, woken by one message.
        done: list[asyncio.Future[float]] = []
        polls: list[Any] = []
        request = b"GET /poll HTTP/1.1\r\nHost: c\r\n\r\n"
        for start in range(0, args.polls, args.batch):
            for _ in range(min(args.batch, args.polls - start)):
                future = self.loop.create_future()
                done.append(future)
                transport, _ = await self.loop.create_connection(
                    lambda f=future: OneResponse(request, f), "127.0.0.1", self.port
                )
                polls.append(transport)
            await self.wait_stats("polls", len(polls))
        t0 = time.perf_counter()
        await self.control("/wake")
        last = max(await asyncio.gather(*done))
        out["polls_woken_s"] = last - t0
        for transport in polls:
            reset(transport)
        await self.wait_stats("polls", 0)

        # 4. The storm.
        overflows0 = listen_overflows()
        request = b"GET /hello HTTP/1.1\r\nHost: c\r\n\r\n"
        storm: list[asyncio.Future[float]] = [self.loop.create_future() for _ in range(args.storm)]
        transports: list[Any] = []

        async def connect(future: asyncio.Future[float]) -> None:
            transport, _ = await self.loop.create_connection(
                lambda: OneResponse(request, future), "127.0.0.1", self.port
            )
            transports.append(transport)

        t0 = time.perf_counter()
        await asyncio.gather(*(connect(f) for f in storm))
        last = max(await asyncio.gather(*storm))
        out["storm_s"] = last - t0
        out["storm_overflows"] = listen_overflows() - overflows0
        for transport in transports:
            reset(transport)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("port", type=int)
    parser.add_argument("server_pid", type=int)
    parser.add_argument("--subscribers", type=int, default=15000)
    parser.add_argument("--polls", type=int, default=10000)
    parser.add_argument("--storm", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5, help="single-message broadcasts")
    parser.add_argument("--messages", type=int, default=10, help="messages for the CPU figure")
    parser.add_argument("--styles", default="loop", help="loop,helper")
    parser.add_argument("--crowd", type=int, default=0, help="subscribers connecting at once")
    parser.add_argument(
        "--broadcast-per",
        type=int,
        default=200,
        help="new subscribers per broadcast while the crowd connects (a crowd of C: C // K broadcasts)",
    )
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    async def go() -> dict[str, Any]:
        return await Bench(args.port, args.server_pid).run(args)

    result = uvloop.run(go())
    result["client_cpu_s"] = resource.getrusage(resource.RUSAGE_SELF).ru_utime + (
        resource.getrusage(resource.RUSAGE_SELF).ru_stime
    )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
