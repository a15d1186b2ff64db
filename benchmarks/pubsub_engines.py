"""Redis CPU per publish and delivery latency: one Redis, a Redis Cluster with
classic PUBLISH, and the same with sharded pub/sub (squall.pubsub's engines).

    python benchmarks/pubsub_engines.py [--publishes 20000] [--channels 64] [--nodes 2]

Starts its own brokers on free 127.0.0.1 ports (tests/pubsub/_servers.py)
and stops them. In one process: ``--nodes`` PubSub objects (each as one
application node) subscribe to every channel; one publisher object sends
``--publishes`` messages round-robin over the channels, ``--in-flight`` at a time (16), each
carrying its send time. Prints per configuration: publishes per second,
deliveries (and how many missing), delivery latency p50/p99, and the CPU
seconds of every redis-server process per publish (utime + stime from
/proc). Positions are on (each publish is the Lua script); history is off
unless ``--history``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The checkout's tests.pubsub helpers; last, so an installed squall (a
# compiled build) is the one that runs.
sys.path.append(str(HERE.parent))

from squall.pubsub import connect  # noqa: E402
from tests.pubsub._servers import RedisCluster, RedisServer  # noqa: E402


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (after the name)
    return total / os.sysconf("SC_CLK_TCK")


async def measure(url: str, pids: list[int], args: argparse.Namespace) -> dict[str, Any]:
    options = {"history_size": args.history}
    nodes = [connect(url, max_pending=args.publishes + 1, **options) for _ in range(args.nodes)]
    publisher = connect(url, **options)
    channels = [f"bench:{i}" for i in range(args.channels)]
    subs = [await node.subscribe(c) for node in nodes for c in channels]
    latencies: list[float] = []
    expected = args.publishes * args.nodes
    done = asyncio.Event()

    async def drain(sub: Any) -> None:
        async for message in sub:
            latencies.append(time.perf_counter() - float(message))
            if len(latencies) >= expected:
                done.set()

    readers = [asyncio.ensure_future(drain(s)) for s in subs]
    cpu0 = cpu_seconds(pids)
    start = time.perf_counter()
    sem = asyncio.Semaphore(args.in_flight)

    async def one(i: int) -> None:
        async with sem:
            await publisher.publish(channels[i % len(channels)], repr(time.perf_counter()))

    await asyncio.gather(*(one(i) for i in range(args.publishes)))
    published = time.perf_counter() - start
    try:
        await asyncio.wait_for(done.wait(), 10)
    except TimeoutError:
        pass
    cpu = cpu_seconds(pids) - cpu0
    for task in readers:
        task.cancel()
    for node in [*nodes, publisher]:
        await node.close()
    latencies.sort()
    return {
        "publish/s": args.publishes / published,
        "delivered": len(latencies),
        "missing": expected - len(latencies),
        "p50 ms": 1000 * latencies[len(latencies) // 2] if latencies else float("nan"),
        "p99 ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else float("nan"),
        "redis us/publish": 1e6 * cpu / args.publishes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishes", type=int, default=20000)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--in-flight", type=int, default=16)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        single = RedisServer(workdir=Path(tmp))
        single.start()
        try:
            assert single.proc is not None
            rows.append(("one Redis", asyncio.run(measure(single.url, [single.proc.pid], args))))
        finally:
            single.stop()
        with RedisCluster(Path(tmp) / "cluster") as cluster:
            pids = [p.pid for p in cluster.procs.values()]
            for label, query in (("Cluster classic", "?sharded=0"), ("Cluster sharded", "")):
                rows.append((label, asyncio.run(measure(cluster.url + query, pids, args))))
    print(
        f"{args.publishes} publishes over {args.channels} channels, {args.nodes} subscribing "
        f"nodes, history_size={args.history}"
    )
    keys = list(rows[0][1])
    print(f"{'':18}" + "".join(f"{k:>18}" for k in keys))
    for label, row in rows:
        print(f"{label:18}" + "".join(f"{row[k]:>18.1f}" for k in keys))


if __name__ == "__main__":
    main()
