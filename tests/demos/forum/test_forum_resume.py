"""The forum's topic page in headless Chromium, its connection cut: every reply
posted meanwhile shows once, in order, when it comes back (over a WebSocket,
Server-Sent Events and long polling); and the page counts its readers.

The cut is a proxy between the browser and the forum that the test controls:
it drops every connection (as a server that goes away, or a network that
fails, would) and refuses new ones until it is told to let them through.
Replies are posted meanwhile straight to the forum. Skipped when Chromium is
not installed.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest

from squall.websocket import WebSocketClientConnection, websocket_connect

from ..._wait import HANG_GUARD, until_answer
from ...resume._proxy import CutProxy
from .._util import run
from ..test_chat_browser import BROKEN_WEBSOCKET, CHROMIUM, DevTools, Tab, launch, shut
from ._client import Visitor, client, forum_server

BROWSER_LIMIT = 30.0

NO_EVENTSOURCE = "delete window.EventSource;"

# Resolves once the page's feed is open (with its transport's name).
WAIT_OPEN = """new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    const feed = window.forum && window.forum.feed;
    if (feed && feed.transport && window.forum.ready) return resolve(window.forum.ready);
    if (Date.now() - started > 10000) return reject(new Error('the feed never opened: ' + JSON.stringify(window.forum.feed)));
    setTimeout(look, 20);
  };
  look();
})"""

# Resolves with the post bodies shown once there are ``n`` of them.
WAIT_POSTS = """(n) => new Promise((resolve, reject) => {
  const started = Date.now();
  const look = () => {
    const bodies = Array.from(document.querySelectorAll('#posts .post .body'),
                              (b) => b.textContent.trim());
    if (bodies.length >= n) return resolve(bodies);
    if (Date.now() - started > 15000) return reject(new Error('only ' + bodies.length + ' posts'));
    setTimeout(look, 20);
  };
  look();
})"""

# The line under the replies: its classes, text and look.
LIVE_LINE = """(() => {
  const line = document.getElementById('live');
  const style = getComputedStyle(line);
  return {
    css: Array.from(line.classList),
    text: line.textContent,
    position: style.position,
    background: style.backgroundColor,
    page: getComputedStyle(document.body).backgroundColor,
  };
})()"""

# Resolves with LIVE_LINE once the line says it caught up.
WAIT_CAUGHT_UP = f"""new Promise((resolve, reject) => {{
  const started = Date.now();
  const look = () => {{
    const line = {LIVE_LINE};
    if (line.css.includes('caught-up')) return resolve(line);
    if (Date.now() - started > 10000) return reject(new Error(JSON.stringify(line)));
    setTimeout(look, 20);
  }};
  look();
}})"""


async def until_count(pubsub: Any, channel: str, n: int) -> None:
    """Until the channel's presence counts ``n`` (joins and leaves are asynchronous)."""

    async def counted() -> bool:
        return await pubsub.presence_count(channel) == n

    try:
        await until_answer(counted)
    except AssertionError:
        raise AssertionError(
            f"presence never counted {n}: {await pubsub.presence(channel)}"
        ) from None


async def cut_and_resume(tmp_path: Path, blocked: str, expected: str) -> None:
    async with forum_server(tmp_path, poll_timeout=2) as (app, base), client() as http:
        author = Visitor(base, http)
        await author.signup("writer")
        topic = await author.new_topic("general", "Resumed", "opening post")
        proxy = CutProxy(int(base.rsplit(":", 1)[1]))
        await proxy.start()
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            process, endpoint, drain = await launch(profile)
            conn: Optional[WebSocketClientConnection] = None
            try:
                conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                devtools = DevTools(conn)
                reader = await Tab.open(devtools)
                if blocked:
                    await devtools.send(
                        "Page.addScriptToEvaluateOnNewDocument", reader.session, source=blocked
                    )
                page = f"http://127.0.0.1:{proxy.port}/t/{topic}"
                await reader.goto(page)
                assert await reader.evaluate(WAIT_OPEN) == expected
                await author.reply(topic, "while connected")
                assert await reader.evaluate(f"({WAIT_POSTS})(2)") == [
                    "opening post",
                    "while connected",
                ]
                # A second reader's page counts both (the topic channel's
                # presence: each open stream joins it; long polls do not);
                # when it leaves, one.
                channel = f"forum:topic:{topic}"
                pubsub = app.settings["pubsub"]
                counted = 0 if expected == "poll" else 1
                await until_count(pubsub, channel, counted)
                other = await Tab.open(devtools)
                await other.goto(page)
                readers = "document.getElementById('readers').textContent"
                assert await other.evaluate(readers) == str(counted + 1)
                await other.evaluate(WAIT_OPEN)
                await until_count(pubsub, channel, counted + 1)  # its page is a WebSocket reader
                # (Not a navigation away: the back/forward cache may keep
                # the page, and its connection, alive.)
                await other.evaluate("window.forum.feed.close()")
                await until_count(pubsub, channel, counted)

                proxy.cut()
                missed = [f"missed reply {n}" for n in range(6)]
                for text in missed:
                    await author.reply(topic, text)
                # The page tried to come back while the replies were posted.
                for _ in range(2):
                    await asyncio.wait_for(proxy.refusals.get(), HANG_GUARD)
                assert await reader.evaluate("window.forum.received") == 1
                # The page says it is offline, on a line that stays in sight.
                line = await reader.evaluate(LIVE_LINE)
                assert line["css"] == ["live", "muted", "offline"], line
                assert line["text"].startswith("Offline: reconnecting."), line
                assert line["position"] == "sticky" and line["background"] != line["page"], line
                proxy.up = True

                shown = await reader.evaluate(f"({WAIT_POSTS})({2 + len(missed)})")
                assert shown == ["opening post", "while connected", *missed]
                # And, back, how many replies it caught up.
                line = await reader.evaluate(WAIT_CAUGHT_UP)
                assert line["css"] == ["live", "muted", "caught-up"], line
                assert (
                    line["text"] == "Back online: caught up 6 replies posted while you were away."
                )
                assert await reader.evaluate("window.forum.caughtUp") == len(missed)
                # Exactly once: nothing more arrives after them (a reply
                # posted now is the next one shown).
                await author.reply(topic, "after the cut")
                shown = await reader.evaluate(f"({WAIT_POSTS})({3 + len(missed)})")
                assert shown == ["opening post", "while connected", *missed, "after the cut"]
                state = await reader.evaluate(
                    "[window.forum.received, window.forum.resets, window.forum.ready]"
                )
                assert state == [2 + len(missed), 0, expected]
                await devtools.send("Browser.close")
            finally:
                if conn is not None:
                    conn.close()
                await shut(process)
                drain.cancel()
                await proxy.close()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize(
    "blocked, expected",
    [
        ("", "websocket"),
        (BROKEN_WEBSOCKET, "eventsource"),
        (BROKEN_WEBSOCKET + NO_EVENTSOURCE, "poll"),
    ],
    ids=["websocket", "eventsource", "poll"],
)
def test_a_cut_reader_sees_every_missed_reply_once_in_order(
    tmp_path: Path, blocked: str, expected: str
) -> None:
    run(cut_and_resume(tmp_path, blocked, expected), limit=BROWSER_LIMIT)


def test_reset_fetches_from_the_database(tmp_path: Path) -> None:
    # History too short for what was missed: the page is told (a reset) and
    # its catch-up source, the database poll with wait=0, answers at once:
    # the long poll it skips is held for an hour here, far past the
    # request's own hang guard (LIMIT_REQUEST, after which it is a 599).
    async def main() -> None:
        async with forum_server(tmp_path, poll_timeout=3600) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "Catch up", "first")
            first, _ = await ann.reply(topic, "second")
            response = await ann.fetch(f"/t/{topic}/poll?wait=0&after={first}")
            assert response.code == 200 and json.loads(response.body)["posts"] == []
            response = await ann.fetch(f"/t/{topic}/poll?wait=0&after={first - 1}")
            assert [p["id"] for p in json.loads(response.body)["posts"]] == [first]

    run(main())
