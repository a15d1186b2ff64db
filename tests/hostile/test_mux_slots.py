"""A stream the server resets before its handler starts
gives its slot back.

Over HTTP/2 and HTTP/3 a connection serves a bounded number of streams at
once. A request whose body never comes (reset by the body timeout) or, over
HTTP/2, whose body runs past its Content-Length (reset by the core) never
reaches a handler; its slot must be free again, or a few rounds of such
uploads leave a connection that refuses every new request with nothing
open. Each test stalls several times the limit's worth of streams, one
round at a time, and asserts that the next request is served.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.events  # noqa: E402
from hyperframe.frame import RstStreamFrame  # noqa: E402

from squall._h2 import ErrorCode, H2Limits  # noqa: E402
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._clock import LoopClock  # noqa: E402
from tests._wait import HANG_GUARD  # noqa: E402
from tests.h2._client import RawH2  # noqa: E402

from ._serve import LOOPS, run, serving  # noqa: E402

LIMIT = 4
ROUNDS = 3  # ROUNDS * LIMIT stalled streams: more than the limit, several times


class Upload(RequestHandler):
    def post(self) -> None:
        self.write(b"got %d" % len(self.request.body))

    def get(self) -> None:
        self.write(b"ok")


def make_app() -> Application:
    return Application([("/", Upload)])


def pings(client: RawH2) -> list[Any]:
    return [e for e in client.events if isinstance(e, h2.events.PingAckReceived)]


def resets(client: RawH2) -> dict[int, int]:
    return {f.stream_id: f.error_code for f in client.frames() if isinstance(f, RstStreamFrame)}


class H2SlotsTest(AsyncHTTPTestCase):
    """HTTP/2: the server's clock is moved (tests/_clock.py) past the body timeout."""

    BODY_TIMEOUT = 30.0

    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        limits = H2Limits(max_concurrent_streams=LIMIT)
        return {"http2": True, "http2_limits": limits, "body_timeout": self.BODY_TIMEOUT}

    def setUp(self) -> None:
        super().setUp()
        self.clock = LoopClock(self.io_loop.asyncio_loop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        self.clock.close()
        super().tearDown()

    async def served(self, client: RawH2) -> None:
        r = await client.fetch("/")
        assert (r.status, r.body, r.reset) == (200, b"ok", None)

    @gen_test(timeout=HANG_GUARD + ROUNDS * 3 * BODY_TIMEOUT)
    async def test_uploads_reset_by_the_body_timeout_give_their_slots_back(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.general", ".*not completed in time; reset", level=logging.INFO):
            for _ in range(ROUNDS):
                sids = [
                    client.request("/", "POST", [("content-length", "10")], end=False)
                    for _ in range(LIMIT)
                ]
                # The heads are in before the clock moves.
                await self.served_after_heads(client)
                await self.clock.advance(3 * self.BODY_TIMEOUT)
                await client.until(lambda sids=sids: set(sids) <= set(resets(client)))
                assert {resets(client)[sid] for sid in sids} == {ErrorCode.CANCEL}
        await self.served(client)
        assert client.goaway is None
        await client.close()

    async def served_after_heads(self, client: RawH2) -> None:
        # LIMIT streams are open: a PING's answer says the server read them.
        acks = len(pings(client))
        client.conn.ping(b"12345678")
        client.flush()
        await client.until(lambda: len(pings(client)) > acks)

    @gen_test
    async def test_bodies_longer_than_their_length_give_their_slots_back(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        for _ in range(ROUNDS * LIMIT):
            sid = client.request("/", "POST", [("content-length", "2")], end=False)
            client.conn.send_data(sid, b"longer than two")
            client.flush()
            await client.until(lambda sid=sid: sid in resets(client))
            assert resets(client)[sid] == ErrorCode.PROTOCOL_ERROR
        await self.served(client)
        assert client.goaway is None
        await client.close()


# -- HTTP/3 ------------------------------------------------------------------------------


def h3_options(**extra: Any) -> dict[str, Any]:
    from squall.testing import AsyncHTTPSTestCase

    return {
        "ssl_options": AsyncHTTPSTestCase.default_ssl_options(),
        "http3": True,
        "http2_limits": H2Limits(max_concurrent_streams=LIMIT),
        **extra,
    }


@pytest.mark.parametrize("loop", LOOPS)
def test_h3_uploads_reset_by_the_body_timeout_give_their_slots_back(loop: str) -> None:
    pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
    from tests.h3._client import h3_client

    async def main() -> None:
        # The sweep runs every header_timeout / 4: the body timeout is seen
        # within a tenth of a second of passing.
        options = h3_options(body_timeout=0.2, header_timeout=0.4)
        async with serving(make_app(), **options) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                with ExpectLog(
                    "squall.general", ".*not completed in time; reset", level=logging.INFO
                ):
                    for _ in range(ROUNDS):
                        sids = [
                            client.request("/", "POST", [("content-length", "10")], end=False)
                            for _ in range(LIMIT)
                        ]
                        responses = [client.responses[sid] for sid in sids]
                        await client.until(lambda rs=responses: all(r.reset for r in rs))
                r = await client.fetch("/")
                assert (r.status, r.body, r.reset) == (200, b"ok", None)

    run(main, loop)
