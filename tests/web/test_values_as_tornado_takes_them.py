"""Values a handler passes that Tornado takes by their number or truth.

Tornado formats a status code with ``%d``, tests ``strip`` by its truth in
the singular ``get_argument``, writes ``int(max_age)`` and nothing for a
false one, and stores a request's body limit and timeout as given: a
``201.0``, a ``strip=1``, a ``max_age=0`` or ``set_max_body_size(1e9)`` serve
there. Each ran on Squall into a closed connection, a TypeError of the
compiled build, or another header; these hold them on both builds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from squall.httpclient import HTTPResponse
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, HTTPError, RequestHandler, stream_request_body

CASES: dict[str, Callable[[RequestHandler], Any]] = {
    "status_float": lambda h: (h.set_status(201.0), h.write("x")),  # type: ignore[arg-type]
    "send_error_float": lambda h: h.send_error(404.0),  # type: ignore[arg-type]
    "http_error_float": lambda h: _raise(HTTPError(403.0)),  # type: ignore[arg-type]
    "strip_int": lambda h: h.write(h.get_argument("a", "none", strip=1)),  # type: ignore[call-overload]
    "query_strip_zero": lambda h: h.write(h.get_query_argument("a", "none", strip=0)),  # type: ignore[call-overload]
    "max_age_float": lambda h: (h.set_cookie("a", "b", max_age=10.7), h.write("x")),  # type: ignore[arg-type]
    "max_age_zero": lambda h: (h.set_cookie("a", "b", max_age=0), h.write("x")),
    "clear": lambda h: (h.clear_cookie("a"), h.write("x")),
    "body_limits": lambda h: (
        h.request.connection.set_max_body_size(1e9),  # type: ignore[union-attr,arg-type]
        h.request.connection.set_body_timeout(None),  # type: ignore[union-attr,arg-type]
        h.write("x"),
    ),
}


def _raise(error: Exception) -> None:
    raise error


class Case(RequestHandler):
    def get(self, name: str) -> None:
        CASES[name](self)


@stream_request_body
class Upload(RequestHandler):
    def prepare(self) -> None:
        self.size = 0
        # A float limit, as a program computes one (1.5 GiB); then a small one.
        self.request.connection.set_max_body_size(1.5 * 1024**3)  # type: ignore[union-attr,arg-type]
        if self.get_argument("small", None):
            self.request.connection.set_max_body_size(10.0)  # type: ignore[union-attr,arg-type]

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def put(self) -> None:
        self.write(str(self.size))


class ValuesAsTornadoTakesThem(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/upload", Upload), ("/(.*)", Case)], cookie_secret="s")

    def get(self, name: str, query: str = "") -> HTTPResponse:
        return self.fetch(f"/{name}{query}", follow_redirects=False)

    def test_a_status_code_given_as_another_number(self) -> None:
        assert self.get("status_float").code == 201
        response = self.get("send_error_float")
        assert response.code == 404
        assert b"<title>404: Not Found</title>" in response.body
        assert self.get("http_error_float").code == 403
        assert str(HTTPError(403.0)) == "HTTP 403: Forbidden"  # type: ignore[arg-type]

    def test_strip_by_its_truth_in_the_singular_getters(self) -> None:
        assert self.get("strip_int", "?a=+v+").body == b"v"
        assert self.get("query_strip_zero", "?a=+v+").body == b" v "

    def test_max_age_whole_seconds_and_none_for_zero(self) -> None:
        assert self.get("max_age_float").headers["Set-Cookie"] == "a=b; Max-Age=10; Path=/"
        assert self.get("max_age_zero").headers["Set-Cookie"] == "a=b; Path=/"
        cleared = self.get("clear").headers["Set-Cookie"]
        assert cleared.startswith('a=""; expires=') and "Max-Age" not in cleared

    def test_a_requests_body_limit_and_timeout_as_given(self) -> None:
        assert self.get("body_limits").body == b"x"
        response = self.fetch("/upload", method="PUT", body=b"z" * 100_000)
        assert response.body == b"100000"
        response = self.fetch("/upload?small=1", method="PUT", body=b"z" * 11)
        assert response.code == 400
