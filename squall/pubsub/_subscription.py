"""`Subscription` and `Relay`: what a `~squall.pubsub.PubSub` hands its local
readers, one channel each (the engine's dispatch delivers to them)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from types import TracebackType
from typing import Any, Optional, Protocol, Self, TypeVar

from squall.pubsub._types import HistoryResult, Position, Publication, PubSubClosedError

__all__ = ["Subscription", "Relay", "Listener"]


class Listener(Protocol):
    """What a `~squall.pubsub.PubSub` fans a channel's publications out to."""

    channel: str

    def deliver(self, publication: Publication) -> None:
        """Takes one publication (called by the engine's dispatch; must not block)."""

    def close(self) -> None:
        """Stops listening (the engine's ``leave`` callback is called once)."""


#: How a listener tells its engine it left the channel (given at construction).
Leave = Callable[[Listener], None]

_T = TypeVar("_T")


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

    Iterate with ``async for message in subscription`` (ends when closed), or
    ``async for publication in subscription.publications()`` for positions
    too, or call `get` / `get_publication`. Use as an async context manager,
    or call `close`, to leave the channel.

    Attributes:
        channel: the channel.
        max_pending: this reader's bound (drop-oldest past it).
        dropped: how many messages were discarded because this reader fell behind.
        recovered: None when subscribed without ``since``; else True when every
            publication after ``since`` is yielded (no gap), False when the
            stream starts after the channel's top at subscribe time instead.
        position: the position of the last message returned (before any:
            ``since`` when recovered, else the channel's top at subscribe
            time; None when the broker could not tell it).
    """

    __slots__ = (
        "channel",
        "max_pending",
        "dropped",
        "recovered",
        "position",
        "_leave",
        "_dropped",
        "_queue",
        "_waiters",
        "_closed",
        "_hold",
        "_extra",
        "_floor",
    )

    def __init__(
        self,
        channel: str,
        max_pending: int,
        *,
        leave: Leave,
        dropped: Callable[[], None],
        hold: bool = False,
    ) -> None:
        """Made by `PubSub.subscribe`: ``leave`` is called once when it closes,
        ``dropped`` at each publication it drops (the engine counts them);
        with ``hold``, live publications wait until `start`."""
        if not isinstance(max_pending, int) or max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, not {max_pending!r}")
        self.channel = channel
        self.max_pending = max_pending
        self.dropped = 0
        self.recovered: Optional[bool] = None
        self.position: Optional[Position] = None
        self._leave = leave
        self._dropped = dropped
        self._queue: collections.deque[Publication] = collections.deque()
        # The futures of the readers waiting in get, all resolved by the
        # next delivery or the close: one each, so that cancelling one
        # reader cancels no other's (as asyncio.Event keeps them; not an
        # Event itself, whose wait is one more coroutine per message).
        self._waiters: list[asyncio.Future[None]] = []
        self._closed = False
        # Live publications that arrive before the start is known (history
        # being read) wait here, to be merged in by offset.
        self._hold: Optional[list[Publication]] = [] if hold else None
        # Room above max_pending for the publications a recovery queued and
        # the reader has not read yet (at the head of the queue).
        self._extra = 0
        # After a recovery: what was queued already, so that a late copy
        # (the engine catching up on a resubscription) is not seen twice.
        self._floor: Optional[Position] = None

    @property
    def closed(self) -> bool:
        """True once `close` was called (or the `PubSub` was closed)."""
        return self._closed

    @property
    def pending(self) -> int:
        """Messages received and not yet read."""
        return len(self._queue)

    def deliver(self, pub: Publication) -> None:
        """Queues one publication (called by the engine's dispatch)."""
        if self._closed:
            return
        hold = self._hold
        if hold is not None:
            if len(hold) >= self.max_pending:
                hold.pop(0)
                self._count_drop()
            hold.append(pub)
            return
        floor = self._floor
        if floor is not None:
            if pub.position.epoch == floor.epoch and 0 < pub.position.offset <= floor.offset:
                return
            self._floor = None
        while len(self._queue) >= self.max_pending + self._extra:
            # Drop-oldest: memory stays bounded and a reader that catches up
            # gets the freshest state, which is what live pages want.
            self._pop()
            self._count_drop()
        self._queue.append(pub)
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():  # (a reader cancelled meanwhile)
                waiter.set_result(None)
        self._waiters.clear()

    def _more(self) -> asyncio.Future[None]:
        """What a reader that found the queue empty awaits: resolved at the
        next delivery or close.

        Raises:
            PubSubClosedError: the subscription is closed.
        """
        if self._closed:
            raise PubSubClosedError(f"subscription to {self.channel!r} is closed")
        waiters = self._waiters
        if waiters:
            # Those of readers cancelled since the last wake go (bounded by
            # the readers waiting now, however often a reader times out).
            waiters[:] = [w for w in waiters if not w.done()]
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        return waiter

    def _pop(self) -> Publication:
        pub = self._queue.popleft()
        if self._extra:
            # One of the recovered publications (they are first) is gone:
            # the bound comes back down with them.
            self._extra -= 1
        return pub

    def _count_drop(self) -> None:
        self.dropped += 1
        self._dropped()

    def start(
        self,
        top: Optional[Position],
        since: Optional[Position],
        history: Optional[HistoryResult],
    ) -> None:
        """Ends holding (called once by `PubSub.subscribe`, when it knows the
        start): queues the recovered publications, then the held live ones."""
        held = self._hold or []
        self._hold = None
        if history is not None and since is not None and history.recovered:
            self.recovered = True
            self.position = since
            epoch = since.epoch
            last = (
                history.publications[-1].position.offset if history.publications else since.offset
            )
            self._queue.extend(history.publications)
            self._extra = len(history.publications)
        else:
            if since is not None:
                self.recovered = False
            if history is not None:
                top = history.position
            self.position = top
            if top is None:
                self._queue.extend(held)
                if held:
                    self._wake()
                return
            epoch, last = top.epoch, top.offset
            # Without since, the position given is just before the first
            # publication yielded, so a resume from it misses nothing.
            if since is None and held:
                first = held[0].position
                if first.epoch == epoch and first.offset <= last:
                    self.position = Position(first.offset - 1, epoch)
                    last = first.offset - 1
        for pub in held:
            if pub.position.epoch != epoch or pub.position.offset > last:
                self._queue.append(pub)
                last = pub.position.offset
                epoch = pub.position.epoch
        self._floor = Position(last, epoch)
        if self._queue:
            self._wake()

    async def get_publication(self) -> Publication:
        """The next publication, with its channel and position, waiting for one.

        Raises:
            PubSubClosedError: the subscription was closed (publications still
                pending are returned first).
        """
        while not self._queue:
            await self._more()
        pub = self._pop()
        self.position = pub.position
        return pub

    async def get(self) -> str:
        """The next message, waiting for one.

        Raises:
            PubSubClosedError: the subscription was closed (messages still
                pending are returned first).
        """
        # get_publication's body again, with _pop inline: every reader's
        # hot path, a coroutine and a call less per message.
        while not self._queue:
            await self._more()
        pub = self._queue.popleft()
        if self._extra:
            self._extra -= 1  # as _pop does
        self.position = pub.position
        return pub.data

    def get_nowait(self) -> Optional[str]:
        """The next message if one is pending, else None."""
        if not self._queue:
            return None
        pub = self._pop()
        self.position = pub.position
        return pub.data

    def close(self) -> None:
        """Leaves the channel; a reader waiting in `get` is woken."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        self._leave(self)

    def __aiter__(self) -> AsyncIterator[str]:
        return _until_closed(self.get)

    def publications(self) -> AsyncIterator[Publication]:
        """``async for publication in subscription.publications()``: ends when closed."""
        return _until_closed(self.get_publication)


async def _until_closed(get: Callable[[], Awaitable[_T]]) -> AsyncIterator[_T]:
    """What ``get`` returns, one after another, until the subscription closes."""
    while True:
        try:
            yield await get()
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
        "_leave",
        "_send",
        "_closed",
    )

    def __init__(
        self,
        channel: str,
        connections: Collection[Any],
        send: Callable[[Collection[Any], str], Any],
        *,
        leave: Leave,
    ) -> None:
        self.channel = channel
        self.connections = connections
        self.messages = self.sent = self.skipped = self.closed = 0
        self._leave = leave
        self._send = send
        self._closed = False

    def deliver(self, pub: Publication) -> None:
        """Sends one publication to the connections (called by the engine's dispatch)."""
        if self._closed:
            return
        result = self._send(self.connections, pub.data)
        self.messages += 1
        self.sent += result.sent
        self.skipped += result.skipped
        self.closed += result.closed

    def close(self) -> None:
        """Stops relaying (the connections stay open)."""
        if self._closed:
            return
        self._closed = True
        self._leave(self)
