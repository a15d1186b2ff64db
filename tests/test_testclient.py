"""squall.testclient.TestClient: an Application driven in-process, without a socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from squall import web
from squall.testclient import TestClient, TestResponse
from squall.testing import ExpectLog


class Echo(web.RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "args": {k: self.get_arguments(k) for k in self.request.arguments},
                "host": self.request.host,
                "ip": self.request.remote_ip,
                "protocol": self.request.protocol,
                "agent": self.request.headers.get("User-Agent"),
                "cookies": {k: v.value for k, v in self.request.cookies.items()},
            }
        )

    def head(self) -> None:
        self.get()

    def post(self) -> None:
        self.set_header("Content-Type", "text/plain; charset=latin-1")
        self.write(f"{self.request.headers.get('Content-Type')}|".encode() + self.request.body)

    def put(self) -> None:
        self.write({"form": self.get_body_argument("a", None), "json": self.request.body.decode()})


class Cookies(web.RequestHandler):
    def get(self, action: str) -> None:
        if action == "set":
            self.set_cookie("a", "1")
            self.set_cookie("b", "2")
        elif action == "clear":
            self.clear_cookie("a")
        self.write("ok")


class Redirect(web.RequestHandler):
    def get(self) -> None:
        self.redirect("/echo?from=redirect")

    def post(self) -> None:
        self.redirect("/echo?from=post", status=303)


class Slow(web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)  # a real await: the handler is a coroutine
        self.write("part1,")
        await self.flush()
        self.write("part2")


class Boom(web.RequestHandler):
    def get(self) -> None:
        raise ZeroDivisionError("boom")


class Form(web.RequestHandler):
    def get(self) -> None:
        self.write(self.xsrf_token)

    def post(self) -> None:
        self.write("posted " + self.get_body_argument("x"))


class Socket(web.RequestHandler):
    def get(self) -> None:
        self.request.connection.detach()  # type: ignore[union-attr]


def make_app(**settings: Any) -> web.Application:
    return web.Application(
        [
            (r"/echo", Echo),
            (r"/cookies/(\w+)", Cookies),
            (r"/redirect", Redirect),
            (r"/slow", Slow),
            (r"/boom", Boom),
            (r"/form", Form),
            (r"/socket", Socket),
        ],
        **settings,
    )


@pytest.fixture
def client() -> Any:
    with TestClient(make_app(), headers={"User-Agent": "tc"}) as c:
        yield c


def test_get_with_params_and_headers(client: TestClient) -> None:
    response = client.get("/echo?a=1", params={"a": "2", "b": ["x", "y"]})
    assert response.status_code == response.code == 200
    assert response.reason == "OK"
    assert response.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert response.json() == {
        "args": {"a": ["1", "2"], "b": ["x", "y"]},
        "host": "testserver",
        "ip": "127.0.0.1",
        "protocol": "http",
        "agent": "tc",
        "cookies": {},
    }
    assert response.url == "http://testserver/echo?a=1&a=2&b=x&b=y"


def test_bodies_json_and_form(client: TestClient) -> None:
    response = client.post("/echo", body=b"\xe9t\xe9")
    assert response.body == b"None|\xe9t\xe9"
    assert response.text == "None|été"  # decoded by the declared charset
    assert client.post("/echo", json={"k": 1}).text == 'application/json|{"k": 1}'
    assert client.put("/echo", data={"a": "b c"}).json() == {"form": "b c", "json": "a=b+c"}
    with pytest.raises(ValueError, match="at most one"):
        client.post("/echo", body=b"x", json=1)


def test_cookies_are_kept_and_cleared(client: TestClient) -> None:
    client.get("/cookies/set")
    assert client.cookies == {"a": "1", "b": "2"}
    assert client.get("/echo").json()["cookies"] == {"a": "1", "b": "2"}
    assert client.get("/echo", cookies={"b": "3"}).json()["cookies"] == {"a": "1", "b": "3"}
    client.get("/cookies/clear")
    assert client.cookies == {"b": "2"}


def test_redirects_followed_or_not(client: TestClient) -> None:
    response = client.get("/redirect")
    assert response.status_code == 200
    assert response.json()["args"] == {"from": ["redirect"]}
    assert [r.status_code for r in response.history] == [302]
    # 303 after a POST: a GET without the body.
    assert client.post("/redirect", body=b"x").json()["args"] == {"from": ["post"]}
    response = client.get("/redirect", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/echo?from=redirect"


def test_coroutine_handler_and_flushed_body(client: TestClient) -> None:
    assert client.get("/slow").body == b"part1,part2"


def test_head_has_no_body(client: TestClient) -> None:
    response = client.head("/echo")
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    assert response.body == b""


def test_errors_are_responses(client: TestClient) -> None:
    assert client.get("/nowhere").status_code == 404
    with ExpectLog("squall.application", "Uncaught exception"):
        response = client.get("/boom")
    assert response.status_code == 500
    with pytest.raises(AssertionError, match="500 Internal Server Error"):
        response.raise_for_status()
    with pytest.raises(ValueError, match="not JSON"):
        response.json()


def test_xsrf_form_round_trip() -> None:
    with TestClient(make_app(xsrf_cookies=True)) as client:
        with ExpectLog("squall.general", "403 POST"):
            assert client.post("/form", data={"x": "1"}).status_code == 403
        token = client.get("/form").text
        assert "_xsrf" in client.cookies
        response = client.post("/form", data={"x": "1", "_xsrf": token})
        assert response.text == "posted 1"


def test_no_socket_to_detach(client: TestClient) -> None:
    with ExpectLog("squall.application", "Uncaught exception"):
        assert client.get("/socket").status_code == 500


def test_urls_must_be_on_the_base(client: TestClient) -> None:
    assert client.get("http://testserver/echo").status_code == 200
    with pytest.raises(ValueError, match="not on the client's base URL"):
        client.get("http://elsewhere/echo")
    with pytest.raises(ValueError, match="must start with '/'"):
        client.get("echo")
    with pytest.raises(ValueError, match="base_url must be"):
        TestClient(make_app(), base_url="testserver")


def test_https_base_url_sets_protocol() -> None:
    with TestClient(make_app(), base_url="https://example.com:8443") as client:
        body = client.get("/echo").json()
    assert (body["protocol"], body["host"]) == ("https", "example.com:8443")


def test_sync_methods_refuse_a_running_loop_and_fetch_works_there() -> None:
    client = TestClient(make_app())

    async def inside() -> TestResponse:
        with pytest.raises(RuntimeError, match="await client.fetch"):
            client.get("/echo")
        return await client.fetch("/echo", params={"z": "1"})

    response = asyncio.run(inside())
    assert json.loads(response.body)["args"] == {"z": ["1"]}
    client.close()


def test_not_collected_as_tests() -> None:
    assert TestClient.__test__ is False
    assert TestResponse.__test__ is False


class Overlong(web.RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Length", "3")
        self.write(b"hello")


def test_body_longer_than_its_content_length_fails_as_behind_a_server() -> None:
    # Behind HTTPServer the connection is aborted mid-response; in-process
    # the request raises instead of returning a response that passes.
    with TestClient(web.Application([("/", Overlong)])) as client:
        with ExpectLog("squall.application", "Uncaught exception"):
            with pytest.raises(ConnectionError, match="Content-Length"):
                client.get("/")
