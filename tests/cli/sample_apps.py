"""Applications ``squall run`` serves in the tests (imported by the subprocess)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Iterable
from typing import Any

from squall.web import Application, EventSourceHandler, RequestHandler, url
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


# Requests held until the test releases them, by sending SIGUSR1 to the
# process that serves them (a worker's pid is in its "Worker N ready" line):
# a drain or a scrape starts while they are surely in flight, however slow
# the machine, and nothing waits on a clock. Once released, a process holds
# nothing more. (Installed on import, before any request: SIGUSR1's default
# action would end the process.)
_released = False
_waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _release(signum: int, frame: Any) -> None:
    global _released
    _released = True
    for loop, future in _waiting:
        loop.call_soon_threadsafe(_settle, future)
    _waiting.clear()


signal.signal(signal.SIGUSR1, _release)


async def released() -> None:
    """Return once the process has had SIGUSR1 (at once if it has)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    # Registered before the flag is read: a signal between the two settles it.
    _waiting.append((loop, future))
    if not _released:
        await future


class Slow(RequestHandler):
    async def get(self) -> None:
        # With ?hold=1, in flight until released (see above); else at once.
        if self.get_argument("hold", None) is not None:
            await released()
        self.write(f"slow {os.getpid()}")


class Hold(RequestHandler):
    async def get(self) -> None:
        # The head goes out at once (the client then knows the request is
        # in the server's hands), the end once released.
        self.write("held\n")
        await self.flush()
        await released()
        self.write("released\n")


def download_chunk(n: int) -> bytes:
    """The ``n``-th 64 KiB piece of ``/download``'s body (each one different)."""
    return n.to_bytes(4, "big") * (65536 // 4)


class Download(RequestHandler):
    async def get(self) -> None:
        # ?chunks=N pieces; the first goes out at once, the rest once the
        # process is released (see above): a restart can begin mid-body.
        self.set_header("X-Pid", str(os.getpid()))
        self.write(download_chunk(0))
        await self.flush()
        await released()
        for n in range(1, int(self.get_argument("chunks", "16"))):
            self.write(download_chunk(n))
            await self.flush()


class Item(RequestHandler):
    def get(self, number: str) -> None:
        self.write({"item": int(number)})


class Exit(RequestHandler):
    def get(self) -> None:
        # A worker that ends on its own after serving (a fatal error, say).
        os._exit(int(self.get_argument("code", "3")))


class Block(RequestHandler):
    def get(self) -> None:
        # A handler that blocks the event loop: the worker is stuck until
        # its supervisor ends it (the behaviour under test).
        stuck_in_a_blocking_call()


def stuck_in_a_blocking_call() -> None:
    # A read from a pipe nobody writes to: blocked for good, on no clock.
    reader, _writer = os.pipe()
    os.read(reader, 1)


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message)


class Events(EventSourceHandler):
    """One event, then nothing until the stream is ended."""

    async def stream(self) -> None:
        await self.send_event("hello", id="1")
        await asyncio.Event().wait()


def make_app() -> Application:
    """A factory: TARGET tests:make_app is called."""
    return Application(
        [
            ("/", Pid),
            ("/slow", Slow),
            ("/ws", Echo),
            ("/events", Events),
            ("/exit", Exit),
            ("/block", Block),
            ("/hold", Hold),
            ("/download", Download),
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


class ASGI2App:
    """An ASGI 2 application (uvicorn's ``--interface asgi2``): made with the
    scope, then awaited with receive and send. It answers the version its
    scope says, and takes no part in the lifespan (it returns at once)."""

    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope

    async def __call__(self, receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if self.scope["type"] != "http":
            return
        body = f"asgi2 {self.scope['path']} version={self.scope['asgi']['version']}".encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def asgi2_function(scope: dict[str, Any]) -> Callable[..., Any]:
    """An ASGI 2 application as a function of the scope: only --interface asgi2 says so."""
    return ASGI2App(scope)


not_an_app = 42


def two_many(a: int, b: int, c: int, d: int) -> None:
    """Four arguments: no shape squall run knows."""
