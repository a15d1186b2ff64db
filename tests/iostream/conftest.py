"""Connected stream pairs for the iostream tests: TCP, TLS, pipes, and a server connection taken over by detach()."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from squall.iostream import BaseIOStream, IOStream, PipeIOStream, SSLIOStream
from tests._paths import CERTS
from tests._wait import HANG_GUARD
from tests._wait import until as until  # shared; imported from here by tests

_T = TypeVar("_T")

CERTFILE = str(CERTS / "test.crt")
KEYFILE = str(CERTS / "test.key")

# Every wait is bounded so that a bug fails the test instead of hanging it.
LIMIT = HANG_GUARD  # a hang guard, not a measure of speed

KINDS = ["tcp", "ssl", "pipe", "detached-reads", "detached-writes"]


def run(test: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``test`` in a fresh event loop, failing it after LIMIT seconds."""
    return asyncio.run(asyncio.wait_for(test(), LIMIT))


def server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(CERTFILE, KEYFILE)
    return context


def client_context(verify: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if verify:
        context.load_verify_locations(CERTFILE)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    return sock


async def accept(sock: socket.socket) -> socket.socket:
    conn, _ = await asyncio.get_running_loop().sock_accept(sock)
    return conn


async def tcp_pair(**kwargs: Any) -> tuple[IOStream, IOStream]:
    """A connected (server, client) pair of plain streams."""
    with listener() as lsock:
        client = IOStream(socket.socket(), **kwargs)
        connected = client.connect(lsock.getsockname())
        conn = await accept(lsock)
        await connected
    return IOStream(conn, **kwargs), client


async def ssl_pair(**kwargs: Any) -> tuple[SSLIOStream, SSLIOStream]:
    """A connected (server, client) pair of TLS streams, handshakes done."""
    with listener() as lsock:
        client = SSLIOStream(socket.socket(), ssl_options=client_context(), **kwargs)
        connected = client.connect(lsock.getsockname())
        conn = await accept(lsock)
        wrapped = server_context().wrap_socket(
            conn, server_side=True, do_handshake_on_connect=False
        )
        server = SSLIOStream(wrapped, **kwargs)
        await asyncio.gather(connected, server.wait_for_handshake())
    # TLS 1.3 servers send session tickets after the handshake. A client that
    # closes with them unread makes its kernel send a reset, which Python 3.13
    # reports as ConnectionResetError (3.11 as a clean EOF): one byte from the
    # server, read by the client, takes the tickets in first.
    await server.write(b"\0")
    assert await client.read_bytes(1) == b"\0"
    return server, client


async def pipe_pair(**kwargs: Any) -> tuple[PipeIOStream, PipeIOStream]:
    """A (read end, write end) pair over a pipe."""
    r, w = os.pipe()
    return PipeIOStream(r, **kwargs), PipeIOStream(w, **kwargs)


async def detached_pair(**kwargs: Any) -> tuple[BaseIOStream, IOStream]:
    """(server, client): the server's end is the stream a request's ``detach()``
    returns (squall.httpserver's, over an asyncio transport, not an fd)."""
    from squall.httpserver import HTTPServer
    from squall.httputil import HTTPServerRequest

    taken: asyncio.Future[BaseIOStream] = asyncio.get_running_loop().create_future()

    def handle(request: HTTPServerRequest) -> None:
        assert request.connection is not None
        taken.set_result(request.connection.detach())  # type: ignore[attr-defined]

    server = HTTPServer(handle)
    lsock = listener()
    server.add_sockets([lsock])
    client = IOStream(socket.socket(), **kwargs)
    await client.connect(lsock.getsockname())
    await client.write(b"GET / HTTP/1.1\r\nHost: pair\r\n\r\n")
    stream = await taken
    server.stop()  # no more connections; the detached one stays
    # The stream was made by the server: give it the pair's limits.
    if "max_buffer_size" in kwargs:
        stream.max_buffer_size = kwargs["max_buffer_size"]
        stream.read_chunk_size = min(stream.read_chunk_size, max(1, stream.max_buffer_size // 2))
    if "read_chunk_size" in kwargs:
        stream.read_chunk_size = kwargs["read_chunk_size"]
    if "max_write_buffer_size" in kwargs:
        stream.max_write_buffer_size = kwargs["max_write_buffer_size"]
    return stream, client


async def detached_reads(**kwargs: Any) -> tuple[BaseIOStream, BaseIOStream]:
    """The detached server stream reads what a client IOStream writes."""
    return await detached_pair(**kwargs)


async def detached_writes(**kwargs: Any) -> tuple[BaseIOStream, BaseIOStream]:
    """A client IOStream reads what the detached server stream writes."""
    stream, client = await detached_pair(**kwargs)
    return client, stream


PairFactory = Callable[..., Awaitable[tuple[BaseIOStream, BaseIOStream]]]

FACTORIES: dict[str, PairFactory] = {
    "tcp": tcp_pair,
    "ssl": ssl_pair,
    "pipe": pipe_pair,
    "detached-reads": detached_reads,
    "detached-writes": detached_writes,
}


@pytest.fixture(params=KINDS)
def make_pair(request: pytest.FixtureRequest) -> PairFactory:
    """Makes a (reader, writer) pair of the parametrized kind; data flows writer -> reader."""
    factory: PairFactory = FACTORIES[request.param]
    return factory
