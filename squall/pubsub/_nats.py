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
channel name (dots, spaces, ``*``, ``>``) is a single valid subject token.
nats-py reconnects and resubscribes by itself; the loss and the resumption
are logged on ``squall.general`` and counted in `PubSub.status`.

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
from squall.pubsub import (
    DEFAULT_HISTORY_TTL,
    DEFAULT_MAX_RECOVERY,
    HistoryResult,
    Position,
    Publication,
    PubSub,
)

__all__ = ["NatsPubSub"]

NATS_POSITION = Position(0, "nats")


def _nats() -> Any:
    try:
        import nats
        import nats.errors
    except ImportError as exc:  # pragma: no cover - the nats extra is in dev
        raise ImportError(
            "squall.pubsub's NATS engine needs the nats-py package: pip install 'squall[nats]'"
        ) from exc
    return nats


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

    def __init__(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        max_pending: int = 1000,
        history_size: int = 0,
        history_ttl: float = DEFAULT_HISTORY_TTL,
        max_recovery: int = DEFAULT_MAX_RECOVERY,
        subscribe_timeout: float = 10.0,
        reconnect_delay: float = 0.1,
        pending_size: int = 2 * 1024 * 1024,
        pending_bytes: int = 8 * 1024 * 1024,
        presence_ttl: float = 30.0,
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
        self._nc: Any = None
        self._connecting: Optional[asyncio.Future[Any]] = None
        self._subs: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost_at = 0.0

    async def _client(self) -> Any:
        if self._nc is not None:
            return self._nc
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        except BaseException:
            if self._connecting.done():
                self._connecting = None
            raise

    async def _connect(self) -> Any:
        async def disconnected() -> None:
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
            gen_log.info("pubsub: NATS at %s: %r", self.url, exc)

        try:
            # nats-py would retry the first connection forever (it reconnects
            # forever afterwards, which is wanted): bound the first one.
            self._nc = await asyncio.wait_for(
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
                ),
                self.subscribe_timeout,
            )
        except (Exception, TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to NATS at {self.url}: {exc!r}") from exc
        return self._nc

    async def _publish(self, channel: str, message: str) -> Position:
        nc = await self._client()
        try:
            await nc.publish(subject(channel), message.encode("utf-8"))
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
        """True when NATS answers a flush; the round trip goes into `PubSub.status`."""
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

        async def on_message(msg: Any) -> None:
            self._dispatch(Publication(channel, msg.data.decode("utf-8", "replace"), NATS_POSITION))

        try:
            self._subs[channel] = await nc.subscribe(
                subject(channel), cb=on_message, pending_bytes_limit=self.pending_bytes
            )
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

        task = asyncio.ensure_future(unsubscribe())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Unsubscribes everything and closes the connection to NATS."""
        await super().close()
        for task in list(self._tasks):
            await task
        if self._connecting is not None and not self._connecting.done():
            self._connecting.cancel()
        if self._nc is not None:
            try:
                await self._nc.close()
            except self._nats.errors.Error:
                pass
            self._nc = None
