from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._redis_server import REDIS_SERVER, SKIP_REASON, RedisServer
from ._servers import NATS_SERVER, NatsServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(workdir=tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (apt-get install nats-server)")
    pytest.importorskip("nats", reason="nats-py is not installed (pip install squall[nats])")
    server = NatsServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
