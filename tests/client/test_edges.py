"""Less common paths of SimpleAsyncHTTPClient: a request a pooled connection drops,
producers that fail, awaitable callbacks, local binding, address families."""

from __future__ import annotations

import asyncio
import gzip
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from squall._h1 import Request
from squall.log import app_log, gen_log
from squall.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient
from squall.simple_httpclient._connection import ssl_context_for, tls_key
from squall.testing import ExpectLog, gen_test
from tests._wait import HANG_GUARD
from tests.client._server import Reply
from tests.client.test_simple_httpclient import ClientTestCase, hello


class StaleConnectionTest(ClientTestCase):
    @gen_test
    async def test_request_dropped_on_pooled_connection_is_not_sent_again(self) -> None:
        connections = 0
        requests = 0
        done = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections, requests
            connections += 1
            await reader.readuntil(b"\r\n\r\n")
            requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            # Keep-alive promised, but the next request is read and dropped
            # unanswered: the server may have acted on it.
            await reader.readuntil(b"\r\n\r\n")
            requests += 1
            writer.close()
            await writer.wait_closed()
            done.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        self.assertEqual((await self.fetch(url)).body, b"ok")
        with self.assertRaises(HTTPStreamClosedError) as cm:
            await self.fetch(url)
        self.assertEqual(cm.exception.code, 599)
        await asyncio.wait_for(done.wait(), HANG_GUARD)
        self.assertEqual((connections, requests), (1, 2))
        server.close()
        await server.wait_closed()

    @gen_test
    async def test_producer_request_is_not_retried(self) -> None:
        count = 0
        done = asyncio.Event()

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal count
            count += 1
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
            writer.close()
            await writer.wait_closed()
            done.set()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
        await self.fetch(url)

        async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            await write(b"x")

        # The server closes once it has read the head: a FIN when the body
        # had not reached it yet (HTTPStreamClosedError), an RST when it had
        # and was left unread (the socket's own error, as Tornado gives it).
        with self.assertRaises((HTTPStreamClosedError, ConnectionResetError)):
            await self.fetch(url, method="POST", body_producer=producer)
        self.assertEqual(count, 1)
        await asyncio.wait_for(done.wait(), HANG_GUARD)
        server.close()


class CallbackTest(ClientTestCase):
    @gen_test
    async def test_failing_producer(self) -> None:
        server = await self.serve(hello)

        async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            await write(b"x")
            raise RuntimeError("no more")

        with self.assertRaisesRegex(RuntimeError, "no more"):
            await self.fetch(server.url(), method="POST", body_producer=producer)

    @gen_test
    async def test_producer_after_100_continue(self) -> None:
        server = await self.serve(lambda r, b: Reply(200, body=b))

        def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            write(b"abc")

        response = await self.fetch(
            server.url(),
            method="PUT",
            body_producer=producer,
            expect_100_continue=True,
            headers={"Content-Length": "3"},
        )
        self.assertEqual(response.body, b"abc")

    @gen_test
    async def test_interim_heads_reach_header_callback(self) -> None:
        # As on Tornado (and libcurl): each 1xx head's lines, then the final one's.
        raw = (
            b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 102 Processing\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        )
        server = await self.serve(lambda r, b: Reply(raw=raw))
        lines: list[str] = []

        async def on_line(line: str) -> None:
            await asyncio.sleep(0)
            lines.append(line)

        response = await self.fetch(server.url(), header_callback=on_line)
        self.assertEqual(response.body, b"ok")
        self.assertEqual(
            lines,
            [
                "HTTP/1.1 103 Early Hints\r\n",
                "Link: </s.css>; rel=preload\r\n",
                "\r\n",
                "HTTP/1.1 102 Processing\r\n",
                "\r\n",
                "HTTP/1.1 200 OK\r\n",
                "Content-Length: 2\r\n",
                "\r\n",
            ],
        )

    @gen_test
    async def test_100_continue_asked_for_is_not_a_head_for_header_callback(self) -> None:
        # Tornado's client takes it as the go-ahead for the body only.
        server = await self.serve(lambda r, b: Reply(200, body=b))
        lines: list[str] = []
        response = await self.fetch(
            server.url(),
            method="PUT",
            body=b"abc",
            expect_100_continue=True,
            header_callback=lines.append,
        )
        self.assertEqual(response.body, b"abc")
        self.assertEqual(lines[0], "HTTP/1.1 200 OK\r\n")
        self.assertNotIn("HTTP/1.1 100 Continue\r\n", lines)

    @gen_test
    async def test_awaitable_header_callback_and_gzip_streaming(self) -> None:
        payload = b"0123456789" * 20000
        server = await self.serve(
            lambda r, b: Reply(200, [("Content-Encoding", "gzip")], gzip.compress(payload))
        )
        lines: list[str] = []
        chunks: list[bytes] = []

        async def on_line(line: str) -> None:
            await asyncio.sleep(0)
            lines.append(line)

        async def on_chunk(chunk: bytes) -> None:
            await asyncio.sleep(0)
            chunks.append(chunk)

        await self.fetch(server.url(), header_callback=on_line, streaming_callback=on_chunk)
        self.assertEqual(b"".join(chunks), payload)
        self.assertGreater(len(chunks), 1)
        self.assertEqual(lines[0], "HTTP/1.1 200 OK\r\n")

    @gen_test
    async def test_cancelled_streaming_coroutine(self) -> None:
        server = await self.serve(hello)

        async def on_chunk(chunk: bytes) -> None:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            future.cancel()
            await future

        with ExpectLog(app_log, "Uncaught exception in streaming_callback"):
            with self.assertRaises(HTTPStreamClosedError):
                await self.fetch(server.url(), streaming_callback=on_chunk)

    @gen_test
    async def test_redirected_gzip_body_is_discarded(self) -> None:
        def handler(request: Request, body: bytes) -> Reply:
            if request.target == "/start":
                return Reply(
                    302, [("Location", "/end"), ("Content-Encoding", "gzip")], gzip.compress(b"x")
                )
            return Reply(200, body=b"end")

        server = await self.serve(handler)
        response = await self.fetch(server.url("/start"))
        self.assertEqual(response.body, b"end")


class AddressTest(ClientTestCase):
    @gen_test
    async def test_network_interface(self) -> None:
        server = await self.serve(hello)
        response = await self.fetch(server.url(), network_interface="127.0.0.1")
        self.assertEqual(response.code, 200)
        with self.assertRaisesRegex(ValueError, "Failed binding local connection end"):
            await self.fetch(server.url(), network_interface="not-an-address")

    @gen_test
    async def test_ipv4_only_cannot_reach_ipv6_literal(self) -> None:
        # No IPv4 address for "::1": resolution fails.
        with self.assertRaises(OSError):
            await self.fetch("http://[::1]:1/", allow_ipv6=False)

    @gen_test
    async def test_max_clients_queue_drains_in_order(self) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_clients=1)
        server = await self.serve(hello)
        try:
            responses = await asyncio.gather(*(client.fetch(server.url(f"/{i}")) for i in range(4)))
            self.assertEqual(
                [r.body for r in responses], [f"hello /{i}".encode() for i in range(4)]
            )
            self.assertEqual(server.accepted, 1)
        finally:
            client.close()

    @gen_test
    async def test_hostname_mapping(self) -> None:
        server = await self.serve(hello)
        client = SimpleAsyncHTTPClient(
            force_instance=True, hostname_mapping={"example.invalid": "127.0.0.1"}
        )
        try:
            response = await client.fetch(f"http://example.invalid:{server.port}/m")
            self.assertEqual(response.body, b"hello /m")
            self.assertEqual(
                dict(server.requests[0][0].headers)["Host"], f"example.invalid:{server.port}"
            )
        finally:
            client.close()


def test_tls_contexts_are_shared_and_keyed() -> None:
    a = ssl_context_for(True, None, None, None, None)
    assert ssl_context_for(True, None, None, None, None) is a
    b = ssl_context_for(False, None, None, None, None)
    assert b.verify_mode == ssl.CERT_NONE and not b.check_hostname
    ctx = ssl.create_default_context()
    assert ssl_context_for(True, None, None, None, ctx) is ctx
    assert tls_key(True, None, None, None, ctx) == ("context", id(ctx))
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_NONE}
    assert tls_key(True, None, None, None, options) == tls_key(
        False, "x", None, None, dict(options)
    )


class LoggingTest(ClientTestCase):
    @gen_test
    async def test_body_too_long_until_close(self) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=10)
        server = await self.serve(
            lambda r, b: Reply(raw=b"HTTP/1.0 200 OK\r\n\r\n" + b"a" * 100, close=True)
        )
        try:
            with ExpectLog(
                gen_log, "Malformed HTTP message from None: Body too long", level=logging.INFO
            ):
                with self.assertRaises(HTTPStreamClosedError):
                    await client.fetch(server.url())
        finally:
            client.close()
