"""When the client may send a request again, and when it must not.

A request goes on a pooled connection only if the server has not closed it
(asked of the kernel, not only of the loop); once written, a connection
that closes before any of the response fails the fetch with a 599, so the
server never gets it twice; the one retry is for a reset while an
idempotent request was still being written. The servers here count every
connection and request they get.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
from collections.abc import Callable
from typing import Any

from squall._h1 import H1Limits
from squall.httpclient import HTTPRequest, HTTPResponse, _RequestProxy
from squall.simple_httpclient import HTTPStreamClosedError
from squall.simple_httpclient._connection import ClientConnection, peer_silent
from squall.simple_httpclient._exchange import IDEMPOTENT_METHODS
from squall.testing import gen_test
from tests._wait import HANG_GUARD
from tests.client.test_simple_httpclient import ClientTestCase

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# What the server does with the Nth request head it reads (counted from 1,
# over all connections): "ok" answers, "close" reads the request and closes
# without answering, "reset" closes at once with an RST.
Script = Callable[[int, bytes], str]


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout: close() sends an RST, not a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class CountingServer:
    """A raw HTTP/1.1 server on the loop's socket calls, following a script.

    It reads heads (and a ``Content-Length`` body unless the script resets
    first), so the test sees exactly what reached it.
    """

    def __init__(self, script: Script) -> None:
        self.script = script
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        # (connection index, request head) per request that arrived whole.
        self.requests: list[tuple[int, bytes]] = []
        self.heads = 0
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._taken: set[int] = set()
        self._accepting = asyncio.ensure_future(self._accept())

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            sock, _ = await loop.sock_accept(self.listener)
            sock.setblocking(False)
            self.connections.append(sock)
            index = len(self.connections) - 1
            self._tasks[index] = asyncio.ensure_future(self._serve(index, sock))

    async def take(self, index: int) -> socket.socket:
        """Stop serving connection ``index``; the test uses its socket."""
        self._taken.add(index)
        task = self._tasks[index]
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return self.connections[index]

    async def _serve(self, index: int, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        buf = b""
        try:
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    data = await loop.sock_recv(sock, 65536)
                    if not data:
                        break
                    buf += data
                    continue
                head, buf = buf[: end + 4], buf[end + 4 :]
                self.heads += 1
                action = self.script(self.heads, head)
                if action == "reset":
                    _reset(sock)
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buf) < length:
                    data = await loop.sock_recv(sock, 1 << 20)
                    if not data:
                        return
                    buf += data
                buf = buf[length:]
                self.requests.append((index, head))
                if action == "close":
                    break
                await loop.sock_sendall(sock, OK)
        except OSError:
            pass
        finally:
            if index not in self._taken and sock.fileno() >= 0:
                sock.close()

    async def stop(self) -> None:
        self._accepting.cancel()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(self._accepting, *self._tasks.values(), return_exceptions=True)
        for sock in self.connections:
            if sock.fileno() >= 0:
                sock.close()
        self.listener.close()


def answer_all(count: int, head: bytes) -> str:
    return "ok"


class ResendTestCase(ClientTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.counting: list[CountingServer] = []

    def tearDown(self) -> None:
        for server in self.counting:
            self.io_loop.run_sync(server.stop)
        super().tearDown()

    def start(self, script: Script) -> CountingServer:
        server = CountingServer(script)
        self.counting.append(server)
        return server

    def idle_connection(self) -> ClientConnection:
        (entries,) = self.client.pool._idle.values()
        ((conn, _),) = entries
        return conn

    async def outcome(self, url: str) -> HTTPResponse:
        """The response the client hands over, even a 599 one."""
        future: asyncio.Future[HTTPResponse] = asyncio.get_running_loop().create_future()
        request: Any = _RequestProxy(HTTPRequest(url), self.client.defaults)
        self.client.fetch_impl(request, future.set_result)
        return await asyncio.wait_for(future, HANG_GUARD)


class StalePoolTest(ResendTestCase):
    @gen_test
    async def test_connection_the_server_closed_is_not_used_though_the_loop_has_not_seen_it(
        self,
    ) -> None:
        server = self.start(answer_all)
        self.assertEqual((await self.fetch(server.url("/1"))).body, b"ok")
        conn = self.idle_connection()
        assert conn.sock is not None
        # The server closes the idle connection; without letting the loop
        # run, wait (blocking, with a deadline) until its FIN is here.
        server.connections[0].shutdown(socket.SHUT_RDWR)
        readable, _, _ = select.select([conn.sock], [], [], 2)
        self.assertEqual(readable, [conn.sock])
        self.assertFalse(conn.closed)
        future = self.fetch(server.url("/2"))
        # Checked when it was taken from the pool: closed, and not written to.
        self.assertTrue(conn.closed)
        self.assertEqual((await future).body, b"ok")
        self.assertEqual(len(server.connections), 2)
        self.assertEqual([index for index, _ in server.requests], [0, 1])

    @gen_test
    async def test_connection_the_server_reset_is_not_used(self) -> None:
        server = self.start(answer_all)
        await self.fetch(server.url("/1"))
        conn = self.idle_connection()
        assert conn.sock is not None
        _reset(await server.take(0))
        readable, _, _ = select.select([conn.sock], [], [], 2)
        self.assertEqual(readable, [conn.sock])
        self.assertFalse(conn.closed)
        self.assertEqual((await self.fetch(server.url("/2"))).body, b"ok")
        self.assertEqual(len(server.connections), 2)
        self.assertEqual(len(server.requests), 2)

    @gen_test
    async def test_server_closing_right_after_each_response(self) -> None:
        # No "Connection: close", but a close after each response: the next
        # fetch starts before the loop has read the EOF, yet it is caught.
        connections = 0

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        try:
            for _ in range(5):
                self.assertEqual((await self.fetch(url)).body, b"ok")
        finally:
            server.close()
            await server.wait_closed()
        self.assertEqual(connections, 5)

    @gen_test
    async def test_live_idle_connection_is_reused(self) -> None:
        server = self.start(answer_all)
        for path in ("/1", "/2", "/3"):
            self.assertEqual((await self.fetch(server.url(path))).body, b"ok")
        self.assertEqual(len(server.connections), 1)


class NoResendTest(ResendTestCase):
    @gen_test
    async def test_request_closed_unanswered_on_pooled_connection_is_sent_once(self) -> None:
        server = self.start(lambda count, head: "close" if count == 2 else "ok")
        await self.fetch(server.url("/1"))
        with self.assertRaises(HTTPStreamClosedError) as cm:
            await self.fetch(server.url("/exit"))
        self.assertEqual(cm.exception.code, 599)
        # Closed before any response head: Tornado's "Stream closed".
        self.assertEqual(str(cm.exception), "Stream closed")
        # Once, on the pooled connection; nothing went to a new one.
        self.assertEqual([index for index, _ in server.requests], [0, 0])
        self.assertEqual(len(server.connections), 1)
        self.assertEqual(len(self.client.pool), 0)

    @gen_test
    async def test_request_closed_unanswered_on_new_connection_is_sent_once(self) -> None:
        server = self.start(lambda count, head: "close")
        response = await self.outcome(server.url("/exit"))
        self.assertEqual(response.code, 599)
        self.assertIsInstance(response.error, HTTPStreamClosedError)
        # raise_error=False does not hide it: it is no HTTP status.
        with self.assertRaises(HTTPStreamClosedError):
            await self.fetch(server.url("/exit"), raise_error=False)
        self.assertEqual(len(server.requests), 2)
        self.assertEqual(len(server.connections), 2)

    @gen_test
    async def test_reset_after_the_whole_request_is_the_socket_error(self) -> None:
        server = self.start(lambda count, head: "reset" if count == 2 else "ok")
        await self.fetch(server.url("/1"))
        response = await self.outcome(server.url("/boom"))
        # As Tornado: a 599 whose error is the socket's own.
        self.assertEqual(response.code, 599)
        self.assertIsInstance(response.error, ConnectionResetError)
        self.assertEqual(server.heads, 2)
        self.assertEqual(len(server.connections), 1)

    @gen_test
    async def test_fetch_raises_the_socket_error(self) -> None:
        server = self.start(lambda count, head: "reset")
        with self.assertRaises(ConnectionResetError):
            await self.fetch(server.url("/boom"), raise_error=False)
        self.assertEqual(server.heads, 1)


BIG = 16 * 1024 * 1024


def reset_first_head(count: int, head: bytes) -> str:
    # Only the head has been read: the body is unread when the RST goes.
    return "reset" if count == 1 else "ok"


class ResetWhileWritingTest(ResendTestCase):
    @gen_test
    async def test_idempotent_request_is_sent_again_once(self) -> None:
        server = self.start(reset_first_head)
        response = await self.fetch(server.url("/put"), method="PUT", body=b"x" * BIG)
        self.assertEqual(response.body, b"ok")
        self.assertEqual(server.heads, 2)
        self.assertEqual(len(server.connections), 2)
        # Only the second arrived whole.
        self.assertEqual([index for index, _ in server.requests], [1])

    @gen_test
    async def test_only_once(self) -> None:
        server = self.start(lambda count, head: "reset")
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            await self.fetch(server.url("/put"), method="PUT", body=b"x" * BIG)
        self.assertEqual(server.heads, 2)
        self.assertEqual(server.requests, [])

    @gen_test
    async def test_post_is_not_sent_again(self) -> None:
        server = self.start(reset_first_head)
        with self.assertRaises((ConnectionResetError, BrokenPipeError)):
            await self.fetch(server.url("/post"), method="POST", body=b"x" * BIG)
        self.assertEqual(server.heads, 1)
        self.assertEqual(len(server.connections), 1)

    def test_idempotent_methods_are_rfc_9110s(self) -> None:
        self.assertEqual(IDEMPOTENT_METHODS, {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class FlushTest(ResendTestCase):
    @gen_test
    async def test_flushed_reports_a_buffered_write_once_it_reaches_the_kernel(self) -> None:
        server = self.start(answer_all)
        await self.fetch(server.url("/1"))
        # The test reads the connection from now on.
        peer = await server.take(0)
        conn = self.idle_connection()
        calls: list[int] = []
        flushed = asyncio.Event()

        def on_flushed() -> None:
            calls.append(1)
            flushed.set()

        conn.write(b"x" * BIG)
        self.assertFalse(conn.flushed(on_flushed))
        loop = asyncio.get_running_loop()

        async def drain() -> None:
            received = 0
            while received < BIG:
                received += len(await loop.sock_recv(peer, 1 << 20))

        await asyncio.gather(drain(), asyncio.wait_for(flushed.wait(), HANG_GUARD))
        self.assertEqual(calls, [1])
        assert conn.transport is not None
        # The default limits are back.
        self.assertEqual(conn.transport.get_write_buffer_limits()[1], 64 * 1024)
        self.assertTrue(conn.flushed(lambda: calls.append(2)))
        conn.close()
        self.assertFalse(conn.flushed(lambda: calls.append(3)))
        self.assertEqual(calls, [1])


def _pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    return a, b


def test_peer_silent_sees_bytes_eof_and_a_closed_socket() -> None:
    a, b = _pair()
    try:
        assert peer_silent(a)
        b.send(b"x")
        assert not peer_silent(a)
        a.recv(1)
        assert peer_silent(a)
        b.close()
        assert not peer_silent(a)
    finally:
        a.close()
    assert not peer_silent(a)


def test_is_reusable_asks_the_kernel() -> None:
    a, b = _pair()
    conn = ClientConnection(("http", "h", 80), H1Limits(), False)
    conn.sock = a
    try:
        assert conn.is_reusable()
        b.close()
        assert not conn.is_reusable()
    finally:
        a.close()
