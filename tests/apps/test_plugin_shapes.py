"""The shapes in which well-known test plugins use Squall.

pytest-tornasync, pytest-tornado and pytest-jupyter build their fixtures from
`HTTPServer`, `SimpleAsyncHTTPClient` subclasses and a few private names; these
tests use the same shapes (written here, not copied) so a change that breaks
them shows up in our own suite.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Optional, Union

from squall import web, websocket
from squall.httpclient import HTTPResponse
from squall.httpserver import HTTPServer
from squall.simple_httpclient import SimpleAsyncHTTPClient
from squall.testing import bind_unused_port
from tests._wait import HANG_GUARD
from tests.test_resources import nothing_left_open


class _Hello(web.RequestHandler):
    def get(self) -> None:
        self.write("hi")


class _PortFindingClient(SimpleAsyncHTTPClient):
    """A client that knows its server and takes paths, as the plugins' one."""

    def initialize(self, *, http_server: Any = None) -> None:  # type: ignore[override]
        super().initialize()
        self._http_server = http_server

    def port(self) -> int:
        for sock in self._http_server._sockets.values():
            return int(sock.getsockname()[1])
        raise AssertionError("the server lists no listening socket")

    def fetch(self, path: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().fetch(f"http://127.0.0.1:{self.port()}{path}", **kwargs)


async def _listed_and_unlisted() -> None:
    sock, port = bind_unused_port()
    server = HTTPServer(web.Application([("/", _Hello)]))
    server.add_sockets([sock])
    listed = list(server._sockets.values())
    assert [s.getsockname()[1] for s in listed] == [port]
    server.stop()
    assert server._sockets == {}
    assert sock.fileno() == -1


def test_listening_sockets_are_listed_and_unlisted_on_stop() -> None:
    asyncio.run(_listed_and_unlisted())


async def _listen_lists() -> None:
    server = HTTPServer(web.Application([("/", _Hello)]))
    server.listen(0, "127.0.0.1")
    families = {s.family for s in server._sockets.values()}
    assert families == {socket.AF_INET}
    server.stop()


def test_listen_lists_its_socket() -> None:
    asyncio.run(_listen_lists())


async def _fetch_by_path() -> None:
    sock, _ = bind_unused_port()
    server = HTTPServer(web.Application([("/", _Hello)]))
    server.add_sockets([sock])
    client = _PortFindingClient(http_server=server)
    try:
        response: HTTPResponse = await client.fetch("/")
        assert response.body == b"hi"
    finally:
        client.close()
        server.stop()
        await server.close_all_connections()


def test_client_subclass_with_own_initialize_and_fetch_by_path() -> None:
    asyncio.run(_fetch_by_path())


class _Echo(websocket.WebSocketHandler):
    closed: list[Optional[int]] = []

    def on_message(self, message: Union[str, bytes]) -> None:
        self.write_message(message)

    def on_close(self) -> None:
        _Echo.closed.append(self.close_code)


def test_teardown_of_a_fixture_with_a_websocket_left_open() -> None:
    # pytest-jupyter's teardown: stop(), close_all_connections(), then the
    # asyncio loop is closed as it is (no IOLoop.close(all_fds=True)). A
    # WebSocket the test left open must be closed by then, both ends, or its
    # transport and socket are reported unclosed when collected.
    _Echo.closed.clear()

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([("/ws", _Echo)]))
        server.add_sockets([sock])
        ws = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
        await ws.write_message("ping")
        assert await ws.read_message() == "ping"
        server.stop()
        await server.close_all_connections()
        assert _Echo.closed == [None]
        assert server._detached == set()

    with nothing_left_open(pending_tasks_allowed=True):
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(main(), HANG_GUARD))
        finally:
            loop.close()


class _SlowOpen(websocket.WebSocketHandler):
    """open() waits for something that never comes (Jupyter's kernel nudge)."""

    events: list[str] = []

    async def open(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            _SlowOpen.events.append("open cleaned up")

    def on_close(self) -> None:
        _SlowOpen.events.append("on_close")


def test_teardown_while_a_websocket_open_is_still_pending() -> None:
    # The fixture drops the connection and closes its loop while the
    # handler's async open() still waits: the open() coroutine is ended
    # while the loop runs (its finally: blocks run then), not finalised
    # later on a closed loop.
    _SlowOpen.events.clear()

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(web.Application([("/ws", _SlowOpen)]))
        server.add_sockets([sock])
        ws = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
        server.stop()
        await server.close_all_connections()
        assert await ws.read_message() is None
        assert sorted(_SlowOpen.events) == ["on_close", "open cleaned up"]

    with nothing_left_open():
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(main(), HANG_GUARD))
        finally:
            loop.close()
