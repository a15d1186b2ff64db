"""squall-resume.js in headless Chromium on the unhappy paths,
each of which left the page stuck, hammering or silently behind before:

- the broker away when the page subscribes, then back (the page used to
  stay 'open' with nothing, for good);
- a server that accepts each connection and closes it at once (the page
  reconnected every few milliseconds: the backoff reset at socket open);
- a publication without a position (the page lost its position, or
  dropped the publication over SSE, and silently stopped resuming);
- a half-open connection: the network drops everything on it without a
  close (the page waited on TCP for minutes: there was no heartbeat);
- the browser offline, then online (the page waited out its backoff).

Between the browser and the server is a proxy the test controls
(tests/resume/_proxy.py). Skipped when Chromium is not installed.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Optional

import pytest

from squall.httpserver import HTTPServer
from squall.pubsub import Position, Publication, PubSub, connect
from squall.resume import (
    ChannelEventSource,
    ChannelPollHandler,
    ChannelWebSocket,
    ClientScriptHandler,
)
from squall.testing import bind_unused_port
from squall.web import Application, HTTPError, RequestHandler
from squall.websocket import websocket_connect
from tests._wait import HANG_GUARD, until
from tests.demos._util import run
from tests.demos.test_chat_browser import CHROMIUM, DevTools, Tab, launch, shut

from ._proxy import CutProxy

HEARTBEAT = 0.5  # the server's, in seconds; the page's grace is 500 ms
# Hang guards: each wait's, in the page's milliseconds too, and a test's
# whole run (Chromium's start and the lab's steps around its waits).
GUARD_MS = int(HANG_GUARD * 1000)
RUN_LIMIT = 2 * HANG_GUARD

# The page: one transport (?t=), the backoff's bounds (?min=, ?max=), and
# with ?worst=1 every wait is its ceiling (Math.random pinned near 1), so
# that what the backoff does is the same on every run; ?connect= and
# ?grace= set its connect timeout and heartbeat grace (ms).
PAGE = """<!doctype html>
<title>unhappy</title>
<script>
  const query = new URLSearchParams(location.search);
  if (query.get('worst')) Math.random = () => 0.999;
</script>
<script src="/squall-resume.js"></script>
<script>
  window.got = [];
  window.errors = [];
  window.stateWaiters = [];
  const t = query.get('t');
  window.feed = SquallResume.follow({
    channel: 'room:a',
    websocket: t === 'websocket' ? '/live' : null,
    eventsource: t === 'eventsource' ? '/rooms/a/events' : null,
    poll: t === 'poll' ? '/rooms/a/poll' : null,
    minDelay: Number(query.get('min') || 100),
    maxDelay: Number(query.get('max') || 1000),
    heartbeatGrace: Number(query.get('grace') || 500),
    connectTimeout: Number(query.get('connect') || 2000),
    onmessage(data) { window.got.push(data); },
    onstate(name) { for (const tell of window.stateWaiters.splice(0)) tell(name); },
    onerror(error) { window.errors.push(String(error && error.message || error)); },
  });
</script>
"""

# Resolves with window.got once it holds ``n`` messages (rejects after ``ms``).
WAIT_GOT = """(n, ms) => new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    if (window.got.length >= n) return resolve(window.got);
    if (Date.now() - started > ms) return reject(new Error('got ' + JSON.stringify(window.got) + ' ' + JSON.stringify(window.feed) + ' ' + JSON.stringify(window.errors)));
    setTimeout(look, 10);
  };
  look();
})"""

# Resolves with feed.attempts once the feed enters ``state`` (rejects after ``ms``).
WAIT_STATE = """(state, ms) => new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('still ' + window.feed.state)), ms);
  const wait = (name) => {
    if (name !== state) { window.stateWaiters.push(wait); return; }
    clearTimeout(timer);
    resolve(window.feed.attempts);
  };
  wait(window.feed.state);
})"""

# What the server does, set by each test.
MODE = {"away": False, "flap": False, "paused": False}
ERRORS_SENT = {"n": 0}
# Requests for a WebSocket or a stream (a TCP connection may carry several).
REQUESTS = {"n": 0}


class Broker:
    """The application's PubSub, but unreachable while MODE["away"]."""

    has_positions = True

    def __init__(self, pubsub: PubSub) -> None:
        self.inner = pubsub

    async def subscribe(self, channel: str, max_pending: Optional[int] = None, **kw: Any) -> Any:
        if MODE["away"]:
            ERRORS_SENT["n"] += 1
            raise ConnectionError("Redis at redis://127.0.0.1:9/0 is unreachable")
        return await self.inner.subscribe(channel, max_pending, **kw)


class Page(RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


class Gate(RequestHandler):
    def prepare(self) -> None:
        REQUESTS["n"] += 1
        if MODE["paused"]:
            raise HTTPError(503, reason="paused by the test")

    @property
    def pubsub(self) -> Any:
        return Broker(self.settings["pubsub"])


class Live(Gate, ChannelWebSocket):
    heartbeat_interval = HEARTBEAT
    subscribed: set[Live] = set()

    def may_subscribe(self, channel: str) -> bool:
        return channel == "room:a"

    def open(self) -> None:
        if MODE["flap"]:
            self.close(1013, "try again later")

    def on_subscribe(self, channel: str) -> None:
        self.subscribed.add(self)

    def on_unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(self)


class Events(Gate, ChannelEventSource):
    heartbeat_interval = HEARTBEAT

    def channel(self, room: str) -> str:
        return f"room:{room}"

    async def stream(self, room: str) -> None:
        if MODE["flap"]:
            return  # the response's headers, then its end
        await super().stream(room)


class Poll(Gate, ChannelPollHandler):
    poll_timeout = HEARTBEAT

    def channel(self, room: str) -> str:
        return f"room:{room}"


class Lab:
    """The server, the proxy in front of it, and a Chromium tab on the page."""

    def __init__(self, pubsub: PubSub, proxy: CutProxy, tab: Tab, devtools: DevTools) -> None:
        self.pubsub = pubsub
        self.proxy = proxy
        self.tab = tab
        self.devtools = devtools

    async def open(self, transport: str, query: str = "") -> None:
        # A channel with a position: a first poll (with no cursor) answers
        # it, and the next one resumes from it, missing nothing.
        await self.pubsub.publish("room:a", "before the page")
        await self.tab.goto(f"http://127.0.0.1:{self.proxy.port}/?t={transport}{query}")

    async def network(self, offline: bool) -> None:
        """The browser's network off (it fires 'offline') or on ('online')."""
        await self.devtools.send(
            "Network.emulateNetworkConditions",
            self.tab.session,
            offline=offline,
            latency=0,
            downloadThroughput=-1,
            uploadThroughput=-1,
        )

    async def got(self, n: int, ms: int = GUARD_MS) -> list[str]:
        result: list[str] = await self.tab.evaluate(f"({WAIT_GOT})({n}, {ms})")
        return result

    async def subscribed(self, transport: str) -> None:
        """Until the page is subscribed on the server (a publication then reaches it)."""
        if transport == "websocket":
            await until(lambda: bool(Live.subscribed), limit=HANG_GUARD)
        elif transport == "eventsource":
            await until(lambda: bool(self.pubsub.subscribers("room:a")), limit=HANG_GUARD)
        # a poll subscribes only while it waits: it resumes from its cursor

    async def first(self, transport: str) -> None:
        """A first publication, received: the page is at the channel's top."""
        await self.subscribed(transport)
        if transport == "poll":
            await until(lambda: bool(self.pubsub.subscribers("room:a")), limit=HANG_GUARD)
        await self.pubsub.publish("room:a", "first")
        assert await self.got(1) == ["first"]


@asynccontextmanager
async def lab() -> AsyncIterator[Lab]:
    MODE.update(away=False, flap=False, paused=False)
    ERRORS_SENT["n"] = 0
    REQUESTS["n"] = 0
    Live.subscribed.clear()
    pubsub: PubSub = connect("memory://?history_size=100")
    app = Application(
        [
            ("/", Page),
            ("/live", Live),
            (r"/rooms/(\w+)/events", Events),
            (r"/rooms/(\w+)/poll", Poll),
            ("/squall-resume.js", ClientScriptHandler),
        ],
        pubsub=pubsub,
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    proxy = CutProxy(port)
    await proxy.start()
    with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
        process, endpoint, drain = await launch(profile)
        conn = None
        try:
            conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
            devtools = DevTools(conn)
            tab = await Tab.open(devtools)
            await devtools.send("Network.enable", tab.session)
            yield Lab(pubsub, proxy, tab, devtools)
            await devtools.send("Browser.close")
        finally:
            MODE.update(away=False, flap=False, paused=False)
            if conn is not None:
                conn.close()
            await shut(process)
            drain.cancel()
            await proxy.close()
            server.stop()
            await server.close_all_connections()
            await pubsub.close()


chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@chromium
def test_broker_away_on_subscribe_then_back() -> None:
    # Over a WebSocket the server answers an error on a socket it keeps
    # open: the page must subscribe again (with a backoff) once it says
    # the error is temporary. SSE and polling get a 503 and retry anyway.
    async def main() -> None:
        async with lab() as it:
            MODE["away"] = True
            await it.open("websocket")
            await until(lambda: ERRORS_SENT["n"] >= 1, limit=HANG_GUARD)
            MODE["away"] = False
            await it.subscribed("websocket")
            await it.pubsub.publish("room:a", "after the broker came back")
            assert await it.got(1) == ["after the broker came back"]
            errors = await it.tab.evaluate("window.errors")
            assert any("unreachable" in text for text in errors), errors

    run(main(), limit=RUN_LIMIT)


@chromium
@pytest.mark.parametrize("transport", ["websocket", "eventsource"])
def test_a_server_that_accepts_and_closes_is_not_hammered(transport: str) -> None:
    # For 4 s the server accepts and closes at once. Backing off (100 ms
    # doubling to 2 s, full jitter) allows about 7 connections; resetting
    # the backoff at each open made 40 and more. Counted by the server:
    # requests, since a stream's TCP connection is kept for the next. (A
    # loaded machine makes fewer, never more; that the page kept trying is
    # proved by its subscription once the flapping stops.)
    async def main() -> None:
        async with lab() as it:
            MODE["flap"] = True
            await it.open(transport, "&min=100&max=2000")
            loop = asyncio.get_running_loop()
            end = loop.time() + 4
            while loop.time() < end:
                await asyncio.sleep(0.05)  # the flapping lasts 4 s: time is what this test is about
            flapped = REQUESTS["n"]
            assert 1 <= flapped <= 20, f"{flapped} connections in 4 s"
            MODE["flap"] = False
            await it.subscribed(transport)
            await it.pubsub.publish("room:a", "steady")
            assert await it.got(1) == ["steady"]

    run(main(), limit=RUN_LIMIT)


@chromium
@pytest.mark.parametrize("transport", ["websocket", "eventsource", "poll"])
def test_a_publication_without_a_position_loses_nothing(transport: str) -> None:
    # Another program publishes on the channel (no position); then the
    # page is away while one more is published: it must still resume
    # from the last position it had, and show the foreign one too.
    async def main() -> None:
        async with lab() as it:
            await it.open(transport)
            await it.first(transport)
            if transport == "poll":
                await until(lambda: bool(it.pubsub.subscribers("room:a")), limit=HANG_GUARD)
            MODE["paused"] = True
            foreign = Publication("room:a", "from another program", Position(0, ""))
            it.pubsub._dispatch(foreign)  # as the Redis engine delivers a raw PUBLISH
            assert await it.got(2) == ["first", "from another program"]
            it.proxy.cut()  # the page is away (refused until the proxy is up)
            await asyncio.wait_for(it.proxy.refusals.get(), HANG_GUARD)
            await it.pubsub.publish("room:a", "while away")
            it.proxy.up = True
            MODE["paused"] = False
            got = await it.got(3)
            assert got == ["first", "from another program", "while away"]
            await it.pubsub.publish("room:a", "live")
            assert await it.got(4) == [*got, "live"]

    run(main(), limit=RUN_LIMIT)


@chromium
@pytest.mark.parametrize("transport", ["websocket", "eventsource", "poll"])
def test_a_half_open_connection_is_given_up_and_resumed(transport: str) -> None:
    # The proxy stops carrying anything on the page's connection and
    # closes nothing: only a heartbeat that stops coming tells the page.
    async def main() -> None:
        async with lab() as it:
            await it.open(transport)
            await it.first(transport)
            before = REQUESTS["n"]
            assert it.proxy.freeze() >= 1
            await it.pubsub.publish("room:a", "sent into the void")
            # Silence past 0.5 s + 0.5 s, then a new connection (one
            # reused from the browser's pool may be frozen too: 2 s more).
            got = await it.got(2)
            assert got == ["first", "sent into the void"]
            assert REQUESTS["n"] > before  # asked for again (on a connection not frozen)

    run(main(), limit=RUN_LIMIT)


@chromium
@pytest.mark.parametrize("transport", ["websocket", "eventsource", "poll"])
def test_back_at_once_when_the_browser_is_online_again(transport: str) -> None:
    # Each wait of the backoff is ten minutes (its ceiling): the page gives
    # its connection up when the browser goes offline, its next try armed
    # for then, far past any hang guard here. A client that only waits is
    # not back within the test; one that listens for 'online' comes back
    # at once.
    async def main() -> None:
        async with lab() as it:
            never = 600_000
            # A connect or a heartbeat later than the page's usual limits
            # (2 s, 0.5 s: a loaded machine missed one, and the retry then
            # came ten minutes on) is waited for, up to the hang guard.
            limits = f"&connect={GUARD_MS}&grace={GUARD_MS}"
            await it.open(transport, f"&min={never}&max={never}&worst=1{limits}")
            await it.first(transport)
            # The network goes: the browser says so, and the connections die.
            await it.network(offline=True)
            it.proxy.cut()
            attempts = await it.tab.evaluate(f"({WAIT_STATE})('retrying', {GUARD_MS})")
            await it.pubsub.publish("room:a", "while offline")
            it.proxy.up = True
            await it.network(offline=False)
            assert await it.got(2) == ["first", "while offline"]
            # One connection, or two: Chromium can fire 'online' a moment
            # before its network service carries the request, and the try
            # made then fails at once; the client makes it once more, 1 s on.
            assert await it.tab.evaluate("window.feed.attempts") in (attempts + 1, attempts + 2)

    run(main(), limit=RUN_LIMIT)


async def measure_back(transport: str, offline: float, rounds: int) -> list[float]:
    """Seconds from the network's return to the missed publication shown, per round."""
    results = []
    async with lab() as it:
        await it.open(transport, "&min=500&max=30000")
        await it.first(transport)
        shown = 1
        loop = asyncio.get_running_loop()
        for n in range(rounds):
            await it.network(offline=True)
            it.proxy.cut()
            # The outage's length is the fault measured: what is timed is
            # the client's recovery after ``offline`` seconds without a network.
            await asyncio.sleep(offline)
            await it.pubsub.publish("room:a", f"missed {n}")
            online = loop.time()
            it.proxy.up = True
            await it.network(offline=False)
            shown += 1
            await it.got(shown, 60000)
            results.append(loop.time() - online)
    return results


if __name__ == "__main__":
    # python -m tests.resume.test_client_unhappy [OFFLINE_SECONDS [ROUNDS]]:
    # the time back after the network returns, per transport (the page's
    # defaults: waits from 500 ms doubling to 30 s, full jitter).
    import statistics
    import sys

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    for kind in ("websocket", "eventsource", "poll"):
        times = asyncio.run(measure_back(kind, seconds, count))
        print(
            json.dumps(
                {
                    "transport": kind,
                    "offline_s": seconds,
                    "back_s": [round(t, 2) for t in times],
                    "median_s": round(statistics.median(times), 2),
                }
            )
        )
