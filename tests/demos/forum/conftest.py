"""The forum's tests run on SQLite, MariaDB and PostgreSQL: ``db_url`` is a
fresh database on each backend in turn. The servers start once per session
(from Debian's packages, in temporary directories); where one cannot start,
its tests skip saying why."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from ._servers import MariaDB, PostgreSQL

BACKENDS = ["sqlite", "mariadb", "postgresql"]
_started: dict[str, Any] = {}
_failed: dict[str, str] = {}


def _server(kind: str) -> Any:
    if kind in _failed:
        pytest.skip(_failed[kind])
    if kind not in _started:
        cls = MariaDB if kind == "mariadb" else PostgreSQL
        missing: Optional[str] = cls.missing()
        driver = "aiomysql" if kind == "mariadb" else "asyncpg"
        try:
            __import__(driver)
        except ImportError:
            missing = missing or f"{driver} is not installed (pip install squall[forum])"
        if missing:
            _failed[kind] = missing
            pytest.skip(missing)
        server = cls()
        try:
            server.start()
        except Exception as exc:
            _failed[kind] = f"{kind} could not be started: {exc}"
            pytest.skip(_failed[kind])
        _started[kind] = server
    return _started[kind]


@pytest.fixture(scope="session", autouse=True)
def _stop_servers() -> Iterator[None]:
    yield
    for server in _started.values():
        server.stop()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database on each backend in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'forum.sqlite3'}"
    server = _server(request.param)
    url: str = asyncio.run(server.new_database())
    return url
