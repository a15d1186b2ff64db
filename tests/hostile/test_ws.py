"""WebSocket attacks over real sockets: an upgrade over HTTP/1.0, and a
client that stops reading while the server sends to it.
"""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from squall._ws import Event, Message, WSConnection
from squall.web import Application
from squall.websocket import WebSocketHandler

from .._wait import until
from ._serve import LOOPS, connect, read_response, run, serving

MESSAGE = 65536
FLOOD = 128


class Flood(WebSocketHandler):
    async def on_message(self, message: str | bytes) -> None:
        if message == "flood":
            # Each message written once the previous one drained.
            for _ in range(FLOOD):
                await self.write_message(b"z" * MESSAGE, binary=True)
        else:
            await self.write_message(message)


def upgrade(version: bytes = b"HTTP/1.1") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws " + version + b"\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: " + key + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )


class Client:
    """A WebSocket client over raw streams, framed by the sans-I/O core."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ws = WSConnection(client=True)
        self.pending: list[Event] = []

    @classmethod
    async def open(cls, port: int, receive_buffer: int = 0) -> Client:
        reader, writer = await connect(port, receive_buffer)
        writer.write(upgrade())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101 ")
        return cls(reader, writer)

    def send(self, text: str) -> None:
        self.writer.write(self.ws.send_message(text))

    async def receive(self) -> str | bytes:
        while not self.pending:
            self.pending += self.ws.receive_data(await self.reader.read(65536))
        event = self.pending.pop(0)
        assert type(event) is Message, event
        return event.data


@pytest.mark.parametrize("loop", LOOPS)
def test_an_upgrade_over_http10_is_refused(loop: str) -> None:
    # RFC 6455 section 4.1: the handshake's HTTP version must be at least
    # 1.1. Before: 101, and a WebSocket over a connection HTTP/1.0 set.
    async def main() -> None:
        async with serving(Application([("/ws", Flood)])) as (_, port):
            reader, writer = await connect(port)
            writer.write(upgrade(b"HTTP/1.0"))
            status, _, body = await read_response(reader)
            assert status == 400 and b"HTTP/1.1" in body
            writer.close()
            client = await Client.open(port)
            client.send("hi")
            assert await client.receive() == "hi"
            client.writer.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_client_that_stops_reading_holds_one_message_at_most(loop: str) -> None:
    async def main() -> None:
        async with serving(Application([("/ws", Flood)])) as (server, port):
            client = await Client.open(port, receive_buffer=65536)
            client.send("flood")
            await until(lambda: len(server._detached) == 1)
            (proto,) = server._detached
            await until(lambda: proto.write_paused)
            transport = proto.transport
            high = transport.get_write_buffer_limits()[1]
            assert transport.get_write_buffer_size() <= high + MESSAGE + 16
            # Another client is served meanwhile.
            other = await Client.open(port)
            other.send("echo")
            assert await other.receive() == "echo"
            other.writer.close()
            # Reading at last, every message arrives.
            for _ in range(FLOOD):
                assert await client.receive() == b"z" * MESSAGE
            client.writer.close()

    run(main, loop)
