"""Resource hygiene: what Squall opens, it closes.

Each scenario runs a realistic piece of an application (a server with HTTP
and WebSocket clients, refused connections, timeouts, a pooled keep-alive
connection whose server went away, an `AsyncHTTPTestCase`'s lifecycle, pipes
of a subprocess) on a loop of its own, then checks, after collecting garbage,
that nothing was reported unclosed: no ResourceWarning (made an error, so
that it reaches ``sys.unraisablehook``, as pytest's own check sees it), no
unraisable exception of any kind, no "Task was destroyed" from asyncio, and
no file descriptor left open that the scenario did not have before.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import ssl
import subprocess
import sys
import unittest
import warnings
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Optional

import pytest

from squall import gen, netutil, testing, web, websocket
from squall.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.iostream import IOStream, SSLIOStream, StreamClosedError
from squall.process import Subprocess
from squall.simple_httpclient import HTTPStreamClosedError
from squall.tcpclient import TCPClient
from squall.tcpserver import TCPServer
from tests._wait import HANG_GUARD

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            # The directory's own fd, closed by the time it is read.
            continue
    return fds


class _AsyncioErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def nothing_left_open(pending_tasks_allowed: bool = False) -> Iterator[None]:
    """Fail if the block leaves anything unclosed (see the module docstring).

    Args:
        pending_tasks_allowed: do not fail on asyncio's "Task was destroyed
            but it is pending" (a loop closed under running coroutines logs
            it, as it does with Tornado; it is a log line, not a leak).
    """
    gc.collect()
    before = _open_fds()
    unraisable: list[str] = []

    def hook(args: Any) -> None:
        unraisable.append(f"{args.exc_type.__name__}: {args.exc_value} ({args.object!r})")

    errors = _AsyncioErrors()
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(errors)
    old_hook = sys.unraisablehook
    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            yield
            # Twice: finalizers run by the first pass may free more.
            gc.collect()
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
        asyncio_log.removeHandler(errors)
    assert unraisable == [], "\n".join(unraisable)
    messages = [
        m
        for m in errors.messages
        if not (pending_tasks_allowed and m.startswith("Task was destroyed"))
    ]
    assert messages == [], "\n".join(messages)
    leaked = {fd: target for fd, target in _open_fds().items() if before.get(fd) != target}
    assert leaked == {}


def run_on_new_loop(main: Callable[[], Awaitable[None]]) -> None:
    """Run ``main`` on a fresh loop that is closed afterwards, as asyncio.run does."""
    asyncio.run(asyncio.wait_for(main(), LIMIT))  # type: ignore[arg-type]


# -- an application -------------------------------------------------------------------


class HelloHandler(web.RequestHandler):
    def get(self) -> None:
        self.write("hello")

    def post(self) -> None:
        self.write(self.request.body)


class EchoSocket(websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        if message == "bye":
            self.close(1000, "asked to")
        else:
            self.write_message(message)


def make_app() -> web.Application:
    return web.Application([("/", HelloHandler), ("/ws", EchoSocket)])


async def start_server(**kwargs: Any) -> tuple[HTTPServer, int]:
    sock, port = testing.bind_unused_port()
    server = HTTPServer(make_app(), **kwargs)
    server.add_sockets([sock])
    return server, port


async def stop_server(server: HTTPServer) -> None:
    server.stop()
    await server.close_all_connections()


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    sock, port = testing.bind_unused_port()
    sock.close()
    return port


# -- HTTP server and clients ----------------------------------------------------------


def test_server_http_and_websocket_clients_then_stop() -> None:
    async def main() -> None:
        server, port = await start_server()
        client = AsyncHTTPClient(force_instance=True)
        try:
            for _ in range(3):
                response = await client.fetch(f"http://127.0.0.1:{port}/")
                assert response.body == b"hello"
            response = await client.fetch(f"http://127.0.0.1:{port}/", method="POST", body="x")
            assert response.body == b"x"
            ws = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            await ws.write_message("ping")
            assert await ws.read_message() == "ping"
            ws.close()
            assert await ws.read_message() is None
            # The server closes this one.
            ws2 = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            await ws2.write_message("bye")
            assert await ws2.read_message() is None
            assert ws2.close_code == 1000
        finally:
            client.close()
            await stop_server(server)

    with nothing_left_open():
        run_on_new_loop(main)


def test_websocket_left_open_when_the_server_stops_and_the_loop_closes() -> None:
    # An app's test that stops its server with a client WebSocket still
    # open: IOLoop.close(all_fds=True) must close both ends.
    loop = IOLoop(make_current=False)

    async def main() -> None:
        server, port = await start_server()
        ws = await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
        await ws.write_message("ping")
        assert await ws.read_message() == "ping"
        await stop_server(server)

    with nothing_left_open(pending_tasks_allowed=True):
        loop.run_sync(main, timeout=LIMIT)
        loop.close(all_fds=True)


def test_shared_client_and_server_never_closed_then_loop_closed() -> None:
    # The way many apps use them: the shared AsyncHTTPClient and a server
    # left listening; closing the loop with all_fds=True releases everything.
    loop = IOLoop(make_current=False)

    async def main() -> None:
        _server, port = await start_server()
        client = AsyncHTTPClient()
        response = await client.fetch(f"http://127.0.0.1:{port}/")
        assert response.body == b"hello"

    with nothing_left_open():
        loop.run_sync(main, timeout=LIMIT)
        loop.close(all_fds=True)


def test_client_collected_without_close() -> None:
    async def main() -> None:
        server, port = await start_server()
        try:
            client = AsyncHTTPClient(force_instance=True)
            response = await client.fetch(f"http://127.0.0.1:{port}/")
            assert response.body == b"hello"
            del client, response
            gc.collect()
        finally:
            await stop_server(server)

    with nothing_left_open():
        run_on_new_loop(main)


def test_connection_refused() -> None:
    async def main() -> None:
        port = closed_port()
        client = AsyncHTTPClient(force_instance=True)
        try:
            with pytest.raises(ConnectionRefusedError):
                await client.fetch(f"http://127.0.0.1:{port}/")
            with pytest.raises(ConnectionRefusedError):
                await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            with pytest.raises(StreamClosedError):
                await IOStream(socket.socket()).connect(("127.0.0.1", port))
            with pytest.raises(StreamClosedError) as info:
                await TCPClient().connect("127.0.0.1", port)
            assert isinstance(info.value.real_error, ConnectionRefusedError)
        finally:
            client.close()

    with nothing_left_open():
        run_on_new_loop(main)


def test_websocket_handshake_refused_by_the_server() -> None:
    async def main() -> None:
        server, port = await start_server()
        try:
            with pytest.raises(HTTPClientError) as info:
                await websocket.websocket_connect(f"ws://127.0.0.1:{port}/nowhere")
            assert info.value.code == 404
        finally:
            await stop_server(server)

    with nothing_left_open():
        run_on_new_loop(main)


class HangUpServer(TCPServer):
    def handle_stream(self, stream: IOStream, address: Any) -> None:
        stream.close()


def test_websocket_handshake_hung_up_on() -> None:
    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = HangUpServer()
        server.add_sockets([sock])
        try:
            with pytest.raises(HTTPStreamClosedError) as info:
                await websocket.websocket_connect(f"ws://127.0.0.1:{port}/ws")
            assert info.value.code == 599
        finally:
            server.stop()

    with nothing_left_open():
        run_on_new_loop(main)


def test_request_timeout_on_a_server_that_never_answers() -> None:
    async def main() -> None:
        # Accepted by the kernel (backlog) but never answered.
        listener, port = testing.bind_unused_port()
        client = AsyncHTTPClient(force_instance=True)
        try:
            with pytest.raises(HTTPClientError) as info:
                await client.fetch(f"http://127.0.0.1:{port}/", request_timeout=0.1)
            assert info.value.code == 599
            with pytest.raises((asyncio.TimeoutError, HTTPClientError)):
                await websocket.websocket_connect(
                    HTTPRequest(f"ws://127.0.0.1:{port}/ws", request_timeout=0.1)
                )
        finally:
            client.close()
            listener.close()

    with nothing_left_open():
        run_on_new_loop(main)


def test_pooled_connection_whose_server_went_away() -> None:
    async def main() -> None:
        server, port = await start_server()
        client = AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(f"http://127.0.0.1:{port}/")
            assert response.body == b"hello"
            # The connection now waits in the client's pool; the server goes.
            await stop_server(server)
            with pytest.raises(ConnectionRefusedError):
                await client.fetch(f"http://127.0.0.1:{port}/")
            server, port = await start_server()
            response = await client.fetch(f"http://127.0.0.1:{port}/")
            assert response.body == b"hello"
            await stop_server(server)
        finally:
            client.close()

    with nothing_left_open():
        run_on_new_loop(main)


def test_server_stopped_while_a_request_waits() -> None:
    started = asyncio.Event()

    class Slow(web.RequestHandler):
        async def get(self) -> None:
            started.set()
            await asyncio.Event().wait()

    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = HTTPServer(web.Application([("/", Slow)]))
        server.add_sockets([sock])
        client = AsyncHTTPClient(force_instance=True)
        try:
            fetch = asyncio.ensure_future(client.fetch(f"http://127.0.0.1:{port}/"))
            await started.wait()
            await stop_server(server)
            with pytest.raises(HTTPClientError):
                await fetch
        finally:
            client.close()

    with nothing_left_open():
        run_on_new_loop(main)


# -- streams --------------------------------------------------------------------------


class EchoServer(TCPServer):
    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        try:
            while True:
                line = await stream.read_until(b"\n")
                await stream.write(line)
        except StreamClosedError:
            pass


def test_tcp_server_and_client_streams() -> None:
    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = EchoServer()
        server.add_sockets([sock])
        try:
            stream = await TCPClient().connect("127.0.0.1", port)
            await stream.write(b"one\n")
            assert await stream.read_until(b"\n") == b"one\n"
            stream.close()
            # One left open for the server to see closed by the peer later.
            other = await TCPClient().connect("127.0.0.1", port)
            await other.write(b"two\n")
            assert await other.read_until(b"\n") == b"two\n"
            other.close()
        finally:
            server.stop()

    with nothing_left_open():
        run_on_new_loop(main)


class TwoAddresses(netutil.Resolver):
    """Resolves any name to a refusing address first, then the live one."""

    def initialize(self, refusing: int, live: int) -> None:  # type: ignore[override]
        self.ports = (refusing, live)

    async def resolve(  # type: ignore[override]
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        return [(socket.AF_INET, ("127.0.0.1", p)) for p in self.ports]


def test_tcp_client_tries_the_next_address_after_a_refusal() -> None:
    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = EchoServer()
        server.add_sockets([sock])
        resolver = TwoAddresses(refusing=closed_port(), live=port)
        try:
            stream = await TCPClient(resolver=resolver).connect("anywhere", 1)
            await stream.write(b"hi\n")
            assert await stream.read_until(b"\n") == b"hi\n"
            stream.close()
        finally:
            server.stop()

    with nothing_left_open():
        run_on_new_loop(main)


def test_tls_handshake_failure_closes_both_ends() -> None:
    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = EchoServer(ssl_options=testing.AsyncHTTPSTestCase.default_ssl_options())
        server.add_sockets([sock])
        try:
            # The default context verifies, and the test certificate is self-signed.
            stream = SSLIOStream(socket.socket(), ssl_options=ssl.create_default_context())
            with pytest.raises((ssl.SSLError, StreamClosedError)):
                await stream.connect(("127.0.0.1", port), server_hostname="localhost")
            assert stream.closed()
        finally:
            server.stop()

    with nothing_left_open(), testing.ExpectLog("squall.general", ".*", required=False):
        run_on_new_loop(main)


def test_ioloop_close_all_fds_closes_watched_sockets() -> None:
    with nothing_left_open():
        loop = IOLoop(make_current=False)
        a, b = socket.socketpair()
        loop.add_handler(a, lambda fd, events: None, IOLoop.READ)
        loop.close(all_fds=True)
        assert a.fileno() == -1
        b.close()


def test_resolvers() -> None:
    async def main() -> None:
        for resolver in (
            netutil.Resolver(),
            netutil.DefaultExecutorResolver(),
            netutil.ThreadedResolver(num_threads=1),
        ):
            try:
                addresses = await resolver.resolve("localhost", 80)
                assert addresses
            finally:
                resolver.close()

    with nothing_left_open():
        run_on_new_loop(main)


@pytest.mark.skipif(not os.path.exists("/bin/cat"), reason="needs /bin/cat")
def test_subprocess_pipes() -> None:
    async def main() -> None:
        proc = Subprocess(
            ["/bin/cat"], stdin=Subprocess.STREAM, stdout=Subprocess.STREAM, stderr=subprocess.PIPE
        )
        try:
            assert proc.stdin is not None and proc.stdout is not None
            await proc.stdin.write(b"data")
            proc.stdin.close()
            assert await proc.stdout.read_until_close() == b"data"
            assert await proc.wait_for_exit() == 0
        finally:
            Subprocess.uninitialize()
            assert proc.proc.stderr is not None
            proc.proc.stderr.close()

    with nothing_left_open():
        run_on_new_loop(main)


# -- AsyncHTTPTestCase ----------------------------------------------------------------


class _AppTest(testing.AsyncHTTPTestCase):
    def get_app(self) -> web.Application:
        return make_app()

    def test_fetch(self) -> None:
        assert self.fetch("/").body == b"hello"

    @testing.gen_test
    def test_websocket_left_open(self) -> Any:
        ws = yield websocket.websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}/ws")
        yield ws.write_message("ping")
        message = yield ws.read_message()
        assert message == "ping"

    @testing.gen_test
    async def test_shared_client_pool(self) -> None:
        client = AsyncHTTPClient()
        response = await client.fetch(self.get_url("/"))
        assert response.body == b"hello"
        response = await gen.multi([client.fetch(self.get_url("/")) for _ in range(3)])
        assert [r.body for r in response] == [b"hello"] * 3


class _TLSAppTest(testing.AsyncHTTPSTestCase):
    def get_app(self) -> web.Application:
        return make_app()

    def test_fetch(self) -> None:
        assert self.fetch("/").body == b"hello"

    @testing.gen_test
    async def test_websocket_left_open(self) -> None:
        request = HTTPRequest(f"wss://127.0.0.1:{self.get_http_port()}/ws", validate_cert=False)
        ws = await websocket.websocket_connect(request)
        await ws.write_message("ping")
        assert await ws.read_message() == "ping"


def test_async_https_test_case_lifecycle() -> None:
    with nothing_left_open():
        result = unittest.TestResult()
        tests = [_TLSAppTest("test_fetch"), _TLSAppTest("test_websocket_left_open")]
        unittest.TestSuite(tests).run(result)
        problems: list[tuple[Any, str]] = result.errors + result.failures
        assert [text for _, text in problems] == []
        assert result.testsRun == 2


def test_async_http_test_case_lifecycle() -> None:
    names = ["test_fetch", "test_websocket_left_open", "test_shared_client_pool"]
    with nothing_left_open():
        result = unittest.TestResult()
        unittest.TestSuite(_AppTest(name) for name in names).run(result)
        problems: list[tuple[Any, str]] = result.errors + result.failures
        assert [text for _, text in problems] == []
        assert result.testsRun == 3


def test_nothing_left_open_catches_a_leak() -> None:
    # The check itself must be able to fail.
    kept: Optional[socket.socket] = None
    with pytest.raises(AssertionError):
        with nothing_left_open():
            sock = socket.socket()
            kept = sock
    assert kept is not None
    kept.close()
    with pytest.raises(AssertionError):
        with nothing_left_open():
            socket.socket()


# -- interpreter exit and loop creation -----------------------------------------------


def test_sync_client_left_for_interpreter_exit_is_quiet() -> None:
    # An HTTPClient still referenced at exit is collected while modules are
    # torn down; closing then must not print "Exception ignored in __del__".
    code = "from squall.httpclient import HTTPClient; f = lambda: None; c = HTTPClient()"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"", b"")


def test_main_loop_made_without_a_current_loop_warns_nothing() -> None:
    # asyncio.get_event_loop() with no loop set warns from 3.12 and raises
    # from 3.14; AsyncIOMainLoop() must do neither, and the loop it makes
    # current is closed with it.
    from squall.platform.asyncio import AsyncIOMainLoop

    asyncio.set_event_loop(None)
    with nothing_left_open(), warnings.catch_warnings():
        warnings.simplefilter("error")
        loop = AsyncIOMainLoop()
        try:
            assert IOLoop.current() is loop
            assert loop.asyncio_loop is asyncio.get_event_loop()
        finally:
            loop.close(all_fds=True)
            asyncio.set_event_loop(None)


def test_http2_connection_left_open_when_the_loop_closes() -> None:
    pytest.importorskip("h2", reason="HTTP/2 needs the h2 package (squall[http2])")
    loop = IOLoop(make_current=False)

    async def main() -> None:
        sock, port = testing.bind_unused_port()
        server = HTTPServer(make_app(), http2=True)
        server.add_sockets([sock])
        stream = await TCPClient().connect("127.0.0.1", port)
        # The client preface and an empty SETTINGS frame (RFC 9113 §3.4).
        await stream.write(
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        )
        # The server's SETTINGS frame: it speaks HTTP/2 on this connection.
        head = await stream.read_bytes(9)
        assert head[3] == 0x04
        assert len(server._connections) == 1

    with nothing_left_open(pending_tasks_allowed=True):
        loop.run_sync(main, timeout=LIMIT)
        loop.close(all_fds=True)
