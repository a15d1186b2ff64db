"""ChannelEventSource end to end over HTTP/1.1, HTTP/2 and HTTP/3: a client
leaves, publications are made, the client comes back with its Last-Event-ID
and gets each one it missed exactly once, in order; and the resets."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Any

import pytest

from squall.pubsub import PubSub, connect
from squall.resume import ChannelEventSource
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test
from squall.web import Application
from tests._wait import HANG_GUARD

from ._clients import Stream, open_stream


class Room(ChannelEventSource):
    ping_interval = None

    def channel(self, name: str) -> str:
        return f"room:{name}"


def data_of(stream: Stream, event: str = "message") -> list[str]:
    return [e["data"] for e in stream.events() if e.get("event", "message") == event]


class Cases:
    protocol = "http/1.1"
    pubsub: PubSub

    def get_app(self) -> Application:
        self.pubsub = connect("memory://?history_size=20")
        return Application([(r"/rooms/(\w+)/events", Room)], pubsub=self.pubsub)

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.pubsub.close)  # type: ignore[attr-defined]
        super().tearDown()  # type: ignore[misc]

    async def started(self) -> None:
        pass

    async def open(self, path: str = "/rooms/a/events", **headers: str) -> Stream:
        await self.started()
        port = self.get_http_port()  # type: ignore[attr-defined]
        return await open_stream(self.protocol, port, path, headers)

    async def subscribed(self, stream: Stream) -> dict[str, Any]:
        await stream.until(lambda: bool(data_of(stream, "subscribed")))
        first = stream.events()[0]
        assert first["event"] == "subscribed"
        info: dict[str, Any] = json.loads(first["data"])
        assert first["id"] == info["position"]
        return info

    @gen_test
    async def test_resume_with_last_event_id_gets_each_missed_once_in_order(self) -> None:
        await self.pubsub.publish("room:a", "before anyone")
        stream = await self.open()
        info = await self.subscribed(stream)
        assert info["recovered"] is None
        for n in range(3):
            await self.pubsub.publish("room:a", f"live {n}")
        await stream.until(lambda: len(data_of(stream)) == 3)
        assert data_of(stream) == ["live 0", "live 1", "live 2"]
        last_id = stream.events()[-1]["id"]
        await stream.leave()
        await asyncio.wait_for(self.until_no_subscriber(), HANG_GUARD)
        # Published while the client is away, one of them on several lines.
        for n in range(5):
            await self.pubsub.publish("room:a", f"missed {n}\nsecond line")
        again = await self.open(**{"Last-Event-ID": last_id})
        info = await self.subscribed(again)
        assert info == {"position": last_id, "recovered": True, "missed": 5, "heartbeat": 25.0}
        await again.until(lambda: len(data_of(again)) == 5)
        for n in range(2):
            await self.pubsub.publish("room:a", f"after {n}")
        await again.until(lambda: len(data_of(again)) == 7)
        assert data_of(again) == [f"missed {n}\nsecond line" for n in range(5)] + [
            "after 0",
            "after 1",
        ]
        ids = [int(e["id"].split("-")[0]) for e in again.events()[1:]]
        assert ids == list(range(5, 12))  # "before anyone" was 1, live 2..4
        assert data_of(again, "reset") == []
        await again.leave()

    async def until_no_subscriber(self) -> None:
        while self.pubsub.subscribers("room:a"):
            await asyncio.sleep(0)

    @gen_test
    async def test_since_argument_starts_a_first_connection(self) -> None:
        first = await self.pubsub.publish("room:a", "one")
        await self.pubsub.publish("room:a", "two")
        stream = await self.open(f"/rooms/a/events?since={first}")
        await stream.until(lambda: len(data_of(stream)) == 1)
        assert data_of(stream) == ["two"]
        await stream.leave()

    @gen_test
    async def test_position_too_old_gets_a_reset_then_live(self) -> None:
        first = await self.pubsub.publish("room:a", "0")
        for n in range(1, 30):  # history keeps 20
            top = await self.pubsub.publish("room:a", str(n))
        stream = await self.open(**{"Last-Event-ID": str(first)})
        info = await self.subscribed(stream)
        assert info["recovered"] is False
        await stream.until(lambda: bool(data_of(stream, "reset")))
        reset = [e for e in stream.events() if e.get("event") == "reset"][0]
        assert reset["data"] == reset["id"] == str(top)
        await self.pubsub.publish("room:a", "next")
        await stream.until(lambda: bool(data_of(stream)))
        assert data_of(stream) == ["next"]
        await stream.leave()

    @gen_test
    async def test_position_from_another_epoch_or_the_future_gets_a_reset(self) -> None:
        top = await self.pubsub.publish("room:a", "x")
        for stale in (f"{top.offset}-otherEpoch", f"{top.offset + 50}-{top.epoch}"):
            stream = await self.open(**{"Last-Event-ID": stale})
            await stream.until(lambda s=stream: bool(data_of(s, "reset")))  # type: ignore[misc]
            assert data_of(stream, "reset") == [str(top)]
            assert data_of(stream) == []
            await stream.leave()

    @gen_test
    async def test_malformed_last_event_id_is_a_400_saying_why(self) -> None:
        stream = await self.open(**{"Last-Event-ID": "garbage"})
        assert stream.status == 400
        await stream.until(lambda: stream.ended)
        assert b"Bad position" in stream.body
        await stream.leave()
        assert self.pubsub.subscribers("room:a") == 0


class H1Test(Cases, AsyncHTTPTestCase):
    protocol = "http/1.1"


@pytest.mark.skipif(importlib.util.find_spec("h2") is None, reason="h2 is not installed")
class H2Test(Cases, AsyncHTTPTestCase):
    protocol = "h2"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}


@pytest.mark.skipif(
    importlib.util.find_spec("aioquic") is None,
    reason="aioquic (the tests' QUIC peer) is not installed",
)
class H3Test(Cases, AsyncHTTPSTestCase):
    protocol = "h3"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http3": True}

    async def started(self) -> None:
        await asyncio.gather(*self.http_server._h3_tasks)
