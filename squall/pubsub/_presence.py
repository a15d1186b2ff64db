"""Presence: who is on a channel, across processes (mixed into `PubSub`).

A reader *joins* a channel under a client id with a little text of the
application's (a name, a JSON object); `PubSub.presence` lists who is there
and `PubSub.presence_count` counts them. Each process refreshes its own
entries every ``presence_ttl / 3`` seconds, so the entries of a process that
died without saying goodbye expire ``presence_ttl`` seconds later. Join and
leave (an explicit `Presence.leave`, not an expiry) are published as JSON
``{"event": "join"|"leave", "client": ..., "info": ...}`` on
`presence_channel(channel)`, which anyone may subscribe to.

Where it is kept: in the `LocalPubSub` object; on Redis, a sorted set per
channel (member: client id, score: expiry time in ms) and a hash beside it
(client id -> info), both with the channel's hash tag, expired entries
removed as they are read. Counting is ``ZCARD`` after dropping the expired:
cheap at any size. Listing is bounded by ``limit``. What does not scale: each
process refreshes every entry it holds every ``presence_ttl / 3`` seconds (one
script call per channel and 500 entries, one after another), so 100,000
readers on one process with the default 30 s TTL is 10,000 refreshes a second
on the broker.

The refresh (the heartbeat) is a supervised loop (`squall.pubsub._supervise`):
a channel whose refresh fails (the broker away, or answering an error such
as ``-OOM`` or ``-READONLY``) is logged and refreshed at the next beat, and
the other channels are refreshed meanwhile. A `join` that raises (its event
could not be published, or the caller was cancelled) leaves no entry behind
to be refreshed.
"""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import TYPE_CHECKING, Optional

from squall.log import gen_log
from squall.pubsub._supervise import Backoff, Supervised
from squall.pubsub._types import PRESENCE_SUFFIX, check_channel, check_utf8

if TYPE_CHECKING:
    from squall.pubsub import PubSub

__all__ = ["Presence", "presence_channel", "DEFAULT_PRESENCE_TTL", "MAX_PRESENCE_LIST"]

DEFAULT_PRESENCE_TTL = 30.0
MAX_PRESENCE_LIST = 10_000
_MAX_CLIENT = 256
_MAX_INFO = 4096


def presence_channel(channel: str) -> str:
    """The channel that carries ``channel``'s join and leave events."""
    return channel + PRESENCE_SUFFIX


def _check(client: str, info: str) -> None:
    if not isinstance(client, str) or not client:
        raise TypeError("a presence client id must be a non-empty str")
    if len(client) > _MAX_CLIENT:
        raise ValueError(f"a presence client id is at most {_MAX_CLIENT} characters")
    if not isinstance(info, str):
        raise TypeError(f"presence info must be a str, not {type(info).__name__}")
    if len(info) > _MAX_INFO:
        raise ValueError(f"presence info is at most {_MAX_INFO} characters, not {len(info)}")
    check_utf8("presence client id", client)
    check_utf8("presence info", info)


class Presence:
    """One client's entry on one channel, refreshed until `leave` (or the `PubSub` closes)."""

    __slots__ = ("channel", "client", "info", "_pubsub", "_left")

    def __init__(self, pubsub: PubSub, channel: str, client: str, info: str) -> None:
        self.channel = channel
        self.client = client
        self.info = info
        self._pubsub = pubsub
        self._left = False

    async def leave(self) -> None:
        """Removes the entry and publishes a leave event (once)."""
        if self._left:
            return
        self._left = True
        await self._pubsub._leave(self)

    async def __aenter__(self) -> Presence:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.leave()


class PresenceMixin:
    """The presence half of `PubSub` (engines implement the ``_presence_*`` hooks)."""

    presence_ttl: float
    _present: dict[tuple[str, str], Presence]
    _heartbeat: Supervised
    # PubSub's, which this half reads on the same object (declared for the
    # type checker only: PubSub sets the flag and defines the method).
    _closed: bool
    if TYPE_CHECKING:

        def _check_open(self) -> None: ...

    def _init_presence(self, presence_ttl: float) -> None:
        if not isinstance(presence_ttl, (int, float)) or not presence_ttl > 0:
            raise ValueError(f"presence_ttl must be seconds above 0, not {presence_ttl!r}")
        self.presence_ttl = float(presence_ttl)
        self._present = {}
        self._heartbeat = Supervised(
            f"presence heartbeat of {type(self).__name__}",
            self._beat,
            Backoff(min(0.1, self.presence_ttl / 3), self.presence_ttl / 3),
        )

    async def join(self, channel: str, client: str, info: str = "") -> Presence:
        """Adds ``client`` to ``channel``'s presence until `Presence.leave`.

        Joining again under the same client id replaces the info.

        When it raises after the entry was written (the join event could
        not be published, or the caller was cancelled), the entry is not
        kept: it is removed when the broker allows, and is no longer
        refreshed, so it expires within ``presence_ttl`` at the latest.

        Raises:
            TypeError, ValueError: ``channel``, ``client`` or ``info`` unfit
                (see `~squall.pubsub.check_channel`; an empty id, too long:
                256 and 4,096 characters).
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        me: PubSub = self  # type: ignore[assignment]
        check_channel(channel)
        _check(client, info)
        entry = Presence(me, channel, client, info)
        key = (channel, client)
        before = self._present.get(key)
        await self._presence_set(channel, {client: info})
        self._present[key] = entry
        self._heartbeat.start()
        try:
            await me.publish(
                presence_channel(channel),
                json.dumps({"event": "join", "client": client, "info": info}),
            )
        except BaseException as exc:
            await self._unjoin(key, entry, before, exc)
            raise
        return entry

    async def _unjoin(
        self,
        key: tuple[str, str],
        entry: Presence,
        before: Optional[Presence],
        exc: BaseException,
    ) -> None:
        """Undoes a `join` that raises ``exc``: the entry it wrote is not refreshed,
        and removed (unless the caller is being cancelled: it then expires)."""
        if self._present.get(key) is not entry:
            return  # joined again meanwhile
        if before is not None:
            self._present[key] = before  # the earlier join stands
            return
        del self._present[key]
        if isinstance(exc, asyncio.CancelledError) or self._closed:
            return
        try:
            await self._presence_remove(*key)
        except Exception as error:
            gen_log.info("pubsub: removing the failed join of %r failed: %r", key[0], error)

    async def _leave(self, entry: Presence) -> None:
        me: PubSub = self  # type: ignore[assignment]
        key = (entry.channel, entry.client)
        if self._present.get(key) is entry:
            del self._present[key]
        if self._closed:
            return
        await self._presence_remove(entry.channel, entry.client)
        await me.publish(
            presence_channel(entry.channel),
            json.dumps({"event": "leave", "client": entry.client, "info": entry.info}),
        )

    async def presence(self, channel: str, limit: int = MAX_PRESENCE_LIST) -> dict[str, str]:
        """Who is on ``channel`` now: client id -> info (at most ``limit`` of them).

        Raises:
            ValueError: ``limit`` outside 1 to 10,000.
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        check_channel(channel)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PRESENCE_LIST:
            raise ValueError(f"limit must be 1 to {MAX_PRESENCE_LIST}, not {limit!r}")
        return await self._presence_get(channel, limit)

    async def presence_count(self, channel: str) -> int:
        """How many clients are on ``channel`` (cheap for large channels).

        Raises:
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        check_channel(channel)
        return await self._presence_count(channel)

    async def _beat(self) -> None:
        """Refreshes this process's entries until none is left (supervised)."""
        while self._present and not self._closed:
            await asyncio.sleep(self.presence_ttl / 3)
            by_channel: dict[str, dict[str, str]] = {}
            for (channel, client), entry in list(self._present.items()):
                by_channel.setdefault(channel, {})[client] = entry.info
            for channel, entries in by_channel.items():
                try:
                    await self._presence_set(channel, entries)
                except ConnectionError as exc:
                    # Refreshed at the next beat; the entries live a TTL.
                    gen_log.info("pubsub: presence refresh of %r failed: %s", channel, exc)
                except Exception as exc:
                    # A broker's error reply (-OOM, -READONLY): the same,
                    # and the other channels are refreshed meanwhile.
                    gen_log.warning("pubsub: presence refresh of %r failed: %r", channel, exc)
            self._heartbeat.backoff.reset()

    async def _stop_presence(self) -> None:
        self._present.clear()
        await self._heartbeat.stop()

    # Engine hooks.

    async def _presence_set(self, channel: str, entries: dict[str, str]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no presence")

    async def _presence_remove(self, channel: str, client: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no presence")

    async def _presence_get(self, channel: str, limit: int) -> dict[str, str]:
        raise NotImplementedError(f"{type(self).__name__} has no presence")

    async def _presence_count(self, channel: str) -> int:
        raise NotImplementedError(f"{type(self).__name__} has no presence")
