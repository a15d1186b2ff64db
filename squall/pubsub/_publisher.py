"""Publishing through a failover, for the Redis engines: `RetriedPublisher`;
and `RedisEngine`, the base of both engines, which owns one, with the
engine's `~squall.pubsub._redis_scripts.RedisHistory` and
`~squall.pubsub._redis_scripts.RedisPresence`."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any, Optional

from squall.log import gen_log
from squall.pubsub import _redis_scripts as scripts
from squall.pubsub._base import PubSub
from squall.pubsub._types import (
    HistoryResult,
    Position,
    PublishUncertainError,
    Status,
    new_epoch,
)

__all__ = ["RetriedPublisher", "RedisEngine"]


# The channels whose last applied publish a publisher remembers (see
# RetriedPublisher._applied): about 150 bytes each.
_APPLIED_KEPT = 10_000


# redis-py's errors for a command no server ran: no primary named by the
# Sentinels, a cluster that answered CLUSTERDOWN, a slot no node serves.
_REFUSALS = frozenset(("MasterNotFoundError", "ClusterDownError", "SlotNotCoveredError"))


def _not_applied(exc: BaseException) -> bool:
    """True when ``exc``, raised by an attempt, says the script did not run:
    no connection could be made (redis-py's "Error ... connecting to",
    "Timeout connecting to server"), or the primary refused writes
    (``NOREPLICAS``, which the Sentinel engine raises as out of reach)."""
    text = str(exc)
    return (
        "connecting to" in text
        or text.startswith("Timeout connecting")
        or str(exc.__cause__).startswith("NOREPLICAS")
        or type(exc).__name__ in _REFUSALS
    )


def _never_down() -> Optional[float]:
    """No watch of the engine's own on the broker."""
    return None


class RetriedPublisher:
    """Publishes to one Redis (or Redis Cluster) through a failover; an engine owns one.

    Publishes to one channel go one at a time, in the order `publish` was
    called (a lane per channel: the next is sent once the one before was
    applied or given up), so that subscribers see one publisher's messages
    in that order even when they were made concurrently and a failover
    made them wait and try again. Each publish gets a count (this
    process's token and a number that grows) that every attempt carries:
    the script keeps the publisher's last applied count on the channel and
    applies a count once, so a publish whose reply was lost (the primary
    killed or stopped after applying it, a timeout) may be tried again
    without being delivered twice. While the
    shard refuses or does not answer, attempts go on with backoff until
    ``timeout`` seconds have passed since the publish began; then
    `ConnectionError` says so.

    The id does not cover one case: a primary stopped (SIGSTOP, a long
    pause) while an attempt waited in its socket, whose replica took over
    and applied the attempt sent again. When the old primary resumes, it
    runs what waited before it learns it was replaced, and its SPUBLISH
    reaches the shard's new primary over the cluster bus: the publication
    twice, with the same offset but late. So each attempt also carries its
    time on Redis' clock, as reckoned from the last reply of the same hash
    tag's node (the difference between the clocks is taken from each reply,
    per tag: the nodes' clocks may differ), and the script does not apply
    an attempt older than ``command_timeout`` plus a second: by then its
    client gave it up. An attempt found too old because the clocks moved is
    sent again at once, dated anew. The first publish on a tag, before any
    reply, is not so dated.

    Nor does the count cover a publish applied by a primary that is then
    lost with its replica not having it (a lossy failover): the count's
    record goes with it, and the attempt made again on the promoted
    replica would be applied a second time, under another position, after
    subscribers had the first live. So each reply carries the server's
    replication ID (``master_replid``, new at every promotion), kept per
    hash tag; an attempt made again after one that may have been applied
    names the ID known when that one was sent, and the script, finding the
    count not applied under another ID, does not apply it:
    `PublishUncertainError` (a `ConnectionError`) says so, and the caller
    decides. A failover that lost nothing, which replicated the count,
    still answers "applied". An attempt may have been applied when it got
    no answer once sent, unless no connection could be made, the server
    refused it, or the node was already known out of reach when it was
    sent (by the engine's watch, or a publish that got no answer before):
    then it reached no live server, or the one that took over, which
    answers for it when it is tried again (only a second failover before
    that answer could lose it). Pooled connections the server had closed
    are dropped before each attempt (`scripts.drop_closed`), so that an
    attempt is not written to a socket no server reads, which would fail
    as one applied by a server that died before answering does.

    A failover to a replica that had not yet received the last writes
    takes the channel's top back, and the next publishes would be given
    the lost offsets again, in the same epoch: a reader past them (a
    `squall.resume` stream, the browser's client) would drop them as seen.
    Each attempt carries the position of this publisher's last applied
    publish on the channel (of the last 10,000 channels it published to),
    and the script, finding the top below it in that epoch, begins a new
    epoch there (offsets go on from the top; the history, all of the old
    epoch, is dropped), logs a warning here and counts it in the status's
    ``renewed``. A subscribing process finds the same from what it handed
    out (`PubSub`), for publishers that do not remember (another process,
    one restarted).

    With ``positions=False`` there is no script: a publish is a plain
    ``PUBLISH``/``SPUBLISH`` of the message with the publisher's token and
    count (`scripts.plain_payload`), what Redis does for any pub/sub client,
    and each subscribing process drops a copy it already had
    (`scripts.Once`); the publication has no offset
    (`scripts.PLAIN_POSITION`). Order, the retries and the failover's time
    are as above.

    ``timeout`` (the engine's ``publish_timeout``) is the time a failover is
    given, counted from when the broker was first found out of reach (by
    the engine's own watch, ``down_since``, or by a publish that got no
    answer), not from each publish: a publish made when it has been out of
    reach for longer is tried once, not again (a refused connection fails
    at once, an unanswered one within ``command_timeout``), so that callers
    are told at once while the broker is down, and a publish made during a
    failover is still tried until the failover's time is up. What publishes
    found is trusted while they keep finding it: after ``command_timeout``
    plus a second without a publish that got no answer, a new failover may
    have begun, and a publish has the whole window again.

    Args:
        site: the engine's client (the publish script is registered on it),
            its broker's name and errors, and what comes before a command.
        command: the broker's publish command (``PUBLISH`` or ``SPUBLISH``).
        route: a channel's hash tag and broker channel.
        history_size: publications the script keeps per channel (0: the
            offsets only).
        positions: False: no script, no offsets (see the class); needs
            ``history_size=0``.
        ttl_ms: how long a channel's keys outlive its last publication.
        command_timeout: seconds one attempt waits for Redis.
        timeout: the engine's ``publish_timeout`` (the engine may set
            `timeout` again once it learns the failover's time).
        status: the engine's `Status`, whose ``round_trip`` each publish
            sets.
        down_since: `time.monotonic` when the engine's own watch on the
            broker (a subscriber connection) found it out of reach, if it
            still is; None when it is in reach or the engine has no such
            watch.
        retried: called after each attempt that will be made again, and
            after a publish that began a new epoch (the engine wakes its
            ``wait_until`` callers: `retries` or the status's ``renewed``
            changed).
        began: called with a channel and its new epoch when a publish
            began it because the channel's state was written under another
            replication history (a failover: see `scripts`).
    """

    __slots__ = (
        "timeout",
        "retries",
        "script",
        "_command",
        "_site",
        "_status",
        "_route",
        "_down_since",
        "_retried",
        "_began",
        "_keys",
        "_token",
        "_count",
        "_stale_ms",
        "_attempt_timeout",
        "_lanes",
        "_applied",
        "_clock_skews",
        "_unanswered",
        "_replids",
    )

    def __init__(
        self,
        site: scripts.RedisSite,
        command: str,
        route: Callable[[str], tuple[str, str]],
        *,
        history_size: int,
        ttl_ms: int,
        command_timeout: float,
        timeout: float,
        status: Status,
        down_since: Callable[[], Optional[float]] = _never_down,
        retried: Callable[[], None],
        began: Callable[[str, str], None] = lambda channel, epoch: None,
        positions: bool = True,
    ) -> None:
        #: Seconds a failover is given (see the class).
        self.timeout = timeout
        #: Publish attempts made again after the broker refused or did not answer.
        self.retries = 0
        self._stale_ms = int(command_timeout * 1000) + 1000
        #: The publish script (`scripts.publish_lua`), registered on the
        #: site's client; None with ``positions=False``.
        self.script: Any = None
        if positions:
            self.script = site.client.register_script(
                scripts.publish_lua(history_size, ttl_ms, self._stale_ms, command)
            )
        self._command = command
        self._site = site
        self._status = status
        self._route = route
        self._down_since = down_since
        self._retried = retried
        self._began = began
        self._keys = 2 if history_size else 1  # the meta hash, and the stream
        self._token = secrets.token_hex(6)
        self._count = 0
        self._attempt_timeout = command_timeout
        # Per channel with a publish under way: the lock that keeps them in
        # call order, and how many publishes hold or wait for it.
        self._lanes: dict[str, tuple[asyncio.Lock, list[int]]] = {}
        # Per channel, the position of this publisher's last applied publish
        # (at most _APPLIED_KEPT channels, the oldest dropped first): the
        # script begins a new epoch when the channel's top is found below it.
        self._applied: dict[str, Position] = {}
        self._clock_skews: dict[str, float] = {}  # per hash tag: Redis' clock minus ours, in ms
        # Per hash tag, while its publishes get no answer: time.monotonic() when
        # the first of them began, and when the last was given up.
        self._unanswered: dict[str, tuple[float, float]] = {}
        # Per hash tag, the replication ID its node's last reply gave (see
        # the class: an attempt that may have been applied is tried again
        # only under the same one).
        self._replids: dict[str, str] = {}

    def _out_of_reach(self, tag: str, now: float) -> Optional[float]:
        """How long ``tag``'s node has been known out of reach, or None."""
        began = self._down_since()
        seen = self._unanswered.get(tag)
        if seen is not None:
            if now - seen[1] > self._attempt_timeout + 1.0:
                del self._unanswered[tag]  # not looked at since: may be back
            elif began is None or seen[0] < began:
                began = seen[0]
        return None if began is None else now - began

    def _no_answer(self, tag: str, began: float, now: float) -> None:
        """An attempt begun at ``began`` got no answer (`time.monotonic`)."""
        first = self._unanswered.get(tag, (began, 0.0))[0]
        self._unanswered[tag] = (first, now)

    def _sent_ms(self, tag: str) -> int:
        """Now on the clock of ``tag``'s node, as its last reply says it runs
        (0: no reply yet)."""
        skew = self._clock_skews.get(tag)
        return 0 if skew is None else max(1, int(time.time() * 1000 + skew))

    async def publish(self, channel: str, message: str) -> Position:
        """Publishes ``message`` on ``channel``, in call order, applied once.

        Returns:
            The publication's position.

        Raises:
            PublishUncertainError: an attempt got no answer and a failover
                followed: it may have been applied (see the class).
            ConnectionError: the broker did not apply it within `timeout`
                (or was out of reach for longer than that already).
        """
        lane = self._lanes.get(channel)
        if lane is None:
            lane = self._lanes[channel] = (asyncio.Lock(), [0])
        lock, users = lane
        users[0] += 1
        try:
            # asyncio.Lock wakes its waiters first in, first out, and lets
            # none jump the queue: publishes go in call order.
            async with lock:
                return await self._publish_in_lane(channel, message)
        finally:
            users[0] -= 1
            if not users[0]:
                del self._lanes[channel]

    async def _publish_in_lane(self, channel: str, message: str) -> Position:
        self._count += 1
        tag, broker_channel = self._route(channel)
        # Without a script: the message as a plain publish (see the class).
        plain: Optional[str] = None
        applied: Optional[Position] = None
        args: list[Any] = []
        names: list[str] = []
        if self.script is None:
            plain = scripts.plain_payload(self._token, self._count, channel, message)
        else:
            # A new epoch, followed by the last applied position when
            # remembered (see the script: eight arguments, no more).
            fresh = new_epoch()
            applied = self._applied.get(channel)
            if applied is not None and len(applied.epoch) == len(fresh):
                fresh = f"{fresh}{applied.epoch}{applied.offset}"
            args = [
                scripts.wire_head(self._token, self._count, channel),
                message,
                fresh,
                f"p:{self._token}",
                self._count,
                0,
                broker_channel,
                max(1, int(self.timeout * 1000)),
            ]
            names = scripts.keys(tag, channel)[: self._keys]
        site = self._site
        loop = asyncio.get_running_loop()
        # What is left of the failover's time (see the class): all of it,
        # unless the node is already known out of reach; none, once it has
        # been for longer (then one attempt, not tried again).
        away = self._out_of_reach(tag, time.monotonic())
        left = self.timeout - (away or 0.0)
        once = away is not None and left <= 0
        # Tried again until what is left is up; an attempt made by then
        # still has its whole command_timeout.
        retry_until = loop.time() + left
        deadline = loop.time() + max(left, self._attempt_timeout)
        delay = 0.02
        # The replication ID an attempt that may have been applied was sent
        # under, as known then ('?': no reply from the node yet), once one was.
        maybe_under: Optional[str] = None
        while True:
            start = loop.time()
            began = time.monotonic()
            # An attempt made while the node is known out of reach is sent to
            # no live server, or to one that took over (see the class).
            sending = False
            gone = self._out_of_reach(tag, began) is not None
            try:
                async with asyncio.timeout_at(deadline) as scope:
                    await site.before()
                    sending = True
                    if plain is not None:
                        await site.client.execute_command(self._command, broker_channel, plain)
                        reply = None
                    else:
                        await scripts.drop_closed(site.client)
                        sent_ms = self._sent_ms(tag)
                        # Padded: the script finds the ID by the argument's length.
                        args[5] = (
                            sent_ms if maybe_under is None else f"{sent_ms:013d} {maybe_under}"
                        )
                        reply = await self.script(keys=names, args=args)
                self._unanswered.pop(tag, None)
                if reply is None:
                    break
                if len(reply) > 4:
                    self._clock_skews[tag] = int(reply[3]) - time.time() * 1000
                    rid = reply[4]
                    self._replids[tag] = rid.decode("ascii") if isinstance(rid, bytes) else rid
                if int(reply[2]) != 2:
                    break
                # Too old when Redis read it (a slow Redis, or clocks that
                # drifted): sent again at once, dated anew.
                if loop.time() >= deadline:
                    raise ConnectionError(
                        f"cannot publish to {site.where}: each attempt was older than "
                        f"{self._stale_ms} ms when Redis read it, within "
                        f"publish_timeout={self.timeout}s"
                    )
                self.retries += 1
                continue
            except site.lost as exc:
                self._no_answer(tag, began, time.monotonic())
                if maybe_under is None and sending and not gone and not _not_applied(exc):
                    maybe_under = self._replids.get(tag, "?")
                if once:
                    raise ConnectionError(
                        f"cannot publish to {site.where}: out of reach for {away or 0.0:.1f}s, "
                        f"longer than publish_timeout={self.timeout}s (the time a "
                        f"failover is given), and no answer now ({exc or type(exc).__name__})"
                    ) from exc
                if scope.expired() or loop.time() >= retry_until:
                    raise ConnectionError(
                        f"cannot publish to {site.where}: no answer within "
                        f"publish_timeout={self.timeout}s ({exc or type(exc).__name__})"
                    ) from exc
            except (RuntimeError, AttributeError) as exc:
                # redis-py's connection closed under the command (see
                # cut_under; a cancellation stays one).
                error = scripts.cut_under(exc)
                self._no_answer(tag, began, time.monotonic())
                if maybe_under is None and sending and not gone:
                    maybe_under = self._replids.get(tag, "?")
                if once or loop.time() >= retry_until:
                    raise error from exc
            self.retries += 1
            self._retried()
            # (The last wait ends when the time is up: one more attempt then.)
            await asyncio.sleep(min(delay, retry_until - loop.time()))
            delay = min(delay * 2, 0.5)
        self._status.round_trip = loop.time() - start
        if reply is None:
            return scripts.PLAIN_POSITION
        if int(reply[2]) == 5:
            raise PublishUncertainError(
                f"cannot tell whether the publish on channel {channel!r} was applied: an "
                f"attempt got no answer from {site.where}, and the broker's replication "
                "history changed before it could be tried again (a failover; the primary "
                "that may have applied it, and delivered it to subscribers, is gone with "
                "what it had not replicated). It was not tried again, which could deliver "
                "it twice; publish it again if a second copy is acceptable"
            )
        position = scripts.top_of(reply)
        if int(reply[2]) == 3 and applied is not None:
            gen_log.warning(
                "pubsub: channel %r: the broker's top was below offset %d of epoch %s, "
                "this publisher's last (a failover lost writes): it goes on in epoch %s",
                channel,
                applied.offset,
                applied.epoch,
                position.epoch,
            )
            self._status.renewed += 1
            self._retried()
        elif int(reply[2]) == 4:
            self._began(channel, position.epoch)
        remembered = self._applied
        if channel not in remembered and len(remembered) >= _APPLIED_KEPT:
            del remembered[next(iter(remembered))]
        remembered[channel] = position
        return position


class RedisEngine(PubSub):
    """The base of the Redis engines: they publish through a `RetriedPublisher`,
    read history through a `~squall.pubsub._redis_scripts.RedisHistory` and
    keep presence in a `~squall.pubsub._redis_scripts.RedisPresence`, all
    three made by `_use_redis` (each engine calls it once, at setup)."""

    _publisher: RetriedPublisher
    _history: scripts.RedisHistory
    _once: scripts.Once

    def _use_redis(
        self,
        site: scripts.RedisSite,
        command: str,
        route: Callable[[str], tuple[str, str]],
        *,
        command_timeout: float,
        publish_timeout: float,
        down_since: Callable[[], Optional[float]] = _never_down,
        positions: bool = True,
    ) -> None:
        """Makes the engine's publisher, history and presence on ``site``
        (the arguments are `RetriedPublisher`'s).

        Raises:
            ValueError: ``positions`` is False and ``history_size`` is not 0.
        """
        if not positions and self.history_size:
            raise ValueError(
                "positions=False publishes without offsets, so no history can be kept: "
                f"history_size must be 0, not {self.history_size}"
            )
        #: False when made with ``positions=False`` (see `RetriedPublisher`).
        self.has_positions = positions
        self._once = scripts.Once()
        ttl_ms = max(1, int(self.history_ttl * 1000))
        self._publisher = RetriedPublisher(
            site,
            command,
            route,
            history_size=self.history_size,
            ttl_ms=ttl_ms,
            command_timeout=command_timeout,
            timeout=publish_timeout,
            status=self.status,
            down_since=down_since,
            retried=self._changed,
            began=self._began_after_failover,
            positions=positions,
        )
        self._history = scripts.RedisHistory(
            site, self.history_size, ttl_ms, began=self._began_after_failover
        )
        self._use_presence(scripts.RedisPresence(site))

    def _began_after_failover(self, channel: str, epoch: str) -> None:
        """A publish or a history read of this process began ``channel``'s
        epoch ``epoch``: its state had been written under another
        replication history."""
        gen_log.info(
            "pubsub: channel %r: the broker's replication history changed (a failover, "
            "or a restart) since its state was written: it goes on in epoch %s",
            channel,
            epoch,
        )
        self.status.renewed += 1
        self._changed()

    # The publisher's, read and written here as the engine's attributes
    # they were before it was an object of its own.

    @property
    def publish_timeout(self) -> float:
        """Seconds a publish keeps trying while the broker refuses or does
        not answer (see the engine's ``publish_timeout`` argument)."""
        return self._publisher.timeout

    @publish_timeout.setter
    def publish_timeout(self, seconds: float) -> None:
        self._publisher.timeout = seconds

    @property
    def publish_retries(self) -> int:
        """Publish attempts made again after the broker refused or did not answer."""
        return self._publisher.retries

    @publish_retries.setter
    def publish_retries(self, count: int) -> None:
        self._publisher.retries = count

    async def _publish(self, channel: str, message: str) -> Position:
        return await self._publisher.publish(channel, message)

    async def _read(
        self, channel: str, since: Optional[Position], limit: int, strict: bool
    ) -> HistoryResult:
        if not self.has_positions:
            return HistoryResult([], scripts.PLAIN_POSITION, False)
        return await self._history.read(channel, since, limit, strict)

    async def _top(self, channel: str) -> Position:
        if not self.has_positions:
            return scripts.PLAIN_POSITION
        return await self._history.top(channel)

    async def _renew(self, channel: str, epoch: str, after: int, new: str) -> str:
        return await self._history.renew(channel, epoch, after, new)

    def _dispatch_wire(self, raw: bytes) -> bool:
        """Hands on the publication in ``raw``, as the publish script or a
        plain publish (`scripts.PLAIN_MARKER`) wrote it, unless it is a copy
        this process had already; False when ``raw`` is neither."""
        if raw[:1] == scripts.PLAIN_MARKER:
            try:
                pub = self._once.decode(raw)
            except ValueError:
                return False
            if pub is not None:
                self._dispatch(pub)
            return True
        scripted = scripts.decode(raw)
        if scripted is None:
            return False
        self._dispatch(scripted)
        return True
