"""HTTP/2 as a hostile client plays it, over a real socket: each test performs
the attack and asserts the RFC's answer, and that the server keeps serving.

The client is the ``h2`` package driven by hand (tests/h2/_client.py), with
its own checks off where the attack needs frames it would refuse to send.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.errors  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
from hyperframe.frame import DataFrame, GoAwayFrame, HeadersFrame, RstStreamFrame  # noqa: E402

from squall._h2 import ErrorCode, H2Limits  # noqa: E402
from squall.iostream import StreamClosedError  # noqa: E402
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._clock import LoopClock  # noqa: E402
from tests._wait import HANG_GUARD  # noqa: E402
from tests.h2._client import RawH2, Response, http1_head  # noqa: E402
from tests.hostile._serve import LOOPS, connect, read_response, run, serving  # noqa: E402

WINDOW = 16384


class Host(RequestHandler):
    def get(self) -> None:
        self.write(self.request.host)


class Big(RequestHandler):
    """Writes the whole body at once and finishes: the rest is h2's to send."""

    def get(self, size: str) -> None:
        self.write(b"b" * int(size))


class Trickle(RequestHandler):
    """Writes in pieces, waiting on flush() between them."""

    async def get(self) -> None:
        try:
            for _ in range(64):
                self.write(b"t" * WINDOW)
                await self.flush()
        except StreamClosedError:
            pass  # the client cancelled: expected, nothing to report


class Hang(RequestHandler):
    async def get(self) -> None:
        await self.application.settings["release"].wait()
        self.write("released")


def make_app() -> Application:
    return Application(
        [("/host", Host), (r"/big/(\d+)", Big), ("/trickle", Trickle), ("/hang", Hang)],
        release=asyncio.Event(),
    )


def head(path: str, authority: str = "x", **extra: str) -> list[tuple[str, str]]:
    fields = [(":method", "GET"), (":path", path), (":scheme", "http")]
    if authority:
        fields.append((":authority", authority))
    return fields + list(extra.items())


def send(client: RawH2, sid: int, fields: list[tuple[str, str]]) -> Response:
    """HEADERS with END_STREAM, as given (no checks by h2)."""
    client.conn.send_headers(sid, fields, end_stream=True)
    client.flush()
    return client.responses.setdefault(sid, Response())


def raw_headers(client: RawH2, sid: int, fields: list[tuple[str, str]]) -> None:
    """A HEADERS frame the h2 package's state machine would not send."""
    block = hpack.Encoder().encode(fields)
    client.write_raw(HeadersFrame(sid, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize())


def resets(client: RawH2) -> dict[int, int]:
    """RST_STREAM frames received so far: stream -> error code."""
    return {f.stream_id: f.error_code for f in client.frames() if isinstance(f, RstStreamFrame)}


def ended(client: RawH2) -> set[int]:
    """Streams on which the server sent END_STREAM."""
    return {
        f.stream_id
        for f in client.frames()
        if isinstance(f, (DataFrame, HeadersFrame)) and "END_STREAM" in f.flags
    }


def goaway(client: RawH2) -> GoAwayFrame:
    frames = [f for f in client.frames() if isinstance(f, GoAwayFrame)]
    assert frames, "no GOAWAY"
    return frames[0]


@contextmanager
def records(*names: str, level: int = logging.INFO) -> Iterator[list[logging.LogRecord]]:
    """Collect what ``names`` log at ``level`` and above during the block."""
    got: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    handler = Collect(level)
    loggers = [logging.getLogger(name) for name in names]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield got
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


class SlowReaderTest(AsyncHTTPTestCase):
    """A response held by flow control is not idle.

    The test moves the server's clock (tests/_clock.py): its timeouts are
    far longer than any stall of a loaded machine, and the pauses step past
    the idle timeout without waiting for it.
    """

    IDLE = 30.0
    SEND_TIMEOUT = 120.0  # longer than a pause: it measures a window held shut
    PAUSE = 40.0  # longer than the idle timeout (and its sweep)

    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        limits = H2Limits(send_timeout=self.SEND_TIMEOUT, idle_stream_timeout=self.SEND_TIMEOUT)
        return {"http2": True, "idle_connection_timeout": self.IDLE, "http2_limits": limits}

    def setUp(self) -> None:
        super().setUp()
        self.clock = LoopClock(self.io_loop.asyncio_loop)  # type: ignore[attr-defined]

    def tearDown(self) -> None:
        self.clock.close()
        super().tearDown()

    # The test's deadline is on the same clock: the time advanced, and HANG_GUARD.
    @gen_test(timeout=HANG_GUARD + 4 * PAUSE + 2 * IDLE)
    async def test_response_waiting_for_window_is_not_cut_off_as_idle(self) -> None:
        total = 5 * WINDOW
        client = await RawH2.connect(
            self.get_http_port(),
            settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: WINDOW},
        )
        client.auto_ack = False
        sid = client.request(f"/big/{total}")
        r = client.responses[sid]
        while True:
            # Read the window's worth, then hold the window past the idle
            # timeout before giving it back: the handler finished long ago.
            want = min(total, len(r.body) + WINDOW)
            await client.until(lambda want=want: len(r.body) >= want or r.ended)
            if r.ended:
                break
            await self.clock.advance(self.PAUSE)
            client.conn.increment_flow_control_window(WINDOW, stream_id=sid)
            client.conn.increment_flow_control_window(WINDOW)
            client.flush()
        assert (r.status, len(r.body), r.reset) == (200, total, None)
        assert client.goaway is None and not client.closed
        # Once the last byte is out the connection is idle, and closed as such.
        await self.clock.advance(2 * self.IDLE)
        await client.until_closed()
        assert client.goaway is not None
        assert client.goaway.additional_data == b"idle"
        await client.close()


class HostileH2Test(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    async def still_serving(self, client: RawH2) -> None:
        r = await client.fetch("/host")
        assert (r.status, r.body) == (200, b"localhost")

    # -- cancels --------------------------------------------------------------------

    @gen_test
    async def test_cancels_are_not_answered_with_resets_nor_logged(self) -> None:
        clients = [await RawH2.connect(self.get_http_port()) for _ in range(3)]
        cancelled: dict[RawH2, list[int]] = {c: [] for c in clients}
        with records("squall.general", "squall.application") as logged:
            for client in clients:
                for i in range(30):
                    # The request and its cancel in one write: the server
                    # reads both before the handler answers.
                    sid = client.conn.get_next_available_stream_id()
                    path = "/host" if i % 2 else "/trickle"
                    client.conn.send_headers(sid, head(path), end_stream=True)
                    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    cancelled[client].append(sid)
                client.flush()
                # And cancels of responses under way.
                for _ in range(10):
                    sid = client.request("/trickle")
                    r = client.responses[sid]
                    await client.until(lambda r=r: len(r.body) > 0)
                    client.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    client.flush()
                    cancelled[client].append(sid)
                # The server has read everything before this answer.
                await self.still_serving(client)
        assert logged == []
        for client in clients:
            answered = resets(client)
            assert not set(cancelled[client]) & set(answered), answered
            assert client.goaway is None
            await client.close()

    # -- the host check of HTTP/1.1 -------------------------------------------------

    @gen_test
    async def test_authority_and_host_are_checked_as_http1_host(self) -> None:
        client = await RawH2.connect(self.get_http_port(), validate=False)
        bad = [
            head("/host", authority="evil.com/<script>x"),
            head("/host", authority="", host="a") + [("host", "evil.com")],
            head("/host", authority="a") + [("host", "a"), ("host", "a")],
            head("/host", authority="user@a"),
        ]
        with ExpectLog("squall.general", ".*Host header", level=logging.INFO) as expect:
            answers = [send(client, 2 * i + 1, fields) for i, fields in enumerate(bad)]
            await client.until(lambda: all(r.ended for r in answers))
        assert expect.matched == len(bad)
        assert [r.status for r in answers] == [400] * len(bad)
        r = send(client, 11, head("/host", authority="ok.example:8080", host="ok.example:8080"))
        await client.until(lambda: r.ended)
        assert (r.status, r.body) == (200, b"ok.example:8080")
        await client.close()
        # HTTP/1.1 on the same port refuses the same value.
        with ExpectLog("squall.general", ".*Invalid Host header", level=logging.INFO):
            status = await http1_head(
                self.get_http_port(), b"GET /host HTTP/1.1\r\nHost: evil.com/<script>x\r\n\r\n"
            )
        assert status.startswith(b"HTTP/1.1 400 ")

    # -- smaller RFC departures ---------------------------------------------------------

    @gen_test
    async def test_lower_new_stream_id_is_a_protocol_error(self) -> None:
        # RFC 9113 §5.1.1: 3 after 5 is a connection error PROTOCOL_ERROR.
        client = await RawH2.connect(self.get_http_port(), validate=False)
        with ExpectLog("squall.general", "HTTP/2 error.*stream 3 opened after", level=logging.INFO):
            raw_headers(client, 5, head("/host"))
            raw_headers(client, 3, head("/host"))
            await client.until_closed()
        assert goaway(client).error_code == ErrorCode.PROTOCOL_ERROR
        await client.close()

    @gen_test
    async def test_headers_on_a_closed_stream_is_stream_closed(self) -> None:
        client = await RawH2.connect(self.get_http_port(), validate=False)
        await client.fetch("/host")  # stream 1, closed both ways
        with ExpectLog("squall.general", "HTTP/2 error.*closed stream 1", level=logging.INFO):
            raw_headers(client, 1, head("/host"))
            await client.until_closed()
        assert goaway(client).error_code == ErrorCode.STREAM_CLOSED
        await client.close()

    @gen_test
    async def test_stream_over_the_limit_is_refused_not_the_connection(self) -> None:
        # RFC 9113 §5.1.2: the 101st stream of 100 is refused; the 100 go on.
        client = await RawH2.connect(self.get_http_port(), validate=False)
        limit = H2Limits().max_concurrent_streams
        for i in range(limit + 1):
            raw_headers(client, 2 * i + 1, head("/hang"))
        refused = 2 * limit + 1
        await client.until(lambda: refused in resets(client))
        assert resets(client) == {refused: ErrorCode.REFUSED_STREAM}
        self._app.settings["release"].set()
        await client.until(lambda: len(ended(client)) == limit)
        raw_headers(client, refused + 2, head("/host"))
        await client.until(lambda: refused + 2 in ended(client))
        assert ended(client) == {2 * i + 1 for i in range(limit)} | {refused + 2}
        assert client.goaway is None
        await client.close()

    @gen_test
    async def test_empty_method_or_scheme_is_malformed(self) -> None:
        # RFC 9113 §8.3.1: the stream is reset; the connection goes on.
        client = await RawH2.connect(self.get_http_port(), validate=False)
        cases = [
            [(":method", ""), (":path", "/host"), (":scheme", "http"), (":authority", "x")],
            [(":method", "GET"), (":path", "/host"), (":scheme", ""), (":authority", "x")],
            [(":method", "G T"), (":path", "/host"), (":scheme", "http"), (":authority", "x")],
        ]
        with ExpectLog("squall.general", "Malformed HTTP/2 request", level=logging.INFO) as expect:
            for i, fields in enumerate(cases):
                raw_headers(client, 2 * i + 1, fields)
            r = send(client, 7, head("/host"))
            await client.until(lambda: r.ended)
        assert expect.matched == len(cases)
        assert resets(client) == {1: ErrorCode.PROTOCOL_ERROR, 3: ErrorCode.PROTOCOL_ERROR, 5: 1}
        assert r.status == 200
        await client.close()

    @gen_test
    async def test_upgrade_with_two_http2_settings_fields_stays_http1(self) -> None:
        # RFC 7540 §3.2.1: no upgrade with more than one HTTP2-Settings.
        status = await http1_head(
            self.get_http_port(),
            b"GET /host HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
            b"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        )
        assert status.startswith(b"HTTP/1.1 200 ")

    @gen_test
    async def test_upgrade_whose_connection_omits_http2_settings_stays_http1(self) -> None:
        # nginx's WebSocket recipe forwards the client's
        # Upgrade with "Connection: upgrade". RFC 7540 §3.2: Connection
        # names HTTP2-Settings too, else this is no h2c upgrade.
        for connection in (b"upgrade", b"Upgrade, Keep-Alive", b"HTTP2-Settings"):
            status = await http1_head(
                self.get_http_port(),
                b"GET /host HTTP/1.1\r\nHost: x\r\nConnection: " + connection + b"\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            )
            assert status.startswith(b"HTTP/1.1 200 "), (connection, status)


H2C_REQUEST = (
    b"GET /host HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
)


class BehindProxyTest(AsyncHTTPTestCase):
    """Behind a proxy (xheaders), no h2c upgrade by default."""

    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "xheaders": True}

    @gen_test
    async def test_h2c_upgrade_is_not_taken_but_prior_knowledge_is(self) -> None:
        status = await http1_head(self.get_http_port(), H2C_REQUEST)
        assert status.startswith(b"HTTP/1.1 200 ")
        # A proxy that parses HTTP/1.1 cannot pass the preface on.
        client = await RawH2.connect(self.get_http_port())
        r = send(client, 1, head("/host"))
        await client.until(lambda: r.ended)
        assert r.status == 200
        await client.close()


class UpgradeAskedForBehindProxyTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True, "xheaders": True, "h2c_upgrade": True}

    @gen_test
    async def test_h2c_upgrade_is_taken_when_asked_for(self) -> None:
        # Asked for explicitly: the operator's proxy does not forward Upgrade.
        status = await http1_head(self.get_http_port(), H2C_REQUEST)
        assert status.startswith(b"HTTP/1.1 101 ")


class WithoutHTTP2Test(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    @gen_test
    async def test_prior_knowledge_client_is_told_http2_is_not_enabled(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        with ExpectLog(
            "squall.general",
            "Malformed HTTP message.*HTTP/2 connection preface.*http2=True.*--http2",
            level=logging.INFO,
        ):
            client.request("/host")
            await client.until_closed()
        assert bytes(client.raw).startswith(b"HTTP/1.1 505 HTTP Version Not Supported\r\n")
        await client.close()


@pytest.mark.parametrize("h2c_upgrade", [True, False])
@pytest.mark.parametrize("loop", LOOPS)
def test_only_a_connections_first_request_may_upgrade(loop: str, h2c_upgrade: bool) -> None:
    # uvloop keeps calling the data_received it took at connection_made: the
    # preface sniffer's, after the connection became plain HTTP/1.1. Before,
    # each later read made the connection a sniffer again (so its next
    # request could upgrade); with the first fix of the h2c upgrade behind a
    # proxy, it raised.
    async def main() -> None:
        async with serving(make_app(), http2=True, h2c_upgrade=h2c_upgrade) as (_, port):
            reader, writer = await connect(port)
            try:
                writer.write(b"GET /host HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await read_response(reader))[0] == 200
                writer.write(H2C_REQUEST)
                status, _, body = await read_response(reader)
                assert (status, body) == (200, b"x")
            finally:
                writer.close()

    run(main, loop)
