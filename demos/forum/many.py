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
namespaces and the bridge. Where namespaces cannot be made, it says why and
runs on loopback addresses (127.77.x.y) instead.

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
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "cluster"))

from netlab import Lab  # noqa: E402
from services import (  # noqa: E402
    start_nginx,
    start_redis,
    start_redis_cluster,
    start_squall_node,
)


def cluster_engine() -> bool:
    """Whether this squall's pub/sub takes ``redis+cluster://`` URLs."""
    sys.path.insert(0, str(ROOT))
    import squall.pubsub

    try:
        squall.pubsub.connect("redis+cluster://198.18.0.1:6379?sharded=1")
    except (ValueError, ImportError):
        return False
    return True


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4, help="forum nodes (default 4)")
    parser.add_argument("--port", type=int, default=8888, help="nginx's port (default 8888)")
    parser.add_argument(
        "--db", default=None, help="database URL (default: SQLite in a temporary directory)"
    )
    parser.add_argument(
        "--single-redis", action="store_true", help="one Redis, not a Redis Cluster"
    )
    parser.add_argument("--quiet", action="store_true", help="do not echo the processes' logs")
    parser.add_argument(
        "--check", action="store_true", help="start, fetch / through each node, stop"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.nodes <= 32:
        parser.error("--nodes must be between 1 and 32")
    echo = not args.quiet
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="squall-forum-many-") as tmp:
        workdir = Path(tmp)
        print(f"== {lab.note}; network {lab.network}", flush=True)
        if not args.single_redis and cluster_engine():
            hosts = [lab.add_host(f"redis{i}") for i in range(1, 7)]
            cluster = start_redis_cluster(lab, hosts, workdir, echo=echo)
            url = cluster.url(sharded=True)
            broker = f"a Redis Cluster ({', '.join(cluster.nodes)}), sharded pub/sub"
        else:
            if not args.single_redis:
                print("== squall.pubsub has no redis+cluster:// engine here: one Redis", flush=True)
            redis = start_redis(lab, lab.add_host("redis"), workdir, echo=echo)
            url = f"redis://{redis.host.address}:6379/0"
            broker = f"one Redis ({redis.host.address}:6379)"
        env = {
            "FORUM_DB": args.db or f"sqlite:///{workdir / 'forum.sqlite3'}",
            "FORUM_PUBSUB": url,
            "FORUM_SECRET": secrets.token_hex(32),
        }
        nodes = [
            start_squall_node(
                lab,
                lab.add_host(f"node{n}"),
                url,
                app="app:cluster_app",
                app_dir=HERE,
                port=8000,
                echo=echo,
                env=env,
            )
            for n in range(1, args.nodes + 1)
        ]
        front = lab.add_host("nginx")
        start_nginx(
            lab,
            front,
            [f"{s.host.address}:8000" for s in nodes],
            workdir,
            port=args.port,
            echo=echo,
        )
        url_front = f"http://{front.address}:{args.port}/"
        print(
            f"== the forum on {args.nodes} nodes "
            f"({', '.join(s.host.address for s in nodes)}) over {broker}, behind nginx: {url_front}\n"
            f"== a 'node=N' cookie pins a browser to node N; Ctrl-C stops everything",
            flush=True,
        )
        if args.check:
            import urllib.request

            for n in range(1, args.nodes + 1):
                request = urllib.request.Request(url_front, headers={"Cookie": f"node={n}"})
                # The bridge's address is this namespace's way into the lab.
                with urllib.request.urlopen(request, timeout=10) as response:
                    print(
                        f"== node {n}: {response.status} from {response.headers['X-Upstream']}",
                        flush=True,
                    )
            return 0
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    print("== stopped; namespaces and bridge removed", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
