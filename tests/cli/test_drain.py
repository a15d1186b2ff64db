"""HTTPServer.drain, close_all_connections and the protective timeouts, on loopback."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from squall.httpserver import HTTPServer, _h1lifecycle
from squall.testing import bind_unused_port
from squall.web import Application, RequestHandler
from squall.websocket import WebSocketHandler, websocket_connect
from tests._clock import LoopClock
from tests._wait import HANG_GUARD, until

from ._proc import Load, Squall

Reader = asyncio.StreamReader
Writer = asyncio.StreamWriter


class _State:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()


class Fast(RequestHandler):
    def get(self) -> None:
        self.write("fast")


class Slow(RequestHandler):
    def initialize(self, state: _State) -> None:
        self.state = state

    async def get(self) -> None:
        self.state.started.set()
        await self.state.release.wait()
        self.write("slow done")


class Big(RequestHandler):
    def get(self) -> None:
        self.write(b"x" * (8 << 20))


class Echo(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message)


def serve(state: _State, **options: Any) -> tuple[HTTPServer, int]:
    app = Application(
        [
            ("/fast", Fast),
            ("/slow", Slow, {"state": state}),
            ("/big", Big),
            ("/ws", Echo),
        ]
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app, **options)
    server.add_sockets([sock])
    return server, port


async def request(reader: Reader, writer: Writer, path: str) -> tuple[bytes, bytes]:
    """One keep-alive GET; returns (head, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head, await reader.readexactly(length)


def run(body: Callable[[], Awaitable[None]], advanced: float = 0.0) -> None:
    """Run ``body`` with the hang guard, plus the time it moves the clock by
    (the deadline is on the loop's clock, which `LoopClock` moves too)."""
    asyncio.run(asyncio.wait_for(body(), HANG_GUARD + advanced))


# Timeouts of the tests that move the server's clock past them (tests/_clock.py):
# far longer than any stall of a loaded machine.
TIMEOUT = 30.0


async def turns(n: int = 3) -> None:
    """A few loop turns: what the server does on its own has happened."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_drain_closes_busy_connections_after_their_response() -> None:
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        busy_r, busy_w = await asyncio.open_connection("127.0.0.1", port)
        busy_w.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await state.started.wait()

        drain = asyncio.ensure_future(server.drain(timeout=HANG_GUARD))
        await until(lambda: not server._servers)
        # New connections are refused: the listener is closed.
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        assert not drain.done()
        state.release.set()
        head = await busy_r.readuntil(b"\r\n\r\n")
        assert b"Connection: close" in head
        rest = await busy_r.read()
        assert rest == b"slow done"
        assert await drain is True
        assert not server._connections
        busy_w.close()

    run(body)


def test_drain_answers_an_idle_connections_next_request_with_close() -> None:
    # A keep-alive client between two requests may have sent its next one
    # already: closing the connection under it would lose that request.
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        head, data = await request(reader, writer, "/fast")
        assert data == b"fast" and b"Connection: close" not in head
        # A grace and a deadline past the hang guard: only the connection's
        # end can end the drain within the test.
        drain = asyncio.ensure_future(
            server.drain(timeout=10 * HANG_GUARD, idle_grace=10 * HANG_GUARD)
        )
        (conn,) = server._connections
        await until(lambda: conn._params is server._table.drain_params)  # told to drain
        assert not drain.done()
        head, data = await request(reader, writer, "/fast")
        assert head.startswith(b"HTTP/1.1 200") and data == b"fast"
        assert b"Connection: close" in head
        assert await reader.read() == b""
        # The last connection gone, the drain ends without waiting out the grace.
        assert await drain is True
        writer.close()

    run(body)


def test_drain_closes_a_connection_idle_through_the_grace() -> None:
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        _, data = await request(reader, writer, "/fast")
        assert data == b"fast"
        # A connection that has not sent its first request is idle too.
        fresh_r, fresh_w = await asyncio.open_connection("127.0.0.1", port)
        await until(lambda: len(server._connections) == 2)
        assert await server.drain(timeout=HANG_GUARD, idle_grace=0.05) is True
        assert await reader.read() == b""
        assert await fresh_r.read() == b""
        assert not server._connections
        writer.close()
        fresh_w.close()

    run(body)


def test_drain_aborts_what_is_left_at_the_deadline() -> None:
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        await state.started.wait()
        # /slow waits for a release that never comes: drain returns only
        # because its deadline passed (else run()'s hang guard fails the test).
        assert await server.drain(timeout=0.05) is False
        assert not state.release.is_set()
        assert await reader.read() == b""
        assert not server._connections
        writer.close()

    run(body)


def test_drain_sends_going_away_to_websockets() -> None:
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/ws")
        await ws.write_message("hi")
        assert await ws.read_message() == "hi"
        assert len(server._detached) == 1
        assert await server.drain(timeout=HANG_GUARD) is True
        assert await ws.read_message() is None
        assert ws.close_code == 1001
        assert not server._detached

    run(body)


def test_a_request_arriving_during_drain_is_answered_with_close() -> None:
    async def body() -> None:
        state = _State()
        server, port = serve(state)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Half a head is buffered: the request is on its way, not idle.
        writer.write(b"GET /fast HTTP/1.1\r\n")
        await writer.drain()
        while not any(c.h1.buffered for c in server._connections):
            await asyncio.sleep(0)  # let the server read the half head
        drain = asyncio.ensure_future(server.drain(timeout=HANG_GUARD))
        while server._table.drain_params is None or not server._servers == []:
            await asyncio.sleep(0)  # until the drain has begun
        for _ in range(3):
            await asyncio.sleep(0)  # and has gone past its poll
        assert not drain.done()
        writer.write(b"Host: t\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert b"Connection: close" in head
        assert await reader.read() == b"fast"
        assert await drain is True
        writer.close()

    run(body)


def test_close_all_connections_does_not_hang_on_a_client_that_stops_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_h1lifecycle, "_CLOSE_GRACE", 0.05)

    async def body() -> None:
        state = _State()
        server, port = serve(state, write_timeout=None)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        # Until the 8 MB response fills the buffers.
        await until(lambda: any(c.write_paused for c in server._connections))
        server.stop()
        await asyncio.wait_for(server.close_all_connections(), HANG_GUARD)
        assert not server._connections
        sock.close()

    run(body)


def test_a_client_that_stops_reading_is_dropped_at_the_write_timeout() -> None:
    async def body() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        state = _State()
        server, port = serve(state, write_timeout=TIMEOUT)
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n")
        await until(lambda: any(c.write_paused for c in server._connections))
        await clock.advance(TIMEOUT / 2)
        assert server._connections  # not before the write timeout
        await clock.advance(TIMEOUT)
        await until(lambda: not server._connections)
        server.stop()
        sock.close()
        clock.close()

    run(body, 2 * TIMEOUT)


def test_a_head_must_arrive_within_header_timeout() -> None:
    async def body() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        state = _State()
        server, port = serve(state, header_timeout=TIMEOUT)
        # A fresh connection that trickles its head.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /fast HTTP/1.1\r\n")
        eof = asyncio.ensure_future(reader.read())
        await until(lambda: any(c.h1.buffered for c in server._connections))
        await clock.advance(TIMEOUT / 2)
        assert not eof.done()  # not before the header timeout
        await clock.advance(TIMEOUT)
        assert await eof == b""
        writer.close()
        # A keep-alive connection: idle is allowed (idle_connection_timeout),
        # but the next head's clock starts at its first byte.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await request(reader, writer, "/fast"))[1] == b"fast"
        eof = asyncio.ensure_future(reader.read())
        await clock.advance(2 * TIMEOUT)
        await turns()
        assert not eof.done(), "an idle keep-alive connection was closed at header_timeout"
        writer.write(b"GET /fast HTTP/1.1\r\n")
        await until(lambda: any(c.h1.buffered for c in server._connections))
        await clock.advance(TIMEOUT / 2)
        assert not eof.done()
        await clock.advance(TIMEOUT)
        assert await eof == b""
        writer.close()
        server.stop()
        await server.close_all_connections()
        clock.close()

    run(body, 6 * TIMEOUT)


def test_idle_keep_alive_connection_closes_at_idle_timeout() -> None:
    async def body() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        state = _State()
        server, port = serve(state, idle_connection_timeout=TIMEOUT, header_timeout=5 * TIMEOUT)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await request(reader, writer, "/fast"))[1] == b"fast"
        eof = asyncio.ensure_future(reader.read())
        await clock.advance(TIMEOUT / 2)
        await turns()
        assert not eof.done()  # not before the idle timeout
        await clock.advance(TIMEOUT)
        assert await eof == b""
        writer.close()
        server.stop()
        clock.close()

    run(body, 2 * TIMEOUT)


def test_drain_closes_connections_served_through_handle_stream() -> None:
    from squall.iostream import IOStream

    async def body() -> None:
        state = _State()
        server, _ = serve(state)
        ours, theirs = socket.socketpair()
        server.handle_stream(IOStream(ours), ("127.0.0.1", 1))
        assert len(server._connections) == 1
        reader, writer = await asyncio.open_connection(sock=theirs)
        assert await server.drain(timeout=HANG_GUARD) is True
        assert await reader.read() == b""
        assert not server._connections
        writer.close()

    run(body)


def test_ttin_ttou_under_keep_alive_load_close_nothing_under_a_request() -> None:
    # squall run's workers drain as HTTPServer.drain does: a busy keep-alive
    # client whose worker retires is told Connection: close, never cut off.
    with Squall(
        "sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2", "--no-access-log"
    ) as squall:
        address = squall.address()
        first = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        # Quick requests: each connection is between two requests often.
        load = Load(address, "/", clients=4)
        load.start()
        squall.signal(signal.SIGTTIN)
        third = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert third not in first
        squall.signal(signal.SIGTTOU)
        retired = int(squall.expect(r"Worker (\d+) exited").group(1))
        assert retired in first
        load.wait_ok(load.ok + 10)
        load.stop()
        assert load.failures == []
        assert load.retried == 0
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
