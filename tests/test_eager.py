"""squall._eager.start: a Task that served a step and could be kept for the
next one is never one an application saw and held on to."""

from __future__ import annotations

import asyncio
import inspect
import weakref
from collections.abc import Callable
from typing import Any

from squall._eager import start


def _steps(*apps: Callable[[], Any]) -> list[Any]:
    """Runs each app's coroutine through start() from a loop callback, one
    after the other; returns what start() returned for each."""
    results: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for app in apps:
            done: asyncio.Future[None] = loop.create_future()

            def step(app: Callable[[], Any] = app, done: asyncio.Future[None] = done) -> None:
                try:
                    results.append(start(loop, app()))
                finally:
                    done.set_result(None)

            loop.call_soon(step)
            await asyncio.wait_for(done, 5)
        pending = [task for task in results if task is not None]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending), 5)

    asyncio.run(main())
    return results


def test_a_task_the_application_kept_serves_no_other_request() -> None:
    kept: list[Any] = []

    async def keeper() -> None:
        kept.append(asyncio.current_task())

    _steps(keeper, keeper, keeper)
    assert len(kept) == 3 and None not in kept
    assert len({id(task) for task in kept}) == 3


def test_a_task_referred_to_weakly_serves_no_other_request() -> None:
    # As anyio keys its task states: a weak reference to the first step's
    # task, which stays alive as long as it may be handed on.
    states: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
    seen: list[str] = []

    async def weak() -> None:
        states[asyncio.current_task()] = "first request"

    async def plain() -> None:
        seen.append(states.get(asyncio.current_task(), "fresh"))

    _steps(weak, plain, plain)
    assert seen == ["fresh", "fresh"]


def test_a_task_cancelled_or_called_back_during_its_step_is_not_handed_on() -> None:
    called: list[str] = []
    seen: list[Any] = []

    async def cancelling() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def calling_back() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(lambda _: called.append("called"))

    async def later() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(task.cancelling())
        await asyncio.sleep(0)
        seen.append("went on")

    results = _steps(cancelling, calling_back, later, later)
    assert results[:2] == [None, None] and None not in results[2:]
    # Had either shell been handed on, a later request would be cancelled
    # or run a stranger's done callback when it ends.
    assert seen == [0, 0, "went on", "went on"] or seen == [0, "went on", 0, "went on"]
    assert called == []


def test_the_current_task_of_a_step_looks_started() -> None:
    states: list[str] = []

    async def app() -> None:
        task = asyncio.current_task()
        assert task is not None and not task.done()
        coro: Any = task.get_coro()
        assert coro is not None
        if inspect.iscoroutine(coro):
            states.append(inspect.getcoroutinestate(coro))
        else:
            states.append(inspect.getgeneratorstate(coro))

    _steps(app, app)
    # anyio asks this of a task to decide whether it has started.
    started = (inspect.GEN_RUNNING, inspect.GEN_SUSPENDED, inspect.CORO_RUNNING)
    assert states[0] in started and states[1] in started


def test_a_task_that_went_on_is_not_a_later_steps_task() -> None:
    tasks: list[Any] = []

    async def suspending() -> None:
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        tasks.append(asyncio.current_task())

    async def quick() -> None:
        tasks.append(asyncio.current_task())

    results = _steps(suspending, quick)
    assert results[0] is not None and results[1] is None
    assert tasks[0] is tasks[1] is results[0]
    assert tasks[2] is not tasks[0]
