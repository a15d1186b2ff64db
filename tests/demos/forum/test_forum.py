"""The forum demo over HTTP and WebSocket, in one process on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import socket
from pathlib import Path

import pytest

from squall.httpclient import HTTPRequest
from squall.websocket import websocket_connect

from ..._wait import HANG_GUARD
from .._util import run, start_demo, stop
from ._client import LIMIT_REQUEST, PASSWORD, Visitor, client, forum, forum_server


def test_signup_login_logout(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (app, base), client() as http:
            ann = Visitor(base, http)
            response = await ann.signup("ann")
            assert response.code == 302 and response.headers["Location"] == "/"
            page = await ann.fetch("/")
            assert b'<strong id="me">ann</strong>' in page.body

            assert (await Visitor(base, http).signup("ann")).code == 400  # taken
            short = await Visitor(base, http).signup("bob", "short")
            assert short.code == 400 and b"at least 8 characters" in short.body

            assert (await ann.fetch("/logout", {})).code == 302
            assert b'id="me"' not in (await ann.fetch("/")).body

            wrong = await ann.fetch("/login", {"name": "ann", "password": "not it!!"})
            assert wrong.code == 403 and b"Wrong name or password" in wrong.body
            nobody = await ann.fetch("/login", {"name": "nobody", "password": PASSWORD})
            assert nobody.code == 403
            ok = await ann.fetch("/login?next=/b/general", {"name": "ann", "password": PASSWORD})
            assert ok.code == 302 and ok.headers["Location"] == "/b/general"
            away = await ann.fetch(
                "/login?next=//evil.example/", {"name": "ann", "password": PASSWORD}
            )
            assert away.headers["Location"] == "/"  # no open redirect

            rows = await app.settings["db"].fetchall("SELECT name, password FROM users")
            assert [r["name"] for r in rows] == ["ann"]
            assert rows[0]["password"].startswith("scrypt$1024$8$1$")
            assert PASSWORD not in rows[0]["password"]

    run(main())


def test_passwords_are_salted_scrypt_hashes() -> None:
    one, two = forum.hash_password("secret pw", n=2**10), forum.hash_password("secret pw", n=2**10)
    assert one != two  # a salt per hash
    assert forum.check_password("secret pw", one) and forum.check_password("secret pw", two)
    assert not forum.check_password("secret pX", one)
    assert not forum.check_password("secret pw", "md5$abc")
    assert not forum.check_password("secret pw", "garbage")


def test_every_form_needs_the_xsrf_token_and_posting_needs_an_account(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (_, base), client() as http:
            ann = Visitor(base, http)
            for path, form in [
                ("/signup", {"name": "x", "password": PASSWORD}),
                ("/login", {"name": "x", "password": PASSWORD}),
                ("/logout", {}),
                ("/messages", {"name": "x", "email": "a@b", "address": "x", "message": "x"}),
                ("/b/general", {"title": "x", "body": "x"}),
            ]:
                response = await ann.fetch(path, form, xsrf=False)
                assert response.code == 403, path
                assert b"_xsrf&#x27; argument missing from POST" in response.body, path
            # With the token but no account: refused (a GET would redirect to /login).
            anonymous = await ann.fetch("/b/general", {"title": "t", "body": "b"})
            assert anonymous.code == 403
            assert (await ann.fetch("/t/1", {"body": "b"})).code == 403

    run(main())


def test_topics_and_paginated_replies(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, page_size=3) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("squall", "Workers and Redis", "first post")
            ids = [(await ann.reply(topic, f"reply {i}"))[0] for i in range(1, 5)]
            last_id, location = await ann.reply(topic, "reply 5")
            assert location == f"/t/{topic}?page=2#p{last_id}"

            first = (await ann.fetch(f"/t/{topic}")).body.decode()
            second = (await ann.fetch(f"/t/{topic}?page=2")).body.decode()
            assert first.count('class="post"') == 3 and second.count('class="post"') == 3
            assert "first post" in first and "reply 2" in first and "reply 3" not in first
            assert f'id="p{ids[2]}"' in second and "reply 5" in second
            assert f'href="/t/{topic}?page=2"' in first  # the Pager module
            # Live updates are offered on the last page only, after its newest post.
            assert 'id="live"' not in first and f'data-after="{last_id}"' in second
            # A page past the end shows the last one.
            assert "reply 5" in (await ann.fetch(f"/t/{topic}?page=9")).body.decode()

            board = (await ann.fetch("/b/squall")).body.decode()
            assert (
                "Workers and Redis" in board
                and '<td class="num" data-label="Posts">6</td>' in board
            )
            index = (await ann.fetch("/")).body.decode()
            assert '<span class="count">1 topic</span>' in index

    run(main())


def test_bad_urls_and_arguments_get_clear_errors(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "t", "b")
            cases = [
                ("/b/nowhere", None, 404, b"no such board"),
                ("/t/999", None, 404, b"no such topic"),
                (f"/t/{topic}?page=0", None, 400, b"page must be a positive integer"),
                (f"/t/{topic}/poll?after=x", None, 400, b"after must be a post id"),
                (f"/t/{topic}", {"body": "  "}, 400, b"body is required"),
                (f"/t/{topic}", {"body": "x" * 10_001}, 400, b"body is over 10000 characters"),
                ("/b/general", {"title": "t" * 201, "body": "b"}, 400, b"title is over 200"),
                (
                    "/messages",
                    {"name": "n", "email": "no-at-sign", "address": "a", "message": "m"},
                    400,
                    b"email must contain @",
                ),
            ]
            for path, form, code, text in cases:
                response = await ann.fetch(path, form)
                assert response.code == code, (path, response.code)
                assert text in response.body, (path, response.body[-400:])

    run(main())


SQL = "x'); DROP TABLE users; --"
XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_sql_injection_and_xss_through_every_form_are_stored_and_shown_as_text(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            db = app.settings["db"]
            evil = Visitor(base, http)
            name = "<b>" + SQL[:24]
            assert (await evil.signup(name)).code == 302
            topic = await evil.new_topic("general", XSS + SQL, SQL + "\n" + XSS)
            await evil.reply(topic, XSS)
            fields = {"name": XSS[:64], "email": "a@b" + SQL, "address": SQL, "message": XSS + SQL}
            assert (await evil.fetch("/messages", fields)).code == 302
            # Logging in with the payload as the name works too (it is a value).
            await evil.fetch("/logout", {})
            again = await evil.fetch("/login", {"name": name, "password": PASSWORD})
            assert again.code == 302

            # Stored exactly as typed, and no table was dropped.
            assert [r["name"] for r in await db.fetchall("SELECT name FROM users")] == [name]
            row = await db.fetchone("SELECT title FROM topics WHERE id = ?", topic)
            assert row["title"] == XSS + SQL
            bodies = [r["body"] for r in await db.fetchall("SELECT body FROM posts ORDER BY id")]
            assert bodies == [SQL + "\n" + XSS, XSS]
            message = await db.fetchone("SELECT * FROM tb_message")
            assert {k: message[k] for k in fields} == fields

            # Shown as text: the escaped form is in the page, the markup is not.
            pages = {
                "topic": (await evil.fetch(f"/t/{topic}")).body.decode(),
                "board": (await evil.fetch("/b/general")).body.decode(),
                "messages": (await evil.fetch("/messages")).body.decode(),
                "index": (await evil.fetch("/")).body.decode(),
            }
            for where, page in pages.items():
                assert "<script>alert" not in page and "<img src=x" not in page, where
                assert "<b>x'" not in page, where
            assert html.escape(XSS + SQL, quote=True) in pages["topic"]
            assert html.escape(name, quote=True) in pages["topic"]
            assert html.escape(XSS + SQL, quote=True) in pages["messages"]
            assert html.escape(SQL, quote=True) in pages["messages"]

    run(main())


def test_new_replies_reach_an_open_websocket_and_a_long_poll(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        # The long poll is held far past any hang guard: it answers with the
        # reply however long posting it takes (MariaDB on a loaded machine).
        async with (
            forum_server(tmp_path, db_url, poll_timeout=10 * HANG_GUARD) as (_, base),
            client() as http,
        ):
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            topic = await ann.new_topic("general", "live", "opening post")
            first = (await ann.reply(topic, "before the socket"))[0]

            ws_url = base.replace("http", "ws") + f"/t/{topic}/live?after={first - 1}"
            conn = await websocket_connect(
                HTTPRequest(ws_url, headers={"Cookie": bob.cookie_header()}),
                connect_timeout=LIMIT_REQUEST,
            )
            # The backlog after the cursor comes first...
            backlog = json.loads(await conn.read_message())
            assert [p["id"] for p in backlog["posts"]] == [first]
            # ...then each reply as it is posted (a long poll waits beside it).
            poll = asyncio.ensure_future(bob.fetch(f"/t/{topic}/poll?after={first}"))
            second = (await ann.reply(topic, "<i>live</i> reply"))[0]
            pushed = json.loads(await conn.read_message())
            assert [p["id"] for p in pushed["posts"]] == [second]
            assert "&lt;i&gt;live&lt;/i&gt; reply" in pushed["posts"][0]["html"]
            polled = await poll
            assert polled.code == 200
            assert [p["id"] for p in json.loads(polled.body)["posts"]] == [second]
            # Read-only socket: a message gets an error answer, not a post.
            await conn.write_message("{}")
            assert "read-only" in json.loads(await conn.read_message())["error"]
            conn.close()

    run(main())


def test_long_poll_answers_empty_after_its_timeout(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, poll_timeout=0.1) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "quiet", "nobody answers")
            response = await ann.fetch(f"/t/{topic}/poll?after=999")
            assert response.code == 200 and json.loads(response.body) == {"posts": []}

    run(main())


async def stalled_socket(base: str, path: str) -> asyncio.StreamWriter:
    """A WebSocket opened by hand that never reads after the handshake (a tiny receive buffer)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return writer


def test_a_reader_too_slow_is_closed_and_the_others_get_every_reply(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (app, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "busy", "start")
            rooms, pubsub = app.settings["rooms"], app.settings["pubsub"]
            path = f"/t/{topic}/live?after=999"
            stalled = await stalled_socket(base, path)
            good = await websocket_connect(
                base.replace("http", "ws") + path, connect_timeout=LIMIT_REQUEST
            )
            while len(rooms.sockets.get(topic, ())) < 2:
                await asyncio.sleep(0)  # the handshakes' open() join the topic
            # Replies of 256 KB each, the next once the good reader has the
            # last: the stalled reader's buffers fill within a few, it is
            # closed (1013), and the good reader gets every one.
            filler = "x" * 256 * 1024
            got = []
            for i in range(24):
                payload = json.dumps({"posts": [{"id": 1000 + i, "html": filler}]})
                await pubsub.publish(forum.topic_channel(topic), payload)
                got.append(json.loads(await good.read_message())["posts"][0]["id"])
            assert got == list(range(1000, 1024))
            relay = rooms.relays[topic].result()
            assert relay.closed == 1 and relay.skipped >= 1 and relay.messages == 24
            good.close()
            stalled.close()

    run(main())


def test_posts_published_out_of_id_order_all_reach_the_socket(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "order", "start")
            pubsub = app.settings["pubsub"]
            channel = forum.topic_channel(topic)
            conn = await websocket_connect(
                base.replace("http", "ws") + f"/t/{topic}/live?after=1",
                connect_timeout=LIMIT_REQUEST,
            )
            while pubsub.subscribers(channel) == 0:
                await asyncio.sleep(0)  # the handshake's open() starts the relay
            # Two workers stored 11 and 10; 11's publish arrived first (the
            # page puts them in id order).
            for post_id in (11, 10):
                payload = json.dumps({"posts": [{"id": post_id, "html": ""}]})
                await pubsub.publish(channel, payload)
            got = [json.loads(await conn.read_message())["posts"][0]["id"] for _ in range(2)]
            assert got == [11, 10]
            conn.close()

    run(main())


def test_database_urls_and_placeholders() -> None:
    pg = forum.Database("postgresql://u:p@h/db")
    assert pg._sql("SELECT ? WHERE a = ? AND b = ?") == "SELECT $1 WHERE a = $2 AND b = $3"
    assert forum.Database("mysql://u:p@h/db")._sql("a = ? AND b = ?") == "a = %s AND b = %s"
    assert forum.Database("sqlite:///x.db")._sql("a = ?") == "a = ?"
    for bad in ["oracle://x", "forum.db", "postgresql://host-only", "sqlite://host/x.db"]:
        with pytest.raises(forum.DatabaseURLError, match=r"sqlite:///absolute/path.*mysql://"):
            forum.Database(bad)
    with pytest.raises(forum.DatabaseURLError, match="the folder /no/such does not exist"):
        forum.Database("sqlite:///no/such/forum.sqlite3")
    assert forum.Database("sqlite:///tmp/forum.sqlite3").path == "/tmp/forum.sqlite3"
    assert forum.Database("sqlite:////tmp/forum.sqlite3").path == "/tmp/forum.sqlite3"
    assert forum.Database("sqlite:forum.sqlite3").path == "forum.sqlite3"
    assert forum.Database("sqlite://").path == ":memory:"


def test_a_failed_migration_closes_the_connection_it_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: object) -> None:
        raise RuntimeError("migration failed")

    async def main() -> None:
        db = forum.Database(f"sqlite:///{tmp_path / 'forum.sqlite3'}")
        monkeypatch.setattr(type(db), "_migrate", broken)
        with pytest.raises(RuntimeError, match="migration failed"):
            await db.ready()
        assert db._conn is None and not db._ready

    run(main())


def test_make_demo_serves_the_forum_and_prints_its_address(tmp_path: Path) -> None:
    async def main() -> None:
        db = f"--db=sqlite:///{tmp_path / 'demo.sqlite3'}"
        process, url = await start_demo("run.py", "--port=0", db, f"--data_dir={tmp_path}")
        try:
            async with client() as http:
                assert url.startswith("http://127.0.0.1:")
                response = await http.fetch(url.rstrip("/") + "/", request_timeout=LIMIT_REQUEST)
                assert b"Squall forum" in response.body and b"Message board" in response.body
            assert (tmp_path / "demo.sqlite3").exists()
        finally:
            await stop(process)

    run(main())


def test_without_redis_replies_are_stored_and_live_updates_say_unavailable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from squall.pubsub import RedisPubSub

    from ...pubsub._redis_server import free_port

    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            await app.settings["pubsub"].close()
            down = f"redis://127.0.0.1:{free_port()}/0"
            # A publish keeps trying until publish_timeout (a failover's
            # length, 10 s by default) after Redis was first found out of
            # reach, and is tried once after that: short here, where Redis
            # never comes.
            app.settings["pubsub"] = RedisPubSub(down, subscribe_timeout=0.2, publish_timeout=0.5)
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "no redis", "start")
            reply, _ = await ann.reply(topic, "still stored")
            assert b"still stored" in (await ann.fetch(f"/t/{topic}")).body
            poll = await ann.fetch(f"/t/{topic}/poll?after={reply}")
            assert poll.code == 503 and b"live updates unavailable" in poll.body

    run(main())
    assert any("not sent live" in r.getMessage() for r in caplog.records)


OLD_SCHEMA = [
    # The forum's tables as they were before migrations were numbered.
    "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(64) NOT NULL UNIQUE,"
    " password VARCHAR(255) NOT NULL, created DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE boards (id INTEGER PRIMARY KEY AUTOINCREMENT, slug VARCHAR(32) NOT NULL UNIQUE,"
    " title VARCHAR(100) NOT NULL, description VARCHAR(255) NOT NULL)",
    "CREATE TABLE topics (id INTEGER PRIMARY KEY AUTOINCREMENT, board_id INTEGER NOT NULL,"
    " user_id INTEGER NOT NULL, title VARCHAR(255) NOT NULL, posts INTEGER NOT NULL DEFAULT 0,"
    " created DOUBLE PRECISION NOT NULL, last_post DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, topic_id INTEGER NOT NULL,"
    " user_id INTEGER NOT NULL, body TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE tb_message (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(64) NOT NULL,"
    " email VARCHAR(128) NOT NULL, address VARCHAR(255) NOT NULL, message TEXT NOT NULL,"
    " created DOUBLE PRECISION NOT NULL)",
    "INSERT INTO boards (slug, title, description) VALUES ('general', 'General', 'x')",
    "INSERT INTO users (name, password, created) VALUES ('old', 'scrypt$1$8$1$00$00', 1.0)",
    "INSERT INTO topics (board_id, user_id, title, posts, created, last_post)"
    " VALUES (1, 1, 'Before migrations', 1, 1.0, 1.0)",
    "INSERT INTO posts (topic_id, user_id, body, created) VALUES (1, 1, 'ancient wisdom', 1.0)",
]


def test_a_database_from_before_migrations_is_brought_up_to_date(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.sqlite3"
    # A sqlite3 connection's `with` commits but does not close; closing() does
    # (3.13 warns about a connection the collector finds still open).
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        for statement in OLD_SCHEMA:
            conn.execute(statement)

    async def main() -> None:
        async with forum_server(tmp_path, db=f"sqlite:///{path}") as (app, base), client() as http:
            visitor = Visitor(base, http)
            found = (await visitor.fetch("/search?q=ancient")).body.decode()
            assert 'id="result-count">1 post found' in found and "Before migrations" in found
            index = (await visitor.fetch("/")).body.decode()
            assert 'href="/p/1" class="last-topic">Before migrations</a>' in index
            versions = await app.settings["db"].fetchall("SELECT version FROM schema_version")
            assert [v["version"] for v in versions] == list(range(1, len(forum.MIGRATIONS) + 1))
        # Starting again applies nothing twice.
        async with forum_server(tmp_path, db=f"sqlite:///{path}") as (app, base), client() as http:
            assert (await Visitor(base, http).fetch("/b/general")).code == 200
            rows = await app.settings["db"].fetchall("SELECT version FROM schema_version")
            assert len(rows) == len(forum.MIGRATIONS)

    run(main())
