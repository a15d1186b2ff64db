"""`ChannelEventSource`: a pub/sub channel as Server-Sent Events that resume."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Optional

from squall.pubsub import Position, Publication, PubSub, check_channel
from squall.resume._core import ResumedSubscription, parse_position, position_text, resume
from squall.web import EventSourceHandler, HTTPError

__all__ = ["ChannelEventSource"]


class ChannelEventSource(EventSourceHandler):
    """Streams one channel's publications as events whose ``id`` is their position.

    A browser's ``EventSource`` sends the last id back as ``Last-Event-ID``
    when it reconnects, so a reader that lost its connection gets every
    publication it missed, in order, once, then the live ones. When they
    cannot be recovered (history no longer holds them, the broker lost the
    channel, the id is from the future), it gets a ``reset_event`` event
    instead, whose data and id are the position the stream goes on from:
    the page reloads its state, then applies what follows.

    Override `channel` (and `open_stream` to check who may read it). The
    `~squall.pubsub.PubSub` is the application's ``pubsub`` setting, or
    override `pubsub`. A first connection may give its start as the
    ``since`` query argument (a position the page was rendered at);
    ``Last-Event-ID`` wins over it. Without either, the stream starts at the
    channel's current position. The first event (``subscribed_event``) says
    where the stream starts, whether it recovered, and the heartbeat: a
    ``heartbeat_event`` every ``heartbeat_interval`` seconds, which a
    client that hears nothing for longer (plus a grace) takes for a dead
    connection (a comment would not do: ``EventSource`` hides comments).
    A publication without a position (published to the broker by another
    program) is sent without an ``id``, so ``Last-Event-ID`` keeps the last
    position.

    Example::

        class Room(ChannelEventSource):
            def channel(self, room: str) -> str:
                return f"chat:{room}"

        app = Application([(r"/rooms/(\\w+)/events", Room)], pubsub=connect("memory://"))
    """

    #: The events' type (None: ``message``, what ``EventSource.onmessage`` gets).
    event_name: ClassVar[Optional[str]] = None
    #: The type of the event saying publications were lost.
    reset_event: ClassVar[str] = "reset"
    #: The type of the first event: ``{"position": P, "recovered": R}``, with P
    #: as its id (so a client has a position to come back with before any
    #: publication). EventSource drops events nobody listens for; None sends none.
    subscribed_event: ClassVar[Optional[str]] = "subscribed"
    #: The subscription's ``max_pending`` (None: the `PubSub`'s).
    max_pending: ClassVar[Optional[int]] = None
    #: Seconds between two ``heartbeat_event`` events (None: none).
    heartbeat_interval: ClassVar[Optional[float]] = 25.0
    #: The type of the heartbeat event (its data is ``{}``).
    heartbeat_event: ClassVar[str] = "ping"
    #: The heartbeat keeps proxies from closing a quiet stream: no comment pings.
    ping_interval: ClassVar[Optional[float]] = None

    _stream: Optional[ResumedSubscription] = None

    @property
    def pubsub(self) -> PubSub:
        """The `~squall.pubsub.PubSub` read (default: the ``pubsub`` setting)."""
        pubsub: PubSub = self.settings["pubsub"]
        return pubsub

    def channel(self, *args: Any, **kwargs: Any) -> str:
        """The channel to stream, from the URL's path arguments (override)."""
        raise NotImplementedError("override ChannelEventSource.channel")

    @property
    def since(self) -> Optional[Position]:
        """The position the client resumes from (``Last-Event-ID``, else the ``since`` argument).

        Raises:
            HTTPError: 400, saying why the value is not a position.
        """
        try:
            header = self.last_event_id
            if header:
                return parse_position(header, "Last-Event-ID")
            return parse_position(self.get_query_argument("since", None), "since")
        except ValueError as exc:
            raise HTTPError(400, "%s", exc, reason="Bad position") from None

    async def open_stream(self, *args: Any, **kwargs: Any) -> None:
        since = self.since
        channel = self.channel(*args, **kwargs)
        try:
            check_channel(channel)
        except ValueError as exc:
            raise HTTPError(400, "%s", exc, reason="Bad channel") from None
        try:
            self._stream = await resume(self.pubsub, channel, since, max_pending=self.max_pending)
        except ConnectionError as exc:
            # Before the headers: EventSource reconnects after a 503 only
            # through our client's backoff, which is what a dead broker wants.
            raise HTTPError(503, "pub/sub: %s", exc, reason="Live updates unavailable") from None

    async def stream(self, *args: Any, **kwargs: Any) -> None:
        stream = self._stream
        assert stream is not None
        heartbeat = asyncio.ensure_future(self._heartbeat()) if self.heartbeat_interval else None
        try:
            position = position_text(stream.position)
            if self.subscribed_event and position is not None:
                info = json.dumps(
                    {
                        "position": position,
                        "recovered": stream.recovered,
                        "missed": stream.missed,
                        "heartbeat": self.heartbeat_interval or None,
                    }
                )
                await self.send_event(info, event=self.subscribed_event, id=position)
            async for item in stream:
                if isinstance(item, Publication):
                    await self.send_publication(item)
                else:
                    position = str(item.position)
                    await self.send_event(position, event=self.reset_event, id=position)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            stream.close()

    async def _heartbeat(self) -> None:
        interval = self.heartbeat_interval
        assert interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.send_event("{}", event=self.heartbeat_event)
            except OSError:
                return  # the client left: the stream ends

    async def send_publication(self, publication: Publication) -> None:
        """Sends one publication (override to change its event, say per message)."""
        await self.send_event(
            publication.data, event=self.event_name, id=position_text(publication.position)
        )

    def on_finish(self) -> None:
        if self._stream is not None:
            self._stream.close()
