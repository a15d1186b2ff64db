"""Instructions per echoed WebSocket message on the server, counted by callgrind.

A fixed stream of masked client frames, built from a seed, is fed in-process
into a server connection after its upgrade: the server's own protocol
object (``HTTPServer``'s, or aiohttp's) over a fake transport, on an asyncio
loop (``--loop uvloop`` for uvloop's). The frames go in batches, each batch in
one ``data_received``; the next batch goes once every message of the previous
one has come back. The handler echoes each message, as in
benchmarks/servers/*_ws.py.

Streams (``--stream``):

* ``bench``: what benchmarks/ws_echo.py sends: 64-byte text messages, four
  per batch, one mask key (all zero) for all;
* ``varied`` (default): text and binary messages of 1 byte to 16 KiB
  (log-uniform, so most are small), text with some non-ASCII UTF-8, a fresh
  random mask key per frame, 1 to 8 frames per batch.

Instructions per message = (count of a run of N+M messages - count of a run
of M messages) / N, in one process after a warm-up, so start-up and the
upgrade cancel out. ``--profile`` lists the hottest Python functions of
squall (self instructions per message, through benchmarks/_probe.py).

Servers: ``squall-pure`` (SQUALL_NO_SPEEDUPS=1), ``squall`` (the compiled
``_ws`` when squall was installed compiled and matches the sources; the run
says which), ``aiohttp`` (aiohttp.web's WebSocketResponse).

Usage: python benchmarks/callgrind_ws.py [--server NAME ...] [--stream bench|varied]
       [-n N] [--loop asyncio|uvloop] [--profile] [--json FILE]
Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import FakeTransport as _HotpathTransport  # noqa: E402
from callgrind_hotpath import capture_protocol  # noqa: E402

SERVERS = ["squall-pure", "squall", "aiohttp"]
SEED = 1611
WARMUP = 400  # messages
FIRST = 400  # the short measured run; the long one has FIRST + n

UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8888\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
    b"Sec-WebSocket-Version: 13\r\n\r\n"
)

# -- the frame stream ---------------------------------------------------------------------

_TEXT = "squall tornado asyncio échos ☃ naïve 日本語 message payload {}[]:,0123456789 "


def _client_frame(opcode: int, payload: bytes, key: bytes) -> bytes:
    from squall._ws import mask

    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0xFE)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0xFF)) + n.to_bytes(8, "big")
    return head + key + mask(key, payload)


def _echo_size(n: int) -> int:
    """The size of a server's unmasked, uncompressed frame with an n-byte payload."""
    return n + (2 if n < 126 else 4 if n < 65536 else 10)


def batches(kind: str, count: int, seed: int = SEED) -> list[tuple[bytes, int, int]]:
    """``count`` messages as [(one batch of frames, messages in it, bytes of their echoes)]."""
    out: list[tuple[bytes, int, int]] = []
    if kind == "bench":
        one = _client_frame(1, b"m" * 64, b"\0\0\0\0")
        while count > 0:
            k = min(4, count)
            out.append((one * k, k, k * _echo_size(64)))
            count -= k
        return out
    rng = random.Random(seed)
    while count > 0:
        k = min(rng.randint(1, 8), count)
        frames = []
        echo = 0
        for _ in range(k):
            size = int(2 ** rng.uniform(0, 14))
            if rng.random() < 0.7:
                start = rng.randrange(len(_TEXT))
                text = (_TEXT[start:] + _TEXT * (size // len(_TEXT) + 1))[:size]
                payload = text.encode()
                frames.append(_client_frame(1, payload, rng.randbytes(4)))
            else:
                payload = rng.randbytes(size)
                frames.append(_client_frame(2, payload, rng.randbytes(4)))
            echo += _echo_size(len(payload))
        out.append((b"".join(frames), k, echo))
        count -= k
    return out


# -- in-process driving ---------------------------------------------------------------------


class FakeTransport(_HotpathTransport):
    """Takes the 101 response, then the echoes.

    While ``checking`` (the warm-up), it parses every frame the server
    writes; then it only counts bytes against ``expected``, the size of the
    current batch's echoes, so that its own cost is small and the same for
    every server (aiohttp writes a frame per call, Squall a batch).
    """

    # See callgrind_hotpath.FakeTransport.
    __slots__ = ("upgraded", "on_messages", "payload_bytes", "checking", "expected", "batch")

    def __init__(self, on_messages: Any) -> None:
        asyncio.Transport.__init__(self)  # not the HTTP transport's: another sink
        self.buf = bytearray()
        self.upgraded = False
        self.on_messages = on_messages
        self.closed = False
        self.payload_bytes = 0
        self.checking = True
        self.expected = 0
        self.batch = 0
        self.extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8888)}

    def write(self, data: Any) -> None:
        if not self.checking:
            expected = self.expected - len(data)
            self.expected = expected
            if expected <= 0:
                if expected:
                    raise RuntimeError(f"{-expected} bytes more than the echoes")
                self.on_messages(self.batch)
            return
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            if not buf.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"upgrade refused: {bytes(buf[:200])!r}")
            del buf[: end + 4]
            self.upgraded = True
            self.on_messages(0)
        pos = 0
        count = 0
        end = len(buf)
        while end - pos >= 2:
            if buf[pos] & 0x0F not in (1, 2) or not buf[pos] & 0x80:
                raise RuntimeError(f"unexpected frame {bytes(buf[pos : pos + 8])!r}")
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if end - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if end - pos < header + length:
                break
            pos += header + length
            self.payload_bytes += length
            count += 1
        del buf[:pos]
        if count:
            self.on_messages(count)


class Driver:
    """Feeds batches one at a time: the next once every echo of the previous is back."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, stream: list[tuple[bytes, int, int]]
    ) -> None:
        self.loop = loop
        self.stream = iter(stream)
        self.transport = FakeTransport(self.on_messages)
        self.proto: Any = None
        self.outstanding = 0
        self.remaining = 0
        self.done: Optional[asyncio.Future[None]] = None
        self.echoed = 0

    def start(self) -> None:
        self.done = self.loop.create_future()
        self.proto.connection_made(self.transport)
        # Fed from inside the loop: the handler runs at once, in this read,
        # and the WebSocket it opens asks for the running loop.
        self.loop.call_soon(self.proto.data_received, UPGRADE)
        self.loop.run_until_complete(self.done)

    def run(self, count: int) -> int:
        """Echoes whole batches until ``count`` messages are back; returns how many."""
        before = self.echoed
        self.remaining = count
        self.done = self.loop.create_future()
        self.loop.call_soon(self.feed)
        self.loop.run_until_complete(self.done)
        return self.echoed - before

    def feed(self) -> None:
        data, k, echo = next(self.stream)
        self.outstanding = k
        transport = self.transport
        transport.batch = k
        transport.expected = echo
        self.proto.data_received(data)

    def on_messages(self, count: int) -> None:
        assert self.done is not None
        if count == 0:  # the upgrade
            self.done.set_result(None)
            return
        self.echoed += count
        self.outstanding -= count
        self.remaining -= count
        if self.outstanding:
            return
        if self.remaining > 0:
            self.loop.call_soon(self.feed)
        else:
            self.done.set_result(None)


def _squall_protocol(loop: asyncio.AbstractEventLoop) -> Any:
    from squall.httpserver import HTTPServer
    from squall.web import Application
    from squall.websocket import WebSocketHandler

    class Echo(WebSocketHandler):
        def check_origin(self, origin: str) -> bool:
            return True

        def on_message(self, message: Any) -> None:
            self.write_message(message, binary=isinstance(message, bytes))

    return capture_protocol(loop, HTTPServer(Application([("/ws", Echo)])))


def _aiohttp_protocol(loop: asyncio.AbstractEventLoop) -> Any:
    from aiohttp import WSMsgType, web

    async def echo(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await ws.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws

    app = web.Application()
    app.router.add_get("/ws", echo)
    return app._make_handler(loop=loop, access_log=None)()


_PROFILED = (
    "squall._ws",
    "squall.websocket",
    "squall.iostream",
    "squall.httpserver",
    "squall.concurrent",
    "squall.ioloop",
    "squall.escape",
)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: sets the server up, warms up, measures, writes cfg['out']."""
    server = cfg["server"]
    if server == "squall-pure":
        os.environ["SQUALL_NO_SPEEDUPS"] = "1"
    import _probe

    mod = _probe.load()
    if cfg["loop"] == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    n = cfg["n"]
    # Runs end on a batch's end: a few messages more than asked each.
    driver = Driver(loop, batches(cfg["stream"], WARMUP + FIRST + FIRST + n + 64))
    labels: list[Any] = []
    edges: Any = []
    compiled = "-"
    if server.startswith("squall"):
        import squall.speedups

        compiled = (
            ", ".join(sorted(m for m in squall.speedups.compiled_modules() if "_ws" in m))
            or f"no ({squall.speedups.reason})"
        )
        driver.proto = _squall_protocol(loop)
        if cfg["profile"]:
            from callgrind_hotpath import Probes

            import squall.websocket  # noqa: F401  (the modules the probes go into)

            probes = Probes(mod)
            # The harness's own parsing of what the server writes, kept
            # apart from the server's write.
            probes.wrap(FakeTransport, "write", "harness", "(harness) FakeTransport.write")
            probes.wrap_all(_PROFILED)
            labels = probes.labels
    else:
        driver.proto = _aiohttp_protocol(loop)
    driver.start()
    driver.run(WARMUP)
    driver.transport.checking = False
    mod.reset()
    counts: list[int] = []
    mod.measure_a(lambda: counts.append(driver.run(FIRST)))
    mod.measure_b(lambda: counts.append(driver.run(FIRST + n)))
    if labels:
        edges = mod.edges()
    result = {
        "echoed": driver.echoed,
        "counts": counts,
        "payload_bytes": driver.transport.payload_bytes,
        "loop": type(loop).__name__,
        "compiled": compiled,
        "labels": labels,
        "edges": edges,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


# -- the outer process ------------------------------------------------------------------------


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    from callgrind_hotpath import run_inner, self_costs

    result, incl, self_c = run_inner(__file__, cfg)
    result["self_c"] = sorted(self_c.items(), key=lambda kv: -kv[1])[:15]
    a, b = result["counts"]
    if b - a < cfg["n"] // 2:
        raise RuntimeError(f"{cfg['server']}: echoed {a} then {b} messages")
    result["per_message"] = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / (b - a)
    if result["labels"]:
        measured = a + b
        slots = {
            int(m.group(1)): cost
            for name, cost in incl.items()
            if (m := re.fullmatch(r"sq_probe_(\d+)", name))
        }
        result["probe_self"] = self_costs(result["labels"], result["edges"], slots, measured)
        result["probe_incl"] = {str(k): v / measured for k, v in slots.items()}
        calls: dict[str, float] = {}
        for _parent, child, count in result["edges"]:
            calls[str(child)] = calls.get(str(child), 0.0) + count / measured
        result["calls"] = calls
        result["measured"] = measured
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", choices=SERVERS)
    ap.add_argument("--stream", choices=["bench", "varied"], default="varied")
    ap.add_argument("-n", type=int, default=2000, help="messages in the difference")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--profile", action="store_true", help="hottest squall functions")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        # The connection's tasks are still pending: no teardown noise.
        os._exit(0)
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    servers = args.server or (["squall-pure"] if args.profile else SERVERS)
    report: dict[str, Any] = {}
    print(f"== instructions per echoed message, {args.stream} stream, n={args.n}, {args.loop} loop")
    for server in servers:
        cfg = {
            "server": server,
            "stream": args.stream,
            "n": args.n,
            "loop": args.loop,
            "profile": args.profile,
        }
        res = run_one(cfg)
        per = res["per_message"]
        report[server] = {"per_message": per, "compiled": res["compiled"]}
        print(f"  {server:<12} {per:>9,.0f}   (compiled _ws: {res['compiled']})")
        if args.profile:
            rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
            print("  hottest functions, self / inclusive instructions per message, calls:")
            for slot, cost in rows[: args.top]:
                name = res["labels"][int(slot)][1]
                print(
                    f"    {cost:>8,.0f} {res['probe_incl'][slot]:>8,.0f} "
                    f"{res['calls'].get(slot, 0):>5.2f}  {name}"
                )
            print("  top C functions by self instructions per message:")
            for name, cost in res["self_c"][:12]:
                print(f"    {cost / res['measured']:>8,.0f}  {name}")
        sys.stdout.flush()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
