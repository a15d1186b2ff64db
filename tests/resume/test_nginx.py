"""Server-Sent Events through nginx, configured with the ``location`` block the
"Resuming streams" guide gives: each event arrives before the next is sent
(nothing buffered or compressed on the way). Skipped without nginx."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest

from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application
from tests._wait import HANG_GUARD

from ._clients import H1Stream
from .test_eventsource import Feed

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
)
GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide" / "resuming.md"

SKELETON = """
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log stderr notice;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # Compression on for event streams elsewhere: the guide's block turns it off.
    gzip on;
    gzip_types text/event-stream;
    server {{
        listen 127.0.0.1:{port};
{location}
    }}
}}
"""


def guide_location(upstream_port: int) -> str:
    block = re.search(r"```nginx\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert block is not None, "the guide lost its nginx block"
    text = block.group(1)
    assert "proxy_pass http://127.0.0.1:8000;" in text
    return text.replace("127.0.0.1:8000", f"127.0.0.1:{upstream_port}")


class Ticker(Feed):
    ping_interval = 0.05


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx)")
class NginxTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        loop = asyncio.get_event_loop()
        self.state: dict[str, Any] = {
            "queue": asyncio.Queue(),
            "handlers": [],
            "refused": [],
            "cancelled": loop.create_future(),
        }
        return Application([("/rooms/feed", Ticker)], state=self.state)

    async def start_nginx(self, workdir: str) -> tuple[asyncio.subprocess.Process, int]:
        assert NGINX is not None
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        conf = SKELETON.format(
            user="user root;" if os.geteuid() == 0 else "",
            dir=workdir,
            port=port,
            location=guide_location(self.get_http_port()),
        )
        Path(workdir, "nginx.conf").write_text(conf)
        process = await asyncio.create_subprocess_exec(
            NGINX,
            "-p",
            workdir,
            "-c",
            f"{workdir}/nginx.conf",
            "-e",
            "stderr",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, NGINX=f"{listener.fileno()};"),
            pass_fds=(listener.fileno(),),
        )
        listener.close()
        assert process.stderr is not None
        log = b""
        while b"start worker process" not in log:
            line = await asyncio.wait_for(process.stderr.readline(), HANG_GUARD)
            assert line, f"nginx exited: {log.decode(errors='replace')}"
            log += line
        return process, port

    @gen_test
    async def test_events_pass_through_the_guide_s_configuration_unbuffered(self) -> None:
        with tempfile.TemporaryDirectory(prefix="squall-nginx-") as workdir:
            process: Optional[asyncio.subprocess.Process] = None
            stream: Optional[H1Stream] = None
            try:
                process, port = await self.start_nginx(workdir)
                stream = await H1Stream.open(
                    port, "/rooms/feed", {"Accept-Encoding": "gzip", "Last-Event-ID": "3-e"}
                )
                assert stream.status == 200
                assert stream.headers["content-type"] == "text/event-stream"
                assert "content-encoding" not in stream.headers
                queue = self.state["queue"]
                for n in range(3):
                    # The next event is sent only once this one came through.
                    queue.put_nowait({"data": f"event {n}", "id": f"{n + 4}-e"})
                    await stream.until(lambda n=n: len(stream.events()) == n + 1)  # type: ignore[misc]
                assert [e["data"] for e in stream.events()] == ["event 0", "event 1", "event 2"]
                assert self.state["last_event_id"] == "3-e"
                await stream.until(lambda: b": ping\n\n" in stream.body)
            finally:
                if stream is not None:
                    await stream.leave()
                if process is not None:
                    process.terminate()
                    assert process.stderr is not None
                    await asyncio.wait_for(process.stderr.read(), HANG_GUARD)
                    await asyncio.wait_for(process.wait(), HANG_GUARD)
