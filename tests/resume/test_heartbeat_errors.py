"""What the browser client needs from the server: a heartbeat on
each transport (a WebSocket ``ping`` message, an SSE ``ping`` event, the
poll's ``heartbeat``), errors that say whether they are temporary, the
publications a reconnection replays counted, and a poll cursor that a
publication without a position does not lose."""

from __future__ import annotations

import json
from typing import Any, Optional

from squall.pubsub import Position, Publication, PubSub
from squall.resume import ChannelEventSource, ChannelWebSocket, poll
from squall.testing import gen_test
from squall.websocket import WebSocketClientConnection, websocket_connect
from tests._wait import until

from ._clients import Stream, open_stream
from ._proxy import CutProxy
from .test_resume_ws_poll import Base

# While True, subscribing fails as it does when the broker is away.
AWAY = {"on": False}


class Broker:
    """The memory engine, but away while AWAY says so."""

    has_positions = True

    def __init__(self, pubsub: PubSub) -> None:
        self.inner = pubsub

    async def subscribe(self, channel: str, max_pending: Optional[int] = None, **kw: Any) -> Any:
        if AWAY["on"]:
            raise ConnectionError("Redis at redis://127.0.0.1:9/0 is unreachable")
        return await self.inner.subscribe(channel, max_pending, **kw)


class Live(ChannelWebSocket):
    heartbeat_interval = 0.05
    readers: set[Live] = set()

    def on_subscribe(self, channel: str) -> None:
        self.readers.add(self)

    def on_unsubscribe(self, channel: str) -> None:
        self.readers.discard(self)

    @property
    def pubsub(self) -> Any:
        return Broker(self.settings["pubsub"])

    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")


class Room(ChannelEventSource):
    heartbeat_interval = 0.05

    def channel(self, name: str) -> str:
        return f"room:{name}"


class HeartbeatAndErrorsTest(Base):
    def handlers(self) -> list[Any]:
        return [("/live", Live), (r"/rooms/(\w+)/events", Room)]

    def tearDown(self) -> None:
        AWAY["on"] = False
        super().tearDown()

    async def ask(self, ws: WebSocketClientConnection, request: Any) -> dict[str, Any]:
        """The answer to ``request``, past the heartbeat's pings: one comes
        every 50 ms and can fall between two requests on a loaded machine (the
        pings themselves are tested below)."""
        await ws.write_message(json.dumps(request))
        for _ in range(1000):
            answer = await self.read(ws)
            if answer != {"type": "ping"}:
                return answer
        raise AssertionError("no answer but pings")

    @gen_test
    async def test_errors_say_whether_to_try_again(self) -> None:
        ws = await self.connect()
        AWAY["on"] = True
        away = await self.ask(ws, {"subscribe": "room:a"})
        assert away["type"] == "error" and away["channel"] == "room:a"
        assert (away["code"], away["temporary"]) == (503, True)
        assert "unreachable" in away["message"]
        refused = await self.ask(ws, {"subscribe": "secret:a"})
        assert (refused["code"], refused["temporary"]) == (403, False)
        malformed = await self.ask(ws, {"subscribe": ""})
        assert (malformed["code"], malformed["temporary"]) == (400, False)
        bad_since = await self.ask(ws, {"subscribe": "room:b", "since": "12-a$b"})
        assert (bad_since["code"], bad_since["temporary"]) == (400, False)
        # The broker back: the same request on the same socket succeeds.
        AWAY["on"] = False
        hello = await self.ask(ws, {"subscribe": "room:a"})
        assert hello["type"] == "subscribed" and hello["heartbeat"] == Live.heartbeat_interval
        ws.close()

    @gen_test
    async def test_websocket_pings_while_subscribed(self) -> None:
        ws = await self.connect()
        hello = await self.ask(ws, {"subscribe": "room:a"})
        assert hello["type"] == "subscribed"
        for _ in range(3):
            assert await self.read(ws) == {"type": "ping"}
        ws.close()

    @gen_test
    async def test_a_reader_that_answers_no_ping_is_closed(self) -> None:
        # Between the client and the server, a connection that carries
        # nothing more and closes nothing (a NAT that forgot it).
        proxy = CutProxy(self.get_http_port())
        await proxy.start()
        try:
            ws = await websocket_connect(f"ws://127.0.0.1:{proxy.port}/live")
            hello = await self.ask(ws, {"subscribe": "room:a"})
            assert hello["type"] == "subscribed"
            assert await self.read(ws) == {"type": "ping"}  # and pongs, by itself
            await until(lambda: len(Live.readers) == 1)
            proxy.freeze()
            await until(lambda: not Live.readers)
            ws.close()
        finally:
            await proxy.close()

    @gen_test
    async def test_subscribed_counts_the_publications_replayed(self) -> None:
        ws = await self.connect()
        hello = await self.ask(ws, {"subscribe": "room:a"})
        ws.close()
        for n in range(3):
            await self.pubsub.publish("room:a", f"missed {n}")
        ws = await self.connect()
        again = await self.ask(ws, {"subscribe": "room:a", "since": hello["position"]})
        assert again["recovered"] is True and again["missed"] == 3
        ws.close()

    @gen_test
    async def test_event_stream_sends_ping_events(self) -> None:
        stream: Stream = await open_stream("http/1.1", self.get_http_port(), "/rooms/a/events", {})
        await stream.until(
            lambda: len([e for e in stream.events() if e.get("event") == "ping"]) >= 2
        )
        first = stream.events()[0]
        assert first["event"] == "subscribed"
        assert json.loads(first["data"])["heartbeat"] == Room.heartbeat_interval
        ping = [e for e in stream.events() if e.get("event") == "ping"][0]
        assert ping["data"] == "{}" and "id" not in ping  # the last id stays
        await stream.leave()


class FakeSub:
    def __init__(self, pubs: list[Publication], position: Position) -> None:
        self.pubs = pubs
        self.position = position
        self.recovered: Optional[bool] = True
        self.closed = False

    @property
    def pending(self) -> int:
        return len(self.pubs)

    async def get_publication(self) -> Publication:
        return self.pubs.pop(0)

    def close(self) -> None:
        self.closed = True


class FakePubSub:
    has_positions = True

    def __init__(self, sub: FakeSub) -> None:
        self.sub = sub

    async def subscribe(self, channel: str, **kw: Any) -> FakeSub:
        return self.sub


async def test_a_publication_without_a_position_keeps_the_poll_cursor() -> None:
    start = Position(4, "e")
    pubs = [
        Publication("c", "a", Position(5, "e")),
        Publication("c", "from another program", Position(0, "")),
    ]
    result = await poll(FakePubSub(FakeSub(pubs, start)), "c", start, timeout=0)  # type: ignore[arg-type]
    assert [p.data for p in result.publications] == ["a", "from another program"]
    assert result.position == Position(5, "e")
    alone = [Publication("c", "from another program", Position(0, ""))]
    result = await poll(FakePubSub(FakeSub(alone, start)), "c", start, timeout=0)  # type: ignore[arg-type]
    assert result.position == start
