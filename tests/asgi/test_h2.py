"""ASGI applications served over HTTP/2: the scope, streamed bodies both ways, back-pressure.

The client is the ``h2`` package over a real socket (tests/h2/_client.py),
prior knowledge (h2c) on a plain port, and TLS with ALPN for the scheme.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest

pytest.importorskip("h2")
import h2.events  # noqa: E402

from squall.asgi import ASGIServerDelegate  # noqa: E402
from squall.httpserver import HTTPServer  # noqa: E402
from tests._paths import CERTS
from tests._wait import HANG_GUARD  # noqa: E402

from ..h2._client import RawH2  # noqa: E402
from ._helpers import run, until  # noqa: E402


@asynccontextmanager
async def serving_h2(app: Any, tls: bool = False) -> AsyncIterator[tuple[int, ASGIServerDelegate]]:
    """Serve ``app`` with HTTP/2 on (h2c by prior knowledge, or TLS with ALPN h2)."""
    delegate = ASGIServerDelegate(app)
    ssl_ctx: Optional[ssl.SSLContext] = None
    if tls:
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(os.path.join(CERTS, "test.crt"), os.path.join(CERTS, "test.key"))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    server = HTTPServer(delegate, http2=True, ssl_options=ssl_ctx)
    server.add_sockets([sock])
    try:
        yield sock.getsockname()[1], delegate
    finally:
        server.stop()
        await server.close_all_connections()
        await delegate.wait_requests(1.0)
        for task in list(delegate.tasks):
            task.cancel()
        if delegate.tasks:
            await asyncio.wait(set(delegate.tasks), timeout=1.0)


async def echo_scope(scope: dict[str, Any], receive: Any, send: Any) -> None:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = (
        f"{scope['http_version']} {scope['scheme']} {scope['method']} {scope['path']} "
        f"{scope['query_string'].decode()} {len(body)}"
    )
    await send({"type": "http.response.start", "status": 200, "headers": [(b"x-h", b"1")]})
    await send({"type": "http.response.body", "body": text.encode()})


def test_scope_over_h2c() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await echo_scope(scope, receive, send)

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                r = await client.fetch(
                    "/a%20b?x=1", headers=[("user-agent", "t"), ("x-two", "a"), ("x-two", "b")]
                )
            finally:
                await client.close()
        assert r.status == 200
        assert r.body == b"2 http GET /a b x=1 0"
        assert r.headers["x-h"] == "1"
        assert "date" in r.headers and "content-length" in r.headers
        scope = seen[0]
        assert scope["type"] == "http" and scope["http_version"] == "2"
        assert scope["raw_path"] == b"/a%20b"
        headers = scope["headers"]
        # :authority becomes host; names are lowercase bytes; repeats kept.
        assert (b"host", b"localhost") in headers
        assert [v for n, v in headers if n == b"x-two"] == [b"a", b"b"]
        assert all(n == n.lower() and not n.startswith(b":") for n, _ in headers)
        assert scope["client"][0] == "127.0.0.1" and scope["server"][1] > 0

    run(main())


def test_scheme_is_https_over_tls_alpn() -> None:
    async def main() -> None:
        async with serving_h2(echo_scope, tls=True) as (port, _):
            client = await RawH2.connect(port, tls=True)
            try:
                r = await client.fetch("/t")
            finally:
                await client.close()
        assert r.body == b"2 https GET /t  0"

    run(main())


def test_streamed_request_body_arrives_in_pieces() -> None:
    pieces: list[tuple[bytes, bool]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            pieces.append((message["body"], message["more_body"]))
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                sid = client.request("/up", method="POST", body=b"first", end=False)
                await until(lambda: len(pieces) == 1)
                # The application has the first piece before the rest is sent.
                assert pieces == [(b"first", True)]
                client.conn.send_data(sid, b"second", end_stream=True)
                client.flush()
                r = client.responses[sid]
                await client.until(lambda: r.ended)
            finally:
                await client.close()
        assert r.body == b"done"
        assert b"".join(p for p, _ in pieces) == b"firstsecond"
        assert pieces[-1][1] is False and all(more for _, more in pieces[:-1])

    run(main())


def test_streamed_response_body_frames_as_sent() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"part%d;" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                r = await client.fetch("/s")
            finally:
                await client.close()
        assert r.status == 200 and r.body == b"part0;part1;part2;"
        # Streamed: no Content-Length was invented.
        assert "content-length" not in r.headers

    run(main())


def test_send_waits_for_the_client_window() -> None:
    """A client that grants no window holds send() back: back-pressure over h2."""
    sent: list[int] = []
    chunk = b"x" * 16384

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(20):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            sent.append(len(chunk))
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            client.auto_ack = False  # never open the windows again
            try:
                sid = client.request("/big")
                r = client.responses[sid]
                # The default window is 65535 bytes: the server sends that
                # much, and the send() of the chunk that does not fit waits.
                await client.until(lambda: len(r.body) >= 65535)
                await until(lambda: sum(sent) >= 3 * len(chunk))
                for _ in range(20):
                    await asyncio.sleep(0)
                assert sum(sent) <= 4 * len(chunk)
                assert len(r.body) == 65535
                assert not r.ended
                # Opening the windows lets the application go on to the end.
                client.auto_ack = True
                client.conn.increment_flow_control_window(10 * 1024 * 1024)
                client.conn.increment_flow_control_window(10 * 1024 * 1024, sid)
                client.flush()
                await client.until(lambda: r.ended)
            finally:
                await client.close()
        assert len(r.body) == 20 * len(chunk)
        assert sum(sent) == 20 * len(chunk)

    run(main())


def test_request_body_back_pressure_holds_the_stream_window() -> None:
    """An application that does not receive() leaves the client's window closed."""
    started = asyncio.Event()
    release: list[asyncio.Future[None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started.set()
        gate = asyncio.get_running_loop().create_future()
        release.append(gate)
        await gate
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(total).encode()})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                sid = client.request("/up", method="POST", end=False)
                await asyncio.wait_for(started.wait(), HANG_GUARD)
                sent = 0
                # Send whatever the windows allow, reading the server's
                # WINDOW_UPDATEs, until it grants no more: the body is held
                # unread, so that must happen after a bounded amount.
                while sent < 8 * 1024 * 1024:
                    before = sent
                    while client.conn.local_flow_control_window(sid) >= 16384:
                        client.conn.send_data(sid, b"y" * 16384)
                        sent += 16384
                    client.flush()
                    try:
                        while True:
                            await client.read_once(0.05)
                    except TimeoutError:
                        pass
                    if sent == before:
                        break
                assert 0 < sent < 1024 * 1024
                assert client.conn.local_flow_control_window(sid) < 16384
                release[0].set_result(None)
                await client.until(lambda: client.conn.local_flow_control_window(sid) > 0)
                client.conn.end_stream(sid)
                client.flush()
                r = client.responses[sid]
                await client.until(lambda: r.ended)
            finally:
                await client.close()
        assert r.body == str(sent).encode()

    run(main())


def test_disconnect_reaches_the_application_over_h2() -> None:
    got: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        got.append(await receive())  # the (empty) request body
        got.append(await receive())  # then nothing until the stream goes

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                sid = client.request("/d")
                r = client.responses[sid]
                await client.until(lambda: r.body == b"a")
                client.conn.reset_stream(sid)
                client.flush()
                await until(lambda: len(got) == 2)
            finally:
                await client.close()
        assert got[0]["type"] == "http.request"
        assert got[1] == {"type": "http.disconnect"}

    run(main())


def test_expect_continue_waits_for_receive_over_h2() -> None:
    order: list[str] = []

    go: list[asyncio.Future[None]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        order.append("app")
        # 100 Continue goes out only once the application asks for the body.
        gate = asyncio.get_running_loop().create_future()
        go.append(gate)
        await gate
        message = await receive()
        order.append("body")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": message["body"]})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            try:
                sid = client.request(
                    "/c", method="POST", headers=[("expect", "100-continue")], end=False
                )
                r = client.responses[sid]
                await until(lambda: bool(go))
                # The application has not called receive(): nothing comes.
                with pytest.raises(TimeoutError):
                    while True:
                        await client.read_once(0.1)
                assert not any(
                    isinstance(ev, h2.events.InformationalResponseReceived) for ev in client.events
                )
                go[0].set_result(None)

                def interim() -> bool:
                    return any(
                        isinstance(ev, h2.events.InformationalResponseReceived)
                        and ev.stream_id == sid
                        for ev in client.events
                    )

                await client.until(interim)
                assert order == ["app"]
                client.conn.send_data(sid, b"payload", end_stream=True)
                client.flush()
                await client.until(lambda: r.ended)
            finally:
                await client.close()
        assert order == ["app", "body"]
        assert r.status == 200 and r.body == b"payload"

    run(main())


def test_pathsend_of_a_file_growing_meanwhile_sends_the_announced_length(tmp_path: Any) -> None:
    # Bytes appended while the file was sent went out after
    # the announced length: RST_STREAM INTERNAL_ERROR and an ERROR logged
    # instead of END_STREAM.
    path = tmp_path / "growing.bin"
    first = bytes(range(256)) * 1200  # 307,200 bytes: more than one read
    path.write_bytes(first)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    async def main() -> None:
        async with serving_h2(app) as (port, _):
            client = await RawH2.connect(port)
            client.auto_ack = False  # the server waits for our window...
            sid = client.request("/")
            r = client.responses[sid]
            await client.until(lambda: len(r.body) >= 65535)
            with path.open("ab") as file:  # ...while the file grows
                file.write(b"x" * 300_000)
            client.auto_ack = True
            client.conn.acknowledge_received_data(len(r.body), sid)
            client.flush()
            await client.until(lambda: r.ended or r.reset is not None)
            assert r.reset is None
            assert r.headers["content-length"] == str(len(first))
            assert r.body == first
            await client.close()

    run(main())
