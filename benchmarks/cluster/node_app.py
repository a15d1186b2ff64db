"""One Squall node of ``make bench-cluster``: ``squall run node_app:make_app --factory``.

``GET /ws?ch=N`` opens a WebSocket that receives every message published on
channel ``bench.N`` (through ``squall.pubsub`` at ``$BENCH_PUBSUB``): the
sockets of one channel share one `squall.pubsub.PubSub.relay`, started by the
channel's first socket and closed with its last, the pattern the docs give.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

import squall.pubsub
from squall.web import Application
from squall.websocket import WebSocketHandler


class Rooms:
    """The sockets of each channel in this process and the relay feeding each set."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pubsub: Optional[squall.pubsub.PubSub] = None
        self.sockets: dict[str, set[Any]] = {}
        self.relays: dict[str, asyncio.Future[squall.pubsub.Relay]] = {}
        self.ready: Optional[asyncio.Future[None]] = None

    async def _connect(self) -> None:
        self.pubsub = squall.pubsub.connect(self.url)
        # RedisPubSub loses the first subscriptions of channels added while
        # its subscriber connection is being made (they wait out the 10 s
        # subscribe timeout): connected first, then the relays.
        wait = getattr(self.pubsub, "wait_connected", None)
        if wait is not None:
            await wait(10.0)

    async def join(self, channel: str, socket: Any) -> None:
        if self.ready is None:
            self.ready = asyncio.ensure_future(self._connect())
        await asyncio.shield(self.ready)
        assert self.pubsub is not None
        sockets = self.sockets.setdefault(channel, set())
        sockets.add(socket)
        relay = self.relays.get(channel)
        if relay is None:
            relay = self.relays[channel] = asyncio.ensure_future(
                self.pubsub.relay(channel, sockets, max_skips=100)
            )
        await asyncio.shield(relay)

    def leave(self, channel: str, socket: Any) -> None:
        sockets = self.sockets.get(channel)
        if sockets is None:
            return
        sockets.discard(socket)
        if not sockets:
            del self.sockets[channel]
            relay = self.relays.pop(channel)
            relay.add_done_callback(
                lambda done: done.cancelled() or done.exception() or done.result().close()
            )


class Subscriber(WebSocketHandler):
    channel = ""

    def initialize(self, rooms: Rooms) -> None:
        self.rooms = rooms

    def check_origin(self, origin: str) -> bool:
        return True

    async def open(self) -> None:
        ch = self.get_argument("ch", "0")
        if not ch.isdigit() or len(ch) > 6:
            self.close(1008, "ch must be a channel number")
            return
        self.channel = f"bench.{ch}"
        try:
            await self.rooms.join(self.channel, self)
        except Exception:
            # Not subscribed: the client must know (it reconnects), rather
            # than hold a socket that will never get a message.
            self.close(1011, "not subscribed")
            raise

    def on_close(self) -> None:
        if self.channel:
            self.rooms.leave(self.channel, self)


def make_app() -> Application:
    """The node's application; ``$BENCH_PUBSUB`` names the broker."""
    rooms = Rooms(os.environ.get("BENCH_PUBSUB", "memory://"))
    return Application([("/ws", Subscriber, {"rooms": rooms})])
