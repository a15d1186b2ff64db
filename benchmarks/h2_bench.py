"""HTTP/2 benchmark: h2load against Squall and Hypercorn, same app shape.

Each server runs pinned to one core, h2load (Debian's nghttp2-client) to
another; the contenders alternate over several rounds and the report gives
medians and their ratios, in requests per second and per server CPU-second.
Squall over HTTP/1.1 (h2load --h1, same connections, one request in flight
each) is measured in the same run for comparison.

    python benchmarks/h2_bench.py [--rounds 5] [--duration 5] [--hypercorn-python PATH]

The app answers ``GET /?n=...`` with a short text body that includes the
query argument. Servers speak h2c by prior knowledge (h2load's default for
``http://``), so TLS cost does not blur the comparison. Hypercorn runs from
``--hypercorn-python`` (an interpreter that has it; the current one by
default) and is left out, saying why, when it is missing.
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
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SQUALL_SERVER = """
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


def cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its descendants (Hypercorn serves from a child)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            continue  # exited meanwhile
    return total


class Server:
    def __init__(self, name: str, argv: list[str], port: int, cwd: Optional[str] = None) -> None:
        self.name = name
        self.port = port
        self.proc = subprocess.Popen(
            ["taskset", "-c", "0", *argv],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_listening(port, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start(name: str, argv: list[str], cwd: Optional[str]) -> Server:
    """Start a contender on a free port; once more on another if it fails
    (the port picked can be taken by someone else before the server binds)."""
    for attempt in (1, 2):
        port = free_port()
        if name.startswith("hypercorn"):
            full = [*argv, "--bind", f"127.0.0.1:{port}"]
        else:
            full = [*argv, str(port)]
        try:
            return Server(name, full, port, cwd)
        except RuntimeError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def h2load(port: int, duration: float, clients: int, streams: int, h1: bool) -> float:
    argv = [
        "taskset",
        "-c",
        "1",
        "h2load",
        "-t",
        "1",
        "-c",
        str(clients),
        "-m",
        "1" if h1 else str(streams),
        "-D",
        f"{duration:g}",
        "--warm-up-time=1",
    ]
    if h1:
        argv.append("--h1")
    argv.append(f"http://127.0.0.1:{port}/?n=bench")
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    out = result.stdout + result.stderr
    counts = re.search(r"requests: \d+ total, (\d+) started, \d+ done, (\d+) succeeded", out)
    rate = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    if counts is None or rate is None:
        raise RuntimeError(f"h2load failed:\n{out}")
    # A timed run (-D) counts the requests it had no time to start as
    # failed; only those that started and did not succeed are the server's.
    started, succeeded = int(counts.group(1)), int(counts.group(2))
    if started != succeeded:
        raise RuntimeError(f"h2load: {started - succeeded} requests failed:\n{out}")
    return float(rate.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--streams", type=int, default=16, help="concurrent streams per connection")
    parser.add_argument("--hypercorn-python", default=sys.executable)
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        print("h2load is not installed (apt-get install nghttp2-client)", file=sys.stderr)
        return 2

    contenders: list[tuple[str, list[str], bool, Optional[str]]] = [
        ("squall h2", [sys.executable, "-c", SQUALL_SERVER], False, ROOT),
        ("squall h1", [sys.executable, "-c", SQUALL_SERVER], True, ROOT),
    ]
    probe = subprocess.run(
        [args.hypercorn_python, "-c", "import hypercorn"], capture_output=True, check=False
    )
    appdir = None
    if probe.returncode == 0:
        appdir = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"h2bench-{os.getpid()}")
        os.makedirs(appdir, exist_ok=True)
        with open(os.path.join(appdir, "hyper_app.py"), "w") as f:
            f.write(HYPERCORN_APP)
        worker = (
            "uvloop"
            if subprocess.run(
                [args.hypercorn_python, "-c", "import uvloop"], capture_output=True, check=False
            ).returncode
            == 0
            else "asyncio"
        )
        hyper = [args.hypercorn_python, "-m", "hypercorn", "-k", worker, "--log-level", "error"]
        contenders.insert(1, ("hypercorn h2", [*hyper, "hyper_app:app"], False, appdir))
    else:
        print(f"Hypercorn left out: not importable by {args.hypercorn_python}")

    rates: dict[str, list[float]] = {name: [] for name, *_ in contenders}
    per_cpu: dict[str, list[float]] = {name: [] for name, *_ in contenders}
    for rnd in range(args.rounds):
        for name, argv, h1, cwd in contenders:
            server = start(name, argv, cwd)
            try:
                before = cpu_seconds(server.proc.pid)
                t0 = time.monotonic()
                rate = h2load(server.port, args.duration, args.clients, args.streams, h1)
                elapsed = time.monotonic() - t0
                cpu = cpu_seconds(server.proc.pid) - before
            finally:
                server.stop()
            rates[name].append(rate)
            # Requests per server CPU-second, over the measured window.
            per_cpu[name].append(rate * elapsed / cpu if cpu else 0.0)
            print(
                f"round {rnd + 1} {name:13} {rate:9.0f} req/s  {per_cpu[name][-1]:9.0f} req/CPU-s"
            )

    print(
        f"\nmedians over {args.rounds} rounds ({args.clients} connections, "
        f"{args.streams} streams each for h2):"
    )
    med = {name: statistics.median(v) for name, v in rates.items()}
    med_cpu = {name: statistics.median(v) for name, v in per_cpu.items()}
    for name in rates:
        print(f"  {name:13} {med[name]:9.0f} req/s  {med_cpu[name]:9.0f} req/CPU-s")
    if "hypercorn h2" in med:
        print(
            f"squall h2 / hypercorn h2: {med['squall h2'] / med['hypercorn h2']:.2f}x req/s, "
            f"{med_cpu['squall h2'] / med_cpu['hypercorn h2']:.2f}x per CPU-s"
        )
    print(f"squall h2 / squall h1:    {med['squall h2'] / med['squall h1']:.2f}x req/s")
    if appdir is not None:
        shutil.rmtree(appdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
