"""Squall's IOLoop, timers and server run on uvloop (part of squall[speedups])."""

from __future__ import annotations

import asyncio

import pytest

from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.ioloop import IOLoop
from squall.testing import bind_unused_port
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD

uvloop = pytest.importorskip("uvloop")


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


def test_ioloop_timers_on_uvloop() -> None:
    async def main() -> list[str]:
        io_loop = IOLoop.current()
        fired: list[str] = []
        done = asyncio.Event()
        cancelled = io_loop.call_later(0, fired.append, "cancelled")
        io_loop.remove_timeout(cancelled)
        io_loop.add_timeout(io_loop.time(), lambda: (fired.append("kept"), done.set()))
        await asyncio.wait_for(done.wait(), HANG_GUARD)
        return fired

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(main()) == ["kept"]
    finally:
        loop.close()


def test_remove_timeout_refuses_what_is_not_a_handle() -> None:
    async def main() -> None:
        with pytest.raises(TypeError, match="not a timeout handle"):
            IOLoop.current().remove_timeout(object())

    asyncio.run(main())


def test_server_and_client_on_uvloop() -> None:
    async def main() -> bytes:
        sock, port = bind_unused_port()
        server = HTTPServer(Application([("/", Hello)]))
        server.add_sockets([sock])
        client = AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(f"http://127.0.0.1:{port}/")
            again = await client.fetch(f"http://127.0.0.1:{port}/")
            assert again.body == response.body
            return response.body
        finally:
            client.close()
            server.stop()
            await server.close_all_connections()

    loop = uvloop.new_event_loop()
    try:
        assert loop.run_until_complete(asyncio.wait_for(main(), HANG_GUARD)) == b"Hello, world"
    finally:
        loop.close()


def test_https_handshakes_in_parallel_on_uvloop() -> None:
    # uvloop starts reading after connection_made(), so a protocol that paused
    # there to start TLS itself lost the ClientHello: handshakes hung.
    import ssl

    from squall.testing import AsyncHTTPSTestCase

    options = AsyncHTTPSTestCase.default_ssl_options()
    client_ctx = ssl.create_default_context()
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE

    async def one(port: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ctx)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        return data

    async def main() -> list[bytes]:
        sock, port = bind_unused_port()
        server = HTTPServer(Application([("/", Hello)]), ssl_options=options)
        server.add_sockets([sock])
        try:
            return await asyncio.gather(*(one(port) for _ in range(8)))
        finally:
            server.stop()
            await server.close_all_connections()

    loop = uvloop.new_event_loop()
    try:
        answers = loop.run_until_complete(asyncio.wait_for(main(), HANG_GUARD))
    finally:
        loop.close()
    assert len(answers) == 8
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"Hello, world")
