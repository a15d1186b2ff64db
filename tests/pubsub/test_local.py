"""squall.pubsub's in-process backend and the API every backend shares."""

from __future__ import annotations

import asyncio
import gc

import pytest

from squall.pubsub import LocalPubSub, PubSubClosedError, RedisPubSub, connect
from tests._wait import HANG_GUARD


def run(coro: object) -> None:
    asyncio.run(asyncio.wait_for(coro, HANG_GUARD))  # type: ignore[arg-type]


def test_every_subscriber_of_a_channel_gets_each_message_in_order() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        a = await pubsub.subscribe("topic:1")
        b = await pubsub.subscribe("topic:1")
        other = await pubsub.subscribe("topic:2")
        assert pubsub.subscribers("topic:1") == 2
        for text in ("one", "two", "three"):
            await pubsub.publish("topic:1", text)
        assert [await a.get() for _ in range(3)] == ["one", "two", "three"]
        assert [await b.get() for _ in range(3)] == ["one", "two", "three"]
        assert other.get_nowait() is None
        await pubsub.close()

    run(main())


def test_a_waiting_reader_is_woken_by_publish() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        sub = await pubsub.subscribe("c")
        reader = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)  # let the reader block (no time passes)
        assert not reader.done()
        await pubsub.publish("c", "hello")
        assert await reader == "hello"

    run(main())


def test_readers_waiting_on_one_subscription_wake_and_a_cancelled_one_leaves_the_others() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        sub = await pubsub.subscribe("c")
        first = asyncio.ensure_future(sub.get())
        cancelled = asyncio.ensure_future(sub.get_publication())
        third = asyncio.ensure_future(sub.get())
        await asyncio.sleep(0)  # all three wait (no time passes)
        cancelled.cancel()
        await asyncio.sleep(0)
        assert cancelled.cancelled()
        assert not first.done() and not third.done()
        await pubsub.publish("c", "one")
        await pubsub.publish("c", "two")
        assert sorted(await asyncio.gather(first, third)) == ["one", "two"]
        await pubsub.close()

    run(main())


def test_close_wakes_the_waiting_readers_with_the_closed_error() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        sub = await pubsub.subscribe("c")
        readers = [asyncio.ensure_future(sub.get()), asyncio.ensure_future(sub.get_publication())]
        await asyncio.sleep(0)
        assert not any(r.done() for r in readers)
        sub.close()
        for reader in readers:
            with pytest.raises(PubSubClosedError, match="subscription to 'c' is closed"):
                await reader
        await pubsub.close()

    run(main())


def test_a_reader_cancelled_again_and_again_on_a_quiet_channel_leaves_nothing_behind() -> None:
    # A reader polling with a timeout on a channel where nothing is
    # published: each cancelled wait must go, not pile up until a message.
    def futures() -> int:
        gc.collect()
        return sum(isinstance(o, asyncio.Future) for o in gc.get_objects())

    async def main() -> None:
        pubsub = LocalPubSub()
        sub = await pubsub.subscribe("c")
        before = futures()
        for _ in range(300):
            reader = asyncio.ensure_future(sub.get())
            await asyncio.sleep(0)
            reader.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reader
        del reader
        assert futures() - before < 10
        await pubsub.publish("c", "still heard")
        assert await sub.get() == "still heard"
        await pubsub.close()

    run(main())


def test_slow_subscriber_keeps_the_newest_messages_and_counts_the_dropped() -> None:
    async def main() -> None:
        pubsub = LocalPubSub(max_pending=3)
        slow = await pubsub.subscribe("c")
        fast = await pubsub.subscribe("c", max_pending=100)
        for i in range(10):
            await pubsub.publish("c", str(i))
        assert slow.pending == 3 and slow.dropped == 7
        assert [await slow.get() for _ in range(3)] == ["7", "8", "9"]
        assert fast.pending == 10 and fast.dropped == 0

    run(main())


def test_close_ends_iteration_and_unsubscribes() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        sub = await pubsub.subscribe("c")
        got: list[str] = []

        async def read() -> None:
            async for message in sub:
                got.append(message)
                if message == "last":
                    sub.close()

        reader = asyncio.ensure_future(read())
        await pubsub.publish("c", "first")
        await pubsub.publish("c", "last")
        await reader
        assert got == ["first", "last"]
        assert pubsub.subscribers("c") == 0
        with pytest.raises(PubSubClosedError):
            await sub.get()
        await pubsub.publish("c", "nobody hears this")  # no subscriber: no error

    run(main())


def test_context_managers_and_closed_pubsub() -> None:
    async def main() -> None:
        async with LocalPubSub() as pubsub:
            async with await pubsub.subscribe("c") as sub:
                await pubsub.publish("c", "x")
                assert await sub.get() == "x"
            assert sub.closed and pubsub.subscribers("c") == 0
            waiting = await pubsub.subscribe("d")
        assert waiting.closed
        with pytest.raises(PubSubClosedError, match="LocalPubSub is closed"):
            await pubsub.publish("c", "x")
        with pytest.raises(PubSubClosedError):
            await pubsub.subscribe("c")

    run(main())


def test_bad_arguments_get_clear_errors() -> None:
    async def main() -> None:
        pubsub = LocalPubSub()
        with pytest.raises(TypeError, match="message must be a str, not bytes"):
            await pubsub.publish("c", b"x")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="channel must be a str"):
            await pubsub.subscribe(1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_pending must be at least 1"):
            await pubsub.subscribe("c", max_pending=-1)

    run(main())


def test_connect_picks_the_backend_from_the_url() -> None:
    async def main() -> None:
        assert isinstance(connect(), LocalPubSub)
        assert isinstance(connect("memory://"), LocalPubSub)
        redis = connect("redis://127.0.0.1:1/0")
        assert isinstance(redis, RedisPubSub)
        await redis.close()
        with pytest.raises(ValueError, match="scheme must be memory, redis"):
            connect("amqp://localhost/")

    run(main())


def test_wait_until_is_woken_by_a_change_of_state_and_has_a_deadline() -> None:
    async def main() -> None:
        async with LocalPubSub() as pubsub:
            waiting = asyncio.ensure_future(
                pubsub.wait_until(lambda: not pubsub.healthy, HANG_GUARD)
            )
            await asyncio.sleep(0)  # it looked once and waits
            assert not waiting.done()
            pubsub._set_healthy(False)  # as an engine does when its broker is gone
            await asyncio.wait_for(waiting, HANG_GUARD)
            await pubsub.wait_until(lambda: True, 0)  # true already: no wait
            with pytest.raises(TimeoutError, match="not met within 0.05s"):
                await pubsub.wait_until(lambda: pubsub.healthy, 0.05)

    run(main())
