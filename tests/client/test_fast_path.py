"""The per-request shortcuts of the client: cached hop plans, the shared
deadline timer, lazily built responses, queue time, idle connections that
see an EOF."""

from __future__ import annotations

import asyncio
import logging
import time
from io import BytesIO
from typing import Any
from unittest import mock

from squall._h1 import H1Limits, Request
from squall.httpclient import HTTPClientError, HTTPRequest, HTTPResponse, _RequestProxy
from squall.httputil import HTTPHeaders
from squall.log import gen_log
from squall.simple_httpclient import HTTPTimeoutError, _client
from squall.simple_httpclient._connection import ClientConnection
from squall.simple_httpclient._exchange import field_value
from squall.testing import gen_test
from tests._wait import HANG_GUARD
from tests.client._server import Reply
from tests.client.test_simple_httpclient import ClientTestCase, header, hello


def echo_agent(request: Request, body: bytes) -> Reply:
    value = f"{header(request, 'User-Agent')}|{header(request, 'Accept-Encoding')}"
    return Reply(200, [("Content-Type", "text/plain")], value.encode())


class PlanCacheTest(ClientTestCase):
    @gen_test
    async def test_repeated_fetch_reuses_one_plan(self) -> None:
        server = await self.serve(hello)
        for _ in range(3):
            self.assertEqual((await self.fetch(server.url("/a"))).body, b"hello /a")
        self.assertEqual(len(self.client.plans.plans), 1)
        await self.fetch(server.url("/b"))
        self.assertEqual(len(self.client.plans.plans), 2)
        self.assertEqual(server.accepted, 1)

    @gen_test
    async def test_options_give_their_own_plans(self) -> None:
        server = await self.serve(echo_agent)
        url = server.url()
        plain = await self.fetch(url)
        self.assertTrue(plain.body.startswith(b"Squall/"))
        self.assertTrue(plain.body.endswith(b"|gzip"))
        agent = await self.fetch(url, user_agent="Agent/1")
        self.assertEqual(agent.body, b"Agent/1|gzip")
        raw = await self.fetch(url, decompress_response=False)
        self.assertTrue(raw.body.endswith(b"|None"))
        # The first plan is still right after the others were made.
        self.assertEqual((await self.fetch(url)).body, plain.body)
        self.assertEqual(len(self.client.plans.plans), 3)

    @gen_test
    async def test_requests_with_headers_or_body_are_not_cached(self) -> None:
        server = await self.serve(lambda r, b: Reply(200, body=b"%d" % len(b)))
        response = await self.fetch(server.url(), headers={"X-One": "1"})
        self.assertEqual(response.body, b"0")
        response = await self.fetch(server.url(), method="POST", body=b"abc")
        self.assertEqual(response.body, b"3")
        self.assertEqual(self.client.plans.plans, {})
        request, _ = server.requests[0]
        self.assertEqual(header(request, "X-One"), "1")

    @gen_test
    async def test_unhashable_option_is_planned_each_time(self) -> None:
        server = await self.serve(hello)
        for _ in range(2):
            response = await self.fetch(server.url(), ssl_options={"cert_reqs": 0})
            self.assertEqual(response.body, b"hello /")
        self.assertEqual(self.client.plans.plans, {})

    @gen_test
    async def test_defaults_changed_in_place_drop_the_plans(self) -> None:
        server = await self.serve(echo_agent)
        before = await self.fetch(server.url())
        self.assertTrue(before.body.startswith(b"Squall/"))
        self.client.defaults["user_agent"] = "Changed/2"
        after = await self.fetch(server.url())
        self.assertEqual(after.body, b"Changed/2|gzip")

    def test_allow_ipv6_false_and_zero_have_their_own_plans(self) -> None:
        keys = set()
        for value in (False, 0, None):
            request = HTTPRequest("http://example.com/", allow_ipv6=value)  # type: ignore[arg-type]
            proxy: Any = _RequestProxy(request, self.client.defaults)
            keys.add(self.client.plans.key(proxy))
        self.assertEqual(len(keys), 3)

    @gen_test
    async def test_cache_is_bounded(self) -> None:
        server = await self.serve(hello)
        with mock.patch.object(_client, "_PLAN_CACHE_SIZE", 2):
            for name in "abc":
                await self.fetch(server.url("/" + name))
        self.assertEqual(len(self.client.plans.plans), 1)

    def test_plan_key_needs_a_proxy_with_the_clients_defaults(self) -> None:
        request = HTTPRequest("http://example.com/")
        proxy: Any = _RequestProxy(request, self.client.defaults)
        self.assertIsNotNone(self.client.plans.key(proxy))
        self.assertIsNone(self.client.plans.key(request))
        other: Any = _RequestProxy(request, dict(self.client.defaults))
        self.assertIsNone(self.client.plans.key(other))
        request.body = b"x"
        self.assertIsNone(self.client.plans.key(proxy))

    @gen_test
    async def test_redirect_target_is_planned_and_effective_url_set(self) -> None:
        def handler(request: Request, body: bytes) -> Reply:
            if request.target == "/start":
                return Reply(302, [("Location", "/end")])
            return Reply(200, body=b"end")

        server = await self.serve(handler)
        for _ in range(2):
            response = await self.fetch(server.url("/start"))
            self.assertEqual(response.body, b"end")
            self.assertEqual(response.effective_url, server.url("/end"))
            self.assertEqual(response.request.url, server.url("/start"))


class DeadlineTest(ClientTestCase):
    @gen_test
    async def test_a_shorter_deadline_set_later_fires_first(self) -> None:
        release = asyncio.Event()

        async def handler(request: Request, body: bytes) -> Reply:
            if request.target == "/hang":
                await release.wait()
            return Reply(200, body=b"done")

        server = await self.serve(handler)
        slow = asyncio.ensure_future(
            self.fetch(
                server.url("/hang"),
                connect_timeout=10 * HANG_GUARD,
                request_timeout=10 * HANG_GUARD,
            )
        )
        await asyncio.sleep(0)
        # Were the client's one timer left armed for the slow deadlines (its
        # connect's and its request's), this fetch would outlive gen_test's
        # own limit: no clock to read here.
        with self.assertRaises(HTTPTimeoutError) as caught:
            await self.fetch(server.url("/hang"), request_timeout=0.05)
        self.assertEqual(str(caught.exception), "Timeout during request")
        self.assertFalse(slow.done())
        release.set()
        self.assertEqual((await asyncio.wait_for(slow, HANG_GUARD)).body, b"done")
        # The timer for the slow deadline is still armed; a finished fetch
        # is no longer watched.
        self.assertEqual(self.client.active, {})

    @gen_test
    async def test_fetch_without_deadline_is_skipped_by_the_timer(self) -> None:
        release = asyncio.Event()

        async def handler(request: Request, body: bytes) -> Reply:
            await release.wait()
            return Reply(200, body=b"late")

        server = await self.serve(handler)
        unbounded = asyncio.ensure_future(self.fetch(server.url(), request_timeout=0))
        await asyncio.sleep(0)
        with self.assertRaises(HTTPTimeoutError):
            await self.fetch(server.url(), request_timeout=0.05)
        self.assertFalse(unbounded.done())
        release.set()
        self.assertEqual((await asyncio.wait_for(unbounded, HANG_GUARD)).body, b"late")

    @gen_test
    async def test_timer_with_no_live_deadline_is_not_rearmed(self) -> None:
        server = await self.serve(hello)
        # A generous deadline: it must be armed, not fire (a loaded machine
        # can take more than a few milliseconds to resolve and connect).
        await self.fetch(server.url(), request_timeout=30)
        self.assertIsNotNone(self.client.deadlines.handle)
        self.client.deadlines.fire()
        self.assertIsNone(self.client.deadlines.handle)


class QueueTimeTest(ClientTestCase):
    client_kwargs = {"max_clients": 1}

    @gen_test
    async def test_queued_request_reports_queue_time(self) -> None:
        release = asyncio.Event()

        async def handler(request: Request, body: bytes) -> Reply:
            if request.target == "/first":
                await release.wait()
            return Reply(200, body=b"ok")

        server = await self.serve(handler)
        began = time.monotonic()  # the client's clock for queue time
        first = asyncio.ensure_future(self.fetch(server.url("/first")))
        second = asyncio.ensure_future(self.fetch(server.url("/second")))
        await asyncio.sleep(0)
        self.assertEqual(len(self.client.queue), 1)
        level = gen_log.level
        gen_log.setLevel(logging.DEBUG)
        try:
            with self.assertLogs(gen_log, logging.DEBUG) as logs:
                third = asyncio.ensure_future(self.fetch(server.url("/third")))
                await asyncio.sleep(0)
        finally:
            gen_log.setLevel(level)
        self.assertIn("max_clients limit reached", logs.output[0])
        release.set()
        self.assertEqual((await asyncio.wait_for(third, HANG_GUARD)).body, b"ok")
        one, two = await asyncio.wait_for(asyncio.gather(first, second), HANG_GUARD)
        ended = time.monotonic()
        self.assertEqual(one.time_info, {})
        self.assertEqual(set(two.time_info), {"queue"})
        # A duration within the test's own, not a time of day.
        self.assertTrue(0 <= two.time_info["queue"] <= ended - began)
        assert two.request_time is not None
        self.assertGreaterEqual(two.request_time, 0)


class LazyResponseTest(ClientTestCase):
    @gen_test
    async def test_fetched_response_builds_headers_and_buffer_on_use(self) -> None:
        server = await self.serve(lambda r, b: Reply(200, [("X-A", "1"), ("x-a", "2")], b"body"))
        response = await self.fetch(server.url())
        self.assertIsNone(response._headers)
        self.assertEqual(response.body, b"body")
        self.assertEqual(response.headers["X-A"], "1,2")
        self.assertEqual(response.headers.get_list("x-a"), ["1", "2"])
        assert response.buffer is not None
        self.assertEqual(response.buffer.read(), b"body")
        self.assertIs(response.headers, response.headers)

    def test_received_response(self) -> None:
        request = HTTPRequest("http://example.com/")
        response = HTTPResponse._received(
            request, 404, "", [("Content-Type", "text/plain")], None, b"gone", None,
            "http://example.com/x", 0.5, 1.0, None,
        )  # fmt: skip
        self.assertEqual(response.reason, "Not Found")
        self.assertIsInstance(response.error, HTTPClientError)
        self.assertTrue(response._error_is_response_code)
        self.assertEqual(response.headers["content-type"], "text/plain")
        self.assertEqual(response.effective_url, "http://example.com/x")
        self.assertEqual(response.time_info, {})
        text = repr(response)
        self.assertIn("headers=", text)
        self.assertIn("buffer=<_io.BytesIO", text)
        self.assertNotIn("_header_pairs", text)
        # Setters replace what was received.
        response.buffer = BytesIO(b"other")
        self.assertEqual(response.body, b"other")
        response.buffer = None
        self.assertEqual(response.body, b"")
        response.headers = HTTPHeaders({"A": "b"})
        self.assertEqual(dict(response.headers), {"A": "b"})

    def test_constructed_response_without_body_or_headers(self) -> None:
        response = HTTPResponse(HTTPRequest("http://example.com/"), 200)
        self.assertIsNone(response.buffer)
        self.assertEqual(response.body, b"")
        self.assertEqual(len(response.headers), 0)
        self.assertIsNone(response.error)

    def test_request_headers_are_made_on_first_use(self) -> None:
        request = HTTPRequest("http://example.com/")
        self.assertIsNone(request._headers)
        headers = request.headers
        self.assertIsInstance(headers, HTTPHeaders)
        self.assertIs(request.headers, headers)
        request.headers = None  # type: ignore[assignment]
        self.assertEqual(len(request.headers), 0)


def test_field_value_joins_repeats_and_ignores_case() -> None:
    pairs = [("Content-Type", "a"), ("content-encoding", "gzip"), ("CONTENT-ENCODING", "br")]
    assert field_value(pairs, "content-encoding") == "gzip,br"
    assert field_value(pairs, "content-type") == "a"
    assert field_value(pairs, "content-length") is None


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closed = False
        self.written: list[bytes] = []

    def write(self, data: Any) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


def _idle_connection() -> tuple[ClientConnection, _Transport]:
    conn = ClientConnection(("http", "h", 80), H1Limits(), False)
    transport = _Transport()
    conn.connection_made(transport)
    return conn, transport


def test_idle_connection_is_unusable_once_the_server_sends_eof() -> None:
    conn, transport = _idle_connection()
    assert conn.is_reusable()
    assert conn.eof_received() is False
    assert transport.closed
    assert not conn.is_reusable()


def test_idle_connection_that_receives_bytes_is_closed() -> None:
    conn, transport = _idle_connection()
    conn.data_received(b"HTTP/1.1 200 OK\r\n")
    assert transport.closed
    assert not conn.is_reusable()
