"""Throwaway MariaDB and PostgreSQL servers for the forum's tests.

Each is started from Debian's packages (``mariadb-server``, ``postgresql``) in a
temporary directory on a free port, once per test session, and each test gets
a database of its own in it. As root, PostgreSQL runs as the ``postgres`` user
(it refuses root) and MariaDB with ``--user=root``. Readiness is the server's
own "ready" line in its log, waited for with a deadline.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from typing import Any, Optional

START_LIMIT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _which(*names: str, patterns: tuple[str, ...] = ()) -> Optional[str]:
    for name in names:
        found = shutil.which(name) or next(
            (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
        )
        if found:
            return found
    for pattern in patterns:
        matches = sorted(glob.glob(pattern))
        if matches:
            return matches[-1]
    return None


def _die_with_parent() -> None:
    """In the child: SIGKILL when the test process dies (Linux), so that a test
    run killed midway leaves no database server running."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _room(path: str, needed: int) -> bool:
    try:
        return os.access(path, os.W_OK) and shutil.disk_usage(path).free >= needed
    except OSError:
        return False


class Server:
    """A database server process whose log is read until a line says it is ready."""

    kind = ""
    ready_text = ""

    def __init__(self) -> None:
        # In memory where there is a tmpfs: nothing to keep, and DDL's fsyncs cost nothing.
        # (Containers often give /dev/shm 64 MB: then the usual temporary folder.)
        shm = "/dev/shm" if _room("/dev/shm", 512 * 1024 * 1024) else None
        self.workdir = tempfile.mkdtemp(prefix=f"squall-forum-{self.kind}-", dir=shm)
        self.port = free_port()
        self.process: Optional[subprocess.Popen[bytes]] = None
        self.log: list[str] = []
        self.reader: Optional[threading.Thread] = None
        self.names = itertools.count(1)

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> None:
        ready = threading.Event()
        found: list[bool] = []
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for raw in stdout:
                line = raw.decode(errors="replace")
                self.log.append(line)
                if self.ready_text in line:
                    found.append(True)
                    ready.set()
            ready.set()  # the log ended: stop waiting

        self.reader = threading.Thread(target=read, daemon=True)
        self.reader.start()
        if not ready.wait(START_LIMIT) or not found or process.poll() is not None:
            self.stop()
            tail = "".join(self.log[-15:])
            raise RuntimeError(f"{self.kind} did not start:\n{tail}")

    stop_signal = signal.SIGTERM

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Its data is thrown away: no need for a clean shutdown.
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.reader is not None:
            self.reader.join(10)  # the log ends with the process
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class PostgreSQL(Server):
    kind = "postgresql"
    stop_signal = signal.SIGQUIT  # immediate shutdown, its backends too
    ready_text = "database system is ready to accept connections"

    @staticmethod
    def missing() -> Optional[str]:
        if _which("initdb", patterns=("/usr/lib/postgresql/*/bin/initdb",)) is None:
            return "PostgreSQL is not installed (apt-get install postgresql)"
        return None

    def start(self) -> None:
        bindir = os.path.dirname(
            _which("initdb", patterns=("/usr/lib/postgresql/*/bin/initdb",)) or ""
        )
        data = os.path.join(self.workdir, "data")
        as_user: dict[str, Any] = {}
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: the package's own user runs it
            # (set in the child itself, so that signals reach the postmaster).
            user = pwd.getpwnam("postgres")
            os.chown(self.workdir, user.pw_uid, user.pw_gid)
            as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        initdb = [f"{bindir}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
        subprocess.run(
            initdb,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=self.workdir,
            **as_user,
        )
        args = [f"{bindir}/postgres", "-D", data, "-p", str(self.port), "-h", "127.0.0.1"]
        args += ["-k", self.workdir, "-c", "fsync=off", "-c", "synchronous_commit=off"]
        args += ["-c", "full_page_writes=off", "-c", "max_connections=200"]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            preexec_fn=_die_with_parent,
            **as_user,
        )
        self._wait_ready(self.process)

    async def new_database(self) -> str:
        import asyncpg

        name = f"forum_{next(self.names)}"
        conn = await asyncpg.connect(
            host="127.0.0.1", port=self.port, user="postgres", database="postgres"
        )
        try:
            await conn.execute(f"CREATE DATABASE {name}")
        finally:
            await conn.close()
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"


class MariaDB(Server):
    kind = "mariadb"
    stop_signal = signal.SIGKILL
    ready_text = "ready for connections"

    @staticmethod
    def missing() -> Optional[str]:
        if _which("mariadbd", "mysqld") is None or _which("mariadb-install-db") is None:
            return "MariaDB is not installed (apt-get install mariadb-server)"
        return None

    def start(self) -> None:
        data = os.path.join(self.workdir, "data")
        user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        common = ["--no-defaults", f"--datadir={data}", f"--user={user}"]
        subprocess.run(
            [
                _which("mariadb-install-db") or "",
                *common,
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        args = [_which("mariadbd", "mysqld") or "", *common, f"--port={self.port}"]
        args += ["--bind-address=127.0.0.1", f"--socket={self.workdir}/mysqld.sock"]
        args += [f"--pid-file={self.workdir}/mysqld.pid", "--skip-grant-tables"]
        args += ["--innodb-buffer-pool-size=32M", "--innodb-flush-log-at-trx-commit=0"]
        args += ["--innodb-log-file-size=16M"]
        args += ["--innodb-doublewrite=0", "--skip-log-bin", "--max-connections=300"]
        args += ["--character-set-server=utf8mb4"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        self._wait_ready(self.process)

    async def new_database(self) -> str:
        import aiomysql

        name = f"forum_{next(self.names)}"
        conn = await aiomysql.connect(host="127.0.0.1", port=self.port, user="root")
        try:
            async with conn.cursor() as cur:
                await cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return f"mysql://root@127.0.0.1:{self.port}/{name}"
