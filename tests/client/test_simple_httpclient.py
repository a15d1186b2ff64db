"""SimpleAsyncHTTPClient against real local servers: keep-alive reuse and
non-reuse (counted on the server), redirects, timeouts, auth, streaming,
gzip, body producers, 100-continue, TLS."""

from __future__ import annotations

import asyncio
import errno
import gzip
import hashlib
import logging
import os
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Optional
from unittest import mock

import squall.compat
from squall._h1 import Request
from squall.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from squall.iostream import UnsatisfiableReadError
from squall.log import app_log, gen_log
from squall.netutil import Resolver
from squall.simple_httpclient import (
    HTTPStreamClosedError,
    HTTPTimeoutError,
    SimpleAsyncHTTPClient,
)
from squall.testing import AsyncTestCase, ExpectLog, bind_unused_port, gen_test
from tests._paths import CERTS
from tests._wait import HANG_GUARD, until
from tests.client._server import Handler, MiniServer, Reply


def hello(request: Request, body: bytes) -> Reply:
    return Reply(200, [("Content-Type", "text/plain")], b"hello " + request.target.encode())


def header(request: Request, name: str) -> Optional[str]:
    for key, value in request.headers:
        if key.lower() == name.lower():
            return value
    return None


class ClientTestCase(AsyncTestCase):
    client_kwargs: dict[str, Any] = {}

    def setUp(self) -> None:
        super().setUp()
        self.servers: list[MiniServer] = []
        self.client = SimpleAsyncHTTPClient(force_instance=True, **self.client_kwargs)

    def tearDown(self) -> None:
        self.client.close()
        for server in self.servers:
            self.io_loop.run_sync(server.stop)
        # Let closed connections' transports finish closing.
        self.io_loop.run_sync(lambda: asyncio.sleep(0))
        super().tearDown()

    async def serve(self, handler: Handler, ssl_ctx: Optional[ssl.SSLContext] = None) -> MiniServer:
        server = await MiniServer(handler, ssl=ssl_ctx).start()
        self.servers.append(server)
        return server

    def fetch(self, url: str, **kwargs: Any) -> Awaitable[HTTPResponse]:
        return self.client.fetch(url, **kwargs)


class ReuseTest(ClientTestCase):
    @gen_test
    async def test_sequential_requests_share_one_connection(self) -> None:
        server = await self.serve(hello)
        for i in range(3):
            response = await self.fetch(server.url(f"/{i}"))
            self.assertEqual(response.body, f"hello /{i}".encode())
        self.assertEqual(server.accepted, 1)
        self.assertEqual(len(self.client.pool), 1)

    @gen_test
    async def test_the_host_sent_is_written_into_the_request(self) -> None:
        # As on Tornado: OpenTelemetry's client metrics read it back from
        # response.request.headers["Host"].
        server = await self.serve(hello)
        response = await self.fetch(server.url("/"))
        host = server.url("/").split("/")[2]
        self.assertEqual(response.request.headers["Host"], host)
        request = HTTPRequest(server.url("/x"), headers={"Host": "chosen.example"})
        response = await self.client.fetch(request, raise_error=False)
        self.assertEqual(response.request.headers.get_list("Host"), ["chosen.example"])

    @gen_test
    async def test_the_fields_sent_are_written_into_the_request(self) -> None:
        # As on Tornado, whose client sets them on the request's headers
        # (the copy fetch makes, not the caller's dict): tests and tracers
        # read User-Agent, Accept-Encoding and the rest back from
        # response.request.headers. The same URL fetched again reuses a
        # cached plan, and must write them too.
        server = await self.serve(hello)
        host = server.url("/").split("/")[2]
        for _ in range(3):
            response = await self.fetch(server.url("/"))
            own = response.request.headers
            self.assertEqual(own["Host"], host)
            self.assertEqual(own["User-Agent"], header(server.requests[-1][0], "User-Agent"))
            self.assertEqual(own["Accept-Encoding"], "gzip")
        given = {"User-Agent": "given/1", "X-Mine": "1"}
        response = await self.fetch(
            server.url("/"),
            method="POST",
            body="abc",
            headers=given,
            user_agent="option/2",
            auth_username="u",
            auth_password="p",
        )
        own = response.request.headers
        self.assertEqual(own["Content-Length"], "3")
        self.assertEqual(own["Content-Type"], "application/x-www-form-urlencoded")
        self.assertEqual(own["Authorization"], "Basic dTpw")
        # The option wins over the caller's field, in what is sent and in
        # what the request says was sent.
        self.assertEqual(own.get_list("User-Agent"), ["option/2"])
        self.assertEqual(header(server.requests[-1][0], "User-Agent"), "option/2")
        self.assertEqual(own["X-Mine"], "1")
        self.assertEqual(given, {"User-Agent": "given/1", "X-Mine": "1"})

    @gen_test
    async def test_error_status_keeps_connection(self) -> None:
        server = await self.serve(lambda r, b: Reply(404, body=b"nope"))
        for _ in range(2):
            response = await self.fetch(server.url(), raise_error=False)
            self.assertEqual(response.code, 404)
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_connection_close_is_not_reused(self) -> None:
        server = await self.serve(lambda r, b: Reply(200, body=b"x", close=True))
        for _ in range(2):
            response = await self.fetch(server.url())
            self.assertEqual(response.body, b"x")
        self.assertEqual(server.accepted, 2)
        self.assertEqual(len(self.client.pool), 0)

    @gen_test
    async def test_http10_without_keep_alive_is_not_reused(self) -> None:
        raw = b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"
        server = await self.serve(lambda r, b: Reply(raw=raw))
        for _ in range(2):
            self.assertEqual((await self.fetch(server.url())).body, b"ok")
        self.assertEqual(server.accepted, 2)

    @gen_test
    async def test_http10_with_keep_alive_is_reused(self) -> None:
        raw = b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"
        server = await self.serve(lambda r, b: Reply(raw=raw))
        for _ in range(2):
            self.assertEqual((await self.fetch(server.url())).body, b"ok")
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_body_until_close_is_not_reused(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\n\r\nuntil close"
        server = await self.serve(lambda r, b: Reply(raw=raw, close=True))
        for _ in range(2):
            self.assertEqual((await self.fetch(server.url())).body, b"until close")
        self.assertEqual(server.accepted, 2)

    @gen_test
    async def test_streaming_callback_error_discards_connection(self) -> None:
        server = await self.serve(hello)
        await self.fetch(server.url())

        def boom(chunk: bytes) -> None:
            raise ValueError("boom")

        with ExpectLog(app_log, "Uncaught exception in streaming_callback"):
            with self.assertRaises(HTTPStreamClosedError):
                await self.fetch(server.url(), streaming_callback=boom)
        await self.fetch(server.url())
        self.assertEqual(server.accepted, 2)

    @gen_test
    async def test_timeout_discards_connection(self) -> None:
        release = asyncio.Event()

        async def slow(request: Request, body: bytes) -> Reply:
            if request.target == "/slow":
                await release.wait()
            return Reply(200, body=b"done")

        server = await self.serve(slow)
        await self.fetch(server.url("/fast"))
        with self.assertRaises(HTTPTimeoutError) as cm:
            await self.fetch(server.url("/slow"), request_timeout=0.05)
        self.assertEqual(str(cm.exception), "Timeout during request")
        self.assertEqual(cm.exception.code, 599)
        release.set()
        await self.fetch(server.url("/fast"))
        self.assertEqual(server.accepted, 2)

    @gen_test
    async def test_server_closing_idle_connection_is_noticed(self) -> None:
        server = await self.serve(hello)
        await self.fetch(server.url())
        for writer in server._writers:
            writer.close()
        await asyncio.wait_for(server.closed_event.wait(), HANG_GUARD)
        response = await self.fetch(server.url("/again"))
        self.assertEqual(response.body, b"hello /again")
        self.assertEqual(server.accepted, 2)

    @gen_test
    async def test_extra_bytes_after_response_prevent_reuse(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokJUNK"
        server = await self.serve(lambda r, b: Reply(raw=raw))
        self.assertEqual((await self.fetch(server.url())).body, b"ok")
        self.assertEqual(len(self.client.pool), 0)


class RunningAsTornadoTest(ClientTestCase):
    """A program run as Tornado (squall.compat) gets Tornado's client: no pool."""

    def setUp(self) -> None:
        squall.compat.install()
        self.addCleanup(squall.compat.uninstall)
        super().setUp()

    @gen_test
    async def test_each_request_has_its_own_connection(self) -> None:
        server = await self.serve(
            lambda r, b: Reply(200, body=(header(r, "Connection") or "-").encode())
        )
        for _ in range(2):
            response = await self.fetch(server.url())
            self.assertEqual(response.body, b"close")
        self.assertEqual(server.accepted, 2)
        self.assertEqual(len(self.client.pool), 0)

    @gen_test
    async def test_default_user_agent_is_tornados(self) -> None:
        # The name and version the program's tornado.version gives, as its
        # tests compare (Salt's webhook test expects f"Tornado/{version}");
        # one it names is sent as it is.
        server = await self.serve(
            lambda r, b: Reply(200, body=(header(r, "User-Agent") or "").encode())
        )
        import tornado

        response = await self.fetch(server.url())
        self.assertEqual(response.body, f"Tornado/{tornado.version}".encode())
        self.assertEqual(tornado.version, "6.6.1")
        response = await self.fetch(server.url(), user_agent="Mine")
        self.assertEqual(response.body, b"Mine")

    @gen_test
    async def test_pooling_asked_for_is_kept(self) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_idle_per_host=2)
        self.addCleanup(client.close)
        server = await self.serve(hello)
        for _ in range(2):
            await client.fetch(server.url())
        self.assertEqual(server.accepted, 1)


class PoolLimitsTest(ClientTestCase):
    client_kwargs = {"idle_timeout": 0.05, "max_idle_per_host": 1}

    @gen_test
    async def test_idle_bound_and_timeout(self) -> None:
        gate = asyncio.Event()
        arrived = 0

        async def wait_all(request: Request, body: bytes) -> Reply:
            nonlocal arrived
            arrived += 1
            if arrived == 3:
                gate.set()
            await gate.wait()
            return Reply(200, body=b"ok")

        server = await self.serve(wait_all)
        responses = await asyncio.gather(*(self.fetch(server.url()) for _ in range(3)))
        self.assertEqual([r.body for r in responses], [b"ok"] * 3)
        self.assertEqual(server.accepted, 3)
        # Two of the three are closed at once: only one may stay idle.
        self.assertEqual(len(self.client.pool), 1)
        # The last one is closed by the idle timer; the server sees the EOF.
        while server.closed < 3:
            server.closed_event.clear()
            await asyncio.wait_for(server.closed_event.wait(), HANG_GUARD)
        self.assertEqual(len(self.client.pool), 0)


class RedirectTest(ClientTestCase):
    async def redirect_server(self) -> MiniServer:
        def handler(request: Request, body: bytes) -> Reply:
            path, _, query = request.target.partition("?")
            if path.startswith("/redirect/"):
                code = int(path.rsplit("/", 1)[1])
                return Reply(code, [("Location", "/echo")])
            if path.startswith("/countdown/"):
                n = int(path.rsplit("/", 1)[1])
                if n:
                    return Reply(302, [("Location", f"/countdown/{n - 1}")])
                return Reply(200, body=b"zero")
            text = f"{request.method} {len(body)} {header(request, 'Content-Type')}"
            return Reply(200, body=text.encode())

        return await self.serve(handler)

    @gen_test
    async def test_303_and_post_on_302_become_get_without_body(self) -> None:
        server = await self.redirect_server()
        for code in (301, 302, 303):
            response = await self.fetch(server.url(f"/redirect/{code}"), method="POST", body="abc")
            self.assertEqual(response.body, b"GET 0 None")
            self.assertEqual(response.request.method, "POST")
            self.assertTrue(response.effective_url.endswith("/echo"))
            self.assertTrue(response.request.url.endswith(f"/redirect/{code}"))

    @gen_test
    async def test_location_with_a_space_and_utf8(self) -> None:
        # A sloppy server's Location: followed as libcurl follows it (a
        # ValueError before, the request-target holding a space).
        raw = "HTTP/1.1 302 Found\r\nLocation: /to/a b/caf\u00e9\r\nContent-Length: 0\r\n\r\n"

        def handler(request: Request, body: bytes) -> Reply:
            if request.target == "/from":
                return Reply(raw=raw.encode("utf-8"))
            return Reply(200, body=request.target.encode())

        server = await self.serve(handler)
        response = await self.fetch(server.url("/from"))
        self.assertEqual(response.body, b"/to/a%20b/caf%C3%A9")
        self.assertEqual(response.effective_url, server.url("/to/a%20b/caf%C3%A9"))

    @gen_test
    async def test_307_keeps_method_and_body(self) -> None:
        server = await self.redirect_server()
        response = await self.fetch(server.url("/redirect/307"), method="PUT", body="abc")
        self.assertEqual(response.body, b"PUT 3 None")

    @gen_test
    async def test_max_redirects_and_follow_off(self) -> None:
        server = await self.redirect_server()
        response = await self.fetch(server.url("/countdown/5"), max_redirects=2, raise_error=False)
        self.assertEqual(response.code, 302)
        self.assertTrue(response.effective_url.endswith("/countdown/3"))
        response = await self.fetch(
            server.url("/countdown/2"), follow_redirects=False, raise_error=False
        )
        self.assertEqual(response.headers["Location"], "/countdown/1")
        response = await self.fetch(server.url("/countdown/3"))
        self.assertEqual(response.body, b"zero")
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_callbacks_only_see_final_response(self) -> None:
        server = await self.redirect_server()
        lines: list[str] = []
        chunks: list[bytes] = []
        await self.fetch(
            server.url("/countdown/2"),
            header_callback=lines.append,
            streaming_callback=chunks.append,
        )
        self.assertEqual(chunks, [b"zero"])
        self.assertEqual(
            [line for line in lines if line.startswith("HTTP/")], ["HTTP/1.1 200 OK\r\n"]
        )
        self.assertEqual(lines[-1], "\r\n")

    @gen_test
    async def test_each_hop_is_a_call_of_the_public_fetch(self) -> None:
        # As on Tornado: what wraps AsyncHTTPClient.fetch (an instrumentation
        # counting a span per request) sees every hop, with its request.
        server = await self.redirect_server()
        calls: list[tuple[str, Optional[int], bool]] = []
        unwrapped = AsyncHTTPClient.fetch

        def wrapper(
            client: AsyncHTTPClient, request: Any, raise_error: bool = True, **kwargs: Any
        ) -> Any:
            url = request if isinstance(request, str) else request.url
            hops = kwargs["max_redirects"] if isinstance(request, str) else request.max_redirects
            calls.append((url.rsplit("/", 2)[-2] + "/" + url.rsplit("/", 1)[1], hops, raise_error))
            return unwrapped(client, request, raise_error, **kwargs)

        with mock.patch.object(AsyncHTTPClient, "fetch", wrapper):
            response = await self.client.fetch(server.url("/countdown/2"), max_redirects=3)
        self.assertEqual(response.body, b"zero")
        self.assertEqual(
            calls,
            [("countdown/2", 3, True), ("countdown/1", 2, False), ("countdown/0", 1, False)],
        )
        # The response answers for the request the caller made.
        self.assertTrue(response.request.url.endswith("/countdown/2"))
        self.assertTrue(response.effective_url.endswith("/countdown/0"))
        # max_redirects still counts hops across the calls.
        calls.clear()
        with mock.patch.object(AsyncHTTPClient, "fetch", wrapper):
            response = await self.client.fetch(
                server.url("/countdown/5"), max_redirects=1, raise_error=False
            )
        self.assertEqual((response.code, len(calls)), (302, 2))
        self.assertTrue(response.effective_url.endswith("/countdown/4"))

    @gen_test
    async def test_a_hop_that_fails_fails_the_fetch(self) -> None:
        # A hop's error without a status (refused connection) raises from
        # the caller's fetch even with raise_error=False, as a first-hop one does.
        sock, port = bind_unused_port()
        sock.close()  # nothing listens there now
        server = await self.serve(
            lambda r, b: Reply(302, [("Location", f"http://127.0.0.1:{port}/")])
        )
        with self.assertRaises(OSError):
            await self.fetch(server.url(), raise_error=False)

    @gen_test
    async def test_unsupported_scheme(self) -> None:
        server = await self.serve(lambda r, b: Reply(302, [("Location", "ftp://example.com/")]))
        with self.assertRaisesRegex(ValueError, "Unsupported url scheme"):
            await self.fetch(server.url())

    @gen_test
    async def test_cross_origin_redirect_drops_credentials(self) -> None:
        target = await self.serve(
            lambda r, b: Reply(200, body=repr(header(r, "Authorization")).encode())
        )
        origin = await self.serve(lambda r, b: Reply(302, [("Location", target.url("/"))]))
        response = await self.fetch(origin.url(), auth_username="u", auth_password="p")
        self.assertEqual(response.body, b"None")


class TimeoutTest(ClientTestCase):
    client_kwargs = {"max_clients": 1}

    @gen_test
    async def test_queue_timeout(self) -> None:
        release = asyncio.Event()

        async def slow(request: Request, body: bytes) -> Reply:
            await release.wait()
            return Reply(200, body=b"late")

        server = await self.serve(slow)
        first = self.fetch(server.url())
        with self.assertRaises(HTTPTimeoutError) as cm:
            await self.fetch(server.url(), connect_timeout=0.05)
        self.assertEqual(str(cm.exception), "Timeout in request queue")
        self.assertEqual(len(self.client.queue), 0)
        release.set()
        self.assertEqual((await first).body, b"late")

    @gen_test
    async def test_resolve_timeout(self) -> None:
        never: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        class Hanging(Resolver):
            async def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC) -> Any:
                return await never

        client = SimpleAsyncHTTPClient(force_instance=True, resolver=Hanging())
        try:
            with self.assertRaises(HTTPTimeoutError) as cm:
                await client.fetch("http://example.invalid/", connect_timeout=0.05)
            self.assertEqual(str(cm.exception), "Timeout while resolving example.invalid")
            # Giving up cancels the lookup.
            self.assertTrue(never.cancelled())
        finally:
            client.close()

    @gen_test
    async def test_connection_refused(self) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with self.assertRaises(ConnectionRefusedError) as cm:
            await self.fetch(f"http://127.0.0.1:{port}/")
        # The system's text alone, as Tornado's client gives it (applications
        # compare it: Salt's http.query returns it as its error).
        self.assertEqual(str(cm.exception), f"[Errno {errno.ECONNREFUSED}] Connection refused")

    @gen_test(timeout=HANG_GUARD)
    async def test_an_address_that_never_answers_gives_way_to_the_other_family(self) -> None:
        # A host with an IPv6 address routed into a black hole and a working
        # IPv4 one: the IPv4 attempt starts after a moment (RFC 8305), as
        # Tornado's TCPClient does, instead of the request waiting for the
        # first connect to time out.
        server = await self.serve(hello)
        loop = asyncio.get_running_loop()
        black_hole = ("100::1", 9, 0, 0)
        stuck: list[asyncio.Future[None]] = []
        real_sock_connect = loop.sock_connect

        def sock_connect(sock: socket.socket, address: Any) -> Any:
            if address == black_hole:
                stuck.append(loop.create_future())
                return stuck[-1]
            return real_sock_connect(sock, address)

        class DualStack(Resolver):
            async def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC) -> Any:
                return [(socket.AF_INET6, black_hole), (socket.AF_INET, ("127.0.0.1", port))]

        client = SimpleAsyncHTTPClient(force_instance=True, resolver=DualStack())
        try:
            with mock.patch.object(loop, "sock_connect", sock_connect):
                response = await client.fetch(
                    f"http://dual.test:{server.port}/", connect_timeout=HANG_GUARD
                )
        finally:
            client.close()
        self.assertEqual(response.body, b"hello /")
        # The attempt that lost is called off.
        self.assertEqual(len(stuck), 1)
        self.assertTrue(stuck[0].cancelled())

    @gen_test(timeout=3 * HANG_GUARD)  # (on the clock the test moves on)
    async def test_connect_timeout_calls_off_every_attempt_of_the_race(self) -> None:
        loop = asyncio.get_running_loop()
        stuck: list[asyncio.Future[None]] = []

        def sock_connect(sock: socket.socket, address: Any) -> Any:
            stuck.append(loop.create_future())
            return stuck[-1]

        class DualStack(Resolver):
            async def resolve(self, host: str, port: int, family: Any = socket.AF_UNSPEC) -> Any:
                return [
                    (socket.AF_INET6, ("100::1", port, 0, 0)),
                    (socket.AF_INET, ("192.0.2.1", port)),
                ]

        client = SimpleAsyncHTTPClient(force_instance=True, resolver=DualStack())
        clock = ShiftedClock()
        try:
            with (
                mock.patch.object(loop, "sock_connect", sock_connect),
                mock.patch("time.monotonic", clock),
            ):
                fetch = asyncio.ensure_future(
                    client.fetch("http://dual.test/", connect_timeout=HANG_GUARD)
                )
                await until(lambda: len(stuck) == 1)
                clock.offset += 1.0  # past the moment the second family starts (0.3 s)
                await until(lambda: len(stuck) == 2)
                clock.offset += HANG_GUARD
                with self.assertRaises(HTTPTimeoutError) as cm:
                    await fetch
        finally:
            client.close()
        # The addresses still being tried, as Tornado's TCPClient names them.
        self.assertEqual(str(cm.exception), "Timeout while connecting to 192.0.2.1:80, [100::1]:80")
        self.assertEqual(len(stuck), 2)
        self.assertTrue(all(future.cancelled() for future in stuck))

    @gen_test
    async def test_zero_timeouts_mean_none(self) -> None:
        server = await self.serve(hello)
        response = await self.fetch(server.url(), connect_timeout=0, request_timeout=0)
        self.assertEqual(response.code, 200)


class ShiftedClock:
    """``time.monotonic`` moved on by the test: the loop's clock and the
    client's deadlines read it alike, so a timeout far longer than any stall
    of a busy machine is stepped past instead of waited for."""

    def __init__(self) -> None:
        self.offset = 0.0
        self.real = time.monotonic

    def __call__(self) -> float:
        return self.real() + self.offset


class AuthTest(ClientTestCase):
    @gen_test
    async def test_basic_auth_from_options_and_url(self) -> None:
        server = await self.serve(
            lambda r, b: Reply(200, body=(header(r, "Authorization") or "").encode())
        )
        response = await self.fetch(
            server.url(), auth_username="Aladdin", auth_password="open sesame"
        )
        self.assertEqual(response.body, b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        response = await self.fetch(
            server.url().replace("http://", "http://Aladdin:open%20sesame@")
        )
        self.assertEqual(response.body, b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")

    @gen_test
    async def test_unsupported_auth_mode(self) -> None:
        server = await self.serve(hello)
        with self.assertRaises(ValueError) as cm:
            await self.fetch(server.url(), auth_username="a", auth_password="b", auth_mode="nope")
        # Tornado's wording exactly (the mode is not quoted).
        self.assertEqual(str(cm.exception), "unsupported auth_mode nope")

    @gen_test
    async def test_digest_auth(self) -> None:
        realm, nonce = "test@squall", "abc123"

        def h(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        def handler(request: Request, body: bytes) -> Reply:
            value = header(request, "Authorization")
            if value is None or not value.startswith("Digest "):
                challenge = f'Digest realm="{realm}", nonce="{nonce}", qop="auth", opaque="xyz"'
                return Reply(401, [("WWW-Authenticate", challenge)], b"denied")
            params = dict(part.strip().split("=", 1) for part in value[len("Digest ") :].split(","))
            params = {k: v.strip('"') for k, v in params.items()}
            ha1 = h(f"user:{realm}:pass")
            ha2 = h(f"{request.method}:{params['uri']}")
            expected = h(f"{ha1}:{nonce}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
            ok = params["response"] == expected and params["opaque"] == "xyz"
            return Reply(200 if ok else 403, body=b"welcome" if ok else b"bad")

        server = await self.serve(handler)
        response = await self.fetch(
            server.url("/p?q=1"), auth_username="user", auth_password="pass", auth_mode="digest"
        )
        self.assertEqual(response.body, b"welcome")
        self.assertEqual(server.accepted, 1)
        response = await self.fetch(
            server.url("/p"),
            auth_username="user",
            auth_password="wrong",
            auth_mode="digest",
            raise_error=False,
        )
        self.assertEqual(response.code, 403)


class BodyTest(ClientTestCase):
    @gen_test
    async def test_unknown_method_is_refused_before_sending(self) -> None:
        # As Tornado's clients do (New Relic's tests expect the KeyError):
        # a typo or a lowercase method never reaches the server.
        seen: list[str] = []
        server = await self.serve(lambda r, b: (seen.append(r.method), Reply(405))[1])
        for method in ("COOKIES", "get", "PROPFIND"):
            with self.assertRaisesRegex(KeyError, f"unknown method {method}"):
                await self.fetch(server.url(), method=method, raise_error=False)
        self.assertEqual(seen, [])
        response = await self.fetch(
            server.url(), method="PROPFIND", allow_nonstandard_methods=True, raise_error=False
        )
        self.assertEqual((response.code, seen), (405, ["PROPFIND"]))
        for method in ("DELETE", "OPTIONS"):
            response = await self.fetch(server.url(), method=method, raise_error=False)
            self.assertEqual(response.code, 405)

    @gen_test
    async def test_streaming_and_header_callbacks(self) -> None:
        raw = (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
            b"4\r\nasdf\r\n4\r\nqwer\r\n0\r\n\r\n"
        )
        server = await self.serve(lambda r, b: Reply(raw=raw))
        lines: list[str] = []
        chunks: list[bytes] = []

        async def on_chunk(chunk: bytes) -> None:
            await asyncio.sleep(0)
            chunks.append(chunk)

        response = await self.fetch(
            server.url(), header_callback=lines.append, streaming_callback=on_chunk
        )
        self.assertEqual(b"".join(chunks), b"asdfqwer")
        self.assertEqual(response.body, b"")
        self.assertEqual(
            lines,
            ["HTTP/1.1 200 OK\r\n", "Transfer-Encoding: chunked\r\n", "X-A: 1\r\n", "\r\n"],
        )

    @gen_test
    async def test_header_callback_gets_the_response_headers_lines(self) -> None:
        # As Tornado gives them: names normalized, a repeated field's lines
        # together, and Content-Encoding renamed X-Consumed-Content-Encoding
        # when the client decodes the body (a caller that rebuilt the
        # headers from these lines would otherwise decode it twice).
        payload = gzip.compress(b"zipped", mtime=0)
        raw = (
            b"HTTP/1.1 200 OK\r\nx-dup: a\r\ncontent-encoding: gzip\r\nX-DUP: b\r\n"
            b"Content-Length: %d\r\n\r\n" % len(payload)
        ) + payload
        server = await self.serve(lambda r, b: Reply(raw=raw, close=True))
        lines: list[str] = []
        chunks: list[bytes] = []
        response = await self.fetch(
            server.url(), header_callback=lines.append, streaming_callback=chunks.append
        )
        self.assertEqual(
            lines,
            [
                "HTTP/1.1 200 OK\r\n",
                "X-Dup: a\r\n",
                "X-Dup: b\r\n",
                f"Content-Length: {len(payload)}\r\n",
                "X-Consumed-Content-Encoding: gzip\r\n",
                "\r\n",
            ],
        )
        self.assertEqual(b"".join(chunks), b"zipped")
        # A streamed response's buffer is an empty BytesIO, as on Tornado.
        self.assertIsNotNone(response.buffer)
        self.assertEqual(response.buffer.read(), b"")
        self.assertEqual(response.body, b"")

    @gen_test
    async def test_header_callback_error(self) -> None:
        server = await self.serve(hello)

        def boom(line: str) -> None:
            raise ValueError("boom")

        with ExpectLog(app_log, "Uncaught exception in header_callback"):
            with self.assertRaises(HTTPStreamClosedError):
                await self.fetch(server.url(), header_callback=boom)

    @gen_test
    async def test_gzip(self) -> None:
        payload = b"squall " * 1000

        def handler(request: Request, body: bytes) -> Reply:
            if header(request, "Accept-Encoding") == "gzip":
                return Reply(200, [("Content-Encoding", "gzip")], gzip.compress(payload))
            return Reply(200, body=payload)

        server = await self.serve(handler)
        response = await self.fetch(server.url())
        self.assertEqual(response.body, payload)
        self.assertEqual(response.headers["X-Consumed-Content-Encoding"], "gzip")
        self.assertNotIn("Content-Encoding", response.headers)
        raw = await self.fetch(
            server.url(), decompress_response=False, headers={"Accept-Encoding": "gzip"}
        )
        self.assertEqual(gzip.decompress(raw.body), payload)
        plain = await self.fetch(server.url(), use_gzip=False)
        self.assertEqual(plain.body, payload)

    @gen_test
    async def test_invalid_gzip(self) -> None:
        server = await self.serve(
            lambda r, b: Reply(200, [("Content-Encoding", "gzip")], b"not gzip")
        )
        with ExpectLog(
            gen_log, "Malformed HTTP message from None: invalid gzip data", level=logging.INFO
        ):
            with self.assertRaises(HTTPStreamClosedError):
                await self.fetch(server.url())

    @gen_test
    async def test_decompressed_body_limit(self) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=1000)
        bomb = gzip.compress(b"\0" * 100000)
        server = await self.serve(lambda r, b: Reply(200, [("Content-Encoding", "gzip")], bomb))
        try:
            with ExpectLog(gen_log, ".*decompressed body too large", level=logging.INFO):
                with self.assertRaises(HTTPClientError) as cm:
                    await client.fetch(server.url())
            self.assertEqual(cm.exception.code, 599)
        finally:
            client.close()

    @gen_test
    async def test_body_producer_chunked_and_with_length(self) -> None:
        server = await self.serve(
            lambda r, b: Reply(200, body=f"{header(r, 'Transfer-Encoding')}|".encode() + b)
        )

        async def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            await write(b"1234")
            await write(b"5678")

        response = await self.fetch(server.url(), method="POST", body_producer=producer)
        self.assertEqual(response.body, b"chunked|12345678")
        response = await self.fetch(
            server.url(), method="PUT", body_producer=producer, headers={"Content-Length": "8"}
        )
        self.assertEqual(response.body, b"None|12345678")
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_body_is_sent_when_body_producer_is_given_too(self) -> None:
        # Tornado sends the body and never calls the producer.
        server = await self.serve(lambda r, b: Reply(200, body=b))
        called: list[bool] = []

        def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            called.append(True)

        response = await self.fetch(
            server.url(), method="POST", body=b"body", body_producer=producer
        )
        self.assertEqual(response.body, b"body")
        self.assertEqual(called, [])

    @gen_test
    async def test_expect_100_continue(self) -> None:
        server = await self.serve(lambda r, b: Reply(200, body=b))
        response = await self.fetch(
            server.url(), method="POST", body=b"abcd", expect_100_continue=True
        )
        self.assertEqual(response.body, b"abcd")
        self.assertEqual(header(server.requests[0][0], "Expect"), "100-continue")

    @gen_test
    async def test_100_continue_refused_does_not_send_body(self) -> None:
        raw = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n"
        called = []
        done = asyncio.Event()

        async def serve_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(raw)
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            done.set()

        srv = await asyncio.start_server(serve_raw, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]

        def producer(write: Callable[[bytes], Awaitable[None]]) -> None:
            called.append(True)

        response = await self.fetch(
            f"http://127.0.0.1:{port}/",
            method="POST",
            body_producer=producer,
            expect_100_continue=True,
            raise_error=False,
        )
        self.assertEqual(response.code, 403)
        self.assertEqual(called, [])
        self.assertEqual(len(self.client.pool), 0)
        await asyncio.wait_for(done.wait(), HANG_GUARD)
        srv.close()

    @gen_test
    async def test_sloppy_servers_answers_are_read_as_tornado_reads_them(self) -> None:
        # Heads ended by bare LFs (RFC 9112 section 2.2), a HEAD answer
        # whose framing fields make no sense (no body follows anyway), and
        # repeated equal Content-Lengths, given as one.
        answers = {
            "/lf": b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok",
            "/head": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "/twice": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        }

        async def serve_raw(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            writer.write(answers[head.split(b" ")[1].decode()])
            await writer.drain()
            writer.close()

        srv = await asyncio.start_server(serve_raw, "127.0.0.1", 0)
        base = f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}"
        response = await self.fetch(base + "/lf")
        self.assertEqual((response.body, response.headers["X-A"]), (b"ok", "b"))
        response = await self.fetch(base + "/head", method="HEAD")
        self.assertEqual((response.code, response.body), (200, b""))
        response = await self.fetch(base + "/twice")
        self.assertEqual((response.body, response.headers["Content-Length"]), (b"ok", "2"))
        srv.close()

    @gen_test
    async def test_body_sanity_checks(self) -> None:
        server = await self.serve(hello)
        with self.assertRaisesRegex(ValueError, "must not be None"):
            await self.fetch(server.url(), method="POST")
        with self.assertRaisesRegex(ValueError, "must be None"):
            await self.fetch(server.url(), method="GET", body=b"x")
        response = await self.fetch(
            server.url(), method="DELETE", body=b"x", allow_nonstandard_methods=True
        )
        self.assertEqual(response.code, 200)

    @gen_test
    async def test_header_injection_rejected(self) -> None:
        server = await self.serve(hello)
        for headers in ({"X": "a\r\nB: c"}, {"X\nY": "a"}):
            with self.assertRaises(ValueError):
                await self.fetch(server.url(), headers=headers)

    @gen_test
    async def test_bytes_header_values_and_user_agent(self) -> None:
        server = await self.serve(
            lambda r, b: Reply(200, body=(header(r, "User-Agent") or "").encode())
        )
        response = await self.fetch(server.url(), headers={"User-Agent": b"Mine"})
        self.assertEqual(response.body, b"Mine")
        response = await self.fetch(server.url(), user_agent="Other")
        self.assertEqual(response.body, b"Other")
        response = await self.fetch(server.url())
        self.assertEqual(response.body, b"Squall/" + __import__("squall").version.encode())

    @gen_test
    async def test_malformed_response(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"
        server = await self.serve(lambda r, b: Reply(raw=raw, close=True))
        with ExpectLog(
            gen_log, "Malformed HTTP message from None: Multiple unequal", level=logging.INFO
        ):
            with self.assertRaises(HTTPStreamClosedError):
                await self.fetch(server.url())

    @gen_test
    async def test_header_too_large(self) -> None:
        client = SimpleAsyncHTTPClient(force_instance=True, max_header_size=200)
        server = await self.serve(lambda r, b: Reply(200, [("X-Filler", "a" * 500)], b"ok"))
        try:
            with ExpectLog(gen_log, "Unsatisfiable read", level=logging.INFO):
                with self.assertRaises(UnsatisfiableReadError):
                    await client.fetch(server.url())
        finally:
            client.close()

    @gen_test
    async def test_many_fields_within_max_header_size(self) -> None:
        # Tornado bounds a response head by its size only; a count of 256
        # fields (the server's limit for requests) refused this one.
        cookies = [("Set-Cookie", f"c{i}=v") for i in range(600)]
        server = await self.serve(lambda r, b: Reply(200, cookies, b"ok"))
        response = await self.fetch(server.url())
        self.assertEqual(len(response.headers.get_list("Set-Cookie")), 600)
        # The size still bounds them.
        client = SimpleAsyncHTTPClient(force_instance=True, max_header_size=2000)
        try:
            with ExpectLog(gen_log, "Unsatisfiable read", level=logging.INFO):
                with self.assertRaises(UnsatisfiableReadError):
                    await client.fetch(server.url())
        finally:
            client.close()

    @gen_test
    async def test_truncated_body(self) -> None:
        raw = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"
        server = await self.serve(lambda r, b: Reply(raw=raw, close=True))
        with self.assertRaises(HTTPStreamClosedError) as cm:
            await self.fetch(server.url())
        self.assertEqual(str(cm.exception), "Connection closed")

    @gen_test
    async def test_closed_before_the_head_is_stream_closed(self) -> None:
        # Tornado's wording, which retry code matches on: "Stream closed"
        # when the server closed before a whole response head, "Connection
        # closed" (above) once the head had come.
        for raw in (b"", b"HTTP/1.1 200 OK\r\nX-A: 1\r\n"):
            server = await self.serve(lambda r, b, raw=raw: Reply(raw=raw, close=True))
            with self.assertRaises(HTTPStreamClosedError) as cm:
                await self.fetch(server.url())
            self.assertEqual(str(cm.exception), "Stream closed")
            self.assertEqual(cm.exception.code, 599)

    @gen_test
    async def test_non_ascii_url_is_sent_percent_encoded(self) -> None:
        # Tornado sends such a URL (it takes one) as raw UTF-8; the request
        # line allows ASCII only, so it goes percent-encoded, which the
        # server decodes back to the same text. The response still names
        # the URL as given.
        server = await self.serve(hello)
        url = server.url("/caf\u00e9?q=\u00fc")
        response = await self.fetch(url)
        self.assertEqual(response.body, b"hello /caf%C3%A9?q=%C3%BC")
        self.assertEqual(response.effective_url, url)


class TLSTest(ClientTestCase):
    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(os.path.join(CERTS, "test.crt"), os.path.join(CERTS, "test.key"))
        return ctx

    @gen_test
    async def test_https_with_reuse(self) -> None:
        server = await self.serve(hello, self.server_context())
        for _ in range(3):
            response = await self.fetch(server.url("/s", "https"), validate_cert=False)
            self.assertEqual(response.body, b"hello /s")
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_https_ca_certs_and_ssl_options(self) -> None:
        server = await self.serve(hello, self.server_context())
        url = server.url("/", "https").replace("127.0.0.1", "localhost")
        response = await self.fetch(url, ca_certs=os.path.join(CERTS, "test.crt"))
        self.assertEqual(response.code, 200)
        response = await self.fetch(url, ssl_options={"cert_reqs": ssl.CERT_NONE})
        self.assertEqual(response.code, 200)

    @gen_test
    async def test_https_validation_failure(self) -> None:
        server = await self.serve(hello, self.server_context())
        with ExpectLog(gen_log, "SSL Error", required=False):
            with self.assertRaises(ssl.SSLError):
                await self.fetch(server.url("/", "https"))

    @gen_test(timeout=3 * HANG_GUARD)  # (on the clock the test moves on)
    async def test_tls_handshake_timeout_names_the_address_connected_to(self) -> None:
        # As Tornado's client says it (through TCPClient): the address the
        # socket is connected to, not the URL's host name.
        done = asyncio.Event()
        hello = asyncio.Event()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(1)  # the client's TLS hello: never answered
            hello.set()
            await reader.read()
            writer.close()
            await writer.wait_closed()
            done.set()

        srv = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        client = SimpleAsyncHTTPClient(
            force_instance=True, hostname_mapping={"tls.test": "127.0.0.1"}
        )
        clock = ShiftedClock()
        try:
            with mock.patch("time.monotonic", clock):
                fetch = asyncio.ensure_future(
                    client.fetch(
                        f"https://tls.test:{port}/", connect_timeout=HANG_GUARD, validate_cert=False
                    )
                )
                await asyncio.wait_for(hello.wait(), HANG_GUARD)  # in the handshake
                clock.offset += HANG_GUARD + 1
                with self.assertRaises(HTTPTimeoutError) as cm:
                    await fetch
        finally:
            client.close()
        self.assertEqual(str(cm.exception), f"Timeout during TLS handshake with 127.0.0.1:{port}")
        await asyncio.wait_for(done.wait(), HANG_GUARD)
        srv.close()
