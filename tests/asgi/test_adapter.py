"""A Squall Application as an ASGI app: under uvicorn, and under Squall's own ASGI server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Optional

import pytest

uvicorn = pytest.importorskip("uvicorn", reason="the asgi extra (uvicorn) is not installed")

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

from squall import web, websocket  # noqa: E402
from squall.asgi import ASGIAdapter  # noqa: E402

from ._helpers import RawClient, run, serving  # noqa: E402


class Hello(web.RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "path": self.request.path,
                "query": self.get_argument("q", ""),
                "ip": self.request.remote_ip,
                "protocol": self.request.protocol,
                "agent": self.request.headers.get("User-Agent", ""),
            }
        )

    def post(self) -> None:
        self.set_header("X-Len", str(len(self.request.body)))
        self.write(self.get_body_argument("name", "?"))


@web.stream_request_body
class Upload(web.RequestHandler):
    def prepare(self) -> None:
        self.total = 0
        self.pieces = 0

    async def data_received(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.pieces += 1

    def put(self) -> None:
        self.write({"total": self.total, "pieces": self.pieces})


class Chunks(web.RequestHandler):
    async def get(self) -> None:
        for i in range(3):
            self.write(f"part{i};")
            await self.flush()


class Broken(web.RequestHandler):
    def get(self) -> None:
        raise RuntimeError("handler failure")


class Echo(websocket.WebSocketHandler):
    closed: asyncio.Future[tuple[Optional[int], Optional[str]]]

    def check_origin(self, origin: str) -> bool:
        return origin != "http://evil.example"

    def select_subprotocol(self, subprotocols: list[str]) -> Optional[str]:
        return subprotocols[-1] if subprotocols else None

    def on_message(self, message: Any) -> None:
        if message == "close please":
            self.close(4002, "as asked")
            return
        self.write_message(
            ("echo " + message) if isinstance(message, str) else message,
            binary=not isinstance(message, str),
        )

    def on_close(self) -> None:
        future = type(self).closed
        if not future.done():
            future.set_result((self.close_code, self.close_reason))


def application() -> web.Application:
    return web.Application(
        [
            ("/hello", Hello),
            ("/up", Upload),
            ("/chunks", Chunks),
            ("/broken", Broken),
            ("/ws", Echo),
        ]
    )


class _Server(uvicorn.Server):  # type: ignore[misc]
    """uvicorn's server, telling us when it listens."""

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextlib.asynccontextmanager
async def under_uvicorn(app: Any) -> AsyncIterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", lifespan="on", ws="websockets-sansio")
    server = _Server(config)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    ready = asyncio.ensure_future(server.ready.wait())
    await asyncio.wait([task, ready], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        ready.cancel()
        task.result()
    try:
        yield port
    finally:
        server.should_exit = True
        await task
        sock.close()


async def exercise(port: int) -> None:
    Echo.closed = asyncio.get_running_loop().create_future()
    client = await RawClient.connect(port)
    await client.send(b"GET /hello?q=%C3%A9 HTTP/1.1\r\nHost: h\r\nUser-Agent: test/1\r\n\r\n")
    raw_head = await client.reader.readuntil(b"\r\n\r\n")
    # One Date header: the ASGI server's (the handler's is dropped).
    assert raw_head.lower().count(b"\r\ndate:") == 1
    length = int(raw_head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert json.loads(await client.reader.readexactly(length)) == {
        "path": "/hello",
        "query": "\u00e9",
        "ip": "127.0.0.1",
        "protocol": "http",
        "agent": "test/1",
    }
    form = b"name=squall"
    await client.send(
        b"POST /hello HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(form), form)
    )
    status, headers, body = await client.response()
    assert (status, body, headers["x-len"]) == (200, b"squall", "11")
    # A chunked upload in four pieces reaches @stream_request_body in pieces.
    await client.send(b"PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    for _ in range(4):
        await client.send(b"%x\r\n%s\r\n" % (100_000, b"u" * 100_000))
    await client.send(b"0\r\n\r\n")
    status, _, body = await client.response()
    result = json.loads(body)
    assert result["total"] == 400_000 and result["pieces"] >= 2
    await client.send(b"GET /chunks HTTP/1.1\r\nHost: h\r\n\r\n")
    status, headers, body = await client.response()
    assert headers["transfer-encoding"] == "chunked" and body == b"part0;part1;part2;"
    await client.send(b"GET /nowhere HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await client.response())[0] == 404
    await client.send(b"GET /broken HTTP/1.1\r\nHost: h\r\n\r\n")
    assert (await client.response())[0] == 500
    await client.close()
    async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["a", "b"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "b"
        await ws.send("hi")
        assert await ws.recv() == "echo hi"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.close(4001, "client done")
    assert await Echo.closed == (4001, "client done")
    Echo.closed = asyncio.get_running_loop().create_future()
    async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
        await ws.send("close please")
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
        assert info.value.rcvd is not None
        assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "as asked")
    await Echo.closed
    with pytest.raises(InvalidStatus) as denied:
        async with connect(f"ws://127.0.0.1:{port}/ws", origin="http://evil.example"):  # type: ignore[arg-type]
            pass
    assert denied.value.response.status_code == 403


def test_application_under_uvicorn(caplog: pytest.LogCaptureFixture) -> None:
    started: list[str] = []

    async def on_startup() -> None:
        started.append("up")

    adapter = ASGIAdapter(
        application(), on_startup=[on_startup], on_shutdown=[lambda: started.append("down")]
    )

    async def main() -> None:
        async with under_uvicorn(adapter) as port:
            assert started == ["up"]
            await exercise(port)
        assert started == ["up", "down"]

    with caplog.at_level(logging.ERROR):
        run(main())
    assert "handler failure" in caplog.text


def test_application_under_squalls_own_asgi_server(caplog: pytest.LogCaptureFixture) -> None:
    # Both directions at once: ASGIServerDelegate(ASGIAdapter(Application)).
    async def main() -> None:
        async with serving(ASGIAdapter(application()), lifespan=True) as (port, _, _):
            await exercise(port)

    with caplog.at_level(logging.ERROR):
        run(main())
    assert "handler failure" in caplog.text


def test_lifespan_hook_failure_and_unknown_scope() -> None:
    def broken() -> None:
        raise RuntimeError("cannot start")

    adapter = ASGIAdapter(application(), on_startup=[broken])
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await queue.put({"type": "lifespan.startup"})

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await adapter({"type": "lifespan"}, queue.get, send)
        with pytest.raises(ValueError, match="not 'smtp'"):
            await adapter({"type": "smtp"}, queue.get, send)

    run(main())
    assert sent == [{"type": "lifespan.startup.failed", "message": "cannot start"}]


class Pinger(websocket.WebSocketHandler):
    pongs: asyncio.Future[bytes]

    def on_message(self, message: Any) -> None:
        self.ping(b"are you there")

    def on_pong(self, data: bytes) -> None:
        if not type(self).pongs.done():
            type(self).pongs.set_result(data)
            self.write_message("got pong")


def test_handler_pings_are_answered_by_the_adapter() -> None:
    adapter = ASGIAdapter(web.Application([("/", Pinger)]))

    async def main() -> None:
        Pinger.pongs = asyncio.get_running_loop().create_future()
        async with serving(adapter) as (port, delegate, _):
            async with connect(f"ws://127.0.0.1:{port}/") as ws:
                await ws.send("ping me")
                assert await Pinger.pongs == b"are you there"
                assert await ws.recv() == "got pong"
            await delegate.wait_requests(1.0)

    run(main())
