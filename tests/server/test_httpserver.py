"""HTTPServer on loopback: listen/stop, TLS, detach, idle timeout, the TCPServer path."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import tempfile
from typing import Any
from unittest import mock

import pytest

from squall import gen
from squall.http1connection import HTTP1Connection
from squall.httpserver import HTTPServer
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
    ResponseStartLine,
)
from squall.iostream import IOStream, SSLIOStream, StreamClosedError
from squall.locks import Event
from squall.netutil import bind_unix_socket
from squall.testing import AsyncTestCase, ExpectLog, bind_unused_port, gen_test
from tests._paths import CERTS

from ._fakes import respond

SSL_OPTIONS = {"certfile": str(CERTS / "test.crt"), "keyfile": str(CERTS / "test.key")}


class ServerTestCase(AsyncTestCase):
    options: dict[str, Any] = {}

    def handle(self, request: HTTPServerRequest) -> None:
        respond(request)

    def setUp(self) -> None:
        super().setUp()
        sock, self.port = bind_unused_port()
        self.server = HTTPServer(self.handle, **self.options)
        self.server.add_sockets([sock])
        self.streams: list[IOStream] = []

    def tearDown(self) -> None:
        for stream in self.streams:
            stream.close()
        self.server.stop()
        self.io_loop.run_sync(self.server.close_all_connections)
        super().tearDown()

    async def connect(self) -> IOStream:
        stream = IOStream(socket.socket())
        self.streams.append(stream)
        await stream.connect(("127.0.0.1", self.port))
        return stream

    async def read_response(self, stream: IOStream) -> tuple[bytes, bytes]:
        head = await stream.read_until(b"\r\n\r\n")
        headers = HTTPHeaders.parse(head.split(b"\r\n", 1)[1].decode("latin-1"))
        body = await stream.read_bytes(int(headers.get("Content-Length", "0")))
        return head, body


class HTTPServerTest(ServerTestCase):
    @gen_test
    async def test_keep_alive_and_pipelining(self) -> None:
        stream = await self.connect()
        await stream.write(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await self.read_response(stream))[1] == b"GET /1 "
        assert (await self.read_response(stream))[1] == b"GET /2 "
        await stream.write(b"POST /3 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
        assert (await self.read_response(stream))[1] == b"POST /3 hi"

    @gen_test
    async def test_malformed_request(self) -> None:
        stream = await self.connect()
        with ExpectLog(
            "squall.general", "Malformed HTTP message from 127.0.0.1", level=logging.INFO
        ):
            await stream.write(b"garbage\r\n\r\n")
            data = await stream.read_until_close()
        assert data == b"HTTP/1.1 400 Bad Request\r\n\r\n"

    @gen_test
    async def test_stop_and_close_all_connections(self) -> None:
        stream = await self.connect()
        await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await self.read_response(stream)
        self.server.stop()
        self.server.stop()  # twice is fine
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        await self.server.close_all_connections()
        assert await stream.read_until_close() == b""


class DetachTest(ServerTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.echo_closed = Event()

    def handle(self, request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        if request.uri == "/raw":
            # Raw writes through the attached stream, then close.
            raw = conn.stream  # type: ignore[attr-defined]
            raw.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA").add_done_callback(
                lambda f: raw.close()
            )
            return
        stream = conn.detach()  # type: ignore[attr-defined]
        gen.convert_yielded(self.echo(stream))

    async def echo(self, stream: Any) -> None:
        stream.write(b"detached\n")
        try:
            while True:
                line = await stream.read_until(b"\n")
                await stream.write(line.upper())
        except StreamClosedError:
            self.echo_closed.set()

    @gen_test
    async def test_detach_keeps_bytes_sent_after_the_request(self) -> None:
        stream = await self.connect()
        await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nhello\n")
        assert await stream.read_until(b"\n") == b"detached\n"
        assert await stream.read_until(b"\n") == b"HELLO\n"
        await stream.write(b"world\n")
        assert await stream.read_until(b"\n") == b"WORLD\n"
        assert not self.server._connections  # no longer the server's to close
        stream.close()
        await self.echo_closed.wait()

    @gen_test
    async def test_raw_stream_writes(self) -> None:
        stream = await self.connect()
        await stream.write(b"GET /raw HTTP/1.1\r\nHost: a\r\n\r\n")
        assert await stream.read_until_close() == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nA"


class IdleTimeoutTest(ServerTestCase):
    options = {"idle_connection_timeout": 0.1}

    @gen_test
    async def test_idle_connection_is_closed(self) -> None:
        stream = await self.connect()
        closed = Event()
        stream.set_close_callback(closed.set)
        await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        await self.read_response(stream)
        await closed.wait()


class BufferSizeBodyLimitTest(ServerTestCase):
    # HTTPServer(app, max_buffer_size=...) without max_body_size is how many
    # programs set their upload limit: the buffer size is the body limit.
    options = {"max_buffer_size": 100}

    @gen_test
    async def test_max_buffer_size_is_the_default_body_limit(self) -> None:
        stream = await self.connect()
        await stream.write(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n" + b"a" * 100
        )
        head, _ = await self.read_response(stream)
        assert head.startswith(b"HTTP/1.1 200 ")
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            await stream.write(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n")
            data = await stream.read_until_close()
        assert data.startswith(b"HTTP/1.1 400 ")

    def test_max_body_size_given_wins_over_the_buffer_size(self) -> None:
        server = HTTPServer(respond, max_buffer_size=100, max_body_size=1000)
        assert server.conn_params.max_body_size == 1000


class TLSTest(ServerTestCase):
    options = {"ssl_options": SSL_OPTIONS}

    def handle(self, request: HTTPServerRequest) -> None:
        respond(request, request.protocol.encode())

    @gen_test
    async def test_https(self) -> None:
        context = ssl.create_default_context(cafile=SSL_OPTIONS["certfile"])
        stream = SSLIOStream(socket.socket(), ssl_options=context)
        self.streams.append(stream)
        await stream.connect(("127.0.0.1", self.port), server_hostname="localhost")
        await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert (await self.read_response(stream))[1] == b"https"

    @gen_test
    async def test_plain_http_to_tls_server_is_logged_and_closed(self) -> None:
        stream = await self.connect()
        with ExpectLog("squall.general", "SSL Error") as expect:
            await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            await stream.read_until_close()
        assert not expect.logged_stack

    def test_bad_ssl_options(self) -> None:
        with pytest.raises(KeyError):
            HTTPServer(self.handle, ssl_options={"keyfile": "/missing.key"})
        with pytest.raises((ValueError, OSError)):
            HTTPServer(self.handle, ssl_options={"certfile": "/missing.crt"})


class TLSSocketOfTheStreamTest(ServerTestCase):
    # Handlers written for Tornado read the peer's certificate and the
    # cipher from ``request.connection.stream.socket`` (an ssl.SSLSocket
    # there), on requests and on WebSocket connections alike.
    options = {
        "ssl_options": dict(
            SSL_OPTIONS, ca_certs=SSL_OPTIONS["certfile"], cert_reqs=ssl.CERT_REQUIRED
        )
    }

    def handle(self, request: HTTPServerRequest) -> None:
        sock = request.connection.stream.socket  # type: ignore[union-attr]
        cert = sock.getpeercert()
        der = sock.getpeercert(binary_form=True)
        assert der == request.get_ssl_certificate(binary_form=True)
        parts = [
            dict(cert["subject"][0])["commonName"],
            str(isinstance(der, bytes) and len(der) > 0),
            str(type(sock.cipher()).__name__),
            str(sock.version() is not None),
            str(sock.family == socket.AF_INET),
        ]
        respond(request, " ".join(parts).encode())

    @gen_test
    async def test_stream_socket_answers_the_tls_methods(self) -> None:
        context = ssl.create_default_context(cafile=SSL_OPTIONS["certfile"])
        context.load_cert_chain(SSL_OPTIONS["certfile"], SSL_OPTIONS["keyfile"])
        stream = SSLIOStream(socket.socket(), ssl_options=context)
        self.streams.append(stream)
        await stream.connect(("127.0.0.1", self.port), server_hostname="localhost")
        await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        head, body = await self.read_response(stream)
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert body == b"localhost True tuple True True"


class UnixSocketTest(AsyncTestCase):
    @gen_test
    async def test_unix_socket(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "s.sock")
            server = HTTPServer(respond)
            server.add_socket(bind_unix_socket(path))
            try:
                stream = IOStream(socket.socket(socket.AF_UNIX))
                await stream.connect(path)
                await stream.write(b"GET / HTTP/1.0\r\n\r\n")
                data = await stream.read_until_close()
                assert data.endswith(b"\r\n\r\nGET / ")
                stream = IOStream(socket.socket(socket.AF_UNIX))
                await stream.connect(path)
                with ExpectLog(
                    "squall.general", "Malformed HTTP message from ", level=logging.INFO
                ):
                    await stream.write(b"bad\r\n\r\n")
                    assert await stream.read_until_close() == b"HTTP/1.1 400 Bad Request\r\n\r\n"
            finally:
                server.stop()
                await server.close_all_connections()


class TCPServerPathTest(AsyncTestCase):
    """`handle_stream` serves an IOStream through HTTP1ServerConnection."""

    @gen_test
    async def test_handle_stream(self) -> None:
        server = HTTPServer(respond, xheaders=True)
        a, b = socket.socketpair()
        server_stream = IOStream(a)
        client = IOStream(b)
        server.handle_stream(server_stream, ("1.2.3.4", 5))
        await client.write(b"GET /x HTTP/1.1\r\nHost: a\r\nX-Real-Ip: 4.4.4.4\r\n\r\n")
        head = await client.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert await client.read_bytes(7) == b"GET /x "
        assert len(server._connections) == 1
        await server.close_all_connections()
        assert not server._connections
        client.close()


class DelegateServerTest(AsyncTestCase):
    @gen_test
    async def test_http1connection_reads_a_server_response(self) -> None:
        # Our client driver against our server: one exchange, keep-alive.
        sock, port = bind_unused_port()
        server = HTTPServer(lambda r: respond(r, b"pong"))
        server.add_sockets([sock])
        try:
            stream = IOStream(socket.socket())
            await stream.connect(("127.0.0.1", port))
            conn = HTTP1Connection(stream, True)
            chunks: list[bytes] = []
            starts: list[Any] = []

            class Delegate(HTTPMessageDelegate):
                def headers_received(self, start_line: Any, headers: Any) -> None:
                    starts.append(start_line)

                def data_received(self, chunk: bytes) -> None:
                    chunks.append(chunk)

            from squall.httputil import RequestStartLine

            for _ in range(2):
                conn.write_headers(
                    RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders({"Host": "a"})
                )
                conn.finish()
                assert await conn.read_response(Delegate()) is True
                assert conn.keep_alive
            assert b"".join(chunks) == b"pongpong"
            assert starts[0] == ResponseStartLine("HTTP/1.1", 200, "OK")
            conn.close()
        finally:
            server.stop()
            await server.close_all_connections()


class ListenTest(AsyncTestCase):
    @gen_test
    async def test_listen_then_stop(self) -> None:
        server = HTTPServer(respond)
        server.listen(0, "127.0.0.1")
        (listener,) = server._servers
        port = listener.sockets[0].getsockname()[1]
        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", port))
        await stream.write(b"GET /l HTTP/1.0\r\n\r\n")
        assert (await stream.read_until_close()).endswith(b"GET /l ")
        server.stop()
        assert server._servers == []
        await server.close_all_connections()


def test_the_drivers_connections_declare_drain_and_hard_close() -> None:
    # HTTPServer tells its drivers' connections from handle_stream's by a
    # declared capability (not hasattr/getattr of private names).
    import importlib.util

    from squall.http1connection import HTTP1ServerConnection
    from squall.httpserver._h2protocol import _H2Protocol
    from squall.httpserver._protocol import _HTTPProtocol
    from squall.httpserver._server import _DriverConnection

    drivers: list[type] = [_HTTPProtocol, _H2Protocol]
    if importlib.util.find_spec("aioquic") is not None:
        from squall.httpserver._h3protocol import _H3Protocol

        drivers.append(_H3Protocol)
    for driver in drivers:
        assert issubclass(driver, _DriverConnection), driver.__name__
    assert not issubclass(HTTP1ServerConnection, _DriverConnection)


class _Star(HTTPServerConnectionDelegate, HTTPMessageDelegate):
    """An application that is its own request delegate (New Relic's test app)."""

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        self.conn = request_conn
        return self

    def finish(self) -> None:
        self.conn.write_headers(
            ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "1"})
        )
        self.conn.write(b"*")
        self.conn.finish()


class PatchedStartRequestTest(AsyncTestCase):
    @gen_test
    async def test_a_class_level_patch_of_start_request_is_called(self) -> None:
        # New Relic's agent wraps HTTPServer.start_request to wrap each
        # request's delegate; with a delegate application too.
        seen: list[str] = []
        original = HTTPServer.start_request

        def start_request(
            server: HTTPServer, server_conn: object, request_conn: HTTPConnection
        ) -> HTTPMessageDelegate:
            seen.append(type(request_conn).__name__)
            return original(server, server_conn, request_conn)

        sock, port = bind_unused_port()
        with mock.patch.object(HTTPServer, "start_request", start_request):
            server = HTTPServer(_Star())
            server.add_sockets([sock])
            try:
                stream = IOStream(socket.socket())
                await stream.connect(("127.0.0.1", port))
                await stream.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                head = await stream.read_until(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200") and await stream.read_bytes(1) == b"*"
                stream.close()
            finally:
                server.stop()
                await server.close_all_connections()
        assert len(seen) == 1
