"""A large file through ASGI on Squall: ``http.response.pathsend`` against
Starlette's ``FileResponse`` (the plain body path), one download each.

The server (``squall run``, one process) serves benchmarks/servers/asgi_files.py
with ``ASGI_FILE`` naming a file of ``--size`` MB made for the run; curl
downloads ``/pathsend`` and ``/starlette`` to /dev/null, alternating, for
``--rounds`` rounds. Reported per path: the median wall time of a download,
the server's CPU time for it (user + system, /proc/PID/stat), and the bytes
its system calls moved: one more download per path runs under ``strace -f``
(when installed), which sums the return values of read()/write()-like calls
(bytes copied through user space) and of sendfile() (bytes the kernel moved
from file to socket, none through user space). /proc/PID/io's rchar and
wchar cannot tell them apart: Linux counts sendfile's bytes in both.

Usage: python benchmarks/asgi_pathsend.py [--size 100] [--rounds 3]
Needs curl and starlette (and strace for the byte counts).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_COPYING = ("read", "write", "readv", "writev", "pread64", "recvfrom", "sendto", "sendmsg")
_CALL = re.compile(rb"^(?:\d+\s+)?(\w+)\(.*\)\s+=\s+(\d+)", re.M)


def _traced(pid: int, url: str, log: Path) -> dict[str, int]:
    """Bytes per system call (return values summed) while ``url`` downloads."""
    calls = ",".join((*_COPYING, "sendfile"))
    tracer = subprocess.Popen(
        ["strace", "-f", "-e", f"trace={calls}", "-e", "signal=none", "-o", str(log)]
        + ["-p", str(pid)],
        stderr=subprocess.PIPE,
    )
    try:
        assert tracer.stderr is not None
        # strace says "Process N attached" once it traces: only then start.
        tracer.stderr.readline()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", url], check=True)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    totals: dict[str, int] = {}
    for name, value in _CALL.findall(log.read_bytes()):
        key = "sendfile" if name == b"sendfile" else "copied"
        totals[key] = totals.get(key, 0) + int(value)
    return totals


def _wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port another process opens: nothing to wait on
    raise RuntimeError("the server did not start listening")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=100, help="file size in MB")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        with open(path, "wb") as out:
            block = os.urandom(1 << 20)
            for _ in range(args.size):
                out.write(block)
        port = _free_port()
        env = dict(os.environ, ASGI_FILE=str(path))
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE / "servers"), env.get("PYTHONPATH")) if p
        )
        cmd = [sys.executable, "-m", "squall", "run", "asgi_files:app", "--port", str(port)]
        cmd += ["--no-access-log", "--log-level", "warning"]
        server = subprocess.Popen(cmd, env=env)
        try:
            _wait_listening(port, time.monotonic() + 30)
            results: dict[str, list[tuple[float, float]]] = {"pathsend": [], "starlette": []}
            for _ in range(args.rounds):
                for name in results:
                    before = _cpu(server.pid)
                    start = time.perf_counter()
                    subprocess.run(
                        ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/{name}"],
                        check=True,
                    )
                    elapsed = time.perf_counter() - start
                    results[name].append((elapsed, _cpu(server.pid) - before))
            moved: dict[str, dict[str, int]] = {}
            if shutil.which("strace"):
                for name in results:
                    url = f"http://127.0.0.1:{port}/{name}"
                    moved[name] = _traced(server.pid, url, Path(tmp) / f"{name}.strace")
        finally:
            server.terminate()
            server.wait(10)
    print(f"== {args.size} MB file, {args.rounds} rounds (medians)")
    for name, rows in results.items():
        secs = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        line = f"  {name:<10} {secs * 1000:8.1f} ms  {args.size / secs:8.0f} MB/s  cpu {cpu * 1000:6.0f} ms"
        if name in moved:
            copied, sent = moved[name].get("copied", 0), moved[name].get("sendfile", 0)
            line += f"  copied through user space {copied / 1e6:7.1f} MB, by sendfile {sent / 1e6:7.1f} MB"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
