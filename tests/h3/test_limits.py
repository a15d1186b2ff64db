"""HTTP/3 limits and drain: streams, header section, body, GOAWAY."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.buffer import encode_uint_var  # noqa: E402
from aioquic.h3.connection import FrameType, encode_frame  # noqa: E402

from squall._h2 import H2Limits  # noqa: E402
from squall.testing import ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler, stream_request_body  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._client import h3_client  # noqa: E402
from ._stack import only_on  # noqa: E402
from .test_server import H3TestCase, make_app  # noqa: E402


class Settings:
    app: Application

    def hold(self) -> tuple[asyncio.Future[None], asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        release, held = loop.create_future(), loop.create_future()
        self.app.settings["release"], self.app.settings["held"] = release, held
        return release, held


class H3LimitsTest(H3TestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {
            **super().get_httpserver_options(),
            "max_header_size": 2048,
            "max_body_size": 10000,
        }

    @gen_test
    async def test_oversized_header_section_gets_431(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            with ExpectLog("squall.general", ".*header section too large", level=logging.INFO):
                r = await client.fetch("/", headers=[("x-big", "v" * 3000)])
            assert r.status == 431
            # The connection serves on.
            r = await client.fetch("/?name=after")
            assert r.body == b"hello after"

    @gen_test
    async def test_body_over_the_limit_gets_413(self) -> None:
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
                r = await client.fetch(
                    "/", method="POST", body=b"x" * 20000, headers=[("content-length", "20000")]
                )
            assert r.status == 413
            with ExpectLog("squall.general", ".*body too large", level=logging.INFO):
                r = await client.fetch("/", method="POST", body=b"x" * 20000)
            assert r.status == 413

    @gen_test
    async def test_prepare_may_raise_the_body_limit(self) -> None:
        # As over HTTP/1.1: the Content-Length is held against the limit
        # once the handler had the head (it was refused before).
        @stream_request_body
        class Upload(RequestHandler):
            def prepare(self) -> None:
                self.size = 0
                self.request.connection.set_max_body_size(30000)

            def data_received(self, chunk: bytes) -> None:
                self.size += len(chunk)

            def post(self) -> None:
                self.write(str(self.size))

        self._app.add_handlers(".*", [("/upload", Upload)])
        await self.started()
        async with h3_client(self.get_http_port()) as client:
            r = await client.fetch(
                "/upload", method="POST", body=b"x" * 20000, headers=[("content-length", "20000")]
            )
            assert r.status == 200 and r.body == b"20000"

    @property
    def app(self) -> Application:
        return self._app


class H3StreamLimitTest(H3TestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {
            **super().get_httpserver_options(),
            "http2_limits": H2Limits(max_concurrent_streams=1),
        }

    @only_on("aioquic", "qh3's core announces a stream credit of 100 and cannot be told another")
    @gen_test
    async def test_streams_beyond_the_limit_wait(self) -> None:
        # max_concurrent_streams=1: QUIC's stream credit holds the second
        # request back until the first is done.
        await self.started()
        release, held = Settings.hold(self)  # type: ignore[arg-type]
        async with h3_client(self.get_http_port()) as client:
            first = client.request("/hold")
            await asyncio.wait_for(held, HANG_GUARD)
            second = client.request("/?name=2")
            with pytest.raises(TimeoutError):
                await client.until(lambda: client.responses[second].ended, timeout=0.3)
            release.set_result(None)
            await client.until(lambda: client.responses[second].ended)
            assert client.responses[first].body == b"released"
            assert client.responses[second].body == b"hello 2"

    @only_on("qh3", "on aioquic the stream credit holds the second request back")
    @gen_test
    async def test_streams_beyond_the_limit_are_refused(self) -> None:
        # qh3 lets the client open the second stream (its credit is 100):
        # the server refuses it unprocessed (RFC 9114 section 4.1.1).
        await self.started()
        release, held = Settings.hold(self)  # type: ignore[arg-type]
        async with h3_client(self.get_http_port()) as client:
            first = client.request("/hold")
            await asyncio.wait_for(held, HANG_GUARD)
            refused = await client.fetch("/?name=2")
            assert refused.reset == 0x10B  # H3_REQUEST_REJECTED
            assert refused.status == 0
            release.set_result(None)
            await client.until(lambda: client.responses[first].ended)
            assert client.responses[first].body == b"released"

    @gen_test
    async def test_a_stream_the_client_reset_counts_while_its_handler_runs(self) -> None:
        # Rapid reset over HTTP/3: the client resets its request (both
        # directions) and opens the next. The reset stream's handler still
        # runs, so the next is refused unprocessed, on either stack (the
        # reset gives QUIC's stream credit back).
        await self.started()
        release, held = Settings.hold(self)  # type: ignore[arg-type]
        async with h3_client(self.get_http_port()) as client:
            first = client.request("/hold")
            await asyncio.wait_for(held, HANG_GUARD)
            client._quic.reset_stream(first, 0x10C)  # H3_REQUEST_CANCELLED
            client._quic.stop_stream(first, 0x10C)
            client.transmit()
            refused = await client.fetch("/?name=2")
            assert (refused.reset, refused.status, refused.body) == (0x10B, 0, b"")
            release.set_result(None)
            again = await client.fetch("/?name=3")  # the handler done: served
            assert again.body == b"hello 3"

    @property
    def app(self) -> Application:
        return self._app


class H3DrainTest(H3TestCase):
    def get_app(self) -> Application:
        return make_app()

    @gen_test
    async def test_drain_sends_goaway_and_finishes_in_flight(self) -> None:
        await self.started()
        release, held = Settings.hold(self)  # type: ignore[arg-type]
        async with h3_client(self.get_http_port()) as client:
            sid = client.request("/hold")
            await asyncio.wait_for(held, HANG_GUARD)
            drained = asyncio.ensure_future(self.http_server.drain(timeout=HANG_GUARD))
            goaway = encode_frame(FrameType.GOAWAY, encode_uint_var(sid + 4))
            await client.until(lambda: goaway in client.control)
            release.set_result(None)
            await client.until(lambda: client.responses[sid].ended)
            assert client.responses[sid].body == b"released"
            assert await drained is True
            await client.until(lambda: client.terminated is not None)

    @property
    def app(self) -> Application:
        return self._app
