"""Tests for squall.queues."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from squall import queues
from squall.ioloop import IOLoop
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed


def run(test: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    return asyncio.run(asyncio.wait_for(test(), LIMIT))


def past(loop: asyncio.AbstractEventLoop) -> float:
    """A deadline (IOLoop clock) that has passed: the timer fires on the next iteration."""
    return IOLoop.current().time() - 1


async def spin(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def test_maxsize_validation() -> None:
    # Tornado's exact words, as for a negative maxsize.
    with pytest.raises(TypeError, match="^maxsize can't be None$"):
        queues.Queue(maxsize=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^maxsize can't be negative$"):
        queues.Queue(maxsize=-1)
    assert queues.Queue(3).maxsize == 3


def test_repr_and_str() -> None:
    async def main() -> None:
        q: queues.Queue[int | None] = queues.Queue(maxsize=1)
        assert str(q) == "<Queue maxsize=1>"
        assert repr(q) == f"<Queue at {hex(id(q))} maxsize=1>"
        q.get()
        assert str(q) == "<Queue maxsize=1 getters[1]>"
        q.put(None)  # goes to the getter
        q.put(7)
        q.put(8)  # waits: the queue is full
        assert str(q) == "<Queue maxsize=1 queue=deque([7]) putters[1] tasks=2>"

    run(main)


def test_fifo_nowait() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        assert q.empty() and not q.full() and q.qsize() == 0
        for i in (1, 3, 2):
            q.put_nowait(i)
        assert q.qsize() == 3 and not q.empty() and not q.full()
        assert [q.get_nowait() for _ in range(3)] == [1, 3, 2]
        with pytest.raises(queues.QueueEmpty):
            q.get_nowait()

    run(main)


def test_put_nowait_full() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue(1)
        q.put_nowait(0)
        assert q.full()
        with pytest.raises(queues.QueueFull, match="maxsize=1"):
            q.put_nowait(1)

    run(main)


def test_float_maxsize_rounds_up() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue(maxsize=1.3)  # type: ignore[arg-type]
        q.put_nowait(0)
        assert not q.full()
        q.put_nowait(1)
        assert q.full()

    run(main)


def test_get_waits_for_put() -> None:
    async def main() -> None:
        q: queues.Queue[str] = queues.Queue()
        g1 = q.get()
        g2 = q.get()
        assert not g1.done()
        put = q.put("a")
        assert put.done() and g1.done() and not g2.done()
        q.put_nowait("b")
        assert await g1 == "a" and await g2 == "b"
        assert q.empty()

    run(main)


def test_put_waits_for_get() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue(1)
        q.put_nowait(0)
        p1 = q.put(1)
        p2 = q.put(2)
        assert not p1.done()
        assert await q.get() == 0
        assert p1.done() and not p2.done()
        assert q.get_nowait() == 1
        assert p2.done()
        assert q.full()

    run(main)


def test_get_timeout() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        loop = asyncio.get_running_loop()
        for timeout in (datetime.timedelta(seconds=0), 0, past(loop)):
            with pytest.raises(TimeoutError):
                await q.get(timeout=timeout)
        timed = q.get(datetime.timedelta(seconds=0.001))
        live = q.get()
        with pytest.raises(TimeoutError):
            await timed
        q.put_nowait(5)
        assert await live == 5

    run(main)


def test_get_before_deadline() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        g = q.get(timeout=datetime.timedelta(seconds=LIMIT))
        q.put_nowait(1)
        assert await g == 1

    run(main)


def test_timer_racing_a_put() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        loop = asyncio.get_running_loop()
        g = q.get(past(loop))
        loop.call_soon(q.put_nowait, 4)
        assert await g == 4

    run(main)


def test_put_timeout() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue(1)
        q.put_nowait(0)
        timed = q.put(1, timeout=datetime.timedelta(seconds=0.001))
        live = q.put(2)
        with pytest.raises(TimeoutError):
            await timed
        assert q.get_nowait() == 0
        # 1 was never put.
        assert await q.get() == 2
        assert live.done()

    run(main)


def test_expired_waiters_dropped_lazily() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        loop = asyncio.get_running_loop()
        timed = [q.get(past(loop)) for _ in range(10)]
        live = q.get()
        await asyncio.gather(*timed, return_exceptions=True)
        assert len(q._getters) == 11
        q.put_nowait(3)
        assert len(q._getters) == 0 and await live == 3

        q2: queues.Queue[int] = queues.Queue(1)
        q2.put_nowait(0)
        timed_puts = [q2.put(i, past(loop)) for i in range(10)]
        live_put = q2.put(99)
        await asyncio.gather(*timed_puts, return_exceptions=True)
        assert len(q2._putters) == 11
        assert q2.get_nowait() == 0
        assert len(q2._putters) == 0 and live_put.done()
        assert q2.get_nowait() == 99

    run(main)


def test_sweep_of_many_expired_waiters() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        loop = asyncio.get_running_loop()
        live = q.get()  # at the front: lazy dropping alone would keep the rest
        timed = [q.get(past(loop)) for _ in range(101)]
        await asyncio.gather(*timed, return_exceptions=True)
        assert len(q._getters) == 1
        q.put_nowait(1)
        assert await live == 1

        q2: queues.Queue[int] = queues.Queue(1)
        q2.put_nowait(0)
        live_put = q2.put(1)
        timed_puts = [q2.put(i, past(loop)) for i in range(101)]
        await asyncio.gather(*timed_puts, return_exceptions=True)
        assert len(q2._putters) == 1
        q2.get_nowait()
        assert live_put.done()

    run(main)


def test_cancelled_getter_is_skipped() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        g1 = q.get()
        g2 = q.get()
        g1.cancel()
        q.put_nowait(1)
        assert await g2 == 1

    run(main)


def test_task_done_and_join() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        # Tornado's exact words, which tests of consumers match.
        with pytest.raises(ValueError, match=r"^task_done\(\) called too many times$"):
            q.task_done()
        assert q.join().done()
        q.put_nowait(0)
        q.put_nowait(1)
        join = q.join()
        assert not join.done()
        await q.get()
        q.task_done()
        assert not join.done()
        await q.get()
        q.task_done()
        assert join.done()

    run(main)


def test_join_timeout() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        q.put_nowait(0)
        # join() times out as gen.with_timeout does, with its "Timeout".
        with pytest.raises(TimeoutError, match="^Timeout$"):
            await q.join(timeout=datetime.timedelta(seconds=0.001))

    run(main)


def test_async_for() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue()
        for i in range(5):
            q.put_nowait(i)
        seen = []
        async for item in q:
            seen.append(item)
            q.task_done()
            if item == 4:
                break
        assert seen == list(range(5))
        await q.join()

    run(main)


def test_producer_consumer() -> None:
    async def main() -> None:
        q: queues.Queue[int] = queues.Queue(maxsize=3)
        history: list[int] = []

        async def consumer() -> None:
            async for item in q:
                history.append(item)
                q.task_done()

        async def producer() -> None:
            for item in range(10):
                await q.put(item)

        task = asyncio.ensure_future(consumer())
        await producer()
        await q.join()
        task.cancel()
        assert history == list(range(10))

    run(main)


def test_priority_queue() -> None:
    async def main() -> None:
        q: queues.PriorityQueue[tuple[int, str]] = queues.PriorityQueue(maxsize=2)
        q.put_nowait((1, "a"))
        q.put_nowait((0, "b"))
        assert q.full()
        q.put((3, "c"))
        q.put((2, "d"))
        assert q.get_nowait() == (0, "b")
        assert await q.get() == (1, "a")
        assert q.get_nowait() == (2, "d")
        assert await q.get() == (3, "c")
        assert q.empty()
        assert "queue=[]" not in str(q)

    run(main)


def test_lifo_queue() -> None:
    async def main() -> None:
        q: queues.LifoQueue[int] = queues.LifoQueue(maxsize=2)
        q.put_nowait(1)
        q.put_nowait(0)
        assert q.full()
        q.put(3)
        q.put(2)
        assert q.get_nowait() == 3
        assert await q.get() == 2
        assert q.get_nowait() == 0
        assert await q.get() == 1
        assert q.empty()

    run(main)


def test_subclass_hooks() -> None:
    class SetQueue(queues.Queue[int]):
        """Drops duplicates: a subclass built only from the documented hooks."""

        def _init(self) -> None:
            self._queue = []

        def _put(self, item: int) -> None:
            if item not in self._queue:
                self._queue.append(item)

        def _get(self) -> int:
            item: int = self._queue.pop(0)
            return item

    async def main() -> None:
        q = SetQueue()
        for i in (1, 1, 2):
            q.put_nowait(i)
        assert q.qsize() == 2
        assert [q.get_nowait(), q.get_nowait()] == [1, 2]

    run(main)
