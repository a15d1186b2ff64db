"""Hostile servers and redirects against the HTTP clients, over real sockets.

A server in the test plays the attack (an endless body, a redirect to
another origin) and each test asserts what the client must do: free a
failed body at once, and carry no credentials or stale ``Host`` from one
origin to another. The redirect rules are one policy
(``squall/simple_httpclient/_policy.py``), so each test runs against the
HTTP/1.1 client, the HTTP/2 one (h2c by prior knowledge) and the curl one.
"""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from squall.httpclient import AsyncHTTPClient, HTTPClientError
from squall.iostream import StreamClosedError
from squall.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient
from squall.web import Application, RequestHandler

from ._serve import LOOPS, run, serving

try:
    import pycurl
except ImportError:  # pragma: no cover - pycurl is in the curl extra
    pycurl = None

CLIENTS = [
    "http/1.1",
    "h2",
    pytest.param("curl", marks=pytest.mark.skipif(pycurl is None, reason="no pycurl")),
]
# A body the client must refuse; small, so that the test is quick, but far
# above what the rest of a fetch allocates.
LIMIT = 4 * 1024 * 1024


def make_client(kind: str, **kwargs: Any) -> AsyncHTTPClient:
    if kind == "h2":
        from squall.h2client import H2AsyncHTTPClient

        return H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True, **kwargs)
    if kind == "curl":
        from squall.curl_httpclient import CurlAsyncHTTPClient

        return CurlAsyncHTTPClient(force_instance=True, **kwargs)
    return SimpleAsyncHTTPClient(force_instance=True, **kwargs)


class Endless(RequestHandler):
    async def get(self) -> None:
        piece = b"e" * 65536
        try:
            while True:
                self.write(piece)
                await self.flush()
        except StreamClosedError:
            pass  # the client gave up, as it must


class Echo(RequestHandler):
    """What arrived: the fields a redirect may carry, the method and body."""

    def echo(self) -> None:
        fields = ("Authorization", "Cookie", "Proxy-Authorization", "Transfer-Encoding")
        self.write(
            {
                "version": self.request.version,
                "method": self.request.method,
                "host": self.request.host,
                "body": len(self.request.body),
                **{name: self.request.headers.get(name) for name in fields},
            }
        )

    get = post = put = echo


class Redirect(RequestHandler):
    """``/redirect?status=302&to=URL``: a redirect to ``to``."""

    def go(self) -> None:
        self.redirect(self.get_argument("to"), status=int(self.get_argument("status")))

    get = post = put = go


def app() -> Application:
    return Application([("/endless", Endless), ("/echo", Echo), ("/redirect", Redirect)])


async def with_origins(
    kind: str, test: Callable[[AsyncHTTPClient, str, str], Awaitable[None]]
) -> None:
    """Run ``test(client, a, b)`` with two origins' base URLs (two ports)."""
    async with serving(app(), http2=True) as (_, port_a), serving(app(), http2=True) as (_, port_b):
        client = make_client(kind)
        try:
            await test(client, f"http://127.0.0.1:{port_a}", f"http://127.0.0.1:{port_b}")
        finally:
            client.close()


def redirect_url(base: str, status: int, to: str) -> str:
    from urllib.parse import urlencode

    return f"{base}/redirect?" + urlencode({"status": status, "to": to})


def version(kind: str) -> str:
    return "HTTP/2.0" if kind == "h2" else "HTTP/1.1"


# -- #4: a failed body is freed at once -------------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("loop", LOOPS)
def test_body_of_a_fetch_failed_at_the_limit_is_freed_without_the_collector(
    kind: str, loop: str
) -> None:
    # Each fetch reads past max_body_size and fails. With the collector off,
    # what a reference cycle holds stays allocated: before the fix, each
    # failed HTTP/1.1 fetch kept its whole body (exception -> traceback ->
    # Exchange.pump's frame -> the exchange and its buffer).
    async def main() -> tuple[int, int]:
        async with serving(app(), http2=True) as (_, port):
            client = make_client(kind, max_body_size=LIMIT)
            url = f"http://127.0.0.1:{port}/endless"
            try:
                errors: list[BaseException] = []
                for i in range(4):
                    if i == 1:
                        # The first fetch warmed up caches and connections.
                        gc.disable()
                        before = tracemalloc.get_traced_memory()[0]
                    try:
                        await client.fetch(url)
                    except (HTTPStreamClosedError, HTTPClientError) as exc:
                        errors.append(exc)
                after = tracemalloc.get_traced_memory()[0]
                assert len(errors) == 4
                return before, after
            finally:
                gc.enable()
                client.close()

    tracemalloc.start()
    try:
        before, after = run(main, loop)
    finally:
        tracemalloc.stop()
        gc.enable()
    # Three failed fetches, each of which read more than LIMIT: none of
    # their bodies may still be allocated.
    assert after - before < LIMIT, f"{(after - before) / 1e6:.1f} MB still allocated"


# -- #5, #6 and the rest of the redirect policy ------------------------------------


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("status", [302, 307])
def test_cross_origin_redirect_drops_every_credential(kind: str, status: int) -> None:
    # #5: Proxy-Authorization was sent on to the other origin (Authorization
    # and Cookie were not); urllib3 strips it since CVE-2024-37891.
    async def test(client: AsyncHTTPClient, a: str, b: str) -> None:
        credentials = {
            "Authorization": "Bearer for-a",
            "Cookie": "session=for-a",
            "Proxy-Authorization": "Basic Zm9yOmE=",
        }
        response = await client.fetch(redirect_url(a, status, f"{b}/echo"), headers=credentials)
        seen = json.loads(response.body)
        assert seen["version"] == version(kind)
        assert response.effective_url == f"{b}/echo"
        assert {name: seen[name] for name in credentials} == dict.fromkeys(credentials)
        # To the same origin they are kept.
        response = await client.fetch(redirect_url(a, status, f"{a}/echo"), headers=credentials)
        seen = json.loads(response.body)
        assert {name: seen[name] for name in credentials} == credentials

    run(lambda: with_origins(kind, test), "asyncio")


@pytest.mark.parametrize("kind", CLIENTS)
def test_cross_origin_redirect_sends_the_new_origins_host(kind: str) -> None:
    # #6: the HTTP/2 client sent the caller's Host (meant for origin A) to
    # origin B as its :authority.
    async def test(client: AsyncHTTPClient, a: str, b: str) -> None:
        response = await client.fetch(
            redirect_url(a, 302, f"{b}/echo"), headers={"Host": "a.example"}
        )
        seen = json.loads(response.body)
        assert seen["version"] == version(kind)
        assert seen["host"] == b.removeprefix("http://")

    run(lambda: with_origins(kind, test), "asyncio")


@pytest.mark.parametrize("kind", CLIENTS)
def test_userinfo_is_not_part_of_the_origin(kind: str) -> None:
    # The HTTP/2 client compared netlocs: a redirect to the same origin
    # with user@ in the URL counted as another origin and lost the Cookie.
    async def test(client: AsyncHTTPClient, a: str, b: str) -> None:
        same = a.replace("http://", "http://user@") + "/echo"
        response = await client.fetch(redirect_url(a, 302, same), headers={"Cookie": "c=1"})
        assert json.loads(response.body)["Cookie"] == "c=1"

    run(lambda: with_origins(kind, test), "asyncio")


@pytest.mark.parametrize("kind", CLIENTS[:2])  # curl_httpclient takes no body_producer
@pytest.mark.parametrize("status", [301, 302, 303])
def test_post_redirected_to_get_drops_body_producer_and_framing(kind: str, status: int) -> None:
    # A body_producer request goes over HTTP/1.1 with either client; its
    # redirect, turned into a GET, must send neither the body nor fields
    # that describe one (a stale Transfer-Encoding: chunked would make the
    # server wait for a body that never comes).
    async def produce(write: Callable[[bytes], Awaitable[None]]) -> None:
        await write(b"first ")
        await write(b"second")

    async def test(client: AsyncHTTPClient, a: str, b: str) -> None:
        response = await client.fetch(
            redirect_url(a, status, f"{b}/echo"),
            method="POST",
            body_producer=produce,
            headers={"Transfer-Encoding": "chunked"},
            request_timeout=5,
        )
        seen = json.loads(response.body)
        assert (seen["method"], seen["body"], seen["Transfer-Encoding"]) == ("GET", 0, None)

    run(lambda: with_origins(kind, test), "asyncio")


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize(
    ("status", "after"), [(307, ("PUT", 3)), (302, ("PUT", 3)), (303, ("GET", 0))]
)
def test_put_redirected_to_another_origin(kind: str, status: int, after: tuple[str, int]) -> None:
    # Only 303 turns a PUT into a GET (RFC 9110 §15.4); libcurl, when it
    # followed, kept PUT after a 303 and sent a 302's PUT without its body.
    async def test(client: AsyncHTTPClient, a: str, b: str) -> None:
        response = await client.fetch(
            redirect_url(a, status, f"{b}/echo"), method="PUT", body="abc"
        )
        seen = json.loads(response.body)
        assert (seen["version"], (seen["method"], seen["body"])) == (version(kind), after)

    run(lambda: with_origins(kind, test), "asyncio")
