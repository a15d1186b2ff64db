"""`PubSub`, the base of the engines: positions, recovery, catch-up after a
resubscription, and fan-out to the local `Subscription` and `Relay` objects."""

from __future__ import annotations

import asyncio
import importlib
import time
import weakref
from collections.abc import Callable, Collection, Coroutine
from typing import Any, Optional

from squall.log import gen_log
from squall.pubsub._presence import (
    DEFAULT_PRESENCE_TTL,
    MAX_PRESENCE_LIST,
    NoPresence,
    Presence,
    PresenceStore,
    Roster,
)
from squall.pubsub._subscription import Listener, Relay, Subscription, _Closing
from squall.pubsub._supervise import Backoff
from squall.pubsub._types import (
    MAX_CHANNEL_BYTES,
    HistoryResult,
    Position,
    Publication,
    PubSubClosedError,
    Status,
    check_channel,
    check_message,
    check_seconds,
    new_epoch,
)

__all__ = [
    "PubSub",
    "instances",
    "DEFAULT_MAX_PENDING",
    "DEFAULT_MAX_RECOVERY",
    "DEFAULT_HISTORY_TTL",
    "CATCH_UP_READS",
    "client_library",
]

DEFAULT_MAX_PENDING = 1000
DEFAULT_MAX_RECOVERY = 1000
DEFAULT_HISTORY_TTL = 300.0
# The (channel, publisher) pairs whose last count a process remembers to
# drop copies (see PubSub._copy): about 200 bytes each.
ORIGINS_KEPT = 10_000
# History reads at once when channels catch up after a resubscription.
CATCH_UP_READS = 16


def client_library(engine: str, package: str, extra: str, *modules: str) -> Any:
    """The top package of an engine's client library, with ``modules`` imported.

    Raises:
        ImportError: one of them is missing: the message names the package
            and the extra of squall's that installs it.
    """
    try:
        for name in modules:
            importlib.import_module(name)
    except ImportError as exc:  # pragma: no cover - the extras are in dev
        raise ImportError(
            f"squall.pubsub's {engine} needs the {package} package: pip install 'squall[{extra}]'"
        ) from exc
    return importlib.import_module(modules[0].partition(".")[0])


class PubSub(_Closing):
    """Base of the engines: positions, recovery, and local fan-out to `Subscription` and `Relay` objects.

    Args:
        max_pending: default bound of each `Subscription` (drop-oldest past it).
        history_size: publications kept per channel (0: none, positions only).
        history_ttl: seconds a publication is kept; a channel's offsets and
            epoch are forgotten this long after its last publication (its
            next one starts a new epoch).
        max_recovery: the most publications one `subscribe` with ``since``
            (or one `history` call) returns; past it the reader is told
            ``recovered=False``.
        presence_ttl: seconds a `PubSub.join` entry lives unless refreshed (this
            process refreshes its own every third of it).
    """

    #: False for an engine whose publications carry no offsets (NATS core,
    #: Redis made with ``positions=False``: every position is the same):
    #: nothing can resume from a position, and `squall.resume` refuses it.
    has_positions: bool = True
    #: Seconds `subscribe` waits for the broker (engines take it as an argument).
    subscribe_timeout: float = 10.0

    def __init__(
        self,
        max_pending: int = DEFAULT_MAX_PENDING,
        *,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        # Presence: the entries this process joined, in the engine's store
        # (none until the engine gives one: `_use_presence`).
        self._roster = Roster(
            NoPresence(type(self).__name__), presence_ttl, self._announce, type(self).__name__
        )
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending!r}")
        if not isinstance(history_size, int) or history_size < 0:
            raise ValueError(f"history_size must be 0 or more, not {history_size!r}")
        if not isinstance(max_recovery, int) or max_recovery < 1:
            raise ValueError(f"max_recovery must be at least 1, not {max_recovery!r}")
        self.max_pending = max_pending
        self.history_size = history_size
        self.history_ttl = check_seconds("history_ttl", history_ttl)
        self.max_recovery = max_recovery
        #: Health and counters (see `Status`).
        self.status = Status()
        self._channels: dict[str, set[Listener]] = {}
        self._closed = False
        # Per locally subscribed channel: the last position handed out, so
        # that overlaps are dropped and gaps counted (and, with history, filled
        # after a resubscription: see _catch_up).
        self._last: dict[str, Position] = {}
        self._held: dict[str, list[Publication]] = {}
        # Per channel just caught up: the offsets the history read gave
        # (above the first, up to the position). A live copy of one of those
        # can still be on its way (the history read and the subscription are
        # two connections): it is dropped.
        self._floors: dict[str, tuple[int, Position]] = {}
        # Per channel whose broker gave an offset again in the epoch it had
        # been handed out in: that epoch and the one that replaced it (see
        # _renew_epoch). Publications still labelled with the old one are
        # handed out in the new one.
        self._renamed: dict[str, tuple[str, str]] = {}
        self._catching_up: set[asyncio.Task[None]] = set()
        # The channels resubscribed again while a catch-up of theirs was
        # reading history: its read may have been made before the live
        # publications that the second loss of the subscription took, so
        # it reads again (see _fill_one).
        self._again: set[str] = set()
        # Per (channel, publisher token): the count of that publisher's last
        # publication handed out here (see _copy), the least recently heard
        # from first.
        self._origins: dict[tuple[str, str], int] = {}
        # Futures of wait_until callers, woken at each change of state.
        self._watchers: set[asyncio.Future[None]] = set()
        _INSTANCES.add(self)

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def _count_drop(self) -> None:
        """A local subscription dropped a publication (it was too slow)."""
        self.status.dropped += 1

    @property
    def healthy(self) -> bool:
        """False while the broker is out of reach (see `Status`)."""
        return self.status.healthy

    def _set_healthy(self, healthy: bool) -> None:
        if self.status.healthy != healthy:
            self.status.healthy = healthy
            self.status.since = time.monotonic()
            self._changed()

    def _resubscribed(self, seconds: float) -> None:
        """Counts a resubscription after a loss that took ``seconds``."""
        self.status.resubscribes += 1
        self.status.last_resume = seconds
        self._changed()

    def _changed(self) -> None:
        """Wakes `wait_until` callers: the engine's state changed."""
        for future in self._watchers:
            if not future.done():
                future.set_result(None)

    async def wait_until(self, condition: Callable[[], bool], timeout: float) -> None:
        """Waits until ``condition()`` is true, for at most ``timeout`` seconds.

        ``condition`` is called now and each time the engine's state
        changes: its health, a resubscription after a loss, its
        subscriptions with the broker (``status.healthy``,
        ``status.resubscribes``, ``RedisClusterPubSub.subscribed_partitions``
        ...). For tests and health checks, instead of polling.

        Raises:
            TimeoutError: ``condition()`` stayed false for ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{type(self).__name__}: condition not met within {timeout}s")
            future: asyncio.Future[None] = loop.create_future()
            self._watchers.add(future)
            try:
                await asyncio.wait([future], timeout=remaining)
            finally:
                self._watchers.discard(future)
                future.cancel()

    def subscribers(self, channel: str) -> int:
        """How many subscriptions of this process listen on ``channel``."""
        return len(self._channels.get(channel, ()))

    async def publish(self, channel: str, message: str) -> Position:
        """Sends ``message`` to every subscriber of ``channel`` (and to its history).

        Returns:
            The new publication's position.

        Raises:
            TypeError: ``channel`` or ``message`` is not a str.
            ValueError: ``channel`` is not a channel name every engine can
                carry (empty, over ``MAX_CHANNEL_BYTES`` bytes of UTF-8, a lone
                surrogate: see `check_channel`), or ``message`` holds a lone
                surrogate.
            PubSubClosedError: this `PubSub` was closed.
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        # The checks' common case inline (a publish is the hot path).
        if (
            type(channel) is not str
            or not 0 < len(channel) <= MAX_CHANNEL_BYTES
            or not channel.isascii()
        ):
            check_channel(channel)
        if type(message) is not str or not message.isascii():
            check_message(message)
        position = await self._publish(channel, message)
        self.status.published += 1
        return position

    # Presence: the Roster (squall.pubsub._presence) does the work.

    @property
    def presence_ttl(self) -> float:
        """Seconds a `join` entry lives unless refreshed."""
        return self._roster.ttl

    def _use_presence(self, store: PresenceStore) -> None:
        """Keeps presence entries in ``store`` (an engine calls it once, at setup)."""
        self._roster = Roster(store, self._roster.ttl, self._announce, type(self).__name__)

    async def _announce(self, channel: str, message: str) -> Position:
        # Through publish as it is looked up now (a subclass may wrap it).
        return await self.publish(channel, message)

    async def join(self, channel: str, client: str, info: str = "") -> Presence:
        """Adds ``client`` to ``channel``'s presence until `Presence.leave`.

        Joining again under the same client id replaces the info. This
        process refreshes the entry every ``presence_ttl / 3`` seconds; a
        join and an explicit leave are published as JSON on
        `presence_channel` ``(channel)``. When it raises after the entry was
        written (the join event could not be published, or the caller was
        cancelled), the entry is not kept: it is removed when the broker
        allows, and no longer refreshed, so it expires within
        ``presence_ttl`` at the latest.

        Raises:
            TypeError, ValueError: ``channel``, ``client`` or ``info`` unfit
                (see `check_channel`; an empty id, too long: 256 and 4,096
                characters, a lone surrogate).
            NotImplementedError: the engine has no presence (NATS).
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        return await self._roster.join(channel, client, info)

    async def presence(self, channel: str, limit: int = MAX_PRESENCE_LIST) -> dict[str, str]:
        """Who is on ``channel`` now: client id -> info (at most ``limit`` of them).

        Raises:
            ValueError: ``limit`` outside 1 to 10,000, or a bad channel name.
            NotImplementedError: the engine has no presence (NATS).
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        return await self._roster.list(channel, limit)

    async def presence_count(self, channel: str) -> int:
        """How many clients are on ``channel`` (cheap for large channels).

        Raises:
            ValueError: a bad channel name.
            NotImplementedError: the engine has no presence (NATS).
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        return await self._roster.count(channel)

    async def subscribe(
        self,
        channel: str,
        max_pending: Optional[int] = None,
        *,
        since: Optional[Position] = None,
    ) -> Subscription:
        """A new subscription to ``channel``.

        Without ``since`` it receives everything published after this
        returns. With ``since`` it first yields every publication after that
        position, from the history kept, then the live ones: no gap, no
        duplicate, in order, and ``Subscription.recovered`` says whether that
        was possible. If not (the position is older than the kept window,
        from another epoch or from the future, or more than ``max_recovery``
        publications were missed) the stream starts after the channel's
        current top, which is then ``Subscription.position``.

        Args:
            channel: the channel name.
            max_pending: this reader's bound (default: the `PubSub`'s); past
                it the oldest pending message is dropped.
            since: the position of the last publication the reader has.

        Raises:
            TypeError: ``channel`` is not a str, ``since`` not a `Position`.
            ValueError: ``channel`` is not a channel name (see `check_channel`).
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        check_channel(channel)
        if since is not None and not isinstance(since, Position):
            raise TypeError(
                f"since must be a Position (Position.parse(text)), not {type(since).__name__}"
            )
        sub = Subscription(
            channel,
            max_pending or self.max_pending,
            leave=self._unsubscribe,
            dropped=self._count_drop,
            hold=True,
        )
        await self._add(sub)
        try:
            if since is None:
                try:
                    top: Optional[Position] = await asyncio.wait_for(
                        self._top(channel), self.subscribe_timeout
                    )
                except (ConnectionError, TimeoutError):
                    top = None  # live delivery still works; the position is unknown
                if top is not None and top.epoch and channel in self._channels:
                    # Where a resubscription's catch-up starts, should the
                    # broker be lost before the channel's first publication.
                    self._last.setdefault(channel, top)
                sub.start(top, None, None)
            else:
                history = await self._read(channel, since, self.max_recovery, strict=True)
                sub.start(None, since, history)
        except BaseException:
            sub.close()
            raise
        return sub

    async def history(
        self,
        channel: str,
        *,
        since: Optional[Position] = None,
        limit: Optional[int] = None,
    ) -> HistoryResult:
        """The publications kept for ``channel``, oldest first.

        Args:
            channel: the channel name.
            since: only those after this position (the oldest ``limit`` of
                them); without it, the newest ``limit`` kept.
            limit: at most this many (default and ceiling: ``max_recovery``).

        Raises:
            TypeError: bad argument types.
            ValueError: ``limit`` below 0.
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        check_channel(channel)
        if since is not None and not isinstance(since, Position):
            raise TypeError(f"since must be a Position, not {type(since).__name__}")
        if limit is None:
            limit = self.max_recovery
        elif not isinstance(limit, int) or limit < 0:
            raise ValueError(f"limit must be 0 or more, not {limit!r}")
        return await self._read(channel, since, min(limit, self.max_recovery), strict=False)

    async def position(self, channel: str) -> Position:
        """The channel's top: the last publication's offset (0 if none) and the epoch.

        Raises:
            ConnectionError: the broker could not be reached.
        """
        self._check_open()
        check_channel(channel)
        return await self._top(channel)

    async def relay(
        self,
        channel: str,
        connections: Collection[Any],
        *,
        max_skips: Optional[int] = None,
        max_buffer: Optional[int] = None,
        close_code: int = 1013,
    ) -> Relay:
        """Sends every message published on ``channel`` to ``connections``, as it arrives.

        Each message goes out with `squall.websocket.broadcast` (framed
        once, written to every open connection without waiting; a
        connection too slow to read is skipped and, past ``max_skips``
        skips in a row or ``max_buffer`` bytes unsent, closed with
        ``close_code``). ``connections`` is read at each message: the set
        the handlers add themselves to in ``open`` and leave in
        ``on_close``. Nothing is queued: a message is relayed while it is
        dispatched, so a slow socket never delays the channel's other
        subscribers. A connection carries no position: after a
        resubscription the process relays what it missed (read from
        history) to the connections it has then, those added while it was
        away included, so a client that moved from another process can
        get again what that one relayed. Where that matters, use
        `squall.resume` (positions, and a resume without copies).

        Args:
            channel: the channel name.
            connections: WebSocket handlers or client connections.
            max_skips: see `squall.websocket.broadcast`.
            max_buffer: see `squall.websocket.broadcast`.
            close_code: see `squall.websocket.broadcast`.

        Returns:
            The `Relay`; `Relay.close` stops it.
        """
        self._check_open()
        check_channel(channel)
        from squall.websocket import broadcast  # the web layer, only when relaying

        def send(targets: Collection[Any], message: str) -> Any:
            return broadcast(
                targets,
                message,
                max_skips=max_skips,
                max_buffer=max_buffer,
                close_code=close_code,
            )

        relay = Relay(channel, connections, send, leave=self._unsubscribe)
        await self._add(relay)
        return relay

    async def _add(self, listener: Listener) -> None:
        subs = self._channels.setdefault(listener.channel, set())
        first = not subs
        subs.add(listener)
        if first:
            try:
                await self._listen(listener.channel)
            except BaseException:
                listener.close()
                raise

    async def close(self) -> None:
        """Closes every subscription and releases the engine's resources."""
        self._closed = True
        await self._roster.stop()
        for task in list(self._catching_up):
            task.cancel()
        for subs in list(self._channels.values()):
            for sub in list(subs):
                sub.close()
        self._channels.clear()

    # Engine hooks.

    async def _publish(self, channel: str, message: str) -> Position:
        raise NotImplementedError

    async def _read(
        self, channel: str, since: Optional[Position], limit: int, strict: bool
    ) -> HistoryResult:
        """History after ``since`` (see `history`); ``strict``: a recovery, which
        wants all or nothing, so more than ``limit`` need not be read."""
        raise NotImplementedError

    async def _top(self, channel: str) -> Position:
        raise NotImplementedError

    async def _renew(self, channel: str, epoch: str, after: int, new: str) -> str:
        """Begins epoch ``new`` on ``channel`` if it is still in ``epoch``, its
        offsets going on from where they are and its history kept (now in
        the new epoch) from offset ``after`` on: the new epoch begins after
        it, and a read from below it reads from it. Returns the channel's
        epoch after: ``new``, or the one another process began first."""
        raise NotImplementedError

    async def _listen(self, channel: str) -> None:
        """Called when ``channel`` gets its first local subscriber."""

    def _forget(self, channel: str) -> None:
        """Called when ``channel`` lost its last local subscriber."""

    def _dispatch(self, pub: Publication) -> None:
        channel = pub.channel
        subs = self._channels.get(channel)
        if not subs:
            return
        if self._renamed:
            pub = self._relabelled(pub)
        held = self._held.get(channel)
        if held is not None:
            # Catching up after a resubscription: live ones wait for history.
            if len(held) >= self.max_pending:
                held.pop(0)
                self.status.dropped += 1
            held.append(pub)
            return
        position = pub.position
        if not position.epoch:
            # No position (a message PUBLISHed to the broker by another
            # program): passed on as it is. It moves nothing: taken for the
            # channel's last position, it would make the next catch-up read
            # the whole history again, as if the epoch had been lost.
            self.status.delivered += 1
            for sub in list(subs):
                sub.deliver(pub)
            return
        if self._floors:
            given = self._floors.get(channel)
            if given is not None:
                low, floor = given
                if position.epoch == floor.epoch and low < position.offset <= floor.offset:
                    return
                del self._floors[channel]
        last = self._last.get(channel)
        if last is not None and position.epoch == last.epoch:
            if position.offset > last.offset + 1 and last.offset:
                self.status.missed += position.offset - last.offset - 1
            elif 0 < position.offset <= last.offset:
                if pub.origin and self._had(channel, pub.origin):
                    # A copy of one handed out here (or older than it): two
                    # subscription connections carried it (a partition's
                    # old link and its new one around a failover), not a
                    # new publication in a reused offset. Renewing the
                    # epoch for it would only reset every reader.
                    return
                # A broker delivers each publication once per subscription
                # (overlaps come only from a catch-up, which _fill trims):
                # this offset was given again, to a new publication.
                self._held[channel] = [pub]
                self._start(self._go_on_renamed(channel, last.epoch, position.offset - 1))
                return
        self._last[channel] = position
        if pub.origin and self._copy(channel, pub.origin):
            return
        self.status.delivered += 1
        if len(subs) == 1:
            for sub in subs:
                sub.deliver(pub)
            return
        for sub in list(subs):
            sub.deliver(pub)

    def _had(self, channel: str, origin: str) -> bool:
        """True when `_copy` would drop the publication of ``origin`` on
        ``channel`` (nothing is recorded)."""
        token, _, count = origin.rpartition(".")
        last = self._origins.get((channel, token))
        try:
            return last is not None and int(count) <= last
        except ValueError:
            return False

    def _copy(self, channel: str, origin: str) -> bool:
        """True when the publication of ``origin`` (``"<token>.<count>"``) on
        ``channel`` is a copy of one handed out here already, or older than
        it: a publish whose reply was lost, applied by a primary that then
        died before its replica had it, and applied again by the replica
        when tried again (at another position, in a new epoch). A
        publisher makes one publish at a time per channel, so its counts
        on a channel come growing; what one below the last means is a copy,
        or a publish given up (its publisher raised) that a stopped
        primary applied late."""
        token, _, count = origin.rpartition(".")
        try:
            number = int(count)
        except ValueError:
            return False
        key = (channel, token)
        origins = self._origins
        last = origins.pop(key, None)
        if last is not None and number <= last:
            origins[key] = last
            return True
        origins[key] = number
        if len(origins) > ORIGINS_KEPT:
            del origins[next(iter(origins))]
        return False

    def _catch_up(self, channels: Collection[str]) -> None:
        """After a resubscription: fills, from history, what ``channels`` missed
        while the broker was away (nothing to do without history)."""
        if not self.history_size or self._closed:
            return
        self._again.update(c for c in channels if c in self._held)
        wanted = [c for c in channels if c in self._last and c not in self._held]
        if not wanted:
            return
        for channel in wanted:
            self._held[channel] = []
        self._start(self._fill(wanted))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs ``work`` (a catch-up) in a task that `close` cancels."""
        task = asyncio.ensure_future(work)
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    def _relabelled(self, pub: Publication) -> Publication:
        renamed = self._renamed.get(pub.channel)
        if renamed is None or pub.position.epoch != renamed[0]:
            return pub
        return Publication(
            pub.channel, pub.data, Position(pub.position.offset, renamed[1]), pub.origin
        )

    async def _renew_epoch(self, channel: str, old: str, after: int) -> str:
        """Leaves ``channel``'s epoch ``old``, whose offsets the broker gives
        again: a failover to a replica that had not yet received the last
        publications lost them, and the next publications take their
        offsets. Every reader holding a later position in ``old`` (a
        `squall.resume` stream, a browser's client) would drop those as
        seen, so the broker is asked for a new epoch (`_renew`) and from
        here on publications labelled ``old`` are handed out in it: readers
        see the epoch change and say that some may be lost. When the broker
        cannot be asked, a new epoch of this process's own stands in.
        """
        proposed = new_epoch()
        try:
            epoch = await self._renew(channel, old, after, proposed)
        except Exception as exc:  # out of reach, an error reply, an engine without it
            epoch = proposed
            gen_log.warning(
                "pubsub: channel %r: the broker gave offsets of epoch %s again "
                "(a failover lost writes) and no new epoch could be begun there (%r): "
                "its publications are handed out in epoch %s of this process",
                channel,
                old,
                exc,
                epoch,
            )
        else:
            gen_log.warning(
                "pubsub: channel %r: the broker gave offsets of epoch %s again "
                "(a failover lost writes): it goes on in epoch %s%s",
                channel,
                old,
                epoch,
                "" if epoch == proposed else ", which another process began",
            )
        if epoch == proposed:
            # Counted by the process that began it: when a publisher's or
            # another reader's process was first, its status says so.
            self.status.renewed += 1
        self._changed()
        if channel in self._channels:
            self._renamed[channel] = (old, epoch)
        return epoch

    async def _go_on_renamed(self, channel: str, old: str, after: int) -> None:
        """A live publication came with an offset already handed out in
        epoch ``old``, the first given again being ``after`` + 1
        (`_dispatch` holds the channel): a new epoch, beginning after it,
        then what was held, in it."""
        try:
            await self._renew_epoch(channel, old, after)
        finally:
            held = self._held.pop(channel, [])
        for pub in held:
            self._dispatch(pub)

    async def _fill(self, channels: list[str]) -> None:
        # Up to CATCH_UP_READS history reads at once: a process with
        # thousands of channels does not hold the live ones of the last
        # channel behind thousands of round trips.
        todo = iter(channels)

        async def reader() -> None:
            for channel in todo:
                await self._fill_one(channel)

        await asyncio.gather(*(reader() for _ in range(min(CATCH_UP_READS, len(channels)))))

    async def _catch_up_read(self, channel: str, since: Position) -> HistoryResult:
        """The history read that fills ``channel``'s gap, tried again with
        backoff while the broker refuses it, for up to ``subscribe_timeout``:
        right after a failover the subscription may be back before the
        commands' route to the new primary is (a stale slot map, CLUSTERDOWN
        for a moment), and one refusal must not give up the publications
        made during the failover.

        Raises:
            ConnectionError: still refused when ``subscribe_timeout`` is up.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.subscribe_timeout
        backoff = Backoff(0.02, 0.5)
        while True:
            try:
                return await self._read(channel, since, self.max_recovery, strict=True)
            except ConnectionError:
                delay = backoff.next()
                if self._closed or loop.time() + delay > give_up:
                    raise
            await asyncio.sleep(delay)

    async def _fill_one(self, channel: str) -> None:
        last = self._last.get(channel)
        result: Optional[HistoryResult] = None
        renewed: Optional[Position] = None
        try:
            if last is not None and not self._closed:
                while True:
                    self._again.discard(channel)
                    result = await self._catch_up_read(channel, last)
                    epoch = result.position.epoch
                    moved = not result.recovered and bool(epoch) and epoch != last.epoch
                    if moved:
                        # The broker lost the channel's state while we were
                        # away (a failover to a replica that had none of
                        # it, an expiry) and began a new epoch: what the old
                        # one held after `last` is gone, but what was
                        # published in the new one before this
                        # resubscription is kept. Read that from its start.
                        result = await self._catch_up_read(channel, Position(0, epoch))
                    if channel not in self._again:
                        break
                    # Resubscribed again while reading: what the broker
                    # published between this read and that resubscription
                    # reached no subscription, so the read is made again
                    # (nothing was handed out yet; the live ones wait).
                if (
                    not moved
                    and not result.recovered
                    and epoch
                    and result.position.offset < last.offset
                ):
                    # Its top is below what was handed out: a failover lost
                    # the last writes, and their offsets are given again.
                    # Nothing is read: what the history holds up to its top
                    # was either handed out already or published into a
                    # reused offset while we were away, and the two cannot
                    # be told apart (the guide's limits); what came after
                    # the resubscription is held, and goes out in the new
                    # epoch below.
                    reached = result.position.offset
                    result = None
                    renewed = Position(reached, await self._renew_epoch(channel, epoch, reached))
        except (ConnectionError, PubSubClosedError):
            pass  # counted as missed when the live ones jump
        except Exception as exc:
            # A broker's error reply (-OOM on the epoch it would write): the
            # channel's live publications must not stay held for it.
            gen_log.warning(
                "pubsub: catching up %r after a resubscription failed: %r", channel, exc
            )
        finally:
            held = self._held.pop(channel, [])
            self._again.discard(channel)
        # The history read gives the offsets above `last` (in a new epoch,
        # above 0): held or late live copies of those are not given twice.
        # A live one at or below it came after the resubscription with an
        # offset handed out before: given again, which _dispatch sees.
        low = 0
        if last is not None and (result is None or result.position.epoch == last.epoch):
            low = last.offset
        if result is not None and result.recovered:
            for pub in result.publications:
                self._dispatch(pub)
            if result.publications:
                self._floors[channel] = (low, result.publications[-1].position)
        if renewed is not None and channel in self._channels:
            # Every held one goes out (none was given by a history read),
            # and without a last position, none is taken for an offset
            # given again. With none held, the broker's top in the new
            # epoch stands as the last one given, so that a later
            # resubscription reads on from it, not from 0.
            self._last.pop(channel, None)
            for pub in held:
                self._dispatch(pub)  # relabelled there
            self._last.setdefault(channel, renewed)
            return
        top = self._last.get(channel)
        for pub in held:
            if self._renamed:
                pub = self._relabelled(pub)
            # Those the history already gave are not given twice.
            if (
                top is None
                or pub.position.epoch != top.epoch
                or not low < pub.position.offset <= top.offset
            ):
                self._dispatch(pub)

    def _unsubscribe(self, sub: Listener) -> None:
        subs = self._channels.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._channels[sub.channel]
            self._last.pop(sub.channel, None)
            self._held.pop(sub.channel, None)
            self._floors.pop(sub.channel, None)
            self._renamed.pop(sub.channel, None)
            self._again.discard(sub.channel)
            if not self._closed:
                self._forget(sub.channel)

    def _check_open(self) -> None:
        if self._closed:
            raise PubSubClosedError(f"{type(self).__name__} is closed")


# Every PubSub alive in this process, for `squall run --metrics-bind` to sample.
_INSTANCES: weakref.WeakSet[PubSub] = weakref.WeakSet()


def instances() -> list[PubSub]:
    """The `PubSub` objects alive in this process and not closed (for metrics and health)."""
    return [p for p in _INSTANCES if not p.closed]
