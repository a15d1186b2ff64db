"""Presence: join, leave, list, count and expiry, on memory:// and Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.pubsub import LocalPubSub, PubSub, RedisPubSub, presence_channel

from .._wait import HANG_GUARD, until_answer
from ._redis_server import REDIS_SERVER, SKIP_REASON, RedisServer


def run(coro: Any, limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture(params=["memory", "redis"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "memory":
        shared: list[LocalPubSub] = []

        def memory(**options: Any) -> PubSub:
            if not shared:
                shared.append(LocalPubSub(**options))
            return shared[0]

        yield memory
        return
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(workdir=tmp_path)
    server.start()
    try:
        yield lambda **options: RedisPubSub(server.url, **options)
    finally:
        server.stop()


def test_join_list_count_and_leave_with_events(make: Any) -> None:
    async def main() -> None:
        node_a, node_b = make(), make()
        try:
            events = await node_b.subscribe(presence_channel("topic:1"))
            ann = await node_a.join("topic:1", "ann", json.dumps({"name": "Ann"}))
            bob = await node_b.join("topic:1", "bob")
            await node_a.join("topic:2", "ann")
            assert await node_b.presence("topic:1") == {"ann": '{"name": "Ann"}', "bob": ""}
            assert await node_a.presence_count("topic:1") == 2
            assert await node_a.presence_count("nobody") == 0
            assert len(await node_a.presence("topic:1", limit=1)) == 1
            await ann.leave()
            await ann.leave()  # once
            assert await node_b.presence("topic:1") == {"bob": ""}
            kinds = [json.loads(await events.get()) for _ in range(3)]
            assert [(e["event"], e["client"]) for e in kinds] == [
                ("join", "ann"),
                ("join", "bob"),
                ("leave", "ann"),
            ]
            assert kinds[0]["info"] == '{"name": "Ann"}'
            async with bob:
                pass
            assert await node_b.presence_count("topic:1") == 0
            assert await node_b.presence_count("topic:2") == 1
        finally:
            await node_a.close()
            await node_b.close()

    run(main())


def test_entries_of_a_process_that_stops_refreshing_expire(make: Any) -> None:
    async def main() -> None:
        gone = make(presence_ttl=0.3)
        staying = make(presence_ttl=0.3)
        try:
            await gone.join("room", "ghost")
            await staying.join("room", "alive")
            assert await staying.presence_count("room") == 2
            # The ghost's process "dies": nobody refreshes its entry any more,
            # nothing says goodbye (on memory:// both are one object).
            gone._roster.forget("room", "ghost")

            async def ghost_gone() -> bool:
                return await staying.presence_count("room") == 1

            await until_answer(ghost_gone)
            # The heartbeat (every 0.1 s) kept "alive" past several TTLs.
            assert await staying.presence("room") == {"alive": ""}
        finally:
            await gone.close()
            await staying.close()

    run(main())


def test_bad_presence_input_gets_clear_errors(make: Any) -> None:
    async def main() -> None:
        pubsub = make()
        try:
            with pytest.raises(TypeError, match="non-empty str"):
                await pubsub.join("c", "")
            with pytest.raises(ValueError, match="at most 256"):
                await pubsub.join("c", "x" * 300)
            with pytest.raises(ValueError, match="at most 4096"):
                await pubsub.join("c", "x", "i" * 5000)
            with pytest.raises(ValueError, match="limit must be 1 to 10000"):
                await pubsub.presence("c", limit=0)
            assert await pubsub.presence_count("c") == 0
        finally:
            await pubsub.close()

    run(main())


@pytest.mark.parametrize("where", ["one process", "two processes"])
def test_a_client_joined_twice_stays_until_its_last_handle_leaves(make: Any, where: str) -> None:
    """Two tabs of one client id, each with its own `Presence` handle (on one
    process, or on two sharing the broker): the first tab's leave must not
    remove the second's entry nor announce "leave" (it did both, and the
    second tab's heartbeat then put the entry back with no join); the last
    leave removes it and announces it once."""

    async def main() -> None:
        node_a = make(presence_ttl=0.3)
        node_b = node_a if where == "one process" else make(presence_ttl=0.3)
        try:
            events = await node_a.subscribe(presence_channel("room"))
            first = await node_a.join("room", "ann", "tab 1")
            second = await node_b.join("room", "ann", "tab 2")
            await first.leave()
            assert await node_a.presence("room") == {"ann": "tab 2"}
            assert await node_b.presence_count("room") == 1
            # Gone at once with the second: the first tab's hold was let go,
            # not left to expire.
            await second.leave()
            assert await node_a.presence("room") == {}
            seen = [json.loads(await events.get()) for _ in range(3)]
            assert [(e["event"], e["info"]) for e in seen] == [
                ("join", "tab 1"),
                ("join", "tab 2"),
                ("leave", "tab 2"),
            ]
            assert events.get_nowait() is None
        finally:
            await node_a.close()
            if node_b is not node_a:
                await node_b.close()

    run(main())


def test_a_refresh_keeps_the_info_of_the_entrys_last_join(make: Any) -> None:
    """Two tabs of one client, on two processes: each process's heartbeat
    refreshes its own tab's hold, and must not put its older info back over
    the later join's (the entry showed a tab that had left until the other
    process's next beat)."""

    async def main() -> None:
        node_a, node_b = make(), make()
        try:
            first = await node_a.join("room", "ann", "tab 1")
            await node_b.join("room", "ann", "tab 2")
            # node_a's beat, as its heartbeat makes it.
            store = node_a._roster.store
            assert await store.put("room", [("ann", first.owner, "tab 1")], 30.0) == []
            assert await node_b.presence("room") == {"ann": "tab 2"}
            await first.leave()
            assert await node_b.presence("room") == {"ann": "tab 2"}
        finally:
            await node_a.close()
            if node_b is not node_a:
                await node_b.close()

    run(main())


def test_an_entry_a_refresh_puts_back_is_announced(make: Any) -> None:
    """An entry that expired while its process could not refresh it (the
    broker out of reach for longer than the TTL: here removed under it) and
    that the heartbeat writes again is announced as a join: no entry appears
    without one."""

    async def main() -> None:
        node = make(presence_ttl=0.3)
        try:
            events = await node.subscribe(presence_channel("room"))
            entry = await node.join("room", "bob", "b")
            assert json.loads(await events.get())["event"] == "join"
            # Gone from the store as if expired; the roster still holds it.
            assert await node._roster.store.remove("room", "bob", entry.owner)
            back = json.loads(await asyncio.wait_for(events.get(), HANG_GUARD))
            assert (back["event"], back["client"], back["info"]) == ("join", "bob", "b")
            assert await node.presence("room") == {"bob": "b"}
        finally:
            await node.close()

    run(main())
