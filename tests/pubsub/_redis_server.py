"""Debian's redis-server, started by a test on a free loopback port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Optional

REDIS_SERVER = shutil.which("redis-server") or (
    "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
)
SKIP_REASON = "redis-server is not installed (apt-get install redis-server)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process, no persistence, its log read until it is ready."""

    def __init__(self, port: Optional[int] = None, workdir: Optional[Path] = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 5.0) -> None:
        assert REDIS_SERVER is not None
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--logfile", "", "--loglevel", "notice"]
        if self.workdir is not None:
            args += ["--dir", str(self.workdir)]
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        seen = []
        # Ready when it says so; a line is printed at once, so readline() on
        # the pipe waits for the server itself, not for a clock.
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen.append(line.decode(errors="replace"))
            if b"Ready to accept connections" in line:
                return
        self.stop()
        raise AssertionError("redis-server did not start:\n" + "".join(seen[-20:]))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
