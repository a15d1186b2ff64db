"""A seeded, replayable history checker for squall.pubsub's delivery promise:
every acknowledged publication is delivered to every reader once, in order,
or counted missed (a ``Reset``, ``recovered`` False, ``status.missed``).

    python benchmarks/chaos.py --seeds 0-3 --engine redis-replica [--duration N] [--json out]

The world (one per seed and engine):

* ``redis-replica``: a Redis primary and a replica. The nodes reach the
  primary through a stable address, an asyncio TCP forwarder in this
  process that a failover retargets to the promoted replica; the replica
  replicates through a second forwarder that can refuse, so a lossy
  failover is deterministic (replication refused, publications
  acknowledged by the primary and delivered live, the primary SIGKILLed,
  ``REPLICAOF NO ONE`` on the replica, the stable address retargeted; a
  fresh replica is then started behind the replication forwarder).
* ``redis-cluster``: 3 primaries and 3 replicas; a lossy failover stops the
  channel's replica and cuts its link, then kills the primary.
* ``memory``: one node (``memory://`` is one process).

Two node processes (``benchmarks/chaos_node.py``, one for memory) serve the
readers' endpoints and publish for the publishers; each has in-node readers
(a plain `Subscription`, a `squall.resume.resume` stream, a slow one with
``max_pending`` 3; and on one node, the "lone" channel's: a channel read
on that node only, which a quiet lossy failover aims at). This process
runs the publishers (one publish at a time each, unique texts
``P<publisher>.<n>``; acknowledged once the node's publish() returned a
position) and the external readers: WebSocket (`ChannelWebSocket`, the
``websockets`` library), Server-Sent Events (Last-Event-ID) and long
polling, which reconnect with their last position, each time to a node
drawn from the seed; squall-resume.js under node (``chaos_client.mjs``,
WebSocket and long polling, reconnecting by itself; a cut reloads the
"page" at its last position) when node is installed; and a `PubSub.relay`
WebSocket, judged on duplicates and order only, and per connection: nothing
resumes it, so a connection to another node gets what that node relays
from then on, which can be what the last one relayed already (a node
catching up after a resubscription hands what it missed to the
connections it has by then); such copies are reported, not judged.

Faults, drawn from the seed (``--faults`` narrows them): ``lossy`` (a lossy
failover with a publish whose reply is lost until the kill, and often a
node SIGSTOPped through it; "quiet": only that node's publishers publish
what is lost, the others publish first after it), ``clean`` (writes held, the replica caught up,
then the same), ``kill-primary``, ``stop-primary``, ``stop-node``,
``kill-node`` (restarted; its in-node readers resume from their last
position), ``cut-reader``, ``slow-reader``, ``foreign`` (a plain-text
PUBLISH by another client, then the nodes' broker connections cut so they
resubscribe), ``cut-broker``, ``lost-reply`` (the reply of a publish
dropped and its connection cut: the publisher tries again).

The checker takes, for each reader, each acknowledged publication on its
channel whose publish began after the reader first subscribed, and calls it
delivered (once, in order), counted (missing, and a reset signal came
after it was published and before the reader got a later publication of
the same publisher), duplicated (its text twice), out of order (after a
later one of the same publisher) or silently lost. Each outcome is put
under the fault in effect when it was published (from the fault's start to
TAIL seconds after its end; a copy arriving over 5 s after the publish, or
a reordering: when the wrong copy arrived), "calm" when none. Any duplicate,
reordering or silent loss makes the exit status 1 and names the seed that
replays it: the same seed draws the same schedule of publications,
readers, reconnections and faults.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Optional

import squall

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "pubsub"))
# The test helpers import ``tests`` (its hang guard) from the checkout; put
# last, the checkout's ``squall`` never shadows the installed build.
sys.path.append(str(ROOT))
from _redis_server import REDIS_SERVER, free_ports  # noqa: E402

NODE_SCRIPT = str(Path(__file__).resolve().parent / "chaos_node.py")
ENGINES = ("redis-replica", "memory", "redis-cluster", "redis-sentinel")
FAULTS: dict[str, tuple[str, ...]] = {
    "redis-replica": (
        "lossy",
        "clean",
        "kill-primary",
        "stop-primary",
        "stop-node",
        "kill-node",
        "cut-reader",
        "slow-reader",
        "foreign",
        "cut-broker",
        "lost-reply",
    ),
    "redis-cluster": (
        "lossy",
        "kill-primary",
        "stop-node",
        "kill-node",
        "cut-reader",
        "slow-reader",
    ),
    "memory": ("stop-node", "kill-node", "cut-reader", "slow-reader"),
    "redis-sentinel": (
        "lossy",
        "sentinel-failover",
        "kill-primary",
        "stop-node",
        "kill-node",
        "cut-reader",
        "slow-reader",
    ),
}
OUTCOMES = ("due", "delivered", "counted", "duplicated", "out_of_order", "lost")
#: A publication's text: publisher and number (``F<n>`` for foreign ones).
TEXT = re.compile(r"P(\d+)\.(\d+)")
#: Hang guards (never the property under test).
START_TIMEOUT = 30.0
#: The seconds a Sentinel takes to make a failed-over primary a replica
#: unloaded: its INFO period (10 s) and its wait on a reported role (8 s).
SENTINEL_RECONFIGURES = 20.0
DRAIN_TIMEOUT = 30.0
#: Bound of every loop in a run (reads, reconnections, publishes).
MAX_STEPS = 1_000_000
#: How long after a fault ends the publications made are still put under it.
TAIL = 3.0


def now() -> float:
    return asyncio.get_running_loop().time()


# -- the recorder ------------------------------------------------------------


@dataclasses.dataclass
class Pub:
    text: str
    publisher: int
    seq: int
    channel: str
    start: float
    acked: bool = False
    position: Optional[str] = None
    # The publisher was told it may have been applied (PublishUncertainError).
    uncertain: bool = False


@dataclasses.dataclass
class Seen:
    at: float
    kind: str  # "item", "reset", or "connect" (an external reader's new connection)
    text: Optional[str] = None
    position: Optional[str] = None
    why: str = ""


@dataclasses.dataclass
class Reader:
    id: str
    kind: str  # sub, resume, slow (in a node); ws, sse, poll (here)
    channel: str
    node: Optional[int] = None  # the node of an in-node reader
    first: Optional[float] = None  # when it first subscribed
    last: Optional[str] = None  # its last position
    seen: list[Seen] = dataclasses.field(default_factory=list)
    errors: list[str] = dataclasses.field(default_factory=list)
    on_change: Callable[[], None] = lambda: None

    def item(self, text: str, position: Optional[str]) -> None:
        self.seen.append(Seen(now(), "item", text, position))
        if position:
            self.last = position
        self.on_change()

    def reset(self, position: Optional[str], why: str) -> None:
        self.seen.append(Seen(now(), "reset", None, position, why))
        if position:
            self.last = position
        self.on_change()

    def connecting(self, node: int) -> None:
        """An external reader opens a new connection, to ``node``."""
        self.seen.append(Seen(now(), "connect", why=f"node {node}"))

    def subscribed(self) -> None:
        if self.first is None:
            self.first = now()
        self.on_change()


@dataclasses.dataclass
class Fault:
    kind: str
    begin: float
    end: float = 0.0
    note: str = ""


# -- the checker -------------------------------------------------------------


@dataclasses.dataclass
class Verdict:
    counts: dict[tuple[str, str], int]  # (fault kind, outcome) -> count
    examples: list[str]
    unsubscribed: list[str]
    by_reader: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    # Per relay reader: the publications it got again over a later
    # connection (not judged: see `check`).
    replayed: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def violations(self) -> int:
        return sum(
            n
            for (_, outcome), n in self.counts.items()
            if outcome not in ("due", "delivered", "counted")
        )


def fault_at(faults: list[Fault], at: float) -> str:
    """The fault in effect at ``at`` (the last begun before it, until TAIL after its end)."""
    kind = "calm"
    for fault in faults:
        if fault.begin <= at and at <= (fault.end or float("inf")) + TAIL:
            kind = fault.kind
    return kind


def check(pubs: Iterable[Pub], readers: Iterable[Reader], faults: list[Fault]) -> Verdict:
    """Judges every reader's history against the promise (see the module's docstring)."""
    counts: dict[tuple[str, str], int] = {}
    examples: list[str] = []
    unsubscribed: list[str] = []
    by_channel: dict[str, list[Pub]] = {}
    for pub in pubs:
        by_channel.setdefault(pub.channel, []).append(pub)

    by_reader: dict[str, dict[str, int]] = {}
    replayed: dict[str, int] = {}
    reader: Reader

    def count(at: float, outcome: str) -> None:
        key = (fault_at(faults, at), outcome)
        counts[key] = counts.get(key, 0) + 1
        kinds = by_reader.setdefault(reader.kind, dict.fromkeys(OUTCOMES, 0))
        kinds[outcome] += 1

    def example(text: str) -> None:
        if len(examples) < 40:
            examples.append(text)

    for reader in readers:
        if reader.first is None:
            unsubscribed.append(reader.id)
            continue
        where: dict[str, list[int]] = {}
        top: dict[int, int] = {}  # publisher -> highest number seen so far
        late: dict[str, int] = {}  # text -> index of an arrival after a later one
        # A relay's connections (see below): the current one, and the one
        # each text last came over.
        connection = 0
        over: dict[str, int] = {}
        for index, seen in enumerate(reader.seen):
            if seen.kind == "connect" and reader.kind == "relay":
                # A relay's connection carries no position: the node it
                # reaches hands it what that node relays from then on,
                # which can be what the last node relayed already (this
                # node catching up after a resubscription of its own hands
                # out what it missed to the connections it has by then) or
                # older. Copies and order are judged per connection.
                connection += 1
                top = {}
                continue
            if seen.kind != "item" or seen.text is None:
                continue
            match = TEXT.fullmatch(seen.text)
            if match is None:
                continue  # a foreign message: not due, no order
            if reader.kind == "relay":
                if over.get(seen.text, connection) != connection:
                    replayed[reader.id] = replayed.get(reader.id, 0) + 1
                    over[seen.text] = connection
                    continue
                over[seen.text] = connection
            where.setdefault(seen.text, []).append(index)
            publisher, number = int(match[1]), int(match[2])
            if number < top.get(publisher, -1) and len(where[seen.text]) == 1:
                late[seen.text] = index
            top[publisher] = max(top.get(publisher, -1), number)
        resets = [i for i, seen in enumerate(reader.seen) if seen.kind == "reset"]
        for pub in by_channel.get(reader.channel, []):
            if pub.start <= reader.first:
                continue
            if not pub.acked:
                # Not due (the publisher was not told it was applied), but
                # never twice: a publish tried again after a lost reply.
                twice = where.get(pub.text, [])[1:2]
                if twice:
                    count(reader.seen[twice[0]].at, "due")
                    count(reader.seen[twice[0]].at, "duplicated")
                    example(f"{reader.id} ({reader.kind}): {pub.text} (not acknowledged) twice")
                continue
            if reader.kind == "relay" and pub.text not in where:
                # `PubSub.relay` keeps nothing and tells nothing: what it did
                # not send is neither due nor counted, only copies and order are judged.
                continue
            arrivals = where.get(pub.text, [])
            if len(arrivals) >= 2:
                second = reader.seen[arrivals[1]]
                # A copy soon after: the publish's fault; a replay much later: its own.
                at = second.at if second.at > pub.start + 5.0 else pub.start
                count(at, "due")
                count(at, "duplicated")
                between = [
                    f"{reader.seen[i].why} at {reader.seen[i].position}"
                    for i in resets
                    if arrivals[0] < i < arrivals[1]
                ]
                example(
                    f"{reader.id} ({reader.kind}): {pub.text} (acknowledged at {pub.position}) "
                    f"twice: at {reader.seen[arrivals[0]].position} and {second.position}"
                    + (f" (between them: {', '.join(between[:3])})" if between else "")
                )
            elif arrivals and pub.text in late:
                at = reader.seen[late[pub.text]].at
                count(at, "due")
                count(at, "out_of_order")
                example(f"{reader.id} ({reader.kind}): {pub.text} after a later one")
            elif arrivals:
                count(pub.start, "due")
                count(pub.start, "delivered")
            else:
                count(pub.start, "due")
                bound = _next_of(reader, pub)
                if any(reader.seen[i].at >= pub.start and i < bound for i in resets):
                    count(pub.start, "counted")
                else:
                    count(pub.start, "lost")
                    after = reader.seen[bound].text if bound < len(reader.seen) else "nothing"
                    example(
                        f"{reader.id} ({reader.kind}): {pub.text} (acknowledged at {pub.position}) "
                        f"silently lost; next of its publisher: {after}"
                    )
    return Verdict(counts, examples, unsubscribed, by_reader, replayed)


def _next_of(reader: Reader, pub: Pub) -> int:
    """The index of the reader's first later publication of ``pub``'s publisher."""
    for index, seen in enumerate(reader.seen):
        if seen.kind == "item" and seen.text is not None:
            match = TEXT.fullmatch(seen.text)
            if match and int(match[1]) == pub.publisher and int(match[2]) > pub.seq:
                return index
    return len(reader.seen)


# -- processes and the forwarder ---------------------------------------------


class Logged:
    """A subprocess whose stdout lines are kept and waited on."""

    def __init__(self, name: str, on_line: Optional[Callable[[bytes], None]] = None) -> None:
        self.name = name
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.lines: list[bytes] = []
        self._on_line = on_line
        self._changed = asyncio.Condition()
        self._reader: Optional[asyncio.Task[None]] = None
        self.stopped = False

    async def start(self, args: list[str], ready: bytes, timeout: float = START_TIMEOUT) -> None:
        self.lines = []
        self.stopped = False
        self.proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.ensure_future(self._read(self.proc))
        await self.wait_for(ready, 0, timeout)

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        for _ in range(MAX_STEPS):
            line = await proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if self._on_line is not None:
                self._on_line(line)
            async with self._changed:
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, text: bytes, start: int, timeout: float) -> int:
        """Waits for a line holding ``text`` from line ``start`` on; its index."""

        def found() -> Optional[int]:
            for index in range(start, len(self.lines)):
                if text in self.lines[index]:
                    return index
            return None

        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(
                        lambda: found() is not None or self._reader is None or self._reader.done()
                    ),
                    timeout,
                )
            except TimeoutError:
                pass
        index = found()
        if index is None:
            tail = b"".join(self.lines[-15:]).decode(errors="replace")
            raise RuntimeError(f"{self.name}: no {text!r} within {timeout}s:\n{tail}")
        return index

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def signal(self, sig: int) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(sig)
            self.stopped = sig == signal.SIGSTOP

    async def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), START_TIMEOUT)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, START_TIMEOUT)
        self.stopped = False


class Pipe:
    """One connection through a `Forwarder`."""

    def __init__(self, writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        self.writers = writers
        self.swallow = False  # replies dropped (a lost reply)

    def cut(self) -> None:
        for writer in self.writers:
            writer.transport.abort()


class Forwarder:
    """A TCP forwarder on 127.0.0.1: the stable address nodes connect to.

    `retarget` sends new connections elsewhere; `refuse` cuts every
    connection and refuses new ones until `allow`; `freeze` holds what
    clients send until `thaw`; `lose_reply` drops every reply on the next
    connection that sends ``pattern`` (and cuts it after ``cut_after``
    seconds, or never: a kill of the server ends it)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.pipes: set[Pipe] = set()
        self.refusing = False
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._lose: Optional[tuple[re.Pattern[bytes], Optional[float]]] = None
        self.lost: list[bytes] = []
        self.hit = asyncio.Event()  # set when `lose_reply` took a connection
        self._server: Optional[asyncio.Server] = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def retarget(self, port: int) -> None:
        self.target = port

    def cut_all(self) -> None:
        for pipe in list(self.pipes):
            pipe.cut()

    def refuse(self) -> None:
        self.refusing = True
        self.cut_all()

    def allow(self) -> None:
        self.refusing = False

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    def lose_reply(self, pattern: bytes, cut_after: Optional[float]) -> None:
        self._lose = (re.compile(pattern), cut_after)
        self.hit.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            async with asyncio.timeout(5):
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except (OSError, TimeoutError):
            writer.transport.abort()
            return
        pipe = Pipe((writer, up_writer))
        self.pipes.add(pipe)
        try:
            await asyncio.gather(
                self._pump(pipe, reader, up_writer, upstream=True),
                self._pump(pipe, up_reader, writer, upstream=False),
            )
        finally:
            self.pipes.discard(pipe)
            pipe.cut()

    async def _pump(
        self,
        pipe: Pipe,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: bool,
    ) -> None:
        try:
            for _ in range(MAX_STEPS):
                data = await reader.read(65536)
                if not data:
                    break
                if upstream:
                    if not self._thawed.is_set():
                        await asyncio.wait_for(self._thawed.wait(), 60)
                    lose = self._lose
                    if lose is not None and not pipe.swallow and lose[0].search(data):
                        self._lose = None
                        pipe.swallow = True
                        self.lost.append(lose[0].search(data)[0])  # type: ignore[index]
                        self.hit.set()
                        if lose[1] is not None:
                            asyncio.get_running_loop().call_later(lose[1], pipe.cut)
                elif pipe.swallow:
                    continue
                writer.write(data)
                await writer.drain()
        except (OSError, TimeoutError):
            pass
        finally:
            pipe.cut()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.thaw()
        self.cut_all()


# -- HTTP and the external readers ---------------------------------------------


async def http(
    port: int, method: str, path: str, body: bytes = b"", timeout: float = 10.0
) -> tuple[int, bytes]:
    """One HTTP/1.0 exchange (the answer ends with the connection)."""

    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            raw = await reader.read(-1)
        finally:
            writer.transport.abort()
        head, _, rest = raw.partition(b"\r\n\r\n")
        words = head.split()
        if len(words) < 2 or not words[1].isdigit():
            raise ConnectionError(f"no HTTP answer from {port}: {raw[:80]!r}")
        return int(words[1]), rest

    # (asyncio.timeout rather than wait_for: 3.11's wait_for, cancelled as
    # its stream read ends, can be left waiting: a reader that never stops.)
    async with asyncio.timeout(timeout):
        return await exchange()


class Client:
    """An external reader: reconnects with its last position, to a node drawn from its seed."""

    def __init__(self, run: Run, reader: Reader) -> None:
        self.run = run
        self.reader = reader
        self.rng = random.Random(f"{run.seed}:{reader.id}")
        self.slow_until = 0.0
        self.connections = 0
        self._cut: Optional[Callable[[], None]] = None
        self.task: Optional[asyncio.Task[None]] = None

    def cut(self) -> None:
        if self._cut is not None:
            self._cut()

    def port(self) -> int:
        node = self.rng.randrange(len(self.run.world.nodes))
        self.reader.connecting(node)
        return self.run.world.nodes[node].port

    async def go(self) -> None:
        for attempt in range(MAX_STEPS):
            if self.run.stopping:
                return
            self.connections += 1
            try:
                await self.session(self.port())
            except Exception as exc:  # noqa: BLE001 - a reader reconnects whatever ended it
                # A cut, a dead node, a refused handshake: expected. Anything else is kept.
                expected = ("Connection", "Invalid", "Timeout", "EOF")
                if not isinstance(exc, OSError) and not any(
                    word in type(exc).__name__ for word in expected
                ):
                    self.reader.errors.append(f"{type(exc).__name__}: {exc}")
            self._cut = None
            # Backoff before reconnecting (full jitter), as a browser's client does.
            await asyncio.sleep(min(0.05 * 2 ** min(attempt % 6, 4), 0.5) * self.rng.random())

    async def session(self, port: int) -> None:
        raise NotImplementedError

    async def lag(self) -> None:
        wait = self.slow_until - now()
        if wait > 0:
            await asyncio.sleep(wait)  # the fault: a reader that stops reading


class WsClient(Client):
    async def session(self, port: int) -> None:
        import websockets

        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/ws", open_timeout=3, ping_interval=None, close_timeout=1
        )
        self._cut = ws.transport.abort
        try:
            await ws.send(json.dumps({"subscribe": self.reader.channel, "since": self.reader.last}))
            for _ in range(MAX_STEPS):
                await self.lag()
                async with asyncio.timeout(3.0):  # two heartbeats missed: dead
                    message = json.loads(await ws.recv())
                kind = message.get("type")
                if kind == "subscribed":
                    self.reader.subscribed()
                    if self.reader.last is None:
                        self.reader.last = message.get("position")
                elif kind == "publication":
                    self.reader.item(message["data"], message.get("position"))
                elif kind == "reset":
                    self.reader.reset(message.get("position"), "reset")
                elif kind == "error":
                    if not message.get("temporary"):
                        self.reader.errors.append(str(message))
                    return  # reconnect (after the backoff)
        finally:
            ws.transport.abort()  # no closing handshake: a cut, as at a fault


class SseClient(Client):
    async def session(self, port: int) -> None:
        async with asyncio.timeout(3):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        self._cut = writer.transport.abort
        try:
            channel = self.reader.channel
            head = (
                f"GET /sse/{channel} HTTP/1.0\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            )
            if self.reader.last:
                head += f"Last-Event-ID: {self.reader.last}\r\n"
            writer.write((head + "\r\n").encode())
            async with asyncio.timeout(3):
                status = await reader.readline()
            if b" 200 " not in status:
                return
            for _ in range(100):
                async with asyncio.timeout(3):
                    header = await reader.readline()
                if header.strip() == b"":
                    break
            event: dict[str, str] = {}
            for _ in range(MAX_STEPS):
                await self.lag()
                async with asyncio.timeout(3.0):  # three heartbeats missed: dead
                    line = await reader.readline()
                if not line:
                    return
                text = line.decode().rstrip("\r\n")
                if text:
                    name, _, value = text.partition(":")
                    event[name] = value[1:] if value.startswith(" ") else value
                    continue
                kind = event.get("event", "message")
                if kind == "subscribed":
                    self.reader.subscribed()
                    self.reader.last = event.get("id") or self.reader.last
                elif kind == "reset":
                    self.reader.reset(event.get("id"), "reset")
                elif kind == "message":
                    self.reader.item(event.get("data", ""), event.get("id"))
                event = {}
        finally:
            writer.transport.abort()


class PollClient(Client):
    async def session(self, port: int) -> None:
        closed = asyncio.Event()
        self._cut = closed.set
        channel = self.reader.channel
        for _ in range(MAX_STEPS):
            await self.lag()
            if self.reader.last is None:
                path = f"/poll/{channel}?wait=0"
            else:
                path = f"/poll/{channel}?cursor={self.reader.last}"
            asking = asyncio.ensure_future(http(port, "GET", path, timeout=6.0))
            asking.add_done_callback(lambda t: t.cancelled() or t.exception())
            cutting = asyncio.ensure_future(closed.wait())
            await asyncio.wait([asking, cutting], return_when=asyncio.FIRST_COMPLETED)
            cutting.cancel()
            if not asking.done():
                asking.cancel()
                await asyncio.gather(asking, return_exceptions=True)
                return
            status, body = asking.result()
            if status != 200:
                return
            answer = json.loads(body)
            if self.reader.last is None:
                if answer["position"] is None:
                    return
                self.reader.subscribed()
            if answer["recovered"] is False:
                self.reader.reset(answer["position"], "recovered false")
            for pub in answer["publications"]:
                self.reader.item(pub["data"], pub["position"])
            if answer["position"]:
                self.reader.last = answer["position"]


class RelayClient(Client):
    """A WebSocket of `PubSub.relay`: texts only, no position, no resumption, so
    the checker judges only duplicates and order for it."""

    async def session(self, port: int) -> None:
        import websockets

        ws = await websockets.connect(
            f"ws://127.0.0.1:{port}/relay/{self.reader.channel}",
            open_timeout=3,
            ping_interval=None,
            close_timeout=1,
        )
        self._cut = ws.transport.abort
        try:
            self.reader.subscribed()
            for _ in range(MAX_STEPS):
                await self.lag()
                async with asyncio.timeout(3.0):  # publications stopped: the node is away
                    text = await ws.recv()
                self.reader.item(str(text), None)
        finally:
            ws.transport.abort()


CLIENTS: dict[str, type[Client]] = {
    "ws": WsClient,
    "sse": SseClient,
    "poll": PollClient,
    "relay": RelayClient,
}
NODE_JS = shutil.which("node")
JS_CLIENT = str(Path(__file__).resolve().parent / "chaos_client.mjs")
# The browser client of the squall under test (an installed one too: the
# compiled suite runs from a copy of the tree without squall/).
RESUME_CLIENT = (
    Path(squall.__file__).resolve().parent / "resume" / "client" / "squall-resume.mjs"
).as_uri()


class JsClient:
    """squall-resume.js under node (`chaos_client.mjs`) on one node's endpoint,
    reconnecting by itself; a cut is a page reload: the process killed and
    started again with the last position as the one the page was rendered at."""

    def __init__(self, run: Run, reader: Reader) -> None:
        self.run = run
        self.reader = reader
        self.rng = random.Random(f"{run.seed}:{reader.id}")
        self.logged = Logged(f"js {reader.id}", self._line)
        self.reloads: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        assert NODE_JS is not None
        node = self.run.world.nodes[self.rng.randrange(len(self.run.world.nodes))]
        transport = "websocket" if self.reader.kind == "js-ws" else "poll"
        args = [NODE_JS, "--experimental-websocket", "--no-warnings", JS_CLIENT, RESUME_CLIENT]
        args += [f"127.0.0.1:{node.port}", self.reader.channel, transport]
        if self.reader.last:
            args.append(self.reader.last)
        await self.logged.start(args, b'"ev":"ready"')

    def _line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self.run.node_log.append(
                f"{self.logged.name}: {line.decode(errors='replace').rstrip()}"
            )
            return
        kind = event.get("ev")
        if kind == "item":
            self.reader.item(event["t"], event["p"])
        elif kind == "reset":
            self.reader.reset(event["pos"], "onreset")
        elif kind == "sub":
            self.reader.subscribed()
        elif kind == "error":
            self.reader.errors.append(event["error"])

    def cut(self) -> None:
        task = asyncio.ensure_future(self.reload())
        self.reloads.add(task)
        task.add_done_callback(self.reloads.discard)

    async def reload(self) -> None:
        await self.logged.kill()
        if not self.run.stopping:
            await self.start()

    async def close(self) -> None:
        await asyncio.gather(*self.reloads, return_exceptions=True)
        await self.logged.kill()


# -- the worlds -----------------------------------------------------------------


class Node:
    """A node process (`chaos_node.py`) and its in-node readers."""

    def __init__(self, run: Run, index: int, port: int) -> None:
        self.run = run
        self.index = index
        self.port = port
        self.logged = Logged(f"node {index}", self._line)

    async def start(self) -> None:
        readers = [
            {"id": r.id, "kind": r.kind, "channel": r.channel, "since": r.last}
            for r in self.run.readers.values()
            if r.node == self.index
        ]
        args = [sys.executable, NODE_SCRIPT, "--url", self.run.world.url, "--port", str(self.port)]
        args += ["--readers", json.dumps(readers), "--relay", ",".join(self.run.channels)]
        await self.logged.start(args, b'"ev":"ready"')

    def _line(self, line: bytes) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            self.run.node_log.append(f"node {self.index}: {line.decode(errors='replace').rstrip()}")
            return
        kind = event.get("ev")
        if kind == "ack":
            pub = self.run.pubs.get(event["t"])
            if pub is not None:
                pub.acked, pub.position = True, event["p"]
        elif kind == "uncertain":
            pub = self.run.pubs.get(event["t"])
            if pub is not None:
                pub.uncertain = True
        elif kind in ("item", "reset", "sub", "error"):
            reader = self.run.readers[event["r"]]
            if kind == "item":
                reader.item(event["t"], event["p"])
            elif kind == "reset":
                reader.reset(event["pos"], event["why"])
            elif kind == "sub":
                reader.subscribed()
            else:
                reader.errors.append(event["error"])
        self.run.changed()


class World:
    """The brokers and the nodes; subclasses add their faults."""

    nodes_count = 2

    def __init__(self, run: Run, workdir: Path) -> None:
        self.run = run
        self.workdir = workdir
        self.nodes: list[Node] = []

    @property
    def url(self) -> str:
        raise NotImplementedError

    async def start(self) -> None:
        ports = free_ports(self.nodes_count)
        self.nodes = [Node(self.run, i, port) for i, port in enumerate(ports)]
        await asyncio.gather(*(node.start() for node in self.nodes))

    async def close(self) -> None:
        for node in self.nodes:
            await node.logged.kill()

    async def foreign(self, channel: str, text: str) -> None:
        raise NotImplementedError

    async def fault(self, kind: str, rng: random.Random) -> str:
        """Runs one fault to its end (everything running again); says what it did."""
        if kind == "stop-node":
            node = rng.choice(self.nodes)
            node.logged.signal(signal.SIGSTOP)
            await asyncio.sleep(rng.uniform(0.5, 4.0))  # the fault's length
            node.logged.signal(signal.SIGCONT)
            return f"node {node.index}"
        if kind == "kill-node":
            node = rng.choice(self.nodes)
            await node.logged.kill()
            await asyncio.sleep(rng.uniform(0.2, 2.0))  # the fault's length
            await node.start()
            return f"node {node.index}"
        if kind == "cut-reader":
            every: list[Any] = [*self.run.cuttable, *self.run.js]
            clients = rng.sample(every, rng.randint(1, len(every)))
            for client in clients:
                client.cut()
            return ",".join(c.reader.id for c in clients)
        if kind == "slow-reader":
            seconds = rng.uniform(0.5, 3.0)
            slow = [r for r in self.run.readers.values() if r.kind == "slow"]
            targets: list[Any] = [*self.run.cuttable, *slow]
            target = rng.choice(targets)
            if isinstance(target, Client):
                target.slow_until = now() + seconds
                return target.reader.id
            node = self.nodes[target.node]
            try:
                await http(
                    node.port,
                    "POST",
                    "/slow",
                    json.dumps({"reader": target.id, "seconds": seconds}).encode(),
                )
            except (OSError, TimeoutError):
                pass
            await asyncio.sleep(seconds)  # the fault's length
            return target.id
        raise ValueError(f"no fault {kind!r} on {type(self).__name__}")


class MemoryWorld(World):
    nodes_count = 1

    @property
    def url(self) -> str:
        return "memory://"


class ReplicaWorld(World):
    """A Redis primary and a replica behind forwarders (see the module's docstring)."""

    def __init__(self, run: Run, workdir: Path) -> None:
        super().__init__(run, workdir)
        self.servers: list[Logged] = []
        self.primary: Optional[tuple[Logged, int]] = None
        self.replica: Optional[tuple[Logged, int]] = None
        self.stable: Optional[Forwarder] = None
        self.link: Optional[Forwarder] = None
        self.foreign_count = 0

    @property
    def url(self) -> str:
        assert self.stable is not None
        return f"redis://127.0.0.1:{self.stable.port}/0"

    async def _redis(self) -> tuple[Logged, int]:
        assert REDIS_SERVER is not None, "redis-server is not installed"
        (port,) = free_ports(1)
        logged = Logged(f"redis {port}")
        args = [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--logfile", "", "--dir", str(self.workdir)]
        args += ["--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0"]
        await logged.start(args, b"Ready to accept connections")
        self.servers.append(logged)
        return logged, port

    async def _command(self, port: int, *args: Any) -> Any:
        import redis.asyncio

        client = redis.asyncio.Redis(port=port, socket_timeout=10)
        try:
            return await client.execute_command(*args)
        finally:
            await client.aclose()

    async def _new_replica(self) -> None:
        """A fresh replica of the primary, through the replication forwarder, synced."""
        assert self.primary is not None and self.link is not None
        self.replica = await self._redis()
        self.link.retarget(self.primary[1])
        self.link.allow()
        mark = len(self.replica[0].lines)
        await self._command(self.replica[1], "REPLICAOF", "127.0.0.1", self.link.port)
        await self.replica[0].wait_for(b"sync: Finished with success", mark, START_TIMEOUT)

    async def start(self) -> None:
        self.primary = await self._redis()
        self.stable = Forwarder(self.primary[1])
        self.link = Forwarder(self.primary[1])
        await self.stable.start()
        await self.link.start()
        await self._new_replica()
        await super().start()

    async def close(self) -> None:
        await super().close()
        for forwarder in (self.stable, self.link):
            if forwarder is not None:
                await forwarder.close()
        for server in self.servers:
            await server.kill()

    async def foreign(self, channel: str, text: str) -> None:
        assert self.primary is not None
        await self._command(self.primary[1], "PUBLISH", channel, text)

    async def _promote(self) -> None:
        """The primary SIGKILLed, the replica promoted, the stable address moved, a new replica."""
        assert self.primary is not None and self.replica is not None and self.stable is not None
        await self.primary[0].kill()
        await self._command(self.replica[1], "REPLICAOF", "NO", "ONE")
        self.stable.retarget(self.replica[1])
        self.stable.cut_all()
        self.primary, self.replica = self.replica, None
        self.stable.thaw()

    async def fault(self, kind: str, rng: random.Random) -> str:
        assert self.primary is not None and self.stable is not None and self.link is not None
        if kind in ("lossy", "clean", "kill-primary"):
            paused = (
                rng.choice(self.nodes) if kind != "kill-primary" and rng.random() < 0.8 else None
            )
            window = rng.uniform(0.3, 1.2)
            hold = rng.uniform(0.5, 2.0)
            quiet = kind == "lossy" and paused is not None and rng.random() < 0.6
            if quiet:
                paused = self.nodes[self.run.lone_node]
                # Only the paused node's publishers publish what is lost: the
                # others, remembering nothing of it, publish first after.
                assert paused is not None
                self.run.quiet = paused.index
            if kind == "lossy":
                self.link.refuse()  # replication stops: what follows is acknowledged, not replicated
                self.stable.lose_reply(rb"P\d+\.\d+", None)  # a publish applied, its reply lost
                await asyncio.sleep(window)  # the lossy window: publishers go on
            elif kind == "clean":
                self.stable.freeze()
                await self._command(self.primary[1], "SET", "chaos:probe", str(rng.random()))
                await self._command(self.primary[1], "WAIT", 1, 10_000)
            if paused is not None:
                paused.logged.signal(signal.SIGSTOP)
            await self._promote()
            self.run.quiet = None
            self.run.changed()
            lost = list(self.stable.lost)
            self.stable.lost.clear()
            await asyncio.sleep(
                hold
            )  # publications into the promoted replica while the node sleeps
            if paused is not None:
                paused.logged.signal(signal.SIGCONT)
            await self._new_replica()
            return f"node {paused.index if paused else '-'} paused{' (quiet)' if quiet else ''}; reply lost: {lost}"
        if kind == "stop-primary":
            self.primary[0].signal(signal.SIGSTOP)
            await asyncio.sleep(rng.uniform(0.3, 2.5))  # the fault's length
            self.primary[0].signal(signal.SIGCONT)
            return ""
        if kind == "foreign":
            channel = rng.choice(self.run.channels)
            self.foreign_count += 1
            text = f"F{self.foreign_count}"
            # The nodes' publishes held, so that the foreign message is the
            # channel's last when the nodes' connections are remade.
            self.stable.freeze()
            try:
                await self.foreign(channel, text)
                readers = [r for r in self.run.readers.values() if r.channel == channel]
                try:
                    await self.run.wait(
                        lambda: any(s.text == text for r in readers for s in r.seen), 5.0
                    )
                except TimeoutError:
                    pass
                self.stable.cut_all()
            finally:
                self.stable.thaw()
            return channel
        if kind == "cut-broker":
            self.stable.cut_all()
            return ""
        if kind == "lost-reply":
            self.stable.lose_reply(rb"P\d+\.\d+", rng.uniform(0.05, 0.5))
            try:  # the next publish through it
                await asyncio.wait_for(self.stable.hit.wait(), START_TIMEOUT)
            except TimeoutError:
                pass
            lost = list(self.stable.lost)
            self.stable.lost.clear()
            return f"reply lost: {lost}"
        return await super().fault(kind, rng)


class HelperWorld(World):
    """A world whose brokers are one of the tests' helpers (``helper``: its
    ``start(timeout)`` and ``stop()`` run in a thread)."""

    helper: Any

    async def start(self) -> None:
        await asyncio.to_thread(self.helper.start, START_TIMEOUT)
        await super().start()

    async def close(self) -> None:
        await super().close()
        await asyncio.to_thread(self.helper.stop)


class ClusterWorld(HelperWorld):
    """A Redis Cluster (tests/pubsub/_servers.py) of 3 primaries and 3 replicas."""

    def __init__(self, run: Run, workdir: Path) -> None:
        super().__init__(run, workdir)
        from _servers import RedisCluster

        self.cluster = self.helper = RedisCluster(workdir)

    @property
    def url(self) -> str:
        return self.cluster.url + "?partitions=16"

    def _owner(self, channel: str) -> int:
        from squall.pubsub import RedisClusterPubSub

        partition = RedisClusterPubSub(self.cluster.url, partitions=16).partition(channel)
        return self.cluster.owner(f"{{sq.{partition}}}")

    async def fault(self, kind: str, rng: random.Random) -> str:
        from _servers import _command

        if kind in ("lossy", "kill-primary"):
            channel = rng.choice(self.run.channels)
            paused = rng.choice(self.nodes) if kind == "lossy" and rng.random() < 0.8 else None
            window = rng.uniform(0.3, 1.2)
            hold = rng.uniform(0.5, 2.0)
            quiet = paused is not None and rng.random() < 0.6
            if quiet:
                # As on redis-replica: the lone channel, its node paused, the
                # other node's publishers holding through the lossy window.
                channel, paused = "lone", self.nodes[self.run.lone_node]
            owner = await asyncio.to_thread(self._owner, channel)
            replica = await asyncio.to_thread(self.cluster.replica_of, owner)
            if quiet:
                assert paused is not None
                self.run.quiet = paused.index
            if kind == "lossy":
                self.cluster.pause(replica)
                await asyncio.to_thread(_command, owner, "CLIENT", "KILL", "TYPE", "replica")
                await asyncio.sleep(window)  # the lossy window: publishers go on
            if paused is not None:
                paused.logged.signal(signal.SIGSTOP)
            await asyncio.to_thread(self.cluster.kill, owner)
            if kind == "lossy":
                self.cluster.resume(replica)
            await asyncio.to_thread(self.cluster.wait_failover, owner, START_TIMEOUT)
            self.run.quiet = None
            self.run.changed()
            await asyncio.sleep(hold)  # publications into the new primary while the node sleeps
            if paused is not None:
                paused.logged.signal(signal.SIGCONT)
            await asyncio.to_thread(self.cluster._spawn, owner)  # back, as a replica
            await asyncio.to_thread(self.cluster.wait_role, owner, "slave", START_TIMEOUT)
            return f"{channel} on {owner}; node {paused.index if paused else '-'} paused" + (
                " (quiet)" if quiet else ""
            )
        return await super().fault(kind, rng)


class SentinelWorld(HelperWorld):
    """A primary, its replica and a Sentinel (tests/pubsub/_sentinel.py); the
    nodes on ``redis+sentinel://``, following the primary the Sentinel names."""

    def __init__(self, run: Run, workdir: Path) -> None:
        super().__init__(run, workdir)
        from tests.pubsub._sentinel import RedisSentinel

        self.sentinel = self.helper = RedisSentinel(workdir)

    @property
    def url(self) -> str:
        return str(self.sentinel.url())

    def _replace(self, old: int, new: int) -> None:
        """``old`` (killed) back as ``new``'s replica, in sync and known to the Sentinel."""
        s = self.sentinel
        s._server(old, "--replicaof", "127.0.0.1", str(new))
        s.wait(f"{old} replicating {new}", lambda: s._synced(new, old), START_TIMEOUT)
        s.wait("the Sentinel knows it", lambda: s._sentinel_sees_replica(old), START_TIMEOUT)
        s.primary, s.replica = new, old

    async def fault(self, kind: str, rng: random.Random) -> str:
        s = self.sentinel
        if kind == "sentinel-failover":
            old = s.primary
            new = await asyncio.to_thread(s.failover, START_TIMEOUT)
            # The Sentinel turns the old primary into a replica on its own
            # schedule: it sees the old role at its next INFO (every 10 s),
            # then lets the role stand 8 s before it sends REPLICAOF, so this
            # takes about 20 s before any load: START_TIMEOUT more on top.
            await asyncio.to_thread(
                s.wait,
                f"{old} replicating {new}",
                lambda: s._synced(new, old),
                SENTINEL_RECONFIGURES + START_TIMEOUT,
            )
            await asyncio.to_thread(
                s.wait,
                "the Sentinel knows it",
                lambda: s._sentinel_sees_replica(old),
                START_TIMEOUT,
            )
            return f"{old} -> {new}"
        if kind in ("lossy", "kill-primary"):
            from _servers import _command

            old, new = s.primary, s.replica
            paused = rng.choice(self.nodes) if kind == "lossy" and rng.random() < 0.8 else None
            window = rng.uniform(0.3, 1.2)
            quiet = paused is not None and rng.random() < 0.6
            if quiet:
                paused = self.nodes[self.run.lone_node]
                self.run.quiet = paused.index
            if kind == "lossy":
                s.procs[new].send_signal(signal.SIGSTOP)
                await asyncio.to_thread(_command, old, "CLIENT", "KILL", "TYPE", "replica")
                await asyncio.sleep(window)  # the lossy window: publishers go on
            if paused is not None:
                paused.logged.signal(signal.SIGSTOP)
            s.procs[old].kill()
            await asyncio.to_thread(s.procs[old].wait, START_TIMEOUT)
            if kind == "lossy":
                s.procs[new].send_signal(signal.SIGCONT)
            await asyncio.to_thread(
                s.wait,
                f"{new} named primary",
                lambda: s.named() == new and s.role(new) == "master",
                START_TIMEOUT,
            )
            self.run.quiet = None
            self.run.changed()
            if paused is not None:
                paused.logged.signal(signal.SIGCONT)
            await asyncio.to_thread(self._replace, old, new)
            return f"{old} -> {new}; node {paused.index if paused else '-'} paused" + (
                " (quiet)" if quiet else ""
            )
        return await super().fault(kind, rng)


WORLDS: dict[str, type[World]] = {
    "redis-replica": ReplicaWorld,
    "redis-sentinel": SentinelWorld,
    "memory": MemoryWorld,
    "redis-cluster": ClusterWorld,
}


# -- one run ---------------------------------------------------------------------


class Run:
    """One seed on one engine: the schedule drawn, run, judged."""

    def __init__(
        self,
        seed: int,
        engine: str,
        duration: float,
        faults: Optional[tuple[str, ...]],
        workdir: Path,
        publishers: int = 4,
        js_readers: bool = True,
    ) -> None:
        self.seed = seed
        self.engine = engine
        self.duration = duration
        self.rng = random.Random(seed)
        kinds = [k for k in FAULTS[engine] if faults is None or k in faults]
        self.channels = ["c0", "c1"]
        self.pubs: dict[str, Pub] = {}
        self.readers: dict[str, Reader] = {}
        self.world: World = WORLDS[engine](self, workdir)
        self.stopping = False
        # While set, only the publishers of this node publish (a lossy
        # failover whose lost offsets come from one node only).
        self.quiet: Optional[int] = None
        self.node_log: list[str] = []
        self.fault_log: list[Fault] = []
        self._changed = asyncio.Event()
        # The schedule, all drawn here from the seed.
        rng = self.rng
        nodes = self.world.nodes_count
        self.publishers = [
            (i, i % nodes, rng.choice(self.channels), rng.uniform(0.02, 0.06))
            for i in range(publishers)
        ]
        # "lone": a channel read on one node only (its in-node readers) and
        # published to from every node: a quiet lossy failover pauses that
        # node, so no other node has handed out the offsets it loses.
        self.lone_node = rng.randrange(nodes)
        for node in range(nodes):
            self.publishers.append((len(self.publishers), node, "lone", rng.uniform(0.04, 0.08)))
        for node in range(nodes):
            for kind in ("sub", "resume", "slow"):
                rid = f"n{node}-{kind}"
                self.readers[rid] = Reader(rid, kind, rng.choice(self.channels), node=node)
        for kind in ("sub", "resume"):
            rid = f"n{self.lone_node}-{kind}-lone"
            self.readers[rid] = Reader(rid, kind, "lone", node=self.lone_node)
        js = (("js-ws", 1), ("js-poll", 1)) if NODE_JS and js_readers else ()
        for kind, many in (("ws", 2), ("sse", 1), ("poll", 1), *js):
            for n in range(many):
                rid = f"{kind}{n}"
                self.readers[rid] = Reader(rid, kind, rng.choice(self.channels))
        # (Its own generator: the schedule of a seed stays what it was before it.)
        relay = random.Random(f"{seed}:relay").choice(self.channels)
        self.readers["relay0"] = Reader("relay0", "relay", relay)
        order = list(kinds)
        rng.shuffle(order)
        self.schedule: list[tuple[float, str, int]] = []
        at = rng.uniform(1.0, 2.0)
        for n in range(1000):
            if at >= duration - 1.0 or not order:
                break
            self.schedule.append((at, order[n % len(order)], rng.randrange(2**32)))
            at += rng.uniform(1.5, 3.0)
        for reader in self.readers.values():
            reader.on_change = self.changed
        self.clients = [
            CLIENTS[r.kind](self, r) for r in self.readers.values() if r.kind in CLIENTS
        ]
        self.js = [JsClient(self, r) for r in self.readers.values() if r.kind.startswith("js-")]
        # The readers a fault cuts or slows (not the relay's, added later: a
        # seed's draws stay what they were).
        self.cuttable = [c for c in self.clients if c.reader.kind != "relay"]

    def changed(self) -> None:
        self._changed.set()

    async def _publisher(
        self, index: int, node: int, channel: str, pace: float, until: float
    ) -> None:
        rng = random.Random(f"{self.seed}:P{index}")
        for seq in range(MAX_STEPS):
            if now() >= until:
                return
            if self.quiet is not None and self.quiet != node:
                await self.wait(lambda: self.quiet is None, START_TIMEOUT)
            await self.publish(index, seq, node, channel)
            await asyncio.sleep(pace * rng.uniform(0.5, 1.5))  # the pace: the workload itself

    async def publish(self, index: int, seq: int, node: int, channel: str) -> bool:
        text = f"P{index}.{seq}"
        pub = self.pubs[text] = Pub(text, index, seq, channel, now())
        port = self.world.nodes[node].port
        try:
            status, body = await http(
                port,
                "POST",
                "/publish",
                json.dumps({"channel": channel, "text": text}).encode(),
                15.0,
            )
        except (OSError, TimeoutError, IndexError, ValueError):
            return pub.acked
        if status == 200:
            pub.acked = True
            pub.position = json.loads(body)["position"]
        return pub.acked

    async def _faults(self, start: float) -> None:
        for at, kind, fault_seed in self.schedule:
            if now() >= start + self.duration - 1.0:
                return  # a long fault pushed the rest past the publishing
            wait = start + at - now()
            if wait > 0:
                await asyncio.sleep(wait)  # the schedule
            fault = Fault(kind, now())
            self.fault_log.append(fault)
            try:
                fault.note = await self.world.fault(kind, random.Random(fault_seed))
            finally:
                fault.end = now()
                self.quiet = None  # (a fault that failed half-way holds no publisher)
                self.changed()

    def _drained(self, finals: dict[int, Pub]) -> bool:
        """Every reader has each publisher's last publication on its channel, or a reset after it."""
        for reader in self.readers.values():
            if reader.first is None or reader.kind == "relay":
                continue
            texts = {s.text for s in reader.seen if s.kind == "item"}
            for pub in finals.values():
                if pub.channel != reader.channel or pub.start <= reader.first:
                    continue
                if pub.text in texts:
                    continue
                if any(s.kind == "reset" and s.at >= pub.start for s in reader.seen):
                    continue
                return False
        return True

    def phase(self, what: str) -> None:
        if os.environ.get("CHAOS_VERBOSE"):
            print(f"   [{time.monotonic() - self.began:6.1f}s] {what}", flush=True)

    async def execute(self) -> Verdict:
        self.began = time.monotonic()
        try:
            await self.world.start()
            self.phase("world started")
            tasks = [
                asyncio.get_running_loop().create_task(c.go(), name=c.reader.id)
                for c in self.clients
            ]
            for client, task in zip(self.clients, tasks, strict=True):
                client.task = task
            await asyncio.gather(*(js.start() for js in self.js))
            # Every reader subscribed before the first publication (a hang guard).
            await self.wait(
                lambda: all(r.first is not None for r in self.readers.values()), START_TIMEOUT
            )
            start = now()
            self.phase("readers subscribed")
            publishing = [
                asyncio.ensure_future(self._publisher(i, node, ch, pace, start + self.duration))
                for i, node, ch, pace in self.publishers
            ]
            faults = asyncio.ensure_future(self._faults(start))
            await asyncio.wait_for(asyncio.gather(*publishing, faults), self.duration + 120)
            self.phase("publishing done")
            # Healed: each publisher's last publication, then wait for it everywhere.
            finals: dict[int, Pub] = {}
            for i, node, ch, _ in self.publishers:
                for attempt in range(20):
                    seq = 1_000_000 + attempt
                    if await self.publish(i, seq, node, ch):
                        finals[i] = self.pubs[f"P{i}.{seq}"]
                        break
            self.phase("last publications made")
            try:
                await self.wait(lambda: self._drained(finals), DRAIN_TIMEOUT)
            except TimeoutError:
                self.node_log.append(
                    f"drain: not every reader had the last publications in {DRAIN_TIMEOUT}s"
                )
            self.stopping = True
            self.phase("drained")
            for task in tasks:
                task.cancel()
            done, pending = await asyncio.wait(tasks, timeout=START_TIMEOUT)
            for task in pending:
                coro: Any = task.get_coro()
                for _ in range(30):
                    if coro is None:
                        break
                    frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
                    print("   pending:", task.get_name(), coro, frame and frame.f_lineno)
                    coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
            self.phase("readers stopped")
        finally:
            self.stopping = True
            for js in self.js:
                await js.close()
            await self.world.close()
        return check(self.pubs.values(), self.readers.values(), self.fault_log)

    async def wait(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = now() + timeout
        for _ in range(MAX_STEPS):
            if condition():
                return
            self._changed.clear()
            left = deadline - now()
            if left <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


# -- the CLI ------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds.extend(range(int(first), int(last or first) + 1))
    return seeds


def run_one(
    seed: int,
    engine: str,
    duration: float,
    faults: Optional[tuple[str, ...]],
    dump: Optional[Path] = None,
) -> dict[str, Any]:
    """Runs one seed; its result as JSON-ready data (``dump``: a directory
    that gets the whole history, ``<engine>-<seed>.json``)."""
    with tempfile.TemporaryDirectory(prefix=f"chaos-{engine}-{seed}-") as tmp:
        began = time.monotonic()

        async def main() -> tuple[Run, Verdict]:
            run = Run(seed, engine, duration, faults, Path(tmp))
            return run, await run.execute()

        run, verdict = asyncio.run(main())
    if dump is not None:
        dump.mkdir(parents=True, exist_ok=True)
        history = {
            "publications": [dataclasses.asdict(p) for p in run.pubs.values()],
            "faults": [dataclasses.asdict(f) for f in run.fault_log],
            "log": run.node_log,
            "readers": {
                r.id: {
                    "kind": r.kind,
                    "channel": r.channel,
                    "first": r.first,
                    "seen": [dataclasses.astuple(s) for s in r.seen],
                }
                for r in run.readers.values()
            },
        }
        (dump / f"{engine}-{seed}.json").write_text(json.dumps(history))
    rows: dict[str, dict[str, int]] = {}
    for (fault, outcome), n in verdict.counts.items():
        rows.setdefault(fault, dict.fromkeys(OUTCOMES, 0))[outcome] += n
    return {
        "seed": seed,
        "engine": engine,
        "seconds": round(time.monotonic() - began, 1),
        "rows": rows,
        "violations": verdict.violations,
        "examples": verdict.examples,
        "unsubscribed": verdict.unsubscribed,
        "by_reader": verdict.by_reader,
        "replayed": verdict.replayed,
        "faults": [
            {
                "kind": f.kind,
                "at": round(f.begin, 2),
                "took": round(f.end - f.begin, 2),
                "note": f.note,
            }
            for f in run.fault_log
        ],
        "reader_errors": {r.id: r.errors[:3] for r in run.readers.values() if r.errors},
        "log": run.node_log[-20:],
        "published": len(run.pubs),
        "acknowledged": sum(p.acked for p in run.pubs.values()),
        "uncertain": sorted(p.text for p in run.pubs.values() if p.uncertain),
    }


def table(results: list[dict[str, Any]]) -> str:
    header = ("seed", "engine", "fault", *OUTCOMES)
    lines = [header]
    totals: dict[str, dict[str, int]] = {}
    for result in results:
        for fault, row in sorted(result["rows"].items()):
            lines.append(
                (str(result["seed"]), result["engine"], fault, *(str(row[o]) for o in OUTCOMES))
            )
            total = totals.setdefault(result["engine"], dict.fromkeys(OUTCOMES, 0))
            for outcome in OUTCOMES:
                total[outcome] += row[outcome]
    for engine, total in totals.items():
        lines.append(("all", engine, "all", *(str(total[o]) for o in OUTCOMES)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    )


def reader_table(results: list[dict[str, Any]]) -> str:
    """The same outcomes by engine and kind of reader, over every seed."""
    sums: dict[tuple[str, str], dict[str, int]] = {}
    for result in results:
        for kind, row in result["by_reader"].items():
            total = sums.setdefault((result["engine"], kind), dict.fromkeys(OUTCOMES, 0))
            for outcome in OUTCOMES:
                total[outcome] += row[outcome]
    lines = [("engine", "reader", *OUTCOMES)]
    for (engine, kind), row in sorted(sums.items()):
        lines.append((engine, kind, *(str(row[o]) for o in OUTCOMES)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines
    )


def markdown(results: list[dict[str, Any]]) -> str:
    """The guide's table: per engine and fault kind, summed over the seeds."""
    sums: dict[tuple[str, str], dict[str, int]] = {}
    seeds: dict[str, set[int]] = {}
    for result in results:
        seeds.setdefault(result["engine"], set()).add(result["seed"])
        for fault, row in result["rows"].items():
            total = sums.setdefault((result["engine"], fault), dict.fromkeys(OUTCOMES, 0))
            for outcome in OUTCOMES:
                total[outcome] += row[outcome]
    names = ("due", "delivered once in order", "counted missed", "duplicated")
    names += ("out of order", "silently lost")
    lines = ["| engine (seeds) | fault | " + " | ".join(names) + " |"]
    lines.append("|---|---|" + "---:|" * len(OUTCOMES))
    for (engine, fault), row in sorted(sums.items()):
        cells = " | ".join(f"{row[o]:,}" for o in OUTCOMES)
        lines.append(f"| {engine} ({len(seeds[engine])}) | {fault} | {cells} |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0-3", help="e.g. 0-3 or 1,5,9")
    parser.add_argument("--engine", default="redis-replica", help=f"one of {ENGINES}, or all")
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds of publishing per seed"
    )
    parser.add_argument("--faults", default=None, help="comma-separated fault kinds (default: all)")
    parser.add_argument("--json", default=None, help="write the results here")
    parser.add_argument("--dump", default=None, help="a directory for every run's whole history")
    parser.add_argument(
        "--markdown", default=None, help="print the table of a --json file for the guide, and exit"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    engines = ENGINES if args.engine == "all" else tuple(args.engine.split(","))
    faults = tuple(args.faults.split(",")) if args.faults else None
    results = []
    broken: list[str] = []
    for engine in engines:
        for seed in parse_seeds(args.seeds):
            dump = Path(args.dump) if args.dump else None
            try:
                result = run_one(seed, engine, args.duration, faults, dump)
            except (AssertionError, TimeoutError, OSError, RuntimeError) as exc:
                # The world itself failed (a server that did not start or
                # replicate in time on a loaded machine): no verdict on the
                # promise, said and counted, and the other seeds still run.
                broken.append(f"{engine}:{seed}")
                print(f"== seed {seed} {engine}: the world could not be run: {exc!r}", flush=True)
                continue
            results.append(result)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
            print(
                f"== seed {seed} {engine}: {result['acknowledged']}/{result['published']} acknowledged "
                f"({len(result['uncertain'])} told uncertain), "
                f"{result['violations']} violations, {result['seconds']}s",
                flush=True,
            )
            for fault in result["faults"]:
                print(
                    f"   {fault['at']:>8} {fault['kind']:<13} {fault['took']:>5}s {fault['note']}"
                )
            for line in result["examples"][:10] + result["log"][-5:]:
                print("   " + line)
            for rid, errors in result["reader_errors"].items():
                print(f"   {rid} errors: {errors}")
            for kind, row in sorted(result["by_reader"].items()):
                if any(row[o] for o in ("duplicated", "out_of_order", "lost")):
                    print(f"   {kind} readers: " + ", ".join(f"{o} {row[o]}" for o in OUTCOMES))
            for rid, n in result["replayed"].items():
                print(f"   {rid}: {n} publication(s) again over a later connection (not judged)")
            if result["unsubscribed"]:
                print(f"   never subscribed: {result['unsubscribed']}")
            if result["violations"]:
                replay = f"--seeds {seed} --engine {engine} --duration {args.duration:g}"
                if args.faults:
                    replay += f" --faults {args.faults}"
                print(f"   replay: python benchmarks/chaos.py {replay}", flush=True)
    print(table(results))
    print()
    print(reader_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    failed = [f"{r['engine']}:{r['seed']}" for r in results if r["violations"]]
    if failed:
        print(f"FAILED: duplicates, reorderings or silent losses in {', '.join(failed)}")
        return 1
    if broken:
        print(f"NOT RUN: the world could not be set up for {', '.join(broken)}")
        return 2
    return 0


def _interrupted(signum: int, frame: Any) -> None:
    # SIGTERM (timeout(1), a CI's cancel) as Ctrl-C: the run's finally
    # blocks stop every process it started.
    raise KeyboardInterrupt


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    signal.signal(signal.SIGTERM, _interrupted)
    sys.exit(main())
