"""Instructions per request of a real server on real sockets, counted by callgrind.

callgrind_hotpath.py feeds requests through a fake transport, so the event
loop's own transport (asyncio's selector transport is Python code; uvloop's
is C) is not in its figures. This runs the wrk benchmark's server
(benchmarks/servers/squall_web.py) under ``valgrind --tool=callgrind`` with
collection off, warms it up with wrk, switches collection on
(``callgrind_control -i on``) for one wrk run, off again, and divides the
instructions counted by the requests wrk completed. The figure is the
server's user-space instructions per request, loop and transport included;
the kernel's work (recv, send, epoll) is not counted. Requests in flight
when collection switches (at most one per connection) make the figure
uncertain by about connections / requests.

Usage: python benchmarks/callgrind_socket.py [--build compiled|pure ...]
       [--loop asyncio|uvloop ...] [--duration 20] [--connections 50] [--top N]
Run from the bench venv (its squall is the compiled build).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from run import VARIED, free_port, wait_listening

HERE = Path(__file__).resolve().parent
SERVER = HERE / "servers" / "squall_web.py"


def wrk(port: int, duration: int, connections: int) -> int:
    """One wrk run (a long timeout: the server runs under valgrind); its request count."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "60s", "-s", VARIED]
        + [f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.search(r"(\d+) requests in", out)
    if not m or "Non-2xx" in out:
        raise RuntimeError(f"wrk output not usable:\n{out}")
    return int(m.group(1))


def hottest(out: Path, requests: int, top: int) -> list[tuple[float, str]]:
    """The ``top`` functions by self instructions per request (callgrind_annotate)."""
    text = subprocess.run(
        ["callgrind_annotate", "--threshold=100", str(out)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*?)(?: \[.*\])?$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = m.group(2).rsplit(":", 1)[-1]
            rows.append((int(m.group(1).replace(",", "")) / requests, name))
    return rows[:top]


def count(
    build: str,
    loop: str,
    duration: int,
    connections: int,
    top: int = 0,
    keep: Optional[str] = None,
) -> tuple[float, int]:
    """Instructions per request and the number of requests measured."""
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("SQUALL_NO_SPEEDUPS", None)
    if build == "pure":
        env["SQUALL_NO_SPEEDUPS"] = "1"
    if loop == "asyncio":
        env["SQUALL_BENCH_LOOP"] = "asyncio"
    else:
        env.pop("SQUALL_BENCH_LOOP", None)
        if build == "pure":
            env["SQUALL_BENCH_UVLOOP"] = "1"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        port = free_port()
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
            + [sys.executable, str(SERVER), str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proc, time.monotonic() + 180)
            wrk(port, 3, connections)  # warm-up, not counted
            control = ["callgrind_control", "-i"]
            subprocess.run([*control, "on", str(proc.pid)], check=True, capture_output=True)
            requests = wrk(port, duration, connections)
            subprocess.run([*control, "off", str(proc.pid)], check=True, capture_output=True)
        finally:
            proc.terminate()
            proc.wait(60)
        m = re.search(r"^totals: (\d+)", out.read_text(), re.M)
        if m is None:
            raise RuntimeError("no totals in callgrind's output")
        for per, name in hottest(out, requests, top) if top else ():
            print(f"      {per:>9,.0f}  {name}")
        if keep:
            shutil.copy(out, f"{keep}.{build}.{loop}")
        return int(m.group(1)) / requests, requests


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", choices=["compiled", "pure"])
    ap.add_argument("--loop", action="append", choices=["asyncio", "uvloop"])
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--top", type=int, default=0, help="also list the N hottest functions (self)")
    ap.add_argument("--keep", help="keep callgrind's output as KEEP.BUILD.LOOP")
    args = ap.parse_args()
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    print(
        f"== user-space instructions per hello request on real sockets (varied requests, "
        f"wrk -c{args.connections}, {args.duration}s under callgrind)"
    )
    for loop in args.loop or ["asyncio", "uvloop"]:
        for build in args.build or ["compiled", "pure"]:
            per, requests = count(build, loop, args.duration, args.connections, args.top, args.keep)
            print(
                f"  {build:<9} {loop:<8} {per:>9,.0f}  ({requests} requests, "
                f"+-{100 * args.connections / requests:.0f}%)"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
