"""RetriedPublisher on its own: what it owns, and what it is given by its
engine (a RedisSite, a route, the Status it writes, a retried callback),
driven by a scripted stand-in for redis-py's script objects (no Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from squall.pubsub._publisher import RetriedPublisher
from squall.pubsub._redis_scripts import RedisSite
from squall.pubsub._types import Position, Status
from tests._wait import HANG_GUARD, waits_asked_by


class _Client:
    """A redis-py client's register_script, whose script answers with
    ``answer(args)`` (raising what it raises) and records each call."""

    def __init__(self, answer: Callable[[list[Any]], Awaitable[list[Any]]]) -> None:
        self.calls: list[tuple[list[str], list[Any]]] = []
        self.scripts = 0
        self._answer = answer

    def register_script(self, lua: str) -> Callable[..., Awaitable[list[Any]]]:
        assert "PUBLISH" in lua
        self.scripts += 1

        async def script(keys: list[str], args: list[Any]) -> list[Any]:
            self.calls.append((list(keys), list(args)))
            return await self._answer(args)

        return script


def _publisher(
    client: _Client, status: Status, retried: Callable[[], None], timeout: float = 2.0
) -> RetriedPublisher:
    site = RedisSite(client, "a stand-in Redis", (OSError,), lambda channel: "tag")
    return RetriedPublisher(
        site,
        "PUBLISH",
        lambda channel: ("tag", "b:" + channel),
        history_size=0,
        ttl_ms=60_000,
        command_timeout=0.5,
        timeout=timeout,
        status=status,
        retried=retried,
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_a_publish_refused_once_is_sent_again_with_its_count_and_counted() -> None:
    """The first attempt is refused (a lost connection): the same publish
    (its publisher field and count) is sent again after a backoff; the
    publisher counts the retry, calls back its engine, and writes the
    round trip of the attempt that succeeded into the Status it was given."""
    refusals = [OSError("refused")]

    loop_times: dict[str, float] = {}

    async def answer(args: list[Any]) -> list[Any]:
        loop = asyncio.get_running_loop()
        if refusals:
            loop_times["refused"] = loop.time()
            raise refusals.pop()
        loop_times["asked"] = loop.time()
        await asyncio.sleep(0.01)  # the stand-in's round trip
        loop_times["answered"] = loop.time()
        return [7, b"epoch", 0, _now_ms()]

    async def main() -> None:
        client = _Client(answer)
        status = Status()
        told: list[int] = []
        publisher = _publisher(client, status, lambda: told.append(publisher.retries))
        position = await publisher.publish("room", "hello")
        assert position == Position(7, "epoch")
        assert publisher.retries == 1 and told == [1]
        assert client.scripts == 1
        (keys1, args1), (keys2, args2) = client.calls
        assert keys1 == keys2 == ["tag:m:room"]  # no history: the meta hash only
        assert args1[3] == args2[3] and args1[4] == args2[4] == 1  # one publish, one count
        assert args1[6] == "b:room"  # the route's broker channel
        # The round trip is the attempt that got through, not the publish:
        # it holds the stand-in's answer, and begins after the refusal.
        returned = asyncio.get_running_loop().time()
        assert status.round_trip >= loop_times["answered"] - loop_times["asked"] >= 0.01
        assert status.round_trip <= returned - loop_times["refused"]

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_publishes_to_one_channel_go_in_call_order_with_growing_counts() -> None:
    """Concurrent publishes to one channel are sent one at a time, in the
    order they were made, each with the next count: the first, slowest to
    answer, is applied before the next is sent."""
    order: list[str] = []

    async def answer(args: list[Any]) -> list[Any]:
        await asyncio.sleep(0.01 * (5 - args[4]))  # the earlier, the slower
        order.append(args[1])
        return [len(order), b"e", 0, _now_ms()]

    async def main() -> None:
        client = _Client(answer)
        publisher = _publisher(client, Status(), lambda: None)
        positions = await asyncio.gather(*(publisher.publish("c", f"m{i}") for i in range(5)))
        assert order == [f"m{i}" for i in range(5)]
        assert [p.offset for p in positions] == [1, 2, 3, 4, 5]
        assert [args[4] for _, args in client.calls] == [1, 2, 3, 4, 5]
        assert publisher.retries == 0

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_a_broker_that_never_answers_fails_the_publish_within_its_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every attempt refused: ConnectionError once the publisher's timeout
    has passed, naming the broker its site names; what was tried again was
    counted. Within the timeout: the waits between attempts that the
    publisher asks for add up to no more than it (a loaded machine makes
    them last longer, never asks for more)."""

    async def answer(args: list[Any]) -> list[Any]:
        raise OSError("refused")

    waits = waits_asked_by("squall.pubsub._publisher", monkeypatch)

    async def main() -> None:
        client = _Client(answer)
        publisher = _publisher(client, Status(), lambda: None, timeout=0.3)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ConnectionError, match="a stand-in Redis: no answer within"):
            await publisher.publish("c", "lost")
        assert loop.time() - start >= 0.3  # not given up before the timeout
        assert publisher.retries == len(client.calls) - 1 >= 1
        assert sum(waits) <= 0.3 + 1e-9, waits  # no waiting past the timeout

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
