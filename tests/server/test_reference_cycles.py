"""Serving a request leaves no reference cycle behind.

A cycle is not a leak, but CPython frees it only when the cycle collector
runs, not when the last reference goes: memory held longer and collector
passes on a busy server. So a request served over a real socket, on a loop
of its own, must leave nothing for the collector: not the handler, not the
connection, not the loop (whose per-loop server state once referred back to
it through a resolved future). Over HTTP/1.1 and over HTTP/2 (h2c, the
client leaving with a GOAWAY, so that the server lingers for its EOF and
is then stopped).
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import socket
import weakref
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from squall import gen, web
from squall.httpserver import HTTPServer
from squall.testing import bind_unused_port

from ..h2._client import RawH2

_T = TypeVar("_T")


class SyncHandler(web.RequestHandler):
    def get(self) -> None:
        self.write("ok\n")


class AsyncHandler(web.RequestHandler):
    async def get(self) -> None:
        await asyncio.sleep(0)
        self.write("ok\n")


class CoroutineHandler(web.RequestHandler):
    @gen.coroutine
    def get(self) -> Iterator[object]:
        yield gen.moment
        self.write("ok\n")


class FinishHandler(web.RequestHandler):
    def get(self) -> None:
        raise web.Finish("ok\n")


async def _serve_one(app: web.Application, protocol: str) -> tuple[bytes, weakref.ref[object]]:
    loop = asyncio.get_running_loop()
    server = HTTPServer(app, http2=protocol == "h2")
    listener, port = bind_unused_port()
    server.add_sockets([listener])
    if protocol == "h2":
        # h2c with prior knowledge; the client leaves with a GOAWAY.
        h2 = await RawH2.connect(port)
        try:
            response = await h2.fetch("/")
            h2.conn.close_connection()
            h2.flush()
            await h2.until_closed()
        finally:
            await h2.close()
        received = b"HTTP/2 %d\r\n\r\n%s" % (response.status, bytes(response.body))
    else:
        received = await _fetch_http11(port)
    server.stop()
    await server.close_all_connections()
    return received, weakref.ref(loop)


async def _fetch_http11(port: int) -> bytes:
    loop = asyncio.get_running_loop()
    client = socket.socket()
    client.setblocking(False)
    try:
        await loop.sock_connect(client, ("127.0.0.1", port))
        await loop.sock_sendall(client, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = b""
        while True:
            data = await loop.sock_recv(client, 4096)
            if not data:
                return received
            received += data
    finally:
        client.close()


def _ours(thing: object) -> bool:
    # What a cycle of ours would hold. asyncio's own selector transport
    # keeps a bound method of itself (_read_ready_cb), a cycle of the
    # standard library's that no server built on its transports avoids.
    return type(thing).__module__.startswith("squall") or isinstance(
        thing, (asyncio.AbstractEventLoop, asyncio.Future, contextvars.Context)
    )


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, _T]], _T]:
    if loop == "asyncio":
        return asyncio.run
    uvloop = pytest.importorskip("uvloop")

    def run(coroutine: Coroutine[Any, Any, _T]) -> _T:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coroutine)

    return run


@pytest.mark.parametrize("protocol", ["http/1.1", "h2"])
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
@pytest.mark.parametrize(
    "handler",
    [SyncHandler, AsyncHandler, CoroutineHandler, FinishHandler],
    ids=lambda h: h.__name__,
)
def test_a_request_served_on_its_own_loop_leaves_no_cycle(
    handler: type[web.RequestHandler], loop: str, protocol: str
) -> None:
    run = _runner(loop)
    # The application is made outside: it refers to itself through its
    # router (as Tornado's does), once, not per request.
    app = web.Application([("/", handler)])
    # Warm up first: a first request fills caches and imports modules.
    run(_serve_one(app, protocol))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        received, loop_ref = run(_serve_one(app, protocol))
        # IOLoop keeps the last loop's IOLoop (as Tornado does) and lets go
        # of it when the next one is made: serve again, then the first
        # loop must be gone, without the collector.
        run(_serve_one(app, protocol))
        assert loop_ref() is None, "the loop of the first request is still alive"
        gc.collect()
        left = [thing for thing in gc.garbage if _ours(thing)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    status = b"HTTP/2 200" if protocol == "h2" else b"HTTP/1.1 200 OK"
    assert received.startswith(status + b"\r\n") and received.endswith(b"\r\n\r\nok\n")
    assert left == []


async def _fetch_with_the_client(app: web.Application) -> bytes:
    from squall.simple_httpclient import SimpleAsyncHTTPClient

    server = HTTPServer(app)
    listener, port = bind_unused_port()
    server.add_sockets([listener])
    client = SimpleAsyncHTTPClient(force_instance=True)
    try:
        response = await client.fetch(f"http://127.0.0.1:{port}/")
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()
    return response.body


def test_a_fetch_of_the_http_client_leaves_no_cycle() -> None:
    # The client's side of the same rule: its connection attempt (a task
    # whose result is the attempt) once kept a cycle per connection.
    app = web.Application([("/", SyncHandler)])
    asyncio.run(_fetch_with_the_client(app))
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        body = asyncio.run(_fetch_with_the_client(app))
        gc.collect()
        left = [thing for thing in gc.garbage if _ours(thing)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert body == b"ok\n"
    assert left == []
