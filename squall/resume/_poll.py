"""Long polling whose cursor is the channel's position: `poll` and `ChannelPollHandler`.

Tornado's chat demo keeps a cursor into a buffer in the process's memory,
so a client must come back to the same process. Here the cursor is a
`~squall.pubsub.Position`: any process connected to the same broker answers
a poll from what the channel's history holds, so the pattern works behind a
load balancer, across a restart, and after a failover.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, ClassVar, Optional, Union

from squall.pubsub import Position, Publication, PubSub, Subscription, check_channel
from squall.resume._core import parse_position, position_text, require_positions
from squall.web import HTTPError, RequestHandler

__all__ = ["PollResult", "poll", "ChannelPollHandler"]


@dataclasses.dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll returns.

    Attributes:
        publications: after the cursor, oldest first (empty at the timeout).
        position: the next cursor (the last publication's position, or the
            cursor given, or the channel's top for a poll without one).
        recovered: False when publications after the cursor were lost (it
            is too old, from another epoch, or from the future): reload the
            state, then poll from ``position``.
    """

    publications: list[Publication]
    position: Optional[Position]
    recovered: bool


#: How many times one poll reads history again when its subscription hands
#: it a publication that does not follow the last one (a gap; see `poll`)
#: before it answers that publications were lost.
REFILLS = 2


async def poll(
    pubsub: PubSub,
    channel: str,
    cursor: Optional[Position],
    *,
    timeout: float,
    limit: int = 100,
) -> PollResult:
    """The publications after ``cursor``: those in history at once, else the next ones.

    Returns as soon as there is at least one (up to ``limit``, with all that
    are pending then), or when ``timeout`` seconds have passed with none (0:
    at once). A poll without a cursor waits for what comes after the
    channel's current position.

    An answer never moves the cursor over a publication it did not carry,
    as `squall.resume.resume` never does: it ends before a gap in the
    offsets (the subscription missed some: a catch-up after the broker
    connection was made again could not read them) and before a
    publication of another epoch. A gap right after the cursor is read
    again from history; a new epoch right after it is ``recovered`` False,
    whose position is just before that publication.

    Raises:
        ConnectionError: the broker is unreachable.
        TypeError: ``pubsub`` gives no positions (see `squall.resume.resume`).
        ValueError: ``limit`` is less than 1, or ``channel`` is not a channel name.
    """
    require_positions(pubsub)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    deadline = asyncio.get_running_loop().time() + timeout
    since = cursor
    gap = Position(0, "")
    for _ in range(REFILLS + 1):
        # Subscribing from the cursor reads history and joins the live stream
        # in one step, so nothing published meanwhile falls between them.
        sub = await pubsub.subscribe(channel, since=since)
        try:
            start = sub.position if sub.position is not None else since
            if sub.recovered is False:
                return PollResult([], start, False)
            answer = await _take(sub, start, deadline, limit)
        finally:
            sub.close()
        if isinstance(answer, PollResult):
            return answer
        # A gap right after the start: history is read again from it.
        gap, since = answer, start
    # History still does not fill it: those publications are lost.
    return PollResult([], Position(max(gap.offset - 1, 0), gap.epoch), False)


async def _take(
    sub: Subscription, start: Optional[Position], deadline: float, limit: int
) -> Union[PollResult, Position]:
    """One poll's answer from ``sub``, whose stream begins after ``start``;
    or the position of its first publication when that one does not follow
    ``start`` in its epoch (a gap: the caller reads history again)."""
    loop = asyncio.get_running_loop()
    publications: list[Publication] = []
    last = start
    while len(publications) < limit:
        if sub.pending:
            pub = await sub.get_publication()
        elif publications or deadline <= loop.time():
            break
        else:
            try:
                pub = await asyncio.wait_for(sub.get_publication(), deadline - loop.time())
            except TimeoutError:
                break
        position = pub.position
        if not position.epoch:
            # No position (published by another program): passed on, and
            # it does not move the cursor.
            publications.append(pub)
            continue
        if last is not None and last.epoch:
            if position.epoch == last.epoch and position.offset <= last.offset:
                continue  # given already
            if position.epoch != last.epoch or position.offset != last.offset + 1:
                # A gap, or a new epoch (what the old one held after the
                # cursor may be lost). The answer ends before it, so that
                # the next poll's history read starts from the last one
                # given; right after the start, this poll says so now.
                if publications:
                    break
                if position.epoch == last.epoch:
                    return position
                return PollResult([], Position(max(position.offset - 1, 0), position.epoch), False)
        publications.append(pub)
        last = position
    return PollResult(publications, last, True)


class ChannelPollHandler(RequestHandler):
    """``GET ?cursor=POSITION``: the channel's publications after the cursor, as JSON.

    Answers ``{"publications": [{"data": D, "position": P}, ...], "position":
    CURSOR, "recovered": R}`` as soon as there is one publication after the
    cursor, or after ``poll_timeout`` seconds with an empty list; the client
    polls again with ``cursor=CURSOR``. ``recovered`` false means
    publications were lost: reload the state, then poll from ``position``.
    As `poll`, an answer ends before a gap in the offsets or a publication of
    a new epoch, so ``CURSOR`` never passes one it did not carry.
    ``heartbeat`` is ``poll_timeout``: a client that has no answer after it
    (plus a grace) takes the connection for dead and polls again.
    With ``wait=0`` it answers at once (what a client sends first, to know
    that polling gets through). A malformed cursor is a 400 saying why; an
    unreachable broker a 503.

    Override `channel` (and ``prepare`` to check who may read it).
    """

    #: Seconds a poll waits for a publication before answering empty.
    poll_timeout: ClassVar[float] = 25.0
    #: The most publications one answer carries.
    limit: ClassVar[int] = 100

    _waiting: Optional[asyncio.Task[PollResult]] = None

    @property
    def pubsub(self) -> PubSub:
        """The `~squall.pubsub.PubSub` read (default: the ``pubsub`` setting)."""
        pubsub: PubSub = self.settings["pubsub"]
        return pubsub

    def channel(self, *args: Any, **kwargs: Any) -> str:
        """The channel to poll, from the URL's path arguments (override)."""
        raise NotImplementedError("override ChannelPollHandler.channel")

    async def get(self, *args: Any, **kwargs: Any) -> None:
        try:
            cursor = parse_position(self.get_query_argument("cursor", None), "cursor")
        except ValueError as exc:
            raise HTTPError(400, "%s", exc, reason="Bad cursor") from None
        channel = self.channel(*args, **kwargs)
        try:
            check_channel(channel)
        except ValueError as exc:
            raise HTTPError(400, "%s", exc, reason="Bad channel") from None
        # wait=0: answer at once (a client checking that polling gets through).
        timeout = 0.0 if self.get_query_argument("wait", None) == "0" else self.poll_timeout
        self._waiting = asyncio.ensure_future(
            poll(self.pubsub, channel, cursor, timeout=timeout, limit=self.limit)
        )
        try:
            result = await self._waiting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request's own task is cancelled (shutdown)
            return  # the client left (on_connection_close): nobody to answer
        except ConnectionError as exc:
            raise HTTPError(503, "pub/sub: %s", exc, reason="Live updates unavailable") from None
        self.set_header("Cache-Control", "no-store")
        self.write(
            {
                "publications": [
                    {"data": pub.data, "position": position_text(pub.position)}
                    for pub in result.publications
                ],
                "position": position_text(result.position),
                "recovered": result.recovered,
                "heartbeat": self.poll_timeout,
            }
        )

    def on_connection_close(self) -> None:
        """The client left: the poll stops waiting."""
        super().on_connection_close()
        if self._waiting is not None:
            self._waiting.cancel()
