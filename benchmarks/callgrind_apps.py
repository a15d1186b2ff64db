"""Instructions per request of a real application's request on Squall,
counted by callgrind: Jupyter Server's own ``Application`` (its
``ServerApp`` initialized in-process under ``squall.compat``, no socket
bound), fed a fixed stream of ``GET /api/status`` (or another path) with
the token header through the protocol ``HTTPServer`` makes, over a fake
transport, as benchmarks/callgrind_hotpath.py feeds its handlers.

This is the instruction-count side of ``make bench-apps``: run it with the
interpreter of the bench-apps venv (it needs jupyter_server), which holds
Squall installed from this checkout:

    $SQUALL_APPS_CACHE/bench/venv-jupyter/bin/python benchmarks/callgrind_apps.py \\
        [--path /api/status] [--build compiled|pure] [--loop asyncio|uvloop] [-n 200] [--top 25]

The interpreter's Squall must be this checkout's: the bench venv keeps
whatever the last ``make bench-apps`` installed, from whichever checkout
ran it, and a count of another tree's build says nothing of this one. The
script refuses when a source file of ``squall/`` differs or is missing
there (naming them), unless ``--installed-as-is`` (to count an older
build on purpose, for an A/B).

Prints instructions per request (the difference of a run of FIRST and one
of FIRST + n requests, over n) and, with ``--top``, the functions with the
largest inclusive counts per request (the compiled build's ``CPyDef_``
functions; the pure build shows the interpreter's C functions only).
Jupyter logs a 2xx API request at debug level: nothing is printed per
request. The Date header's clock stands still (as in callgrind_hotpath).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import Driver, _FixedClock, capture_protocol, run_inner  # noqa: E402

ROOT = HERE.parent
TOKEN = "squall-callgrind-apps"
WARMUP = 60
FIRST = 40


def request(path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\n"
        "Host: 127.0.0.1:8888\r\n"
        "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
        "Accept: application/json\r\n"
        f"Authorization: token {TOKEN}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: Jupyter's app built, warmed up, measured; writes cfg['out']."""
    if cfg["build"] == "pure":
        os.environ["SQUALL_NO_SPEEDUPS"] = "1"
    import _probe

    mod = _probe.load()
    import squall.compat

    squall.compat.install()
    import squall.web._status as dated

    dated.time = _FixedClock()  # type: ignore[attr-defined]
    from jupyter_server.serverapp import ServerApp

    from squall.httpserver import HTTPServer

    work = Path(cfg["work"])
    os.environ.update(
        JUPYTER_CONFIG_DIR=str(work / "config"),
        JUPYTER_DATA_DIR=str(work / "data"),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
    )
    if cfg.get("loop") == "uvloop":  # what `python -m squall.compat --loop uvloop` runs on
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    app = ServerApp()
    app.initialize(
        argv=[
            f"--IdentityProvider.token={TOKEN}",
            f"--ServerApp.root_dir={cfg['root']}",
            "--ServerApp.allow_root=True",
            "--ServerApp.open_browser=False",
            "--ServerApp.port=8888",
        ],
        new_httpserver=False,
    )
    total = WARMUP + FIRST + FIRST + cfg["n"]
    driver = Driver(loop, [request(cfg["path"])] * total)
    driver.proto = capture_protocol(loop, HTTPServer(app.web_app))
    driver.proto.connection_made(driver.transport)
    driver.run(WARMUP)
    mod.reset()
    mod.measure_a(lambda: driver.run(FIRST))
    mod.measure_b(lambda: driver.run(FIRST + cfg["n"]))
    result = {
        "statuses": dict(driver.statuses),
        "bodies": sorted(b.decode(errors="replace") for b in driver.bodies),
        "squall": sys.modules["squall"].__file__,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


def stale_files(checkout: Path, installed: Path) -> list[str]:
    """The ``.py`` files of ``checkout`` (a squall/ source tree) that
    ``installed`` (the squall an interpreter imports) lacks or holds otherwise,
    and those it holds that the checkout does not, as relative paths."""
    ours = {p.relative_to(checkout): p for p in checkout.rglob("*.py")}
    theirs = {p.relative_to(installed): p for p in installed.rglob("*.py")}
    differ = [
        rel
        for rel, path in ours.items()
        if rel not in theirs or theirs[rel].read_bytes() != path.read_bytes()
    ]
    return sorted(str(rel) for rel in [*differ, *(set(theirs) - set(ours))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", default="/api/status")
    parser.add_argument("--build", choices=("compiled", "pure"), default="compiled")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument(
        "--installed-as-is",
        action="store_true",
        help="count the interpreter's squall even when it is not this checkout's",
    )
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    import squall

    installed = Path(squall.__file__).resolve().parent
    stale = stale_files(ROOT / "squall", installed)
    if stale and not args.installed_as_is:
        shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
        raise SystemExit(
            f"the squall {sys.executable} imports ({installed}) is not this checkout's: "
            f"{shown} differ. Install this checkout into that venv "
            f"({sys.executable} -m pip install --force-reinstall --no-deps {ROOT}, then "
            f"{sys.executable} -m squall.extras --install speedups), or pass "
            "--installed-as-is to count it anyway"
        )
    with tempfile.TemporaryDirectory(prefix="squall-callgrind-apps-") as tmp:
        root = Path(tmp, "root")
        root.mkdir()
        import apps_bench

        apps_bench.make_root(root)
        cfg = {
            "path": args.path,
            "build": args.build,
            "loop": args.loop,
            "n": args.n,
            "root": str(root),
            "work": tmp,
        }
        result, incl, _ = run_inner(__file__, cfg)
    if set(result["statuses"]) != {"200"}:
        raise SystemExit(f"not every answer was 200: {result['statuses']} {result['bodies']}")
    a = incl.get("sq_measure_a", 0)
    b = incl.get("sq_measure_b", 0)
    per = (b - a) / args.n
    print(f"{args.path} ({args.build}, {args.loop}): {per:,.0f} instructions per request")
    if args.top:
        per_request = {
            name: cost / (args.n + 2 * FIRST)
            for name, cost in incl.items()
            if not name.startswith("sq_")
        }
        for name, cost in sorted(per_request.items(), key=lambda kv: -kv[1])[: args.top]:
            print(f"  {cost:>10,.0f}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
