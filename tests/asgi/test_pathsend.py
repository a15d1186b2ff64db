"""http.response.pathsend by sendfile(2) on plain HTTP/1.1: the bytes, the
Content-Length, a client that leaves mid-file, a file that shrinks mid-file,
on asyncio's loop and on uvloop's; the copying path where sendfile cannot go."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from squall.asgi import ASGIServerDelegate, ClientDisconnected
from squall.httpserver import HTTPServer, _sendfile
from squall.httputil import HTTPOutputError
from squall.testing import ExpectLog

from ._helpers import DEADLINE, RawClient, request, serving, until

T = TypeVar("T")

BIG = 16 * 1024 * 1024  # more than loopback's socket buffers hold: sendfile waits


def _runner(name: str) -> Callable[[Coroutine[Any, Any, T]], T]:
    if name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    def run(coro: Coroutine[Any, Any, T]) -> T:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(asyncio.wait_for(coro, DEADLINE))

    return run


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return _runner(request.param)


class _Sendfile:
    """os.sendfile, counted: the bytes it moved, and an event set when it would block."""

    def __init__(self) -> None:
        self.sent = 0
        self.calls = 0
        self.blocked: asyncio.Event | None = None
        self._real = os.sendfile

    def __call__(self, out: int, source: int, offset: int, count: int) -> int:
        self.calls += 1
        try:
            sent = self._real(out, source, offset, count)
        except BlockingIOError:
            if self.blocked is not None:
                self.blocked.set()
            raise
        self.sent += sent
        return sent


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Sendfile]:
    spy = _Sendfile()
    monkeypatch.setattr(_sendfile.os, "sendfile", spy)
    yield spy


def _app(path: Path, seen: list[BaseException]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.pathsend", "path": str(path)})
        except Exception as exc:
            seen.append(exc)
            raise

    return app


def test_the_file_goes_by_sendfile_intact(
    tmp_path: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], counted: _Sendfile
) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    target = tmp_path / "f.bin"
    target.write_bytes(data)

    async def main() -> None:
        async with serving(_app(target, [])) as (port, _, _):
            client = await RawClient.connect(port)
            for _ in range(2):  # the connection stays usable after it
                await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                status, headers, body = await client.response()
                assert status == 200
                assert headers["content-length"] == str(len(data))
                assert body == data
            await client.close()

    run(main())
    assert counted.sent == 2 * len(data)


def test_a_client_leaving_mid_file_ends_the_response_cleanly(
    tmp_path: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], counted: _Sendfile
) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"x" * BIG)
    small = tmp_path / "small.bin"
    small.write_bytes(b"after")
    seen: list[BaseException] = []

    async def main() -> None:
        counted.blocked = asyncio.Event()
        app = _app(target, seen)

        async def route(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope.get("path") == "/small":
                await _app(small, seen)(scope, receive, send)
            else:
                await app(scope, receive, send)

        async with serving(route) as (port, delegate, server):
            fds = len(os.listdir("/proc/self/fd"))
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            status, headers = await client.head()
            assert headers["content-length"] == str(BIG)
            await counted.blocked.wait()  # the kernel's buffers are full
            client.writer.transport.abort()
            await until(lambda: not server._connections and not delegate.tasks)
            assert len(seen) == 1 and isinstance(seen[0], ClientDisconnected)
            assert len(os.listdir("/proc/self/fd")) == fds  # the duplicate is closed
            status, _, body = await request(port, b"GET /small HTTP/1.1\r\nHost: h\r\n\r\n")
            assert (status, body) == (200, b"after")

    run(main())


def test_a_file_that_shrinks_mid_file_closes_the_connection(
    tmp_path: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], counted: _Sendfile
) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"y" * BIG)
    seen: list[BaseException] = []

    async def main() -> None:
        counted.blocked = asyncio.Event()
        async with serving(_app(target, seen)) as (port, delegate, _):
            client = await RawClient.connect(port)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            _, headers = await client.head()
            await counted.blocked.wait()
            os.truncate(target, 0)
            with ExpectLog("squall.application", "Exception in ASGI application"):
                rest = await client.reader.read()  # to EOF: closed, no hang
                while not client.reader.at_eof():
                    rest += await client.reader.read()
                await until(lambda: not delegate.tasks)
            assert 0 < len(rest) < int(headers["content-length"])
            assert len(seen) == 1 and isinstance(seen[0], HTTPOutputError)
            await client.close()

    run(main())


def test_a_chunked_pathsend_is_copied(
    tmp_path: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], counted: _Sendfile
) -> None:
    # The app chose chunked framing: sendfile cannot frame the bytes.
    data = os.urandom(300 * 1024)
    target = tmp_path / "f.bin"
    target.write_bytes(data)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        headers = [(b"transfer-encoding", b"chunked")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(target)})

    async def main() -> None:
        async with serving(app) as (port, _, _):
            status, headers, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            assert status == 200 and body == data

    run(main())
    assert counted.calls == 0


def test_a_client_that_stops_reading_is_cut_off_after_write_timeout(
    tmp_path: Path, run: Callable[[Coroutine[Any, Any, Any]], Any], counted: _Sendfile
) -> None:
    target = tmp_path / "big.bin"
    target.write_bytes(b"z" * BIG)
    seen: list[BaseException] = []

    async def main() -> None:
        counted.blocked = asyncio.Event()
        delegate = ASGIServerDelegate(_app(target, seen))
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        sock.setblocking(False)
        server = HTTPServer(delegate, write_timeout=0.2)
        server.add_sockets([sock])
        try:
            client = await RawClient.connect(sock.getsockname()[1])
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            await client.head()
            await counted.blocked.wait()
            # The client reads nothing more: the server gives up, no hang.
            await until(lambda: not server._connections and not delegate.tasks)
            assert len(seen) == 1 and isinstance(seen[0], ClientDisconnected)
            await client.close()
        finally:
            server.stop()
            await server.close_all_connections()

    run(main())


def test_pathsend_over_tls_is_copied(tmp_path: Path, counted: _Sendfile) -> None:
    # sendfile cannot write through TLS, nor frame HTTP/2 DATA: over TLS,
    # HTTP/1.1 and HTTP/2 alike, the bytes are read and written, intact.
    pytest.importorskip("h2")
    import ssl

    from .test_extensions import _h2_get
    from .test_h2 import serving_h2

    data = os.urandom(300 * 1024 + 3)
    target = tmp_path / "f.bin"
    target.write_bytes(data)
    app = _app(target, [])

    async def over_http1() -> tuple[int, dict[str, str], bytes]:
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        async with serving_h2(app, tls=True) as (port, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
            client = RawClient(reader, writer)
            await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            got = await client.response()
            await client.close()
            return got

    status, headers, body = _runner("asyncio")(over_http1())
    assert status == 200 and body == data and headers["content-length"] == str(len(data))
    response = _h2_get(app, tls=True)
    assert response.status == 200 and response.body == data
    assert response.headers["content-length"] == str(len(data))
    assert counted.calls == 0


def test_a_file_growing_mid_file_over_tls_sends_the_announced_length(
    tmp_path: Path, counted: _Sendfile
) -> None:
    # Over TLS (the copying path), bytes appended while the
    # file was sent were written past the Content-Length: the connection
    # closed and the pipelined request after it went unanswered.
    pytest.importorskip("h2")
    import ssl

    from .test_h2 import serving_h2

    data = os.urandom(BIG // 2)  # more than the kernel buffers: the copy waits
    target = tmp_path / "f.bin"
    target.write_bytes(data)

    async def main() -> None:
        client_ctx = ssl.create_default_context()
        client_ctx.check_hostname = False
        client_ctx.verify_mode = ssl.CERT_NONE
        async with serving_h2(_app(target, []), tls=True) as (port, _):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(
                sock=sock, ssl=client_ctx, server_hostname="localhost"
            )
            client = RawClient(reader, writer)
            request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
            await client.send(request + request)
            status, headers = await client.head()
            with target.open("ab") as file:  # the server is held by our window
                file.write(b"x" * 100_000)
            assert (status, headers["content-length"]) == (200, str(len(data)))
            assert await client.body(headers) == data
            # The connection's framing held: the next response follows.
            status, headers = await client.head()
            assert status == 200
            assert await client.body(headers) == data + b"x" * 100_000
            await client.close()

    _runner("asyncio")(main())
    assert counted.calls == 0
