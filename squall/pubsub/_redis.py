"""The Redis backend of squall.pubsub (PUBLISH / SUBSCRIBE through ``redis.asyncio``)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import secrets
import time
from collections.abc import Callable
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

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
        "redis.asyncio.sentinel",
        "redis.backoff",
        "redis.exceptions",
    )


def _safe_url(url: str) -> str:
    """``url`` without its passwords, for log lines (a Sentinel's too)."""
    parts = urlsplit(url)
    query = "&".join(
        "sentinel_password=***" if item.startswith("sentinel_password=") else item
        for item in parts.query.split("&")
    )
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: The schemes of a primary named by Redis Sentinel (``rediss+``: TLS).
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
#: Sentinel's port when a URL gives none.
SENTINEL_PORT = 26379
_SENTINEL_QUERY = ("sentinel_master_name", "sentinel_username", "sentinel_password")


@dataclasses.dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says (`parse_sentinel_url`)."""

    #: The Sentinels' (host, port), asked in this order.
    sentinels: tuple[tuple[str, int], ...]
    #: The name the Sentinels know the primary by (``sentinel monitor <name> ...``).
    master: str
    #: The database on the primary.
    db: int = 0
    #: Credentials for the primary (and its replicas): the URL's user info.
    username: Optional[str] = None
    password: Optional[str] = None
    #: Credentials for the Sentinels themselves (``?sentinel_username=``,
    #: ``?sentinel_password=``): a Sentinel's ``requirepass`` is its own.
    sentinel_username: Optional[str] = None
    sentinel_password: Optional[str] = None
    #: TLS to the primary and to the Sentinels (``rediss+sentinel://``).
    ssl: bool = False


def _host_port(text: str, url: str) -> tuple[str, int]:
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host or (port and not port.isdigit()) or not 0 < int(port or SENTINEL_PORT) < 65536:
        raise ValueError(f"Sentinel URL {_safe_url(url)!r}: {text!r} is not host[:port]")
    return host, int(port or SENTINEL_PORT)


def parse_sentinel_url(url: str) -> SentinelURL:
    """Reads ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db]``.

    Each host is a Sentinel (port 26379 unless given); the path names the
    primary as the Sentinels know it, then the database (0 unless given).
    The name may instead be given as ``?sentinel_master_name=`` (Centrifugo's
    form). The user info is the primary's credentials; the Sentinels' own are
    ``?sentinel_username=`` and ``?sentinel_password=``.
    ``rediss+sentinel://`` speaks TLS to both.

    Raises:
        ValueError: the URL is not of that form (no Sentinel, no name, a bad
            port or database, an unknown query option).
    """
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise ValueError(f"Sentinel URL {_safe_url(url)!r}: the scheme must be redis+sentinel")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username: Optional[str] = None
    password: Optional[str] = None
    if userinfo:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(h.strip(), url) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError(f"Sentinel URL {_safe_url(url)!r}: no Sentinel host")
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    unknown = sorted(query.keys() - set(_SENTINEL_QUERY))
    if unknown:
        raise ValueError(
            f"Sentinel URL {_safe_url(url)!r}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(_SENTINEL_QUERY)})"
        )
    path = [unquote(p) for p in parts.path.split("/") if p]
    master = query.get("sentinel_master_name", "")
    if master and path and path[0] != master and not path[0].isdigit():
        raise ValueError(
            f"Sentinel URL {_safe_url(url)!r}: two master names ({path[0]!r} and {master!r})"
        )
    if not master and path:
        master = path.pop(0)
    elif path and path[0] == master:
        path.pop(0)
    if not master:
        raise ValueError(
            f"Sentinel URL {_safe_url(url)!r}: no master name "
            "(redis+sentinel://host:port/<master name>[/db])"
        )
    if len(path) > 1 or (path and not path[0].isdigit()):
        raise ValueError(f"Sentinel URL {_safe_url(url)!r}: the database must be a number")
    return SentinelURL(
        sentinels,
        master,
        int(path[0]) if path else 0,
        username,
        password,
        query.get("sentinel_username") or None,
        query.get("sentinel_password") or None,
        parts.scheme == "rediss+sentinel",
    )


@functools.cache
def _sentinel_pool(base: type) -> type:
    """redis-py's ``SentinelConnectionPool`` (``base``), where a connection
    taken that is not on the primary last named is made again, so asking
    the Sentinels (it was in use when the watch moved to another primary)."""

    class SentinelPool(base):  # type: ignore[misc]
        async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
            conn = await super().get_connection(*args, **kwargs)
            named = self.master_address
            if named is not None and (conn.host, conn.port) != tuple(named):
                try:
                    await conn.disconnect()
                    await conn.connect()
                except BaseException:
                    await self.release(conn)
                    raise
            return conn

    return SentinelPool


@functools.cache
def _sentinel_connection(base: type, refused: type[BaseException], lost: type) -> type:
    """redis-py's Sentinel-managed connection class (``base``) that takes a
    ``NOREPLICAS`` reply for a primary out of reach (``lost``): a primary
    configured with ``min-replicas-to-write`` refuses writes so once its
    replica left it, which is what a Sentinel failover does first, and the
    publish is then tried again (on the new primary once it is named)
    instead of failing. ``refused``: redis-py's ResponseError."""

    class SentinelConnection(base):  # type: ignore[misc]
        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().read_response(*args, **kwargs)
            except refused as exc:
                if not str(exc).startswith("NOREPLICAS"):
                    raise
                raise lost(f"the primary refuses writes ({exc}): a failover?") from exc

    return SentinelConnection


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
        url: a redis-py URL (``redis://host:port/db``, ``rediss://``, ``unix://``),
            or ``redis+sentinel://[user:password@]host[:port][,...]/name[/db]``:
            the primary the Sentinels name ``name`` (the pubsub guide's "Redis
            Sentinel" says what the URL may hold),
            followed through a failover: the idle command connections are
            closed, one in use is made again when next taken, and the
            subscriber connection is cut and made again on the new primary
            (whose catch-up fills the gap from history). There a
            ``NOREPLICAS`` reply (``min-replicas-to-write``: the primary's
            replica left it, as a failover begins) is tried again like a
            primary out of reach, until ``publish_timeout``.
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
        no_retry = redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
        self._sentinel: Any = None
        self._master = ""
        target = parse_sentinel_url(url) if urlsplit(url).scheme in SENTINEL_SCHEMES else None
        if target is None:
            self._client = redis.asyncio.Redis.from_url(url, retry=no_retry, **timeouts)
        else:
            # Both clients ask the Sentinels for the primary at each new
            # connection (redis-py's SentinelConnectionPool); the Sentinel
            # watch (_watch_sentinels) drops the connections to an old one.
            self._master = target.master
            self._sentinel = redis.asyncio.sentinel.Sentinel(
                list(target.sentinels),
                sentinel_kwargs={
                    "retry": no_retry,
                    "username": target.sentinel_username,
                    "password": target.sentinel_password,
                    "ssl": target.ssl,
                    **timeouts,
                },
                retry=no_retry,
                db=target.db,
                username=target.username,
                password=target.password,
                ssl=target.ssl,
            )
            pool = _sentinel_pool(redis.asyncio.sentinel.SentinelConnectionPool)
            sentinel = redis.asyncio.sentinel
            connection = _sentinel_connection(
                sentinel.SentinelManagedSSLConnection
                if target.ssl
                else sentinel.SentinelManagedConnection,
                redis.exceptions.ResponseError,
                redis.exceptions.ConnectionError,
            )
            self._client = self._sentinel.master_for(
                target.master, connection_pool_class=pool, connection_class=connection, **timeouts
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
        sub_options: dict[str, Any] = {
            "protocol": 2,
            "socket_connect_timeout": self.command_timeout,
            "socket_timeout": None,  # redis-py 8's default is 5 s
        }
        if self._sentinel is None:
            self._sub_client = redis.asyncio.Redis.from_url(url, retry=no_retry, **sub_options)
        else:
            self._sub_client = self._sentinel.master_for(
                self._master, connection_pool_class=pool, **sub_options
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
        # Under Sentinel: the watch of the primary the Sentinels name, which
        # moves every connection to a new one (_follow).
        self._watch: Optional[Supervised] = None
        self._watch_turn = 0  # which Sentinel the watch listens to next
        self._watched = ""  # host:port of the Sentinel it listens to
        self._moved_from: Any = None  # the subscriber connection _follow last cut
        self._watch_down = False  # True from a failure of the watch to its next look
        #: Times the Sentinels named another primary and the engine moved to it.
        self.primary_switches = 0
        if self._sentinel is not None:
            self._watch = Supervised(
                f"Sentinel watch of {_safe_url(url)}",
                self._watch_sentinels,
                Backoff(reconnect_delay, max_reconnect_delay),
                self._watch_failed,
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
                self._client,
                f"Redis at {_safe_url(url)}",
                self._lost_errors,
                self._tag,
                *(() if self._watch is None else (self._watching,)),
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

    # Sentinel: the watch of the primary the Sentinels name.

    async def _watching(self) -> None:
        """Before each command of a Sentinel engine: the watch runs."""
        assert self._watch is not None
        if not self._watch.running:
            self._watch.start()

    async def _watch_sentinels(self) -> None:
        """Listens to one Sentinel's ``+switch-master`` events (the next
        Sentinel of the URL at each run) and follows the primary named:
        asked at once (a switch while the watch was away), at each event,
        and after each quiet ``health_interval`` (an event this Sentinel did
        not see). Raises when that Sentinel is out of reach (supervised)."""
        assert self._watch is not None and self._sentinel is not None
        sentinels = self._sentinel.sentinels
        sentinel = sentinels[self._watch_turn % len(sentinels)]
        self._watch_turn += 1
        kwargs = sentinel.connection_pool.connection_kwargs
        self._watched = f"{kwargs.get('host')}:{kwargs.get('port')}"
        ps = sentinel.pubsub()
        try:
            await asyncio.wait_for(ps.subscribe("+switch-master"), self.command_timeout)
            while True:
                try:
                    named = await asyncio.wait_for(
                        self._sentinel.discover_master(self._master), self.command_timeout
                    )
                except self._redis.asyncio.sentinel.MasterNotFoundError:
                    named = None  # mid-failover: its event comes
                if named is not None:
                    await self._follow((str(named[0]), int(named[1])))
                if self._watch_down:
                    self._watch_down = False
                    gen_log.warning("pubsub: Sentinel watch of %s back", _safe_url(self.url))
                self._watch.backoff.reset()
                # "<name> <old ip> <old port> <new ip> <new port>"
                message = await ps.get_message(
                    ignore_subscribe_messages=True, timeout=self.health_interval
                )
                if message is not None and message.get("type") == "message":
                    fields = bytes(message["data"]).decode("utf-8", "replace").split()
                    if len(fields) == 5 and fields[0] == self._master and fields[4].isdigit():
                        await self._follow((fields[3], int(fields[4])))
        finally:
            await self._drop(ps)

    def _watch_failed(self, exc: BaseException) -> bool:
        """The watch's Sentinel is out of reach (``exc``): logged once per
        outage; the supervisor runs the watch again on the next Sentinel."""
        if not self._watch_down:
            self._watch_down = True
            gen_log.warning(
                "pubsub: Sentinel watch of %s: Sentinel %s: %s: %s; trying the next Sentinel",
                _safe_url(self.url),
                self._watched,
                type(exc).__name__,
                exc,
            )
        return isinstance(exc, self._lost_errors)

    async def _follow(self, primary: tuple[str, int]) -> None:
        """Moves every connection to ``primary``, the primary the Sentinels name
        (new connections ask them; these are those made before): the idle
        command connections are closed, one in use is made again when next
        taken (`_SentinelPool`), and the subscriber connection is cut, so
        that the reader subscribes again on the new primary and catches up."""
        pool = self._client.connection_pool
        old = pool.master_address
        ps = self._ps
        # (One cut already, its reader not yet back, is left to it.)
        on_old = (
            ps is not None
            and ps is not self._moved_from
            and not _gone(ps)
            and (ps.connection.host, ps.connection.port) != primary
        )
        if (old is None or tuple(old) == primary) and not on_old:
            return
        self.primary_switches += 1
        gen_log.warning(
            "pubsub: Sentinel names %s:%d the primary of %r (was %s); moving there",
            primary[0],
            primary[1],
            self._master,
            "unknown" if old is None else f"{old[0]}:{old[1]}",
        )
        pool.master_address = primary
        try:
            await asyncio.wait_for(pool.disconnect(inuse_connections=False), self.command_timeout)
        except self._lost_errors:
            pass  # closed either way
        if on_old and ps is self._ps:
            self._moved_from = ps
            self._cut(ps)

    async def wait_connected(self, timeout: float = 10.0, connected: bool = True) -> None:
        """Waits until the subscriber connection is up (or down, with ``connected=False``).

        Raises:
            TimeoutError: that did not happen within ``timeout`` seconds.
        """
        self._reader.start()
        if self._watch is not None:
            self._watch.start()
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
            if self._watch is not None:
                self._watch.start()
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
            conn = ps.connection
            if conn is None:
                return  # dropped meanwhile
            try:
                await conn.disconnect(nowait=True)
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
        if self._watch is not None:
            await self._watch.stop()
        for task in list(self._commands):
            task.cancel()
        for future in self._confirmed.values():
            future.cancel()
        await self._client.aclose()
        await self._sub_client.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()
