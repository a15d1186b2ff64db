"""Tests for squall.ioloop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

import squall.ioloop
from squall.ioloop import IOLoop, PeriodicCallback
from squall.platform.asyncio import AsyncIOLoop, AsyncIOMainLoop, BaseAsyncIOLoop
from tests._clock import LoopClock
from tests._wait import HANG_GUARD


@pytest.fixture
def loop() -> Iterator[IOLoop]:
    io_loop = IOLoop(make_current=False)
    yield io_loop
    io_loop.close(all_fds=True)


@pytest.fixture
def no_current_loop() -> Iterator[None]:
    """Run with no current asyncio loop, restoring the previous state after."""
    policy = asyncio.get_event_loop_policy()
    saved = policy._local._loop  # type: ignore[attr-defined]
    asyncio.set_event_loop(None)
    yield
    asyncio.set_event_loop(saved)


def stop_after(loop: IOLoop, seconds: float = 2.0) -> None:
    """Guard a start(): stop the loop if a test would otherwise hang."""
    loop.call_later(seconds, loop.stop)


def test_constants_and_reexports() -> None:
    assert (IOLoop.NONE, IOLoop.READ, IOLoop.WRITE, IOLoop.ERROR) == (0, 1, 4, 0x18)
    assert squall.ioloop.TimeoutError is TimeoutError
    assert squall.ioloop.Configurable is squall.util.Configurable


def test_default_class(loop: IOLoop) -> None:
    assert isinstance(loop, AsyncIOLoop)
    assert IOLoop.configured_class() is AsyncIOLoop


def test_configure_rejects_non_asyncio() -> None:
    class Odd(IOLoop):
        pass

    with pytest.raises(RuntimeError, match="only asyncio-based"):
        IOLoop.configure(Odd)
    saved = IOLoop._save_configuration()
    try:
        IOLoop.configure("squall.platform.asyncio.AsyncIOLoop")
        assert IOLoop.configured_class() is AsyncIOLoop
    finally:
        IOLoop._restore_configuration(saved)


# --- current / make_current ---------------------------------------------------


def test_current_in_running_loop() -> None:
    async def main() -> tuple[IOLoop, IOLoop]:
        return IOLoop.current(), IOLoop.current()

    first, second = asyncio.run(main())
    assert first is second
    assert isinstance(first, AsyncIOMainLoop)


def test_current_without_loop(no_current_loop: None) -> None:
    assert IOLoop.current(instance=False) is None


def test_current_creates_loop_in_thread() -> None:
    def target() -> tuple[Any, Any]:
        cur = IOLoop.current()
        same = IOLoop.current(instance=False)
        cur.close()
        return cur, same

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        cur, same = pool.submit(target).result(5)
    assert isinstance(cur, AsyncIOMainLoop)
    assert same is cur


def test_instance_aliases_current(loop: IOLoop) -> None:
    async def main() -> None:
        assert IOLoop.instance() is loop

    loop.run_sync(main)


def test_make_current_and_clear(no_current_loop: None) -> None:
    io_loop = IOLoop(make_current=False)
    try:
        # Tornado's exact words: Bokeh's warning filters match on them.
        with pytest.warns(DeprecationWarning) as record:
            io_loop.make_current()
        assert [str(w.message) for w in record] == [
            "make_current is deprecated; start the event loop first"
        ]
        assert IOLoop.current() is io_loop
        with pytest.warns(DeprecationWarning, match="make_current"):
            io_loop.install()
        with pytest.warns(DeprecationWarning) as record:
            IOLoop.clear_current()
        assert [str(w.message) for w in record] == ["clear_current is deprecated"]
        assert IOLoop.current(instance=False) is None
        with pytest.warns(DeprecationWarning, match="clear_current"):
            IOLoop.clear_instance()
    finally:
        io_loop.close()


def test_constructor_makes_current(no_current_loop: None) -> None:
    io_loop = IOLoop()
    assert IOLoop.current() is io_loop
    io_loop.close()
    assert IOLoop.current(instance=False) is None


def test_start_makes_current_then_restores(loop: IOLoop, no_current_loop: None) -> None:
    seen: list[Any] = []

    def check() -> None:
        seen.append(IOLoop.current())
        loop.stop()

    for _ in range(2):
        loop.add_callback(check)
        loop.start()
        assert IOLoop.current(instance=False) is None
    assert seen == [loop, loop]


def test_one_ioloop_per_asyncio_loop() -> None:
    aloop = asyncio.new_event_loop()
    io_loop = IOLoop(asyncio_loop=aloop, make_current=False)
    try:
        assert io_loop.asyncio_loop is aloop  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match="already exists"):
            IOLoop(asyncio_loop=aloop, make_current=False)
    finally:
        io_loop.close()
    assert aloop.is_closed()


def test_reentrant_start_raises(loop: IOLoop) -> None:
    errors: list[Exception] = []

    def nested() -> None:
        try:
            loop.start()
        except RuntimeError as exc:
            errors.append(exc)
        loop.stop()

    loop.add_callback(nested)
    stop_after(loop)
    loop.start()
    assert len(errors) == 1


# --- callbacks and timeouts ---------------------------------------------------


def test_add_callback_args_and_spawn(loop: IOLoop) -> None:
    results: list[Any] = []
    loop.add_callback(results.append, 1)
    loop.spawn_callback(lambda x, y: results.append(x + y), 1, y=2)
    loop.add_callback(loop.stop)
    loop.start()
    assert results == [1, 3]


def test_add_callback_from_thread(loop: IOLoop) -> None:
    done = threading.Event()

    stopped_by: list[str] = []

    def stop(by: str) -> None:
        stopped_by.append(by)
        loop.stop()

    def target() -> None:
        done.set()
        loop.add_callback(stop, "thread")

    thread = threading.Thread(target=target)
    loop.add_callback(thread.start)
    # The thread's callback woke the loop: not the guard, however long
    # the machine took to run the thread.
    loop.call_later(10, stop, "guard")
    loop.start()
    thread.join()
    assert done.is_set()
    assert stopped_by == ["thread"]


def test_add_callback_from_signal_warns(loop: IOLoop) -> None:
    with pytest.warns(DeprecationWarning, match="add_callback_from_signal"):
        loop.add_callback_from_signal(loop.stop)
    stop_after(loop)
    loop.start()


def test_add_callback_after_close_is_dropped() -> None:
    io_loop = IOLoop(make_current=False)
    io_loop.close()
    io_loop.add_callback(lambda: None)
    with pytest.warns(DeprecationWarning):
        io_loop.add_callback_from_signal(lambda: None)
    assert io_loop.asyncio_loop.is_closed()  # type: ignore[attr-defined]


def test_timeouts_with_arguments(loop: IOLoop) -> None:
    results: list[int] = []
    loop.add_timeout(loop.time(), results.append, 1)
    loop.add_timeout(datetime.timedelta(seconds=0), results.append, 2)
    loop.call_at(loop.time(), results.append, 3)
    loop.call_later(0, results.append, 4)
    loop.call_later(0.01, loop.stop)
    stop_after(loop)
    loop.start()
    assert sorted(results) == [1, 2, 3, 4]


def test_add_timeout_bad_deadline(loop: IOLoop) -> None:
    # Tornado's exact words, with nothing after them.
    with pytest.raises(TypeError, match="^Unsupported deadline 'soon'$"):
        loop.add_timeout("soon", lambda: None)  # type: ignore[arg-type]


def test_remove_timeout(loop: IOLoop) -> None:
    called: list[int] = []
    handle = loop.call_later(0, called.append, 1)
    loop.remove_timeout(handle)
    fired = loop.call_later(0, called.append, 2)
    loop.call_later(0.01, loop.stop)
    loop.start()
    loop.remove_timeout(fired)  # after it ran: no error
    assert called == [2]
    with pytest.raises(TypeError, match="not a timeout handle"):
        loop.remove_timeout(object())


def test_time_is_wall_clock(loop: IOLoop) -> None:
    before = time.time()
    now = loop.time()
    assert before <= now <= time.time()


def test_callback_exception_is_logged(loop: IOLoop, caplog: pytest.LogCaptureFixture) -> None:
    loop.add_callback(lambda: 1 / 0)
    loop.add_callback(loop.stop)
    with caplog.at_level(logging.ERROR, logger="squall.application"):
        loop.start()
    assert "Exception in callback" in caplog.text
    assert caplog.records[0].exc_info is not None
    assert caplog.records[0].exc_info[0] is ZeroDivisionError


def test_coroutine_callback_exception_is_logged(
    loop: IOLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def fail() -> None:
        loop.add_callback(loop.add_callback, loop.stop)
        raise ValueError("from coroutine")

    loop.add_callback(fail)
    stop_after(loop)
    with caplog.at_level(logging.ERROR, logger="squall.application"):
        loop.start()
    assert "from coroutine" in caplog.text


def test_callback_returning_plain_values(loop: IOLoop) -> None:
    # Non-awaitable return values are ignored.
    loop.add_callback(lambda: {})
    loop.add_callback(lambda: 5)
    loop.add_callback(loop.stop)
    loop.start()


def test_cancelled_callback_is_silent(loop: IOLoop, caplog: pytest.LogCaptureFixture) -> None:
    def cancelled() -> None:
        raise asyncio.CancelledError()

    loop.add_callback(cancelled)
    loop.add_callback(loop.stop)
    loop.start()
    assert caplog.records == []


# --- futures and executors ----------------------------------------------------


def test_add_future_asyncio(loop: IOLoop) -> None:
    async def main() -> Any:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        loop.add_future(fut, got.set_result)
        fut.set_result(3)
        return (await got).result()

    assert loop.run_sync(main) == 3


def test_add_future_concurrent(loop: IOLoop) -> None:
    async def main() -> Any:
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            loop.add_future(pool.submit(lambda: 9), got.set_result)
            return (await got).result()

    assert loop.run_sync(main) == 9
    with pytest.raises(TypeError, match="expects a future"):
        loop.add_future(42, lambda f: None)  # type: ignore[arg-type]


def test_run_in_executor_default_and_custom(loop: IOLoop) -> None:
    submitted: list[Any] = []

    class Counting(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            submitted.append(fn)
            return super().submit(fn, *args, **kwargs)

    async def main() -> list[Any]:
        first = await loop.run_in_executor(None, lambda x: x + 1, 1)
        loop.set_default_executor(Counting(1))
        second = await loop.run_in_executor(None, threading.get_ident)
        return [first, second]

    first, second = loop.run_sync(main)
    assert first == 2
    assert second != threading.get_ident()
    assert len(submitted) == 1


def test_generic_run_in_executor(loop: IOLoop) -> None:
    # The IOLoop base implementation, used by IOLoops that are not asyncio's.
    async def main() -> list[Any]:
        a = await IOLoop.run_in_executor(loop, None, lambda: 1)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            IOLoop.set_default_executor(loop, pool)
            b = await IOLoop.run_in_executor(loop, None, lambda: 2)
        return [a, b]

    try:
        assert loop.run_sync(main) == [1, 2]
    finally:
        executor = loop._executor
        assert executor is not None
        executor.shutdown()


def test_task_registry(loop: IOLoop) -> None:
    async def main() -> None:
        task = asyncio.ensure_future(asyncio.sleep(0))
        loop._register_task(task)
        assert task in IOLoop._pending_tasks
        loop._unregister_task(task)
        assert task not in IOLoop._pending_tasks
        await task

    loop.run_sync(main)


# --- run_sync -----------------------------------------------------------------


def test_run_sync_results(loop: IOLoop) -> None:
    async def coro() -> int:
        await asyncio.sleep(0)
        return 7

    assert loop.run_sync(coro) == 7
    assert loop.run_sync(lambda: None) is None

    def failing() -> None:
        raise ZeroDivisionError()

    with pytest.raises(ZeroDivisionError):
        loop.run_sync(failing)


def test_run_sync_rejects_plain_value(loop: IOLoop) -> None:
    with pytest.raises(Exception, match="yielded unknown object 42"):
        loop.run_sync(lambda: 42)


def test_run_sync_current(loop: IOLoop) -> None:
    seen: list[Any] = []
    loop.run_sync(lambda: seen.append(IOLoop.current()))
    assert seen == [loop]


def test_run_sync_timeout(loop: IOLoop) -> None:
    async def slow() -> None:
        await asyncio.Event().wait()  # never set: only the timeout ends it

    with pytest.raises(TimeoutError, match="timed out after 0.01 seconds"):
        loop.run_sync(slow, timeout=0.01)


def test_run_sync_timeout_uncancellable(loop: IOLoop) -> None:
    # The timeout passes on a clock the task moves once it is inside its
    # try: a 0.01 s one on the real clock fired, on a loaded machine, before
    # the task's first step, cancelling it before it could catch anything.
    clock = LoopClock(loop.asyncio_loop)  # type: ignore[attr-defined]

    async def stubborn() -> None:
        try:
            await clock.advance(2 * HANG_GUARD)
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.sleep(0)  # one more loop turn after swallowing the cancel

    # The task catches the cancellation and finishes normally.
    try:
        assert loop.run_sync(stubborn, timeout=HANG_GUARD) is None
    finally:
        clock.close()


def test_run_sync_stopped_early(loop: IOLoop) -> None:
    async def stops() -> None:
        IOLoop.current().stop()
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="Event loop stopped before Future completed"):
        loop.run_sync(stops)
    (leftover,) = asyncio.all_tasks(loop.asyncio_loop)  # type: ignore[attr-defined]
    leftover.cancel()
    # The cancelled task completes, and run_sync's callback stops the loop.
    stop_after(loop)
    loop.start()
    assert leftover.cancelled()


# --- handlers -----------------------------------------------------------------


def test_handler_receives_object_and_events(loop: IOLoop) -> None:
    a, b = socket.socketpair()
    try:
        got: list[Any] = []

        def handler(fd: Any, events: int) -> None:
            got.append((fd, events))
            loop.stop()

        loop.add_handler(a, handler, IOLoop.READ)
        loop.call_later(0.001, b.send, b"x")
        stop_after(loop)
        loop.start()
        assert got == [(a, IOLoop.READ)]
        with pytest.raises(ValueError, match="added twice"):
            loop.add_handler(a.fileno(), handler, IOLoop.READ)
        loop.remove_handler(a.fileno())
        loop.remove_handler(a)  # not registered: no error
    finally:
        a.close()
        b.close()


def test_update_handler_read_write(loop: IOLoop) -> None:
    a, b = socket.socketpair()
    try:
        events: list[int] = []

        def handler(fd: Any, ev: int) -> None:
            events.append(ev)
            if ev == IOLoop.WRITE:
                loop.update_handler(fd, IOLoop.READ)
                b.send(b"x")
            else:
                loop.update_handler(fd, IOLoop.NONE)
                loop.stop()

        loop.add_handler(a.fileno(), handler, IOLoop.NONE)
        loop.update_handler(a.fileno(), IOLoop.WRITE)
        stop_after(loop)
        loop.start()
        assert events == [IOLoop.WRITE, IOLoop.READ]
        loop.update_handler(a.fileno(), IOLoop.READ | IOLoop.WRITE)
        loop.remove_handler(a.fileno())
        with pytest.raises(ValueError, match="no handler"):
            loop.update_handler(a.fileno(), IOLoop.READ)
    finally:
        a.close()
        b.close()


def test_handler_exception_logged(loop: IOLoop, caplog: pytest.LogCaptureFixture) -> None:
    a, b = socket.socketpair()
    try:

        def handler(fd: Any, ev: int) -> None:
            loop.remove_handler(fd)
            loop.stop()
            raise OSError("handler broke")

        loop.add_handler(a, handler, IOLoop.READ | IOLoop.WRITE)
        b.send(b"x")
        stop_after(loop)
        with caplog.at_level(logging.ERROR, logger="squall.application"):
            loop.start()
        assert "handler broke" in caplog.text
        # A stale event for a removed fd is ignored.
        loop._handle_events(a.fileno(), IOLoop.READ)  # type: ignore[attr-defined]
    finally:
        a.close()
        b.close()


def test_remove_handler_from_handler(loop: IOLoop) -> None:
    a, b = socket.socketpair()
    try:
        a.send(b"1")
        b.send(b"2")
        chunks: list[bytes] = []

        def handler(fd: socket.socket, ev: int) -> None:
            chunks.append(fd.recv(10))
            loop.remove_handler(b if fd is a else a)
            loop.remove_handler(fd)

        loop.add_handler(a, handler, IOLoop.READ)
        loop.add_handler(b, handler, IOLoop.READ)
        loop.call_later(0.02, loop.stop)
        loop.start()
        assert len(chunks) == 1
    finally:
        a.close()
        b.close()


def test_close_all_fds_closes_objects_and_ints() -> None:
    io_loop = IOLoop(make_current=False)
    a, b = socket.socketpair()
    r, w = os.pipe()

    class Wrapper:
        closed = False

        def fileno(self) -> int:
            return a.fileno()

        def close(self) -> None:
            self.closed = True
            a.close()

    wrapper = Wrapper()
    io_loop.add_handler(wrapper, lambda fd, ev: None, IOLoop.READ)
    io_loop.add_handler(r, lambda fd, ev: None, IOLoop.READ)
    io_loop.close(all_fds=True)
    assert wrapper.closed
    with pytest.raises(OSError):
        os.fstat(r)
    os.close(w)
    b.close()


def test_close_fd_ignores_errors(loop: IOLoop) -> None:
    r, w = os.pipe()
    os.close(r)
    loop.close_fd(r)  # already closed: OSError is swallowed
    os.close(w)
    assert loop.split_fd(5) == (5, 5)


# --- PeriodicCallback ---------------------------------------------------------


def schedule(pc: PeriodicCallback, durations: list[float]) -> list[float]:
    times = []
    now = 1000.0
    pc._next_timeout = now
    for d in durations:
        pc._update_next(now)
        times.append(pc._next_timeout)
        now = pc._next_timeout + d
    return times


def test_periodic_schedule_math() -> None:
    pc = PeriodicCallback(lambda: None, 10000)
    assert schedule(pc, [0, 0, 0]) == [1010, 1020, 1030]
    assert schedule(pc, [9, 10, 11, 20, 35, 0]) == [1010, 1020, 1040, 1060, 1090, 1130]
    assert schedule(pc, [-2, -100, 0]) == [1010, 1020, 1030]


def test_periodic_jitter() -> None:
    pc = PeriodicCallback(lambda: None, 10000, jitter=0.5)
    values = [0.5, 1.0, 0.0]
    with mock.patch("random.random", lambda: values.pop(0)):
        assert schedule(pc, [0, 0, 0]) == [1010, 1022.5, 1030]


def test_periodic_timedelta_and_validation() -> None:
    pc = PeriodicCallback(lambda: None, datetime.timedelta(minutes=1, seconds=23))
    assert pc.callback_time == 83000
    # Tornado's exact words, which callers' tests match.
    message = "^Periodic callback must have a positive callback_time$"
    with pytest.raises(ValueError, match=message):
        PeriodicCallback(lambda: None, 0)
    with pytest.raises(ValueError, match=message):
        PeriodicCallback(lambda: None, -5)


def test_periodic_runs_and_stops(loop: IOLoop) -> None:
    count = 0

    def tick() -> None:
        nonlocal count
        count += 1
        if count == 3:
            pc.stop()
            loop.stop()

    pc = PeriodicCallback(tick, 1)

    async def start() -> None:
        pc.start()

    loop.run_sync(start)
    assert pc.is_running()
    stop_after(loop)
    loop.start()
    assert count == 3
    assert not pc.is_running()
    pc.stop()  # a second stop is harmless


def test_periodic_async_callback_and_errors(loop: IOLoop, caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def tick() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 2:
            raise ValueError("tick failed")
        if calls == 3:
            pc.stop()
            loop.stop()

    pc = PeriodicCallback(tick, 1)
    loop.run_sync(lambda: pc.start())
    stop_after(loop)
    with caplog.at_level(logging.ERROR, logger="squall.application"):
        loop.start()
    assert calls == 3
    assert "tick failed" in caplog.text


def test_periodic_run_when_stopped_does_nothing(loop: IOLoop) -> None:
    calls: list[int] = []
    pc = PeriodicCallback(lambda: calls.append(1), 1000)
    loop.run_sync(pc._run)
    assert calls == []


def test_as_future_without_gen(monkeypatch: pytest.MonkeyPatch) -> None:
    # Until squall.gen is importable the loop falls back to asyncio.
    monkeypatch.setitem(sys.modules, "squall.gen", None)

    async def main() -> None:
        fut = asyncio.get_running_loop().create_future()
        assert squall.ioloop._as_future(fut) is fut
        coro = asyncio.sleep(0)
        task = squall.ioloop._as_future(coro)
        assert isinstance(task, asyncio.Task)
        await task
        assert squall.ioloop._as_future(5) is None
        assert isinstance(squall.ioloop._bad_yield(5), TypeError)

    asyncio.run(main())


def test_base_ioloop_abstract_methods() -> None:
    class Bare(BaseAsyncIOLoop):
        pass

    base: Any = IOLoop
    for name, args in [
        ("close", ()),
        ("add_handler", (0, None, 0)),
        ("update_handler", (0, 0)),
        ("remove_handler", (0,)),
        ("start", ()),
        ("stop", ()),
        ("call_at", (0, None)),
        ("remove_timeout", (None,)),
        ("add_callback", (None,)),
        ("add_callback_from_signal", (None,)),
        ("_make_current", ()),
    ]:
        with pytest.raises(NotImplementedError):
            getattr(base, name)(None, *args)
    assert issubclass(Bare, IOLoop)


def test_periodic_callback_with_a_plain_callback_makes_no_task() -> None:
    # A tick that runs a synchronous callback creates no coroutine or Task,
    # so a loop closed right after a tick has nothing left unstarted.
    async def main() -> tuple[int, list[set[asyncio.Task[Any]]]]:
        ticks = asyncio.Event()
        seen: list[set[asyncio.Task[Any]]] = []
        count = 0

        def tick() -> None:
            nonlocal count
            count += 1
            seen.append(asyncio.all_tasks())
            if count == 3:
                # Stopped from the third tick itself: a 1 ms period could
                # tick again between set() and a stop() after the wait.
                callback.stop()
                ticks.set()

        callback = PeriodicCallback(tick, 1)
        callback.start()
        await asyncio.wait_for(ticks.wait(), HANG_GUARD)
        return count, seen

    count, seen = asyncio.run(main())
    assert count == 3
    # The same tasks (main() and its wait) at every tick: none per tick.
    assert seen[0] == seen[1] == seen[2]
