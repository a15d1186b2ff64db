from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._redis_server import REDIS_SERVER, SKIP_REASON, RedisServer


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
