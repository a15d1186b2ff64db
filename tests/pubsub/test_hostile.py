"""Hostile traffic against the pub/sub engines: channel names no broker can carry,
broker errors and exceptions inside the engines' loops, presence joins that
fail, and the bounds a recovery left behind. Each test failed on 2ddd19c."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from squall.pubsub import (
    CATCH_UP_READS,
    MAX_CHANNEL_BYTES,
    LocalPubSub,
    Position,
    PubSub,
    RedisPubSub,
    check_channel,
    presence_channel,
)
from squall.pubsub._local import LocalPresence
from squall.pubsub._presence import Hold
from squall.pubsub._supervise import Backoff, Supervised
from tests._wait import HANG_GUARD, until_answer
from tests._wait import until as wait_until

from ._redis_server import REDIS_SERVER, RedisServer
from ._servers import NATS_SERVER, NatsServer

needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
needs_nats = pytest.mark.skipif(NATS_SERVER is None, reason="nats-server is not installed")


def run(coro: Any, limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Waits, a loop turn at a time, until ``condition()``; ``timeout`` is a hang guard."""
    try:
        await wait_until(condition, timeout)
    except AssertionError:
        raise AssertionError(f"not within {timeout}s: {what}") from None


def fail_once(make: Callable[[], BaseException], original: Callable[..., Any]) -> Any:
    """``original``, except that its first call raises ``make()``; counts calls."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wrapper.calls += 1  # type: ignore[attr-defined]
        if wrapper.calls == 1:  # type: ignore[attr-defined]
            raise make()
        return original(*args, **kwargs)

    wrapper.calls = 0  # type: ignore[attr-defined]
    return wrapper


# Channel names: one bound, the same refusals on every engine.


def test_channel_names_are_bounded_and_checked_on_every_call() -> None:
    longest = "\U0001f600" * (MAX_CHANNEL_BYTES // 4)  # 4 bytes each in UTF-8
    assert len(longest.encode()) == MAX_CHANNEL_BYTES

    async def main() -> None:
        async with LocalPubSub(history_size=5) as pubsub:
            # 4 MiB names used to be kept in memory: refused now.
            huge = "room:" + "x" * (4 << 20)
            calls = [
                lambda name: pubsub.subscribe(name),
                lambda name: pubsub.publish(name, "m"),
                lambda name: pubsub.history(name),
                lambda name: pubsub.position(name),
                lambda name: pubsub.join(name, "c"),
                lambda name: pubsub.presence(name),
                lambda name: pubsub.presence_count(name),
                lambda name: pubsub.relay(name, set()),
            ]
            for call in calls:
                with pytest.raises(ValueError, match=f"at most {MAX_CHANNEL_BYTES}"):
                    await call(huge)
                with pytest.raises(ValueError, match="lone surrogate"):
                    await call("room:\ud800")
                with pytest.raises(ValueError, match="must not be empty"):
                    await call("")
            assert pubsub.subscribers(huge) == 0
            with pytest.raises(ValueError, match="too long"):
                await pubsub.subscribe(longest + "x")
            # The longest name, its presence channel, control characters and NUL work.
            for name in (longest, presence_channel(longest), "a\x00b\x1f\n"):
                sub = await pubsub.subscribe(name)
                await pubsub.publish(name, "ok")
                assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "ok"
                sub.close()
            with pytest.raises(TypeError, match="must be a str"):
                check_channel(b"bytes")

    run(main())


def test_a_lone_surrogate_in_a_message_is_refused_at_publish() -> None:
    """memory:// accepted it, and every SSE reader of the channel was cut at
    it, again at each reconnection."""

    async def main() -> None:
        async with LocalPubSub(history_size=5) as pubsub:
            sub = await pubsub.subscribe("c")
            with pytest.raises(ValueError, match="lone surrogate"):
                await pubsub.publish("c", "bad \udc80 text")
            assert (await pubsub.history("c")).publications == []
            await pubsub.publish("c", "good \u00e9")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "good \u00e9"

    run(main())


# Subscriptions: the bound after a recovery.


def test_the_bound_comes_back_down_once_the_recovered_are_read() -> None:
    """After subscribe(since=...) recovered N, the drop-oldest bound stayed
    max_pending + N for the subscription's life."""

    async def main() -> None:
        async with LocalPubSub(max_pending=10, history_size=100) as pubsub:
            first = await pubsub.publish("c", "0")
            for n in range(1, 50):
                await pubsub.publish("c", str(n))
            sub = await pubsub.subscribe("c", since=Position(0, first.epoch))
            assert sub.recovered and sub.pending == 50  # held above the bound while unread
            for n in range(50):
                assert sub.get_nowait() == str(n)
            for n in range(30):
                await pubsub.publish("c", f"live {n}")
            assert sub.pending == 10 and sub.dropped == 20
            assert sub.get_nowait() == "live 20"

    run(main())


# Presence: a join that fails leaves nothing; the heartbeat outlives errors.


def test_a_join_whose_event_cannot_be_published_leaves_no_entry() -> None:
    """The entry was written and refreshed forever, and nobody could leave()
    it: the publish of the join event raises."""

    async def main() -> None:
        async with LocalPubSub(presence_ttl=0.3) as pubsub:
            publish = pubsub.publish

            async def broker_away(channel: str, message: str) -> Position:
                if channel == presence_channel("room"):
                    raise ConnectionError("cannot publish: broker away")
                return await publish(channel, message)

            pubsub.publish = broker_away  # type: ignore[method-assign]
            with pytest.raises(ConnectionError, match="broker away"):
                await pubsub.join("room", "alice", "A")
            assert await pubsub.presence_count("room") == 0
            # Joining again, once it can be published, works as before.
            pubsub.publish = publish  # type: ignore[method-assign]
            entry = await pubsub.join("room", "alice", "A")
            assert await pubsub.presence("room") == {"alice": "A"}
            await entry.leave()
            assert await pubsub.presence_count("room") == 0

    run(main())


def test_a_cancelled_join_is_not_refreshed() -> None:
    """The caller cancelled while the join event waited: the entry expires."""

    async def main() -> None:
        async with LocalPubSub(presence_ttl=0.3) as pubsub:
            waiting = asyncio.Event()

            async def stuck(channel: str, message: str) -> Position:
                waiting.set()
                await asyncio.Event().wait()
                raise AssertionError("not reached")

            pubsub.publish = stuck  # type: ignore[method-assign]
            join = asyncio.ensure_future(pubsub.join("room", "bob"))
            await asyncio.wait_for(waiting.wait(), HANG_GUARD)
            assert await pubsub.presence_count("room") == 1  # written before the event
            join.cancel()
            with pytest.raises(asyncio.CancelledError):
                await join
            # Not refreshed any more: gone within a TTL (3 heartbeats).
            await asyncio.wait_for(_until_count(pubsub, "room", 0), HANG_GUARD)

    run(main())


async def _until_count(pubsub: PubSub, channel: str, count: int) -> None:
    async def counted() -> bool:
        return await pubsub.presence_count(channel) == count

    await until_answer(counted)


class RefusingOnce:
    """A presence store whose first refresh (its second write) gets an error reply."""

    def __init__(self) -> None:
        self.store = LocalPresence()
        self.puts = 0

    async def put(
        self, channel: str, holds: Sequence[Hold], ttl: float, join: bool = False
    ) -> list[str]:
        self.puts += 1
        if self.puts == 2:
            raise RuntimeError("OOM command not allowed when used memory > 'maxmemory'")
        return await self.store.put(channel, holds, ttl, join)

    async def remove(self, channel: str, client: str, owner: str) -> bool:
        return await self.store.remove(channel, client, owner)

    async def get(self, channel: str, limit: int) -> dict[str, str]:
        return await self.store.get(channel, limit)

    async def count(self, channel: str) -> int:
        return await self.store.count(channel)


def test_the_presence_heartbeat_outlives_an_error_reply() -> None:
    """One -OOM or -READONLY reply ended the heartbeat, and every entry of
    the process expired while its readers were there."""

    async def main() -> None:
        async with LocalPubSub(presence_ttl=0.3) as pubsub:
            store = RefusingOnce()
            pubsub._use_presence(store)
            await pubsub.join("room", "carol")
            # Four heartbeats (the first refused) span more than a TTL.
            await until(lambda: store.puts >= 5, HANG_GUARD, "four presence refreshes")
            assert await pubsub.presence("room") == {"carol": ""}

    run(main())


# The supervisor and its backoff.


def test_backoff_has_full_jitter_under_an_exponential_ceiling() -> None:
    draws = iter([0.5, 0.999, 0.0, 0.25, 1.0 - 1e-9])
    backoff = Backoff(0.1, 0.3, draw=lambda: next(draws))
    assert [round(backoff.next(), 6) for _ in range(5)] == [0.05, 0.1998, 0.0, 0.075, 0.3]
    backoff.reset()
    assert backoff.step() == 0.1
    real = Backoff(0.05, 0.2)
    delays = [real.next() for _ in range(200)]
    assert all(0 <= d <= 0.2 for d in delays) and len(set(delays)) > 100
    with pytest.raises(ValueError, match="longest reconnect delay"):
        Backoff(1.0, 0.5)


def test_supervised_loop_runs_again_after_any_exception_and_stop_raises_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        runs: list[int] = []
        third = asyncio.Event()

        async def body() -> None:
            runs.append(len(runs))
            if len(runs) < 3:
                raise KeyError(f"run {len(runs)}")
            third.set()
            await asyncio.Event().wait()

        loop = Supervised("test loop", body, Backoff(0.001, 0.002))
        loop.start()
        await asyncio.wait_for(third.wait(), HANG_GUARD)
        assert loop.running and loop.failures == 2
        await loop.stop()
        assert not loop.running
        await loop.stop()  # twice: nothing

    with caplog.at_level(logging.ERROR, logger="squall.general"):
        run(main())
    failed = [r for r in caplog.records if "test loop failed" in r.getMessage()]
    assert len(failed) == 2 and failed[0].exc_info is not None


def test_supervised_loop_stops_when_its_body_swallows_the_cancellation() -> None:
    """3.11's wait_for returns a result and drops the cancellation when the
    future it waits for completes in the same turn (RedisPubSub's close then
    waited forever on a reader that went on reconnecting)."""

    async def main() -> None:
        started = asyncio.Event()
        runs = []

        async def body() -> None:
            runs.append(1)
            started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # swallowed
            raise ConnectionError("lost")  # as the reader's connection does

        loop = Supervised("stubborn loop", body, Backoff(0.001, 0.002), lambda exc: True)
        loop.start()
        await asyncio.wait_for(started.wait(), HANG_GUARD)
        await asyncio.wait_for(loop.stop(), HANG_GUARD)
        assert not loop.running and runs == [1] and loop.failures == 0

    run(main())


# Redis.


async def kill_subscribers(url: str) -> None:
    """``CLIENT KILL TYPE pubsub``: every subscriber connection is cut."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url)
    try:
        await client.client_kill_filter(_type="pubsub")
    finally:
        await client.aclose()


@needs_redis
def test_redis_refuses_an_unencodable_channel_and_its_reader_outlives_a_reconnection(
    redis_server: RedisServer,
) -> None:
    """One subscribe to "room:\\ud800" left the channel in the engine's table
    and the next subscriber connection made the reader raise and end for
    good: nothing delivered, unhealthy until restart."""

    async def main() -> None:
        async with RedisPubSub(
            redis_server.url, subscribe_timeout=1, reconnect_delay=0.01
        ) as pubsub:
            sub = await pubsub.subscribe("room:1")
            # As a WebSocket's subscribe would: the connection is cut while
            # it waits (it waited for a confirmation that never came).
            bad = asyncio.ensure_future(pubsub.subscribe("room:\ud800"))
            for _ in range(5):
                await asyncio.sleep(0)
            await kill_subscribers(redis_server.url)
            await pubsub.wait_until(lambda: pubsub.reconnects >= 1 and pubsub.healthy, HANG_GUARD)
            await pubsub.publish("room:1", "after")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "after"
            # Refused before anything was sent, saying why.
            with pytest.raises(ValueError, match="lone surrogate"):
                await bad

    run(main())


@needs_redis
def test_the_redis_reader_survives_an_unexpected_exception(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything the reader raises (not only a lost connection) is logged, and
    the connection made again; with history the lost one is filled in."""

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=10, reconnect_delay=0.01) as pubsub:
            sub = await pubsub.subscribe("c")
            dispatch = fail_once(lambda: AttributeError("injected"), pubsub._dispatch)
            pubsub._dispatch = dispatch  # type: ignore[method-assign]
            await pubsub.publish("c", "hit by the exception")
            await pubsub.wait_until(lambda: pubsub.reconnects >= 1 and pubsub.healthy, HANG_GUARD)
            await pubsub.publish("c", "after")
            got = [await asyncio.wait_for(sub.get(), HANG_GUARD) for _ in range(2)]
            assert got == ["hit by the exception", "after"]

    with caplog.at_level(logging.ERROR, logger="squall.general"):
        run(main())
    assert any("Redis reader of" in r.getMessage() for r in caplog.records)


@needs_redis
def test_catch_up_after_a_resubscription_reads_channels_concurrently(
    redis_server: RedisServer,
) -> None:
    """Gap-filling read one channel's history after another, holding live
    messages behind N round trips: now up to CATCH_UP_READS at once."""

    async def main() -> None:
        async with RedisPubSub(redis_server.url, history_size=10, reconnect_delay=0.01) as pubsub:
            channels = [f"c{n}" for n in range(3 * CATCH_UP_READS)]
            subs = [await pubsub.subscribe(c) for c in channels]
            for c in channels:
                await pubsub.publish(c, "first")
            for sub in subs:
                assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "first"
            read = pubsub._read
            now = {"reading": 0, "most": 0, "reads": 0}

            async def counted(*args: Any, **kwargs: Any) -> Any:
                now["reading"] += 1
                now["reads"] += 1
                now["most"] = max(now["most"], now["reading"])
                try:
                    return await read(*args, **kwargs)
                finally:
                    now["reading"] -= 1

            pubsub._read = counted  # type: ignore[method-assign]
            await kill_subscribers(redis_server.url)
            await pubsub.wait_until(lambda: pubsub.reconnects >= 1, HANG_GUARD)
            await until(
                lambda: now["reads"] >= len(channels), HANG_GUARD, "every channel caught up"
            )
            assert 1 < now["most"] <= CATCH_UP_READS, now

    run(main())


@needs_redis
def test_redis_reconnects_are_jittered() -> None:
    """N workers retried in lock-step after a Redis restart: the
    waits between attempts are now drawn below an exponential ceiling."""

    async def main() -> None:
        accepted: list[float] = []

        def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(time.monotonic())
            writer.close()

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cap = 0.5
        pubsub = RedisPubSub(
            f"redis://127.0.0.1:{port}/0", reconnect_delay=0.02, max_reconnect_delay=cap
        )
        try:
            # Eleven attempts, however long they take on this machine.
            waiting = asyncio.ensure_future(pubsub.wait_connected(timeout=HANG_GUARD))
            await until(lambda: len(accepted) >= 11, HANG_GUARD, "eleven attempts")
            assert not waiting.done()  # each one refused
            waiting.cancel()
        finally:
            await pubsub.close()
            server.close()
        # From the sixth attempt on, the step is the cap (0.02 * 2**5 > 0.5).
        gaps = [b - a for a, b in zip(accepted, accepted[1:], strict=False)][5:]
        assert len(gaps) >= 5, accepted
        # Without jitter every wait is the cap (a sleep never ends early),
        # whatever the machine's load; with full jitter each is uniform below
        # it (plus the time an attempt takes), so one of five under it fails
        # to appear with a probability of about (attempt time / cap) ** 5.
        assert min(gaps) < cap, gaps

    run(main())


# NATS.


@needs_nats
def test_a_channel_too_long_for_a_nats_control_line_is_refused(nats_server: NatsServer) -> None:
    """A channel of 3,100+ characters made a SUB line past nats-server's
    4,096 bytes: the server closed the connection and nats-py its client,
    for good. The longest name allowed goes through."""

    async def main() -> None:
        from squall.pubsub import NatsPubSub

        async with NatsPubSub(nats_server.url, subscribe_timeout=2) as pubsub:
            refusals = []
            for attempt in (
                pubsub.subscribe("room:" + "x" * 3200),
                pubsub.publish("room:" + "x" * 3200, "m"),
            ):
                try:
                    await attempt
                except (ValueError, ConnectionError) as exc:
                    refusals.append(exc)
            longest = "\U0001f600" * (MAX_CHANNEL_BYTES // 4)
            for name in ("room:1", longest):
                sub = await pubsub.subscribe(name)
                await pubsub.publish(name, "ok")
                assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "ok"
            assert pubsub.healthy
            # Both refused before anything was sent, saying why.
            assert [type(e) for e in refusals] == [ValueError, ValueError]
            assert all("too long" in str(e) for e in refusals)

    run(main())


@needs_nats
def test_a_nats_client_closed_for_good_is_made_again(nats_server: NatsServer) -> None:
    """nats-py closes its client for good on some server errors; the engine
    kept returning the closed client. Now it makes a new one and subscribes
    every channel on it."""

    async def main() -> None:
        from squall.pubsub import NatsPubSub

        async with NatsPubSub(nats_server.url, reconnect_delay=0.01) as pubsub:
            sub = await pubsub.subscribe("c")
            # And the first new client's subscriptions fail on something unexpected.
            subscribe = fail_once(lambda: RuntimeError("injected"), pubsub._subscribe)
            pubsub._subscribe = subscribe  # type: ignore[method-assign]
            await pubsub._nc.close()  # what nats-py does after a fatal -ERR
            await pubsub.wait_until(
                lambda: pubsub.status.resubscribes >= 1 and pubsub.healthy, HANG_GUARD
            )
            await pubsub.publish("c", "after")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "after"
            assert subscribe.calls == 2

    run(main())


@needs_nats
def test_a_message_over_the_nats_max_payload_is_a_value_error(nats_server: NatsServer) -> None:
    """It was a ConnectionError ("cannot publish to NATS"), as if the broker were away."""

    async def main() -> None:
        from squall.pubsub import NatsPubSub

        async with NatsPubSub(nats_server.url) as pubsub:
            sub = await pubsub.subscribe("c")
            with pytest.raises(ValueError, match="over the NATS server's max_payload"):
                await pubsub.publish("c", "x" * (2 << 20))
            await pubsub.publish("c", "small")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "small" and pubsub.healthy

    run(main())


@needs_redis
def test_presence_outlives_a_real_oom_reply_from_redis(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The same as above with Redis itself answering -OOM to the refresh
    script for a while (maxmemory 1, noeviction): the entry is still there
    several TTLs after Redis takes writes again."""
    import redis.asyncio

    async def main() -> None:
        admin = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            async with RedisPubSub(redis_server.url, presence_ttl=0.6) as pubsub:
                await pubsub.join("room", "dave")
                await admin.config_set("maxmemory-policy", "noeviction")
                await admin.config_set("maxmemory", "1")
                await until(
                    lambda: any("OutOfMemoryError" in r.getMessage() for r in caplog.records),
                    HANG_GUARD,
                    "a refresh refused with -OOM",
                )
                await admin.config_set("maxmemory", "0")
                # Three TTLs later the heartbeat still keeps the entry.
                deadline = time.monotonic() + 1.8
                while time.monotonic() < deadline:
                    assert await pubsub.presence("room") == {"dave": ""}
                    await asyncio.sleep(0.1)
        finally:
            await admin.aclose()

    with caplog.at_level(logging.WARNING, logger="squall.general"):
        run(main())
