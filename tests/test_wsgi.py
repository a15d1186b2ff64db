"""WSGIContainer: the PEP 3333 environ, start_response, streaming, errors, executors."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from squall.escape import json_decode, json_encode
from squall.httpclient import HTTPClientError
from squall.iostream import IOStream
from squall.log import access_log, app_log
from squall.simple_httpclient import HTTPStreamClosedError
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.web import Application, FallbackHandler, RequestHandler
from squall.wsgi import WSGIContainer
from tests._wait import HANG_GUARD

Environ = dict[str, Any]
StartResponse = Callable[..., Callable[[bytes], None]]


def environ_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    shown = {k: v for k, v in environ.items() if isinstance(v, (str, bool, tuple))}
    shown["body"] = environ["wsgi.input"].read().decode("latin-1")
    shown["errors_is_writable"] = hasattr(environ["wsgi.errors"], "write")
    shown["thread"] = threading.get_ident()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json_encode(shown).encode()]


def write_then_iterable(environ: Environ, start_response: StartResponse) -> list[bytes]:
    write = start_response(
        "201 Created", [("X-A", "1"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    )
    write(b"written-")
    return [b"iter", b"", b"able"]


def generator_app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one "
    yield b""
    yield b"two"


class ClosingBody:
    """A response iterable that records close() and can fail midway."""

    def __init__(self, chunks: list[bytes], fail_at: int = -1) -> None:
        self.chunks = chunks
        self.fail_at = fail_at
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("body failed")
            yield chunk

    def close(self) -> None:
        self.closed.set()


class WSGITest(AsyncHTTPTestCase):
    executor: Any = None

    def get_app(self) -> Any:
        self.bodies: dict[str, ClosingBody] = {}
        self.stream_gate = threading.Event()
        self.block_gate = threading.Event()
        c = self.container
        return Application(
            [
                ("/env/.*", FallbackHandler, dict(fallback=c(environ_app))),
                ("/validated", FallbackHandler, dict(fallback=c(validator(generator_app)))),
                ("/write", FallbackHandler, dict(fallback=c(write_then_iterable))),
                ("/gen", FallbackHandler, dict(fallback=c(generator_app))),
                ("/closing", FallbackHandler, dict(fallback=c(self.closing_app))),
                ("/failing", FallbackHandler, dict(fallback=c(self.failing_app))),
                ("/late_fail", FallbackHandler, dict(fallback=c(self.late_fail_app))),
                ("/exc_info", FallbackHandler, dict(fallback=c(self.exc_info_app))),
                ("/bad/(.*)", FallbackHandler, dict(fallback=c(self.bad_app))),
                ("/status/(.*)", FallbackHandler, dict(fallback=c(self.status_app))),
                ("/stream", FallbackHandler, dict(fallback=c(self.streaming_app))),
                ("/block", FallbackHandler, dict(fallback=c(self.blocking_app))),
                ("/endless", FallbackHandler, dict(fallback=c(self.endless_app))),
                ("/late_exc_info", FallbackHandler, dict(fallback=c(self.late_exc_info_app))),
                ("/lazy", FallbackHandler, dict(fallback=c(self.lazy_app))),
                ("/bad_close", FallbackHandler, dict(fallback=c(self.bad_close_app))),
                ("/hop/(.*)", FallbackHandler, dict(fallback=c(self.hop_app))),
            ]
        )

    def container(self, app: Any) -> WSGIContainer:
        return WSGIContainer(app, executor=self.executor)

    def closing_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        body = self.bodies["closing"] = ClosingBody([b"a", b"b"])
        return body

    def failing_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        raise ValueError("app failed")

    def late_fail_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])
        body = self.bodies["late"] = ClosingBody([b"a", b"b", b"c"], fail_at=1)
        return body

    def exc_info_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("X-First", "1")])
        try:
            raise KeyError("oops")
        except KeyError:
            import sys

            exc_info = sys.exc_info()
            start_response("503 Service Unavailable", [("X-Second", "1")], exc_info)
        return [b"sorry"]

    def bad_app(self, environ: Environ, start_response: StartResponse) -> Any:
        kind = environ["PATH_INFO"].rsplit("/", 1)[1]
        if kind == "no_start":
            return [b"x"]
        if kind == "str_chunk":
            start_response("200 OK", [])
            return ["text"]
        if kind == "str_body":
            start_response("200 OK", [])
            return b"bytes not in a list"
        if kind == "twice":
            start_response("200 OK", [])
            start_response("200 OK", [])
        if kind == "status":
            start_response("OK", [])
        if kind == "header":
            start_response("200 OK", [("X", 1)])
        if kind == "write_str":
            start_response("200 OK", [])("text")
        if kind == "bytes_status":
            start_response(b"200 OK", [])
        if kind == "write_early":
            self.early_write(b"x")
        return [b"unreachable"]

    def early_write(self, data: bytes) -> None:
        # write() of an exchange whose start_response was never called.
        from squall.wsgi import _WSGICall

        exchange = _WSGICall(WSGIContainer(environ_app), None)  # type: ignore[arg-type]
        exchange.write(data)

    def late_exc_info_app(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"partial"
        try:
            raise KeyError("too late")
        except KeyError:
            import sys

            start_response("500 Oops", [], sys.exc_info())
        yield b"unreachable"

    def lazy_app(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        yield b""
        start_response(
            "200 OK", [("Server", "Mine/1"), ("X-Multi-Echo", environ.get("HTTP_X_MULTI", ""))]
        )
        yield b""
        yield b"lazy"
        yield environ.get("HTTP_COOKIE", "").encode()

    def bad_close_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])

        class BadClose(ClosingBody):
            def close(self) -> None:
                raise OSError("close failed")

        return BadClose([b"ok"])

    def hop_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        kind = environ["PATH_INFO"].rsplit("/", 1)[1]
        headers = {
            # A framing of the application's own that contradicts the body.
            "framing": [("Transfer-Encoding", "chunked"), ("Content-Length", "3")],
            "keep_alive": [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5")],
            "close": [("Connection", "Keep-Alive, Close")],
            "proxy": [("Proxy-Authenticate", 'Basic realm="p"'), ("Upgrade", "h2c")],
        }[kind]
        start_response("200 OK", headers)
        return [b"abc"]

    def status_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response(environ["PATH_INFO"].rsplit("/", 1)[1].replace("_", " "), [])
        return [b""]

    def streaming_app(self, environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first;"
        # Only continues once the client has seen the first chunk.
        yield b"second" if self.stream_gate.wait(2) else b"never-streamed"

    def blocking_app(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [])
        return [b"unblocked" if self.block_gate.wait(2) else b"timed out"]

    def endless_app(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [])

        class Endless(ClosingBody):
            def __iter__(self) -> Iterator[bytes]:
                while True:
                    yield b"x" * 65536

        body = self.bodies["endless"] = Endless([])
        return body

    # -- environ --

    def test_environ(self) -> None:
        response = self.fetch(
            "/env/caf%C3%A9%20x?a=1&b=%20",
            method="POST",
            body=b"payload",
            headers={
                "Content-Type": "text/plain",
                "X-Custom-Thing": "v",
                "Cookie": "c=1",
            },
        )
        env = json_decode(response.body)
        assert env["REQUEST_METHOD"] == "POST"
        assert env["SCRIPT_NAME"] == ""
        assert env["PATH_INFO"] == "/env/caf\u00c3\u00a9 x"  # the UTF-8 bytes as latin-1
        assert env["QUERY_STRING"] == "a=1&b=%20"
        assert env["CONTENT_TYPE"] == "text/plain"
        assert env["CONTENT_LENGTH"] == "7"
        assert env["body"] == "payload"
        assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
        assert env["HTTP_X_CUSTOM_THING"] == "v"
        assert env["HTTP_COOKIE"] == "c=1"
        assert env["HTTP_HOST"] == f"127.0.0.1:{self.get_http_port()}"
        assert env["SERVER_NAME"] == "127.0.0.1"
        assert env["SERVER_PORT"] == str(self.get_http_port())
        assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
        assert env["REMOTE_ADDR"] == "127.0.0.1"
        assert env["wsgi.version"] == [1, 0]
        assert env["wsgi.url_scheme"] == "http"
        assert env["wsgi.multithread"] is (self.executor is not None)
        assert env["wsgi.multiprocess"] is True
        assert env["wsgi.run_once"] is False
        assert env["wsgi.input_terminated"] is True
        assert env["errors_is_writable"] is True
        on_loop = env["thread"] == threading.get_ident()
        assert on_loop is (self.executor is None)

    def test_a_repeated_content_type_is_joined(self) -> None:
        from squall.httputil import HTTPHeaders

        headers = HTTPHeaders()
        headers.add("Content-Type", "text/plain")
        headers.add("Content-Type", "application/json")
        response = self.fetch("/env/x", method="POST", body=b"{}", headers=headers)
        # Both, as Tornado's container gives them (not the last alone).
        assert json_decode(response.body)["CONTENT_TYPE"] == "text/plain,application/json"

    def test_environ_without_body_and_default_port(self) -> None:
        response = self.fetch("/env/x", headers={"Host": "example.com"})
        env = json_decode(response.body)
        assert "CONTENT_LENGTH" not in env and "CONTENT_TYPE" not in env
        assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("example.com", "80")
        assert env["QUERY_STRING"] == ""

    def test_validator_is_satisfied(self) -> None:
        response = self.fetch("/validated")
        assert response.body == b"one two"

    # -- responses --

    def test_write_callable_and_list_body(self) -> None:
        response = self.fetch("/write")
        assert response.code == 201
        assert response.body == b"written-iterable"
        assert response.headers["Content-Length"] == str(len(b"written-iterable"))
        assert response.headers["Content-Type"] == "text/html; charset=UTF-8"
        assert response.headers["Server"].startswith("SquallServer/")
        assert response.headers.get_list("Set-Cookie") == ["a=1", "b=2"]

    def test_generator_is_streamed_without_length(self) -> None:
        response = self.fetch("/gen")
        assert response.body == b"one two"
        assert "Content-Length" not in response.headers

    def test_head_has_no_body(self) -> None:
        response = self.fetch("/write", method="HEAD")
        assert response.code == 201
        assert response.body == b""
        assert response.headers["Content-Length"] == "16"

    def test_no_body_statuses_get_no_length_or_type(self) -> None:
        for status, code in (("204_No_Content", 204), ("304_Not_Modified", 304)):
            response = self.fetch(f"/status/{status}", raise_error=False)
            assert response.code == code
            assert "Content-Length" not in response.headers
            assert "Content-Type" not in response.headers

    def test_custom_reason(self) -> None:
        response = self.fetch("/status/299_Fine_Thanks")
        assert (response.code, response.reason) == (299, "Fine Thanks")

    def test_close_is_called(self) -> None:
        response = self.fetch("/closing")
        assert response.body == b"ab"
        assert self.bodies["closing"].closed.wait(1)

    def test_exc_info_replaces_the_response_before_the_body(self) -> None:
        response = self.fetch("/exc_info", raise_error=False)
        assert response.code == 503
        assert response.body == b"sorry"
        assert "X-Second" in response.headers and "X-First" not in response.headers

    def test_access_log(self) -> None:
        with ExpectLog(
            access_log, r"201 GET /write \(127\.0\.0\.1\) [0-9.]+ms", level=logging.INFO
        ):
            self.fetch("/write")
        with ExpectLog(access_log, r"304 GET /status/304_Not_Modified", level=logging.INFO):
            self.fetch("/status/304_Not_Modified", raise_error=False)

    def test_lazy_start_response_and_repeated_headers(self) -> None:
        from squall.httputil import HTTPHeaders

        headers = HTTPHeaders()
        headers.add("X-Multi", "a")
        headers.add("X-Multi", "b")
        headers.add("Cookie", "c=1")
        headers.add("Cookie", "d=2")
        response = self.fetch("/lazy", headers=headers)
        assert response.body == b"lazyc=1; d=2"
        assert response.headers["Server"] == "Mine/1"
        # Repeated fields join with a bare comma, cookies with "; ".
        assert response.headers["X-Multi-Echo"] == "a,b"
        head = self.fetch("/lazy", method="HEAD")
        assert (head.code, head.body) == (200, b"")

    def test_hop_by_hop_headers_are_left_to_the_server(self) -> None:
        framed = self.fetch("/hop/framing")
        assert framed.body == b"abc"
        assert "Transfer-Encoding" not in framed.headers
        assert framed.headers["Content-Length"] == "3"
        kept_alive = self.fetch("/hop/keep_alive")
        assert kept_alive.body == b"abc"
        assert "Connection" not in kept_alive.headers
        assert "Keep-Alive" not in kept_alive.headers
        proxy = self.fetch("/hop/proxy")
        assert proxy.headers["Proxy-Authenticate"] == 'Basic realm="p"'
        assert "Upgrade" not in proxy.headers

    @gen_test
    async def test_connection_close_from_the_application_is_honoured(self) -> None:
        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", self.get_http_port()))
        # Two requests at once: the first answer closes the connection, so
        # the second is never answered.
        await stream.write(b"GET /hop/close HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
        data = await stream.read_until_close()
        assert data.count(b"HTTP/1.1 200 OK") == 1
        assert b"\r\nConnection: close\r\n" in data
        assert data.endswith(b"\r\n\r\nabc")

    def test_client_errors_log_a_warning(self) -> None:
        with ExpectLog(access_log, "404 GET /status/404_Gone", level=logging.WARNING):
            response = self.fetch("/status/404_Gone", raise_error=False)
        assert response.code == 404

    # -- errors --

    def test_exc_info_after_the_head_closes_the_connection(self) -> None:
        with ExpectLog(app_log, "Uncaught exception in WSGI application: GET /late_exc_info"):
            with pytest.raises(HTTPStreamClosedError):
                self.fetch("/late_exc_info")

    def test_close_failure_is_logged(self) -> None:
        with ExpectLog(app_log, "Exception closing a WSGI response"):
            response = self.fetch("/bad_close")
        assert response.body == b"ok"

    def test_application_error_is_500(self) -> None:
        with ExpectLog(app_log, "Uncaught exception in WSGI application: GET /failing"):
            with ExpectLog(access_log, "500 GET /failing", level=logging.ERROR):
                response = self.fetch("/failing", raise_error=False)
        assert response.code == 500
        assert b"500: Internal Server Error" in response.body

    def test_bad_applications_are_500(self) -> None:
        for kind in (
            "no_start",
            "str_chunk",
            "str_body",
            "twice",
            "status",
            "header",
            "write_str",
        ):
            with ExpectLog(app_log, "Uncaught exception in WSGI application"):
                response = self.fetch(f"/bad/{kind}", raise_error=False)
            assert response.code == 500, kind

    def test_error_after_headers_closes_the_connection(self) -> None:
        with ExpectLog(app_log, "Uncaught exception in WSGI application"):
            # The status line went out; the chunked body never ends.
            with pytest.raises(HTTPStreamClosedError):
                self.fetch("/late_fail", raise_error=False)
        assert self.bodies["late"].closed.wait(1)

    @gen_test
    async def test_client_disconnect_stops_the_iterable(self) -> None:
        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await stream.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"chunked" in head.lower()
        await stream.read_bytes(1000)
        stream.close()
        loop = asyncio.get_running_loop()
        closed = await loop.run_in_executor(None, self._wait_endless_closed)
        assert closed

    def _wait_endless_closed(self) -> bool:
        return self.bodies["endless"].closed.wait(2)

    @gen_test
    async def test_chunks_are_written_as_they_come(self) -> None:
        seen: list[bytes] = []

        def on_chunk(chunk: bytes) -> None:
            seen.append(chunk)
            self.stream_gate.set()

        if self.executor is None:
            # On the loop, the gate would block the loop itself.
            self.stream_gate.set()
        await self.http_client.fetch(self.get_url("/stream"), streaming_callback=on_chunk)
        assert b"".join(seen) == b"first;second"
        if self.executor is not None:
            assert seen[0] == b"first;"


class WSGIExecutorTest(WSGITest):
    def setUp(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(4)
        super().setUp()

    def tearDown(self) -> None:
        self.block_gate.set()
        self.stream_gate.set()
        super().tearDown()
        self.executor.shutdown(wait=True)

    @gen_test
    async def test_blocking_app_does_not_block_the_loop(self) -> None:
        blocked = asyncio.ensure_future(self.http_client.fetch(self.get_url("/block")))
        other = await self.http_client.fetch(self.get_url("/gen"))
        assert other.body == b"one two"
        assert not blocked.done()
        self.block_gate.set()
        assert (await blocked).body == b"unblocked"


class PlainServerTest(AsyncHTTPTestCase):
    """The container as the HTTPServer's request callback, no Application."""

    def get_app(self) -> Any:
        return WSGIContainer(write_then_iterable)

    def test_served_directly(self) -> None:
        response = self.fetch("/anything")
        assert (response.code, response.body) == (201, b"written-iterable")

    def test_http10_stream_ends_with_close(self) -> None:
        async def raw() -> bytes:
            stream = IOStream(socket.socket())
            await stream.connect(("127.0.0.1", self.get_http_port()))
            await stream.write(b"GET / HTTP/1.0\r\n\r\n")
            return await stream.read_until_close()

        data = self.io_loop.run_sync(raw, timeout=HANG_GUARD)
        assert data.startswith(b"HTTP/1.1 201 Created\r\n")
        assert data.endswith(b"\r\n\r\nwritten-iterable")


class RoutedTest(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        return Application(
            [
                ("/native", _Native),
                ("/wsgi.*", FallbackHandler, dict(fallback=WSGIContainer(generator_app))),
            ]
        )

    def test_native_and_wsgi_side_by_side(self) -> None:
        assert self.fetch("/native").body == b"native"
        assert self.fetch("/wsgi/x").body == b"one two"
        try:
            self.fetch("/other", raise_error=True)
        except HTTPClientError as exc:
            assert exc.code == 404
        else:
            raise AssertionError("expected a 404")


class _Native(RequestHandler):
    def get(self) -> None:
        self.write("native")
