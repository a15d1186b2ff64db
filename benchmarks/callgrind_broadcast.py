"""Server cost per delivered broadcast message, against the floor.

N WebSocket subscribers connect over loopback from a client process (which
sends the upgrade, then reads and discards everything); the server, in this
process, sends one 100-byte text message to all of them, K times. Servers:

* ``floor``: a bare asyncio Protocol per connection (it answers the upgrade
  with a canned 101) and a loop writing one pre-built frame to every
  transport: what any server must at least do;
* ``squall``: `squall.websocket.broadcast` over the WebSocketHandlers;
* ``squall-loop``: ``handler.write_message`` for each handler, as an
  application without ``broadcast`` would;
* ``aiohttp``: ``await ws.send_str`` for each WebSocketResponse.

Modes:

* default, ``callgrind``: instructions per delivery, counted in this process
  by callgrind (user space only: the kernel's share of each send is not
  counted) = (count of K2 broadcasts - count of K1) / ((K2 - K1) * N),
  after a warm-up;
* ``--real``: CPU time (user + system) of this process per delivery over
  ``--rounds`` broadcasts, each followed by one loop turn; pin it with
  ``--cpu`` (the client process goes to ``--client-cpu``). ``--repeat R``
  runs every server R times, alternating, and prints the median (and the
  spread) of each and its ratio to the floor's median.

On a quiet machine, the figures of the closing note::

    python benchmarks/callgrind_broadcast.py --real --repeat 7 -c 2000 --server floor --server squall
    python benchmarks/callgrind_broadcast.py --real --repeat 7 -c 15000 --server floor --server squall

Usage: python benchmarks/callgrind_broadcast.py [--server NAME ...] [-c N]
       [--loop uvloop|asyncio] [--real [--rounds R] [--repeat R]] [--keep FILE]
``--keep FILE`` keeps each server's callgrind output as FILE.SERVER (for
callgrind_annotate: where the instructions of a delivery go).
aiohttp runs where it is installed (the benchmark venv); callgrind needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SERVERS = ["floor", "squall", "squall-loop", "aiohttp"]
MESSAGE = "m" * 100
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
CANNED_101 = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: dOgnDw8dFv9SDP+8vzcAfQpOpJc=\r\n\r\n"
)
WARMUP = 3
K1, K2 = 2, 8  # broadcasts in the two measured runs (callgrind)


def new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


# -- the client process ------------------------------------------------------------------------


class _Sink(asyncio.Protocol):
    """Sends the upgrade, reports the 101, then discards what arrives."""

    def __init__(self, upgraded: Callable[[], None]) -> None:
        self.upgraded = upgraded
        self.head = b""

    def connection_made(self, transport: Any) -> None:
        transport.write(UPGRADE)

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            return
        self.head += data
        if b"\r\n\r\n" in self.head:
            if not self.head.startswith(b"HTTP/1.1 101"):
                raise SystemExit(f"upgrade refused: {self.head[:80]!r}")
            self.head = None  # type: ignore[assignment]
            self.upgraded()


def clients(port: int, count: int, loop_kind: str) -> None:
    """Holds ``count`` WebSockets to ``port``; prints "ready"; exits when stdin closes."""
    loop = new_loop(loop_kind)
    asyncio.set_event_loop(loop)
    ready = loop.create_future()
    left = [count]

    def upgraded() -> None:
        left[0] -= 1
        if not left[0]:
            ready.set_result(None)

    async def main() -> None:
        transports = []
        for start in range(0, count, 200):
            batch = [
                loop.create_connection(lambda: _Sink(upgraded), "127.0.0.1", port)
                for _ in range(min(200, count - start))
            ]
            transports += await asyncio.gather(*batch)
        await ready
        print("ready", flush=True)
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        await reader.read()

    loop.run_until_complete(main())


# -- the server, in this process --------------------------------------------------------------------


class Bench:
    """One server with ``count`` subscribers and a function that broadcasts once."""

    def __init__(self, server: str, count: int, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.count = count
        self.loop = loop
        self.members: list[Any] = []
        self.all_in: asyncio.Future[None] = loop.create_future()
        self.delivered = 0
        self.port = 0
        self.send: Callable[[], None] = lambda: None

    def joined(self, member: Any) -> None:
        self.members.append(member)
        if len(self.members) == self.count and not self.all_in.done():
            self.all_in.set_result(None)

    def start(self) -> None:
        getattr(self, "_start_" + self.server.replace("-", "_"))()

    def _start_floor(self) -> None:
        bench = self
        frame = bytes((0x81, len(MESSAGE))) + MESSAGE.encode()

        class Floor(asyncio.Protocol):
            def connection_made(self, transport: Any) -> None:
                self.transport = transport

            def data_received(self, data: bytes) -> None:
                if b"\r\n\r\n" in data:
                    self.transport.write(CANNED_101)
                    bench.joined(self.transport)

        server = self.loop.run_until_complete(
            self.loop.create_server(Floor, "127.0.0.1", 0, backlog=4096)
        )
        self.port = server.sockets[0].getsockname()[1]
        transports = self.members

        def send() -> None:
            for transport in transports:
                transport.write(frame)
            self.delivered += len(transports)

        self.send = send

    def _squall_app(self) -> Any:
        from squall.web import Application
        from squall.websocket import WebSocketHandler

        bench = self

        class Subscriber(WebSocketHandler):
            def check_origin(self, origin: str) -> bool:
                return True

            def open(self, *args: Any) -> None:
                bench.joined(self)

            def on_message(self, message: Any) -> None:
                pass

        return Application([("/ws", Subscriber)])

    def _listen_squall(self) -> None:
        from squall.httpserver import HTTPServer
        from squall.netutil import bind_sockets

        sockets = bind_sockets(0, "127.0.0.1", backlog=4096)
        self.port = sockets[0].getsockname()[1]
        server = HTTPServer(self._squall_app())
        server.add_sockets(sockets)

    def _start_squall(self) -> None:
        from squall.websocket import broadcast

        self._listen_squall()
        members = self.members

        def send() -> None:
            self.delivered += broadcast(members, MESSAGE).sent

        self.send = send

    def _start_squall_loop(self) -> None:
        self._listen_squall()
        members = self.members

        def send() -> None:
            for handler in members:
                handler.write_message(MESSAGE)
            self.delivered += len(members)

        self.send = send

    def _start_aiohttp(self) -> None:
        from aiohttp import web

        bench = self

        async def handler(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            bench.joined(ws)
            async for _msg in ws:
                pass
            return ws

        app = web.Application()
        app.router.add_get("/ws", handler)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=4096)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        members = self.members

        async def send_all() -> None:
            for ws in members:
                await ws.send_str(MESSAGE)

        def send() -> None:
            self.loop.run_until_complete(send_all())
            self.delivered += len(members)

        self.send = send


def inner(cfg: dict[str, Any]) -> None:
    """Runs the server (under valgrind for callgrind); writes cfg['out']."""
    loop = new_loop(cfg["loop"])
    asyncio.set_event_loop(loop)
    bench = Bench(cfg["server"], cfg["count"], loop)
    bench.start()
    cmd = [
        sys.executable,
        __file__,
        "--clients",
        json.dumps([bench.port, cfg["count"], cfg["loop"]]),
    ]
    if cfg.get("client_cpu") is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(cfg["client_cpu"]), *cmd]
    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    loop.run_until_complete(asyncio.wait_for(bench.all_in, 600))

    def turn() -> None:
        loop.run_until_complete(asyncio.sleep(0))

    for _ in range(WARMUP):
        bench.send()
        turn()
    result: dict[str, Any] = {"loop": type(loop).__name__}
    if cfg["mode"] == "callgrind":
        import _probe

        mod = _probe.load()

        def run(k: int) -> Callable[[], None]:
            def go() -> None:
                for _ in range(k):
                    bench.send()

            return go

        mod.measure_a(run(K1))
        turn()
        before = bench.delivered
        mod.measure_b(run(K2))
        result["deliveries"] = bench.delivered - before
        result["expected"] = K2 * cfg["count"]
    else:
        rounds = cfg["rounds"]
        before = bench.delivered
        from cpuclock import cpu_seconds  # (this folder is on sys.path)

        client_before = cpu_seconds(child.pid)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(rounds):
            bench.send()
            turn()
        after = resource.getrusage(resource.RUSAGE_SELF)
        result["client_cpu"] = cpu_seconds(child.pid) - client_before
        result["deliveries"] = bench.delivered - before
        result["expected"] = rounds * cfg["count"]
        result["cpu"] = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
        result["sys"] = after.ru_stime - usage.ru_stime
    child.stdin.close()  # type: ignore[union-attr]
    child.wait()
    Path(cfg["out"]).write_text(json.dumps(result))


# -- the outer process ------------------------------------------------------------------------


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = dict(cfg, out=os.path.join(tmp, "result.json"))
        cmd = [sys.executable, __file__, "--inner", json.dumps(cfg)]
        cg = os.path.join(tmp, "callgrind.out")
        if cfg["mode"] == "callgrind":
            cmd = [
                "valgrind",
                "--tool=callgrind",
                "--collect-atstart=no",
                "--toggle-collect=sq_measure_*",
                f"--callgrind-out-file={cg}",
                *cmd,
            ]
        elif cfg.get("cpu") is not None and shutil.which("taskset"):
            cmd = ["taskset", "-c", str(cfg["cpu"]), *cmd]
        env = dict(os.environ, PYTHONHASHSEED="0")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{cfg['server']} run failed:\n{proc.stderr[-3000:]}")
        result: dict[str, Any] = json.loads(Path(cfg["out"]).read_text())
        if cfg["mode"] == "callgrind":
            from callgrind_hotpath import annotate

            incl = annotate(cg, True)
            if cfg.get("keep"):
                shutil.copy(cg, f"{cfg['keep']}.{cfg['server']}")
            per_broadcast = incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)
            result["per_delivery"] = per_broadcast / ((K2 - K1) * cfg["count"])
        else:
            result["per_delivery"] = result["cpu"] / max(1, result["deliveries"]) * 1e6
    return result


def available(server: str) -> bool:
    if server != "aiohttp":
        return True
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", choices=SERVERS)
    ap.add_argument("-c", "--connections", type=int, default=1000)
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--real", action="store_true", help="CPU time instead of instructions")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=1, help="runs per server (--real), alternated")
    ap.add_argument("--cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--keep", metavar="FILE", help="keep callgrind's output as FILE.SERVER")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    ap.add_argument("--clients", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clients:
        port, count, loop_kind = json.loads(args.clients)
        clients(port, count, loop_kind)
        return 0
    if args.inner:
        inner(json.loads(args.inner))
        os._exit(0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    mode = "real" if args.real else "callgrind"
    if mode == "callgrind" and shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    servers = [s for s in (args.server or SERVERS) if available(s)]
    unit = "us CPU" if args.real else "instructions"
    repeat = max(1, args.repeat if args.real else 1)
    print(
        f"== {unit} per delivered 100-byte message, {args.connections} subscribers, {args.loop}"
        + (f", median of {repeat} alternated runs" if repeat > 1 else "")
    )
    figures: dict[str, list[float]] = {server: [] for server in servers}
    system: dict[str, list[float]] = {server: [] for server in servers}
    # The client's CPU over the same rounds: on loopback a send may run the
    # receiving side's TCP work on the sender's core or leave it to the
    # reader (a socket it holds locked takes the segment into its backlog),
    # so work moves between the two processes from run to run.
    client: dict[str, list[float]] = {server: [] for server in servers}
    last: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for server in servers:
            res = last[server] = run_one(
                {
                    "server": server,
                    "count": args.connections,
                    "loop": args.loop,
                    "mode": mode,
                    "rounds": args.rounds,
                    "cpu": args.cpu,
                    "client_cpu": args.client_cpu,
                    "keep": args.keep,
                }
            )
            figures[server].append(res["per_delivery"])
            if args.real:
                system[server].append(res["sys"] / max(1, res["deliveries"]) * 1e6)
                client[server].append(res["client_cpu"] / max(1, res["deliveries"]) * 1e6)
    floor: Optional[float] = None
    for server in servers:
        per = statistics.median(figures[server])
        if server == "floor":
            floor = per
        res = last[server]
        ratio = f"{per / floor:5.2f}x floor" if floor else ""
        shown = f"{per:8.2f}" if args.real else f"{per:8,.0f}"
        spread = f" [{min(figures[server]):.2f}-{max(figures[server]):.2f}]" if repeat > 1 else ""
        if args.real:
            spread += (
                f" (system {statistics.median(system[server]):.2f},"
                f" client {statistics.median(client[server]):.2f})"
            )
        print(
            f"  {server:<12} {shown}{spread}  {ratio}  "
            f"({res['deliveries']:,} of {res['expected']:,} delivered, {res['loop']})"
        )
        if args.real and repeat > 1:
            pairs = (
                f"{a:.2f}+{b:.2f}" for a, b in zip(figures[server], client[server], strict=True)
            )
            print(f"  {'':<12} runs, server+client: {' '.join(pairs)}")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
