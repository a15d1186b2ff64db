"""Content codings: gzip, br and zstd, chosen by q-value, decoded boundedly on both sides."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import shutil
import tempfile
import tracemalloc
from typing import Any

import pytest

from squall._content_coding import (
    ContentCodingError,
    available_codings,
    choose_coding,
    make_decoder,
    make_encoder,
    parse_accept_encoding,
)
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.web import Application, RequestHandler, StaticFileHandler
from tests._wait import HANG_GUARD

brotli = pytest.importorskip("brotli", reason="Brotli not installed (pip install squall[brotli])")
zstandard = pytest.importorskip("zstandard", reason="zstandard not installed (squall[zstd])")

TEXT = b"".join(b"line %06d of a compressible text body\n" % i for i in range(4000))
CURL = shutil.which("curl")


def encode(coding: str, data: bytes) -> bytes:
    return make_encoder(coding).encode(data, True)


def decode_all(coding: str, data: bytes, step: int = 4096) -> bytes:
    decoder = make_decoder(coding)
    assert decoder is not None
    out = []
    for i in range(0, len(data), 1000):
        decoder.feed(data[i : i + 1000])
        while piece := decoder.read(step):
            assert len(piece) <= step
            out.append(piece)
    decoder.finish()
    return b"".join(out)


# -- negotiation --------------------------------------------------------------


def test_all_three_codings_are_available() -> None:
    assert available_codings() == ("br", "zstd", "gzip")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("gzip, deflate, br, zstd", "br"),  # a tie goes to our order
        ("gzip;q=1.0, br;q=0.5, zstd;q=0.8", "gzip"),
        ("br;q=0, gzip;q=0.1", "gzip"),
        ("*;q=0.3, gzip;q=0.2", "br"),  # "*" covers the codings not named
        ("zstd", "zstd"),
        ("x-gzip", "gzip"),
        ("identity", None),
        ("gzip;q=bogus", None),  # a malformed weight refuses, it does not guess
        ("gzip;q=2", None),
        ("", None),
    ],
)
def test_choose_by_qvalue(header: str, expected: str | None) -> None:
    assert choose_coding(header, available_codings()) == expected


def test_parse_keeps_the_best_weight_of_a_repeated_coding() -> None:
    assert parse_accept_encoding("GZIP;q=0.2, gzip;Q=0.7") == {"gzip": 0.7}


# -- codecs --------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_streamed_encoding_round_trips(coding: str) -> None:
    encoder = make_encoder(coding)
    first = encoder.encode(TEXT[:50000], False)
    # Each flushed piece decodes on its own, before the stream ends.
    assert decode_all_partial(coding, first) == TEXT[:50000]
    data = first + encoder.encode(TEXT[50000:], True)
    assert len(data) < len(TEXT) // 4
    assert decode_all(coding, data) == TEXT


def decode_all_partial(coding: str, data: bytes) -> bytes:
    decoder = make_decoder(coding)
    assert decoder is not None
    decoder.feed(data)
    out = b""
    while piece := decoder.read(65536):
        out += piece
    return out


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_truncated_and_corrupt_streams_are_errors(coding: str) -> None:
    data = encode(coding, TEXT)
    with pytest.raises(ContentCodingError, match=f"invalid {coding} data"):
        decode_all(coding, data[: len(data) // 2])
    with pytest.raises(ContentCodingError, match=f"invalid {coding} data"):
        decode_all(coding, b"\x00not compressed at all" * 10)


def test_concatenated_gzip_members_and_zstd_frames() -> None:
    assert decode_all("gzip", gzip.compress(b"a" * 10) + gzip.compress(b"b" * 10)) == (
        b"a" * 10 + b"b" * 10
    )
    two = zstandard.ZstdCompressor().compress(b"x" * 5) + zstandard.ZstdCompressor().compress(b"y")
    assert decode_all("zstd", two) == b"xxxxxy"


BOMB_SIZE = 32 * 1024 * 1024


def bomb(coding: str) -> bytes:
    zeros = b"\0" * BOMB_SIZE
    if coding == "br":
        return bytes(brotli.compress(zeros, quality=5))
    if coding == "zstd":
        return bytes(zstandard.ZstdCompressor(level=3).compress(zeros))
    return gzip.compress(zeros, 6)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_bomb_decodes_in_bounded_memory(coding: str) -> None:
    data = bomb(coding)
    assert len(data) < BOMB_SIZE // 500
    decoder = make_decoder(coding)
    assert decoder is not None
    tracemalloc.start()
    try:
        decoder.feed(data)
        total = 0
        while piece := decoder.read(65536):
            total += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == BOMB_SIZE
    # The whole expansion is never held: a few MB at most.
    assert peak < 8 * 1024 * 1024, peak


# -- the server ---------------------------------------------------------------


class Text(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/plain")
        self.write(TEXT)

    def post(self) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.write(b"%d:" % len(self.request.body) + self.request.body[:20])


class Coded(RequestHandler):
    """A response coded by hand, to test the client's decoders."""

    def get(self, coding: str) -> None:
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Encoding", coding)
        self.write(bomb(coding) if self.get_argument("bomb", None) else encode(coding, TEXT))


class EncodingServerTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.static = tempfile.mkdtemp()
        with open(os.path.join(self.static, "app.js"), "wb") as f:
            f.write(TEXT)
        for coding, suffix in (("br", ".br"), ("gzip", ".gz")):
            with open(os.path.join(self.static, "app.js" + suffix), "wb") as f:
                f.write(encode(coding, TEXT))
        return Application(
            [
                ("/text", Text),
                (r"/coded/(\w+)", Coded),
                (
                    r"/pre/(.*)",
                    StaticFileHandler,
                    {"path": self.static, "precompressed": True},
                ),
            ],
            compress_response=True,
        )

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"decompress_request": True, "max_body_size": 1024 * 1024}

    def tearDown(self) -> None:
        super().tearDown()
        shutil.rmtree(self.static)

    def test_each_coding_by_accept_encoding(self) -> None:
        for header, coding in [
            ("br", "br"),
            ("zstd", "zstd"),
            ("gzip", "gzip"),
            ("br;q=0.1, zstd", "zstd"),
        ]:
            response = self.fetch(
                "/text", headers={"Accept-Encoding": header}, decompress_response=False
            )
            assert response.headers["Content-Encoding"] == coding
            assert response.headers["Vary"] == "Accept-Encoding"
            assert decode_all(coding, response.body) == TEXT

    def test_client_decodes_all_three(self) -> None:
        for coding in ("gzip", "br", "zstd"):
            response = self.fetch(f"/coded/{coding}")
            assert response.body == TEXT
            assert response.headers["X-Consumed-Content-Encoding"] == coding

    def test_client_refuses_a_bomb_past_max_body_size(self) -> None:
        from squall.simple_httpclient import HTTPStreamClosedError, SimpleAsyncHTTPClient

        client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=1024 * 1024)
        try:
            for coding in ("br", "zstd"):
                with (
                    ExpectLog(
                        "squall.general", ".*decompressed body too large", level=logging.INFO
                    ),
                    pytest.raises(HTTPStreamClosedError),
                ):
                    self.io_loop.run_sync(
                        lambda coding=coding: client.fetch(self.get_url(f"/coded/{coding}?bomb=1"))
                    )
        finally:
            client.close()

    def test_request_bodies_in_each_coding(self) -> None:
        for coding in ("gzip", "br", "zstd"):
            response = self.fetch(
                "/text",
                method="POST",
                body=encode(coding, TEXT),
                headers={"Content-Encoding": coding},
            )
            assert response.body == b"%d:" % len(TEXT) + TEXT[:20]

    def test_request_bomb_is_refused_with_400(self) -> None:
        for coding in ("br", "zstd"):
            with ExpectLog("squall.general", ".*decompressed body too large", level=logging.INFO):
                response = self.fetch(
                    "/text", method="POST", body=bomb(coding), headers={"Content-Encoding": coding}
                )
            assert response.code == 400

    def test_precompressed_sibling(self) -> None:
        response = self.fetch(
            "/pre/app.js", headers={"Accept-Encoding": "gzip, br"}, decompress_response=False
        )
        assert response.headers["Content-Encoding"] == "br"
        assert response.headers["Content-Type"] == "text/javascript"
        assert response.body == encode("br", TEXT)
        plain = self.fetch("/pre/app.js", headers={"Accept-Encoding": "identity"})
        assert "Content-Encoding" not in plain.headers
        assert plain.body == TEXT
        # Each representation has its own validator.
        assert plain.headers["Etag"] != response.headers["Etag"]
        # zstd has no sibling here: the next best that has one is sent.
        gz = self.fetch(
            "/pre/app.js",
            headers={"Accept-Encoding": "zstd, gzip;q=0.5"},
            decompress_response=False,
        )
        assert gz.headers["Content-Encoding"] == "gzip"

    def test_stale_sibling_is_not_served(self) -> None:
        path = os.path.join(self.static, "app.js")
        stat = os.stat(path)
        os.utime(path + ".br", (stat.st_atime, stat.st_mtime - 100))
        response = self.fetch(
            "/pre/app.js", headers={"Accept-Encoding": "br"}, decompress_response=False
        )
        # The br sibling is older than the file: the transform compresses afresh.
        assert decode_all("br", response.body) == TEXT

    @gen_test
    async def test_curl_decodes_what_we_send(self) -> None:
        if CURL is None:
            pytest.skip("the curl command is not installed")
        for coding in ("gzip", "br", "zstd"):
            proc = await asyncio.create_subprocess_exec(
                CURL,
                "-s",
                "--compressed",
                "-D",
                "-",
                "-H",
                f"Accept-Encoding: {coding}",
                self.get_url("/text"),
                stdout=asyncio.subprocess.PIPE,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), HANG_GUARD)
            head, _, body = out.partition(b"\r\n\r\n")
            if proc.returncode == 61:  # pragma: no cover - a curl built without that decoder
                pytest.skip(f"this curl cannot decode {coding}")
            assert f"content-encoding: {coding}".encode() in head.lower()
            assert body == TEXT


class UndecodedRequestTest(AsyncHTTPTestCase):
    """Without ``decompress_request`` a coded body reaches the handler as sent."""

    def get_app(self) -> Application:
        return Application([("/text", Text)])

    def test_a_coded_json_body_is_the_application_s_to_decode(self) -> None:
        body = encode("gzip", TEXT)
        response = self.fetch(
            "/text",
            method="POST",
            body=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        assert response.body == b"%d:" % len(body) + body[:20]

    def test_a_coded_form_is_refused(self) -> None:
        # Its arguments cannot be read without decoding it first.
        with ExpectLog("squall.general", ".*Unsupported Content-Encoding: gzip"):
            response = self.fetch(
                "/text",
                method="POST",
                body=encode("gzip", b"a=1"),
                headers={
                    "Content-Encoding": "gzip",
                    "Content-Type": "application/x-www-form-urlencoded",
                },
            )
        assert response.code == 400


def test_unknown_setting_encoding_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown content coding"):
        Application([], compress_response=True, compress_response_encodings=["gzip", "lzma"])


def test_setting_restricts_the_codings() -> None:
    app = Application([], compress_response=True, compress_response_encodings="gzip")
    assert app.transforms[0].ENCODINGS == ("gzip",)  # type: ignore[attr-defined]


# -- a browser -------------------------------------------------------------------

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
PAGE = (
    "<html><head><script src=/z.js></script><script src=/g.js></script></head>"
    "<body><p id=x>" + "brotli text " * 300 + "</p></body></html>"
)


class Page(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "text/html")
        self.write(PAGE)

    def on_finish(self) -> None:
        self.application.settings["sent"]["page"] = self._headers.get("Content-Encoding")


class Script(RequestHandler):
    """A script coded by hand in one coding: it marks the page when it runs."""

    def get(self, coding: str) -> None:
        self.application.settings["sent"][coding] = self.request.headers.get("Accept-Encoding")
        self.set_header("Content-Type", "text/javascript")
        self.set_header("Content-Encoding", coding)
        mark = "ran-" + coding
        source = f"document.addEventListener('DOMContentLoaded', () => document.body.classList.add('{mark}'));"
        self.write(encode(coding, source.encode() + b"/*" + b" " * 2000 + b"*/"))


class ScriptAlias(Script):
    def get(self, letter: str) -> None:  # type: ignore[override]
        super().get("zstd" if letter == "z" else "gzip")


class BrowserTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/", Page), (r"/(z|g)\.js", ScriptAlias)], compress_response=True, sent={}
        )

    @gen_test(timeout=30)
    async def test_chromium_decodes_br_zstd_and_gzip(self) -> None:
        if CHROMIUM is None:
            pytest.skip("no chromium installed (Debian: apt-get install chromium)")
        proc = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--dump-dom",
            self.get_url("/"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        dom, _ = await asyncio.wait_for(proc.communicate(), HANG_GUARD)
        sent = self._app.settings["sent"]
        # The page went out as br (Chromium takes br and zstd, and br is our first).
        assert sent["page"] == "br", sent
        assert dom.count(b"brotli text") == 300
        assert b"ran-zstd" in dom and b"ran-gzip" in dom, dom[:300]


def test_tornado_style_subclass_can_turn_compression_off() -> None:
    from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
    from squall.web import GZipContentEncoding

    class NoBr(GZipContentEncoding):
        def __init__(self, request: HTTPServerRequest) -> None:
            super().__init__(request)
            if request.path == "/raw":
                self._gzipping = False

    for path, expected in (("/x", "br"), ("/raw", None)):
        request = HTTPServerRequest(
            start_line=RequestStartLine("GET", path, "HTTP/1.1"),
            headers=HTTPHeaders({"Accept-Encoding": "br, gzip"}),
        )
        headers = HTTPHeaders({"Content-Type": "text/plain"})
        _, headers, body = NoBr(request).transform_first_chunk(200, headers, TEXT, True)
        assert headers.get("Content-Encoding") == expected
        assert (body == TEXT) is (expected is None)
