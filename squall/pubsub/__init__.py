"""Broadcast messages to live subscribers, in one process or across many.

A `PubSub` carries text messages on named channels: `PubSub.publish` sends one
to every current subscriber of the channel, and `PubSub.subscribe` returns a
`Subscription` to iterate over. Nothing is stored: a subscriber sees only what
is published while it is subscribed (keep history in a database and use this
for the live part).

Two backends share the API:

* `LocalPubSub` (the default, ``memory://``): subscribers in this process.
* `RedisPubSub` (``redis://host:port/db``, needs ``pip install squall[redis]``):
  every process connected to the same Redis sees every message. One Redis
  subscription per channel per process fans out to local subscribers. When
  the connection to Redis is lost, it is retried with backoff, channels are
  subscribed again, and both the loss and the recovery are logged on
  ``squall.general``; messages published while Redis was away are lost.

`PubSub.relay` forwards a channel straight to a collection of WebSockets with
`squall.websocket.broadcast`: no queue and no task per connection, one frame
per message for all of them, slow readers skipped and counted (and closed
past the limits given). With Redis, that is one Redis subscription per
channel per process, fanned out to every local socket at once.

Slow subscribers are bounded: each `Subscription` holds at most
``max_pending`` undelivered messages. Past that the *oldest* pending message
is dropped and `Subscription.dropped` counts it, so a stalled reader costs a
fixed amount of memory and, when it catches up, sees the newest messages.
A caller that needs every message compares sequence numbers in its messages
(or `~squall.pubsub.Subscription.dropped`) and reloads from its database.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from types import TracebackType
from typing import Any, Optional, Self, Union
from urllib.parse import urlsplit

__all__ = [
    "PubSub",
    "LocalPubSub",
    "RedisPubSub",
    "Subscription",
    "Relay",
    "PubSubClosedError",
    "connect",
    "DEFAULT_MAX_PENDING",
]

DEFAULT_MAX_PENDING = 1000


class PubSubClosedError(RuntimeError):
    """The subscription or the `PubSub` it belongs to was closed."""


class _Closing:
    """``async with`` calls ``close`` on the way out (and awaits it, where
    ``close`` is a coroutine: `PubSub`'s)."""

    __slots__ = ()

    def close(self) -> Optional[Awaitable[None]]:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        closing = self.close()
        if closing is not None:
            await closing


class Subscription(_Closing):
    """The messages of one channel for one reader, oldest first.

    Iterate with ``async for message in subscription`` (ends when closed) or
    call `get`. Use as an async context manager, or call `close`, to leave
    the channel.
    """

    __slots__ = ("channel", "max_pending", "dropped", "_pubsub", "_queue", "_ready", "_closed")

    def __init__(self, pubsub: PubSub, channel: str, max_pending: int) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending}")
        self.channel = channel
        self.max_pending = max_pending
        #: How many messages were discarded because this reader fell behind.
        self.dropped = 0
        self._pubsub = pubsub
        self._queue: collections.deque[str] = collections.deque()
        self._ready = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once `close` was called (or the `PubSub` was closed)."""
        return self._closed

    @property
    def pending(self) -> int:
        """Messages received and not yet read."""
        return len(self._queue)

    def _deliver(self, message: str) -> None:
        if self._closed:
            return
        if len(self._queue) >= self.max_pending:
            # Drop-oldest: memory stays bounded and a reader that catches up
            # gets the freshest state, which is what live pages want.
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(message)
        self._ready.set()

    async def get(self) -> str:
        """The next message, waiting for one.

        Raises:
            PubSubClosedError: the subscription was closed (messages still
                pending are returned first).
        """
        while not self._queue:
            if self._closed:
                raise PubSubClosedError(f"subscription to {self.channel!r} is closed")
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def get_nowait(self) -> Optional[str]:
        """The next message if one is pending, else None."""
        return self._queue.popleft() if self._queue else None

    def close(self) -> None:
        """Leaves the channel; a reader waiting in `get` is woken."""
        if self._closed:
            return
        self._closed = True
        self._ready.set()
        self._pubsub._unsubscribe(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[str]:
        while True:
            try:
                yield await self.get()
            except PubSubClosedError:
                return


class Relay(_Closing):
    """Forwards the messages of one channel to WebSockets (see `PubSub.relay`).

    Attributes:
        channel: the channel.
        connections: the collection given to `PubSub.relay`, read at each
            message (add and remove connections as they open and close).
        messages: messages relayed so far.
        sent, skipped, closed: the sums of `squall.websocket.BroadcastResult`'s
            fields over those messages.
    """

    __slots__ = (
        "channel",
        "connections",
        "messages",
        "sent",
        "skipped",
        "closed",
        "_pubsub",
        "_send",
        "_closed",
    )

    def __init__(
        self,
        pubsub: PubSub,
        channel: str,
        connections: Collection[Any],
        send: Callable[[Collection[Any], str], Any],
    ) -> None:
        self.channel = channel
        self.connections = connections
        self.messages = self.sent = self.skipped = self.closed = 0
        self._pubsub = pubsub
        self._send = send
        self._closed = False

    def _deliver(self, message: str) -> None:
        if self._closed:
            return
        result = self._send(self.connections, message)
        self.messages += 1
        self.sent += result.sent
        self.skipped += result.skipped
        self.closed += result.closed

    def close(self) -> None:
        """Stops relaying (the connections stay open)."""
        if self._closed:
            return
        self._closed = True
        self._pubsub._unsubscribe(self)


_Listener = Union[Subscription, Relay]


class PubSub(_Closing):
    """Base of the backends: local fan-out to `Subscription` and `Relay` objects."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self.max_pending = max_pending
        self._channels: dict[str, set[_Listener]] = {}
        self._closed = False

    def subscribers(self, channel: str) -> int:
        """How many subscriptions of this process listen on ``channel``."""
        return len(self._channels.get(channel, ()))

    async def publish(self, channel: str, message: str) -> None:
        """Sends ``message`` to every subscriber of ``channel``.

        Raises:
            TypeError: ``channel`` or ``message`` is not a str.
            PubSubClosedError: this `PubSub` was closed.
        """
        raise NotImplementedError

    async def subscribe(self, channel: str, max_pending: Optional[int] = None) -> Subscription:
        """A new subscription to ``channel``; it receives everything published after this returns.

        Args:
            channel: the channel name.
            max_pending: this reader's bound (default: the `PubSub`'s); past
                it the oldest pending message is dropped.
        """
        self._check_open()
        _check_str("channel", channel)
        sub = Subscription(self, channel, max_pending or self.max_pending)
        await self._add(sub)
        return sub

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
        subscribers.

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
        _check_str("channel", channel)
        from squall.websocket import broadcast  # the web layer, only when relaying

        def send(targets: Collection[Any], message: str) -> Any:
            return broadcast(
                targets,
                message,
                max_skips=max_skips,
                max_buffer=max_buffer,
                close_code=close_code,
            )

        relay = Relay(self, channel, connections, send)
        await self._add(relay)
        return relay

    async def _add(self, listener: _Listener) -> None:
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
        """Closes every subscription and releases the backend's resources."""
        self._closed = True
        for subs in list(self._channels.values()):
            for sub in list(subs):
                sub.close()
        self._channels.clear()

    # Backend hooks.

    async def _listen(self, channel: str) -> None:
        """Called when ``channel`` gets its first local subscriber."""

    def _forget(self, channel: str) -> None:
        """Called when ``channel`` lost its last local subscriber."""

    def _dispatch(self, channel: str, message: str) -> None:
        for sub in list(self._channels.get(channel, ())):
            sub._deliver(message)

    def _unsubscribe(self, sub: _Listener) -> None:
        subs = self._channels.get(sub.channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if not subs:
            del self._channels[sub.channel]
            if not self._closed:
                self._forget(sub.channel)

    def _check_open(self) -> None:
        if self._closed:
            raise PubSubClosedError(f"{type(self).__name__} is closed")


def _check_str(what: str, value: object) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")


class LocalPubSub(PubSub):
    """Subscribers in this process only (``memory://``)."""

    async def publish(self, channel: str, message: str) -> None:
        self._check_open()
        _check_str("channel", channel)
        _check_str("message", message)
        self._dispatch(channel, message)


def connect(url: Optional[str] = None, max_pending: int = DEFAULT_MAX_PENDING) -> PubSub:
    """A `PubSub` for ``url``: ``memory://`` (default) or ``redis://...``/``rediss://...``.

    Raises:
        ValueError: the URL's scheme is not one of those.
    """
    if not url:
        return LocalPubSub(max_pending)
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return LocalPubSub(max_pending)
    if scheme in ("redis", "rediss", "unix"):
        return RedisPubSub(url, max_pending=max_pending)
    raise ValueError(f"pub/sub URL {url!r}: scheme must be memory, redis, rediss or unix")


from squall.pubsub._redis import RedisPubSub  # noqa: E402  (it subclasses PubSub)

for _cls in (PubSub, LocalPubSub, Subscription, Relay, PubSubClosedError, RedisPubSub):
    _cls.__module__ = __name__
del _cls
