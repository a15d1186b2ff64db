"""WebTransport asked for over HTTP/2: both owners give the one answer.

An extended CONNECT with ``:protocol webtransport`` that is not HTTP/3's
has no session to offer; `WebTransportHandler` and the ASGI server both
answer it with the refusal ``httputil/_webtransport``'s `SessionRequest`
decides (400, and its text), and the application never sees a session.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.events  # noqa: E402

from squall.asgi import ASGIServerDelegate  # noqa: E402
from squall.testing import AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from squall.webtransport import WebTransportHandler  # noqa: E402

from ._client import RawH2, Response  # noqa: E402

NEEDS_HTTP3 = b"WebTransport needs an extended CONNECT over HTTP/3."


async def ask_for_a_session(port: int) -> Response:
    raw = await RawH2.connect(port)
    await raw.until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in raw.events))
    sid = raw.conn.get_next_available_stream_id()
    raw.conn.send_headers(
        sid,
        [
            (":method", "CONNECT"),
            (":protocol", "webtransport"),
            (":scheme", "http"),
            (":path", "/wt"),
            (":authority", "localhost"),
        ],
        end_stream=False,
    )
    response = raw.responses[sid] = Response()
    raw.flush()
    try:
        await raw.until(lambda: response.ended or response.reset is not None)
    finally:
        await raw.close()
    return response


class OverHTTP2(AsyncHTTPTestCase):
    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}


class Opened(WebTransportHandler):
    def prepare_session(self) -> None:
        self.settings["asked"].append("prepare_session")


class HandlerOffHTTP3Test(OverHTTP2):
    def get_app(self) -> Application:
        self.asked: list[str] = []
        return Application([("/wt", Opened)], asked=self.asked)

    @gen_test
    async def test_answered_400_before_prepare_session(self) -> None:
        response = await ask_for_a_session(self.get_http_port())
        assert (response.status, response.body) == (400, NEEDS_HTTP3)
        assert self.asked == []


class ASGIOffHTTP3Test(OverHTTP2):
    def get_app(self) -> Any:
        self.scopes: list[dict[str, Any]] = []

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            self.scopes.append(scope)

        return ASGIServerDelegate(app, lifespan="off")

    @gen_test
    async def test_answered_400_before_the_application(self) -> None:
        response = await ask_for_a_session(self.get_http_port())
        assert (response.status, response.body) == (400, NEEDS_HTTP3)
        assert self.scopes == []
