"""The "Resuming streams" guide's programs (docs/examples/resume_*.py) run and resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import websocket_connect
from tests._wait import HANG_GUARD
from tests.test_docs import load

from ._clients import open_stream


class Example(AsyncHTTPTestCase):
    name = ""

    def get_app(self) -> Application:
        app: Application = load(self.name).make_app()
        self.pubsub = app.settings["pubsub"]
        return app

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.pubsub.close)
        super().tearDown()

    async def post(self, path: str, body: str) -> Any:
        response = await self.http_client.fetch(self.get_url(path), method="POST", body=body)
        return json.loads(response.body) if response.body else None


class SSEExampleTest(Example):
    name = "resume_sse"

    @gen_test
    async def test_page_client_and_resume(self) -> None:
        page = await self.http_client.fetch(self.get_url("/"))
        assert b'src="/squall-resume.js"' in page.body
        script = await self.http_client.fetch(self.get_url("/squall-resume.js"))
        assert b"SquallResume" in script.body
        first = (await self.post("/rooms/lobby", "text=one"))["position"]
        await self.post("/rooms/lobby", "text=two%0Alines")
        stream = await open_stream(
            "http/1.1", self.get_http_port(), "/rooms/lobby/events", {"Last-Event-ID": first}
        )
        await stream.until(lambda: any(e.get("event") is None for e in stream.events()))
        messages = [e for e in stream.events() if "event" not in e]
        assert [e["data"] for e in messages] == ["two\nlines"]
        await stream.leave()


class WebSocketExampleTest(Example):
    name = "resume_websocket"

    @gen_test
    async def test_subscribe_resume_and_refuse(self) -> None:
        url = self.get_url("/live").replace("http", "ws", 1)
        ws = await websocket_connect(url)
        await ws.write_message(json.dumps({"subscribe": "secret:x"}))
        refused = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert refused["type"] == "error"
        await ws.write_message(json.dumps({"subscribe": "scores:final"}))
        hello = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert hello["type"] == "subscribed"
        await self.post("/scores/final", "2-1")
        pub = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert pub["data"] == "2-1"
        ws.close()
        await self.post("/scores/final", "3-1")
        ws = await websocket_connect(url)
        await ws.write_message(json.dumps({"subscribe": "scores:final", "since": pub["position"]}))
        hello = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert hello["recovered"] is True
        missed = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert missed["data"] == "3-1"
        ws.close()


class PollExampleTest(Example):
    name = "resume_poll"

    @gen_test
    async def test_cursor(self) -> None:
        first = (await self.post("/publish/news", "a"))["position"]
        await self.post("/publish/news", "b")
        response = await self.http_client.fetch(self.get_url(f"/updates/news?cursor={first}"))
        answer = json.loads(response.body)
        assert [p["data"] for p in answer["publications"]] == ["b"]
        assert answer["recovered"] is True
