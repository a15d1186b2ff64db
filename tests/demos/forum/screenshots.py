"""Screenshots of the forum for review: ``python -m tests.demos.forum.screenshots OUTDIR``.

Seeds a forum (SQLite in a temporary directory) with a few users, topics, a
post with code and a quote, then captures pages in headless Chromium at
desktop and 360 px widths, light and dark. Not a test: run it by hand.

``--many OUTDIR`` (as root, for the network namespaces; docs/figures/ for the
guide) starts ``make demo-cluster NODES=4`` (demos/forum/many.py) instead and
captures, each page labelled with the node nginx says served it
(``X-Upstream``): a reply posted in a tab pinned to node 1 and the same
reply shown live in a tab pinned to node 2 (``many-author.png``,
``many-reader.png``); then that reader's connection cut for 30 s (a proxy
between it and nginx drops it and refuses new ones) while replies are
posted through node 1, and the page once it is back: every missed reply,
once, in order (``many-cut.png``, ``many-resumed.png``).
``--many OUTDIR eventsource`` (or ``poll``) does the same with the reader's
page kept off WebSocket (and EventSource), so that its feed is Server-Sent
Events (long polling): ``many-*-eventsource.png`` (``many-*-poll.png``).

``--offline OUTDIR`` (one forum process) captures a topic page whose
connection is cut while three replies are posted (``forum-offline.png``: the
line saying it is offline) and the same page once back
(``forum-caught-up.png``: the replies, and how many it caught up).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from squall.websocket import websocket_connect

from ...resume._proxy import CutProxy
from .._util import load
from ..test_chat_browser import BROKEN_WEBSOCKET, DevTools, Tab, launch, shut
from ._client import PASSWORD, Visitor, client, forum_server
from .test_forum_resume import NO_EVENTSOURCE, WAIT_CAUGHT_UP, WAIT_OPEN, WAIT_POSTS

# What keeps a page off the transports before its own: its feed's name.
BLOCKED = {
    "websocket": "",
    "eventsource": BROKEN_WEBSOCKET,
    "poll": BROKEN_WEBSOCKET + NO_EVENTSOURCE,
}
SHOWN = {"websocket": "WebSocket", "eventsource": "Server-Sent Events", "poll": "long polling"}

CODE_POST = """Here is how I fan a message out to every socket of a topic:

```python
async def fan_out(sockets, message):
    for socket in list(sockets):
        if socket.ws_connection is None:
            sockets.discard(socket)  # gone
            continue
        await socket.write_message(message)
```

Is awaiting each write the right thing with 10,000 readers? @bob"""

REPLY = """@alice wrote:
> Is awaiting each write the right thing with 10,000 readers?

No: one slow reader then holds up all the others. Write without awaiting and
let the transport buffer, or use **squall.websocket.broadcast**, which frames
the message once. See `WebSocketHandler.write_message`."""


async def seed(base: str) -> tuple[Visitor, int]:
    async with client() as http:
        alice, bob, carol = Visitor(base, http), Visitor(base, http), Visitor(base, http)
        for who, name in ((alice, "alice"), (bob, "bob"), (carol, "carol")):
            await who.signup(name)
        topic = await alice.new_topic("performance", "Fan-out to 10,000 WebSockets", CODE_POST)
        await bob.reply(topic, REPLY)
        await carol.reply(
            topic,
            "Measured it: `broadcast` is 3x faster here. Thanks!\n\n"
            "| readers | loop | us per delivery |\n|:--|:-:|--:|\n"
            "| 1,000 | write_message | 15.0 |\n| 1,000 | broadcast | 10.2 |\n\n"
            "Same on io_uring? Go figure.",
        )
        await bob.new_topic("squall", "Running behind nginx", "Which `--proxy-headers` do I need?")
        await carol.new_topic("general", "Hello from Lisbon", "First post, *hi* everyone.")
        for i in range(3):
            await carol.new_topic("performance", f"uvloop vs asyncio, take {i + 1}", "Numbers?")
        return alice, topic


async def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with forum_server(Path(tmp)) as (_, base):
            alice, topic = await seed(base)
            with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
                process, endpoint, drain = await launch(profile)
                try:
                    conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                    devtools = DevTools(conn)
                    tab = await Tab.open(devtools)
                    shots = [
                        ("index", "/", 1280, False),
                        ("board", "/b/performance", 1280, False),
                        ("topic", f"/t/{topic}", 1280, False),
                        ("search", "/search?q=broadcast", 1280, False),
                        ("search-short", "/search?q=go", 1280, False),
                        ("mobile-search", "/search?q=broadcast", 360, False),
                        ("dark-search", "/search?q=broadcast", 1280, True),
                        ("user", "/u/bob", 1280, False),
                        ("mobile-topic", f"/t/{topic}", 360, False),
                        ("mobile-index", "/", 360, False),
                        ("dark-topic", f"/t/{topic}", 1280, True),
                        ("dark-index", "/", 1280, True),
                        ("404", "/no/such/page", 1280, False),
                        ("login", "/login", 1280, False),
                        ("bob-board", "/b/performance", 1280, False),
                        ("bob-topic", f"/t/{topic}", 1280, False),
                        ("bob-mobile-topic", f"/t/{topic}", 360, True),
                    ]
                    for name, path, width, dark in shots:
                        if name == "bob-board":
                            await tab.goto(base + "/login")
                            await tab.evaluate(
                                "document.getElementById('name').value = 'bob';"
                                f"document.getElementById('password').value = {PASSWORD!r};"
                                "document.getElementById('login-form').submit()",
                                navigates=True,
                            )
                        await devtools.send(
                            "Emulation.setDeviceMetricsOverride",
                            tab.session,
                            width=width,
                            height=900,
                            deviceScaleFactor=1,
                            mobile=width < 600,
                        )
                        await devtools.send(
                            "Emulation.setEmulatedMedia",
                            tab.session,
                            features=[
                                {
                                    "name": "prefers-color-scheme",
                                    "value": "dark" if dark else "light",
                                }
                            ],
                        )
                        await tab.goto(base + path)
                        shot = await devtools.send(
                            "Page.captureScreenshot",
                            tab.session,
                            format="png",
                            captureBeyondViewport=True,
                        )
                        (out / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
                        print(out / f"{name}.png")
                    conn.close()
                finally:
                    await shut(process)
                    drain.cancel()
            del alice


# A band across the top of the page saying which tab this is and which node
# served it (nginx's X-Upstream, fetched again from the page's own URL).
LABEL = """(text) => fetch(location.href, {credentials: 'same-origin'}).then((r) => {
  const band = document.getElementById('shot-label') || document.createElement('div');
  band.id = 'shot-label';
  band.style.cssText = 'position:fixed;top:0;left:0;right:0;z-index:99;padding:6px 12px;' +
    'background:#1d3557;color:#fff;font:14px/1.4 sans-serif';
  band.textContent = text + ' \u2014 served by ' + r.headers.get('X-Upstream') +
    ' (nginx X-Upstream) at ' + new Date().toISOString().slice(11, 19) + ' UTC';
  document.body.appendChild(band);
  return r.headers.get('X-Upstream');
})"""


async def capture(devtools: DevTools, tab: Tab, path: Path) -> None:
    """The tab's viewport (1000 x 760) as a PNG, scrolled to its last post."""
    await tab.evaluate(
        "(document.querySelector('#posts .post:last-child') || document.body)"
        ".scrollIntoView({block: 'center'})"
    )
    shot = await devtools.send("Page.captureScreenshot", tab.session, format="png")
    path.write_bytes(base64.b64decode(shot["data"]))
    print(path, f"{path.stat().st_size:,} bytes")


async def sized_tab(devtools: DevTools) -> Tab:
    """A tab (its own cookies) whose viewport is what `capture` takes."""
    tab = await Tab.open(devtools)
    await devtools.send(
        "Emulation.setDeviceMetricsOverride",
        tab.session,
        width=1000,
        height=760,
        deviceScaleFactor=1,
        mobile=False,
    )
    return tab


async def pinned_tab(devtools: DevTools, base: str, node: int) -> Tab:
    """A tab (its own cookies) whose requests nginx sends to node ``node``."""
    tab = await sized_tab(devtools)
    await devtools.send("Network.enable", tab.session)
    await devtools.send("Network.setCookie", tab.session, url=base, name="node", value=str(node))
    return tab


async def across_nodes(out: Path, cluster: Any, transport: str = "websocket") -> None:
    base = cluster.url
    suffix = "" if transport == "websocket" else f"-{transport}"
    over = SHOWN[transport]
    async with client() as http:
        ann, bob = Visitor(base, http), Visitor(base, http)
        ann.cookies["node"], bob.cookies["node"] = "1", "2"
        await ann.signup("ann")
        await bob.signup("bob")
        topic = await bob.new_topic(
            "general", "Across machines", "Reply through any node: every reader sees it live."
        )
        # The reader's page goes through a proxy that can cut it (nginx's
        # address, from 127.0.0.1).
        proxy = CutProxy(int(base.rsplit(":", 1)[1]), base.split("//")[1].split(":")[0])
        await proxy.start()
        reader_base = f"http://127.0.0.1:{proxy.port}"
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            process, endpoint, drain = await launch(profile)
            try:
                conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                devtools = DevTools(conn)
                author = await pinned_tab(devtools, base, 1)
                reader = await pinned_tab(devtools, reader_base, 2)
                if BLOCKED[transport]:
                    await devtools.send(
                        "Page.addScriptToEvaluateOnNewDocument",
                        reader.session,
                        source=BLOCKED[transport],
                    )
                await reader.goto(f"{reader_base}/t/{topic}")
                assert await reader.evaluate(WAIT_OPEN) == transport
                await author.goto(base + "/login")
                await author.evaluate(
                    "document.getElementById('name').value = 'ann';"
                    f"document.getElementById('password').value = {PASSWORD!r};"
                    "document.getElementById('login-form').submit()",
                    navigates=True,
                )
                await author.goto(f"{base}/t/{topic}")
                text = "Posted through node 1, read live through node 2."
                await author.evaluate(
                    f"document.getElementById('body').value = {json.dumps(text)};"
                    "document.getElementById('reply-form').submit()",
                    navigates=True,
                )
                shown = await reader.evaluate(f"({WAIT_POSTS})(2)")
                assert shown[-1] == text, shown
                assert await reader.evaluate("window.forum.received") == 1  # live, not reloaded
                up = [
                    await author.evaluate(f"({LABEL})('Tab 1: ann, pinned to node 1, posted')"),
                    await reader.evaluate(
                        f"({LABEL})('Tab 2: a reader pinned to node 2, reply arrived live "
                        f"over {over}')"
                    ),
                ]
                assert up == [f"{a}:8000" for a in cluster.addresses[:2]], up
                await capture(devtools, author, out / f"many-author{suffix}.png")
                await capture(devtools, reader, out / f"many-reader{suffix}.png")

                # The reader's connection cut for 30 s; replies posted meanwhile.
                loop = asyncio.get_running_loop()
                proxy.cut()
                cut_at = loop.time()
                missed = [
                    f"Missed reply {n}, posted through node 1 during the cut" for n in range(5)
                ]
                for body in missed:
                    await ann.reply(topic, body)
                await asyncio.wait_for(proxy.refusals.get(), 15)  # it tried to come back
                assert await reader.evaluate(f"({WAIT_POSTS})(1)") == [
                    "Reply through any node: every reader sees it live.",
                    text,
                ]
                await reader.evaluate(
                    "document.getElementById('shot-label').textContent = 'Tab 2: connection cut "
                    f"({over}; proxy drops it, refuses reconnects); 5 replies posted through "
                    "node 1 meanwhile'"
                )
                await capture(devtools, reader, out / f"many-cut{suffix}.png")
                # The cut itself lasts 30 s (not a wait for a server).
                await asyncio.sleep(max(0.0, cut_at + 30 - loop.time()))
                proxy.up = True
                up_at = loop.time()
                expected = [shown[0], text, *missed]
                assert (
                    await reader.evaluate(f"({WAIT_POSTS.replace('15000', '45000')})(7)")
                    == expected
                )
                state = await reader.evaluate("[window.forum.received, window.forum.resets]")
                assert state == [1 + len(missed), 0], state  # each once, from history
                await reader.evaluate(
                    f"({LABEL})('Tab 2 ({over}): cut for {up_at - cut_at:.0f} s, back "
                    f"{loop.time() - up_at:.0f} s later (backoff): {len(missed)} missed "
                    "replies once each, in order, no reload')"
                )
                await capture(devtools, reader, out / f"many-resumed{suffix}.png")
                conn.close()
            finally:
                await shut(process)
                drain.cancel()
                await proxy.close()


async def offline_main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        async with forum_server(Path(tmp)) as (_, base), client() as http:
            _, topic = await seed(base)
            dora = Visitor(base, http)
            await dora.signup("dora")
            proxy = CutProxy(int(base.rsplit(":", 1)[1]))
            await proxy.start()
            with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
                process, endpoint, drain = await launch(profile)
                try:
                    conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                    devtools = DevTools(conn)
                    tab = await sized_tab(devtools)
                    await tab.goto(f"http://127.0.0.1:{proxy.port}/t/{topic}")
                    await tab.evaluate(WAIT_OPEN)
                    proxy.cut()
                    for _ in range(2):
                        await asyncio.wait_for(proxy.refusals.get(), 10)
                    for text in OFFLINE_REPLIES:
                        await dora.reply(topic, text)
                    await capture(devtools, tab, out / "forum-offline.png")
                    proxy.up = True
                    await tab.evaluate(WAIT_CAUGHT_UP)
                    await capture(devtools, tab, out / "forum-caught-up.png")
                    conn.close()
                finally:
                    await shut(process)
                    drain.cancel()
                    await proxy.close()


OFFLINE_REPLIES = [
    "Posted while your train was in the tunnel.",
    "And a second one, with `code`.",
    "The third: all three show once, in order, when the page is back.",
]


def many_main(out: Path, transport: str = "websocket") -> None:
    if transport not in BLOCKED:
        raise SystemExit(f"transport must be one of {', '.join(BLOCKED)}, not {transport!r}")
    out.mkdir(parents=True, exist_ok=True)
    many = load("forum/many.py")
    with many.ManyNodes(nodes=4, port=8888) as cluster:
        print(f"== {cluster.broker}; nodes {cluster.addresses}; {cluster.url}")
        asyncio.run(across_nodes(out, cluster, transport))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--many"]:
        many_main(
            Path(sys.argv[2] if len(sys.argv) > 2 else "docs/figures"),
            sys.argv[3] if len(sys.argv) > 3 else "websocket",
        )
    elif sys.argv[1:2] == ["--offline"]:
        asyncio.run(offline_main(Path(sys.argv[2] if len(sys.argv) > 2 else "docs/figures")))
    else:
        asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "forum-screenshots")))
