"""The Redis Cluster engine when many partitions are wanted at once.

A node whose WebSockets open together (a deploy, a reconnect storm) asks for
many partitions in one go; each lives in its own hash slot, and one
SSUBSCRIBE may only name channels of one slot (Redis answers CROSSSLOT).
Found by ``make bench-cluster``: a burst of first subscriptions was never
confirmed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from squall.pubsub import RedisClusterPubSub
from tests._wait import HANG_GUARD

from ._servers import REDIS_CLI, REDIS_SERVER, RedisCluster
from .test_cluster import spread

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed (apt-get install redis-server)",
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.mark.parametrize("sharded", [True, False])
def test_partitions_subscribed_together_are_all_confirmed(
    cluster: RedisCluster, sharded: bool
) -> None:
    async def main() -> None:
        async with (
            RedisClusterPubSub(cluster.url, sharded=sharded, subscribe_timeout=3.0) as node,
            RedisClusterPubSub(cluster.url, sharded=sharded) as publisher,
        ):
            channels = spread(node, 24)  # 24 partitions: several per shard
            subs = await asyncio.gather(*(node.subscribe(c) for c in channels))
            assert len(node.subscribed_partitions) == 24
            for channel in channels:
                await publisher.publish(channel, f"to {channel}")
            got = [await asyncio.wait_for(s.get(), HANG_GUARD) for s in subs]
            assert got == [f"to {c}" for c in channels]

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
