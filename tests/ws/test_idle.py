"""What an open, idle WebSocket keeps: the request packed, no buffers, the broadcast sink."""

from __future__ import annotations

import contextvars
import socket
from typing import Any

import pytest

from squall._ws import Message, WSConnection, build_frame
from squall._ws._connection import _NO_PARSER
from squall.httputil import HTTPHeaders
from squall.iostream import IOStream
from squall.locks import Condition
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from squall.websocket import WebSocketHandler, broadcast, websocket_connect
from squall.websocket._idle import _PackedHeaders, release_request
from squall.websocket._protocol import _EMPTY_CONTEXT, WebSocketProtocol13

KEY = b"\x01\x02\x03\x04"
UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"
    b"Cookie: a=1\r\nX-Many: one\r\nX-Many: two\r\n\r\n"
)


COUNT: contextvars.ContextVar[int] = contextvars.ContextVar("count", default=0)


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
        if message == "count":
            # A var set by a callback is this connection's, as in a task.
            COUNT.set(COUNT.get() + 1)
            self.write_message(str(COUNT.get()))
            return
        headers = self.request.headers
        many = headers.get_list("X-Many")
        key = headers["Sec-WebSocket-Key"]
        self.seen.log.append((message, type(headers).__name__, many, key, self.get_cookie("a")))
        self.seen.changed.notify_all()


class IdleTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.seen = Seen()
        return Application(
            [("/ws", Reader, {"seen": self.seen}), ("/ws/(.*)", Reader, {"seen": self.seen})]
        )

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
    async def test_an_open_handler_keeps_no_response_of_its_own(self) -> None:
        url = self.get_url("/ws").replace("http", "ws")
        clients = [await websocket_connect(url), await websocket_connect(url)]
        await self.seen.wait_for(2)
        first, second = self.seen.handlers
        assert first._headers is second._headers and not first._headers._as_list
        assert not first._write_buffer and first._write_buffer is second._write_buffer
        first.clear_header("Server")
        with pytest.raises(RuntimeError):
            first.set_header("X-A", "1")
        with pytest.raises(RuntimeError):
            first.write("late")
        with pytest.raises(RuntimeError):
            first.set_cookie("late", "1", path="/ws")
        # add_header is not refused: the handler gets headers of its own.
        first.add_header("X-A", "1")
        assert first._headers.get_list("X-A") == ["1"]
        assert "X-A" not in second._headers and not second._headers._as_list
        # Nor read buffers of its own stream.
        stream = first.ws_connection.stream
        assert stream._rbuf is stream._inbox is second.ws_connection.stream._rbuf
        assert not stream._rbuf
        await clients[0].write_message("count")
        assert await clients[0].read_message() == "1"
        assert not stream._rbuf and stream._rbuf is second.ws_connection.stream._inbox
        for client in clients:
            client.close()

    @gen_test
    async def test_an_open_handler_reads_its_empty_path_arguments_back(self) -> None:
        url = self.get_url("/ws").replace("http", "ws")
        clients = [await websocket_connect(url), await websocket_connect(url + "/room")]
        await self.seen.wait_for(2)
        plain, routed = self.seen.handlers
        # The empty ones were dropped once open; a read makes them again,
        # each handler's own, and keeps what is put in them.
        assert "path_args" not in vars(plain) and "path_kwargs" not in vars(plain)
        assert plain.path_args == [] and plain.path_kwargs == {} and plain.open_kwargs == {}
        assert plain.path_kwargs is not plain.open_kwargs
        plain.path_args.append("a")
        plain.path_kwargs["k"] = "v"
        assert plain.path_args == ["a"] and plain.path_kwargs == {"k": "v"}
        assert routed.path_args == ["room"] and routed.open_args == ("room",)
        assert routed.path_kwargs == {} and routed.path_kwargs is not plain.path_kwargs
        for client in clients:
            client.close()

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

    @gen_test
    async def test_each_connection_runs_its_callbacks_in_a_context_of_its_own(self) -> None:
        # (Made when the first read needs it if the context was empty when
        # reading started, as in a server; a copy of it otherwise, as here.)
        url = self.get_url("/ws").replace("http", "ws")
        first = await websocket_connect(url)
        second = await websocket_connect(url)
        await self.seen.wait_for(2)
        answers = []
        for client in (first, second, first, first, second):
            await client.write_message("count")
            answers.append(await client.read_message())
        assert answers == ["1", "1", "2", "3", "2"]
        assert COUNT.get() == 0
        first.close()
        second.close()


def test_release_request_leaves_other_headers_alone() -> None:
    class Mine(HTTPHeaders):
        __slots__ = ()

    class Request:
        def __init__(self, headers: HTTPHeaders) -> None:
            self.headers = headers
            self._cookies: Any = object()

    odd = HTTPHeaders()
    odd._as_list["X-Odd"] = ["a\nb"]  # cannot be packed with its separator
    not_text = HTTPHeaders()
    not_text._as_list["X-Bytes"] = [b"1"]  # type: ignore[list-item]
    for headers in (Mine(A="1"), odd, not_text):
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
    # No parser until the first read.
    assert conn._parser is _NO_PARSER and conn.wire_bytes_in == 0
    fragments = build_frame(1, b"he", False, False, KEY) + build_frame(0, b"llo", True, False, KEY)
    assert conn.receive_data(fragments[:-1]) == []
    # The message being assembled is the first read's parser's, not the shared one's.
    assert conn._parser.fragments is not None and conn._parser.in_opcode == 1
    assert conn.receive_data(fragments[-1:]) == [Message("hello")]
    assert conn._parser.fragments is None
    assert conn._parser.buffered == 0 and len(conn._parser.buf) == 0
    assert conn._parser is not _NO_PARSER and conn.wire_bytes_in == len(fragments)
    assert conn.message_bytes_in == 5
    assert _NO_PARSER.wire_bytes == 0 and not _NO_PARSER.buf
    assert _NO_PARSER.message_bytes_in == 0 and _NO_PARSER.in_opcode == 0
    assert _NO_PARSER.fragments is None


def test_a_connection_started_in_an_empty_context_makes_its_own_at_the_first_read() -> None:
    class Peer:
        def __init__(self) -> None:
            self.seen: list[int] = []

        def on_message(self, message: Any) -> None:
            COUNT.set(COUNT.get() + 1)
            self.seen.append(COUNT.get())

    class Stream:
        def set_receiver(self, receiver: Any) -> bytes:
            return b""

    peer = Peer()
    protocol = WebSocketProtocol13(peer, client=False)  # type: ignore[arg-type]
    protocol.stream = Stream()  # type: ignore[assignment]
    protocol.conn = WSConnection(client=False)
    contextvars.Context().run(protocol.start_reading)
    assert protocol._context is _EMPTY_CONTEXT
    frame = build_frame(1, b"a", True, False, KEY)
    protocol.receive_bytes(frame)
    protocol.receive_bytes(frame)
    assert peer.seen == [1, 2] and COUNT.get() == 0
    assert protocol._context is not _EMPTY_CONTEXT and len(_EMPTY_CONTEXT) == 0


def test_packed_names_are_canonical_and_read_back_as_sent() -> None:
    from squall.httputil._headers import _canonical
    from squall.websocket._idle import _WORDS

    assert len(_WORDS) == 32 and _WORDS[10] == ""
    assert all(_canonical(name) == name for name in _WORDS if name)
    headers = HTTPHeaders()
    headers.add("Sec-WebSocket-Version", "13")
    headers.add("Upgrade", "websocket")
    headers.add("X-Other", "Upgrade")
    headers.add("X-Other", "13")
    headers["X-Control"] = "\x02"
    headers.add("Origin", "https://example.com")
    expected = list(headers.get_all())
    release_request(type("Request", (), {"headers": headers})())
    assert type(headers) is _PackedHeaders
    packed = HTTPHeaders.__dict__["_as_list"].__get__(headers, HTTPHeaders)
    # The names in the table take one character; the other names and the
    # values (one control character too) are whole.
    assert packed == (
        "\x04\n13\n\x02\nwebsocket\nX-Other\nUpgrade\nX-Other\n13\nX-Control\n\x02\n"
        "\x07\nhttps://example.com"
    )
    assert list(headers.get_all()) == expected and type(headers) is HTTPHeaders


def test_a_name_that_is_one_control_character_is_left_unpacked() -> None:
    headers = HTTPHeaders()
    headers._as_list["\x02"] = ["b"]
    release_request(type("Request", (), {"headers": headers})())
    assert type(headers) is HTTPHeaders and headers._as_list == {"\x02": ["b"]}


def test_a_handler_class_that_defines_a_path_argument_keeps_its_own() -> None:
    class Own(WebSocketHandler):
        @property
        def path_args(self) -> list[Any]:  # type: ignore[override]
            return ["fixed"]

    class Below(Own):
        pass

    assert Reader._lazy_arguments and WebSocketHandler._lazy_arguments
    assert not Own._lazy_arguments and not Below._lazy_arguments
