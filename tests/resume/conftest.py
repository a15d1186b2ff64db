"""The resume tests' fixtures: a redis-server for the node-kill tests, as tests/pubsub's."""

from tests.pubsub.conftest import redis_server  # noqa: F401
