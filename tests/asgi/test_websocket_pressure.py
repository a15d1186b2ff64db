"""WebSocket over ASGI: a client that does not read holds the application's
``websocket.send`` (it waits while the connection's output is over its
high-water mark), so what the server buffers for it stays bounded."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from typing import Any

from ._helpers import RawClient, run, serving, until

MESSAGE = 64 * 1024
COUNT = 300  # 19.7 MB in all: far more than the bound below


def test_a_client_that_does_not_read_holds_the_sender() -> None:
    buffered: list[int] = []
    sent = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal sent
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        payload = os.urandom(MESSAGE)
        for _ in range(COUNT):
            await send({"type": "websocket.send", "bytes": payload})
            sent += 1
            buffered.append(held())
        await send({"type": "websocket.close"})

    server_ref: list[Any] = []

    def held() -> int:
        """What the server holds for the client: the transport's buffer and the stream's."""
        (proto,) = server_ref[0]._detached
        stream = proto._stream
        return int(proto.transport.get_write_buffer_size() + len(stream._write_buffer))

    async def main() -> None:
        async with serving(app) as (port, delegate, server):
            server_ref.append(server)
            sock = socket.socket()
            # A small receive window: the kernel holds little for the client.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 16)
            client = RawClient(reader, writer)
            key = base64.b64encode(os.urandom(16))
            await client.send(
                b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            status, _ = await client.head()
            assert status == 101
            # The client reads nothing more (its StreamReader stops at its
            # limit): the server's output fills up and pauses.
            await until(
                lambda: bool(server._detached) and next(iter(server._detached)).write_paused
            )
            paused_at = sent
            # The sender is held: many loop turns pass, it sends nothing more.
            for _ in range(200):
                await asyncio.sleep(0)
            assert sent == paused_at < COUNT
            # Now read everything: every message arrives, then the close.
            total = 0
            while True:
                chunk = await reader.read(1 << 20)
                if not chunk:
                    break
                total += len(chunk)
            await client.close()
            await until(lambda: not delegate.tasks)
        assert sent == COUNT
        assert total > COUNT * MESSAGE
        # Bounded: the transport's high-water mark (64 KiB) and two messages
        # (one handed to the transport, one in the stream's buffer) at most.
        assert max(buffered) <= 64 * 1024 + 2 * (MESSAGE + 16)

    run(main())
