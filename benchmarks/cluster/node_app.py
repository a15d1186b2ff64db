"""One Squall node of ``make bench-cluster``: ``squall run node_app:make_app --factory``.

``GET /ws?ch=N`` opens a WebSocket that receives every message published on
channel ``bench.N`` (through ``squall.pubsub`` at ``$BENCH_PUBSUB``): the
sockets of one channel share one `squall.pubsub.PubSub.relay`, started by the
channel's first socket and closed with its last, the pattern the docs give.

With ``$BENCH_RESUME=1`` (the fault table) each message goes out as
``"<position> <message>"`` and a client that reconnects with
``&since=<position>`` first gets, from the channel's history, what it
missed (`Resuming`); one that cannot be given everything gets
``"reset <position>"`` and the stream from there.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

import squall.pubsub
from squall.pubsub import HistoryResult, Position, Publication
from squall.web import Application
from squall.websocket import WebSocketHandler, broadcast


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


class Resuming:
    """One channel's sockets fed by one subscription, each message with its position.

    A socket that comes back with the position it last saw is sent the
    publications after it from history before it joins the others. While
    history is read, live publications are kept for it (``catching``) and
    merged by offset; history may run ahead of the subscription, so the
    socket then waits (``waiting``) until the live stream passes what it
    was sent. It gets each publication once and in order.

    Reconnections come in storms (a node died): the sockets waiting for
    history share one read per channel at a time, from the oldest of their
    positions, started after each of them began catching.
    """

    def __init__(self, pubsub: squall.pubsub.PubSub, channel: str) -> None:
        self.pubsub = pubsub
        self.channel = channel
        self.sockets: set[Any] = set()
        self.catching: dict[Any, list[Publication]] = {}
        self.waiting: dict[Any, Position] = {}
        self.top: Optional[Position] = None  # the last publication relayed
        self.sub: Optional[squall.pubsub.Subscription] = None
        self.task: Optional[asyncio.Task[None]] = None
        self.queue: list[tuple[Position, asyncio.Future[HistoryResult]]] = []
        self.reader: Optional[asyncio.Task[None]] = None

    async def start(self) -> None:
        self.sub = await self.pubsub.subscribe(self.channel, max_pending=100_000)
        self.task = asyncio.ensure_future(self._pump(self.sub))

    async def _pump(self, sub: squall.pubsub.Subscription) -> None:
        async for pub in sub.publications():
            text = f"{pub.position} {pub.data}"
            broadcast(self.sockets, text, max_skips=100)
            for held in self.catching.values():
                held.append(pub)
            at = pub.position
            for socket, sent in list(self.waiting.items()):
                if at.epoch != sent.epoch or at.offset > sent.offset:
                    del self.waiting[socket]
                    socket.write_message(text)
                    self.sockets.add(socket)
            self.top = at

    async def add(self, socket: Any, since: Optional[Position]) -> None:
        if since is None:
            self.sockets.add(socket)
            return
        self.catching[socket] = []
        try:
            result = await self._history(since)
        finally:
            held = self.catching.pop(socket, None)
        if held is None:
            return  # closed meanwhile
        last = since
        if not result.recovered:
            last = result.position
            socket.write_message(f"reset {last}")
        for pub in result.publications + held:
            at = pub.position
            if at.epoch == last.epoch and at.offset <= last.offset:
                continue  # in history and held both, or before the reset
            socket.write_message(f"{at} {pub.data}")
            last = at
        top = self.top
        if top is None or (top.epoch == last.epoch and top.offset < last.offset):
            self.waiting[socket] = last  # sent more than relayed yet
        else:
            self.sockets.add(socket)  # no await since the read: nothing falls between

    async def _history(self, since: Position) -> HistoryResult:
        future: asyncio.Future[HistoryResult] = asyncio.get_running_loop().create_future()
        self.queue.append((since, future))
        if self.reader is None or self.reader.done():
            self.reader = asyncio.ensure_future(self._read_queued())
        return await future

    async def _read_queued(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            epochs = {since.epoch for since, _ in batch}
            for epoch in epochs:
                mine = [(s, f) for s, f in batch if s.epoch == epoch]
                oldest = min(mine, key=lambda item: item[0].offset)[0]
                try:
                    result = await self.pubsub.history(self.channel, since=oldest)
                except Exception as exc:
                    for _, future in mine:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for since, future in mine:
                    if future.done():
                        continue
                    ahead = since.offset > result.position.offset  # from the future
                    if (result.recovered and not ahead) or since == oldest:
                        after = [p for p in result.publications if p.position.offset > since.offset]
                        future.set_result(HistoryResult(after, result.position, result.recovered))
                    else:
                        # Too far back for the oldest: perhaps not for this one.
                        self.queue.append((since, future))

    def discard(self, socket: Any) -> None:
        self.sockets.discard(socket)
        self.catching.pop(socket, None)
        self.waiting.pop(socket, None)

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()


class ResumingRooms(Rooms):
    """`Rooms` whose channels are `Resuming` ones."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.rooms: dict[str, asyncio.Future[Resuming]] = {}

    async def join(self, channel: str, socket: Any, since: Optional[Position] = None) -> None:
        if self.ready is None:
            self.ready = asyncio.ensure_future(self._connect())
        await asyncio.shield(self.ready)
        assert self.pubsub is not None
        room = self.rooms.get(channel)
        if room is None:
            room = self.rooms[channel] = asyncio.ensure_future(self._start(channel))
        await (await asyncio.shield(room)).add(socket, since)

    async def _start(self, channel: str) -> Resuming:
        assert self.pubsub is not None
        room = Resuming(self.pubsub, channel)
        await room.start()
        return room

    def leave(self, channel: str, socket: Any) -> None:
        room = self.rooms.get(channel)
        if room is not None and room.done() and not room.exception():
            room.result().discard(socket)


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
        since_text = self.get_argument("since", "")
        try:
            since = Position.parse(since_text) if since_text else None
        except ValueError as exc:
            self.close(1008, str(exc)[:100])
            return
        try:
            if isinstance(self.rooms, ResumingRooms):
                await self.rooms.join(self.channel, self, since)
            else:
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
    url = os.environ.get("BENCH_PUBSUB", "memory://")
    rooms = ResumingRooms(url) if os.environ.get("BENCH_RESUME") == "1" else Rooms(url)
    return Application([("/ws", Subscriber, {"rooms": rooms})])
