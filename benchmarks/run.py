"""Side-by-side HTTP benchmarks: Squall against Tornado, aiohttp and uvicorn in one run.

Each server runs in its own process pinned to CPU 0 and wrk runs pinned to CPU 1,
so the two never compete for a core. The machines are shared and noisy: read
the ratios, not the absolute numbers.

Usage: python benchmarks/run.py [SCENARIO ...] [--duration S] [--connections N]
The peers come from .venv-bench (made by `make bench`); squall is taken from
the same environment (installed there in editable mode).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
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


def run_wrk(port: int, scenario: Scenario, duration: float, connections: int) -> float:
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
    if not match or "Non-2xx" in out or "Socket errors" in out and "read 0" not in out:
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return float(match.group(1))


def measure(c: Contender, scenario: Scenario, duration: float, connections: int) -> float:
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
        return run_wrk(port, scenario, duration, connections)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("scenarios", nargs="*", default=["bare", "hello", "json", "pipeline16"])
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    args = ap.parse_args()
    for name in args.scenarios:
        scenario = SCENARIOS[name]
        results: dict[str, float] = {}
        for c in scenario.contenders:
            try:
                results[c.name] = measure(c, scenario, args.duration, args.connections)
            except (RuntimeError, subprocess.CalledProcessError) as exc:
                print(f"  {name}/{c.name}: failed: {exc}", file=sys.stderr)
        print(f"== {name} (path {scenario.path}, c={args.connections}, {args.duration:g}s)")
        for who, rps in results.items():
            print(f"  {who:<18} {rps:>10.0f} req/s")
        for a, b in scenario.ratios:
            if a in results and b in results:
                print(f"  ratio {a}/{b}: {results[a] / results[b]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
