"""Fixtures for the sans-I/O HTTP/1.1 tests: every test runs on both backends."""

from __future__ import annotations

import pytest

from squall._h1 import (
    NEED_DATA,
    PAUSED,
    ConnectionClosed,
    Event,
    H1Connection,
    H1Limits,
)

BACKENDS = ["python", "httptools"]


@pytest.fixture(params=BACKENDS)
def parser(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


def drain(conn: H1Connection) -> list[Event]:
    """Return the events available now (stops at NEED_DATA, PAUSED or a close)."""
    out: list[Event] = []
    for _ in range(10_000):
        ev = conn.next_event()
        if ev is NEED_DATA or ev is PAUSED:
            return out
        assert not isinstance(ev, type(NEED_DATA))
        out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return out
    raise AssertionError("next_event never stopped")


def server(parser: str, data: bytes = b"", **kwargs: object) -> H1Connection:
    conn = H1Connection("server", parser=parser, **kwargs)  # type: ignore[arg-type]
    if data:
        conn.receive_data(data)
    return conn


def client(parser: str, **kwargs: object) -> H1Connection:
    return H1Connection("client", parser=parser, **kwargs)  # type: ignore[arg-type]


__all__ = ["BACKENDS", "H1Limits", "client", "drain", "server"]
