"""One data layer over three databases: SQLite (aiosqlite), MySQL/MariaDB (aiomysql)
and PostgreSQL (asyncpg), with the same schema and the same numbered migrations.

SQL is written once with ``?`` placeholders and values passed separately; the
placeholders are rewritten for the drivers that spell them otherwise. Nothing
a user sends is ever formatted into SQL text. Where the three dialects differ
(auto-increment keys, upserts, full-text search) the difference is in this
module and nowhere else.
"""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

Row = dict[str, Any]

URL_FORMS = (
    "sqlite:///absolute/path/forum.sqlite3 (or sqlite:relative/path, or sqlite:// in memory),"
    " postgresql://user:password@host:port/dbname or mysql://user:password@host:port/dbname"
)

BOARDS = [
    ("general", "General", "Anything about building for the web."),
    ("squall", "Squall and Tornado", "Handlers, templates, WebSocket, deployment."),
    ("performance", "High concurrency", "Async I/O, workers, Redis, benchmarks."),
]

# Each migration is a list of statements; {id} is the backend's auto-increment
# key, {text} its long text type. A statement given as a dict is per backend.
MIGRATIONS: list[list[Any]] = [
    # 1: the forum as it first shipped (IF NOT EXISTS: a database made before
    # migrations were numbered already has these tables).
    [
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
            body {text} NOT NULL, created DOUBLE PRECISION NOT NULL)""",
        # The course's message board, as it was (with a primary key added).
        """CREATE TABLE IF NOT EXISTS tb_message (
            id {id}, name VARCHAR(64) NOT NULL, email VARCHAR(128) NOT NULL,
            address VARCHAR(255) NOT NULL, message {text} NOT NULL,
            created DOUBLE PRECISION NOT NULL)""",
        {
            "sqlite": "CREATE INDEX IF NOT EXISTS posts_topic ON posts (topic_id, id)",
            "postgresql": "CREATE INDEX IF NOT EXISTS posts_topic ON posts (topic_id, id)",
            "mysql": "CREATE INDEX posts_topic ON posts (topic_id, id)",
        },
        {
            "sqlite": "CREATE INDEX IF NOT EXISTS topics_board ON topics (board_id, last_post)",
            "postgresql": "CREATE INDEX IF NOT EXISTS topics_board ON topics (board_id, last_post)",
            "mysql": "CREATE INDEX topics_board ON topics (board_id, last_post)",
        },
    ],
    # 2: roles, moderation, editing, unread markers, mentions, search, and an
    # owner for the message board's private fields.
    [
        "ALTER TABLE users ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE topics ADD COLUMN is_locked INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE topics ADD COLUMN last_post_id INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE topics ADD COLUMN last_user_id INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE posts ADD COLUMN edited DOUBLE PRECISION",
        "ALTER TABLE posts ADD COLUMN is_hidden INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE posts ADD COLUMN is_deleted INTEGER NOT NULL DEFAULT 0",
        # What search looks in: the body, and for a topic's first post its title.
        "ALTER TABLE posts ADD COLUMN search {text}",
        "UPDATE posts SET search = body",
        "ALTER TABLE tb_message ADD COLUMN owner VARCHAR(64) NOT NULL DEFAULT ''",
        """CREATE TABLE topic_reads (
            user_id INTEGER NOT NULL, topic_id INTEGER NOT NULL,
            last_post_id INTEGER NOT NULL, PRIMARY KEY (user_id, topic_id))""",
        """CREATE TABLE notifications (
            id {id}, user_id INTEGER NOT NULL, post_id INTEGER NOT NULL,
            topic_id INTEGER NOT NULL, from_user VARCHAR(64) NOT NULL,
            title VARCHAR(255) NOT NULL, created DOUBLE PRECISION NOT NULL,
            seen INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX notifications_user ON notifications (user_id, id)",
        "CREATE INDEX posts_user ON posts (user_id, id)",
        "CREATE INDEX topics_user ON topics (user_id, id)",
        # Last posts of old topics, for the board index.
        """UPDATE topics SET last_post_id = (SELECT MAX(p.id) FROM posts p
            WHERE p.topic_id = topics.id)
            WHERE EXISTS (SELECT 1 FROM posts p WHERE p.topic_id = topics.id)""",
        """UPDATE topics SET last_user_id = (SELECT p.user_id FROM posts p
            WHERE p.id = topics.last_post_id) WHERE last_post_id > 0""",
        {
            # A table of its own that the data layer keeps in step with posts.
            "sqlite": "CREATE VIRTUAL TABLE posts_fts USING fts5(search)",
            "postgresql": "CREATE INDEX posts_search ON posts"
            " USING GIN (to_tsvector('english', coalesce(search, '')))",
            "mysql": "CREATE FULLTEXT INDEX posts_search ON posts (search)",
        },
        {"sqlite": "INSERT INTO posts_fts (rowid, search) SELECT id, search FROM posts"},
    ],
    # 3: login and sign-up throttles, shared by every worker.
    [
        """CREATE TABLE throttle_events (
            id {id}, name VARCHAR(32) NOT NULL, event_key VARCHAR(255) NOT NULL,
            at DOUBLE PRECISION NOT NULL)""",
        "CREATE INDEX throttle_events_key ON throttle_events (name, event_key, at)",
    ],
]

KEY = {
    "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "postgresql": "SERIAL PRIMARY KEY",
    "mysql": "INTEGER PRIMARY KEY AUTO_INCREMENT",
}
TEXT = {"sqlite": "TEXT", "postgresql": "TEXT", "mysql": "MEDIUMTEXT"}


# InnoDB's default full-text stopwords (INFORMATION_SCHEMA.INNODB_FT_DEFAULT_STOPWORD).
INNODB_STOPWORDS = frozenset(
    "a about an are as at be by com de en for from how i in is it la of on or that the "
    "this to was what when where who will with und www".split()
)


class DatabaseURLError(ValueError):
    """A ``--db`` URL this forum cannot use; the message says which forms it takes."""


def parse_url(url: str) -> tuple[str, str]:
    """The backend (``sqlite``, ``postgresql``, ``mysql``) and, for SQLite, the file path.

    Raises:
        DatabaseURLError: the URL is not one of the forms in ``URL_FORMS``.
    """
    scheme, sep, rest = url.partition(":")
    kind = scheme.split("+")[0].lower()
    kind = {"postgres": "postgresql", "mariadb": "mysql"}.get(kind, kind)
    if not sep or kind not in KEY:
        raise DatabaseURLError(f"database URL {url!r} is not understood: use {URL_FORMS}")
    if kind != "sqlite":
        parts = urlsplit(url)
        if not parts.hostname or not parts.path.strip("/"):
            raise DatabaseURLError(
                f"database URL {url!r} needs a host and a database name: use {URL_FORMS}"
            )
        return kind, ""
    if rest in ("", "//", "//:memory:"):
        return kind, ":memory:"
    if rest.startswith("///"):
        # sqlite:///tmp/f is /tmp/f; sqlite:////tmp/f (SQLAlchemy's absolute
        # form) is accepted as the same file.
        path = "/" + unquote(rest).lstrip("/")
    elif rest.startswith("//"):
        raise DatabaseURLError(
            f"database URL {url!r}: a SQLite URL has no host (three slashes before an"
            f" absolute path): use {URL_FORMS}"
        )
    else:
        path = unquote(rest)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DatabaseURLError(f"database URL {url!r}: the folder {folder} does not exist")
    return kind, path


class Database:
    """An async connection (SQLite) or pool (PostgreSQL, MySQL) behind one API.

    Args:
        url: one of the forms in ``URL_FORMS``.

    Raises:
        DatabaseURLError: for a URL it cannot use (before any connection is tried).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.kind, self.path = parse_url(url)
        self._conn: Any = None
        self._lock = asyncio.Lock()
        self._ready = False
        self._closer: Optional[asyncio.Future[None]] = None

    async def ready(self) -> Database:
        """Connects and brings the schema up to the newest migration, once."""
        if self._ready:
            return self
        async with self._lock:
            if not self._ready:
                try:
                    await self._connect()
                    await self._migrate()
                except BaseException:
                    # A start that failed or was cancelled (its request given
                    # up) must not keep a connection nobody will close.
                    await self.close()
                    raise
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

            # Autocommit: each statement is its own transaction unless the
            # code opens one (migrations do).
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            self._conn.row_factory = aiosqlite.Row
            # WAL lets readers go on while one worker writes; busy_timeout
            # makes concurrent writers (several workers) wait, not fail.
            await self._conn.execute("PRAGMA journal_mode=WAL")
            await self._conn.execute("PRAGMA busy_timeout=5000")
            # In WAL mode NORMAL still never corrupts the file; it skips an
            # fsync per commit (a crash may lose the last commits).
            await self._conn.execute("PRAGMA synchronous=NORMAL")
        elif self.kind == "postgresql":
            import asyncpg

            self._conn = await asyncpg.create_pool(
                host=parts.hostname,
                port=parts.port or 5432,
                user=unquote(parts.username or "postgres"),
                password=unquote(parts.password or "") or None,
                database=unquote(parts.path.lstrip("/")),
                min_size=1,
                max_size=10,
            )
        else:
            import aiomysql

            self._conn = await aiomysql.create_pool(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=unquote(parts.username or "root"),
                password=unquote(parts.password or ""),
                db=unquote(parts.path.lstrip("/")),
                autocommit=True,
                charset="utf8mb4",
                minsize=1,
                maxsize=10,
            )

    def _statement(self, statement: Any) -> Optional[str]:
        if isinstance(statement, dict):
            statement = statement.get(self.kind)
            if statement is None:
                return None
        return str(statement).format(id=KEY[self.kind], text=TEXT[self.kind])

    async def _migrate(self) -> None:
        """Applies the migrations not yet applied, holding a lock other workers wait on."""
        exists = self.kind == "mysql" and await self.fetchone(
            # MySQL answers IF NOT EXISTS on an existing table with a warning
            # (an error where warnings are): every worker after the first.
            "SELECT 1 AS x FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_name = 'schema_version'"
        )
        if not exists:
            await self.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
        async with self._migration_lock():
            row = await self.fetchone("SELECT MAX(version) AS v FROM schema_version")
            done = int(row["v"]) if row and row["v"] is not None else 0
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= done:
                    continue
                for statement in statements:
                    sql = self._statement(statement)
                    if sql is not None:
                        await self.execute(sql)
                await self.execute("INSERT INTO schema_version (version) VALUES (?)", version)
            for slug, title, description in BOARDS:
                if await self.fetchone("SELECT id FROM boards WHERE slug = ?", slug) is None:
                    await self.insert("boards", slug=slug, title=title, description=description)

    def _migration_lock(self) -> Any:
        db = self

        class Lock:
            async def __aenter__(self) -> None:
                if db.kind == "sqlite":
                    await db.execute("BEGIN IMMEDIATE")
                elif db.kind == "postgresql":
                    # Session locks: held on one connection of the pool.
                    self.conn = await db._conn.acquire()
                    await self.conn.execute("SELECT pg_advisory_lock(7301)")
                else:
                    self.conn = await db._conn.acquire()
                    async with self.conn.cursor() as cur:
                        await cur.execute("SELECT GET_LOCK('forum_migrations', 60)")

            async def __aexit__(self, kind: Any, exc: Any, tb: Any) -> None:
                if db.kind == "sqlite":
                    await db.execute("COMMIT" if exc is None else "ROLLBACK")
                elif db.kind == "postgresql":
                    await self.conn.execute("SELECT pg_advisory_unlock(7301)")
                    await db._conn.release(self.conn)
                else:
                    async with self.conn.cursor() as cur:
                        await cur.execute("SELECT RELEASE_LOCK('forum_migrations')")
                    db._conn.release(self.conn)

        return Lock()

    def _sql(self, sql: str) -> str:
        if self.kind == "sqlite":
            return sql
        if self.kind == "mysql":
            return sql.replace("%", "%%").replace("?", "%s")
        counter = iter(range(1, sql.count("?") + 1))
        return re.sub(r"\?", lambda _: f"${next(counter)}", sql)

    async def fetchall(self, sql: str, *params: Any) -> list[Row]:
        """Every row of a query, as dicts."""
        sql = self._sql(sql)
        if self.kind == "sqlite":
            # One call on aiosqlite's thread, never execute() then fetchall():
            # between those two calls the connection (shared by every request
            # of this worker) holds the SELECT's read transaction open, and a
            # write from another request on it must then upgrade that read to
            # a write. If another worker wrote meanwhile, SQLite refuses at once
            # with "database is locked" (SQLITE_BUSY, without waiting out
            # busy_timeout: waiting could deadlock), and the reply was a 500.
            rows = await self._conn.execute_fetchall(sql, params)
            return [dict(row) for row in rows]
        if self.kind == "postgresql":
            return [dict(row) for row in await self._conn.fetch(sql, *params)]
        import aiomysql

        async with self._conn.acquire() as conn, conn.cursor(aiomysql.DictCursor) as cur:
            await cur.execute(sql, params)
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, *params: Any) -> Optional[Row]:
        """The first row of a query, or None."""
        rows = await self.fetchall(sql, *params)
        return rows[0] if rows else None

    async def count(self, sql: str, *params: Any) -> int:
        """The one number a ``SELECT COUNT(*) ...`` gives (an int on every backend)."""
        row = await self.fetchall(sql, *params)
        return int(next(iter(row[0].values()))) if row else 0

    async def execute(self, sql: str, *params: Any) -> Optional[int]:
        """Runs a statement; returns the new row's id after an INSERT (SQLite, MySQL)."""
        sql = self._sql(sql)
        if self.kind == "sqlite":
            cursor = await self._conn.execute(sql, params)
            row_id: Optional[int] = cursor.lastrowid
            await cursor.close()
            return row_id
        if self.kind == "postgresql":
            await self._conn.execute(sql, *params)
            return None
        async with self._conn.acquire() as conn, conn.cursor() as cur:
            # Always a tuple, so that the driver always formats (%% becomes %).
            await cur.execute(sql, params)
            return int(cur.lastrowid)

    async def insert(self, table: str, **values: Any) -> int:
        """Inserts one row and returns its id. ``table`` and the keys are code, never input."""
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"
        if self.kind == "postgresql":
            row = await self._conn.fetchrow(self._sql(sql + " RETURNING id"), *values.values())
            return int(row["id"])
        row_id = await self.execute(sql, *values.values())
        assert row_id is not None
        return row_id

    # Where the dialects differ.

    async def mark_read(self, user_id: int, topic_id: int, post_id: int) -> None:
        """Records that ``user_id`` has seen ``topic_id`` up to ``post_id`` (never backwards)."""
        if self.kind == "mysql":
            sql = (
                "INSERT INTO topic_reads (user_id, topic_id, last_post_id) VALUES (?, ?, ?)"
                " ON DUPLICATE KEY UPDATE last_post_id = GREATEST(last_post_id,"
                " VALUES(last_post_id))"
            )
        else:
            biggest = "MAX" if self.kind == "sqlite" else "GREATEST"
            sql = (
                "INSERT INTO topic_reads (user_id, topic_id, last_post_id) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, topic_id) DO UPDATE SET last_post_id ="
                f" {biggest}(topic_reads.last_post_id, excluded.last_post_id)"
            )
        await self.execute(sql, user_id, topic_id, post_id)

    async def new_topic(
        self, board_id: int, user_id: int, title: str, body: str, when: float
    ) -> tuple[int, int]:
        """Creates a topic with its first post (searchable); returns their ids."""
        topic_id = await self.insert(
            "topics",
            board_id=board_id,
            user_id=user_id,
            title=title,
            posts=1,
            created=when,
            last_post=when,
            last_user_id=user_id,
        )
        post_id = await self.insert(
            "posts", topic_id=topic_id, user_id=user_id, body=body, created=when
        )
        await self.execute("UPDATE topics SET last_post_id = ? WHERE id = ?", post_id, topic_id)
        await self.index_post(post_id, title + "\n" + body)
        return topic_id, post_id

    async def index_post(self, post_id: int, text: str) -> None:
        """Stores what search finds ``post_id`` by (replacing what it had)."""
        await self.execute("UPDATE posts SET search = ? WHERE id = ?", text, post_id)
        if self.kind == "sqlite":
            await self.execute("DELETE FROM posts_fts WHERE rowid = ?", post_id)
            await self.execute("INSERT INTO posts_fts (rowid, search) VALUES (?, ?)", post_id, text)

    def search_clause(self, words: list[str]) -> tuple[str, list[Any]]:
        """A WHERE condition on posts ``p`` matching every word, and its parameters."""
        if self.kind == "sqlite":
            # Each word quoted: FTS5's query syntax (NEAR, *, -) stays out of reach.
            query = " ".join('"' + w.replace('"', "") + '"' for w in words)
            return "p.id IN (SELECT rowid FROM posts_fts WHERE posts_fts MATCH ?)", [query]
        if self.kind == "postgresql":
            return (
                "to_tsvector('english', coalesce(p.search, '')) @@ plainto_tsquery('english', ?)",
                [" ".join(words)],
            )
        # Boolean mode with +word: every word must be there. InnoDB's FULLTEXT
        # index holds no word under innodb_ft_min_token_size (3) and none of
        # its stopwords, so those ("io", "C", "go", "the") are looked for as
        # whole words by a regular expression instead (a scan, but only
        # among the rows the indexed words left, when there are any).
        clauses: list[str] = []
        params: list[Any] = []
        words = [w for w in (re.sub(r"[^\w]", "", w) for w in words) if w]
        indexed = [w for w in words if len(w) >= 3 and w.lower() not in INNODB_STOPWORDS]
        if indexed:
            clauses.append("MATCH (p.search) AGAINST (? IN BOOLEAN MODE)")
            params.append(" ".join("+" + w for w in indexed))
        for word in words:
            if word not in indexed:
                clauses.append("p.search REGEXP ?")
                params.append(f"(?i)\\b{word}\\b")
        return " AND ".join(clauses) or "1 = 0", params

    async def close(self) -> None:
        closer, self._closer = self._closer, None
        if closer is not None and closer is not asyncio.current_task():
            closer.cancel()  # closed by hand: the loop's end has nothing left to do
        if self._conn is not None:
            conn, self._conn = self._conn, None
            self._ready = False
            if self.kind == "sqlite":
                await conn.close()
            elif self.kind == "postgresql":
                await conn.close()
            else:
                conn.close()
                await conn.wait_closed()
