"""A request's coroutine runs at once and goes into a Task only if it suspends
(squall._eager): what the application sees of its task and context."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import anyio

from squall._eager import start

from ._helpers import RawClient, request, run, serving

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("_VAR", default="unset")


def _answer(send: Any, body: bytes) -> Any:
    async def go() -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    return go()


def _get(app: Any) -> tuple[int, bytes]:
    """Serve ``app`` and GET / once: (status, body)."""

    async def main() -> tuple[int, bytes]:
        async with serving(app) as (port, _, _):
            status, _, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            return status, body

    return run(main())


def test_current_task_is_the_same_before_and_after_the_first_await() -> None:
    seen: list[tuple[Any, Any, bool]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        before = asyncio.current_task()
        assert before is not None and before.get_coro() is not None
        assert not before.done()
        await asyncio.sleep(0)
        after = asyncio.current_task()
        seen.append((before, after, after in asyncio.all_tasks()))
        await _answer(send, b"ok")

    assert _get(app) == (200, b"ok")
    (before, after, registered) = seen[0]
    assert before is after
    assert registered


def test_an_app_that_never_waits_still_sees_a_task_of_its_own() -> None:
    tasks: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        tasks.append(asyncio.current_task())
        await _answer(send, b"ok")

    async def main() -> Any:
        async with serving(app) as (port, delegate, _):
            for _ in range(2):
                status, _, body = await request(port, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                assert (status, body) == (200, b"ok")
            return asyncio.current_task()

    outer = run(main())
    assert len(tasks) == 2 and None not in tasks
    assert tasks[0] is not tasks[1] and outer not in tasks


def test_context_variables_set_by_one_request_stay_with_it() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(_VAR.get())
        _VAR.set(scope["path"])
        if scope["path"] == "/wait":
            await asyncio.sleep(0)
            seen.append(_VAR.get())
        await _answer(send, b"ok")

    async def main() -> None:
        async with serving(app) as (port, _, _):
            client = await RawClient.connect(port)
            for path in (b"/a", b"/wait", b"/b"):
                await client.send(b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n\r\n")
                status, _, body = await client.response()
                assert (status, body) == (200, b"ok")
            await client.close()

    run(main())
    # Each request (same connection) starts from a clean context.
    assert seen == ["unset", "unset", "/wait", "unset"]


def test_anyio_cancel_scope_and_task_group_across_the_first_await() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        results: list[str] = []
        # Entered during the synchronous first step, left after suspending:
        # anyio checks that it is left by the task that entered it.
        with anyio.CancelScope():
            async with anyio.create_task_group() as group:

                async def child() -> None:
                    await asyncio.sleep(0)
                    results.append("child")

                group.start_soon(child)
        with anyio.move_on_after(0.05) as scope_:
            await asyncio.Event().wait()
        results.append("timed out" if scope_.cancelled_caught else "not cancelled")
        await _answer(send, ",".join(results).encode())

    assert _get(app) == (200, b"child,timed out")


def test_asyncio_timeout_entered_before_the_first_await() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.Event().wait()
        except TimeoutError:
            await _answer(send, b"timeout")

    assert _get(app) == (200, b"timeout")


def _first_step_probe(steps: list[str]) -> Any:
    async def coro() -> None:
        steps.append("first")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            steps.append("cancelled inside")
            raise

    return coro()


def test_cancel_before_the_task_resumes_reaches_the_coroutine() -> None:
    steps: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[Any] = loop.create_future()
        # From a plain callback, as a driver's data_received runs.
        loop.call_soon(lambda: made.set_result(start(loop, _first_step_probe(steps))))
        task = await made
        assert task is not None and steps == ["first"]
        task.cancel()  # before the Task has run a step of its own
        await asyncio.wait([task])
        assert task.cancelled()

    run(main())
    assert steps == ["first", "cancelled inside"]


def test_cancel_during_the_first_step_is_kept() -> None:
    steps: list[str] = []

    async def coro() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(0)
        except asyncio.CancelledError:
            steps.append("cancelled")
            raise
        steps.append("not cancelled")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[Any] = loop.create_future()
        loop.call_soon(lambda: made.set_result(start(loop, coro())))
        task = await made
        assert task is not None
        await asyncio.wait([task])
        assert task.cancelled()

    run(main())
    assert steps == ["cancelled"]


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

    run(main())


def test_a_cancel_asked_in_a_step_that_finished_does_not_reach_the_next() -> None:
    seen: list[str] = []

    async def cancels_itself() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()

    async def waits() -> None:
        task = asyncio.current_task()
        assert task is not None
        seen.append(f"cancelling={task.cancelling()}")
        await asyncio.sleep(0)
        seen.append("resumed")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        made: asyncio.Future[Any] = loop.create_future()

        def both() -> None:
            assert start(loop, cancels_itself()) is None
            made.set_result(start(loop, waits()))

        loop.call_soon(both)
        task = await made
        assert task is not None
        await task

    run(main())
    assert seen == ["cancelling=0", "resumed"]


def test_a_task_kept_or_given_a_callback_by_a_step_is_never_another_steps() -> None:
    ids: list[int] = []
    kept: list[Any] = []
    called: list[Any] = []

    async def plain() -> None:
        ids.append(id(asyncio.current_task()))

    async def keeps() -> None:
        kept.append(asyncio.current_task())

    async def adds_callback() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.add_done_callback(called.append)

    async def finds_callback() -> None:
        task = asyncio.current_task()
        assert task is not None
        # 1 if this were the task the callback was added to.
        kept.append(task.remove_done_callback(called.append))

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # Steps that leave no trace of their task may share one.
        for coro in (plain(), plain()):
            assert start(loop, coro) is None
        assert ids[0] == ids[1]
        assert start(loop, keeps()) is None
        assert start(loop, plain()) is None
        assert kept[0] is not None and ids[2] != id(kept[0])
        assert start(loop, adds_callback()) is None
        assert start(loop, finds_callback()) is None
        assert kept[1] == 0

    run(main())
