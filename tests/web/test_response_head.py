"""The response head on the server's fast path: rendered once, checked only where needed."""

from __future__ import annotations

import logging
import socket
from typing import Any, Optional

import pytest

from squall._h1 import EndOfMessage, H1Connection, LocalProtocolError, Request
from squall.httputil import HTTPHeaders
from squall.httputil._response import _ResponseHeaders
from squall.log import app_log
from squall.testing import AsyncHTTPTestCase, ExpectLog
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD


def _answering(request: bytes = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n") -> H1Connection:
    conn = H1Connection("server")
    conn.receive_data(request)
    assert isinstance(conn.next_event(), Request)
    assert isinstance(conn.next_event(), EndOfMessage)
    return conn


# -- _h1: send_head ---------------------------------------------------------------------


def test_send_head_renders_the_head_once_with_the_first_piece() -> None:
    conn = _answering()
    lines = ["Content-Type: text/plain\r\n", "Content-Length: 5\r\n"]
    out = conn.send_head(200, "OK", lines, ["5"], None, None, b"hel", True)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhel"
    assert conn.send_data(b"lo") == b"lo"
    assert conn.send_end() == b""
    assert conn.keep_alive


def test_send_head_adds_the_framing_it_owns() -> None:
    # No length: chunked, and the first piece framed as a chunk.
    conn = _answering()
    out = conn.send_head(200, "OK", ["X-A: 1\r\n"], None, None, None, b"ab")
    assert out == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n"
    # A known whole length becomes Content-Length.
    conn = _answering()
    out = conn.send_head(200, "OK", [], None, None, None, b"", True, 3)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    # An HTTP/1.0 keep-alive client is told the connection stays open.
    conn = _answering(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    out = conn.send_head(200, "OK", ["Content-Length: 0\r\n"], ["0"], None, None)
    assert out.endswith(b"Content-Length: 0\r\nConnection: Keep-Alive\r\n\r\n")


def test_send_head_checks_lines_it_is_not_told_are_checked() -> None:
    for line, message in [
        ("X-A: 1\r\nX-Injected: 2\r\n", "invalid character in value of header 'X-A'"),
        ("X-A: \x00\r\n", "invalid character in value of header 'X-A'"),
        ("Bad Name: 1\r\n", "invalid header name 'Bad Name'"),
    ]:
        conn = _answering()
        with pytest.raises(LocalProtocolError, match=message):
            conn.send_head(200, "OK", [line], None, None, None)
        # Nothing was sent: the response can still be made.
        assert conn.send_head(200, "OK", [], ["0"], None, None, b"", True).startswith(
            b"HTTP/1.1 200 OK"
        )


def test_send_head_framing_values_are_honoured_as_given() -> None:
    conn = _answering()
    out = conn.send_head(200, "OK", ["Content-Length:  2 \r\n"], [" 2 "], None, None, b"ok")
    assert out.endswith(b"\r\n\r\nok")
    assert conn.send_end() == b""
    conn = _answering()
    out = conn.send_head(
        200, "OK", ["Connection: close\r\n", "Content-Length: 0\r\n"], ["0"], None, ["close"]
    )
    assert out.count(b"Connection") == 1
    conn.send_end()
    assert not conn.keep_alive


# -- the headers object ---------------------------------------------------------------------


def test_response_headers_know_when_a_value_was_not_checked() -> None:
    headers = _ResponseHeaders()
    headers["X-A"] = "fine\tvalue"
    headers.add("X-B", "fine")
    assert not headers._unchecked
    headers["X-C"] = "bad\r\nX-Injected: 1"
    assert headers._unchecked
    other = _ResponseHeaders()
    other.add("X-D", 5)  # type: ignore[arg-type]
    assert other._unchecked
    # A copy is a plain HTTPHeaders: checked when written.
    assert type(headers.copy()) is HTTPHeaders
    assert isinstance(headers, HTTPHeaders)


# -- through a server -------------------------------------------------------------------


class DirectHeaderHandler(RequestHandler):
    def get(self) -> None:
        # Past set_header's check, through the headers object.
        self._headers["X-Bad"] = self.get_argument("value")
        self.write("body")


class EtagOverrideHandler(RequestHandler):
    def compute_etag(self) -> Optional[str]:
        return '"x"\r\nX-Injected: 1'

    def get(self) -> None:
        self.write("body")


class ManyHeadersHandler(RequestHandler):
    def get(self) -> None:
        self.set_header("X-One", "1")
        self.set_header("X-Tab", "a\tb")
        self.add_header("X-Two", "a")
        self.add_header("X-Two", "b")
        self.set_header("X-Num", 42)
        self.write("body")


class NoDictHandler(RequestHandler):
    reads: list[str] = []

    @property  # type: ignore[misc]
    def __dict__(self) -> Any:  # noqa: PLE0307
        # Reading an instance's __dict__ makes CPython build it, and every
        # later attribute access on the handler pays for that: the request
        # cycle must not do it.
        NoDictHandler.reads.append("read")
        return object.__getattribute__(self, "__dict__")

    def get(self) -> None:
        self.write("fast")


class _LoggingHeaders(HTTPHeaders):
    seen: list[str] = []

    def __setitem__(self, name: str, value: str) -> None:
        _LoggingHeaders.seen.append(name)
        super().__setitem__(name, value)


class OwnHeadersHandler(RequestHandler):
    def get(self) -> None:
        # An application's own headers object keeps its own __setitem__.
        self._headers = _LoggingHeaders(self._headers)
        self.set_header("X-Own", "yes")
        self.write("own")


class BodyWithoutContentHandler(RequestHandler):
    errors: list[str] = []

    def get(self) -> None:
        self.set_status(int(self.get_argument("status")))
        self.write("x")
        try:
            self.finish()
        except RuntimeError as exc:
            BodyWithoutContentHandler.errors.append(str(exc))
            raise


class ResponseHeadTest(AsyncHTTPTestCase):
    def setUp(self) -> None:
        access = logging.getLogger("squall.access")
        self._level = access.level
        access.setLevel(logging.CRITICAL)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        logging.getLogger("squall.access").setLevel(self._level)

    def get_app(self) -> Application:
        return Application(
            [
                ("/direct", DirectHeaderHandler),
                ("/etag", EtagOverrideHandler),
                ("/many", ManyHeadersHandler),
                ("/nodict", NoDictHandler),
                ("/own", OwnHeadersHandler),
                ("/nocontent", BodyWithoutContentHandler),
            ]
        )

    def raw(self, path: str) -> bytes:
        """The raw response (the connection is closed by the request)."""
        with socket.create_connection(("127.0.0.1", self.get_http_port())) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while True:
                data = self.io_loop.run_sync(
                    lambda: self.io_loop.run_in_executor(None, sock.recv, 65536), timeout=HANG_GUARD
                )
                if not data:
                    return b"".join(chunks)
                chunks.append(data)

    def test_a_safe_value_set_directly_is_sent(self) -> None:
        response = self.fetch("/direct?value=plain")
        assert response.code == 200
        assert response.headers["X-Bad"] == "plain"

    def test_an_unsafe_value_set_directly_is_refused(self) -> None:
        with ExpectLog(app_log, ".*", required=False):
            raw = self.raw("/direct?value=a%0D%0AX-Injected:%201")
        assert b"X-Injected" not in raw
        assert not raw.startswith(b"HTTP/1.1 200")

    def test_an_overridden_etag_is_checked(self) -> None:
        with ExpectLog(app_log, ".*", required=False):
            raw = self.raw("/etag")
        assert b"X-Injected" not in raw
        assert not raw.startswith(b"HTTP/1.1 200")

    def test_checked_headers_are_rendered_as_set(self) -> None:
        raw = self.raw("/many")
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 200 OK"
        assert b"X-One: 1" in lines
        assert b"X-Tab: a\tb" in lines
        assert lines.count(b"X-Two: a") == 1 and lines.count(b"X-Two: b") == 1
        assert b"X-Num: 42" in lines
        assert b"Content-Length: 4" in lines
        assert body == b"body"

    def test_the_request_cycle_does_not_read_the_handler_dict(self) -> None:
        NoDictHandler.reads.clear()
        response = self.fetch("/nodict")
        assert response.body == b"fast"
        assert "Etag" in response.headers
        assert NoDictHandler.reads == []

    def test_headers_an_application_put_in_place_keep_their_setitem(self) -> None:
        _LoggingHeaders.seen.clear()
        response = self.fetch("/own")
        assert response.body == b"own"
        assert response.headers["X-Own"] == "yes"
        # set_header went through the application's class.
        assert _LoggingHeaders.seen == ["X-Own"]
        assert "Etag" in response.headers

    def test_a_body_with_204_or_304_is_refused_in_tornados_words(self) -> None:
        # Tests and log filters written for Tornado match this message.
        BodyWithoutContentHandler.errors.clear()
        for status in (204, 304):
            with ExpectLog(app_log, "Uncaught exception"):
                response = self.fetch(f"/nocontent?status={status}")
            assert response.code == 500
        assert BodyWithoutContentHandler.errors == [
            "Cannot send body with status code HTTP204",
            "Cannot send body with status code HTTP304",
        ]
