"""The Redis backend of squall.pubsub (PUBLISH / SUBSCRIBE through ``redis.asyncio``)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from squall.log import gen_log
from squall.pubsub import _redis_scripts as scripts
from squall.pubsub._base import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_RECOVERY,
    client_library,
)
from squall.pubsub._presence import DEFAULT_PRESENCE_TTL
from squall.pubsub._publisher import RedisEngine
from squall.pubsub._supervise import Backoff, Supervised
from squall.pubsub._types import Position, Publication, check_seconds


def lost_errors(redis: Any, *more: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The errors that mean "Redis is out of reach": the transport's under
    redis-py, redis-py's ConnectionError and TimeoutError, and ``more``
    (what a Redis Cluster client adds)."""
    return (
        OSError,
        asyncio.IncompleteReadError,
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        *more,
    )


def _redis() -> Any:
    return client_library(
        "Redis backend",
        "redis",
        "redis",
        "redis.asyncio",
        "redis.asyncio.cluster",
        "redis.asyncio.retry",
        "redis.backoff",
        "redis.exceptions",
    )


def _safe_url(url: str) -> str:
    """``url`` without its password, for log lines."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def _gone(ps: Any) -> bool:
    """True when a redis-py PubSub's connection is closed or closing under it."""
    conn = ps.connection
    if conn is None or not conn.is_connected:
        return True
    transport = getattr(getattr(conn, "_writer", None), "transport", None)
    return transport is None or bool(transport.is_closing())


class _Watchdog:
    """Watches one subscriber connection from a timer, a look every quarter
    ``interval``: once nothing was heard for an interval it sends a PING
    (``ping``), and when that goes unanswered for an interval more it cuts
    the connection (``cut``), so that the read waiting on it fails;
    ``failure`` then says why. The reader only sets ``heard`` at each
    reply: a message costs no timer of its own."""

    __slots__ = (
        "interval",
        "heard",
        "failure",
        "_loop",
        "_ping",
        "_cut",
        "_heard_at",
        "_ping_at",
        "_handle",
    )

    def __init__(
        self,
        interval: float,
        ping: Callable[[], None],
        cut: Callable[[], None],
        loop: Optional[asyncio.AbstractEventLoop] = None,
    ) -> None:
        self.interval = interval
        self.heard = False
        self.failure: Optional[TimeoutError] = None
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._ping = ping
        self._cut = cut
        self._heard_at = self._loop.time()
        self._ping_at: Optional[float] = None  # when the PING waiting for its answer went
        self._handle = self._loop.call_later(interval / 4, self.look)

    def look(self) -> None:
        # The next look is armed first: whatever this one raises (a PING or
        # a cut that fails, reported by the loop), the watch goes on; only
        # a cut made ends it.
        self._handle = self._loop.call_later(self.interval / 4, self.look)
        now = self._loop.time()
        if self.heard:
            self.heard = False
            self._heard_at = now
            self._ping_at = None
        elif self._ping_at is not None:
            waited = now - self._ping_at
            if waited >= self.interval:
                self.failure = TimeoutError(
                    f"no answer to PING for {waited:.1f}s: Redis is not reading"
                )
                self._cut()
                self._handle.cancel()
        elif now - self._heard_at >= self.interval:
            self._ping_at = now
            self._ping()

    def stop(self) -> None:
        self._handle.cancel()


class RedisPubSub(RedisEngine):
    """Channels shared by every process connected to one Redis (``redis://``).

    Each publish is one Lua script on Redis that increments the channel's
    offset, appends to its history stream (when ``history_size`` is set)
    and PUBLISHes the message with its position, so that no subscriber sees
    a publication that history lacks or the other way round. A publish that
    Redis refuses or does not answer (a restart, a failover, a stop) is
    tried again until ``publish_timeout``; it carries an id that Redis
    remembers, so one tried again after it was applied is not applied twice.
    (With ``positions=False`` a publish is a plain PUBLISH instead, and each
    subscribing process drops the copies: see ``positions`` below.) The
    Redis channel is the channel's own name; a message PUBLISHed there by
    something else is delivered too, with offset 0 and an empty epoch.

    Args:
        url: a redis-py URL (``redis://host:port/db``, ``rediss://``, ``unix://``).
        max_pending: default bound of each `Subscription` (drop-oldest past it).
        history_size: publications kept per channel, in a Redis stream.
        history_ttl: seconds they are kept; also how long a channel's offset
            and epoch outlive its last publication.
        max_recovery: the most publications one resubscription returns.
        subscribe_timeout: seconds `~squall.pubsub.PubSub.subscribe` waits for Redis to confirm.
        reconnect_delay: the first step of the reconnection backoff; it
            doubles per failure, and each wait is drawn between 0 and the
            step (full jitter: the workers of a fleet that lost Redis
            together do not come back in lock-step).
        max_reconnect_delay: the largest step.
        health_interval: seconds of silence on the subscriber connection
            after which it is sent a PING (looked at every quarter
            interval); one unanswered for as long again means Redis stopped
            reading (SIGSTOP, a partition): the connection is dropped,
            ``status.healthy`` turns False, and it is made again. A Redis
            that stops answering is so noticed within two and a half
            intervals.
        command_timeout: seconds a publish, a history read or a new
            connection's handshake waits for Redis.
        publish_timeout: seconds a publish keeps trying while Redis refuses
            or does not answer (each attempt bounded by ``command_timeout``),
            before `ConnectionError`; enough for a restart or a Sentinel
            failover you configured faster than it. Counted from when Redis
            was found out of reach: once it has been for longer, a publish
            is tried once and fails at once (refused) or within
            ``command_timeout`` (unanswered), instead of waiting again.
        positions: False: each publish is a plain ``PUBLISH`` (no script, no
            offset: every position is ``0-redis``, ``has_positions`` is
            False), what it costs Redis for any client; a copy of a publish
            tried again is dropped by each subscribing process instead of
            by Redis. Needs ``history_size=0``. URL: ``?positions=0``.

    Raises:
        ValueError: ``positions`` is False and ``history_size`` is not 0.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
        subscribe_timeout: float = 10.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 2.0,
        health_interval: float = 1.0,
        command_timeout: float = 2.0,
        publish_timeout: float = 10.0,
        positions: bool = True,
    ) -> None:
        super().__init__(
            max_pending,
            history_size=history_size,
            history_ttl=history_ttl,
            max_recovery=max_recovery,
            presence_ttl=presence_ttl,
        )
        self.health_interval = check_seconds("health_interval", health_interval)
        self.command_timeout = check_seconds("command_timeout", command_timeout)
        publish_timeout = check_seconds("publish_timeout", publish_timeout)
        redis = _redis()
        self.url = url
        self.subscribe_timeout = subscribe_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._redis = redis
        self._lost_errors = lost_errors(redis)
        # A Redis that stops reading keeps its connections open: every
        # wait for it is bounded, so nothing piles up behind it.
        timeouts = {
            "socket_timeout": self.command_timeout,
            "socket_connect_timeout": self.command_timeout,
        }
        # redis-py does not try a command again by itself: a publish is
        # tried again by RetriedPublisher, with its id, until publish_timeout.
        self._client = redis.asyncio.Redis.from_url(
            url, retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0), **timeouts
        )
        # The subscriber connection never retries by itself: the reader task
        # reconnects, subscribes every channel again and logs it. It has no
        # socket_timeout: a read waits for the next message however long,
        # watched by the PING watchdog (_Watchdog) rather than by a timer
        # per read, and what else waits on it is bounded by command_timeout
        # (the subscription that makes it, each command, closing it).
        # RESP2 (redis-py's default is RESP3): a message is then a plain
        # reply, where RESP3's push went through redis-py's push handler,
        # which formats each for a debug log whether logged or not (8,000
        # instructions a message).
        self._sub_client = redis.asyncio.Redis.from_url(
            url,
            retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0),
            protocol=2,
            socket_connect_timeout=self.command_timeout,
            socket_timeout=None,  # redis-py 8's default is 5 s
        )
        # Always subscribed, so that the connection is in pub/sub mode even
        # with no channel of ours, and its confirmation says "connected".
        self._control = f"squall.pubsub:{secrets.token_hex(8)}"
        self._ps: Any = None
        # The subscriber connection's reader: made again, after a jittered
        # delay, whatever ends it (a lost connection, an unexpected reply).
        self._reader = Supervised(
            f"Redis reader of {_safe_url(url)}",
            self._connection,
            Backoff(reconnect_delay, max_reconnect_delay),
            self._reader_failed,
        )
        self._down = False  # True from a failure to the next connection made (then logged)
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._commands: set[asyncio.Task[None]] = set()
        self._ever_connected = False
        self._lost_at = 0.0
        #: Times the subscriber connection was established again after a loss.
        self.reconnects = 0
        self._use_redis(
            scripts.RedisSite(
                self._client, f"Redis at {_safe_url(url)}", self._lost_errors, self._tag
            ),
            "PUBLISH",
            self._route,
            command_timeout=self.command_timeout,
            publish_timeout=publish_timeout,
            down_since=self._down_since,
            positions=positions,
        )

    # One hash tag for every channel's keys (a single Redis holds them all);
    # a channel's broker channel is its name.

    def _tag(self, channel: str) -> str:
        return "squall.ps"

    def _route(self, channel: str) -> tuple[str, str]:
        return "squall.ps", channel

    def _down_since(self) -> Optional[float]:
        # The subscriber connection's watch (reconnecting with backoff, a
        # PING per quiet health_interval) says when Redis went out of reach.
        status = self.status
        return None if status.healthy else status.since

    @property
    def connected(self) -> bool:
        """True while the subscriber connection to Redis is up."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = 10.0, connected: bool = True) -> None:
        """Waits until the subscriber connection is up (or down, with ``connected=False``).

        Raises:
            TimeoutError: that did not happen within ``timeout`` seconds.
        """
        self._reader.start()
        event = self._connected if connected else self._disconnected
        await asyncio.wait_for(event.wait(), timeout)

    async def ping(self) -> bool:
        """True when the publishing connection reaches Redis."""
        try:
            return bool(await self._client.ping())
        except self._lost_errors:
            return False

    async def _listen(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        future = self._confirmed.get(channel)
        if future is None or future.done():
            future = self._confirmed[channel] = loop.create_future()
        if not self._reader.running:
            self._reader.start()
        elif self._connected.is_set():
            self._command("subscribe", channel)
        # else: the reader subscribes every channel when it (re)connects.
        try:
            await asyncio.wait_for(asyncio.shield(future), self.subscribe_timeout)
        except TimeoutError:
            raise ConnectionError(
                f"Redis at {_safe_url(self.url)} did not confirm the subscription to "
                f"{channel!r} within {self.subscribe_timeout}s"
            )

    def _forget(self, channel: str) -> None:
        self._confirmed.pop(channel, None)
        if self._connected.is_set():
            self._command("unsubscribe", channel)

    def _command(self, name: str, *channels: str) -> None:
        """Sends SUBSCRIBE, UNSUBSCRIBE or PING (``name``) on the subscriber
        connection, in a task of its own (the reader reads the answer)."""
        ps = self._ps

        async def send() -> None:
            # A connection the reader has dropped (or is about to) is left
            # alone: redis-py would open a new one for this command, and its
            # resubscription would then read alongside the reader. The reader
            # subscribes every current channel when it reconnects.
            if ps is not self._ps or _gone(ps):
                return
            try:
                await asyncio.wait_for(getattr(ps, name)(*channels), self.command_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis going away under a command surfaces as redis-py's
                # ConnectionError, or (the socket already closed) as uvloop's
                # RuntimeError "handler is closed" or an AttributeError from
                # the writer redis-py dropped. Nobody awaits this task, so
                # nothing may escape it; the reader sees the loss and
                # resubscribes. Anything else on a live connection is logged.
                if not isinstance(exc, self._lost_errors) and ps is self._ps and not _gone(ps):
                    gen_log.warning(
                        "pubsub: %s %s on Redis at %s failed: %r",
                        name.upper(),
                        " ".join(map(repr, channels)),
                        _safe_url(self.url),
                        exc,
                    )

        self._track(asyncio.ensure_future(send()))

    def _track(self, task: asyncio.Task[None]) -> None:
        """Keeps ``task`` (a command) until it ends; `close` cancels it."""
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _connection(self) -> None:
        """One subscriber connection, from connecting until it is lost (the
        body of the supervised reader: it raises when the connection is lost,
        and runs again after a jittered delay)."""
        ps = self._sub_client.pubsub()
        self._ps = ps
        watch: Optional[_Watchdog] = None
        try:
            # Channels whose first subscriber arrives while this connection
            # is being made are in neither this command nor a command of
            # their own (_listen waits for the reader): they are subscribed
            # once the control channel is confirmed.
            sent = set(self._channels)
            await asyncio.wait_for(ps.subscribe(self._control, *sent), self.command_timeout)
            watch = _Watchdog(
                self.health_interval, lambda: self._command("ping"), lambda: self._cut(ps)
            )
            # The connection's own read, not the PubSub object's get_message:
            # what that adds per message (a retry wrapper, a health check, a
            # dict, a metrics hook, handlers looked up) and a timeout of its
            # own per read were most of a node's fixed cost per message. A
            # lost connection is made again by this reader, not by redis-py.
            read = ps.connection.read_response
            while True:
                reply = await read(disconnect_on_error=False, push_request=True)
                watch.heard = True
                # A push (RESP3: a list, hiredis's subclass of it) or an
                # array (RESP2) of three; else a PING's answer.
                if not isinstance(reply, list) or len(reply) != 3:
                    continue
                kind, name, data = reply
                if kind == b"message":
                    if not self._dispatch_wire(data):
                        # PUBLISHed by something else (redis-cli): as it is.
                        self._dispatch(
                            Publication(
                                name.decode("utf-8", "replace"),
                                data.decode("utf-8", "replace"),
                                Position(0, ""),
                            )
                        )
                elif kind == b"subscribe":
                    channel = name.decode("utf-8", "replace")
                    if channel == self._control:
                        self._up(sent)
                    else:
                        future = self._confirmed.get(channel)
                        if future is not None and not future.done():
                            future.set_result(None)
        except Exception as exc:
            # Cut by the watchdog: its reason, not the read's.
            failure = watch.failure if watch is not None and watch.failure else exc
            self._mark_down(failure)  # before _disconnected is set (the connection is dropped)
            if failure is not exc:
                raise failure from exc
            raise
        finally:
            if watch is not None:
                watch.stop()
            self._connected.clear()
            self._disconnected.set()
            await self._drop(ps)

    def _cut(self, ps: Any) -> None:
        """Closes the subscriber connection under its reader (the watchdog's
        PING went unanswered): the read waiting on it fails."""

        async def cut() -> None:
            try:
                await ps.connection.disconnect(nowait=True)
            except self._lost_errors:
                pass  # closed either way: the read fails

        self._track(asyncio.ensure_future(cut()))

    def _up(self, sent: set[str]) -> None:
        """The subscriber connection is made and its control channel confirmed."""
        self._connected.set()
        for late in self._channels.keys() - sent:
            self._command("subscribe", late)
        self._disconnected.clear()
        self._set_healthy(True)
        self._reader.backoff.reset()
        if self._down:
            self._down = False
            if self._ever_connected:
                self._catch_up(list(self._channels))
                self.reconnects += 1
                self._resubscribed(time.monotonic() - self._lost_at)
            gen_log.warning(
                "pubsub: %s Redis at %s; %d channel(s) subscribed%s",
                "reconnected to" if self._ever_connected else "connected to",
                _safe_url(self.url),
                len(self._channels),
                f" after {self.status.last_resume:.3f}s" if self._ever_connected else "",
            )
        self._ever_connected = True

    def _reader_failed(self, exc: BaseException) -> bool:
        """The subscriber connection was lost (``exc``): the supervisor waits, then
        makes it again. Returns True for a lost connection (logged here, once
        per outage), False for anything else (the supervisor logs it)."""
        self._mark_down(exc)
        return isinstance(exc, self._lost_errors)

    def _mark_down(self, exc: BaseException) -> None:
        self._connected.clear()
        self._set_healthy(False)
        if not self._down:
            self._lost_at = time.monotonic()
            self._down = True
            if isinstance(exc, self._lost_errors):
                gen_log.warning(
                    "pubsub: %s Redis at %s (%s); retrying",
                    "lost the connection to" if self._ever_connected else "cannot connect to",
                    _safe_url(self.url),
                    exc or type(exc).__name__,
                )
        # Subscriptions made while away must be confirmed anew.
        for channel in self._channels:
            old = self._confirmed.get(channel)
            if old is None or old.done():
                self._confirmed[channel] = asyncio.get_running_loop().create_future()

    async def _drop(self, ps: Any) -> None:
        # Bounded: closing a connection to a Redis that does not read may
        # wait on it.
        try:
            await asyncio.wait_for(ps.aclose(), self.command_timeout)
        except self._lost_errors:
            pass

    async def close(self) -> None:
        """Unsubscribes everything and closes both Redis connections."""
        await super().close()
        await self._reader.stop()
        for task in list(self._commands):
            task.cancel()
        for future in self._confirmed.values():
            future.cancel()
        await self._client.aclose()
        await self._sub_client.aclose()
