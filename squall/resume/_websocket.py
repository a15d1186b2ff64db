"""`ChannelWebSocket`: pub/sub channels over a WebSocket, resumed from a position.

The protocol: JSON objects in text messages, one per message.

From the client:

* ``{"subscribe": CHANNEL, "since": POSITION}``: the publications after
  POSITION (a string written by the server, ``"<offset>-<epoch>"``), then
  the live ones. ``since`` is null or absent on a first visit.
* ``{"unsubscribe": CHANNEL}``.

From the server:

* ``{"type": "subscribed", "channel": C, "position": P, "recovered": R}``:
  the subscription is in place, starting after P; R is true when every
  publication after ``since`` follows, false when some cannot be
  recovered, null without ``since``.
* ``{"type": "publication", "channel": C, "data": D, "position": P}``: keep P
  as the channel's position, to send as ``since`` when reconnecting.
* ``{"type": "reset", "channel": C, "position": P}``: publications were lost
  (history no longer has them, or the broker lost the channel): reload the
  state, keep P, apply what follows.
* ``{"type": "error", "channel": C or null, "message": M}``: a subscription
  refused (M says why); the socket stays open.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar, Optional

from squall.log import app_log
from squall.pubsub import Publication, PubSub, check_channel
from squall.resume._core import (
    ResumedSubscription,
    parse_position,
    position_text,
    require_positions,
    resume,
)
from squall.websocket import WebSocketClosedError, WebSocketHandler

__all__ = ["ChannelWebSocket"]


class ChannelWebSocket(WebSocketHandler):
    """A WebSocket on which the client subscribes to channels, resuming from its positions.

    Speaks the protocol of this module's docstring (the browser client
    ``squall-resume.js`` speaks it too). Override `may_subscribe` to say
    which channels a connection may read: by default none is allowed. The
    `~squall.pubsub.PubSub` is the application's ``pubsub`` setting, or
    override `pubsub`.
    """

    #: Channels one connection may follow at once.
    max_channels: ClassVar[int] = 16
    #: Each subscription's ``max_pending`` (None: the `PubSub`'s).
    max_pending: ClassVar[Optional[int]] = None

    _pumps: Optional[dict[str, asyncio.Task[None]]] = None

    @property
    def pubsub(self) -> PubSub:
        """The `~squall.pubsub.PubSub` read (default: the ``pubsub`` setting)."""
        pubsub: PubSub = self.settings["pubsub"]
        return pubsub

    def may_subscribe(self, channel: str) -> bool:
        """Whether this connection may read ``channel`` (override; default False)."""
        return False

    def on_subscribe(self, channel: str) -> None:
        """Called once a subscription to ``channel`` is in place (override)."""

    def on_unsubscribe(self, channel: str) -> None:
        """Called when a subscription that was in place ends, whatever ended it (override)."""

    def on_message(self, message: str | bytes) -> None:
        try:
            request = json.loads(message)
        except ValueError:
            self._error(None, "a message must be a JSON object")
            return
        if not isinstance(request, dict):
            self._error(None, "a message must be a JSON object")
            return
        if "subscribe" in request:
            self._subscribe(request)
        elif "unsubscribe" in request:
            channel = request["unsubscribe"]
            pump = (self._pumps or {}).pop(channel, None) if isinstance(channel, str) else None
            if pump is None:
                self._error(None, f"not subscribed to {channel!r}")
            else:
                pump.cancel()
        else:
            self._error(None, 'a message has "subscribe" or "unsubscribe"')

    def _subscribe(self, request: dict[str, Any]) -> None:
        channel = request["subscribe"]
        if not isinstance(channel, str) or not channel:
            self._error(None, '"subscribe" must be a channel name (a non-empty string)')
            return
        try:
            check_channel(channel)
            require_positions(self.pubsub)
        except (TypeError, ValueError) as exc:
            self._error(channel[:64], str(exc))
            return
        since_text = request.get("since")
        if since_text is not None and not isinstance(since_text, str):
            self._error(channel, '"since" must be a position string or null')
            return
        try:
            since = parse_position(since_text, "since")
        except ValueError as exc:
            self._error(channel, str(exc))
            return
        pumps = self._pumps
        if pumps is None:
            pumps = self._pumps = {}
        if channel in pumps:
            self._error(channel, f"already subscribed to {channel!r}")
            return
        if len(pumps) >= self.max_channels:
            self._error(channel, f"at most {self.max_channels} channels per connection")
            return
        if not self.may_subscribe(channel):
            self._error(channel, f"not allowed to subscribe to {channel!r}")
            return
        pump = asyncio.ensure_future(self._pump(channel, since))
        pumps[channel] = pump
        pump.add_done_callback(lambda done: self._pump_done(channel, done))

    def _pump_done(self, channel: str, pump: asyncio.Task[None]) -> None:
        pumps = self._pumps
        if pumps is not None and pumps.get(channel) is pump:
            del pumps[channel]
        exc = None if pump.cancelled() else pump.exception()
        if exc is not None:
            app_log.error("%s: forwarding %r failed", type(self).__name__, channel, exc_info=exc)
            self._error(channel, "the subscription failed; subscribe again")

    async def _pump(self, channel: str, since: Any) -> None:
        try:
            stream = await resume(self.pubsub, channel, since, max_pending=self.max_pending)
        except ConnectionError as exc:
            self._error(channel, f"live updates unavailable: {exc}")
            return
        self.on_subscribe(channel)
        try:
            await self._send(
                {
                    "type": "subscribed",
                    "channel": channel,
                    "position": position_text(stream.position),
                    "recovered": stream.recovered,
                }
            )
            await self._forward(stream)
        except WebSocketClosedError:
            pass
        finally:
            stream.close()
            self.on_unsubscribe(channel)

    async def _forward(self, stream: ResumedSubscription) -> None:
        channel = stream.channel
        async for item in stream:
            if isinstance(item, Publication):
                message = {
                    "type": "publication",
                    "channel": channel,
                    "data": item.data,
                    "position": position_text(item.position),
                }
            else:
                message = {"type": "reset", "channel": channel, "position": str(item.position)}
            await self._send(message)

    async def _send(self, message: dict[str, Any]) -> None:
        # Waiting on each write: a reader that falls behind makes its
        # subscription drop, and the gap is refilled from history.
        await self.write_message(json.dumps(message))

    def _error(self, channel: Optional[str], text: str) -> None:
        try:
            self.write_message(json.dumps({"type": "error", "channel": channel, "message": text}))
        except WebSocketClosedError:
            pass

    def on_close(self) -> None:
        pumps = self._pumps
        if pumps:
            for pump in list(pumps.values()):
                pump.cancel()
            pumps.clear()
