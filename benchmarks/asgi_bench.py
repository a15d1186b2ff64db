"""One ASGI application under Squall, uvicorn and Granian, measured with wrk in one run.

The apps (benchmarks/servers): ``starlette`` (asgi_starlette:app, Starlette
hello world), ``fastapi`` (asgi_fastapi:app, a JSON answer from validated
query parameters), ``bare`` (asgi_starlette:bare, two constant messages).

* squall:  ``python -m squall run MODULE:app --no-access-log`` (one process,
  uvloop, its defaults otherwise: proxy headers on);
* uvicorn: ``python -m uvicorn MODULE:app --http httptools --loop uvloop
  --no-access-log`` (one process; proxy headers on by default too);
* granian: ``granian --interface asgi --workers 1 --runtime-threads 1
  --loop uvloop MODULE:app`` (a supervisor process and one worker process
  whose Rust runtime has its own threads; all of them are counted).

Each server is pinned to CPU 0 with taskset (its threads and children
inherit it) and wrk (one thread, benchmarks/varied.lua: every request has its
own query string, cookie and user agent) to CPU 1. Per app, contender and
round: a 1 s warm-up, then the measured run; requests per second, and
requests per CPU-second of the server's process tree (the CPU clock of every
process under it, all threads: benchmarks/cpuclock.py, around the measured
run). Rounds alternate the contenders' order; the ratios
squall/uvicorn and squall/granian are taken within each round and their
medians reported, next to each contender's medians.

Each round also gives the share of its core the server used (``busy``: CPU
over wall time). On a shared machine a server pinned to CPU 0 may share it
with another process or wait on a starved load generator, and the same
server's requests per CPU-second then moves by a fifth from one 5 s slot to
the next: a contender below ``BUSY_FLOOR`` in any round is named at the end, and each round's share is
kept in the record (``rounds``: req/s, req/CPU-s, busy), so that a figure
from a disturbed run says so.

Usage: python benchmarks/asgi_bench.py [--app starlette --app fastapi] [--rounds 5]
       [--duration 5] [--connections 50] [--servers squall,uvicorn,granian] [--json FILE]
       [--record]
``make bench-asgi`` runs it in the bench venv (compiled squall); ``make
bench-asgi PY=python3.13`` in 3.13's. ``--record`` writes this Python's
figures (benchmarks/results/asgi-py3.X.json) and regenerates the README's
table. Needs wrk,
taskset, starlette, fastapi, uvicorn, httptools, uvloop and granian.
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
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cpuclock import tree_cpu_seconds  # noqa: E402
from h2_bench import unpinned  # noqa: E402

SERVERS = HERE / "servers"
LUA = HERE / "varied.lua"


# Below this share of its core in a round, a server shared it or waited on the load.
BUSY_FLOOR = 0.9

MODULES = {
    "starlette": "asgi_starlette:app",
    "fastapi": "asgi_fastapi:app",
    "bare": "asgi_starlette:bare",
}


def command(name: str, app: str, port: int) -> list[str]:
    target = MODULES[app]
    if name == "granian":
        granian = str(Path(sys.executable).with_name("granian"))
        return [granian, "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)] + [
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            "--working-dir",
            str(SERVERS),
            target,
        ]
    common = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    if name == "squall":
        return [sys.executable, "-m", "squall", "run", target, "--app-dir", str(SERVERS)] + [
            *common,
            "--no-access-log",
        ]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--app-dir",
        str(SERVERS),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--no-access-log",
    ] + common


# The servers run from benchmarks/servers with no PYTHONPATH: ``python -m``
# puts the working directory first on sys.path, and from a checkout that
# would import the checkout's squall (pure Python) instead of the installed,
# compiled one.
SERVER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def squall_build() -> str:
    """What the squall contender runs: ``python -m squall.speedups``'s first line."""
    out = subprocess.run(
        [sys.executable, "-m", "squall.speedups"],
        capture_output=True,
        text=True,
        cwd=SERVERS,
        env=SERVER_ENV,
    ).stdout
    return out.splitlines()[0] if out else "unknown"


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
            # Polling a port that is not open yet: nothing to wait on but time.
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} in time")


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def run_wrk(port: int, duration: float, connections: int) -> tuple[float, int]:
    cmd = pin(1) + ["wrk", "-t1", f"-c{connections}", f"-d{round(duration)}s", "-s", str(LUA)]
    cmd.append(f"http://127.0.0.1:{port}/")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if (
        not rps
        or not total
        or "Non-2xx" in out
        or (errors and any(int(g) for g in errors.groups()))
    ):
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return float(rps.group(1)), int(total.group(1))


def measure(name: str, app: str, duration: float, connections: int) -> tuple[float, float, float]:
    """Requests per second, requests per CPU-second of the server's process
    tree, and the share of its core the server used (below 1 it waited, for
    the load or for the core: compare runs made under the same load)."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        pin(0) + command(name, app, port),
        stdout=subprocess.DEVNULL,
        stderr=log,
        cwd=SERVERS,
        env=SERVER_ENV,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 20)
        run_wrk(port, 1, connections)  # warm-up
        # After the warm-up: Granian's supervisor listens before its worker
        # has started. A thread allowed another core would use wrk's.
        loose = unpinned(proc.pid) if pin(0) else []
        if loose:
            raise RuntimeError(f"{name}: threads not pinned to core 0: {loose}")
        before = tree_cpu_seconds(proc.pid)
        t0 = time.monotonic()
        rps, total = run_wrk(port, duration, connections)
        used = tree_cpu_seconds(proc.pid) - before
        busy = used / (time.monotonic() - t0)
        return rps, (total / used if used > 0 else float("nan")), busy
    except (RuntimeError, subprocess.CalledProcessError):
        log.seek(0)
        sys.stderr.write(log.read()[-2000:].decode(errors="replace"))
        raise
    finally:
        proc.terminate()
        proc.wait(15)
        log.close()


def bench_app(app: str, names: list[str], args: argparse.Namespace) -> dict[str, object]:
    results: dict[str, list[tuple[float, float, float]]] = {n: [] for n in names}
    ratios: dict[str, list[tuple[float, float]]] = {n: [] for n in names if n != "squall"}
    for r in range(args.rounds):
        # Alternate who goes first (rotate the order each round).
        order = names[r % len(names) :] + names[: r % len(names)]
        got = {}
        for name in order:
            rps, per_cpu, busy = measure(name, app, args.duration, args.connections)
            got[name] = (rps, per_cpu)
            results[name].append((rps, per_cpu, round(busy, 3)))
            print(
                f"{app} round {r + 1} {name:<8} {rps:>9,.0f} req/s "
                f"{per_cpu:>9,.0f} req/CPU-s  busy {busy:.2f}",
                flush=True,
            )
        for other in ratios:
            ratios[other].append(
                (got["squall"][0] / got[other][0], got["squall"][1] / got[other][1])
            )
    print(
        f"== {app} app, varied requests, {args.rounds} rounds of {args.duration:g} s, "
        f"{args.connections} connections (medians)"
    )
    summary: dict[str, object] = {"app": app, "rounds": args.rounds}
    for name in names:
        rps = statistics.median(r[0] for r in results[name])
        cpu = statistics.median(r[1] for r in results[name])
        least = min(r[2] for r in results[name])
        summary[name] = {"req_per_s": rps, "req_per_cpu_s": cpu, "rounds": results[name]}
        summary[name]["least_busy"] = least
        print(f"  {name:<8} {rps:>9,.0f} req/s  {cpu:>9,.0f} req/CPU-s  least busy {least:.2f}")
    for other, pairs in ratios.items():
        ratio_rps = statistics.median(x for x, _ in pairs)
        ratio_cpu = statistics.median(y for _, y in pairs)
        summary[f"squall/{other}"] = {"req_per_s": ratio_rps, "req_per_cpu_s": ratio_cpu}
        print(f"  squall / {other}: {ratio_rps:.2f}x req/s, {ratio_cpu:.2f}x req per CPU-second")
    shared = [n for n in names if min(r[2] for r in results[n]) < BUSY_FLOOR]
    if shared:
        print(
            f"  below {BUSY_FLOOR} of its core in some round (it shared the core or "
            f"waited on the load): {', '.join(shared)}; the ratios are rough"
        )
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--app", choices=sorted(MODULES), action="append")
    ap.add_argument("--servers", default="squall,uvicorn,granian")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/asgi-py3.X.json (this Python's) and regenerate the README's table",
    )
    args = ap.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed", file=sys.stderr)
        return 2
    names = args.servers.split(",")
    if names[0] != "squall":
        print("--servers must start with squall (the ratios are squall's)", file=sys.stderr)
        return 2
    build = squall_build()
    print(f"squall: {build}", flush=True)
    summaries = [bench_app(app, names, args) for app in args.app or ["starlette", "fastapi"]]
    if args.json:
        Path(args.json).write_text(json.dumps(summaries, indent=1))
    if args.record:
        _record(summaries, names, build, args)
    return 0


_LABELS = {
    "starlette": "ASGI: Starlette hello world, `squall run` / {other}",
    "fastapi": "ASGI: FastAPI JSON endpoint, `squall run` / {other}",
    "bare": "ASGI: bare app, `squall run` / {other}",
}


def _record(
    summaries: list[dict[str, object]], names: list[str], build: str, args: argparse.Namespace
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import figures

    rows = []
    for summary in summaries:
        for other in names[1:]:
            ratio: Any = summary[f"squall/{other}"]
            rows.append(
                {
                    "label": _LABELS[str(summary["app"])].format(other=other),
                    "ratio_cpu": round(ratio["req_per_cpu_s"], 3),
                    "ratio_rps": round(ratio["req_per_s"], 3),
                }
            )
    path = figures.record(
        "asgi",
        Path(__file__).resolve(),
        build,
        {
            "rows": rows,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "summaries": summaries,
        },
        # A record per Python, each beside the others (the README's headline is the newest).
        per_python=True,
    )
    figures.main_update()
    print(f"recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
