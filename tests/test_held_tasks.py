"""Tasks Squall starts are held until they end, whatever holds what they wait on.

asyncio's loop keeps a Task only by weak reference. A Task waiting on a
Future that nothing else holds strongly, only weakly (the reader of a
client stream asyncio opens is held that way by its protocol: a database
driver connecting inside a request), is garbage: the collector ends it in
the middle, and whatever it had taken (a connection pool's lock) is never
given back. The forum's tests on MariaDB hung that way now and then.

Each case parks a coroutine on a Future that only a weak reference (the
"resolver") names, runs the collector, then resolves the Future through the
weak reference: the coroutine must still be there and finish.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import pytest

from squall import gen
from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.testing import bind_unused_port
from squall.web import Application, RequestHandler, stream_request_body

from ._wait import HANG_GUARD, until

_Resolver = list["weakref.ReferenceType[asyncio.Future[None]]"]


def _park(resolvers: _Resolver) -> asyncio.Future[None]:
    """A Future held only by whoever awaits it (and weakly by ``resolvers``)."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    resolvers.append(weakref.ref(future))
    return future


async def _collect_and_resolve(resolvers: _Resolver) -> None:
    await until(lambda: bool(resolvers))
    # A few loop turns: a coroutine parked in its first step (a request's,
    # run at once by the server) is taken over by its Task on the next
    # turn, and only then does nothing but the Future's callback hold it.
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    future = resolvers[0]()
    assert future is not None, "the parked coroutine's Task was collected"
    future.set_result(None)


class _Parked(RequestHandler):
    def initialize(self, resolvers: _Resolver) -> None:
        self.resolvers = resolvers

    async def get(self) -> None:
        await _park(self.resolvers)
        self.write("resumed")


class _ParkedGen(_Parked):
    @gen.coroutine
    def get(self) -> Any:
        yield _park(self.resolvers)
        self.write("resumed")


@stream_request_body
class _ParkedBody(_Parked):
    async def data_received(self, chunk: bytes) -> None:
        await _park(self.resolvers)

    def put(self) -> None:
        self.write("resumed")


def _wrapped_execute(original: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
    # What a tracer does to _execute: its own coroutine around the original.
    @functools.wraps(original)
    async def execute(self: RequestHandler, *args: Any, **kwargs: Any) -> None:
        return await original(self, *args, **kwargs)

    return execute


class _ParkedTraced(_Parked):
    _execute = _wrapped_execute(RequestHandler._execute)


@pytest.mark.parametrize(
    ("handler", "method"),
    [(_Parked, "GET"), (_ParkedGen, "GET"), (_ParkedBody, "PUT"), (_ParkedTraced, "GET")],
    ids=["async-def", "gen.coroutine", "async-data_received", "wrapped-_execute"],
)
def test_a_handler_waiting_on_a_weakly_held_future_survives_the_collector(
    handler: type[RequestHandler], method: str
) -> None:
    resolvers: _Resolver = []

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(Application([("/", handler, {"resolvers": resolvers})]))
        server.add_sockets([sock])
        client = AsyncHTTPClient(force_instance=True)
        try:
            body = b"x" if method == "PUT" else None
            fetch = asyncio.ensure_future(
                client.fetch(
                    f"http://127.0.0.1:{port}/", method=method, body=body, request_timeout=5
                )
            )
            await _collect_and_resolve(resolvers)
            response = await fetch
            assert response.body == b"resumed"
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_a_coroutine_a_callback_returns_survives_the_collector() -> None:
    resolvers: _Resolver = []
    finished: list[bool] = []

    async def callback() -> None:
        await _park(resolvers)
        finished.append(True)

    async def main() -> None:
        IOLoop.current().add_callback(callback)
        await _collect_and_resolve(resolvers)
        await until(lambda: bool(finished))

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_convert_yielded_holds_the_task_it_makes_until_it_ends() -> None:
    resolvers: _Resolver = []

    async def parked() -> str:
        await _park(resolvers)
        return "done"

    async def main() -> None:
        task: Optional[asyncio.Future[str]] = gen.convert_yielded(parked())
        assert task in IOLoop._pending_tasks
        ref = weakref.ref(task)
        task = None
        await _collect_and_resolve(resolvers)
        kept = ref()
        assert kept is not None
        assert await kept == "done"
        assert kept not in IOLoop._pending_tasks

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
