"""WebTransport under a client that does not keep up: the server's write
timeout on the session's streams, and the bound on datagrams queued to send.

Both for the Application's `WebTransportHandler` and for an ASGI
application's ``webtransport`` scope, driven by aioquic's client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any, Optional

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.asyncio.client import connect  # noqa: E402

from squall.asgi import ASGIServerDelegate, ClientDisconnected  # noqa: E402
from squall.httpserver._h3webtransport import DATAGRAM_QUEUE  # noqa: E402
from squall.testing import ExpectLog, gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from squall.webtransport import WebTransportHandler  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._client import client_configuration  # noqa: E402
from .test_server import H3TestCase  # noqa: E402
from .test_webtransport import _WTProtocol  # noqa: E402

# What the server writes on a stream the client does not read: more than
# the server's high-water mark of unacknowledged output (256 KiB).
FLOOD = 300_000
WRITE_TIMEOUT = 0.15
# The client's flow-control window per stream, never raised.
WINDOW = 16_384


@contextlib.asynccontextmanager
async def stingy_client(port: int) -> AsyncIterator[_WTProtocol]:
    """A WebTransport client that never reads its streams: each gets a small
    flow-control window that is never raised (MAX_STREAM_DATA is not sent)."""
    config = client_configuration()
    config.max_datagram_frame_size = 65536
    config.max_stream_data = WINDOW
    async with connect("127.0.0.1", port, configuration=config, create_protocol=_WTProtocol) as c:
        assert isinstance(c, _WTProtocol)
        quic: Any = c._quic
        quic._write_stream_limits = lambda **kwargs: None
        yield c


async def open_session(client: _WTProtocol, path: str) -> int:
    session = client.open_session(path)
    r = client.responses[session]
    await client.until(lambda: r.status != 0)
    assert r.status == 200, (r.status, r.body)
    return session


async def flood_is_reset(
    client: _WTProtocol, session: int, kind: bytes, outcome: asyncio.Future[Any]
) -> Any:
    """Asks for a stream of ``kind`` (b"bidi", or b"uni" which the server
    also ends) flooded by the server; returns how the server's write ended
    once the client saw the stream reset."""
    client.h3.send_datagram(session, kind)
    client.transmit()
    with ExpectLog("squall.general", ".*took nothing for", level=logging.INFO):
        result, sid = await asyncio.wait_for(outcome, HANG_GUARD)
    await client.until(
        lambda: client.responses.get(sid) is not None and client.responses[sid].reset is not None
    )
    # Not all of it came (the window held the rest), and the session goes on.
    assert len(client.wt_data(sid)[0]) <= WINDOW
    client.h3.send_datagram(session, b"ping")
    client.transmit()
    await client.until(lambda: b"pong" in client.datagrams(session))
    return result


# Datagrams the application sends in one go (no turn of the loop between).
BURST = 1000


async def burst_is_cut(client: _WTProtocol, session: int) -> None:
    """Asks for a burst of numbered datagrams: only the newest
    `DATAGRAM_QUEUE` were kept (the oldest dropped), and they all come."""
    client.h3.send_datagram(session, b"burst")
    client.transmit()
    last = b"%d" % (BURST - 1)
    await client.until(lambda: last in client.datagrams(session))
    # What else the client gets has been sent by now: a ping's answer comes after.
    client.h3.send_datagram(session, b"ping")
    client.transmit()
    await client.until(lambda: b"pong" in client.datagrams(session))
    got = [int(d) for d in client.datagrams(session) if d.isdigit()]
    newest = list(range(BURST - DATAGRAM_QUEUE, BURST))
    assert got == newest, (len(got), got[:3])


class Flood(WebTransportHandler):
    async def on_datagram(self, data: bytes) -> None:
        if data == b"ping":
            self.send_datagram(b"pong")
            return
        if data == b"burst":
            for i in range(BURST):
                self.send_datagram(b"%d" % i)
            self.application.settings["dropped"] = self.dropped_outgoing_datagrams
            return
        uni = data == b"uni"
        stream = self.create_stream(unidirectional=uni)
        result: Any = None
        try:
            await stream.write(b"w" * FLOOD, end=uni)
        except ConnectionResetError as exc:
            result = exc
        self.application.settings["outcome"].set_result((result, stream.stream_id))


class FloodChecks:
    """The tests both applications pass: a subclass gives the app, a new
    outcome for its next flood, and the error its write ends with."""

    error: type[BaseException]

    def outcome(self) -> asyncio.Future[Any]:
        raise NotImplementedError

    def dropped(self) -> Optional[int]:
        """What the application counted of the burst's datagrams dropped
        (None: it cannot tell)."""
        return None

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "write_timeout": WRITE_TIMEOUT}  # type: ignore[misc]

    @gen_test(timeout=HANG_GUARD)
    async def test_a_stream_the_client_does_not_read_is_reset(self) -> None:
        case: Any = self
        await case.started()
        async with stingy_client(case.get_http_port()) as client:
            session = await open_session(client, "/flood")
            for kind in (b"bidi", b"uni"):
                result = await flood_is_reset(client, session, kind, self.outcome())
                assert isinstance(result, self.error), (kind, result)

    @gen_test
    async def test_datagrams_sent_faster_than_they_go_drop_the_oldest(self) -> None:
        case: Any = self
        await case.started()
        async with stingy_client(case.get_http_port()) as client:
            await burst_is_cut(client, await open_session(client, "/flood"))
        assert self.dropped() in (None, BURST - DATAGRAM_QUEUE)


class HandlerLimitsTest(FloodChecks, H3TestCase):
    error = ConnectionResetError

    def get_app(self) -> Application:
        return Application([("/flood", Flood)], outcome=None, dropped=None)

    def outcome(self) -> asyncio.Future[Any]:
        made = self._app.settings["outcome"] = asyncio.get_running_loop().create_future()
        return made

    def dropped(self) -> Optional[int]:
        count = self._app.settings["dropped"]
        assert count is not None  # the handler counted
        return int(count)


def flood_app(outcomes: list[asyncio.Future[Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "webtransport":
            return
        assert (await receive())["type"] == "webtransport.connect"
        await send({"type": "webtransport.accept"})
        while True:
            message = await receive()
            if message["type"] == "webtransport.disconnect":
                return
            if message["type"] != "webtransport.datagram.receive":
                continue
            if message["data"] == b"ping":
                await send({"type": "webtransport.datagram.send", "data": b"pong"})
                continue
            if message["data"] == b"burst":
                for i in range(BURST):
                    await send({"type": "webtransport.datagram.send", "data": b"%d" % i})
                continue
            uni = message["data"] == b"uni"
            await send({"type": "webtransport.stream.open", "unidirectional": uni})
            sid = (await receive())["stream"]
            result: Any = None
            try:
                await send(
                    {
                        "type": "webtransport.stream.send",
                        "stream": sid,
                        "data": b"w" * FLOOD,
                        "end_stream": uni,
                    }
                )
            except ClientDisconnected as exc:
                result = exc
            outcomes.pop(0).set_result((result, sid))

    return app


class ASGILimitsTest(FloodChecks, H3TestCase):
    error = ClientDisconnected

    def get_app(self) -> Any:
        self.outcomes: list[asyncio.Future[Any]] = []
        return ASGIServerDelegate(flood_app(self.outcomes))

    def outcome(self) -> asyncio.Future[Any]:
        made = asyncio.get_running_loop().create_future()
        self.outcomes.append(made)
        return made


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts every session and sends each datagram back."""
    if scope["type"] != "webtransport":
        return
    assert (await receive())["type"] == "webtransport.connect"
    await send({"type": "webtransport.accept"})
    while (message := await receive())["type"] != "webtransport.disconnect":
        if message["type"] == "webtransport.datagram.receive":
            await send({"type": "webtransport.datagram.send", "data": message["data"]})


class RunOptionsTest(H3TestCase):
    """``squall run --wt-max-sessions 1 --wt-max-datagram-size 10``: what the
    server refuses changes (by default 8 sessions and 1,200 bytes pass)."""

    def get_app(self) -> Any:
        from squall.cli._options import parse_config, webtransport_limits
        from squall.cli._target import serve_target

        config = parse_config(["t:app", "--wt-max-sessions", "1", "--wt-max-datagram-size", "10"])
        return serve_target(echo_app, "t:app", webtransport=webtransport_limits(config)).callback

    @gen_test
    async def test_options_change_what_is_refused(self) -> None:
        await self.started()
        async with stingy_client(self.get_http_port()) as client:
            session = await open_session(client, "/any")
            second = client.responses[client.open_session("/any")]
            await client.until(lambda: second.ended)
            assert second.status == 429
            client.h3.send_datagram(session, b"x" * 11)  # over 10 bytes: dropped
            client.h3.send_datagram(session, b"y" * 10)
            client.transmit()
            await client.until(lambda: b"y" * 10 in client.datagrams(session))
            assert client.datagrams(session) == [b"y" * 10]
