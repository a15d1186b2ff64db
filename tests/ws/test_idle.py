"""What an open, idle WebSocket keeps: the request packed, no buffers, the broadcast sink."""

from __future__ import annotations

import socket
from typing import Any

from squall._ws import Message, WSConnection, build_frame
from squall.httputil import HTTPHeaders
from squall.iostream import IOStream
from squall.locks import Condition
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import WebSocketHandler, broadcast, websocket_connect
from squall.websocket._idle import _PackedHeaders, release_request

KEY = b"\x01\x02\x03\x04"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
    b"Cookie: a=1\r\nX-Many: one\r\nX-Many: two\r\n\r\n"
)


class Seen:
    def __init__(self) -> None:
        self.handlers: list[Any] = []
        self.log: list[Any] = []
        self.changed = Condition()

    async def wait_for(self, count: int) -> None:
        while len(self.log) < count:
            await self.changed.wait()


class Reader(WebSocketHandler):
    def initialize(self, seen: Seen) -> None:
        self.seen = seen

    def open(self, *args: Any) -> None:
        self.seen.handlers.append(self)
        self.seen.log.append(("open", self.get_cookie("a")))
        self.seen.changed.notify_all()

    def on_message(self, message: Any) -> None:
        headers = self.request.headers
        many = headers.get_list("X-Many")
        key = headers["Sec-WebSocket-Key"]
        self.seen.log.append((message, type(headers).__name__, many, key, self.get_cookie("a")))
        self.seen.changed.notify_all()


class IdleTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.seen = Seen()
        return Application([("/ws", Reader, {"seen": self.seen})])

    async def raw_client(self) -> IOStream:
        sock = socket.socket()
        sock.connect(("127.0.0.1", self.get_http_port()))
        stream = IOStream(sock)
        await stream.write(UPGRADE)
        head = await stream.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        return stream

    @gen_test
    async def test_the_request_headers_are_packed_once_open_and_read_back_whole(self) -> None:
        stream = await self.raw_client()
        await self.seen.wait_for(1)
        handler = self.seen.handlers[0]
        headers = handler.request.headers
        # open() read the cookie before the headers were packed; its parse
        # is dropped with them.
        assert self.seen.log[0] == ("open", "1")
        assert type(headers) is _PackedHeaders
        assert handler.request._cookies is None
        await stream.write(build_frame(1, b"hi", True, False, KEY))
        await self.seen.wait_for(2)
        # The first read unpacks them, and they are plain headers again.
        assert self.seen.log[1] == (
            "hi",
            "HTTPHeaders",
            ["one", "two"],
            "MDEyMzQ1Njc4OWFiY2RlZg==",
            "1",
        )
        assert handler.request.headers is headers and type(headers) is HTTPHeaders
        stream.close()

    @gen_test
    async def test_the_broadcast_sink_follows_the_transport_and_the_callbacks(self) -> None:
        client = await websocket_connect(self.get_url("/ws").replace("http", "ws"))
        await self.seen.wait_for(1)
        protocol = self.seen.handlers[0].ws_connection
        transport = protocol.stream.transport
        assert protocol._sink is transport
        # As the transport calls them past its high- and low-water marks.
        server_protocol = protocol.stream._proto
        server_protocol.pause_writing()
        assert protocol._sink is None
        assert broadcast(self.seen.handlers, "x").skipped == 1
        server_protocol.resume_writing()
        assert protocol._sink is transport
        assert broadcast(self.seen.handlers, "y").sent == 1
        assert await client.read_message() == "y"
        protocol.close()
        assert protocol._sink is None
        assert await client.read_message() is None

    @gen_test
    async def test_a_connection_paused_while_in_its_callbacks_stays_without_sink(self) -> None:
        client = await websocket_connect(self.get_url("/ws").replace("http", "ws"))
        await self.seen.wait_for(1)
        protocol = self.seen.handlers[0].ws_connection
        protocol._cork = []
        protocol._sink = None
        server_protocol = protocol.stream._proto
        server_protocol.pause_writing()
        protocol._uncork()
        assert protocol._sink is None
        server_protocol.resume_writing()
        assert protocol._sink is protocol.stream.transport
        client.close()


def test_release_request_leaves_other_headers_alone() -> None:
    class Mine(HTTPHeaders):
        __slots__ = ()

    class Request:
        def __init__(self, headers: HTTPHeaders) -> None:
            self.headers = headers
            self._cookies: Any = object()

    odd = HTTPHeaders()
    odd._as_list["X-Odd"] = ["a\nb"]  # cannot be packed with its separator
    for headers in (Mine(A="1"), odd):
        request = Request(headers)
        release_request(request)
        assert type(request.headers) is type(headers)
        assert request._cookies is None
    empty = Request(HTTPHeaders())
    release_request(empty)
    assert type(empty.headers) is _PackedHeaders
    assert dict(empty.headers) == {} and type(empty.headers) is HTTPHeaders


def test_packed_headers_can_be_replaced_before_being_read() -> None:
    headers = HTTPHeaders({"A": "1"})
    release_request(type("Request", (), {"headers": headers})())
    headers._as_list = {"B": ["2"]}
    assert type(headers) is HTTPHeaders and headers["B"] == "2" and "A" not in headers


def test_an_idle_connection_keeps_no_buffer_of_its_last_read() -> None:
    conn = WSConnection(client=False)
    fragments = build_frame(1, b"he", False, False, KEY) + build_frame(0, b"llo", True, False, KEY)
    assert conn.receive_data(fragments[:-1]) == []
    assert conn._fragments is not None
    assert conn.receive_data(fragments[-1:]) == [Message("hello")]
    assert conn._fragments is None
    assert conn._parser.buffered == 0 and len(conn._parser._buf) == 0
