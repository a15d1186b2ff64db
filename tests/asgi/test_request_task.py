"""What an ASGI application sees of the Task it runs in (squall._request_task):
one Task of its own per request, the same before and after its first await,
with its own context and name, whatever ran before it on the connection."""

from __future__ import annotations

import asyncio
import contextvars
import gc
from typing import Any

import anyio

from squall.asgi import ASGIServerDelegate

from .._wait import HANG_GUARD
from ..server._fakes import make
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


def test_a_request_leaves_no_cycle_for_the_collector() -> None:
    # The close callback set for an app that runs in a Task (the bound
    # method, the connection, the request's cycle) is let go once the
    # response is complete: with the collector off, what a request made is
    # freed by reference counting alone (on 3.11 every request runs in a
    # Task; a cycle per request set off a young collection every ~140).
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0)  # (a Task on every Python: the callback is set)
        await _answer(send, b"freed")

    loop = asyncio.new_event_loop()
    _, proto, transport = make(loop, ASGIServerDelegate(app))

    async def serve(count: int) -> None:
        # One request at a time: each answered before the next is sent.
        answered = transport.data.count(b"freed")
        for i in range(count):
            proto.data_received(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
            deadline = loop.time() + HANG_GUARD  # a hang guard
            while transport.data.count(b"freed") < answered + i + 1:
                assert loop.time() < deadline, "no answer"
                await asyncio.sleep(0)

    try:
        loop.run_until_complete(serve(3))  # warm-up
        gc.collect()
        gc.disable()
        try:
            loop.run_until_complete(serve(50))
            found = gc.collect()
        finally:
            gc.enable()
    finally:
        loop.close()
    assert transport.data.count(b"freed") == 53
    assert found == 0, f"{found} objects in cycles after 50 requests"
