"""squall.httpclient: requests, responses, errors, the per-IOLoop client
cache, configuration, and the blocking HTTPClient."""

from __future__ import annotations

import copy
import datetime
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest

from squall.httpclient import (
    AsyncHTTPClient,
    HTTPClient,
    HTTPClientError,
    HTTPError,
    HTTPRequest,
    HTTPResponse,
    _RequestProxy,
)
from squall.httputil import HTTPHeaders
from squall.ioloop import IOLoop
from squall.simple_httpclient import SimpleAsyncHTTPClient


def test_request_defaults_and_setters() -> None:
    request = HTTPRequest("http://example.com/", body="é")
    assert request.body == "é".encode()
    assert isinstance(request.headers, HTTPHeaders) and len(request.headers) == 0
    request.headers = None  # type: ignore[assignment]
    assert request.headers == {}
    request.headers = {"a": "b"}  # type: ignore[assignment]
    assert request.headers == {"a": "b"}
    request.body = None  # type: ignore[assignment]
    assert request.body is None
    assert request.expect_100_continue is False


def test_if_modified_since_and_use_gzip() -> None:
    when = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    request = HTTPRequest("http://e/", if_modified_since=when, use_gzip=False)
    assert request.headers["If-Modified-Since"] == "Thu, 02 Jan 2020 03:04:05 GMT"
    assert request.decompress_response is False
    assert HTTPRequest("http://e/", use_gzip=False, decompress_response=True).decompress_response


def test_request_proxy() -> None:
    request = HTTPRequest("http://e/", user_agent="mine")
    proxy = _RequestProxy(request, {"user_agent": "default", "network_interface": "lo"})
    assert proxy.user_agent == "mine"
    assert proxy.network_interface == "lo"
    assert proxy.auth_username is None
    assert _RequestProxy(request, None).proxy_host is None
    with pytest.raises(AttributeError):
        proxy.no_such_option  # noqa: B018


def test_response_body_error_and_repr() -> None:
    request = HTTPRequest("http://e/")
    ok = HTTPResponse(request, 200, buffer=BytesIO(b"data"))
    assert ok.body == b"data" and ok.body is ok.body
    assert ok.error is None and ok.effective_url == "http://e/"
    ok.rethrow()
    assert repr(ok).startswith("HTTPResponse(") and "code=200" in repr(ok)
    assert HTTPResponse(request, 204).body == b""
    missing = HTTPResponse(_RequestProxy(request, None), 404)  # type: ignore[arg-type]
    assert missing.request is request
    assert missing.reason == "Not Found"
    with pytest.raises(HTTPClientError) as info:
        missing.rethrow()
    assert info.value.response is missing
    assert str(info.value) == "HTTP 404: Not Found"


def test_error_str_copy_and_alias() -> None:
    assert HTTPError is HTTPClientError
    error = HTTPClientError(403)
    assert str(error) == repr(error) == "HTTP 403: Forbidden"
    clone = copy.copy(error)
    assert clone is not error and clone.code == 403 and clone.message == "Forbidden"
    assert str(HTTPClientError(599, "custom")) == "HTTP 599: custom"


def test_instance_cache_per_loop() -> None:
    loop = IOLoop(make_current=False)

    async def make() -> tuple[AsyncHTTPClient, AsyncHTTPClient, AsyncHTTPClient]:
        return AsyncHTTPClient(), AsyncHTTPClient(), AsyncHTTPClient(force_instance=True)

    try:
        first, second, forced = loop.run_sync(make)
        assert first is second and forced is not first
        assert isinstance(first, SimpleAsyncHTTPClient)
        forced.close()
        first.close()
        first.close()
        third, _, other = loop.run_sync(make)
        assert third is not first
        other.close()
        third.close()
        with pytest.raises(RuntimeError, match="closed"):
            third.fetch("http://e/")
    finally:
        loop.close()


def test_configure_passes_arguments() -> None:
    saved = AsyncHTTPClient._save_configuration()
    loop = IOLoop(make_current=False)
    try:
        AsyncHTTPClient.configure(SimpleAsyncHTTPClient, max_clients=12)

        async def make() -> Any:
            return AsyncHTTPClient(force_instance=True), AsyncHTTPClient(
                force_instance=True, max_clients=3
            )

        a, b = loop.run_sync(make)
        assert (a.max_clients, b.max_clients) == (12, 3)
        a.close()
        b.close()
    finally:
        AsyncHTTPClient._restore_configuration(saved)
        loop.close()


def test_fetch_rejects_kwargs_with_request() -> None:
    loop = IOLoop(make_current=False)

    async def go() -> None:
        client = AsyncHTTPClient(force_instance=True)
        try:
            with pytest.raises(ValueError, match="kwargs can't be used"):
                client.fetch(HTTPRequest("http://e/"), method="POST")
        finally:
            client.close()

    try:
        loop.run_sync(go)
    finally:
        loop.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        code = 404 if self.path == "/missing" else 200
        body = b"sync " + self.path.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def thread_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_sync_client(thread_server: str) -> None:
    client = HTTPClient()
    try:
        assert client.fetch(thread_server + "/x").body == b"sync /x"
        with pytest.raises(HTTPClientError) as info:
            client.fetch(thread_server + "/missing")
        assert info.value.code == 404
        assert client.fetch(thread_server + "/missing", raise_error=False).code == 404
    finally:
        client.close()
        client.close()


def test_main_prints_body_and_headers(
    thread_server: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import squall.options
    from squall.httpclient import main
    from squall.log import define_logging_options

    monkeypatch.setattr(
        "sys.argv",
        ["httpclient", "--print_headers", thread_server + "/m", thread_server + "/missing"],
    )
    # main() is a command: it defines its options in the process-wide
    # parser (a second main() there would find them defined) and sets the
    # root logger's level from --logging (INFO). The tests after see
    # neither: a parser of its own, the level put back.
    parser = squall.options.OptionParser()
    define_logging_options(parser)
    monkeypatch.setattr(squall.options, "options", parser)
    root = logging.getLogger()
    level, handlers = root.level, root.handlers[:]
    try:
        main()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    out = capsys.readouterr().out
    assert "sync /m" in out and "sync /missing" in out
    assert "Content-Length: 7" in out
