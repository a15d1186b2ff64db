"""The README's complete program and its tests, run as a reader would run them."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from squall.httpserver import HTTPServer
from squall.testclient import TestClient
from squall.testing import bind_unused_port
from squall.websocket import websocket_connect
from tests._wait import HANG_GUARD

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def _run(source: str) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(source, str(README), "exec"), namespace)
    return namespace


def _check(program: str) -> None:
    tests = _blocks()[1]
    app = _run(program)["app"]
    checks = _run(tests)
    with TestClient(app) as client:
        checks["test_home"](client)

    async def main() -> None:
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        opened = []

        async def ws_connect(path: str) -> Any:
            connection = await websocket_connect(f"ws://127.0.0.1:{port}{path}")
            opened.append(connection)
            return connection

        try:
            await asyncio.wait_for(checks["test_echo"](ws_connect), HANG_GUARD)
        finally:
            for connection in opened:
                connection.close()
            server.stop()
            await server.close_all_connections()

    asyncio.run(main())


def test_the_program_passes_its_tests() -> None:
    _check(_blocks()[0])


def test_the_tests_catch_a_changed_program() -> None:
    with pytest.raises(AssertionError):
        _check(_blocks()[0].replace("you said: ", "you typed: "))


# -- the front door: short, in a newcomer's order, its figures the table's

_TEXT = README.read_text()


def _sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, re.M)


def test_the_readme_reads_in_five_minutes() -> None:
    assert len(_TEXT.splitlines()) <= 180


def test_the_readme_goes_from_what_to_how_fast() -> None:
    assert _sections(_TEXT)[:6] == [
        "Install",
        "A complete program",
        "Run it",
        "Deploy it",
        "Test it",
        "How fast",
    ]
    intro = _TEXT.split("\n## ")[0]
    for reader in ("If you run Tornado", "If you run ASGI", "If you build something realtime"):
        assert reader in intro, reader
    install = _TEXT.split("## Install")[1].split("\n## ")[0]
    assert "python3 -m venv .venv" in install


def _quoted_figures(text: str) -> list[str]:
    return re.findall(r"\b\d+\.\d\dx\b", text)


def _not_in_table(intro: str, readme: str) -> list[str]:
    """The introduction's figures that the headline table does not show."""
    table = readme.split("<!-- headline:start")[1].split("<!-- headline:end")[0]
    return [f for f in _quoted_figures(intro) if not re.search(rf"[ (]{re.escape(f)}", table)]


def test_the_introductions_figures_are_the_tables() -> None:
    intro = _TEXT.split("\n## ")[0]
    assert len(_quoted_figures(intro)) == 3, _quoted_figures(intro)
    assert not _not_in_table(intro, _TEXT), "the introduction quotes a figure the table lacks"
    # and each paragraph names the Python its figure was measured on
    for paragraph in intro.split("\n\n")[2:]:
        assert re.search(r"CPython 3\.1[13]", paragraph), paragraph[:60]


def test_a_stale_figure_in_the_introduction_is_caught() -> None:
    intro = _TEXT.split("\n## ")[0]
    quoted = _quoted_figures(intro)[0]
    stale = f"{float(quoted.removesuffix('x')) + 0.01:.2f}x"
    assert stale not in _TEXT
    assert _not_in_table(intro.replace(quoted, stale), _TEXT) == [stale]


def test_make_test_says_how_long_it_takes() -> None:
    assert re.search(r"`make test` takes\s+about \d+ to \d+ minutes on 2 cores", _TEXT)
