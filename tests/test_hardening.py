"""Tornado 6.4.1-6.6.0's security and hardening items, one test (or more) each.

The checklist, with what Squall does for each item, is in tests/COMPAT.md
("Tornado 6.5 hardening"). Every test here sends the hostile input and
asserts the refusal (or the safe result) Squall gives it.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import http.cookies
import logging
import os
import socket
import tempfile
import warnings
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from squall import httputil
from squall._ws._mask import mask
from squall.auth import AuthError, OpenIdMixin
from squall.escape import json_decode
from squall.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from squall.httpserver import HTTPServer
from squall.httputil import (
    HTTPHeaders,
    HTTPInputError,
    ParseBodyConfig,
    ParseMultipartConfig,
    parse_cookie,
    parse_multipart_form_data,
)
from squall.iostream import IOStream
from squall.simple_httpclient import SimpleAsyncHTTPClient
from squall.testing import AsyncHTTPTestCase, bind_unused_port, gen_test
from squall.web import (
    Application,
    HTTPError,
    RedirectHandler,
    RequestHandler,
    StaticFileHandler,
)
from tests._growth import LIMIT, assert_linear, growth

ZEROS = b"\0" * 1_000_000
GZIPPED_ZEROS = gzip.compress(ZEROS)  # about 1 kB that expands to 1 MB


class Echo(RequestHandler):
    """Answers with what it saw: selected headers, arguments, files."""

    def _echo(self) -> None:
        names = ("X-A", "Authorization", "Cookie", "Host")
        self.write(
            {
                "headers": {n: self.request.headers.get(n) for n in names},
                "arguments": len(self.request.arguments),
                "files": {k: [f.filename for f in v] for k, v in self.request.files.items()},
            }
        )

    get = post = _echo


class Redirect(RequestHandler):
    def get(self) -> None:
        self.redirect(self.get_argument("to"))


class Gzipped(RequestHandler):
    def get(self) -> None:
        self.set_header("Content-Encoding", "gzip")
        self.write(GZIPPED_ZEROS)


class OutgoingHeaders(RequestHandler):
    def get(self) -> None:
        self.set_header("X-Tab", "a\tb")
        try:
            self.set_header("X-Del", "a\x7fb")
        except ValueError as exc:
            self.set_header("X-Del-Refused", str(exc)[:60].replace("\x7f", "DEL"))


class Reason(RequestHandler):
    def get(self) -> None:
        if self.get_argument("error", None):
            raise HTTPError(400, reason="<script>alert(1)</script>")
        self.set_status(200, "OK\r\nX-Injected: 1")
        self.write("sent")


class Cookies(RequestHandler):
    def get(self) -> None:
        refused = []
        attempts: dict[str, dict[str, Any]] = {
            "domain": {"domain": "a.example; Secure"},
            "path": {"path": "/;HttpOnly"},
            "samesite": {"samesite": "Lax; Domain=evil.example"},
            "max_age": {"max_age": "1; Domain=evil.example"},
            "newline": {"domain": "a\r\nX-Injected: 1"},
        }
        for label, kwargs in attempts.items():
            try:
                self.set_cookie("c", "v", **kwargs)
            except (ValueError, http.cookies.CookieError):
                refused.append(label)
        with warnings.catch_warnings():
            # The capitalized spelling is deprecated; what matters here is
            # that it is checked like the lowercase one.
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                self.set_cookie("c", "v", Domain="a.example; Secure")
            except (ValueError, http.cookies.CookieError):
                refused.append("Domain")
        self.write({"refused": refused, "set": self._headers.get_list("Set-Cookie")})


class NoContent(RequestHandler):
    def get(self) -> None:
        raise HTTPError(204)


def _static_tree() -> tuple[str, str]:
    top = tempfile.mkdtemp(prefix="squall-hardening-")
    root = os.path.join(top, "root")
    os.mkdir(root)
    with open(os.path.join(root, "inside.txt"), "w") as f:
        f.write("inside")
    with open(os.path.join(top, "secret.txt"), "w") as f:
        f.write("secret")
    os.symlink(os.path.join(top, "secret.txt"), os.path.join(root, "link.txt"))
    return top, root


class ServerHardeningTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.top, root = _static_tree()
        return Application(
            [
                ("/echo", Echo),
                ("/redirect", Redirect),
                ("/gzipped", Gzipped),
                ("/outgoing", OutgoingHeaders),
                ("/reason", Reason),
                ("/cookies", Cookies),
                ("/nocontent", NoContent),
                ("/static/(.*)", StaticFileHandler, {"path": root}),
                (
                    "/allowed/(.*)",
                    StaticFileHandler,
                    {"path": root, "allowed_symlink_directory": [self.top]},
                ),
                ("/go/(.*)", RedirectHandler, {"url": "/{0}"}),
            ]
        )

    def tearDown(self) -> None:
        super().tearDown()
        for name in ("root/link.txt", "root/inside.txt", "secret.txt", "root", ""):
            path = os.path.join(self.top, name)
            if os.path.isdir(path) and not os.path.islink(path):
                os.rmdir(path)
            else:
                os.unlink(path)

    async def raw(self, data: bytes) -> bytes:
        """Sends ``data`` and returns everything until the server closes."""
        stream = IOStream(socket.socket())
        try:
            await stream.connect(("127.0.0.1", self.get_http_port()))
            await stream.write(data)
            return await stream.read_until_close()
        finally:
            stream.close()

    async def status_of(self, data: bytes) -> bytes:
        return (await self.raw(data)).split(b"\r\n", 1)[0]

    # 6.4.1: Transfer-Encoding parsed strictly.
    @gen_test
    async def test_unknown_transfer_coding_is_refused(self) -> None:
        for coding in (b"gzip", b"chunked, gzip", b"chunkedx", b"identity"):
            data = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
            status = await self.status_of(data + b"0\r\n\r\n")
            # 400 as Tornado answers (RFC 9112 §6.1 would also allow 501).
            assert status == b"HTTP/1.1 400 Bad Request", (coding, status)

    # 6.4.1: only SP and HTAB are trimmed around a header value.
    @gen_test
    async def test_only_space_and_tab_are_trimmed(self) -> None:
        body = await self.raw(
            b"GET /echo HTTP/1.1\r\nHost: a\r\nX-A: \t \xa0v\xa0 \t\r\nConnection: close\r\n\r\n"
        )
        head, _, payload = body.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        assert json_decode(payload)["headers"]["X-A"] == "\xa0v\xa0"

    # 6.5.0: control characters in the request line.
    @gen_test
    async def test_control_characters_in_the_request_line_get_400(self) -> None:
        for line in (b"GET /\x01 HTTP/1.1", b"GET /\x7f HTTP/1.1", b"GET / HTTP/1.1\x00"):
            status = await self.status_of(line + b"\r\nHost: a\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 400"), (line, status)

    # 6.5.0: a method that is not a token is a 400, not a 405.
    @gen_test
    async def test_invalid_method_gets_400(self) -> None:
        for method in (b"GE(T", b"G@T", b"GET\x01"):
            status = await self.status_of(method + b" /echo HTTP/1.1\r\nHost: a\r\n\r\n")
            assert status.startswith(b"HTTP/1.1 400"), (method, status)

    # 6.5.0: header names are tokens; control characters (and DEL) are not
    # allowed in values; 6.6.0: obs-fold is refused.
    @gen_test
    async def test_bad_header_fields_get_400(self) -> None:
        for field in (
            b"X@Y: v",
            b"X Y: v",
            b"X\x01: v",
            b"(X): v",
            b"X: a\x01b",
            b"X: a\x00b",
            b"X: a\x7fb",
            b"X: a\rb",
            b"X: a\r\n b",
        ):
            status = await self.status_of(
                b"GET /echo HTTP/1.1\r\nHost: a\r\n" + field + b"\r\n\r\n"
            )
            assert status.startswith(b"HTTP/1.1 400"), (field, status)

    # 6.5.0, 6.5.2, 6.6.0: Host validated; missing (HTTP/1.1) or repeated is
    # a 400 logged at INFO without a traceback.
    @gen_test
    async def test_host_rules(self) -> None:
        refused = [
            b"GET /echo HTTP/1.1\r\n\r\n",
            b"GET http://a/echo HTTP/1.1\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a b\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a/b\r\n\r\n",
            b"GET /echo HTTP/1.1\r\nHost: a@b\r\n\r\n",
            b"GET /echo HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        ]
        with self.assertLogs("squall", level="INFO") as logs:
            for data in refused:
                status = await self.status_of(data)
                assert status == b"HTTP/1.1 400 Bad Request", (data, status)
        malformed = [r for r in logs.records if "Malformed HTTP message" in r.getMessage()]
        assert len(malformed) == len(refused)
        assert all(r.levelno == logging.INFO and r.exc_info is None for r in logs.records)
        assert "Missing Host header" in malformed[0].getMessage()
        # HTTP/1.0 may leave Host out.
        ok = await self.raw(b"GET /echo HTTP/1.0\r\n\r\n")
        assert ok.startswith(b"HTTP/1.1 200 OK") and b'"Host": null' in ok

    # 6.5.0: an invalid If-Modified-Since is ignored, not a 500.
    def test_invalid_if_modified_since_is_ignored(self) -> None:
        for value in ("garbage", "Sun, 99 Foo 2024 99:99:99 GMT", "\u00e9"):
            response = self.fetch("/static/inside.txt", headers={"If-Modified-Since": value})
            assert response.code == 200 and response.body == b"inside", value

    # 6.5.0: outgoing header values may hold a tab; DEL is refused.
    def test_outgoing_header_characters(self) -> None:
        response = self.fetch("/outgoing")
        assert response.headers["X-Tab"] == "a\tb"
        assert "X-Del" not in response.headers
        assert "X-Del-Refused" in response.headers

    # 6.5.3 (CVE-2025-67724): a reason phrase cannot inject headers or markup.
    # A phrase that may not stand in a status line becomes "Unknown".
    def test_reason_phrase_cannot_inject(self) -> None:
        response = self.fetch("/reason")
        assert response.code == 200 and response.reason == "Unknown"
        assert "X-Injected" not in response.headers and response.body == b"sent"
        error = self.fetch("/reason?error=1")
        assert error.code == 400 and error.reason == "Unknown"
        assert b"<script>" not in error.body

    # 6.5.5, 6.5.8, 6.6.0: cookie attributes cannot inject other attributes.
    def test_cookie_attributes_cannot_inject(self) -> None:
        result = json_decode(self.fetch("/cookies").body)
        assert sorted(result["refused"]) == sorted(
            ["domain", "path", "samesite", "max_age", "newline", "Domain"]
        )
        assert result["set"] == []

    # 6.5.9: StaticFileHandler does not follow a symlink out of its root
    # unless allowed_symlink_directory says so (a list since 6.5.10).
    def test_symlink_out_of_the_static_root(self) -> None:
        assert self.fetch("/static/inside.txt").body == b"inside"
        refused = self.fetch("/static/link.txt")
        assert refused.code == 403 and b"secret" not in refused.body
        allowed = self.fetch("/allowed/link.txt")
        assert allowed.code == 200 and allowed.body == b"secret"

    # 6.6.0: RedirectHandler will not format a protocol-relative target.
    def test_redirect_handler_refuses_protocol_relative(self) -> None:
        response = self.fetch("/go//evil.example/x", follow_redirects=False)
        assert response.code == 400
        assert "Location" not in response.headers
        same_site = self.fetch("/go/echo", follow_redirects=False)
        assert same_site.code == 301 and same_site.headers["Location"] == "/echo"

    # 6.6.0: HTTPError(204) sends no body.
    def test_http_error_204_has_no_body(self) -> None:
        response = self.fetch("/nocontent")
        assert response.code == 204 and response.body == b""
        assert "Content-Length" not in response.headers

    # 6.5.0 (CVE-2025-47287), 6.5.5, 6.5.8: a bad multipart body is one 400
    # and one log line, whatever it holds.
    def test_malformed_multipart_is_one_400_and_one_log_line(self) -> None:
        bad_part = b"--B\r\nno-headers-end\r\n"
        body = bad_part * 50 + b"--B--\r\n"
        with self.assertLogs("squall", level="INFO") as logs:
            response = self.fetch(
                "/echo",
                method="POST",
                body=body,
                headers={"Content-Type": "multipart/form-data; boundary=B"},
            )
        assert response.code == 400
        # One line from the parser (besides the access log's line).
        lines = [r.getMessage() for r in logs.records if r.name != "squall.access"]
        assert len(lines) == 1 and "missing headers" in lines[0], lines

    def test_too_many_multipart_parts_get_400(self) -> None:
        part = b'--B\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n'
        headers = {"Content-Type": "multipart/form-data; boundary=B"}
        ok = self.fetch("/echo", method="POST", body=part * 100 + b"--B--\r\n", headers=headers)
        assert ok.code == 200 and json_decode(ok.body)["arguments"] == 1
        with self.assertLogs("squall", level="WARNING"):
            refused = self.fetch(
                "/echo", method="POST", body=part * 101 + b"--B--\r\n", headers=headers
            )
        assert refused.code == 400

    # 6.5.8 and 6.5.9: at most 1,000 urlencoded arguments, in a body or in
    # the query string; set_parse_body_config changes the limit.
    def test_urlencoded_argument_limit(self) -> None:
        many = "&".join(f"a{i}=1" for i in range(1001))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        with self.assertLogs("squall", level="WARNING"):
            body = self.fetch("/echo", method="POST", body=many, headers=headers)
            query = self.fetch("/echo?" + many)
        assert body.code == 400 and query.code == 400
        under = "&".join(f"a{i}=1" for i in range(1000))
        assert json_decode(self.fetch("/echo?" + under).body)["arguments"] == 1000
        saved = httputil._DEFAULT_PARSE_BODY_CONFIG  # type: ignore[attr-defined]
        config = ParseBodyConfig()
        config.urlencoded.max_arguments = 2000
        httputil.set_parse_body_config(config)
        try:
            raised = self.fetch("/echo", method="POST", body=many, headers=headers)
        finally:
            httputil.set_parse_body_config(saved)
        assert raised.code == 200 and json_decode(raised.body)["arguments"] == 1001


class BodyLimitTest(AsyncHTTPTestCase):
    """The behaviours benchmarks/memory_bounds.py measures, on a small limit."""

    def get_app(self) -> Application:
        return Application([("/echo", Echo)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"max_body_size": 1000, "decompress_request": True}

    async def exchange(self, data: bytes, then: bytes = b"") -> bytes:
        stream = IOStream(socket.socket())
        try:
            await stream.connect(("127.0.0.1", self.get_http_port()))
            await stream.write(data)
            if then:
                # The server may answer and close before reading this.
                try:
                    await stream.write(then)
                except OSError:
                    pass
            return await stream.read_until_close()
        finally:
            stream.close()

    @gen_test
    async def test_declared_length_over_the_limit_is_refused_before_the_body(self) -> None:
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n"
        assert (await self.exchange(head)).startswith(b"HTTP/1.1 400 Bad Request")

    @gen_test
    async def test_chunked_body_running_past_the_limit_is_refused(self) -> None:
        head = b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"1f4\r\n" + b"x" * 500 + b"\r\n"
        response = await self.exchange(head + chunk * 2, chunk * 20 + b"0\r\n\r\n")
        assert response.startswith(b"HTTP/1.1 400 Bad Request")

    @gen_test
    async def test_gzip_body_expanding_past_the_limit_is_refused(self) -> None:
        bomb = gzip.compress(b"\0" * 100_000)
        head = (
            b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Encoding: gzip\r\n"
            b"Content-Length: %d\r\n\r\n" % len(bomb)
        )
        assert len(bomb) < 1000
        assert (await self.exchange(head + bomb)).startswith(b"HTTP/1.1 400 Bad Request")
        fine = gzip.compress(b"a=1")
        head = head.replace(b"%d" % len(bomb), b"%d" % len(fine))
        ok = await self.exchange(head.replace(b"Host: a", b"Host: a\r\nConnection: close") + fine)
        assert ok.startswith(b"HTTP/1.1 200 OK")


# 6.4.2 (CVE-2024-7592) and 6.5.3 (CVE-2025-67725, CVE-2025-67726): inputs
# that were quadratic parse in linear time. Each shape took Tornado seconds
# to minutes before the fix. Linear is shown by growth (tests/_growth.py):
# the cost at 4n is about 4x the cost at n, never the 16x of a quadratic
# parse, however busy the machine.


def test_cookie_parsing_is_linear() -> None:
    shapes: list[Callable[[int], str]] = [
        lambda n: 'a="' + "\\" * n + '"',
        lambda n: "a=" + '"' * n,
        lambda n: "a=" + "\\000" * (n // 4),
    ]
    for shape in shapes:
        assert_linear(lambda n, s=shape: functools.partial(parse_cookie, s(n)), 10_000)
    assert parse_cookie("a=" + '"' * 10) is not None


def test_repeated_header_parsing_is_linear() -> None:
    # 20,000 lines: joining repeated values by concatenation (Tornado's
    # shape before 6.5.3) copies with memcpy, whose quadratic cost passes
    # the linear cost of the loop only from about this many.
    assert_linear(lambda n: functools.partial(HTTPHeaders.parse, "X: a\r\n" * n), 20_000)
    headers = HTTPHeaders.parse("X: a\r\n" * 10_000)
    assert len(headers.get_list("X")) == 10_000
    assert len(headers["X"]) == 2 * 10_000 - 1


def _disposition_form(n: int) -> bytes:
    disposition = b'Content-Disposition: form-data; name="a"' + b';x="\\";' * n
    return b"--B\r\n" + disposition + b"\r\n\r\nv\r\n--B--\r\n"


def test_multipart_part_header_parsing_is_linear() -> None:
    def make(n: int) -> Callable[[], object]:
        body = _disposition_form(n)
        config = ParseMultipartConfig(max_part_header_size=len(body))
        return lambda: parse_multipart_form_data(b"B", body, {}, {}, config=config)

    assert_linear(make, 5000)
    body = _disposition_form(10_000)
    args: dict[str, list[bytes]] = {}
    config = ParseMultipartConfig(max_part_header_size=len(body))
    parse_multipart_form_data(b"B", body, args, {}, config=config)
    assert args == {"a": [b"v"]}


def test_growth_tells_quadratic_from_linear() -> None:
    # The measure itself, on loops whose step counts are known: n(n-1)/2
    # steps grow ~16x for 4x the n, n steps ~4x.
    def quadratic(n: int) -> Callable[[], object]:
        def work() -> int:
            steps = 0
            for i in range(n):
                for _ in range(i):
                    steps += 1
            return steps

        return work

    def linear(n: int) -> Callable[[], object]:
        def work() -> int:
            steps = 0
            for _ in range(n):
                steps += 1
            return steps

        return work

    assert growth(quadratic, 500) > LIMIT
    assert growth(linear, 100_000) < LIMIT


def _form(*parts: bytes) -> bytes:
    return b"".join(b"--B\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n"


PART = b'Content-Disposition: form-data; name="a"\r\n\r\nv'


# 6.5.0: parsing stops at the first bad part and adds nothing.
def test_multipart_stops_at_the_first_error() -> None:
    args: dict[str, list[bytes]] = {}
    body = _form(PART, b"no header end", b"also bad", PART)
    with pytest.raises(HTTPInputError, match="missing headers"):
        parse_multipart_form_data(b"B", body, args, {})
    assert args == {}


# 6.5.5, 6.5.8: the part limit (100 by default) is checked by counting
# delimiters before any part is parsed or copied.
def test_multipart_part_limit_is_checked_before_parsing() -> None:
    args: dict[str, list[bytes]] = {}
    parse_multipart_form_data(b"B", _form(*[PART] * 100), args, {})
    assert len(args["a"]) == 100
    # Part 2 is malformed, but the count refuses the body first.
    body = _form(PART, b"malformed", *[PART] * 200)
    with pytest.raises(HTTPInputError, match="too many parts"):
        parse_multipart_form_data(b"B", body, {}, {})
    with pytest.raises(HTTPInputError, match="too many parts"):
        parse_multipart_form_data(
            b"B", _form(PART, PART), {}, {}, config=ParseMultipartConfig(max_parts=1)
        )


def test_multipart_can_be_disabled_and_part_headers_are_bounded() -> None:
    with pytest.raises(HTTPInputError, match="disabled"):
        parse_multipart_form_data(
            b"B", _form(PART), {}, {}, config=ParseMultipartConfig(enabled=False)
        )
    big = b'Content-Disposition: form-data; name="a"\r\nX: ' + b"x" * 20_000 + b"\r\n\r\nv"
    with pytest.raises(HTTPInputError, match="header too large"):
        parse_multipart_form_data(b"B", _form(big), {}, {})


# 6.5.5: a CR inside a part's header block is refused.
def test_multipart_part_header_with_cr_is_refused() -> None:
    for part in (
        b'Content-Disposition: form-data; name="a"\rX: 1\r\n\r\nv',
        b'Content-Disposition: form-data; name="a\rb"\r\n\r\nv',
    ):
        with pytest.raises(HTTPInputError):
            parse_multipart_form_data(b"B", _form(part), {}, {})


# 6.5.1: a filename outside latin-1 is accepted.
def test_multipart_filename_beyond_latin1() -> None:
    files: dict[str, list[httputil.HTTPFile]] = {}
    name = "\u4e2d\u6587-\U0001f600.txt"
    part = f'Content-Disposition: form-data; name="f"; filename="{name}"\r\n\r\nv'.encode()
    parse_multipart_form_data(b"B", _form(part), {}, files)
    assert files["f"][0].filename == name and files["f"][0].body == b"v"


# 6.5.6 (CVE-2026-49854, an over-read in Tornado's C masking): masking is
# exact for every length and alignment, at the edges of the buffer.
def test_websocket_mask_is_exact_at_every_length() -> None:
    key = b"\x01\x82\x33\xf4"
    data = bytes(range(256)) * 20
    # Short payloads take one int XOR, long ones bytes.translate (2 KiB on).
    for start in range(4):
        for length in [*range(40), 2047, 2048, 2049, 4099]:
            view = memoryview(data)[start : start + length]
            expected = bytes(b ^ key[i % 4] for i, b in enumerate(view))
            assert mask(key, view) == expected


# 6.5.6: OpenID's check_authentication answer must say is_valid:true on a
# line of its own; the phrase inside another value does not count.
class _OpenId(OpenIdMixin, RequestHandler):
    pass


def test_openid_check_authentication_needs_its_own_line() -> None:
    request = HTTPRequest("http://provider.example/")
    handler: Any = _OpenId.__new__(_OpenId)
    for body in (b"ns:x\nerror:is_valid:true\n", b"is_valid:true-ish\n", b"is_valid:false\n"):
        response = HTTPResponse(request, 200, buffer=None)
        response._body = body
        with pytest.raises(AuthError):
            handler._on_authentication_verified(response)


# Client side: simple_httpclient and curl_httpclient.
RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ClientHardeningTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/echo", Echo), ("/redirect", Redirect), ("/gzipped", Gzipped)])

    def setUp(self) -> None:
        super().setUp()
        # A second origin: the same application on another port.
        sock, self.other_port = bind_unused_port()
        self.other = HTTPServer(self._app)
        self.other.add_sockets([sock])

    def tearDown(self) -> None:
        self.other.stop()
        super().tearDown()

    def clients(self) -> list[Any]:
        out: list[Any] = [SimpleAsyncHTTPClient(force_instance=True)]
        try:
            from squall.curl_httpclient import CurlAsyncHTTPClient
        except ImportError:  # pycurl is an optional extra
            pass
        else:
            out.append(CurlAsyncHTTPClient(force_instance=True))
        return out

    async def raw_server(self, handle: RawHandler) -> tuple[asyncio.AbstractServer, str]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        return server, f"http://127.0.0.1:{port}/"

    # 6.5.6 (CVE-2026-49853): Authorization and Cookie are dropped when a
    # redirect leaves the origin, kept when it stays.
    @gen_test
    async def test_credentials_dropped_on_cross_origin_redirect(self) -> None:
        for client in self.clients():
            try:
                for target_port, kept in ((self.other_port, False), (self.get_http_port(), True)):
                    target = f"http://127.0.0.1:{target_port}/echo"
                    response = await client.fetch(
                        self.get_url("/redirect?to=") + target,
                        headers={"Authorization": "Bearer secret", "Cookie": "session=secret"},
                    )
                    seen = json_decode(response.body)["headers"]
                    expected = ["Bearer secret", "session=secret"] if kept else [None, None]
                    assert [seen["Authorization"], seen["Cookie"]] == expected, client
                    basic = await client.fetch(
                        self.get_url("/redirect?to=") + target,
                        auth_username="u",
                        auth_password="p",
                    )
                    assert (json_decode(basic.body)["headers"]["Authorization"] is not None) is kept
            finally:
                client.close()

    # 6.4.1: CR or LF in an outgoing request header is refused (both clients).
    @gen_test
    async def test_crlf_in_request_headers_is_refused(self) -> None:
        for client in self.clients():
            try:
                for value in ("a\rb", "a\nb", "a\r\nX-Injected: 1"):
                    with pytest.raises(ValueError):
                        await client.fetch(self.get_url("/echo"), headers={"X-A": value})
            finally:
                client.close()

    # 6.5.6 (CVE-2026-49855) and 6.5.9: max_body_size bounds the decoded
    # body: a 1 kB gzip member that expands to 1 MB is refused.
    @gen_test
    async def test_max_body_size_applies_after_decompression(self) -> None:
        clients = [SimpleAsyncHTTPClient(force_instance=True, max_body_size=100_000)]
        try:
            from squall.curl_httpclient import CurlAsyncHTTPClient
        except ImportError:
            pass
        else:
            clients.append(CurlAsyncHTTPClient(force_instance=True, max_body_size=100_000))
        for client in clients:
            try:
                with pytest.raises((HTTPClientError, OSError)) as info:
                    await client.fetch(self.get_url("/gzipped"))
                # A streaming_callback does not lift the limit (6.5.9, curl).
                chunks: list[bytes] = []
                with pytest.raises(type(info.value)):
                    await client.fetch(self.get_url("/gzipped"), streaming_callback=chunks.append)
                assert sum(map(len, chunks)) <= 100_000 + 65_536
                small = await client.fetch(self.get_url("/echo"))
                assert small.code == 200
            finally:
                client.close()

    # 6.5.9: an HTTP/1.0-style body (until close) past max_body_size is an
    # error, not a silently truncated success.
    @gen_test
    async def test_read_until_close_body_over_the_limit_is_an_error(self) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 50_000)
            await writer.drain()
            writer.close()

        server, url = await self.raw_server(handle)
        client = SimpleAsyncHTTPClient(force_instance=True, max_body_size=10_000)
        try:
            with pytest.raises(HTTPClientError) as info:
                await client.fetch(url)
            assert info.value.code == 599
            fine = SimpleAsyncHTTPClient(force_instance=True)
            try:
                assert len((await fine.fetch(url)).body) == 50_000
            finally:
                fine.close()
        finally:
            client.close()
            server.close()

    # 6.5.9: more than ten 100 Continue responses are refused.
    @gen_test
    async def test_endless_100_continue_is_refused(self) -> None:
        count = {"n": 10}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" * count["n"])
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
            writer.close()

        server, url = await self.raw_server(handle)
        client = SimpleAsyncHTTPClient(force_instance=True)
        try:
            assert (await client.fetch(url)).body == b"ok"
            count["n"] = 10_000
            with pytest.raises(HTTPClientError) as info:
                await client.fetch(url)
            assert info.value.code == 599
        finally:
            client.close()
            server.close()

    # 6.6.0: a gzip body of several members is decoded whole; bytes after
    # the last member are an error, not ignored.
    @gen_test
    async def test_gzip_members_and_trailing_garbage(self) -> None:
        bodies = {"n": gzip.compress(b"ab") + gzip.compress(b"cd")}

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            body = bodies["n"]
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
            writer.close()

        server, url = await self.raw_server(handle)
        client = SimpleAsyncHTTPClient(force_instance=True)
        try:
            assert (await client.fetch(url)).body == b"abcd"
            bodies["n"] = gzip.compress(b"ab") + b"garbage!"
            with pytest.raises(HTTPClientError):
                await client.fetch(url)
        finally:
            client.close()
            server.close()
