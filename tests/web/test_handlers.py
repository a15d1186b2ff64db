"""ErrorHandler, RedirectHandler and FallbackHandler."""

from __future__ import annotations

import logging
import urllib.parse

from squall import httputil
from squall.escape import utf8
from squall.log import access_log, gen_log
from squall.testing import AsyncHTTPTestCase, ExpectLog
from squall.web import Application, ErrorHandler, FallbackHandler, RedirectHandler
from squall.web.handlers import _literal_prefix, _origin


class Quiet(AsyncHTTPTestCase):
    def setUp(self) -> None:
        self._level = access_log.level
        access_log.setLevel(logging.CRITICAL)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        access_log.setLevel(self._level)


def fallback(request: httputil.HTTPServerRequest) -> None:
    assert request.connection is not None
    request.connection.write_headers(
        httputil.ResponseStartLine("HTTP/1.1", 200, "OK"),
        httputil.HTTPHeaders({"Content-Length": "8"}),
        b"fallback",
    )
    request.connection.finish()


class HandlersTest(Quiet):
    def get_app(self) -> Application:
        return Application(
            [
                ("/error", ErrorHandler, {"status_code": 417}),
                ("/src", RedirectHandler, {"url": "/dst"}),
                ("/src2", RedirectHandler, {"url": "/dst?a=1", "permanent": False}),
                (r"/any/(.*)", RedirectHandler, {"url": "{0}"}),
                (r"/moved(.*)", RedirectHandler, {"url": "https://example.com{0}"}),
                (r"/(.*)/target", RedirectHandler, {"url": "/{0}/destination"}),
                (r"/hostless/(.*)", RedirectHandler, {"url": "https://{0}"}),
                (r"/schemeonly/(.*)", RedirectHandler, {"url": "https:{0}"}),
                (r"/braces/(?P<x>.*)", RedirectHandler, {"url": "/{{lit}}/{x}"}),
                (r"/(.*?)/(.*?)/(.*)", RedirectHandler, {"url": "/{1}/{0}/{2}"}),
                ("/fallback", FallbackHandler, {"fallback": fallback}),
            ],
            xsrf_cookies=True,
            cross_origin_protection=True,
        )

    def location(self, path: str, code: int = 301) -> str:
        response = self.fetch(path, follow_redirects=False)
        assert response.code == code, (path, response.code)
        return response.headers["Location"]

    def test_error_handler_skips_origin_and_xsrf_checks(self) -> None:
        assert self.fetch("/error").code == 417
        headers = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.com"}
        assert self.fetch("/error", method="POST", body="", headers=headers).code == 417
        assert self.fetch("/nowhere", method="POST", body="", headers=headers).code == 404

    def test_redirects(self) -> None:
        assert self.location("/src") == "/dst"
        assert self.location("/src?foo=bar") == "/dst?foo=bar"
        assert self.location("/src2?b=2", 302) == "/dst?a=1&b=2"
        assert self.location("/a/b/c") == "/b/a/c"
        assert self.location("/ok/target?x=1") == "/ok/destination?x=1"
        assert self.location("/moved/x") == "https://example.com/x"
        assert self.location("/any/foo/bar") == "foo/bar"
        assert self.location("/braces/v") == "/{lit}/v"
        value = "\u00e9"
        assert self.location("/any/" + urllib.parse.quote(value)) == utf8(value).decode("latin1")

    def test_open_redirects_are_refused(self) -> None:
        for path in (
            "/a//example.com/b",
            "/a/%5Cexample.com/b",
            "/a/%09/example.com/b",
            "/%2Fevil.com/target",
            "/hostless/evil.com",
            "/schemeonly/evil.com?x=1",
            "/schemeonly////evil.com",
            "/moved.evil.com/x",
            "/moved@evil.com/x",
            "/any/https://evil.com/",
            "/any/javascript:alert(1)",
        ):
            with ExpectLog(gen_log, ".*Redirect URL cannot change the scheme or netloc"):
                assert self.fetch(path, follow_redirects=False).code == 400, path

    def test_invalid_characters_are_refused(self) -> None:
        for path in ("/any/%0Afoo", "/any/a%00b", "/any/%2F%2F%5B?x=1"):
            with ExpectLog(gen_log, ".*Redirect URL (contains invalid|cannot)"):
                assert self.fetch(path, follow_redirects=False).code == 400

    def test_fallback(self) -> None:
        assert self.fetch("/fallback").body == b"fallback"


def test_origin_and_prefix_helpers() -> None:
    assert _origin("/path") == ("", None)
    assert _origin("mailto:x") == ("mailto", None)
    assert _origin("HTTPS:\\\\Evil.com/x") == ("https", "evil.com")
    assert _origin("//a?b") == ("", "a")
    assert _literal_prefix("/a{{b}}/{0}") == "/a{b}/"
    assert _literal_prefix("/x}}y") == "/x}y"
    assert _literal_prefix("plain") == "plain"
