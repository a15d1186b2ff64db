"""squall-resume.js in headless Chromium: the server closes the page's
connection and refuses it for a while, publishes meanwhile, and the page
shows every message once, in order; too much missed for history is a reset.
Over a WebSocket and Server-Sent Events. Skipped when Chromium is not
installed."""

from __future__ import annotations

import tempfile
from typing import Optional

import pytest

from squall.httpserver import HTTPServer
from squall.pubsub import PubSub, connect
from squall.resume import ChannelEventSource, ChannelWebSocket, ClientScriptHandler
from squall.testing import bind_unused_port
from squall.web import Application, HTTPError, RequestHandler
from squall.websocket import WebSocketClientConnection, websocket_connect
from tests._wait import until
from tests.demos._util import run
from tests.demos.test_chat_browser import CHROMIUM, DevTools, Tab, launch, shut

HISTORY = 10

PAGE = """<!doctype html>
<title>resume</title>
<script src="/squall-resume.js"></script>
<script>
  window.got = [];
  window.resets = [];
  const transport = new URLSearchParams(location.search).get('t');
  window.feed = SquallResume.follow({
    channel: 'room:a',
    websocket: transport === 'websocket' ? '/live' : null,
    eventsource: transport === 'eventsource' ? '/rooms/a/events' : null,
    minDelay: 50,
    maxDelay: 200,
    onmessage(data) { window.got.push(data); },
    onreset(position) { window.resets.push(position); },
  });
</script>
"""

# Resolves with window.got once the page holds ``n`` messages (or rejects).
WAIT_GOT = """(n) => new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    if (window.got.length >= n) return resolve(window.got);
    if (Date.now() - started > 10000) {
      return reject(new Error('got ' + JSON.stringify(window.got)));
    }
    setTimeout(look, 10);
  };
  look();
})"""

WAIT_OPEN = """new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    if (window.feed.transport && window.feed.attempts >= 1) return resolve(window.feed.transport);
    if (Date.now() - started > 10000) return reject(new Error('never opened'));
    setTimeout(look, 10);
  };
  look();
})"""

WAIT_RESET = """new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    if (window.resets.length) return resolve(window.resets);
    if (Date.now() - started > 10000) return reject(new Error('no reset'));
    setTimeout(look, 10);
  };
  look();
})"""


# While set, new connections are refused (503), so that what is published
# meanwhile is surely published while the page is away.
PAUSED = {"on": False}


class Refusing(RequestHandler):
    def prepare(self) -> None:
        if PAUSED["on"]:
            raise HTTPError(503, reason="paused by the test")


class Page(RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


class Events(Refusing, ChannelEventSource):
    ping_interval = None
    open_streams: set[Events] = set()

    def channel(self, room: str) -> str:
        return f"room:{room}"

    async def stream(self, room: str) -> None:
        self.open_streams.add(self)
        try:
            await super().stream(room)
        finally:
            self.open_streams.discard(self)


class Live(Refusing, ChannelWebSocket):
    open_sockets: set[Live] = set()

    def may_subscribe(self, channel: str) -> bool:
        return channel == "room:a"

    def on_subscribe(self, channel: str) -> None:
        self.open_sockets.add(self)

    def on_unsubscribe(self, channel: str) -> None:
        self.open_sockets.discard(self)


def cut(transport: str) -> int:
    """Closes the page's connection from the server's side; how many were closed."""
    if transport == "eventsource":
        return Events.end_all()
    sockets = list(Live.open_sockets)
    for socket in sockets:
        socket.close(1012, "restarting")
    return len(sockets)


async def scenario(transport: str) -> None:
    pubsub: PubSub = connect(f"memory://?history_size={HISTORY}")
    app = Application(
        [
            ("/", Page),
            (r"/rooms/(\w+)/events", Events),
            ("/live", Live),
            ("/squall-resume.js", ClientScriptHandler),
        ],
        pubsub=pubsub,
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
        process, endpoint, drain = await launch(profile)
        conn: Optional[WebSocketClientConnection] = None
        try:
            conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
            devtools = DevTools(conn)
            tab = await Tab.open(devtools)
            await tab.goto(f"http://127.0.0.1:{port}/?t={transport}")
            assert await tab.evaluate(WAIT_OPEN) == transport
            # The page's WebSocket is open before the server has its
            # subscribe message: "first" is published once the subscription
            # is in place (it starts after the channel's top at that time).
            await reconnected(transport)
            sent = ["first"]
            await pubsub.publish("room:a", "first")
            assert await tab.evaluate(f"({WAIT_GOT})(1)") == sent
            for round_ in range(4):
                await away(transport)
                for n in range(3):
                    text = f"round {round_} message {n}\nwith a second line"
                    await pubsub.publish("room:a", text)
                    sent.append(text)
                PAUSED["on"] = False
                got = await tab.evaluate(f"({WAIT_GOT})({len(sent)})")
                assert got == sent
                await reconnected(transport)
            assert await tab.evaluate("window.resets") == []
            attempts = await tab.evaluate("window.feed.attempts")
            assert attempts >= 5  # one connection per round, and the first

            # More missed than history keeps: a reset, then live again.
            await away(transport)
            for n in range(HISTORY + 5):
                top = await pubsub.publish("room:a", f"lost {n}")
            PAUSED["on"] = False
            assert await tab.evaluate(WAIT_RESET) == [str(top)]
            await reconnected(transport)
            await pubsub.publish("room:a", "after the reset")
            got = await tab.evaluate(f"({WAIT_GOT})({len(sent) + 1})")
            assert got == [*sent, "after the reset"]
            await devtools.send("Browser.close")
        finally:
            PAUSED["on"] = False
            if conn is not None:
                conn.close()
            await shut(process)
            drain.cancel()
            server.stop()
            await server.close_all_connections()
            await pubsub.close()


async def away(transport: str) -> None:
    """Cuts the page's connection and keeps it from coming back until unpaused."""
    PAUSED["on"] = True
    assert cut(transport) == 1
    streams = Live.open_sockets if transport == "websocket" else Events.open_streams
    await until(lambda: not streams)


async def reconnected(transport: str) -> None:
    """Until the page's (new) connection is subscribed on the server."""
    streams = Live.open_sockets if transport == "websocket" else Events.open_streams
    await until(lambda: len(streams) == 1)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("transport", ["websocket", "eventsource"])
def test_server_side_cuts_lose_nothing_and_repeat_nothing(transport: str) -> None:
    run(scenario(transport), limit=30)
