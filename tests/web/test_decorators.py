"""authenticated, removeslash, addslash and stream_request_body."""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import pytest

from squall import gen
from squall.concurrent import Future
from squall.iostream import IOStream
from squall.log import access_log, gen_log
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.web import (
    Application,
    HTTPError,
    RequestHandler,
    addslash,
    authenticated,
    removeslash,
    stream_request_body,
)
from squall.web.decorators import _has_stream_request_body


class Quiet(AsyncHTTPTestCase):
    def setUp(self) -> None:
        self._level = access_log.level
        access_log.setLevel(logging.CRITICAL)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        access_log.setLevel(self._level)


class Private(RequestHandler):
    def initialize(self, login_url: str = "", user: Any = None) -> None:
        self.login_url = login_url
        self.user = user

    def get_login_url(self) -> str:
        return self.login_url or super().get_login_url()

    def get_current_user(self) -> Any:
        return self.user

    @authenticated
    def get(self) -> None:
        self.write("secret")

    @authenticated
    def post(self) -> None:
        self.write("posted")


class AuthenticatedTest(Quiet):
    def get_app(self) -> Application:
        return Application(
            [
                ("/relative", Private, {"login_url": "/login"}),
                ("/absolute", Private, {"login_url": "http://example.com/login"}),
                ("/query", Private, {"login_url": "/login?from=app"}),
                ("/setting", Private),
                ("/member", Private, {"user": "ann"}),
            ],
            login_url="/from-settings",
        )

    def test_anonymous_get_is_redirected_with_next(self) -> None:
        response = self.fetch("/relative?a=1", follow_redirects=False)
        assert (response.code, response.headers["Location"]) == (
            302,
            "/login?next=%2Frelative%3Fa%3D1",
        )
        absolute = self.fetch("/absolute", follow_redirects=False).headers["Location"]
        assert re.fullmatch(
            r"http://example.com/login\?next=http%3A%2F%2F127.0.0.1%3A\d+%2Fabsolute", absolute
        )
        assert self.fetch("/query", follow_redirects=False).headers["Location"] == "/login?from=app"
        assert (
            self.fetch("/setting", follow_redirects=False)
            .headers["Location"]
            .startswith("/from-settings?next=")
        )

    def test_anonymous_post_is_forbidden(self) -> None:
        assert self.fetch("/relative", method="POST", body="").code == 403

    def test_logged_in_user_passes(self) -> None:
        assert self.fetch("/member").body == b"secret"
        assert self.fetch("/member", method="POST", body="").body == b"posted"


class Slashes(RequestHandler):
    @removeslash
    def get(self) -> None:
        self.write("removed")

    @removeslash
    def post(self) -> None:
        self.write("post")


class AddSlash(RequestHandler):
    @addslash
    def get(self) -> None:
        self.write("added")

    @addslash
    def post(self) -> None:
        self.write("post")


class SlashTest(Quiet):
    def get_app(self) -> Application:
        return Application([("/+rem.*", Slashes), ("/", Slashes), ("/+add.*", AddSlash)])

    def test_removeslash(self) -> None:
        response = self.fetch("/rem/", follow_redirects=False)
        assert (response.code, response.headers["Location"]) == (301, "/rem")
        response = self.fetch("/rem//?x=1", follow_redirects=False)
        assert response.headers["Location"] == "/rem?x=1"
        assert self.fetch("/rem").body == b"removed"
        assert self.fetch("/").body == b"removed"
        assert self.fetch("/rem/", method="POST", body="").code == 404
        assert self.fetch("/rem", method="POST", body="").body == b"post"

    def test_addslash(self) -> None:
        response = self.fetch("/add?x=1", follow_redirects=False)
        assert (response.code, response.headers["Location"]) == (301, "/add/?x=1")
        assert self.fetch("/add/").body == b"added"
        assert self.fetch("/add", method="POST", body="").code == 404
        assert self.fetch("/add/", method="POST", body="").body == b"post"

    def test_no_protocol_relative_redirects(self) -> None:
        for path in ("//add.example.com", "//rem.example.com/", "///rem.example.com/x/"):
            with ExpectLog(gen_log, ".*cannot redirect path"):
                assert self.fetch(path, follow_redirects=False).code == 403


def test_stream_request_body_only_decorates_handlers() -> None:
    with pytest.raises(TypeError, match="expected subclass of RequestHandler"):
        stream_request_body(int)
    with pytest.raises(TypeError, match="expected subclass of RequestHandler"):
        _has_stream_request_body(object)

    @stream_request_body
    class S(RequestHandler):
        pass

    assert _has_stream_request_body(S) and not _has_stream_request_body(RequestHandler)


@stream_request_body
class Upload(RequestHandler):
    def initialize(self, test: StreamingTest) -> None:
        self.test = test

    async def prepare(self) -> None:
        self.received: list[bytes] = []
        await gen.moment
        self.test.prepared.set_result(None)

    async def data_received(self, chunk: bytes) -> None:
        self.received.append(chunk)
        await gen.moment

    def put(self) -> None:
        self.write(b"".join(self.received))

    def on_connection_close(self) -> None:
        super().on_connection_close()
        if not self.test.closed.done():
            self.test.closed.set_result(None)


@stream_request_body
class Refuse(RequestHandler):
    def prepare(self) -> None:
        raise HTTPError(401)


@stream_request_body
class AnswerFromDataReceived(RequestHandler):
    """Answers from its first data_received, before the body's end is taken."""

    def initialize(self, test: StreamingTest) -> None:
        self.test = test

    def data_received(self, chunk: bytes) -> None:
        self.test.calls.append(f"data {len(chunk)}")
        if not self._finished:
            self.finish("early")

    def put(self) -> None:
        self.test.calls.append("put")

    def on_finish(self) -> None:
        self.test.calls.append("on_finish")

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.test.calls.append("on_connection_close")
        if not self.test.closed.done():
            self.test.closed.set_result(None)


class StreamingTest(Quiet):
    def get_app(self) -> Application:
        return Application(
            [
                ("/upload", Upload, {"test": self}),
                ("/refuse", Refuse),
                ("/early", AnswerFromDataReceived, {"test": self}),
            ]
        )

    def setUp(self) -> None:
        super().setUp()
        self.prepared: Future[None] = Future()
        self.closed: Future[None] = Future()
        self.calls: list[str] = []

    def test_body_arrives_through_data_received(self) -> None:
        response = self.fetch("/upload", method="PUT", body=b"x" * 100_000)
        assert response.code == 200 and response.body == b"x" * 100_000

    def test_prepare_can_refuse_the_body(self) -> None:
        assert self.fetch("/refuse", method="PUT", body=b"data").code == 401

    @gen_test
    async def test_close_during_upload_is_reported(self) -> None:
        sock = socket.socket()
        stream = IOStream(sock)
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(
            b"PUT /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n"
        )
        await self.prepared
        stream.close()
        await self.closed

    @gen_test
    async def test_answer_from_data_received_with_the_whole_body_skips_the_method(
        self,
    ) -> None:
        # The whole body comes in one read with its end: the handler answers
        # from data_received before that end is taken. As on Tornado, the
        # method does not run (it would write after finish()), the
        # connection closes after the answer, and the handler hears of it.
        sock = socket.socket()
        stream = IOStream(sock)
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(
            b"PUT /early HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
        )
        answer = await stream.read_until_close()
        await self.closed
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"\r\n\r\nearly")
        assert self.calls == ["data 10", "on_finish", "on_connection_close"]
