"""Starlette and FastAPI applications on Squall's server, and mounted beside RequestHandlers."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

starlette = pytest.importorskip("starlette", reason="the asgi extra (starlette) is not installed")
fastapi = pytest.importorskip("fastapi", reason="the asgi extra (fastapi) is not installed")
httpx = pytest.importorskip("httpx", reason="the asgi extra (httpx) is not installed")

from fastapi import FastAPI, WebSocket  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from starlette.applications import Starlette  # noqa: E402
from starlette.background import BackgroundTask  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse  # noqa: E402
from starlette.routing import Route, WebSocketRoute  # noqa: E402
from starlette.websockets import WebSocket as StarletteWebSocket  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from squall import web  # noqa: E402
from squall.asgi import mount  # noqa: E402
from squall.httpserver import HTTPServer  # noqa: E402

from ._helpers import run, serving  # noqa: E402


def starlette_app(log: list[str]) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        log.append("startup")
        yield {"greeting": "hello"}
        log.append("shutdown")

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.state.greeting} {request.url.path}")

    async def upload(request: Request) -> JSONResponse:
        pieces = [len(chunk) async for chunk in request.stream() if chunk]
        return JSONResponse({"total": sum(pieces), "pieces": len(pieces)})

    async def numbers(request: Request) -> StreamingResponse:
        async def gen() -> AsyncIterator[str]:
            for i in range(5):
                yield f"{i}\n"

        return StreamingResponse(gen(), media_type="text/plain")

    async def echo(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text.upper())

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/upload", upload, methods=["POST"]),
            Route("/numbers", numbers),
            WebSocketRoute("/ws", echo),
        ],
        lifespan=lifespan,
    )


def test_starlette_http_streaming_websocket_and_lifespan() -> None:
    log: list[str] = []

    async def main() -> None:
        async with serving(starlette_app(log), lifespan=True) as (port, _, _):
            assert log == ["startup"]
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(verify=False, trust_env=False) as client:
                r = await client.get(base + "/hello")
                assert (r.status_code, r.text) == (200, "hello /hello")
                body = b"y" * 300_000

                async def chunks() -> AsyncIterator[bytes]:
                    for i in range(0, len(body), 50_000):
                        yield body[i : i + 50_000]

                r = await client.post(base + "/upload", content=chunks())
                assert r.json()["total"] == len(body) and r.json()["pieces"] >= 2
                async with client.stream("GET", base + "/numbers") as r:
                    assert r.headers["transfer-encoding"] == "chunked"
                    text = "".join([piece async for piece in r.aiter_text()])
                assert text == "0\n1\n2\n3\n4\n"
                r = await client.get(base + "/missing")
                assert r.status_code == 404
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send("quiet")
                assert await ws.recv() == "QUIET"
        assert log == ["startup", "shutdown"]

    run(main())


class Item(BaseModel):
    name: str
    price: float


def fastapi_app() -> FastAPI:
    api = FastAPI()

    @api.get("/items/{item_id}")
    async def read_item(item_id: int, q: str = "") -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @api.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "double": item.price * 2}

    @api.websocket("/ws")
    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="json")
        data = await websocket.receive_json()
        await websocket.send_json({"got": data})
        await websocket.close(code=4000)

    return api


def test_fastapi_json_validation_and_websocket() -> None:
    async def main() -> None:
        async with serving(fastapi_app(), lifespan=True) as (port, _, _):
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(verify=False, trust_env=False) as client:
                r = await client.get(base + "/items/7?q=x")
                assert r.json() == {"item_id": 7, "q": "x"}
                r = await client.post(base + "/items", json={"name": "a", "price": 1.5})
                assert r.json() == {"name": "a", "double": 3.0}
                r = await client.post(base + "/items", json={"name": "a"})
                assert r.status_code == 422
                r = await client.get(base + "/items/notanumber")
                assert r.status_code == 422
            async with connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["json"]) as ws:  # type: ignore[list-item]
                assert ws.subprotocol == "json"
                await ws.send('{"a": 1}')
                assert await ws.recv() == '{"got":{"a":1}}'
                await ws.wait_closed()
                assert ws.close_code == 4000

    run(main())


class MainHandler(web.RequestHandler):
    def get(self) -> None:
        self.write(f"squall {self.request.path}")


def test_mount_sends_a_prefix_to_an_asgi_app_beside_request_handlers() -> None:
    app = web.Application([mount("/api", fastapi_app()), (r"/.*", MainHandler)])

    async def main() -> None:
        sock_server = HTTPServer(app)
        sock_server.listen(0, "127.0.0.1")
        port = next(iter(sock_server._sockets.values())).getsockname()[1]
        try:
            async with httpx.AsyncClient(verify=False, trust_env=False) as client:
                r = await client.get(f"http://127.0.0.1:{port}/api/items/3")
                assert r.json() == {"item_id": 3, "q": ""}
                r = await client.get(f"http://127.0.0.1:{port}/other")
                assert r.text == "squall /other"
                r = await client.get(f"http://127.0.0.1:{port}/apiary")
                assert r.text == "squall /apiary"
            async with connect(f"ws://127.0.0.1:{port}/api/ws", subprotocols=["json"]) as ws:  # type: ignore[list-item]
                await ws.send("[1]")
                assert await ws.recv() == '{"got":[1]}'
        finally:
            sock_server.stop()
            await sock_server.close_all_connections()

    run(main())
    with pytest.raises(ValueError, match="starts with '/'"):
        mount("api", fastapi_app())


def test_a_background_task_in_a_thread_does_not_hold_the_answer() -> None:
    # The guide's advice for work after the answer (a webhook's processing,
    # an email): a plain function, which Starlette runs in a thread. The
    # answer has left before the task ends: the task waits for the client
    # to have it.
    answered = threading.Event()
    done = threading.Event()
    waited: list[bool] = []

    def slow_work() -> None:
        waited.append(answered.wait(60))
        done.set()

    async def hook(request: Request) -> PlainTextResponse:
        return PlainTextResponse("accepted", background=BackgroundTask(slow_work))

    async def main() -> None:
        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        async with serving(app) as (port, _, _):
            async with httpx.AsyncClient(verify=False, trust_env=False) as client:
                r = await client.post(f"http://127.0.0.1:{port}/hook")
                assert r.text == "accepted"
                answered.set()
                assert await asyncio.to_thread(done.wait, 60)

    run(main())
    assert waited == [True], "the answer waited for the background task"


def test_unused_serving_helper_arguments() -> None:
    # serving() accepts a ready delegate too (used by the adapter tests).
    from squall.asgi import ASGIServerDelegate

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    async def main() -> None:
        delegate = ASGIServerDelegate(app)
        async with serving(delegate) as (port, same, _):
            assert same is delegate
            async with httpx.AsyncClient(verify=False, trust_env=False) as client:
                r = await client.get(f"http://127.0.0.1:{port}/")
                assert r.status_code == 204 and r.content == b""
                assert "content-length" not in r.headers

    run(main())
