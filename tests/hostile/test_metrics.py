"""What hostile traffic does to ``--metrics-bind``'s numbers.

The worker's side (`WorkerMetrics`) is driven in-process, behind a real
server on loopback: the attack goes over a socket, and the series are read
from prometheus_client's own objects (the worker's counters), not timed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="needs squall[metrics]")
pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall.cli._metrics import WorkerMetrics  # noqa: E402
from squall.cli._serving import request_logger  # noqa: E402
from squall.testing import AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from squall.websocket import WebSocketHandler  # noqa: E402
from tests.h2.test_websocket_h2 import WSClient  # noqa: E402

METHODS = 300


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


class Waiting(RequestHandler):
    """Answers when the test lets it; tells the test it has begun."""

    def initialize(self, began: asyncio.Event, release: asyncio.Event) -> None:
        self.began = began
        self.release = release

    async def get(self) -> None:
        self.began.set()
        await self.release.wait()
        self.write("done")


class Idle(WebSocketHandler):
    """Opens and waits; tells the test how many are open."""

    def initialize(self, opened: list[WebSocketHandler], ready: asyncio.Event) -> None:
        self.opened = opened
        self.ready = ready

    def open(self) -> None:
        self.opened.append(self)
        self.ready.set()


def series(metric: Any) -> int:
    """How many label sets (lines on /metrics, per sample name) a metric has."""
    return len(metric._metrics)


class MetricsUnderAttackTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.metrics = WorkerMetrics()
        self.opened: list[WebSocketHandler] = []
        self.ready = asyncio.Event()
        self.began = asyncio.Event()
        self.release = asyncio.Event()
        app = Application(
            [
                ("/", Hello),
                ("/ws", Idle, {"opened": self.opened, "ready": self.ready}),
                ("/wait", Waiting, {"began": self.began, "release": self.release}),
            ],
            log_function=request_logger(None, None, self.metrics),
        )
        return app

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    def setUp(self) -> None:
        super().setUp()
        self.metrics.attach(self._app, self.http_server)

    @gen_test
    async def test_made_up_methods_are_one_label_value(self) -> None:
        # Each request with a token of its own as method (a 405)
        # made a series of its own, and /metrics grew without bound.
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        for i in range(METHODS):
            writer.write(f"M{i:04d} / HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()  # to the close: every response is in
        writer.close()
        await writer.wait_closed()
        assert data.count(b"HTTP/1.1 405 ") == METHODS
        self.metrics.flush()
        labels = {tuple(key) for key in self.metrics.requests._metrics}
        assert labels == {("other", "/", "4xx"), ("GET", "/", "2xx")}
        assert self.metrics.requests.labels("other", "/", "4xx")._value.get() == METHODS
        assert series(self.metrics.duration) == 2

    @gen_test
    async def test_idle_websockets_over_http2_are_not_requests_in_flight(self) -> None:
        # Five open WebSockets over HTTP/2 were five requests in flight.
        client = await WSClient.connect(self.get_http_port())
        sids = [client.open() for _ in range(5)]
        for sid in sids:
            assert await client.opened(sid) == 200
        while len(self.opened) < 5:
            self.ready.clear()
            await self.ready.wait()
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 0
        assert self.metrics.connections.labels("websocket")._value.get() == 5
        assert self.metrics.connections.labels("h2")._value.get() == 1
        for handler in self.opened:
            handler.close()
        await client.raw.close()

    @gen_test
    async def test_an_http11_request_waiting_is_in_flight(self) -> None:
        # The gauges come from each driver connection's census(): an
        # HTTP/1.1 connection answering a request counts one in flight, an
        # idle one none.
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        idle_writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await idle_reader.readuntil(b"hello")).startswith(b"HTTP/1.1 200 ")
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.began.wait()
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 1
        assert self.metrics.connections.labels("http/1.1")._value.get() == 2
        assert self.metrics.connections.labels("h2")._value.get() == 0
        self.release.set()
        assert (await reader.readuntil(b"done")).startswith(b"HTTP/1.1 200 ")
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 0
        for w in (writer, idle_writer):
            w.close()
            await w.wait_closed()

    @gen_test
    async def test_a_handle_stream_connection_reports_its_request_in_flight(self) -> None:
        # A connection given to handle_stream (an IOStream-based
        # HTTP1ServerConnection) was counted with nothing in flight, even
        # while it answered a request.
        import socket

        from squall.iostream import IOStream

        ours, theirs = socket.socketpair()
        self.http_server.handle_stream(IOStream(ours), ("127.0.0.1", 1))
        reader, writer = await asyncio.open_connection(sock=theirs)
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 0
        assert self.metrics.connections.labels("http/1.1")._value.get() == 1
        writer.write(b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
        await self.began.wait()
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 1
        self.release.set()
        assert (await reader.readuntil(b"done")).startswith(b"HTTP/1.1 200 ")
        self.metrics.sample()
        assert self.metrics.in_flight._value.get() == 0
        writer.close()
        await writer.wait_closed()
