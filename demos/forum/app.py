"""A technical forum on squall.web that stays live across processes.

Boards hold topics; a topic is a paginated list of posts. New replies appear in
every open page of the topic at once: over a WebSocket, or by long polling
when the browser cannot keep one. Live delivery goes through `squall.pubsub`,
in-process by default and over Redis when the forum runs as several workers
(``--pubsub=redis://127.0.0.1:6379/0``), so that a reply posted to one worker
reaches the readers connected to another.

Run ``python demos/forum/app.py`` (``make demo``) and open the printed address.
Data is kept in SQLite (a file created on first run) through ``aiosqlite``;
``--db=postgresql://...`` (asyncpg) or ``--db=mysql://...`` (aiomysql) use a
server instead. The schema is created on start. Every query takes its values
as parameters, never by formatting them into the SQL text.

The seed of this demo, the course's message board (``tb_message``: name,
email, address, message), is kept as one board at ``/messages``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import secrets
import socket
import sys
import time
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

import squall.escape
import squall.httputil
import squall.log
import squall.netutil
import squall.options
import squall.web
import squall.websocket
from squall.httpserver import HTTPServer
from squall.pubsub import PubSub, Subscription
from squall.pubsub import connect as connect_pubsub

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DB = "sqlite:///" + os.path.join(HERE, "forum.sqlite3")
USER_COOKIE = "forum_user"

MAX_NAME = 32
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
MAX_TITLE = 200
MAX_BODY = 10_000

Row = dict[str, Any]

BOARDS = [
    ("general", "General", "Anything about building for the web."),
    ("squall", "Squall and Tornado", "Handlers, templates, WebSocket, deployment."),
    ("performance", "High concurrency", "Async I/O, workers, Redis, benchmarks."),
]

# {id} is each database's auto-increment primary key.
SCHEMA = [
    """CREATE TABLE IF NOT EXISTS users (
        id {id}, name VARCHAR(64) NOT NULL UNIQUE, password VARCHAR(255) NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS boards (
        id {id}, slug VARCHAR(32) NOT NULL UNIQUE, title VARCHAR(100) NOT NULL,
        description VARCHAR(255) NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS topics (
        id {id}, board_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
        title VARCHAR(255) NOT NULL, posts INTEGER NOT NULL DEFAULT 0,
        created DOUBLE PRECISION NOT NULL, last_post DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS posts (
        id {id}, topic_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
        body TEXT NOT NULL, created DOUBLE PRECISION NOT NULL)""",
    # The course's message board, as it was (with a primary key added).
    """CREATE TABLE IF NOT EXISTS tb_message (
        id {id}, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL,
        address VARCHAR(255) NOT NULL, message TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX {if_not_exists} posts_topic ON posts (topic_id, id)",
    "CREATE INDEX {if_not_exists} topics_board ON topics (board_id, last_post)",
]


class Database:
    """An async connection (SQLite) or pool (PostgreSQL, MySQL) behind one API.

    SQL is written with ``?`` placeholders and values passed separately; the
    placeholders are rewritten for drivers that spell them otherwise. Nothing
    a user sends is ever formatted into SQL text.

    Args:
        url: ``sqlite:///path`` (``sqlite://`` alone: in memory),
            ``postgresql://user:pw@host/db`` or ``mysql://user:pw@host/db``.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind = urlsplit(url).scheme.split("+")[0]
        if self.kind == "postgres":
            self.kind = "postgresql"
        if self.kind not in ("sqlite", "postgresql", "mysql"):
            raise ValueError(f"database URL {url!r}: use sqlite://, postgresql:// or mysql://")
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._ready = False
        self._closer: Optional[asyncio.Future[None]] = None

    async def ready(self) -> Database:
        """Connects and creates the schema, once."""
        if self._ready:
            return self
        async with self._lock:
            if not self._ready:
                await self._connect()
                await self._create_schema()
                self._ready = True
                self._closer = asyncio.ensure_future(self._close_with_loop())
        return self

    async def _close_with_loop(self) -> None:
        # asyncio.run cancels the tasks left when its main coroutine returns
        # (a `squall run` worker stopping): close then, since aiosqlite's
        # thread is not a daemon and would keep the process from exiting.
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def _connect(self) -> None:
        parts = urlsplit(self.url)
        if self.kind == "sqlite":
            import aiosqlite

            path = unquote(parts.path)[1:] if parts.path.startswith("/") else parts.path
            self._conn = await aiosqlite.connect(path or ":memory:")
            self._conn.row_factory = aiosqlite.Row
            # WAL lets readers go on while one worker writes; busy_timeout
            # makes concurrent writers (several workers) wait, not fail.
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA busy_timeout=5000")
            # In WAL mode NORMAL still never corrupts the file; it skips an
            # fsync per commit (a crash may lose the last commits).
            await self._conn.execute("PRAGMA synchronous=NORMAL")
        elif self.kind == "postgresql":  # pragma: no cover - needs a PostgreSQL server
            import asyncpg

            self._conn = await asyncpg.create_pool(self.url.replace("postgresql+", "postgres+"))
        else:  # pragma: no cover - needs a MySQL server
            import aiomysql

            self._conn = await aiomysql.create_pool(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                db=parts.path.lstrip("/"),
                autocommit=True,
                charset="utf8mb4",
            )

    async def _create_schema(self) -> None:
        key = {
            "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
            "postgresql": "SERIAL PRIMARY KEY",
            "mysql": "INTEGER PRIMARY KEY AUTO_INCREMENT",
        }[self.kind]
        if_not_exists = "" if self.kind == "mysql" else "IF NOT EXISTS"
        for statement in SCHEMA:
            try:
                await self.execute(statement.format(id=key, if_not_exists=if_not_exists))
            except Exception:
                # MySQL has no CREATE INDEX IF NOT EXISTS: the index is there.
                if self.kind != "mysql":
                    raise
        for slug, title, description in BOARDS:
            if await self.fetchone("SELECT id FROM boards WHERE slug = ?", slug) is None:
                try:
                    await self.insert("boards", slug=slug, title=title, description=description)
                except Exception:
                    # Another worker seeded it between our SELECT and INSERT.
                    if await self.fetchone("SELECT id FROM boards WHERE slug = ?", slug) is None:
                        raise

    def _sql(self, sql: str) -> str:
        if self.kind == "sqlite":
            return sql
        if self.kind == "mysql":
            return sql.replace("?", "%s")
        counter = iter(range(1, sql.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(counter)}", sql)

    async def fetchall(self, sql: str, *params: Any) -> list[Row]:
        """Every row of a query, as dicts."""
        sql = self._sql(sql)
        if self.kind == "sqlite":
            async with self._conn.execute(sql, params) as cursor:
                return [dict(row) for row in await cursor.fetchall()]
        if self.kind == "postgresql":  # pragma: no cover
            return [dict(row) for row in await self._conn.fetch(sql, *params)]
        import aiomysql  # pragma: no cover

        async with self._conn.acquire() as conn, conn.cursor(aiomysql.DictCursor) as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, *params: Any) -> Optional[Row]:
        """The first row of a query, or None."""
        rows = await self.fetchall(sql, *params)
        return rows[0] if rows else None

    async def execute(self, sql: str, *params: Any) -> Optional[int]:
        """Runs a statement; returns the new row's id after an INSERT (SQLite, MySQL)."""
        sql = self._sql(sql)
        if self.kind == "sqlite":
            cursor = await self._conn.execute(sql, params)
            await self._conn.commit()
            row_id: Optional[int] = cursor.lastrowid
            await cursor.close()
            return row_id
        if self.kind == "postgresql":  # pragma: no cover
            await self._conn.execute(sql, *params)
            return None
        async with self._conn.acquire() as conn, conn.cursor() as cur:  # pragma: no cover
            await cur.execute(sql, params)
            return int(cur.lastrowid)

    async def insert(self, table: str, **values: Any) -> int:
        """Inserts one row and returns its id. ``table`` and the keys are code, never input."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if self.kind == "postgresql":  # pragma: no cover
            row = await self._conn.fetchrow(self._sql(sql + " RETURNING id"), *values.values())
            return int(row["id"])
        row_id = await self.execute(sql, *values.values())
        assert row_id is not None
        return row_id

    async def close(self) -> None:
        if self._conn is not None:
            if self.kind == "sqlite":
                await self._conn.close()
            else:  # pragma: no cover
                self._conn.close()
                if self.kind == "mysql":
                    await self._conn.wait_closed()
            self._conn = None
            self._ready = False


# Passwords: scrypt (memory-hard) with a random salt per user; the parameters
# are stored with the hash, so that they can be raised later.


def hash_password(password: str, n: int = 2**14) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=2**26, dklen=32)
    return f"scrypt${n}$8$1${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=2**26,
            dklen=len(expected) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


class PostModule(squall.web.UIModule):
    """``{% module Post(post) %}``: one post, as shown in a topic and sent live."""

    def render(self, post: Row) -> str:
        return self.render_string("modules/post.html", post=post).decode()

    def css_files(self) -> list[str]:
        return []


class PagerModule(squall.web.UIModule):
    """``{% module Pager(url, page, pages) %}``: links to the other pages of a list."""

    def render(self, url: str, page: int, pages: int) -> str:
        if pages <= 1:
            return ""
        return self.render_string("modules/pager.html", url=url, page=page, pages=pages).decode()


def when(timestamp: float) -> str:
    """A post's time, as shown (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


class BaseHandler(squall.web.RequestHandler):
    """Loads the user named by the signed cookie, and gives handlers the db and pub/sub."""

    @property
    def db(self) -> Database:
        db: Database = self.settings["db"]
        return db

    @property
    def pubsub(self) -> PubSub:
        pubsub: PubSub = self.settings["pubsub"]
        return pubsub

    async def prepare(self) -> None:
        await self.db.ready()
        raw = self.get_signed_cookie(USER_COOKIE, max_age_days=30)
        user = None
        if raw is not None and raw.isdigit():
            user = await self.db.fetchone("SELECT id, name FROM users WHERE id = ?", int(raw))
        self.current_user = user

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace["when"] = when
        return namespace

    def text_argument(self, name: str, limit: int, *, strip: bool = True) -> str:
        """A required form field of at most ``limit`` characters (400 otherwise)."""
        value = self.get_body_argument(name, "") or ""
        if strip:
            value = value.strip()
        if not value:
            raise squall.web.HTTPError(400, reason=f"{name} is required")
        if len(value) > limit:
            raise squall.web.HTTPError(400, reason=f"{name} is over {limit} characters")
        return value

    def page_argument(self) -> int:
        raw = self.get_query_argument("page", "1") or "1"
        if not raw.isdigit() or int(raw) < 1:
            raise squall.web.HTTPError(400, reason="page must be a positive integer")
        return int(raw)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = getattr(exc, "reason", None)
        if isinstance(exc, squall.web.HTTPError) and exc.log_message and status_code < 500:
            # A client error's detail says what to fix (a 5xx's stays in the log).
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        if not reason:
            reason = squall.httputil.responses.get(status_code, "Error")
        self.render("error.html", status_code=status_code, reason=reason)


class IndexHandler(BaseHandler):
    async def get(self) -> None:
        boards = await self.db.fetchall(
            "SELECT b.slug, b.title, b.description, COUNT(t.id) AS topics"
            " FROM boards b LEFT JOIN topics t ON t.board_id = b.id"
            " GROUP BY b.id, b.slug, b.title, b.description ORDER BY b.id"
        )
        count = await self.db.fetchone("SELECT COUNT(*) AS n FROM tb_message")
        assert count is not None
        self.render("index.html", boards=boards, messages=count["n"])


class BoardHandler(BaseHandler):
    """A board's topics, newest activity first; POST starts a topic."""

    async def board(self, slug: str) -> Row:
        board = await self.db.fetchone("SELECT * FROM boards WHERE slug = ?", slug)
        if board is None:
            raise squall.web.HTTPError(404, reason="no such board")
        return board

    async def get(self, slug: str) -> None:
        board = await self.board(slug)
        page = self.page_argument()
        size = self.settings["page_size"]
        total = await self.db.fetchone(
            "SELECT COUNT(*) AS n FROM topics WHERE board_id = ?", board["id"]
        )
        assert total is not None
        topics = await self.db.fetchall(
            "SELECT t.id, t.title, t.posts, t.last_post, u.name AS author"
            " FROM topics t JOIN users u ON u.id = t.user_id WHERE t.board_id = ?"
            " ORDER BY t.last_post DESC, t.id DESC LIMIT ? OFFSET ?",
            board["id"],
            size,
            (page - 1) * size,
        )
        pages = max(1, math.ceil(total["n"] / size))
        self.render("board.html", board=board, topics=topics, page=page, pages=pages)

    @squall.web.authenticated
    async def post(self, slug: str) -> None:
        board = await self.board(slug)
        title = self.text_argument("title", MAX_TITLE)
        body = self.text_argument("body", MAX_BODY)
        now = time.time()
        topic_id = await self.db.insert(
            "topics",
            board_id=board["id"],
            user_id=self.current_user["id"],
            title=title,
            posts=1,
            created=now,
            last_post=now,
        )
        await self.db.insert(
            "posts", topic_id=topic_id, user_id=self.current_user["id"], body=body, created=now
        )
        self.redirect(self.reverse_url("topic", topic_id))


def topic_channel(topic_id: int) -> str:
    return f"forum:topic:{topic_id}"


def live_message(newest: int, payload: str) -> str:
    """What is published for new posts: the newest post id, a newline, the page's JSON.

    The id up front lets each socket skip what it already sent without
    decoding the JSON (one decode per reader per post adds up at 1,000 readers).
    """
    return f"{newest}\n{payload}"


POSTS_SQL = (
    "SELECT p.id, p.body, p.created, u.name AS author FROM posts p"
    " JOIN users u ON u.id = p.user_id WHERE p.topic_id = ?"
)


class TopicMixin(BaseHandler):
    async def topic(self, topic_id: str) -> Row:
        topic = await self.db.fetchone(
            "SELECT t.*, b.slug, b.title AS board_title FROM topics t"
            " JOIN boards b ON b.id = t.board_id WHERE t.id = ?",
            int(topic_id),
        )
        if topic is None:
            raise squall.web.HTTPError(404, reason="no such topic")
        return topic

    async def posts_after(self, topic_id: int, after: int) -> list[Row]:
        return await self.db.fetchall(
            POSTS_SQL + " AND p.id > ? ORDER BY p.id LIMIT 200", topic_id, after
        )

    def live_payload(self, posts: list[Row]) -> str:
        """The JSON sent to live pages: each post's id and its rendered HTML."""
        items = [
            {"id": p["id"], "html": self.render_string("modules/post.html", post=p).decode()}
            for p in posts
        ]
        return squall.escape.json_encode({"posts": items})

    def after_argument(self) -> int:
        raw = self.get_query_argument("after", "0") or "0"
        if not raw.isdigit():
            raise squall.web.HTTPError(400, reason="after must be a post id")
        return int(raw)


class TopicHandler(TopicMixin):
    """A topic's posts, a page at a time; POST replies."""

    async def get(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)
        size = self.settings["page_size"]
        pages = max(1, math.ceil(topic["posts"] / size))
        page = min(self.page_argument(), pages)
        posts = await self.db.fetchall(
            POSTS_SQL + " ORDER BY p.id LIMIT ? OFFSET ?", topic["id"], size, (page - 1) * size
        )
        self.render("topic.html", topic=topic, posts=posts, page=page, pages=pages)

    @squall.web.authenticated
    async def post(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)
        body = self.text_argument("body", MAX_BODY)
        now = time.time()
        post_id = await self.db.insert(
            "posts", topic_id=topic["id"], user_id=self.current_user["id"], body=body, created=now
        )
        await self.db.execute(
            "UPDATE topics SET posts = posts + 1, last_post = ? WHERE id = ?", now, topic["id"]
        )
        post = {"id": post_id, "body": body, "created": now, "author": self.current_user["name"]}
        try:
            await self.pubsub.publish(
                topic_channel(topic["id"]), live_message(post_id, self.live_payload([post]))
            )
        except ConnectionError as exc:
            # The reply is stored: readers see it when they reload or reconnect.
            squall.log.app_log.warning("reply %d not sent live: %s", post_id, exc)
        count = await self.db.fetchone(
            "SELECT COUNT(*) AS n FROM posts WHERE topic_id = ?", topic["id"]
        )
        assert count is not None
        page = max(1, math.ceil(count["n"] / self.settings["page_size"]))
        self.redirect(f"{self.reverse_url('topic', topic['id'])}?page={page}#p{post_id}")


class TopicPollHandler(TopicMixin):
    """``GET /t/ID/poll?after=N``: the posts after N, as soon as there is one (long polling)."""

    waiting: Optional[asyncio.Future[str]] = None
    gone = False

    async def get(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)
        after = self.after_argument()
        # Subscribe before reading, so that a post made in between is not missed.
        try:
            sub = await self.pubsub.subscribe(topic_channel(topic["id"]))
        except ConnectionError as exc:
            raise squall.web.HTTPError(
                503, "live updates: %s", exc, reason="live updates unavailable"
            )
        try:
            posts = await self.posts_after(topic["id"], after)
            if not posts:
                self.waiting = asyncio.ensure_future(sub.get())
                try:
                    await asyncio.wait_for(self.waiting, self.settings["poll_timeout"])
                except (TimeoutError, asyncio.CancelledError):
                    pass
                if self.gone:
                    return  # the client left; nobody to answer
                posts = await self.posts_after(topic["id"], after)
        finally:
            sub.close()
        self.set_header("Cache-Control", "no-store")
        self.write(self.live_payload(posts))

    def on_connection_close(self) -> None:
        self.gone = True
        if self.waiting is not None:
            self.waiting.cancel()


class TopicSocketHandler(squall.websocket.WebSocketHandler, TopicMixin):
    """``/t/ID/live?after=N``: the posts after N, then each new one as it is posted.

    Read-only: replies are posted by the form (with its XSRF token). The
    default origin check keeps other sites from opening it.
    """

    sub: Optional[Subscription] = None
    pump: Optional[asyncio.Future[None]] = None
    topic_id = 0
    after = 0

    async def get(self, *args: str, **kwargs: str) -> None:
        # Bad requests get their 4xx before the handshake, not a closed socket.
        self.topic_id = (await self.topic(args[0]))["id"]
        self.after = self.after_argument()
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:
        try:
            self.sub = await self.pubsub.subscribe(topic_channel(self.topic_id))
        except ConnectionError:
            self.close(1011, "live updates unavailable")
            return
        self.pump = asyncio.ensure_future(self._pump(self.topic_id, self.after))

    async def _pump(self, topic_id: int, after: int) -> None:
        assert self.sub is not None
        # Posts from several workers (or concurrent requests) are published
        # in no particular id order, so only what the backlog already sent is
        # skipped; the page also ignores an id it has.
        sent: set[int] = set()
        last = after
        try:
            backlog = await self.posts_after(topic_id, after)
            if backlog:
                sent = {p["id"] for p in backlog}
                last = backlog[-1]["id"]
                await self.write_message(self.live_payload(backlog))
            dropped = 0
            async for message in self.sub:
                if self.sub.dropped != dropped:
                    # This reader fell behind and lost messages: send what the
                    # database has after the newest post it was sent (best
                    # effort: a post stored earlier but published later may
                    # be missed until the page reloads).
                    dropped = self.sub.dropped
                    posts = await self.posts_after(topic_id, last)
                    if posts:
                        sent = {p["id"] for p in posts}
                        last = posts[-1]["id"]
                        await self.write_message(self.live_payload(posts))
                    continue
                head, _, payload = message.partition("\n")
                newest = int(head)
                if newest in sent:
                    continue
                last = max(last, newest)
                await self.write_message(payload)
        except squall.websocket.WebSocketClosedError:
            pass
        finally:
            self.sub.close()

    def on_message(self, message: str | bytes) -> None:
        self.write_message({"error": "this socket is read-only: post with the form"})

    def on_close(self) -> None:
        if self.sub is not None:
            self.sub.close()


class SignupHandler(BaseHandler):
    def get(self) -> None:
        self.render("signup.html", error=None, name="")

    async def post(self) -> None:
        name = " ".join((self.get_body_argument("name", "") or "").split())
        password = self.get_body_argument("password", "") or ""
        error = None
        if not name or len(name) > MAX_NAME:
            error = f"Pick a name of 1 to {MAX_NAME} characters."
        elif not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            error = f"Pick a password of at least {MIN_PASSWORD} characters."
        elif await self.db.fetchone("SELECT id FROM users WHERE name = ?", name) is not None:
            error = "That name is taken."
        if error is not None:
            self.set_status(400)
            self.render("signup.html", error=error, name=name)
            return
        # scrypt takes tens of milliseconds of CPU: keep it off the event loop.
        stored = await asyncio.get_running_loop().run_in_executor(
            None, hash_password, password, self.settings["scrypt_n"]
        )
        try:
            user_id = await self.db.insert("users", name=name, password=stored, created=time.time())
        except Exception:
            if await self.db.fetchone("SELECT id FROM users WHERE name = ?", name) is None:
                raise
            self.set_status(400)
            self.render("signup.html", error="That name is taken.", name=name)
            return
        self.set_signed_cookie(USER_COOKIE, str(user_id), httponly=True, samesite="Lax")
        self.redirect(self.reverse_url("index"))


class LoginHandler(BaseHandler):
    def get(self) -> None:
        self.render("login.html", error=None, name="")

    async def post(self) -> None:
        name = " ".join((self.get_body_argument("name", "") or "").split())
        password = self.get_body_argument("password", "") or ""
        user = await self.db.fetchone("SELECT id, password FROM users WHERE name = ?", name)
        # An unknown name costs the same scrypt as a wrong password, so that
        # timing does not tell which names exist.
        stored = user["password"] if user else self.settings["dummy_hash"]
        ok = await asyncio.get_running_loop().run_in_executor(
            None, check_password, password[:MAX_PASSWORD], stored
        )
        if user is None or not ok:
            self.set_status(403)
            self.render("login.html", error="Wrong name or password.", name=name)
            return
        self.set_signed_cookie(USER_COOKIE, str(user["id"]), httponly=True, samesite="Lax")
        target = self.get_query_argument("next", "") or self.reverse_url("index")
        self.redirect(target if _local(target) else self.reverse_url("index"))


def _local(url: str) -> bool:
    """Only same-site paths are followed after login (no open redirect)."""
    return url.startswith("/") and not url.startswith("//") and "\\" not in url


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.clear_cookie(USER_COOKIE)
        self.redirect(self.reverse_url("index"))


class MessageBoardHandler(BaseHandler):
    """The course's message board: a list and a form that posts and redirects."""

    async def get(self) -> None:
        messages = await self.db.fetchall(
            "SELECT name, email, address, message, created FROM tb_message"
            " ORDER BY id DESC LIMIT 100"
        )
        self.render("messages.html", messages=messages)

    async def post(self) -> None:
        name = self.text_argument("name", 64)
        email = self.text_argument("email", 128)
        if "@" not in email:
            raise squall.web.HTTPError(400, reason="email must contain @")
        address = self.text_argument("address", 255)
        message = self.text_argument("message", 2000)
        # The seed formatted these into the SQL string (an injection); they
        # are parameters here.
        await self.db.insert(
            "tb_message",
            name=name,
            email=email,
            address=address,
            message=message,
            created=time.time(),
        )
        self.redirect(self.reverse_url("messages"))


def make_app(
    db: Optional[str] = None,
    pubsub: Optional[str] = None,
    cookie_secret: Optional[str] = None,
    page_size: int = 20,
    poll_timeout: float = 25.0,
    scrypt_n: int = 2**14,
    debug: bool = False,
) -> squall.web.Application:
    """The forum application; it connects to its database on the first request.

    Args:
        db: database URL (default: SQLite in ``demos/forum/forum.sqlite3``).
        pubsub: ``memory://`` (one process, the default) or ``redis://...``.
        cookie_secret: signs the user cookie (all workers must share it);
            random when None (everyone is logged out at restart).
        page_size: posts per topic page and topics per board page.
        poll_timeout: seconds a long poll waits before answering empty.
        scrypt_n: scrypt's cost for new passwords (a power of two).
        debug: squall.web's debug mode.
    """
    S = squall.web.url
    return squall.web.Application(
        [
            S(r"/", IndexHandler, name="index"),
            S(r"/b/([a-z0-9-]+)", BoardHandler, name="board"),
            S(r"/t/([0-9]{1,18})", TopicHandler, name="topic"),
            S(r"/t/([0-9]{1,18})/poll", TopicPollHandler, name="topic_poll"),
            S(r"/t/([0-9]{1,18})/live", TopicSocketHandler, name="topic_live"),
            S(r"/signup", SignupHandler, name="signup"),
            S(r"/login", LoginHandler, name="login"),
            S(r"/logout", LogoutHandler, name="logout"),
            S(r"/messages", MessageBoardHandler, name="messages"),
        ],
        db=Database(db or DEFAULT_DB),
        pubsub=connect_pubsub(pubsub),
        cookie_secret=cookie_secret or secrets.token_hex(32),
        login_url="/login",
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        ui_modules={"Post": PostModule, "Pager": PagerModule},
        xsrf_cookies=True,
        page_size=page_size,
        poll_timeout=poll_timeout,
        scrypt_n=scrypt_n,
        dummy_hash=hash_password(secrets.token_hex(8), n=scrypt_n),
        debug=debug,
    )


def cluster_app() -> squall.web.Application:
    """The factory ``squall run`` calls in each worker; configured by the environment.

    ``FORUM_DB``, ``FORUM_PUBSUB`` (``redis://...``: workers see each other's
    posts) and ``FORUM_SECRET`` (the same in every worker).
    """
    return make_app(
        db=os.environ.get("FORUM_DB") or None,
        pubsub=os.environ.get("FORUM_PUBSUB") or None,
        cookie_secret=os.environ.get("FORUM_SECRET") or None,
    )


def parse_options(argv: list[str]) -> squall.options.OptionParser:
    """The demo's command line (its own parser, so demos can share a process)."""
    parser = squall.options.OptionParser()
    parser.define("port", default=8888, type=int, help="port to listen on (0: any free one)")
    parser.define("address", default="127.0.0.1", help="address to listen on")
    parser.define("db", default=DEFAULT_DB, help="database URL (sqlite, postgresql, mysql)")
    parser.define("pubsub", default="memory://", help="memory:// or redis://host:port/db")
    parser.define("cookie_secret", default="", help="secret signing the user cookie")
    parser.define("debug", default=False, type=bool, help="reload templates and static files")
    parser.parse_command_line(argv, final=False)
    return parser


def listen(app: squall.web.Application, port: int, address: str) -> tuple[HTTPServer, str]:
    """Starts serving ``app``; returns the server and its URL (the real port)."""
    sockets = squall.netutil.bind_sockets(port, address, family=socket.AF_INET)
    server = HTTPServer(app, xheaders=True)
    server.add_sockets(sockets)
    host, real_port = sockets[0].getsockname()[:2]
    return server, f"http://{host}:{real_port}/"


def main(argv: Optional[list[str]] = None) -> None:
    """Serves the forum until interrupted, printing its address first."""
    opts = parse_options(sys.argv if argv is None else argv)

    async def serve() -> None:
        app = make_app(
            db=opts.db, pubsub=opts.pubsub, cookie_secret=opts.cookie_secret, debug=opts.debug
        )
        await app.settings["db"].ready()
        _, url = listen(app, opts.port, opts.address)
        print(f"Forum demo serving on {url} (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
