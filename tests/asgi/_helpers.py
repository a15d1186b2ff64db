"""Shared pieces of the ASGI tests: a Squall server for an ASGI app on port 0, a raw client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Optional, TypeVar

from squall.asgi import ASGIServerDelegate
from squall.httpserver import HTTPServer
from tests._wait import HANG_GUARD
from tests._wait import until as until  # shared; imported from here by tests

T = TypeVar("T")

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed


def run(coro: Coroutine[Any, Any, T], timeout: float = DEADLINE) -> T:
    """Run a test coroutine on a fresh loop, failing after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


@contextlib.asynccontextmanager
async def serving(
    app: Any, lifespan: bool = False, **kwargs: Any
) -> AsyncIterator[tuple[int, ASGIServerDelegate, HTTPServer]]:
    """Serve ``app`` (an ASGI app, or a ready delegate) with Squall on a free port."""
    delegate = app if isinstance(app, ASGIServerDelegate) else ASGIServerDelegate(app, **kwargs)
    if lifespan:
        await delegate.startup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = HTTPServer(delegate)
    server.add_sockets([sock])
    try:
        yield port, delegate, server
    finally:
        server.stop()
        await server.close_all_connections()
        await delegate.wait_requests(1.0)
        for task in list(delegate.tasks):
            task.cancel()
        if delegate.tasks:
            await asyncio.wait(set(delegate.tasks), timeout=1.0)
        if lifespan:
            await delegate.shutdown()


class RawClient:
    """A socket client that reads responses byte-exactly."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return status, headers

    async def body(self, headers: dict[str, str]) -> bytes:
        if "content-length" in headers:
            return await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("transfer-encoding") == "chunked":
            out = b""
            while True:
                piece = await self.chunk()
                if piece is None:
                    return out
                out += piece
        return await self.reader.read()

    async def chunk(self) -> Optional[bytes]:
        """One chunk of a chunked body; None at the last chunk."""
        size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
        if size == 0:
            await self.reader.readuntil(b"\r\n")
            return None
        data = await self.reader.readexactly(size)
        await self.reader.readexactly(2)
        return data

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        status, headers = await self.head()
        return status, headers, await self.body(headers)

    async def closed(self) -> bool:
        """Whether the server closes the connection (reads until EOF)."""
        try:
            rest = await self.reader.read()
        except ConnectionError:
            return True
        return rest == b"" or self.reader.at_eof()

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def request(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection."""
    client = await RawClient.connect(port)
    try:
        await client.send(data)
        return await client.response()
    finally:
        await client.close()


Handler = Callable[[dict[str, Any], Any, Any], Awaitable[None]]
