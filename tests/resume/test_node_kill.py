"""A reader's node is SIGKILLed mid-stream; it resumes on another node.

Two node processes (tests/resume/_node.py) on 127.0.0.1 share one
redis-server. A reader follows a channel through node A over WebSocket,
Server-Sent Events or long polling while the test publishes 200 messages;
once it has 20, A is killed. Ten more are published while it is away; it
reconnects to node B with its last position, is told it recovered, and ten
more follow live. It must have got all 220, once each, in order.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from squall.pubsub import RedisPubSub
from tests._wait import HANG_GUARD
from tests.pubsub._redis_server import RedisServer

from ._lab import Nodes, Received, killed, poll, sse_messages, sse_open, ws_read, ws_subscribe

NAME = "k"
CHANNEL = f"room:{NAME}"
FIRST, AWAY, AFTER = 200, 10, 10  # published before the kill, while away, after
TOTAL = FIRST + AWAY + AFTER


class Cluster(Received):
    """Nodes A and B, the publisher, and what the reader got."""

    def __init__(self, url: str, nodes: Nodes) -> None:
        super().__init__()
        self.url = url
        self.nodes = nodes
        self.pids: list[int] = []
        self.ports: list[int] = []
        self.publisher = RedisPubSub(url, history_size=1000)

    async def start(self) -> None:
        for _ in range(2):
            port, pid = await self.nodes.spawn(self.url)
            self.ports.append(port)
            self.pids.append(pid)

    async def kill_a(self) -> None:
        await killed(self.pids[0])

    async def publish(self, first: int, count: int) -> None:
        for n in range(first, first + count):
            await self.publisher.publish(CHANNEL, f"m{n}")

    async def close(self) -> None:
        for pid in self.pids:
            try:
                await killed(pid)
            except ProcessLookupError:
                pass  # A, killed by the test
        await self.publisher.close()


def run(test: Any, url: str, nodes: Nodes) -> None:
    async def main() -> None:
        cluster = Cluster(url, nodes)
        try:
            await cluster.start()
            await test(cluster)
            cluster.check(TOTAL)
        finally:
            await cluster.close()

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


# WebSocket (ChannelWebSocket's protocol).


def test_websocket_reader_resumes_on_another_node(redis_server: RedisServer, nodes: Nodes) -> None:
    async def test(c: Cluster) -> None:
        ws, hello = await ws_subscribe(c.ports[0], NAME, None)
        assert hello["type"] == "subscribed"
        publishing = asyncio.ensure_future(c.publish(0, FIRST))
        while len(c.got) < 20:
            message = await ws_read(ws)
            c.take(message["data"], message["position"])
        await c.kill_a()
        while (message := await ws_read(ws)) is not None:  # what was in flight
            c.take(message["data"], message["position"])
        await publishing
        await c.publish(FIRST, AWAY)
        ws, hello = await ws_subscribe(c.ports[1], NAME, c.last)
        assert hello["recovered"] is True and hello["position"] == c.last
        await c.publish(FIRST + AWAY, AFTER)
        while len(c.got) < TOTAL:
            message = await ws_read(ws)
            assert message["type"] == "publication", message
            c.take(message["data"], message["position"])
        ws.close()

    run(test, redis_server.url, nodes)


# Server-Sent Events (ChannelEventSource: the id is the position).


def test_event_source_reader_resumes_on_another_node(
    redis_server: RedisServer, nodes: Nodes
) -> None:
    async def test(c: Cluster) -> None:
        stream = await sse_open(c.ports[0], NAME)
        assert stream.events()[0]["event"] == "subscribed"
        publishing = asyncio.ensure_future(c.publish(0, FIRST))
        await stream.until(lambda: len(sse_messages(stream)) >= 20)
        await c.kill_a()
        await stream.until(lambda: stream.eof)
        for event in sse_messages(stream):
            c.take(event["data"], event["id"])
        await stream.leave()
        await publishing
        await c.publish(FIRST, AWAY)
        again = await sse_open(c.ports[1], NAME, c.last)
        hello = again.events()[0]
        assert hello["event"] == "subscribed"
        info = json.loads(hello["data"])
        assert (info["position"], info["recovered"]) == (c.last, True)
        assert info["missed"] == FIRST + AWAY - len(c.got) and info["heartbeat"] > 0
        await c.publish(FIRST + AWAY, AFTER)
        await again.until(lambda: len(c.got) + len(sse_messages(again)) >= TOTAL)
        assert [e for e in again.events() if e.get("event") == "reset"] == []
        for event in sse_messages(again):
            c.take(event["data"], event["id"])
        await again.leave()

    run(test, redis_server.url, nodes)


# Long polling (ChannelPollHandler: the cursor is the position).


def test_long_poll_reader_resumes_on_another_node(redis_server: RedisServer, nodes: Nodes) -> None:
    async def test(c: Cluster) -> None:
        first = await poll(c.ports[0], NAME, "", wait="0")  # the channel's top, at once
        cursor = first["position"]
        publishing = asyncio.ensure_future(c.publish(0, FIRST))
        port = c.ports[0]
        switched = False
        for _ in range(TOTAL):  # each answer has one publication at least
            if len(c.got) >= 20 and not switched:
                await c.kill_a()
                await publishing
                await c.publish(FIRST, AWAY)
            try:
                answer = await poll(port, NAME, cursor)
            except OSError:
                assert not switched and len(c.got) >= 20
                port, switched = c.ports[1], True  # A is gone: B, same cursor
                continue
            assert answer["recovered"] is True, answer
            for pub in answer["publications"]:
                c.take(pub["data"], pub["position"])
            cursor = answer["position"]
            if switched and len(c.got) == FIRST + AWAY:
                await c.publish(FIRST + AWAY, AFTER)
            if len(c.got) >= TOTAL:
                break
        assert switched

    run(test, redis_server.url, nodes)
