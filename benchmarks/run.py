"""Side-by-side benchmarks: Squall against aiohttp and Tornado in one run.

The headline workloads send varied requests (benchmarks/varied.lua: every
request has its own query string, cookie and user agent, ~400 bytes), so no
cache of "the previous request" can answer them. ``hello-repeated`` sends one
request of the same shape over and over; it is a secondary line, labelled as
such, and no headline rests on it.

Each server runs in its own process pinned to CPU 0 and the load generator
(wrk, or the WebSocket client of ws_echo.py) pinned to CPU 1. Two figures per
contender: requests per second, and requests per CPU-second of the server
process (its CPU clock, benchmarks/cpuclock.py, read before and after each
round), which time spent waiting for a core on a shared machine does not
disturb. Rounds alternate the contenders (rotating who goes first); each
ratio is taken within a round and the median round is reported.

Contenders: squall (speedups installed: uvloop, and httptools for _h1's
"auto" parser choice), squall-pure (SQUALL_NO_SPEEDUPS=1 on asyncio's loop),
aiohttp on asyncio's loop, aiohttp on uvloop, and Tornado (on asyncio's loop).

Usage: python benchmarks/run.py [SCENARIO ...] [--duration S] [--connections N] [--rounds N]
Scenarios: hello json page ws hello-repeated (default), and bare, pipeline16.
The peers come from .venv-bench (made by `make bench`); squall is taken from
the same environment (installed there in editable mode), or from a fixed copy
with SQUALL_SNAPSHOT (see benchmarks/snapshot/sitecustomize.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cpuclock import cpu_seconds  # noqa: E402

SERVERS = HERE / "servers"
PURE = {"SQUALL_NO_SPEEDUPS": "1"}
UVLOOP = {"SQUALL_BENCH_UVLOOP": "1"}
VARIED = str(HERE / "varied.lua")
REPEATED = str(HERE / "repeated.lua")


@dataclass
class Contender:
    name: str
    script: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Scenario:
    name: str
    path: str
    contenders: list[Contender]
    lua: str | None = None
    ratios: list[tuple[str, str, float]] = field(default_factory=list)
    ws: bool = False
    note: str = ""


def _five(suffix: str) -> list[Contender]:
    return [
        Contender("squall", f"squall_{suffix}.py"),
        Contender("squall-pure", f"squall_{suffix}.py", PURE),
        Contender("aiohttp", f"aiohttp_{suffix}.py"),
        Contender("aiohttp-uvloop", f"aiohttp_{suffix}.py", UVLOOP),
        Contender("tornado", f"tornado_{suffix}.py"),
    ]


WEB = _five("web")
WS = _five("ws")
# The floors the headline comparisons hold: (a, b, the least a/b per CPU-second);
# a run prints each ratio beside its floor (0: printed without one).
RATIOS = [
    ("squall", "aiohttp-uvloop", 2.0),
    ("squall-pure", "aiohttp", 1.2),
    ("squall", "tornado", 6.0),
    ("squall-pure", "tornado", 6.0),
]
WS_RATIOS = [
    ("squall", "aiohttp-uvloop", 1.5),
    ("squall-pure", "aiohttp", 1.5),
    ("squall", "tornado", 0.0),
    ("squall-pure", "tornado", 0.0),
]
SCENARIOS = {
    "hello": Scenario("hello", "/", WEB, VARIED, RATIOS, note="varied requests"),
    "json": Scenario("json", "/json", WEB, VARIED, RATIOS, note="varied requests"),
    "page": Scenario("page", "/page", WEB, VARIED, RATIOS, note="varied requests, templated"),
    "ws": Scenario("ws", "/ws", WS, None, WS_RATIOS, ws=True, note="100 connections echo"),
    "hello-repeated": Scenario(
        "hello-repeated", "/", WEB, REPEATED, RATIOS, note="SECONDARY: one request repeated"
    ),
    "pipeline16": Scenario(
        "pipeline16", "/", WEB, str(HERE / "pipeline.lua"), RATIOS, note="SECONDARY: repeated"
    ),
    "bare": Scenario(
        "bare",
        "/",
        [
            Contender("squall", "squall_bare.py"),
            Contender("squall-pure", "squall_bare.py", PURE),
            Contender("tornado", "tornado_bare.py"),
            Contender("aiohttp-lowlevel", "aiohttp_lowlevel.py"),
        ],
        VARIED,
        [("squall", "aiohttp-lowlevel", 0.0), ("squall", "tornado", 0.0)],
        note="varied requests, no web layer",
    ),
}
DEFAULT = ["hello", "json", "page", "ws", "hello-repeated"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} in time")


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def run_wrk(port: int, scenario: Scenario, duration: float, connections: int) -> tuple[float, int]:
    """Runs wrk; returns requests per second and the number of requests."""
    cmd = pin(1) + ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s"]
    if scenario.lua:
        cmd += ["-s", scenario.lua]
    cmd.append(f"http://127.0.0.1:{port}{scenario.path}")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad_socket = errors is not None and any(int(g) for g in errors.groups())
    if not match or not total or "Non-2xx" in out or bad_socket:
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return float(match.group(1)), int(total.group(1))


def run_ws(port: int, server_pid: int, duration: float, connections: int) -> tuple[float, float]:
    """Runs ws_echo.py's raw client; returns messages/s and messages per server CPU-second."""
    cmd = pin(1) + [
        sys.executable,
        str(HERE / "ws_echo.py"),
        "--client",
        str(port),
        "--server-pid",
        str(server_pid),
        "--duration",
        str(duration),
        "--connections",
        str(connections),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    got = json.loads(out)
    return float(got["messages_per_s"]), float(got["messages_per_cpu_s"])


def measure(
    c: Contender, scenario: Scenario, duration: float, connections: int
) -> tuple[float, float]:
    """Requests per second, and requests per CPU-second of the server process."""
    port = free_port()
    env = dict(os.environ, **c.env)
    # The server's stderr goes to a file, shown only when the round fails
    # (aiohttp logs a traceback for each WebSocket the client drops).
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        pin(0) + [sys.executable, str(SERVERS / c.script), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 15)
        if scenario.ws:
            # The client warms up for a second itself and reads the
            # server's CPU time around its measuring window.
            return run_ws(port, proc.pid, duration, 100)
        run_wrk(port, scenario, 1, connections)  # warm-up
        before = cpu_seconds(proc.pid)
        rps, total = run_wrk(port, scenario, duration, connections)
        used = cpu_seconds(proc.pid) - before
        return rps, (total / used if used > 0 else float("nan"))
    except (RuntimeError, subprocess.CalledProcessError, ValueError):
        log.seek(0)
        sys.stderr.write(log.read()[-2000:].decode(errors="replace"))
        raise
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


Ratios = dict[tuple[str, str], tuple[float, float]]


def report(
    scenario: Scenario, rounds: list[dict[str, tuple[float, float]]], args: Any
) -> tuple[list[str], Ratios]:
    """Prints the medians and ratios of one scenario.

    Returns its markdown table row cells, and for each ratio of the scenario
    whose two contenders both ran, the medians (per CPU-second, per second).
    """
    unit = "msg" if scenario.ws else "req"
    print(
        f"== {scenario.name} ({scenario.note}; path {scenario.path}, "
        f"c={100 if scenario.ws else args.connections}, "
        f"{args.duration:g}s x {len(rounds)} rounds; medians)"
    )
    print(f"  {'':<16} {unit + '/s':>10} {unit + '/CPU-s':>11}   (CPU-s range over rounds)")
    cells = []
    ratios: Ratios = {}
    for c in scenario.contenders:
        got = [r[c.name] for r in rounds if c.name in r]
        if got:
            rps = statistics.median(g[0] for g in got)
            per_cpu = [g[1] for g in got]
            med = statistics.median(per_cpu)
            print(
                f"  {c.name:<16} {rps:>10.0f} {med:>11.0f}   "
                f"({min(per_cpu):.0f}-{max(per_cpu):.0f}, {len(got)} rounds)"
            )
            cells.append(f"{rps / 1000:.1f}k / {med / 1000:.1f}k")
        else:
            cells.append("failed")
    for a, b, target in scenario.ratios:
        pairs = [(r[a], r[b]) for r in rounds if a in r and b in r]
        if pairs:
            wall = [x[0] / y[0] for x, y in pairs]
            cpu = [x[1] / y[1] for x, y in pairs]
            spread = ", ".join(f"{x:.2f}" for x in cpu)
            ratios[(a, b)] = (statistics.median(cpu), statistics.median(wall))
            goal = f"  [target >= {target:g}x per CPU-s]" if target else ""
            print(
                f"  ratio {a}/{b}: {statistics.median(cpu):.2f}x per CPU-s (rounds: {spread}); "
                f"{statistics.median(wall):.2f}x per s{goal}"
            )
    return cells, ratios


# What the recorded rows call the scenarios and contenders (README's table).
RECORD_LABELS = {
    "hello": "hello world through `RequestHandler`",
    "json": "JSON endpoint",
    "page": "templated page (Squall templates, aiohttp with jinja2)",
    "ws": "WebSocket echo, 100 connections",
}
CONTENDER_LABELS = {
    "squall": "Squall",
    "squall-pure": "pure Squall",
    "aiohttp": "aiohttp",
    "aiohttp-uvloop": "aiohttp on uvloop",
    "tornado": "Tornado 6.6.1",
}


def record(results: list[tuple[Scenario, Ratios]], args: Any) -> None:
    """Writes benchmarks/results/wrk-py3.X.json (this Python's) and regenerates the README's tables.

    Only the headline scenarios (varied requests, and the WebSocket echo) are
    recorded; a secondary one (one request repeated) never is.
    """
    import figures

    rows = []
    for scenario, ratios in results:
        if scenario.name not in RECORD_LABELS:
            continue
        for (a, b), (cpu, wall) in ratios.items():
            rows.append(
                {
                    "label": f"{RECORD_LABELS[scenario.name]}, "
                    f"{CONTENDER_LABELS[a]} / {CONTENDER_LABELS[b]}",
                    "ratio_cpu": round(cpu, 3),
                    "ratio_rps": round(wall, 3),
                }
            )
    if not rows:
        raise SystemExit("--record: no headline scenario gave a ratio")
    path = figures.record(
        "wrk",
        Path(__file__).resolve(),
        figures.squall_build(),
        {
            "rows": rows,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
        },
        per_python=True,
    )
    figures.main_update()
    print(f"recorded in {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", nargs="*", help=f"of {', '.join(SCENARIOS)}")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--only", help="comma-separated contender names to run")
    ap.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/wrk-py3.X.json and regenerate the README's tables",
    )
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        ap.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    table: list[tuple[Scenario, list[str]]] = []
    measured: list[tuple[Scenario, Ratios]] = []
    for name in args.scenarios or DEFAULT:
        scenario = SCENARIOS[name]
        contenders = [c for c in scenario.contenders if only is None or c.name in only]
        rounds: list[dict[str, tuple[float, float]]] = []
        for r in range(args.rounds):
            k = r % len(contenders)
            results: dict[str, tuple[float, float]] = {}
            for c in contenders[k:] + contenders[:k]:
                try:
                    results[c.name] = measure(c, scenario, args.duration, args.connections)
                except (RuntimeError, subprocess.CalledProcessError, ValueError) as exc:
                    print(f"  {name}/{c.name}: failed: {exc}", file=sys.stderr)
            rounds.append(results)
        cells, ratios = report(scenario, rounds, args)
        table.append((scenario, cells))
        measured.append((scenario, ratios))
        sys.stdout.flush()
    names = [c.name for c in WEB]
    print("\n| workload (req/s / req per CPU-s, medians) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for scenario, cells in table:
        if [c.name for c in scenario.contenders] == names or scenario.ws:
            print(f"| {scenario.name} ({scenario.note}) | " + " | ".join(cells) + " |")
    if args.record:
        record(measured, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
