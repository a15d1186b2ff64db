"""Each known HTTP/2 attack, performed over a real socket with the h2 package
as the client: the server survives, does bounded work, and drops the offender."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import (  # noqa: E402
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from squall._h2 import ErrorCode, H2Limits  # noqa: E402
from squall.iostream import StreamClosedError  # noqa: E402
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._wait import HANG_GUARD

from .._clock import LoopClock  # noqa: E402
from ._client import RawH2, http1_head  # noqa: E402

REQUEST = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "x")]


async def condition(predicate: Any, timeout: float = 30.0) -> None:
    """Wait until ``predicate()`` holds, checked once per loop turn, up to a deadline."""
    loop = asyncio.get_running_loop()
    reached: asyncio.Future[None] = loop.create_future()

    def check() -> None:
        if reached.done():
            return
        if predicate():
            reached.set_result(None)
        else:
            loop.call_soon(check)

    check()
    try:
        await asyncio.wait_for(reached, timeout)
    except TimeoutError:
        raise AssertionError("condition not reached in time") from None


class State:
    def __init__(self) -> None:
        self.started = 0
        self.closed = 0
        self.release = asyncio.Event()
        self.write_error: BaseException | None = None
        self.write_failed = asyncio.Event()


class Counted(RequestHandler):
    def initialize(self, state: State) -> None:
        self.state = state

    def prepare(self) -> None:
        self.state.started += 1

    def on_connection_close(self) -> None:
        self.state.closed += 1


class Fast(Counted):
    def get(self) -> None:
        self.write("ok")

    def post(self) -> None:
        self.write("ok")


class Hang(Counted):
    async def get(self) -> None:
        await self.state.release.wait()
        self.write("released")


class Big(Counted):
    async def get(self) -> None:
        try:
            for _ in range(64):
                self.write(b"z" * 16384)
                await self.flush()
        except StreamClosedError as exc:
            self.state.write_error = exc
            self.state.write_failed.set()


LIMITS = H2Limits(
    max_concurrent_streams=10,
    max_resets_per_second=50,
    max_pings_per_second=20,
    max_settings_per_second=10,
    max_window_updates_per_second=50,
    max_continuation_frames=8,
    max_header_list_size=8192,
    # Far longer than any stall of a loaded machine: the tests that want
    # them to pass move the server's clock past them (tests/_clock.py).
    send_timeout=60.0,
    idle_stream_timeout=60.0,
)
# gen_test's deadline is on the moved clock too: the time moved, and HANG_GUARD.
TIMED = HANG_GUARD + LIMITS.send_timeout + 1


class AttackTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.state = State()
        kw = {"state": self.state}
        return Application([("/", Fast, kw), ("/hang", Hang, kw), ("/big", Big, kw)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "http2_limits": LIMITS}

    def setUp(self) -> None:
        super().setUp()
        self.clock = LoopClock(self.io_loop.asyncio_loop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        self.clock.close()
        super().tearDown()

    async def expect_calm(self, client: RawH2) -> None:
        await client.until_closed()
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCode.ENHANCE_YOUR_CALM
        await client.close()
        await condition(lambda: not self.http_server._connections)  # the connection is gone

    async def still_serving(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/")
        assert (r.status, r.body) == (200, b"ok")
        await client.close()

    @gen_test
    async def test_rapid_reset(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.general", "HTTP/2 error", level=logging.INFO):
            # Read while writing: the server's GOAWAY and close may come
            # before the flood ends, and who closes first is no part of the
            # test. Read as it comes, the GOAWAY cannot be lost to a write
            # of ours that finds the connection closed (a broken pipe fails
            # the reader too), and the flood stops once the server has said
            # GOAWAY or closed.
            closed = asyncio.ensure_future(client.until_closed())

            def told_off() -> bool:
                return closed.done() or client.goaway is not None

            for i in range(1000):
                if told_off():
                    break
                sid = 2 * i + 1
                client.conn.send_headers(sid, REQUEST, end_stream=True)
                client.conn.reset_stream(sid)
                if i % 50 == 49:
                    client.flush()
                    await asyncio.sleep(0)  # let the server read in pieces
            if not told_off():
                client.flush()
            await closed
            await self.expect_calm(client)
        # A handful of handlers ran at most, not a thousand.
        assert self.state.started <= LIMITS.max_resets_per_second + 2 * 50
        await client.close()
        await self.still_serving()

    @gen_test
    async def test_reset_streams_still_count_while_their_handlers_run(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        await client.until(lambda: client.conn.remote_settings.max_concurrent_streams == 10)
        first = [client.request("/hang") for _ in range(10)]
        await condition(lambda: self.state.started == 10)
        for sid in first:
            client.conn.reset_stream(sid)
        client.flush()
        await condition(lambda: self.state.closed == 10)
        # The streams are closed for h2, but ten handlers still run: more
        # are refused, and no handler starts.
        more = [client.request("/") for _ in range(5)]
        await client.until(lambda: all(client.responses[s].reset is not None for s in more))
        assert {client.responses[s].reset for s in more} == {ErrorCode.REFUSED_STREAM}
        assert self.state.started == 10
        self.state.release.set()
        r = await client.fetch("/")  # the handlers finished: served again
        assert (r.status, r.body) == (200, b"ok")
        await client.close()

    @gen_test
    async def test_streams_the_server_reset_still_count_while_their_handlers_run(
        self,
    ) -> None:
        # "MadeYouReset": the client has the server reset its streams (here
        # with DATA after its END_STREAM, a stream error) instead of
        # resetting them itself, which the reset budget would count. The
        # handlers go on; were their streams no longer counted, the client
        # could start handler after handler on one connection.
        client = await RawH2.connect(self.get_http_port())
        await client.until(lambda: client.conn.remote_settings.max_concurrent_streams == 10)
        first = [client.request("/hang") for _ in range(10)]
        await condition(lambda: self.state.started == 10)
        with ExpectLog("squall.general", ".*", level=logging.DEBUG, required=False):
            for sid in first:
                late = DataFrame(sid)
                late.data = b"x"
                client.write_raw(late.serialize())
            await client.until(lambda: all(client.responses[s].reset is not None for s in first))
            assert {client.responses[s].reset for s in first} == {ErrorCode.STREAM_CLOSED}
            more = [client.request("/") for _ in range(5)]
            # Answered (the bug) or refused: either ends the wait.
            await client.until(
                lambda: all(
                    client.responses[s].reset is not None or client.responses[s].ended for s in more
                )
            )
        assert {client.responses[s].reset for s in more} == {ErrorCode.REFUSED_STREAM}
        assert self.state.started == 10
        self.state.release.set()
        await condition(lambda: self.state.closed == 10)
        r = await client.fetch("/")  # the handlers finished: served again
        assert (r.status, r.body) == (200, b"ok")
        await client.close()

    @gen_test
    async def test_continuation_flood(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        block = hpack.Encoder().encode(REQUEST)
        with ExpectLog("squall.general", "HTTP/2 error.*CONTINUATION", level=logging.INFO):
            client.write_raw(HeadersFrame(1, data=block).serialize())
            for _ in range(2000):
                client.write_raw(ContinuationFrame(1, data=b"").serialize())
            await self.expect_calm(client)
        assert self.state.started == 0
        await client.close()
        await self.still_serving()

    @gen_test
    async def test_hpack_bomb(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        encoder = hpack.Encoder()
        first = encoder.encode(REQUEST + [("x-bomb", "b" * 4000)])
        bomb = encoder.encode(REQUEST) + b"\xbe" * 2000  # 2000 x 4 KB decoded
        with ExpectLog(
            "squall.general", "Unsatisfiable read.*header list larger", level=logging.INFO
        ):
            client.write_raw(HeadersFrame(1, data=first, flags=["END_HEADERS"]).serialize())
            client.write_raw(HeadersFrame(3, data=bomb, flags=["END_HEADERS"]).serialize())
            await self.expect_calm(client)
        assert self.state.started <= 1
        await client.close()

    @gen_test
    async def test_ping_flood(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        client.auto_ack = False
        with ExpectLog("squall.general", "HTTP/2 error.*PING", level=logging.INFO):
            client.write_raw(PingFrame(0, opaque_data=b"flooding").serialize() * 5000)
            await self.expect_calm(client)
        await client.close()

    @gen_test
    async def test_settings_flood(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        frame = SettingsFrame(0, settings={h2.settings.SettingCodes.HEADER_TABLE_SIZE: 4096})
        with ExpectLog("squall.general", "HTTP/2 error.*SETTINGS", level=logging.INFO):
            client.write_raw(frame.serialize() * 5000)
            await self.expect_calm(client)
        await client.close()

    @gen_test
    async def test_window_update_flood(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog("squall.general", "HTTP/2 error.*WINDOW_UPDATE", level=logging.INFO):
            client.write_raw(WindowUpdateFrame(0, window_increment=1).serialize() * 5000)
            await self.expect_calm(client)
        await client.close()

    @gen_test
    async def test_too_many_concurrent_streams(self) -> None:
        # A client that ignores SETTINGS_MAX_CONCURRENT_STREAMS has the
        # streams over it refused (RFC 9113 §5.1.2); refusals count as
        # resets, so one that keeps at it is cut off.
        client = await RawH2.connect(self.get_http_port(), validate=False)
        encoder = hpack.Encoder()
        block = encoder.encode([(":method", "GET"), (":path", "/hang")] + REQUEST[2:])
        with ExpectLog("squall.general", "HTTP/2 error.*refused streams", level=logging.INFO):
            for i in range(200):
                client.write_raw(
                    HeadersFrame(
                        2 * i + 1, data=block, flags=["END_HEADERS", "END_STREAM"]
                    ).serialize()
                )
            await client.until_closed()
        # Raw frames: h2's own state machine does not know these streams.
        goaway = [f for f in client.frames() if isinstance(f, GoAwayFrame)]
        assert [f.error_code for f in goaway] == [ErrorCode.ENHANCE_YOUR_CALM]
        refused = [f for f in client.frames() if isinstance(f, RstStreamFrame)]
        assert {f.error_code for f in refused} == {ErrorCode.REFUSED_STREAM}
        assert len(refused) >= LIMITS.max_resets_per_second
        assert self.state.started <= 10
        self.state.release.set()
        await client.close()
        await self.still_serving()

    @gen_test(timeout=TIMED)
    async def test_zero_window_held_forever(self) -> None:
        client = await RawH2.connect(
            self.get_http_port(), settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0}
        )
        client.auto_ack = False
        with ExpectLog(
            "squall.general", "HTTP/2 stream .*flow-control window closed", level=logging.INFO
        ):
            sid = client.request("/big")
            r = client.responses[sid]
            await client.until(lambda: self.state.started > 0)
            assert r.reset is None  # not before the send timeout
            await self.clock.advance(LIMITS.send_timeout + 1)
            await client.until(lambda: r.reset is not None)
            await asyncio.wait_for(self.state.write_failed.wait(), HANG_GUARD)
        assert r.reset == ErrorCode.CANCEL
        assert isinstance(self.state.write_error, StreamClosedError)
        # The connection stays usable for well-behaved streams.
        assert not client.closed
        await client.close()

    @gen_test(timeout=TIMED)
    async def test_stream_opened_and_never_finished(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog(
            "squall.general", "HTTP/2 stream .*request not completed in time", level=logging.INFO
        ):
            sid = client.request("/", method="POST", end=False)
            r = client.responses[sid]
            # The HEADERS are in once the server has answered our SETTINGS'
            # ping-pong: a round trip after them.
            await client.fetch("/")
            assert r.reset is None  # not before the timeout
            await self.clock.advance(LIMITS.idle_stream_timeout + 1)
            await client.until(lambda: r.reset is not None)
        assert r.reset == ErrorCode.CANCEL
        # A body that never ended: no handler ran for it (the one that ran
        # is the round trip's).
        assert self.state.started == 1
        await client.close()


class GracefulTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.state = State()
        return Application([("/", Fast, {"state": self.state})])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_close_all_connections_sends_goaway(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/")
        assert r.status == 200
        sid = max(client.responses)
        self.http_server.stop()
        closing = asyncio.ensure_future(self.http_server.close_all_connections())
        await client.until_closed()
        await client.close()
        await asyncio.wait_for(closing, HANG_GUARD)
        assert client.goaway is not None
        assert client.goaway.error_code == ErrorCode.NO_ERROR
        assert client.goaway.last_stream_id == sid
        await client.close()

    @gen_test
    async def test_upgrade_h2c(self) -> None:
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        settings = c.initiate_upgrade_connection()
        assert settings is not None
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        writer.write(
            b"GET /?x=1 HTTP/1.1\r\nHost: example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: " + settings + b"\r\n\r\n"
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HANG_GUARD)
        assert head.startswith(b"HTTP/1.1 101 ")
        writer.write(c.data_to_send())
        body = b""
        ended = False
        while not ended:
            data = await asyncio.wait_for(reader.read(65536), HANG_GUARD)
            assert data, "closed before the response"
            for ev in c.receive_data(data):
                if isinstance(ev, h2.events.DataReceived):
                    body += ev.data or b""
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == 1:
                    ended = True
            writer.write(c.data_to_send())
        assert body == b"ok"
        writer.close()
        await writer.wait_closed()

    @gen_test
    async def test_upgrade_with_a_body_stays_http1(self) -> None:
        head = await http1_head(
            self.get_http_port(),
            b"POST / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Length: 2\r\n\r\nhi",
        )
        assert head.startswith(b"HTTP/1.1 200 ")


def test_gen_test_limits_here_are_hang_guards() -> None:
    # tests/conftest.py: a loaded machine must not decide these tests.
    from squall.testing import get_async_test_timeout

    assert get_async_test_timeout() >= 30
