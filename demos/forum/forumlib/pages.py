"""The forum's pages: boards, topics, posts (with editing, quoting, moderation),
search, the Markdown preview, and the course's message board."""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Optional

import squall.web

from .base import GUEST_COOKIE, BaseHandler, TooFast
from .db import Row
from .live import POSTS_SQL, TopicMixin, reader_id, readers_now, topic_channel
from .markup import mentions, quote_post

MAX_TITLE = 200
MAX_BODY = 10_000


class IndexHandler(BaseHandler):
    async def get(self) -> None:
        boards = await self.db.fetchall(
            "SELECT b.id, b.slug, b.title, b.description, COUNT(t.id) AS topics,"
            " COALESCE(SUM(t.posts), 0) AS posts"
            " FROM boards b LEFT JOIN topics t ON t.board_id = b.id"
            " GROUP BY b.id, b.slug, b.title, b.description ORDER BY b.id"
        )
        for board in boards:
            board["topics"], board["posts"] = int(board["topics"]), int(board["posts"])
            board["last"] = await self.db.fetchone(
                "SELECT t.id, t.title, t.last_post, t.last_post_id, u.name AS author"
                " FROM topics t LEFT JOIN users u ON u.id = t.last_user_id WHERE t.board_id = ?"
                " ORDER BY t.last_post DESC, t.id DESC LIMIT 1",
                board["id"],
            )
        messages = await self.db.count("SELECT COUNT(*) AS n FROM tb_message")
        last_message = await self.db.fetchone(
            "SELECT name, created FROM tb_message ORDER BY id DESC LIMIT 1"
        )
        self.render("index.html", boards=boards, messages=messages, last_message=last_message)


class PostWriter(TopicMixin):
    """What starting a topic, replying and editing share: a rate limit, mentions."""

    async def refuse_if_writing_too_fast(self) -> None:
        """429 with Retry-After when the user is over ``post_user_limit``
        (new topics, replies and edits together); else counts this one."""
        throttle = self.settings["throttles"].get("post_user_limit")
        if throttle is None:
            return
        key = str(self.current_user["id"])
        wait = await throttle.retry_after(key)
        if wait:
            raise TooFast(wait)
        await throttle.hit(key)

    async def mention(
        self, body: str, post_id: int, topic_id: int, title: str, old: str = ""
    ) -> None:
        """Stores and sends a notification to each user newly ``@named`` in ``body``."""
        me = self.current_user
        already = set(mentions(old))
        for name in mentions(body):
            if name in already or name == me["name"]:
                continue
            user = await self.db.fetchone("SELECT id FROM users WHERE name = ?", name)
            if user is None:
                continue
            # One notification per user per post: edits that take a mention
            # out and put it back do not send it again.
            if await self.db.fetchone(
                "SELECT id FROM notifications WHERE user_id = ? AND post_id = ?",
                user["id"],
                post_id,
            ):
                continue
            note_id = await self.db.insert(
                "notifications",
                user_id=user["id"],
                post_id=post_id,
                topic_id=topic_id,
                from_user=me["name"],
                title=title,
                created=time.time(),
            )
            note = {
                "id": note_id,
                "from": me["name"],
                "title": title,
                "url": self.reverse_url("post", post_id),
            }
            await self.notify(user["id"], note)


class BoardHandler(PostWriter):
    """A board's topics, newest activity first; POST starts a topic."""

    async def board(self, slug: str) -> Row:
        return await self.row_or_404("board", "SELECT * FROM boards WHERE slug = ?", slug)

    async def get(self, slug: str) -> None:
        board = await self.board(slug)
        total = await self.db.count(
            "SELECT COUNT(*) AS n FROM topics WHERE board_id = ?", board["id"]
        )
        page, pages, offset = self.paging(total)
        me = self.current_user["id"] if self.current_user else 0
        topics = await self.db.fetchall(
            "SELECT t.id, t.title, t.posts, t.last_post, t.last_post_id, t.is_locked,"
            " u.name AS author, l.name AS last_author, r.last_post_id AS read_up_to"
            " FROM topics t JOIN users u ON u.id = t.user_id"
            " LEFT JOIN users l ON l.id = t.last_user_id"
            " LEFT JOIN topic_reads r ON r.topic_id = t.id AND r.user_id = ?"
            " WHERE t.board_id = ? ORDER BY t.last_post DESC, t.id DESC LIMIT ? OFFSET ?",
            me,
            board["id"],
            self.settings["page_size"],
            offset,
        )
        for topic in topics:
            topic["unread"] = bool(me) and (topic["read_up_to"] or 0) < topic["last_post_id"]
            topic["first_unread"] = None
            if topic["unread"] and topic["read_up_to"]:
                # A topic read before opens at the first post since (its permalink).
                row = await self.db.fetchone(
                    "SELECT MIN(id) AS id FROM posts WHERE topic_id = ? AND id > ?",
                    topic["id"],
                    topic["read_up_to"],
                )
                topic["first_unread"] = row["id"] if row else None
        self.render("board.html", board=board, topics=topics, page=page, pages=pages)

    @squall.web.authenticated
    async def post(self, slug: str) -> None:
        board = await self.board(slug)
        title = self.text_argument("title", MAX_TITLE)
        body = self.text_argument("body", MAX_BODY)
        await self.refuse_if_writing_too_fast()
        user_id = self.current_user["id"]
        topic_id, post_id = await self.db.new_topic(board["id"], user_id, title, body, time.time())
        await self.db.mark_read(user_id, topic_id, post_id)  # one's own post is not news
        await self.mention(body, post_id, topic_id, title)
        self.redirect(self.reverse_url("topic", topic_id))


class TopicHandler(PostWriter):
    """A topic's posts, a page at a time; POST replies."""

    async def get(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)
        # The channel's position before the posts are read: a reply stored
        # after this comes live from there (a reply both read and sent live
        # shows once: the page skips ids it has).
        try:
            since: Optional[str] = str(await self.pubsub.position(topic_channel(topic["id"])))
        except ConnectionError:
            since = None  # the page starts from what is published from now on
        total = await self.db.count(
            "SELECT COUNT(*) AS n FROM posts WHERE topic_id = ?", topic["id"]
        )
        # The readers connected now (on any worker), and this one.
        others = await readers_now(self.pubsub, topic["id"])
        readers = None if others is None else others + 1
        page, pages, offset = self.paging(total)
        posts = await self.db.fetchall(
            POSTS_SQL + " ORDER BY p.id LIMIT ? OFFSET ?",
            topic["id"],
            self.settings["page_size"],
            offset,
        )
        quote = ""
        quoted = self.get_query_argument("quote", "") or ""
        if quoted.isdigit() and len(quoted) < 19:
            row = await self.db.fetchone(
                POSTS_SQL + " AND p.id = ? AND p.is_hidden = 0 AND p.is_deleted = 0",
                topic["id"],
                int(quoted),
            )
            if row is not None:
                quote = quote_post(row["author"], row["body"])
        # Where this reader left off, for the "new since your last visit" line.
        read_up_to = 0
        if self.current_user and posts:
            row = await self.db.fetchone(
                "SELECT last_post_id FROM topic_reads WHERE user_id = ? AND topic_id = ?",
                self.current_user["id"],
                topic["id"],
            )
            read_up_to = int(row["last_post_id"]) if row else 0
            await self.db.mark_read(self.current_user["id"], topic["id"], posts[-1]["id"])
        self.render(
            "topic.html",
            topic=topic,
            posts=[(post, offset + i + 1) for i, post in enumerate(posts)],
            page=page,
            pages=pages,
            quote=quote,
            read_up_to=read_up_to,
            since=since,
            channel=topic_channel(topic["id"]),
            readers=readers,
            reader=reader_id(),
        )

    @squall.web.authenticated
    async def post(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)
        if topic["is_locked"] and not self.is_admin:
            raise squall.web.HTTPError(403, reason="this topic is locked")
        body = self.text_argument("body", MAX_BODY)
        await self.refuse_if_writing_too_fast()
        now = time.time()
        user_id = self.current_user["id"]
        post_id = await self.db.insert(
            "posts", topic_id=topic["id"], user_id=user_id, body=body, created=now
        )
        # Readers first: the search index, read marker and mentions can follow.
        await self.publish_post(topic["id"], post_id)
        # Replies in other requests may update the topic in either order: the
        # newest post wins, not the last UPDATE. last_post_id is assigned last,
        # as MySQL evaluates SET left to right with the values already set.
        await self.db.execute(
            "UPDATE topics SET posts = posts + 1,"
            " last_post = CASE WHEN last_post_id < ? THEN ? ELSE last_post END,"
            " last_user_id = CASE WHEN last_post_id < ? THEN ? ELSE last_user_id END,"
            " last_post_id = CASE WHEN last_post_id < ? THEN ? ELSE last_post_id END"
            " WHERE id = ?",
            *(post_id, now, post_id, user_id, post_id, post_id),
            topic["id"],
        )
        await self.db.index_post(post_id, body)
        await self.db.mark_read(user_id, topic["id"], post_id)
        await self.mention(body, post_id, topic["id"], topic["title"])
        self.redirect(await self.post_url(topic["id"], post_id))

    async def post_url(self, topic_id: int, post_id: int) -> str:
        before = await self.db.count(
            "SELECT COUNT(*) AS n FROM posts WHERE topic_id = ? AND id <= ?", topic_id, post_id
        )
        page = max(1, math.ceil(before / self.settings["page_size"]))
        return f"{self.reverse_url('topic', topic_id)}?page={page}#p{post_id}"


class PostHandler(TopicHandler):
    """``/p/ID``: a post's permalink (to its page and anchor); ``/p/ID/ACTION`` changes it."""

    async def the_post(self, post_id: str) -> Row:
        """The post, its topic's title, its author's name, and whether it opens the topic."""
        post = await self.row_or_404(
            "post",
            "SELECT p.*, t.title, u.name AS author FROM posts p"
            " JOIN topics t ON t.id = p.topic_id JOIN users u ON u.id = p.user_id"
            " WHERE p.id = ?",
            int(post_id),
        )
        first = await self.db.fetchone(
            "SELECT MIN(id) AS id FROM posts WHERE topic_id = ?", post["topic_id"]
        )
        post["is_first"] = first is not None and first["id"] == post["id"]
        return post

    async def get(self, post_id: str, action: Optional[str] = None) -> None:  # type: ignore[override]
        post = await self.the_post(post_id)
        if action is None:
            self.redirect(await self.post_url(post["topic_id"], post["id"]))
            return
        if action != "edit":
            raise squall.web.HTTPError(405, reason="use the buttons on the post")
        self.check_author(post)
        self.render("edit.html", post=post, error=None)

    def check_author(self, post: Row) -> None:
        if not self.current_user:
            raise squall.web.HTTPError(403, reason="log in first")
        if post["user_id"] != self.current_user["id"]:
            raise squall.web.HTTPError(403, reason="only its author can change a post")
        if post["is_deleted"]:
            raise squall.web.HTTPError(410, reason="this post was deleted")

    @squall.web.authenticated
    async def post(self, post_id: str, action: Optional[str] = None) -> None:  # type: ignore[override]
        post = await self.the_post(post_id)
        if action == "edit":
            self.check_author(post)
            body = self.text_argument("body", MAX_BODY)
            title = post["title"]
            if post["is_first"]:
                # The topic's opening post carries its title.
                title = self.text_argument("title", MAX_TITLE)
            await self.refuse_if_writing_too_fast()
            if post["is_first"]:
                await self.db.execute(
                    "UPDATE topics SET title = ? WHERE id = ?", title, post["topic_id"]
                )
            await self.db.execute(
                "UPDATE posts SET body = ?, edited = ? WHERE id = ?", body, time.time(), post["id"]
            )
            await self.db.index_post(post["id"], (title + "\n" if post["is_first"] else "") + body)
            await self.mention(body, post["id"], post["topic_id"], title, old=post["body"])
        elif action == "delete":
            self.check_author(post)
            # Kept as a row marked deleted, so that later posts keep their numbers.
            await self.db.execute(
                "UPDATE posts SET body = '', is_deleted = 1, edited = ? WHERE id = ?",
                time.time(),
                post["id"],
            )
            await self.db.index_post(post["id"], "")
        elif action == "hide":
            if not self.is_admin:
                raise squall.web.HTTPError(403, reason="only administrators can hide posts")
            await self.db.execute(
                "UPDATE posts SET is_hidden = 1 - is_hidden WHERE id = ?", post["id"]
            )
        else:
            raise squall.web.HTTPError(404, reason="no such action")
        self.redirect(await self.post_url(post["topic_id"], post["id"]))


class LockHandler(TopicMixin):
    """``POST /t/ID/lock``: an administrator locks or unlocks a topic."""

    @squall.web.authenticated
    async def post(self, topic_id: str) -> None:
        if not self.is_admin:
            raise squall.web.HTTPError(403, reason="only administrators can lock topics")
        topic = await self.topic(topic_id)
        await self.db.execute(
            "UPDATE topics SET is_locked = 1 - is_locked WHERE id = ?", topic["id"]
        )
        self.redirect(self.reverse_url("topic", topic["id"]))


class SearchHandler(BaseHandler):
    """``/search?q=words``: posts holding every word (each backend's full-text index)."""

    async def get(self) -> None:
        query = (self.get_query_argument("q", "") or "").strip()[:200]
        words = re.findall(r"\w+", query)[:8]
        results: list[Row] = []
        page = pages = total = 1
        if words:
            clause, params = self.db.search_clause(words)
            where = f"{clause} AND p.is_deleted = 0 AND p.is_hidden = 0"
            total = await self.db.count(f"SELECT COUNT(*) AS n FROM posts p WHERE {where}", *params)
            page, pages, offset = self.paging(total)
            results = await self.db.fetchall(
                "SELECT p.id, p.body, p.created, p.topic_id, t.title, u.name AS author"
                " FROM posts p JOIN topics t ON t.id = p.topic_id"
                f" JOIN users u ON u.id = p.user_id WHERE {where}"
                " ORDER BY p.id DESC LIMIT ? OFFSET ?",
                *params,
                self.settings["page_size"],
                offset,
            )
        self.render(
            "search.html",
            query=query,
            results=results,
            total=total if words else 0,
            page=page,
            pages=pages,
            words=words,
        )


class PreviewHandler(BaseHandler):
    """``POST /preview``: the Markdown of a draft as the post would show it."""

    def post(self) -> None:
        body = self.get_body_argument("body", "") or ""
        if len(body) > MAX_BODY:
            raise squall.web.HTTPError(400, reason=f"body is over {MAX_BODY} characters")
        self.set_header("Cache-Control", "no-store")
        self.write({"html": self.settings["render"](body)})


class NotificationsHandler(BaseHandler):
    """``/notifications``: the user's mentions, newest first; visiting marks them seen."""

    @squall.web.authenticated
    async def get(self) -> None:
        me = self.current_user["id"]
        total = await self.db.count("SELECT COUNT(*) AS n FROM notifications WHERE user_id = ?", me)
        page, pages, offset = self.paging(total)
        notes = await self.db.fetchall(
            "SELECT * FROM notifications WHERE user_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            me,
            self.settings["page_size"],
            offset,
        )
        await self.db.execute("UPDATE notifications SET seen = 1 WHERE user_id = ?", me)
        self.current_user["unseen"] = 0
        self.render("notifications.html", notes=notes, page=page, pages=pages)


class CodeStyleHandler(BaseHandler):
    """``/code.css``: Pygments' colours for highlighted code, light and dark."""

    async def prepare(self) -> None:
        pass  # no user, no database

    def get(self) -> None:
        self.set_header("Content-Type", "text/css; charset=utf-8")
        self.set_header("Cache-Control", "public, max-age=86400")
        self.write(self.settings["code_css"])


class MessageBoardHandler(BaseHandler):
    """The course's message board. E-mail and postal address are private: shown
    to the message's author (an account, or a browser's guest cookie) and to
    administrators only."""

    def owner(self, create: bool = False) -> str:
        if self.current_user:
            return f"u:{self.current_user['id']}"
        guest = self.get_signed_cookie(GUEST_COOKIE, max_age_days=365)
        if guest is None and create:
            guest = secrets.token_hex(16).encode()
            self.set_signed_cookie(
                GUEST_COOKIE, guest.decode(), httponly=True, samesite="Lax", expires_days=365
            )
        return f"g:{guest.decode()}" if guest else ""

    async def get(self) -> None:
        total = await self.db.count("SELECT COUNT(*) AS n FROM tb_message")
        page, pages, offset = self.paging(total)
        messages = await self.db.fetchall(
            "SELECT name, email, address, message, created, owner FROM tb_message"
            " ORDER BY id DESC LIMIT ? OFFSET ?",
            self.settings["page_size"],
            offset,
        )
        me = self.owner()
        for message in messages:
            message["private"] = self.is_admin or (bool(me) and message["owner"] == me)
        self.render("messages.html", messages=messages, page=page, pages=pages)

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
            owner=self.owner(create=True),
        )
        self.redirect(self.reverse_url("messages"))
