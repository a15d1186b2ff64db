"""Presence: who is on a channel, across processes (a `Roster` in each `PubSub`).

A reader *joins* a channel under a client id with a little text of the
application's (a name, a JSON object); `PubSub.presence` lists who is there
and `PubSub.presence_count` counts them. Each process refreshes its own
entries every ``presence_ttl / 3`` seconds, so the entries of a process that
died without saying goodbye expire ``presence_ttl`` seconds later. Join and
leave (an explicit `Presence.leave`, not an expiry) are published as JSON
``{"event": "join"|"leave", "client": ..., "info": ...}`` on
`presence_channel(channel)`, which anyone may subscribe to.

One client id may be joined several times (two tabs of one user, on one
process or on several): the entry is held by each `Presence` handle that
joined it, each with its own expiry, and lasts while one of them does. A
handle's `Presence.leave` lets go of its own hold only; the entry goes, and
"leave" is announced, when the last live hold goes. Each join is announced
(its info becomes the entry's), and so is an entry a refresh puts back
after it expired (the broker out of reach for longer than the TTL): no
entry appears without a "join".

Where it is kept: in the `LocalPubSub` object; on Redis, a sorted set per
channel (member: client id, score: expiry time in ms), a hash beside it
(client id -> info) and one of the holds (client id -> "handle expiry ..."),
all with the channel's hash tag, expired entries
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
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from squall.log import gen_log
from squall.pubsub._subscription import _Closing
from squall.pubsub._supervise import Backoff, Supervised
from squall.pubsub._types import PRESENCE_SUFFIX, check_channel, check_seconds, check_utf8

__all__ = [
    "Presence",
    "PresenceStore",
    "NoPresence",
    "Roster",
    "presence_channel",
    "DEFAULT_PRESENCE_TTL",
    "MAX_PRESENCE_LIST",
]

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


#: One hold on a presence entry: (client id, the holding handle's id, info).
Hold = tuple[str, str, str]


class PresenceStore(Protocol):
    """Where an engine keeps presence entries (memory, Redis sorted sets and hashes).

    An entry (a client id on a channel) is held by one or more handles
    (`Presence.owner`), each hold with its own expiry; it lives while one does.
    """

    async def put(
        self, channel: str, holds: Sequence[Hold], ttl: float, join: bool = False
    ) -> list[str]:
        """Writes (or refreshes) ``holds`` for ``ttl`` seconds. A join's hold
        (``join``) sets its entry's info; a refresh's sets it only where it
        puts the entry back (no other hold's refresh may put the info of an
        older join back over a later one's). Returns the client ids that had
        no live entry before."""

    async def remove(self, channel: str, client: str, owner: str) -> bool:
        """Lets go of ``owner``'s hold on ``client``'s entry; True when no live
        hold is left and the entry was removed."""

    async def get(self, channel: str, limit: int) -> dict[str, str]:
        """At most ``limit`` live entries (client id -> info)."""

    async def count(self, channel: str) -> int:
        """How many live entries."""


class NoPresence:
    """The `PresenceStore` of an engine without presence (NATS): every call raises."""

    __slots__ = ("engine",)

    def __init__(self, engine: str) -> None:
        self.engine = engine

    def _refuse(self) -> NotImplementedError:
        return NotImplementedError(f"{self.engine} has no presence")

    async def put(
        self, channel: str, holds: Sequence[Hold], ttl: float, join: bool = False
    ) -> list[str]:
        raise self._refuse()

    async def remove(self, channel: str, client: str, owner: str) -> bool:
        raise self._refuse()

    async def get(self, channel: str, limit: int) -> dict[str, str]:
        raise self._refuse()

    async def count(self, channel: str) -> int:
        raise self._refuse()


class Presence(_Closing):
    """One join of a client on one channel: a hold on the client's entry,
    refreshed until `leave` (or the `PubSub` closes).

    ``async with entry:`` leaves on the way out.
    """

    __slots__ = ("channel", "client", "info", "owner", "_roster", "_left")

    def __init__(self, roster: Roster, channel: str, client: str, info: str, owner: str) -> None:
        self.channel = channel
        self.client = client
        self.info = info
        #: This handle's id, unique across processes: what holds the entry.
        self.owner = owner
        self._roster = roster
        self._left = False

    async def leave(self) -> None:
        """Lets go of this handle's hold (once); when no other handle holds the
        client's entry, removes it and publishes a leave event."""
        if self._left:
            return
        self._left = True
        await self._roster.remove(self)

    def close(self) -> Awaitable[None]:
        """`leave` (what ``async with`` calls on the way out)."""
        return self.leave()


#: How a roster publishes its join and leave events (the PubSub's publish).
Announce = Callable[[str, str], Awaitable[object]]


class Roster:
    """The entries this process joined, kept refreshed in a `PresenceStore`.

    Owns the handles this process joined (owner id -> `Presence`) and the
    heartbeat that refreshes their holds every ``ttl / 3`` seconds (a
    supervised loop), and announces joins and leaves with ``announce`` on
    `presence_channel`. `PubSub.join`, `PubSub.presence` and
    `PubSub.presence_count` are its `join`, `list` and `count`.
    """

    __slots__ = (
        "store",
        "ttl",
        "_announce",
        "_present",
        "_heartbeat",
        "_stopped",
        "_token",
        "_count",
    )

    def __init__(self, store: PresenceStore, ttl: float, announce: Announce, owner: str) -> None:
        self.ttl = check_seconds("presence_ttl", ttl)
        self.store = store
        self._announce = announce
        self._present: dict[str, Presence] = {}
        self._stopped = False
        # Handle ids: this roster's random token and a count (unique across
        # the processes sharing a broker, and never reused here).
        self._token = secrets.token_hex(8)
        self._count = itertools.count(1)
        self._heartbeat = Supervised(
            f"presence heartbeat of {owner}",
            self._beat,
            Backoff(min(0.1, self.ttl / 3), self.ttl / 3),
        )

    @property
    def entries(self) -> int:
        """How many holds (joined handles) this process refreshes."""
        return len(self._present)

    def forget(self, channel: str, client: str) -> None:
        """Stops refreshing a client's holds without removing them (the entry
        expires within the TTL, unless another process holds it)."""
        for owner, entry in list(self._present.items()):
            if entry.channel == channel and entry.client == client:
                del self._present[owner]

    async def join(self, channel: str, client: str, info: str) -> Presence:
        """See `PubSub.join`."""
        check_channel(channel)
        _check(client, info)
        entry = Presence(self, channel, client, info, f"{self._token}.{next(self._count)}")
        await self.store.put(channel, [(client, entry.owner, info)], self.ttl, join=True)
        self._present[entry.owner] = entry
        self._heartbeat.start()
        try:
            await self._announce_event("join", entry)
        except BaseException as exc:
            await self._unjoin(entry, exc)
            raise
        return entry

    def _announce_event(self, event: str, entry: Presence) -> Awaitable[object]:
        return self._announce(
            presence_channel(entry.channel),
            json.dumps({"event": event, "client": entry.client, "info": entry.info}),
        )

    async def _unjoin(self, entry: Presence, exc: BaseException) -> None:
        """Undoes a `join` that raises ``exc``: the hold it wrote is not
        refreshed, and let go (unless the caller is being cancelled: it then
        expires). Another handle's hold on the entry stands."""
        if self._present.pop(entry.owner, None) is None:
            return
        if isinstance(exc, asyncio.CancelledError) or self._stopped:
            return
        try:
            await self.store.remove(entry.channel, entry.client, entry.owner)
        except Exception as error:
            gen_log.info("pubsub: removing the failed join of %r failed: %r", entry.channel, error)

    async def remove(self, entry: Presence) -> None:
        """Lets go of ``entry``'s hold (`Presence.leave`), and announces the
        client left when no live hold is left (another tab's, another
        process's): a stale handle's leave leaves the live one's entry."""
        self._present.pop(entry.owner, None)
        if self._stopped:
            return
        if await self.store.remove(entry.channel, entry.client, entry.owner):
            await self._announce_event("leave", entry)

    async def list(self, channel: str, limit: int) -> dict[str, str]:
        """See `PubSub.presence`."""
        check_channel(channel)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PRESENCE_LIST:
            raise ValueError(f"limit must be 1 to {MAX_PRESENCE_LIST}, not {limit!r}")
        return await self.store.get(channel, limit)

    async def count(self, channel: str) -> int:
        """See `PubSub.presence_count`."""
        check_channel(channel)
        return await self.store.count(channel)

    async def _beat(self) -> None:
        """Refreshes this process's entries until none is left (supervised)."""
        while self._present and not self._stopped:
            await asyncio.sleep(self.ttl / 3)
            by_channel: dict[str, list[Presence]] = {}
            for entry in list(self._present.values()):
                by_channel.setdefault(entry.channel, []).append(entry)
            for channel, entries in by_channel.items():
                try:
                    holds = [(e.client, e.owner, e.info) for e in entries]
                    back = await self.store.put(channel, holds, self.ttl)
                    if back:
                        await self._announce_back(entries, back)
                except ConnectionError as exc:
                    # Refreshed at the next beat; the entries live a TTL.
                    gen_log.info("pubsub: presence refresh of %r failed: %s", channel, exc)
                except Exception as exc:
                    # A broker's error reply (-OOM, -READONLY): the same,
                    # and the other channels are refreshed meanwhile.
                    gen_log.warning(
                        "pubsub: presence refresh of %r failed: %s: %s",
                        channel,
                        type(exc).__name__,
                        exc,
                    )
            self._heartbeat.backoff.reset()

    async def _announce_back(self, entries: Sequence[Presence], back: Sequence[str]) -> None:
        """Announces "join" for the entries a refresh put back (they had expired:
        no entry appears without a join), once per client, with the info written."""
        infos = {e.client: e for e in entries if e.owner in self._present}
        for client in dict.fromkeys(back):
            entry = infos.get(client)
            if entry is not None:
                await self._announce_event("join", entry)

    async def stop(self) -> None:
        """Stops refreshing (the `PubSub` closes); leave() then publishes nothing."""
        self._stopped = True
        self._present.clear()
        await self._heartbeat.stop()
