"""103 Early Hints (RFC 8297): `RequestHandler.send_early_hints` over real sockets.

The handler sends its hints, then waits for the test to have read them
before it answers: the 103 must be on the wire ahead of the response, not
merely ahead of it in one write.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import pytest

from squall.httputil import HTTPHeaders, HTTPOutputError
from squall.httputil._exchange import HTTPConnection
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed
LINKS = ["</app.css>; rel=preload; as=style", "</app.js>; rel=preload; as=script"]


class Hinted(RequestHandler):
    async def get(self) -> None:
        settings = self.application.settings
        settings["sent"] = self.send_early_hints(LINKS)
        release: Optional[asyncio.Future[None]] = settings.get("release")
        if release is not None:
            await release
        self.write("page")


class Misused(RequestHandler):
    def get(self) -> None:
        errors = []
        for bad in (["</a>\r\nSet-Cookie: x=1"], [b"</b>"]):
            try:
                self.send_early_hints(bad)  # type: ignore[arg-type]
            except (ValueError, TypeError) as exc:
                errors.append(type(exc).__name__)
        try:
            self.request.connection.write_informational(  # type: ignore[union-attr]
                200, HTTPHeaders()
            )
        except HTTPOutputError:
            errors.append("HTTPOutputError")
        self.write(",".join(errors))
        self.flush()
        try:
            self.send_early_hints(LINKS)
        except RuntimeError:
            self.application.settings["late"] = True


def make_app(**settings: Any) -> Application:
    return Application([("/", Hinted), ("/misused", Misused)], **settings)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)


class EarlyHintsH1Test(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.get_http_port())

    @gen_test
    async def test_103_goes_out_before_the_response(self) -> None:
        release = self._app.settings["release"] = asyncio.get_running_loop().create_future()
        reader, writer = await self._open()
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            interim = await read_head(reader)
            # The handler has not answered yet: it waits on `release`.
            assert interim == (
                b"HTTP/1.1 103 Early Hints\r\n"
                b"Link: </app.css>; rel=preload; as=style\r\n"
                b"Link: </app.js>; rel=preload; as=script\r\n\r\n"
            )
            assert self._app.settings["sent"] is True
            release.set_result(None)
            head = await read_head(reader)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"\r\nLink:" not in head  # the final response has its own fields
            assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"page"
        finally:
            writer.close()
            await writer.wait_closed()

    @gen_test
    async def test_http10_client_gets_no_1xx(self) -> None:
        reader, writer = await self._open()
        try:
            writer.write(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), DEADLINE)
            assert data.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b" 103 " not in data
            assert self._app.settings["sent"] is False
        finally:
            writer.close()
            await writer.wait_closed()

    @gen_test
    async def test_bad_values_and_late_call_refused(self) -> None:
        response = await self.http_client.fetch(self.get_url("/misused"))
        assert response.body == b"ValueError,TypeError,HTTPOutputError"
        assert self._app.settings["late"] is True

    @gen_test
    async def test_keep_alive_request_after_hints(self) -> None:
        # The interim head leaves the connection's HTTP/1.1 state as it was:
        # a second request on it is answered normally.
        reader, writer = await self._open()
        try:
            for _ in range(2):
                writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await read_head(reader)).startswith(b"HTTP/1.1 103 ")
                head = await read_head(reader)
                assert head.startswith(b"HTTP/1.1 200 OK\r\n")
                assert await asyncio.wait_for(reader.readexactly(4), DEADLINE) == b"page"
        finally:
            writer.close()
            await writer.wait_closed()


class Declining(HTTPConnection):
    """A connection from outside Squall: it knows nothing of interim heads."""


def test_base_connection_declines() -> None:
    conn = Declining()
    assert conn.write_informational(103, HTTPHeaders({"Link": "</a>"})) is False
    with pytest.raises(HTTPOutputError):
        conn.write_informational(101, HTTPHeaders())


h2 = pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")


class EarlyHintsH2Test(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_103_on_the_stream_before_the_response(self) -> None:
        import h2.events

        from tests.h2._client import RawH2

        release = self._app.settings["release"] = asyncio.get_running_loop().create_future()
        client = await RawH2.connect(self.get_http_port())
        try:
            sid = client.request("/")

            def interim() -> list[Any]:
                return [
                    e
                    for e in client.events
                    if isinstance(e, h2.events.InformationalResponseReceived)
                ]

            await client.until(lambda: bool(interim()))
            (event,) = interim()
            assert event.stream_id == sid
            fields = [(str(n), str(v)) for n, v in event.headers]
            assert fields == [(":status", "103")] + [("link", v) for v in LINKS]
            assert client.responses[sid].status == 0  # no final head yet
            release.set_result(None)
            await client.until(lambda: client.responses[sid].ended)
            assert client.responses[sid].status == 200
            assert client.responses[sid].body == b"page"
        finally:
            await client.close()
