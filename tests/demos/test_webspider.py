"""The web spider demo against a small local site."""

from __future__ import annotations

import collections
import socket

import pytest

import squall.web
from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.netutil import bind_sockets
from tests._wait import HANG_GUARD

from ._util import load, run

spider = load("webspider/spider.py")

PAGES = {
    "/site/": '<a href="a">A</a> <a href="/site/b#top">B</a> <a href="/outside">out</a>'
    ' <a href="http://example.invalid/">far</a> <a href="mailto:x@y">mail</a>',
    "/site/a": '<a href="b">B again</a> <a href="/site/missing">gone</a>'
    ' <a href="/site/notes.txt">notes</a> <a href="/site/moved">moved</a>',
    "/site/b": '<a href="./">home</a> <a HREF="/site/a#x">A</a>',
    "/site/c": "<p>no links</p>",
}


class Site(squall.web.RequestHandler):
    def get(self) -> None:
        path = self.request.path
        self.settings["hits"][path] += 1
        if path == "/site/moved":
            self.redirect("/site/c")
        elif path == "/site/notes.txt":
            self.set_header("Content-Type", "text/plain")
            self.write('<a href="/site/never">not html</a>')
        elif path in PAGES:
            self.write(f"<html><body>{PAGES[path]}</body></html>")
        else:
            raise squall.web.HTTPError(404)


def test_crawls_every_page_under_the_prefix_once() -> None:
    hits: collections.Counter[str] = collections.Counter()

    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = HTTPServer(squall.web.Application([(r"/.*", Site)], hits=hits))
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        try:
            root = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/site/"
            result = await spider.crawl(root, concurrency=3, client=http, timeout=HANG_GUARD)
        finally:
            http.close()
            server.stop()
        fetched = {url.removeprefix(root): code for url, code in result.fetched.items()}
        assert fetched == {"": 200, "a": 200, "b": 200, "notes.txt": 200, "moved": 200}
        assert {url.removeprefix(root): err for url, err in result.failed.items()} == {
            "missing": "HTTP 404"
        }

    run(main())
    assert hits == {
        "/site/": 1,
        "/site/a": 1,
        "/site/b": 1,
        "/site/missing": 1,
        "/site/notes.txt": 1,
        "/site/moved": 1,
        "/site/c": 1,  # reached by following the redirect, not queued again
    }


def test_link_extraction() -> None:
    html = (
        '<a href=" x.html#f ">x</a><a>none</a><a href="//cdn.test/y">y</a><a href="ftp://z">z</a>'
    )
    assert spider.links("http://h.test/dir/page", html) == [
        "http://h.test/dir/x.html",
        "http://cdn.test/y",
    ]


def test_rejects_no_workers() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        run(spider.crawl("http://127.0.0.1:1/", concurrency=0))
