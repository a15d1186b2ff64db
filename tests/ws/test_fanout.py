"""write_message in a loop over subscribers: what it returns, refuses and keeps in order."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from squall._ws import server_message_frame
from squall.httpserver._stream import _TransportStream
from squall.iostream import IOStream
from squall.locks import Condition
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import (
    WebSocketClientConnection,
    WebSocketClosedError,
    WebSocketHandler,
    broadcast,
    websocket_connect,
)

UPGRADE = (
    b"GET /sub HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\r\n"
)


class Room:
    def __init__(self) -> None:
        self.members: list[Member] = []
        self.changed = Condition()

    async def wait_for(self, count: int) -> None:
        while len(self.members) < count:
            await self.changed.wait()


class Member(WebSocketHandler):
    def initialize(self, room: Room) -> None:
        self.room = room

    def open(self, *args: Any) -> None:
        self.room.members.append(self)
        self.room.changed.notify_all()

    def on_message(self, message: Any) -> None:
        # The chat pattern: a member's message goes to everyone, itself
        # included, by a loop of write_message (its own write is held
        # until its callback returns, the others' go out at once).
        for member in self.room.members:
            member.write_message(f"{message}-a")
        for member in self.room.members:
            member.write_message(f"{message}-b")

    def on_close(self) -> None:
        self.room.members.remove(self)
        self.room.changed.notify_all()


class FanOutTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.room = Room()
        return Application([("/sub", Member, {"room": self.room})])

    async def join(self, count: int) -> list[WebSocketClientConnection]:
        clients = [
            await websocket_connect(self.get_url("/sub").replace("http", "ws"))
            for _ in range(count)
        ]
        await self.room.wait_for(count)
        return clients

    @gen_test
    async def test_an_open_connection_takes_a_message_without_its_stream(self) -> None:
        clients = await self.join(3)
        calls: list[bytes] = []
        original = _TransportStream.write

        def counted(stream: _TransportStream, data: Any) -> Any:
            calls.append(bytes(data))
            return original(stream, data)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_TransportStream, "write", counted)
            futures = [member.write_message("hi") for member in self.room.members]
            futures += [
                member.write_message(b"\x00\x01", binary=True) for member in self.room.members
            ]
        # The frame went to each transport with no stream write, no Future
        # made: what is returned is resolved already, and behaves as one.
        assert calls == []
        assert all(future.done() and future.result() is None for future in futures)
        assert await asyncio.gather(*futures) == [None] * 6
        called: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        futures[0].add_done_callback(lambda f: called.set_result(f.result()))
        assert await called is None
        for client in clients:
            assert [await client.read_message() for _ in range(2)] == ["hi", b"\x00\x01"]
        # As with broadcast(), what goes straight to the transport is not
        # added to Tornado's tallies (read by its compression tests, whose
        # connections are compressed: never on this path).
        for member in self.room.members:
            protocol = member.ws_connection
            assert protocol is not None
            assert protocol._message_bytes_out == 0
            assert protocol._wire_bytes_out == 0

    @gen_test
    async def test_a_closed_stream_refuses_messages_before_on_close_runs(self) -> None:
        clients = await self.join(2)
        member = self.room.members[0]
        protocol = member.ws_connection
        assert protocol is not None and protocol.stream is not None
        # Closed under the protocol (as a drain's deadline or the peer's
        # reset does): the protocol hears of it a loop turn later.
        protocol.stream.close()
        assert member.ws_connection is protocol
        with pytest.raises(WebSocketClosedError):
            member.write_message("late")
        assert broadcast(self.room.members, "all").inactive == 1
        assert await clients[0].read_message() is None
        assert await clients[1].read_message() == "all"

    @gen_test
    async def test_a_refused_direct_write_goes_through_the_stream(self) -> None:
        clients = await self.join(1)
        protocol = self.room.members[0].ws_connection
        assert protocol is not None

        class Refusing:
            def write(self, data: bytes) -> None:
                raise RuntimeError("closed under the stream")

        protocol._sink = Refusing()  # type: ignore[assignment]
        future = self.room.members[0].write_message("via the stream")
        assert await future is None
        assert await clients[0].read_message() == "via the stream"

    @gen_test
    async def test_messages_keep_their_order_across_callbacks_and_direct_writes(self) -> None:
        clients = await self.join(3)
        for member in self.room.members:
            member.write_message("before")
        await clients[1].write_message("x")
        # The others' messages arrive while the sender's own are held.
        for client in clients:
            assert [await client.read_message() for _ in range(3)] == ["before", "x-a", "x-b"]
        for member in self.room.members:
            member.write_message("after")
        for client in clients:
            assert await client.read_message() == "after"

    @gen_test
    async def test_a_paused_connection_returns_a_future_that_waits_for_the_reader(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.get_http_port()))
        slow = IOStream(sock)
        await slow.write(UPGRADE)
        await slow.read_until(b"\r\n\r\n")
        await self.room.wait_for(1)
        member = self.room.members[0]
        protocol = member.ws_connection
        assert protocol is not None and protocol.stream is not None
        protocol.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        chunk = "y" * 65000
        count = 1
        future = member.write_message(chunk)
        while not protocol.stream.writing_paused():  # type: ignore[attr-defined]
            assert future.done()
            future = member.write_message(chunk)
            count += 1
        waiting = member.write_message("last")
        assert not waiting.done()
        frame = server_message_frame(chunk.encode())
        for _ in range(count):
            assert await slow.read_bytes(len(frame)) == frame
        assert await slow.read_bytes(6) == server_message_frame(b"last")
        assert await waiting is None
        slow.close()

    @gen_test
    async def test_another_protocol_in_its_place_gets_the_call(self) -> None:
        await self.join(1)
        member = self.room.members[0]
        real = member.ws_connection
        assert real is not None

        class Standing:
            """What a test's mock offers: every attribute, a recorded call."""

            _sink = real._sink
            conn = real.conn

            def __init__(self) -> None:
                self.calls: list[tuple[Any, bool]] = []

            def write_message(self, message: Any, binary: bool = False) -> str:
                self.calls.append((message, binary))
                return "recorded"

        standing = Standing()
        member.ws_connection = standing  # type: ignore[assignment]
        try:
            assert member.write_message("x") == "recorded"
            assert standing.calls == [("x", False)]
        finally:
            member.ws_connection = real
