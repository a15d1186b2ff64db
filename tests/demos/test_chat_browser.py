"""The chat demo in a real browser: two headless Chromium tabs talk to each other.

Chromium is driven through its DevTools protocol over a WebSocket opened by
squall's own `websocket_connect`, so no extra Python package is needed. The
test is skipped when no Chromium is installed (Debian: ``apt-get install
chromium``; set ``CHROMIUM`` to use another binary).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import re
import shutil
import signal
import tempfile
from typing import Any, Optional

import pytest

from squall.websocket import WebSocketClientConnection, websocket_connect

from ._util import load, run

chat = load("chat/app.py")

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-port=0",
]
BROWSER_LIMIT = 9.0
# Nothing speaks WebSocket on port 9 (discard): the handshake fails at once.
BROKEN_WEBSOCKET = """
(() => {
  const Real = window.WebSocket;
  window.WebSocket = function () { return new Real('ws://127.0.0.1:9/'); };
  window.WebSocket.OPEN = Real.OPEN;
})();
"""

# Resolves with the sender and the count of elements inside message bodies
# (0 unless markup got through unescaped) once a message with ``text`` shows.
WAIT_FOR_MESSAGE = """(text) => new Promise((resolve, reject) => {
  const inbox = document.getElementById('inbox');
  const look = () => {
    for (const node of inbox.querySelectorAll('.message')) {
      if (node.querySelector('.body').textContent === text) {
        resolve({
          from: node.querySelector('.from').textContent,
          markup: inbox.querySelectorAll('.body *').length,
        });
        return true;
      }
    }
    return false;
  };
  if (!look()) {
    new MutationObserver(look).observe(inbox, {childList: true, subtree: true});
    setTimeout(() => reject(new Error('no message ' + text)), 4000);
  }
})"""


class DevTools:
    """A minimal Chrome DevTools protocol client (flattened sessions)."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.waiters: list[tuple[str, Optional[str], asyncio.Future[dict[str, Any]]]] = []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        while (raw := await self.conn.read_message()) is not None:
            message = json.loads(raw)
            if "id" in message:
                future = self.pending.pop(message["id"])
                if "error" in message:
                    future.set_exception(AssertionError(f"DevTools error: {message['error']}"))
                else:
                    future.set_result(message.get("result", {}))
                continue
            for waiter in list(self.waiters):
                method, session, future = waiter
                if method == message["method"] and session == message.get("sessionId"):
                    self.waiters.remove(waiter)
                    future.set_result(message.get("params", {}))
        for future in self.pending.values():
            future.set_exception(AssertionError("the browser closed the DevTools socket"))

    async def send(self, method: str, session: Optional[str] = None, **params: Any) -> Any:
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.conn.write_message(json.dumps(message))
        return await future

    def event(self, method: str, session: Optional[str]) -> asyncio.Future[dict[str, Any]]:
        """A future for the next ``method`` event (ask before causing it)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.waiters.append((method, session, future))
        return future


class Tab:
    """One page in its own browser context (its own cookies: its own user)."""

    def __init__(self, devtools: DevTools, session: str) -> None:
        self.devtools = devtools
        self.session = session

    @classmethod
    async def open(cls, devtools: DevTools) -> Tab:
        context = await devtools.send("Target.createBrowserContext")
        target = await devtools.send(
            "Target.createTarget", url="about:blank", browserContextId=context["browserContextId"]
        )
        attached = await devtools.send(
            "Target.attachToTarget", targetId=target["targetId"], flatten=True
        )
        tab = cls(devtools, attached["sessionId"])
        await devtools.send("Page.enable", tab.session)
        return tab

    async def goto(self, url: str) -> None:
        loaded = self.devtools.event("Page.loadEventFired", self.session)
        await self.devtools.send("Page.navigate", self.session, url=url)
        await loaded

    async def evaluate(self, expression: str, *, navigates: bool = False) -> Any:
        """The value of ``expression`` (awaited if a promise)."""
        loaded = self.devtools.event("Page.loadEventFired", self.session) if navigates else None
        answer = await self.devtools.send(
            "Runtime.evaluate",
            self.session,
            expression=expression,
            awaitPromise=True,
            returnByValue=True,
        )
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise AssertionError(details.get("exception", {}).get("description", details))
        if loaded is not None:
            await loaded
        return answer["result"].get("value")

    async def login(self, base: str, name: str) -> None:
        await self.goto(f"{base}/login")
        await self.evaluate(
            f"document.getElementById('name').value = {json.dumps(name)};"
            "document.querySelector('form.login').submit()",
            navigates=True,
        )

    async def say(self, text: str) -> None:
        await self.evaluate(
            f"document.getElementById('body').value = {json.dumps(text)};"
            "document.getElementById('message-form').requestSubmit()"
        )

    async def wait_for_message(self, text: str) -> Any:
        """Waits (in the page) until a message with body ``text`` is shown."""
        return await self.evaluate(f"({WAIT_FOR_MESSAGE})({json.dumps(text)})")


async def launch(profile: str) -> tuple[asyncio.subprocess.Process, str, asyncio.Future[None]]:
    """Starts Chromium; returns it, its DevTools URL and the task draining its stderr."""
    assert CHROMIUM is not None
    process = await asyncio.create_subprocess_exec(
        CHROMIUM,
        *FLAGS,
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stderr is not None
    stderr = process.stderr
    log: list[bytes] = []
    while line := await stderr.readline():
        log.append(line)
        found = re.search(rb"DevTools listening on (ws://\S+)", line)
        if found:
            break
    else:
        await process.wait()
        raise AssertionError(b"Chromium did not start:\n" + b"".join(log[-20:]))

    async def drain() -> None:
        while await stderr.readline():
            pass

    return process, found.group(1).decode(), asyncio.ensure_future(drain())


async def shut(process: asyncio.subprocess.Process) -> None:
    """Ends Chromium and its helpers (they share the session it was started in)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # already gone, helpers included
    await process.wait()


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_two_tabs_chat_over_websocket_and_long_polling() -> None:
    async def main() -> None:
        app = chat.make_app(cookie_secret="browser-test")
        server, url = chat.listen(app, 0, "127.0.0.1")
        base = url.rstrip("/")
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            process, endpoint, drain = await launch(profile)
            conn: Optional[WebSocketClientConnection] = None
            try:
                conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                devtools = DevTools(conn)
                alice, bob = await asyncio.gather(Tab.open(devtools), Tab.open(devtools))
                # Bob's WebSockets never connect (as behind a proxy that drops
                # them): his page must fall back to long polling.
                await devtools.send(
                    "Page.addScriptToEvaluateOnNewDocument", bob.session, source=BROKEN_WEBSOCKET
                )
                await asyncio.gather(alice.login(base, "alice"), bob.login(base, "bob"))
                assert await alice.evaluate("window.chat.ready") == "websocket"
                assert await bob.evaluate("window.chat.ready") == "poll"
                # The versioned stylesheet was served and applied.
                background = "getComputedStyle(document.body).backgroundColor"
                assert await alice.evaluate(background) == "rgb(246, 248, 250)"

                text = "hi <b>bob</b> & <script>alert(1)</script>"
                await alice.say(text)
                assert await bob.wait_for_message(text) == {"from": "alice", "markup": 0}
                assert await alice.wait_for_message(text) == {"from": "alice", "markup": 0}

                await bob.say("hello alice")
                assert await alice.wait_for_message("hello alice") == {"from": "bob", "markup": 0}
                assert [m["from"] for m in app.settings["message_buffer"].since(0)] == [
                    "alice",
                    "bob",
                ]
                await devtools.send("Browser.close")
            finally:
                if conn is not None:
                    conn.close()
                await shut(process)
                drain.cancel()
                server.stop()
                await server.close_all_connections()

    run(main(), limit=BROWSER_LIMIT)
