"""One Application behind HTTPServer(http2=True): what a handler does gives
the same answer over HTTP/2 as over HTTP/1.1, where HTTP/2 can carry it.

Each case is sent once over HTTP/1.1 (the test's client) and once over
HTTP/2 (a raw h2 connection), and the two answers are compared: status,
body, and the fields a client reads. The protocol differences themselves
(no reason phrase, no 101, no detach of a plain stream) are stated in
tests/COMPAT.md.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall._h2 import ErrorCode  # noqa: E402
from squall.concurrent import Future  # noqa: E402
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler, stream_request_body  # noqa: E402
from squall.web import HTTPError as web_HTTPError  # noqa: E402

from ._client import RawH2  # noqa: E402

ERROR_PAGE = b"<html><title>500: Internal Server Error</title>"


class Status(RequestHandler):
    def get(self, code: str) -> None:
        self.set_status(int(code))

    head = get


class RaiseStatus(RequestHandler):
    def get(self, code: str) -> None:
        # An error page whose own status cannot be sent.
        raise web_HTTPError(int(code))


class NonLatin(RequestHandler):
    def get(self) -> None:
        if self.get_argument("status", None):
            self.set_status(int(self.get_argument("status")))
        self.set_header("X-Snow", "\u2603")

    head = get


class Padded(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Padded", " v \t")
        self.add_header("X-Tab", "a\tb")
        self.write("ok")


class Detach(RequestHandler):
    async def get(self) -> None:
        self.detach()


class Seen(RequestHandler):
    def get(self) -> None:
        self.application.settings["seen"] = self.request.headers.get("X-C")
        self.write("seen")


class ParityTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [
                (r"/status/(\d+)", Status),
                (r"/raise/(\d+)", RaiseStatus),
                ("/nonlatin", NonLatin),
                ("/padded", Padded),
                ("/detach", Detach),
                ("/seen", Seen),
            ]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    async def h2(self, validate: bool = True) -> RawH2:
        client = await RawH2.connect(self.get_http_port(), validate=validate)
        # Read what the server sends as it is: a malformed field must show
        # in the assertions, not as a client error and a wait.
        client.conn.config.validate_inbound_headers = False
        return client

    @gen_test
    async def test_a_final_status_http2_cannot_carry_is_the_500_http1_gives(self) -> None:
        # 99 is no status at all (HTTP/1.1 refuses it); HTTP/2 has no 101
        # (RFC 9113 §8.6). Both were sent as :status over HTTP/2, which
        # clients take as a broken connection, and the access log said 99.
        with ExpectLog("squall.application", "Uncaught exception"):
            r1 = await self.http_client.fetch(self.get_url("/status/99"), raise_error=False)
        assert r1.code == 500
        client = await self.h2()
        for code in ("99", "101"):
            with ExpectLog("squall.application", "Uncaught exception"):
                r = await client.fetch(f"/status/{code}")
            assert r.status == 500, code
            assert r.body.startswith(ERROR_PAGE)
            assert r.headers["content-length"] == str(len(r.body))
            assert r.body == r1.body
        await client.close()

    @gen_test
    async def test_an_error_page_whose_status_cannot_go_is_the_500_page(self) -> None:
        # raise HTTPError(99): the error page itself cannot be sent. The
        # client got nothing and waited, on HTTP/1.1 and on HTTP/2.
        with ExpectLog("squall.application", "Exception in exception handler"):
            r1 = await self.http_client.fetch(self.get_url("/raise/99"), raise_error=False)
        assert r1.code == 500
        client = await self.h2()
        for code in ("99", "101"):
            with ExpectLog("squall.application", "Exception in exception handler"):
                r = await client.fetch(f"/raise/{code}")
            assert r.status == 500, code
            assert r.body == r1.body
        await client.close()

    @gen_test
    async def test_a_value_outside_latin1_is_a_500_on_both(self) -> None:
        with ExpectLog("squall.application", "Uncaught exception"):
            r1 = await self.http_client.fetch(self.get_url("/nonlatin"), raise_error=False)
        assert r1.code == 500
        client = await self.h2()
        with ExpectLog("squall.application", "Uncaught exception"):
            r = await client.fetch("/nonlatin")
        # (It went out as its UTF-8 bytes with a 200.)
        assert r.status == 500
        assert r.body == r1.body
        assert "x-snow" not in r.headers
        await client.close()

    @gen_test
    async def test_a_refused_head_keeps_the_request_bodiless_or_not(self) -> None:
        # The 204 made the response bodiless; once its head is refused the
        # error page of a GET has its body again, and a HEAD's has none.
        client = await self.h2()
        with ExpectLog("squall.application", "Uncaught exception"):
            r = await client.fetch("/nonlatin?status=204")
        assert r.status == 500
        assert r.body.startswith(ERROR_PAGE)
        assert r.headers["content-length"] == str(len(r.body))
        with ExpectLog("squall.application", "Uncaught exception"):
            r = await client.fetch("/nonlatin?status=204", method="HEAD")
        assert r.status == 500
        assert r.body == b""
        await client.close()

    @gen_test
    async def test_whitespace_around_a_value_is_not_sent(self) -> None:
        # An HTTP/1.1 reader drops it; over HTTP/2 it made the response
        # malformed (RFC 9113 §8.2.1), which h2 and nghttp2 clients reject.
        r1 = await self.http_client.fetch(self.get_url("/padded"))
        assert r1.headers["X-Padded"] == "v"
        client = await self.h2()
        r = await client.fetch("/padded")
        assert r.status == 200 and r.body == b"ok"
        assert r.headers["x-padded"] == "v"
        assert r.headers["x-tab"] == "a\tb"
        await client.close()

    @gen_test
    async def test_detach_of_a_plain_stream_fails_with_a_500_not_a_hang(self) -> None:
        # The handler was marked finished before the stream refused, so no
        # error page followed and the stream stayed open for good.
        client = await self.h2()
        with ExpectLog("squall.application", "Uncaught exception"):
            r = await client.fetch("/detach")
        assert r.status == 500
        assert r.body.startswith(ERROR_PAGE)
        await client.close()

    @gen_test
    async def test_a_detach_that_raises_leaves_the_handler_unfinished(self) -> None:
        seen: list[Any] = []

        class Fallback(RequestHandler):
            def get(self) -> None:
                try:
                    self.detach()
                except Exception as exc:
                    seen.append(str(exc))
                    self.set_status(400)
                    self.finish("not here")

        self._app.add_handlers(".*", [("/fallback", Fallback)])
        client = await self.h2()
        r = await client.fetch("/fallback")
        assert r.status == 400 and r.body == b"not here"
        assert seen == ["an HTTP/2 stream cannot be detached"]
        await client.close()

    @gen_test
    async def test_control_characters_in_a_request_value_are_refused(self) -> None:
        # HTTP/1.1 answers 400 (as Tornado since 6.5); HTTP/2 took any
        # control character but NUL, CR and LF into request.headers.
        client = await self.h2(validate=False)
        for value in ("a\x01b", "a\x7fb", "a\x1bb"):
            with ExpectLog(
                "squall.general", "Malformed HTTP/2 request.*invalid value", level=logging.INFO
            ):
                sid = client.request("/seen", headers=[("x-c", value)])
                reset = client.responses[sid]
                await client.until(lambda: reset.reset is not None)  # noqa: B023
            assert reset.reset == ErrorCode.PROTOCOL_ERROR
        assert "seen" not in self._app.settings
        # A tab inside, and obs-text (sent as the octet 0xE9), are taken.
        r = await client.fetch("/seen", headers=[(b"x-c", b"a\tb\xe9")])  # type: ignore[list-item]
        assert r.body == b"seen"
        assert self._app.settings["seen"] == "a\tb\xe9"
        await client.close()


@stream_request_body
class Upload(RequestHandler):
    """Streams its body; ``?limit=`` sets the request's body limit in prepare()."""

    def initialize(self, test: StreamingParityTest) -> None:
        self.test = test
        self.size = 0

    def prepare(self) -> None:
        self.test.calls.append("prepare")
        limit = self.get_argument("limit", None)
        if limit is not None:
            self.request.connection.set_max_body_size(int(limit))

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def post(self) -> None:
        self.write(str(self.size))

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.test.calls.append("on_connection_close")
        if not self.test.closed.done():
            self.test.closed.set_result(None)


@stream_request_body
class AnswerEarly(RequestHandler):
    """Answers from its first data_received, before the body's end."""

    def initialize(self, test: StreamingParityTest) -> None:
        self.test = test

    def data_received(self, chunk: bytes) -> None:
        if not self._finished:
            self.finish("early")

    def post(self) -> None:
        self.test.calls.append("post")

    def on_finish(self) -> None:
        self.test.calls.append("on_finish")

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.test.calls.append("on_connection_close")
        if not self.test.closed.done():
            self.test.closed.set_result(None)


class StreamingParityTest(AsyncHTTPTestCase):
    """A handler that streams its body sees the same over both protocols,
    also when the body (or a reset) comes in the read that brought the head,
    before the handler's prepare() has run."""

    def get_app(self) -> Application:
        return Application(
            [("/upload", Upload, {"test": self}), ("/early", AnswerEarly, {"test": self})]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "max_body_size": 20}

    def setUp(self) -> None:
        super().setUp()
        self.calls: list[str] = []
        self.closed: Future[None] = Future()

    async def post_h2(self, path: str, body: bytes) -> Any:
        client = await RawH2.connect(self.get_http_port())
        # Head and body in one write: they arrive before prepare() runs.
        r = await client.fetch(
            path, method="POST", headers=[("content-length", str(len(body)))], body=body
        )
        await client.close()
        return r

    @gen_test
    async def test_prepare_may_raise_the_body_limit(self) -> None:
        # The server's limit is 20; prepare() allows 100. HTTP/2 refused the
        # Content-Length with 413 before the handler had the request.
        r1 = await self.http_client.fetch(
            self.get_url("/upload?limit=100"), method="POST", body=b"x" * 30
        )
        assert r1.code == 200 and r1.body == b"30"
        r = await self.post_h2("/upload?limit=100", b"x" * 30)
        assert r.status == 200 and r.body == b"30"

    @gen_test
    async def test_prepare_may_lower_the_body_limit(self) -> None:
        # HTTP/2 counted the body against the limit as it came, before
        # prepare() lowered it, and took the whole body.
        with ExpectLog(
            "squall.general", "Malformed HTTP message.*Content-Length too long", level=logging.INFO
        ):
            r1 = await self.http_client.fetch(
                self.get_url("/upload?limit=5"), method="POST", body=b"x" * 10, raise_error=False
            )
        assert r1.code == 400  # (Tornado's status; HTTP/2 says 413)
        with ExpectLog(
            "squall.general", "Malformed HTTP message.*Content-Length too long", level=logging.INFO
        ):
            r = await self.post_h2("/upload?limit=5", b"x" * 10)
        assert r.status == 413
        assert self.calls == ["prepare", "on_connection_close"] * 2

    @gen_test
    async def test_a_reset_before_prepare_ran_is_reported_after_it(self) -> None:
        # Head, body and reset in one write: the reset reached the handler's
        # on_connection_close before its prepare() had run.
        client = await RawH2.connect(self.get_http_port())
        sid = client.conn.get_next_available_stream_id()
        fields = [
            (":method", "POST"),
            (":path", "/upload"),
            (":scheme", "http"),
            (":authority", "localhost"),
            ("content-length", "10"),
        ]
        client.conn.send_headers(sid, fields)
        client.conn.send_data(sid, b"01234")
        client.conn.reset_stream(sid)
        client.flush()
        await self.closed
        assert self.calls == ["prepare", "on_connection_close"]
        await client.close()

    @gen_test
    async def test_an_answer_before_the_body_end_reports_the_close(self) -> None:
        # Over HTTP/1.1 the connection closes after such an answer and the
        # handler hears of it; over HTTP/2 the rest of the stream is reset
        # and the handler heard nothing: its Task waited for the body's end
        # for good (held, with the handler and its request).
        client = await RawH2.connect(self.get_http_port())
        sid = client.request(
            "/early", method="POST", headers=[("content-length", "10")], body=b"01234", end=False
        )
        r = client.responses[sid]
        await client.until(lambda: r.ended)
        await self.closed
        assert r.status == 200 and r.body == b"early"
        assert self.calls == ["on_finish", "on_connection_close"]
        await client.close()
