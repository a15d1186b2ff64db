"""A Redis Cluster primary is SIGKILLed while a channel is published; a
resuming reader misses nothing silently.

One Redis Cluster (3 primaries, 3 replicas, ``cluster-node-timeout`` 500 ms)
and two node processes (tests/resume/_node.py) on it, for the module. A
reader follows a channel through node A over WebSocket, Server-Sent Events
or long polling. After the first 20 publications the primary of the
channel's partition is killed and the reader's connection cut; 20 more are
published at once, each refused by the dead shard and tried again by the
publisher until the replica has taken over (the publish id makes a retry
safe). The reader comes back through node B with its last position once
the failover is done. The publications made into the failover are in a
new epoch, begun after the top the replica had: nothing on the new
primary can tell whether the old one had acknowledged more (a failover may
lose the last writes), so the reader is told it may have missed some (not
recovered), and reloads: here, the new epoch's history from its start.
Then 20 more follow live: all 60, once each, in order, at consecutive
offsets, the epoch changing once. Each test kills another primary
(one whose replica is alive), so the three share the cluster.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from squall.pubsub import Position, RedisClusterPubSub
from tests.pubsub._servers import REDIS_CLI, REDIS_SERVER, RedisCluster, _command, _fields

from ._lab import Nodes, Received, killed, poll, sse_messages, sse_open, ws_read, ws_subscribe

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed (apt-get install redis-server)",
)

FIRST, AWAY, AFTER = 20, 20, 20  # published before the kill, during the failover, after
TOTAL = FIRST + AWAY + AFTER


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


class Lab(Received):
    """Nodes A and B, the publisher, the channel (on a primary with a live
    replica), and what the reader got."""

    def __init__(self, cluster: RedisCluster, nodes: Nodes) -> None:
        super().__init__()
        self.cluster = cluster
        self.nodes = nodes
        self.ports: list[int] = []
        self.pids: list[int] = []
        # A failover is given as long as wait_failover waits for it (10 s):
        # under make test's load (two suites on two cores beside the six
        # redis-servers) one took longer than the default 5.5 s, and the
        # publishes made into it gave up.
        self.publisher = RedisClusterPubSub(cluster.url, history_size=1000, publish_timeout=10.0)
        self.name, self.owner = self._room()

    def _room(self) -> tuple[str, int]:
        """A room whose partition's primary has a replica in sync (earlier
        tests killed other primaries), and that primary's port."""
        for i in range(1000):
            name = f"p{i}"
            owner = self.cluster.owner(f"{{sq.{self.publisher.partition(f'room:{name}')}}}")
            info = _fields(_command(owner, "INFO", "replication"))
            if info.get("connected_slaves", "0") != "0" and "state=online" in info.get(
                "slave0", ""
            ):
                return name, owner
        raise AssertionError("no primary with a replica left")

    async def start(self) -> None:
        for _ in range(2):
            port, pid = await self.nodes.spawn(self.cluster.url)
            self.ports.append(port)
            self.pids.append(pid)

    async def reload(self, top: str) -> None:
        """What a reader does when told it may have missed some: reload
        the state. Here: the new epoch's history from its start, up to the
        ``top`` the reset gave."""
        until = Position.parse(top)
        kept = await self.publisher.history(
            f"room:{self.name}", since=Position(0, until.epoch), limit=AWAY
        )
        assert kept.recovered and kept.publications[-1].position == until, kept
        for pub in kept.publications:
            self.take(pub.data, str(pub.position))

    async def publish(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            await self.publisher.publish(f"room:{self.name}", f"m{n}")

    async def kill_primary(self) -> asyncio.Task[None]:
        """Kills the channel's primary once its replica has every write
        (Redis replicates asynchronously: a write acknowledged just before a
        kill may be lost with the primary, which nothing can recover), and
        starts publishing the next ``AWAY`` into the failover."""
        client = self.publisher._client
        primary = client.get_node("127.0.0.1", self.owner)
        for _ in range(40):
            if await client.execute_command("WAIT", 1, 300, target_nodes=primary):
                break
        else:
            raise AssertionError("the replica never acknowledged the history")
        self.cluster.kill(self.owner)
        return asyncio.ensure_future(self.publish(FIRST, AWAY))

    async def failed_over(self) -> None:
        await asyncio.to_thread(self.cluster.wait_failover, self.owner)

    async def close(self) -> None:
        for pid in self.pids:
            await killed(pid)
        await self.publisher.close()


def run(test: Callable[[Lab], Awaitable[None]], cluster: RedisCluster, nodes: Nodes) -> None:
    async def main() -> None:
        lab = Lab(cluster, nodes)
        try:
            await lab.start()
            await test(lab)
            # Two epochs: the second begun at the failover, after the top the
            # replica had.
            lab.check(TOTAL, first_offset=1, epochs=2)
        finally:
            await lab.close()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_websocket_reader_resumes_across_a_primary_kill(
    cluster: RedisCluster, nodes: Nodes
) -> None:
    async def test(lab: Lab) -> None:
        ws, hello = await ws_subscribe(lab.ports[0], lab.name, None)
        assert hello["type"] == "subscribed"
        await lab.publish(0, FIRST)
        while len(lab.got) < FIRST:
            message = await ws_read(ws)
            lab.take(message["data"], message["position"])
        publishing = await lab.kill_primary()
        ws.close()  # the reader's network drops meanwhile
        await lab.failed_over()
        await publishing
        ws, hello = await ws_subscribe(lab.ports[1], lab.name, lab.last)
        assert hello["recovered"] is False, hello
        await lab.reload(hello["position"])
        await lab.publish(FIRST + AWAY, AFTER)
        resets = 0
        while len(lab.got) < TOTAL:
            message = await ws_read(ws)
            if message["type"] == "reset":  # the hello's, said once more
                assert message["position"] == hello["position"] and not resets, message
                resets += 1
                continue
            assert message["type"] == "publication", message
            lab.take(message["data"], message["position"])
        ws.close()

    run(test, cluster, nodes)


def test_event_source_reader_resumes_across_a_primary_kill(
    cluster: RedisCluster, nodes: Nodes
) -> None:
    async def test(lab: Lab) -> None:
        stream = await sse_open(lab.ports[0], lab.name)
        assert stream.events()[0]["event"] == "subscribed"
        await lab.publish(0, FIRST)
        await stream.until(lambda: len(sse_messages(stream)) >= FIRST)
        for event in sse_messages(stream):
            lab.take(event["data"], event["id"])
        publishing = await lab.kill_primary()
        await stream.leave()
        await lab.failed_over()
        await publishing
        again = await sse_open(lab.ports[1], lab.name, lab.last)
        hello = again.events()[0]
        assert hello["event"] == "subscribed"
        info = json.loads(hello["data"])
        assert info["recovered"] is False and info["heartbeat"] > 0, info
        await lab.reload(info["position"])
        await lab.publish(FIRST + AWAY, AFTER)
        await again.until(lambda: len(sse_messages(again)) >= AFTER)
        for event in sse_messages(again):
            lab.take(event["data"], event["id"])
        await again.leave()

    run(test, cluster, nodes)


def test_long_poll_reader_resumes_across_a_primary_kill(
    cluster: RedisCluster, nodes: Nodes
) -> None:
    async def test(lab: Lab) -> None:
        answer: Any = await poll(lab.ports[0], lab.name, "", wait="0")  # the top, at once
        cursor = answer["position"]
        await lab.publish(0, FIRST)
        for _ in range(FIRST):  # each answer has one publication at least
            answer = await poll(lab.ports[0], lab.name, cursor)
            for pub in answer["publications"]:
                lab.take(pub["data"], pub["position"])
            cursor = answer["position"]
            if len(lab.got) >= FIRST:
                break
        publishing = await lab.kill_primary()
        await lab.failed_over()
        await publishing
        answer = await poll(lab.ports[1], lab.name, cursor, wait="0")  # node B, the same cursor
        assert answer["recovered"] is False and answer["publications"] == [], answer
        cursor = answer["position"]
        await lab.reload(cursor)
        await lab.publish(FIRST + AWAY, AFTER)
        for _ in range(AFTER):
            answer = await poll(lab.ports[1], lab.name, cursor)
            assert answer["recovered"] is True, answer
            for pub in answer["publications"]:
                lab.take(pub["data"], pub["position"])
            cursor = answer["position"]
            if len(lab.got) >= TOTAL:
                break

    run(test, cluster, nodes)
