"""Live updates: new replies to every open page of a topic, and mentions to the user named.

A topic page follows its topic's channel with ``squall-resume.js``: over a
WebSocket (``/live``), else Server-Sent Events (``/t/ID/events``), else long
polling (``/t/ID/feed``), all three from `squall.resume`. Each reply is a
publication with a position; the page keeps the last one and gives it back
when it reconnects, so a reader cut off for a while (a train tunnel, a
worker restarted) gets every reply posted meanwhile, in order, once. When
the channel's history no longer holds them (away longer than the forum's
``history_ttl``, or more than ``history_size`` replies behind), the page is
told (a reset) and fetches what it lacks from the database
(``/t/ID/poll?after=N&wait=0``).

Each open stream (SSE, or a WebSocket subscription) joins the topic
channel's presence, so a topic page can say how many read it now, counted
across every worker (long polls are not counted: they come and go). A page
joins under the reader id it was rendered with (``?reader=`` on its stream
URLs), so a page whose worker was killed, reconnecting to another, takes
over its own entry instead of being counted twice until the dead worker's
entry expires (the forum's ``presence_ttl``, 10 s, bounds what is left: a
page reloaded meanwhile is a new reader).

The older endpoints stay for pages and programs that use them:
``/t/ID/live?after=N`` and ``/t/ID/poll?after=N`` resume by post id from
the database.

Everything goes through ``squall.pubsub``: in-process by default, over Redis
when the forum runs as several workers, so that a reply posted to one worker
reaches the readers connected to another. In each process the sockets open
on one topic share one relay (``PubSub.relay``): each new reply is framed
once and written to all of them by ``squall.websocket.broadcast``, without a
task per reader. A reader too slow to take a reply is closed (1013, "try
again later") rather than skipped: its page reconnects asking for what came
after the last post it has, which the database then sends.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from typing import Any, Optional

import squall.escape
import squall.log
import squall.web
import squall.websocket
from squall.pubsub import Relay, Subscription
from squall.resume import ChannelEventSource, ChannelPollHandler, ChannelWebSocket

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


class Rooms:
    """The sockets open on each topic in this process, and the relay feeding each set."""

    def __init__(self) -> None:
        self.sockets: dict[int, set[Any]] = {}
        self.relays: dict[int, asyncio.Future[Relay]] = {}

    async def join(self, pubsub: Any, topic_id: int, socket: Any) -> None:
        """Adds ``socket`` to the topic's set, starting its relay if it is the first.

        Raises:
            ConnectionError: the pub/sub backend is unreachable.
        """
        sockets = self.sockets.setdefault(topic_id, set())
        relay = self.relays.get(topic_id)
        if relay is None:
            relay = self.relays[topic_id] = asyncio.ensure_future(
                # max_skips=1: a reader that cannot take this reply is closed
                # and catches up from the database when its page reconnects.
                pubsub.relay(topic_channel(topic_id), sockets, max_skips=1)
            )
            relay.add_done_callback(lambda done: done.cancelled() or done.exception())
        sockets.add(socket)
        try:
            await asyncio.shield(relay)
        except BaseException:
            self.leave(topic_id, socket)
            raise

    def leave(self, topic_id: int, socket: Any) -> None:
        """Removes ``socket``; the last one out stops the topic's relay."""
        sockets = self.sockets.get(topic_id)
        if sockets is None:
            return
        sockets.discard(socket)
        if sockets:
            return
        del self.sockets[topic_id]
        relay = self.relays.pop(topic_id)

        def stop(done: asyncio.Future[Relay]) -> None:
            if not done.cancelled() and done.exception() is None:
                done.result().close()

        relay.add_done_callback(stop)


# Background presence work (joins and leaves), held until done.
_background: set[asyncio.Future[Any]] = set()


def _hold(future: asyncio.Future[Any]) -> None:
    _background.add(future)
    future.add_done_callback(_background.discard)
    # Presence is a nicety: a broker away (ConnectionError) or an engine
    # without it (NATS: NotImplementedError) only leaves the count short.
    future.add_done_callback(lambda done: done.cancelled() or done.exception())


READER_ID = re.compile(r"[0-9a-f]{16}")


def reader_id(given: str = "") -> str:
    """The presence id of a page: the one it was rendered with, else a new one."""
    return given if READER_ID.fullmatch(given) else secrets.token_hex(8)


class Attendance:
    """One reader on a topic, in the channel's presence (``squall.pubsub``'s
    join/leave, across every worker) while its stream is open.

    Args:
        reader: the page's id (`reader_id`): a fresh one per rendered page,
            so two tabs of one user are two readers, and a page that
            reconnects (to this worker or another) is still one.

    Each stream holds the page's entry with its own handle: an older stream
    of the same page that ends after its successor joined (a late close)
    lets go of its own hold only, so the page stays counted.
    """

    __slots__ = ("_joined",)

    def __init__(self, pubsub: Any, topic_id: int, reader: str, transport: str) -> None:
        self._joined: asyncio.Future[Any] = asyncio.ensure_future(
            pubsub.join(topic_channel(topic_id), reader, transport)
        )
        _hold(self._joined)

    def leave(self) -> None:
        def leave(joined: asyncio.Future[Any]) -> None:
            if not joined.cancelled() and joined.exception() is None:
                _hold(asyncio.ensure_future(joined.result().leave()))

        self._joined.add_done_callback(leave)


async def readers_now(pubsub: Any, topic_id: int) -> Optional[int]:
    """How many read the topic now (its presence count), or None if unknown."""
    try:
        count: int = await pubsub.presence_count(topic_channel(topic_id))
    except (ConnectionError, NotImplementedError):
        return None
    return count


TOPIC_CHANNEL = re.compile(r"forum:topic:([0-9]{1,18})")


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
            await self.pubsub.publish(topic_channel(topic_id), payload)
        except ConnectionError as exc:
            # The reply is stored: readers see it when they reload or reconnect.
            squall.log.app_log.warning("reply %d not sent live: %s", post_id, exc)

    async def notify(self, user_id: int, notification: dict[str, Any]) -> None:
        try:
            await self.pubsub.publish(user_channel(user_id), json.dumps(notification))
        except ConnectionError as exc:
            squall.log.app_log.warning("mention not sent live: %s", exc)


class TopicPollHandler(TopicMixin):
    """``GET /t/ID/poll?after=N``: the posts after N, as soon as there is one
    (long polling by post id; ``wait=0`` answers at once, for a page catching up)."""

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
            if not posts and self.get_query_argument("wait", "1") != "0":
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

    topic_id = 0
    after = 0
    joined = False

    @property
    def rooms(self) -> Rooms:
        rooms: Rooms = self.settings["rooms"]
        return rooms

    async def get(self, *args: str, **kwargs: str) -> None:
        # Bad requests get their 4xx before the handshake, not a closed socket.
        self.topic_id = (await self.topic(args[0]))["id"]
        self.after = self.after_argument()
        await super().get(*args, **kwargs)

    async def open(self, *args: str, **kwargs: str) -> None:
        # Joined before reading the backlog: a reply stored in between comes
        # by the relay, perhaps ahead of the backlog; the page puts posts in
        # id order and ignores ids it has.
        try:
            await self.rooms.join(self.pubsub, self.topic_id, self)
        except ConnectionError:
            self.close(1011, "live updates unavailable")
            return
        # (A close during the join cancels open(): join() then leaves.)
        self.joined = True
        posts = await self.posts_after(self.topic_id, self.after)
        if posts:
            try:
                await self.write_message(self.live_payload(await self.numbered(posts)))
            except squall.websocket.WebSocketClosedError:
                pass

    def on_message(self, message: str | bytes) -> None:
        self.write_message({"error": "this socket is read-only: post with the form"})

    def on_close(self) -> None:
        if self.joined:
            self.rooms.leave(self.topic_id, self)


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


class TopicEventsHandler(ChannelEventSource, TopicMixin):
    """``/t/ID/events``: the topic's replies as Server-Sent Events, resumed by position."""

    attendance: Optional[Attendance] = None

    def channel(self, topic_id: str) -> str:
        return topic_channel(int(topic_id))

    async def open_stream(self, topic_id: str) -> None:
        topic = await self.topic(topic_id)  # a 404 before the stream
        reader = reader_id(self.get_query_argument("reader", "") or "")
        await super().open_stream(topic_id)
        self.attendance = Attendance(self.pubsub, topic["id"], reader, "events")

    def on_finish(self) -> None:
        super().on_finish()
        if self.attendance is not None:
            self.attendance.leave()


class TopicFeedHandler(ChannelPollHandler, TopicMixin):
    """``/t/ID/feed?cursor=POSITION``: the topic's replies after a position (long polling)."""

    def channel(self, topic_id: str) -> str:
        return topic_channel(int(topic_id))

    async def get(self, topic_id: str) -> None:  # type: ignore[override]
        await self.topic(topic_id)  # a 404 for a topic that does not exist
        await super().get(topic_id)

    @property
    def poll_timeout(self) -> float:  # type: ignore[override]
        timeout: float = self.settings["poll_timeout"]
        return timeout


class LiveSocketHandler(ChannelWebSocket, BaseHandler):
    """``/live``: topics' replies over one WebSocket, resumed by position
    (the protocol of `squall.resume.ChannelWebSocket`)."""

    max_channels = 4
    attendances: Optional[dict[str, Attendance]] = None
    reader = ""

    async def get(self, *args: str, **kwargs: str) -> None:
        self.reader = reader_id(self.get_query_argument("reader", "") or "")
        await super().get(*args, **kwargs)

    def may_subscribe(self, channel: str) -> bool:
        # Topics are public; their channels are all this socket serves.
        return TOPIC_CHANNEL.fullmatch(channel) is not None

    def on_subscribe(self, channel: str) -> None:
        if self.attendances is None:
            self.attendances = {}
        topic = self._topic_of(channel)
        self.attendances[channel] = Attendance(self.pubsub, topic, self.reader, "websocket")

    def on_unsubscribe(self, channel: str) -> None:
        attendance = (self.attendances or {}).pop(channel, None)
        if attendance is not None:
            attendance.leave()

    @staticmethod
    def _topic_of(channel: str) -> int:
        match = TOPIC_CHANNEL.fullmatch(channel)
        assert match is not None
        return int(match.group(1))
