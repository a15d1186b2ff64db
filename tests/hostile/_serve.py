"""What the hostile tests share: a server on loopback, a loop to run it on,
and raw HTTP/1.1 exchanges (the attacks need bytes no client library sends).

Each test runs on asyncio's loop and on uvloop (where installed): their
transports buffer, pause and hand over TLS differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from squall.httpserver import HTTPServer
from squall.testing import bind_unused_port

from .._wait import HANG_GUARD

try:
    import uvloop
except ImportError:  # pragma: no cover - uvloop is in the prebuilt extra
    uvloop = None

T = TypeVar("T")

LOOPS = [
    "asyncio",
    pytest.param(
        "uvloop", marks=pytest.mark.skipif(uvloop is None, reason="uvloop is not installed")
    ),
]


def run(main: Callable[[], Coroutine[Any, Any, T]], loop: str, limit: float = HANG_GUARD) -> T:
    """Run ``main()`` on a new loop of kind ``loop``; fail after ``limit`` seconds (a hang guard)."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(main(), limit))


@contextlib.asynccontextmanager
async def serving(app: Any, **options: Any) -> AsyncIterator[tuple[HTTPServer, int]]:
    """An `HTTPServer` for ``app`` on a free loopback port: ``(server, port)``."""
    sock, port = bind_unused_port()
    server = HTTPServer(app, **options)
    server.add_sockets([sock])
    try:
        yield server, port
    finally:
        server.stop()
        await server.close_all_connections()


async def connect(
    port: int, receive_buffer: int = 0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection to ``port``; ``receive_buffer`` shrinks the kernel's
    receive buffer (set before connecting, so that the window follows)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return await asyncio.open_connection(sock=sock)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    """One response with a Content-Length (or none, then read to the close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:
        body = await reader.read()
    return status, headers, body


async def exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``request`` on a new connection and read its response."""
    reader, writer = await connect(port)
    try:
        writer.write(request)
        return await read_response(reader)
    finally:
        writer.close()
