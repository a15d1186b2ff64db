"""Instructions per request of an ASGI application on Squall and on uvicorn, by callgrind.

The sibling of callgrind_hotpath.py (whose request stream, fake transport
and driver this reuses): a fixed stream of varied requests is fed in-process
to a server's protocol object, one request after the previous response, on
an asyncio loop, under ``valgrind --tool=callgrind``. Instructions per
request = (count of N+M requests - count of M requests) / N, so start-up and
first-time costs cancel; the "null" protocol gives the harness's own cost.

Contenders, each serving the same ASGI app (benchmarks/servers/asgi_starlette.py,
asgi_fastapi.py):

* ``squall``: the server exactly as ``squall run --no-access-log`` builds
  it (``squall.cli``'s build_server: proxy headers on, as by default);
* ``squall-bare``: ``HTTPServer(ASGIServerDelegate(app))``, nothing in front;
* ``squall-floor``: ``HTTPServer`` with a delegate that answers every request
  at once (in ``headers_received``, no scope, no Task) with a constant
  response through ``write_headers`` and ``finish``: what the server costs
  below the ASGI layer, the floor any ASGI delegate on that seam starts from;
* ``uvicorn``: uvicorn's httptools protocol (``HttpToolsProtocol``) as
  ``uvicorn --http httptools --no-access-log`` builds it (proxy headers on,
  as by default).

Apps: ``starlette`` (a Starlette hello world: Route, PlainTextResponse),
``fastapi`` (a JSON answer from validated query parameters) and ``bare`` (an ASGI callable that sends two constant messages), which shows
the server's own cost.

Usage:
  python benchmarks/callgrind_asgi.py                    # servers x apps table
  python benchmarks/callgrind_asgi.py --profile          # Squall's hottest functions
  options: --server NAME (repeatable), --app NAME (repeatable), -n, --loop, --json FILE,
           --keep PREFIX (callgrind outputs, for callgrind_annotate)
Needs valgrind (``make bench-callgrind`` installs it), starlette and uvicorn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "servers"))

from callgrind_hotpath import (  # noqa: E402
    FIRST,
    WARMUP,
    Driver,
    FakeTransport,
    Probes,
    _FixedClock,
    _NullProtocol,
    add_probe_costs,
    calls_per_request,
    capture_protocol,
    request_stream,
    run_inner,
)

SERVERS = ["squall", "squall-bare", "squall-floor", "uvicorn", "null"]
APPS = ["starlette", "fastapi", "bare"]
_PROFILED = (
    "squall.asgi",
    "squall._h1",
    "squall.httpserver",
    "squall.httputil",
    "squall.http1connection",
    "squall.cli",
)


def _load_app(name: str) -> Any:
    if name == "fastapi":
        import asgi_fastapi

        return asgi_fastapi.app
    import asgi_starlette

    return asgi_starlette.app if name == "starlette" else asgi_starlette.bare


def _floor_protocol(loop: asyncio.AbstractEventLoop) -> Any:
    from squall.httpserver import HTTPServer
    from squall.httputil import (
        HTTPConnection,
        HTTPHeaders,
        HTTPMessageDelegate,
        HTTPServerConnectionDelegate,
        ResponseStartLine,
    )

    start = ResponseStartLine("HTTP/1.1", 200, "OK")
    headers = HTTPHeaders(
        {
            "Content-Type": "text/plain",
            "Content-Length": "12",
            "Date": "Thu, 15 Jan 2027 08:00:00 GMT",
        }
    )

    class Answer(HTTPMessageDelegate):
        __slots__ = ("conn",)

        def __init__(self, conn: HTTPConnection) -> None:
            self.conn = conn

        def headers_received(self, start_line: Any, fields: Any) -> None:
            self.conn.write_headers(start, headers, b"Hello, world")
            self.conn.finish()

    class Floor(HTTPServerConnectionDelegate):
        def start_request(self, server_conn: object, request_conn: HTTPConnection) -> Answer:
            return Answer(request_conn)

    return capture_protocol(loop, HTTPServer(Floor()))


def _squall_protocol(loop: asyncio.AbstractEventLoop, app: Any, bare: bool) -> Any:
    import squall.asgi._http
    import squall.asgi._scope
    from squall.httpserver import HTTPServer

    # The Date header is formatted once a second: with a clock that stands
    # still it is formatted once, so the counts do not depend on wall time.
    squall.asgi._scope.time = squall.asgi._http.time = _FixedClock()  # type: ignore[assignment]
    if bare:
        from squall.asgi import ASGIServerDelegate

        return capture_protocol(loop, HTTPServer(ASGIServerDelegate(app)))
    from squall.cli._options import Config
    from squall.cli._target import serve_target
    from squall.cli._worker import build_server

    config = Config(target="asgi_starlette:app", access_log=False)
    served = serve_target(app, config.target, config.root_path, config.factory)
    server, _ = build_server(config, served, None)
    return capture_protocol(loop, server)


def _uvicorn_protocol(loop: asyncio.AbstractEventLoop, app: Any) -> Any:
    from uvicorn.config import Config
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = Config(app, http="httptools", lifespan="off", access_log=False, log_config=None)
    config.load()
    state = ServerState()
    # uvicorn's main loop refreshes these once a second; here once.
    state.default_headers = [
        (b"date", b"Thu, 15 Jan 2027 08:00:00 GMT"),
        *config.encoded_headers,
    ]
    return HttpToolsProtocol(config=config, server_state=state, app_state={}, _loop=loop)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: builds the server, warms up, measures, writes cfg['out']."""
    import _probe

    mod = _probe.load()
    if cfg["loop"] == "uvloop":
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    total = WARMUP + FIRST + FIRST + cfg["n"]
    driver = Driver(loop, request_stream("varied", total))
    server = cfg["server"]
    probes = Probes(mod)
    if server == "null":
        driver.proto = _NullProtocol()
    elif server == "squall-floor":
        driver.proto = loop.run_until_complete(_async(lambda: _floor_protocol(loop)))
    else:
        app = _load_app(cfg["app"])
        if server.startswith("squall"):
            import squall.asgi  # noqa: F401
            import squall.cli._worker  # noqa: F401

            if cfg["probes"] == "all":
                probes.wrap(FakeTransport, "write", "transport", "(harness) FakeTransport.write")
                probes.wrap_all(_PROFILED)
            driver.proto = loop.run_until_complete(
                _async(lambda: _squall_protocol(loop, app, server == "squall-bare"))
            )
        else:
            driver.proto = loop.run_until_complete(_async(lambda: _uvicorn_protocol(loop, app)))
    driver.proto.connection_made(driver.transport)
    driver.run(WARMUP)
    mod.reset()
    mod.measure_a(lambda: driver.run(FIRST))
    mod.measure_b(lambda: driver.run(FIRST + cfg["n"]))
    result = {
        "statuses": dict(driver.statuses),
        "bodies": sorted(b.decode(errors="replace") for b in driver.bodies),
        "labels": probes.labels,
        "edges": mod.edges(),
        "loop": type(loop).__name__,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


async def _async(make: Any) -> Any:
    # Servers that look up the running loop while being built.
    return make()


def run_one(cfg: dict[str, Any], keep: Optional[str] = None) -> dict[str, Any]:
    """One valgrind run; the inner result plus instructions per request.

    ``keep`` names a file to keep the callgrind output in (callgrind_annotate).
    """
    result, incl, self_c = run_inner(__file__, cfg, keep)
    result["self_c"] = sorted(self_c.items(), key=lambda kv: -kv[1])[:25]
    n = cfg["n"]
    result["per_request"] = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / n
    add_probe_costs(result, incl, FIRST + FIRST + n)
    expected_ok = WARMUP + FIRST + FIRST + n
    if result["statuses"].get("200") != expected_ok:
        raise RuntimeError(
            f"{cfg['server']}/{cfg.get('app')}: responses {result['statuses']}, "
            f"expected {expected_ok} x 200"
        )
    return result


def table(args: argparse.Namespace, report: dict[str, Any]) -> None:
    servers = args.server or SERVERS
    apps = args.app or APPS
    null = run_one({"server": "null", "app": "-", "n": args.n, "loop": args.loop, "probes": "-"})
    harness = null["per_request"]
    print(
        f"== instructions per request, varied stream, n={args.n}, {args.loop} loop "
        f"(null harness = {harness:,.0f}; net = total - harness)"
    )
    rows: dict[str, dict[str, float]] = {}
    for app in apps:
        for server in servers:
            if server == "null" or (server == "squall-floor" and app != apps[0]):
                continue
            cfg = {"server": server, "app": app, "n": args.n, "loop": args.loop, "probes": "-"}
            keep = f"{args.keep}.{app}.{server}" if args.keep else None
            per = run_one(cfg, keep)["per_request"]
            rows.setdefault(app, {})[server] = per
            # The floor's delegate answers by itself: no app runs.
            shown = "(no app)" if server == "squall-floor" else app
            print(f"  {shown:<10} {server:<12} total {per:>9,.0f}  net {per - harness:>9,.0f}")
            sys.stdout.flush()
        got = rows.get(app, {})
        if "uvicorn" in got:
            for server in ("squall", "squall-bare"):
                if server in got:
                    ratio = (got["uvicorn"] - harness) / (got[server] - harness)
                    print(f"  {app:<10} uvicorn / {server:<12} (net) {ratio:.2f}x")
    report["harness"] = harness
    report["rows"] = rows
    ceilings(rows, apps, harness)


def ceilings(rows: dict[str, dict[str, float]], apps: list[str], harness: float) -> None:
    """What an app costs by itself, and the most Squall could read against uvicorn.

    The app's own cost is Squall's total with it less Squall's with the bare
    app; with an ASGI layer that cost nothing, Squall would cost the floor
    (the server below the ASGI seam) plus that: uvicorn's net over it is the
    ratio no change to Squall's ASGI layer can pass. Needs the bare app and
    the squall, squall-floor and uvicorn servers in the run.
    """
    bare = rows.get("bare", {}).get("squall")
    floor = rows.get(apps[0], {}).get("squall-floor")
    if bare is None or floor is None:
        return
    print(
        f"== the ASGI layer (bare app less floor) {bare - floor:,.0f}; each app by itself, "
        "and uvicorn / squall (net) now and with an ASGI layer costing nothing"
    )
    for app in apps:
        got = rows.get(app, {})
        if app == "bare" or "squall" not in got or "uvicorn" not in got:
            continue
        own = got["squall"] - bare
        uvicorn = got["uvicorn"] - harness
        now = uvicorn / (got["squall"] - harness)
        ceiling = uvicorn / (floor - harness + own)
        print(f"  {app:<10} app {own:>9,.0f}  now {now:.2f}x  ceiling {ceiling:.2f}x")


def profile(args: argparse.Namespace, report: dict[str, Any], top: int = 30) -> None:
    server = (args.server or ["squall"])[0]
    app = (args.app or ["bare"])[0]
    cfg = {"server": server, "app": app, "n": args.n, "loop": args.loop, "probes": "all"}
    res = run_one(cfg)
    plain = run_one(dict(cfg, probes="-"))["per_request"]
    measured = FIRST + FIRST + args.n
    calls = calls_per_request(res, measured)
    rows = sorted(res["probe_self"].items(), key=lambda kv: -kv[1])
    print(
        f"== {server}, {app} app: hottest Squall functions by self instructions per request; "
        f"{len(res['labels'])} probed; total {plain:,.0f} without probes, "
        f"{res['per_request']:,.0f} with"
    )
    listing = []
    for slot, cost in rows[:top]:
        name = res["labels"][int(slot)][1]
        incl = res["probe_incl"][slot]
        print(f"  {cost:>8,.0f} self {incl:>8,.0f} incl {calls[slot]:>5.2f} calls  {name}")
        listing.append({"function": name, "self": cost, "incl": incl, "calls": calls[slot]})
    report["profile"] = {"server": server, "app": app, "total": plain, "functions": listing}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", choices=SERVERS)
    ap.add_argument("--app", action="append", choices=APPS)
    ap.add_argument("-n", type=int, default=2000, help="requests in the difference")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--profile", action="store_true", help="hottest Squall functions")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument(
        "--keep", help="keep each run's callgrind output in KEEP.APP.SERVER (callgrind_annotate)"
    )
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    report: dict[str, Any] = {}
    if args.profile:
        profile(args, report)
    else:
        table(args, report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
