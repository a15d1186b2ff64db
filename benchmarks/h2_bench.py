"""HTTP/2 benchmark: h2load against Squall, Granian and Hypercorn over h2c.

Contenders (``make bench-h2`` runs them from the bench venv, compiled squall;
``make bench-h2 PY=python3.13`` from 3.13's):

* ``squall run``: ``python -m squall run asgi_starlette:bare --http2`` (one
  process, uvloop, no access log), the bare ASGI callable of
  benchmarks/servers/asgi_starlette.py (two constant messages);
* ``squall app``: Squall's own ``Application`` with ``http2=True``, a
  RequestHandler that writes its query argument;
* ``granian``: ``granian --interface asgi --http 2 --workers 1
  --runtime-threads 1 --loop uvloop``, the same bare ASGI callable (its
  supervisor and worker processes are both counted);
* ``hypercorn``: ``hypercorn -k uvloop``, the same bare ASGI callable.

Each server is pinned to core 0 (``taskset -c 0``; threads and children
inherit it, and every thread of the server's process tree is checked, after
the warm-up, to be allowed core 0 alone), h2load (Debian's nghttp2-client, one
thread) to core 1, h2c by prior knowledge (h2load's default for
``http://``), ``-c 20 -m 10`` by default. The contenders alternate over
``--rounds`` rounds; per round and contender a fresh server, ``--warmup``
requests (20,000), then ``--requests`` measured ones (100,000), each an
h2load run of that exact count: requests per second as h2load reports it,
and requests per server CPU-second (the measured count over the CPU clock
of the server's process tree, every process and thread, benchmarks/cpuclock.py,
read before and after the run), with the share of core 0 the
server used (``busy``: CPU over wall time; below 1 the server waited, for
the load or for its core, and its CPU per request is not that of a
saturated server). The
report gives each contender's medians, the ratios of the medians against
Granian, and the median of the per-round ratios (each contender against
Granian in the same round, which the machine's drift between rounds does
not move). Contenders whose packages are missing are left out, saying why;
``--only NAME`` (repeatable) picks some.

Granian's work is done by a worker process under its supervisor, in two
threads (the Python one and Tokio's runtime thread); all are counted, and
all must be on core 0. Left free to use the load generator's core (its
supervisor pinned with ``taskset -p`` after the worker started), Granian
read dearer, not cheaper: 0.73-0.85x the requests per CPU-second of Granian
pinned whole (4 alternated rounds, load 13). Counting requests as h2load
-D's rate times the run's wall time (this harness before) read the same as
exact counts on one server instance (3 rounds); the ratios move with the
machine instead: keep ``busy`` in view, and compare runs made under the same
load.

    python benchmarks/h2_bench.py [--rounds 5] [--warmup 20000] [--requests 100000]
                                  [--clients 20] [--streams 10] [--only NAME] [--json FILE]
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
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cpuclock import process_tree, tree_cpu_seconds  # noqa: E402

SERVERS = HERE / "servers"
BARE = "asgi_starlette:bare"

SQUALL_APP = """
import sys
try:
    import uvloop, asyncio
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
from squall.ioloop import IOLoop
from squall.web import Application, RequestHandler

class Hello(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write("Hello, " + self.get_argument("n", "world") + "!")

app = Application([("/", Hello)], log_function=lambda handler: None)
app.listen(int(sys.argv[1]), "127.0.0.1", http2=True)
IOLoop.current().start()
"""

# The servers run from benchmarks/servers with no PYTHONPATH: from the
# checkout, ``python -c`` / ``-m`` would put the checkout first on sys.path
# and import its squall (pure Python) instead of the installed, compiled one.
SERVER_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def command(name: str, port: int) -> list[str]:
    """The server's command line, listening on 127.0.0.1:``port``."""
    if name == "squall run":
        return [sys.executable, "-m", "squall", "run", BARE, "--http2", "--no-access-log"] + [
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
    if name == "squall app":
        return [sys.executable, "-c", SQUALL_APP, str(port)]
    if name == "granian":
        granian = str(Path(sys.executable).with_name("granian"))
        return [granian, "--interface", "asgi", "--http", "2", "--host", "127.0.0.1"] + [
            "--port",
            str(port),
            "--workers",
            "1",
            "--runtime-threads",
            "1",
            "--loop",
            "uvloop",
            "--log-level",
            "warning",
            "--no-access-log",
            BARE,
        ]
    assert name == "hypercorn"
    return [sys.executable, "-m", "hypercorn", "-k", "uvloop", "--log-level", "error"] + [
        "--bind",
        f"127.0.0.1:{port}",
        BARE,
    ]


CONTENDERS = ("squall run", "squall app", "granian", "hypercorn")
NEEDS = {
    "squall run": "squall",
    "squall app": "squall",
    "granian": "granian",
    "hypercorn": "hypercorn",
}


# Divides --warmup and --requests for the slow contenders.
SLOW = {"hypercorn": 20}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float = 15.0) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def unpinned(pid: int, cpu: int = 0) -> list[str]:
    """Threads of ``pid``'s process tree allowed any core but ``cpu``, as "PID/TID name"."""
    loose = []
    for p in process_tree(pid):
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/status") as f:
                    status = dict(line.split(":\t", 1) for line in f.read().splitlines())
                if status["Cpus_allowed_list"].strip() != str(cpu):
                    loose.append(f"{p}/{task} {status['Name'].strip()}")
        except OSError:
            continue  # exited meanwhile
    return loose


class Server:
    def __init__(self, name: str, port: int) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *command(name, port)],
            cwd=SERVERS,
            env=SERVER_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, self.proc)
        except RuntimeError:
            self.stop()
            raise

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(name: str) -> Server:
    """Start a contender on a free port; once more on another if it fails
    (the port picked can be taken by someone else before the server binds)."""
    for attempt in (1, 2):
        try:
            return Server(name, free_port())
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def h2load(port: int, requests: int, clients: int, streams: int) -> float:
    """One h2load run of exactly ``requests`` requests; its requests per second."""
    argv = ["taskset", "-c", "1", "h2load", "-t", "1", "-c", str(clients), "-m", str(streams)]
    argv += ["-n", str(requests), f"http://127.0.0.1:{port}/?n=bench"]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    out = result.stdout + result.stderr
    succeeded = re.search(r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if succeeded is None or rate is None:
        raise RuntimeError(f"h2load failed:\n{out}")
    if int(succeeded.group(1)) != requests:
        raise RuntimeError(f"h2load: {requests - int(succeeded.group(1))} requests failed:\n{out}")
    return float(rate.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20_000, help="requests before measuring")
    parser.add_argument("--requests", type=int, default=100_000, help="requests measured")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--streams", type=int, default=10, help="concurrent streams per connection")
    parser.add_argument("--only", action="append", choices=CONTENDERS, help="these contenders")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/h2-py3.X.json (this Python's: each Squall path "
        "against each other server) and regenerate the README's tables",
    )
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("h2load is not installed (apt-get install nghttp2-client)", file=sys.stderr)
        return 2
    contenders = []
    for name in args.only or CONTENDERS:
        module = NEEDS[name]
        probe = subprocess.run(
            [sys.executable, "-c", f"import {module}, starlette"],
            cwd=SERVERS,
            env=SERVER_ENV,
            capture_output=True,
            check=False,
        )
        if probe.returncode:
            print(f"{name} left out: {module} or starlette is not importable by {sys.executable}")
        else:
            contenders.append(name)
    build = subprocess.run(
        [sys.executable, "-m", "squall.speedups"],
        cwd=SERVERS,
        env=SERVER_ENV,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    print(f"squall: {build[0] if build else 'unknown build'}")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    per_cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for rnd in range(args.rounds):
        # Alternate the order, so that no contender always follows another.
        order = contenders if rnd % 2 == 0 else contenders[::-1]
        for name in order:
            # Hypercorn serves some 30 times fewer requests a second: as many
            # would take minutes (per CPU-second it compares all the same).
            scale = SLOW.get(name, 1)
            server = start(name)
            try:
                h2load(server.port, args.warmup // scale, args.clients, args.streams)
                # After the warm-up: Granian's supervisor listens before its
                # worker has started.
                loose = unpinned(server.proc.pid)
                if loose:
                    raise RuntimeError(f"{name}: threads not pinned to core 0: {loose}")
                before = tree_cpu_seconds(server.proc.pid)
                t0 = time.monotonic()
                requests = args.requests // scale
                rate = h2load(server.port, requests, args.clients, args.streams)
                elapsed = time.monotonic() - t0
                cpu = tree_cpu_seconds(server.proc.pid) - before
            finally:
                server.stop()
            rates[name].append(rate)
            per_cpu[name].append(requests / cpu if cpu else 0.0)
            print(
                f"round {rnd + 1} {name:11} {rate:9.0f} req/s  {per_cpu[name][-1]:9.0f} req/CPU-s"
                f"  busy {cpu / elapsed:.2f}",
                flush=True,
            )
    med = {name: statistics.median(v) for name, v in rates.items()}
    med_cpu = {name: statistics.median(v) for name, v in per_cpu.items()}
    print(
        f"\nh2c, h2load -c {args.clients} -m {args.streams}, medians of {args.rounds} rounds"
        f" ({args.warmup:,} requests to warm up, {args.requests:,} measured):"
    )
    base = "granian" if "granian" in med else None
    # Beside the ratio of the medians, the median of each round's own ratio
    # (the two ran a few seconds apart): the machine's drift between rounds
    # cancels out of it.
    print(
        f"| {'server':11} | {'req/s':>9} | {'req/CPU-s':>9} |"
        + (" vs granian | per round |" if base else "")
    )
    print(f"|{'-' * 13}|{'-' * 10}:|{'-' * 10}:|" + ("-----------:|----------:|" if base else ""))
    for name in contenders:
        row = f"| {name:11} | {med[name]:9.0f} | {med_cpu[name]:9.0f} |"
        if base and med_cpu[base]:
            pairs = zip(per_cpu[name], per_cpu[base], strict=True)
            paired = [mine / theirs for mine, theirs in pairs if theirs]
            row += f" {med_cpu[name] / med_cpu[base]:9.2f}x |"
            row += f" {statistics.median(paired):8.2f}x |" if paired else "        - |"
        print(row)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"rates": rates, "per_cpu": per_cpu, "median": med, "median_cpu": med_cpu})
        )
    if args.record:
        record(args, build[0] if build else "unknown", med, med_cpu)
    return 0


RECORD_LABELS = {
    "squall run": "HTTP/2 (h2c), bare ASGI app, `squall run --http2`",
    "squall app": "HTTP/2 (h2c), Squall's Application with `http2=True`",
}


def record(
    args: argparse.Namespace, build: str, med: dict[str, float], med_cpu: dict[str, float]
) -> None:
    """Writes each Squall path's ratios to the other servers' (medians of the rounds)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import figures

    rows = [
        {
            "label": f"{label} / {other.capitalize()}",
            "ratio_cpu": round(med_cpu[ours] / med_cpu[other], 3),
            "ratio_rps": round(med[ours] / med[other], 3),
        }
        for ours, label in RECORD_LABELS.items()
        if ours in med
        for other in med
        if other not in RECORD_LABELS and med_cpu[other] and med[other]
    ]
    if not rows:
        raise SystemExit("--record: no Squall path and other server both ran")
    path = figures.record(
        "h2",
        Path(__file__).resolve(),
        build,
        {
            "rows": rows,
            "rounds": args.rounds,
            "warmup_requests": args.warmup,
            "requests": args.requests,
            "clients": args.clients,
            "streams": args.streams,
        },
        # A record per Python, each beside the others (the README's headline is the newest).
        per_python=True,
    )
    figures.main_update()
    print(f"recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
