"""A reader's node is SIGKILLed mid-stream; it resumes on another node (issue 58).

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
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.pubsub import RedisPubSub
from squall.websocket import WebSocketClientConnection, websocket_connect
from tests.pubsub._redis_server import RedisServer

from ._clients import H1Stream

REPO = Path(__file__).resolve().parents[2]
CHANNEL = "room:k"
FIRST, AWAY, AFTER = 200, 10, 10  # published before the kill, while away, after
TOTAL = FIRST + AWAY + AFTER
DEADLINE = 5.0


class Nodes:
    """The forking parent of tests/resume/_node.py, started once for the module."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.resume._node"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(REPO),
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    async def spawn(self, url: str) -> tuple[int, int]:
        """A new node on ``url``'s Redis: its port and pid, once it serves."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{url}\n".encode())
        self.proc.stdin.flush()
        line = await asyncio.wait_for(asyncio.to_thread(self.proc.stdout.readline), 15)
        port, pid = line.split()
        return int(port), int(pid)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(5)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    forker = Nodes()
    try:
        yield forker
    finally:
        forker.close()


async def killed(pid: int) -> None:
    """SIGKILLs ``pid`` and returns once it is gone (its pidfd readable)."""
    fd = os.pidfd_open(pid)
    try:
        gone = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().add_reader(fd, gone.set_result, None)
        try:
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait_for(gone, DEADLINE)
        finally:
            asyncio.get_running_loop().remove_reader(fd)
    finally:
        os.close(fd)


class Cluster:
    """Nodes A and B, the publisher, and what the reader got."""

    def __init__(self, url: str, nodes: Nodes) -> None:
        self.url = url
        self.nodes = nodes
        self.pids: list[int] = []
        self.ports: list[int] = []
        self.publisher = RedisPubSub(url, history_size=1000)
        self.got: list[tuple[str, str]] = []  # (data, position)

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

    def take(self, data: str, position: str) -> None:
        self.got.append((data, position))

    @property
    def last(self) -> str:
        return self.got[-1][1]

    def check(self) -> None:
        assert [d for d, _ in self.got] == [f"m{n}" for n in range(TOTAL)]
        offsets = [int(p.split("-")[0]) for _, p in self.got]
        assert offsets == list(range(offsets[0], offsets[0] + TOTAL))
        assert len({p.split("-", 1)[1] for _, p in self.got}) == 1  # one epoch

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
            cluster.check()
        finally:
            await cluster.close()

    asyncio.run(asyncio.wait_for(main(), 20))


# WebSocket (ChannelWebSocket's protocol).


async def ws_subscribe(port: int, since: Any) -> tuple[WebSocketClientConnection, Any]:
    ws = await websocket_connect(f"ws://127.0.0.1:{port}/live")
    await ws.write_message(json.dumps({"subscribe": CHANNEL, "since": since}))
    return ws, await ws_read(ws)


async def ws_read(ws: WebSocketClientConnection) -> Any:
    text = await asyncio.wait_for(ws.read_message(), DEADLINE)
    return None if text is None else json.loads(text)


def test_websocket_reader_resumes_on_another_node(redis_server: RedisServer, nodes: Nodes) -> None:
    async def test(c: Cluster) -> None:
        ws, hello = await ws_subscribe(c.ports[0], None)
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
        ws, hello = await ws_subscribe(c.ports[1], c.last)
        assert hello["recovered"] is True and hello["position"] == c.last
        await c.publish(FIRST + AWAY, AFTER)
        while len(c.got) < TOTAL:
            message = await ws_read(ws)
            assert message["type"] == "publication", message
            c.take(message["data"], message["position"])
        ws.close()

    run(test, redis_server.url, nodes)


# Server-Sent Events (ChannelEventSource: the id is the position).


def messages(stream: H1Stream) -> list[dict[str, str]]:
    return [e for e in stream.events() if e.get("event", "message") == "message"]


def test_event_source_reader_resumes_on_another_node(
    redis_server: RedisServer, nodes: Nodes
) -> None:
    async def test(c: Cluster) -> None:
        stream = await H1Stream.open(c.ports[0], "/rooms/k/events", {})
        await stream.until(lambda: bool(stream.events()))
        assert stream.events()[0]["event"] == "subscribed"
        publishing = asyncio.ensure_future(c.publish(0, FIRST))
        await stream.until(lambda: len(messages(stream)) >= 20)
        await c.kill_a()
        await stream.until(lambda: stream.eof)
        for event in messages(stream):
            c.take(event["data"], event["id"])
        await stream.leave()
        await publishing
        await c.publish(FIRST, AWAY)
        again = await H1Stream.open(c.ports[1], "/rooms/k/events", {"Last-Event-ID": c.last})
        await again.until(lambda: bool(again.events()))
        hello = again.events()[0]
        assert hello["event"] == "subscribed"
        assert json.loads(hello["data"]) == {"position": c.last, "recovered": True}
        await c.publish(FIRST + AWAY, AFTER)
        await again.until(lambda: len(c.got) + len(messages(again)) >= TOTAL)
        assert [e for e in again.events() if e.get("event") == "reset"] == []
        for event in messages(again):
            c.take(event["data"], event["id"])
        await again.leave()

    run(test, redis_server.url, nodes)


# Long polling (ChannelPollHandler: the cursor is the position).


async def poll(port: int, cursor: str, wait: str = "") -> Any:
    path = f"/rooms/k/poll?cursor={cursor}" + (f"&wait={wait}" if wait else "")
    stream = await H1Stream.open(port, path, {"Connection": "close"})
    await stream.until(lambda: stream.ended)
    await stream.leave()
    assert stream.status == 200, stream.body
    return json.loads(stream.body)


def test_long_poll_reader_resumes_on_another_node(redis_server: RedisServer, nodes: Nodes) -> None:
    async def test(c: Cluster) -> None:
        first = await poll(c.ports[0], "", wait="0")  # the channel's top, at once
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
                answer = await poll(port, cursor)
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
