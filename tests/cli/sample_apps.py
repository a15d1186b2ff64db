"""Applications ``squall run`` serves in the tests (imported by the subprocess)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from squall.web import Application, RequestHandler, url
from squall.websocket import WebSocketHandler


class Pid(RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "pid": os.getpid(),
                "remote_ip": self.request.remote_ip,
                "protocol": self.request.protocol,
                "path": self.request.path,
            }
        )


class Slow(RequestHandler):
    async def get(self) -> None:
        # Long enough for a drain to start while this is in flight.
        await asyncio.sleep(float(self.get_argument("s", "0.3")))
        self.write(f"slow {os.getpid()}")


class Hold(RequestHandler):
    async def get(self) -> None:
        # The head goes out at once (the client then knows the request is
        # in the server's hands), the end after ``s`` seconds.
        self.write("held\n")
        await self.flush()
        await asyncio.sleep(float(self.get_argument("s", "2")))
        self.write("released\n")


class Item(RequestHandler):
    def get(self, number: str) -> None:
        self.write({"item": int(number)})


class Exit(RequestHandler):
    def get(self) -> None:
        # A worker that ends on its own after serving (a fatal error, say).
        os._exit(int(self.get_argument("code", "3")))


class Block(RequestHandler):
    def get(self) -> None:
        # A handler that blocks the event loop: the worker is stuck.
        stuck_in_a_blocking_call(float(self.get_argument("s", "60")))


def stuck_in_a_blocking_call(seconds: float) -> None:
    time.sleep(seconds)


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message)


def make_app() -> Application:
    """A factory: TARGET tests:make_app is called."""
    return Application(
        [
            ("/", Pid),
            ("/slow", Slow),
            ("/ws", Echo),
            ("/exit", Exit),
            ("/block", Block),
            ("/hold", Hold),
            url(r"/items/(\d+)", Item, name="item"),
        ]
    )


app = make_app()


async def asgi_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = f"asgi {scope['path']} root={scope.get('root_path', '')}".encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = f"wsgi {environ['PATH_INFO']}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


async def failing_lifespan_app(
    scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
) -> None:
    """An ASGI app whose startup fails (a database that cannot be reached, say)."""
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})


not_an_app = 42


def two_many(a: int, b: int, c: int, d: int) -> None:
    """Four arguments: no shape squall run knows."""
