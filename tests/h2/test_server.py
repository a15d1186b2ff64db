"""HTTPServer(http2=True): requests over HTTP/2 reach an unchanged Application."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall import gen  # noqa: E402
from squall.httputil import HTTPHeaders, HTTPOutputError  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application, RequestHandler, stream_request_body  # noqa: E402

from ._client import RawH2  # noqa: E402


class Hello(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Proto", self.request.version)
        self.write(f"hello {self.get_argument('name', 'world')}")

    def post(self) -> None:
        self.write(b"got " + self.request.body)

    head = get


class Headers(RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "host": self.request.host,
                "cookie": self.request.headers.get("Cookie", ""),
                "protocol": self.request.protocol,
                "remote_ip": self.request.remote_ip or "",
                "version": self.request.version,
            }
        )


class Big(RequestHandler):
    async def get(self) -> None:
        size = int(self.get_argument("size"))
        piece = b"x" * 65536
        sent = 0
        while sent < size:
            n = min(len(piece), size - sent)
            self.write(piece[:n])
            await self.flush()
            sent += n
        self.application.settings["flushed"] = sent


@stream_request_body
class Upload(RequestHandler):
    def prepare(self) -> None:
        self.size = 0
        self.pieces = 0

    async def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.pieces += 1
        await gen.moment

    def put(self) -> None:
        self.write({"size": self.size, "pieces": self.pieces})


@stream_request_body
class Trailed(RequestHandler):
    """Echoes the request's trailers back as response trailers."""

    def prepare(self) -> None:
        self.size = 0

    def data_received(self, chunk: bytes) -> None:
        self.size += len(chunk)

    def put(self) -> None:
        conn = self.request.connection
        got = conn.trailers  # type: ignore[union-attr]
        self.write({"size": self.size, "trailers": dict(got.get_all()) if got else None})
        out = HTTPHeaders({"X-Checksum": got["X-Sum"] if got else "none", "X-Count": "1"})
        conn.set_trailers(out)  # type: ignore[union-attr]

    def get(self) -> None:
        conn = self.request.connection
        for bad in ({"Content-Length": "5"}, {"Transfer-Encoding": "chunked"}, {"Trailer": "x"}):
            try:
                conn.set_trailers(HTTPHeaders(bad))  # type: ignore[union-attr]
            except HTTPOutputError as exc:
                self.write(f"refused: {exc}\n")
        self.finish()
        try:
            conn.set_trailers(HTTPHeaders({"X-Late": "1"}))  # type: ignore[union-attr]
        except HTTPOutputError as exc:
            self.application.settings["late"] = str(exc)


def make_app(**settings: Any) -> Application:
    return Application(
        [
            ("/", Hello),
            ("/headers", Headers),
            ("/big", Big),
            ("/upload", Upload),
            ("/trailers", Trailed),
        ],
        **settings,
    )


class H2PlainTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test
    async def test_prior_knowledge_get(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/?name=h2")
        assert r.status == 200
        assert r.body == b"hello h2"
        assert r.headers["x-proto"] == "HTTP/2.0"
        assert r.headers["content-length"] == "8"
        await client.close()

    @gen_test
    async def test_many_streams_on_one_connection(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sids = [client.request(f"/?name={i}") for i in range(50)]
        await client.until(lambda: all(client.responses[s].ended for s in sids))
        bodies = sorted(client.responses[s].body for s in sids)
        assert bodies == sorted(f"hello {i}".encode() for i in range(50))
        await client.close()

    @gen_test
    async def test_post_body(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/", method="POST", body=b"a" * 1000)
        assert r.status == 200
        assert r.body == b"got " + b"a" * 1000
        await client.close()

    @gen_test
    async def test_request_attributes(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch(
            "/headers", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("x-thing", "y")]
        )
        import json

        got = json.loads(r.body)
        assert got == {
            "host": "localhost",
            "cookie": "a=1; b=2",
            "protocol": "http",
            "remote_ip": "127.0.0.1",
            "version": "HTTP/2.0",
        }
        await client.close()

    @gen_test
    async def test_not_found_and_head(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/nowhere")
        assert r.status == 404
        r = await client.fetch("/", method="HEAD")
        assert r.status == 200
        assert r.body == b""
        assert r.headers["content-length"] == "11"
        await client.close()

    @gen_test
    async def test_http1_still_served(self) -> None:
        response = await self.http_client.fetch(self.get_url("/?name=one"))
        assert response.body == b"hello one"

    @gen_test
    async def test_large_response_flow_control(self) -> None:
        # The client's stream window is small: the handler's flush() waits
        # for WINDOW_UPDATEs, and the whole body arrives intact.
        client = await RawH2.connect(self.get_http_port(), settings={4: 16384})
        r = await client.fetch("/big?size=1000000")
        assert r.status == 200
        assert len(r.body) == 1000000
        assert self._app.settings["flushed"] == 1000000
        await client.close()

    @gen_test
    async def test_streamed_upload(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/upload", method="PUT", end=False)
        sent = 0
        while sent < 600000:
            # Send within the windows the server gives back.
            await client.until(lambda: client.conn.local_flow_control_window(sid) > 0)
            n = min(16384, client.conn.local_flow_control_window(sid), 600000 - sent)
            client.conn.send_data(sid, b"u" * n)
            client.flush()
            sent += n
        client.conn.end_stream(sid)
        client.flush()
        r = client.responses[sid]
        await client.until(lambda: r.ended)
        import json

        got = json.loads(r.body)
        assert got["size"] == 600000
        assert got["pieces"] >= 600000 // 16384
        await client.close()

    @gen_test
    async def test_request_and_response_trailers(self) -> None:
        import json

        client = await RawH2.connect(self.get_http_port())
        sid = client.request("/trailers", method="PUT", headers=[("te", "trailers")], end=False)
        client.conn.send_data(sid, b"t" * 5000)
        client.conn.send_headers(sid, [("x-sum", "abc"), ("x-other", "2")], end_stream=True)
        client.flush()
        r = client.responses[sid]
        await client.until(lambda: r.ended or r.reset is not None)
        assert r.status == 200
        got = json.loads(r.body)
        assert got == {"size": 5000, "trailers": {"X-Sum": "abc", "X-Other": "2"}}
        assert r.trailers == {"x-checksum": "abc", "x-count": "1"}
        # Without request trailers: None, and the response still ends with its own.
        r = await client.fetch("/trailers", method="PUT", body=b"abc")
        assert json.loads(r.body) == {"size": 3, "trailers": None}
        assert r.trailers == {"x-checksum": "none", "x-count": "1"}
        await client.close()

    @gen_test
    async def test_trailers_larger_than_the_window_wait_behind_the_body(self) -> None:
        client = await RawH2.connect(self.get_http_port(), settings={4: 10})
        r = await client.fetch("/trailers", method="PUT", body=b"x" * 7)
        assert r.status == 200 and b'"size": 7' in r.body
        assert r.trailers == {"x-checksum": "none", "x-count": "1"}
        await client.close()

    @gen_test
    async def test_invalid_response_trailers_are_refused(self) -> None:
        client = await RawH2.connect(self.get_http_port())
        r = await client.fetch("/trailers")
        assert r.status == 200 and r.trailers == {}
        assert r.body.count(b"refused") == 3
        assert b"'Content-Length' may not be a trailer field" in r.body
        assert self._app.settings["late"] == "the response already finished"
        await client.close()


class H2TLSTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        options = super().get_httpserver_options()
        options["http2"] = True
        return options

    @gen_test
    async def test_alpn_h2(self) -> None:
        client = await RawH2.connect(self.get_http_port(), tls=True)
        r = await client.fetch("/headers")
        assert r.status == 200
        assert b'"protocol": "https"' in r.body
        assert b'"version": "HTTP/2.0"' in r.body
        await client.close()

    @gen_test
    async def test_http1_over_tls_still_served(self) -> None:
        response = await self.http_client.fetch(self.get_url("/?name=tls"), validate_cert=False)
        assert response.body == b"hello tls"


class ListenTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    @gen_test
    async def test_application_listen_passes_http2(self) -> None:
        from squall.testing import bind_unused_port

        sock, port = bind_unused_port()
        sock.close()
        server = self._app.listen(port, "127.0.0.1", http2=True)
        try:
            client = await RawH2.connect(port)
            r = await client.fetch("/?name=listen")
            assert r.body == b"hello listen"
            await client.close()
        finally:
            server.stop()
            await server.close_all_connections()

    def test_http2_needs_no_other_package(self) -> None:
        # Server and client cores with the h2, hpack and hyperframe
        # packages unimportable: a request and its response pass through.
        import subprocess
        import sys

        script = """
import sys
for name in ("h2", "hpack", "hyperframe"):
    sys.modules[name] = None
from squall._h2 import H2Connection, Request, Response
from squall._h2._client import H2ClientConnection
import squall.h2client
server, client = H2Connection(), H2ClientConnection()
server.initiate()
client.initiate()
sid = client.send_request("GET", "http", "a", "/x", [("user-agent", "t")], True)
events = server.receive_data(client.data_to_send(), 0.0)
request = next(e for e in events if isinstance(e, Request))
server.send_headers(sid, 200, [(b"content-length", b"2")])
server.send_data(sid, b"ok", end_stream=True)
events = client.receive_data(server.data_to_send(), 0.0)
response = next(e for e in events if isinstance(e, Response))
print(request.target, response.status)
"""
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["/x", "200"]
