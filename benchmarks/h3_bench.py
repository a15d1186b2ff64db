"""HTTP/3 benchmark (``make bench-h3``): Squall against Hypercorn over HTTP/3,
and Squall's HTTP/3 against its own HTTP/2 and HTTP/1.1 (over TLS). Squall's
HTTP/3 runs on each QUIC stack: its default (aioquic when installed, the row
"squall h3") and qh3 ("squall h3 qh3").

The HTTP/3 contenders' requests carry the four pseudo-headers alone.
"squall h3 browser" and "hypercorn h3 browser" send, besides, the fields a
browser sends with each request (``h3load.BROWSER_FIELDS``: 17 fields and
about 900 bytes, written after those Chromium sends with a ``fetch()``),
which both servers' QPACK decoders and field checks then read.

Each server runs pinned to core 0 and the load generator to core 1: for
HTTP/3 ``benchmarks/h3load.py`` (aioquic; h2load here has no QUIC), for
HTTP/2 and HTTP/1.1 h2load over TLS. The contenders alternate over
``--rounds`` rounds, the order turning by one each round (no contender
always follows the same one); the report gives medians of requests per
second and per server CPU-second (the CPU clock of the server's process
tree over the run), and their ratios, with the load average at the start
and the end. The generators differ between protocols, so compare the
per-CPU-second column across protocols, not the rate.

    python benchmarks/h3_bench.py [--rounds 5] [--duration 5] [--hypercorn-python PATH]
                                  [--record]

Hypercorn comes from ``--hypercorn-python`` (an interpreter with
``hypercorn[h3]``), and is left out, saying why, without it.

``--record`` writes this Python's benchmarks/results/h3-py3.X.json
(benchmarks/figures.py): Squall's HTTP/3 on each QUIC stack against
Hypercorn's, requests per server CPU-second and per second, the medians'
ratios; and regenerates the README's tables. ``make bench-h3
PY=python3.13 BENCH_ARGS=--record`` records 3.13's beside 3.11's, with
Hypercorn on the same Python (the Makefile gives each Python its own
Hypercorn venv); a Hypercorn on another Python is refused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpuclock import tree_cpu_seconds  # noqa: E402
from figures import loadavg  # noqa: E402
from h2_bench import free_port, wait_listening  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CERT = os.path.join(ROOT, "squall", "_certs", "test.crt")
KEY = os.path.join(ROOT, "squall", "_certs", "test.key")

SQUALL_SERVER = """
import sys
try:
    import uvloop, asyncio
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
except ImportError:
    pass
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.web import Application, RequestHandler

class Hello(RequestHandler):
    def get(self):
        self.set_header("Content-Type", "text/plain")
        self.write("Hello, " + self.get_argument("n", "world") + "!")

app = Application([("/", Hello)], log_function=lambda handler: None)
ssl_options = {"certfile": sys.argv[2], "keyfile": sys.argv[3]}
server = HTTPServer(app, ssl_options=ssl_options, http2=True, http3=True)
server.listen(int(sys.argv[1]), "127.0.0.1")
IOLoop.current().start()
"""


# Hypercorn's app: the same answer as SQUALL_SERVER's handler.
HYPERCORN_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    from urllib.parse import parse_qs
    n = parse_qs(scope["query_string"].decode()).get("n", ["world"])[0]
    body = ("Hello, " + n + "!").encode()
    await send({
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
"""


def stop_process(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once it exited."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Server:
    def __init__(
        self, argv: list[str], port: int, cwd: Optional[str], env: Optional[dict[str, str]]
    ) -> None:
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.port = port
        wait_listening(port, self.proc)

    def stop(self) -> None:
        stop_process(self.proc)


def h3load(port: int, args: argparse.Namespace, browser: bool) -> tuple[float, float]:
    """(requests, seconds) from the HTTP/3 generator; with a browser's fields
    on every request where ``browser``."""
    argv = [
        "taskset", "-c", "1", sys.executable, os.path.join(ROOT, "benchmarks", "h3load.py"),
        str(port), "--connections", str(args.connections), "--streams", str(args.streams),
        "--duration", f"{args.duration:g}", *(["--browser-head"] if browser else []),
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"h3load failed:\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["errors"]:
        raise RuntimeError(f"h3load: {result['errors']} responses were not 200")
    return float(result["requests"]), float(result["seconds"])


def h2load(port: int, args: argparse.Namespace, h1: bool) -> tuple[float, float]:
    argv = [
        "taskset", "-c", "1", "h2load", "-t", "1", "-c", str(args.connections),
        "-m", "1" if h1 else str(args.streams), "-D", f"{args.duration:g}", "--warm-up-time=1",
    ]  # fmt: skip
    if h1:
        argv.append("--h1")
    argv.append(f"https://127.0.0.1:{port}/?n=bench")
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if line.startswith("requests:"):
            succeeded = int(line.split(",")[3].split()[0])
            return float(succeeded), args.duration
    raise RuntimeError(f"h2load failed:\n{out}")


def measure(
    name: str, argv: list[str], cwd: Optional[str], args: argparse.Namespace
) -> tuple[float, float]:
    """One run: (requests per second, requests per server CPU-second).

    ``name`` is "SERVER PROTOCOL [QUIC STACK] [browser]": "squall h3 qh3"
    runs Squall's HTTP/3 on qh3 (SQUALL_QUIC), "squall h3" on its default;
    "browser" sends a browser's fields with every request.
    """
    server_name, protocol, *stack = name.split()
    browser = stack[-1:] == ["browser"]
    if browser:
        stack.pop()
    env = dict(os.environ, SQUALL_QUIC=stack[0]) if stack else None
    port = free_port()
    full = [*argv, "--bind", f"127.0.0.1:{port}", "--quic-bind", f"127.0.0.1:{port}"]
    if server_name == "squall":
        full = [*argv, str(port), CERT, KEY]
    server = Server(full, port, cwd, env)
    try:
        time.sleep(0.5)  # the UDP endpoint starts on the loop's first turns
        before = tree_cpu_seconds(server.proc.pid)
        if protocol == "h3":
            requests, seconds = h3load(port, args, browser)
        else:
            requests, seconds = h2load(port, args, h1=protocol == "h1")
        used = tree_cpu_seconds(server.proc.pid) - before
    finally:
        server.stop()
    return requests / seconds, requests / used if used else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--hypercorn-python", default=sys.executable)
    parser.add_argument(
        "--record",
        action="store_true",
        help="write benchmarks/results/h3-py3.X.json (this Python's: Squall's HTTP/3 "
        "against Hypercorn's) and regenerate the README's tables",
    )
    args = parser.parse_args()
    appdir = tempfile.mkdtemp(prefix="h3bench-")
    # Squall's servers run outside the source tree: `python -c` puts the
    # working directory first on the path, and from the tree it would run
    # the pure modules, not the compiled ones installed in this interpreter.
    # "squall h3" runs on the default QUIC stack (aioquic when installed), and
    # "squall h3 qh3" on the other, so that both stacks have a row.
    contenders: list[tuple[str, list[str], Optional[str]]] = [
        ("squall h3", [sys.executable, "-c", SQUALL_SERVER], appdir),
        ("squall h3 qh3", [sys.executable, "-c", SQUALL_SERVER], appdir),
        ("squall h3 browser", [sys.executable, "-c", SQUALL_SERVER], appdir),
    ]
    # The servers run in appdir: a relative interpreter path (the Makefile's
    # .venv-hypercorn/bin/python) would not be found there.
    args.hypercorn_python = os.path.abspath(args.hypercorn_python)
    with open(os.path.join(appdir, "hc_app.py"), "w") as f:
        f.write(HYPERCORN_APP)
    probe = subprocess.run(
        [
            args.hypercorn_python,
            "-c",
            "import platform, hypercorn, aioquic; print(platform.python_version())",
        ],
        capture_output=True,
        text=True,
    )
    hypercorn_python = probe.stdout.strip()
    if args.record and probe.returncode == 0 and _minor(hypercorn_python) != _minor():
        raise SystemExit(
            f"--record: Hypercorn runs on Python {hypercorn_python}, this run on "
            f"{platform.python_version()}: give --hypercorn-python one of this Python"
        )
    if probe.returncode == 0:
        hypercorn = [args.hypercorn_python, "-m", "hypercorn", "--certfile", CERT,
                     "--keyfile", KEY, "--worker-class", "uvloop", "hc_app:app"]  # fmt: skip
        contenders += [
            ("hypercorn h3", hypercorn, appdir),
            ("hypercorn h3 browser", hypercorn, appdir),
        ]
    else:
        print(f"hypercorn[h3] not found in {args.hypercorn_python}: left out", file=sys.stderr)
    if shutil.which("h2load"):
        contenders += [
            ("squall h2", [sys.executable, "-c", SQUALL_SERVER], appdir),
            ("squall h1", [sys.executable, "-c", SQUALL_SERVER], appdir),
        ]
    else:
        print("h2load is not installed: HTTP/2 and HTTP/1.1 left out", file=sys.stderr)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in contenders}
    load = {"start": loadavg()}
    for round_no in range(args.rounds):
        turn = round_no % len(contenders)
        for name, argv, cwd in contenders[turn:] + contenders[:turn]:
            rate, per_cpu = measure(name, argv, cwd, args)
            results[name].append((rate, per_cpu))
            print(
                f"round {round_no + 1} {name}: {rate:.0f} req/s, {per_cpu:.0f} req/CPU-s"
                f"  (load {loadavg()})",
                flush=True,
            )
    load["end"] = loadavg()
    medians = {
        name: (
            statistics.median(r for r, _ in runs),
            statistics.median(c for _, c in runs),
        )
        for name, runs in results.items()
    }
    base = medians["squall h3"]
    # The last column: squall h3's requests per CPU-second over this
    # server's (above 1: squall h3 does more with a CPU-second).
    print(f"\n{'server':<18} {'req/s':>9} {'req/CPU-s':>10} {'squall h3 / this':>18}")
    for name, (rate, per_cpu) in medians.items():
        ratio = base[1] / per_cpu if per_cpu else float("nan")
        print(f"{name:<18} {rate:>9.0f} {per_cpu:>10.0f} {ratio:>18.2f}")
    print(f"load average {load['start']} at the start, {load['end']} at the end")
    if args.record:
        record(args, medians, results, load, hypercorn_python)
    return 0


def _minor(version: str = "") -> str:
    """X.Y of a Python version (this Python's when none is given)."""
    return ".".join((version or platform.python_version()).split(".")[:2])


# What the recorded rows call Squall's HTTP/3 on each stack (squall/_quicstack.py),
# and which of Hypercorn's runs each is put against: the one sent the same requests.
RECORD_LABELS = {
    "squall h3": ("HTTP/3, hello world through `Application` (Squall on aioquic)", "hypercorn h3"),
    "squall h3 qh3": ("HTTP/3, hello world through `Application` (Squall on qh3)", "hypercorn h3"),
    "squall h3 browser": (
        "HTTP/3, hello world with a browser's 17 request fields (Squall on aioquic)",
        "hypercorn h3 browser",
    ),
}
HYPERCORN = "Hypercorn (a bare ASGI app, aioquic, uvloop)"


def record_rows(medians: dict[str, tuple[float, float]]) -> list[dict[str, float | str]]:
    """Each Squall row's ratios to Hypercorn's run of the same requests:
    requests per server CPU-second and per second."""
    rows: list[dict[str, float | str]] = []
    for ours, (label, against) in RECORD_LABELS.items():
        theirs = medians.get(against)
        if ours not in medians or theirs is None or not theirs[0] or not theirs[1]:
            continue
        rows.append(
            {
                "label": f"{label} / {HYPERCORN}",
                "ratio_cpu": round(medians[ours][1] / theirs[1], 3),
                "ratio_rps": round(medians[ours][0] / theirs[0], 3),
            }
        )
    return rows


def record(
    args: argparse.Namespace,
    medians: dict[str, tuple[float, float]],
    results: dict[str, list[tuple[float, float]]],
    load: dict[str, str],
    hypercorn_python: str,
) -> None:
    """Writes this Python's benchmarks/results/h3-py3.X.json and regenerates the README's tables."""
    import figures

    rows = record_rows(medians)
    if not rows:
        raise SystemExit("--record: Squall's HTTP/3 and Hypercorn's did not both run")
    # Which QUIC stack "squall h3" ran on: the servers' default, asked of
    # this interpreter from outside the tree, as the servers run.
    stack = subprocess.run(
        [sys.executable, "-c", "from squall._quicstack import STACK; print(STACK)"],
        capture_output=True,
        text=True,
        cwd="/",
        check=False,
    ).stdout.strip()
    if stack != "aioquic":
        raise SystemExit(f"--record: Squall's default QUIC stack here is {stack!r}, not aioquic")
    path = figures.record(
        "h3",
        Path(__file__).resolve(),
        figures.squall_build(),
        {
            "rows": rows,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "streams": args.streams,
            "hypercorn_python": hypercorn_python,
            # Every contender's medians: requests per second, per server CPU-second.
            "medians": {
                name: {"rps": rps, "per_cpu_s": cpu} for name, (rps, cpu) in medians.items()
            },
            "rounds_measured": results,
            "load_average": load,
        },
        # A record per Python, each beside the others (the README's headline is the newest).
        per_python=True,
    )
    figures.main_update()
    print(f"recorded in {path}")


if __name__ == "__main__":
    sys.exit(main())
