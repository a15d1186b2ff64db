"""`ChannelWebSocket`: pub/sub channels over a WebSocket, resumed from a position.

The protocol: JSON objects in text messages, one per message.

From the client:

* ``{"subscribe": CHANNEL, "since": POSITION}``: the publications after
  POSITION (a string written by the server, ``"<offset>-<epoch>"``), then
  the live ones. ``since`` is null or absent on a first visit.
* ``{"unsubscribe": CHANNEL}``.

From the server:

* ``{"type": "subscribed", "channel": C, "position": P, "recovered": R,
  "missed": N, "heartbeat": H}``: the subscription is in place, starting
  after P; R is true when every publication after ``since`` follows (N of
  them, from history), false when some cannot be recovered, null without
  ``since``; H is the seconds between two ``ping`` messages (null: none
  are sent).
* ``{"type": "publication", "channel": C, "data": D, "position": P}``: keep P
  as the channel's position, to send as ``since`` when reconnecting.
* ``{"type": "reset", "channel": C, "position": P}``: publications were lost
  (history no longer has them, or the broker lost the channel): reload the
  state, keep P, apply what follows.
* ``{"type": "ping"}``: every ``heartbeat_interval`` seconds while the
  socket has a subscription, so that a client that hears nothing for longer
  (plus a grace) knows the connection is dead and resumes on a new one.
  With it goes a WebSocket ping, which browsers answer by themselves: a
  connection that answered none of two is closed, so that the server does
  not keep a dead reader's subscriptions (and presence).
* ``{"type": "error", "channel": C or null, "message": M, "code": N,
  "temporary": T}``: a request refused (M says why); the socket stays open.
  T true (N 503: the broker is away or did not confirm in time; N 500: the
  subscription failed): subscribe again after a backoff. T false (N 400: a
  malformed request or channel name; 403: not allowed; 409: already, or
  not, subscribed; 429: too many channels): it would fail again, so tell
  the application and stop.
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

__all__ = ["ChannelWebSocket", "ERROR_CODES"]

#: The ``code`` of an ``error`` message, and whether subscribing again may
#: succeed (``temporary``): the client retries those with a backoff.
ERROR_CODES: dict[int, bool] = {
    400: False,
    403: False,
    409: False,
    429: False,
    500: True,
    # The server's engine cannot resume (core NATS): no retry helps.
    501: False,
    503: True,
}


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
    #: Seconds between two ``ping`` messages while a subscription is open
    #: (None: none). The browser client resumes on a new connection when it
    #: hears nothing for this long plus its grace.
    heartbeat_interval: ClassVar[Optional[float]] = 25.0

    _pumps: Optional[dict[str, asyncio.Task[None]]] = None
    _heartbeat: Optional[asyncio.TimerHandle] = None
    _unanswered = 0  # WebSocket pings sent since the last pong

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
            self._error(None, "a message must be a JSON object", 400)
            return
        if not isinstance(request, dict):
            self._error(None, "a message must be a JSON object", 400)
            return
        if "subscribe" in request:
            self._subscribe(request)
        elif "unsubscribe" in request:
            channel = request["unsubscribe"]
            pump = (self._pumps or {}).pop(channel, None) if isinstance(channel, str) else None
            if pump is None:
                self._error(None, f"not subscribed to {channel!r}", 409)
            else:
                pump.cancel()
        else:
            self._error(None, 'a message has "subscribe" or "unsubscribe"', 400)

    def _subscribe(self, request: dict[str, Any]) -> None:
        channel = request["subscribe"]
        if not isinstance(channel, str) or not channel:
            self._error(None, '"subscribe" must be a channel name (a non-empty string)', 400)
            return
        try:
            check_channel(channel)
        except ValueError as exc:
            self._error(channel[:64], str(exc), 400)
            return
        try:
            require_positions(self.pubsub)
        except TypeError as exc:
            self._error(channel, str(exc), 501)
            return
        since_text = request.get("since")
        if since_text is not None and not isinstance(since_text, str):
            self._error(channel, '"since" must be a position string or null', 400)
            return
        try:
            since = parse_position(since_text, "since")
        except ValueError as exc:
            self._error(channel, str(exc), 400)
            return
        pumps = self._pumps
        if pumps is None:
            pumps = self._pumps = {}
        if channel in pumps:
            self._error(channel, f"already subscribed to {channel!r}", 409)
            return
        if len(pumps) >= self.max_channels:
            self._error(channel, f"at most {self.max_channels} channels per connection", 429)
            return
        if not self.may_subscribe(channel):
            self._error(channel, f"not allowed to subscribe to {channel!r}", 403)
            return
        if self._heartbeat is None:
            self._beat()
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
            self._error(channel, "the subscription failed; subscribe again", 500)

    async def _pump(self, channel: str, since: Any) -> None:
        try:
            stream = await resume(self.pubsub, channel, since, max_pending=self.max_pending)
        except ConnectionError as exc:
            # The broker is away, or did not confirm in time: temporary.
            self._error(channel, f"live updates unavailable: {exc}", 503)
            return
        self.on_subscribe(channel)
        try:
            await self._send(
                {
                    "type": "subscribed",
                    "channel": channel,
                    "position": position_text(stream.position),
                    "recovered": stream.recovered,
                    "missed": stream.missed,
                    "heartbeat": self.heartbeat_interval or None,
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

    def _error(self, channel: Optional[str], text: str, code: int) -> None:
        message = {
            "type": "error",
            "channel": channel,
            "message": text,
            "code": code,
            "temporary": ERROR_CODES[code],
        }
        try:
            self.write_message(json.dumps(message))
        except WebSocketClosedError:
            pass

    def _beat(self) -> None:
        """Schedules the next ``ping`` (from the first subscription on, until the close)."""
        interval = self.heartbeat_interval
        if interval:
            loop = asyncio.get_running_loop()
            self._heartbeat = loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self._heartbeat = None
        if self._unanswered >= 2:
            # Two pings and no pong: nobody is reading at the other end.
            self.close(1001, "no answer to two pings")
            return
        try:
            self.write_message('{"type": "ping"}')
            self.ping()
        except WebSocketClosedError:
            return
        self._unanswered += 1
        self._beat()

    def on_pong(self, data: bytes) -> None:
        """A pong: the client reads (override, calling this one, to see pongs)."""
        self._unanswered = 0

    def on_close(self) -> None:
        heartbeat = self._heartbeat
        if heartbeat is not None:
            heartbeat.cancel()
            self._heartbeat = None
        pumps = self._pumps
        if pumps:
            for pump in list(pumps.values()):
                pump.cancel()
            pumps.clear()
