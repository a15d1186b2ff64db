"""The server's protocol driven through a fake transport: bytes in, bytes out."""

from __future__ import annotations

import asyncio
import gc
import gzip
import http
import logging
import socket
import sys
import weakref
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from squall.httpserver._protocol import _PIPELINE_HIGH_WATER, _HTTPProtocol
from squall.httputil import (
    HTTPConnection,
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
    RequestStartLine,
    ResponseStartLine,
)
from squall.iostream import StreamClosedError
from squall.web import Application, RequestHandler

from .._wait import HANG_GUARD
from ._fakes import FakeTransport, make, respond, responses, run_soon, wait_closed


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


GET = b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n"


def test_get_keep_alive(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(GET)
    run_soon(loop)
    assert t.data == b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nGET /a "
    assert not t.closed
    proto.data_received(GET)
    run_soon(loop)
    assert len(responses(t.data)) == 2


def test_request_fields(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[HTTPServerRequest] = []

    def handle(request: HTTPServerRequest) -> None:
        seen.append(request)
        respond(request)

    make(loop, handle)[1].data_received(
        b"POST /p?x=1 HTTP/1.1\r\nHost: h:8\r\nContent-Type: application/x-www-form-urlencoded"
        b"\r\nContent-Length: 3\r\n\r\na=b"
    )
    (request,) = seen
    assert (request.method, request.uri, request.version) == ("POST", "/p?x=1", "HTTP/1.1")
    assert request.remote_ip == "10.0.0.1" and request.protocol == "http"
    assert request.host == "h:8" and request.body == b"a=b"
    assert request.body_arguments == {"a": [b"b"]}
    assert request.arguments == {"x": [b"1"], "a": [b"b"]}


def test_pipelined_requests_answered_in_order_in_one_write(
    loop: asyncio.AbstractEventLoop,
) -> None:
    _, proto, t = make(loop)
    proto.data_received(
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nxyGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    run_soon(loop)
    assert len(t.writes) == 1
    bodies = [r.split(b"\r\n\r\n")[1] for r in responses(t.data)]
    assert bodies == [b"GET /1 ", b"POST /2 xy", b"GET /3 "]


def test_pipelined_requests_wait_for_a_slow_response(loop: asyncio.AbstractEventLoop) -> None:
    pending: list[HTTPServerRequest] = []

    def handle(request: HTTPServerRequest) -> None:
        if request.uri == "/slow":
            pending.append(request)
        else:
            respond(request)

    _, proto, t = make(loop, handle)
    proto.data_received(
        b"GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert t.data == b"" and len(pending) == 1
    respond(pending[0])  # outside data_received: written with the round
    run_soon(loop)
    bodies = [r.split(b"\r\n\r\n")[1] for r in responses(t.data)]
    assert bodies == [b"GET /slow ", b"GET /fast "]


def test_pipelined_bytes_over_high_water_pause_reading(loop: asyncio.AbstractEventLoop) -> None:
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append)
    proto.data_received(
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" * 20000
    )
    assert len(pending) == 1 and not t.reading
    respond(pending[0])
    # The next request is taken on the loop's next turn (after the
    # response's finish() has returned), and reading stays paused.
    assert len(pending) == 1 and not t.reading
    run_soon(loop)
    assert len(pending) == 2 and not t.reading  # still far over the mark
    while not t.reading:
        respond(pending[-1])
        loop.run_until_complete(asyncio.sleep(0))
    assert proto.h1.buffered <= _PIPELINE_HIGH_WATER
    run_soon(loop)
    assert len(responses(t.data)) == len(pending) - 1


def test_pipelined_requests_wait_while_the_output_is_over_high_water(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # The fake transport's high-water mark is 64 KiB: two 40 KB responses
    # are over it, so the third request waits for the output to drain.
    seen: list[str] = []

    def big(request: HTTPServerRequest) -> None:
        seen.append(request.uri)
        respond(request, request.uri.encode() * 20_000)

    _, proto, t = make(loop, big)
    proto.data_received(b"".join(b"GET /%d HTTP/1.1\r\nHost: a\r\n\r\n" % i for i in range(5)))
    assert seen == ["/0", "/1"] and not t.reading
    # The transport takes the output but stays over its mark.
    t.buffered = 80_000
    proto.pause_writing()
    run_soon(loop)
    assert len(responses(t.data)) == 2 and seen == ["/0", "/1"] and not t.reading
    t.buffered = 0
    proto.resume_writing()
    assert seen == ["/0", "/1", "/2", "/3"]
    # This time the socket takes all of it: the last request follows at once.
    run_soon(loop)
    assert seen == ["/0", "/1", "/2", "/3", "/4"] and t.reading
    bodies = [r.split(b"\r\n\r\n")[1][:2] for r in responses(t.data)]
    assert bodies == [b"/0", b"/1", b"/2", b"/3", b"/4"]


def test_connection_close_request(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: a\r\n\r\n"
    )
    assert t.data.count(b"HTTP/1.1 200") == 1
    assert b"\r\nConnection: close\r\n" in t.data
    assert t.closed


def test_http10_closes_unless_keep_alive(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(b"GET / HTTP/1.0\r\n\r\n")
    run_soon(loop)
    assert b"Connection" not in t.data and t.closed
    _, proto, t = make(loop)
    proto.data_received(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    run_soon(loop)
    assert b"\r\nConnection: Keep-Alive\r\n" in t.data and not t.closed


def test_no_keep_alive_option(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop, no_keep_alive=True)
    proto.data_received(GET)
    assert b"\r\nConnection: close\r\n" in t.data and t.closed


def test_response_without_length_is_chunked_for_http11(loop: asyncio.AbstractEventLoop) -> None:
    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders(), b"ab")
        conn.write(b"cd")
        conn.finish()

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    run_soon(loop)
    assert t.data == (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    )
    _, proto, t = make(loop, handle)
    proto.data_received(b"GET / HTTP/1.0\r\n\r\n")
    run_soon(loop)
    assert t.data == b"HTTP/1.1 200 OK\r\n\r\nabcd" and t.closed


def test_head_response_has_no_body(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop, lambda r: respond(r, b"hello"))
    proto.data_received(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    run_soon(loop)
    assert t.data == (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    )


def test_chunked_request_body(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    )
    proto.data_received(b"2\r\nde\r\n0\r\n\r\n")
    run_soon(loop)
    assert t.data.endswith(b"POST / abcde")


def test_100_continue(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n"
    )
    run_soon(loop)
    assert t.data == b"HTTP/1.1 100 (Continue)\r\n\r\n"
    proto.data_received(b"ok")
    run_soon(loop)
    assert t.data.endswith(b"POST / ok") and not t.closed


def test_100_continue_waits_for_a_blocking_delegate(loop: asyncio.AbstractEventLoop) -> None:
    gate: asyncio.Future[None] = loop.create_future()

    class Delegate(HTTPMessageDelegate):
        def __init__(self, conn: Any) -> None:
            self.conn = conn

        def headers_received(self, start_line: Any, headers: Any) -> Any:
            return gate

        def finish(self) -> None:
            self.conn.write_headers(ResponseStartLine("HTTP/1.1", 204, "No Content"), HTTPHeaders())
            self.conn.finish()

    class App(HTTPServerConnectionDelegate):
        def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
            return Delegate(request_conn)

    _, proto, t = make(loop, App())
    proto.data_received(
        b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nExpect: 100-continue\r\n\r\n"
    )
    assert t.data == b"" and not t.reading
    gate.set_result(None)
    run_soon(loop)
    assert t.data == b"HTTP/1.1 100 (Continue)\r\n\r\n" and t.reading
    proto.data_received(b"x")
    run_soon(loop)
    assert t.data.endswith(b"HTTP/1.1 204 No Content\r\n\r\n")


class Recorder(HTTPMessageDelegate):
    """Records calls; returns ``gate`` from the callbacks while it is set."""

    def __init__(self, conn: Any, gate: Optional[asyncio.Future[None]] = None) -> None:
        self.conn = conn
        self.gate = gate
        self.calls: list[Any] = []

    def headers_received(self, start_line: Any, headers: Any) -> Any:
        self.calls.append(("headers", start_line))
        return self.gate

    def data_received(self, chunk: bytes) -> Any:
        self.calls.append(("data", chunk))
        return self.gate

    def finish(self) -> None:
        self.calls.append("finish")

    def on_connection_close(self) -> None:
        self.calls.append("close")


class RecordingApp(HTTPServerConnectionDelegate):
    def __init__(self, gate: Optional[asyncio.Future[None]] = None) -> None:
        self.gate = gate
        self.delegates: list[Recorder] = []
        self.closed: list[object] = []

    def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
        self.delegates.append(Recorder(request_conn, self.gate))
        return self.delegates[-1]

    def on_close(self, server_conn: object) -> None:
        self.closed.append(server_conn)


def test_flow_control_pauses_reading(loop: asyncio.AbstractEventLoop) -> None:
    gate: asyncio.Future[None] = loop.create_future()
    app = RecordingApp(gate)
    _, proto, t = make(loop, app)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    (d,) = app.delegates
    assert d.calls == [("headers", RequestStartLine("POST", "/", "HTTP/1.1"))]
    assert not t.reading
    proto.data_received(b"cd")  # arrives before the pause took effect
    assert len(d.calls) == 1
    app.gate = d.gate = None
    gate.set_result(None)
    run_soon(loop)
    assert d.calls[1:] == [("data", b"abcd"), "finish"]
    assert t.reading


def test_flow_control_from_a_coroutine_keeps_the_rest_of_a_split_chunk(
    loop: asyncio.AbstractEventLoop,
) -> None:
    got: list[bytes] = []
    waits = 0

    class Slow(HTTPMessageDelegate):
        async def _wait(self) -> None:
            nonlocal waits
            waits += 1
            await asyncio.sleep(0)

        def data_received(self, chunk: bytes) -> Any:
            got.append(chunk)
            return self._wait()

    class App(HTTPServerConnectionDelegate):
        def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
            return Slow()

    _, proto, t = make(loop, App(), chunk_size=4)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789")
    for _ in range(10):
        run_soon(loop)
    assert got == [b"0123", b"4567", b"89"] and waits == 3


def test_chunk_size_splits_body(loop: asyncio.AbstractEventLoop) -> None:
    app = RecordingApp()
    _, proto, _t = make(loop, app, chunk_size=16)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 50\r\n\r\n" + b"x" * 50)
    sizes = [len(c[1]) for c in app.delegates[0].calls if c[0] == "data"]
    assert sizes == [16, 16, 16, 2]


def test_write_futures_follow_the_transport_high_water_mark(
    loop: asyncio.AbstractEventLoop,
) -> None:
    futures: list[asyncio.Future[None]] = []

    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        futures.append(
            conn.write_headers(  # type: ignore[arg-type]
                ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "2"})
            )
        )
        proto.pause_writing()
        futures.append(conn.write(b"ab"))  # type: ignore[arg-type]
        conn.finish()

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    assert futures[0].done() and not futures[1].done()
    assert not t.reading
    proto.resume_writing()
    assert futures[1].done() and t.reading


@pytest.mark.parametrize(
    ("request_bytes", "status", "message"),
    [
        (b"asdf\r\n\r\n", b"400 Bad Request", "Malformed HTTP request line"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nasdf\r\n\r\n",
            b"400 Bad Request",
            "no colon in header line",
        ),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"400 Bad Request", "Invalid Host header"),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"400 Bad Request",
            "Multiple Host headers",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"400 Bad Request",
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1_a\r\n",
            b"400 Bad Request",
            "invalid chunk size",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000 + b"\r\n\r\n",
            b"431 Request Header Fields Too Large",
            "Header block too large",
        ),
        (
            b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n",
            b"400 Bad Request",
            "Content-Length too long",
        ),
    ],
)
def test_malformed_requests_get_an_error_and_a_close(
    loop: asyncio.AbstractEventLoop,
    caplog: pytest.LogCaptureFixture,
    request_bytes: bytes,
    status: bytes,
    message: str,
) -> None:
    _, proto, t = make(loop, max_header_size=1024, max_body_size=4096)
    with caplog.at_level(logging.INFO, logger="squall.general"):
        proto.data_received(request_bytes)
    head, _, body = t.data.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 " + status
    # The parser's errors get a bare answer, as Tornado's do; a request the
    # server refuses itself (its Host) is answered with the reason.
    if b"Host: a\r\nHost: b" in request_bytes or b"Host: a b" in request_bytes:
        assert body == b"400 Bad Request: " + message.encode() + body[17 + len(message) :]
        assert body.endswith(b"\n")
    else:
        assert head == b"HTTP/1.1 " + status and body == b""
    assert t.closed
    (record,) = caplog.records
    assert record.levelno == logging.INFO and record.name == "squall.general"
    # Oversized heads are worded as Tornado words them.
    prefix = "Unsatisfiable read" if status.startswith(b"431") else "Malformed HTTP message"
    assert record.getMessage().startswith(prefix + " from 10.0.0.1: ")
    assert message in record.getMessage()


def test_request_line_too_long(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    _, proto, t = make(loop)
    with caplog.at_level(logging.INFO, logger="squall.general"):
        proto.data_received(b"GET /" + b"a" * 17000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
    # The reason is the running Python's (3.13 renamed it "URI Too Long").
    reason = http.HTTPStatus(414).phrase.encode()
    assert t.data == b"HTTP/1.1 414 " + reason + b"\r\n\r\n" and t.closed
    assert "Request line too long" in caplog.text


def test_error_after_response_started_only_closes(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def handle_headers(request: HTTPServerRequest) -> None:
        respond(request)

    app = RecordingApp()
    _, proto, t = make(loop, app)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    conn = app.delegates[0].conn
    conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders())
    with caplog.at_level(logging.INFO, logger="squall.general"):
        proto.data_received(b"zz\r\n")
    assert t.data == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert t.closed
    run_soon(loop)
    assert app.delegates[0].calls[-1] == "close"


def test_application_error_is_logged_and_closes(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def handle(request: HTTPServerRequest) -> None:
        raise ValueError("boom")

    _, proto, t = make(loop, handle)
    with caplog.at_level(logging.ERROR):
        proto.data_received(GET)
    assert t.closed and t.data == b""
    (record,) = caplog.records
    assert record.name == "squall.application" and record.getMessage() == "Uncaught exception"


def test_error_from_a_blocking_delegate(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    gate: asyncio.Future[None] = loop.create_future()
    _, proto, t = make(loop, RecordingApp(gate))
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")
    gate.set_exception(ValueError("late"))
    with caplog.at_level(logging.ERROR):
        run_soon(loop)
    assert t.closed
    assert [r.name for r in caplog.records] == ["squall.application"]


def test_output_errors_raise_and_close(loop: asyncio.AbstractEventLoop) -> None:
    errors: list[Exception] = []

    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        conn.write_headers(
            ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "1"})
        )
        try:
            conn.write(b"too long")
        except HTTPOutputError as exc:
            errors.append(exc)

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    assert "more data than Content-Length" in str(errors[0])
    assert t.closed

    def short(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        conn.write_headers(
            ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "3"})
        )
        with pytest.raises(HTTPOutputError, match="less than Content-Length"):
            conn.finish()

    _, proto, t = make(loop, short)
    proto.data_received(GET)
    assert t.closed


def test_first_chunk_over_the_length_drops_the_connection(loop: asyncio.AbstractEventLoop) -> None:
    # The head and its first chunk in one call, the chunk longer than the
    # head's Content-Length: nothing can frame that response, so the
    # connection goes (as for a later chunk) and finishing is quiet, which
    # lets the handler's finish() log the request and call on_finish.
    errors: list[Exception] = []

    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        try:
            conn.write_headers(
                ResponseStartLine("HTTP/1.1", 200, "OK"),
                HTTPHeaders({"Content-Length": "1"}),
                b"abc",
            )
        except HTTPOutputError as exc:
            errors.append(exc)
        try:
            conn.finish()
        except HTTPOutputError as exc:
            errors.append(exc)

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    assert len(errors) == 1, errors
    assert "more data than Content-Length" in str(errors[0])
    assert t.closed and t.data == b""


def test_connection_lost_mid_request_tells_the_delegate(loop: asyncio.AbstractEventLoop) -> None:
    app = RecordingApp()
    _, proto, t = make(loop, app)
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
    closed: list[bool] = []
    app.delegates[0].conn.set_close_callback(lambda: closed.append(True))
    proto.connection_lost(None)
    assert app.delegates[0].calls[-1] == "close" and closed == [True]
    assert app.closed == [proto]
    # Writing now fails quietly.
    fut = app.delegates[0].conn.write_headers(
        ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders()
    )
    assert isinstance(fut.exception(), StreamClosedError)
    app.delegates[0].conn.finish()
    assert t.data == b""


def test_eof_before_a_request_closes_quietly(loop: asyncio.AbstractEventLoop) -> None:
    app = RecordingApp()
    server, proto, t = make(loop, app)
    proto.data_received(b"GET / HT")
    proto.eof_received()
    assert t.closed and app.delegates == []
    run_soon(loop)
    assert proto not in server._connections


def test_legacy_raw_write(loop: asyncio.AbstractEventLoop) -> None:
    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        conn.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        conn.write(b"hi")
        conn.finish()

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    assert t.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" and t.closed


def test_writes_outside_data_received_are_batched(loop: asyncio.AbstractEventLoop) -> None:
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append)
    proto.data_received(GET)
    conn = pending[0].connection
    assert conn is not None
    conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders())
    conn.write(b"a")
    assert t.writes == []
    run_soon(loop)
    assert len(t.writes) == 1
    conn.finish()
    assert t.data.endswith(b"1\r\na\r\n")  # the end waits for the round too
    run_soon(loop)
    assert t.data.endswith(b"0\r\n\r\n") and len(t.writes) == 2


def test_body_timeout(loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture) -> None:
    app = RecordingApp()
    _, proto, t = make(loop, app, body_timeout=0.01)
    proto.data_received(b"PUT / HTTP/1.0\r\nContent-Length: 42\r\n\r\n")
    assert proto._body_timer is not None
    with caplog.at_level(logging.INFO, logger="squall.general"):
        assert wait_closed(t)
    assert t.data == b""
    assert "Timeout reading body from 10.0.0.1" in caplog.text
    assert app.delegates[0].calls[-1] == "close"


def test_body_timeout_override_and_cancel(loop: asyncio.AbstractEventLoop) -> None:
    class App(RecordingApp):
        def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
            request_conn.set_body_timeout(5.0)
            request_conn.set_max_body_size(10)
            return super().start_request(server_conn, request_conn)

    app = App()
    _, proto, t = make(loop, app)
    proto.data_received(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n")
    timer = proto._body_timer
    assert timer is not None and timer.when() - loop.time() > 4
    proto.data_received(b"abc")
    assert proto._body_timer is None and timer.cancelled()


def test_idle_timeout(loop: asyncio.AbstractEventLoop) -> None:
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append, idle_connection_timeout=0.02)
    proto.data_received(GET)
    assert not wait_closed(t, 0.05)  # a request in progress is not idle
    respond(pending[0])
    assert wait_closed(t)


def test_a_long_exchange_holds_no_idle_timer_and_idles_out_after(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # A long poll: the idle timer fires once while the request is in
    # progress and stays off (no timer every header_timeout for each waiting
    # request); the exchange's end arms it again, and the connection idles out.
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append, idle_connection_timeout=0.02, header_timeout=0.01)
    proto.data_received(GET)
    assert proto._idle_timer is not None
    assert not wait_closed(t, 0.08)
    assert proto._idle_timer is None
    respond(pending[0])
    timer = proto._idle_timer
    assert timer is not None and not timer.cancelled()
    assert wait_closed(t)


def test_the_first_idle_timer_is_armed_a_turn_after_the_accept(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # (Most connections send their first head at once, and the
    # exchange it starts runs no idle timer; armed a turn later, the timer
    # is made only for the connections still idle then.) Its deadline is
    # counted from the accept, not from the turn.
    async def accept() -> tuple[Any, FakeTransport, float, float]:
        before = loop.time()
        _, proto, t = make(loop, idle_connection_timeout=0.05, header_timeout=0.05)
        return proto, t, before, loop.time()

    proto, t, before, accepted = loop.run_until_complete(accept())
    timer = proto._idle_timer
    assert timer is not None and not timer.cancelled()
    # Counted from a time within the accept, not from the later turn.
    assert before - 1e-9 <= timer.when() - 0.05 <= accepted + 1e-9
    assert wait_closed(t)


def test_a_head_in_the_accepts_turn_arms_no_idle_timer(loop: asyncio.AbstractEventLoop) -> None:
    pending: list[HTTPServerRequest] = []

    async def accept() -> tuple[Any, Optional[asyncio.TimerHandle]]:
        _, proto, _t = make(loop, pending.append, idle_connection_timeout=0.05)
        armed = proto._idle_timer
        proto.data_received(GET)
        return proto, armed

    proto, armed = loop.run_until_complete(accept())
    run_soon(loop)
    assert armed is None and pending and proto._idle_timer is None
    respond(pending[0])  # the exchange's end arms it
    assert proto._idle_timer is not None


def test_a_connection_lost_before_its_first_turn_arms_no_timer(
    loop: asyncio.AbstractEventLoop,
) -> None:
    async def accept() -> Any:
        _, proto, _t = make(loop, idle_connection_timeout=0.05)
        proto.connection_lost(None)
        return proto

    proto = loop.run_until_complete(accept())
    run_soon(loop)
    assert proto._idle_timer is None


def test_decompress_request(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[HTTPServerRequest] = []

    def handle(request: HTTPServerRequest) -> None:
        seen.append(request)
        respond(request)

    _, proto, t = make(loop, handle, decompress_request=True)
    body = gzip.compress(b"foo=") + gzip.compress(b"bar")
    proto.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: GZIP\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )
    assert seen[0].body == b"foo=bar"
    assert "Content-Encoding" not in seen[0].headers
    assert seen[0].headers["X-Consumed-Content-Encoding"] == "GZIP"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (gzip.compress(b"foo=bar") + b"\0", "invalid gzip data"),
        (gzip.compress(b"foo=bar")[:-1], "invalid gzip data"),
        (gzip.compress(b"x" * 5000), "decompressed body too large"),
    ],
)
def test_decompress_errors(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture, body: bytes, message: str
) -> None:
    _, proto, t = make(loop, decompress_request=True, max_body_size=4096)
    with caplog.at_level(logging.INFO, logger="squall.general"):
        proto.data_received(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            % len(body)
            + body
        )
    head, _, body = t.data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n") and t.closed
    # The body says why, as the log does.
    assert body.startswith(b"400 Bad Request: ") and message.encode() in body
    assert message in caplog.text


def test_xheaders(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[tuple[Optional[str], str]] = []

    def handle(request: HTTPServerRequest) -> None:
        seen.append((request.remote_ip, request.protocol))
        respond(request)

    _, proto, _t = make(loop, handle, xheaders=True, trusted_downstream=["5.5.5.5"])
    for headers in (
        b"X-Real-IP: 4.4.4.4",
        b"X-Forwarded-For: 127.0.0.1, 4.4.4.4, 5.5.5.5",
        b"X-Forwarded-For: 4.4.4.4, 5.5.5.5<script>",
        # An IPv6 zone that is no interface (text with a space): not an address.
        b"X-Real-IP: fe80::1%a b",
        b"X-Real-IP: fe80::1%2",
        b"X-Scheme: https",
        b"X-Forwarded-Proto: https , http",
        b"X-Forwarded-Proto: http,https",
        b"X-Forwarded-Proto: unknown",
    ):
        proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n\r\n")
    assert seen == [
        ("4.4.4.4", "http"),
        ("4.4.4.4", "http"),
        ("10.0.0.1", "http"),
        ("10.0.0.1", "http"),
        ("fe80::1%2", "http"),
        ("10.0.0.1", "https"),
        ("10.0.0.1", "http"),
        ("10.0.0.1", "https"),
        ("10.0.0.1", "http"),
    ]


def test_unix_socket_context(loop: asyncio.AbstractEventLoop) -> None:
    seen: list[HTTPServerRequest] = []

    def handle(request: HTTPServerRequest) -> None:
        seen.append(request)
        respond(request)

    _, proto, _t = make(loop, handle, peer="", family=socket.AF_UNIX, protocol="https")
    proto.data_received(GET)
    assert seen[0].remote_ip == "0.0.0.0" and seen[0].protocol == "https"
    assert str(proto.context) == ""


def test_close_coroutine(loop: asyncio.AbstractEventLoop) -> None:
    server, proto, t = make(loop)
    assert proto in server._connections
    loop.run_until_complete(server.close_all_connections())
    assert t.closed and not server._connections
    loop.run_until_complete(proto.close())  # already closed: returns at once


def test_bare_lf_heads_are_accepted(loop: asyncio.AbstractEventLoop) -> None:
    _, proto, t = make(loop)
    proto.data_received(GET)
    proto.data_received(b"GET /lf HTTP/1.1\nHost: x\n\nGET /crlf HTTP/1.1\r\nHost: a\r\n\r\n")
    run_soon(loop)
    bodies = [r.split(b"\r\n\r\n")[1] for r in responses(t.data)]
    assert bodies == [b"GET /a ", b"GET /lf ", b"GET /crlf "]
    assert not t.closed


def test_bare_lf_in_a_body_is_still_an_error(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    _, proto, t = make(loop)
    with caplog.at_level(logging.INFO, logger="squall.general"):
        proto.data_received(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n"
        )
    assert t.data == b"HTTP/1.1 400 Bad Request\r\n\r\n"


def test_gzip_body_to_a_blocking_delegate(loop: asyncio.AbstractEventLoop) -> None:
    got: list[bytes] = []

    class Slow(HTTPMessageDelegate):
        async def _wait(self) -> None:
            await asyncio.sleep(0)

        def data_received(self, chunk: bytes) -> Any:
            got.append(chunk)
            return self._wait()

    class App(HTTPServerConnectionDelegate):
        def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
            return Slow()

    _, proto, _t = make(loop, App(), decompress_request=True, chunk_size=4)
    body = gzip.compress(b"0123456789")
    proto.data_received(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
        % len(body)
        + body
    )
    for _ in range(10):
        run_soon(loop)
    assert b"".join(got) == b"0123456789" and all(len(c) <= 4 for c in got)


def test_delegate_http_input_error_while_blocked(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    from squall.httputil import HTTPInputError

    gate: asyncio.Future[None] = loop.create_future()
    _, proto, t = make(loop, RecordingApp(gate))
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n")
    gate.set_exception(HTTPInputError("bad body"))
    with caplog.at_level(logging.INFO, logger="squall.general"):
        run_soon(loop)
    assert t.data.endswith(b"\r\n\r\n400 Bad Request: bad body\n")
    assert "bad body" in caplog.text
    # The body is still to come, and this transport (TLS's kind) cannot
    # end our side alone: the connection lingers, dropping the body, and
    # closes once it has ended, nothing unread.
    assert not t.closed
    proto.data_received(b"x")
    assert t.closed and t.data.endswith(b"bad body\n")


def test_repeated_response_fields_each_get_a_line(loop: asyncio.AbstractEventLoop) -> None:
    def handle(request: HTTPServerRequest) -> None:
        headers = HTTPHeaders({"Content-Length": "2"})
        headers.add("Vary", "A")
        headers.add("Vary", "B")
        assert request.connection is not None
        request.connection.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), headers, b"ok")
        request.connection.finish()

    _, proto, t = make(loop, handle)
    proto.data_received(GET)
    run_soon(loop)
    assert t.data == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nVary: A\r\nVary: B\r\n\r\nok"


def test_write_headers_refuses_a_value_that_is_not_a_string(
    loop: asyncio.AbstractEventLoop,
) -> None:
    errors: list[str] = []

    def handle(request: HTTPServerRequest) -> None:
        conn = request.connection
        assert conn is not None
        headers = HTTPHeaders({"Content-Length": "2"})
        headers._as_list["X-Count"] = [5]  # type: ignore[list-item]
        try:
            conn.write_headers(ResponseStartLine("HTTP/1.1", 200, "OK"), headers, b"ok")
        except HTTPOutputError as exc:
            errors.append(str(exc))
        respond(request, b"ok")

    make(loop, handle)[1].data_received(GET)
    assert errors == ["header fields must be (str, str) pairs"]


def test_connection_state_through_an_exchange(loop: asyncio.AbstractEventLoop) -> None:
    from squall.httpserver import _h1exchange as p  # the states' home

    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append)
    assert proto.state == p._IDLE
    proto.data_received(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nab")
    assert proto.state == p._REQUEST  # the body is still coming
    proto.data_received(b"cd")
    assert proto.state == p._RESPONSE and pending[0].body == b"abcd"
    respond(pending[0])
    assert proto.state == p._IDLE and not t.closed
    proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    respond(pending[1])
    # The response ended the connection: flushed, then closed.
    assert proto.state == p._STOPPED and t.closed
    assert wait_closed(t)
    assert proto.state == p._CLOSED


def test_detached_connection_state(loop: asyncio.AbstractEventLoop) -> None:
    from squall.httpserver import _h1exchange as p  # the states' home

    pending: list[HTTPServerRequest] = []
    server, proto, t = make(loop, pending.append)
    proto.data_received(GET)
    stream = pending[0].connection.detach()  # type: ignore[union-attr]
    assert proto.state == p._DETACHED and proto.detached
    assert proto in server._detached
    proto.data_received(b"raw")
    # Bytes now go to the stream, not to the HTTP parser.
    read = stream.read_bytes(3)
    assert read.done() and read.result() == b"raw"
    with pytest.raises(RuntimeError):
        pending[0].connection.detach()  # type: ignore[union-attr]
    proto.connection_lost(None)
    assert proto.state == p._CLOSED and proto not in server._detached


def test_idle_connections_share_per_loop_objects(loop: asyncio.AbstractEventLoop) -> None:
    _, a, _ta = make(loop)
    _, b, _tb = make(loop)
    # One resolved future and one idle-timer context per loop, not per
    # connection (each would cost every idle connection).
    assert a.done_future is b.done_future and a.done_future.done()
    assert a._timer_context is b._timer_context
    assert a._drain_waiters is None
    other = asyncio.new_event_loop()
    try:
        _, c, _tc = make(other)
        assert c.done_future is not a.done_future
        assert c._timer_context is not a._timer_context
        c._hard_close()
    finally:
        other.close()


def test_a_loop_that_served_connections_is_not_kept_alive(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # What one loop's connections share goes with the loop (before: kept
    # for ever, one loop per test of a suite), the last loop used included.
    refs = []
    for _ in range(3):
        other = asyncio.new_event_loop()
        server, proto, transport = make(other)
        proto._hard_close()
        other.close()
        refs.append(weakref.ref(other))
        del other, server, proto, transport
    gc.collect()
    assert [ref() for ref in refs] == [None, None, None]


def test_the_shared_resolved_future_is_made_again_once_nobody_holds_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    server, a, transport = make(loop)
    first = weakref.ref(a.done_future)
    a._hard_close()
    run_soon(loop)  # the transport reports the loss on the next round
    del server, a, transport
    gc.collect()
    assert first() is None
    _, b, _tb = make(loop)
    assert b.done_future.done() and b.done_future.get_loop() is loop
    b._hard_close()


# -- the loop's write queue: responses leave together, after the round of reads --


def test_responses_are_written_after_the_round_of_reads(
    loop: asyncio.AbstractEventLoop,
) -> None:
    conns = [make(loop) for _ in range(3)]
    for _, proto, _t in conns:
        proto.data_received(GET)
    # Nothing is written while the loop's reads are still being handled.
    assert [t.writes for _, _, t in conns] == [[], [], []]
    callbacks_before = len(loop._ready)  # type: ignore[attr-defined]
    run_soon(loop)
    for _, _, t in conns:
        assert t.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nGET /a "]
    # One callback served all three connections.
    assert callbacks_before == 1


def test_queued_output_of_a_lost_connection_is_dropped(loop: asyncio.AbstractEventLoop) -> None:
    _, lost, t1 = make(loop)
    _, kept, t2 = make(loop)
    lost.data_received(GET)
    kept.data_received(GET)
    lost.connection_lost(None)
    run_soon(loop)
    assert t1.writes == []
    assert responses(t2.data) == [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nGET /a "]


def test_a_failing_write_does_not_hold_up_the_other_connections(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    _, bad, t1 = make(loop)
    _, good, t2 = make(loop)

    def broken(data: Any) -> None:
        raise RuntimeError("transport broke")

    t1.write = broken  # type: ignore[method-assign]
    bad.data_received(GET)
    good.data_received(GET)
    with caplog.at_level(logging.ERROR):
        run_soon(loop)
    assert "Uncaught exception writing a response" in caplog.text
    assert t1.closed
    assert t2.data.endswith(b"GET /a ") and not t2.closed


def test_output_is_written_once_when_flushed_before_its_round(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # A detach (say) flushes at once: the queued round then has nothing to add.
    _, proto, t = make(loop)
    proto.data_received(GET)
    proto.flush()
    assert len(t.writes) == 1
    run_soon(loop)
    assert len(t.writes) == 1


# -- a response ended outside data_received (from its request's Task) --


def _request_left_pending(
    loop: asyncio.AbstractEventLoop,
) -> tuple[_HTTPProtocol, FakeTransport, list[HTTPServerRequest], HTTPConnection]:
    """A connection whose request is read and left unanswered: its
    protocol, transport, the requests so far and the first one's connection."""
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append)
    proto.data_received(GET)
    conn = pending[0].connection
    assert conn is not None
    return proto, t, pending, conn


def test_responses_ended_from_their_tasks_in_one_round_leave_together(
    loop: asyncio.AbstractEventLoop,
) -> None:
    # Two connections whose responses end one after the other, outside
    # data_received (as from their requests' Tasks): neither is written at
    # its end; both leave in the round's write, one write each (when
    # written each at its end, the client was woken once per response).
    first, t1, pending1, conn1 = _request_left_pending(loop)
    second, t2, pending2, conn2 = _request_left_pending(loop)
    respond(pending1[0])
    respond(pending2[0])
    assert t1.writes == [] and t2.writes == []
    run_soon(loop)
    assert t1.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nGET /a "]
    assert t2.writes == t1.writes
    assert not t1.closed and not t2.closed
    # Each connection goes on: its next request is answered.
    first.data_received(GET)
    respond(pending1[1])
    run_soon(loop)
    assert len(responses(t1.data)) == 2


def test_a_response_that_closes_the_connection_is_written_at_its_end(
    loop: asyncio.AbstractEventLoop,
) -> None:
    pending: list[HTTPServerRequest] = []
    _, proto, t = make(loop, pending.append)
    proto.data_received(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    respond(pending[0])
    assert responses(t.data) == [
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nGET /a "
    ]
    assert wait_closed(t)


def test_the_chunks_of_a_body_ended_from_its_task_leave_in_one_write(
    loop: asyncio.AbstractEventLoop,
) -> None:
    _, t, _, conn = _request_left_pending(loop)
    conn.write_headers(
        ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "4"})
    )
    conn.write(b"ab")
    conn.write(b"cd")
    conn.finish()
    assert t.writes == []
    run_soon(loop)
    assert t.writes == [b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"]


def test_eof_during_a_response_closes_once_it_is_written(
    loop: asyncio.AbstractEventLoop,
) -> None:
    proto, t, pending, _ = _request_left_pending(loop)
    proto.eof_received()
    assert not t.closed
    respond(pending[0])
    assert wait_closed(t)
    assert responses(t.data) == [b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nGET /a "]


class _CrowdHello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ starts a request's Task eagerly")
@pytest.mark.parametrize("xheaders", [False, True])
def test_requests_read_in_one_turn_on_many_connections_set_off_no_collections(
    xheaders: bool,
) -> None:
    # 50 connections, each with a head ready in the same loop turn (a busy
    # server's epoll). Had each request read waited for its Task's first
    # step, it would have held about 22 objects the cycle collector tracks:
    # 1,100 in all, past gen0's 700, so the collector ran every turn (issue
    # 77). A plain handler is served in the read, and holds none of them.
    loop = asyncio.new_event_loop()
    passes: list[int] = []

    def counted(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            passes.append(info["generation"])

    app = Application([("/", _CrowdHello)])
    served: list[_HTTPProtocol] = []
    transports: list[FakeTransport] = []
    for _ in range(50):
        _, proto, transport = make(loop, app, xheaders=xheaders)
        served.append(proto)
        transports.append(transport)
    # A browser's head: each header's values are a list the collector tracks.
    head = (
        b"GET /?q=1 HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0\r\n"
        b"Accept: text/html\r\nAccept-Language: en\r\nAccept-Encoding: gzip\r\n"
        b"Cookie: session=1\r\nConnection: keep-alive\r\n\r\n"
    )

    def feed() -> None:
        for proto in served:
            proto.data_received(head)

    async def rounds(count: int) -> None:
        for done in range(1, count + 1):
            loop.call_soon(feed)
            deadline = loop.time() + HANG_GUARD  # a hang guard
            while not all(t.data.count(b"hello") == done for t in transports):
                assert loop.time() < deadline, "a round was not answered"
                await asyncio.sleep(0)

    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(700, 10, 10)
    gc.callbacks.append(counted)
    try:
        loop.run_until_complete(rounds(20))
    finally:
        gc.callbacks.remove(counted)
        gc.set_threshold(*threshold)
        loop.close()
    assert all(t.data.count(b"200 OK") == 20 for t in transports)
    assert len(passes) <= 2, f"{len(passes)} collections in 20 rounds of 50 requests"


class _CrowdWaiter(RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write("waited")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ starts a request's Task eagerly")
def test_a_plain_handler_is_served_in_the_read_and_a_waiting_one_in_a_task() -> None:
    # Python 3.11: a handler whose prepare() and method are plain functions
    # is served in the data_received that read its head, without a Task;
    # one with a coroutine method gets a Task of its own there.
    loop = asyncio.new_event_loop()
    app = Application([("/", _CrowdHello), ("/wait", _CrowdWaiter)])
    _, proto, transport = make(loop, app)
    tasks: list[int] = []

    async def serve() -> None:
        mine = asyncio.all_tasks(loop)
        for target in (b"/", b"/wait"):
            proto.data_received(b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            tasks.append(len(asyncio.all_tasks(loop) - mine))
            deadline = loop.time() + HANG_GUARD  # a hang guard
            while not transport.data.endswith(b"waited" if target == b"/wait" else b"hello"):
                assert loop.time() < deadline, "no answer"
                await asyncio.sleep(0)

    try:
        loop.run_until_complete(serve())
    finally:
        loop.close()
    assert tasks == [0, 1]
