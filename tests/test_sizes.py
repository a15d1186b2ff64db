"""squall._sizes and the size limits and flags a program gives as Tornado takes them.

Tornado compares its limits with sizes as they are given, so a float
(``max_body_size=1e9``) and a truth value (``no_keep_alive=0``) serve there.
Squall's parsers take ints, and its compiled build holds limits and flags in
typed fields: these tests hold that every such setting is taken on both
builds, and that what is no size is refused when the server or client is
made, with a message that names the setting.
"""

from __future__ import annotations

import fractions
import sys
from decimal import Decimal
from typing import Any

import pytest

from squall._sizes import byte_count
from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.iostream import IOStream
from squall.tcpserver import TCPServer
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application, RequestHandler
from squall.websocket import WebSocketHandler, websocket_connect


class _Index:
    """An integer of another library's (a NumPy int has ``__index__``)."""

    def __index__(self) -> int:
        return 4096


@pytest.mark.parametrize(
    ("value", "count"),
    [
        (None, None),
        (0, 0),
        (65536, 65536),
        (True, 1),
        (1e7, 10_000_000),
        (10.9, 10),
        (float("inf"), sys.maxsize),
        (Decimal("12.5"), 12),
        (fractions.Fraction(7, 2), 3),
        (_Index(), 4096),
    ],
)
def test_a_number_of_bytes_is_taken_whole(value: object, count: int) -> None:
    assert byte_count("max_body_size", value) == count


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        ("100", TypeError, "max_body_size is a number of bytes, not str '100'"),
        ([1], TypeError, "not list [1]"),
        (3 + 0j, TypeError, "not complex"),
        (float("nan"), ValueError, "not NaN"),
        (Decimal("NaN"), ValueError, "not NaN"),
        (-1, ValueError, "0 or more, not -1"),
        (-0.5, ValueError, "0 or more, not -0.5"),
        (float("-inf"), ValueError, "0 or more, not -inf"),
    ],
)
def test_what_is_no_size_is_refused_naming_the_setting(
    value: object, error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as raised:
        byte_count("max_body_size", value)
    assert says in str(raised.value)
    assert "max_body_size" in str(raised.value)


@pytest.mark.parametrize(
    "options",
    [
        {"max_body_size": "10MB"},
        {"max_body_size": -1},
        {"max_header_size": "64k"},
        {"chunk_size": float("nan")},
        {"max_buffer_size": "1e8"},
    ],
)
def test_the_server_refuses_a_bad_limit_when_it_is_made(options: dict[str, Any]) -> None:
    # Not on each connection, where asyncio drops one whose protocol fails
    # to build without a word (the process would serve nothing, unlogged).
    (name,) = options
    with pytest.raises((TypeError, ValueError), match=name):
        HTTPServer(Application(), **options)


def test_streams_and_tcp_servers_take_sizes_as_numbers() -> None:
    server = TCPServer(max_buffer_size=1e8, read_chunk_size=4096.0)
    sizes = (server.max_buffer_size, server.read_chunk_size)
    assert sizes == (100_000_000, 4096)
    assert all(type(size) is int for size in sizes)
    with pytest.raises(TypeError, match="read_chunk_size"):
        TCPServer(read_chunk_size="4k")


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")

    def post(self) -> None:
        self.write(str(len(self.request.body)))


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


class LimitsAsTornadoTakesThem(AsyncHTTPTestCase):
    """A server, its WebSockets and a client, each limit a float, each flag an int."""

    def get_app(self) -> Application:
        return Application(
            [("/", Hello), ("/ws", Echo)], websocket_max_message_size=1e4, compress_response=1
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {
            "no_keep_alive": 0,
            "decompress_request": 1,
            "xheaders": 1,
            "max_buffer_size": 1e8,
            "max_body_size": 1e6,
            "max_header_size": 65536.0,
            "chunk_size": 65536.0,
        }

    @gen_test
    async def test_requests_and_websockets_are_served(self) -> None:
        client = AsyncHTTPClient(force_instance=True, max_buffer_size=1e8, max_body_size=1e6)
        try:
            response = await client.fetch(self.get_url("/"))
            assert response.body == b"hello"
            response = await client.fetch(self.get_url("/"), method="POST", body="x" * 70_000)
            assert response.body == b"70000"
            # Over the float limit: refused as over an int one (400, as
            # Tornado answers a Content-Length over max_body_size).
            response = await client.fetch(
                self.get_url("/"), method="POST", body="x" * 1_000_001, raise_error=False
            )
            assert response.code == 400
        finally:
            client.close()
        url = self.get_url("/ws").replace("http", "ws", 1)
        ws = await websocket_connect(url, max_message_size=1e4)
        await ws.write_message("hi")
        assert await ws.read_message() == "hi"
        await ws.write_message(b"\x00" * 10_000, binary=True)
        assert await ws.read_message() == b"\x00" * 10_000
        # One byte over the server's float limit closes with 1009.
        await ws.write_message("y" * 10_001)
        assert await ws.read_message() is None
        assert ws.close_code == 1009


def test_an_iostream_takes_sizes_as_numbers() -> None:
    import socket

    a, b = socket.socketpair()
    try:
        stream = IOStream(a, max_buffer_size=1e6, read_chunk_size=1024.0)
        sizes = (stream.max_buffer_size, stream.read_chunk_size)
        assert sizes == (1_000_000, 1024)
        assert all(type(size) is int for size in sizes)  # (1e6 == 1_000_000 too)
        with pytest.raises(TypeError, match="max_buffer_size"):
            IOStream(b, max_buffer_size="1MB")
        stream.close()
    finally:
        a.close()
        b.close()


def test_an_iostream_reads_chunks_of_at_most_half_its_buffer() -> None:
    # As Tornado's: a partial read_bytes returns what one chunk brought, so
    # a stream with a small buffer answers it with as many bytes on both.
    import socket

    pairs = [socket.socketpair() for _ in range(3)]
    try:
        streams = [
            IOStream(pairs[0][0], max_buffer_size=16),
            IOStream(pairs[1][0], max_buffer_size=16, read_chunk_size=4),
            IOStream(pairs[2][0], max_buffer_size=1),
        ]
        assert [stream.read_chunk_size for stream in streams] == [8, 4, 1]
        for stream in streams:
            stream.close()
    finally:
        for a, b in pairs:
            a.close()
            b.close()
