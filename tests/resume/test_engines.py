"""The contracts of squall.resume (its three transports) and of presence, on
every engine: memory://, redis://, redis+cluster:// and nats://.

One suite, parametrized by engine. An engine without positions (core NATS)
is refused by squall.resume with an error that says so (before, an SSE
stream over NATS sent "subscribed" and then nothing, and long polling
answered ``recovered: false`` to the cursor it had just handed out), and
has no presence (NotImplementedError). Bad channel names get an error
message or a 400 on each transport, and the engine goes on working.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from squall.httpclient import AsyncHTTPClient, HTTPClientError
from squall.httpserver import HTTPServer
from squall.pubsub import (
    MAX_CHANNEL_BYTES,
    NatsPubSub,
    Position,
    Publication,
    PubSub,
    connect,
    instances,
    presence_channel,
)
from squall.resume import ChannelEventSource, ChannelPollHandler, ChannelWebSocket, Reset, resume
from squall.testing import bind_unused_port
from squall.web import Application
from squall.websocket import WebSocketClientConnection, websocket_connect
from tests._wait import HANG_GUARD, until_answer
from tests.pubsub._redis_server import REDIS_SERVER, RedisServer
from tests.pubsub._servers import NATS_SERVER, REDIS_CLI, NatsServer, RedisCluster

from ._clients import Stream, open_stream

ENGINES = ["memory", "redis", "cluster", "nats"]
_names = itertools.count()


def run(coro: Any, limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture(scope="module", params=ENGINES)
def make(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """``make(**options)``: a new `PubSub` on the engine (memory://: one per test)."""
    engine = request.param
    if engine == "memory":
        made: list[PubSub] = []

        def memory(**options: Any) -> PubSub:
            # One process: the "nodes" of a test are one object.
            if not made or made[-1] not in instances():
                made.append(connect("memory://", **{"history_size": 20, **options}))
            return made[-1]

        yield memory
        return
    if engine == "nats":
        if NATS_SERVER is None:
            pytest.skip("nats-server is not installed (apt-get install nats-server)")
        pytest.importorskip("nats", reason="nats-py is not installed")
        nats = NatsServer(tmp_path_factory.mktemp("nats"))
        nats.start()
        try:
            yield lambda **options: connect(nats.url, **options)
        finally:
            nats.stop()
        return
    if REDIS_SERVER is None or (engine == "cluster" and REDIS_CLI is None):
        pytest.skip("redis-server and redis-cli are not installed (apt-get install redis-server)")
    if engine == "redis":
        redis = RedisServer(workdir=tmp_path_factory.mktemp("redis"))
        redis.start()
        try:
            yield lambda **options: connect(redis.url, **{"history_size": 20, **options})
        finally:
            redis.stop()
        return
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as cluster:
        yield lambda **options: connect(cluster.url, **{"history_size": 20, **options})


def fresh(prefix: str = "room") -> str:
    """A channel no other test of the module used (the servers are shared)."""
    return f"{prefix}:{next(_names)}"


NO_POSITIONS = "needs a pub/sub engine that gives positions"


# squall.resume.resume, the core the three transports share.


def test_resume_yields_the_missed_then_the_live_once_each_in_order(make: Any) -> None:
    async def main() -> None:
        async with make() as pubsub:
            channel = fresh()
            if not pubsub.has_positions:
                with pytest.raises(TypeError, match=NO_POSITIONS):
                    await resume(pubsub, channel)
                assert pubsub.subscribers(channel) == 0
                return
            positions = [await pubsub.publish(channel, f"m{n}") for n in range(5)]
            async with await resume(pubsub, channel, positions[1]) as stream:
                assert stream.recovered is True
                await pubsub.publish(channel, "live")
                got = [await asyncio.wait_for(stream.next(), HANG_GUARD) for _ in range(4)]
            assert all(isinstance(p, Publication) for p in got)
            pubs = [p for p in got if isinstance(p, Publication)]
            assert [p.data for p in pubs] == ["m2", "m3", "m4", "live"]
            assert [p.position.offset for p in pubs] == [3, 4, 5, 6]
            assert {p.position.epoch for p in pubs} == {positions[0].epoch}

    run(main())


def test_resume_from_a_position_it_cannot_recover_starts_with_a_reset(make: Any) -> None:
    async def main() -> None:
        async with make() as pubsub:
            channel = fresh()
            if not pubsub.has_positions:
                with pytest.raises(TypeError, match=NO_POSITIONS):
                    await resume(pubsub, channel, Position(1, "nats"))
                return
            top = await pubsub.publish(channel, "m")
            async with await resume(pubsub, channel, Position(1, "otherEpoch")) as stream:
                first = await asyncio.wait_for(stream.next(), HANG_GUARD)
            assert first == Reset(channel, top)

    run(main())


# The three transports, served by one application per test.


class Room(ChannelEventSource):
    ping_interval = None

    def channel(self, name: str) -> str:
        return f"room:{name}"


class Poll(ChannelPollHandler):
    poll_timeout = 2.0

    def channel(self, name: str) -> str:
        return f"room:{name}"


class Live(ChannelWebSocket):
    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")


@contextlib.asynccontextmanager
async def serving(pubsub: PubSub) -> AsyncIterator[int]:
    app = Application(
        [
            (r"/rooms/([^/]+)/events", Room),
            (r"/rooms/([^/]+)/poll", Poll),
            ("/live", Live),
        ],
        pubsub=pubsub,
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        yield port
    finally:
        server.stop()
        await server.close_all_connections()


def events_of(stream: Stream, kind: str = "message") -> list[dict[str, str]]:
    return [e for e in stream.events() if e.get("event", "message") == kind]


def test_server_sent_events_resume_with_last_event_id(make: Any) -> None:
    async def main() -> None:
        async with make() as pubsub, serving(pubsub) as port:
            name = fresh("sse").replace(":", "-")
            path = f"/rooms/{name}/events"
            stream = await open_stream("http/1.1", port, path)
            if not pubsub.has_positions:
                # Refused before the headers (it sent "subscribed" then nothing).
                assert stream.status == 500
                await stream.leave()
                return
            assert stream.status == 200
            await stream.until(lambda: bool(events_of(stream, "subscribed")))
            await pubsub.publish(f"room:{name}", "one")
            await stream.until(lambda: bool(events_of(stream)))
            last = events_of(stream)[-1]["id"]
            await stream.leave()
            await until_answer(_no_subscriber(pubsub, f"room:{name}"))
            await pubsub.publish(f"room:{name}", "two")
            await pubsub.publish(f"room:{name}", "three")
            again = await open_stream("http/1.1", port, path, {"Last-Event-ID": last})
            await again.until(lambda: len(events_of(again)) == 2)
            assert [e["data"] for e in events_of(again)] == ["two", "three"]
            assert not events_of(again, "reset")
            await again.leave()

    run(main())


def _no_subscriber(pubsub: PubSub, channel: str) -> Callable[[], Any]:
    async def check() -> bool:
        return pubsub.subscribers(channel) == 0

    return check


def test_long_polling_hands_out_cursors_it_can_resume_from(make: Any) -> None:
    async def main() -> None:
        client = AsyncHTTPClient()
        async with make() as pubsub, serving(pubsub) as port:
            name = fresh("poll").replace(":", "-")
            url = f"http://127.0.0.1:{port}/rooms/{name}/poll"
            if not pubsub.has_positions:
                # Refused (it answered recovered: false to its own cursor).
                with pytest.raises(HTTPClientError) as refused:
                    await client.fetch(url + "?wait=0")
                assert refused.value.code == 500
                return
            first = json.loads((await client.fetch(url + "?wait=0")).body)
            assert first["publications"] == [] and first["recovered"] is True
            await pubsub.publish(f"room:{name}", "one")
            await pubsub.publish(f"room:{name}", "two")
            answer = json.loads((await client.fetch(url + "?cursor=" + first["position"])).body)
            assert [p["data"] for p in answer["publications"]] == ["one", "two"]
            assert answer["recovered"] is True
            assert answer["position"] == answer["publications"][-1]["position"]

    run(main())


async def _read(ws: WebSocketClientConnection) -> dict[str, Any]:
    text = await asyncio.wait_for(ws.read_message(), HANG_GUARD)
    assert isinstance(text, str)
    message: dict[str, Any] = json.loads(text)
    return message


def test_websocket_subscribes_with_positions(make: Any) -> None:
    async def main() -> None:
        async with make() as pubsub, serving(pubsub) as port:
            ws = await websocket_connect(f"ws://127.0.0.1:{port}/live")
            channel = fresh()
            await ws.write_message(json.dumps({"subscribe": channel}))
            hello = await _read(ws)
            if not pubsub.has_positions:
                assert hello["type"] == "error" and NO_POSITIONS in hello["message"]
                ws.close()
                return
            assert hello["type"] == "subscribed"
            position = await pubsub.publish(channel, "one")
            message = await _read(ws)
            assert message == {
                "type": "publication",
                "channel": channel,
                "data": "one",
                "position": str(position),
            }
            ws.close()

    run(main())


def test_bad_channel_names_are_refused_on_each_transport_and_the_engine_goes_on(
    make: Any,
) -> None:
    """A lone surrogate (valid JSON) and names past the bound: an error
    message or a 400 to that client, never a broken engine."""

    async def main() -> None:
        client = AsyncHTTPClient()
        async with make() as pubsub, serving(pubsub) as port:
            ws = await websocket_connect(f"ws://127.0.0.1:{port}/live")
            too_long = "room:" + "x" * MAX_CHANNEL_BYTES
            await ws.write_message('{"subscribe": "room:\\ud800"}')
            refused = await _read(ws)
            assert refused["type"] == "error" and "lone surrogate" in refused["message"]
            await ws.write_message(json.dumps({"subscribe": too_long}))
            refused = await _read(ws)
            assert refused["type"] == "error" and "too long" in refused["message"]
            ws.close()
            for path in ("events", "poll?wait=0"):
                with pytest.raises(HTTPClientError) as answer:
                    await client.fetch(f"http://127.0.0.1:{port}/rooms/{'x' * 1100}/{path}")
                assert answer.value.code == 400
            assert pubsub.subscribers(too_long) == 0
            # The engine is whole: a good channel works on it.
            channel = fresh()
            sub = await pubsub.subscribe(channel)
            await pubsub.publish(channel, "fine")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "fine"
            assert pubsub.healthy

    run(main())


# Presence.


def test_presence_join_list_count_leave_and_events(make: Any) -> None:
    async def main() -> None:
        async with make() as node_a, make() as node_b:
            channel = fresh("topic")
            if isinstance(node_a, NatsPubSub):
                for call in (
                    node_a.join(channel, "ann"),
                    node_a.presence(channel),
                    node_a.presence_count(channel),
                ):
                    with pytest.raises(NotImplementedError, match="has no presence"):
                        await call
                return
            events = await node_b.subscribe(presence_channel(channel))
            ann = await node_a.join(channel, "ann", '{"name": "Ann"}')
            bob = await node_b.join(channel, "bob")
            # The same id joined again (another tab): the info replaced, the
            # entry held by both handles.
            again = await node_a.join(channel, "ann", "again")
            assert await node_b.presence(channel) == {"ann": "again", "bob": ""}
            assert await node_a.presence_count(channel) == 2
            assert len(await node_a.presence(channel, limit=1)) == 1
            await ann.leave()  # the other tab still holds it: no leave yet
            assert await node_b.presence(channel) == {"ann": "again", "bob": ""}
            await again.leave()
            await bob.leave()
            assert await node_b.presence_count(channel) == 0
            seen = [json.loads(await asyncio.wait_for(events.get(), HANG_GUARD)) for _ in range(5)]
            assert [(e["event"], e["client"]) for e in seen] == [
                ("join", "ann"),
                ("join", "bob"),
                ("join", "ann"),
                ("leave", "ann"),
                ("leave", "bob"),
            ]

    run(main())


def test_a_failed_join_leaves_nothing_on_any_engine(make: Any) -> None:
    """The join event could not be published: no entry stays."""

    async def main() -> None:
        async with make(presence_ttl=0.5) as pubsub:
            channel = fresh("topic")
            if isinstance(pubsub, NatsPubSub):
                with pytest.raises(NotImplementedError):
                    await pubsub.join(channel, "ann")
                return
            publish = pubsub.publish

            async def away(name: str, message: str) -> Position:
                raise ConnectionError("cannot publish: the broker is away")

            pubsub.publish = away  # type: ignore[method-assign]
            with pytest.raises(ConnectionError, match="broker is away"):
                await pubsub.join(channel, "ann")
            pubsub.publish = publish  # type: ignore[method-assign]
            assert await pubsub.presence_count(channel) == 0

    run(main())


def test_a_message_no_transport_can_encode_is_refused_and_readers_go_on(make: Any) -> None:
    """memory:// took a lone surrogate, and ChannelEventSource cut every SSE
    stream of the channel at it, again at each reconnection."""

    async def main() -> None:
        async with make() as pubsub, serving(pubsub) as port:
            name = fresh("sse").replace(":", "-")
            with pytest.raises(ValueError, match="lone surrogate"):
                await pubsub.publish(f"room:{name}", "cut \udc80 here")
            if not pubsub.has_positions:
                return
            stream = await open_stream("http/1.1", port, f"/rooms/{name}/events")
            await stream.until(lambda: bool(events_of(stream, "subscribed")))
            with pytest.raises(ValueError, match="lone surrogate"):
                await pubsub.publish(f"room:{name}", "cut \udc80 here")
            await pubsub.publish(f"room:{name}", "after")
            await stream.until(lambda: bool(events_of(stream)))
            assert [e["data"] for e in events_of(stream)] == ["after"] and not stream.ended
            await stream.leave()

    run(main())


def test_names_any_engine_can_carry_work_on_every_engine(make: Any) -> None:
    """NUL, CR LF, RESP-looking text, NATS wildcards and hash-tag braces are
    carried as they are; the longest name allowed too (1,024 bytes)."""

    async def main() -> None:
        async with make() as pubsub:
            longest = "\U0001f600" * (MAX_CHANNEL_BYTES // 4)
            names = ["a\x00b", "x\r\n*3\r\n$4\r\nPING", "room.*.>", "{sq.1}{x}", longest]
            subs = [await pubsub.subscribe(name) for name in names]
            for name in names:
                await pubsub.publish(name, f"to {name[:10]}")
            for sub, name in zip(subs, names, strict=True):
                pub = await asyncio.wait_for(sub.get_publication(), HANG_GUARD)
                assert (pub.channel, pub.data) == (name, f"to {name[:10]}")
                assert sub.pending == 0
                sub.close()
            assert pubsub.healthy

    run(main())
