"""Screenshots of the forum for review: ``python -m tests.demos.forum.screenshots OUTDIR``.

Seeds a forum (SQLite in a temporary directory) with a few users, topics, a
post with code and a quote, then captures pages in headless Chromium at
desktop and 360 px widths, light and dark. Not a test: run it by hand.
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
from pathlib import Path

from squall.websocket import websocket_connect

from ..test_chat_browser import DevTools, Tab, launch, shut
from ._client import PASSWORD, Visitor, client, forum_server

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


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "forum-screenshots")))
