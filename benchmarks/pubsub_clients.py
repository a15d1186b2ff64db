"""redis-py 8 against coredis as the Redis Cluster engine's client: the
publish script (EVALSHA, SPUBLISH) on 3 primaries + 3 replicas, 1 and 16 in
flight, publishes per second and the client's CPU per publish.

    python benchmarks/pubsub_clients.py    (needs coredis: pip install coredis)

Each client runs twice, alternated; the table is one line per run.
"""

import asyncio
import sys
import tempfile
import time
from pathlib import Path

# The checkout's tests.pubsub helpers; last, so an installed squall (a
# compiled build) is the one that runs.
sys.path.append(str(Path(__file__).resolve().parent.parent))
from squall.pubsub import _redis_scripts as S  # noqa: E402
from tests.pubsub._servers import RedisCluster  # noqa: E402

N = 3000


SCRIPT = S.publish_lua(0, 300000, 3000, "SPUBLISH")


def args(i):
    tag = f"{{sq.{i % 128}}}"
    channel = f"c{i % 128}"
    return S.keys(tag, channel)[:1], [
        f"{len(channel)} {channel}",
        "hello",
        "ep0123",
        "p:bench",
        i + 1,
        0,
        tag,
        10000,
    ]


async def redispy(ports, conc):
    from redis.asyncio.cluster import ClusterNode
    from redis.asyncio.cluster import RedisCluster as RC

    c = RC(startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports])
    await c.initialize()
    script = c.register_script(SCRIPT)
    await script(keys=args(0)[0], args=args(0)[1])
    sem = asyncio.Semaphore(conc)

    async def one(i):
        async with sem:
            k, a = args(i)
            await script(keys=k, args=a)

    t, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(N)))
    r = (N / (time.perf_counter() - t), 1e6 * (time.process_time() - cpu) / N)
    await c.aclose()
    return r


async def core(ports, conc):
    import coredis

    c = coredis.RedisCluster(
        startup_nodes=[coredis.connection.TCPLocation("127.0.0.1", p) for p in ports]
    )
    async with c:
        script = c.register_script(SCRIPT)
        k, a = args(0)
        await script(keys=k, args=a)
        sem = asyncio.Semaphore(conc)

        async def one(i):
            async with sem:
                k, a = args(i)
                await script(keys=k, args=a)

        t, cpu = time.perf_counter(), time.process_time()
        async with asyncio.TaskGroup() as g:
            for i in range(N):
                g.create_task(one(i))
        return (N / (time.perf_counter() - t), 1e6 * (time.process_time() - cpu) / N)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp, RedisCluster(Path(tmp)) as cl:
        for conc in (1, 16):
            for name, fn in (
                ("redis-py", redispy),
                ("coredis", core),
                ("redis-py", redispy),
                ("coredis", core),
            ):
                try:
                    rate, us = asyncio.run(fn(cl.ports, conc))
                    print(
                        f"{name:9} in-flight {conc:2}: {rate:7.0f} publish/s, client CPU {us:6.0f} us/publish"
                    )
                except Exception as e:
                    print(name, "failed", repr(e)[:200])
