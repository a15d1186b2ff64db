"""ChannelWebSocket resumed over HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220):
the WebSocket is an extended CONNECT stream; a reader leaves (its whole
connection dropped), publications are made, and it comes back on a new
connection with its last position: each one it missed once, in order, then
the live ones. The protocol is ChannelWebSocket's, the same as over HTTP/1.1
(tests/resume/test_resume_ws_poll.py)."""

from __future__ import annotations

import contextlib
import json
from typing import Any, Optional

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")
pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.pubsub import PubSub, connect  # noqa: E402
from squall.resume import ChannelWebSocket  # noqa: E402
from squall.testing import AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from tests.h2.test_websocket_h2 import WSClient, client_frame, parse_frames  # noqa: E402
from tests.h3._client import H3Client, h3_client  # noqa: E402
from tests.h3.test_server import H3TestCase  # noqa: E402

CHANNEL = "room:mux"


class Live(ChannelWebSocket):
    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")

    def open(self) -> None:
        self.application.settings["versions"].append(self.request.version)


class Cases:
    """The test, over a protocol's `open`, `send`, `next` and `leave`."""

    pubsub: PubSub
    version = ""

    def get_app(self) -> Application:
        self.pubsub = connect("memory://?history_size=20")
        return Application([("/live", Live)], pubsub=self.pubsub, versions=[])

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.pubsub.close)  # type: ignore[attr-defined]
        super().tearDown()  # type: ignore[misc]

    async def open(self) -> Any:
        raise NotImplementedError

    async def send(self, ws: Any, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def next(self, ws: Any) -> dict[str, Any]:
        raise NotImplementedError

    async def leave(self, ws: Any) -> None:
        raise NotImplementedError

    async def subscribe(self, ws: Any, since: Optional[str]) -> dict[str, Any]:
        await self.send(ws, {"subscribe": CHANNEL, "since": since})
        return await self.next(ws)

    async def publications(self, ws: Any, count: int) -> list[tuple[str, str]]:
        got = []
        for _ in range(count):
            message = await self.next(ws)
            assert message["type"] == "publication", message
            got.append((message["data"], message["position"]))
        return got

    @gen_test
    async def test_a_reader_resumes_on_a_new_connection(self) -> None:
        ws = await self.open()
        hello = await self.subscribe(ws, None)
        assert hello["type"] == "subscribed" and hello["recovered"] is None
        for n in range(3):
            await self.pubsub.publish(CHANNEL, f"m{n}")
        got = await self.publications(ws, 3)
        await self.leave(ws)  # the connection drops
        for n in range(3, 6):
            await self.pubsub.publish(CHANNEL, f"m{n}")  # missed
        ws = await self.open()
        last = got[-1][1]
        hello = await self.subscribe(ws, last)
        assert (hello["recovered"], hello["position"]) == (True, last), hello
        got += await self.publications(ws, 3)
        await self.pubsub.publish(CHANNEL, "m6")  # live
        got += await self.publications(ws, 1)
        assert [d for d, _ in got] == [f"m{n}" for n in range(7)]
        offsets = [int(p.split("-")[0]) for _, p in got]
        assert offsets == list(range(offsets[0], offsets[0] + 7))
        await self.leave(ws)
        app = self._app  # type: ignore[attr-defined]
        assert app.settings["versions"] == [self.version] * 2


class _H2:
    """One WebSocket per HTTP/2 connection (the ``h2`` package as the client)."""

    def __init__(self, client: WSClient, sid: int) -> None:
        self.client = client
        self.sid = sid


class HTTP2Test(Cases, AsyncHTTPTestCase):
    version = "HTTP/2.0"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    async def open(self) -> _H2:
        client = await WSClient.connect(self.get_http_port())
        sid = client.open("/live")
        assert await client.opened(sid) == 200
        return _H2(client, sid)

    async def send(self, ws: _H2, message: dict[str, Any]) -> None:
        await ws.client.send(ws.sid, client_frame(0x1, json.dumps(message).encode()))

    async def next(self, ws: _H2) -> dict[str, Any]:
        opcode, payload = await ws.client.message(ws.sid)
        assert opcode == 0x1, (opcode, payload)
        message: dict[str, Any] = json.loads(payload)
        return message

    async def leave(self, ws: _H2) -> None:
        await ws.client.raw.close()


class _H3:
    """One WebSocket per HTTP/3 connection (aioquic as the client)."""

    def __init__(self, client: H3Client, sid: int, exits: contextlib.AsyncExitStack) -> None:
        self.client = client
        self.sid = sid
        self.exits = exits
        self.taken = 0  # frames read so far


class HTTP3Test(Cases, H3TestCase):
    version = "HTTP/3"

    async def open(self) -> _H3:
        await self.started()
        exits = contextlib.AsyncExitStack()
        client = await exits.enter_async_context(h3_client(self.get_http_port()))
        sid = client.request(
            "/live",
            method="CONNECT",
            headers=[(":protocol", "websocket"), ("sec-websocket-version", "13")],
            end=False,
        )
        r = client.responses[sid]
        await client.until(lambda: r.status != 0 or r.reset is not None)
        assert r.status == 200
        return _H3(client, sid, exits)

    async def send(self, ws: _H3, message: dict[str, Any]) -> None:
        ws.client.send_body(ws.sid, client_frame(0x1, json.dumps(message).encode()))

    async def next(self, ws: _H3) -> dict[str, Any]:
        r = ws.client.responses[ws.sid]
        await ws.client.until(lambda: len(parse_frames(r.body)) > ws.taken)
        opcode, payload = parse_frames(r.body)[ws.taken]
        ws.taken += 1
        assert opcode == 0x1, (opcode, payload)
        message: dict[str, Any] = json.loads(payload)
        return message

    async def leave(self, ws: _H3) -> None:
        await ws.exits.aclose()
