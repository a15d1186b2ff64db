"""`squall.resume.poll` never moves a cursor over a publication it did not
hand out: where the subscription it waits on skips offsets (a catch-up
after the broker connection was made again could not read what was
published meanwhile) it reads history again, and where the channel goes on
in a new epoch it says ``recovered`` False. (Before, the answer carried
the next publication and its position, and the ones in between were lost
without a word: what the history checker found for long-poll readers
around cut-broker faults and failovers.)

The node is a `LocalPubSub` whose ``_dispatch`` stands for its broker
subscription: replaced by one that drops, the subscription is away; the
interleaving is driven by the poll's own subscribe, never by time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from squall.pubsub import LocalPubSub, Position, Publication, Subscription
from squall.resume import PollResult, poll

#: Hang guard only: every wait below ends on an event.
GUARD = 30.0


async def waiting_poll(pubsub: LocalPubSub, cursor: Position) -> asyncio.Future[PollResult]:
    """A poll from ``cursor``, once it has subscribed and found nothing pending
    (it then waits for the next publication)."""
    subscribed = asyncio.Event()
    subscribe = pubsub.subscribe

    async def noted(*args: Any, **kwargs: Any) -> Subscription:
        sub = await subscribe(*args, **kwargs)
        subscribed.set()
        return sub

    pubsub.subscribe = noted  # type: ignore[method-assign]
    waiting = asyncio.ensure_future(poll(pubsub, "c", cursor, timeout=GUARD))
    await asyncio.wait_for(subscribed.wait(), GUARD)
    pubsub.subscribe = subscribe  # type: ignore[method-assign]
    return waiting


def dropping(pubsub: LocalPubSub, *texts: str) -> Callable[[Publication], None]:
    """Makes the node miss the live copies of ``texts`` (its subscription was
    away for them); returns its own dispatch, to put back."""
    deliver = pubsub._dispatch

    def lossy(pub: Publication) -> None:
        if pub.data not in texts:
            deliver(pub)

    pubsub._dispatch = lossy  # type: ignore[method-assign]
    return deliver


async def test_a_gap_in_what_the_node_hands_out_is_read_from_history() -> None:
    """The node missed "3" and its catch-up could not read it (given up when
    the read was refused for longer than subscribe_timeout: counted in
    status.missed); "4" comes live to the waiting poll, which reads history
    again from its cursor and answers both."""
    async with LocalPubSub(history_size=10) as pubsub:
        await pubsub.subscribe("c")  # the node's other readers: the channel stays subscribed
        cursor = await pubsub.publish("c", "1")
        waiting = await waiting_poll(pubsub, cursor)
        dropping(pubsub, "3")
        await pubsub.publish("c", "2")
        await pubsub.publish("c", "3")  # acknowledged, missed by the node
        await pubsub.publish("c", "4")
        answer = await asyncio.wait_for(waiting, GUARD)
        # The answer ends before the gap; the next poll reads it from history.
        assert [p.data for p in answer.publications] == ["2"]
        assert answer.recovered and answer.position == Position(2, cursor.epoch)
        after = await poll(pubsub, "c", answer.position, timeout=0)
        assert [p.data for p in after.publications] == ["3", "4"] and after.recovered

        # A gap right after the cursor: this poll reads history again itself.
        waiting = await waiting_poll(pubsub, after.position)
        dropping(pubsub, "5")
        await pubsub.publish("c", "5")
        await pubsub.publish("c", "6")
        answer = await asyncio.wait_for(waiting, GUARD)
        assert [p.data for p in answer.publications] == ["5", "6"] and answer.recovered
        assert answer.position == Position(6, cursor.epoch)
        assert pubsub.status.missed == 2


async def test_a_gap_history_no_longer_holds_is_recovered_false() -> None:
    async with LocalPubSub(history_size=2) as pubsub:
        await pubsub.subscribe("c")
        cursor = await pubsub.publish("c", "1")
        waiting = await waiting_poll(pubsub, cursor)
        dropping(pubsub, "2", "3")
        for text in "234":
            top = await pubsub.publish("c", text)
        answer = await asyncio.wait_for(waiting, GUARD)
        assert answer == PollResult([], top, False)


async def test_a_poll_waiting_when_the_channel_goes_on_in_a_new_epoch_is_recovered_false() -> None:
    """The node's broker connection is lost while a poll waits; "3" is
    acknowledged meanwhile, then the channel goes on in a new epoch (a
    failover), where "4" is published. The catch-up on the new connection
    reads the new epoch from its start and hands out "4": the poll says
    recovered False, just before it, and the next poll gets it."""
    async with LocalPubSub(history_size=10) as pubsub:
        await pubsub.subscribe("c")
        await pubsub.publish("c", "1")
        cursor = await pubsub.publish("c", "2")
        waiting = await waiting_poll(pubsub, cursor)
        deliver = dropping(pubsub, "3", "4")  # the broker connection is down
        await pubsub.publish("c", "3")
        del pubsub._streams["c"]  # the broker goes on in a new epoch
        fresh = await pubsub.publish("c", "4")
        assert fresh.epoch != cursor.epoch
        pubsub._dispatch = deliver  # type: ignore[method-assign]  # resubscribed
        pubsub._catch_up(["c"])
        answer = await asyncio.wait_for(waiting, GUARD)
        assert answer == PollResult([], Position(fresh.offset - 1, fresh.epoch), False)
        after = await poll(pubsub, "c", answer.position, timeout=0)
        assert [(p.data, p.position) for p in after.publications] == [("4", fresh)]
        assert after.recovered


async def test_an_answer_ends_before_a_publication_of_another_epoch() -> None:
    """One of the cursor's epoch then one of a new epoch, pending together:
    the answer carries the first; the next poll, from the old epoch, is
    told recovered False."""
    async with LocalPubSub(history_size=10) as pubsub:
        await pubsub.subscribe("c")
        cursor = await pubsub.publish("c", "1")
        waiting = await waiting_poll(pubsub, cursor)
        await pubsub.publish("c", "2")
        del pubsub._streams["c"]
        fresh = await pubsub.publish("c", "3")
        answer = await asyncio.wait_for(waiting, GUARD)
        assert [p.data for p in answer.publications] == ["2"] and answer.recovered
        after = await poll(pubsub, "c", answer.position, timeout=0)
        assert after == PollResult([], fresh, False)
