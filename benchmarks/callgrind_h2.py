"""Instructions per HTTP/2 request on the server's hot path, counted by callgrind.

A fixed frame stream, built once from a seed, is fed in-process to
`HTTPServer(app, http2=True)`'s protocol object over a fake transport, on an
asyncio loop (``--loop uvloop``: uvloop's, which h2_bench.py's servers run
on), under ``valgrind --tool=callgrind`` (instruction counts do not move
when the machine is busy, so they can decide an optimisation). The
client side is encoded beforehand by the ``h2`` package: one connection,
the preface, then ``--batch`` requests per read (h2load's ``-m``), the next
read once every response of the previous one is complete.

Streams: ``h2load`` repeats h2load's request (``GET /?n=bench``, its user
agent; after the first, HPACK sends it as a few indexed bytes), the shape
``benchmarks/h2_bench.py`` measures; ``varied`` gives each request its own
query string, cookie and user agent, as ``callgrind_hotpath.py`` does.

Servers: ``app`` is Squall's own ``Application`` (``HTTPServer(app,
http2=True)``, a RequestHandler that writes the query argument); ``asgi``
is the server ``squall run --http2 --no-access-log`` builds around the bare
ASGI callable of benchmarks/servers/asgi_starlette.py (two constant
messages), the shape ``make bench-h2`` measures.

Instructions per request = (count of a run of N+M requests - count of a run
of M requests) / N, after a warm-up, so start-up costs cancel. The count
includes the fake transport's reading of the server's frames (about 13,800
instructions per request, "(harness) FakeTransport.write" in ``--profile``),
which no real server pays: compare figures with each other, not with a
server's CPU time. Stages (from
a second run with probes; see _probe.py): ``h2 core`` is squall._h2
(framing, HPACK, flow control, including what it calls in the ``h2``
package), ``app`` the delegates (routing, RequestHandler), ``driver`` the
rest of _h2protocol's data_received and _h2session's flush (the stream, _h2stream,
included).

Usage:
  python benchmarks/callgrind_h2.py [--server app|asgi] [--stream h2load|varied]
                                    [--loop asyncio|uvloop] [--batch 16] [-n 2000]
                                    [--profile | --total] [--json FILE] [--keep FILE]
Installs nothing: needs valgrind (`make bench-callgrind` installs it with apt).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import FakeTransport as _HotpathTransport  # noqa: E402
from callgrind_hotpath import (  # noqa: E402
    Probes,
    _FixedClock,
    capture_protocol,
    make_request,
    run_inner,
    self_costs,
)

WARMUP = 320
FIRST = 320  # the short run; the long run has FIRST + n requests
SEED = 1311
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

STAGES = [
    ("request", "squall.httpserver._h2protocol", "_H2Protocol.data_received"),
    ("h2 core", "squall._h2._base", "H2Base.receive_data"),
    ("h2 core", "squall._h2._connection", "H2Connection.send_headers"),
    ("h2 core", "squall._h2._base", "H2Base.send_data"),
    ("h2 core", "squall._h2._base", "H2Base.end_stream"),
    ("h2 core", "squall._h2._base", "H2Base.consumed"),
    ("h2 core", "squall._h2._base", "H2Base.data_to_send"),
    ("app", "squall.web.application", "Application.start_request"),
    ("app", "squall.web.application", "_HandlerDelegate.headers_received"),
    ("app", "squall.web.application", "_HandlerDelegate.finish"),
]


# -- the frame stream ---------------------------------------------------------------------


def _h2load_fields(n: int, rng: random.Random) -> list[tuple[str, str]]:
    return [
        (":method", "GET"),
        (":path", "/?n=bench"),
        (":scheme", "http"),
        (":authority", "127.0.0.1:8888"),
        ("user-agent", "h2load nghttp2/1.52.0"),
    ]


def _varied_fields(n: int, rng: random.Random) -> list[tuple[str, str]]:
    # The HTTP/1.1 benchmark's request, as an HTTP/2 header list.
    head = make_request(n, rng).decode("latin-1").split("\r\n")
    method, target, _ = head[0].split(" ")
    fields = [(":method", method), (":path", target), (":scheme", "http")]
    for line in head[1:]:
        if not line:
            continue
        name, value = line.split(": ", 1)
        name = name.lower()
        if name == "host":
            fields.insert(3, (":authority", value))
        elif name != "connection":
            fields.append((name, value))
    return fields


def frame_stream(kind: str, batches: int, batch: int, seed: int = SEED) -> list[bytes]:
    """The client's reads: [preface + SETTINGS + WINDOW_UPDATE, batch, batch, ...]."""
    import h2.config
    import h2.connection
    import h2.settings

    rng = random.Random(seed)
    fields = _h2load_fields if kind == "h2load" else _varied_fields
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1},
    )
    conn.initiate_connection()
    # Room for every response body of the run on the connection window.
    conn.increment_flow_control_window(2**31 - 1 - 65535)
    reads = [conn.data_to_send()]
    n = 0
    for _ in range(batches):
        for _ in range(batch):
            n += 1
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, fields(n, rng), end_stream=True)
            # Forget the stream: the responses are never fed back to this
            # encoder, and h2 would refuse more than 100 open streams.
            del conn.streams[sid]
        reads.append(conn.data_to_send())
    return reads


# -- in-process driving ---------------------------------------------------------------------


class FakeTransport(_HotpathTransport):
    """Reads the server's frames; calls ``on_response()`` per stream ended."""

    __slots__ = ("protocol", "statuses")  # see callgrind_hotpath.FakeTransport

    def __init__(self, on_response: Any) -> None:
        super().__init__(on_response)
        self.protocol: Any = None
        self.statuses: dict[int, int] = defaultdict(int)

    def write(self, data: Any) -> None:
        buf = self.buf + bytes(data)
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos : pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            kind, flags = buf[pos + 3], buf[pos + 4]
            if kind == 1:
                # The status is the first field: 0x88 is ":status 200" indexed.
                self.statuses[200 if buf[pos + 9 : pos + 11].find(b"\x88") >= 0 else 0] += 1
            if kind in (0, 1) and flags & 0x1:
                self.on_response()
            elif kind == 3:
                raise RuntimeError("the server reset a stream")
            elif kind == 7:
                raise RuntimeError(f"the server sent GOAWAY: {buf[pos + 9 : pos + 9 + length]!r}")
            pos += 9 + length
        self.buf = buf[pos:]

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


class Driver:
    """Feeds one read at a time: the next once all its responses are complete."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reads: list[bytes], batch: int) -> None:
        self.loop = loop
        self.reads = iter(reads)
        self.batch = batch
        self.transport = FakeTransport(self.on_response)
        self.outstanding = 0
        self.remaining = 0
        self.done: asyncio.Future[None] | None = None

    def start(self, proto: Any) -> None:
        self.transport.protocol = proto
        proto.connection_made(self.transport)
        self.transport.protocol.data_received(next(self.reads))

    def run(self, requests: int) -> None:
        assert requests % self.batch == 0
        self.remaining = requests // self.batch
        self.done = self.loop.create_future()
        self.loop.call_soon(self.feed)
        self.loop.run_until_complete(self.done)

    def feed(self) -> None:
        self.outstanding = self.batch
        self.transport.protocol.data_received(next(self.reads))

    def on_response(self) -> None:
        self.outstanding -= 1
        if self.outstanding:
            return
        self.remaining -= 1
        if self.remaining:
            self.loop.call_soon(self.feed)
        else:
            assert self.done is not None
            self.done.set_result(None)


def _server_protocol(loop: asyncio.AbstractEventLoop, server: str = "app") -> Any:
    if server == "asgi":
        return _asgi_protocol(loop)

    from squall.httpserver import HTTPServer
    from squall.web import Application, RequestHandler

    class Hello(RequestHandler):
        def get(self) -> None:
            self.set_header("Content-Type", "text/plain")
            self.write("Hello, " + self.get_argument("n", "world") + "!")

    app = Application([("/", Hello)], log_function=lambda handler: None)
    return capture_protocol(loop, HTTPServer(app, http2=True))


def _asgi_protocol(loop: asyncio.AbstractEventLoop) -> Any:
    sys.path.insert(0, str(HERE / "servers"))
    import asgi_starlette

    import squall.asgi._http
    import squall.asgi._scope
    from squall.cli._options import Config
    from squall.cli._target import serve_target
    from squall.cli._worker import build_server

    # A clock that stands still: the Date header is formatted once.
    squall.asgi._scope.time = squall.asgi._http.time = _FixedClock()  # type: ignore[assignment]
    config = Config(target="asgi_starlette:bare", access_log=False, http2=True)
    served = serve_target(asgi_starlette.bare, config.target, config.root_path, config.factory)
    server, _ = build_server(config, served, None)
    return capture_protocol(loop, server)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: builds the server, warms up, measures, writes cfg['out']."""
    import _probe

    mod = _probe.load()
    import squall.web.handler

    # The Date header's module (squall.web._status; squall.web.handler before).
    dated = sys.modules.get("squall.web._status", squall.web.handler)
    if getattr(dated, "time", None) is not None:
        dated.time = _FixedClock()  # type: ignore[attr-defined]
    loop: asyncio.AbstractEventLoop
    if cfg.get("loop") == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    batch = cfg["batch"]
    total = WARMUP + FIRST + FIRST + cfg["n"]
    reads = frame_stream(cfg["stream"], total // batch, batch)
    driver = Driver(loop, reads, batch)
    probes = Probes(mod)
    probes.wrap(FakeTransport, "write", "transport", "(harness) FakeTransport.write")
    if cfg["probes"] == "stages":
        for label, module, qualname in STAGES:
            probes.wrap_path(label, module, qualname)
    elif cfg["probes"] == "all":
        # Imported before wrapping: the driver, its stream and the ASGI
        # server are imported lazily, and a module not yet loaded is not
        # wrapped.
        import squall._h2
        import squall.asgi._http
        import squall.asgi._scope
        import squall.httpserver._h2protocol
        import squall.httpserver._h2session
        import squall.httpserver._h2stream
        import squall.web.application  # noqa: F401

        probes.wrap_all(
            (
                "squall._h2",
                "squall.httpserver._h2protocol",
                "squall.httpserver._h2session",
                "squall.httpserver._h2stream",
                "squall.httputil",
                "squall.web",
                "squall.asgi",
            )
        )
    driver.start(_server_protocol(loop, cfg.get("server", "app")))
    driver.run(WARMUP)
    mod.reset()
    mod.measure_a(lambda: driver.run(FIRST))
    mod.measure_b(lambda: driver.run(FIRST + cfg["n"]))
    result = {
        "statuses": dict(driver.transport.statuses),
        "labels": probes.labels,
        "edges": mod.edges(),
        "protocol": type(driver.transport.protocol).__name__,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


# -- the outer process ------------------------------------------------------------------------


def run_one(cfg: dict[str, Any]) -> dict[str, Any]:
    result, incl, _ = run_inner(__file__, cfg, cfg.get("keep"), build_from_env=True)
    n = cfg["n"]
    result["per_request"] = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / n
    measured = FIRST + FIRST + n
    slots = {}
    for name, cost in incl.items():
        # A recursive call's entry ("sq_probe_12'2") is inside its outer one's.
        if name.startswith("sq_probe_") and name[len("sq_probe_") :].isdigit():
            slots[int(name[len("sq_probe_") :])] = cost
    result["probe_self"] = self_costs(result["labels"], result["edges"], slots, measured)
    result["probe_incl"] = {str(k): v / measured for k, v in slots.items()}
    calls: dict[str, float] = defaultdict(float)
    for _parent, child, count in result["edges"]:
        calls[str(child)] += count / measured
    result["calls"] = calls
    expected = WARMUP + FIRST + FIRST + n
    if result["statuses"].get("200") != expected:
        raise RuntimeError(f"responses {result['statuses']}, expected {expected} x 200")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", choices=["app", "asgi"], default="app")
    ap.add_argument("--stream", choices=["h2load", "varied"], default="h2load")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--batch", type=int, default=16, help="requests per read (h2load -m)")
    ap.add_argument("-n", type=int, default=1600, help="requests in the difference")
    ap.add_argument("--profile", action="store_true", help="hottest functions")
    ap.add_argument("--total", action="store_true", help="the total only (one valgrind run)")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--keep",
        metavar="FILE",
        help="keep the first run's callgrind output (no probes) as FILE, for callgrind_annotate",
    )
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.n % args.batch or FIRST % args.batch or WARMUP % args.batch:
        print(f"-n, {FIRST} and {WARMUP} must be multiples of --batch", file=sys.stderr)
        return 2
    cfg = {
        "server": args.server,
        "stream": args.stream,
        "batch": args.batch,
        "n": args.n,
        "loop": args.loop,
        "probes": "none",
    }
    total = run_one(dict(cfg, keep=args.keep))
    per = total["per_request"]
    report: dict[str, Any] = {
        "server": args.server,
        "stream": args.stream,
        "loop": args.loop,
        "batch": args.batch,
        "total": per,
    }
    print(
        f"== HTTP/2 instructions per request: {args.server} server, {args.stream} stream, "
        f"{args.loop} loop, {args.batch} per read, "
        f"n={args.n}: {per:,.0f} (server protocol {total['protocol']})"
    )
    if args.total:
        pass
    elif args.profile:
        res = run_one(dict(cfg, probes="all"))
        rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
        print(
            f"  hottest functions, self / inclusive per request (total with probes "
            f"{res['per_request']:,.0f}):"
        )
        listing = []
        for slot, cost in rows[:30]:
            name = res["labels"][int(slot)][1]
            incl = res["probe_incl"][slot]
            print(
                f"  {cost:>8,.0f} self {incl:>8,.0f} incl {res['calls'][slot]:>5.2f} calls  {name}"
            )
            listing.append({"function": name, "self": cost, "incl": incl})
        report["profile"] = listing
    else:
        staged = run_one(dict(cfg, probes="stages"))
        stages: dict[str, float] = defaultdict(float)
        for slot, cost in staged["probe_self"].items():
            stages[staged["labels"][int(slot)][0]] += cost
        stages["driver"] = stages.pop("request", 0.0)
        inside = stages["driver"] + stages["h2 core"] + stages["app"]
        stages["loop, harness, scheduled flush (staged total - inside)"] = (
            staged["per_request"] - inside - stages["transport"]
        )
        print(f"  stages (run with probes: {staged['per_request']:,.0f}):")
        for name, cost in stages.items():
            print(f"    {name:<52} {cost:>9,.0f}")
        report["stages"] = dict(stages)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
