"""Positions, history and recovery, the same on every engine that keeps history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from squall.pubsub import LocalPubSub, Position, Publication, PubSub, RedisPubSub, connect
from squall.resume import Reset, resume
from tests._wait import HANG_GUARD

from ._redis_server import REDIS_SERVER, SKIP_REASON, RedisServer

Factory = Callable[..., Any]


def run(coro: Awaitable[None], limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))  # type: ignore[arg-type]


@pytest.fixture(params=["memory", "redis"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """Makes `PubSub` objects of one engine; those made share one broker."""
    if request.param == "memory":
        shared: dict[str, LocalPubSub] = {}

        @asynccontextmanager
        async def memory(**options: Any) -> AsyncIterator[PubSub]:
            # One process: "two nodes" are one LocalPubSub.
            pubsub = shared.get("p") or LocalPubSub(**options)
            shared["p"] = pubsub
            yield pubsub

        yield memory
        return
    if REDIS_SERVER is None:
        pytest.skip(SKIP_REASON)
    server = RedisServer(workdir=tmp_path)
    server.start()

    @asynccontextmanager
    async def redis(**options: Any) -> AsyncIterator[PubSub]:
        pubsub = RedisPubSub(server.url, **options)
        try:
            yield pubsub
        finally:
            await pubsub.close()

    redis.server = server  # type: ignore[attr-defined]
    try:
        yield redis
    finally:
        server.stop()


def test_position_text_round_trip_and_clear_errors() -> None:
    pos = Position(42, "Xk3f9a_-")
    assert str(pos) == "42-Xk3f9a_-"
    assert Position.parse(str(pos)) == pos
    assert Position.parse("0-a-b") == Position(0, "a-b")
    for bad, why in [
        ("", "not <offset>-<epoch>"),
        ("42", "not <offset>-<epoch>"),
        ("-1-abc", "non-negative decimal"),
        ("+1-abc", "non-negative decimal"),
        ("١٢-abc", "non-negative decimal"),  # non-ASCII digits
        ("1-", "the epoch must be"),
        ("1-ab/c", "the epoch must be"),
        ("1-" + "a" * 33, "the epoch must be"),
        ("9" * 20 + "-a", "offset out of range"),
        ("1-" + "a" * 100, "too long"),
    ]:
        with pytest.raises(ValueError, match=why):
            Position.parse(bad)
    with pytest.raises(TypeError):
        Position.parse(b"1-a")  # type: ignore[arg-type]


def test_publish_returns_positions_and_history_keeps_a_bounded_window(engine: Factory) -> None:
    async def main() -> None:
        async with engine(history_size=5, max_recovery=3) as pubsub:
            assert (await pubsub.position("c")).offset == 0
            positions = [await pubsub.publish("c", f"m{i}") for i in range(1, 8)]
            assert [p.offset for p in positions] == list(range(1, 8))
            assert len({p.epoch for p in positions}) == 1
            assert await pubsub.position("c") == positions[-1]
            # Newest first by limit (max_recovery caps it), returned oldest first.
            newest = await pubsub.history("c")
            assert [p.data for p in newest.publications] == ["m5", "m6", "m7"]
            assert newest.position == positions[-1] and not newest.recovered
            two = await pubsub.history("c", limit=2)
            assert [p.data for p in two.publications] == ["m6", "m7"]
            # After a position inside the window: complete.
            after = await pubsub.history("c", since=positions[4])
            assert [p.data for p in after.publications] == ["m6", "m7"]
            assert [p.position for p in after.publications] == positions[5:]
            assert after.recovered
            # Older than the 5 kept: what is left, and recovered False.
            old = await pubsub.history("c", since=positions[0])
            assert not old.recovered
            assert all(p.position.offset > 2 for p in old.publications)
            # The limit cut the list: recovered False.
            cut = await pubsub.history("c", since=positions[2], limit=2)
            assert [p.data for p in cut.publications] == ["m4", "m5"] and not cut.recovered
            # At the top: nothing missed.
            top = await pubsub.history("c", since=positions[-1])
            assert top.publications == [] and top.recovered
            other = Position(3, "another")
            assert not (await pubsub.history("c", since=other)).recovered
            with pytest.raises(ValueError, match="limit must be 0 or more"):
                await pubsub.history("c", limit=-1)
            with pytest.raises(TypeError, match="since must be a Position"):
                await pubsub.history("c", since="3-abc")  # type: ignore[arg-type]

    run(main())


def test_subscribe_since_yields_the_missed_then_live_in_order_once(engine: Factory) -> None:
    async def main() -> None:
        async with engine(history_size=100) as pubsub, engine(history_size=100) as other:
            first = await pubsub.subscribe("room")
            assert first.recovered is None and first.position == Position(
                0, (await pubsub.position("room")).epoch
            )
            await other.publish("room", "a")
            got = await first.get_publication()
            assert got.data == "a" and first.position == got.position
            last_seen = first.position
            assert last_seen is not None
            first.close()
            for text in ("b", "c", "d"):  # missed while away
                await other.publish("room", text)
            back = await pubsub.subscribe("room", since=last_seen)
            assert back.recovered is True and back.position == last_seen
            await other.publish("room", "e")
            seen = []
            async for pub in back.publications():
                seen.append((pub.data, pub.position.offset))
                if pub.data == "e":
                    break
            assert seen == [("b", 2), ("c", 3), ("d", 4), ("e", 5)]
            assert back.position is not None and back.position.offset == 5
            # A reader already at the top recovers with nothing to replay.
            again = await pubsub.subscribe("room", since=back.position)
            assert again.recovered is True and again.pending == 0

    run(main())


def test_a_position_too_old_from_another_epoch_or_the_future_is_not_recovered(
    engine: Factory,
) -> None:
    async def main() -> None:
        async with engine(history_size=3, max_recovery=10) as pubsub:
            positions = [await pubsub.publish("c", str(i)) for i in range(6)]
            top = positions[-1]
            for since in (
                positions[0],  # trimmed away
                Position(2, "elsewhere"),
                Position(top.offset + 5, top.epoch),
            ):
                sub = await pubsub.subscribe("c", since=since)
                assert sub.recovered is False, since
                assert sub.position == top and sub.pending == 0
                await pubsub.publish("c", "live")
                pub = await sub.get_publication()
                assert pub.data == "live" and pub.position.offset > top.offset
                top = pub.position
                sub.close()

    run(main())


def test_more_missed_than_max_recovery_is_not_recovered(engine: Factory) -> None:
    async def main() -> None:
        async with engine(history_size=50, max_recovery=4) as pubsub:
            start = await pubsub.position("c")
            for i in range(5):
                await pubsub.publish("c", str(i))
            sub = await pubsub.subscribe("c", since=start)
            assert sub.recovered is False and sub.pending == 0
            fits = await pubsub.subscribe("c", since=Position(1, start.epoch))
            assert fits.recovered is True
            assert [await fits.get() for _ in range(4)] == ["1", "2", "3", "4"]

    run(main())


def test_without_history_positions_are_still_given(engine: Factory) -> None:
    async def main() -> None:
        async with engine() as pubsub:
            sub = await pubsub.subscribe("c")
            one = await pubsub.publish("c", "x")
            two = await pubsub.publish("c", "y")
            assert two.offset == one.offset + 1 and two.epoch == one.epoch
            assert (await sub.get_publication()).position == one
            assert (await pubsub.history("c")).publications == []
            again = await pubsub.subscribe("c", since=one)
            assert again.recovered is False  # nothing kept to replay "y"
            assert sub.position == one

    run(main())


def test_a_slow_reader_sees_the_offsets_jump_and_counts_the_drop(engine: Factory) -> None:
    async def main() -> None:
        async with engine() as pubsub:
            sub = await pubsub.subscribe("c", max_pending=2)
            witness = await pubsub.subscribe("c")
            for i in range(5):
                await pubsub.publish("c", str(i))
            # Redis delivers asynchronously: once the witness has the last
            # one, so has sub (one dispatch feeds both).
            assert [await witness.get() for _ in range(5)][-1] == "4"
            assert sub.dropped == 3 and pubsub.status.dropped == 3
            offsets = [(await sub.get_publication()).position.offset for _ in range(2)]
            assert offsets[1] == offsets[0] + 1 and offsets[0] == 4
            assert pubsub.status.published == 5 and pubsub.healthy

    run(main())


def test_memory_history_expires_by_age_and_forgotten_channels_get_a_new_epoch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr("squall.pubsub._base.time.monotonic", lambda: now[0])

    async def main() -> None:
        pubsub = LocalPubSub(history_size=10, history_ttl=30, max_channels=2)
        first = await pubsub.publish("a", "1")
        now[0] += 20
        await pubsub.publish("a", "2")
        now[0] += 15  # "1" is 35 s old, "2" 15 s
        result = await pubsub.history("a")
        assert [p.data for p in result.publications] == ["2"] and not result.recovered
        assert not (await pubsub.history("a", since=Position(0, first.epoch))).recovered
        # A third channel past max_channels evicts the least recently used.
        await pubsub.publish("b", "x")
        await pubsub.publish("c", "x")
        assert "a" not in pubsub._streams
        again = await pubsub.publish("a", "3")
        assert again.offset == 1 and again.epoch != first.epoch

    run(main())


def test_options_from_the_url_and_bad_options() -> None:
    pubsub = connect("memory://?history_size=7&history_ttl=2.5&max_recovery=9")
    assert (pubsub.history_size, pubsub.history_ttl, pubsub.max_recovery) == (7, 2.5, 9)
    with pytest.raises(ValueError, match="history_size must be a number"):
        connect("memory://?history_size=lots")
    with pytest.raises(ValueError, match="history_size must be 0 or more"):
        LocalPubSub(history_size=-1)
    with pytest.raises(ValueError, match="history_ttl must be"):
        LocalPubSub(history_ttl=0)
    with pytest.raises(ValueError, match="max_recovery must be at least 1"):
        LocalPubSub(max_recovery=0)


def test_a_live_copy_arriving_after_the_catch_up_read_is_not_given_twice() -> None:
    """After a resubscription the engine reads what it missed from history;
    the live copy of the last of them can arrive later, on the subscription
    connection (two connections, no order between them): it is dropped."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await pubsub.subscribe("c")
            await pubsub.publish("c", "1")
            deliver = pubsub._dispatch
            late = []
            pubsub._dispatch = late.append  # type: ignore[method-assign]  # the subscription is down
            await pubsub.publish("c", "2")
            await pubsub.publish("c", "3")
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            pubsub._catch_up(["c"])
            await asyncio.gather(*pubsub._catching_up)
            for pub in late:  # the live copies, after the history read
                pubsub._dispatch(pub)
            await pubsub.publish("c", "4")
            assert [await sub.get() for _ in range(4)] == ["1", "2", "3", "4"]
            assert sub.pending == 0 and pubsub.status.missed == 0

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_a_copy_from_a_second_connection_is_dropped_and_begins_no_new_epoch() -> None:
    """Around a failover a process can hear a partition on two connections
    (its old link and its new one): a publication handed out already comes
    again at its own offset and epoch, with its origin. It reaches no
    listener twice (a relay, which keeps nothing, included), and it is not
    taken for an offset given again to a new publication: the epoch stays.
    A new publication in a handed-out offset still begins one."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await pubsub.subscribe("c")
            relay = await pubsub.relay("c", set())
            top = await pubsub.publish("c", "1")
            pubs = [
                Publication("c", text, Position(top.offset + n, top.epoch), f"t.{n}")
                for n, text in enumerate("234", start=1)
            ]
            for pub in pubs:  # the new link
                pubsub._dispatch(pub)
            for pub in pubs:  # the old one, late
                pubsub._dispatch(pub)
            assert [await sub.get() for _ in range(4)] == list("1234")
            assert sub.pending == 0 and relay.messages == 4
            assert pubsub.status.renewed == 0 and not pubsub._held
            assert pubsub.status.delivered == 4 and pubsub.status.missed == 0
            # Another publication in offset 4 (writes lost): a new epoch.
            pubsub._dispatch(Publication("c", "5", pubs[-1].position, "u.1"))
            await asyncio.gather(*pubsub._catching_up)
            assert pubsub.status.renewed == 1
            got = await sub.get_publication()
            assert got.data == "5" and got.position.epoch != top.epoch
            assert relay.messages == 5

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_catch_up_read_refused_for_a_moment_is_tried_again() -> None:
    """After a failover the subscription can be back before the route of the
    history read is (a stale slot map, CLUSTERDOWN for a moment): a refused
    read is tried again, live ones held meanwhile, so what was published
    during the failover is still delivered, once and in order; a broker
    that keeps refusing for longer than subscribe_timeout is given up."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            pubsub.subscribe_timeout = 1.0
            sub = await pubsub.subscribe("c")
            await pubsub.publish("c", "1")
            deliver = pubsub._dispatch
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]  # down
            await pubsub.publish("c", "2")
            await pubsub.publish("c", "3")
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            read = pubsub._read
            refusals = [0]

            async def refused_twice(*args: Any, **kwargs: Any) -> Any:
                if refusals[0] < 2:
                    refusals[0] += 1
                    raise ConnectionError("CLUSTERDOWN for a moment")
                return await read(*args, **kwargs)

            pubsub._read = refused_twice  # type: ignore[method-assign]
            pubsub._catch_up(["c"])
            await pubsub.publish("c", "4")  # live, held behind the catch-up
            await asyncio.gather(*pubsub._catching_up)
            assert refusals[0] == 2
            assert [await sub.get() for _ in range(4)] == ["1", "2", "3", "4"]
            assert sub.pending == 0 and pubsub.status.missed == 0

            # Refused for longer than subscribe_timeout: given up, counted missed.
            pubsub.subscribe_timeout = 0.1
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]
            await pubsub.publish("c", "5")
            pubsub._dispatch = deliver  # type: ignore[method-assign]

            async def always_refused(*args: Any, **kwargs: Any) -> Any:
                refusals[0] += 1
                raise ConnectionError("down")

            pubsub._read = always_refused  # type: ignore[method-assign]
            pubsub._catch_up(["c"])
            await asyncio.gather(*pubsub._catching_up)
            assert refusals[0] > 3
            await pubsub.publish("c", "6")
            assert await sub.get() == "6" and pubsub.status.missed == 1

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


def test_a_catch_up_into_a_new_epoch_delivers_what_the_new_epoch_kept() -> None:
    """A failover to a replica that had none of the channel's state starts
    a new epoch on the new primary, and publications are made in it before
    the subscriber is back: the catch-up reads the new epoch from its start
    and delivers them, once and in order, before the live ones it held
    (the subscriber lost all of them, 122 in a row, and counted none
    missed, when only a read from the old position was made)."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await pubsub.subscribe("c")
            await pubsub.publish("c", "1")
            await pubsub.publish("c", "2")
            old = await pubsub.position("c")
            deliver = pubsub._dispatch
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]  # down
            # The broker lost the channel (a new epoch), then three publishes.
            del pubsub._streams["c"]
            for text in ("3", "4", "5"):
                await pubsub.publish("c", text)
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            pubsub._catch_up(["c"])
            await pubsub.publish("c", "6")  # live, held behind the catch-up
            await asyncio.gather(*pubsub._catching_up)
            assert [await sub.get() for _ in range(6)] == ["1", "2", "3", "4", "5", "6"]
            assert sub.pending == 0
            now = await pubsub.position("c")
            assert now.epoch != old.epoch and now.offset == 4
            await pubsub.publish("c", "7")
            assert await sub.get() == "7" and pubsub.status.missed == 0

    asyncio.run(asyncio.wait_for(main(), HANG_GUARD))


async def reset_then(stream: Any, old: str, expected: list[tuple[str, int]]) -> str:
    """Reads from a `squall.resume` stream a Reset out of epoch ``old``, then
    publications (data, offset) ``expected`` in the new epoch; returns it."""
    reset = await stream.next()
    assert isinstance(reset, Reset) and reset.position.epoch != old
    new: str = reset.position.epoch
    got = [await stream.next() for _ in expected]
    assert [(p.data, p.position) for p in got] == [(d, Position(o, new)) for d, o in expected]
    return new


async def lose_last_writes(
    pubsub: PubSub, channel: str, keep: int, publisher_remembers: bool = False
) -> None:
    """What a failover to a replica that had received only the first ``keep``
    publications of ``channel`` leaves: the broker's top and history back at
    ``keep``, the epoch unchanged. Unless ``publisher_remembers``, a Redis
    engine's publisher forgets its last offsets too (as a restarted process
    would), so that what notices is the subscribing side's check."""
    if isinstance(pubsub, RedisPubSub) and not publisher_remembers:
        pubsub._publisher._applied.clear()
    if isinstance(pubsub, LocalPubSub):
        stream = pubsub._streams[channel]
        stream.offset = keep
        while stream.kept and stream.kept[-1][1].position.offset > keep:
            stream.kept.pop()
        return
    assert isinstance(pubsub, RedisPubSub)
    client = pubsub._client
    await client.hset(f"squall.ps:m:{channel}", "o", keep)
    for entry, fields in await client.xrange(f"squall.ps:h:{channel}"):
        if int(fields[b"o"]) > keep:
            await client.xdel(f"squall.ps:h:{channel}", entry)


@pytest.mark.parametrize("history_size", [0, 10])
def test_offsets_given_again_after_lost_writes_go_on_in_a_new_epoch(
    engine: Factory, history_size: int
) -> None:
    """A failover to a replica that had not yet received the last three
    publications: the broker's top goes back from 5 to 2 in the same epoch
    and the next two publications take offsets 3 and 4 again. A reader at 5
    (a `squall.resume` stream, as the browser's client) dropped them as
    seen; they now come in a new epoch, after a Reset, and the broker's top
    and history are in that epoch too."""

    async def main() -> None:
        async with engine(history_size=history_size) as pubsub:
            stream = await resume(pubsub, "c")
            for text in "12345":
                await pubsub.publish("c", text)
            assert [(await stream.next()).data for _ in range(5)] == list("12345")  # type: ignore[union-attr]
            old = stream.position
            assert old is not None and old.offset == 5
            await lose_last_writes(pubsub, "c", keep=2)
            made = [await pubsub.publish("c", text) for text in "67"]
            assert [p.offset for p in made] == [3, 4]  # given again
            new = await reset_then(stream, old.epoch, [("6", 3), ("7", 4)])
            assert await pubsub.position("c") == Position(4, new)
            assert await pubsub.publish("c", "8") == Position(5, new)
            assert (await stream.next()).position == Position(5, new)  # type: ignore[union-attr]
            assert pubsub.status.missed == 0 and pubsub.status.renewed == 1
            assert not (await pubsub.history("c", since=old)).recovered
            if history_size:
                kept = await pubsub.history("c", since=Position(2, new))
                assert kept.recovered
                assert [p.data for p in kept.publications] == ["6", "7", "8"]
            stream.close()

    run(main())


async def eight_delivered(pubsub: PubSub) -> Any:
    """A subscription to "c" that has read publications "1" to "8"."""
    sub = await pubsub.subscribe("c")
    for text in "12345678":
        await pubsub.publish("c", text)
    assert [await sub.get() for _ in range(8)] == list("12345678")
    return sub


def test_a_second_resubscription_after_lost_writes_gives_nothing_twice() -> None:
    """The catch-up that finds lost writes moves the channel to a new epoch
    and takes the broker's top as where its subscribers are in it: a second
    resubscription reads on from there (it read the new epoch from its
    start, and gave the five kept publications again). "9", made into a
    reused offset while the subscriber was away, is the loss the pubsub
    guide's limits describe: not told from what was handed out."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await eight_delivered(pubsub)
            deliver = pubsub._dispatch
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]  # down
            await lose_last_writes(pubsub, "c", keep=5)
            await pubsub.publish("c", "9")  # offset 6 again, while away
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            for _ in range(2):  # a resubscription, then another
                pubsub._catch_up(["c"])
                await asyncio.gather(*pubsub._catching_up)
            await pubsub.publish("c", "10")
            assert await sub.get() == "10" and sub.pending == 0
            assert pubsub.status.renewed == 1

    run(main())


def test_one_published_between_the_resubscription_and_the_catch_up_read_is_delivered() -> None:
    """After a loss of the last writes, a publication made once the process
    is subscribed again but before its catch-up reads takes an offset below
    the process's last and is held. The catch-up finds the broker's top
    below that last, moves to a new epoch and hands the held one out in it
    (it was dropped as one the history had given: the one failure of the
    lossy failover test in about twenty runs)."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await eight_delivered(pubsub)
            old = await pubsub.position("c")
            await lose_last_writes(pubsub, "c", keep=5)
            pubsub._catch_up(["c"])  # resubscribed: the read is not made yet
            assert (await pubsub.publish("c", "9")).offset == 6
            await asyncio.gather(*pubsub._catching_up)
            await pubsub.publish("c", "10")
            got = [await sub.get_publication() for _ in range(2)]
            new = got[0].position.epoch
            assert new != old.epoch
            assert [(p.data, p.position) for p in got] == [
                ("9", Position(6, new)),
                ("10", Position(7, new)),
            ]
            assert sub.pending == 0 and pubsub.status.renewed == 1

    run(main())


def test_a_resubscription_during_the_catch_up_read_is_caught_up_too() -> None:
    """The subscription is lost and made again while the catch-up of the
    first loss is reading history (its answer on its way): "3", published
    between that read and the second resubscription, reached no
    subscription. The catch-up reads again before it hands anything out:
    "3" is delivered, in order, and nothing is counted missed (it was
    skipped and counted missed: `squall.resume` streams refilled the gap
    from history, a long poll passed over it)."""

    async def main() -> None:
        async with LocalPubSub(history_size=10) as pubsub:
            sub = await pubsub.subscribe("c")
            await pubsub.publish("c", "1")
            deliver = pubsub._dispatch
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]  # down
            await pubsub.publish("c", "2")
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
            read = pubsub._read
            answered = asyncio.Event()
            arrives = asyncio.Event()
            reads = [0]

            async def answered_then_late(*args: Any, **kwargs: Any) -> Any:
                result = await read(*args, **kwargs)  # the broker answers now...
                reads[0] += 1
                answered.set()
                await arrives.wait()  # ...and the answer arrives later
                return result

            pubsub._read = answered_then_late  # type: ignore[method-assign]
            pubsub._catch_up(["c"])
            await answered.wait()
            pubsub._dispatch = lambda pub: None  # type: ignore[method-assign]  # down again
            await pubsub.publish("c", "3")
            pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed again
            pubsub._catch_up(["c"])
            await pubsub.publish("c", "4")  # live, held behind the catch-up
            arrives.set()
            await asyncio.gather(*pubsub._catching_up)
            assert reads[0] == 2
            assert [await sub.get() for _ in range(4)] == ["1", "2", "3", "4"]
            assert sub.pending == 0 and pubsub.status.missed == 0
            await pubsub.publish("c", "5")
            assert await sub.get() == "5" and pubsub.status.missed == 0

    run(main(), 30)
