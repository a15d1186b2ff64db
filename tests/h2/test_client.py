"""H2AsyncHTTPClient: HTTP/2 by ALPN (or prior knowledge), multiplexed, with
HTTP/1.1 for servers that do not offer it."""

from __future__ import annotations

import asyncio
import gzip
import logging
import ssl
from typing import Any
from unittest import mock

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall.h2client import H2AsyncHTTPClient  # noqa: E402
from squall.httpclient import AsyncHTTPClient, HTTPClientError  # noqa: E402
from squall.iostream import UnsatisfiableReadError  # noqa: E402
from squall.simple_httpclient import HTTPStreamClosedError, HTTPTimeoutError  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._wait import HANG_GUARD

from .test_attacks import condition  # noqa: E402


class Info(RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "version": self.request.version,
                "ua": self.request.headers.get("User-Agent", ""),
                "auth": self.request.headers.get("Authorization", ""),
                "q": self.get_argument("q", ""),
            }
        )

    def post(self) -> None:
        self.write(f"{self.request.version} {len(self.request.body)}")


class Slow(RequestHandler):
    """Answers only when the test releases it; says when it has started."""

    async def get(self) -> None:
        self.settings["slow_started"].set()
        await self.settings["slow_release"].wait()
        self.write("slow")


class Redirect(RequestHandler):
    def get(self) -> None:
        self.redirect("/info?q=redirected")


class Gzipped(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Encoding", "gzip")
        self.write(gzip.compress(b"squeezed " * 50))


class Missing(RequestHandler):
    def get(self) -> None:
        self.set_status(404)
        self.write("nope")


def make_app() -> Application:
    return Application(
        [
            ("/info", Info),
            ("/slow", Slow),
            ("/redirect", Redirect),
            ("/gzip", Gzipped),
            ("/missing", Missing),
        ],
        slow_started=asyncio.Event(),
        slow_release=asyncio.Event(),
    )


class ALPNTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        options = super().get_httpserver_options()
        options["http2"] = True
        return options

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(force_instance=True, defaults={"validate_cert": False})

    @gen_test
    async def test_fetch_over_h2(self) -> None:
        response = await self.http_client.fetch(self.get_url("/info?q=1"), user_agent="t/1")
        assert response.code == 200
        body = response.body.decode()
        assert '"version": "HTTP/2.0"' in body
        assert '"ua": "t/1"' in body
        assert response.headers["Content-Type"].startswith("application/json")

    @gen_test
    async def test_hostname_mapping_and_the_resolver_reach_http2(self) -> None:
        # The HTTP/2 connection was opened by name with asyncio's own lookup:
        # hostname_mapping and resolver= held only for HTTP/1.1.
        from squall.netutil import OverrideResolver, Resolver

        mapped = H2AsyncHTTPClient(
            force_instance=True,
            hostname_mapping={"squall.test": "127.0.0.1"},
            defaults={"validate_cert": False},
        )
        resolver = OverrideResolver(Resolver(), {"other.test": "127.0.0.1"})
        given = H2AsyncHTTPClient(
            force_instance=True, resolver=resolver, defaults={"validate_cert": False}
        )
        try:
            port = self.get_http_port()
            response = await mapped.fetch(f"https://squall.test:{port}/info")
            assert '"version": "HTTP/2.0"' in response.body.decode()
            response = await given.fetch(f"https://other.test:{port}/info")
            assert '"version": "HTTP/2.0"' in response.body.decode()
        finally:
            mapped.close()
            given.close()
            resolver.close()

    @gen_test
    async def test_concurrent_fetches_share_one_connection(self) -> None:
        responses = await asyncio.gather(
            *(self.http_client.fetch(self.get_url(f"/info?q={i}")) for i in range(30))
        )
        assert [f'"q": "{i}"' in r.body.decode() for i, r in enumerate(responses)] == [True] * 30
        assert len(self.http_server._connections) == 1

    @gen_test
    async def test_post_larger_than_the_windows(self) -> None:
        response = await self.http_client.fetch(
            self.get_url("/info"), method="POST", body=b"p" * 2_000_000
        )
        assert response.body == b"HTTP/2.0 2000000"

    @gen_test
    async def test_redirect_and_gzip(self) -> None:
        response = await self.http_client.fetch(self.get_url("/redirect"))
        assert '"q": "redirected"' in response.body.decode()
        assert response.effective_url.endswith("/info?q=redirected")
        assert response.request.url.endswith("/redirect")
        response = await self.http_client.fetch(self.get_url("/gzip"))
        assert response.body == b"squeezed " * 50

    @gen_test
    async def test_each_redirect_hop_is_a_call_of_the_public_fetch(self) -> None:
        urls: list[str] = []
        unwrapped = AsyncHTTPClient.fetch

        def wrapper(client: AsyncHTTPClient, request: Any, *args: Any, **kwargs: Any) -> Any:
            urls.append(request if isinstance(request, str) else request.url)
            return unwrapped(client, request, *args, **kwargs)

        with mock.patch.object(AsyncHTTPClient, "fetch", wrapper):
            response = await self.http_client.fetch(self.get_url("/redirect"))
        assert '"q": "redirected"' in response.body.decode()
        assert [url.split("/", 3)[3] for url in urls] == ["redirect", "info?q=redirected"]
        assert response.request.url.endswith("/redirect")

    @gen_test
    async def test_error_status_and_timeout(self) -> None:
        with pytest.raises(HTTPClientError) as info:
            await self.http_client.fetch(self.get_url("/missing"))
        assert info.value.code == 404
        response = await self.http_client.fetch(self.get_url("/missing"), raise_error=False)
        assert (response.code, response.body) == (404, b"nope")
        with pytest.raises(HTTPTimeoutError):
            await self.http_client.fetch(self.get_url("/slow"), request_timeout=0.05)

    @gen_test
    async def test_callbacks_and_basic_auth(self) -> None:
        lines: list[str] = []
        chunks: list[bytes] = []
        response = await self.http_client.fetch(
            self.get_url("/info"),
            header_callback=lines.append,
            streaming_callback=chunks.append,
            auth_username="me",
            auth_password="pw",
        )
        assert lines[0].startswith("HTTP/2.0 200")
        assert lines[-1] == "\r\n"
        assert b'"auth": "Basic bWU6cHc="' in b"".join(chunks)
        assert response.body == b""


class IdleTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        options = super().get_httpserver_options()
        options["http2"] = True
        return options

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(
            force_instance=True, idle_timeout=0.05, defaults={"validate_cert": False}
        )

    @gen_test
    async def test_idle_connection_closed_then_reopened(self) -> None:
        await self.http_client.fetch(self.get_url("/info"))
        first = set(self.http_server._connections)
        assert len(first) == 1
        # The client closes it when idle.
        await condition(lambda: not self.http_server._connections)
        response = await self.http_client.fetch(self.get_url("/info"))
        assert '"version": "HTTP/2.0"' in response.body.decode()
        assert set(self.http_server._connections).isdisjoint(first)

    @gen_test
    async def test_tls_settings_are_part_of_the_connection_key(self) -> None:
        await self.http_client.fetch(self.get_url("/info"))
        # A request that checks certificates does not reuse the connection
        # made without the check: it fails on the test certificate.
        with pytest.raises(ssl.SSLError):
            await self.http_client.fetch(self.get_url("/info"), validate_cert=True)


class HTTP1OnlyTest(AsyncHTTPSTestCase):
    """A TLS server without HTTP/2: the client falls back to HTTP/1.1."""

    def get_app(self) -> Application:
        return make_app()

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(force_instance=True, defaults={"validate_cert": False})

    @gen_test
    async def test_falls_back(self) -> None:
        for _ in range(2):
            response = await self.http_client.fetch(self.get_url("/info"))
            assert '"version": "HTTP/1.1"' in response.body.decode()


class PriorKnowledgeTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)

    @gen_test
    async def test_h2c(self) -> None:
        response = await self.http_client.fetch(self.get_url("/info"))
        assert '"version": "HTTP/2.0"' in response.body.decode()

    @gen_test
    async def test_request_as_the_http1_client_sends_it(self) -> None:
        # A non-ASCII query goes percent-encoded (the server reads the same
        # text back), and the request's headers hold the fields sent.
        response = await self.http_client.fetch(self.get_url("/info?q=caf\u00e9"))
        assert '"version": "HTTP/2.0"' in response.body.decode()
        assert '"q": "caf\\u00e9"' in response.body.decode()
        sent = response.request.headers
        assert sent["User-Agent"].startswith("Squall/")
        assert sent["Accept-Encoding"] == "gzip"

    @gen_test
    async def test_server_closing_fails_fetches_in_flight(self) -> None:
        future = self.http_client.fetch(self.get_url("/slow"), raise_error=False)
        await asyncio.wait_for(self._app.settings["slow_started"].wait(), HANG_GUARD)
        for conn in list(self.http_server._connections):
            conn._hard_close()
        with pytest.raises(HTTPStreamClosedError):
            await future

    @gen_test
    async def test_plain_http_without_prior_knowledge_is_http1(self) -> None:
        client = H2AsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(self.get_url("/info"))
            assert '"version": "HTTP/1.1"' in response.body.decode()
        finally:
            client.close()


class Reset(RequestHandler):
    def get(self) -> None:
        assert self.request.connection is not None
        self.request.connection.close()  # type: ignore[attr-defined]
        self._finished = True


class BadGzip(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Encoding", "gzip")
        self.write(b"this is not gzip at all")


class Large(RequestHandler):
    def get(self) -> None:
        self.write(b"L" * 300_000)


def _encode(coding: str, data: bytes) -> bytes:
    if coding == "br":
        brotli = pytest.importorskip("brotli", reason="the brotli extra is not installed")
        return bytes(brotli.compress(data))
    if coding == "zstd":
        zstd = pytest.importorskip("zstandard", reason="the zstd extra is not installed")
        return bytes(zstd.ZstdCompressor().compress(data))
    return gzip.compress(data)


class Coded(RequestHandler):
    """``/coded?c=br&n=100&cut=1``: n x "squeezed " in coding c, cut short if asked."""

    def get(self) -> None:
        coding = self.get_argument("c")
        body = _encode(coding, b"squeezed " * int(self.get_argument("n")))
        if self.get_argument("cut", ""):
            body = body[: len(body) // 2]
        self.set_header("Content-Encoding", coding)
        self.write(body)


class ErrorsTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [
                ("/info", Info),
                ("/reset", Reset),
                ("/badgzip", BadGzip),
                ("/large", Large),
                ("/coded", Coded),
            ]
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(
            force_instance=True, http2_prior_knowledge=True, max_body_size=100_000
        )

    @gen_test
    async def test_stream_reset_by_server(self) -> None:
        with pytest.raises(HTTPStreamClosedError, match="reset by the server"):
            await self.http_client.fetch(self.get_url("/reset"))

    @gen_test
    async def test_bad_gzip_and_body_limit(self) -> None:
        with pytest.raises(HTTPStreamClosedError, match="invalid gzip"):
            await self.http_client.fetch(self.get_url("/badgzip"))
        # A body over max_body_size is refused by its Content-Length before
        # any of it arrives, streamed or not, with the HTTP/1.1 client's
        # log line and error.
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            with pytest.raises(HTTPStreamClosedError, match="Connection closed"):
                await self.http_client.fetch(self.get_url("/large"))
        got: list[bytes] = []
        with ExpectLog("squall.general", ".*Content-Length too long", level=logging.INFO):
            with pytest.raises(HTTPStreamClosedError, match="Connection closed"):
                await self.http_client.fetch(self.get_url("/large"), streaming_callback=got.append)
        assert got == []

    @gen_test
    async def test_br_zstd_and_gzip_bodies_are_decoded(self) -> None:
        for coding in ("br", "zstd", "gzip"):
            response = await self.http_client.fetch(self.get_url(f"/coded?c={coding}&n=100"))
            assert response.body == b"squeezed " * 100, coding
            assert response.headers["X-Consumed-Content-Encoding"] == coding
            assert "Content-Encoding" not in response.headers
            got: list[bytes] = []
            await self.http_client.fetch(
                self.get_url(f"/coded?c={coding}&n=100"), streaming_callback=got.append
            )
            assert b"".join(got) == b"squeezed " * 100, coding
        # Not asked to decode: the body comes as it was sent.
        raw = await self.http_client.fetch(
            self.get_url("/coded?c=br&n=100"), decompress_response=False
        )
        assert raw.headers["Content-Encoding"] == "br"
        assert raw.body == _encode("br", b"squeezed " * 100)

    @gen_test
    async def test_coded_body_limit_applies_after_decoding(self) -> None:
        # 20,000 x 9 bytes = 180,000 decoded (over max_body_size=100,000),
        # a few hundred bytes on the wire.
        for coding in ("br", "zstd", "gzip"):
            with ExpectLog("squall.general", ".*decompressed body too large", level=logging.INFO):
                with pytest.raises(HTTPStreamClosedError, match="Connection closed"):
                    await self.http_client.fetch(self.get_url(f"/coded?c={coding}&n=20000"))

    @gen_test
    async def test_truncated_coded_body_is_an_error(self) -> None:
        for coding in ("br", "zstd", "gzip"):
            with pytest.raises(HTTPStreamClosedError, match=f"invalid {coding}"):
                await self.http_client.fetch(self.get_url(f"/coded?c={coding}&n=2000&cut=1"))
        # The connection is still good.
        response = await self.http_client.fetch(self.get_url("/info"))
        assert response.code == 200

    @gen_test
    async def test_callbacks_that_raise(self) -> None:
        def boom(_: Any) -> None:
            raise ZeroDivisionError("callback")

        # As over HTTP/1.1 (and on Tornado): the exception is logged, and
        # the fetch fails with HTTPStreamClosedError, not with it.
        for what in ("header_callback", "streaming_callback"):
            with ExpectLog("squall.application", f"Uncaught exception in {what} for GET /info"):
                with pytest.raises(HTTPStreamClosedError, match="Connection closed"):
                    await self.http_client.fetch(self.get_url("/info"), **{what: boom})
        # The connection is still good.
        response = await self.http_client.fetch(self.get_url("/info"))
        assert response.code == 200

    @gen_test
    async def test_request_checks(self) -> None:
        with pytest.raises(ValueError, match="Unsafe header"):
            await self.http_client.fetch(self.get_url("/info"), headers={"X": "a\r\nb"})
        with pytest.raises(ValueError, match="must not be None"):
            await self.http_client.fetch(self.get_url("/info"), method="POST")
        with pytest.raises(ValueError, match="auth_mode"):
            await self.http_client.fetch(
                self.get_url("/info"), auth_username="a", auth_password="b", auth_mode="nope"
            )

    @gen_test
    async def test_connection_refused(self) -> None:
        from squall.testing import bind_unused_port

        sock, port = bind_unused_port()
        sock.close()
        with pytest.raises(OSError):
            await self.http_client.fetch(f"http://127.0.0.1:{port}/")

    @gen_test
    async def test_graceful_goaway_retries_unsent_requests(self) -> None:
        response = await self.http_client.fetch(self.get_url("/info"))
        assert response.code == 200
        (conn,) = self.http_server._connections
        conn._drain(None)  # GOAWAY now; the client must use a new connection
        response = await self.http_client.fetch(self.get_url("/info?q=again"))
        assert '"q": "again"' in response.body.decode()

    @gen_test
    async def test_close(self) -> None:
        client = H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)
        await client.fetch(self.get_url("/info"))
        assert len(client._h2_conns) == 1
        client.close()
        assert not client._h2_conns


class Pieces(RequestHandler):
    """Three flushed pieces of body."""

    async def get(self) -> None:
        for piece in (b"one;", b"two;", b"three"):
            self.write(piece)
            await self.flush()


class BigHead(RequestHandler):
    def get(self) -> None:
        # (Under 4 KiB: qh3's QPACK encoder panics on a larger field.)
        self.set_header("X-Big", "y" * 3000)
        self.write("ok")


class Started(RequestHandler):
    """Sends its head and a first piece, then waits for the test."""

    async def get(self) -> None:
        self.write(b"part;")
        await self.flush()
        self.settings["slow_started"].set()
        await self.settings["slow_release"].wait()


class SameAsHTTP1Test(AsyncHTTPTestCase):
    """What a caller sees is what the HTTP/1.1 client gives it (the
    reference these clients are held to), where HTTP/2 does not say otherwise."""

    def get_app(self) -> Application:
        return Application(
            [
                ("/info", Info),
                ("/redirect", Redirect),
                ("/pieces", Pieces),
                ("/bighead", BigHead),
                ("/slow", Slow),
                ("/started", Started),
            ],
            slow_started=asyncio.Event(),
            slow_release=asyncio.Event(),
        )

    def tearDown(self) -> None:
        self._app.settings["slow_release"].set()
        super().tearDown()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    def get_http_client(self) -> H2AsyncHTTPClient:
        return H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)

    @gen_test
    async def test_header_callback_sees_only_the_final_response(self) -> None:
        # A redirect that is followed is not the caller's response: its
        # head does not reach header_callback (nor its body streaming_callback).
        lines: list[str] = []
        pieces: list[bytes] = []
        response = await self.http_client.fetch(
            self.get_url("/redirect"),
            header_callback=lines.append,
            streaming_callback=pieces.append,
        )
        assert response.effective_url.endswith("/info?q=redirected")
        assert lines[0] == "HTTP/2.0 200 \r\n"
        assert lines.count("\r\n") == 1 and lines[-1] == "\r\n"
        assert not any(line.lower().startswith("location:") for line in lines)
        assert b'"q": "redirected"' in b"".join(pieces)

    @gen_test
    async def test_awaitable_callbacks_are_awaited_in_order(self) -> None:
        # A coroutine function as streaming_callback or header_callback was
        # called and never awaited (its work never ran); the HTTP/1.1 client
        # awaits each one before the next piece, and the fetch ends after.
        events: list[str] = []

        async def on_piece(piece: bytes) -> None:
            events.append("start " + piece.decode())
            await asyncio.sleep(0)
            events.append("end " + piece.decode())

        async def on_line(line: str) -> None:
            await asyncio.sleep(0)
            events.append("line " + line.split(" ")[0].strip())

        response = await self.http_client.fetch(
            self.get_url("/pieces"), streaming_callback=on_piece, header_callback=on_line
        )
        assert response.body == b""
        # Every header line was taken before the body's first piece.
        lines = [i for i, e in enumerate(events) if e.startswith("line ")]
        assert events[0] == "line HTTP/2.0" and lines == list(range(len(lines)))
        body = events[len(lines) :]
        # Each piece's callback finished before the next one started.
        assert [e.split(" ")[0] for e in body] == ["start", "end"] * (len(body) // 2)
        assert "".join(e[4:] for e in body if e.startswith("end ")) == "one;two;three"

    @gen_test
    async def test_max_header_size_refuses_a_large_head(self) -> None:
        client = H2AsyncHTTPClient(
            force_instance=True, http2_prior_knowledge=True, max_header_size=1000
        )
        try:
            # The HTTP/1.1 client's error for a head over max_header_size
            # (not a 599 response: raised even with raise_error=False).
            with ExpectLog("squall.general", "Unsatisfiable read", level=logging.INFO):
                with pytest.raises(UnsatisfiableReadError, match="Header block too large"):
                    await client.fetch(self.get_url("/bighead"), raise_error=False)
            response = await client.fetch(self.get_url("/info"))
            assert '"version": "HTTP/2.0"' in response.body.decode()
        finally:
            client.close()

    @gen_test
    async def test_a_space_in_the_url_is_refused_before_sending(self) -> None:
        with pytest.raises(ValueError, match="invalid request-target"):
            await self.http_client.fetch(self.get_url("/info?q=a b"))
        # Nothing went out: the client opened no connection for it.
        assert not self.http_client._h2_conns

    @gen_test
    async def test_close_lets_fetches_in_flight_complete(self) -> None:
        # The HTTP/1.1 client's close() closes idle connections only: a
        # fetch in flight gets its response. Over HTTP/2 it failed with
        # "Connection closed".
        client = H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)
        await client.fetch(self.get_url("/info"))
        (conn,) = client._h2_conns.values()
        future = client.fetch(self.get_url("/slow"))
        await asyncio.wait_for(self._app.settings["slow_started"].wait(), HANG_GUARD)
        client.close()
        assert conn.transport is not None and not conn.transport.is_closing()
        with pytest.raises(RuntimeError, match="closed"):
            await client.fetch(self.get_url("/info"))
        self._app.settings["slow_release"].set()
        response = await asyncio.wait_for(future, HANG_GUARD)
        assert response.body == b"slow"
        # Its last fetch done, the connection closes.
        assert conn.transport.is_closing()

    @gen_test
    async def test_a_lost_connection_fails_fetches_with_the_http1_words(self) -> None:
        # "Stream closed" before a response head, "Connection closed" after
        # one: the HTTP/1.1 client's (and Tornado's) words, which callers'
        # retry checks look for. Over HTTP/2 both were "Connection closed".
        for path, words in (("/slow", "Stream closed"), ("/started", "Connection closed")):
            started = self._app.settings["slow_started"]
            started.clear()
            future = self.http_client.fetch(self.get_url(path))
            await asyncio.wait_for(started.wait(), HANG_GUARD)
            for conn in list(self.http_server._connections):
                conn._hard_close()
            with pytest.raises(HTTPStreamClosedError) as info:
                await future
            assert str(info.value) == words, path


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ([(":status", "200"), ("X-Upper", "1")], "invalid field name 'X-Upper'"),
        (
            [(":status", "200"), ("content-length", "9")],
            "0 bytes of body in all where Content-Length is 9",
        ),
    ],
)
def test_a_malformed_response_fails_the_fetch_saying_what_was_wrong(
    fields: list[tuple[str, str]], reason: str
) -> None:
    # A server that answers stream 1 as told, once it has the client's
    # preface and request: the fetch's error names the fault, not only
    # the reset's code.
    import hpack
    from hyperframe.frame import HeadersFrame, SettingsFrame

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(24)  # the client's preface
        writer.write(SettingsFrame(0).serialize())
        block = hpack.Encoder().encode(fields)
        writer.write(HeadersFrame(1, data=block, flags=("END_HEADERS", "END_STREAM")).serialize())
        try:
            await writer.drain()
            await reader.read()  # until the client closes
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = H2AsyncHTTPClient(force_instance=True, http2_prior_knowledge=True)
        try:
            with pytest.raises(HTTPStreamClosedError) as caught:
                await client.fetch(f"http://127.0.0.1:{port}/", request_timeout=HANG_GUARD)
        finally:
            client.close()
            server.close()
            await server.wait_closed()
        said = str(caught.value)
        assert said.startswith("stream reset by us: the server broke HTTP/2"), said
        assert reason in said, said

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
