"""squall._eager.start: the Task that goes on with a coroutine that suspended
(cancellation carried over, the caller's task current again), and a Task that
served a step and could be kept for the next one is never one an application
saw and held on to. What an ASGI application sees of it is in
tests/asgi/test_eager.py.

On Python 3.11 every test runs on both versions of start(): the reference
(squall/_eager_step.py, loaded from its source) and the C one
(speedups/c/eager.c: the installed module in the compiled run, compiled
here in the pure run, skipped without a C compiler)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import sys
import weakref
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any

import pytest

import squall._eager
from tests import _cext
from tests._paths import SQUALL_DIR

start = squall._eager.start

_VERSIONS = ["python", "c"] if sys.version_info < (3, 12) else ["eager_start"]


@pytest.fixture(scope="module")
def _versions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if sys.version_info >= (3, 12):
        return {"eager_start": squall._eager.start}
    name = "squall._eager_step"
    python: ModuleType = _cext.load(name, SQUALL_DIR / "_eager_step.py")
    c_start: Any = squall._eager.start
    if inspect.isfunction(c_start):  # the pure run: built here
        tmp = tmp_path_factory.mktemp("eager")
        try:
            c_start = _cext.build("eager.c", name, tmp, ("-Wall", "-Wextra")).start
        except pytest.skip.Exception as exc:
            c_start = str(exc)  # why the C version's tests skip
    assert inspect.isfunction(python.start)
    return {"python": python.start, "c": c_start}


@pytest.fixture(params=_VERSIONS, autouse=True)
def _each_version(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, _versions: dict[str, Any]
) -> None:
    version = _versions[request.param]
    if isinstance(version, str):
        pytest.skip(version)
    assert request.param != "c" or inspect.isbuiltin(version)
    # The tests call this module's ``start``: each version in turn.
    monkeypatch.setitem(globals(), "start", version)


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


def _me() -> asyncio.Task[Any]:
    """The current task, which a step always has."""
    task = asyncio.current_task()
    assert task is not None
    return task


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Runs ``main`` in a Task on a fresh loop, failing after 5 seconds."""
    asyncio.run(asyncio.wait_for(main, 5))


def test_a_task_nobody_kept_serves_the_next_step() -> None:
    names: list[str] = []

    async def plain() -> None:
        task = _me()
        # Its name, not its id: a new Task can take a freed one's address.
        names.append(task.get_name())

    _steps(plain, plain)
    # The saving 3.11's version is for; 3.12's eager start makes a Task
    # (with a name of its own) each time.
    assert (names[0] == names[1]) is (sys.version_info < (3, 12))


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


def test_a_cancel_asked_in_a_step_that_finished_does_not_reach_the_next() -> None:
    seen: list[str] = []

    async def cancels_itself() -> None:
        _me().cancel()

    async def waits() -> None:
        task = _me()
        seen.append(f"cancelling={task.cancelling()}")
        await asyncio.sleep(0)
        seen.append("resumed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[Any] = loop.create_future()

        def both() -> None:
            # Back to back, as two pipelined requests' steps: nothing in
            # between may take the cancelled Task first.
            assert start(loop, cancels_itself()) is None
            made.set_result(start(loop, waits()))

        loop.call_soon(both)
        task = await made
        assert task is not None
        await task

    _run(main())
    assert seen == ["cancelling=0", "resumed"]


def test_a_task_given_a_done_callback_is_never_another_steps() -> None:
    called: list[Any] = []
    found: list[bool] = []
    mine: list[asyncio.Task[Any]] = []

    async def adds_callback() -> None:
        task = _me()
        mine.append(task)
        task.add_done_callback(called.append)

    async def finds_callback() -> None:
        task = _me()
        # True if this were the task the callback was added to.
        found.append(task.remove_done_callback(called.append) > 0)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert start(loop, adds_callback()) is None
        assert start(loop, finds_callback()) is None
        # The task that was given the callback ends as a Task does.
        await asyncio.wait_for(mine[0], 5)

    _run(main())
    assert found == [False]
    assert called == mine  # its own callback, once; never a stranger's


def test_a_done_callback_added_in_a_step_that_suspends_runs_when_it_ends() -> None:
    called: list[Any] = []

    async def adds_then_waits(event: asyncio.Event) -> None:
        _me().add_done_callback(called.append)
        await event.wait()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        event = asyncio.Event()
        task = start(loop, adds_then_waits(event))
        assert task is not None
        event.set()
        await asyncio.wait_for(task, 5)
        await asyncio.sleep(0)  # done callbacks run on the turn after
        assert called == [task]

    _run(main())


def test_a_kept_task_of_a_step_that_ended_is_done_and_can_be_awaited() -> None:
    kept: list[asyncio.Task[Any]] = []

    async def keeps() -> None:
        kept.append(_me())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert start(loop, keeps()) is None
        await asyncio.wait_for(kept[0], 5)
        assert kept[0].done() and not kept[0].cancelled()

    _run(main())


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


def test_started_from_inside_a_task_the_caller_is_current_again_after() -> None:
    async def coro(seen: list[Any]) -> None:
        seen.append(asyncio.current_task())

    async def main() -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        seen: list[Any] = []
        assert start(loop, coro(seen)) is None
        assert seen[0] is not None and seen[0] is not me
        assert asyncio.current_task() is me

    _run(main())


async def _start_from_a_callback(coro: Coroutine[Any, Any, None]) -> Any:
    """What start() returns for ``coro`` run from a plain loop callback, as
    a driver's data_received runs it."""
    loop = asyncio.get_running_loop()
    made: asyncio.Future[Any] = loop.create_future()
    loop.call_soon(lambda: made.set_result(start(loop, coro)))
    return await made


def test_cancel_before_the_task_resumes_reaches_the_coroutine() -> None:
    steps: list[str] = []

    async def coro() -> None:
        steps.append("first")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            steps.append("cancelled inside")
            raise

    async def main() -> None:
        task = await _start_from_a_callback(coro())
        assert task is not None and steps == ["first"]
        task.cancel()  # before the Task has run a step of its own
        await asyncio.wait([task])
        assert task.cancelled()

    _run(main())
    assert steps == ["first", "cancelled inside"]


def test_cancel_during_the_first_step_is_kept() -> None:
    steps: list[str] = []

    async def coro() -> None:
        _me().cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("not cancelled")

    async def main() -> None:
        task = await _start_from_a_callback(coro())
        assert task is not None
        await asyncio.wait([task])
        assert task.cancelled()

    _run(main())
    assert steps == ["cancelled"]


def test_steps_awaiting_one_future_all_go_on() -> None:
    # A Future refuses a second await while marked blocking by a first one
    # whose Task has not taken it yet ("await wasn't used with future"):
    # two requests waiting on one shared future in their first step.
    got: list[tuple[str, int]] = []

    async def waiter(shared: asyncio.Future[int], name: str) -> None:
        got.append((name, await shared))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared: asyncio.Future[int] = loop.create_future()
        tasks = [start(loop, waiter(shared, name)) for name in ("a", "b", "c")]
        plain = asyncio.ensure_future(waiter(shared, "plain"))
        assert all(task is not None for task in tasks)
        await asyncio.sleep(0)  # the Tasks take the future before it resolves
        shared.set_result(7)
        await asyncio.gather(*(task for task in tasks if task is not None), plain)

    _run(main())
    assert sorted(got) == [("a", 7), ("b", 7), ("c", 7), ("plain", 7)]


def test_steps_awaiting_one_future_resolved_before_their_tasks_run() -> None:
    got: list[str] = []

    async def waiter(shared: asyncio.Future[str], name: str) -> None:
        got.append(name + await shared)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        shared: asyncio.Future[str] = loop.create_future()
        tasks = [start(loop, waiter(shared, name)) for name in ("a", "b")]
        shared.set_result("!")
        await asyncio.gather(*(task for task in tasks if task is not None))

    _run(main())
    assert sorted(got) == ["a!", "b!"]


def test_steps_that_suspend_leave_no_context_behind() -> None:
    # A step that suspends hands its shell to the loop by initialising it
    # again with the step's context; on 3.11 that call does not release the
    # context the shell had, which leaked one Context per suspended step
    # (`make soak`'s RSS slope).
    import contextvars
    import gc

    def contexts() -> int:
        return sum(1 for o in gc.get_objects() if type(o) is contextvars.Context)

    async def waits() -> None:
        await asyncio.sleep(0)

    _steps(waits)  # the module's shells and the loop's own contexts made once
    gc.collect()
    before = contexts()
    results = _steps(*[waits] * 200)
    assert all(task is not None for task in results)  # each one suspended
    del results
    gc.collect()
    assert contexts() - before < 20


def test_an_error_of_the_first_step_is_raised_to_the_caller() -> None:
    async def fails() -> None:
        raise ValueError("first step")

    async def plain() -> None:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        try:
            start(loop, fails())
        except ValueError as exc:
            assert str(exc) == "first step"
        else:
            raise AssertionError("start() did not raise")
        assert start(loop, plain()) is None
        assert asyncio.current_task() is not None

    _run(main())


def test_a_cancellation_that_ends_the_first_step_is_not_raised() -> None:
    async def cancelled() -> None:
        raise asyncio.CancelledError

    async def main() -> None:
        assert start(asyncio.get_running_loop(), cancelled()) is None

    _run(main())


def test_a_kept_task_of_a_step_that_raised_ends_too() -> None:
    kept: list[asyncio.Task[Any]] = []

    async def keeps_then_fails() -> None:
        kept.append(_me())
        raise KeyError("x")

    async def keeps_then_is_cancelled() -> None:
        kept.append(_me())
        raise asyncio.CancelledError

    async def main() -> None:
        loop = asyncio.get_running_loop()
        try:
            start(loop, keeps_then_fails())
        except KeyError:
            pass
        else:
            raise AssertionError("start() did not raise")
        assert start(loop, keeps_then_is_cancelled()) is None
        await asyncio.wait(kept, timeout=5)
        assert kept[0].done() and not kept[0].cancelled()
        assert kept[1].cancelled()

    _run(main())


def test_what_the_coroutine_returns_is_dropped() -> None:
    async def answers() -> int:
        return 42

    async def main() -> None:
        assert start(asyncio.get_running_loop(), answers()) is None  # type: ignore[arg-type]

    _run(main())


def test_a_coroutine_of_another_kind_is_stepped_through_its_await() -> None:
    # As a coroutine compiled by mypyc (squall.asgi._http's, in the compiled
    # build): an iterator with send, throw and close, and __await__
    # returning it.
    steps: list[str] = []

    async def body() -> None:
        steps.append("first")
        await asyncio.sleep(0)
        steps.append("second")

    class Compiled:
        def __init__(self) -> None:
            self._iterator = body().__await__()

        def __await__(self) -> Any:
            return self

        def __iter__(self) -> Any:
            return self

        def __next__(self) -> Any:
            return self._iterator.send(None)

        def send(self, value: Any) -> Any:
            return self._iterator.send(value)

        def throw(self, *exc: Any) -> Any:
            return self._iterator.throw(*exc)

        def close(self) -> None:
            # mypyc's coroutines have it; asyncio.Task (3.12+) takes only
            # what collections.abc.Coroutine recognizes.
            self._iterator.close()

    async def main() -> None:
        task = start(asyncio.get_running_loop(), Compiled())  # type: ignore[arg-type]
        assert steps == ["first"] and task is not None
        await asyncio.wait_for(task, 5)
        assert steps == ["first", "second"]

    _run(main())


def test_the_step_runs_in_a_copy_of_the_context() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen: list[str] = []

    async def sets() -> None:
        seen.append(var.get())
        var.set("inside")
        await asyncio.sleep(0)
        seen.append(var.get())

    async def main() -> None:
        var.set("outside")
        task = start(asyncio.get_running_loop(), sets())
        assert task is not None and var.get() == "outside"
        await asyncio.wait_for(task, 5)
        assert var.get() == "outside"

    _run(main())
    assert seen == ["outside", "inside"]
