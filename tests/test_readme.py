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
            await asyncio.wait_for(checks["test_echo"](ws_connect), 10)
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
