"""`LocalPubSub`, the ``memory://`` engine: subscribers in this process, with
history and presence kept in memory; and `_window`, the history answer every
engine gives from the publications it kept."""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence
from typing import Optional

from squall.pubsub._base import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_RECOVERY,
    PubSub,
)
from squall.pubsub._presence import DEFAULT_PRESENCE_TTL, Hold
from squall.pubsub._types import HistoryResult, Position, Publication, new_epoch


def _window(
    kept: list[Publication],
    top: Position,
    since: Optional[Position],
    limit: int,
    start: int = 0,
) -> HistoryResult:
    """What `PubSub.history` returns, from ``kept`` (oldest first; at least the
    publications after ``since`` that are still kept) and the channel's top;
    ``start``: the offset the top's epoch began after (a position below it
    in that epoch reads from it)."""
    if start:
        kept = [p for p in kept if p.position.offset > start]
    if since is None:
        chosen = kept[-limit:] if limit else []
        complete = top.offset == start or (
            len(chosen) == len(kept) and bool(kept) and kept[0].position.offset == start + 1
        )
        return HistoryResult(chosen, top, complete)
    if since.epoch != top.epoch or since.offset > top.offset:
        return HistoryResult([], top, False)
    if since.offset < start:
        since = Position(start, since.epoch)
    missed = top.offset - since.offset
    after = [p for p in kept if p.position.offset > since.offset] if missed else []
    complete = len(after) == missed and (not after or after[0].position.offset == since.offset + 1)
    return HistoryResult(after[:limit], top, complete and missed <= limit)


class _Stream:
    """One channel's offsets and kept publications, in `LocalPubSub`."""

    __slots__ = ("offset", "epoch", "start", "kept", "touched")

    def __init__(self, now: float) -> None:
        self.offset = 0
        self.epoch = new_epoch()
        self.start = 0  # the offset the epoch began after
        self.kept: collections.deque[tuple[float, Publication]] = collections.deque()
        self.touched = now


def _live(entry: Optional[tuple[str, dict[str, float]]], now: float) -> dict[str, float]:
    """The holds of ``entry`` (None: no entry) not expired by ``now``."""
    if entry is None:
        return {}
    owners = entry[1]
    for owner in [o for o, expires in owners.items() if expires <= now]:
        del owners[owner]
    return owners


class LocalPresence:
    """The presence entries of `LocalPubSub`: channel -> client -> (info,
    holds: owner -> expiry); an entry lives while one of its holds does."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, tuple[str, dict[str, float]]]] = {}

    async def put(
        self, channel: str, holds: Sequence[Hold], ttl: float, join: bool = False
    ) -> list[str]:
        now = time.monotonic()
        here = self._entries.setdefault(channel, {})
        back = []
        for client, owner, info in holds:
            held = here.get(client)
            owners = _live(held, now)
            if not owners:
                back.append(client)
            elif not join and held is not None:
                info = held[0]  # a refresh keeps the info of the entry's last join
            owners[owner] = now + ttl
            here[client] = (info, owners)
        return back

    async def remove(self, channel: str, client: str, owner: str) -> bool:
        here = self._entries.get(channel, {})
        owners = _live(here.get(client), time.monotonic())
        owners.pop(owner, None)
        if owners:
            return False
        here.pop(client, None)
        if not here:
            self._entries.pop(channel, None)
        return True

    def _alive(self, channel: str, now: float) -> dict[str, tuple[str, dict[str, float]]]:
        """``channel``'s entries, their expired holds (and entries left without
        one) dropped."""
        here = self._entries.get(channel, {})
        for client, entry in list(here.items()):
            if not _live(entry, now):
                del here[client]
        if not here:
            self._entries.pop(channel, None)
        return here

    async def get(self, channel: str, limit: int) -> dict[str, str]:
        here = self._alive(channel, time.monotonic())
        return {c: info for c, (info, _) in list(here.items())[:limit]}

    async def count(self, channel: str) -> int:
        return len(self._alive(channel, time.monotonic()))


class LocalPubSub(PubSub):
    """Subscribers in this process only (``memory://``).

    Positions and history live in this object. Memory is bounded by
    ``max_channels`` channel states (offset, epoch, up to ``history_size``
    publications each); a state is forgotten ``history_ttl`` seconds after
    its last publication, or sooner when ``max_channels`` is reached (the
    least recently used without subscribers first); the channel then starts
    a new epoch.
    """

    def __init__(
        self,
        max_pending: int = DEFAULT_MAX_PENDING,
        *,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        max_channels: int = 100_000,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        super().__init__(
            max_pending,
            history_size=history_size,
            history_ttl=history_ttl,
            max_recovery=max_recovery,
            presence_ttl=presence_ttl,
        )
        if not isinstance(max_channels, int) or max_channels < 1:
            raise ValueError(f"max_channels must be at least 1, not {max_channels!r}")
        self.max_channels = max_channels
        self._streams: collections.OrderedDict[str, _Stream] = collections.OrderedDict()
        self._use_presence(LocalPresence())

    def _stream(self, channel: str) -> _Stream:
        now = time.monotonic()
        stream = self._streams.get(channel)
        if stream is None:
            stream = self._streams[channel] = _Stream(now)
        else:
            self._streams.move_to_end(channel)
            stream.touched = now
        # Amortised: each call looks at a few of the least recently used.
        horizon = now - self.history_ttl
        for _ in range(4):
            name, oldest = next(iter(self._streams.items()))
            if oldest is stream or (
                len(self._streams) <= self.max_channels and oldest.touched >= horizon
            ):
                break
            if name in self._channels:
                self._streams.move_to_end(name)  # subscribed: kept while it is
                oldest.touched = now
            else:
                del self._streams[name]
        kept = stream.kept
        while kept and (len(kept) > self.history_size or kept[0][0] < horizon):
            kept.popleft()
        return stream

    async def _publish(self, channel: str, message: str) -> Position:
        stream = self._stream(channel)
        stream.offset += 1
        position = Position(stream.offset, stream.epoch)
        pub = Publication(channel, message, position)
        if self.history_size:
            stream.kept.append((stream.touched, pub))
            if len(stream.kept) > self.history_size:
                stream.kept.popleft()
        self._dispatch(pub)
        return position

    async def _read(
        self, channel: str, since: Optional[Position], limit: int, strict: bool
    ) -> HistoryResult:
        stream = self._stream(channel)
        kept = [pub for _, pub in stream.kept]
        return _window(kept, Position(stream.offset, stream.epoch), since, limit, stream.start)

    async def _top(self, channel: str) -> Position:
        stream = self._stream(channel)
        return Position(stream.offset, stream.epoch)

    async def _renew(self, channel: str, epoch: str, after: int, new: str) -> str:
        stream = self._stream(channel)
        if stream.epoch == epoch:
            stream.epoch = epoch = new
            stream.start = after
            stream.kept = collections.deque(
                (when, Publication(pub.channel, pub.data, Position(pub.position.offset, epoch)))
                for when, pub in stream.kept
            )
        return stream.epoch
