"""WebTransport over HTTP/3: `WebTransportHandler` driven by aioquic's client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.asyncio.client import connect  # noqa: E402
from aioquic.asyncio.protocol import QuicConnectionProtocol  # noqa: E402
from aioquic.buffer import Buffer, encode_uint_var  # noqa: E402
from aioquic.h3.connection import FrameType, H3Connection, H3Stream  # noqa: E402
from aioquic.h3.events import DatagramReceived, WebTransportStreamDataReceived  # noqa: E402

from squall.httpserver._h3webtransport import (  # noqa: E402
    CLOSE_SESSION,
    DRAIN_SESSION,
    WT_BUFFERED_STREAM_REJECTED,
)
from squall.testing import gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from squall.webtransport import WebTransportHandler, WebTransportStream  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._client import H3Client, client_configuration  # noqa: E402
from .test_server import H3TestCase  # noqa: E402


class Echo(WebTransportHandler):
    max_sessions_per_connection = 2
    max_streams_per_session = 2
    max_datagram_size = 100

    def open(self) -> None:
        self.application.settings["opened"] += 1

    def on_datagram(self, data: bytes) -> None:
        if data == b"stats":
            self.send_datagram(f"dropped {self.dropped_datagrams}".encode())
        elif data == b"close":
            self.close(7, "bye")
        elif data == b"push":
            stream = self.create_stream(unidirectional=True)
            stream.write(b"pushed", end=True)
        else:
            self.send_datagram(b"echo " + data)

    async def on_stream(self, stream: WebTransportStream) -> None:
        data = await stream.read_all()
        if stream.writable:
            stream.write(b"echo " + data, end=True)
        else:
            back = self.create_stream(unidirectional=True)
            back.write(data[::-1], end=True)

    def on_session_close(self, code: int, reason: str) -> None:
        self.application.settings["closed"].append((code, reason))
        self.application.settings["closed_event"].set()


class Deaf(WebTransportHandler):
    max_stream_buffer = 1000

    def on_stream(self, stream: WebTransportStream) -> None:
        self.application.settings["deaf"].append(stream)
        # A test waiting for this stream is woken by its client's events,
        # and no event of the client's follows a stream it opened.
        for poke in self.application.settings["pokes"]:
            poke()


class _WTProtocol(H3Client):
    """H3Client whose H3 layer speaks WebTransport (set before its SETTINGS go)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        QuicConnectionProtocol.__init__(self, *args, **kwargs)
        self.h3 = H3Connection(self._quic, enable_webtransport=True)
        self.responses = {}
        self.events = []
        self.terminated = None
        self.control = b""
        self._changed = None

    def datagrams(self, session: int) -> list[bytes]:
        return [
            e.data
            for e in self.events
            if isinstance(e, DatagramReceived) and e.stream_id == session
        ]

    def wt_data(self, sid: int) -> tuple[bytes, bool]:
        data, ended = b"", False
        for e in self.events:
            if isinstance(e, WebTransportStreamDataReceived) and e.stream_id == sid:
                data += e.data
                ended = ended or e.stream_ended
        return data, ended

    def wt_streams(self, session: int) -> set[int]:
        return {
            e.stream_id
            for e in self.events
            if isinstance(e, WebTransportStreamDataReceived) and e.session_id == session
        }

    def open_stream(self, session: int, unidirectional: bool = False) -> int:
        sid = self.h3.create_webtransport_stream(session, is_unidirectional=unidirectional)
        if not unidirectional:
            # aioquic's client would read the answer on its own bidirectional
            # stream as HTTP/3 frames: mark it as WebTransport's (raw bytes).
            stream = self.h3._stream.setdefault(sid, H3Stream(sid))
            stream.frame_type = FrameType.WEBTRANSPORT_STREAM
            stream.session_id = session
        return sid

    def open_session(self, path: str = "/wt") -> int:
        return self.request(
            path,
            method="CONNECT",
            headers=[(":protocol", "webtransport"), ("sec-webtransport-http3-draft02", "1")],
            end=False,
        )


@contextlib.asynccontextmanager
async def wt_client(port: int) -> AsyncIterator[_WTProtocol]:
    config = client_configuration()
    config.max_datagram_frame_size = 65536
    async with connect("127.0.0.1", port, configuration=config, create_protocol=_WTProtocol) as c:
        assert isinstance(c, _WTProtocol)
        yield c


def _capsules(data: bytes) -> list[tuple[int, bytes]]:
    buf = Buffer(data=data)
    out = []
    while not buf.eof():
        kind = buf.pull_uint_var()
        out.append((kind, buf.pull_bytes(buf.pull_uint_var())))
    return out


class WebTransportTest(H3TestCase):
    def get_app(self) -> Application:
        return Application(
            [("/wt", Echo), ("/deaf", Deaf)],
            deaf=[],
            pokes=[],
            opened=0,
            closed=[],
            closed_event=asyncio.Event(),
        )

    async def _session(self, client: _WTProtocol, path: str = "/wt") -> int:
        session = client.open_session(path)
        r = client.responses[session]
        await client.until(lambda: r.status != 0)
        assert r.status == 200, (r.status, r.body)
        assert r.headers["sec-webtransport-http3-draft"] == "draft02"
        return session

    @gen_test
    async def test_datagram_and_stream_echo(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            assert self._app.settings["opened"] == 1
            await echo_then_close(client, session, [b"hello"])
            await asyncio.wait_for(self._app.settings["closed_event"].wait(), HANG_GUARD)
            assert self._app.settings["closed"] == [(42, "done")]

    @gen_test
    async def test_server_closes_with_code_and_reason(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            client.h3.send_datagram(session, b"close")
            client.transmit()
            r = client.responses[session]
            await client.until(lambda: r.ended)
            assert _capsules(r.body) == [(CLOSE_SESSION, (7).to_bytes(4, "big") + b"bye")]
            assert self._app.settings["closed"] == [(7, "bye")]

    @gen_test
    async def test_too_many_sessions(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            await self._session(client)
            await self._session(client)
            third = client.open_session()
            r = client.responses[third]
            await client.until(lambda: r.ended)
            assert r.status == 429

    @gen_test
    async def test_too_many_streams_refused(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            # Streams left open (the handler reads each to its end): two are
            # taken, the third is refused.
            sids = [client.open_stream(session) for _ in range(3)]
            for sid in sids:
                client._quic.send_stream_data(sid, b"x")
            client.transmit()
            await client.until(
                lambda: (
                    client.responses.get(sids[2]) is not None
                    and client.responses[sids[2]].reset is not None
                )
            )
            assert client.responses[sids[2]].reset == WT_BUFFERED_STREAM_REJECTED
            # The first two still work.
            client._quic.send_stream_data(sids[0], b"y", end_stream=True)
            client.transmit()
            await client.until(lambda: client.wt_data(sids[0])[1])
            assert client.wt_data(sids[0]) == (b"echo xy", True)

    @gen_test
    async def test_oversized_datagram_dropped(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            client.h3.send_datagram(session, b"z" * 101)
            client.h3.send_datagram(session, b"small")
            client.transmit()
            await client.until(lambda: b"echo small" in client.datagrams(session))
            client.h3.send_datagram(session, b"stats")
            client.transmit()
            await client.until(
                lambda: any(d.startswith(b"dropped") for d in client.datagrams(session))
            )
            assert b"dropped 1" in client.datagrams(session)
            assert not [d for d in client.datagrams(session) if d.startswith(b"echo zz")]

    @gen_test
    async def test_server_stream_and_drain(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            client.h3.send_datagram(session, b"push")
            client.transmit()
            await client.until(
                lambda: any(
                    client.wt_data(s) == (b"pushed", True) for s in client.wt_streams(session)
                )
            )
            # The server drains: DRAIN_WEBTRANSPORT_SESSION, then the
            # handler's on_drain closes the session.
            drain = self.io_loop.asyncio_loop.create_task(self.http_server.drain(5))  # type: ignore[attr-defined]
            r = client.responses[session]
            await client.until(lambda: r.ended)
            kinds = [k for k, _ in _capsules(r.body)]
            assert kinds == [DRAIN_SESSION, CLOSE_SESSION]
            assert self._app.settings["closed"] == [(0, "server shutting down")]
            assert await drain is True

    @gen_test
    async def test_a_handler_that_stops_reading(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            self._app.settings["pokes"].append(client.poke)
            session = await self._session(client, "/deaf")
            sid = client.open_stream(session)
            client._quic.send_stream_data(sid, b"a" * 5000)
            client.transmit()
            # More than max_stream_buffer unread: the stream is reset, not kept.
            await client.until(
                lambda: (
                    client.responses.get(sid) is not None
                    and client.responses[sid].reset is not None
                )
            )
            (stream,) = self._app.settings["deaf"]
            with pytest.raises(ConnectionResetError):
                await stream.read()
            # The client resets a stream of its own: the handler's read ends.
            other = client.open_stream(session)
            client._quic.send_stream_data(other, b"b")
            client.transmit()
            await client.until(lambda: len(self._app.settings["deaf"]) == 2)
            reading = asyncio.ensure_future(self._app.settings["deaf"][1].read(10))
            assert await reading == b"b"
            reading = asyncio.ensure_future(self._app.settings["deaf"][1].read(10))
            client._quic.reset_stream(other, 0)
            client.transmit()
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reading, HANG_GUARD)


class ServedWebTransportTest(H3TestCase):
    """Behind `squall run`'s delegate (request.connection is its wrapper)."""

    def get_app(self) -> Any:
        from squall.cli._serving import ServingDelegate

        app = Application([("/wt", Echo)], opened=0, closed=[], closed_event=asyncio.Event())
        self.wt_app = app
        return ServingDelegate(app)

    @gen_test
    async def test_datagram_echo(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = client.open_session()
            r = client.responses[session]
            await client.until(lambda: r.status != 0)
            assert r.status == 200, (r.status, r.body)
            assert self.wt_app.settings["opened"] == 1
            client.h3.send_datagram(session, b"ping")
            client.transmit()
            await client.until(lambda: b"echo ping" in client.datagrams(session))


async def echo_then_close(client: Any, session: int, pieces: list[bytes]) -> None:
    """The echo server's round: a datagram ("echo ping"), a bidirectional
    stream sent as ``pieces`` (echoed on itself), a unidirectional one
    (answered reversed on a server stream), then the client closes the
    session with 42 "done"."""
    client.h3.send_datagram(session, b"ping")
    client.transmit()
    await client.until(lambda: b"echo ping" in client.datagrams(session))
    sid = client.open_stream(session)
    for i, piece in enumerate(pieces):
        client._quic.send_stream_data(sid, piece, end_stream=i == len(pieces) - 1)
        client.transmit()
    await client.until(lambda: client.wt_data(sid)[1])
    assert client.wt_data(sid) == (b"echo " + b"".join(pieces), True)
    uni = client.open_stream(session, unidirectional=True)
    client._quic.send_stream_data(uni, b"abc", end_stream=True)
    client.transmit()
    await client.until(
        lambda: any(client.wt_data(s) == (b"cba", True) for s in client.wt_streams(session))
    )
    body = (42).to_bytes(4, "big") + b"done"
    client.send_body(
        session, encode_uint_var(CLOSE_SESSION) + encode_uint_var(len(body)) + body, end=True
    )
