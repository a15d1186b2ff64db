"""The NATS engine against a nats-server started by the test: at most once, no history."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from squall.pubsub import Position, connect
from tests._wait import HANG_GUARD

from ._servers import NATS_SERVER, NatsServer

nats = pytest.importorskip("nats", reason="nats-py is not installed (pip install squall[nats])")
pytestmark = pytest.mark.skipif(
    NATS_SERVER is None, reason="nats-server is not installed (apt-get install nats-server)"
)


def run(coro: Any, limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


def test_delivery_between_two_processes_objects_at_most_once(nats_server: NatsServer) -> None:
    async def main() -> None:
        from squall.pubsub import NatsPubSub

        a = connect(nats_server.url)
        b = connect(nats_server.url)
        assert isinstance(a, NatsPubSub)
        try:
            # Names that are not NATS subject tokens stay apart.
            names = ["room.1", "room.*", "room.>", "with space", "ünï"]
            subs = [await a.subscribe(n) for n in names]
            for n in names:
                assert await b.publish(n, f"to {n}") == Position(0, "nats")
            for sub, n in zip(subs, names, strict=True):
                pub = await sub.get_publication()
                assert (pub.channel, pub.data) == (n, f"to {n}")
                assert sub.pending == 0
            history = await a.history("room.1")
            assert history.publications == [] and history.recovered is False
            again = await a.subscribe("room.1", since=Position(3, "nats"))
            assert again.recovered is False
            assert a.healthy and a.status.delivered == len(names)
            assert await a.ping() and a.status.round_trip > 0
        finally:
            await a.close()
            await b.close()

    run(main())


def test_history_is_refused_and_unreachable_nats_is_a_connection_error() -> None:
    from squall.pubsub import NatsPubSub

    with pytest.raises(ValueError, match="keeps no history"):
        NatsPubSub("nats://127.0.0.1:1", history_size=10)

    async def main() -> None:
        pubsub = NatsPubSub("nats://127.0.0.1:1", subscribe_timeout=0.3)
        try:
            with pytest.raises(ConnectionError, match="cannot connect to NATS"):
                await pubsub.subscribe("x")
        finally:
            await pubsub.close()

    run(main())


def test_subscriptions_resume_after_nats_restarts(nats_server: NatsServer) -> None:
    async def main() -> None:
        from squall.pubsub import NatsPubSub

        pubsub = NatsPubSub(nats_server.url, reconnect_delay=0.05)
        try:
            sub = await pubsub.subscribe("c")
            await pubsub.publish("c", "before")
            assert await sub.get() == "before"
            nats_server.stop()
            nats_server.start()
            # nats-py notices, reconnects and resubscribes by itself.
            await pubsub.wait_until(lambda: pubsub.status.resubscribes > 0, HANG_GUARD)
            assert pubsub.status.resubscribes == 1 and pubsub.healthy
            await pubsub.publish("c", "after")
            assert await sub.get() == "after"
        finally:
            await pubsub.close()

    run(main(), limit=8)
