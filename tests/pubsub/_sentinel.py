"""A Redis primary, its replica and one Sentinel watching them, on free
127.0.0.1 ports, for the tests of ``redis+sentinel://``.

One Sentinel with a quorum of 1 is enough to name a primary and to fail
over on `RedisSentinel.failover` (``SENTINEL FAILOVER``, which needs no
agreement). Every wait is on a condition looked at again at each line a
process logs (a role change, a sync, a Sentinel event are all logged), with
a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ._redis_server import REDIS_SERVER, free_ports
from ._servers import REDIS_CLI, LoggedProcesses, _command, _fields, wait_replicated

__all__ = ["RedisSentinel", "MASTER"]

#: The name the Sentinel knows the primary by.
MASTER = "squallmaster"


class RedisSentinel(LoggedProcesses):
    """Two redis-servers (a primary and its replica) and a Sentinel.

    Args:
        workdir: a directory for the processes' files and logs.
        primary_options: redis-server arguments of the first primary alone.
    """

    def __init__(self, workdir: Path, primary_options: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.workdir = Path(workdir)
        self.primary, self.replica, self.sentinel = free_ports(3)
        self.primary_options = primary_options  # the first primary's extra arguments

    def url(self, query: str = "") -> str:
        """The ``redis+sentinel://`` URL of the primary, database 0."""
        return f"redis+sentinel://127.0.0.1:{self.sentinel}/{MASTER}/0" + (
            f"?{query}" if query else ""
        )

    def _spawn(self, port: int, args: list[str]) -> None:
        assert REDIS_SERVER is not None
        node_dir = self.workdir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self._popen(port, [REDIS_SERVER, *args], node_dir / "redis.log")

    def _server(self, port: int, *more: str) -> None:
        args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir / str(port)), "--logfile", "", "--loglevel", "notice"]
        # A replica's first sync at once (Redis 7 waits 5 s for more replicas).
        args += ["--repl-diskless-sync-delay", "0"]
        self._spawn(port, [*args, *more])

    def wait(self, what: str, ready: Callable[[], bool], timeout: float = 30.0) -> None:
        """Waits until ``ready()``: asked now, after each line logged, and at
        least every 0.1 s (a Sentinel's view of a replica changes unlogged)."""
        deadline = time.monotonic() + timeout
        while not ready():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"Sentinel setup: {what} within {timeout}s ({self.workdir})")
            with self._logged:
                seen = self._lines
                self._logged.wait_for(lambda seen=seen: self._lines != seen, min(0.1, left))

    def role(self, port: int) -> str:
        """``master`` or ``slave``, as the server says ("" when it does not answer)."""
        return _fields(_command(port, "INFO", "replication")).get("role", "")

    def named(self) -> int:
        """The port of the primary the Sentinel names (0: none)."""
        out = _command(self.sentinel, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER).split()
        return int(out[1]) if len(out) == 2 and out[1].isdigit() else 0

    def _synced(self, primary: int, replica: int) -> bool:
        info = _fields(_command(replica, "INFO", "replication"))
        return (
            info.get("role") == "slave"
            and info.get("master_port") == str(primary)
            and info.get("master_link_status") == "up"
        )

    def _sentinel_sees_replica(self, replica: int) -> bool:
        """The Sentinel reaches ``replica`` and has its INFO (flags "slave",
        in sync): a replica it could fail over to."""
        words = _command(self.sentinel, "SENTINEL", "REPLICAS", MASTER).split()
        fields = dict(zip(words[::2], words[1::2], strict=False))
        return (
            fields.get("port") == str(replica)
            and fields.get("flags") == "slave"
            and fields.get("master-link-status") == "ok"
        )

    def _failing_over(self) -> bool:
        """Whether the Sentinel has a failover of the primary in progress."""
        words = _command(self.sentinel, "SENTINEL", "MASTER", MASTER).split()
        fields = dict(zip(words[::2], words[1::2], strict=False))
        return "failover_in_progress" in fields.get("flags", "").split(",")

    def start(self, timeout: float = 30.0) -> None:
        """Starts the primary, the replica and the Sentinel, and waits until
        the replica is in sync and the Sentinel knows it."""
        if REDIS_SERVER is None or REDIS_CLI is None:
            raise RuntimeError(
                "redis-server and redis-cli are needed (apt-get install redis-server)"
            )
        self._server(self.primary, *self.primary_options)
        self._server(self.replica, "--replicaof", "127.0.0.1", str(self.primary))
        # The Sentinel learns of replicas from the primary's INFO, read at
        # once and then every 10 s: it starts once the replica is there.
        self.wait("the replica in sync", lambda: self._synced(self.primary, self.replica), timeout)
        conf = self.workdir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary} 1\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\n"
            f"sentinel failover-timeout {MASTER} 5000\n"
        )
        self._spawn(
            self.sentinel, [str(conf), "--sentinel", "--logfile", "", "--loglevel", "notice"]
        )
        self.wait(
            "the Sentinel knows the replica",
            lambda: self._sentinel_sees_replica(self.replica),
            timeout,
        )

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Waits until the replica has applied everything the primary applied."""
        wait_replicated(self.primary, "squall.test.replicated", timeout)

    def failover(self, timeout: float = 30.0) -> int:
        """``SENTINEL FAILOVER``, then waits until the Sentinel names the
        replica the primary and the replica says so. Returns its port.

        The old primary is told to replicate from it only when the Sentinel
        next looks at it (up to 10 s on): until then it still takes writes.
        """
        new = self.replica
        # After a failover of its own (a primary killed), the Sentinel names
        # the promoted replica at once but finishes only when it has
        # reconfigured the other replicas or given up on them (logged
        # "+switch-master"); until then a FAILOVER is refused with INPROG.
        self.wait("the Sentinel's last failover to end", lambda: not self._failing_over(), timeout)
        out = _command(self.sentinel, "SENTINEL", "FAILOVER", MASTER).strip()
        if out != "OK":
            raise AssertionError(f"SENTINEL FAILOVER: {out!r}")
        self.wait(
            f"{new} named primary",
            lambda: self.named() == new and self.role(new) == "master",
            timeout,
        )
        self.primary, self.replica = new, self.primary
        return new
