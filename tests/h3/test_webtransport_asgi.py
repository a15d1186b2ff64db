"""The ``webtransport`` ASGI scope over HTTP/3, driven by aioquic's client.

The client and its helpers are test_webtransport's (the Application's
WebTransportHandler tests); here the server is an ASGIServerDelegate.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")


from squall.asgi import ASGIProtocolError, ASGIServerDelegate, ClientDisconnected  # noqa: E402
from squall.cli._serving import ServingDelegate  # noqa: E402
from squall.httpserver._h3webtransport import (  # noqa: E402
    CLOSE_SESSION,
    DRAIN_SESSION,
    WT_BUFFERED_STREAM_REJECTED,
)
from squall.testing import ExpectLog, gen_test  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from .test_server import H3TestCase  # noqa: E402
from .test_webtransport import (  # noqa: E402
    _capsules,
    _WTProtocol,
    echo_then_close,
    wt_client,
)


class Recorder:
    """What the application saw, and an event per thing a test waits on."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.closed: list[tuple[int, str]] = []
        self.errors: list[BaseException] = []
        self.resets: list[int] = []
        self.streams: list[int] = []
        self.changed = asyncio.Event()

    def note(self) -> None:
        self.changed.set()

    async def until(self, predicate: Any, timeout: float = HANG_GUARD) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            assert left > 0, "condition not reached"
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                pass


def make_app(seen: Recorder) -> Any:
    async def echo(receive: Any, send: Any) -> None:
        buffers: dict[int, bytes] = {}
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "webtransport.datagram.receive":
                data = message["data"]
                if data == b"close":
                    await send({"type": "webtransport.close", "code": 7, "reason": "bye"})
                elif data == b"push":
                    await send({"type": "webtransport.stream.open", "unidirectional": True})
                    opened = await receive()
                    assert opened["type"] == "webtransport.stream.opened", opened
                    assert opened["unidirectional"] is True
                    await send(
                        {
                            "type": "webtransport.stream.send",
                            "stream": opened["stream"],
                            "data": b"pushed",
                            "end_stream": True,
                        }
                    )
                elif data == b"big":
                    # Over the server's high-water mark: each send waits
                    # for the client to acknowledge enough of it.
                    await send({"type": "webtransport.stream.open"})
                    opened = await receive()
                    assert opened["unidirectional"] is False
                    for end in (False, True):
                        await send(
                            {
                                "type": "webtransport.stream.send",
                                "stream": opened["stream"],
                                "data": b"b" * 150_000,
                                "end_stream": end,
                            }
                        )
                elif data == b"too big":
                    try:
                        await send({"type": "webtransport.datagram.send", "data": b"x" * 101})
                    except ValueError as exc:
                        seen.errors.append(exc)
                        seen.note()
                else:
                    await send({"type": "webtransport.datagram.send", "data": b"echo " + data})
            elif kind == "webtransport.stream.receive":
                sid = message["stream"]
                seen.streams.append(sid)
                seen.note()
                buffers[sid] = buffers.get(sid, b"") + message["data"]
                if message["more_body"]:
                    continue
                data = buffers.pop(sid)
                if sid & 2:  # the client's unidirectional stream: answer on ours
                    await send({"type": "webtransport.stream.open", "unidirectional": True})
                    opened = await receive()
                    sid, data = opened["stream"], data[::-1]
                else:
                    data = b"echo " + data
                await send(
                    {
                        "type": "webtransport.stream.send",
                        "stream": sid,
                        "data": data,
                        "end_stream": True,
                    }
                )
            elif kind == "webtransport.stream.reset":
                seen.resets.append(message["stream"])
                seen.note()
            elif kind == "webtransport.disconnect":
                seen.closed.append((message["code"], message["reason"]))
                seen.note()
                return

    async def misbehave(receive: Any, send: Any) -> None:
        for wrong in (
            {"type": "websocket.send", "text": "hi"},
            {"type": "webtransport.stream.send", "stream": "one", "data": b""},
            {"type": "webtransport.datagram.send", "data": "not bytes"},
        ):
            try:
                await send(wrong)
            except ASGIProtocolError as exc:
                seen.errors.append(exc)
        try:
            await send({"type": "webtransport.stream.send", "stream": 4000, "data": b"x"})
        except ClientDisconnected as exc:
            seen.errors.append(exc)
        await send({"type": "webtransport.close", "code": 1, "reason": "done"})
        try:
            await send({"type": "webtransport.datagram.send", "data": b"late"})
        except ClientDisconnected as exc:
            seen.errors.append(exc)
        seen.note()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "webtransport":
            return
        seen.scopes.append(dict(scope))
        message = await receive()
        assert message == {"type": "webtransport.connect"}
        path = scope["path"]
        if path == "/refuse":
            await send({"type": "webtransport.close", "status": 404})
            return
        if path == "/forbid":
            await send({"type": "webtransport.close"})
            return
        await send({"type": "webtransport.accept", "headers": [(b"x-app", b"1")]})
        if path == "/echo":
            await echo(receive, send)
        elif path == "/misbehave":
            await misbehave(receive, send)
        elif path == "/deaf":
            # A session that stops reading: it waits for its end only.
            while seen.closed == []:
                await seen.changed.wait()
                seen.changed.clear()
        elif path == "/fails":
            raise RuntimeError("the application's own bug")

    return app


class ASGIWebTransportTest(H3TestCase):
    def get_app(self) -> Any:
        self.seen = Recorder()
        return ASGIServerDelegate(
            make_app(self.seen),
            wt_max_sessions=2,
            wt_max_streams=2,
            wt_max_datagram_size=100,
            wt_max_stream_buffer=1000,
        )

    async def _session(self, client: _WTProtocol, path: str = "/echo") -> int:
        session = client.open_session(path)
        r = client.responses[session]
        await client.until(lambda: r.status != 0)
        assert r.status == 200, (r.status, r.body)
        assert r.headers["sec-webtransport-http3-draft"] == "draft02"
        assert r.headers["x-app"] == "1"
        return session

    @gen_test
    async def test_datagram_and_stream_echo_and_client_close(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client, "/echo?room=7")
            (scope,) = self.seen.scopes
            assert scope["type"] == "webtransport"
            assert (scope["path"], scope["query_string"]) == ("/echo", b"room=7")
            assert (scope["http_version"], scope["scheme"]) == ("3", "https")
            assert "method" not in scope
            assert "webtransport" in scope["extensions"]
            await echo_then_close(client, session, [b"hel", b"lo"])
            await self.seen.until(lambda: self.seen.closed)
            assert self.seen.closed == [(42, "done")]

    @gen_test
    async def test_app_closes_with_code_and_reason(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            client.h3.send_datagram(session, b"close")
            client.transmit()
            r = client.responses[session]
            await client.until(lambda: r.ended)
            assert _capsules(r.body) == [(CLOSE_SESSION, (7).to_bytes(4, "big") + b"bye")]
            await self.seen.until(lambda: self.seen.closed)
            assert self.seen.closed == [(7, "bye")]

    @gen_test
    async def test_refused_with_a_status(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            for path, status in (("/refuse", 404), ("/forbid", 403)):
                r = client.responses[client.open_session(path)]
                await client.until(lambda r=r: r.ended)  # type: ignore[misc]
                assert r.status == status

    @gen_test
    async def test_app_failing_or_returning_ends_the_session(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            with ExpectLog("squall.application", "Exception in ASGI application"):
                r = client.responses[await self._session(client, "/fails")]
                await client.until(lambda: r.ended)
            assert _capsules(r.body) == [(CLOSE_SESSION, b"\0\0\0\0internal server error")]

    @gen_test
    async def test_a_misbehaving_app_gets_errors_and_others_go_on(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            echo = await self._session(client)
            bad = await self._session(client, "/misbehave")
            r = client.responses[bad]
            await client.until(lambda: r.ended)
            assert _capsules(r.body) == [(CLOSE_SESSION, b"\0\0\0\x01done")]
            kinds = [type(e) for e in self.seen.errors]
            assert kinds == [ASGIProtocolError] * 3 + [ClientDisconnected] * 2
            assert "'websocket.send'" in str(self.seen.errors[0])
            assert "int 'stream'" in str(self.seen.errors[1])
            # The connection and its other session are unharmed.
            client.h3.send_datagram(echo, b"still here")
            client.transmit()
            await client.until(lambda: b"echo still here" in client.datagrams(echo))

    @gen_test
    async def test_too_many_sessions(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            await self._session(client)
            await self._session(client)
            r = client.responses[client.open_session("/echo")]
            await client.until(lambda: r.ended)
            assert r.status == 429
            assert len(self.seen.scopes) == 2  # the app never saw the third

    @gen_test
    async def test_too_many_streams_refused(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            sids = [client.open_stream(session) for _ in range(3)]
            for sid in sids:
                client._quic.send_stream_data(sid, b"x")
            client.transmit()
            third = sids[2]
            await client.until(
                lambda: (
                    client.responses.get(third) is not None
                    and client.responses[third].reset is not None
                )
            )
            assert client.responses[third].reset == WT_BUFFERED_STREAM_REJECTED
            client._quic.send_stream_data(sids[0], b"y", end_stream=True)
            client.transmit()
            await client.until(lambda: client.wt_data(sids[0])[1])
            assert client.wt_data(sids[0]) == (b"echo xy", True)

    @gen_test
    async def test_datagram_size_limit_both_ways(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            client.h3.send_datagram(session, b"z" * 101)  # dropped
            client.h3.send_datagram(session, b"too big")  # the app sends 101 bytes
            client.h3.send_datagram(session, b"small")
            client.transmit()
            await client.until(lambda: b"echo small" in client.datagrams(session))
            await self.seen.until(lambda: self.seen.errors)
            assert "over the limit of 100" in str(self.seen.errors[0])
            assert not [d for d in client.datagrams(session) if d.startswith(b"echo zz")]

    @gen_test
    async def test_a_session_that_stops_reading(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client, "/deaf")
            sid = client.open_stream(session)
            client._quic.send_stream_data(sid, b"a" * 20000)
            client.transmit()
            # Over wt_max_stream_buffer held for an app that does not
            # receive: the stream is reset, not kept.
            await client.until(
                lambda: (
                    client.responses.get(sid) is not None
                    and client.responses[sid].reset is not None
                )
            )

    @gen_test
    async def test_streams_reset_both_ways_and_server_stream(self) -> None:
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
            sid = client.open_stream(session)
            client._quic.send_stream_data(sid, b"part")
            client.transmit()
            await self.seen.until(lambda: sid in self.seen.streams)
            client._quic.reset_stream(sid, 0)
            client.transmit()
            await self.seen.until(lambda: self.seen.resets)
            assert self.seen.resets == [sid]
            # A bidirectional stream of the app's, larger than the high-water mark.
            client.h3.send_datagram(session, b"big")
            client.transmit()
            await client.until(
                lambda: any(
                    client.wt_data(s) == (b"b" * 300_000, True) for s in client.wt_streams(session)
                ),
                timeout=HANG_GUARD,
            )

    @gen_test
    async def test_connection_lost(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            await self._session(client)
        # The client closed its QUIC connection, not the session.
        await self.seen.until(lambda: self.seen.closed)
        assert self.seen.closed == [(0, "")]

    @gen_test
    async def test_drain_closes_sessions(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            session = await self._session(client)
            drain = self.io_loop.asyncio_loop.create_task(self.http_server.drain(5))  # type: ignore[attr-defined]
            r = client.responses[session]
            await client.until(lambda: r.ended)
            assert [k for k, _ in _capsules(r.body)] == [DRAIN_SESSION, CLOSE_SESSION]
            await self.seen.until(lambda: self.seen.closed)
            assert self.seen.closed == [(0, "server shutting down")]
            assert await drain is True


class ServedWebTransportTest(H3TestCase):
    """Behind `squall run`'s delegate: the session is one access-log line."""

    def get_app(self) -> Any:
        self.seen = Recorder()
        fmt = '{client} "{method} {path} HTTP/{version}" {status}'
        return ServingDelegate(ASGIServerDelegate(make_app(self.seen)), access_format=fmt)

    @gen_test
    async def test_access_log_line(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            with ExpectLog(
                "squall.access", r'127\.0\.0\.1 "CONNECT /echo HTTP/3" 200', level=logging.INFO
            ):
                session = client.open_session("/echo")
                r = client.responses[session]
                await client.until(lambda: r.status != 0)
            assert r.status == 200
            client.h3.send_datagram(session, b"ping")
            client.transmit()
            await client.until(lambda: b"echo ping" in client.datagrams(session))


def guide_program() -> Any:
    """The ASGI program of the HTTP/3 guide's WebTransport section."""
    text = (Path(__file__).parents[2] / "docs" / "guide" / "http3.md").read_text()
    section = text[text.index("### WebTransport for ASGI applications") :]
    code = section[section.index("```python\n") + 10 :]
    namespace: dict[str, Any] = {}
    exec(code[: code.index("```")], namespace)
    return namespace["app"]


class GuideProgramTest(H3TestCase):
    """The guide's complete program does what the guide says."""

    def get_app(self) -> Any:
        return ASGIServerDelegate(guide_program())

    @gen_test
    async def test_guide_program(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            r = client.responses[client.open_session("/other")]
            await client.until(lambda: r.ended)
            assert r.status == 404
            session = client.open_session("/echo")
            r = client.responses[session]
            await client.until(lambda: r.status != 0)
            assert r.status == 200
            client.h3.send_datagram(session, b"ping")
            uni = client.open_stream(session, unidirectional=True)
            client._quic.send_stream_data(uni, b"abc", end_stream=True)
            client.transmit()
            await client.until(
                lambda: (
                    b"ping" in client.datagrams(session)
                    and any(client.wt_data(s) == (b"abc", True) for s in client.wt_streams(session))
                )
            )


class NotHTTP3:
    """An extended CONNECT's connection that is not HTTP/3's (HTTP/2's): no
    ``webtransport`` seat."""

    protocol = "webtransport"
    context = None

    def __init__(self) -> None:
        self.heads: list[int] = []
        self.finished = False

    def set_close_callback(self, callback: Any) -> None:
        pass

    def write_headers(self, start_line: Any, headers: Any, chunk: bytes = b"") -> Any:
        self.heads.append(start_line.code)

    def finish(self) -> None:
        self.finished = True


def test_webtransport_over_another_protocol_is_400() -> None:
    from squall.httputil import HTTPHeaders, RequestStartLine

    seen = Recorder()

    async def main() -> NotHTTP3:
        conn = NotHTTP3()
        delegate = ASGIServerDelegate(make_app(seen))
        cycle = delegate.start_request(None, conn)  # type: ignore[arg-type]
        cycle.headers_received(RequestStartLine("CONNECT", "/echo", "HTTP/2"), HTTPHeaders())
        cycle.finish()
        return conn

    conn = asyncio.run(main())
    assert (conn.heads, conn.finished) == ([400], True)
    assert seen.scopes == []  # the application never saw it
