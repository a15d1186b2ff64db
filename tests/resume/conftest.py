"""The resume tests' fixtures: a redis-server (as tests/pubsub's) and the
node forker of the failure tests, started once per module."""

from collections.abc import Iterator

import pytest

from tests.pubsub.conftest import redis_server  # noqa: F401

from ._lab import Nodes


@pytest.fixture(scope="module")
def nodes() -> Iterator[Nodes]:
    forker = Nodes()
    try:
        yield forker
    finally:
        forker.close()
