"""HTTP/1.1 attacks over real sockets: pipelining to a client that never
reads, responses larger than the socket buffers, a refused request that
the client is still sending, too many query arguments, a body announced too
large behind ``Expect: 100-continue``.

Each asserts the answer RFC 9110/9112 call for and that the server goes on
serving another client; memory is bounded by the server's own counters (its
queued output and its transport's write buffer), not by timing RSS.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from typing import Any
from unittest.mock import ANY

import pytest

import squall
from squall.httpserver import _h1output
from squall.web import Application, HTTPError, RequestHandler, stream_request_body

from .._wait import HANG_GUARD, until
from ._serve import LOOPS, connect, exchange, read_response, run, serving

RESPONSE = 100_000
PIPELINED = 200


class Big(RequestHandler):
    def get(self) -> None:
        self.application.settings["served"].append(self.request.uri)
        self.write(b"x" * int(self.get_argument("n")))


class Streamed(RequestHandler):
    async def get(self) -> None:
        # 8 MB in 64 KB pieces, each written once the previous one drained.
        piece = b"y" * 65536
        for _ in range(128):
            self.write(piece)
            await self.flush()


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("ok")

    def post(self) -> None:
        self.write(str(len(self.request.body)))


def app(**settings: Any) -> Application:
    return Application(
        [("/big", Big), ("/streamed", Streamed), ("/", Hello)], served=[], **settings
    )


def unwritten(proto: Any) -> int:
    """The bytes a connection holds unsent: queued, and in its transport."""
    return sum(map(len, proto.output)) + proto.transport.get_write_buffer_size()


async def served_ok(port: int) -> bool:
    status, _, body = await exchange(port, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    return status == 200 and body == b"ok"


@pytest.mark.parametrize("loop", LOOPS)
def test_pipelining_to_a_client_that_never_reads(loop: str) -> None:
    # Before: every pipelined request of a read ran at once and their
    # responses (20 MB here) waited in the server's memory.
    async def main() -> None:
        application = app()
        async with serving(application) as (server, port):
            reader, writer = await connect(port, receive_buffer=65536)
            request = b"GET /big?n=%d HTTP/1.1\r\nHost: a\r\n\r\n" % RESPONSE
            writer.write(request * PIPELINED)
            (proto,) = server._connections
            # The server stops when its transport is over the high-water mark.
            await until(lambda: proto.write_paused)
            served = application.settings["served"]
            high = proto.transport.get_write_buffer_limits()[1]
            assert len(served) < PIPELINED // 2
            assert unwritten(proto) <= high + RESPONSE + 1024
            assert await served_ok(port)
            assert len(served) < PIPELINED // 2
            # Read at last: every response arrives, whole and in order.
            for _ in range(PIPELINED):
                status, _, body = await read_response(reader)
                assert status == 200 and len(body) == RESPONSE
            assert len(served) == PIPELINED
            writer.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_response_larger_than_the_socket_buffers(loop: str) -> None:
    async def main() -> None:
        async with serving(app()) as (server, port):
            reader, writer = await connect(port, receive_buffer=65536)
            writer.write(b"GET /streamed HTTP/1.1\r\nHost: a\r\n\r\n")
            (proto,) = server._connections
            await until(lambda: proto.write_paused)
            # The handler waits on its flush: one piece over the mark at most.
            high = proto.transport.get_write_buffer_limits()[1]
            assert unwritten(proto) <= high + 65536 + 1024
            assert await served_ok(port)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n")
            # Chunked: read to the terminating chunk.
            body = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n"))[:-2], 16)
                body += await reader.readexactly(size)
                await reader.readexactly(2)
                if not size:
                    break
            assert len(body) == 128 * 65536
            writer.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_a_refused_request_line_is_read_by_the_client(
    loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A request line of 30 KB and a body of 1 MB: the server answers 414
    # from the first read. Closed at once with the rest unread, the kernel
    # resets the connection and the client, still sending, never sees the
    # 414 (RFC 9112 section 9.6: close in stages). The server's lingering
    # outlasts every hang guard here: the client reads the 414 however slow
    # the machine, and the server's close can only follow the client's.
    monkeypatch.setattr(_h1output, "_LINGER_SECONDS", 10 * HANG_GUARD)

    async def main() -> None:
        async with serving(app()) as (server, port):
            reader, writer = await connect(port)
            writer.write(
                b"POST /" + b"a" * 30_000 + b" HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000"
                b"\r\n\r\n" + b"b" * 1_000_000
            )
            await writer.drain()  # all of it taken: nothing was reset
            status, headers, _ = await read_response(reader)
            assert status == 414
            assert await reader.read() == b""  # the server ended its side
            writer.close()
            await until(lambda: not server._connections)  # ... then ours

    run(main, loop)


@stream_request_body
class Refuses(RequestHandler):
    """Answers 401 from prepare(), before the body is read."""

    def prepare(self) -> None:
        raise HTTPError(401)

    def data_received(self, chunk: bytes) -> None:
        raise AssertionError("the body of a refused request reached the handler")


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    certs = os.path.join(os.path.dirname(squall.__file__), "_certs")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(os.path.join(certs, "test.crt"), os.path.join(certs, "test.key"))
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    return server, client


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
@pytest.mark.parametrize("loop", LOOPS)
def test_an_answer_before_the_body_is_read_by_a_client_still_sending(
    loop: str, tls: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The handler refuses in prepare(), the body unread; the client sends
    # all of its 4 MB before it reads (as http.client and requests do).
    # Closed at once, the unread body made the kernel reset the connection,
    # and the client saw a reset (or, over TLS, an EOF in the middle of
    # its upload), never the 401. The server lingers, drops the body and
    # closes once the body has ended: over TLS too, where our side cannot
    # end alone. (The lingering's bound outlasts every hang guard: the
    # close can only come from the body's end.)
    monkeypatch.setattr(_h1output, "_LINGER_SECONDS", 10 * HANG_GUARD)
    server_tls, client_tls = _tls_contexts() if tls else (None, None)
    body = 4 << 20

    async def main() -> None:
        app = Application([("/refused", Refuses), ("/", Hello)])
        async with serving(app, ssl_options=server_tls) as (server, port):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
            writer.write(b"POST /refused HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % body)
            writer.write(b"b" * body)
            await writer.drain()  # all of it taken: nothing was reset
            status, _, _ = await read_response(reader)
            assert status == 401
            # The body ended: the server closes, with nothing left unread.
            await until(lambda: not server._connections)
            assert await reader.read() == b""
            writer.close()
            # And the server goes on serving.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls)
            writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            assert await read_response(reader) == (200, ANY, b"ok")
            writer.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_lingering_after_a_refusal_is_bounded(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_h1output, "_LINGER_SECONDS", 0.2)

    async def main() -> None:
        async with serving(app()) as (server, port):
            reader, writer = await connect(port)
            writer.write(b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: a\r\n\r\n")
            status, _, _ = await read_response(reader)
            assert status == 414
            # A client that goes on sending is closed anyway.
            while server._connections:
                writer.write(b"a" * 4096)
                await writer.drain()
                await asyncio.sleep(0)  # one loop turn (drain may not yield)
            assert await served_ok(port)
            writer.close()

    run(main, loop)


def test_too_many_query_arguments_say_why() -> None:
    async def main() -> None:
        async with serving(app()) as (_, port):
            query = "&".join(f"a{i}=1" for i in range(1001))
            status, headers, body = await exchange(
                port, f"GET /?{query} HTTP/1.1\r\nHost: a\r\n\r\n".encode()
            )
            assert status == 400 and headers["content-type"].startswith("text/plain")
            assert b"Max number of fields exceeded (the limit is 1000)" in body
            assert await served_ok(port)

    run(main, "asyncio")


@pytest.mark.parametrize("loop", LOOPS)
def test_expect_continue_with_a_body_over_the_limit_gets_413_without_100(loop: str) -> None:
    # RFC 9110 section 10.1.1: the final status instead of 100 (Continue),
    # so the client need not send the body.
    async def main() -> None:
        async with serving(app(), max_body_size=1000) as (_, port):
            reader, writer = await connect(port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                b"Content-Length: 1000000\r\n\r\n"
            )
            status, _, _ = await read_response(reader)
            assert status == 413
            assert await reader.read() == b""
            writer.close()
            # Within the limit: 100, then the answer.
            reader, writer = await connect(port)
            writer.write(
                b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"
            )
            assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 (Continue)\r\n\r\n"
            writer.write(b"abc")
            assert (await read_response(reader))[2] == b"3"
            writer.close()

    run(main, loop)
