"""The compiled build against the pure one on asyncio's own loop, run by run.

``pip install squall`` without the speedups extra runs the compiled build on
asyncio's loop (no uvloop). This runs hello world (varied requests, wrk)
RUNS times for each build, alternating, each run on a fresh server pinned to
CPU 0 (wrk on CPU 1), and prints every run's figures, not only medians, so
that a run at half speed shows, and so does what came with it:

- req/CPU-s: requests per CPU-second of the server (utime+stime, /proc);
- usr%: the user share of that CPU time;
- minflt/req: minor page faults per request (/proc/PID/stat). A read that
  maps fresh memory and gives it back (glibc serves a large malloc by mmap
  below its dynamic threshold) faults here on every request;
- vcs, ics /kreq: voluntary and involuntary context switches per 1,000
  requests (/proc/PID/status): a server that waits for the core (busy
  machine) shows involuntary ones, and waiting time (rq wait ms, from
  /proc/PID/schedstat);
- cpu: the CPU the server last ran on;
- gc0/1/2 and gc ms: collections per generation in the run and the time
  spent in them, and blocks: the interpreter's live small-object blocks after
  the run (benchmarks/servers/_stats.py; allocation-free probes, so that
  they do not disturb the malloc state they might explain);
- rss MB: the server's resident set after the run.

Then per build: the median, the range and the largest deviation from the
median (the target: every run within 20%), and the ratio of the medians
(the target: compiled at least 1.4x pure). ``--waves N`` measures N wrk runs
in each server, one after the other, for changes within one process.
``--strace`` adds one run per build with ``strace -c`` attached to the
server during its measured window: system calls per request, by name.
``--mmap-threshold BYTES`` starts the servers with glibc's mmap threshold
fixed (MALLOC_MMAP_THRESHOLD_), which keeps a process in the state where any
allocation of that size or more is an mmap: the state a compiled server on
asyncio's loop was in until its first connection closed, when every read of
asyncio's transport (``recv(256 KiB)``) paid for it. In that state (before
squall.platform.asyncio._bound_reads) the runs read 2.0 minor faults per
request and about half the requests per CPU-second; with it, 0.00 and full
speed whatever the threshold.

Usage: python benchmarks/asyncio_loop.py [--runs 12] [--duration 5]
       [--connections 50] [--waves 1] [--loop asyncio|uvloop] [--strace]
       [--mmap-threshold BYTES]
Run from the bench venv (`make bench-asyncio`), whose squall is compiled.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from cpuclock import cpu_seconds
from run import SCENARIOS, free_port, pin, run_wrk, wait_listening

HERE = Path(__file__).resolve().parent
SERVER = HERE / "servers" / "squall_web.py"
STATS = HERE / "servers" / "_stats.py"
BUILDS = {
    "compiled": {"SQUALL_BENCH_LOOP": "asyncio"},
    "pure": {"SQUALL_NO_SPEEDUPS": "1", "SQUALL_BENCH_LOOP": "asyncio"},
}


@dataclass
class Sample:
    """What /proc and the server's probe say at one moment."""

    cpu: float
    utime: float
    minflt: int
    vcs: int
    ics: int
    rq_wait_ns: int
    last_cpu: int
    rss_kb: int
    gc: list[int]
    gc_s: list[float]
    blocks: int


def _proc(pid: int) -> tuple[float, int, int, int, int, int, int]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    status = Path(f"/proc/{pid}/status").read_text()

    def field(name: str) -> int:
        m = re.search(rf"^{name}:\s+(\d+)", status, re.M)
        return int(m.group(1)) if m else 0

    with open(f"/proc/{pid}/schedstat") as f:
        wait_ns = int(f.read().split()[1])
    return (
        int(fields[11]) / tick,
        int(fields[7]),
        field("voluntary_ctxt_switches"),
        field("nonvoluntary_ctxt_switches"),
        wait_ns,
        int(fields[36]),
        field("VmRSS"),
    )


def _probe(pid: int, out: Path, deadline: float) -> tuple[list[int], list[float], int]:
    """Asks the server for its gc counts (SIGUSR1) and waits for the line."""
    before = out.read_text().count("\n") if out.exists() else 0
    os.kill(pid, signal.SIGUSR1)
    while time.monotonic() < deadline:
        lines = out.read_text().splitlines() if out.exists() else []
        if len(lines) > before and out.read_text().endswith("\n"):
            parts = lines[-1].split()
            return [int(x) for x in parts[:3]], [float(x) for x in parts[3:6]], int(parts[6])
        time.sleep(0.01)
    raise RuntimeError("the server did not answer its probe")


def sample(pid: int, out: Path) -> Sample:
    gc_counts, gc_s, blocks = _probe(pid, out, time.monotonic() + 10)
    utime, minflt, vcs, ics, wait_ns, last_cpu, rss = _proc(pid)
    return Sample(
        cpu_seconds(pid), utime, minflt, vcs, ics, wait_ns, last_cpu, rss, gc_counts, gc_s, blocks
    )


@dataclass
class Run:
    build: str
    index: int
    wave: int
    rps: float
    requests: int
    per_cpu: float
    before: Sample
    after: Sample

    def row(self) -> str:
        a, b, n = self.after, self.before, self.requests
        used = a.cpu - b.cpu
        usr = 100 * (a.utime - b.utime) / used if used else float("nan")
        gcs = "/".join(str(x - y) for x, y in zip(a.gc, b.gc, strict=True))
        gc_ms = 1000 * (sum(a.gc_s) - sum(b.gc_s))
        return (
            f"  {self.build:<9}{self.index:>3}{self.wave:>3} {self.rps:>9.0f} {self.per_cpu:>10.0f} "
            f"{usr:>5.0f} {(a.minflt - b.minflt) / n:>9.3f} "
            f"{1000 * (a.vcs - b.vcs) / n:>6.1f} {1000 * (a.ics - b.ics) / n:>6.1f} "
            f"{(a.rq_wait_ns - b.rq_wait_ns) / 1e6:>8.0f} {a.last_cpu:>3} "
            f"{gcs:>11} {gc_ms:>6.1f} {a.blocks:>8} {a.rss_kb / 1024:>6.1f}"
        )


HEADER = (
    f"  {'build':<9}{'run':>3}{'wv':>3} {'req/s':>9} {'req/CPU-s':>10} {'usr%':>5} "
    f"{'minflt/req':>9} {'vcs/k':>6} {'ics/k':>6} {'rq wait':>8} {'cpu':>3} "
    f"{'gc0/1/2':>11} {'gc ms':>6} {'blocks':>8} {'rss MB':>6}"
)


def _strace(pid: int, port: int, duration: float, connections: int) -> str:
    """System calls per request during one wrk run, strace -c attached to the server."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        tracer = subprocess.Popen(
            ["strace", "-c", "-f", "-o", out.name, "-p", str(pid)],
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)  # attaching; the count covers whatever follows
            _, total = run_wrk(port, SCENARIOS["hello"], duration, connections)
        finally:
            tracer.send_signal(signal.SIGINT)
            tracer.wait(10)
        calls = []
        for line in Path(out.name).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 5 and parts[3].isdigit():
                calls.append((int(parts[3]), parts[-1]))
        calls.sort(reverse=True)
        return ", ".join(f"{name} {count / total:.2f}" for count, name in calls[:7])


def serve(
    build: str,
    index: int,
    args: argparse.Namespace,
    env_extra: dict[str, str],
    strace: bool = False,
) -> tuple[list[Run], Optional[str]]:
    """One fresh server: warm-up, then ``args.waves`` measured wrk runs, or
    (``strace``) one run under strace."""
    port = free_port()
    env = dict(os.environ, **env_extra)
    if args.mmap_threshold:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.mmap_threshold)
    if args.loop == "uvloop":
        env.pop("SQUALL_BENCH_LOOP", None)
        env["SQUALL_BENCH_UVLOOP"] = "1"
    scenario = SCENARIOS["hello"]
    runs: list[Run] = []
    traced = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "stats"
        log = open(Path(tmp) / "stderr", "w+b")
        proc = subprocess.Popen(
            pin(0) + [sys.executable, str(STATS), str(out), str(SERVER), str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            wait_listening(port, proc, time.monotonic() + 15)
            run_wrk(port, scenario, 1, args.connections)  # warm-up
            for wave in range(0 if strace else args.waves):
                before = sample(proc.pid, out)
                rps, total = run_wrk(port, scenario, args.duration, args.connections)
                after = sample(proc.pid, out)
                used = after.cpu - before.cpu
                per_cpu = total / used if used > 0 else float("nan")
                runs.append(Run(build, index, wave, rps, total, per_cpu, before, after))
            if strace:
                traced = _strace(proc.pid, port, args.duration, args.connections)
        except (RuntimeError, subprocess.CalledProcessError, ValueError):
            log.seek(0)
            sys.stderr.write(log.read()[-2000:].decode(errors="replace"))
            raise
        finally:
            proc.terminate()
            proc.wait(10)
            log.close()
    return runs, traced


def summary(name: str, values: list[float]) -> str:
    med = statistics.median(values)
    worst = max(abs(v - med) / med for v in values)
    outside = sum(1 for v in values if abs(v - med) > 0.2 * med)
    return (
        f"  {name:<9} median {med:>8.0f} req/CPU-s, range {min(values):.0f}-{max(values):.0f}, "
        f"largest deviation from the median {100 * worst:.1f}%, "
        f"{outside} of {len(values)} runs outside 20% [target: 0]"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=12, help="fresh servers per build")
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--waves", type=int, default=1, help="measured wrk runs per server")
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    ap.add_argument("--builds", default="compiled,pure", help="comma-separated, of: compiled, pure")
    ap.add_argument(
        "--strace", action="store_true", help="one more server per build, under strace -c"
    )
    ap.add_argument(
        "--mmap-threshold",
        type=int,
        metavar="BYTES",
        help="glibc's mmap threshold, fixed for the servers (e.g. 131072, its initial value)",
    )
    args = ap.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    if args.strace and not shutil.which("strace"):
        print("strace is not installed (apt-get install strace)", file=sys.stderr)
        return 2
    builds = args.builds.split(",")
    with open(os.devnull, "w") as quiet:
        speedups = subprocess.run(
            [sys.executable, "-m", "squall.speedups"],
            env=dict(os.environ, SQUALL_BENCH_LOOP="asyncio"),
            stdout=subprocess.PIPE,
            stderr=quiet,
            text=True,
            cwd="/",
        ).stdout.strip()
    print(f"== squall.speedups of {sys.executable}:\n{speedups}")
    print(
        f"== hello (varied requests), {args.loop} loop, wrk -c{args.connections} "
        f"{args.duration:g}s, {args.runs} fresh servers per build x {args.waves} measured "
        "wrk runs, builds alternated; server on CPU 0, wrk on CPU 1"
        + (f"; MALLOC_MMAP_THRESHOLD_={args.mmap_threshold}" if args.mmap_threshold else "")
    )
    print(HEADER)
    runs: dict[str, list[Run]] = {b: [] for b in builds}
    for index in range(args.runs):
        order = builds if index % 2 == 0 else builds[::-1]
        for build in order:
            got, _ = serve(build, index, args, BUILDS[build])
            runs[build].extend(got)
            for r in got:
                print(r.row())
            sys.stdout.flush()
    print("== per build (every measured run)")
    medians = {}
    for build in builds:
        values = [r.per_cpu for r in runs[build]]
        if not values:
            continue
        medians[build] = statistics.median(values)
        print(summary(build, values))
        faults = [(r.after.minflt - r.before.minflt) / r.requests for r in runs[build]]
        print(
            f"  {'':<9} minor faults per request: median {statistics.median(faults):.3f}, "
            f"max {max(faults):.3f}"
        )
    if "compiled" in medians and "pure" in medians:
        print(
            f"  ratio compiled/pure: {medians['compiled'] / medians['pure']:.2f}x per CPU-s "
            "[target >= 1.4x]"
        )
    if args.strace:
        print("== system calls per request (one more server per build, strace -c attached)")
        for build in builds:
            _, traced = serve(build, args.runs, args, BUILDS[build], strace=True)
            print(f"  {build:<9} {traced}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
