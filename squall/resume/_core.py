"""`resume`: one channel's publications after a position, with gaps repaired or reported.

The three transports (Server-Sent Events, WebSocket, long polling) share it,
so that they resume the same way: the `squall.pubsub` subscription yields
what was missed since the client's position and then the live
publications; this adds what a long-lived connection needs beyond that. A
reader too slow for its subscription's ``max_pending`` loses the oldest
pending publications (an offset jump): the gap is refilled from history by
subscribing again from the last position delivered, and reported as a
`Reset` only when history no longer has it. A publication from a new epoch
(the broker lost the channel's history) is a `Reset` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Optional, Union

from squall.pubsub import Position, Publication, PubSub, PubSubClosedError, Subscription

__all__ = [
    "Reset",
    "ResumedSubscription",
    "resume",
    "parse_position",
    "position_text",
    "require_positions",
]


def require_positions(pubsub: PubSub) -> None:
    """Refuses an engine whose publications carry no positions (core NATS, a
    Redis engine made with ``positions=False``).

    Raises:
        TypeError: saying which engine and what to use instead.
    """
    if not pubsub.has_positions:
        if type(pubsub).__name__ == "NatsPubSub":
            why = "core NATS keeps no offsets and no history, so nothing can resume"
            instead = "use memory://, redis:// or redis+cluster://"
        else:
            why = "it was made with positions=False: its publishes carry no offsets"
            instead = "leave positions on (drop ?positions=0)"
        raise TypeError(
            f"squall.resume needs a pub/sub engine that gives positions; "
            f"{type(pubsub).__name__} gives none ({why}): {instead}"
        )


@dataclasses.dataclass(frozen=True, slots=True)
class Reset:
    """Publications were missed and cannot be recovered: reload the state.

    Attributes:
        channel: the channel.
        position: where the stream goes on from (the channel's top when the
            gap was found); the next publication comes after it.
    """

    channel: str
    position: Position


def position_text(position: Optional[Position]) -> Optional[str]:
    """``str(position)``, or None for no position (None, or a message without one)."""
    if position is None or not position.epoch:
        return None
    return str(position)


def parse_position(text: Optional[str], what: str = "position") -> Optional[Position]:
    """``text`` as a `~squall.pubsub.Position` (None and "" give None).

    Raises:
        ValueError: naming ``what`` and why the text is not a position.
    """
    if not text:
        return None
    try:
        return Position.parse(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what}: {exc}") from None


class ResumedSubscription:
    """A channel's publications after a position, as `~squall.pubsub.Publication` and `Reset` items.

    Made by `resume`; iterate with ``async for item in stream`` or `next`,
    and `close` it (or use ``async with``). When the position asked for
    could not be recovered (too old, from another epoch, from the future),
    the first item is a `Reset`. Attributes:

    * ``channel``: the channel.
    * ``recovered``: as the ``recovered`` of `squall.pubsub.Subscription`, for the first
      subscription (None when opened without a position).
    * ``position``: the position of the last item returned (or the start).
    * ``resubscribes``: how many gaps were refilled from history.
    * ``missed``: how many publications history gave back at the start (the
      ones missed since the position asked for; 0 when not recovered).
    """

    __slots__ = (
        "channel",
        "recovered",
        "position",
        "resubscribes",
        "missed",
        "_pubsub",
        "_sub",
        "_max",
        "_held",
    )

    def __init__(
        self, pubsub: PubSub, channel: str, sub: Subscription, max_pending: Optional[int]
    ) -> None:
        self.channel = channel
        self._pubsub = pubsub
        self._sub = sub
        self._max = max_pending
        self.recovered: Optional[bool] = sub.recovered
        self.position: Optional[Position] = sub.position
        self.resubscribes = 0
        self.missed = sub.pending if sub.recovered else 0
        # What next() returns before reading again: the Reset of a position
        # that could not be recovered, or a publication that came after one.
        self._held: list[Union[Publication, Reset]] = []
        if sub.recovered is False and sub.position is not None:
            self._held.append(Reset(channel, sub.position))

    async def next(self) -> Union[Publication, Reset]:
        """The next publication, or a `Reset` where some were lost.

        Raises:
            squall.pubsub.PubSubClosedError: closed (by `close`, or the
                `~squall.pubsub.PubSub` was closed).
            ConnectionError: the broker could not be reached to refill a gap.
        """
        while True:
            if self._held:
                item = self._held.pop(0)
                if isinstance(item, Reset):
                    return item
                pub = item
            else:
                pub = await self._sub.get_publication()
            last = self.position
            pos = pub.position
            if not pos.epoch:
                # No position (a message PUBLISHed to Redis by another
                # program): passed on as it is, and it moves nothing.
                return pub
            if last is None or pos.epoch == last.epoch and pos.offset == last.offset + 1:
                self.position = pos
                return pub
            if pos.epoch != last.epoch:
                # The broker lost the channel's history (a new epoch): what
                # was published in between is gone. Say so, then go on.
                self.position = Position(max(pos.offset - 1, 0), pos.epoch)
                self._held.append(pub)
                return Reset(self.channel, self.position)
            if pos.offset <= last.offset:
                continue  # delivered already (a resubscription's overlap)
            # A jump: this reader fell behind and its oldest pending
            # publications were dropped. History may still hold them.
            reset = await self._refill(last)
            if reset is not None:
                return reset

    async def _refill(self, last: Position) -> Optional[Reset]:
        self._sub.close()
        self.resubscribes += 1
        self._sub = sub = await self._pubsub.subscribe(self.channel, self._max, since=last)
        if sub.recovered or sub.position is None:
            return None
        self.position = sub.position
        return Reset(self.channel, sub.position)

    def __aiter__(self) -> AsyncIterator[Union[Publication, Reset]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Union[Publication, Reset]]:
        while True:
            try:
                yield await self.next()
            except PubSubClosedError:
                return

    def close(self) -> None:
        """Leaves the channel."""
        self._sub.close()

    async def __aenter__(self) -> ResumedSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


async def resume(
    pubsub: PubSub,
    channel: str,
    since: Optional[Position] = None,
    *,
    max_pending: Optional[int] = None,
) -> ResumedSubscription:
    """Subscribes to ``channel`` from ``since``: missed publications first, then live ones.

    Args:
        pubsub: the `~squall.pubsub.PubSub`.
        channel: the channel.
        since: the client's last position; None to start with what is
            published from now on.
        max_pending: the subscription's bound (see `squall.pubsub.PubSub.subscribe`).

    Raises:
        TypeError: ``pubsub`` gives no positions (``require_positions``).
        ValueError: ``channel`` is not a channel name (`squall.pubsub.check_channel`).
        ConnectionError: the broker is unreachable.
    """
    require_positions(pubsub)
    sub = await pubsub.subscribe(channel, max_pending, since=since)
    return ResumedSubscription(pubsub, channel, sub, max_pending)
