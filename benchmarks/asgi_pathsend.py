"""A large file through ASGI on Squall: ``http.response.pathsend`` against
Starlette's ``FileResponse`` (the plain body path), one download each.

The server (``squall run``, one process) serves benchmarks/servers/asgi_files.py
with ``ASGI_FILE`` naming a file of ``--size`` MB made for the run; curl
downloads ``/pathsend`` and ``/starlette`` to /dev/null, alternating, for
``--rounds`` rounds. Reported per path: the median wall time of a download,
and the bytes the server process moved through user space while serving it:
``rchar`` + ``wchar`` of /proc/PID/io (bytes passed to read()/write()-like
system calls; a file sent by sendfile() moves none of them).

Usage: python benchmarks/asgi_pathsend.py [--size 100] [--rounds 3]
Needs curl and starlette.
"""

from __future__ import annotations

import argparse
import os
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


def _io(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["rchar"]) + int(fields["wchar"])


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
            results: dict[str, list[tuple[float, int]]] = {"pathsend": [], "starlette": []}
            for _ in range(args.rounds):
                for name in results:
                    before = _io(server.pid)
                    start = time.perf_counter()
                    subprocess.run(
                        ["curl", "-sf", "-o", "/dev/null", f"http://127.0.0.1:{port}/{name}"],
                        check=True,
                    )
                    elapsed = time.perf_counter() - start
                    results[name].append((elapsed, _io(server.pid) - before))
        finally:
            server.terminate()
            server.wait(10)
    print(f"== {args.size} MB file, {args.rounds} rounds (medians)")
    for name, rows in results.items():
        secs = statistics.median(r[0] for r in rows)
        moved = statistics.median(r[1] for r in rows)
        print(
            f"  {name:<10} {secs * 1000:8.1f} ms  {args.size / secs:8.0f} MB/s  "
            f"user-space bytes {moved / 1e6:8.1f} MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
