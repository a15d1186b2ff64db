"""CurlAsyncHTTPClient: squall.curl_httpclient over pycurl."""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging
import socket
import sys
import time
import weakref
from typing import Any
from unittest import mock

import pytest

import squall
import squall.compat
from squall import gen
from squall.escape import json_decode, json_encode
from squall.httpclient import AsyncHTTPClient, HTTPClientError
from squall.httputil import HTTPHeaders
from squall.locks import Event
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, AsyncTestCase, ExpectLog, gen_test
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD
from tests.client._server import MiniServer, Reply

pycurl = pytest.importorskip("pycurl", reason="pycurl not installed (pip install squall[curl])")

from squall.curl_httpclient import (  # noqa: E402
    CurlAsyncHTTPClient,
    CurlError,
    _CurlStreamingBuffer,
)

BIG = b"".join(b"%08d\n" % i for i in range(60000))  # 540 kB, all different


class Echo(RequestHandler):
    SUPPORTED_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "REPORT")

    def _echo(self) -> None:
        self.write(
            json_encode(
                {
                    "method": self.request.method,
                    "uri": self.request.uri,
                    "body": self.request.body.decode("latin-1"),
                    "headers": dict(self.request.headers.get_all()),
                }
            )
        )

    get = post = put = delete = patch = options = _echo

    def head(self) -> None:
        self.set_header("X-Method", "HEAD")

    def report(self) -> None:
        self._echo()


class Big(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(BIG)


class Redirect(RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("to"), status=int(self.get_argument("status", "302")))

    post = put = get


class Slow(RequestHandler):
    async def get(self) -> None:
        await self.application.settings["never"].wait()


class Brotli(RequestHandler):
    def get(self) -> None:
        brotli = pytest.importorskip("brotli")
        self.set_header("Content-Encoding", "br")
        self.write(brotli.compress(BIG, quality=5))


class Auth(RequestHandler):
    def get(self) -> None:
        self.write(self.request.headers.get("Authorization", "none"))


def make_app(**settings: Any) -> Application:
    return Application(
        [
            ("/echo", Echo),
            ("/echo/.*", Echo),
            ("/big", Big),
            ("/redirect", Redirect),
            ("/slow", Slow),
            ("/br", Brotli),
            ("/auth", Auth),
            (".*/proxied", Echo),
        ],
        never=Event(),
        gzip=True,
        **settings,
    )


class CurlTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_http_client(self) -> CurlAsyncHTTPClient:
        return CurlAsyncHTTPClient(force_instance=True, defaults={"allow_ipv6": False})

    def echo(self, path: str = "/echo", **kwargs: Any) -> dict[str, Any]:
        response = self.fetch(path, **kwargs)
        response.rethrow()
        result: dict[str, Any] = json_decode(response.body)
        return result

    def test_get_names_squall_and_asks_for_gzip(self) -> None:
        seen = self.echo()
        assert seen["method"] == "GET"
        assert seen["headers"]["User-Agent"] == f"Squall/{squall.version}"
        assert seen["headers"]["Accept-Encoding"] == "gzip"
        # libcurl's own additions are kept out.
        assert "Expect" not in seen["headers"] and "Pragma" not in seen["headers"]

    def test_a_program_run_as_tornado_sends_tornados_default(self) -> None:
        squall.compat.install()
        self.addCleanup(squall.compat.uninstall)
        assert self.echo()["headers"]["User-Agent"] == "Mozilla/5.0 (compatible; pycurl)"

    def test_methods_and_bodies(self) -> None:
        post = self.echo(method="POST", body="a=1&b=2")
        assert (post["method"], post["body"]) == ("POST", "a=1&b=2")
        assert post["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
        put = self.echo(method="PUT", body=b"\xe9t\xe9")
        assert (put["method"], put["body"]) == ("PUT", "\xe9t\xe9")
        assert "Content-Type" not in put["headers"]
        assert self.echo(method="PATCH", body="p")["body"] == "p"
        assert self.echo(method="DELETE")["method"] == "DELETE"
        report = self.echo(method="REPORT", body="r", allow_nonstandard_methods=True)
        assert (report["method"], report["body"]) == ("REPORT", "r")
        head = self.fetch("/echo", method="HEAD")
        assert (head.code, head.body, head.headers["X-Method"]) == (200, b"", "HEAD")

    def test_unknown_method_is_refused(self) -> None:
        # As Tornado's curl client does, before libcurl sends anything.
        with pytest.raises(KeyError, match="unknown method REPORT"):
            self.fetch("/echo", method="REPORT", raise_error=False)
        assert self.echo(method="OPTIONS")["method"] == "OPTIONS"

    def test_body_rules(self) -> None:
        with pytest.raises(ValueError, match="must not be None"):
            self.fetch("/echo", method="POST", raise_error=True)
        with pytest.raises(ValueError, match="must be None"):
            self.fetch("/echo", method="GET", body="x", raise_error=True)

        async def producer(write: Any) -> None:
            await write(b"x")

        with pytest.raises(ValueError, match="body_producer"):
            self.fetch("/echo", method="POST", body_producer=producer, raise_error=True)

    def test_headers_go_out_as_latin1_and_crlf_is_refused(self) -> None:
        seen = self.echo(headers={"X-Word": "caf\xe9", "X-Bytes": b"raw"})
        assert seen["headers"]["X-Word"] == "caf\xe9"
        assert seen["headers"]["X-Bytes"] == "raw"
        with pytest.raises(ValueError):
            self.fetch("/echo", headers={"X-Bad": "a\r\nInjected: 1"}, raise_error=True)

    def test_redirects(self) -> None:
        response = self.fetch("/redirect?to=/echo&status=302", method="POST", body="x")
        assert json_decode(response.body)["method"] == "GET"
        assert response.effective_url == self.get_url("/echo")
        kept = self.fetch("/redirect?to=/echo&status=307", method="PUT", body="keep")
        assert json_decode(kept.body)["body"] == "keep"
        unfollowed = self.fetch("/redirect?to=/echo", follow_redirects=False)
        assert unfollowed.code == 302
        assert unfollowed.headers["Location"] == "/echo"
        with pytest.raises(CurlError) as info:
            self.fetch("/redirect?to=/redirect%3Fto%3D/echo", max_redirects=1)
        assert info.value.errno == pycurl.E_TOO_MANY_REDIRECTS

    def test_redirects_follow_the_client_policy(self) -> None:
        # The client, not libcurl, follows (libcurl kept PUT after a 303 and
        # dropped a PUT's body on a 302): the same-origin Cookie stays, the
        # response names the caller's request, and neither the buffer nor
        # the streaming_callback gets the redirect's body.
        cookie = {"Cookie": "c=1"}
        response = self.fetch(
            "/redirect?to=/echo&status=302", method="POST", body="x", headers=cookie
        )
        seen = json_decode(response.body)
        assert (seen["method"], seen["headers"]["Cookie"]) == ("GET", "c=1")
        assert response.effective_url == self.get_url("/echo")
        assert response.request.url == self.get_url("/redirect?to=/echo&status=302")
        kept = self.fetch(
            "/redirect?to=/echo&status=307", method="PUT", body="keep", headers=cookie
        )
        assert json_decode(kept.body)["body"] == "keep"
        unfollowed = self.fetch("/redirect?to=/echo", follow_redirects=False, headers=cookie)
        assert unfollowed.code == 302
        with pytest.raises(CurlError) as info:
            self.fetch("/redirect?to=/redirect%3Fto%3D/echo", max_redirects=1, headers=cookie)
        assert info.value.errno == pycurl.E_TOO_MANY_REDIRECTS
        lines: list[str] = []
        chunks: list[bytes] = []
        response = self.fetch(
            "/redirect?to=/echo",
            headers=cookie,
            header_callback=lines.append,
            streaming_callback=chunks.append,
        )
        assert lines[0].startswith("HTTP/1.1 302")
        assert any(line.startswith("HTTP/1.1 200") for line in lines)
        assert json_decode(b"".join(chunks))["method"] == "GET"
        assert "Location" not in response.headers
        put = self.fetch("/redirect?to=/echo&status=302", method="PUT", body="p")
        assert (json_decode(put.body)["method"], json_decode(put.body)["body"]) == ("PUT", "p")
        put = self.fetch("/redirect?to=/echo&status=303", method="PUT", body="p")
        assert (json_decode(put.body)["method"], json_decode(put.body)["body"]) == ("GET", "")

    def test_basic_and_digest_auth(self) -> None:
        basic = self.fetch("/auth", auth_username="jos\u0065\u0301", auth_password="p\xe9")
        # RFC 7617: the credentials are NFC-normalised UTF-8.
        assert basic.body == b"Basic am9zw6k6cMOp"
        with pytest.raises(ValueError) as info:
            self.fetch(
                "/auth", auth_username="a", auth_password="b", auth_mode="nope", raise_error=True
            )
        # Tornado's curl client's wording.
        assert str(info.value) == "Unsupported auth_mode nope"

    def test_header_callback_sees_each_line_and_the_response_keeps_the_last_head(self) -> None:
        lines: list[str] = []
        response = self.fetch("/redirect?to=/echo", header_callback=lines.append)
        assert lines[0].startswith("HTTP/1.1 302")
        assert any(line.startswith("HTTP/1.1 200") for line in lines)
        assert lines[-1] == "\r\n"
        assert "Location" not in response.headers
        assert response.reason == "OK"

    def test_streaming_pauses_and_resumes(self) -> None:
        chunks: list[bytes] = []
        with mock.patch.object(_CurlStreamingBuffer, "max_buffer_size", 4096):
            response = self.fetch("/big", streaming_callback=chunks.append)
        assert response.code == 200 and response.body == b""
        assert b"".join(chunks) == BIG
        assert len(chunks) > 2

    def test_streaming_callback_error_is_logged_and_the_transfer_goes_on(self) -> None:
        chunks: list[bytes] = []

        def callback(chunk: bytes) -> None:
            chunks.append(chunk)
            if len(chunks) == 1:
                raise ZeroDivisionError

        with ExpectLog("squall.application", "Exception in callback"):
            self.fetch("/big", streaming_callback=callback)
        assert b"".join(chunks) == BIG

    def test_coroutine_streaming_callback_is_refused(self) -> None:
        async def callback(chunk: bytes) -> None:
            pass

        with pytest.raises(TypeError, match="coroutine streaming_callback"):
            self.fetch("/big", streaming_callback=callback)

    def test_max_body_size_refusals(self) -> None:
        client = CurlAsyncHTTPClient(force_instance=True, max_body_size=1000, max_clients=1)
        try:
            for kwargs in ({}, {"streaming_callback": lambda chunk: None}):
                with pytest.raises(CurlError) as info:
                    self.io_loop.run_sync(
                        lambda kwargs=kwargs: client.fetch(self.get_url("/big"), **kwargs)
                    )
                assert info.value.code == 599
                assert "body exceeded max_body_size of 1000 bytes (Content-Length too long)" in str(
                    info.value
                )
            # The handle is reusable after a refusal.
            ok = self.io_loop.run_sync(lambda: client.fetch(self.get_url("/auth")))
            assert ok.body == b"none"
        finally:
            client.close()

    def test_default_limit_refusal_is_logged(self) -> None:
        with mock.patch("squall.curl_httpclient._DEFAULT_MAX_BODY_SIZE", 1000):
            client = CurlAsyncHTTPClient(force_instance=True)
        try:
            with (
                ExpectLog(
                    "squall.general",
                    "Refused the response .*: decompressed body too large",
                    level=logging.INFO,
                ),
                pytest.raises(CurlError, match="decompressed body too large"),
            ):
                self.io_loop.run_sync(lambda: client.fetch(self.get_url("/br")))
        finally:
            client.close()

    def test_libcurl_decodes_br_it_did_not_ask_for(self) -> None:
        if "brotli" not in pycurl.version:  # pragma: no cover - depends on libcurl's build
            pytest.skip("libcurl built without brotli")
        response = self.fetch("/br")
        assert response.body == BIG
        raw = self.fetch("/br", decompress_response=False)
        assert raw.headers["Content-Encoding"] == "br" and raw.body != BIG

    def test_timeout_and_refused_connection(self) -> None:
        with pytest.raises(CurlError) as info:
            self.fetch("/slow", request_timeout=0.2)
        assert (info.value.code, info.value.errno) == (599, pycurl.E_OPERATION_TIMEDOUT)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with pytest.raises(CurlError) as info:
            self.fetch(f"http://127.0.0.1:{port}/")
        assert info.value.errno == pycurl.E_COULDNT_CONNECT
        assert str(info.value).startswith("HTTP 599: ")

    def test_proxy_with_credentials_not_reused(self) -> None:
        port = self.get_http_port()
        first = self.echo(
            "http://example.invalid/proxied",
            proxy_host="127.0.0.1",
            proxy_port=port,
            proxy_username="u",
            proxy_password="p",
        )
        assert first["headers"]["Proxy-Authorization"] == "Basic dTpw"
        assert first["uri"] == "http://example.invalid/proxied"
        second = self.echo(
            "http://example.invalid/proxied", proxy_host="127.0.0.1", proxy_port=port
        )
        assert "Proxy-Authorization" not in second["headers"]
        with pytest.raises(ValueError, match="proxy_auth_mode"):
            self.fetch(
                "http://example.invalid/proxied",
                proxy_host="127.0.0.1",
                proxy_port=port,
                proxy_username="u",
                proxy_auth_mode="ntlm",
                raise_error=True,
            )

    def test_prepare_curl_callback_gets_the_handle(self) -> None:
        def prepare(curl: Any) -> None:
            curl.setopt(pycurl.USERAGENT, "prepared")

        assert self.echo(prepare_curl_callback=prepare)["headers"]["User-Agent"] == "prepared"

    def test_ssl_options_are_refused(self) -> None:
        with pytest.raises(ValueError) as info:
            self.fetch("/echo", ssl_options={}, raise_error=True)
        # Tornado's curl client's wording.
        assert str(info.value) == "ssl_options not supported in curl_httpclient"

    def test_a_url_libcurl_rejects_fails_the_fetch(self) -> None:
        # libcurl has no effective URL for it; asking for one raised inside
        # the client and the fetch never ended. As on Tornado: a CurlError
        # naming libcurl's reason.
        with pytest.raises(CurlError) as info:
            self.fetch("/echo/a b", raise_error=True)
        assert info.value.code == 599
        assert info.value.errno == pycurl.E_URL_MALFORMAT
        assert "URL rejected" in info.value.message
        # And the client goes on serving.
        assert self.echo()["method"] == "GET"

    def test_non_ascii_url_is_sent_percent_encoded(self) -> None:
        # As the simple client sends it; libcurl wrote the query's UTF-8
        # bytes raw, which a strict server refuses (Tornado's curl client
        # refused such a URL with UnicodeEncodeError).
        seen = self.echo("/echo/caf\u00e9?q=\u00fc")
        assert seen["uri"] == "/echo/caf%C3%A9?q=%C3%BC"

    def test_an_empty_location_is_not_followed(self) -> None:
        # As libcurl (Tornado's curl client lets it follow): the 302 is the
        # response; before, the client followed it to the same URL until
        # max_redirects ran out.
        response = self.fetch("/redirect?to=&status=302")
        assert response.code == 302
        assert response.effective_url == self.get_url("/redirect?to=&status=302")

    def test_configured_as_the_default_client(self) -> None:
        AsyncHTTPClient.configure("squall.curl_httpclient.CurlAsyncHTTPClient", max_clients=3)
        try:

            async def make() -> AsyncHTTPClient:
                return AsyncHTTPClient(force_instance=True)

            client = self.io_loop.run_sync(make)
            assert isinstance(client, CurlAsyncHTTPClient) and client.max_clients == 3
            client.close()
        finally:
            AsyncHTTPClient.configure(None)

    def test_many_requests_queue_for_the_handles(self) -> None:
        client = CurlAsyncHTTPClient(force_instance=True, max_clients=2)
        try:
            began = time.monotonic()
            responses = self.io_loop.run_sync(
                lambda: gen.multi([client.fetch(self.get_url(f"/echo?n={i}")) for i in range(6)])
            )
            took = time.monotonic() - began
            assert [json_decode(r.body)["uri"] for r in responses] == [
                f"/echo?n={i}" for i in range(6)
            ]
            # Durations within the fetches' own, not times of day.
            assert all(0 <= v <= took for v in responses[0].time_info.values())
        finally:
            client.close()

    def test_closed_client_is_not_kept_alive(self) -> None:
        def use() -> weakref.ref[CurlAsyncHTTPClient]:
            client = CurlAsyncHTTPClient(force_instance=True)
            self.io_loop.run_sync(
                lambda: client.fetch(self.get_url("/big"), streaming_callback=lambda c: None)
            )
            client.close()
            client.close()  # idempotent
            return weakref.ref(client)

        ref = use()
        gc.collect()
        assert ref() is None


class ObsFoldTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    @gen_test
    async def test_folded_header_is_unfolded(self) -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nX-Folded: one;\r\n\ttwo\r\nContent-Length: 2\r\n\r\nok"
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = CurlAsyncHTTPClient(force_instance=True)
        try:
            response = await client.fetch(f"http://127.0.0.1:{port}/")
            assert response.headers["X-Folded"] == "one; two"
            assert response.body == b"ok"
        finally:
            client.close()
            server.close()
            await server.wait_closed()


class CurlHTTPSTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_http_client(self) -> CurlAsyncHTTPClient:
        return CurlAsyncHTTPClient(force_instance=True)

    def tearDown(self) -> None:
        # libcurl keeps its idle TLS connection without answering the
        # server's close_notify; closing the client first spares the server
        # its wait for one.
        self.http_client.close()
        super().tearDown()

    def test_https_without_verification(self) -> None:
        response = self.fetch("/auth", validate_cert=False)
        assert response.body == b"none"
        # (A verified fetch is refused, but the server then takes a second
        # to close the aborted handshake: not tested here, to stay quick.)


def test_error_is_an_http_error() -> None:
    error = CurlError(7, "Failed to connect")
    assert isinstance(error, HTTPClientError)
    assert (error.code, error.errno, str(error)) == (599, 7, "HTTP 599: Failed to connect")


def test_missing_pycurl_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycurl", None)
    monkeypatch.delitem(sys.modules, "squall.curl_httpclient")
    with pytest.raises(ImportError, match=r"pip install squall\[curl\]"):
        importlib.import_module("squall.curl_httpclient")


def test_tornado_name_maps_here() -> None:
    squall.compat.install()
    try:
        module = importlib.import_module("tornado.curl_httpclient")
        assert module.CurlAsyncHTTPClient is CurlAsyncHTTPClient
    finally:
        squall.compat.uninstall()


class SloppyServerTest(AsyncTestCase):
    """Responses a sloppy or hostile server writes, answered as raw bytes."""

    def setUp(self) -> None:
        super().setUp()
        self.client = CurlAsyncHTTPClient(force_instance=True)
        self.servers: list[MiniServer] = []

    def tearDown(self) -> None:
        self.client.close()
        for server in self.servers:
            self.io_loop.run_sync(server.stop)
        super().tearDown()

    async def serve(self, handler: Any) -> MiniServer:
        server = await MiniServer(handler).start()
        self.servers.append(server)
        return server

    @gen_test(timeout=HANG_GUARD)
    async def test_malformed_field_lines_fail_the_fetch(self) -> None:
        # libcurl passes these lines on; a field HTTPHeaders refuses made the
        # fetch wait forever (its error escaped from the IOLoop's handler),
        # and the others were taken where the simple client refuses them.
        heads = {
            b"X-A: a\x01b\r\n": "Invalid header value 'a\\x01b'",
            b": b\r\n": "Invalid header name ''",
            b"X-A : b\r\n": "Invalid header name 'X-A '",
            b" X-Fold: a\r\n": "continuation line with no field before it",
        }
        for line, why in heads.items():
            raw = b"HTTP/1.1 200 OK\r\n" + line + b"Content-Length: 2\r\n\r\nok"
            server = await self.serve(lambda r, b, raw=raw: Reply(raw=raw, close=True))
            with pytest.raises(CurlError) as info:
                await self.client.fetch(server.url())
            assert (info.value.code, info.value.errno) == (599, pycurl.E_WRITE_ERROR)
            assert f"Malformed HTTP message: {why}" in str(info.value)
        # The handles are reusable.
        server = await self.serve(lambda r, b: Reply(body=b"fine"))
        assert (await self.client.fetch(server.url())).body == b"fine"

    @gen_test(timeout=HANG_GUARD)
    async def test_redirect_body_is_not_decoded(self) -> None:
        # libcurl (Tornado's curl client leaves redirects to it) drops the
        # body of a redirect it follows; decoding it failed the fetch.
        def handler(request: Any, body: bytes) -> Reply:
            if request.target == "/start":
                return Reply(302, [("Location", "/end"), ("Content-Encoding", "gzip")], b"not gzip")
            return Reply(body=b"end")

        server = await self.serve(handler)
        response = await self.client.fetch(server.url("/start"))
        assert response.body == b"end"
        assert response.effective_url == server.url("/end")
        # Not followed, the same body is the response's, and fails to decode.
        with pytest.raises(CurlError) as info:
            await self.client.fetch(server.url("/start"), follow_redirects=False)
        assert info.value.errno == pycurl.E_BAD_CONTENT_ENCODING

    @gen_test(timeout=HANG_GUARD)
    async def test_max_body_size_message_starts_as_tornado_s(self) -> None:
        client = CurlAsyncHTTPClient(force_instance=True, max_body_size=10)
        try:
            server = await self.serve(lambda r, b: Reply(body=b"x" * 100))
            with pytest.raises(CurlError) as info:
                await client.fetch(server.url())
            assert str(info.value) == (
                "HTTP 599: body exceeded max_body_size of 10 bytes (Content-Length too long)"
            )
        finally:
            client.close()

    @gen_test(timeout=HANG_GUARD)
    async def test_a_fault_while_finishing_still_ends_the_fetch(self) -> None:
        server = await self.serve(lambda r, b: Reply(body=b"ok"))
        with (
            mock.patch.object(HTTPHeaders, "_from_pairs", side_effect=RuntimeError("boom")),
            ExpectLog("squall.application", "Exception finishing"),
            pytest.raises(RuntimeError, match="boom"),
        ):
            await self.client.fetch(server.url())
        assert (await self.client.fetch(server.url())).body == b"ok"

    @gen_test(timeout=HANG_GUARD)
    async def test_location_with_a_space_and_utf8(self) -> None:
        # As libcurl follows it ("URL rejected: Bad path" before, and the
        # UTF-8 bytes encoded twice).
        raw = "HTTP/1.1 302 Found\r\nLocation: /to/a b/caf\u00e9\r\nContent-Length: 0\r\n\r\n"

        def handler(request: Any, body: bytes) -> Reply:
            if request.target == "/from":
                return Reply(raw=raw.encode("utf-8"))
            return Reply(body=request.target.encode())

        server = await self.serve(handler)
        response = await self.client.fetch(server.url("/from"))
        assert response.body == b"/to/a%20b/caf%C3%A9"
        assert response.effective_url == server.url("/to/a%20b/caf%C3%A9")
