"""The Redis backend of squall.pubsub (PUBLISH / SUBSCRIBE through ``redis.asyncio``)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Optional
from urllib.parse import urlsplit, urlunsplit

from squall.log import gen_log
from squall.pubsub import PubSub, _check_str

# Errors that mean "the connection to Redis is gone", as raised by redis-py
# (its ConnectionError and TimeoutError) and by the transport under it.
_LOST: tuple[type[BaseException], ...] = (OSError, asyncio.IncompleteReadError)


def _redis() -> Any:
    try:
        import redis.asyncio
        import redis.asyncio.retry
        import redis.backoff
        import redis.exceptions
    except ImportError as exc:  # pragma: no cover - the redis extra is in dev
        raise ImportError(
            "squall.pubsub's Redis backend needs the redis package: pip install 'squall[redis]'"
        ) from exc
    return redis


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


class RedisPubSub(PubSub):
    """Channels shared by every process connected to one Redis (``redis://``).

    Args:
        url: a redis-py URL (``redis://host:port/db``, ``rediss://``, ``unix://``).
        max_pending: default bound of each `Subscription` (drop-oldest past it).
        subscribe_timeout: seconds `~squall.pubsub.PubSub.subscribe` waits for Redis to confirm.
        reconnect_delay: first wait before reconnecting; doubles per failure.
        max_reconnect_delay: the longest wait between reconnection attempts.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        max_pending: int = 1000,
        subscribe_timeout: float = 10.0,
        reconnect_delay: float = 0.05,
        max_reconnect_delay: float = 2.0,
    ) -> None:
        super().__init__(max_pending)
        redis = _redis()
        self.url = url
        self.subscribe_timeout = subscribe_timeout
        self.reconnect_delay = reconnect_delay
        self.max_reconnect_delay = max_reconnect_delay
        self._redis = redis
        self._lost = _LOST + (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
        # Publishing retries a few times, so that the first PUBLISH after a
        # Redis restart goes through on a fresh connection.
        self._client = redis.asyncio.Redis.from_url(
            url,
            retry=redis.asyncio.retry.Retry(redis.backoff.ExponentialBackoff(cap=0.5), 3),
            retry_on_error=[redis.exceptions.ConnectionError, redis.exceptions.TimeoutError],
        )
        # The subscriber connection never retries by itself: the reader task
        # reconnects, subscribes every channel again and logs it.
        self._sub_client = redis.asyncio.Redis.from_url(
            url, retry=redis.asyncio.retry.Retry(redis.backoff.NoBackoff(), 0)
        )
        # Always subscribed, so that the connection is in pub/sub mode even
        # with no channel of ours, and its confirmation says "connected".
        self._control = f"squall.pubsub:{secrets.token_hex(8)}"
        self._ps: Any = None
        self._reader: Optional[asyncio.Task[None]] = None
        self._connected = asyncio.Event()
        self._disconnected = asyncio.Event()
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._commands: set[asyncio.Task[None]] = set()
        self._ever_connected = False
        #: Times the subscriber connection was established again after a loss.
        self.reconnects = 0

    async def publish(self, channel: str, message: str) -> None:
        """Publishes through Redis; every subscribed process gets it, this one included.

        Raises:
            ConnectionError: Redis could not be reached (after a few retries).
        """
        self._check_open()
        _check_str("channel", channel)
        _check_str("message", message)
        try:
            await self._client.publish(channel, message.encode("utf-8"))
        except self._lost as exc:
            raise ConnectionError(f"cannot publish to Redis at {_safe_url(self.url)}: {exc}")

    @property
    def connected(self) -> bool:
        """True while the subscriber connection to Redis is up."""
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = 10.0, connected: bool = True) -> None:
        """Waits until the subscriber connection is up (or down, with ``connected=False``).

        Raises:
            TimeoutError: that did not happen within ``timeout`` seconds.
        """
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
        event = self._connected if connected else self._disconnected
        await asyncio.wait_for(event.wait(), timeout)

    async def ping(self) -> bool:
        """True when the publishing connection reaches Redis."""
        try:
            return bool(await self._client.ping())
        except self._lost:
            return False

    async def _listen(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        future = self._confirmed.get(channel)
        if future is None or future.done():
            future = self._confirmed[channel] = loop.create_future()
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read())
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

    def _command(self, name: str, channel: str) -> None:
        ps = self._ps

        async def send() -> None:
            # A connection the reader has dropped (or is about to) is left
            # alone: redis-py would open a new one for this command, and its
            # resubscription would then read alongside the reader. The reader
            # subscribes every current channel when it reconnects.
            if ps is not self._ps or _gone(ps):
                return
            try:
                await getattr(ps, name)(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Redis going away under a command surfaces as redis-py's
                # ConnectionError, or (the socket already closed) as uvloop's
                # RuntimeError "handler is closed" or an AttributeError from
                # the writer redis-py dropped. Nobody awaits this task, so
                # nothing may escape it; the reader sees the loss and
                # resubscribes. Anything else on a live connection is logged.
                if not isinstance(exc, self._lost) and ps is self._ps and not _gone(ps):
                    gen_log.warning(
                        "pubsub: %s %r on Redis at %s failed: %r",
                        name.upper(),
                        channel,
                        _safe_url(self.url),
                        exc,
                    )

        task = asyncio.ensure_future(send())
        self._commands.add(task)
        task.add_done_callback(self._commands.discard)

    async def _read(self) -> None:
        delay = self.reconnect_delay
        lost = False
        while not self._closed:
            ps = self._sub_client.pubsub()
            self._ps = ps
            try:
                await ps.subscribe(self._control, *self._channels)
                while True:
                    message = await ps.get_message(timeout=None)
                    if message is None:
                        continue
                    kind = message["type"]
                    channel = message["channel"].decode("utf-8", "replace")
                    if kind == "message":
                        self._dispatch(channel, message["data"].decode("utf-8", "replace"))
                    elif kind == "subscribe":
                        if channel == self._control:
                            self._connected.set()
                            self._disconnected.clear()
                            delay = self.reconnect_delay
                            if lost:
                                lost = False
                                if self._ever_connected:
                                    self.reconnects += 1
                                gen_log.warning(
                                    "pubsub: %s Redis at %s; %d channel(s) subscribed",
                                    "reconnected to" if self._ever_connected else "connected to",
                                    _safe_url(self.url),
                                    len(self._channels),
                                )
                            self._ever_connected = True
                        else:
                            future = self._confirmed.get(channel)
                            if future is not None and not future.done():
                                future.set_result(None)
            except asyncio.CancelledError:
                raise
            except self._lost as exc:
                self._connected.clear()
                if not lost:
                    gen_log.warning(
                        "pubsub: %s Redis at %s (%s); retrying",
                        "lost the connection to" if self._ever_connected else "cannot connect to",
                        _safe_url(self.url),
                        exc or type(exc).__name__,
                    )
                    lost = True
                # Subscriptions made while away must be confirmed anew.
                for channel in self._channels:
                    old = self._confirmed.get(channel)
                    if old is None or old.done():
                        self._confirmed[channel] = asyncio.get_running_loop().create_future()
            finally:
                self._connected.clear()
                self._disconnected.set()
                await self._drop(ps)
            if not self._closed:
                # Backoff between attempts, so that a Redis that stays down
                # does not get a connection storm from every worker.
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    async def _drop(self, ps: Any) -> None:
        try:
            await ps.aclose()
        except self._lost:
            pass

    async def close(self) -> None:
        """Unsubscribes everything and closes both Redis connections."""
        await super().close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except asyncio.CancelledError:
                pass
            self._reader = None
        for task in list(self._commands):
            task.cancel()
        for future in self._confirmed.values():
            future.cancel()
        await self._client.aclose()
        await self._sub_client.aclose()
