"""The documentation's examples run: each file under docs/examples is imported
and driven here, so an example that stops working fails the suite.

The site itself is built by ``make docs`` (Sphinx, warnings as errors).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode

import squall.asgi
import squall.web
import squall.websocket
from squall.httpclient import HTTPRequest
from squall.httpserver import HTTPServer
from squall.testing import AsyncHTTPTestCase, bind_unused_port, gen_test

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def load(name: str) -> ModuleType:
    """Imports docs/examples/NAME.py under a private module name."""
    spec = importlib.util.spec_from_file_location(f"_docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


class HelloTest(AsyncHTTPTestCase):
    def get_app(self) -> squall.web.Application:
        app: squall.web.Application = load("hello").make_app()
        return app

    def test_hello(self) -> None:
        response = self.fetch("/")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.body, b"Hello, world")


class GuestbookTest(AsyncHTTPTestCase):
    def get_app(self) -> squall.web.Application:
        app: squall.web.Application = load("guestbook").make_app("test secret")
        return app

    def test_sign_in_and_post(self) -> None:
        page = self.fetch("/")
        self.assertEqual(page.code, 200)
        xsrf = re.search(rb'name="_xsrf" value="([^"]+)"', page.body)
        assert xsrf is not None
        cookie = page.headers["Set-Cookie"].split(";")[0]
        token = xsrf.group(1).decode()

        def post(path: str, cookies: str, **fields: str) -> tuple[int, str]:
            body = urlencode({"_xsrf": token, **fields})
            reply = self.fetch(
                path,
                method="POST",
                body=body,
                headers={"Cookie": cookies},
                follow_redirects=False,
                raise_error=False,
            )
            return reply.code, reply.headers.get("Set-Cookie", "")

        # Without a login a POST to an @authenticated method is forbidden
        # (a GET would be redirected to the login URL).
        code, _ = post("/sign", cookie, text="hi")
        self.assertEqual(code, 403)
        # Without the XSRF field the form is refused.
        refused = self.fetch("/login", method="POST", body="name=ann", raise_error=False)
        self.assertEqual(refused.code, 403)
        code, login = post("/login", cookie, name="ann")
        self.assertEqual(code, 302)
        cookies = f"{cookie}; {login.split(';')[0]}"
        code, _ = post("/sign", cookies, text="<b>hello</b>")
        self.assertEqual(code, 302)
        shown = self.fetch("/", headers={"Cookie": cookies}).body
        self.assertIn(b"Signed in as ann", shown)
        self.assertIn(b"ann: &lt;b&gt;hello&lt;/b&gt;", shown)


class ChatTest(AsyncHTTPTestCase):
    def get_app(self) -> squall.web.Application:
        app: squall.web.Application = load("chat").make_app()
        return app

    @gen_test
    async def test_socket_and_long_poll_see_a_post(self) -> None:
        url = f"ws://127.0.0.1:{self.get_http_port()}/socket"
        socket = await squall.websocket.websocket_connect(url)
        poll = self.http_client.fetch(self.get_url("/poll?seen=0"))
        posted = await self.http_client.fetch(
            self.get_url("/post"), method="POST", body="text=hello"
        )
        self.assertEqual(posted.code, 204)
        self.assertEqual(await socket.read_message(), "hello")
        self.assertEqual((await poll).body, b'{"messages": ["hello"]}')
        socket.write_message("from the socket")
        self.assertEqual(await socket.read_message(), "from the socket")
        caught_up = await self.http_client.fetch(self.get_url("/poll?seen=1"))
        self.assertEqual(caught_up.body, b'{"messages": ["from the socket"]}')
        socket.close()


class AsgiTest(AsyncHTTPTestCase):
    module = load("asgi_both_ways")

    def get_app(self) -> squall.web.Application:
        app: squall.web.Application = self.module.application
        return app

    def test_application(self) -> None:
        self.assertEqual(self.fetch("/").body, b'{"framework": "squall"}')

    @gen_test
    async def test_plain_asgi_app_served_by_squall(self) -> None:
        delegate = squall.asgi.ASGIServerDelegate(self.module.plain_asgi_app)
        sock, port = bind_unused_port()
        server = HTTPServer(delegate)
        server.add_sockets([sock])
        try:
            reply = await self.http_client.fetch(HTTPRequest(f"http://127.0.0.1:{port}/"))
            self.assertEqual(reply.body, b"served by squall")
        finally:
            server.stop()
            await server.close_all_connections()

    def test_adapter_is_an_asgi_app(self) -> None:
        self.assertIsInstance(self.module.asgi_app, squall.asgi.ASGIAdapter)


class FrontPageTest(AsyncHTTPTestCase):
    """docs/examples/app.py, the program the front page shows."""

    def get_app(self) -> squall.web.Application:
        app: squall.web.Application = load("app").app
        return app

    def test_page_and_websocket(self) -> None:
        response = self.fetch("/?name=squall")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.body, b'{"hello": "squall"}')

    @gen_test
    async def test_echo(self) -> None:
        url = f"ws://127.0.0.1:{self.get_http_port()}/echo"
        socket = await squall.websocket.websocket_connect(url)
        await socket.write_message("hi")
        self.assertEqual(await socket.read_message(), "you said: hi")
        socket.close()
