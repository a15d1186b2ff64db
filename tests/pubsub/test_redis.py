"""squall.pubsub's Redis backend against a real redis-server started by the test."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest

from squall.pubsub import Position, RedisPubSub, Subscription

from .._wait import HANG_GUARD, until_answer, waits_asked_by
from ._redis_server import RedisServer, free_port

HERE = Path(__file__).resolve().parent


def publisher_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the publisher asks for between attempts, from now on."""
    return waits_asked_by("squall.pubsub._publisher", monkeypatch)


def run(coro: object, limit: float = HANG_GUARD) -> None:
    """Runs ``coro``; ``limit`` only turns a hang into a failure."""
    asyncio.run(asyncio.wait_for(coro, limit))  # type: ignore[arg-type]


def test_publish_reaches_local_subscribers_through_redis(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as pubsub:
            a = await pubsub.subscribe("topic:1")
            b = await pubsub.subscribe("topic:1")
            c = await pubsub.subscribe("topic:2")
            await pubsub.publish("topic:1", "héllo <b>")
            await pubsub.publish("topic:2", "two")
            assert await a.get() == "héllo <b>"
            assert await b.get() == "héllo <b>"
            assert await c.get() == "two"
            assert await pubsub.ping()
            c.close()
            # Unsubscribed from Redis too: a publish now has one receiver
            # channel fewer, which Redis itself reports.
            await pubsub.publish("topic:1", "again")
            assert await a.get() == "again"

    run(main())


def test_fan_out_across_two_processes_publisher_and_child(redis_server: RedisServer) -> None:
    async def main() -> None:
        children = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                str(HERE / "_subscriber.py"),
                redis_server.url,
                "board",
                "3",
                stdout=asyncio.subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            for _ in range(1)
        ]
        try:
            for child in children:
                assert child.stdout is not None
                assert await child.stdout.readline() == b"ready\n"
            async with RedisPubSub(redis_server.url) as pubsub:
                own = await pubsub.subscribe("board")
                for text in ("a", "b", "c"):
                    await pubsub.publish("board", text)
                assert [await own.get() for _ in range(3)] == ["a", "b", "c"]
            for child in children:
                out, _ = await child.communicate()
                assert out.decode().split() == ["a", "b", "c"]
                assert child.returncode == 0
        finally:
            for child in children:
                if child.returncode is None:
                    child.kill()
                    await child.wait()

    run(main())


def test_delivery_resumes_after_redis_restarts(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        pubsub = RedisPubSub(redis_server.url, max_reconnect_delay=0.1)
        try:
            sub = await pubsub.subscribe("live")
            await pubsub.publish("live", "before")
            assert await sub.get() == "before"

            redis_server.stop()
            # The reader notices the closed connection and starts retrying.
            await pubsub.wait_connected(timeout=HANG_GUARD, connected=False)
            assert not pubsub.connected
            # A publish meanwhile is refused and tried again until Redis is back.
            publishing = asyncio.ensure_future(pubsub.publish("live", "during"))
            await pubsub.wait_until(lambda: pubsub.publish_retries >= 1, HANG_GUARD)
            assert not publishing.done()
            redis_server.start()
            during = await asyncio.wait_for(publishing, HANG_GUARD)
            assert during.offset == 1  # a new Redis: a new epoch
            await pubsub.wait_connected(timeout=HANG_GUARD)
            await pubsub.publish("live", "after")
            # "during" reaches the subscriber when it was subscribed again
            # before the publish went through (no history here): once at most.
            got = [await sub.get()]
            if got == ["during"]:
                got.append(await sub.get())
            assert got[-1] == "after", got
            assert pubsub.reconnects == 1
        finally:
            await pubsub.close()

    with caplog.at_level(logging.WARNING, logger="squall.general"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("lost the connection to Redis" in m for m in messages), messages
    assert any("reconnected to Redis" in m and "1 channel(s) subscribed" in m for m in messages), (
        messages
    )


def test_channels_subscribed_while_connecting_are_subscribed(redis_server: RedisServer) -> None:
    # First subscriptions that arrive after the reader sent its SUBSCRIBE and
    # before Redis confirmed it must be subscribed too (they used to wait
    # out subscribe_timeout and fail).
    async def main() -> None:
        pubsub = RedisPubSub(redis_server.url, subscribe_timeout=HANG_GUARD)
        late = [f"late:{i}" for i in range(5)]
        started: list[asyncio.Future[Subscription]] = []
        make_pubsub = pubsub._sub_client.pubsub

        def instrumented(**kwargs: object) -> object:
            ps = make_pubsub(**kwargs)
            send = ps.subscribe

            async def subscribe(*channels: str) -> None:
                await send(*channels)  # sent; its confirmation not yet read
                if not started:
                    started.extend(asyncio.ensure_future(pubsub.subscribe(n)) for n in late)
                    for _ in range(100):
                        if all(pubsub.subscribers(n) for n in late):
                            break
                        await asyncio.sleep(0)
                    assert not pubsub.connected

            ps.subscribe = subscribe
            return ps

        pubsub._sub_client.pubsub = instrumented
        try:
            first = await pubsub.subscribe("first")
            subs = await asyncio.gather(*started)
            for name in ["first", *late]:
                await pubsub.publish(name, name)
            assert [await sub.get() for sub in [first, *subs]] == ["first", *late]
        finally:
            await pubsub.close()

    run(main())


def test_subscribe_times_out_when_redis_is_unreachable(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        pubsub = RedisPubSub(
            f"redis://127.0.0.1:{free_port()}/0", subscribe_timeout=0.2, reconnect_delay=0.05
        )
        try:
            with pytest.raises(ConnectionError, match="did not confirm the subscription"):
                await pubsub.subscribe("x")
            assert pubsub.subscribers("x") == 0
            # On a loaded machine the first attempt may still be under way.
            await pubsub.wait_connected(timeout=HANG_GUARD, connected=False)
        finally:
            await pubsub.close()

    run(main())
    assert any("cannot connect to Redis" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_redis_going_away_under_a_command_leaves_no_task_exception(
    redis_server: RedisServer, loop: str
) -> None:
    """The connection dies while (UN)SUBSCRIBE commands are on their way,
    before the reader has noticed: as when redis-server stops while a
    cluster's workers drain and close their subscriptions."""
    if loop == "uvloop":
        uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        unhandled: list[dict[str, object]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unhandled.append(ctx))
        pubsub = RedisPubSub(redis_server.url, max_reconnect_delay=0.1)
        try:
            a = await pubsub.subscribe("a")
            await pubsub.subscribe("b")
            # The socket closes under the subscriber connection; in the same
            # turn of the loop one subscription ends and another begins.
            pubsub._ps.connection._writer.transport.abort()
            a.close()
            later = asyncio.ensure_future(pubsub.subscribe("c"))
            await asyncio.sleep(0)
            commands = set(pubsub._commands)
            assert commands, "no command was sent"
            await asyncio.wait(commands)
            # Nothing escaped them (before: AttributeError 'NoneType' has no
            # attribute 'writelines', or uvloop's RuntimeError "handler is
            # closed", and a reconnection of the dropped connection that read
            # alongside the reader).
            assert [t.exception() for t in commands] == [None] * len(commands)
            # The reader reconnects and subscribes what is current.
            await asyncio.wait_for(later, HANG_GUARD)
            await pubsub.publish("c", "after")
            assert pubsub.subscribers("a") == 0
        finally:
            await pubsub.close()
        assert unhandled == []

    if loop == "uvloop":
        uvloop.run(asyncio.wait_for(main(), HANG_GUARD))
    else:
        run(main())


def test_recovery_while_publishing_gets_every_publication_once_in_order(
    redis_server: RedisServer,
) -> None:
    """Live publications arriving while history is read are held and merged by offset."""

    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url, history_size=1000) as publisher,
            RedisPubSub(redis_server.url, history_size=1000) as reader,
        ):
            start = await publisher.position("feed")
            total = 300
            published = asyncio.Event()

            async def publish() -> None:
                for i in range(total):
                    await publisher.publish("feed", str(i))
                    if i == 50:
                        published.set()
                published.set()

            task = asyncio.ensure_future(publish())
            await published.wait()
            # Subscribed mid-stream, from the start: history then live.
            sub = await reader.subscribe("feed", since=start)
            assert sub.recovered is True
            got = [await sub.get_publication() for _ in range(total)]
            await task
            assert [p.data for p in got] == [str(i) for i in range(total)]
            assert [p.position.offset for p in got] == list(range(1, total + 1))
            assert sub.pending == 0

    run(main())


def test_history_flushed_means_a_new_epoch_and_recovered_false(
    redis_server: RedisServer,
) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=10) as pubsub:
            await pubsub.publish("c", "a")
            kept = await pubsub.publish("c", "b")
            assert (await pubsub.history("c", since=Position(1, kept.epoch))).recovered
            await pubsub._client.flushall()
            after = await pubsub.publish("c", "c")
            assert after.offset == 1 and after.epoch != kept.epoch
            sub = await pubsub.subscribe("c", since=kept)
            assert sub.recovered is False and sub.position == after

    run(main())


def test_redis_history_expires_by_age(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=10, history_ttl=0.2) as pubsub:
            first = await pubsub.publish("c", "old")
            assert len((await pubsub.history("c")).publications) == 1

            # Redis expires the keys by its own clock: asked each loop turn, bounded.
            async def expired() -> bool:
                return not (await pubsub.history("c")).publications

            await until_answer(expired, limit=HANG_GUARD)
            result = await pubsub.history("c", since=Position(0, first.epoch))
            assert result.publications == [] and not result.recovered

    run(main())


def test_a_foreign_publish_is_delivered_without_a_position(redis_server: RedisServer) -> None:
    async def main() -> None:
        async with RedisPubSub(redis_server.url) as pubsub:
            sub = await pubsub.subscribe("c")
            await pubsub._client.publish("c", b"from redis-cli")
            pub = await sub.get_publication()
            assert pub.data == "from redis-cli" and pub.position == Position(0, "")

    run(main())


def test_a_foreign_publish_moves_no_position_and_no_history_is_replayed(
    redis_server: RedisServer,
) -> None:
    """A message PUBLISHed by another program on a channel with history:
    taken for the channel's last position (one with no epoch), it made the
    catch-up after the next lost subscriber connection read the channel
    from its start and hand m1 to m5 out again."""

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=100) as pubsub:
            sub = await pubsub.subscribe("c")
            for i in range(1, 6):
                await pubsub.publish("c", f"m{i}")
            await pubsub._client.publish("c", b"from redis-cli")
            got = [(await sub.get_publication()).data for _ in range(6)]
            assert got == ["m1", "m2", "m3", "m4", "m5", "from redis-cli"]
            await pubsub._client.client_kill_filter(_type="pubsub")
            await pubsub.wait_until(lambda: pubsub.status.resubscribes == 1, timeout=30)
            await pubsub.publish("c", "m6")
            assert await sub.get() == "m6"
            assert pubsub.status.missed == 0

    run(main())


def test_a_dropped_subscriber_connection_catches_up_from_history(
    redis_server: RedisServer,
) -> None:
    """Redis closes the subscriber connection while messages are published:
    with history, the subscriptions get what was missed, once, in order;
    without, the gap is counted in status.missed."""

    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url, history_size=100, reconnect_delay=0.3) as kept,
            RedisPubSub(redis_server.url, reconnect_delay=0.3) as bare,
        ):
            a = await kept.subscribe("c")
            b = await bare.subscribe("c")
            await kept.publish("c", "0")
            assert await a.get() == "0" and await b.get() == "0"
            # The three publishes fall in the gap.
            async with reconnects_held(kept, bare):
                await kept._client.client_kill_filter(_type="pubsub")
                await kept.wait_connected(timeout=HANG_GUARD, connected=False)
                await bare.wait_connected(timeout=HANG_GUARD, connected=False)
                for i in range(1, 4):
                    await kept.publish("c", str(i))
            await kept.wait_connected(timeout=HANG_GUARD)
            await bare.wait_connected(timeout=HANG_GUARD)
            await kept.publish("c", "4")
            assert [await a.get() for _ in range(4)] == ["1", "2", "3", "4"]
            await kept.publish("c", "5")  # anything given twice would come first
            assert await a.get() == "5"
            assert await b.get() == "4" and bare.status.missed == 3
            assert kept.status.missed == 0 and kept.status.resubscribes == 1

    run(main())


async def read_five(pubsub: RedisPubSub) -> tuple[Any, Position]:
    """A resume stream on "c" that read publications 1 to 5, and its position."""
    from squall.resume import resume

    stream = await resume(pubsub, "c")
    for text in "12345":
        await pubsub.publish("c", text)
    assert [(await stream.next()).data for _ in range(5)] == list("12345")  # type: ignore[union-attr]
    assert stream.position is not None
    return stream, stream.position


@contextlib.asynccontextmanager
async def reconnects_held(*engines: RedisPubSub) -> AsyncIterator[None]:
    """While inside, the engines' subscriber connections, once lost, are not
    made again: what a test publishes meanwhile falls in the gap however
    slow the machine (a reconnect delay alone races the publishes)."""
    back = asyncio.Event()
    bodies = []
    for engine in engines:
        reader = engine._reader
        body = reader._body

        async def held(body: Callable[[], Awaitable[None]] = body) -> None:
            await back.wait()
            await body()

        reader._body = held
        bodies.append((reader, body))
    try:
        yield
        assert not any(engine.connected for engine in engines)
    finally:
        for reader, body in bodies:
            reader._body = body
        back.set()


async def away_while_writes_are_lost(pubsub: RedisPubSub) -> None:
    """The subscriber connection is cut; while it is away a failover loses
    the last three of five writes, and 6 and 7 take offsets 3 and 4."""
    from .test_history import lose_last_writes

    async with reconnects_held(pubsub):
        await pubsub._client.client_kill_filter(_type="pubsub")
        await pubsub.wait_connected(timeout=HANG_GUARD, connected=False)
        await lose_last_writes(pubsub, "c", keep=2)
        assert [(await pubsub.publish("c", t)).offset for t in "67"] == [3, 4]
    await pubsub.wait_connected(timeout=HANG_GUARD)


def test_lost_writes_found_by_the_catch_up_go_on_in_a_new_epoch(
    redis_server: RedisServer,
) -> None:
    """The subscriber connection is away while a failover loses the last
    three writes and two publications take their offsets again: the
    catch-up finds the broker's top below what it handed out and goes on in
    a new epoch, so a reader at 5 says it may have lost some (a Reset) and
    gets the publications after it (it got none of them: each came with an
    offset it had seen)."""
    from squall.resume import Reset

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=100, reconnect_delay=0.3) as pubsub:
            stream, old = await read_five(pubsub)
            await away_while_writes_are_lost(pubsub)
            await pubsub.publish("c", "8")
            reset = await stream.next()
            assert isinstance(reset, Reset) and reset.position.epoch != old.epoch
            pub = await stream.next()
            assert pub.data == "8"  # type: ignore[union-attr]
            assert pub.position == Position(5, reset.position.epoch)
            assert await pubsub.position("c") == pub.position
            assert pubsub.status.renewed == 1
            stream.close()

    run(main())


def test_an_offset_given_again_before_the_catch_up_reads_is_not_taken_for_a_copy(
    redis_server: RedisServer,
) -> None:
    """As above, but publication 8 reaches the broker before the catch-up's
    history read: the read finds the top at 5, where the reader was, and
    gives nothing; 8, held meanwhile, came after the resubscription with an
    offset handed out before it, so it is an offset given again (a Reset,
    then 8), not a late copy of one the history gave."""
    from squall.resume import Reset

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=100, reconnect_delay=0.3) as pubsub:
            stream, old = await read_five(pubsub)
            read = pubsub._catch_up_read
            reads: list[Position] = []

            async def publish_first(channel: str, since: Position) -> Any:
                if not reads:
                    assert (await pubsub.publish("c", "8")).offset == 5
                reads.append(since)
                return await read(channel, since)

            pubsub._catch_up_read = publish_first  # type: ignore[method-assign]
            await away_while_writes_are_lost(pubsub)
            reset = await stream.next()
            assert reads == [old]
            assert isinstance(reset, Reset) and reset.position.epoch != old.epoch
            pub = await stream.next()
            assert pub.data == "8"  # type: ignore[union-attr]
            assert pub.position == Position(5, reset.position.epoch)
            assert pubsub.status.renewed == 1
            stream.close()

    run(main())


def test_a_publisher_that_remembers_a_later_offset_begins_a_new_epoch(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover loses the last three of five publications, and no
    subscribing process handed any of them out (a reader's browser holds
    5 from before). The publisher that made them remembers offset 5: its
    next publish finds the top at 2 and goes into a new epoch, so the
    reader, moving to a process that joined only now, is told it may have
    lost some (a Reset) instead of taking offsets 3-5, given again, for
    ones it had."""
    from squall.resume import Reset, resume

    from .test_history import lose_last_writes

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=100) as publisher:
            made = [await publisher.publish("c", text) for text in "12345"]
            held = made[-1]
            await lose_last_writes(publisher, "c", keep=2, publisher_remembers=True)
            with caplog.at_level(logging.WARNING, logger="squall.general"):
                again = [await publisher.publish("c", text) for text in "678"]
            assert [p.offset for p in again] == [3, 4, 5]
            new = again[0].epoch
            assert new != held.epoch and {p.epoch for p in again} == {new}
            assert publisher.status.renewed == 1
            assert [r.getMessage() for r in caplog.records if "lost writes" in r.getMessage()] == [
                f"pubsub: channel 'c': the broker's top was below offset 5 of epoch "
                f"{held.epoch}, this publisher's last (a failover lost writes): it goes on "
                f"in epoch {new}"
            ]
            async with RedisPubSub(redis_server.url, history_size=100) as joined:
                stream = await resume(joined, "c", since=held)
                reset = await stream.next()
                assert isinstance(reset, Reset) and reset.position == Position(5, new)
                # The new epoch's history holds its own publications only.
                kept = await joined.history("c", since=Position(0, new))
                assert [p.data for p in kept.publications] == ["6", "7", "8"]
                assert kept.recovered  # the epoch began at 2
                whole = await joined.history("c")
                assert [p.data for p in whole.publications] == ["6", "7", "8"]
                assert whole.recovered
                await publisher.publish("c", "9")
                pub = await stream.next()
                assert (pub.data, pub.position) == ("9", Position(6, new))  # type: ignore[union-attr]
                stream.close()

    run(main())


def test_a_reader_away_while_a_publisher_began_a_new_epoch_gets_all_of_it(
    redis_server: RedisServer,
) -> None:
    """The subscriber's process is away (its connection killed) while a
    failover loses three of five publications and the publisher, which
    remembers offset 5, begins a new epoch at the top it found (2) with
    the next two. The catch-up reads that epoch from where it began: the
    reader at 5 gets a Reset, then both, then what follows."""
    from squall.resume import Reset, resume

    from .test_history import lose_last_writes

    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url, history_size=100) as publisher,
            RedisPubSub(redis_server.url, history_size=100, reconnect_delay=0.3) as node,
        ):
            stream = await resume(node, "c")
            for text in "12345":
                await publisher.publish("c", text)
            assert [(await stream.next()).data for _ in range(5)] == list("12345")  # type: ignore[union-attr]
            async with reconnects_held(node):
                await node._client.client_kill_filter(_type="pubsub")
                await node.wait_connected(timeout=HANG_GUARD, connected=False)
                await lose_last_writes(publisher, "c", keep=2, publisher_remembers=True)
                made = [await publisher.publish("c", text) for text in "67"]
            new = made[0].epoch
            assert made == [Position(3, new), Position(4, new)]
            await node.wait_connected(timeout=HANG_GUARD)
            reset = await stream.next()
            assert isinstance(reset, Reset) and reset.position == Position(2, new)
            got = [await stream.next() for _ in range(2)]
            assert [(p.data, p.position) for p in got] == [  # type: ignore[union-attr]
                ("6", Position(3, new)),
                ("7", Position(4, new)),
            ]
            await publisher.publish("c", "8")
            pub = await stream.next()
            assert (pub.data, pub.position) == ("8", Position(5, new))  # type: ignore[union-attr]
            assert publisher.status.renewed == 1 and node.status.renewed == 0
            stream.close()

    run(main())


def test_a_process_away_while_another_renewed_the_epoch_gets_nothing_twice(
    redis_server: RedisServer,
) -> None:
    """A failover loses three of five publications; the publisher
    remembers nothing (restarted) and the next two take offsets 3 and 4
    again. The process that handed out 5 sees 3 come again and begins a new
    epoch after 2; another, away meanwhile, catches up in that epoch from
    where it began: its reader gets a Reset, then the two, not 1 and 2
    again (read from the epoch's offset 0, they came after the Reset)."""
    from squall.resume import resume

    from .test_history import lose_last_writes, reset_then

    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url, history_size=100) as present,
            RedisPubSub(redis_server.url, history_size=100) as away,
        ):
            here = await present.subscribe("c")
            stream = await resume(away, "c")
            for text in "12345":
                await present.publish("c", text)
            assert [(await stream.next()).data for _ in range(5)] == list("12345")  # type: ignore[union-attr]
            assert [await here.get() for _ in range(5)] == list("12345")
            old = stream.position
            assert old is not None and old.offset == 5
            deliver = away._dispatch
            away._dispatch = lambda pub: None  # type: ignore[method-assign]  # away
            await lose_last_writes(present, "c", keep=2)
            for text in "67":
                await present.publish("c", text)
            assert [await here.get() for _ in range(2)] == ["6", "7"]
            await present.wait_until(lambda: present.status.renewed == 1, timeout=HANG_GUARD)
            away._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            away._catch_up(["c"])
            await asyncio.gather(*away._catching_up)
            new = await reset_then(stream, old.epoch, [("6", 3), ("7", 4)])
            kept = await away.history("c")
            assert [p.data for p in kept.publications] == ["6", "7"] and kept.recovered
            await present.publish("c", "8")
            pub = await stream.next()
            assert (pub.data, pub.position) == ("8", Position(5, new))  # type: ignore[union-attr]
            assert away.status.renewed == 0
            stream.close()

    run(main())


def test_the_process_that_began_the_new_epoch_is_the_one_that_counts_it(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failover loses three of five publications. The subscriber's
    process found the top (2) below what it handed out (5), but the
    publisher's next publish reached Redis before the subscriber's request
    for a new epoch did, and began one itself. The subscriber's request
    then finds the channel in that epoch already and follows it: the
    status counts one renewal across the two processes (the publisher's),
    and the subscriber's log says another process began it."""
    from .test_history import lose_last_writes

    async def main() -> None:
        async with (
            RedisPubSub(redis_server.url, history_size=100) as publisher,
            RedisPubSub(redis_server.url, history_size=100) as node,
        ):
            sub = await node.subscribe("c")
            made = [await publisher.publish("c", text) for text in "12345"]
            assert [await sub.get() for _ in range(5)] == list("12345")
            old = made[-1].epoch
            await lose_last_writes(publisher, "c", keep=2, publisher_remembers=True)
            first = await publisher.publish("c", "6")
            assert first.offset == 3 and first.epoch != old
            with caplog.at_level(logging.WARNING, logger="squall.general"):
                followed = await node._renew_epoch("c", old, 2)
            assert followed == first.epoch
            assert publisher.status.renewed == 1 and node.status.renewed == 0
            said = [r.getMessage() for r in caplog.records if "again" in r.getMessage()]
            assert said == [
                f"pubsub: channel 'c': the broker gave offsets of epoch {old} again "
                f"(a failover lost writes): it goes on in epoch {first.epoch}, "
                "which another process began"
            ]
            # Begun by this process when it asks first.
            await lose_last_writes(publisher, "c", keep=3)
            began = await node._renew_epoch("c", first.epoch, 3)
            assert began != first.epoch and node.status.renewed == 1
            assert (await publisher.publish("c", "7")).epoch == began
            sub.close()

    run(main())


def test_a_publisher_begins_a_new_epoch_only_when_the_top_is_below_its_last(
    redis_server: RedisServer,
) -> None:
    """The script compares offsets as text: by length, then by characters.
    Two publishers on a channel, each behind the other's publishes, never
    begin an epoch; a loss is found across a change in the number of
    digits (10 -> 9) and within one (12 -> 11)."""
    from .test_history import lose_last_writes

    async def main() -> None:
        async with RedisPubSub(redis_server.url) as a, RedisPubSub(redis_server.url) as b:
            for i in range(9):
                await a.publish("c", str(i))
            mine = await a.publish("c", "9")  # a's last: 10
            for _ in range(5):
                assert (await b.publish("c", "b")).epoch == mine.epoch  # 11 to 15
            assert await a.publish("c", "a") == Position(16, mine.epoch)
            assert a.status.renewed == b.status.renewed == 0
            await lose_last_writes(a, "c", keep=9, publisher_remembers=True)
            renewed = await a.publish("c", "a")  # its last 16, the top 9
            assert renewed.offset == 10 and renewed.epoch != mine.epoch
            for _ in range(2):
                await a.publish("c", "a")  # 11, 12
            await lose_last_writes(a, "c", keep=11, publisher_remembers=True)
            again = await a.publish("c", "a")
            assert again.offset == 12 and again.epoch not in (mine.epoch, renewed.epoch)
            assert a.status.renewed == 2 and b.status.renewed == 0
            # b remembers offset 15 of the first epoch: another epoch now,
            # so nothing to compare.
            assert await b.publish("c", "b") == Position(13, again.epoch)
            assert b.status.renewed == 0

    run(main())


def test_a_publisher_remembers_the_last_offset_of_a_bounded_number_of_channels(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from squall.pubsub import _publisher

    monkeypatch.setattr(_publisher, "_APPLIED_KEPT", 3)

    async def main() -> None:
        async with RedisPubSub(redis_server.url) as pubsub:
            for channel in "abcde":
                await pubsub.publish(channel, "x")
            await pubsub.publish("e", "y")
            remembered = pubsub._publisher._applied
            assert list(remembered) == ["c", "d", "e"]
            assert remembered["e"].offset == 2

    run(main())


def test_a_redis_that_stops_reading_is_noticed_and_resubscribed(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGSTOP keeps the connections open and silent: the PING watchdog
    notices within about two health intervals, the engine says it is
    unhealthy (metrics, /readyz), publishing fails within its timeout, and
    after SIGCONT the channel is subscribed again and delivers."""

    async def main() -> None:
        pubsub = RedisPubSub(
            redis_server.url,
            health_interval=0.2,
            command_timeout=0.3,
            publish_timeout=0.6,
            max_reconnect_delay=0.2,
            history_size=10,
        )
        assert redis_server.proc is not None
        try:
            sub = await pubsub.subscribe("live")
            await pubsub.publish("live", "before")
            assert await sub.get() == "before"
            assert pubsub.healthy
            stopped = time.monotonic()
            redis_server.proc.send_signal(signal.SIGSTOP)
            try:
                await pubsub.wait_connected(timeout=HANG_GUARD, connected=False)
                noticed = time.monotonic() - stopped
                assert not pubsub.healthy and not pubsub.connected
                # Silence for an interval, then a PING unanswered for one
                # more (nothing else notices: the reader waits without a
                # timeout; the log below names the PING, and the watchdog's
                # timing is tested on a clock of the test's own above).
                assert noticed >= 0.3, noticed
                if importlib.util.find_spec("prometheus_client") is not None:
                    from squall.cli._metrics import WorkerMetrics

                    metrics = WorkerMetrics()
                    metrics.sample()
                    assert metrics.pubsub_unhealthy._value.get() >= 1
                waits = publisher_waits(monkeypatch)
                # Given up for publish_timeout (its attempts each bounded by
                # command_timeout: Redis reads nothing), not hanging on.
                with pytest.raises(
                    ConnectionError, match=r"cannot publish to Redis.*publish_timeout=0\.6s"
                ):
                    await pubsub.publish("nobody-listens", "lost")  # nothing queued behind it
                assert sum(waits) <= 0.6 + 1e-9, waits
                assert pubsub.publish_retries >= 1
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            await pubsub.wait_connected(timeout=HANG_GUARD)
            assert pubsub.healthy and pubsub.status.resubscribes == 1
            await pubsub.publish("live", "after")
            assert await sub.get() == "after"
            # The publish that timed out was sent twice (tried again within
            # publish_timeout) with one id: Redis applied it once at most
            # when it resumed.
            kept = await pubsub.history("nobody-listens")
            assert len(kept.publications) <= 1, kept
        finally:
            await pubsub.close()

    with caplog.at_level(logging.WARNING, logger="squall.general"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("no answer to PING" in m for m in messages), messages
    assert any("reconnected to Redis" in m for m in messages), messages


def test_a_ping_that_fails_under_the_watchdog_ends_in_a_new_connection(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py raises AttributeError for a PING on a connection closed
    under it: the watchdog's PING task swallows it, the PING is never
    answered, and the watchdog cuts the connection: the reader makes a new
    one (it neither dies nor waits forever on a silent connection)."""

    async def main() -> None:
        pubsub = RedisPubSub(redis_server.url, health_interval=0.1, max_reconnect_delay=0.1)
        try:
            sub = await pubsub.subscribe("quiet")
            first = pubsub._ps

            async def cut_ping(*args: Any) -> None:
                raise AttributeError("'NoneType' object has no attribute 'writelines'")

            first.ping = cut_ping
            await pubsub.wait_until(
                lambda: pubsub._ps is not first and pubsub.connected, HANG_GUARD
            )
            assert pubsub.reconnects == 1
            await pubsub.publish("quiet", "after")
            assert await sub.get() == "after"
        finally:
            await pubsub.close()

    with caplog.at_level(logging.WARNING, logger="squall.general"):
        run(main())
    messages = [r.getMessage() for r in caplog.records]
    assert any("no answer to PING" in m for m in messages), messages


class _Clock:
    """The part of a loop the PING watchdog uses (time, call_later), on a
    clock that moves only when told to: looks happen at known times."""

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, int, Any, _Clock.Handle]] = []
        self.raised: list[BaseException] = []

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Any) -> _Clock.Handle:
        handle = _Clock.Handle()
        self.timers.append((self.now + delay, len(self.timers), callback, handle))
        return handle

    def run_until(self, when: float) -> None:
        """Runs the timers due by ``when`` in order (at most 1,000); what
        one raises is kept, as a loop reports it and goes on."""
        for _ in range(1000):
            due = [t for t in self.timers if t[0] <= when and not t[3].cancelled]
            if not due:
                break
            timer = min(due)
            self.timers.remove(timer)
            self.now = timer[0]
            try:
                timer[2]()
            except Exception as exc:
                self.raised.append(exc)
        self.now = when

    def armed(self) -> int:
        return sum(not t[3].cancelled for t in self.timers)

    def loop(self) -> asyncio.AbstractEventLoop:
        """This clock where a loop is asked for (it has what is used of one)."""
        return cast(asyncio.AbstractEventLoop, self)


def test_the_watchdog_pings_a_quiet_connection_and_cuts_one_that_stays_silent() -> None:
    """A PING once nothing was heard for an interval, nothing while replies
    come, and the cut (with its reason) once a PING waited an interval
    unanswered; no look after the cut."""
    from squall.pubsub._redis import _Watchdog

    clock = _Clock()
    pings: list[float] = []
    cuts: list[float] = []
    watch = _Watchdog(
        1.0, lambda: pings.append(clock.now), lambda: cuts.append(clock.now), loop=clock.loop()
    )
    # Replies keep it quiet: no PING for three intervals.
    for step in range(12):
        watch.heard = True
        clock.run_until(100.0 + 0.25 * (step + 1))
    assert pings == [] and cuts == []
    clock.run_until(110.0)
    # The last reply was seen at the look of 103.0: silence for an interval,
    # then the PING unanswered for one more.
    assert pings == [104.0]
    assert cuts == [105.0]
    assert watch.failure is not None and "no answer to PING for 1.0s" in str(watch.failure)
    assert clock.armed() == 0 and clock.raised == []


def test_the_watchdog_goes_on_looking_when_a_ping_fails() -> None:
    """A PING that raises (reported, as the loop reports a callback's
    error) does not end the watch: the next look is armed, and the
    connection is cut when no answer came."""
    from squall.pubsub._redis import _Watchdog

    clock = _Clock()
    cuts: list[float] = []

    def failing_ping() -> None:
        raise RuntimeError("the PING could not be sent")

    watch = _Watchdog(1.0, failing_ping, lambda: cuts.append(clock.now), loop=clock.loop())
    clock.run_until(103.0)
    assert [str(exc) for exc in clock.raised] == ["the PING could not be sent"]
    assert cuts == [102.0]
    assert watch.failure is not None and clock.armed() == 0


def test_the_watchdog_tries_the_cut_again_when_it_fails() -> None:
    from squall.pubsub._redis import _Watchdog

    clock = _Clock()
    cuts: list[float] = []

    def cut() -> None:
        cuts.append(clock.now)
        if len(cuts) == 1:
            raise RuntimeError("the connection could not be closed")

    _Watchdog(1.0, lambda: None, cut, loop=clock.loop())
    clock.run_until(105.0)
    assert cuts == [102.0, 102.25]
    assert [str(exc) for exc in clock.raised] == ["the connection could not be closed"]
    assert clock.armed() == 0


def test_history_options_in_a_redis_url_are_squall_s_not_redis_py_s(
    redis_server: RedisServer,
) -> None:
    """``redis://...?history_size=N`` (as the guide says): the option is
    taken by connect, and the URL redis-py gets has none of it."""
    from squall.pubsub import connect

    async def main() -> None:
        pubsub = connect(f"{redis_server.url}?history_size=3&history_ttl=60&max_recovery=2")
        try:
            assert isinstance(pubsub, RedisPubSub) and pubsub.url == redis_server.url
            assert (pubsub.history_size, pubsub.history_ttl, pubsub.max_recovery) == (3, 60.0, 2)
            for text in "abcd":
                await pubsub.publish("kept", text)
            kept = await pubsub.history("kept")
            assert [p.data for p in kept.publications] == ["c", "d"]  # 3 kept, 2 at most read
        finally:
            await pubsub.close()

    run(main())


def test_a_publish_waits_out_a_stopped_redis_and_is_applied_once(
    redis_server: RedisServer,
) -> None:
    """A publish sent to a Redis that stopped answering (SIGSTOP) times out
    and is tried again with the same id until Redis answers: on SIGCONT
    Redis reads every attempt, applies the first and skips the others, so
    the publication is delivered and kept once, at the next offset."""

    async def main() -> None:
        pubsub = RedisPubSub(
            # Tried again until Redis resumes, however slow the machine.
            redis_server.url,
            command_timeout=0.2,
            publish_timeout=HANG_GUARD,
            history_size=10,
        )
        assert redis_server.proc is not None
        try:
            sub = await pubsub.subscribe("once")
            first = await pubsub.publish("once", "a")
            redis_server.proc.send_signal(signal.SIGSTOP)
            try:
                publishing = asyncio.ensure_future(pubsub.publish("once", "b"))
                # Two attempts timed out: three sent, all waiting in Redis.
                await pubsub.wait_until(lambda: pubsub.publish_retries >= 2, HANG_GUARD)
                assert not publishing.done()
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            second = await publishing
            assert (second.offset, second.epoch) == (first.offset + 1, first.epoch)
            third = await pubsub.publish("once", "c")
            assert third.offset == first.offset + 2
            assert [await sub.get() for _ in range(3)] == ["a", "b", "c"]
            kept = await pubsub.history("once")
            assert [(p.data, p.position.offset) for p in kept.publications] == [
                ("a", 1),
                ("b", 2),
                ("c", 3),
            ]
        finally:
            await pubsub.close()

    run(main())


def test_the_same_publish_count_is_applied_once_and_quiet_publishers_are_forgotten(
    redis_server: RedisServer,
) -> None:
    """The script itself: a second call with the count it applied answers
    the first call's position and publishes nothing; a publisher quiet for longer than the keep
    window (60 s here) is dropped from the channel's hash at the next
    checkpoint, so the hash holds the publishers of the last window."""
    from squall.pubsub import _redis_scripts as scripts

    async def main() -> None:
        pubsub = RedisPubSub(redis_server.url, history_size=10)
        try:
            sub = await pubsub.subscribe("ids")
            script = pubsub._publisher.script
            meta, stream = scripts.keys("squall.ps", "ids")

            async def call(who: str, count: int, data: str, sent: Any = 0) -> list[Any]:
                head = scripts.wire_head(who, count, "ids")
                args = [head, data, "ep", f"p:{who}", count, sent, "ids", 60_000]
                return list(await script(keys=[meta, stream], args=args))

            first = await call("a", 1, "x")  # the subscription made the epoch
            assert first[0] == 1 and first[2] == 0 and len(first) == 5
            replid = first[4]
            assert len(replid) == 40 and replid == (await pubsub._client.info("replication"))[
                "master_replid"
            ].encode("ascii")
            assert await call("a", 1, "x") == [1, first[1], 1]  # applied already
            # Made again after an attempt that may have been applied under
            # another replication ID (or one not known): the count applied
            # is still answered as applied; one not applied is refused.
            assert await call("a", 1, "x", sent=f"{0:013d} {'f' * 40}") == [1, first[1], 1]
            for other in ("f" * 40, "?"):
                refused = await call("a", 2, "y", sent=f"{0:013d} {other}")
                assert refused[:3] == [0, b"", 5] and refused[4] == replid
            # An attempt dated more than the stale limit before Redis reads
            # it is not applied (nor its count kept): Redis says so, with its clock.
            stale = await call("a", 2, "y", sent=int(first[3]) - 60_000)
            assert stale[:3] == [0, b"", 2] and int(stale[3]) >= int(first[3])
            # Under the same ID it is applied (the count's record is on this server).
            same = f"{int(stale[3]):013d} {replid.decode('ascii')}"
            assert (await call("a", 2, "y", sent=same))[:3] == [2, first[1], 0]
            assert (await call("b", 1, "z"))[:3] == [3, first[1], 0]  # another publisher
            assert await call("b", 1, "z") == [3, first[1], 1]
            assert [await sub.get() for _ in range(3)] == ["x", "y", "z"]
            kept = await pubsub.history("ids")
            assert [p.data for p in kept.publications] == ["x", "y", "z"]
            # Publisher b last published a minute and more ago, and the
            # checkpoint is due (its time set back): b is forgotten, a kept.
            client = pubsub._client
            await client.hset(meta, mapping={"p:b": "1 3 1000000000", "ct": 0})
            await call("a", 3, "w")
            fields = await client.hkeys(meta)
            assert b"p:a" in fields and b"p:b" not in fields
            assert 300_000 < await client.pttl(meta) <= 330_000  # history_ttl and a tenth
            assert await call("a", 3, "w") == [4, first[1], 1]
        finally:
            await pubsub.close()

    run(main())


def test_a_publish_dated_by_a_wrong_clock_estimate_is_sent_again_and_applied_once(
    redis_server: RedisServer,
) -> None:
    """The clocks moved (the estimate says Redis is a minute behind): Redis
    finds the attempt too old and says so with its clock; the attempt is
    sent again at once, dated anew, and applied once."""

    async def main() -> None:
        pubsub = RedisPubSub(redis_server.url, history_size=10)
        try:
            sub = await pubsub.subscribe("clock")
            await pubsub.publish("clock", "a")
            assert (
                abs(pubsub._publisher._clock_skews["squall.ps"]) < 5_000
            )  # one machine, one clock
            pubsub._publisher._clock_skews["squall.ps"] = -60_000.0
            second = await pubsub.publish("clock", "b")
            assert pubsub.publish_retries == 1 and second.offset == 2
            assert (
                abs(pubsub._publisher._clock_skews["squall.ps"]) < 5_000
            )  # read again from the reply
            assert [await sub.get() for _ in range(2)] == ["a", "b"]
            kept = await pubsub.history("clock")
            assert [p.data for p in kept.publications] == ["a", "b"]
        finally:
            await pubsub.close()

    run(main())


def test_a_publish_is_tried_once_when_redis_has_been_down_longer_than_publish_timeout(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """publish_timeout is a failover's time, counted from when Redis went
    out of reach: a publish within it is tried again until it is up (issue
    58); one after it is tried once and fails at once, saying so, instead of
    waiting publish_timeout again; once Redis is back, publishes go through."""

    async def main() -> None:
        pubsub = RedisPubSub(
            redis_server.url,
            publish_timeout=0.6,
            command_timeout=0.5,
            health_interval=0.2,
            max_reconnect_delay=0.05,
        )
        try:
            sub = await pubsub.subscribe("live")
            await pubsub.publish("live", "before")
            assert await sub.get() == "before"
            redis_server.stop()  # connections refused from now on
            await pubsub.wait_connected(timeout=HANG_GUARD, connected=False)
            assert not pubsub.healthy
            down = pubsub.status.since
            with pytest.raises(ConnectionError, match="no answer within publish_timeout=0.6s"):
                await pubsub.publish("live", "early")
            assert pubsub.publish_retries >= 1
            # What is waited out here is the outage's length itself.
            await asyncio.sleep(max(0.0, down + 0.6 - time.monotonic()) + 0.01)
            retries = pubsub.publish_retries
            waits = publisher_waits(monkeypatch)
            with pytest.raises(
                ConnectionError,
                match=r"out of reach for \d+\.\ds, longer than publish_timeout=0.6s",
            ):
                await pubsub.publish("live", "late")
            # At once: one attempt, no wait for another.
            assert pubsub.publish_retries == retries
            assert waits == []
            redis_server.start()
            await pubsub.wait_connected(timeout=HANG_GUARD)
            await pubsub.publish("live", "after")
            assert await sub.get() == "after"
        finally:
            await pubsub.close()

    run(main())


def test_a_refused_publish_is_tried_again_for_publish_timeout_not_command_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A shorter publish_timeout than command_timeout: a refused publish is
    given up once publish_timeout is up (an attempt gets command_timeout;
    trying again does not)."""

    async def main() -> None:
        pubsub = RedisPubSub(
            f"redis://127.0.0.1:{free_port()}/0", publish_timeout=0.3, command_timeout=5.0
        )
        try:
            waits = publisher_waits(monkeypatch)
            with pytest.raises(ConnectionError, match="no answer within publish_timeout=0.3s"):
                await pubsub.publish("live", "refused")
            # Tried again for publish_timeout: the waits between attempts
            # add up to no more than it (command_timeout is 5 s).
            assert sum(waits) <= 0.3 + 1e-9, waits
            assert pubsub.publish_retries >= 1
        finally:
            await pubsub.close()

    run(main())


def test_what_publishes_found_out_of_reach_holds_while_they_keep_finding_it() -> None:
    """Without the subscriber connection's watch, publishes that got no
    answer say how long the node has been out of reach, while one comes at
    least every command_timeout plus a second; after a longer gap a new
    failover may have begun, and a publish gets the whole window again."""

    async def main() -> None:
        pubsub = RedisPubSub("redis://127.0.0.1:1/0", command_timeout=0.5)
        try:
            publisher = pubsub._publisher
            assert publisher._out_of_reach("t", 100.0) is None
            publisher._no_answer("t", 100.0, 100.5)
            publisher._no_answer("t", 100.6, 101.1)  # the outage still began at 100.0
            assert publisher._out_of_reach("t", 102.0) == pytest.approx(2.0)
            assert publisher._out_of_reach("other", 102.0) is None
            assert publisher._out_of_reach("t", 102.7) is None  # 1.6 s unlooked at
            assert publisher._out_of_reach("t", 102.0) is None  # and forgotten
        finally:
            await pubsub.close()

    run(main())


def test_plain_publishes_run_no_script_and_a_copy_is_delivered_once(
    redis_server: RedisServer,
) -> None:
    """``?positions=0``: a publish is one PUBLISH (Redis counts no EVALSHA),
    its position the plain one, heard by a process with positions too. A
    copy of a publication (the same publisher and count, as a publish tried
    again sends), or an older one from the same publisher, is dropped by
    each subscribing process; another publisher's same count is not."""
    from squall.pubsub import _redis_scripts as scripts
    from squall.pubsub import connect

    async def main() -> None:
        plain = connect(f"{redis_server.url}?positions=0")
        scripted = connect(redis_server.url)
        try:
            assert isinstance(plain, RedisPubSub) and plain.url == redis_server.url
            assert not plain.has_positions and scripted.has_positions
            mine = await plain.subscribe("p")
            theirs = await scripted.subscribe("p")
            client = plain._client
            before = await client.info("commandstats")
            position = await plain.publish("p", "héllo")
            after = await client.info("commandstats")
            assert position == Position(0, "redis") and str(position) == "0-redis"
            assert after.get("cmdstat_evalsha") == before.get("cmdstat_evalsha")
            publishes = [s.get("cmdstat_publish", {}).get("calls", 0) for s in (before, after)]
            assert publishes[1] == publishes[0] + 1
            for raw in (
                scripts.plain_payload("t1", 7, "p", "one"),
                scripts.plain_payload("t1", 7, "p", "one"),  # a copy
                scripts.plain_payload("t1", 6, "p", "older"),
                scripts.plain_payload("t2", 7, "p", "two"),
                scripts.plain_payload("t1", 8, "p", "three"),
            ):
                await client.publish("p", raw)
            expected = ["héllo", "one", "two", "three"]
            for sub in (mine, theirs):
                got = [await sub.get_publication() for _ in expected]
                assert [p.data for p in got] == expected
                assert {p.position for p in got} == {Position(0, "redis")}
                assert sub.pending == 0
            # Nothing to read back or resume from.
            from squall.resume._core import require_positions

            with pytest.raises(TypeError, match="made with positions=False"):
                require_positions(plain)
            require_positions(scripted)
            assert await plain.position("p") == Position(0, "redis")
            result = await plain.history("p")
            assert result.publications == [] and not result.recovered
        finally:
            await plain.close()
            await scripted.close()

    run(main())


def test_a_plain_publish_through_a_stopped_redis_is_delivered_once(
    redis_server: RedisServer,
) -> None:
    """Without a script Redis cannot tell an attempt it applied: a publish
    sent to a stopped Redis is tried again until it answers, Redis then runs
    each attempt that reached it, and the subscribing process drops the
    copies."""

    async def main() -> None:
        pubsub = RedisPubSub(
            # Tried again until Redis resumes, however slow the machine.
            redis_server.url,
            command_timeout=0.2,
            publish_timeout=HANG_GUARD,
            positions=False,
        )
        assert redis_server.proc is not None
        try:
            sub = await pubsub.subscribe("once")
            await pubsub.publish("once", "a")
            client = pubsub._client
            calls = (await client.info("commandstats"))["cmdstat_publish"]["calls"]
            redis_server.proc.send_signal(signal.SIGSTOP)
            try:
                publishing = asyncio.ensure_future(pubsub.publish("once", "b"))
                await pubsub.wait_until(lambda: pubsub.publish_retries >= 3, HANG_GUARD)
                assert not publishing.done()
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            assert await publishing == Position(0, "redis")
            await pubsub.publish("once", "c")
            assert [await sub.get() for _ in range(3)] == ["a", "b", "c"]
            # Redis published "b" more than once: the first attempt, sent on
            # the connection "a" went by, and the one that got through.
            now = (await client.info("commandstats"))["cmdstat_publish"]["calls"]
            assert now - calls >= 3
            assert sub.pending == 0
            await pubsub.publish("once", "d")
            assert await sub.get() == "d"
        finally:
            await pubsub.close()

    run(main())


def test_plain_publishes_refuse_history_and_bad_flags() -> None:
    from squall.pubsub import connect

    with pytest.raises(ValueError, match="history_size must be 0, not 10"):
        RedisPubSub("redis://127.0.0.1:1/0", positions=False, history_size=10)
    with pytest.raises(ValueError, match="history_size must be 0"):
        connect("redis://127.0.0.1:1/0?positions=0&history_size=5")
    with pytest.raises(ValueError, match="positions must be 0 or 1"):
        connect("redis://127.0.0.1:1/0?positions=no")


def test_the_once_check_forgets_the_least_recently_heard_publisher_first() -> None:
    from squall.pubsub import _redis_scripts as scripts

    once = scripts.Once(limit=2)

    def heard(token: str, count: int, channel: str = "c") -> bool:
        return once.decode(scripts.plain_payload(token, count, channel, "x").encode()) is not None

    assert heard("a", 1) and heard("b", 1)
    assert heard("a", 2)  # a is now the more recent of the two
    assert heard("c", 1)  # over the limit: b is forgotten, a kept
    assert not heard("a", 2)
    assert heard("b", 1)  # forgotten, so a copy gets through
    assert heard("a", 1, channel="other")  # counted per channel
    with pytest.raises(ValueError, match="not a publication sent without a script"):
        once.decode(b"\x1fno spaces")
