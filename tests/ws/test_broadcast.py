"""squall.websocket.broadcast: one frame for many connections, slow readers skipped and counted."""

from __future__ import annotations

import socket
import struct
from typing import Any, Optional

from squall import _ws
from squall.iostream import IOStream
from squall.locks import Condition
from squall.pubsub import LocalPubSub, PubSubClosedError
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import (
    BroadcastResult,
    WebSocketClientConnection,
    WebSocketHandler,
    _broadcast,
    broadcast,
    websocket_connect,
)

UPGRADE = (
    b"GET /sub HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n\r\n"
)


class Room:
    def __init__(self) -> None:
        self.members: list[Subscriber] = []
        self.changed = Condition()
        self.log: list[Any] = []

    async def wait_for(self, count: int) -> None:
        while len(self.members) < count:
            await self.changed.wait()


class Subscriber(WebSocketHandler):
    def initialize(self, room: Room, options: Optional[dict[str, Any]] = None) -> None:
        self.room = room
        self.options = options

    def check_origin(self, origin: str) -> bool:
        return True

    def get_compression_options(self) -> Optional[dict[str, Any]]:
        return self.options

    def open(self, *args: Any) -> None:
        self.room.members.append(self)
        self.room.changed.notify_all()

    def on_message(self, message: Any) -> None:
        if message == "go":
            # A broadcast from a member's own callback: its frame goes
            # between what the callback wrote before and after it.
            self.write_message("before")
            self.room.log.append(broadcast(self.room.members, "all"))
            self.write_message("after")
        else:
            self.room.log.append(message)
            self.room.changed.notify_all()

    def on_close(self) -> None:
        self.room.members.remove(self)
        self.room.changed.notify_all()


class BroadcastTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.room = Room()
        return Application(
            [
                ("/sub", Subscriber, {"room": self.room}),
                ("/deflate", Subscriber, {"room": self.room, "options": {}}),
            ]
        )

    async def join(self, count: int, **kwargs: Any) -> list[WebSocketClientConnection]:
        return [
            await websocket_connect(self.get_url("/sub").replace("http", "ws"), **kwargs)
            for _ in range(count)
        ]

    async def join_slow(self, chunk: str) -> tuple[IOStream, Subscriber, int]:
        """A raw client that reads nothing, and its handler, written ``chunk``
        until its output is over the high-water mark (and how many times)."""
        count = len(self.room.members) + 1
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", self.get_http_port()))
        slow = IOStream(sock)
        await slow.write(UPGRADE)
        await slow.read_until(b"\r\n\r\n")
        await self.room.wait_for(count)
        handler = self.room.members[-1]
        protocol = handler.ws_connection
        assert protocol is not None and protocol.stream is not None
        protocol.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        written = 0
        while not protocol.stream.writing_paused():  # type: ignore[attr-defined]
            handler.write_message(chunk)
            written += 1
        return slow, handler, written

    @gen_test
    async def test_every_open_connection_gets_the_message(self) -> None:
        clients = await self.join(3)
        await self.room.wait_for(3)
        result = broadcast(self.room.members, "hello")
        assert result == BroadcastResult(sent=3, skipped=0, closed=0, inactive=0)
        assert [await c.read_message() for c in clients] == ["hello"] * 3
        assert broadcast(self.room.members, {"n": 1}).sent == 3
        assert [await c.read_message() for c in clients] == ['{"n": 1}'] * 3
        assert broadcast(self.room.members, "bin", binary=True).sent == 3
        assert [await c.read_message() for c in clients] == [b"bin"] * 3
        big = "x" * 70000  # a 64-bit length header
        assert broadcast(self.room.members, big).sent == 3
        assert [await c.read_message() for c in clients] == [big] * 3

    @gen_test
    async def test_closed_and_closing_connections_are_counted_inactive(self) -> None:
        clients = await self.join(3)
        await self.room.wait_for(3)
        handlers = list(self.room.members)
        clients[0].close()
        while len(self.room.members) > 2:
            await self.room.changed.wait()
        handlers[1].close()  # closing: its close frame is sent, no echo yet
        result = broadcast(handlers, "x")
        assert result == BroadcastResult(sent=1, skipped=0, closed=0, inactive=2)
        assert await clients[2].read_message() == "x"
        assert await clients[1].read_message() is None  # the close, nothing before it

    @gen_test
    async def test_a_broadcast_from_a_callback_keeps_the_order_of_its_writes(self) -> None:
        clients = await self.join(2)
        await self.room.wait_for(2)
        clients[0].write_message("go")
        assert [await clients[0].read_message() for _ in range(3)] == ["before", "all", "after"]
        assert await clients[1].read_message() == "all"
        assert self.room.log == [BroadcastResult(2, 0, 0, 0)]

    @gen_test
    async def test_client_connections_mask_each_frame(self) -> None:
        clients = await self.join(2)
        await self.room.wait_for(2)
        assert broadcast(clients, "up") == BroadcastResult(2, 0, 0, 0)
        while len(self.room.log) < 2:
            await self.room.changed.wait()
        assert self.room.log == ["up", "up"]
        # Protocol objects are accepted as well.
        assert broadcast([clients[0].protocol], "again").sent == 1

    @gen_test
    async def test_deflate_connections(self) -> None:
        url = self.get_url("/deflate").replace("http", "ws")
        takeover = await websocket_connect(url, compression_options={})
        fresh = [
            await websocket_connect(url, compression_options={"server_no_context_takeover": True})
            for _ in range(2)
        ]
        await self.room.wait_for(3)
        text = "compressible " * 100
        frames: list[bytes] = []
        for member in self.room.members:
            transport = member.ws_connection.stream._transport  # type: ignore[union-attr]
            write = transport.write

            def spy(data: bytes, write: Any = write) -> None:
                frames.append(data)
                write(data)

            transport.write = spy
        assert broadcast(self.room.members, text).sent == 3
        for client in (takeover, *fresh):
            assert await client.read_message() == text
        # Context takeover: the uncompressed frame; a fresh context per
        # message: one compressed frame, the same object for both.
        assert frames[0] == _ws.server_message_frame(text.encode())
        assert frames[1] is frames[2] and frames[1][0] == 0xC1 and len(frames[1]) < 100
        # Compressed messages sent before and after still decompress.
        self.room.members[0].write_message(text)
        assert await takeover.read_message() == text

    @gen_test
    async def test_a_slow_reader_is_skipped_counted_and_closed_past_the_limit(self) -> None:
        fast = (await self.join(1))[0]
        chunk = "y" * 65000
        slow, handler, sent_before = await self.join_slow(chunk)
        protocol = handler.ws_connection
        assert protocol is not None
        first = broadcast(self.room.members, "one", max_skips=2)
        assert first == BroadcastResult(sent=1, skipped=1, closed=0, inactive=0)
        assert _broadcast._lagging[protocol] == 1
        second = broadcast(self.room.members, "two", max_skips=2)
        assert second == BroadcastResult(sent=1, skipped=1, closed=1, inactive=0)
        assert protocol.is_closing()
        assert [await fast.read_message() for _ in range(2)] == ["one", "two"]
        # The slow peer, reading at last, gets what was written before,
        # none of the skipped messages, then the close frame with 1013.
        for _ in range(sent_before):
            head = await slow.read_bytes(4)
            assert head[:2] == b"\x81\x7e" and struct.unpack("!H", head[2:])[0] == 65000
            assert await slow.read_bytes(65000) == chunk.encode()
        head = await slow.read_bytes(2)
        assert head[0] == 0x88
        payload = await slow.read_bytes(head[1])
        assert struct.unpack("!H", payload[:2])[0] == 1013
        slow.close()

    @gen_test
    async def test_skips_in_a_row_restart_once_the_reader_caught_up(self) -> None:
        slow, handler, sent_before = await self.join_slow("w" * 65000)
        protocol = handler.ws_connection
        assert protocol is not None and protocol.stream is not None
        assert broadcast(self.room.members, "lost", max_skips=2).skipped == 1
        assert _broadcast._lagging[protocol] == 1
        # The peer reads everything: the server's output drains.
        for _ in range(sent_before):
            await slow.read_bytes(4 + 65000)
        assert protocol.stream.get_write_buffer_size() == 0  # type: ignore[attr-defined]
        # Caught up: the next broadcast goes the direct way and the count is
        # gone, so a later skip is the first in a row again (no close).
        assert broadcast(self.room.members, "got") == BroadcastResult(1, 0, 0, 0)
        assert protocol not in _broadcast._lagging
        head = await slow.read_bytes(2)
        assert head == b"\x81\x03" and await slow.read_bytes(3) == b"got"
        slow.close()

    @gen_test
    async def test_a_buffer_over_max_buffer_closes_at_the_first_skip(self) -> None:
        await self.join(1)
        slow, handler, _ = await self.join_slow("z" * 65000)
        protocol = handler.ws_connection
        assert protocol is not None
        result = broadcast(self.room.members, "m", max_buffer=1000, close_code=1008)
        assert result == BroadcastResult(sent=1, skipped=1, closed=1, inactive=0)
        assert protocol.close_code is None and protocol.is_closing()
        slow.close()

    @gen_test
    async def test_a_pubsub_relay_broadcasts_each_message(self) -> None:
        clients = await self.join(2)
        await self.room.wait_for(2)
        pubsub = LocalPubSub()
        relay = await pubsub.relay("room", self.room.members, max_skips=3)
        assert pubsub.subscribers("room") == 1
        await pubsub.publish("room", "news")
        await pubsub.publish("other", "elsewhere")
        assert [await c.read_message() for c in clients] == ["news", "news"]
        assert (relay.messages, relay.sent, relay.skipped, relay.closed) == (1, 2, 0, 0)
        relay.close()
        assert pubsub.subscribers("room") == 0
        await pubsub.publish("room", "unheard")
        assert relay.messages == 1
        await pubsub.close()
        with self.assertRaisesRegex(PubSubClosedError, "closed"):
            await pubsub.relay("room", self.room.members)

    def test_messages_of_other_types_are_refused(self) -> None:
        with self.assertRaisesRegex(TypeError, "str, bytes or dict, not int"):
            broadcast([], 3)  # type: ignore[arg-type]
        assert broadcast([], "nobody") == BroadcastResult(0, 0, 0, 0)


def test_server_message_frame() -> None:
    assert _ws.server_message_frame(b"hi") == b"\x81\x02hi"
    assert _ws.server_message_frame(b"hi", binary=True) == b"\x82\x02hi"
    assert _ws.server_message_frame(b"x" * 200) == _ws.build_frame(1, b"x" * 200)
    assert _ws.server_message_frame(b"c", compressed=True) == b"\xc1\x01c"


def test_deflate_shared_key_only_without_context_takeover() -> None:
    takeover = _ws.PerMessageDeflate(client=False)
    assert takeover.shared_key is None
    fresh = _ws.PerMessageDeflate(
        client=False, server_no_context_takeover=True, server_max_window_bits=10
    )
    assert fresh.shared_key == (6, 10, 8)
    # The property that makes sharing sound: the same bytes every time.
    assert fresh.compress(b"abc" * 50) == fresh.compress(b"abc" * 50)
    # On the client side, our own context is the client's.
    client = _ws.PerMessageDeflate(client=True, client_no_context_takeover=True)
    assert client.shared_key == (6, 15, 8)
