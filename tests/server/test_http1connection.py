"""HTTP1Connection over a socket pair: the client role, and the server role
through HTTP1ServerConnection."""

from __future__ import annotations

import gzip
import logging
import socket
from typing import Any, Optional

import pytest

from squall import gen
from squall.http1connection import (
    _MAX_1XX_RESPONSES,
    HTTP1Connection,
    HTTP1ConnectionParameters,
    HTTP1ServerConnection,
)
from squall.httputil import (
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    RequestStartLine,
    ResponseStartLine,
)
from squall.iostream import IOStream
from squall.locks import Event
from squall.testing import AsyncTestCase, ExpectLog, gen_test


class Collect(HTTPMessageDelegate):
    def __init__(self, on_head: Any = None) -> None:
        self.starts: list[Any] = []
        self.headers: list[HTTPHeaders] = []
        self.chunks: list[bytes] = []
        self.finished = 0
        self.closed = 0
        self.on_head = on_head

    def headers_received(self, start_line: Any, headers: HTTPHeaders) -> Any:
        self.starts.append(start_line)
        self.headers.append(headers)
        if self.on_head is not None:
            return self.on_head(start_line, headers)
        return None

    def data_received(self, chunk: bytes) -> None:
        self.chunks.append(chunk)

    def finish(self) -> None:
        self.finished += 1

    def on_connection_close(self) -> None:
        self.closed += 1

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class PairTestCase(AsyncTestCase):
    def setUp(self) -> None:
        super().setUp()
        a, b = socket.socketpair()
        self.ours = IOStream(a)
        self.peer = IOStream(b)

    def tearDown(self) -> None:
        self.ours.close()
        self.peer.close()
        super().tearDown()


class ClientTest(PairTestCase):
    def conn(self, **params: Any) -> HTTP1Connection:
        return HTTP1Connection(self.ours, True, HTTP1ConnectionParameters(**params))

    @gen_test
    async def test_get_and_keep_alive(self) -> None:
        conn = self.conn()
        conn.write_headers(RequestStartLine("GET", "/a", "HTTP/1.1"), HTTPHeaders({"Host": "h"}))
        conn.finish()
        assert await self.peer.read_until(b"\r\n\r\n") == b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
        await self.peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        d = Collect()
        assert await conn.read_response(d) is True
        assert d.starts == [ResponseStartLine("HTTP/1.1", 200, "OK")]
        assert d.body == b"hi" and d.finished == 1 and d.closed == 0
        assert conn.keep_alive and not self.ours.closed()

    @gen_test
    async def test_post_without_length_is_chunked(self) -> None:
        conn = self.conn()
        conn.write_headers(RequestStartLine("POST", "/", "HTTP/1.1"), HTTPHeaders(), b"ab")
        conn.write(b"cd")
        conn.finish()
        data = await self.peer.read_until(b"0\r\n\r\n")
        assert data == (
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
        )

    @gen_test
    async def test_connection_close_response_closes(self) -> None:
        conn = self.conn()
        conn.write_headers(RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders())
        conn.finish()
        await self.peer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        assert await conn.read_response(Collect()) is True
        assert not conn.keep_alive and self.ours.closed()

    @gen_test
    async def test_bodiless_responses(self) -> None:
        for method, status in (("HEAD", 200), ("GET", 204), ("GET", 304)):
            conn = self.conn()
            conn.write_headers(RequestStartLine(method, "/", "HTTP/1.1"), HTTPHeaders())
            conn.finish()
            await self.peer.write(
                b"HTTP/1.1 %d X\r\nContent-Length: %d\r\n\r\n" % (status, 0 if status == 204 else 5)
            )
            d = Collect()
            assert await conn.read_response(d) is True
            assert d.body == b"" and d.finished == 1
            await self.peer.read_until(b"\r\n\r\n")

    @gen_test
    async def test_interim_responses_then_final(self) -> None:
        conn = self.conn()
        await self.peer.write(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"
        )
        d = Collect()
        assert await conn.read_response(d) is True
        assert [s.code for s in d.starts] == [100, 103, 200]
        assert d.body == b"x" and d.finished == 1

    @gen_test
    async def test_tiny_chunks_are_joined_and_parsed_in_slices(self) -> None:
        conn = self.conn()
        ticks = 0
        done = False

        def tick() -> None:
            nonlocal ticks
            if not done:
                ticks += 1
                self.io_loop.add_callback(tick)

        await self.peer.write(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"1\r\nx\r\n" * 5000
            + b"0\r\n\r\n"
        )
        self.io_loop.add_callback(tick)
        d = Collect()
        assert await conn.read_response(d) is True
        done = True
        assert d.body == b"x" * 5000 and len(d.chunks) < 10
        assert ticks > 10

    @gen_test
    async def test_pipelined_responses_read_one_at_a_time(self) -> None:
        conn = self.conn()
        await self.peer.write(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb"
        )
        first, second = Collect(), Collect()
        assert await conn.read_response(first) is True
        conn.write_headers(RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders())
        conn.finish()
        assert await conn.read_response(second) is True
        assert (first.body, second.body) == (b"a", b"b")

    @gen_test
    async def test_too_many_interim_responses(self) -> None:
        conn = self.conn()
        await self.peer.write(b"HTTP/1.1 100 Continue\r\n\r\n" * (_MAX_1XX_RESPONSES + 1))
        with ExpectLog(
            "squall.general",
            "Malformed HTTP message from None: Too many 1xx responses",
            level=logging.INFO,
        ):
            assert await conn.read_response(Collect()) is False

    @gen_test
    async def test_expect_100_continue(self) -> None:
        conn = self.conn()

        def on_head(start_line: ResponseStartLine, headers: HTTPHeaders) -> None:
            if start_line.code == 100:
                conn.write(b"body")
                conn.finish()

        conn.write_headers(
            RequestStartLine("PUT", "/", "HTTP/1.1"),
            HTTPHeaders({"Content-Length": "4", "Expect": "100-continue"}),
        )
        head = await self.peer.read_until(b"\r\n\r\n")
        assert head.endswith(b"Expect: 100-continue\r\n\r\n")
        await self.peer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        d = Collect(on_head)
        reading = gen.convert_yielded(conn.read_response(d))
        assert await self.peer.read_bytes(4) == b"body"
        await self.peer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        assert await reading is True
        assert [s.code for s in d.starts] == [100, 201]

    @gen_test
    async def test_http10_body_until_close(self) -> None:
        conn = self.conn()
        await self.peer.write(b"HTTP/1.0 200 OK\r\n\r\nhello")
        self.peer.close()
        d = Collect()
        assert await conn.read_response(d) is True
        assert d.body == b"hello" and d.finished == 1 and d.closed == 0

    @gen_test
    async def test_body_until_close_too_long(self) -> None:
        conn = self.conn(max_body_size=4)
        await self.peer.write(b"HTTP/1.0 200 OK\r\n\r\nhello")
        with ExpectLog(
            "squall.general", "Malformed HTTP message from None: Body too long", level=logging.INFO
        ):
            assert await conn.read_response(Collect()) is False
        assert self.ours.closed()

    @gen_test
    async def test_content_length_too_long(self) -> None:
        conn = self.conn(max_body_size=4)
        await self.peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            assert await conn.read_response(Collect()) is False

    @gen_test
    async def test_the_streams_buffer_size_is_the_default_body_limit(self) -> None:
        # Without max_body_size, a body may be as large as the stream's read
        # buffer, whose size the caller chose (the head alone is refused).
        self.ours.max_buffer_size = 100
        conn = self.conn()
        await self.peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n")
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            assert await conn.read_response(Collect()) is False

    @gen_test
    async def test_truncated_body(self) -> None:
        conn = self.conn()
        await self.peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel")
        self.peer.close()
        d = Collect()
        assert await conn.read_response(d) is False
        assert d.closed == 1 and d.finished == 0

    @gen_test
    async def test_close_before_response(self) -> None:
        conn = self.conn()
        self.peer.close()
        d = Collect()
        assert await conn.read_response(d) is False
        assert d.starts == [] and d.closed == 0

    @gen_test
    async def test_gzip_response(self) -> None:
        conn = self.conn(decompress=True, chunk_size=4)
        body = gzip.compress(b"0123456789")
        await self.peer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
        )
        d = Collect()
        assert await conn.read_response(d) is True
        assert d.body == b"0123456789" and all(len(c) <= 4 for c in d.chunks)
        assert "Content-Encoding" not in d.headers[0]
        assert d.headers[0]["X-Consumed-Content-Encoding"] == "gzip"

    @gen_test
    async def test_invalid_gzip_response(self) -> None:
        conn = self.conn(decompress=True)
        await self.peer.write(
            b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"
        )
        with ExpectLog(
            "squall.general",
            "Malformed HTTP message from None: invalid gzip data",
            level=logging.INFO,
        ):
            assert await conn.read_response(Collect()) is False

    @gen_test
    async def test_delegate_error(self) -> None:
        conn = self.conn()
        await self.peer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")

        class Bad(Collect):
            def data_received(self, chunk: bytes) -> None:
                raise ValueError("bad")

        d = Bad()
        with ExpectLog("squall.application", "Uncaught exception"):
            assert await conn.read_response(d) is False
        assert d.closed == 1 and self.ours.closed()

    @gen_test
    async def test_detach_returns_read_ahead_bytes(self) -> None:
        conn = self.conn()
        await self.peer.write(b"HTTP/1.1 101 Switching\r\nUpgrade: x\r\n\r\nnew protocol")

        streams: list[IOStream] = []

        class Detaching(Collect):
            def finish(self) -> None:
                streams.append(conn.detach())

        conn.write_headers(RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders({"Upgrade": "x"}))
        conn.finish()
        assert await conn.read_response(Detaching()) is False
        (stream,) = streams
        assert await stream.read_bytes(12) == b"new protocol"
        with pytest.raises(RuntimeError):
            conn.detach()

    @gen_test
    async def test_invalid_request_headers(self) -> None:
        conn = self.conn()
        with pytest.raises(HTTPOutputError):
            conn.write_headers(
                RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders({"X": "a\x00"})
            )

    @gen_test
    async def test_write_to_closed_stream(self) -> None:
        conn = self.conn()
        conn.write_headers(RequestStartLine("POST", "/", "HTTP/1.1"), HTTPHeaders())
        self.ours.close()
        future = conn.write(b"x")
        assert future.exception() is not None


class App(HTTPServerConnectionDelegate):
    def __init__(self, respond: bool = True) -> None:
        self.delegates: list[Collect] = []
        self.closed = Event()
        self.respond = respond

    def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
        app = self

        class Handler(Collect):
            def finish(self) -> None:
                super().finish()
                if app.respond:
                    body = b"got " + self.body
                    request_conn.write_headers(
                        ResponseStartLine("HTTP/1.1", 200, "OK"),
                        HTTPHeaders({"Content-Length": str(len(body))}),
                        body,
                    )
                    request_conn.finish()

        self.delegates.append(Handler())
        self.delegates[-1].conn = request_conn  # type: ignore[attr-defined]
        return self.delegates[-1]

    def on_close(self, server_conn: object) -> None:
        self.closed.set()


class ServerTest(PairTestCase):
    def serve(self, app: Optional[App] = None, **params: Any) -> App:
        app = app or App()
        self.server = HTTP1ServerConnection(
            self.ours, HTTP1ConnectionParameters(**params), context="peer"
        )
        self.server.start_serving(app)
        return app

    async def response(self) -> bytes:
        head = await self.peer.read_until(b"\r\n\r\n")
        length = int(HTTPHeaders.parse(head.split(b"\r\n", 1)[1].decode())["Content-Length"])
        return head + await self.peer.read_bytes(length)

    @gen_test
    async def test_requests_and_keep_alive(self) -> None:
        app = self.serve()
        await self.peer.write(
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
        )
        assert (await self.response()).endswith(b"\r\n\r\ngot ")
        assert (await self.response()).endswith(b"\r\n\r\ngot ab")
        await self.peer.write(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        assert b"Connection: close" in await self.response()
        await app.closed.wait()
        assert self.ours.closed()

    @gen_test
    async def test_100_continue(self) -> None:
        self.serve()
        await self.peer.write(
            b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await self.peer.read_until(b"\r\n\r\n") == b"HTTP/1.1 100 (Continue)\r\n\r\n"
        await self.peer.write(b"ok")
        assert (await self.response()).endswith(b"got ok")

    @gen_test
    async def test_malformed_request(self) -> None:
        app = self.serve()
        with ExpectLog(
            "squall.general", "Malformed HTTP message from peer: .*Invalid Host", level=logging.INFO
        ):
            await self.peer.write(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n")
            assert await self.peer.read_until_close() == b"HTTP/1.1 400 Bad Request\r\n\r\n"
        await app.closed.wait()

    @gen_test
    async def test_no_keep_alive(self) -> None:
        self.serve(no_keep_alive=True)
        await self.peer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        data = await self.peer.read_until_close()
        assert b"\r\nConnection: close\r\n" in data and data.endswith(b"got ")

    @gen_test
    async def test_header_timeout(self) -> None:
        app = self.serve(header_timeout=0.05)
        await self.peer.write(b"GET / HT")
        assert await self.peer.read_until_close() == b""
        await app.closed.wait()

    @gen_test
    async def test_body_timeout(self) -> None:
        app = self.serve(body_timeout=0.05)
        with ExpectLog("squall.general", "Timeout reading body from peer", level=logging.INFO):
            await self.peer.write(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab")
            assert await self.peer.read_until_close() == b""
        assert app.delegates[0].closed == 1

    @gen_test
    async def test_body_limits_per_request(self) -> None:
        class Limited(App):
            def start_request(self, server_conn: object, request_conn: Any) -> Any:
                request_conn.set_max_body_size(3)
                request_conn.set_body_timeout(10.0)
                return super().start_request(server_conn, request_conn)

        self.serve(Limited())
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            await self.peer.write(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            assert await self.peer.read_until_close() == b"HTTP/1.1 400 Bad Request\r\n\r\n"

    @gen_test
    async def test_response_before_body_closes(self) -> None:
        class Early(App):
            def start_request(self, server_conn: object, request_conn: Any) -> Any:
                class Handler(Collect):
                    def headers_received(self, start_line: Any, headers: Any) -> None:
                        request_conn.write_headers(
                            ResponseStartLine("HTTP/1.1", 413, "Too Big"),
                            HTTPHeaders({"Content-Length": "0"}),
                        )
                        request_conn.finish()

                return Handler()

        self.serve(Early(respond=False))
        await self.peer.write(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n")
        data = await self.peer.read_until_close()
        assert data.startswith(b"HTTP/1.1 413 Too Big\r\n")

    @gen_test
    async def test_output_errors(self) -> None:
        errors: list[Exception] = []

        class Wrong(App):
            def start_request(self, server_conn: object, request_conn: Any) -> Any:
                class Handler(Collect):
                    def finish(self) -> None:
                        request_conn.write_headers(
                            ResponseStartLine("HTTP/1.1", 200, "OK"),
                            HTTPHeaders({"Content-Length": "1"}),
                        )
                        try:
                            request_conn.write(b"too much")
                        except HTTPOutputError as exc:
                            errors.append(exc)

                return Handler()

        app = self.serve(Wrong(respond=False))
        await self.peer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await app.closed.wait()
        assert len(errors) == 1

    @gen_test
    async def test_legacy_raw_response(self) -> None:
        class Raw(App):
            def start_request(self, server_conn: object, request_conn: Any) -> Any:
                class Handler(Collect):
                    def finish(self) -> None:
                        request_conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA")
                        request_conn.finish()

                return Handler()

        self.serve(Raw(respond=False))
        await self.peer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (
            await self.peer.read_until_close() == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"
        )

    @gen_test
    async def test_close(self) -> None:
        app = self.serve()
        await self.server.close()
        await app.closed.wait()
        assert self.ours.closed()
