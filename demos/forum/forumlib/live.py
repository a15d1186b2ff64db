"""Live updates: new replies to every open page of a topic (WebSocket, or long
polling when sockets do not get through), and mentions to the user named.

Everything goes through ``squall.pubsub``: in-process by default, over Redis
when the forum runs as several workers, so that a reply posted to one worker
reaches the readers connected to another.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Optional

import squall.escape
import squall.log
import squall.web
import squall.websocket
from squall.pubsub import Subscription

from .base import BaseHandler
from .db import Row

POSTS_SQL = (
    "SELECT p.id, p.topic_id, p.user_id, p.body, p.created, p.edited, p.is_hidden,"
    " p.is_deleted, u.name AS author FROM posts p JOIN users u ON u.id = p.user_id"
    " WHERE p.topic_id = ?"
)


def topic_channel(topic_id: int) -> str:
    return f"forum:topic:{topic_id}"


def user_channel(user_id: int) -> str:
    return f"forum:user:{user_id}"


def live_message(newest: int, payload: str) -> str:
    """What is published for new posts: the newest post id, a newline, the page's JSON.

    The id up front lets each socket skip what it already sent without
    decoding the JSON (one decode per reader per post adds up at 1,000 readers).
    """
    return f"{newest}\n{payload}"


class TopicMixin(BaseHandler):
    async def topic(self, topic_id: str) -> Row:
        return await self.row_or_404(
            "topic",
            "SELECT t.*, b.slug, b.title AS board_title FROM topics t"
            " JOIN boards b ON b.id = t.board_id WHERE t.id = ?",
            int(topic_id),
        )

    async def posts_after(self, topic_id: int, after: int) -> list[Row]:
        return await self.db.fetchall(
            POSTS_SQL + " AND p.id > ? ORDER BY p.id LIMIT 200", topic_id, after
        )

    async def numbered(self, posts: list[Row]) -> list[tuple[Row, int]]:
        """Each post with its number in its topic (posts are never removed, only
        marked deleted or hidden, so a number never changes)."""
        if not posts:
            return []
        first = await self.db.count(
            "SELECT COUNT(*) AS n FROM posts WHERE topic_id = ? AND id < ?",
            posts[0]["topic_id"],
            posts[0]["id"],
        )
        return [(post, first + i + 1) for i, post in enumerate(posts)]

    def live_payload(self, numbered: list[tuple[Row, int]]) -> str:
        """The JSON sent to live pages: each post's id and its rendered HTML.

        Rendered for no one in particular, so without the post's action
        links (quote, edit, delete, hide): they show when the page reloads.
        """
        items = [
            {
                "id": post["id"],
                "html": self.render_string(
                    "modules/post.html", post=post, number=number, topic=None
                ).decode(),
            }
            for post, number in numbered
        ]
        return squall.escape.json_encode({"posts": items})

    def after_argument(self) -> int:
        raw = self.get_query_argument("after", "0") or "0"
        if not raw.isdigit() or len(raw) > 18:
            raise squall.web.HTTPError(400, reason="after must be a post id")
        return int(raw)

    async def publish_post(self, topic_id: int, post_id: int) -> None:
        """Sends a stored reply to every open page of its topic."""
        posts = await self.db.fetchall(POSTS_SQL + " AND p.id = ?", topic_id, post_id)
        payload = self.live_payload(await self.numbered(posts))
        try:
            await self.pubsub.publish(topic_channel(topic_id), live_message(post_id, payload))
        except ConnectionError as exc:
            # The reply is stored: readers see it when they reload or reconnect.
            squall.log.app_log.warning("reply %d not sent live: %s", post_id, exc)

    async def notify(self, user_id: int, notification: dict[str, Any]) -> None:
        try:
            await self.pubsub.publish(user_channel(user_id), json.dumps(notification))
        except ConnectionError as exc:
            squall.log.app_log.warning("mention not sent live: %s", exc)


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
        self.write(self.live_payload(await self.numbered(posts)))

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

    async def _send_from_db(self, topic_id: int, after: int) -> tuple[set[int], int]:
        posts = await self.posts_after(topic_id, after)
        if not posts:
            return set(), after
        await self.write_message(self.live_payload(await self.numbered(posts)))
        return {p["id"] for p in posts}, posts[-1]["id"]

    async def _pump(self, topic_id: int, after: int) -> None:
        assert self.sub is not None
        # Posts from several workers (or concurrent requests) are published
        # in no particular id order, so only what the backlog already sent is
        # skipped; the page also ignores an id it has.
        try:
            sent, last = await self._send_from_db(topic_id, after)
            dropped = 0
            async for message in self.sub:
                if self.sub.dropped != dropped:
                    # This reader fell behind and lost messages: send what the
                    # database has after the newest post it was sent (best
                    # effort: a post stored earlier but published later may
                    # be missed until the page reloads).
                    dropped = self.sub.dropped
                    more, last = await self._send_from_db(topic_id, last)
                    sent = more or sent
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


class NotifySocketHandler(squall.websocket.WebSocketHandler, BaseHandler):
    """``/notify``: the signed-in user's new mentions, as they are made."""

    sub: Optional[Subscription] = None
    pump: Optional[asyncio.Future[None]] = None

    async def get(self, *args: str, **kwargs: str) -> None:
        if not self.current_user:
            raise squall.web.HTTPError(403, reason="log in to get notifications")
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:
        assert self.current_user is not None
        try:
            self.sub = await self.pubsub.subscribe(user_channel(self.current_user["id"]))
        except ConnectionError:
            self.close(1011, "live updates unavailable")
            return
        # Held, so that the task is not collected while it waits.
        self.pump = asyncio.ensure_future(self._pump(self.sub))

    async def _pump(self, sub: Subscription) -> None:
        try:
            async for message in sub:
                await self.write_message(message)
        except squall.websocket.WebSocketClosedError:
            pass
        finally:
            sub.close()

    def on_message(self, message: str | bytes) -> None:
        pass  # nothing to say to the server here

    def on_close(self) -> None:
        if self.sub is not None:
            self.sub.close()
