"""Headless Chromium opens a WebTransport session to Squall: a datagram and a stream echo.

The page (demos/webtransport/page.py, which the demo's screenshot uses too)
comes over plain HTTP from 127.0.0.1 (a secure context); the session goes
to an HTTP/3 server whose certificate is short-lived ECDSA P-256, trusted
by its hash (``serverCertificateHashes``): no browser flag about
certificates or QUIC. The page posts what it got back to the page server,
which the test waits on. The server is an Application's
WebTransportHandler, then the demo's ASGI application (the
``webtransport`` scope). Skipped without Chromium.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.asgi import ASGIServerDelegate  # noqa: E402
from squall.httpserver import HTTPServer  # noqa: E402
from squall.httputil import HTTPServerConnectionDelegate  # noqa: E402
from squall.netutil import bind_sockets  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from squall.webtransport import WebTransportHandler, WebTransportStream  # noqa: E402
from tests._chromium import end as end_browser  # noqa: E402
from tests._wait import HANG_GUARD  # noqa: E402
from tests.h3._stack import NO_ZERO_LENGTH_CID, only_on  # noqa: E402

from ..demos._util import load  # noqa: E402

demo_page = load("webtransport/page.py")
demo_app = load("webtransport/app.py")

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)


class Echo(WebTransportHandler):
    def on_datagram(self, data: bytes) -> None:
        self.send_datagram(b"echo " + data)

    async def on_stream(self, stream: WebTransportStream) -> None:
        data = await stream.read_all()
        stream.write(b"echo " + data, end=True)

    def on_session_close(self, code: int, reason: str) -> None:
        self.application.settings["closed"].append((code, reason))
        self.application.settings["closing"].set()


class Page(RequestHandler):
    def get(self) -> None:
        self.write(self.application.settings["page"])

    def post(self) -> None:
        future = self.application.settings["result"]
        if not future.done():
            future.set_result(json.loads(self.request.body))


async def echo_in_chromium(delegate: HTTPServerConnectionDelegate, closing: asyncio.Event) -> Any:
    """What the page posted once Chromium ran it against ``delegate`` (served
    over HTTP/3 at /echo), after ``closing`` is set (the session's end)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()
    with tempfile.TemporaryDirectory(prefix="squall-wt-") as tmp:
        certfile, keyfile, digest = demo_page.short_lived_certificate(tmp)
        wt_server = HTTPServer(
            delegate, ssl_options={"certfile": certfile, "keyfile": keyfile}, http3=True
        )
        wt_socks = bind_sockets(0, "127.0.0.1")
        wt_server.add_sockets(wt_socks)
        await asyncio.gather(*wt_server._h3_tasks)
        wt_port = wt_socks[0].getsockname()[1]
        page = demo_page.page(f"https://127.0.0.1:{wt_port}/echo", digest)
        page_server = HTTPServer(
            Application([("/", Page), ("/result", Page)], page=page, result=result)
        )
        page_socks = bind_sockets(0, "127.0.0.1")
        page_server.add_sockets(page_socks)
        page_port = page_socks[0].getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp}/profile",
            "--remote-debugging-port=0",
            f"http://127.0.0.1:{page_port}/",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            got = await asyncio.wait_for(result, 40)
            await asyncio.wait_for(closing.wait(), HANG_GUARD)
        finally:
            await end_browser(proc)
            page_server.stop()
            await wt_server.drain(2)
    return got


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@only_on("aioquic", NO_ZERO_LENGTH_CID)
def test_chromium_datagram_and_stream_echo() -> None:
    async def main() -> tuple[Any, list[tuple[int, str]]]:
        closed: list[tuple[int, str]] = []
        closing = asyncio.Event()
        app = Application([("/echo", Echo)], closed=closed, closing=closing)
        return await echo_in_chromium(app, closing), closed

    got, closed = asyncio.run(main())
    assert got == {"datagram": "echo ping", "stream": "echo hello"}, got
    assert closed == [(5, "done")]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@only_on("aioquic", NO_ZERO_LENGTH_CID)
def test_chromium_with_the_asgi_demo() -> None:
    async def main() -> tuple[Any, list[tuple[int, str]]]:
        closed: list[tuple[int, str]] = []
        closing = asyncio.Event()

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            async def heard() -> Any:
                message = await receive()
                if message["type"] == "webtransport.disconnect":
                    closed.append((message["code"], message["reason"]))
                    closing.set()
                return message

            await demo_app.app(scope, heard, send)

        return await echo_in_chromium(ASGIServerDelegate(app), closing), closed

    got, closed = asyncio.run(main())
    assert got == {"datagram": "echo ping", "stream": "echo hello"}, got
    assert closed == [(5, "done")]
