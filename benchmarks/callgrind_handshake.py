"""Instructions per WebSocket handshake on the server, counted by callgrind.

A reconnect storm is a stream of handshakes: each one here is a new
connection on the server's own protocol object (from the factory
``HTTPServer`` or aiohttp hands to the loop) over a fake transport, fed a
browser's upgrade request (its headers, an Origin, a fresh
``Sec-WebSocket-Key``, an offer of permessage-deflate), run until the 101
is written and the handler's ``open`` has run, then closed by the peer (a
close frame, then the connection lost) and run until the handler is done.
The handler registers itself in a set on open and leaves it on close, as a
broadcast room does; no message is exchanged.

Instructions per handshake = (count of a run of N+M handshakes - count of a
run of M) / N, in one process after a warm-up; beside it, the cycle
collector's passes in that difference, by generation (gen0/gen1/gen2).
``--profile`` lists the hottest Python functions of squall (self instructions per handshake).

``--crowd M,K`` counts a handshake in a crowd (a reconnect storm): M connections
open first (not counted), then the runs' handshakes arriving K at a time
(the K connections made, then the K requests fed, as a loop hands over a
burst of accepts and then a burst of reads) and kept open, no close
counted; each run starts from the same state (the M open, a full
collection just made). What the crowd adds shows against ``--crowd 0,1``:
mostly the cycle collector, which the objects of K handshakes in flight
(made by one read, kept until the handler's Task has run) bring to
collect more often and to promote to the older generations.

``--census`` counts instead of running callgrind (no valgrind needed):
the objects the cycle collector tracks that K handshakes arriving at once
add, per handshake, by type, once their requests are read (the reads'
turn, before any handler's Task has run) and once their WebSockets are
open (and a full collection made). Counted as the difference of
``gc.get_objects()`` before and after, with the collector off meanwhile;
the harness's own ``Transport`` is one of them.

Servers: ``squall-pure`` (SQUALL_NO_SPEEDUPS=1), ``squall`` (the compiled
modules when squall-speedups is installed), ``aiohttp`` (where installed:
the benchmark venv), each with its defaults (Squall compresses only when a
handler asks; aiohttp's WebSocketResponse accepts the deflate offer);
``null``: a protocol that answers each request with a canned 101, joins the
room, and on the close frame leaves it and closes: the cost of the harness
itself (loop, fake transport, the request's formatting), to subtract.

Usage: python benchmarks/callgrind_handshake.py [--server NAME ...] [-n N]
       [--loop asyncio|uvloop] [--profile] [--crowd M,K] [--census]
Needs valgrind (but for --census).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import add_probe_costs, capture_protocol, run_inner  # noqa: E402

SERVERS = ["squall-pure", "squall", "aiohttp", "null"]
WARMUP = 100
FIRST = 100

REQUEST = (
    "GET /ws HTTP/1.1\r\n"
    "Host: 127.0.0.1:8888\r\n"
    "Connection: Upgrade\r\n"
    "Pragma: no-cache\r\n"
    "Cache-Control: no-cache\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36\r\n"
    "Upgrade: websocket\r\n"
    "Origin: http://127.0.0.1:8888\r\n"
    "Sec-WebSocket-Version: 13\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-GB,en;q=0.9\r\n"
    "Sec-WebSocket-Key: {key}\r\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
)
# A masked close frame with code 1001 ("going away"), as a browser leaving the page.
CLOSE = bytes((0x88, 0x82, 1, 2, 3, 4)) + bytes(
    a ^ b for a, b in zip(b"\x03\xe9", b"\x01\x02", strict=True)
)


def requests() -> Iterator[bytes]:
    """Upgrade requests, each with its own key (made one at a time: a list
    of them all would lengthen every garbage collection of the run)."""
    n = 0
    while True:
        n += 1
        yield REQUEST.format(key=base64.b64encode(n.to_bytes(16, "big")).decode()).encode()


class Transport(asyncio.Transport):
    """Takes what the server writes; tells the driver when the 101 is complete."""

    __slots__ = ("driver", "proto", "head", "closing", "extra")  # see callgrind_hotpath

    def __init__(self, driver: Driver, proto: Any) -> None:
        super().__init__()
        self.driver = driver
        self.proto = proto
        self.head = b""
        self.closing = False
        self.extra = {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8888)}

    def write(self, data: Any) -> None:
        if self.head is None:
            return
        self.head += bytes(data)
        if b"\r\n\r\n" in self.head:
            if not self.head.startswith(b"HTTP/1.1 101"):
                raise RuntimeError(f"upgrade refused: {self.head[:200]!r}")
            self.head = None  # type: ignore[assignment]
            self.driver.upgraded()

    def writelines(self, data: Any) -> None:
        for chunk in data:
            self.write(chunk)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.driver.loop.call_soon(self.driver.lost, self)

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(
        self, high: Optional[int] = None, low: Optional[int] = None
    ) -> None:
        pass


class Driver:
    """Runs handshakes one after another on fresh protocols from ``factory``."""

    def __init__(self, loop: asyncio.AbstractEventLoop, factory: Any, room: set[Any]) -> None:
        self.loop = loop
        self.factory = factory
        self.room = room
        self.stream = requests()
        self.held: list[Transport] = []
        self.waiting = 0
        self.step: Optional[asyncio.Future[None]] = None
        self.done = 0

    def upgraded(self) -> None:
        self.waiting -= 1
        assert self.step is not None
        if not self.waiting and not self.step.done():
            self.step.set_result(None)

    def lost(self, transport: Transport) -> None:
        transport.proto.connection_lost(None)

    async def one(self) -> None:
        self.step = self.loop.create_future()
        self.waiting = 1
        proto = self.factory()
        transport = Transport(self, proto)
        proto.connection_made(transport)
        proto.data_received(next(self.stream))
        await self.step
        # open() has run once the room holds the connection.
        while not self.room:
            await asyncio.sleep(0)
        proto.data_received(CLOSE)
        if not transport.closing:
            transport.close()
        while self.room:
            await asyncio.sleep(0)
        self.done += 1

    async def burst(self, count: int) -> None:
        """``count`` connections arriving together, kept open (in ``held``):
        all are made, then all send their request, as a loop hands over a
        burst of accepts and then a burst of reads; returns once every 101
        is written and every ``open`` has run."""
        self.step = self.loop.create_future()
        self.waiting = count
        goal = len(self.room) + count
        arrived = []
        for _ in range(count):
            proto = self.factory()
            transport = Transport(self, proto)
            proto.connection_made(transport)
            arrived.append(transport)
        for transport in arrived:
            transport.proto.data_received(next(self.stream))
        await self.step
        for _ in range(100):
            if len(self.room) >= goal:
                break
            await asyncio.sleep(0)
        else:
            raise RuntimeError(f"{goal - len(self.room)} opens did not run")
        self.held += arrived
        self.done += count

    def crowd(self, count: int, at_once: int) -> int:
        """``count`` handshakes in bursts of ``at_once``, kept open."""

        async def bursts() -> None:
            for start in range(0, count, at_once):
                await self.burst(min(at_once, count - start))

        before = self.done
        self.loop.run_until_complete(bursts())
        return self.done - before

    def release(self, keep: int) -> None:
        """Closes the connections held past the first ``keep`` (as their peers
        leave: a close frame each), and runs until their handlers are done."""

        async def leave() -> None:
            going, self.held = self.held[keep:], self.held[:keep]
            goal = len(self.room) - len(going)
            for transport in going:
                transport.proto.data_received(CLOSE)
                if not transport.closing:
                    transport.close()
            for _ in range(100):
                if len(self.room) <= goal:
                    return
                await asyncio.sleep(0)
            raise RuntimeError(f"{len(self.room) - goal} connections did not close")

        self.loop.run_until_complete(leave())

    def run(self, count: int) -> int:
        async def many() -> None:
            for _ in range(count):
                await self.one()

        before = self.done
        self.loop.run_until_complete(many())
        return self.done - before


def _squall_factory(loop: asyncio.AbstractEventLoop, room: set[Any]) -> Any:
    from squall.httpserver import HTTPServer
    from squall.web import Application
    from squall.websocket import WebSocketHandler

    class Member(WebSocketHandler):
        def open(self, *args: Any) -> None:
            room.add(self)

        def on_message(self, message: Any) -> None:
            pass

        def on_close(self) -> None:
            room.discard(self)

    made: list[Any] = []
    first = capture_protocol(loop, HTTPServer(Application([("/ws", Member)])), made)
    del first
    return made[0]


class _NullProtocol(asyncio.Protocol):
    """The harness's floor: a canned 101, no parsing, no WebSocket."""

    ANSWER = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"

    def __init__(self, room: set[Any]) -> None:
        self.room = room
        self.transport: Any = None
        self.upgraded = False

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.upgraded = True
            self.transport.write(self.ANSWER)
            self.room.add(self)
        else:
            self.room.discard(self)
            self.transport.close()

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.transport = None


def _null_factory(loop: asyncio.AbstractEventLoop, room: set[Any]) -> Any:
    return lambda: _NullProtocol(room)


def _aiohttp_factory(loop: asyncio.AbstractEventLoop, room: set[Any]) -> Any:
    from aiohttp import web

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        room.add(ws)
        try:
            async for _msg in ws:
                pass
        finally:
            room.discard(ws)
        return ws

    app = web.Application()
    app.router.add_get("/ws", handler)
    return app._make_handler(loop=loop, access_log=None)


_PROFILED = (
    "squall._ws",
    "squall.websocket",
    "squall.web",
    "squall.httputil",
    "squall.httpserver",
    "squall._h1",
    "squall.iostream",
    "squall.concurrent",
    "squall.ioloop",
    "squall.escape",
    "squall.routing",
)


def _tally(objects: list[Any], known: set[int]) -> collections.Counter[str]:
    """The objects not in ``known``, counted by type."""
    counts: collections.Counter[str] = collections.Counter()
    for obj in objects:
        if id(obj) not in known:
            kind = type(obj)
            counts[f"{kind.__module__}.{kind.__qualname__}"] += 1
    return counts


def census(driver: Driver, at_once: int) -> dict[str, dict[str, float]]:
    """Tracked objects per handshake, by type, that ``at_once`` handshakes
    arriving together add: once their requests are read, and once open."""
    loop = driver.loop
    gc.collect()
    gc.disable()
    try:
        known = {id(obj) for obj in gc.get_objects()}
        tallies: dict[str, collections.Counter[str]] = {}

        async def arrive() -> None:
            driver.step = loop.create_future()
            driver.waiting = at_once
            goal = len(driver.room) + at_once
            arrived = [Transport(driver, driver.factory()) for _ in range(at_once)]
            for transport in arrived:
                transport.proto.connection_made(transport)
            for transport in arrived:
                transport.proto.data_received(next(driver.stream))
            # (Counted before anything of the census's own is made.)
            tallies["read"] = _tally(gc.get_objects(), known)
            await driver.step
            for _ in range(100):
                if len(driver.room) >= goal:
                    break
                await asyncio.sleep(0)
            driver.held += arrived

        loop.run_until_complete(arrive())
        gc.collect()
        tallies["open"] = _tally(gc.get_objects(), known)
    finally:
        gc.enable()
    return {
        stage: {name: n / at_once for name, n in counts.most_common() if n >= at_once // 2}
        for stage, counts in tallies.items()
    }


def _make_driver(cfg: dict[str, Any]) -> Driver:
    if cfg["loop"] == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    room: set[Any] = set()
    server = cfg["server"]
    if server.startswith("squall"):
        factory = _squall_factory(loop, room)
    elif server == "null":
        factory = _null_factory(loop, room)
    else:
        factory = _aiohttp_factory(loop, room)
    return Driver(loop, factory, room)


def inner(cfg: dict[str, Any]) -> None:
    server = cfg["server"]
    if server == "squall-pure":
        os.environ["SQUALL_NO_SPEEDUPS"] = "1"
    if cfg.get("census"):
        driver = _make_driver(cfg)
        driver.run(WARMUP)
        driver.crowd(cfg["open"], max(cfg["at_once"], 1))
        result = census(driver, max(cfg["at_once"], 1))
        Path(cfg["out"]).write_text(json.dumps(result))
        return
    import _probe

    mod = _probe.load()
    labels: list[Any] = []
    driver = _make_driver(cfg)
    loop = driver.loop
    driver.run(WARMUP)
    if cfg["profile"] and server.startswith("squall"):
        from callgrind_hotpath import Probes

        import squall.websocket  # noqa: F401

        probes = Probes(mod)
        probes.wrap_all(_PROFILED)
        labels = probes.labels
    counts: list[int] = []
    # The cycle collector's passes in each run, per generation (read
    # outside the counted calls): a full collection in one run and not the
    # other moves a crowd's figure by several percent.
    passes: list[list[int]] = []

    def measured(measure: Any, run: Any) -> None:
        before = [g["collections"] for g in gc.get_stats()]
        measure(run)
        passes.append([g["collections"] - b for g, b in zip(gc.get_stats(), before, strict=True)])

    if cfg["at_once"]:
        # The crowd: M connections open (unmeasured), then FIRST and
        # FIRST + N more arriving in bursts, each run from the same state:
        # the M open and a full collection just made (the runs' own
        # connections closed between them).
        driver.crowd(cfg["open"], cfg["at_once"])
        for measure, count in ((mod.measure_a, FIRST), (mod.measure_b, FIRST + cfg["n"])):
            gc.collect()
            measured(measure, lambda c=count: counts.append(driver.crowd(c, cfg["at_once"])))
            driver.release(cfg["open"])
    else:
        mod.reset()
        measured(mod.measure_a, lambda: counts.append(driver.run(FIRST)))
        measured(mod.measure_b, lambda: counts.append(driver.run(FIRST + cfg["n"])))
    result = {
        "counts": counts,
        "passes": passes,
        "loop": type(loop).__name__,
        "labels": labels,
        "edges": mod.edges() if labels else [],
    }
    Path(cfg["out"]).write_text(json.dumps(result))


def run_one(cfg: dict[str, Any], keep: Optional[str] = None) -> dict[str, Any]:
    result, incl, _ = run_inner(__file__, cfg, keep)
    a, b = result["counts"]
    result["per_handshake"] = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / (b - a)
    if result["labels"]:
        add_probe_costs(result, incl, a + b)
    return result


def run_census(args: argparse.Namespace) -> int:
    """Prints `census` for each server, each in a process of its own."""
    held, at_once = (int(x) for x in args.crowd.split(",")) if args.crowd else (0, 100)
    print(
        f"== objects the cycle collector tracks, per handshake ({held} open, {at_once} "
        f"arriving at once), {args.loop} loop"
    )
    for server in args.server or [s for s in SERVERS if s != "null"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "census.json"
            cfg = {"server": server, "loop": args.loop, "open": held, "at_once": at_once}
            cfg.update(census=True, out=str(out))
            proc = subprocess.run(
                [sys.executable, __file__, "--inner", json.dumps(cfg)], check=False
            )
            if proc.returncode:
                print(f"  {server}: failed ({proc.returncode})")
                continue
            result = json.loads(out.read_text())
        for stage, label in (("read", "requests read"), ("open", "open")):
            rows = result[stage]
            print(f"  {server}, {label}: {sum(rows.values()):.1f}")
            for name, n in rows.items():
                print(f"    {n:6.2f}  {name}")
        sys.stdout.flush()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", choices=SERVERS)
    ap.add_argument("-n", type=int, default=1000, help="handshakes in the difference")
    ap.add_argument(
        "--crowd",
        metavar="M,K",
        help="in a crowd: M connections open, the handshakes arriving K at once and "
        "kept open (no close counted); e.g. 5000,500",
    )
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    ap.add_argument("--profile", action="store_true", help="hottest squall functions")
    ap.add_argument("--top", type=int, default=40)
    ap.add_argument(
        "--census",
        action="store_true",
        help="count tracked objects per handshake by type (no valgrind)",
    )
    ap.add_argument("--keep", help="keep the callgrind output in KEEP.SERVER (callgrind_annotate)")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        os._exit(0)
    if args.census:
        return run_census(args)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.crowd and args.profile:
        # (The probes would count the closes between the runs too.)
        ap.error("--profile counts the handshake alone: not with --crowd")
    servers = args.server or (["squall-pure"] if args.profile else SERVERS)
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        servers = [s for s in servers if s != "aiohttp"]
    held, at_once = (int(x) for x in args.crowd.split(",")) if args.crowd else (0, 0)
    if args.crowd:
        print(
            f"== instructions per WebSocket handshake in a crowd ({held} open, {at_once} "
            f"arriving at once, kept open), {args.loop} loop"
        )
    else:
        print(f"== instructions per WebSocket handshake (connect, 101, close), {args.loop} loop")
    for server in servers:
        cfg = {
            "server": server,
            "n": args.n,
            "loop": args.loop,
            "profile": args.profile,
            "open": held,
            "at_once": at_once,
        }
        res = run_one(cfg, f"{args.keep}.{server}" if args.keep else None)
        # (The difference of the two runs' collector passes, gen0/gen1/gen2.)
        extra = "/".join(str(b - a) for a, b in zip(*res["passes"], strict=True))
        print(f"  {server:<12} {res['per_handshake']:>10,.0f}   collections {extra}")
        if args.profile and "probe_self" in res:
            # (Only squall's servers are probed: aiohttp and null have no rows.)
            rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
            print("  hottest functions, self / inclusive instructions per handshake:")
            for slot, cost in rows[: args.top]:
                name = res["labels"][int(slot)][1]
                print(f"    {cost:>8,.0f} {res['probe_incl'][slot]:>8,.0f}  {name}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
