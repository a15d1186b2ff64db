"""What ``squall run --metrics-bind`` (and ``--request-id``) cost a worker, measured with wrk.

The hello handler of benchmarks/servers/squall_web.py is served by
``squall run`` with one worker under a supervisor, with and without the
option; the server's processes are pinned to CPU 0 and wrk (varied.lua) to
CPU 1. The figures are requests per second and requests per CPU-second of
the worker (utime+stime from /proc, read around each round). Contenders
alternate within each round, the first one rotating; each round gives a
ratio to the baseline and the median ratio is reported.

Usage: python benchmarks/cli_metrics.py [--rounds 5] [--duration 5] [--connections 50]
Needs wrk (``make bench`` installs it).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CONTENDERS = {
    "base": [],
    "metrics": ["--metrics-bind", "127.0.0.1:{mport}"],
    "request-id": ["--request-id"],
}


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start(extra: list[str]) -> tuple[subprocess.Popen[bytes], int, int]:
    port, mport = _port(), _port()
    args = [a.format(mport=mport) for a in extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "squall", "run", "squall_web:make_app"]
        + ["--app-dir", str(HERE / "servers"), "--bind", f"127.0.0.1:{port}"]
        + ["--max-requests", "1000000000", "--no-access-log", *args],
        env=env,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode()
        match = re.search(r"Worker (\d+) ready", line)
        if match:
            return proc, port, int(match.group(1))
    raise RuntimeError("the server did not start")


def _round(name: str, duration: int, connections: int) -> tuple[float, float]:
    proc, port, worker = _start(CONTENDERS[name])
    try:
        url = f"http://127.0.0.1:{port}/"
        wrk = [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            "-s",
            str(HERE / "varied.lua"),
        ]
        subprocess.run([*wrk, "-d1s", url], check=True, capture_output=True)  # warm-up
        before = _cpu(worker)
        out = subprocess.run(
            [*wrk, f"-d{duration}s", url], check=True, capture_output=True, text=True
        ).stdout
        cpu = _cpu(worker) - before
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        return requests / duration, requests / cpu
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    names = list(CONTENDERS)
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            results[name].append(_round(name, args.duration, args.connections))
        print(
            f"round {r + 1}: " + ", ".join(f"{n} {results[n][-1][1]:.0f} req/CPU-s" for n in names)
        )
    print(
        f"\n{'contender':<12} {'req/s':>9} {'req/CPU-s':>10} {'ratio req/s':>12} {'ratio req/CPU-s':>16}"
    )
    for name in names:
        rps = statistics.median(x[0] for x in results[name])
        per_cpu = statistics.median(x[1] for x in results[name])
        r_rps = statistics.median(
            a[0] / b[0] for a, b in zip(results[name], results["base"], strict=True)
        )
        r_cpu = statistics.median(
            a[1] / b[1] for a, b in zip(results[name], results["base"], strict=True)
        )
        print(f"{name:<12} {rps:>9.0f} {per_cpu:>10.0f} {r_rps:>12.3f} {r_cpu:>16.3f}")


if __name__ == "__main__":
    main()
