"""squall.resume.resume: gaps from a slow reader refilled from history, resets
where history cannot, new epochs, positions parsed with clear errors."""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Union

import pytest

from squall.pubsub import Position, Publication, connect
from squall.resume import Reset, parse_position, resume
from squall.resume._core import ResumedSubscription, position_text
from tests._wait import HANG_GUARD


async def take(stream: ResumedSubscription, n: int) -> list[Union[Publication, Reset]]:
    return [await asyncio.wait_for(stream.next(), HANG_GUARD) for _ in range(n)]


def test_parse_position() -> None:
    assert parse_position("12-abc") == Position(12, "abc")
    assert parse_position(None) is None and parse_position("") is None
    with pytest.raises(ValueError, match=r"^cursor: position 'x' is not <offset>-<epoch>"):
        parse_position("x", "cursor")
    with pytest.raises(ValueError, match="since: .*offset"):
        parse_position("-1-abc", "since")
    assert position_text(Position(3, "e")) == "3-e"
    assert position_text(Position(0, "")) is None and position_text(None) is None


async def test_a_slow_reader_s_gap_is_refilled_from_history() -> None:
    async with connect("memory://?history_size=100") as pubsub:
        stream = await resume(pubsub, "c", max_pending=2)
        for n in range(10):
            await pubsub.publish("c", str(n))
        got = await take(stream, 10)
        assert [p.data for p in got if isinstance(p, Publication)] == [str(n) for n in range(10)]
        assert stream.resubscribes >= 1
        stream.close()


async def test_a_gap_history_no_longer_holds_is_a_reset() -> None:
    async with connect("memory://?history_size=3") as pubsub:
        stream = await resume(pubsub, "c", max_pending=2)
        for n in range(10):
            top = await pubsub.publish("c", str(n))
        first = await take(stream, 1)
        assert first == [Reset("c", top)]
        await pubsub.publish("c", "after")
        (pub,) = await take(stream, 1)
        assert isinstance(pub, Publication) and pub.data == "after"
        stream.close()


async def test_resume_from_a_position_recovers_or_resets_first() -> None:
    async with connect("memory://?history_size=5") as pubsub:
        first = await pubsub.publish("c", "0")
        mid = await pubsub.publish("c", "1")
        await pubsub.publish("c", "2")
        stream = await resume(pubsub, "c", mid)
        assert stream.recovered is True
        (pub,) = await take(stream, 1)
        assert isinstance(pub, Publication) and pub.data == "2"
        stream.close()
        for n in range(10):
            top = await pubsub.publish("c", str(n))
        stream = await resume(pubsub, "c", first)
        assert stream.recovered is False
        assert await take(stream, 1) == [Reset("c", top)]
        stream.close()


class FakeSub:
    """A subscription that yields a fixed list (for what memory:// cannot
    produce on demand: an epoch change, a message without a position)."""

    def __init__(self, pubs: list[Publication], position: Optional[Position]) -> None:
        self.pubs = pubs
        self.position = position
        self.recovered: Optional[bool] = None
        self.closed = False

    async def get_publication(self) -> Publication:
        return self.pubs.pop(0)

    def close(self) -> None:
        self.closed = True


async def test_new_epoch_is_a_reset_then_the_publication() -> None:
    pubs = [
        Publication("c", "a", Position(4, "old")),
        Publication("c", "foreign", Position(0, "")),
        Publication("c", "b", Position(1, "new")),
        Publication("c", "c", Position(2, "new")),
    ]
    sub: Any = FakeSub(pubs, Position(3, "old"))
    stream = ResumedSubscription(None, "c", sub, None)  # type: ignore[arg-type]
    got = await take(stream, 5)
    assert [getattr(x, "data", None) for x in got] == ["a", "foreign", None, "b", "c"]
    assert got[2] == Reset("c", Position(0, "new"))
    assert stream.position == Position(2, "new")
