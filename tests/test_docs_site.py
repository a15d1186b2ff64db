"""The built documentation site: links resolve, pages have titles, names are
links, option names keep their double dash, and the front page renders in
headless Chromium.

``make docs`` builds docs/_build/html (with ``-n -W``; in ``make test``
beside the suite, under the lock the fixture takes too); when that build is
missing or older than its sources, the fixture builds it
(with the same options, so a reference that does not resolve fails here too,
and from the pure modules, as make docs does, also when the suite runs
against the compiled build).
``SQUALL_DOCS_SCREENSHOTS=DIR`` also writes PNGs of three pages into DIR.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import os
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import pytest

from squall.websocket import websocket_connect

from .demos._util import run
from .demos.test_chat_browser import CHROMIUM, DevTools, Tab, launch, shut

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
HTML = DOCS / "_build" / "html"


def _sources() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "CHANGELOG.md"]
    for base, pattern in (
        (DOCS, "*.md"),
        (DOCS, "*.py"),
        (DOCS, "*.rst"),
        (ROOT / "squall", "*.py"),
    ):
        found += [p for p in base.rglob(pattern) if "_build" not in p.parts]
    return found


@pytest.fixture(scope="module")
def site() -> Path:
    # Sphinx rewrites only the pages that changed: make docs (and this
    # fixture) touch a stamp after a build. make test builds the docs beside
    # the pure suite: both build under the same lock, so the tests read a
    # whole site, never one half written.
    HTML.mkdir(parents=True, exist_ok=True)
    with open(DOCS / "_build" / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stamp = HTML / ".built"
        newest = max(p.stat().st_mtime for p in _sources())
        if not stamp.exists() or stamp.stat().st_mtime < newest:
            # The reference is generated from the pure modules' docstrings, as
            # make docs generates it. mypyc keeps no docstring of a compiled
            # class or method: on the compiled build (make test-compiled, make
            # dist) HTTPServerRequest would vanish from the page and every
            # reference to it would fail to resolve.
            env = dict(os.environ, SQUALL_NO_SPEEDUPS="1")
            subprocess.run(
                [sys.executable, "-m", "sphinx", "-n", "-W", "--keep-going", "-q", "-b", "html"]
                + [str(DOCS), str(HTML)],
                check=True,
                timeout=600,
                env=env,
            )
            stamp.touch()
    return HTML


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.title = ""
        self.h1 = 0
        self.cites = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(str(values["id"]))
        if tag == "a" and values.get("href"):
            self.hrefs.append(str(values["href"]))
        if tag == "a" and values.get("name"):
            self.ids.add(str(values["name"]))
        self._in_title = tag == "title"
        self.h1 += tag == "h1"
        self.cites += tag == "cite"

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data


def _pages(site: Path) -> dict[Path, _Page]:
    pages = {}
    for path in site.rglob("*.html"):
        parser = _Page()
        parser.feed(path.read_text())
        pages[path] = parser
    return pages


def test_every_internal_link_resolves_to_a_file_and_an_anchor(site: Path) -> None:
    pages = _pages(site)
    broken = []
    checked = 0
    for path, page in pages.items():
        for href in page.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith("mailto:"):
                continue
            target_url, anchor = urldefrag(href)
            target = (path.parent / unquote(target_url)).resolve() if target_url else path
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.exists():
                broken.append(f"{path.relative_to(site)}: {href} (no file)")
            elif anchor and target.suffix == ".html":
                if target not in pages or unquote(anchor) not in pages[target].ids:
                    broken.append(f"{path.relative_to(site)}: {href} (no anchor)")
    assert checked > 1000
    assert not broken, "\n".join(broken[:40])


def test_every_page_has_a_title_and_a_heading(site: Path) -> None:
    untitled = [
        str(path.relative_to(site))
        for path, page in _pages(site).items()
        if path.name not in ("genindex.html", "search.html", "py-modindex.html")
        and "_modules" not in path.parts
        and (not page.title.strip() or page.h1 != 1)
    ]
    assert not untitled


def test_names_in_the_api_reference_are_links(site: Path) -> None:
    api = {p: page for p, page in _pages(site).items() if "api" in p.parts}
    assert sum(page.cites for page in api.values()) == 0
    server = (site / "api" / "squall.httpserver.html").read_text()
    # A short reference in a docstring, and one into Python's documentation.
    assert 'href="squall.tcpserver.html#squall.tcpserver.TCPServer"' in server
    assert 'href="https://docs.python.org/3/library/ssl.html#ssl.SSLContext"' in server
    assert ">.HTTPServer<" not in server


def test_the_cli_reference_keeps_double_dashes(site: Path) -> None:
    page = (site / "guide" / "cli.html").read_text()
    assert "\u2013" not in page  # an en dash: smart quotes turned "--" into one
    assert "--bind" in page and "--workers" in page


def test_the_changelog_faq_and_figures_are_in_the_site(site: Path) -> None:
    assert "Milestone 1" in (site / "changelog.html").read_text()
    assert "Is uvloop required?" in (site / "faq.html").read_text()
    assert "ASGI: Starlette hello world" in (site / "figures.html").read_text()


# Resolves with what a reader sees first on the page.
FRONT = """(() => {
  const code = document.querySelector('.highlight pre');
  const links = Array.from(document.querySelectorAll('article a.reference.internal'));
  return {
    title: document.title,
    h1: document.querySelector('h1').textContent.replace(/[#\u00b6\\s]+$/, ''),
    code: code ? code.textContent : '',
    codeHeight: code ? code.getBoundingClientRect().height : 0,
    stylesheets: document.styleSheets.length,
    internal: links.length,
  };
})()"""


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_front_page_renders_its_program_in_chromium(site: Path) -> None:
    shots = os.environ.get("SQUALL_DOCS_SCREENSHOTS")

    async def main() -> dict[str, object]:
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            process, endpoint, drain = await launch(profile)
            try:
                conn = await websocket_connect(endpoint, max_message_size=64 * 1024 * 1024)
                devtools = DevTools(conn)
                tab = await Tab.open(devtools)
                await tab.goto((site / "index.html").as_uri())
                seen: dict[str, object] = await tab.evaluate(FRONT)
                if shots:
                    out = Path(shots)
                    out.mkdir(parents=True, exist_ok=True)
                    for name, page in (
                        ("docs-front", "index.html"),
                        ("docs-api-httpserver", "api/squall.httpserver.html"),
                        ("docs-squall-run", "guide/cli.html"),
                    ):
                        await devtools.send(
                            "Emulation.setDeviceMetricsOverride",
                            tab.session,
                            width=1280,
                            height=900,
                            deviceScaleFactor=1,
                            mobile=False,
                        )
                        await tab.goto((site / page).as_uri())
                        shot = await devtools.send(
                            "Page.captureScreenshot", tab.session, format="png"
                        )
                        (out / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
                conn.close()
                devtools.reader.cancel()
                await asyncio.gather(devtools.reader, return_exceptions=True)
                return seen
            finally:
                await shut(process)
                drain.cancel()

    seen = run(main(), 60.0)
    assert seen["title"] == f"Squall {__import__('squall').version}"
    assert seen["h1"] == "Squall"
    assert "WebSocketHandler" in str(seen["code"]) and "RequestHandler" in str(seen["code"])
    assert float(str(seen["codeHeight"])) > 100  # rendered, not collapsed
    assert int(str(seen["stylesheets"])) > 0
    assert int(str(seen["internal"])) >= 3  # the walk-through, migrating, the ASGI guide
