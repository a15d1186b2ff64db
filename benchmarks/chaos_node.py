"""One node of the chaos checker's world (`benchmarks/chaos.py`): a squall app
on a pub/sub engine, started, paused and killed by the checker.

It serves, on 127.0.0.1:PORT:

* ``/ws`` (`ChannelWebSocket`, every channel allowed), ``/sse/CHANNEL``
  (`ChannelEventSource`), ``/poll/CHANNEL`` (`ChannelPollHandler`): the
  external readers' endpoints, with short heartbeats so that a client
  finds a paused node dead within seconds;
* ``POST /publish`` (``{"channel": C, "text": T}``): ``publish`` and its
  position, also written to stdout as an ``ack`` line once publish()
  returned (acknowledged even if the HTTP answer is then lost);
* ``/relay/CHANNEL``: a WebSocket that `PubSub.relay` sends the channel's
  messages to (``--relay`` names the channels);
* ``POST /slow`` (``{"reader": R, "seconds": S}``): an in-node reader
  reads slowly for S seconds;
* ``GET /health``.

Its in-node readers (``--readers``, a JSON list of ``{"id", "kind",
"channel", "since"}``) read from inside the process: ``sub`` (a plain
`PubSub.subscribe`, with ``since`` after a restart), ``resume``
(`squall.resume.resume`) and ``slow`` (``resume`` with a small
``max_pending``, made to lag by ``/slow``). Every item a reader gets goes
to stdout as a JSON line, in order, flushed at once, so what a SIGKILLed
node's readers had is kept by the checker:

* ``{"ev": "sub", "r": R, "recovered": X, "pos": P}``: subscribed;
* ``{"ev": "item", "r": R, "t": TEXT, "p": POSITION or null}``;
* ``{"ev": "reset", "r": R, "why": ..., "pos": P}``: a reset signal (a
  `Reset` item, ``recovered`` False, an epoch change or a grown
  ``status.missed`` / ``dropped`` seen by a plain subscription).

The first line is ``{"ev": "ready", "port": PORT}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any, ClassVar, Optional

import squall.pubsub
import squall.web
from squall.pubsub import Position, PublishUncertainError, PubSub
from squall.resume import (
    ChannelEventSource,
    ChannelPollHandler,
    ChannelWebSocket,
    Reset,
    resume,
)
from squall.websocket import WebSocketHandler

#: Bound of every reader loop (items, retries): a run is seconds long.
MAX_STEPS = 1_000_000


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Live(ChannelWebSocket):
    heartbeat_interval = 1.0

    def may_subscribe(self, channel: str) -> bool:
        return True


class Events(ChannelEventSource):
    heartbeat_interval = 1.0

    def channel(self, name: str) -> str:  # type: ignore[override]
        return name


class Updates(ChannelPollHandler):
    poll_timeout = 2.0

    def channel(self, name: str) -> str:  # type: ignore[override]
        return name


class Relayed(WebSocketHandler):
    """``/relay/CHANNEL``: the channel's messages as `PubSub.relay` sends them
    (text only, no position, no resumption)."""

    sockets: ClassVar[dict[str, set[WebSocketHandler]]] = {}

    def open(self, channel: str) -> None:  # type: ignore[override]
        self.channel_name = channel
        self.sockets.setdefault(channel, set()).add(self)

    def on_close(self) -> None:
        self.sockets.get(getattr(self, "channel_name", ""), set()).discard(self)


class Publish(squall.web.RequestHandler):
    async def post(self) -> None:
        body = json.loads(self.request.body)
        pubsub: PubSub = self.settings["pubsub"]
        try:
            position = await pubsub.publish(body["channel"], body["text"])
        except PublishUncertainError as exc:
            # Not acknowledged: the publisher was told it may have been applied.
            emit(ev="uncertain", t=body["text"])
            raise squall.web.HTTPError(503, str(exc)) from exc
        emit(ev="ack", t=body["text"], p=str(position))
        self.write({"position": str(position)})


class Slow(squall.web.RequestHandler):
    async def post(self) -> None:
        body = json.loads(self.request.body)
        loop = asyncio.get_running_loop()
        self.settings["slow_until"][body["reader"]] = loop.time() + float(body["seconds"])
        self.write({"ok": True})


class Health(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("ok")


def watch_parent(parent: int) -> None:
    """Exits once the checker that started this node is gone (killed before
    it could stop its processes): no node outlives its run."""
    if os.getppid() != parent:
        os._exit(0)
    asyncio.get_running_loop().call_later(1.0, watch_parent, parent)


def _pos(position: Optional[Position]) -> Optional[str]:
    return str(position) if position is not None and position.epoch else None


async def plain_reader(pubsub: PubSub, spec: dict[str, Any]) -> None:
    """A `PubSub.subscribe` reader: a new epoch, a grown ``status.missed`` or
    a drop is what it can know of a loss, and it says so."""
    rid, channel = spec["id"], spec["channel"]
    since = Position.parse(spec["since"]) if spec.get("since") else None
    for attempt in range(MAX_STEPS):
        try:
            sub = await pubsub.subscribe(channel, 100_000, since=since)
            break
        except ConnectionError:
            await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))  # backoff, the broker is away
    else:  # pragma: no cover
        return
    emit(ev="sub", r=rid, recovered=sub.recovered, pos=_pos(sub.position))
    if sub.recovered is False:
        emit(ev="reset", r=rid, why="recovered False", pos=_pos(sub.position))
    last = sub.position if sub.position is not None and sub.position.epoch else since
    missed = pubsub.status.missed
    dropped = 0
    for _ in range(MAX_STEPS):
        pub = await sub.get_publication()
        if pubsub.status.missed != missed or sub.dropped != dropped:
            emit(ev="reset", r=rid, why="missed", pos=_pos(pub.position))
            missed, dropped = pubsub.status.missed, sub.dropped
        pos = pub.position
        if pos.epoch:
            if last is not None and last.epoch and pos.epoch != last.epoch:
                emit(ev="reset", r=rid, why="epoch", pos=_pos(pos))
            last = pos
        emit(ev="item", r=rid, t=pub.data, p=_pos(pos))


async def resumed_reader(pubsub: PubSub, spec: dict[str, Any], slow: dict[str, float]) -> None:
    """A `squall.resume.resume` reader (``slow``: max_pending 3, lagging on demand)."""
    rid, channel = spec["id"], spec["channel"]
    since = Position.parse(spec["since"]) if spec.get("since") else None
    max_pending = 3 if spec["kind"] == "slow" else None
    loop = asyncio.get_running_loop()
    for attempt in range(MAX_STEPS):
        try:
            stream = await resume(pubsub, channel, since, max_pending=max_pending)
        except ConnectionError:
            await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))  # backoff, the broker is away
            continue
        emit(ev="sub", r=rid, recovered=stream.recovered, pos=_pos(stream.position))
        try:
            for _ in range(MAX_STEPS):
                item = await stream.next()
                if isinstance(item, Reset):
                    emit(ev="reset", r=rid, why="Reset", pos=_pos(item.position))
                    since = item.position
                    continue
                if item.position.epoch:
                    since = item.position
                emit(ev="item", r=rid, t=item.data, p=_pos(item.position))
                if slow.get(rid, 0.0) > loop.time():
                    await asyncio.sleep(0.05)  # the fault: a reader that lags
        except ConnectionError:
            stream.close()  # a refill found the broker away: resumed from `since`


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--history-size", type=int, default=1000)
    parser.add_argument("--readers", default="[]")
    parser.add_argument("--relay", default="", help="channels relayed to /relay/CHANNEL")
    args = parser.parse_args()
    options: dict[str, Any] = {"history_size": args.history_size, "history_ttl": 600}
    if args.url.startswith("redis"):
        options.update(
            reconnect_delay=0.02,
            max_reconnect_delay=0.5,
            health_interval=0.5,
            command_timeout=1.0,
            subscribe_timeout=5.0,
        )
    pubsub = squall.pubsub.connect(args.url, **options)
    slow: dict[str, float] = {}
    app = squall.web.Application(
        [
            (r"/ws", Live),
            (r"/sse/(\w+)", Events),
            (r"/poll/(\w+)", Updates),
            (r"/relay/(\w+)", Relayed),
            (r"/publish", Publish),
            (r"/slow", Slow),
            (r"/health", Health),
        ],
        pubsub=pubsub,
        slow_until=slow,
    )
    app.listen(args.port, address="127.0.0.1")
    emit(ev="ready", port=args.port)
    watch_parent(os.getppid())
    for channel in filter(None, args.relay.split(",")):
        for attempt in range(MAX_STEPS):
            try:
                await pubsub.relay(channel, Relayed.sockets.setdefault(channel, set()))
                break
            except ConnectionError:
                await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))  # backoff, the broker is away
    emit(ev="relaying")
    tasks = [asyncio.ensure_future(reader(pubsub, spec, slow)) for spec in json.loads(args.readers)]
    await asyncio.gather(*tasks)
    await asyncio.Event().wait()  # until killed by the checker


async def reader(pubsub: PubSub, spec: dict[str, Any], slow: dict[str, float]) -> None:
    """One in-node reader; what ends it is said on stdout (the checker prints it)."""
    try:
        if spec["kind"] == "sub":
            await plain_reader(pubsub, spec)
        else:
            await resumed_reader(pubsub, spec, slow)
    except Exception as exc:
        emit(ev="error", r=spec["id"], error=f"{type(exc).__name__}: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
