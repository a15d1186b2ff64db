"""A fake asyncio transport and helpers to drive `_HTTPProtocol` without sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any, Optional

from squall.httpserver import HTTPServer
from squall.httpserver._protocol import _HTTPProtocol
from squall.httputil import HTTPHeaders, HTTPServerRequest, ResponseStartLine

from .._wait import HANG_GUARD


class FakeSocket:
    def __init__(self, family: int) -> None:
        self.family = family
        self.options: dict[tuple[int, int], int] = {}

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self.options[(level, option)] = value


class FakeTransport(asyncio.Transport):
    """Collects what the protocol writes; closing reports connection_lost."""

    def __init__(
        self,
        proto: asyncio.Protocol,
        loop: asyncio.AbstractEventLoop,
        peer: Any = ("10.0.0.1", 4321),
        family: int = socket.AF_INET,
    ) -> None:
        super().__init__()
        self.proto = proto
        self.loop = loop
        self.peer = peer
        self.family = family
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True
        self.pauses = 0
        # What a real transport would still hold unsent (set by tests).
        self.buffered = 0
        # Whether write_eof() is offered (set by tests), and was called.
        self.half_close = False
        self.eof_written = False
        self.sock = FakeSocket(family)
        self.closed_future: asyncio.Future[None] = loop.create_future()

    def write(self, data: Any) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.writes)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.proto.connection_lost, None)
            if not self.closed_future.done():
                self.closed_future.set_result(None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def can_write_eof(self) -> bool:
        return self.half_close

    def write_eof(self) -> None:
        assert self.half_close and not self.closed
        self.eof_written = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (16 * 1024, 64 * 1024)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self.sock
        if name == "peername":
            return self.peer
        return default


def respond(request: HTTPServerRequest, body: Optional[bytes] = None, **headers: str) -> None:
    """Answer with 200 and ``body`` (default: the method, target and body)."""
    if body is None:
        body = f"{request.method} {request.uri} ".encode() + request.body
    conn = request.connection
    assert conn is not None
    h = HTTPHeaders({"Content-Length": str(len(body))})
    for name, value in headers.items():
        h[name.replace("_", "-")] = value
    conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), h, body)
    conn.finish()


def make(
    loop: asyncio.AbstractEventLoop,
    callback: Any = respond,
    peer: Any = ("10.0.0.1", 4321),
    family: int = socket.AF_INET,
    **options: Any,
) -> tuple[HTTPServer, _HTTPProtocol, FakeTransport]:
    server = HTTPServer(callback, **options)
    proto = _HTTPProtocol(server, server.conn_params, None, loop)
    transport = FakeTransport(proto, loop, peer, family)
    proto.connection_made(transport)
    return server, proto, transport


def wait_closed(transport: FakeTransport, timeout: float = HANG_GUARD) -> bool:
    """Run the loop until the transport is closed or ``timeout`` passes (by
    default a hang guard: give a short one to see that it stays open)."""
    loop = transport.loop
    try:
        loop.run_until_complete(asyncio.wait_for(asyncio.shield(transport.closed_future), timeout))
    except TimeoutError:
        return False
    return True


def run_soon(loop: asyncio.AbstractEventLoop) -> None:
    """Run the callbacks that are ready (and those they schedule), a few rounds."""
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))


def responses(data: bytes) -> list[bytes]:
    """Split a stream of Content-Length responses into their heads+bodies."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, data
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        out.append(head + sep + rest[:length])
        data = rest[length:]
    return out


Callback = Callable[[HTTPServerRequest], None]
