"""The chat demo written against ``tornado.*`` runs unmodified under ``python -m squall.compat``.

The Tornado-flavoured copy is made from demos/chat at test time (every
``squall`` name spelled ``tornado``), so the two can never drift apart; the
copy imports nothing of Squall's and would run on Tornado itself.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from pathlib import Path

from squall.httpclient import AsyncHTTPClient, HTTPRequest
from squall.websocket import websocket_connect

from .._wait import HANG_GUARD
from ._util import DEMOS, run, stop
from .test_chat import Browser, read_json


def tornado_copy(dest: Path) -> Path:
    shutil.copytree(DEMOS / "chat", dest)
    app = dest / "app.py"
    source = app.read_text(encoding="utf-8")
    app.write_text(re.sub(r"\bsquall\b", "tornado", source), encoding="utf-8")
    return app


def test_tornado_chat_runs_unmodified_under_compat(tmp_path: Path) -> None:
    app = tornado_copy(tmp_path / "chat")
    text = app.read_text(encoding="utf-8")
    assert "squall" not in text and "import tornado.web" in text

    async def main() -> None:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "squall.compat",
            str(app),
            "--port=0",
            "--cookie_secret=compat-secret",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        try:
            line = (await process.stdout.readline()).decode()
            found = re.search(r"http://\S+", line)
            assert found is not None, f"no address printed: {line!r}"
            base = found.group(0).rstrip("/")
            http = AsyncHTTPClient(force_instance=True)
            try:
                alice, bob = Browser(base, http), Browser(base, http)
                assert (await alice.login("alice")).code == 302
                assert (await bob.login("bob")).code == 302
                page = await alice.fetch("/")
                assert page.code == 200 and b"alice" in page.body
                socket = await websocket_connect(
                    HTTPRequest(
                        base.replace("http", "ws", 1) + "/chatsocket?cursor=0",
                        headers={"Cookie": bob.cookie_header()},
                    )
                )
                sent = await alice.post("/a/message/new", body="hello from tornado code")
                assert sent["messages"][0]["body"] == "hello from tornado code"
                polled = await bob.post("/a/message/updates", cursor="0")
                assert [m["body"] for m in polled["messages"]] == ["hello from tornado code"]
                pushed = await read_json(socket)
                assert pushed["messages"] == polled["messages"]
                socket.close()
            finally:
                http.close()
        finally:
            await stop(process)

    run(main(), limit=HANG_GUARD)
