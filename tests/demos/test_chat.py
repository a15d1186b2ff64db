"""The chat demo end to end: login, XSRF, long polling, WebSocket, escaping."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from typing import Any, Optional

import pytest

from squall.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from squall.ioloop import IOLoop
from squall.iostream import IOStream
from squall.tcpclient import TCPClient
from squall.websocket import websocket_connect

from .._wait import HANG_GUARD
from ._util import load, run, start_demo, stop

chat = load("chat/app.py")
SECRET = "test-cookie-secret"


class Browser:
    """An HTTP client that keeps cookies, as the chat page's visitor would."""

    def __init__(self, base: str, http: AsyncHTTPClient) -> None:
        self.base = base
        self.http = http
        self.cookies: dict[str, str] = {}

    @property
    def xsrf(self) -> str:
        return self.cookies["_xsrf"]

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def fetch(self, path: str, *, form: Optional[dict[str, str]] = None) -> HTTPResponse:
        headers = {"Cookie": self.cookie_header()} if self.cookies else {}
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
        request = HTTPRequest(
            self.base + path,
            method="GET" if form is None else "POST",
            headers=headers,
            body=body,
            follow_redirects=False,
            request_timeout=LIMIT_REQUEST,
        )
        response = await self.http.fetch(request, raise_error=False)
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                if morsel["expires"] and "1970" in morsel["expires"] or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def login(self, name: str) -> HTTPResponse:
        await self.fetch("/login")  # sets the _xsrf cookie
        return await self.fetch("/login?next=%2F", form={"_xsrf": self.xsrf, "name": name})

    async def post(self, path: str, **fields: str) -> dict[str, Any]:
        response = await self.fetch(path, form={"_xsrf": self.xsrf, **fields})
        assert response.code == 200, (response.code, response.reason)
        data: dict[str, Any] = json.loads(response.body)
        return data


LIMIT_REQUEST = HANG_GUARD  # a bound on a request that hangs, not a measure of speed


@asynccontextmanager
async def chat_server(**settings: Any) -> AsyncIterator[tuple[Any, str, AsyncHTTPClient]]:
    app = chat.make_app(cookie_secret=SECRET, **settings)
    server, url = chat.listen(app, 0, "127.0.0.1")
    http = AsyncHTTPClient(force_instance=True)
    try:
        yield app, url.rstrip("/"), http
    finally:
        http.close()
        server.stop()
        await server.close_all_connections()


async def read_json(socket: Any) -> dict[str, Any]:
    message = await socket.read_message()
    assert message is not None, "the server closed the socket"
    data: dict[str, Any] = json.loads(message)
    return data


async def wait_until(cond: Any, predicate: Any, limit: float = HANG_GUARD) -> None:
    """Waits on ``cond`` (a squall Condition) until ``predicate()`` holds."""
    deadline = IOLoop.current().time() + limit
    while not predicate():
        if not await cond.wait(timeout=deadline):
            raise AssertionError("condition not reached in time")


def test_message_reaches_long_poll_and_websocket() -> None:
    async def main() -> None:
        async with chat_server() as (app, base, http):
            alice, bob = Browser(base, http), Browser(base, http)
            assert (await alice.login("alice")).code == 302
            assert (await bob.login("bob")).code == 302
            buffer = app.settings["message_buffer"]

            poll = asyncio.ensure_future(bob.post("/a/message/updates", cursor="0"))
            ws_url = base.replace("http", "ws", 1) + "/chatsocket?cursor=0"
            socket = await websocket_connect(
                HTTPRequest(ws_url, headers={"Cookie": bob.cookie_header()})
            )
            await wait_until(
                buffer.listeners_changed, lambda: buffer.pollers == 1 and len(buffer.sockets) == 1
            )

            sent = await alice.post("/a/message/new", body="hello <b>bob</b> & co")
            [message] = sent["messages"]
            assert message["from"] == "alice" and message["seq"] == 1

            polled = await poll
            assert [m["body"] for m in polled["messages"]] == ["hello <b>bob</b> & co"]
            assert polled["cursor"] == 1
            pushed = await read_json(socket)
            assert pushed["messages"] == polled["messages"]
            html = pushed["messages"][0]["html"]
            assert "&lt;b&gt;bob&lt;/b&gt; &amp; co" in html and "<b>" not in html

            # A message sent over the socket reaches the next long poll too.
            socket.write_message(json.dumps({"body": "hi alice"}))
            again = await bob.post("/a/message/updates", cursor="1")
            assert [(m["from"], m["body"]) for m in again["messages"]] == [("bob", "hi alice")]
            socket.close()
            await wait_until(buffer.listeners_changed, lambda: not buffer.sockets)

    run(main())


def test_page_needs_a_name_and_renders_escaped_history() -> None:
    async def main() -> None:
        async with chat_server() as (_, base, http):
            visitor = Browser(base, http)
            first = await visitor.fetch("/")
            assert first.code == 302 and first.headers["Location"] == "/login?next=%2F"

            bad = await visitor.login("   ")
            assert bad.code == 400 and b"Pick a name" in bad.body
            await visitor.login("<img src=x onerror=alert(1)>")
            await visitor.post("/a/message/new", body="<script>alert(2)</script>")

            page = await visitor.fetch("/")
            body = page.body.decode()
            assert page.code == 200
            assert "<script>alert" not in body and "<img src=x" not in body
            assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body
            assert 'data-cursor="1"' in body
            assert re.search(r"/static/chat\.js\?v=\w+", body)
            assert re.search(r"/static/chat\.css\?v=\w+", body)
            assert 'name="_xsrf"' in body

            css = await visitor.fetch(re.search(r"/static/chat\.css\?v=\w+", body).group(0))  # type: ignore[union-attr]
            assert css.code == 200 and b"#inbox" in css.body

            out = await visitor.fetch("/logout", form={"_xsrf": visitor.xsrf})
            assert out.code == 302 and "chatuser" not in visitor.cookies
            assert (await visitor.fetch("/")).code == 302

    run(main())


def test_xsrf_and_login_are_enforced() -> None:
    async def main() -> None:
        async with chat_server() as (_, base, http):
            visitor = Browser(base, http)
            await visitor.login("carol")
            no_token = await visitor.fetch("/a/message/new", form={"body": "x"})
            assert no_token.code == 403
            stranger = Browser(base, http)
            await stranger.fetch("/login")
            anonymous = await stranger.fetch(
                "/a/message/new", form={"_xsrf": stranger.xsrf, "body": "x"}
            )
            assert anonymous.code == 403
            bad_cursor = await visitor.fetch(
                "/a/message/updates", form={"_xsrf": visitor.xsrf, "cursor": "soon"}
            )
            assert bad_cursor.code == 400
            empty = await visitor.fetch("/a/message/new", form={"_xsrf": visitor.xsrf, "body": " "})
            assert empty.code == 400

            ws_url = base.replace("http", "ws", 1) + "/chatsocket"
            with pytest.raises(HTTPClientError) as anon:
                await websocket_connect(ws_url)
            assert anon.value.code == 403
            foreign = HTTPRequest(
                ws_url, headers={"Cookie": visitor.cookie_header(), "Origin": "http://evil.test"}
            )
            with pytest.raises(HTTPClientError) as cross:
                await websocket_connect(foreign)
            assert cross.value.code == 403

    run(main())


def test_websocket_sends_backlog_after_cursor_and_rejects_bad_messages() -> None:
    async def main() -> None:
        async with chat_server() as (_, base, http):
            dave = Browser(base, http)
            await dave.login("dave")
            for text in ("one", "two", "three"):
                await dave.post("/a/message/new", body=text)
            ws_url = base.replace("http", "ws", 1) + "/chatsocket?cursor=1"
            socket = await websocket_connect(
                HTTPRequest(ws_url, headers={"Cookie": dave.cookie_header()})
            )
            backlog = await read_json(socket)
            assert [m["body"] for m in backlog["messages"]] == ["two", "three"]
            socket.write_message("not json")
            assert "bad message" in (await read_json(socket))["error"]
            socket.write_message(json.dumps({"body": "   "}))
            assert (await read_json(socket))["error"] == "empty message"
            socket.close()

    run(main())


def test_long_poll_is_dropped_when_the_client_leaves() -> None:
    async def main() -> None:
        async with chat_server() as (app, base, http):
            erin = Browser(base, http)
            await erin.login("erin")
            buffer = app.settings["message_buffer"]
            port = int(base.rsplit(":", 1)[1])
            stream: IOStream = await TCPClient().connect("127.0.0.1", port)
            body = urllib.parse.urlencode({"_xsrf": erin.xsrf, "cursor": "0"}).encode()
            await stream.write(
                b"POST /a/message/updates HTTP/1.1\r\nHost: x\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n"
                + f"Cookie: {erin.cookie_header()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await wait_until(buffer.listeners_changed, lambda: buffer.pollers == 1)
            stream.close()
            await wait_until(buffer.listeners_changed, lambda: buffer.pollers == 0)
            assert buffer.cache == type(buffer.cache)([], maxlen=buffer.size)

    run(main())


def test_long_poll_answers_empty_after_its_timeout() -> None:
    async def main() -> None:
        async with chat_server(poll_timeout=0.05) as (_, base, http):
            fay = Browser(base, http)
            await fay.login("fay")
            assert await fay.post("/a/message/updates", cursor="0") == {
                "messages": [],
                "cursor": 0,
            }

    run(main())


def test_message_buffer_keeps_only_the_newest() -> None:
    buffer = chat.MessageBuffer(size=3)
    for i in range(5):
        buffer.add({"seq": buffer.next_seq(), "body": str(i)})
    assert [m["body"] for m in buffer.since(0)] == ["2", "3", "4"]
    assert [m["body"] for m in buffer.since(4)] == ["4"]
    assert buffer.since(5) == [] and buffer.cursor == 5
    with pytest.raises(ValueError, match="older"):
        buffer.add({"seq": 2, "body": "late"})


def test_since_reads_only_the_newer_messages() -> None:
    # Every poll woken by a message asks for what is newer than its cursor:
    # that must cost the new messages, not a scan of the whole cache.
    reads = 0

    class Counted(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            nonlocal reads
            reads += 1
            return super().__getitem__(key)

    buffer = chat.MessageBuffer(size=200)
    for i in range(250):
        buffer.add(Counted(seq=buffer.next_seq(), body=str(i)))
    reads = 0
    assert [m["body"] for m in buffer.since(248)] == ["248", "249"]
    assert reads <= 4 + 2  # the cursor, the two new ones and the one before (+ the bodies)


def test_chat_entry_point_prints_its_address() -> None:
    async def main() -> None:
        process, url = await start_demo("chat/app.py", "--port=0")
        http = AsyncHTTPClient(force_instance=True)
        try:
            assert url.startswith("http://127.0.0.1:")
            # A fresh process's first request (imports, template compiled):
            # a deadline for a hung server, not a speed check.
            response = await http.fetch(url + "login", request_timeout=30)
            assert b"Your name" in response.body
        finally:
            http.close()
            await stop(process)

    run(main())
