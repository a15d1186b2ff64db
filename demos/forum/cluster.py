"""The forum as several workers behind nginx, sharing live updates through Redis.

``make demo-cluster-local`` runs ``python demos/forum/cluster.py``: it starts a
redis-server (no persistence) on a free port, N ``squall run`` workers each on
its own Unix socket (all on one SQLite file, with ``FORUM_PUBSUB`` pointing at
that Redis and one shared cookie secret), and nginx in front of them on
http://127.0.0.1:8888/. Ctrl-C stops everything. redis-server and nginx come
from Debian's packages (the Makefile installs them when missing).

A reply posted through one worker reaches readers connected to another: the
worker that stores it publishes it on Redis, and every worker's subscription
passes it to its own WebSocket and long-poll clients.
"""

from __future__ import annotations

import os
import queue
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO, Optional

HERE = Path(__file__).resolve().parent


def find(name: str, *fallbacks: str) -> Optional[str]:
    """The path of a program, looking in sbin directories too."""
    found = shutil.which(name)
    if found:
        return found
    for path in fallbacks:
        if os.access(path, os.X_OK):
            return path
    return None


REDIS_SERVER = find("redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server")
NGINX = find("nginx", "/usr/sbin/nginx")


class Reader:
    """Reads a process's output lines on a thread, so that they can be awaited with a deadline."""

    def __init__(self, name: str, stream: IO[bytes], echo: bool) -> None:
        self.name = name
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.seen: list[str] = []
        self.echo = echo
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if self.echo:
                print(f"[{self.name}] {line}", file=sys.stderr, flush=True)
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float) -> str:
        """The first new line containing ``pattern`` (a regex), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                line = ""
            if line is None or remaining <= 0:
                tail = "\n".join(self.seen[-20:])
                raise RuntimeError(f"{self.name} did not say {pattern!r}:\n{tail}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line


class Cluster:
    """redis-server, ``workers`` forum workers and nginx, started and stopped together.

    Args:
        workdir: where sockets, logs and nginx's files go.
        port: nginx's port on 127.0.0.1 (0: a free one).
        workers: how many ``squall run`` workers.
        db: the database URL shared by the workers (default: SQLite in ``workdir``).
        echo: copy the processes' logs to stderr.
        nginx: put nginx in front (each worker on its own Unix socket); with
            False, one ``squall run --workers N`` serves the TCP port itself,
            its workers sharing the listening socket (no proxy: a WebSocket
            is one file descriptor instead of nginx's two).
        nginx_workers: nginx's worker_processes (2: each reader is two file
            descriptors through nginx, and one worker's 20,000 hold 10,000 at most).
    """

    def __init__(
        self,
        workdir: Path,
        port: int = 8888,
        workers: int = 2,
        db: Optional[str] = None,
        echo: bool = False,
        nginx: bool = True,
        nginx_workers: int = 2,
    ) -> None:
        self.workdir = workdir
        self.nginx = nginx
        self.nginx_workers = nginx_workers
        self.port = port
        self.workers = workers
        self.db = db or f"sqlite:///{workdir / 'forum.sqlite3'}"
        self.echo = echo
        self.secret = secrets.token_hex(32)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.readers: list[Reader] = []
        self.redis_url = ""
        self.redis_proc: Optional[subprocess.Popen[bytes]] = None
        self.url = ""

    @property
    def sockets(self) -> list[Path]:
        return [self.workdir / f"worker-{n}.sock" for n in range(1, self.workers + 1)]

    def _spawn(self, name: str, args: list[str], **kwargs: object) -> Reader:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us; we stop them in order
            **kwargs,  # type: ignore[call-overload]
        )
        self.procs.append(proc)
        assert proc.stdout is not None
        reader = Reader(name, proc.stdout, self.echo)
        self.readers.append(reader)
        return reader

    def start(self, timeout: float = 20.0) -> str:
        """Starts everything; returns nginx's URL once every part is ready."""
        if REDIS_SERVER is None or (self.nginx and NGINX is None):
            raise RuntimeError("the cluster needs redis-server and nginx (apt-get install them)")
        try:
            return self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> str:
        assert REDIS_SERVER is not None and NGINX is not None
        redis_port = _free_port()
        redis = self._spawn(
            "redis",
            [REDIS_SERVER, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--dir", str(self.workdir), "--logfile", ""],
        )
        self.redis_proc = self.procs[-1]
        self.redis_url = f"redis://127.0.0.1:{redis_port}/0"
        redis.expect("Ready to accept connections", timeout)

        env = dict(os.environ, PYTHONUNBUFFERED="1", FORUM_DB=self.db)
        env.update(FORUM_PUBSUB=self.redis_url, FORUM_SECRET=self.secret)
        if not self.nginx:
            return self._start_shared(env, timeout)
        ready = []
        for n, path in enumerate(self.sockets, 1):
            args = [sys.executable, "-m", "squall", "run", "app:cluster_app", "--factory"]
            args += ["--app-dir", str(HERE), "--bind", f"unix:{path}", "--no-access-log"]
            args += ["--timeout-graceful-shutdown", "2"]
            ready.append(self._spawn(f"worker-{n}", args, env=env, cwd=str(HERE)))
        for reader in ready:
            reader.expect(r"Worker \d+ serving", timeout)

        # One nginx worker takes its listening socket from us (the NGINX
        # variable), so it accepts as soon as it runs and the port is known
        # before it starts. Several bind their own with reuseport (see
        # nginx.conf): the port is picked here and bound by nginx's master
        # before it starts the workers.
        shared = self.nginx_workers > 1
        listener = None
        if shared:
            self.port = self.port or _free_port()
        else:
            listener = self._listener()
        conf = (HERE / "nginx.conf").read_text()
        servers = "\n".join(f"        server unix:{p};" for p in self.sockets)
        pins = "\n".join(f"        {n} forum_{n};" for n in range(1, self.workers + 1))
        pinned = "\n".join(
            f"    upstream forum_{n} {{\n        server unix:{p};\n        keepalive 8;\n"
            f"        keepalive_timeout 4s;\n    }}"
            for n, p in enumerate(self.sockets, 1)
        )
        for name, value in {
            "@DIR@": str(self.workdir),
            "@PORT@": str(self.port),
            "@NGINX_WORKERS@": str(self.nginx_workers),
            "@LISTEN@": " reuseport backlog=4096" if shared else "",
            "@SERVERS@": servers,
            "@PIN_MAP@": pins,
            "@PINNED@": pinned,
            # As root, nginx's workers would run as nobody, who may not reach
            # the sockets in a private temporary directory.
            "@USER@": "user root;" if os.geteuid() == 0 else "",
        }.items():
            conf = conf.replace(name, value)
        (self.workdir / "nginx.conf").write_text(conf)
        args = [NGINX, "-p", str(self.workdir), "-c", str(self.workdir / "nginx.conf")]
        args += ["-e", "stderr"]
        if listener is None:
            nginx = self._spawn("nginx", args)
        else:
            nginx = self._spawn(
                "nginx",
                args,
                env=dict(os.environ, NGINX=f"{listener.fileno()};"),
                pass_fds=(listener.fileno(),),
            )
            listener.close()
        # The master logs this once per worker, after binding the sockets.
        for _ in range(self.nginx_workers):
            nginx.expect(r"start worker process", timeout)
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    def _start_shared(self, env: dict[str, str], timeout: float) -> str:
        """One ``squall run --workers N`` on a listening socket made here."""
        listener = self._listener()
        args = [sys.executable, "-m", "squall", "run", "app:cluster_app", "--factory"]
        args += ["--app-dir", str(HERE), "--bind", f"fd://{listener.fileno()}"]
        args += ["--workers", str(self.workers), "--no-access-log"]
        args += ["--timeout-graceful-shutdown", "2"]
        supervisor = self._spawn(
            "squall", args, env=env, cwd=str(HERE), pass_fds=(listener.fileno(),)
        )
        listener.close()
        for _ in range(self.workers):
            supervisor.expect(r"Worker \d+ serving", timeout)
        self.url = f"http://127.0.0.1:{self.port}"
        return self.url

    def _listener(self) -> socket.socket:
        """The listening socket handed to nginx or squall run; sets ``self.port``."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(2048)
        self.port = listener.getsockname()[1]
        return listener

    def server_pids(self) -> list[int]:
        """Every process serving the cluster, the workers of ``squall run`` included."""
        pids = []
        for proc in self.procs:
            pids.append(proc.pid)
            try:
                children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
            except OSError:
                continue
            pids += [int(pid) for pid in children.split()]
        return pids

    def stop(self) -> None:
        """Stops nginx and the workers, then (once they have drained) Redis."""
        # Redis goes last: a worker that lost it while draining would log
        # reconnection attempts for nothing.
        redis = [p for p in self.procs if p is self.redis_proc]
        for group in ([p for p in self.procs if p is not self.redis_proc], redis):
            for proc in group:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            for proc in group:
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        # Their output ends with them: let the readers see EOF, then close.
        for reader in self.readers:
            reader.thread.join(5)
        for proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()
        self.readers.clear()
        self.redis_proc = None

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8888, help="nginx's port (default 8888)")
    parser.add_argument("--workers", type=int, default=2, help="forum workers (default 2)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in demos/forum)")
    parser.add_argument(
        "--no-nginx",
        dest="nginx",
        action="store_false",
        help="no proxy: the workers of one `squall run --workers N` share the port",
    )
    parser.add_argument("--verbose", action="store_true", help="copy the processes' logs")
    args = parser.parse_args(argv)
    db = args.db or f"sqlite:///{HERE / 'forum.sqlite3'}"
    with tempfile.TemporaryDirectory(prefix="squall-forum-cluster-") as workdir:
        cluster = Cluster(
            Path(workdir), args.port, args.workers, db, echo=args.verbose, nginx=args.nginx
        )
        front = "behind nginx" if args.nginx else "sharing the port"
        print(f"== starting redis-server and {args.workers} forum workers {front}", flush=True)
        try:
            url = cluster.start()
        except RuntimeError as exc:
            print(f"== the forum could not start: {exc}", file=sys.stderr, flush=True)
            return 1
        try:
            # Blocked, so that sigwait takes them instead of their handlers
            # (from before the address is out: a signal sent on seeing it).
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
            print(f"== Redis at {cluster.redis_url}; Ctrl-C stops everything", flush=True)
            print(f"\n    {url}/\n", flush=True)
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
        finally:
            cluster.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
