"""The Redis Cluster engine against 3 primaries + 3 replicas started by the tests."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from squall.pubsub import Position, PublishUncertainError, RedisClusterPubSub, connect
from tests._wait import HANG_GUARD, until

from ._servers import REDIS_CLI, REDIS_SERVER, RedisCluster

pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed (apt-get install redis-server)",
)


def run(coro: Any, limit: float = HANG_GUARD) -> None:
    asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """Shared by the tests that leave the cluster as they found it."""
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as started:
        yield started


def spread(pubsub: RedisClusterPubSub, count: int) -> list[str]:
    """Channel names in ``count`` different partitions."""
    names: dict[int, str] = {}
    i = 0
    while len(names) < count:
        names.setdefault(pubsub.partition(f"room:{i}"), f"room:{i}")
        i += 1
    return list(names.values())


def test_sharded_delivery_between_two_nodes_with_positions(cluster: RedisCluster) -> None:
    async def main() -> None:
        async with (
            RedisClusterPubSub(cluster.url, history_size=10) as node_a,
            RedisClusterPubSub(cluster.url, history_size=10) as node_b,
        ):
            channels = spread(node_a, 12)
            subs = [await node_a.subscribe(c) for c in channels]
            # Twelve partitions over three shards: at most one link per shard.
            assert 1 < node_a.links <= 3
            positions = [await node_b.publish(c, f"to {c}") for c in channels]
            for sub, channel, pos in zip(subs, channels, positions, strict=True):
                pub = await sub.get_publication()
                assert (pub.channel, pub.data, pub.position) == (channel, f"to {channel}", pos)
                assert pos.offset == 1
            history = await node_a.history(channels[0])
            assert [p.data for p in history.publications] == [f"to {channels[0]}"]
            assert history.recovered and node_a.healthy and node_b.status.published == 12

    run(main())


def test_many_publishes_at_once_on_a_fresh_client(cluster: RedisCluster) -> None:
    """redis-py's cluster client broke a connection it was opening when its
    first commands came all at once (AttributeError 'writelines')."""

    async def main() -> None:
        async with RedisClusterPubSub(cluster.url) as pubsub:
            gate = asyncio.Semaphore(16)

            async def one(i: int) -> Position:
                async with gate:
                    return await pubsub.publish(f"burst:{i % 64}", "x")

            positions = await asyncio.gather(*(one(i) for i in range(500)))
            assert len(positions) == 500 and pubsub.status.published == 500
            # Per channel, the offsets are 1, 2, ... in the order published.
            assert sorted(p.offset for p in positions[0::64]) == list(range(1, 9))

    run(main())


def test_partitions_are_subscribed_only_while_needed(cluster: RedisCluster) -> None:
    async def main() -> None:
        async with RedisClusterPubSub(cluster.url, partitions=16) as pubsub:
            one, two = spread(pubsub, 2)
            # Another channel in the same partition as `one`.
            same = next(
                f"x{i}" for i in range(1000) if pubsub.partition(f"x{i}") == pubsub.partition(one)
            )
            a = await pubsub.subscribe(one)
            b = await pubsub.subscribe(same)
            c = await pubsub.subscribe(two)
            assert pubsub.subscribed_partitions == {pubsub.partition(one), pubsub.partition(two)}
            a.close()
            assert pubsub.partition(one) in pubsub.subscribed_partitions  # `same` needs it
            b.close()
            c.close()
            await pubsub.wait_until(lambda: not pubsub.subscribed_partitions, HANG_GUARD)
            assert pubsub.subscribed_partitions == set() and pubsub.links == 0
            # The cluster agrees: nobody listens on those partition channels.
            tag = f"{{sq.{pubsub.partition(one)}}}"
            counts = await pubsub._client.pubsub_shardnumsub(tag, target_nodes="primaries")
            assert counts  # each primary answers; none counts a subscriber
            assert all(int(n) == 0 for _, n in counts)

    run(main())


def test_classic_publish_on_a_cluster(cluster: RedisCluster) -> None:
    async def main() -> None:
        publisher = connect(cluster.url + "?sharded=0&partitions=8")
        reader = connect(cluster.url + "?sharded=0&partitions=8")
        assert isinstance(publisher, RedisClusterPubSub) and not publisher.sharded
        try:
            subs = [await reader.subscribe(c) for c in ("a", "b", "c")]
            assert reader.links == 1  # classic: one node hears everything
            for c in ("a", "b", "c"):
                await publisher.publish(c, c * 2)
            assert [await s.get() for s in subs] == ["aa", "bb", "cc"]
        finally:
            await publisher.close()
            await reader.close()

    run(main())


def test_plain_publishes_on_a_cluster_run_no_script_and_reach_every_shard(
    cluster: RedisCluster,
) -> None:
    """``?positions=0``: each publish is one SPUBLISH on its partition's
    shard (no EVALSHA on any primary), delivered with the plain position to
    a node with positions and to one without; classic PUBLISH the same."""

    async def evalsha_calls(pubsub: RedisClusterPubSub) -> int:
        stats = await pubsub._client.info("commandstats", target_nodes="primaries")
        return sum(int(info.get("cmdstat_evalsha", {}).get("calls", 0)) for info in stats.values())

    async def main() -> None:
        for query in ("?positions=0", "?positions=0&sharded=0&partitions=8"):
            publisher = connect(cluster.url + query)
            plain_reader = connect(cluster.url + query)
            reader = connect(cluster.url + query.replace("positions=0", "positions=1"))
            assert isinstance(publisher, RedisClusterPubSub)
            try:
                assert not publisher.has_positions and reader.has_positions
                channels = spread(publisher, 6)
                subs = [await r.subscribe(c) for r in (plain_reader, reader) for c in channels]
                before = await evalsha_calls(publisher)
                positions = [await publisher.publish(c, f"to {c}") for c in channels]
                assert await evalsha_calls(publisher) == before
                # (The count counts: a scripted publish, its first on the
                # shard two EVALSHAs, the first answered NOSCRIPT.)
                await reader.publish(channels[0], "scripted")
                assert await evalsha_calls(publisher) > before
                assert {str(p) for p in positions} == {"0-redis"}
                got = [await s.get_publication() for s in subs]
                assert [(p.channel, p.data) for p in got] == [(c, f"to {c}") for c in channels] * 2
                assert {p.position for p in got} == {Position(0, "redis")}
                assert [await s.get() for s in (subs[0], subs[len(channels)])] == ["scripted"] * 2
                assert not (await plain_reader.history(channels[0])).recovered
            finally:
                for pubsub in (publisher, plain_reader, reader):
                    await pubsub.close()

    run(main(), limit=20)


def test_presence_across_two_nodes_on_the_cluster(cluster: RedisCluster) -> None:
    async def main() -> None:
        async with (
            RedisClusterPubSub(cluster.url) as node_a,
            RedisClusterPubSub(cluster.url) as node_b,
        ):
            channels = spread(node_a, 3)
            entries = [await node_a.join(c, "ann", "A") for c in channels]
            await node_b.join(channels[0], "bob", "B")
            assert await node_b.presence(channels[0]) == {"ann": "A", "bob": "B"}
            assert [await node_b.presence_count(c) for c in channels] == [2, 1, 1]
            await entries[0].leave()
            assert await node_a.presence(channels[0]) == {"bob": "B"}

    run(main())


def test_bad_cluster_urls_get_clear_errors() -> None:
    with pytest.raises(ValueError, match="is not host:port"):
        RedisClusterPubSub("redis+cluster://127.0.0.1")
    with pytest.raises(ValueError, match="partitions must be a number"):
        RedisClusterPubSub("redis+cluster://127.0.0.1:1?partitions=many")
    with pytest.raises(ValueError, match="partitions must be 1 to 16384"):
        RedisClusterPubSub("redis+cluster://127.0.0.1:1", partitions=0)
    with pytest.raises(ValueError, match="sharded must be 0 or 1"):
        RedisClusterPubSub("redis+cluster://127.0.0.1:1?sharded=yes")


@pytest.mark.parametrize("name", ["health_interval", "command_timeout", "publish_timeout"])
@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "2"])
def test_timeouts_must_be_seconds_above_0(name: str, bad: object) -> None:
    # As RedisPubSub refuses them: a PING loop or a socket timeout of 0
    # (or less) would spin or fail every command.
    with pytest.raises(ValueError, match=f"{name} must be a number of seconds above 0, not"):
        RedisClusterPubSub("redis+cluster://127.0.0.1:1", **{name: bad})


def test_publish_timeout_defaults_to_the_node_timeout_plus_5_s(cluster: RedisCluster) -> None:
    async def main() -> None:
        async with RedisClusterPubSub(cluster.url) as pubsub:
            assert pubsub.publish_timeout == 20.0  # Redis' default 15 s, until asked
            await pubsub.publish("t", "x")
            assert pubsub.publish_timeout == cluster.node_timeout / 1000 + 5
        # Asked for (long enough for any machine: the publish is not timed here).
        async with RedisClusterPubSub(cluster.url, publish_timeout=HANG_GUARD) as pubsub:
            await pubsub.publish("t", "x")
            assert pubsub.publish_timeout == HANG_GUARD
        for bad in (0, -1, "3"):
            with pytest.raises(ValueError, match="publish_timeout must be"):
                RedisClusterPubSub(cluster.url, publish_timeout=bad)  # type: ignore[arg-type]

    run(main())


def test_history_flushed_on_the_cluster_means_recovered_false(cluster: RedisCluster) -> None:
    async def main() -> None:
        async with RedisClusterPubSub(cluster.url, history_size=10) as pubsub:
            await pubsub.publish("flushme", "a")
            kept = await pubsub.publish("flushme", "b")
            await pubsub._client.flushall(target_nodes="primaries")
            sub = await pubsub.subscribe("flushme", since=kept)
            assert sub.recovered is False and sub.position is not None
            assert sub.position.epoch != kept.epoch and sub.position.offset == 0

    run(main())


def test_failover_resubscribes_by_itself_and_recovers_with_positions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the primary of a subscribed partition while publishing: its
    replica takes over, the subscriber's node resubscribes without the
    application doing anything, and a reader resuming from its position gets
    every publication once, in order, or is told it may have missed some
    when it comes back from before the failover."""

    async def main(cluster: RedisCluster) -> None:
        async with (
            RedisClusterPubSub(cluster.url, history_size=1000, reconnect_delay=0.02) as node_a,
            RedisClusterPubSub(cluster.url, history_size=1000) as node_b,
        ):
            channel = "failover"
            live = await node_a.subscribe(channel)
            reader = await node_a.subscribe(channel)
            sent: list[Position] = []

            async def publish(text: str) -> None:
                # A publish refused mid-failover is tried again by the
                # engine until the replica has taken over.
                sent.append(await node_b.publish(channel, text))

            for i in range(5):
                await publish(str(i))
            got = [await reader.get_publication() for _ in range(5)]
            last = got[-1].position
            reader.close()  # the reader's connection drops
            owner = cluster.owner(f"{{sq.{node_a.partition(channel)}}}")
            # What the primary acknowledged is on its replica before the kill
            # (Redis replicates asynchronously: a failover may lose the last
            # writes, which the epoch does not show).
            # The replica has the history before its primary stops: WAIT's
            # own timeout stays under node_b's command timeout (0.5 s), so a
            # busy machine gets more rounds, not a socket timeout.
            primary = node_b._client.get_node("127.0.0.1", owner)
            for _ in range(40):
                if await node_b._client.execute_command("WAIT", 1, 300, target_nodes=primary):
                    break
            else:
                raise AssertionError("the replica never acknowledged the history")
            cluster.kill(owner)
            for i in range(5, 15):
                await publish(str(i))
            # The live subscription resumed: it sees every message, then new ones.
            seen = [(await live.get_publication()).data for _ in range(15)]
            assert seen == [str(i) for i in range(15)]
            assert node_a.status.resubscribes >= 1 and node_a.healthy
            assert 0 < node_a.status.last_resume < 8
            # The publishes after the failover are in a new epoch, begun
            # after the top the replica had: nothing on it can tell whether
            # the old primary had acknowledged more (here it had not, but a
            # failover may lose the last writes), so a reader coming back
            # from before it is told so, never handed the offsets after its
            # position as if they were all there were.
            assert {p.epoch for p in sent[5:]} == {sent[5].epoch} != {last.epoch}
            assert sent[5].offset == 6
            back = await node_a.subscribe(channel, since=last)
            assert back.recovered is False
            assert back.position == sent[-1]
            # From the new epoch's start, it reads all of it.
            again = await node_a.subscribe(channel, since=Position(0, sent[5].epoch))
            assert again.recovered is True
            rest = [await again.get_publication() for _ in range(10)]
            assert [p.data for p in rest] == [str(i) for i in range(5, 15)]
            assert [p.position for p in rest] == sent[5:]

    cluster = RedisCluster(tmp_path)
    cluster.start()
    try:
        with caplog.at_level(logging.WARNING, logger="squall.general"):
            run(main(cluster), limit=20)
    finally:
        cluster.stop()
    assert any("subscribed again after" in r.getMessage() for r in caplog.records)


def test_a_stopped_primary_is_left_by_the_watchdog_and_nothing_is_lost(tmp_path: Path) -> None:
    """SIGSTOP (not kill) the primary of a subscribed partition: its socket
    stays open and silent. The unanswered PING gives the link up, the
    replica takes over, publishes wait it out, and with history the
    subscription misses nothing and gets nothing twice."""

    async def main(cluster: RedisCluster) -> None:
        async with (
            RedisClusterPubSub(
                cluster.url, history_size=100, health_interval=0.25, reconnect_delay=0.02
            ) as node_a,
            RedisClusterPubSub(cluster.url, history_size=100, command_timeout=0.5) as node_b,
        ):
            channel = "paused"
            live = await node_a.subscribe(channel)
            await node_b.publish(channel, "0")
            assert await live.get() == "0"
            owner = cluster.owner(f"{{sq.{node_a.partition(channel)}}}")
            # The replica has the history before its primary stops: WAIT's
            # own timeout stays under node_b's command timeout (0.5 s), so a
            # busy machine gets more rounds, not a socket timeout.
            primary = node_b._client.get_node("127.0.0.1", owner)
            for _ in range(40):
                if await node_b._client.execute_command("WAIT", 1, 300, target_nodes=primary):
                    break
            else:
                raise AssertionError("the replica never acknowledged the history")
            cluster.pause(owner)
            loop = asyncio.get_running_loop()
            stopped = loop.time()
            # The first publish waits out the failover: its attempt got no
            # answer from the stopped primary, which might have applied it
            # just before (a failover would lose it, and readers had it
            # live). Tried again, it is refused on the promoted replica and
            # the publisher says it cannot tell (here the test knows it was
            # not applied: the primary was stopped first).
            with pytest.raises(PublishUncertainError):
                await node_b.publish(channel, "1")
            for i in range(2, 6):
                await node_b.publish(channel, str(i))
            assert [await live.get() for _ in range(4)] == ["2", "3", "4", "5"]
            assert node_a.status.resubscribes >= 1 and node_a.status.missed == 0
            assert node_a.healthy
            # The old primary resumes, runs what waited in its sockets (the
            # attempts to publish "1", sent again elsewhere since) and only
            # then hears it was replaced: its SPUBLISH would reach the new
            # primary over the cluster bus. The attempts, older than
            # node_b's command_timeout plus a second by then (the stop
            # lasts that long: a fault's length, not a wait for a server),
            # are not applied: the next publication is the next one read.
            await asyncio.sleep(max(0.0, stopped + 2.0 - loop.time()))
            cluster.resume(owner)
            await asyncio.to_thread(cluster.wait_role, owner, "slave")
            await node_b.publish(channel, "6")
            assert await live.get() == "6"

    cluster = RedisCluster(tmp_path)
    cluster.start()
    try:
        run(main(cluster), limit=25)
    finally:
        cluster.stop()


class _HungPubSub:
    """A link's pub/sub whose PING waits until `cut`, then raises
    AttributeError, as redis-py 8 does when its connection is closed under it."""

    def __init__(self, owner: RedisClusterPubSub) -> None:
        self.owner = owner
        self.pinged = asyncio.Event()
        self.cut = asyncio.Event()

    def ping(self) -> Any:
        # Called before the watchdog reads health_interval for the PING's
        # own timeout: a long one, so that only the test ends the PING.
        self.owner.health_interval = 30.0
        self.pinged.set()
        return self._answer()

    async def _answer(self) -> None:
        await self.cut.wait()
        raise AttributeError("'NoneType' object has no attribute 'writelines'")


def test_the_watchdog_cancelled_as_its_ping_fails_ends_cancelled() -> None:
    """At shutdown the connections close as the loop cancels the watchdog:
    its PING fails in the same turn. It must end as cancelled, not with
    redis-py's AttributeError (logged as unhandled by asyncio.run)."""
    from squall.pubsub._cluster import _Link

    async def main() -> None:
        pubsub = RedisClusterPubSub("redis+cluster://127.0.0.1:1", health_interval=0.01)
        hung = _HungPubSub(pubsub)
        link = _Link(("127.0.0.1", 1), type("Client", (), {"pubsub": lambda self: hung})())
        link.task = asyncio.ensure_future(asyncio.Event().wait())  # "subscribed"
        pubsub._links[link.addr] = link
        watch = asyncio.ensure_future(pubsub._watch())
        try:
            await asyncio.wait_for(hung.pinged.wait(), HANG_GUARD)
            hung.cut.set()  # the PING fails ...
            watch.cancel()  # ... in the turn the watchdog is cancelled
            with pytest.raises(asyncio.CancelledError):
                await watch
        finally:
            link.task.cancel()
            pubsub._links.clear()
            await pubsub.close()

    run(main())


def _fail_once(error: BaseException, original: Any) -> Any:
    """``original``, except that its first call raises ``error``; counts calls."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wrapper.calls += 1  # type: ignore[attr-defined]
        if wrapper.calls == 1:  # type: ignore[attr-defined]
            raise error
        return original(*args, **kwargs)

    wrapper.calls = 0  # type: ignore[attr-defined]
    return wrapper


def test_the_manager_survives_an_unexpected_exception(
    cluster: RedisCluster, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py raises AttributeError from a connection closed under a
    command: the manager caught only connection and reply errors, ended, and
    every later subscribe failed ("did not confirm"); close() re-raised it."""

    async def main() -> None:
        pubsub = RedisClusterPubSub(cluster.url, subscribe_timeout=HANG_GUARD, reconnect_delay=0.01)
        try:
            reconcile = _fail_once(
                AttributeError("'NoneType' object has no attribute 'writelines'"),
                pubsub._reconcile,
            )
            pubsub._reconcile = reconcile  # type: ignore[method-assign]
            sub = await pubsub.subscribe("room:1")
            await pubsub.publish("room:1", "delivered")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "delivered"
            assert reconcile.calls >= 2 and pubsub.healthy
        finally:
            await pubsub.close()  # raises nothing the manager raised

    with caplog.at_level(logging.ERROR, logger="squall.general"):
        run(main())
    assert any("re-subscription manager failed" in r.getMessage() for r in caplog.records)


def test_the_ping_watch_survives_an_unexpected_exception(
    cluster: RedisCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One exception the watch did not expect ended it: no link was PINGed
    any more, and a stopped node was never left."""
    import redis.asyncio.client

    ping = _fail_once(ValueError("injected"), redis.asyncio.client.PubSub.ping)
    monkeypatch.setattr(redis.asyncio.client.PubSub, "ping", ping)

    async def main() -> None:
        async with RedisClusterPubSub(cluster.url, health_interval=0.05) as pubsub:
            sub = await pubsub.subscribe("room:1")
            await until(lambda: ping.calls >= 4)  # the watch went on after the failure
            await pubsub.wait_until(lambda: pubsub.healthy, HANG_GUARD)
            await pubsub.publish("room:1", "still delivered")
            assert await asyncio.wait_for(sub.get(), HANG_GUARD) == "still delivered"

    run(main())


def test_a_link_reader_that_raises_is_made_again(cluster: RedisCluster) -> None:
    """An exception other than a lost connection ended the link's reader and
    left the link in place, subscribed and unread: nothing more delivered."""

    async def main() -> None:
        async with RedisClusterPubSub(cluster.url, history_size=10) as pubsub:
            sub = await pubsub.subscribe("room:1")
            dispatch = _fail_once(KeyError("injected"), pubsub._dispatch)
            pubsub._dispatch = dispatch  # type: ignore[method-assign]
            await pubsub.publish("room:1", "hit by the exception")
            await pubsub.publish("room:1", "after")
            got = [await asyncio.wait_for(sub.get(), HANG_GUARD) for _ in range(2)]
            assert got == ["hit by the exception", "after"]  # the first from history

    run(main())
