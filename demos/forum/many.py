"""The forum on many machines: ``make demo-cluster NODES=4``.

Each node is a ``squall run`` of the forum in a network namespace of its
own, with its own address from the benchmarking range 198.18.0.0/15, on a
bridge this script makes (benchmarks/cluster/netlab.py); nginx, in its own
namespace, spreads browsers over the nodes (a ``node=N`` cookie pins one to
node N) and proxies their WebSockets; the nodes share live updates through
a Redis Cluster of 3 primaries and 3 replicas (Debian's redis-server,
joined by ``redis-cli --cluster create``) when ``squall.pubsub`` has the
cluster engine, else through one Redis. All nodes use one SQLite file.
Ctrl-C (or SIGTERM, or an error) stops every process and removes the
namespaces and the bridge. Where namespaces cannot be made (or with
``--loopback``), it says why and runs on loopback addresses (127.77.x.y)
instead, each Redis announcing and sending from its own address.

It prints one line per step and the address to open last; ``--verbose``
(``make demo-cluster VERBOSE=1``) copies every process's log too. A step
that fails says which, with the last lines its process wrote.

A reply posted through one node appears live on a topic page served by
another: the node that stores it publishes it, every node subscribed to the
topic's channel relays it to its own readers.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "cluster"))

from netlab import LOOPBACK_ENV, Lab, LabError, namespaces_available  # noqa: E402, F401
from services import (  # noqa: E402
    SQUALL_READY,
    start_nginx,
    start_redis,
    start_redis_cluster,
    start_squall_node,
)


def cluster_engine() -> bool:
    """Whether this squall's pub/sub takes ``redis+cluster://`` URLs."""
    import squall.pubsub

    try:
        squall.pubsub.connect("redis+cluster://198.18.0.1:6379?sharded=1")
    except (ValueError, ImportError):
        return False
    return True


class ManyNodes:
    """The forum's nodes, nginx and Redis in a `netlab.Lab`; `close` removes them all.

    Args:
        nodes: how many forum nodes.
        port: nginx's port.
        db: the database URL shared by the nodes (default: SQLite in a
            temporary directory).
        single_redis: one Redis even when the Redis Cluster engine is there.
        echo: copy the processes' logs to stderr.
        progress: called with a line before each step.
    """

    def __init__(
        self,
        nodes: int = 4,
        port: int = 8888,
        db: Optional[str] = None,
        single_redis: bool = False,
        echo: bool = False,
        progress: Callable[[str], None] = lambda line: None,
    ) -> None:
        if not 1 <= nodes <= 32:
            raise ValueError(f"nodes must be between 1 and 32, not {nodes}")
        self.count = nodes
        self.port = port
        self.db = db
        self.single_redis = single_redis
        self.echo = echo
        self.progress = progress
        self.lab: Optional[Lab] = None
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        self.url = ""
        self.broker = ""
        self.addresses: list[str] = []

    def start(self) -> str:
        """Starts everything; nginx's URL (reached from here through the lab's bridge)."""
        self.lab = lab = Lab()
        self.progress(f"{lab.note}; network {lab.network}")
        try:
            return self._start(lab)
        except BaseException:
            self.close()
            raise

    def _start(self, lab: Lab) -> str:
        self._tmp = tempfile.TemporaryDirectory(prefix="squall-forum-many-")
        workdir = Path(self._tmp.name)
        echo = self.echo
        if not self.single_redis and cluster_engine():
            self.progress("starting a Redis Cluster: 6 redis-servers, 3 primaries and 3 replicas")
            hosts = [lab.add_host(f"redis{i}") for i in range(1, 7)]
            cluster = start_redis_cluster(lab, hosts, workdir, echo=echo)
            pubsub = cluster.url(sharded=True)
            self.broker = f"a Redis Cluster ({', '.join(cluster.nodes)}), sharded pub/sub"
        else:
            self.progress("starting one redis-server")
            redis = start_redis(lab, lab.add_host("redis"), workdir, echo=echo)
            pubsub = f"redis://{redis.host.address}:6379/0"
            self.broker = f"one Redis ({redis.host.address}:6379)"
        env = {
            "FORUM_DB": self.db or f"sqlite:///{workdir / 'forum.sqlite3'}",
            "FORUM_PUBSUB": pubsub,
            "FORUM_SECRET": secrets.token_hex(32),
        }
        plural = "s" if self.count > 1 else ""
        self.progress(f"starting {self.count} forum node{plural} (squall run) over {self.broker}")
        nodes = [
            start_squall_node(
                lab,
                lab.add_host(f"node{n}"),
                pubsub,
                app="app:cluster_app",
                app_dir=HERE,
                port=8000,
                echo=echo,
                env=env,
                wait=False,  # started together, then awaited
            )
            for n in range(1, self.count + 1)
        ]
        for node in nodes:
            node.out.expect(SQUALL_READY, 60)
        self.addresses = [s.host.address for s in nodes]
        self.progress("starting nginx in front of the nodes")
        front = lab.add_host("nginx")
        upstreams = [f"{a}:8000" for a in self.addresses]
        start_nginx(lab, front, upstreams, workdir, port=self.port, echo=echo)
        self.url = f"http://{front.address}:{self.port}"
        return self.url

    def close(self) -> None:
        """Stops every process; removes the namespaces, the bridge and the files."""
        if self.lab is not None:
            self.lab.close()
            self.lab = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> ManyNodes:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4, help="forum nodes (default 4)")
    parser.add_argument("--port", type=int, default=8888, help="nginx's port (default 8888)")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite, temporary)")
    parser.add_argument("--single-redis", action="store_true", help="one Redis, not a cluster")
    parser.add_argument(
        "--loopback",
        action="store_true",
        help=f"loopback addresses even where namespaces can be made (or {LOOPBACK_ENV}=1)",
    )
    parser.add_argument("--verbose", action="store_true", help="copy the processes' logs")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # the default now
    parser.add_argument("--check", action="store_true", help="start, fetch / from each node, stop")
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 32:
        parser.error("--nodes must be between 1 and 32")
    if args.loopback:
        os.environ[LOOPBACK_ENV] = "1"

    def progress(line: str) -> None:
        print(f"== {line}", flush=True)

    if not args.single_redis and not cluster_engine():
        progress("squall.pubsub has no redis+cluster:// engine here: one Redis")
    many = ManyNodes(
        args.nodes, args.port, args.db, args.single_redis, args.verbose, progress=progress
    )
    try:
        many.start()
    except (LabError, OSError) as exc:
        print(f"== the forum could not start: {exc}", file=sys.stderr, flush=True)
        if not args.verbose:
            print("== (--verbose, or VERBOSE=1 for make, shows every log)", file=sys.stderr)
        return 1
    try:
        progress(
            f"the forum on {args.nodes} node{'s' if args.nodes > 1 else ''} "
            f"({', '.join(many.addresses)}) behind nginx; "
            "a 'node=N' cookie pins a browser to node N; Ctrl-C stops everything"
        )
        if args.check:
            import urllib.request

            for n in range(1, args.nodes + 1):
                request = urllib.request.Request(many.url, headers={"Cookie": f"node={n}"})
                with urllib.request.urlopen(request, timeout=10) as response:
                    upstream = response.headers["X-Upstream"]
                    progress(f"node {n}: {response.status} from {upstream}")
            return 0
        # Blocked before the address is out: a signal sent on seeing it is sigwait's.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        print(f"\n    {many.url}/\n", flush=True)
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    finally:
        many.close()
    progress("stopped; every process, namespace and the bridge removed")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
