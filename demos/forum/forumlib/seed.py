"""A few topics for a forum that has none, so that a first visit has something to read.

`make demo` asks for them (``--seed``); the tests and ``squall run`` start
empty. The topics are posted by ``squall``, an account whose password is
random and thrown away: nobody signs in as it.
"""

from __future__ import annotations

import secrets
import time

from forumlib.accounts import hash_password
from forumlib.db import Database

AUTHOR = "squall"

# (board, title, first post): Markdown, as a visitor would write it.
TOPICS = (
    (
        "general",
        "Welcome: what this forum shows",
        "This forum is Squall's demo: pages rendered by templates, a WebSocket "
        "per open topic, and replies that reach every reader at once.\n\n"
        "Open this topic in two windows, sign up, and reply in one: the other "
        "shows it without a reload.",
    ),
    (
        "squall",
        "Serving a Tornado program unchanged",
        "`python -m squall.compat app.py` runs a program that imports "
        "`tornado` on Squall, with no line changed:\n\n"
        "```python\nimport tornado.web\n\n"
        "class Main(tornado.web.RequestHandler):\n"
        "    def get(self):\n        self.write('hello')\n```",
    ),
    (
        "performance",
        "Many readers, one broadcast",
        "A reply is framed once and written to every reader of the topic. Cut "
        "your network for a while and post from another window: when the page "
        "comes back, it gets what it missed.",
    ),
)


async def seed_if_empty(db: Database) -> int:
    """Post `TOPICS` when the forum has no topic and no user; returns how many were posted."""
    if await db.count("SELECT COUNT(*) AS n FROM topics") or await db.count(
        "SELECT COUNT(*) AS n FROM users"
    ):
        return 0
    now = time.time()
    user_id = await db.insert(
        "users", name=AUTHOR, password=hash_password(secrets.token_hex(16)), created=now
    )
    for number, (slug, title, body) in enumerate(TOPICS):
        board = await db.fetchone("SELECT id FROM boards WHERE slug = ?", slug)
        assert board is not None, slug
        # In order, oldest first.
        await db.new_topic(board["id"], user_id, title, body, now + number)
    return len(TOPICS)
