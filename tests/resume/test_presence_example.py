"""docs/examples/presence_websocket.py: presence with ChannelWebSocket, as the guide shows it."""

from __future__ import annotations

import asyncio
import json

from squall.pubsub import presence_channel
from squall.testing import gen_test
from squall.websocket import websocket_connect

from .._wait import HANG_GUARD, until_answer
from .test_docs_examples import Example


class PresenceExampleTest(Example):
    name = "presence_websocket"

    async def names(self) -> list[str]:
        response = await self.http_client.fetch(self.get_url("/rooms/lobby/who"))
        names: list[str] = json.loads(response.body)["names"]
        return names

    @gen_test(timeout=HANG_GUARD)
    async def test_a_reader_is_present_while_subscribed_and_chat_goes_by_post(self) -> None:
        url = self.get_url("/live?name=ada").replace("http", "ws", 1)
        ws = await websocket_connect(url)
        await ws.write_message(json.dumps({"subscribe": "room:lobby"}))
        hello = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert hello["type"] == "subscribed"

        async def ada_is_there() -> bool:
            return await self.names() == ["ada"]

        await until_answer(ada_is_there, HANG_GUARD)
        # The browser client only receives: what a reader says is a POST.
        response = await self.http_client.fetch(
            self.get_url("/rooms/lobby"), method="POST", body="text=hi"
        )
        assert response.code == 204
        said = json.loads(await asyncio.wait_for(ws.read_message(), HANG_GUARD) or "")
        assert said["data"] == "hi"
        ws.close()

        async def nobody_is_there() -> bool:
            return await self.names() == []

        await until_answer(nobody_is_there, HANG_GUARD)

    @gen_test(timeout=HANG_GUARD)
    async def test_a_connection_closed_while_joining_still_leaves(self) -> None:
        events = await self.pubsub.subscribe(presence_channel("room:lobby"))
        url = self.get_url("/live?name=bob").replace("http", "ws", 1)
        ws = await websocket_connect(url)
        await ws.write_message(json.dumps({"subscribe": "room:lobby"}))
        await asyncio.wait_for(ws.read_message(), HANG_GUARD)
        ws.close()  # at once: the join may still be on its way
        async with events:
            seen = []
            async for message in events:
                seen.append(json.loads(message)["event"])
                if seen[-1] == "leave":
                    break
        assert seen == ["join", "leave"]
        assert await self.names() == []
