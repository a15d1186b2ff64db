"""squall._request_task.start: each request's coroutine gets a Task of its
own (its name, context and done callbacks), made through asyncio's public
API: eagerly started on Python 3.12+, scheduled on 3.11 and wherever the
loop has a task factory. What a handler and an ASGI application see of it
over a connection is in tests/hostile/test_task.py and
tests/asgi/test_request_task.py."""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Optional

import pytest

from squall._request_task import start
from tests._wait import HANG_GUARD

EAGER = sys.version_info >= (3, 12)

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("_VAR", default="unset")


def _me() -> asyncio.Task[Any]:
    task = asyncio.current_task()
    assert task is not None
    return task


def _from_callbacks(*apps: Callable[[], Coroutine[Any, Any, None]]) -> list[asyncio.Task[None]]:
    """Starts each app's coroutine with start() from a loop callback (as a
    server's driver does), one after the other, and waits for all; returns
    the Tasks (a Task that ended in its first step is rebuilt as a done
    placeholder: the tests read only what the apps recorded)."""
    tasks: list[Optional[asyncio.Task[None]]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for app in apps:
            done = loop.create_future()

            def step(app: Callable[[], Any] = app, done: asyncio.Future[Any] = done) -> None:
                try:
                    tasks.append(start(loop, app()))
                finally:
                    done.set_result(None)

            loop.call_soon(step)
            await asyncio.wait_for(done, HANG_GUARD)
        pending = [task for task in tasks if task is not None]
        if pending:
            await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), HANG_GUARD)

    asyncio.run(main())
    return [task for task in tasks if task is not None]


def test_each_coroutine_gets_a_task_of_its_own() -> None:
    seen: list[tuple[asyncio.Task[Any], str]] = []

    async def names_itself() -> None:
        task = _me()
        seen.append((task, task.get_name()))
        task.set_name("mine")

    _from_callbacks(names_itself, names_itself, names_itself)
    assert len(seen) == 3
    assert len({id(task) for task, _ in seen}) == 3
    assert "mine" not in [name for _, name in seen]


def test_the_task_is_the_same_before_and_after_the_first_await() -> None:
    seen: list[tuple[asyncio.Task[Any], asyncio.Task[Any], str]] = []

    async def waits() -> None:
        before = _me()
        before.set_name("named before")
        await asyncio.sleep(0)
        after = _me()
        seen.append((before, after, after.get_name()))

    tasks = _from_callbacks(waits)
    (before, after, name) = seen[0]
    assert before is after and name == "named before"
    assert tasks == [before]


def test_a_coroutine_that_never_waits_is_done_at_once_only_where_tasks_start_eagerly() -> None:
    ran: list[bool] = []
    results: list[Any] = []

    async def plain() -> None:
        ran.append(True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = start(loop, plain())
        results.append((task, bool(ran)))
        if task is not None:
            await task

    asyncio.run(main())
    if EAGER:
        assert results == [(None, True)]
    else:
        ((task, ran_already),) = results
        assert task is not None and not ran_already and task.done()


def test_the_coroutine_runs_in_a_copy_of_the_callers_context() -> None:
    seen: list[str] = []

    async def sets() -> None:
        seen.append(_VAR.get())
        _VAR.set("inside")
        await asyncio.sleep(0)
        seen.append(_VAR.get())

    async def main() -> None:
        _VAR.set("caller")
        task = start(asyncio.get_running_loop(), sets())
        assert task is not None
        await task
        seen.append(_VAR.get())

    asyncio.run(main())
    assert seen == ["caller", "inside", "caller"]


def test_done_callbacks_are_the_requests_own() -> None:
    called: list[str] = []

    def app(label: str, waits: bool) -> Callable[[], Coroutine[Any, Any, None]]:
        async def body() -> None:
            _me().add_done_callback(lambda task: called.append(label))
            if waits:
                await asyncio.sleep(0)

        return body

    async def main() -> None:
        loop = asyncio.get_running_loop()
        tasks = [start(loop, app(label, waits)()) for label, waits in [("a", False), ("b", True)]]
        await asyncio.gather(*[task for task in tasks if task is not None])
        # Done callbacks run on the loop: one more turn for a Task that
        # ended in its first step.
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(main())
    assert sorted(called) == ["a", "b"]


def test_a_loop_task_factory_makes_the_task() -> None:
    made: list[Any] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> Any:
        made.append(coro)
        return asyncio.Task(coro, loop=loop, **kwargs)

    async def plain() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_task_factory(factory)
        try:
            coro = plain()
            task = start(loop, coro)
            assert task is not None and made == [coro]
            await task
        finally:
            loop.set_task_factory(None)

    asyncio.run(main())


def test_started_from_inside_a_task_the_caller_is_current_again_after() -> None:
    inner: list[Any] = []

    async def app() -> None:
        inner.append(asyncio.current_task())
        await asyncio.sleep(0)

    async def main() -> None:
        outer = asyncio.current_task()
        task = start(asyncio.get_running_loop(), app())
        assert asyncio.current_task() is outer
        assert task is not None and task is not outer
        await task
        assert inner == [task]

    asyncio.run(main())


def test_an_error_that_ends_the_first_step() -> None:
    class Boom(Exception):
        pass

    async def fails() -> None:
        raise Boom("first step")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if EAGER:
            # Raised to the driver, not left in a Task nobody looks at.
            with pytest.raises(Boom, match="first step"):
                start(loop, fails())
        else:
            task = start(loop, fails())
            assert task is not None
            with pytest.raises(Boom, match="first step"):
                await task

    asyncio.run(main())


def test_a_cancellation_that_ends_the_first_step_is_not_an_error() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    async def main() -> None:
        task = start(asyncio.get_running_loop(), cancelled())
        if EAGER:
            assert task is None
        else:
            assert task is not None
            with pytest.raises(asyncio.CancelledError):
                await task
            assert task.cancelled()

    asyncio.run(main())


def test_a_cancel_before_the_task_resumes_reaches_the_coroutine() -> None:
    seen: list[str] = []

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    async def main() -> None:
        task = start(asyncio.get_running_loop(), waits())
        assert task is not None
        await asyncio.sleep(0)  # its first step, where it does not start eagerly
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["cancelled"]
