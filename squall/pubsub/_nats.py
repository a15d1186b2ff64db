"""The NATS engine of squall.pubsub (core NATS subjects through nats-py).

At most once: core NATS keeps nothing, so this engine has no history and no
offsets. Every publication's position is ``Position(0, "nats")``;
`~squall.pubsub.PubSub.history` returns nothing with ``recovered=False``, and
``subscribe(channel, since=...)`` always says ``recovered=False``. What is
published while a process is disconnected from NATS does not reach it
(counted nowhere: NATS does not say). JetStream could give history; it is
not used (yet). Presence is not available on this engine either
(`~squall.pubsub.PubSub.join` raises NotImplementedError).

Channels map to subjects ``sq.<base64url of the channel>`` so that any
channel name (dots, spaces, ``*``, ``>``, control characters) is a single
valid subject token; `~squall.pubsub.MAX_CHANNEL_BYTES` keeps the SUB and PUB
lines near 1,400 bytes, under nats-server's 4,096-byte control line. nats-py
closes its client for good on some server errors: the engine then makes a
new one and subscribes every channel again (a supervised loop, with
jittered backoff). ``squall.resume`` refuses this engine (no positions to
resume from: ``has_positions`` is False).
nats-py reconnects and resubscribes by itself; the loss and the resumption
are logged on ``squall.general`` and counted in ``PubSub.status``.

Bounds: a publish while disconnected is buffered by nats-py up to
``pending_size`` bytes (then it fails); each subject's subscription holds at
most ``pending_bytes`` bytes not yet dispatched (then NATS drops for it and
reports a slow consumer).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any, Optional

from squall.log import gen_log
from squall.pubsub._base import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_MAX_PENDING,
    DEFAULT_MAX_RECOVERY,
    PubSub,
    client_library,
)
from squall.pubsub._presence import DEFAULT_PRESENCE_TTL
from squall.pubsub._supervise import Backoff, Supervised
from squall.pubsub._types import HistoryResult, Position, Publication

__all__ = ["NatsPubSub"]

NATS_POSITION = Position(0, "nats")


def _nats() -> Any:
    return client_library("NATS engine", "nats-py", "nats", "nats", "nats.errors")


def subject(channel: str) -> str:
    """The NATS subject that carries ``channel``."""
    return "sq." + base64.urlsafe_b64encode(channel.encode("utf-8")).decode("ascii").rstrip("=")


class NatsPubSub(PubSub):
    """Channels shared by every process connected to one NATS server or cluster (``nats://``).

    Args:
        url: ``nats://host:port`` (several, comma-separated, for a cluster).
        max_pending: default bound of each `Subscription` (drop-oldest past it).
        history_size: must be 0: core NATS keeps no history.
        subscribe_timeout: seconds `~squall.pubsub.PubSub.subscribe` waits for NATS.
        reconnect_delay: seconds between reconnection attempts.
        pending_size: bytes of publishes buffered while disconnected.
        pending_bytes: bytes one subject may hold before NATS drops for it.
    """

    has_positions = False

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        subscribe_timeout: float = 10.0,
        reconnect_delay: float = 0.1,
        pending_size: int = 2 * 1024 * 1024,
        pending_bytes: int = 8 * 1024 * 1024,
        presence_ttl: float = DEFAULT_PRESENCE_TTL,
    ) -> None:
        if history_size:
            raise ValueError(
                "the NATS engine keeps no history (at most once): history_size must be 0"
            )
        super().__init__(
            max_pending,
            history_ttl=history_ttl,
            max_recovery=max_recovery,
            presence_ttl=presence_ttl,
        )
        self._nats = _nats()
        self.url = url
        self.subscribe_timeout = subscribe_timeout
        self.reconnect_delay = reconnect_delay
        self.pending_size = pending_size
        self.pending_bytes = pending_bytes
        self._nc: Any = None  # the client while it is open (the keeper's)
        self._ready: Optional[asyncio.Future[Any]] = None  # resolved by the keeper
        self._subs: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost_at = 0.0
        self._last_error: Optional[BaseException] = None
        # nats-py reconnects by itself, but closes its client for good on
        # some errors (a control line the server refused, an authorization
        # error): the keeper then makes a new client and subscribes every
        # channel on it, after a jittered delay, as often as it takes.
        self._keeper = Supervised(
            f"NATS client of {url}",
            self._keep,
            Backoff(max(reconnect_delay, 0.01), max(reconnect_delay, 2.0)),
            self._keep_failed,
        )

    async def _client(self) -> Any:
        nc = self._nc
        if nc is not None:
            return nc
        if self._ready is None or self._ready.done():
            self._ready = asyncio.get_running_loop().create_future()
        ready = self._ready
        self._keeper.start()
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.subscribe_timeout)
        except TimeoutError:
            raise ConnectionError(
                f"cannot connect to NATS at {self.url} within {self.subscribe_timeout}s "
                f"({self._last_error!r})"
            ) from None

    async def _keep(self) -> None:
        """Holds a client until nats-py closes it for good (the supervised body)."""
        closed = asyncio.Event()
        nc = await self._connect(closed)
        try:
            # A new client: every channel is subscribed on it.
            self._subs.clear()
            for channel in list(self._channels):
                self._subs[channel] = await self._subscribe(nc, channel)
            await nc.flush(timeout=self.subscribe_timeout)
            self._nc = nc
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(nc)
            self._keeper.backoff.reset()
            if not self.status.healthy:
                resume = time.monotonic() - self._lost_at
                self._resubscribed(resume)
                gen_log.warning(
                    "pubsub: made a new connection to NATS at %s after %.3fs; "
                    "%d channel(s) subscribed",
                    self.url,
                    resume,
                    len(self._subs),
                )
            self._set_healthy(True)
            await closed.wait()
        finally:
            if self._nc is nc:
                self._nc = None
            if not nc.is_closed:
                try:
                    await nc.close()
                except self._nats.errors.Error:
                    pass
        raise ConnectionError(
            f"nats-py closed its connection to NATS at {self.url} for good "
            f"(last error: {self._last_error!r})"
        )

    def _keep_failed(self, exc: BaseException) -> bool:
        first = self.status.healthy  # the first failure of an outage is logged
        if first:
            self._lost_at = time.monotonic()
        self._set_healthy(False)
        if isinstance(exc, (ConnectionError, self._nats.errors.Error, TimeoutError)):
            if first:
                gen_log.warning("pubsub: %s; connecting again", exc)
            return True
        return False

    async def _connect(self, closed: asyncio.Event) -> Any:
        async def disconnected() -> None:
            if self._closed:
                return  # our own close
            self._lost_at = time.monotonic()
            self._set_healthy(False)
            gen_log.warning("pubsub: lost the connection to NATS at %s; retrying", self.url)

        async def reconnected() -> None:
            resume = time.monotonic() - self._lost_at
            self._resubscribed(resume)
            self._set_healthy(True)
            gen_log.warning(
                "pubsub: reconnected to NATS at %s after %.3fs; %d channel(s) subscribed",
                self.url,
                resume,
                len(self._subs),
            )

        async def error(exc: Exception) -> None:
            self._last_error = exc
            gen_log.info("pubsub: NATS at %s: %r", self.url, exc)

        async def on_closed() -> None:
            closed.set()

        try:
            # nats-py would retry the first connection forever (it reconnects
            # forever afterwards, which is wanted): bound the first one.
            return await asyncio.wait_for(
                self._nats.connect(
                    servers=self.url.split(","),
                    connect_timeout=self.subscribe_timeout,
                    reconnect_time_wait=self.reconnect_delay,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    pending_size=self.pending_size,
                    disconnected_cb=disconnected,
                    reconnected_cb=reconnected,
                    error_cb=error,
                    closed_cb=on_closed,
                ),
                self.subscribe_timeout,
            )
        except (Exception, TimeoutError) as exc:
            self._last_error = exc
            raise ConnectionError(f"cannot connect to NATS at {self.url}: {exc!r}") from exc

    async def _subscribe(self, nc: Any, channel: str) -> Any:
        async def on_message(msg: Any) -> None:
            self._dispatch(Publication(channel, msg.data.decode("utf-8", "replace"), NATS_POSITION))

        return await nc.subscribe(
            subject(channel), cb=on_message, pending_bytes_limit=self.pending_bytes
        )

    async def _publish(self, channel: str, message: str) -> Position:
        nc = await self._client()
        data = message.encode("utf-8")
        try:
            await nc.publish(subject(channel), data)
        except self._nats.errors.MaxPayloadError:
            raise ValueError(
                f"a message of {len(data)} bytes is over the NATS server's max_payload "
                f"({nc.max_payload} bytes)"
            ) from None
        except self._nats.errors.Error as exc:
            raise ConnectionError(f"cannot publish to NATS at {self.url}: {exc!r}") from exc
        return NATS_POSITION

    async def _read(
        self, channel: str, since: Optional[Position], limit: int, strict: bool
    ) -> HistoryResult:
        return HistoryResult([], NATS_POSITION, False)

    async def _top(self, channel: str) -> Position:
        return NATS_POSITION

    async def ping(self) -> bool:
        """True when NATS answers a flush; the round trip goes into ``PubSub.status``."""
        start = time.monotonic()
        try:
            nc = await self._client()
            await nc.flush(timeout=self.subscribe_timeout)
        except (ConnectionError, self._nats.errors.Error, TimeoutError):
            return False
        self.status.round_trip = time.monotonic() - start
        return True

    async def _listen(self, channel: str) -> None:
        nc = await self._client()
        if channel in self._subs:
            return  # a new client's keeper subscribed it meanwhile
        try:
            self._subs[channel] = await self._subscribe(nc, channel)
            # Once NATS answers the flush, it has the subscription.
            await nc.flush(timeout=self.subscribe_timeout)
        except (self._nats.errors.Error, TimeoutError) as exc:
            raise ConnectionError(
                f"NATS at {self.url} did not confirm the subscription to {channel!r}: {exc!r}"
            ) from exc

    def _forget(self, channel: str) -> None:
        sub = self._subs.pop(channel, None)
        if sub is None:
            return

        async def unsubscribe() -> None:
            try:
                await sub.unsubscribe()
            except self._nats.errors.Error:
                pass  # the connection is gone, and the subscription with it
            except Exception as exc:
                # Nobody awaits this but close(), which must not raise it.
                gen_log.info("pubsub: unsubscribing %r from NATS failed: %r", channel, exc)

        task = asyncio.ensure_future(unsubscribe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Unsubscribes everything and closes the connection to NATS."""
        await super().close()
        for task in list(self._tasks):
            await task
        # The keeper closes its client on the way out.
        await self._keeper.stop()
        if self._ready is not None:
            self._ready.cancel()
