"""A WebSocketHandler under ASGIAdapter, driven by ASGI messages directly: no frames either way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Optional

import pytest

from squall import _ws, web, websocket
from squall.asgi import ASGIAdapter
from squall.asgi._adapter_ws import _ASGIMessages
from tests._wait import HANG_GUARD

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed


class Room:
    def __init__(self) -> None:
        self.members: list[Member] = []
        self.log: list[Any] = []
        self.closed: Optional[asyncio.Future[tuple[Optional[int], Optional[str]]]] = None
        self.release: Optional[asyncio.Event] = None


class Member(websocket.WebSocketHandler):
    def initialize(self, room: Room) -> None:
        self.room = room

    def open(self) -> None:
        self.room.members.append(self)

    def on_message(self, message: Any) -> Optional[Awaitable[None]]:
        self.room.log.append(message)
        if message == "slow":
            return self._slow()
        if message == "close please":
            self.close(4002, "as asked")
        elif message == "ping":
            self.ping(b"p")
        elif message == "raise":
            raise ValueError("the handler fails")
        elif message == "all":
            # From a member's own callback: between its writes, in order.
            self.write_message("before")
            websocket.broadcast(self.room.members, "everyone")
            self.write_message("after")
        elif isinstance(message, bytes):
            self.write_message(message[::-1], binary=True)
        else:
            self.write_message("echo " + message)
        return None

    async def _slow(self) -> None:
        assert self.room.release is not None
        await self.room.release.wait()
        await self.write_message("slow done")

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        if not subprotocols:
            return None
        self.room.log.append(("offered", subprotocols))
        return subprotocols[-1]

    def on_pong(self, data: bytes) -> None:
        self.write_message(b"pong " + data, binary=True)

    def on_close(self) -> None:
        self.room.members.remove(self)
        if self.room.closed is not None and not self.room.closed.done():
            self.room.closed.set_result((self.close_code, self.close_reason))


class Client:
    """One ASGI WebSocket call of the adapter, with the test as the ASGI server."""

    def __init__(
        self, adapter: ASGIAdapter, path: str = "/ws", subprotocols: tuple[str, ...] = ()
    ) -> None:
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.gate: Optional[asyncio.Event] = None
        scope = {
            "type": "websocket",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "headers": [(b"host", b"test")],
            "scheme": "ws",
            "client": ("127.0.0.1", 5000),
            "subprotocols": list(subprotocols),
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.call = asyncio.ensure_future(adapter(scope, self.inbox.get, self._send))

    async def _send(self, message: dict[str, Any]) -> None:
        gate = self.gate
        if gate is not None and message["type"] == "websocket.send":
            await gate.wait()  # the ASGI server is behind
        self.sent.put_nowait(message)

    async def next(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.sent.get(), LIMIT)

    def receive(self, text: Optional[str] = None, data: Optional[bytes] = None) -> None:
        if text is not None:
            self.inbox.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.inbox.put_nowait({"type": "websocket.receive", "bytes": data})

    async def ended(self) -> None:
        await asyncio.wait_for(self.call, LIMIT)


async def until(condition: Any) -> None:
    """Lets the loop turn until ``condition()`` holds, failing after LIMIT seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + LIMIT
    while not condition():
        assert loop.time() < end, "condition not reached before the deadline"
        await asyncio.sleep(0)


def run(main: Any) -> Any:
    return asyncio.run(asyncio.wait_for(main(), LIMIT * 2))


def adapter(room: Room, **settings: Any) -> ASGIAdapter:
    return ASGIAdapter(web.Application([("/ws", Member, {"room": room})], **settings))


def test_messages_both_ways_without_frames() -> None:
    async def main() -> None:
        room = Room()
        room.closed = asyncio.get_running_loop().create_future()
        client = Client(adapter(room))
        assert (await client.next())["type"] == "websocket.accept"
        (member,) = room.members
        # The protocol's core is the message one: nothing is framed or parsed.
        assert member.ws_connection is not None
        assert type(member.ws_connection.conn) is _ASGIMessages
        client.receive("hi")
        assert await client.next() == {"type": "websocket.send", "text": "echo hi"}
        client.receive(data=b"\x00\x01\x02")
        assert await client.next() == {"type": "websocket.send", "bytes": b"\x02\x01\x00"}
        # A handler's ping is answered here (ASGI has no ping message).
        client.receive("ping")
        assert await client.next() == {"type": "websocket.send", "bytes": b"pong p"}
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 4001, "reason": "done"})
        assert await asyncio.wait_for(room.closed, LIMIT) == (4001, "done")
        await client.ended()
        assert room.log == ["hi", b"\x00\x01\x02", "ping"]

    run(main)


def test_the_handler_closes_with_its_code_and_reason() -> None:
    async def main() -> None:
        room = Room()
        room.closed = asyncio.get_running_loop().create_future()
        client = Client(adapter(room))
        await client.next()
        client.receive("close please")
        assert await client.next() == {
            "type": "websocket.close",
            "code": 4002,
            "reason": "as asked",
        }
        # The ASGI server closes the connection and says so.
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 4002})
        assert await asyncio.wait_for(room.closed, LIMIT) == (4002, None)
        await client.ended()
        assert client.sent.empty()

    run(main)


def test_a_message_over_max_message_size_closes_with_1009() -> None:
    async def main() -> None:
        room = Room()
        room.closed = asyncio.get_running_loop().create_future()
        client = Client(adapter(room, websocket_max_message_size=10))
        await client.next()
        client.receive("0123456789")
        assert await client.next() == {"type": "websocket.send", "text": "echo 0123456789"}
        # Ten characters but twenty UTF-8 bytes: over, as the frame parser counts.
        client.receive("\u00e9" * 10)
        message = await client.next()
        assert (message["type"], message["code"]) == ("websocket.close", 1009)
        await asyncio.wait_for(room.closed, LIMIT)
        await client.ended()
        assert room.log == ["0123456789"]

    run(main)


def test_a_coroutine_on_message_holds_the_next_messages_in_order() -> None:
    async def main() -> None:
        room = Room()
        room.release = asyncio.Event()
        client = Client(adapter(room))
        await client.next()
        client.receive("slow")
        client.receive("a")
        client.receive("b")
        # The adapter took all three; nothing after "slow" is delivered while it waits.
        await until(lambda: client.inbox.empty() and room.log == ["slow"])
        for _ in range(3):
            await asyncio.sleep(0)
        assert room.log == ["slow"]
        room.release.set()
        assert [(await client.next())["text"] for _ in range(3)] == [
            "slow done",
            "echo a",
            "echo b",
        ]
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1006})
        await client.ended()
        assert room.members == []

    run(main)


def test_broadcast_reaches_adapter_connections_in_order_with_their_writes() -> None:
    async def main() -> None:
        room = Room()
        clients = [Client(adapter(room)) for _ in range(2)]
        for client in clients:
            await client.next()
        assert websocket.broadcast(room.members, "news") == websocket.BroadcastResult(2, 0, 0, 0)
        for client in clients:
            assert await client.next() == {"type": "websocket.send", "text": "news"}
        clients[0].receive("all")
        assert [(await clients[0].next())["text"] for _ in range(3)] == [
            "before",
            "everyone",
            "after",
        ]
        assert (await clients[1].next())["text"] == "everyone"
        for client in clients:
            client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
            await client.ended()

    run(main)


def test_write_message_resolves_once_the_asgi_server_took_it() -> None:
    async def main() -> None:
        room = Room()
        client = Client(adapter(room))
        gate = client.gate = asyncio.Event()
        await client.next()
        (member,) = room.members
        written = member.write_message("held")
        await asyncio.sleep(0)
        assert not written.done() and client.sent.empty()
        gate.set()
        await asyncio.wait_for(written, LIMIT)
        assert client.sent.get_nowait() == {"type": "websocket.send", "text": "held"}
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await client.ended()

    run(main)


def test_the_message_core_refuses_what_asgi_cannot_carry() -> None:
    core = _ASGIMessages(channel=None, max_message_size=None)  # type: ignore[arg-type]
    with pytest.raises(_ws.LocalProtocolError, match="whole messages"):
        core.send_frame(0x1, b"part", fin=False)
    with pytest.raises(_ws.LocalProtocolError):
        core.send_close(999)
    core.close_sent = True
    with pytest.raises(_ws.LocalProtocolError, match="closing"):
        core.send_message("late")


def test_subprotocols_given_only_in_the_scope_reach_select_subprotocol() -> None:
    # uvicorn's wsproto server leaves Sec-WebSocket-Protocol out of the
    # scope's headers and gives the offer only as "subprotocols": the
    # handler chooses from it as it would from the header.
    async def main() -> None:
        room = Room()
        client = Client(adapter(room), subprotocols=("chat", "chat.v2"))
        accept = await client.next()
        assert (accept["type"], accept["subprotocol"]) == ("websocket.accept", "chat.v2")
        assert room.log == [("offered", ["chat", "chat.v2"])]
        (member,) = room.members
        assert member.selected_subprotocol == "chat.v2"
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
        await client.ended()

    run(main)


def test_a_handler_that_raises_closes_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    # The native server drops the connection when on_message raises; over
    # ASGI the client is told of the failure by 1011, not a normal 1000.
    async def main() -> None:
        room = Room()
        room.closed = asyncio.get_running_loop().create_future()
        client = Client(adapter(room))
        await client.next()
        client.receive("raise")
        assert await client.next() == {"type": "websocket.close", "code": 1011}
        client.inbox.put_nowait({"type": "websocket.disconnect", "code": 1011})
        await asyncio.wait_for(room.closed, LIMIT)
        await client.ended()

    with caplog.at_level("ERROR"):
        run(main)
    assert "the handler fails" in caplog.text
