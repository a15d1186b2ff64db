"""Starting the real ``squall run`` in a subprocess and reading its log lines."""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from tests._wait import HANG_GUARD

HERE = Path(__file__).resolve().parent


class Squall:
    """``python -m squall run ARGS`` with its stderr read line by line.

    ``python_args`` replace ``-m squall`` (``-m squall.compat -m squall``).

    Lines are queued by a reader thread; `expect` takes them until one
    matches, with a deadline (no sleeping).
    """

    def __init__(
        self,
        *args: str,
        cwd: Optional[Path] = None,
        env: Optional[dict[str, str]] = None,
        pass_fds: tuple[int, ...] = (),
        python_args: tuple[str, ...] = (),
    ) -> None:
        full_env = dict(os.environ)
        full_env.pop("SQUALL_NO_SPEEDUPS", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, *(python_args or ("-m", "squall")), "run", *args],
            cwd=str(cwd or HERE),
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=pass_fds,
            # Its own process group: close() kills the workers too.
            start_new_session=True,
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.seen: list[str] = []
        self._matched: set[int] = set()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = HANG_GUARD) -> re.Match[str]:
        """The first line not matched before that matches ``pattern`` (a regex).

        Lines already read are searched first, so that the order of
        expectations need not follow the order of interleaved log lines.
        """
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        for i, line in enumerate(self.seen):
            if i not in self._matched:
                match = regex.search(line)
                if match:
                    self._matched.add(i)
                    return match
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r}; saw:\n" + "\n".join(self.seen))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(
                    f"exited before a line matching {pattern!r}; saw:\n" + "\n".join(self.seen)
                )
            self.seen.append(line)
            match = regex.search(line)
            if match:
                self._matched.add(len(self.seen) - 1)
                return match

    def address(self) -> tuple[str, int]:
        """Waits for the ``Listening on http://HOST:PORT`` line."""
        match = self.expect(r"Listening on https?://([\d.]+):(\d+)")
        return match.group(1), int(match.group(2))

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = HANG_GUARD) -> int:
        code = self.proc.wait(timeout)
        self._thread.join(timeout)
        # Keep what was logged for failure messages.
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.seen.append(line)
        return code

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> Squall:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(
    address: tuple[str, int], path: str = "/", timeout: float = HANG_GUARD
) -> tuple[int, bytes]:
    """One request on a new connection."""
    conn = http.client.HTTPConnection(*address, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def get_json(address: tuple[str, int], path: str = "/") -> dict[str, Any]:
    status, body = get(address, path)
    assert status == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def free_listener() -> socket.socket:
    """A listening socket on a free loopback port, to pass as fd://N."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class Load:
    """Keep-alive clients sending GETs in a loop, as a load generator would.

    A request whose connection closes before any byte of its response, on a
    connection that had served earlier ones, is sent again on a new
    connection (RFC 9112 §9.3.1: what clients do for idempotent requests).
    A request that gets no complete response otherwise is a failure; a new
    connection refused once the server is gone ends that client.
    """

    def __init__(
        self, address: tuple[str, int], path: str, clients: int, first: Optional[str] = None
    ) -> None:
        self.address = address
        self.path = path
        # Each client's first request (by default ``path``): one answered at
        # once lets `start` return with every connection served, before the
        # requests to ``path`` are held (sample_apps' ``?hold=1``).
        self.first = first if first is not None else path
        self.clients = clients
        self.ok = 0
        self.retried = 0
        self.failures: list[str] = []
        self.pids: set[int] = set()
        self.stopping = False
        self.in_flight = 0
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self._first = threading.Barrier(clients + 1)
        self._lock = threading.Condition()

    def start(self) -> None:
        """Start the clients; returns once each has had one response."""
        for thread in self._threads:
            thread.start()
        self._first.wait(10)

    def wait_ok(self, count: int, timeout: float = HANG_GUARD) -> None:
        """Wait until ``count`` responses in all (or a failure)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.ok >= count or self.failures, timeout):
                raise AssertionError(f"only {self.ok} responses of {count} in {timeout}s")

    def wait_all_in_flight(self, timeout: float = HANG_GUARD) -> None:
        """Wait until every client has a request sent and unanswered."""
        with self._lock:
            if not self._lock.wait_for(lambda: self.in_flight == self.clients, timeout):
                raise AssertionError(f"only {self.in_flight} of {self.clients} requests in flight")

    def stop(self) -> None:
        self.stopping = True
        for thread in self._threads:
            thread.join(15)

    def _connect(self) -> Optional[socket.socket]:
        try:
            return socket.create_connection(self.address, timeout=HANG_GUARD)
        except ConnectionRefusedError:
            return None

    def _client(self) -> None:
        first = True
        sock = self._connect()
        reused = False
        request = f"GET {self.path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        first_request = f"GET {self.first} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        while sock is not None and not self.stopping:
            try:
                sock.sendall(first_request if first else request)
                with self._lock:
                    self.in_flight += 1
                    self._lock.notify_all()
                try:
                    status, close, body = _read_response(sock)
                finally:
                    with self._lock:
                        self.in_flight -= 1
            except _NoResponse:
                sock.close()
                if reused:
                    with self._lock:
                        self.retried += 1
                    sock = self._connect()
                    reused = False
                    if sock is None:
                        with self._lock:
                            self.failures.append("retry refused")
                    continue
                with self._lock:
                    self.failures.append("no response on a new connection")
                break
            except OSError as exc:
                with self._lock:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                    self._lock.notify_all()
                break
            with self._lock:
                if status == 200:
                    self.ok += 1
                    self._lock.notify_all()
                    if body.startswith(b"slow "):
                        self.pids.add(int(body.split()[1]))
                else:
                    self.failures.append(f"status {status}")
            if first:
                first = False
                self._first.wait(10)
            reused = True
            if close:
                sock.close()
                sock = None if self.stopping else self._connect()
                reused = False
        if first:
            self._first.abort()
        if sock is not None:
            sock.close()


class _NoResponse(Exception):
    pass


def _read_response(sock: socket.socket) -> tuple[int, bool, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            if buf:
                raise OSError(f"connection closed inside a response head: {buf!r}")
            raise _NoResponse()
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(fields.get("content-length", "0"))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise OSError("connection closed inside a response body")
        body += data
    return status, fields.get("connection", "").lower() == "close", body
