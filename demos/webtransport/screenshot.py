"""The screenshot of docs/figures/webtransport-chromium.png: Chromium's WebTransport echo.

``python demos/webtransport/screenshot.py [OUT.png]`` starts ``squall run
--http3`` on ``app.py`` (an ASGI application, the ``webtransport`` scope)
with a short-lived certificate, serves ``page.py``'s page over plain HTTP
from this process, and has headless Chromium load it with ``--screenshot``.
The page echoes a datagram and a stream through the session and shows what
came back; this server holds the end of the page until the page has posted
its results, then appends the access-log lines ``squall run`` printed for
the session, so the page's load event (and the screenshot) comes once all
of it is there. Needs Chromium (``CHROMIUM`` names another binary) and
``squall[http3]``. Exits 1 if the echoes did not come back.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import shutil
import socket
import sys
import tempfile
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, ROOT)

from page import page, short_lived_certificate  # noqa: E402

from squall.httpserver import HTTPServer  # noqa: E402
from squall.netutil import bind_sockets  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402

LIMIT = 60.0
OUT = os.path.join(ROOT, "docs", "figures", "webtransport-chromium.png")


def free_port() -> int:
    """A port free for both TCP and UDP on 127.0.0.1 (HTTP/3 listens on both)."""
    for _ in range(20):
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no port free for both TCP and UDP")


class Page(RequestHandler):
    """The page, its end held until the results came (see the module)."""

    async def get(self) -> None:
        settings = self.application.settings
        self.write(settings["page"])
        await self.flush()
        results = await settings["result"]
        server_log: list[str] = settings["server_log"]
        changed: asyncio.Event = settings["changed"]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5
        # The application prints the close it heard; the page closed first.
        while not any("session closed" in line for line in server_log):
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), max(deadline - loop.time(), 0))
            except TimeoutError:
                break
        log = [line for line in server_log if '"CONNECT ' in line or "session closed" in line]
        self.write(
            "<h2 style='font-size:17px;margin:20px 0 6px'>squall run's output "
            "for the session</h2><pre>"
            + html.escape("\n".join(log) or "(no line)")
            + "</pre><p class=sub>posted by the page: <code>"
            + html.escape(json.dumps(results))
            + "</code></p>"
        )

    def post(self) -> None:
        future = self.application.settings["result"]
        if not future.done():
            future.set_result(json.loads(self.request.body))


async def main(out: str) -> int:
    chromium = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if chromium is None:
        print("Chromium is not installed", file=sys.stderr)
        return 1
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="squall-wt-shot-") as tmp:
        certfile, keyfile, digest = short_lived_certificate(tmp)
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "squall",
            "run",
            "--app-dir",
            HERE,
            "app:app",
            "--http3",
            "--certfile",
            certfile,
            "--keyfile",
            keyfile,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": ROOT, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        assert server.stdout is not None
        server_log: list[str] = []
        listening = loop.create_future()
        changed = asyncio.Event()

        async def read_log() -> None:
            assert server.stdout is not None
            while line := await server.stdout.readline():
                text = line.decode(errors="replace").rstrip()
                server_log.append(text)
                changed.set()
                print("squall run:", text)
                if "Listening on" in text and not listening.done():
                    listening.set_result(None)
            if not listening.done():
                listening.set_exception(RuntimeError("squall run ended"))

        reader = asyncio.ensure_future(read_log())
        result: asyncio.Future[Any] = loop.create_future()
        pages = HTTPServer(
            Application(
                [("/", Page), ("/result", Page)],
                page=page(f"https://127.0.0.1:{port}/echo", digest),
                result=result,
                server_log=server_log,
                changed=changed,
                log_function=lambda handler: None,
            )
        )
        sockets = bind_sockets(0, "127.0.0.1")
        pages.add_sockets(sockets)
        page_port = sockets[0].getsockname()[1]
        try:
            await asyncio.wait_for(listening, LIMIT)
            browser = await asyncio.create_subprocess_exec(
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={tmp}/profile",
                f"--screenshot={out}",
                "--window-size=900,470",
                f"http://127.0.0.1:{page_port}/",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                await asyncio.wait_for(browser.wait(), LIMIT)
            finally:
                if browser.returncode is None:
                    browser.kill()
                    await browser.wait()
        finally:
            pages.stop()
            if server.returncode is None:
                server.terminate()
            await asyncio.wait_for(server.wait(), 10)
            await reader
    got = result.result() if result.done() else None
    print("page posted:", got)
    print("screenshot:", out)
    return 0 if got == {"datagram": "echo ping", "stream": "echo hello"} else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else OUT)))
