"""Output transforms: the identity base class and gzip compression."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import pytest

from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, RequestHandler
from squall.web.transforms import GZipContentEncoding, OutputTransform

TEXT = b"squall " * 400  # well over MIN_LENGTH, and compressible


def request(accept: str = "gzip, deflate") -> HTTPServerRequest:
    return HTTPServerRequest(
        headers=HTTPHeaders({"Accept-Encoding": accept}),
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
    )


def headers(content_type: str = "text/html; charset=UTF-8", **extra: str) -> HTTPHeaders:
    result = HTTPHeaders({"Content-Type": content_type})
    for name, value in extra.items():
        result[name.replace("_", "-")] = value
    return result


def test_output_transform_is_the_identity() -> None:
    transform = OutputTransform(request())
    h = headers()
    assert transform.transform_first_chunk(200, h, b"x", True) == (200, h, b"x")
    assert transform.transform_chunk(b"y", False) == b"y"


def test_whole_body_is_compressed_with_its_new_length() -> None:
    transform = GZipContentEncoding(request())
    status, h, chunk = transform.transform_first_chunk(
        200, headers(Content_Length=str(len(TEXT))), TEXT, True
    )
    assert status == 200
    assert h["Content-Encoding"] == "gzip"
    assert h["Vary"] == "Accept-Encoding"
    assert h["Content-Length"] == str(len(chunk))
    assert gzip.decompress(chunk) == TEXT


def test_streamed_body_is_one_gzip_stream_decodable_as_it_arrives() -> None:
    transform = GZipContentEncoding(request())
    _, h, first = transform.transform_first_chunk(
        200, headers(Content_Length="999"), b"a" * 10, False
    )
    assert "Content-Length" not in h
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    # A sync flush per chunk: each chunk decodes fully before the next one.
    assert decoder.decompress(first) == b"a" * 10
    second = transform.transform_chunk(b"b" * 10, False)
    assert decoder.decompress(second) == b"b" * 10
    last = transform.transform_chunk(b"c", True)
    assert decoder.decompress(last) == b"c"
    assert decoder.eof
    assert gzip.decompress(first + second + last) == b"a" * 10 + b"b" * 10 + b"c"


@pytest.mark.parametrize(
    ("accept", "h", "body", "finishing"),
    [
        ("identity", headers(), TEXT, True),  # not accepted
        ("gzip", headers("image/png"), TEXT, True),  # not compressible
        ("gzip", headers(), b"short", True),  # complete and short
        ("gzip", headers(Content_Encoding="br"), TEXT, True),  # already encoded
        ("gzip", headers(Content_Range="bytes 0-2799/5000"), TEXT, True),  # a range
        ("gzip", headers(Content_Range="bytes 0-2799/5000"), TEXT, False),  # a streamed range
    ],
)
def test_left_alone(accept: str, h: HTTPHeaders, body: bytes, finishing: bool) -> None:
    transform = GZipContentEncoding(request(accept))
    _, out_headers, chunk = transform.transform_first_chunk(200, h, body, finishing)
    assert chunk == body
    assert out_headers.get("Content-Encoding") != "gzip"
    assert out_headers["Vary"] == "Accept-Encoding"
    assert transform.transform_chunk(b"more", True) == b"more"


def test_short_streamed_body_is_still_compressed() -> None:
    transform = GZipContentEncoding(request())
    _, h, chunk = transform.transform_first_chunk(200, headers(), b"hi", False)
    assert h["Content-Encoding"] == "gzip"
    assert zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(chunk) == b"hi"


@pytest.mark.parametrize(
    "ctype", sorted(GZipContentEncoding.CONTENT_TYPES) + ["text/plain", "text/css"]
)
def test_compressible_types(ctype: str) -> None:
    transform = GZipContentEncoding(request())
    _, h, _ = transform.transform_first_chunk(200, headers(ctype), TEXT, True)
    assert h["Content-Encoding"] == "gzip"


def test_vary_is_extended() -> None:
    h = headers()
    h.add("Vary", "Cookie")
    h.add("Vary", "Accept-Language")
    _, out, _ = GZipContentEncoding(request()).transform_first_chunk(200, h, TEXT, True)
    assert [v.strip() for v in out["Vary"].split(",")] == [
        "Cookie",
        "Accept-Language",
        "Accept-Encoding",
    ]


class GzipServerTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        class Big(RequestHandler):
            def get(self) -> None:
                self.write(TEXT)

        class Streamed(RequestHandler):
            async def get(self) -> None:
                for part in (b"one ", b"two ", b"three"):
                    self.write(part)
                    await self.flush()

        return Application(
            [("/big", Big), ("/streamed", Streamed)],
            compress_response=True,
            static_path=str(Path(__file__).parent),
        )

    def test_a_range_of_a_static_file_is_sent_as_it_is(self) -> None:
        whole = Path(__file__).read_bytes()
        response = self.fetch(
            "/static/test_transforms.py",
            decompress_response=False,
            headers={"Accept-Encoding": "gzip", "Range": "bytes=100-2099"},
        )
        assert response.code == 206
        assert "Content-Encoding" not in response.headers
        assert response.headers["Content-Range"] == f"bytes 100-2099/{len(whole)}"
        assert response.body == whole[100:2100]
        # The whole file is still compressed.
        response = self.fetch(
            "/static/test_transforms.py",
            decompress_response=False,
            headers={"Accept-Encoding": "gzip"},
        )
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.body) == whole

    def test_compressed_response(self) -> None:
        response = self.fetch(
            "/big", decompress_response=False, headers={"Accept-Encoding": "gzip"}
        )
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(response.body) == TEXT
        assert int(response.headers["Content-Length"]) == len(response.body)

    def test_client_decompresses(self) -> None:
        assert self.fetch("/big").body == TEXT
        assert self.fetch("/streamed").body == b"one two three"

    def test_not_requested(self) -> None:
        response = self.fetch(
            "/big", decompress_response=False, headers={"Accept-Encoding": "identity"}
        )
        assert "Content-Encoding" not in response.headers
        assert response.body == TEXT
        assert response.headers["Vary"] == "Accept-Encoding"
