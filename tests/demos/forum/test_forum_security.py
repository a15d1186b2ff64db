"""The forum's defences, each tried the way an attacker would: over a real socket."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from .._util import DEMOS, run, start_demo, stop
from ._client import LIMIT_REQUEST, PASSWORD, Visitor, client, forum, forum_server


async def raw_login(base: str, visitor: Visitor, query: str) -> bytes:
    """POSTs the login form with ``query`` typed byte for byte on the request line."""
    host, port = base.removeprefix("http://").split(":")
    await visitor.fetch("/login")  # the XSRF cookie
    body = f"_xsrf={visitor.xsrf}&name=ann&password={PASSWORD.replace(' ', '+')}".encode()
    head = (
        f"POST /login?{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Cookie: _xsrf={visitor.xsrf}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + body)
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize(
    "next_",
    [
        "/%09/evil.com",
        "/%0a/evil.com",
        "/%0d/evil.com",
        "/%0b/evil.com",
        "/%0c/evil.com",
        "//evil.com",
        "/%2fevil.com",
        "/\\evil.com",
        "/%5cevil.com",
        "%2f%2fevil.com",
        "https://evil.com/",
        "/%20/evil.com",
        "/%e2%80%8b/evil.com",
        "javascript:alert(1)",
    ],
)
def test_login_next_goes_to_this_site_only(tmp_path: Path, next_: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            answer = await raw_login(base, ann, "next=" + next_)
            head = answer.split(b"\r\n\r\n")[0].decode("latin-1")
            assert head.startswith("HTTP/1.1 302 "), head
            assert re.search(r"(?im)^Location: /\r?$", head), head

    run(main())


def test_login_next_keeps_a_same_site_path(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            answer = await raw_login(base, ann, "next=/t/1%3Fpage%3D2")
            assert b"\r\nLocation: /t/1?page=2\r\n" in answer
            assert forum.safe_next("/b/general") == "/b/general"
            assert forum.safe_next("/\t/evil.com") is None

    run(main())


def test_the_13th_rapid_wrong_password_gets_429_with_retry_after(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            codes = []
            for _ in range(12):
                wrong = await ann.fetch("/login", {"name": "ann", "password": "wrong password"})
                codes.append(wrong.code)
            assert codes == [403] * 12
            stopped = await ann.fetch("/login", {"name": "ann", "password": "wrong password"})
            assert stopped.code == 429
            assert 1 <= int(stopped.headers["Retry-After"]) <= 900
            assert b"Too many attempts" in stopped.body
            # The right password waits too (the guesser cannot tell it was right)...
            right = await ann.fetch("/login", {"name": "ann", "password": PASSWORD})
            assert right.code == 429
            # ...while another account is not held up by ann's attacker.
            await Visitor(base, http).signup("bob")
            bob = await Visitor(base, http).fetch("/login", {"name": "bob", "password": PASSWORD})
            assert bob.code == 302

    run(main())


def test_login_and_signup_are_throttled_per_address(tmp_path: Path) -> None:
    async def main() -> None:
        limits = {"login_address_limit": (3, 60.0), "signup_address_limit": (2, 60.0)}
        async with forum_server(tmp_path, **limits) as (_, base), client() as http:
            eve = Visitor(base, http)
            for name in ("a1", "a2", "a3"):  # a different account each time
                assert (await eve.fetch("/login", {"name": name, "password": "x" * 8})).code == 403
            assert (await eve.fetch("/login", {"name": "a4", "password": "x" * 8})).code == 429
            assert (await Visitor(base, http).signup("s1")).code == 302
            assert (await Visitor(base, http).signup("s1")).code == 400  # taken: still counted
            third = await Visitor(base, http).signup("s3")
            assert third.code == 429 and "Retry-After" in third.headers

    run(main())


def test_throttle_window_slides_and_is_shared_through_the_database(tmp_path: Path) -> None:
    async def main() -> None:
        db = forum.Database(f"sqlite:///{tmp_path / 't.sqlite3'}")
        await db.ready()
        now = [100.0]
        one = forum.accounts.Throttle(db, "t", 2, 10.0, clock=lambda: now[0])
        other = forum.accounts.Throttle(db, "t", 2, 10.0, clock=lambda: now[0])  # a worker
        await one.hit("k")
        now[0] = 105.0
        await other.hit("k")
        assert await one.retry_after("k") == 5 and await other.retry_after("k") == 5
        assert await one.retry_after("another key") == 0
        now[0] = 110.5
        assert await one.retry_after("k") == 0  # the first hit left the window
        await db.close()

    run(main())


SECURITY = {
    "Content-Security-Policy": "script-src 'self'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def test_every_page_has_the_security_headers_and_no_inline_script(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "t", "```python\nprint(1)\n```")
            pages = ["/", "/b/general", f"/t/{topic}", "/login", "/signup", "/messages"]
            pages += ["/search?q=print", "/u/ann", "/nowhere", "/t/999", "/favicon.ico"]
            pages += ["/code.css", "/static/forum.css", "/static/nothing.css"]
            for path in pages:
                response = await ann.fetch(path)
                for name, value in SECURITY.items():
                    assert value in response.headers.get(name, ""), (path, name)
                if response.headers.get("Content-Type", "").startswith("text/html"):
                    body = response.body.decode()
                    assert not re.search(r"<script(?![^>]*\ssrc=)", body), path
                    assert " style=" not in body and "<style" not in body, path
                    assert not re.search(r"<[^>]+\son\w+=", body), path

    run(main())


def test_a_restart_keeps_people_signed_in(tmp_path: Path) -> None:
    async def main() -> None:
        data = tmp_path / "data"
        data.mkdir()
        db = f"sqlite:///{tmp_path / 'f.sqlite3'}"
        async with (
            forum_server(tmp_path, db=db, cookie_secret=None, data_dir=str(data)) as (
                _,
                base,
            ),
            client() as http,
        ):
            ann = Visitor(base, http)
            await ann.signup("ann")
            cookies = dict(ann.cookies)
        secret = (data / "cookie_secret").read_text().strip()
        assert len(secret) == 64 and (data / "cookie_secret").stat().st_mode & 0o777 == 0o600
        async with (
            forum_server(tmp_path, db=db, cookie_secret=None, data_dir=str(data)) as (
                _,
                base,
            ),
            client() as http,
        ):
            again = Visitor(base, http)
            again.cookies = cookies
            assert b'<strong id="me">ann</strong>' in (await again.fetch("/")).body
        assert forum.load_cookie_secret(str(data), {"FORUM_SECRET": "s" * 40}) == "s" * 40

    run(main())


def test_message_board_private_fields_show_to_their_author_and_admins_only(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, admins=("root",)) as (_, base), client() as http:
            guest, stranger = Visitor(base, http), Visitor(base, http)
            fields = {"name": "Gus", "email": "gus@example.org", "address": "1 Quay St"}
            assert (await guest.fetch("/messages", {**fields, "message": "hello"})).code == 302
            mine = (await guest.fetch("/messages")).body.decode()
            assert "gus@example.org" in mine and "1 Quay St" in mine and "hello" in mine
            theirs = (await stranger.fetch("/messages")).body.decode()
            assert "hello" in theirs and "Gus" in theirs
            assert "gus@example.org" not in theirs and "1 Quay St" not in theirs
            root = Visitor(base, http)
            await root.signup("root")
            assert "gus@example.org" in (await root.fetch("/messages")).body.decode()

    run(main())


def test_administrators_hide_posts_and_lock_topics(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, admins=("root",)) as (_, base), client() as http:
            ann, root = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await root.signup("root")
            topic = await ann.new_topic("general", "moderated", "fine")
            bad, _ = await ann.reply(topic, "spam spam spam")
            # Not an administrator: refused.
            assert (await ann.fetch(f"/p/{bad}/hide", {})).code == 403
            assert (await ann.fetch(f"/t/{topic}/lock", {})).code == 403
            assert (await root.fetch(f"/p/{bad}/hide", {})).code == 302
            page = (await ann.fetch(f"/t/{topic}")).body.decode()
            assert "spam spam" not in page and "Hidden by a moderator" in page
            assert "spam spam" in (await root.fetch(f"/t/{topic}")).body.decode()
            assert (await root.fetch(f"/t/{topic}/lock", {})).code == 302
            refused = await ann.fetch(f"/t/{topic}", {"body": "more"})
            assert refused.code == 403 and b"this topic is locked" in refused.body
            assert 'id="reply-form"' not in (await ann.fetch(f"/t/{topic}")).body.decode()
            assert (await root.fetch(f"/t/{topic}/lock", {})).code == 302  # unlock
            assert (await ann.reply(topic, "open again"))[0] > bad

    run(main())


def test_make_demo_takes_the_documented_sqlite_url_and_refuses_a_bad_one(tmp_path: Path) -> None:
    async def main() -> None:
        # The form the docstring gives: sqlite:///tmp/... (three slashes, absolute).
        path = tmp_path / "documented.sqlite3"
        assert str(path).startswith("/")
        process, url = await start_demo(
            "run.py", "--port=0", f"--db=sqlite://{path}", f"--data_dir={tmp_path}"
        )
        try:
            async with client() as http:
                response = await http.fetch(url + "b/general", request_timeout=LIMIT_REQUEST)
                assert b"General" in response.body
            assert path.exists() and (tmp_path / "cookie_secret").exists()
        finally:
            await stop(process)
        bad = await asyncio.create_subprocess_exec(
            sys.executable,
            str(DEMOS / "run.py"),
            "--port=0",
            "--db=mongodb://x/y",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        out, err = await bad.communicate()
        assert bad.returncode == 2
        assert b"forum: --db: database URL 'mongodb://x/y' is not understood: use sqlite:///" in err
        assert b"Traceback" not in err

    run(main())
