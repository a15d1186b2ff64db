"""Bare-protocol WebSocket subscribers for ``make bench-cluster``: one process, many sockets.

``python subscribers.py SPEC`` (SPEC: a JSON object, see `main`) opens
``count`` WebSockets, spread over the ``targets`` (host, port) in turn and
bound to the ``sources`` addresses in turn (so that ports do not run out),
each subscribing to one channel: ``GET /ws?ch=N`` for Squall, or Engine.IO
v4 over WebSocket (``/socket.io/?EIO=4&transport=websocket&ch=N``, then the
``40`` namespace connect; pings answered) for Socket.IO. Frames are parsed
by hand (a server's frames are unmasked; ours are masked with a zero key,
which RFC 6455 allows) on uvloop when it is installed.

Each message is ``"<channel> <sequence> <send time> ..."``: a connection
counts what it got, duplicates (a sequence at or below the last seen), the
delivery latency (receive time minus send time, one clock: every namespace
shares the kernel's) into a 0.1 ms histogram, and its longest silence
between two messages. It prints ``{"held": N, ...}`` once connected, and on
a ``report`` line on stdin, the report, then exits. With ``reconnect``, a
closed connection reconnects (after 50-550 ms, growing) and the time from
its loss to its first message again is recorded. With ``resume`` too
(Squall's node_app.py under ``$BENCH_RESUME=1``), each message starts with
its position, which a reconnecting connection sends back (``&since=``) to
be given what it missed; a ``reset`` (history no longer has it) is counted.
With ``churn`` (a fraction F, with ``reconnect`` and ``resume``), from the
``mark`` line until a ``calm`` one, every second F of the connections
(chosen at random among those that have a position) are closed by the
client and reconnect as above, resuming from their last position.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import struct
import sys
import time
from collections import Counter
from typing import Any, Optional

try:
    import uvloop
except ImportError:  # the stdlib loop works, more slowly
    uvloop = None


class Stats:
    __slots__ = (
        "received",
        "dups",
        "latency",
        "lost_at",
        "resume",
        "reconnects",
        "closed",
        "bytes",
        "resets",
        "churned",
        "churn_short",
    )

    def __init__(self) -> None:
        self.received = 0
        self.dups = 0
        self.latency: Counter[int] = Counter()
        self.lost_at: dict[int, float] = {}
        self.resume: list[float] = []  # seconds from a connection's loss to its next message
        self.reconnects = 0
        self.closed = 0
        self.bytes = 0
        self.resets = 0  # reconnections told that what they missed is gone
        self.churned = 0  # connections the churn closed
        self.churn_short = 0  # of those it meant to close, ones with no position yet


class Sub(asyncio.Protocol):
    __slots__ = (
        "client",
        "index",
        "channel",
        "transport",
        "buf",
        "upgraded",
        "held",
        "last_seq",
        "seen",
        "last_at",
        "max_gap",
        "failed",
        "position",
    )

    def __init__(self, client: Client, index: int, channel: int) -> None:
        self.client = client
        self.index = index
        self.channel = channel
        self.transport: Any = None
        self.buf = b""
        self.upgraded = False
        self.held = False
        self.last_seq = 0
        self.seen = 0
        self.last_at = 0.0
        self.max_gap = 0.0
        self.failed = False
        self.position = b""  # the last message's, with resume

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.buf = b""
        self.upgraded = False
        self.held = False
        transport.write(self.client.request(self.channel, self.position))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                self.failed = True
                self.client.refused(buf[:200])
                self.transport.close()
                return
            self.upgraded = True
            buf = buf[end + 4 :]
            if not self.client.sio:
                self._held()
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            head = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                head = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                head = 10
            if n - pos < head + length:
                break
            opcode = buf[pos] & 0x0F
            payload = buf[pos + head : pos + head + length]
            pos += head + length
            if opcode == 1:
                self._text(payload)
            elif opcode == 8:
                self.transport.close()
                return
            elif opcode == 9:
                self.transport.write(b"\x8a\x80\x00\x00\x00\x00")
        self.buf = buf[pos:] if pos < n else b""

    def _held(self) -> None:
        self.held = True
        self.client.on_held(self)

    def _text(self, payload: bytes) -> None:
        if self.client.sio:
            kind = payload[:2]
            if kind == b"42":
                # 42["m","<ch> <seq> <t> ..."]
                payload = payload[8:]
            elif payload[:1] == b"2":
                self.transport.write(b"\x81\x81\x00\x00\x00\x003")  # pong, "3"
                return
            elif payload[:1] == b"0":
                self.transport.write(b"\x81\x82\x00\x00\x00\x0040")  # connect to "/"
                return
            elif kind == b"40":
                self._held()
                return
            else:
                return
        if self.client.resume:
            position, _, payload = payload.partition(b" ")
            if position == b"reset":
                self.position = payload
                self.client.stats.resets += 1
                return
            self.position = position
        now = time.time()
        parts = payload.split(b" ", 3)
        seq = int(parts[1])
        stats = self.client.stats
        if seq <= self.last_seq:
            stats.dups += 1
            return
        self.last_seq = seq
        self.seen += 1
        stats.received += 1
        stats.latency[int((now - float(parts[2])) * 10000)] += 1
        lost = stats.lost_at.pop(self.index, None)
        if lost is not None:
            stats.resume.append(now - lost)
        elif self.last_at:
            gap = now - self.last_at
            if gap > self.max_gap:
                self.max_gap = gap
        self.last_at = now

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        was_held = self.held
        self.held = False
        self.transport = None
        self.client.on_lost(self, was_held)


class Client:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.sio = spec.get("protocol") == "sio"
        self.targets = [tuple(t) for t in spec["targets"]]
        self.sources = spec.get("sources") or [None]
        self.reconnect = bool(spec.get("reconnect"))
        self.resume = bool(spec.get("resume"))
        self.stats = Stats()
        self.subs: list[Sub] = []
        self.held = 0
        self.refusals: list[str] = []
        self.failed = 0
        self.all_held = asyncio.Event()
        self.want = int(spec["count"])
        self._requests: dict[int, bytes] = {}

    def request(self, channel: int, position: bytes = b"") -> bytes:
        if position:
            return self._request(f"/ws?ch={channel}&since={position.decode('ascii')}")
        req = self._requests.get(channel)
        if req is None:
            path = (
                f"/socket.io/?EIO=4&transport=websocket&ch={channel}"
                if self.sio
                else f"/ws?ch={channel}"
            )
            req = self._requests[channel] = self._request(path)
        return req

    @staticmethod
    def _request(path: str) -> bytes:
        return (
            f"GET {path} HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()

    def refused(self, head: bytes, count: int = 1) -> None:
        """``count`` connections failed (``head``: the first one's answer or error)."""
        self.failed += count
        if len(self.refusals) < 3:
            self.refusals.append(head.decode("latin-1"))
        self._check_done()

    def on_held(self, sub: Sub) -> None:
        self.held += 1
        self._check_done()

    def _check_done(self) -> None:
        # Every connection has either been held or failed: nothing to wait for.
        if self.held + self.failed >= self.want:
            self.all_held.set()

    def on_lost(self, sub: Sub, was_held: bool) -> None:
        if was_held:
            self.held -= 1
        elif not sub.failed and not self.reconnect:
            sub.failed = True
            self.refused(b"closed before the handshake ended")
        self.stats.closed += 1
        if self.reconnect and not self.stopping:
            self.stats.lost_at.setdefault(sub.index, time.time())
            asyncio.get_running_loop().create_task(self._redial(sub, 1))

    stopping = False

    async def churn(self, fraction: float) -> None:
        """Closes ``fraction`` of the connections every second, at random among those with a position."""
        want = round(fraction * len(self.subs))
        rng = random.Random(int(self.spec.get("first", 0)))
        while not self.stopping:
            await asyncio.sleep(1.0)
            ready = [s for s in self.subs if s.held and s.position and s.transport is not None]
            chosen = rng.sample(ready, min(want, len(ready)))
            self.stats.churn_short += want - len(chosen)
            for s in chosen:
                s.transport.close()
            self.stats.churned += len(chosen)

    async def _dial(self, sub: Sub) -> None:
        host, port = self.targets[sub.index % len(self.targets)]
        source = self.sources[sub.index % len(self.sources)]
        loop = asyncio.get_running_loop()
        await loop.create_connection(
            lambda: sub, host, port, local_addr=(source, 0) if source else None
        )

    async def _redial(self, sub: Sub, attempt: int) -> None:
        for attempt in range(1, 40):
            await asyncio.sleep(random.uniform(0.05, 0.55) * min(attempt, 4))
            if self.stopping:
                return
            try:
                await self._dial(sub)
                self.stats.reconnects += 1
                return
            except OSError:
                continue

    async def connect_all(self, batch: int, deadline: float) -> None:
        first = int(self.spec.get("first", 0))
        channels = int(self.spec["channels"])
        for i in range(self.want):
            index = first + i
            self.subs.append(Sub(self, index, index % channels))
        for start in range(0, len(self.subs), batch):
            group = self.subs[start : start + batch]
            results = await asyncio.gather(*(self._dial(s) for s in group), return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                self.refused(repr(errors[0]).encode(), len(errors))
            if time.monotonic() > deadline:
                break
        try:
            await asyncio.wait_for(self.all_held.wait(), max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            pass

    def report(self) -> dict[str, Any]:
        gaps = sorted(s.max_gap for s in self.subs)
        per_channel: dict[int, list[int]] = {}
        for s in self.subs:
            per_channel.setdefault(s.channel, []).append(s.seen)
        return {
            "held": self.held,
            "received": self.stats.received,
            "dups": self.stats.dups,
            "latency": dict(self.stats.latency),
            "seen": {str(ch): counts for ch, counts in per_channel.items()},
            "max_gap": gaps[-1] if gaps else 0.0,
            "resume": self.stats.resume,
            "unresumed": len(self.stats.lost_at),
            "reconnects": self.stats.reconnects,
            "resets": self.stats.resets,
            "closed": self.stats.closed,
            "churned": self.stats.churned,
            "churn_short": self.stats.churn_short,
            "refusals": self.refusals,
            "cpu": time.process_time(),
        }


async def run(spec: dict[str, Any]) -> None:
    client = Client(spec)
    deadline = time.monotonic() + float(spec.get("connect_timeout", 60))
    await client.connect_all(int(spec.get("batch", 200)), deadline)
    print(
        json.dumps({"held": client.held, "failed": client.failed, "refusals": client.refusals}),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    churn: Optional[asyncio.Task[None]] = None
    fraction = float(spec.get("churn") or 0)
    while True:
        line = await reader.readline()
        if not line or line.strip() == b"report":
            break
        if line.strip() == b"mark":  # gaps measured from here on
            for s in client.subs:
                s.max_gap = 0.0
                s.last_at = 0.0
            if fraction > 0 and churn is None:
                churn = asyncio.ensure_future(client.churn(fraction))
        elif line.strip() == b"calm" and churn is not None:
            churn.cancel()
    if churn is not None:
        churn.cancel()
    client.stopping = True
    print(json.dumps({"report": client.report()}), flush=True)
    for s in client.subs:
        if s.transport is not None:
            s.transport.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            s.transport.close()


def main() -> None:
    """``SPEC``: {"targets": [[host, port], ...], "sources": [addr, ...], "count": N,
    "channels": C, "first": index of the first subscriber, "protocol": "ws" | "sio",
    "reconnect": bool, "resume": bool, "churn": fraction closed a second, "batch": N,
    "connect_timeout": seconds}."""
    spec = json.loads(sys.argv[1])
    if uvloop is not None:
        uvloop.run(run(spec))
    else:
        asyncio.run(run(spec))


if __name__ == "__main__":
    main()
