"""Tests for squall.locks."""

from __future__ import annotations

import asyncio
import datetime
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import pytest

from squall import locks
from squall.ioloop import IOLoop
from tests._wait import HANG_GUARD

from ._clock import LoopClock

_T = TypeVar("_T")

# Waits on futures are bounded so that a bug fails the test instead of hanging.
LIMIT = HANG_GUARD  # a hang guard, not a measure of speed


def run(test: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    return asyncio.run(asyncio.wait_for(test(), LIMIT))


def past(loop: asyncio.AbstractEventLoop) -> float:
    """A deadline (IOLoop clock) that has passed: the timer fires on the next iteration."""
    return IOLoop.current().time() - 1


async def spin(n: int = 3) -> None:
    """Lets the loop run its ready callbacks a few times."""
    for _ in range(n):
        await asyncio.sleep(0)


# -- timeouts ---------------------------------------------------------------


def test_timeout_accepts_timedelta_float_and_int() -> None:
    async def main() -> None:
        c = locks.Condition()
        loop = asyncio.get_running_loop()
        results = await asyncio.gather(
            c.wait(datetime.timedelta(seconds=0)),
            c.wait(past(loop)),
            c.wait(int(IOLoop.current().time()) - 1),
        )
        assert results == [False, False, False]

    run(main)


def test_float_deadline_is_on_the_ioloop_clock() -> None:
    async def main() -> None:
        c = locks.Condition()
        w = c.wait(IOLoop.current().time() + 0.05)
        await spin()
        assert not w.done()
        assert await w is False

    run(main)


@pytest.mark.parametrize("bad", ["1", True, object()])
def test_timeout_rejects_other_types(bad: Any) -> None:
    async def main() -> None:
        # The message IOLoop.add_timeout gives, which is what Tornado's
        # primitives raise for a bad deadline (their timers go through it).
        expected = f"^Unsupported deadline {re.escape(repr(bad))}$"
        with pytest.raises(TypeError, match=expected):
            locks.Condition().wait(bad)
        with pytest.raises(TypeError, match=expected):
            locks.Event().wait(bad)
        with pytest.raises(TypeError, match=expected):
            locks.Semaphore(0).acquire(bad)

    run(main)


# -- Condition ---------------------------------------------------------------


def test_condition_repr_counts_waiters() -> None:
    async def main() -> None:
        c = locks.Condition()
        assert repr(c) == "<Condition>"
        c.wait()
        c.wait()
        assert repr(c) == "<Condition waiters[2]>"

    run(main)


def test_condition_notify_wakes_oldest_first() -> None:
    async def main() -> None:
        c = locks.Condition()
        waits = [c.wait() for _ in range(4)]
        c.notify()
        assert [w.done() for w in waits] == [True, False, False, False]
        c.notify(2)
        assert [w.done() for w in waits] == [True, True, True, False]
        assert await waits[0] is True

    run(main)


def test_condition_notify_all_and_notify_without_waiters() -> None:
    async def main() -> None:
        c = locks.Condition()
        c.notify()  # nobody waiting: a no-op
        c.notify_all()
        waits = [c.wait() for _ in range(3)]
        c.notify_all()
        assert await asyncio.gather(*waits) == [True, True, True]
        assert repr(c) == "<Condition>"

    run(main)


def test_condition_wait_timeout_resolves_false() -> None:
    async def main() -> None:
        c = locks.Condition()
        assert await c.wait(datetime.timedelta(seconds=0.001)) is False
        # A later waiter is unaffected by the timed-out one.
        w = c.wait()
        c.notify()
        assert await w is True

    run(main)


def test_condition_timed_out_waiter_does_not_consume_notify() -> None:
    async def main() -> None:
        c = locks.Condition()
        loop = asyncio.get_running_loop()
        first = c.wait()
        timed = c.wait(past(loop))
        third = c.wait()
        assert await timed is False
        c.notify(2)
        assert first.done() and third.done()

    run(main)


def test_condition_notified_before_deadline() -> None:
    async def main() -> None:
        c = locks.Condition()
        w = c.wait(datetime.timedelta(seconds=LIMIT))
        c.notify()
        assert await w is True

    run(main)


def test_condition_timer_racing_a_notify() -> None:
    async def main() -> None:
        c = locks.Condition()
        loop = asyncio.get_running_loop()
        # The timer and the notify run in the same loop iteration, notify first:
        # the waiter must keep the True result.
        w = c.wait(past(loop))
        loop.call_soon(c.notify)
        assert await w is True

    run(main)


def test_condition_cancelled_waiter_is_skipped() -> None:
    async def main() -> None:
        c = locks.Condition()
        w1 = c.wait()
        w2 = c.wait()
        w1.cancel()
        c.notify()
        assert w2.done()

    run(main)


def test_condition_nested_notify_from_callback() -> None:
    async def main() -> None:
        c = locks.Condition()
        waits = [c.wait() for _ in range(3)]
        waits[1].add_done_callback(lambda _: c.notify())
        c.notify(2)
        await spin()
        assert all(w.done() for w in waits)

    run(main)


def test_condition_sweeps_timed_out_waiters() -> None:
    async def main() -> None:
        c = locks.Condition()
        loop = asyncio.get_running_loop()
        timed = [c.wait(past(loop)) for _ in range(101)]
        live = c.wait()
        assert len(c._waiters) == 102
        await asyncio.gather(*timed)
        assert len(c._waiters) == 1
        c.notify()
        assert live.done()

    run(main)


def test_condition_few_timeouts_are_not_swept() -> None:
    async def main() -> None:
        c = locks.Condition()
        loop = asyncio.get_running_loop()
        timed = [c.wait(past(loop)) for _ in range(10)]
        c.wait()
        await asyncio.gather(*timed)
        # Below the threshold, dead waiters wait to be skipped by notify.
        assert len(c._waiters) == 11

    run(main)


def test_condition_timed_waits_share_one_timer_and_wake_without_callbacks() -> None:
    # A long poll with a timeout: many waits with deadlines cost one loop
    # timer, and notify_all schedules nothing per waiter beyond its own
    # wake-up (no done callback to cancel a timer of its own).
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, asyncio.BaseEventLoop)
        c = locks.Condition()
        timers = len(loop._scheduled)  # type: ignore[attr-defined]
        waiters = [c.wait(datetime.timedelta(seconds=60 + i)) for i in range(50)]
        assert len(loop._scheduled) == timers + 1  # type: ignore[attr-defined]
        ready = len(loop._ready)  # type: ignore[attr-defined]
        c.notify_all()
        assert len(loop._ready) == ready  # type: ignore[attr-defined]
        assert all(w.result() is True for w in waiters)
        assert all(h.cancelled() for h in loop._scheduled[timers:])  # type: ignore[attr-defined]

    run(main)


def test_condition_shared_timer_keeps_each_deadline() -> None:
    async def main() -> None:
        clock = LoopClock(asyncio.get_running_loop())
        try:
            c = locks.Condition()
            late = c.wait(datetime.timedelta(seconds=300))
            early = c.wait(datetime.timedelta(seconds=100))
            middle = c.wait(datetime.timedelta(seconds=200))
            gone = c.wait(datetime.timedelta(seconds=50))
            forever = c.wait()
            gone.cancel()
            await clock.advance(60)
            assert not any(w.done() for w in (late, early, middle, forever))
            await clock.advance(50)
            assert early.result() is False
            assert not any(w.done() for w in (late, middle, forever))
            c.notify()  # the oldest still waiting
            assert late.result() is True
            await clock.advance(100)
            assert middle.result() is False and not forever.done()
            later = c.wait(datetime.timedelta(seconds=10))
            await clock.advance(11)
            assert later.result() is False and not forever.done()
            c.notify()
            assert forever.result() is True
        finally:
            clock.close()

    # The test's own bound is on the clock it moves (221 s in all).
    asyncio.run(asyncio.wait_for(main(), 300 + LIMIT))


def test_condition_kept_across_event_loops_still_times_out() -> None:
    # A module-level condition used by one asyncio.run after another: the
    # shared timer of a closed loop must not hold the next loop's deadlines.
    c = locks.Condition()

    async def first() -> None:
        c.wait(datetime.timedelta(seconds=0.01))  # left waiting when the loop closes

    async def second() -> bool:
        # A deadline after the first one's: only a timer on this loop ends it.
        return await c.wait(datetime.timedelta(seconds=0.3))

    asyncio.run(first())
    assert asyncio.run(asyncio.wait_for(second(), LIMIT)) is False


# -- Event -------------------------------------------------------------------


def test_event_repr_and_state() -> None:
    async def main() -> None:
        e = locks.Event()
        assert repr(e) == "<Event clear>" and not e.is_set()
        e.set()
        e.set()
        assert repr(e) == "<Event set>" and e.is_set()
        e.clear()
        assert not e.is_set()

    run(main)


def test_event_wait() -> None:
    async def main() -> None:
        e = locks.Event()
        before = e.wait()
        e.clear()
        also_before = e.wait()
        e.set()
        after = e.wait()
        assert before.done() and also_before.done() and after.done()
        e.clear()
        blocked = e.wait()
        assert not blocked.done()
        e.set()
        assert await blocked is None

    run(main)


def test_event_wait_timeout_raises() -> None:
    async def main() -> None:
        e = locks.Event()
        # "Timeout", the message of gen.with_timeout, which Tornado's
        # Event.wait uses: a program may log or show it.
        with pytest.raises(TimeoutError, match="^Timeout$"):
            await e.wait(datetime.timedelta(seconds=0.001))
        assert not e._waiters
        # It still works after a timed-out waiter.
        w = e.wait(datetime.timedelta(seconds=LIMIT))
        asyncio.get_running_loop().call_soon(e.set)
        assert await w is None
        await spin()
        assert not e._waiters

    run(main)


def test_event_timer_racing_a_set() -> None:
    async def main() -> None:
        e = locks.Event()
        loop = asyncio.get_running_loop()
        w = e.wait(past(loop))
        loop.call_soon(e.set)
        assert await w is None

    run(main)


def test_event_cancelled_waiter_is_forgotten() -> None:
    async def main() -> None:
        e = locks.Event()
        w = e.wait()
        assert len(e._waiters) == 1
        w.cancel()
        await spin()
        assert not e._waiters
        e.set()  # skips nothing, raises nothing
        assert e.is_set()

    run(main)


def test_event_set_skips_a_cancelled_waiter() -> None:
    async def main() -> None:
        e = locks.Event()
        cancelled = e.wait()
        live = e.wait()
        cancelled.cancel()
        e.set()  # before the done callback removed the cancelled one
        assert live.done() and cancelled.cancelled()

    run(main)


# -- Semaphore ---------------------------------------------------------------


def test_semaphore_rejects_negative_value() -> None:
    with pytest.raises(ValueError, match="^semaphore initial value must be >= 0$"):
        locks.Semaphore(-1)


def test_semaphore_repr() -> None:
    async def main() -> None:
        sem = locks.Semaphore()
        # object's repr, then the state: "<squall.locks.Semaphore object at 0x... [...]>".
        assert re.fullmatch(
            r"<squall\.locks\.Semaphore object at 0x[0-9a-f]+ \[unlocked,value:1\]>", repr(sem)
        )
        sem.acquire()
        assert "[locked]" in repr(sem)
        sem.acquire()
        assert "[locked,waiters:1]" in repr(sem)

    run(main)


def test_semaphore_acquire_release_fifo() -> None:
    async def main() -> None:
        sem = locks.Semaphore()
        assert sem.acquire().done()
        w1 = sem.acquire()
        w2 = sem.acquire()
        assert not w1.done()
        sem.release()
        assert w1.done() and not w2.done()
        sem.release()
        assert w2.done()
        sem.release()
        sem.release()  # unbounded: the value goes to 2
        assert sem.acquire().done() and sem.acquire().done()
        assert not sem.acquire().done()

    run(main)


def test_semaphore_acquire_timeout() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)
        with pytest.raises(TimeoutError):
            await sem.acquire(datetime.timedelta(seconds=0.001))
        # The timed-out waiter took no permit and is skipped by release.
        w = sem.acquire()
        sem.release()
        assert w.done()
        assert "[locked]" in repr(sem)

    run(main)


def test_semaphore_acquired_before_deadline() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)
        w = sem.acquire(datetime.timedelta(seconds=LIMIT))
        sem.release()
        with await w:
            pass
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_timer_racing_a_release() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)
        loop = asyncio.get_running_loop()
        w = sem.acquire(past(loop))
        loop.call_soon(sem.release)
        with await w:
            pass
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_sweeps_timed_out_waiters() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)
        loop = asyncio.get_running_loop()
        timed = [sem.acquire(past(loop)) for _ in range(101)]
        live = sem.acquire()
        assert len(sem._waiters) == 102
        await asyncio.gather(*timed, return_exceptions=True)
        assert len(sem._waiters) == 1
        assert all(isinstance(t.exception(), TimeoutError) for t in timed)
        sem.release()
        assert live.done()

    run(main)


def test_semaphore_with_releases() -> None:
    async def main() -> None:
        sem = locks.Semaphore()
        with pytest.raises(ZeroDivisionError):
            with await sem.acquire() as entered:
                assert entered is None
                assert "[locked]" in repr(sem)
                1 / 0  # noqa: B018
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_async_with() -> None:
    async def main() -> None:
        sem = locks.Semaphore()
        history: list[str] = []

        async def worker(name: str) -> None:
            async with sem as entered:
                assert entered is None
                history.append(f"in {name}")
                await spin()
                history.append(f"out {name}")

        await asyncio.gather(worker("a"), worker("b"))
        assert history == ["in a", "out a", "in b", "out b"]
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_async_with_cancelled_while_waiting() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)

        async def worker() -> None:
            async with sem:
                pass  # pragma: no cover - never entered

        task = asyncio.ensure_future(worker())
        await spin()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        sem.release()
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_async_with_cancelled_after_grant_returns_permit() -> None:
    async def main() -> None:
        sem = locks.Semaphore(0)

        async def worker() -> None:
            async with sem:
                pass  # pragma: no cover - never entered

        task = asyncio.ensure_future(worker())
        await spin()
        # The permit is granted, then the task is cancelled before it resumes.
        sem.release()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "[unlocked,value:1]" in repr(sem)

    run(main)


def test_semaphore_plain_with_is_an_error() -> None:
    sem = locks.Semaphore()
    # Tornado's exact words (a BoundedSemaphore says "Semaphore" too).
    message = "^Use 'async with' instead of 'with' for Semaphore$"
    with pytest.raises(RuntimeError, match=message):
        with sem:
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match=message):
        sem.__exit__(None, None, None)
    with pytest.raises(RuntimeError, match=message):
        with locks.BoundedSemaphore():
            pass  # pragma: no cover


def test_bounded_semaphore_over_release() -> None:
    async def main() -> None:
        sem = locks.BoundedSemaphore()
        # Tornado's exact words, which tests of over-releasing code match.
        with pytest.raises(ValueError, match="^Semaphore released too many times$"):
            sem.release()
        sem.acquire()
        w = sem.acquire()
        sem.release()
        assert w.done()
        sem.release()
        with pytest.raises(ValueError):
            sem.release()

    run(main)


# -- Lock --------------------------------------------------------------------


def test_lock_repr() -> None:
    async def main() -> None:
        lock = locks.Lock()
        assert "unlocked" in repr(lock) and repr(lock).startswith("<Lock _block=")
        lock.acquire()
        assert "[locked]" in repr(lock)

    run(main)


def test_lock_acquire_release_and_multi_release() -> None:
    async def main() -> None:
        lock = locks.Lock()
        with pytest.raises(RuntimeError, match="release unlocked lock"):
            lock.release()
        assert lock.acquire().done()
        w = lock.acquire()
        assert not w.done()
        lock.release()
        assert w.done()
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()

    run(main)


def test_lock_fifo_with_async_with() -> None:
    async def main() -> None:
        lock = locks.Lock()
        await lock.acquire()
        history: list[int] = []

        async def worker(i: int) -> None:
            async with lock:
                history.append(i)
                await spin(1)

        tasks = [asyncio.ensure_future(worker(i)) for i in range(5)]
        await spin()
        assert history == []
        lock.release()
        await asyncio.gather(*tasks)
        assert history == list(range(5))

    run(main)


def test_lock_with_acquire_result_releases() -> None:
    async def main() -> None:
        lock = locks.Lock()
        with await lock.acquire():
            with pytest.raises(TimeoutError):
                await lock.acquire(past(asyncio.get_running_loop()))
        assert lock.acquire().done()

    run(main)


def test_lock_acquire_timeout() -> None:
    async def main() -> None:
        lock = locks.Lock()
        await lock.acquire()
        with pytest.raises(TimeoutError):
            await lock.acquire(timeout=datetime.timedelta(seconds=0.001))
        assert not lock.acquire().done()

    run(main)


def test_lock_plain_with_is_an_error() -> None:
    lock = locks.Lock()
    # Tornado's exact words for Lock (backquotes, unlike Semaphore's).
    message = "^Use `async with` instead of `with` for Lock$"
    with pytest.raises(RuntimeError, match=message):
        with lock:
            pass  # pragma: no cover
    with pytest.raises(RuntimeError, match=message):
        lock.__exit__(None, None, None)


def test_waiting_methods_return_awaitables() -> None:
    async def main() -> None:
        calls: list[Awaitable[Any]] = [
            locks.Condition().wait(),
            locks.Event().wait(),
            locks.Semaphore().acquire(),
            locks.Lock().acquire(),
        ]
        assert all(isinstance(c, asyncio.Future) for c in calls)

    run(main)
