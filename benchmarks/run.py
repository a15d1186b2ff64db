"""Side-by-side HTTP benchmarks: Squall against Tornado, aiohttp and uvicorn in one run.

Each server runs in its own process pinned to CPU 0 and wrk runs pinned to CPU 1,
so the two never compete for a core. The machines are shared and noisy: read
the ratios, not the absolute numbers.

Usage: python benchmarks/run.py [SCENARIO ...] [--duration S] [--connections N] [--rounds N]
The peers come from .venv-bench (made by `make bench`); squall is taken from
the same environment (installed there in editable mode).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
SERVERS = HERE / "servers"
PURE = {"SQUALL_NO_SPEEDUPS": "1"}
UVLOOP = {"SQUALL_BENCH_UVLOOP": "1"}


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
    ratios: list[tuple[str, str]] = field(default_factory=list)


WEB = [
    Contender("squall", "squall_web.py"),
    Contender("squall-pure", "squall_web.py", PURE),
    Contender("tornado", "tornado_web.py"),
    Contender("aiohttp", "aiohttp_web.py"),
    Contender("aiohttp-uvloop", "aiohttp_web.py", UVLOOP),
]
WEB_RATIOS = [
    ("squall", "aiohttp"),
    ("squall-pure", "aiohttp"),
    ("squall", "tornado"),
    ("squall-pure", "tornado"),
    ("squall", "aiohttp-uvloop"),
]
SCENARIOS = {
    "hello": Scenario("hello", "/", WEB, ratios=WEB_RATIOS),
    "json": Scenario("json", "/json", WEB, ratios=WEB_RATIOS),
    "pipeline16": Scenario(
        "pipeline16", "/", WEB, lua=str(HERE / "pipeline.lua"), ratios=WEB_RATIOS
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
        ratios=[
            ("squall", "aiohttp-lowlevel"),
            ("squall-pure", "aiohttp-lowlevel"),
            ("squall", "tornado"),
        ],
    ),
}


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
    cmd = pin(1) + [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        f"http://127.0.0.1:{port}{scenario.path}",
    ]
    if scenario.lua:
        cmd[-1:-1] = ["-s", scenario.lua]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    if not match or not total or "Non-2xx" in out or "Socket errors" in out and "read 0" not in out:
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return float(match.group(1)), int(total.group(1))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    c: Contender, scenario: Scenario, duration: float, connections: int
) -> tuple[float, float]:
    """Requests per second, and requests per CPU-second of the server process.

    The second is steadier on a shared machine: time the server spends
    waiting for a core does not count against it.
    """
    port = free_port()
    env = dict(os.environ, **c.env)
    proc = subprocess.Popen(
        pin(0) + [sys.executable, str(SERVERS / c.script), str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_listening(port, proc, time.monotonic() + 15)
        run_wrk(port, scenario, 1, connections)  # warm-up
        before = cpu_seconds(proc.pid)
        rps, total = run_wrk(port, scenario, duration, connections)
        used = cpu_seconds(proc.pid) - before
        return rps, (total / used if used > 0 else float("nan"))
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenarios", nargs="*", default=["bare", "hello", "json", "pipeline16"])
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        # Rounds alternate the contenders (rotating who goes first), and each
        # ratio is taken within a round: a noisy neighbour then slows both
        # sides of a ratio instead of one. The median round is reported.
        rounds: list[dict[str, tuple[float, float]]] = []
        for r in range(args.rounds):
            order = scenario.contenders[r % len(scenario.contenders) :]
            order += scenario.contenders[: r % len(scenario.contenders)]
            results: dict[str, tuple[float, float]] = {}
            for c in order:
                try:
                    results[c.name] = measure(c, scenario, args.duration, args.connections)
                except (RuntimeError, subprocess.CalledProcessError) as exc:
                    print(f"  {name}/{c.name}: failed: {exc}", file=sys.stderr)
            rounds.append(results)
        print(
            f"== {name} (path {scenario.path}, c={args.connections}, "
            f"{args.duration:g}s x {args.rounds} rounds; medians)"
        )
        print(f"  {'':<18} {'req/s':>10} {'req/CPU-s':>10}")
        for c in scenario.contenders:
            got = [r[c.name] for r in rounds if c.name in r]
            if got:
                rps = statistics.median(g[0] for g in got)
                per_cpu = statistics.median(g[1] for g in got)
                print(f"  {c.name:<18} {rps:>10.0f} {per_cpu:>10.0f}")
        for a, b in scenario.ratios:
            pairs = [(r[a], r[b]) for r in rounds if a in r and b in r]
            if pairs:
                wall = [x[0] / y[0] for x, y in pairs]
                cpu = [x[1] / y[1] for x, y in pairs]
                spread = ", ".join(f"{x:.2f}" for x in wall)
                print(
                    f"  ratio {a}/{b}: {statistics.median(wall):.2f}x req/s "
                    f"(rounds: {spread}); {statistics.median(cpu):.2f}x req/CPU-s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
