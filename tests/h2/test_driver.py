"""The HTTP/2 driver's request connection (`_H2Stream`) and its edge cases,
through a plain request callback that uses the connection API directly."""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.events  # noqa: E402

from squall._h2 import ErrorCode, H2Limits  # noqa: E402
from squall.httputil import (  # noqa: E402
    HTTPHeaders,
    HTTPMessageDelegate,
    HTTPOutputError,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
    ResponseStartLine,
)
from squall.iostream import StreamClosedError  # noqa: E402
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler, stream_request_body  # noqa: E402
from tests._wait import HANG_GUARD

from .._clock import LoopClock  # noqa: E402
from .._first_step import ResetsItself  # noqa: E402
from ._client import DEADLINE, RawH2, http1_head  # noqa: E402
from .test_attacks import condition  # noqa: E402

OK = ResponseStartLine("HTTP/2.0", 200, "OK")


def headers(**fields: str) -> HTTPHeaders:
    h = HTTPHeaders()
    for name, value in fields.items():
        h[name.replace("_", "-")] = value
    return h


class CallbackTest(AsyncHTTPTestCase):
    """Each test installs ``self.handle(request)``."""

    def get_app(self) -> Any:
        self.errors: list[BaseException] = []
        self.handle: Callable[[HTTPServerRequest], Any] = lambda request: None

        def app(request: HTTPServerRequest) -> None:
            try:
                self.handle(request)
            except Exception as exc:
                self.errors.append(exc)

        return app

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "max_body_size": 1000, "chunk_size": 400}

    async def fetch(self, path: str = "/", **kwargs: Any) -> Any:
        client = await RawH2.connect(self.get_http_port())
        try:
            return await client.fetch(path, **kwargs)
        finally:
            await client.close()

    @gen_test
    async def test_a_stream_names_its_loop(self) -> None:
        # The application's delegate starts a handler on Exchange.loop when
        # a connection names one (no get_running_loop per request).
        seen: list[Any] = []

        def handle(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            seen.append(getattr(conn, "loop", None))
            conn.write_headers(OK, headers(Content_Length="2"))
            conn.write(b"ok")
            conn.finish()

        self.handle = handle
        r = await self.fetch()
        assert r.status == 200
        assert seen == [asyncio.get_running_loop()]

    @gen_test
    async def test_more_than_content_length(self) -> None:
        def handle(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(Content_Length="3"))
            conn.write(b"hello")

        self.handle = handle
        r = await self.fetch()
        assert r.reset == ErrorCode.INTERNAL_ERROR
        assert isinstance(self.errors[0], HTTPOutputError)
        assert "more data than Content-Length" in str(self.errors[0])

    @gen_test
    async def test_less_than_content_length(self) -> None:
        def handle(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(Content_Length="10"), b"abc")
            conn.finish()

        self.handle = handle
        r = await self.fetch()
        assert r.reset == ErrorCode.INTERNAL_ERROR
        assert "less than Content-Length" in str(self.errors[0])

    @gen_test
    async def test_misuse_raises(self) -> None:
        seen: list[str] = []

        def handle(request: HTTPServerRequest) -> None:
            conn: Any = request.connection
            for attempt in (lambda: conn.write(b"x"), conn.detach):
                try:
                    attempt()
                except HTTPOutputError as exc:
                    seen.append(str(exc))
            conn.write_headers(OK, headers(), b"body")
            try:
                conn.write_headers(OK, headers())
            except HTTPOutputError as exc:
                seen.append(str(exc))
            try:
                conn.write_headers(OK, headers(Content_Length="x"))
            except HTTPOutputError as exc:
                seen.append(str(exc))
            assert conn.transport is not None
            conn.write(b"")
            conn.write(b" more")
            conn.finish()
            conn.finish()  # twice is harmless

        self.handle = handle
        r = await self.fetch()
        assert (r.status, r.body) == (200, b"body more")
        assert len(seen) == 4
        assert "write_headers must come first" in seen[0]
        assert "cannot be detached" in seen[1]
        assert "already written" in seen[2]

    @gen_test
    async def test_finish_without_head_resets(self) -> None:
        def handle(request: HTTPServerRequest) -> None:
            assert request.connection is not None
            request.connection.finish()

        self.handle = handle
        r = await self.fetch()
        assert r.reset == ErrorCode.INTERNAL_ERROR

    @gen_test
    async def test_close_resets_the_stream_and_calls_back(self) -> None:
        calls: list[str] = []
        futures: list[Any] = []

        def handle(request: HTTPServerRequest) -> None:
            conn: Any = request.connection
            conn.set_close_callback(lambda: calls.append("closed"))
            conn.close()
            futures.append(conn.write_headers(OK, headers()))
            futures.append(conn.write(b"x"))
            conn.finish()

        self.handle = handle
        r = await self.fetch()
        assert r.reset == ErrorCode.CANCEL
        assert calls == ["closed"]
        for future in futures:
            with pytest.raises(StreamClosedError):
                await future

    @gen_test
    async def test_client_goaway_lets_streams_in_flight_finish(self) -> None:
        held: list[HTTPServerRequest] = []
        self.handle = held.append
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/")
        await condition(lambda: len(held) == 1)
        client.conn.close_connection()
        client.flush()
        # A stream after the client's GOAWAY is not taken.
        client.write_raw(b"\x00\x00\x03\x01\x05\x00\x00\x00\x03" + b"\x82\x84\x86")
        await client.read_once()
        conn = held[0].connection
        assert conn is not None
        conn.write_headers(OK, headers(Content_Length="4"), b"done")
        conn.finish()
        await client.until_closed()
        frames = client.frames()
        answered = [f for f in frames if type(f).__name__ == "DataFrame" and f.stream_id == sid]
        assert answered and answered[0].data == b"done"
        assert not [f for f in frames if f.stream_id == 3 and type(f).__name__ == "HeadersFrame"]
        await client.close()

    async def _lingering(self) -> tuple[RawH2, Any]:
        # A client's GOAWAY with nothing in flight is answered with our EOF,
        # then the server waits (lingers) for the client's.
        client = await RawH2.connect(self.get_http_port())
        client.conn.close_connection()
        client.flush()
        await client.until_closed()  # our EOF
        (proto,) = self.http_server._connections
        assert proto._lingering and not proto._closed
        return client, proto

    @gen_test
    async def test_closing_while_waiting_for_the_clients_eof(self) -> None:
        # A shutdown in that wait ends the connection without writing after
        # our EOF: asyncio's transport raised RuntimeError, out of
        # close_all_connections.
        client, proto = await self._lingering()
        await self.http_server.close_all_connections()
        assert proto._closed and not self.http_server._connections
        await client.close()

    @gen_test
    async def test_draining_while_waiting_for_the_clients_eof(self) -> None:
        # The same wait, ended by a graceful stop (squall run's SIGTERM).
        client, proto = await self._lingering()
        assert await self.http_server.drain(timeout=HANG_GUARD) is True
        assert proto._closed and not self.http_server._connections
        await client.close()

    @gen_test
    async def test_close_when_the_client_is_already_gone(self) -> None:
        held: list[HTTPServerRequest] = []

        def handle(request: HTTPServerRequest) -> None:
            held.append(request)
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(Content_Length="2"), b"ok")
            conn.finish()

        self.handle = handle
        r = await self.fetch()
        assert r.status == 200
        proto = held[0].connection._proto  # type: ignore[union-attr]
        transport = proto.transport
        aborted: list[bool] = []

        def write_eof() -> None:
            raise OSError(107, "Transport endpoint is not connected")

        transport.write_eof = write_eof
        real_abort = transport.abort
        # Returns None as abort does: the compiled driver checks the type.
        transport.abort = lambda: (aborted.append(True), real_abort())[-1]
        proto._abort(linger=True)  # no exception escapes
        assert aborted == [True]

    @gen_test
    async def test_bad_request_content_length(self) -> None:
        # A Content-Length that is not one number is a 400 on its stream
        # (RFC 9110 §8.6: digits only; "+1" and "1_0" are not numbers).
        for value in ("1x", "+2", "1_0"):
            client = await RawH2.connect(self.get_http_port(), validate=False)
            with ExpectLog(
                "squall.general",
                "Malformed HTTP message.*invalid Content-Length",
                level=logging.INFO,
            ):
                sid = client.request(
                    "/", method="POST", headers=[("content-length", value)], body=b"1x"
                )
                r = client.responses[sid]
                await client.until(lambda r=r: r.ended or r.reset is not None)  # type: ignore[misc]
            assert r.status == 400, value
            await client.close()
        with ExpectLog("squall.general", "Malformed HTTP message.*too long", level=logging.INFO):
            r = await self.fetch(method="POST", headers=[("content-length", "5000")], end=False)
        # 413, as over HTTP/1.1 and HTTP/3.
        assert r.status == 413

    @gen_test
    async def test_body_over_max_body_size(self) -> None:
        self.handle = lambda request: None
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.general", "Malformed HTTP message.*too large", level=logging.INFO):
            sid = client.request("/", method="POST", body=b"z" * 800, end=False)
            client.conn.send_data(sid, b"z" * 800, end_stream=True)
            client.flush()
            r = client.responses[sid]
            await client.until(lambda: r.ended or r.reset is not None)
        assert r.status == 413
        await client.close()

    @gen_test
    async def test_body_in_chunk_size_pieces(self) -> None:
        def handle(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(), str(len(request.body)).encode())
            conn.finish()

        self.handle = handle
        r = await self.fetch(method="POST", body=b"q" * 900)
        assert r.body == b"900"

    @gen_test
    async def test_expect_100_continue(self) -> None:
        def handle(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(), request.body)
            conn.finish()

        self.handle = handle
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/", method="POST", headers=[("expect", "100-continue")], end=False)
        await client.until(
            lambda: any(
                isinstance(e, h2.events.InformationalResponseReceived) for e in client.events
            )
        )
        client.conn.send_data(sid, b"after 100", end_stream=True)
        client.flush()
        r = client.responses[sid]
        await client.until(lambda: r.ended)
        assert r.body == b"after 100"
        await client.close()


class GzipTest(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        def app(request: HTTPServerRequest) -> None:
            conn = request.connection
            assert conn is not None
            conn.write_headers(OK, headers(), request.body)
            conn.finish()

        return app

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "decompress_request": True}

    @gen_test
    async def test_gzip_request_body(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        body = gzip.compress(b"unzipped " * 100)
        r = await client.fetch(
            "/", method="POST", headers=[("content-encoding", "gzip")], body=body
        )
        assert r.body == b"unzipped " * 100
        with ExpectLog("squall.general", "Malformed HTTP message.*gzip", level=logging.INFO):
            r = await client.fetch(
                "/", method="POST", headers=[("content-encoding", "gzip")], body=b"not gzip"
            )
        assert r.status == 400
        await client.close()


@stream_request_body
class Streaming(RequestHandler):
    def initialize(self, log: list[Any]) -> None:
        self.log = log

    async def prepare(self) -> None:
        timeout = self.get_argument("timeout", None)
        if timeout is not None:
            self.request.connection.set_body_timeout(float(timeout))
        await asyncio.sleep(0)  # data arrives meanwhile and waits in the inbox

    async def data_received(self, chunk: bytes) -> None:
        if chunk.startswith(b"boom"):
            raise ValueError("boom")
        self.log.append(len(chunk))
        await asyncio.sleep(0)

    def put(self) -> None:
        self.write(str(sum(self.log)))


class Bodiless(RequestHandler):
    def get(self) -> None:
        self.set_status(304)

    def head(self) -> None:
        self.set_header("Content-Length", "42")


class ClockMover(RequestHandler):
    """Moves the server's clock on while it runs: its request's read lasts that long."""

    def initialize(self, move: Callable[[], None]) -> None:
        self.move = move

    def get(self) -> None:
        self.move()
        self.write("moved")


class TimeoutTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.log: list[Any] = []
        return Application(
            [
                ("/stream", Streaming, {"log": self.log}),
                ("/bodiless", Bodiless),
                ("/move", ClockMover, {"move": lambda: self.clock_moves(0.75 * self.TIMEOUT)}),
            ]
        )

    def clock_moves(self, seconds: float) -> None:
        self.clock.offset += seconds

    # Far longer than any stall of a loaded machine: the tests that want
    # them to pass move the server's clock past them (tests/_clock.py).
    TIMEOUT = 60.0

    def get_httpserver_options(self) -> dict[str, Any]:
        return {
            "http2": True,
            "idle_connection_timeout": self.TIMEOUT,
            "body_timeout": self.TIMEOUT,
            "http2_limits": H2Limits(idle_stream_timeout=30 * self.TIMEOUT),
        }

    def setUp(self) -> None:
        super().setUp()
        self.clock = LoopClock(self.io_loop.asyncio_loop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        self.clock.close()
        super().tearDown()

    @gen_test
    async def test_streamed_body_waits_for_prepare(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/stream", method="PUT", body=b"a" * 5000)
        assert r.body == b"5000"
        await client.close()

    @gen_test
    async def test_data_received_raising_resets(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.application", "Uncaught exception"):
            r = await client.fetch("/stream", method="PUT", body=b"boom")
        assert r.reset == ErrorCode.INTERNAL_ERROR or r.status == 500
        await client.close()

    @gen_test
    async def test_bodiless_statuses(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/bodiless")
        assert (r.status, r.body) == (304, b"")
        r = await client.fetch("/bodiless", method="HEAD")
        assert (r.status, r.body, r.headers["content-length"]) == (200, b"", "42")
        await client.close()

    # gen_test's deadline is on the moved clock too: the time moved, and HANG_GUARD.
    @gen_test(timeout=HANG_GUARD + 2 * TIMEOUT)
    async def test_idle_connection_closed_with_goaway(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/bodiless")  # a round trip: the connection is served
        assert r.status == 304 and client.goaway is None
        await self.clock.advance(2 * self.TIMEOUT)
        await client.until_closed()
        assert client.goaway is not None and client.goaway.error_code == ErrorCode.NO_ERROR
        await client.close()

    @gen_test(timeout=HANG_GUARD + 4 * TIMEOUT)
    async def test_idle_time_counts_from_the_response_not_the_read(self) -> None:
        # The handler runs inside the read that brought its request (its
        # first step is synchronous) and moves the clock 0.75 TIMEOUT on: the
        # connection is idle from its response, not from the read's start.
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/move")
        r = client.responses[sid]
        # The client's deadline is on the moved clock too: past the move.
        await client.until(lambda: r.ended or r.reset is not None, DEADLINE + self.TIMEOUT)
        assert (r.status, r.body) == (200, b"moved")
        # 1.25 TIMEOUT after the read began, 0.5 after the response: kept.
        await self.clock.advance(0.5 * self.TIMEOUT)
        # A PING's answer (no stream: the idle time goes on) proves it open.
        client.conn.ping(b"idle-chk")
        client.flush()
        await client.until(
            lambda: any(isinstance(e, h2.events.PingAckReceived) for e in client.events)
        )
        assert client.goaway is None and not client.closed
        # Idle for longer than TIMEOUT after the response: closed.
        await self.clock.advance(self.TIMEOUT)
        await client.until_closed()
        assert client.goaway is not None and client.goaway.error_code == ErrorCode.NO_ERROR
        await client.close()

    @gen_test(timeout=HANG_GUARD + 2 * TIMEOUT)
    async def test_body_timeout(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog(
            "squall.general", "HTTP/2 stream .*not completed in time", level=logging.INFO
        ):
            sid = client.request("/stream", method="PUT", body=b"x", end=False)
            r = client.responses[sid]
            await client.fetch("/bodiless")  # a round trip: the body's start is in
            assert r.reset is None  # not before the body timeout
            await self.clock.advance(2 * self.TIMEOUT)
            await client.until(lambda: r.reset is not None)
        assert r.reset == ErrorCode.CANCEL
        await client.close()

    async def stalled_upload(self, path: str) -> Any:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request(path, method="PUT", body=b"x", end=False)
        await client.fetch("/bodiless")  # a round trip: the body's start is in
        return client, client.responses[sid]

    @gen_test(timeout=HANG_GUARD + 2 * TIMEOUT)
    async def test_body_timeout_cuts_at_its_time(self) -> None:
        # As over HTTP/1.1 (a timer per request): the body is cut when its
        # time is up, not at the connection's next look at its timeouts (a
        # quarter of its shortest timeout later: 15 s here).
        client, r = await self.stalled_upload("/stream")
        await self.stalled_then_due(client, r, self.TIMEOUT)

    @gen_test(timeout=HANG_GUARD + 2 * TIMEOUT)
    async def test_a_body_timeout_set_in_prepare_cuts_at_its_time(self) -> None:
        client, r = await self.stalled_upload(f"/stream?timeout={self.TIMEOUT / 2}")
        await self.stalled_then_due(client, r, self.TIMEOUT / 2)

    async def stalled_then_due(self, client: RawH2, r: Any, timeout: float) -> None:
        # Just before the deadline the connection looks at its timeouts (a
        # late look, the clock having jumped): not due yet.
        await self.clock.advance(timeout - 0.01 * self.TIMEOUT)
        assert r.reset is None
        with ExpectLog(
            "squall.general", "HTTP/2 stream .*not completed in time", level=logging.INFO
        ):
            await self.clock.advance(0.02 * self.TIMEOUT)
            # A round trip: what the server did by now has come in.
            await client.fetch("/bodiless")
        assert r.reset == ErrorCode.CANCEL
        await client.close()


class DrainTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.release = asyncio.Event()
        release = self.release

        class Slow(RequestHandler):
            async def get(self) -> None:
                await release.wait()
                self.write("done")

        return Application([("/slow", Slow)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_drain_lets_streams_finish(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/slow")
        await condition(lambda: any(c.census()[1] for c in self.http_server._connections))
        (conn,) = self.http_server._connections
        conn._drain(None)
        await client.until(lambda: client.goaway is not None)
        assert client.goaway is not None and client.goaway.last_stream_id == sid
        self.release.set()
        # h2's client stops parsing at a GOAWAY; read the frames that follow.
        await client.until_closed()
        data = [f for f in client.frames() if f.stream_id == sid and f.type == 0]
        assert b"".join(f.data for f in data) == b"done"
        assert "END_STREAM" in data[-1].flags
        await client.close()

    @gen_test
    async def test_server_drain(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/slow")
        await condition(lambda: any(c.census()[1] for c in self.http_server._connections))
        draining = asyncio.ensure_future(self.http_server.drain(timeout=HANG_GUARD))
        await client.until(lambda: client.goaway is not None)
        self.release.set()
        await client.until_closed()
        data = [f for f in client.frames() if f.stream_id == sid and f.type == 0]
        assert b"".join(f.data for f in data) == b"done"
        await client.close()
        assert await asyncio.wait_for(draining, HANG_GUARD) is True

    @gen_test
    async def test_hard_close(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        client.request("/slow")
        await condition(lambda: any(c.census()[1] for c in self.http_server._connections))
        (conn,) = self.http_server._connections
        conn._hard_close()
        await client.until_closed()
        await condition(lambda: not self.http_server._connections)
        await client.close()

    @gen_test
    async def test_bad_upgrade_settings(self) -> None:
        with ExpectLog(
            "squall.general", "Malformed HTTP message.*HTTP2-Settings", level=logging.INFO
        ):
            head = await http1_head(
                self.get_http_port(),
                b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AB\r\n\r\n",
            )
        assert head.startswith(b"HTTP/1.1 400 ")

    @gen_test
    async def test_preface_split_across_reads(self) -> None:
        client = await RawH2.connect(self.get_http_port(), preface=False)
        client.conn.initiate_connection()
        data = client.conn.data_to_send()
        for i in range(0, 30, 3):
            client.write_raw(data[i : i + 3])
            await client.writer.drain()
            await asyncio.sleep(0)
        client.write_raw(data[30:])
        self.release.set()
        r = await client.fetch("/slow")
        assert r.body == b"done"
        await client.close()


class HandlerCloseTest(AsyncHTTPTestCase):
    """A RequestHandler sets an HTTP/2 stream's close callback as a plain
    attribute, once its first step has returned; a stream reset by that
    step's own calls still reaches on_connection_close (tests/_first_step.py)."""

    def get_app(self) -> Application:
        self.events: list[str] = []
        events = self.events

        class BrokenLength(RequestHandler):
            # The stream is reset for a body longer than the Content-Length.
            async def get(self) -> None:
                self.gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self.set_header("Content-Length", "2")
                self.write("too long")
                try:
                    self.flush()
                except HTTPOutputError:
                    events.append("refused")
                await self.gone
                events.append("woken")

            def on_connection_close(self) -> None:
                events.append("closed")
                self.gone.set_result(None)

        class Finished(RequestHandler):
            def get(self) -> None:
                self.write("ok")

            def on_connection_close(self) -> None:
                events.append("closed")

        return Application(
            [
                ("/self", ResetsItself, {"events": events}),
                ("/length", BrokenLength),
                ("/ok", Finished),
            ]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    async def fetch(self, path: str) -> Any:
        client = await RawH2.connect(self.get_http_port())
        try:
            return await client.fetch(path)
        finally:
            await client.close()

    @gen_test
    async def test_close_in_the_first_step_reaches_the_waiting_handler(self) -> None:
        r = await self.fetch("/self")
        assert r.reset == ErrorCode.CANCEL
        await condition(lambda: "woken" in self.events)
        assert self.events == ["_H2Stream True", "reset", "closed", "woken"]

    @gen_test
    async def test_broken_length_in_the_first_step_reaches_the_waiting_handler(self) -> None:
        r = await self.fetch("/length")
        assert r.reset == ErrorCode.INTERNAL_ERROR
        await condition(lambda: "woken" in self.events)
        assert self.events == ["refused", "closed", "woken"]

    @gen_test
    async def test_a_finished_handler_hears_nothing(self) -> None:
        r = await self.fetch("/ok")
        assert r.status == 200 and r.body == b"ok"
        # The connection closed after the response: no close to report.
        await condition(lambda: not self.http_server._connections)
        assert self.events == []


class WritePauseTest(AsyncHTTPTestCase):
    """Back-pressure from the transport: writes wait while it is paused."""

    def get_app(self) -> Application:
        self.waiting = asyncio.Event()
        self.go = asyncio.Event()
        self.flushed = asyncio.Event()
        test = self

        class Writer(RequestHandler):
            async def get(self) -> None:
                test.waiting.set()
                await test.go.wait()
                self.write("x")
                await self.flush()
                test.flushed.set()

        return Application([("/", Writer)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_flush_waits_for_resume_writing(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/")
        await asyncio.wait_for(self.waiting.wait(), HANG_GUARD)
        (conn,) = self.http_server._connections
        conn.pause_writing()
        self.go.set()
        await condition(lambda: any(s.writers_waiting() for s in conn._streams.values()))
        assert not self.flushed.is_set()
        conn.resume_writing()
        await asyncio.wait_for(self.flushed.wait(), HANG_GUARD)
        r = client.responses[sid]
        await client.until(lambda: r.ended)
        assert r.body == b"x"
        await client.close()


class EarlyResponder(HTTPMessageDelegate):
    """Answers as soon as the head arrives, before the body."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection

    def headers_received(self, start_line: Any, headers: HTTPHeaders) -> None:
        self.connection.write_headers(OK, HTTPHeaders({"Content-Length": "5"}), b"early")
        self.connection.finish()

    def data_received(self, chunk: bytes) -> None:
        raise AssertionError("the body is not wanted")


class EarlyApp(HTTPServerConnectionDelegate):
    def start_request(self, server_conn: object, request_conn: Any) -> HTTPMessageDelegate:
        return EarlyResponder(request_conn)


class EarlyResponseTest(AsyncHTTPTestCase):
    def get_app(self) -> Any:
        return EarlyApp()

    SEND_TIMEOUT = 60.0  # the test moves the server's clock past it (tests/_clock.py)

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "http2_limits": H2Limits(send_timeout=self.SEND_TIMEOUT)}

    def setUp(self) -> None:
        super().setUp()
        self.clock = LoopClock(self.io_loop.asyncio_loop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        self.clock.close()
        super().tearDown()

    @gen_test
    async def test_response_before_the_body_resets_with_no_error(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/", method="POST", end=False)
        r = client.responses[sid]
        await client.until(lambda: r.ended)
        assert r.body == b"early"
        await client.until(lambda: r.reset is not None)
        assert r.reset == ErrorCode.NO_ERROR
        await client.close()

    @gen_test
    async def test_malformed_head_is_logged_and_reset(self) -> None:
        client = await RawH2.connect(self.get_http_port(), validate=False)
        with ExpectLog(
            "squall.general", "Malformed HTTP/2 request.*invalid field name", level=logging.INFO
        ):
            sid = client.request("/", headers=[("Bad-Name", "x")])
            r = client.responses[sid]
            await client.until(lambda: r.reset is not None)
        assert r.reset == ErrorCode.PROTOCOL_ERROR
        await client.close()

    # gen_test's deadline is on the moved clock too: the time moved, and HANG_GUARD.
    @gen_test(timeout=HANG_GUARD + 2 * SEND_TIMEOUT)
    async def test_client_that_never_reads_is_dropped(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        await client.fetch("/")
        (conn,) = self.http_server._connections
        with ExpectLog("squall.general", "HTTP/2 client .* does not read", level=logging.INFO):
            conn.pause_writing()  # as if the socket buffer stayed full
            await self.clock.advance(self.SEND_TIMEOUT / 2)
            assert self.http_server._connections  # not before the send timeout
            await self.clock.advance(self.SEND_TIMEOUT)
            await condition(lambda: not self.http_server._connections)
        await client.close()


class LimitsBodyTest(AsyncHTTPTestCase):
    """HTTP/2's body limit is H2Limits.max_body_size when the server's
    ``max_body_size`` option is not given."""

    def get_app(self) -> Any:
        return lambda request: None

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "http2_limits": H2Limits(max_body_size=500)}

    @gen_test
    async def test_body_over_the_limits_max_body_size(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.general", "Malformed HTTP message.*too large", level=logging.INFO):
            sid = client.request("/", method="POST", body=b"z" * 400, end=False)
            client.conn.send_data(sid, b"z" * 400, end_stream=True)
            client.flush()
            r = client.responses[sid]
            await client.until(lambda: r.ended or r.reset is not None)
        assert r.status == 413
        await client.close()


def test_limits_max_body_size_default_and_range() -> None:
    from squall._h1 import H1Limits

    # The same default as HTTP/1.1's, now held by HTTP/2's own limits.
    assert H2Limits().max_body_size == H1Limits().max_body_size
    with pytest.raises(ValueError, match="max_body_size must be positive"):
        H2Limits(max_body_size=0)
