"""Debian's redis-server, started by a test on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

from tests._wait import HANG_GUARD

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)
SKIP_REASON = "redis-server is not installed (apt-get install redis-server)"


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket is held open until all are
    bound (ports asked for one at a time may come back twice)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def start_logged(
    args: list[str], ready: bytes, timeout: float = HANG_GUARD
) -> subprocess.Popen[bytes]:
    """Starts a server whose log goes to its stdout; returns once a log line
    holds ``ready``. A line is printed at once, so readline() on the pipe
    waits for the server itself, not for a clock."""
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line.decode(errors="replace"))
        if ready in line:
            return proc
    stop_logged(proc)
    raise AssertionError(f"{Path(args[0]).name} did not start:\n" + "".join(seen[-20:]))


def stop_logged(proc: Optional[subprocess.Popen[bytes]]) -> None:
    """Stops what `start_logged` started (None: nothing)."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        proc.wait(5)
    if proc is not None and proc.stdout is not None:
        proc.stdout.close()


class RedisServer:
    """One redis-server process, no persistence, its log read until it is ready."""

    def __init__(self, port: Optional[int] = None, workdir: Optional[Path] = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = HANG_GUARD) -> None:
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--logfile", "", "--loglevel", "notice"]
        if self.workdir is not None:
            args += ["--dir", str(self.workdir)]
        self.proc = start_logged(args, b"Ready to accept connections", timeout)

    def stop(self) -> None:
        stop_logged(self.proc)
        self.proc = None
