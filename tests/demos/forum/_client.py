"""A cookie-keeping HTTP client and an in-process forum server for the forum's tests."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any, Optional

from squall.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from ..._wait import HANG_GUARD
from .._util import load

forum = load("forum/app.py")
# A bound on a request that hangs, not a measure of speed: with both suites
# of `make test` on two cores, a reply posted on MariaDB beside three other
# posters and four readers once took longer than 3 s.
LIMIT_REQUEST = HANG_GUARD
PASSWORD = "correct horse battery"


class Visitor:
    """One browser's worth of cookies against the forum."""

    def __init__(self, base: str, http: AsyncHTTPClient) -> None:
        self.base = base.rstrip("/")
        self.http = http
        self.cookies: dict[str, str] = {}

    @property
    def xsrf(self) -> str:
        return self.cookies["_xsrf"]

    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())

    async def fetch(
        self, path: str, form: Optional[dict[str, str]] = None, xsrf: bool = True
    ) -> HTTPResponse:
        body = None
        if form is not None:
            if xsrf:
                if "_xsrf" not in self.cookies:
                    await self.fetch("/login")  # its form sets the _xsrf cookie
                form = {"_xsrf": self.xsrf, **form}
            body = urllib.parse.urlencode(form)
        headers = {"Cookie": self.cookie_header()} if self.cookies else {}
        request = HTTPRequest(
            self.base + path,
            method="GET" if form is None else "POST",
            headers=headers,
            body=body,
            follow_redirects=False,
            request_timeout=LIMIT_REQUEST,
        )
        response = await self.http.fetch(request, raise_error=False)
        for header in response.headers.get_list("Set-Cookie"):
            for name, morsel in SimpleCookie(header).items():
                if not morsel.value or "1970" in (morsel["expires"] or ""):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response

    async def signup(self, name: str, password: str = PASSWORD) -> HTTPResponse:
        return await self.fetch("/signup", {"name": name, "password": password})

    async def new_topic(self, board: str, title: str, body: str) -> int:
        response = await self.fetch(f"/b/{board}", {"title": title, "body": body})
        assert response.code == 302, (response.code, response.reason)
        found = re.fullmatch(r"/t/(\d+)", response.headers["Location"])
        assert found, response.headers["Location"]
        return int(found.group(1))

    async def reply(self, topic: int, body: str) -> tuple[int, str]:
        """Posts a reply; returns its id and the page URL it redirected to."""
        response = await self.fetch(f"/t/{topic}", {"body": body})
        assert response.code == 302, (response.code, response.reason)
        location = response.headers["Location"]
        found = re.search(r"#p(\d+)$", location)
        assert found, location
        return int(found.group(1)), location


@asynccontextmanager
async def forum_server(
    tmp_path: Path, db_url: str = "", **settings: Any
) -> AsyncIterator[tuple[Any, str]]:
    """The forum on a free port with its own SQLite file; yields the app and base URL."""
    settings.setdefault("db", db_url or f"sqlite:///{tmp_path / 'forum.sqlite3'}")
    settings.setdefault("scrypt_n", 2**10)  # fast in tests; the default is 2**14
    settings.setdefault("cookie_secret", "forum-test-secret")
    settings.setdefault("data_dir", str(tmp_path))
    app = forum.make_app(**settings)
    server, url = forum.listen(app, 0, "127.0.0.1")
    try:
        yield app, url.rstrip("/")
    finally:
        server.stop()
        await server.close_all_connections()
        await app.settings["pubsub"].close()
        await app.settings["db"].close()


@asynccontextmanager
async def client() -> AsyncIterator[AsyncHTTPClient]:
    http = AsyncHTTPClient(force_instance=True)
    try:
        yield http
    finally:
        http.close()
