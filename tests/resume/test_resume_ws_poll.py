"""ChannelWebSocket and ChannelPollHandler end to end: a client leaves,
publications are made, it comes back with its last position and gets each
one it missed exactly once, in order; resets; bad input answered clearly."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from typing import Any, Optional

import pytest

from squall.pubsub import PubSub, connect
from squall.resume import ChannelPollHandler, ChannelWebSocket, ClientScriptHandler
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import WebSocketClientConnection, websocket_connect
from tests._wait import HANG_GUARD


class Live(ChannelWebSocket):
    max_channels = 2

    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")


class Poll(ChannelPollHandler):
    poll_timeout = 0.2
    limit = 3

    def channel(self, name: str) -> str:
        return f"room:{name}"


class Base(AsyncHTTPTestCase):
    pubsub: PubSub

    def handlers(self) -> list[Any]:
        return [
            ("/live", Live),
            (r"/rooms/(\w+)/poll", Poll),
            ("/squall-resume.js", ClientScriptHandler),
        ]

    def get_app(self) -> Application:
        self.pubsub = connect("memory://?history_size=20")
        return Application(self.handlers(), pubsub=self.pubsub)

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.pubsub.close)
        super().tearDown()

    async def no_subscriber(self, channel: str = "room:a") -> None:
        while self.pubsub.subscribers(channel):
            await asyncio.sleep(0)

    async def connect(self) -> WebSocketClientConnection:
        return await websocket_connect(self.get_url("/live").replace("http", "ws", 1))

    async def read(self, ws: WebSocketClientConnection) -> dict[str, Any]:
        text = await asyncio.wait_for(ws.read_message(), HANG_GUARD)
        assert isinstance(text, str)
        message: dict[str, Any] = json.loads(text)
        return message


class WebSocketTest(Base):
    async def subscribe(
        self, ws: WebSocketClientConnection, channel: str, since: Optional[str] = None
    ) -> dict[str, Any]:
        await ws.write_message(json.dumps({"subscribe": channel, "since": since}))
        return await self.read(ws)

    @gen_test
    async def test_resume_gets_each_missed_once_in_order(self) -> None:
        ws = await self.connect()
        hello = await self.subscribe(ws, "room:a")
        assert hello["type"] == "subscribed" and hello["recovered"] is None
        await self.pubsub.publish("room:a", "live 0")
        pub = await self.read(ws)
        assert pub["type"] == "publication" and pub["data"] == "live 0"
        last = pub["position"]
        ws.close()
        await asyncio.wait_for(self.no_subscriber(), HANG_GUARD)
        for n in range(4):
            await self.pubsub.publish("room:a", f"missed {n}")
        ws = await self.connect()
        hello = await self.subscribe(ws, "room:a", last)
        assert hello == {
            "type": "subscribed",
            "channel": "room:a",
            "position": last,
            "recovered": True,
            "missed": 4,
            "heartbeat": 25.0,
        }
        await self.pubsub.publish("room:a", "after")
        got = [await self.read(ws) for _ in range(5)]
        assert [m["data"] for m in got] == [f"missed {n}" for n in range(4)] + ["after"]
        offsets = [int(m["position"].split("-")[0]) for m in got]
        assert offsets == list(range(2, 7))
        ws.close()

    @gen_test
    async def test_too_old_gets_recovered_false_then_a_reset(self) -> None:
        first = await self.pubsub.publish("room:a", "0")
        for n in range(30):
            top = await self.pubsub.publish("room:a", str(n))
        ws = await self.connect()
        hello = await self.subscribe(ws, "room:a", str(first))
        assert hello["recovered"] is False and hello["position"] == str(top)
        assert await self.read(ws) == {"type": "reset", "channel": "room:a", "position": str(top)}
        ws.close()

    @gen_test
    async def test_bad_requests_get_clear_errors_and_the_socket_stays(self) -> None:
        ws = await self.connect()
        cases = [
            ("not json", None, "a message must be a JSON object"),
            ("[1]", None, "a message must be a JSON object"),
            ('{"hello": 1}', None, 'a message has "subscribe" or "unsubscribe"'),
            ('{"subscribe": 5}', None, '"subscribe" must be a channel name'),
            ('{"subscribe": "secret"}', "secret", "not allowed to subscribe to 'secret'"),
            ('{"subscribe": "room:a", "since": "x"}', "room:a", "since: position 'x' is not"),
            ('{"subscribe": "room:a", "since": 3}', "room:a", '"since" must be a position'),
            ('{"unsubscribe": "room:z"}', None, "not subscribed to 'room:z'"),
        ]
        for text, channel, why in cases:
            await ws.write_message(text)
            answer = await self.read(ws)
            assert answer["type"] == "error" and answer["channel"] == channel, text
            assert answer["message"].startswith(why), (text, answer)
        assert (await self.subscribe(ws, "room:a"))["type"] == "subscribed"
        assert (await self.subscribe(ws, "room:a"))["message"] == "already subscribed to 'room:a'"
        assert (await self.subscribe(ws, "room:b"))["type"] == "subscribed"
        assert (await self.subscribe(ws, "room:c"))[
            "message"
        ] == "at most 2 channels per connection"
        await ws.write_message(json.dumps({"unsubscribe": "room:b"}))
        await asyncio.wait_for(self.no_subscriber("room:b"), HANG_GUARD)
        assert self.pubsub.subscribers("room:a") == 1
        ws.close()
        await asyncio.wait_for(self.no_subscriber("room:a"), HANG_GUARD)


class PollTest(Base):
    async def poll(self, cursor: Optional[str] = None, room: str = "a") -> Any:
        url = f"/rooms/{room}/poll" + (f"?cursor={cursor}" if cursor else "")
        response = await self.http_client.fetch(self.get_url(url), raise_error=False)
        assert response.headers.get("Cache-Control") == "no-store" or response.code != 200
        return response

    @gen_test
    async def test_cursor_resumes_with_history_first_then_waits(self) -> None:
        empty = json.loads((await self.poll()).body)
        assert empty["publications"] == [] and empty["recovered"] is True
        cursor = empty["position"]
        for n in range(5):
            await self.pubsub.publish("room:a", f"m{n}")
        seen: list[str] = []
        for _ in range(2):  # limit 3: two answers
            answer = json.loads((await self.poll(cursor)).body)
            seen += [p["data"] for p in answer["publications"]]
            cursor = answer["position"]
        assert seen == [f"m{n}" for n in range(5)]
        # Nothing after the cursor: the poll waits, and a publication ends it.
        waiting = asyncio.ensure_future(self.poll(cursor))
        await asyncio.wait_for(self.until_subscribed(), HANG_GUARD)
        await self.pubsub.publish("room:a", "late")
        answer = json.loads((await waiting).body)
        assert [p["data"] for p in answer["publications"]] == ["late"]
        # And an empty answer at the timeout keeps the cursor.
        same = json.loads((await self.poll(answer["position"])).body)
        assert same == {
            "publications": [],
            "position": answer["position"],
            "recovered": True,
            "heartbeat": Poll.poll_timeout,
        }

    async def until_subscribed(self) -> None:
        while not self.pubsub.subscribers("room:a"):
            await asyncio.sleep(0)

    @gen_test
    async def test_stale_cursor_says_recovered_false(self) -> None:
        first = await self.pubsub.publish("room:a", "0")
        for n in range(30):
            top = await self.pubsub.publish("room:a", str(n))
        answer = json.loads((await self.poll(str(first))).body)
        assert answer == {
            "publications": [],
            "position": str(top),
            "recovered": False,
            "heartbeat": Poll.poll_timeout,
        }

    @gen_test
    async def test_malformed_cursor_is_a_400_saying_why(self) -> None:
        response = await self.poll("12-a$b")
        assert response.code == 400
        assert b"Bad cursor" in response.body

    @gen_test
    async def test_client_leaving_ends_the_wait(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        writer.write(b"GET /rooms/a/poll HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.wait_for(self.until_subscribed(), HANG_GUARD)
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(self.no_subscriber(), HANG_GUARD)


@pytest.mark.skipif(importlib.util.find_spec("h2") is None, reason="h2 is not installed")
class PollOverH2Test(Base):
    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_poll_resumes_over_h2(self) -> None:
        from tests.h2._client import RawH2

        client = await RawH2.connect(self.get_http_port())
        first = await self.pubsub.publish("room:a", "a")
        await self.pubsub.publish("room:a", "b")
        r = await client.fetch(f"/rooms/a/poll?cursor={first}")
        assert r.status == 200
        assert [p["data"] for p in json.loads(r.body)["publications"]] == ["b"]
        await client.close()


class ScriptTest(Base):
    @gen_test
    async def test_the_client_script_is_served(self) -> None:
        response = await self.http_client.fetch(self.get_url("/squall-resume.js"))
        assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert b"SquallResume" in response.body and response.headers.get("Etag")


class PollAtOnceTest(Base):
    @gen_test
    async def test_wait_0_answers_at_once_with_what_history_has(self) -> None:
        first = await self.pubsub.publish("room:a", "a")
        response = await self.http_client.fetch(
            self.get_url(f"/rooms/a/poll?wait=0&cursor={first}")
        )
        answer = json.loads(response.body)
        assert answer == {
            "publications": [],
            "position": str(first),
            "recovered": True,
            "heartbeat": Poll.poll_timeout,
        }
        await self.pubsub.publish("room:a", "b")
        response = await self.http_client.fetch(
            self.get_url(f"/rooms/a/poll?wait=0&cursor={first}")
        )
        assert [p["data"] for p in json.loads(response.body)["publications"]] == ["b"]
