"""Real HTTP/2 clients against HTTPServer(http2=True): curl, h2load, Chromium.

Each skips, saying why, when its program is missing (the Makefile installs
them from Debian's packages).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._wait import HANG_GUARD

CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")
CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)


def curl_has_http2() -> bool:
    if CURL is None:
        return False
    out = subprocess.run([CURL, "-V"], capture_output=True, text=True, check=False).stdout
    return "HTTP2" in out


NEEDS_CURL = pytest.mark.skipif(
    not curl_has_http2(), reason="curl with HTTP/2 support is not installed"
)
NEEDS_H2LOAD = pytest.mark.skipif(
    H2LOAD is None, reason="h2load is not installed (apt-get install nghttp2-client)"
)


class Echo(RequestHandler):
    def get(self) -> None:
        self.write(f"{self.request.version} {self.get_argument('q', '')}")

    def post(self) -> None:
        self.write(f"{len(self.request.body)} bytes")


PAGE = """<!doctype html><html><head><link rel="stylesheet" href="{style}">
<script src="{script}"></script></head><body><p id="out">waiting</p></body></html>"""


class Page(RequestHandler):
    def get(self) -> None:
        self.write(
            PAGE.format(style=self.static_url("style.css"), script=self.static_url("app.js"))
        )


STATIC_JS = """window.addEventListener('load', () => {
  const entries = performance.getEntriesByType('resource').concat(
    performance.getEntriesByType('navigation'));
  document.getElementById('out').textContent =
    'protocols:' + entries.map(e => e.nextHopProtocol).sort().join(',');
});"""


async def run(*argv: str, timeout: float = HANG_GUARD) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode("utf-8", "replace")


def make_app(static_path: str | None = None) -> Application:
    return Application([("/", Echo), ("/page", Page)], static_path=static_path)


class PlainTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @NEEDS_CURL
    @gen_test
    async def test_curl_prior_knowledge(self) -> None:
        assert CURL is not None
        code, out = await run(
            CURL, "-sS", "--http2-prior-knowledge", "-w", " %{http_version}", self.get_url("/?q=pk")
        )
        assert code == 0, out
        assert out == "HTTP/2.0 pk 2"

    @NEEDS_CURL
    @gen_test
    async def test_curl_upgrade_h2c(self) -> None:
        assert CURL is not None
        code, out = await run(
            CURL, "-sS", "--http2", "-w", " %{http_version}", self.get_url("/?q=up")
        )
        assert code == 0, out
        assert out == "HTTP/2.0 up 2"

    @NEEDS_CURL
    @gen_test
    async def test_curl_post_over_h2c(self) -> None:
        assert CURL is not None
        code, out = await run(
            CURL, "-sS", "--http2-prior-knowledge", "--data-binary", "x" * 100000, self.get_url("/")
        )
        assert code == 0, out
        assert out == "100000 bytes"

    @NEEDS_H2LOAD
    @gen_test(timeout=30)
    async def test_h2load_many_streams(self) -> None:
        assert H2LOAD is not None
        code, out = await run(H2LOAD, "-n", "2000", "-c", "2", "-m", "50", self.get_url("/?q=1"))
        assert code == 0, out
        assert re.search(r"2000 succeeded, 0 failed, 0 errored", out), out
        assert "status codes: 2000 2xx" in out, out


class TLSTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        self.static = tempfile.TemporaryDirectory(prefix="squall-h2-static-")
        with open(os.path.join(self.static.name, "style.css"), "w") as f:
            f.write("body { color: #333; }\n")
        with open(os.path.join(self.static.name, "app.js"), "w") as f:
            f.write(STATIC_JS)
        return make_app(self.static.name)

    def tearDown(self) -> None:
        super().tearDown()
        self.static.cleanup()

    def get_httpserver_options(self) -> dict[str, Any]:
        options = super().get_httpserver_options()
        options["http2"] = True
        return options

    @NEEDS_CURL
    @gen_test
    async def test_curl_alpn(self) -> None:
        assert CURL is not None
        code, out = await run(
            CURL, "-sSk", "--http2", "-w", " %{http_version}", self.get_url("/?q=tls")
        )
        assert code == 0, out
        assert out == "HTTP/2.0 tls 2"

    @NEEDS_CURL
    @gen_test
    async def test_curl_http11_over_tls(self) -> None:
        assert CURL is not None
        code, out = await run(
            CURL, "-sSk", "--http1.1", "-w", " %{http_version}", self.get_url("/?q=one")
        )
        assert code == 0, out
        assert out == "HTTP/1.1 one 1.1"

    @NEEDS_H2LOAD
    @gen_test(timeout=30)
    async def test_h2load_over_tls(self) -> None:
        assert H2LOAD is not None
        code, out = await run(H2LOAD, "-n", "1000", "-c", "2", "-m", "32", self.get_url("/"))
        assert code == 0, out
        assert "Application protocol: h2" in out, out
        assert "1000 succeeded, 0 failed" in out, out

    @pytest.mark.skipif(
        CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
    )
    @gen_test(timeout=30)
    async def test_chromium_loads_page_and_static_files_over_h2(self) -> None:
        assert CHROMIUM is not None
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            code, out = await run(
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-extensions",
                "--ignore-certificate-errors",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                self.get_url("/page"),
                timeout=HANG_GUARD,
            )
        assert "protocols:h2,h2,h2" in out, out[-2000:]
