"""Replies to one topic arriving at once through two servers, each with its own
connection (SQLite) or pool (MariaDB, PostgreSQL) to one database: what two
``squall run`` workers do. Every reply must be stored, once, and none may fail.

On SQLite this once gave ``database is locked`` (a 500): a worker's one
connection was shared by its coroutines, and a SELECT whose rows had not yet
been fetched (two calls to aiosqlite's thread) left a read transaction open,
so another coroutine's UPDATE had to upgrade it to a write while the other
worker had written since: SQLite answers that at once with SQLITE_BUSY,
without waiting ``busy_timeout``, since waiting could deadlock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from .._util import run
from ._client import Visitor, client, forum_server

POSTERS = 4  # two on each server
REPLIES = 12  # each
READERS = 4  # reading the topic page meanwhile (the open SELECTs), two on each


def test_concurrent_replies_through_two_servers_are_all_stored(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with (
            forum_server(tmp_path / "1", db_url) as (app_one, one),
            forum_server(tmp_path / "2", db_url) as (_, two),
            client() as http,
        ):
            owner = Visitor(one, http)
            assert (await owner.signup("owner")).code == 302
            topic = await owner.new_topic("general", "busy topic", "first")

            bases = [one, two]
            posters = [Visitor(bases[n % 2], http) for n in range(POSTERS)]
            for n, poster in enumerate(posters):
                assert (await poster.signup(f"poster{n}")).code == 302
            readers = [Visitor(bases[n % 2], http) for n in range(READERS)]
            for n, reader in enumerate(readers):
                assert (await reader.signup(f"reader{n}")).code == 302

            stored: list[int] = []
            codes: list[int] = []
            done = asyncio.Event()

            async def post(n: int, poster: Visitor) -> None:
                for k in range(REPLIES):
                    response = await poster.fetch(f"/t/{topic}", {"body": f"p{n} r{k}"})
                    codes.append(response.code)
                    if response.code == 302:
                        stored.append(int(response.headers["Location"].rsplit("#p", 1)[1]))

            async def read(reader: Visitor) -> None:
                while not done.is_set():
                    codes.append((await reader.fetch(f"/t/{topic}")).code)

            reading = [asyncio.ensure_future(read(r)) for r in readers]
            try:
                await asyncio.gather(*(post(n, p) for n, p in enumerate(posters)))
            finally:
                done.set()
                await asyncio.gather(*reading)

            assert sorted(set(codes)) == [200, 302]
            assert len(stored) == POSTERS * REPLIES == len(set(stored))
            db = app_one.settings["db"]
            rows = await db.fetchall(
                "SELECT id, body FROM posts WHERE topic_id = ? ORDER BY id", topic
            )
            assert [r["id"] for r in rows[1:]] == sorted(stored)
            bodies = {r["body"] for r in rows[1:]}
            assert bodies == {f"p{n} r{k}" for n in range(POSTERS) for k in range(REPLIES)}
            row = await db.fetchone("SELECT posts, last_post_id FROM topics WHERE id = ?", topic)
            assert row is not None
            assert int(row["posts"]) == 1 + POSTERS * REPLIES
            assert int(row["last_post_id"]) == max(stored)

    run(main(), limit=60)  # a bound on a hang; it takes about 2 s


def test_a_write_lock_held_past_busy_timeout_is_a_503_not_a_500(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            ann = Visitor(base, http)
            assert (await ann.signup("ann")).code == 302
            topic = await ann.new_topic("general", "locked out", "first")
            # Another worker's long write, and a short wait so the test is quick.
            await app.settings["db"].execute("PRAGMA busy_timeout=50")
            other = sqlite3.connect(tmp_path / "forum.sqlite3", isolation_level=None)
            try:
                other.execute("BEGIN IMMEDIATE")
                busy = await ann.fetch(f"/t/{topic}", {"body": "while locked"})
                assert busy.code == 503 and busy.headers["Retry-After"] == "1"
                assert b"the forum is busy" in busy.body
                other.execute("ROLLBACK")
            finally:
                other.close()
            reply, _ = await ann.reply(topic, "after the lock")
            bodies = await app.settings["db"].fetchall(
                "SELECT body FROM posts WHERE topic_id = ? ORDER BY id", topic
            )
            assert [r["body"] for r in bodies] == ["first", "after the lock"]

    run(main())
