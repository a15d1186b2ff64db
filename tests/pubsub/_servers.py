"""Brokers started by tests and benchmarks on free 127.0.0.1 ports, and stopped.

* `RedisServer` (re-exported from ``_redis_server``): one redis-server.
* `RedisCluster`: a Redis Cluster of 3 primaries and 3 replicas from Debian's
  redis-server, made with ``redis-cli --cluster create``; `RedisCluster.start`
  returns once every slot is served, every node agrees on it and every
  replica is in sync (looked at again at each line a node logs, with a
  deadline). `RedisCluster.kill` SIGKILLs
  a node, `RedisCluster.pause`/`resume` SIGSTOP/SIGCONT one;
  `RedisCluster.wait_failover` waits until its slots moved to another.
* `NatsServer`: one nats-server.

Usable outside pytest (``make bench-cluster``)::

    with RedisCluster(workdir) as cluster:
        url = cluster.url   # redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Optional, Self

from tests._wait import HANG_GUARD

try:  # imported as tests.pubsub._servers or run from a benchmark's path
    from ._redis_server import REDIS_SERVER, RedisServer, free_ports, start_logged, stop_logged
except ImportError:  # pragma: no cover
    from _redis_server import (  # type: ignore[no-redef]
        REDIS_SERVER,
        RedisServer,
        free_ports,
        start_logged,
        stop_logged,
    )

__all__ = [
    "LoggedProcesses",
    "REDIS_SERVER",
    "REDIS_CLI",
    "NATS_SERVER",
    "RedisServer",
    "RedisCluster",
    "NatsServer",
]

REDIS_CLI = shutil.which("redis-cli")
NATS_SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
)


def _command(port: int, *args: str, timeout: float = HANG_GUARD) -> str:
    """One redis-cli command against 127.0.0.1:port; its output ("" on failure)."""
    assert REDIS_CLI is not None
    try:
        done = subprocess.run(
            [REDIS_CLI, "-h", "127.0.0.1", "-p", str(port), *args],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ""
    return done.stdout.decode(errors="replace") if done.returncode == 0 else ""


def _fields(info: str) -> dict[str, str]:
    out = {}
    for line in info.splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            out[key] = value
    return out


def wait_replicated(primary: int, key: str, timeout: float = HANG_GUARD) -> None:
    """Waits until ``primary``'s replica has applied everything the primary
    applied so far: a write under ``key``, then Redis' WAIT for it on the
    same connection (replication keeps order)."""
    assert REDIS_CLI is not None
    done = subprocess.run(
        [REDIS_CLI, "-h", "127.0.0.1", "-p", str(primary)],
        input=f"SET {key} 1\nWAIT 1 {int(timeout * 1000)}\n".encode(),
        capture_output=True,
        timeout=timeout + 5,
        check=False,
    )
    if done.stdout.split() != [b"OK", b"1"]:
        raise AssertionError(f"node {primary}'s replica did not catch up: {done.stdout!r}")


class LoggedProcesses:
    """Server processes whose logs are read by threads into files: each line
    bumps ``_lines`` and wakes whoever waits on ``_logged`` for a change."""

    def __init__(self) -> None:
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self._logged = threading.Condition()
        self._lines = 0
        self._readers: list[threading.Thread] = []

    def _popen(self, port: int, args: list[str], log: Path) -> None:
        """Starts ``args`` as the process known by ``port``, its log to ``log``."""
        proc = self.procs[port] = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        reader = threading.Thread(target=self._read_log, args=(proc, log), daemon=True)
        reader.start()
        self._readers.append(reader)

    def _read_log(self, proc: subprocess.Popen[bytes], path: Path) -> None:
        assert proc.stdout is not None
        with open(path, "ab") as log:
            for line in proc.stdout:
                log.write(line)
                log.flush()
                with self._logged:
                    self._lines += 1
                    self._logged.notify_all()
        proc.stdout.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)  # a paused process could not exit
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for reader in self._readers:
            reader.join(5)  # each ends at its pipe's end, with its process
        self._readers.clear()
        self.procs.clear()

    def start(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()


class RedisCluster(LoggedProcesses):
    """3 primaries + 3 replicas (``replicas=1``) on free ports, no persistence.

    Args:
        workdir: a directory for the nodes' files (one sub-directory each).
        primaries: how many primaries.
        node_timeout: ``cluster-node-timeout`` in ms: how soon a silent
            primary is failed over.
    """

    def __init__(self, workdir: Path, primaries: int = 3, node_timeout: int = 500) -> None:
        self.workdir = Path(workdir)
        self.primaries = primaries
        self.node_timeout = node_timeout
        # The nodes' ports and their cluster buses' (by default port + 10000,
        # which may be taken, or past 65535 for an ephemeral port), all
        # distinct: one asked for later could be a node's not yet started.
        ports = free_ports(primaries * 4)
        self.ports = ports[: primaries * 2]
        self._bus = dict(zip(self.ports, ports[primaries * 2 :], strict=True))
        # The nodes log to pipes read by threads (LoggedProcesses).
        super().__init__()

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def _spawn(self, port: int) -> None:
        assert REDIS_SERVER is not None
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no", "--dir", str(node_dir)]
        args += ["--logfile", "", "--loglevel", "notice"]
        args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
        args += ["--cluster-node-timeout", str(self.node_timeout)]
        args += ["--cluster-port", str(self._bus[port])]
        # A replica may take over however long its link was down: in a test
        # the replica of a killed primary must always be eligible.
        args += ["--cluster-replica-validity-factor", "0"]
        self._popen(port, args, node_dir / "redis.log")

    def _wait(self, what: str, ready: object, timeout: float) -> None:
        """Waits until ``ready()``: asked now and after each line a node logs
        (every change of cluster state, failover and replica sync is logged)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._logged:
                seen = self._lines
            if ready():  # type: ignore[operator]
                return
            with self._logged:
                logged = self._logged.wait_for(
                    lambda seen=seen: self._lines != seen, max(0.0, deadline - time.monotonic())
                )
            if not logged:
                self.stop()
                raise AssertionError(
                    f"Redis Cluster: {what} within {timeout}s (logs in {self.workdir})"
                )

    def start(self, timeout: float = HANG_GUARD) -> None:
        """Starts the nodes, makes the cluster and waits until it serves."""
        if REDIS_SERVER is None or REDIS_CLI is None:
            raise RuntimeError(
                "redis-server and redis-cli are needed (apt-get install redis-server)"
            )
        for port in self.ports:
            self._spawn(port)
        self._wait("every node ready", lambda: all(map(self._ready, self.ports)), timeout)
        create = subprocess.run(
            [REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)]
            + ["--cluster-replicas", str(len(self.ports) // self.primaries - 1), "--cluster-yes"],
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        if create.returncode != 0:
            self.stop()
            raise AssertionError("redis-cli --cluster create failed:\n" + create.stdout.decode())
        self._wait("every node sees cluster_state:ok", self._all_ok, timeout)
        self._wait("every replica in sync", self._replicas_synced, timeout)

    def _ready(self, port: int) -> bool:
        log = self.workdir / str(port) / "redis.log"
        return log.exists() and b"Ready to accept connections" in log.read_bytes()

    def _all_ok(self) -> bool:
        for port in self.alive:
            info = _fields(_command(port, "CLUSTER", "INFO"))
            if info.get("cluster_state") != "ok" or info.get("cluster_slots_ok") != "16384":
                return False
            if info.get("cluster_known_nodes") != str(len(self.ports)):
                return False
        return True

    def _replicas_synced(self) -> bool:
        replicas = 0
        for port in self.alive:
            info = _fields(_command(port, "INFO", "replication"))
            if info.get("role") == "slave":
                replicas += 1
                if info.get("master_link_status") != "up":
                    return False
        return replicas == len(self.ports) - self.primaries

    def role(self, port: int) -> str:
        """``master`` or ``slave``, as the node says ("" when it does not answer)."""
        return _fields(_command(port, "INFO", "replication")).get("role", "")

    def wait_replicated(self, primary: int, key: str, timeout: float = HANG_GUARD) -> None:
        """Waits until ``primary``'s replica has applied everything the
        primary applied so far (`wait_replicated`, with a key in the slot)."""
        wait_replicated(primary, key, timeout)

    def replica_of(self, primary: int) -> int:
        """The port of ``primary``'s replica, as the primary says."""
        info = _fields(_command(primary, "INFO", "replication"))
        for key, value in info.items():
            if key.startswith("slave") and "port=" in value:
                return int(value.split("port=")[1].split(",")[0])
        raise AssertionError(f"node {primary} has no replica: {info}")

    def primary_ports(self) -> list[int]:
        return [p for p in self.alive if self.role(p) == "master"]

    def owner(self, key: str) -> int:
        """The port of the primary that serves ``key``'s slot, as a running node says."""
        for port in self.alive:
            slot = _command(port, "CLUSTER", "KEYSLOT", key).strip()
            for start, end, primary in self._slots(port):
                if slot.isdigit() and start <= int(slot) <= end:
                    return primary
        raise AssertionError(f"no running node knows the owner of {key!r}")

    def _slots(self, port: int) -> list[tuple[int, int, int]]:
        """(first slot, last slot, primary port) from CLUSTER SLOTS on ``port``."""
        import redis

        try:
            with redis.Redis(port=port, socket_timeout=2) as client:
                ranges = client.execute_command("CLUSTER SLOTS")
        except redis.RedisError:
            return []
        return [(int(r[0]), int(r[1]), int(r[2][1])) for r in ranges]

    def kill(self, port: int) -> None:
        """SIGKILLs the node on ``port`` (no goodbye to the cluster)."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)

    def pause(self, port: int) -> None:
        """SIGSTOPs the node on ``port``: its sockets stay open, nothing answers."""
        self.procs[port].send_signal(signal.SIGSTOP)

    def resume(self, port: int) -> None:
        """SIGCONTs a node `pause` stopped."""
        self.procs[port].send_signal(signal.SIGCONT)

    def wait_failover(self, dead: int, timeout: float = HANG_GUARD) -> None:
        """Waits until the nodes still running agree on a cluster without ``dead``."""

        def done() -> bool:
            for port in self.alive:
                info = _fields(_command(port, "CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok":
                    return False
                if any(primary == dead for _, _, primary in self._slots(port)):
                    return False
            return True

        self._wait(f"node {dead}'s slots failed over", done, timeout)

    def wait_role(self, port: int, role: str, timeout: float = HANG_GUARD) -> None:
        """Waits until the node on ``port`` says it is ``role`` (``master``, ``slave``)."""
        self._wait(f"node {port} a {role}", lambda: self.role(port) == role, timeout)


class NatsServer:
    """One nats-server (``-js`` for JetStream when asked)."""

    def __init__(self, workdir: Path, jetstream: bool = False) -> None:
        (self.port,) = free_ports(1)
        self.workdir = Path(workdir)
        self.jetstream = jetstream
        self.proc: Optional[subprocess.Popen[bytes]] = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = HANG_GUARD) -> None:
        if NATS_SERVER is None:
            raise RuntimeError("nats-server is needed (apt-get install nats-server)")
        args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            args += ["-js", "-sd", str(self.workdir / "js")]
        self.proc = start_logged(args, b"Server is ready", timeout)

    def stop(self) -> None:
        stop_logged(self.proc)
        self.proc = None


if __name__ == "__main__":  # pragma: no cover - a manual check
    import tempfile

    with tempfile.TemporaryDirectory() as tmp, RedisCluster(Path(tmp)) as c:
        print(c.url, "primaries:", c.primary_ports(), "pid", os.getpid())
