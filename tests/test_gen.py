"""Tests for squall.gen."""

from __future__ import annotations

import asyncio
import builtins
import contextvars
import datetime
import gc
import logging
import threading
import weakref
from collections.abc import Callable, Coroutine, Generator
from concurrent import futures
from typing import Any, TypeVar

import pytest

from squall import gen
from squall.concurrent import Future
from squall.ioloop import IOLoop
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

# Waits are bounded so that a bug fails the test instead of hanging it.
LIMIT = HANG_GUARD  # a hang guard, not a measure of speed
HOUR = datetime.timedelta(hours=1)
APP_LOG = "squall.application"


def run(test: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    return asyncio.run(asyncio.wait_for(test(), LIMIT))


def resolved(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


@gen.coroutine
def after_moments(n: int, value: Any) -> Generator[Any, Any, Any]:
    for _ in range(n):
        yield gen.moment
    return value


@gen.coroutine
def fail_after_moment(exc: BaseException) -> Generator[Any, Any, None]:
    yield gen.moment
    raise exc


# -- coroutine: results and exceptions --------------------------------------


def test_plain_function_result_goes_to_a_resolved_future() -> None:
    async def main() -> None:
        @gen.coroutine
        def f(x: int) -> int:
            return x + 1

        future = f(1)
        assert isinstance(future, asyncio.Future) and future.done()
        assert await future == 2

    run(main)


def test_return_and_stopiteration_in_plain_function() -> None:
    async def main() -> None:
        @gen.coroutine
        def by_return() -> None:
            raise gen.Return((1, 2))

        @gen.coroutine
        def by_stop() -> None:
            raise StopIteration(3)

        @gen.coroutine
        def bare() -> None:
            raise gen.Return()

        assert await by_return() == (1, 2)
        assert await by_stop() == 3
        assert await bare() is None

    run(main)


def test_generator_returns_after_yields() -> None:
    async def main() -> None:
        @gen.coroutine
        def with_return() -> Generator[Any, Any, None]:
            yield gen.moment
            raise gen.Return(42)

        @gen.coroutine
        def early() -> Generator[Any, Any, int]:
            if True:
                return 7
            yield gen.moment  # pragma: no cover

        @gen.coroutine
        def raise_return_first() -> Generator[Any, Any, None]:
            raise gen.Return("first")
            yield  # pragma: no cover

        assert await with_return() == 42
        assert await after_moments(3, "v") == "v"
        assert await after_moments(0, None) is None
        assert await early() == 7
        assert await raise_return_first() == "first"

    run(main)


def test_exceptions_go_to_the_future_not_the_caller() -> None:
    async def main() -> None:
        @gen.coroutine
        def sync_fail() -> None:
            1 / 0  # noqa: B018

        @gen.coroutine
        def first_step_fail() -> Generator[Any, Any, None]:
            1 / 0  # noqa: B018
            yield  # pragma: no cover

        for future in (sync_fail(), first_step_fail(), fail_after_moment(ZeroDivisionError())):
            with pytest.raises(ZeroDivisionError):
                await future

    run(main)


def test_cancelled_error_cancels_the_future() -> None:
    async def main() -> None:
        @gen.coroutine
        def sync_cancel() -> None:
            raise asyncio.CancelledError()

        for future in (sync_cancel(), fail_after_moment(asyncio.CancelledError())):
            with pytest.raises(asyncio.CancelledError):
                await future
            assert future.cancelled()

    run(main)


def test_yielded_cancelled_future_cancels_the_coroutine() -> None:
    async def main() -> None:
        @gen.coroutine
        def waits(fut: Future[None]) -> Generator[Any, Any, None]:
            yield fut

        already: Future[None] = Future()
        already.cancel()
        first = waits(already)
        later: Future[None] = Future()
        second = waits(later)
        asyncio.get_running_loop().call_soon(later.cancel)
        for future in (first, second):
            with pytest.raises(asyncio.CancelledError):
                await future
            assert future.cancelled()

    run(main)


def test_coroutine_may_catch_a_cancelled_future() -> None:
    async def main() -> None:
        @gen.coroutine
        def f() -> Generator[Any, Any, int]:
            fut: Future[None] = Future()
            asyncio.get_running_loop().call_soon(fut.cancel)
            try:
                yield fut
            except asyncio.CancelledError:
                pass
            yield gen.moment
            return 42

        assert await f() == 42

    run(main)


def test_exceptions_from_yields_can_be_caught_or_replaced() -> None:
    async def main() -> None:
        @gen.coroutine
        def replaces() -> Generator[Any, Any, None]:
            try:
                yield fail_after_moment(ZeroDivisionError())
            except ZeroDivisionError:
                raise KeyError("k")

        @gen.coroutine
        def swallows() -> Generator[Any, Any, int]:
            try:
                yield fail_after_moment(ZeroDivisionError())
            except ZeroDivisionError:
                pass
            return 1

        with pytest.raises(KeyError):
            await replaces()
        assert await swallows() == 1

    run(main)


def test_no_exception_context_leaks_between_yields() -> None:
    async def main() -> None:
        class Leaked(Exception):
            pass

        @gen.coroutine
        def inner(n: int) -> None:
            raise Leaked(n)

        @gen.coroutine
        def outer() -> Generator[Any, Any, list[Any]]:
            contexts = []
            for n in range(2):
                try:
                    yield inner(n)
                except Leaked as e:
                    contexts.append(e.__context__)
            return contexts

        assert await outer() == [None, None]

    run(main)


def test_bad_yields_raise_bad_yield_error_in_the_generator() -> None:
    async def main() -> None:
        @gen.coroutine
        def f(value: Any) -> Generator[Any, Any, None]:
            yield value

        for value in (42, (1, 2), "text"):
            with pytest.raises(gen.BadYieldError, match="yielded unknown object"):
                await f(value)

    run(main)


def test_converter_errors_are_thrown_into_the_generator() -> None:
    class Broken:
        pass

    @gen.convert_yielded.register(Broken)
    def _(value: Broken) -> Future[Any]:
        raise RuntimeError("cannot convert")

    async def main() -> None:
        @gen.coroutine
        def f() -> Generator[Any, Any, str]:
            try:
                yield Broken()
            except RuntimeError as e:
                return str(e)
            return "no error"  # pragma: no cover

        assert await f() == "cannot convert"

    run(main)


def test_attributes_and_is_coroutine_function() -> None:
    def f() -> Generator[Any, Any, None]:
        yield gen.moment

    async def native() -> None:
        pass

    wrapped = gen.coroutine(f)
    assert wrapped.__name__ == f.__name__
    assert wrapped.__module__ == f.__module__
    assert wrapped.__wrapped__ is f  # type: ignore[attr-defined]
    assert gen.is_coroutine_function(wrapped)
    assert not gen.is_coroutine_function(f)
    assert not gen.is_coroutine_function(native)
    assert not gen.is_coroutine_function(futures.Future())


def test_return_exception_shows_its_value() -> None:
    r = gen.Return(5)
    assert r.value == 5 and r.args == (5,)
    assert gen.Return().value is None


def test_legacy_names() -> None:
    assert gen.TimeoutError is builtins.TimeoutError
    assert gen.Multi is gen.multi
    for name in (
        "KeyReuseError",
        "UnknownKeyError",
        "LeakedCallbackError",
        "ReturnValueIgnoredError",
    ):
        assert issubclass(getattr(gen, name), Exception)


# -- coroutine: scheduling ---------------------------------------------------


def test_done_futures_do_not_yield_to_the_loop_but_moment_does() -> None:
    async def main() -> None:
        calls: list[str] = []

        @gen.coroutine
        def f(name: str, yieldable: Any) -> Generator[Any, Any, None]:
            for _ in range(5):
                calls.append(name)
                yield yieldable

        done = resolved(None)
        yield_none = None
        await gen.multi([f("a", done), f("b", done)])
        assert "".join(calls) == "aaaaabbbbb"
        calls.clear()
        await gen.multi([f("a", gen.moment), f("b", gen.moment)])
        assert "".join(calls) == "ababababab"
        calls.clear()
        await gen.multi([f("a", yield_none), f("b", done)])
        assert "".join(calls) == "abbbbbaaaa"

    run(main)


def test_many_done_yields_run_without_the_loop() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = resolved(1)
        iterations = 0

        def count() -> None:
            nonlocal iterations
            iterations += 1

        @gen.coroutine
        def f() -> Generator[Any, Any, int]:
            total = 0
            for _ in range(1000):
                total += yield done
            return total

        loop.call_soon(count)
        future = f()
        assert future.done() and iterations == 0
        assert await future == 1000

    run(main)


def test_async_function_awaits_gen_coroutine_and_vice_versa() -> None:
    async def main() -> None:
        async def native() -> int:
            await asyncio.sleep(0)
            return await after_moments(1, 42)

        @gen.coroutine
        def decorated() -> Generator[Any, Any, Any]:
            results = yield [native(), after_moments(2, 43)]
            return results

        assert await decorated() == [42, 43]
        assert await asyncio.gather(after_moments(1, 1), after_moments(2, 2)) == [1, 2]

    run(main)


def test_yield_concurrent_futures() -> None:
    async def main() -> None:
        release = threading.Event()
        with futures.ThreadPoolExecutor(1) as executor:
            done = executor.submit(lambda: "done")
            done.result()
            pending = executor.submit(lambda: release.wait(LIMIT) and "pending")

            @gen.coroutine
            def f() -> Generator[Any, Any, tuple[Any, Any]]:
                first = yield done
                asyncio.get_running_loop().call_soon(release.set)
                second = yield pending
                return first, second

            assert await f() == ("done", "pending")

    run(main)


def test_moment_and_null_future_are_awaitable() -> None:
    async def main() -> None:
        order: list[str] = []

        async def a() -> None:
            await gen.moment
            order.append("a")

        async def b() -> None:
            order.append("b")

        await asyncio.gather(a(), b())
        assert order == ["b", "a"]
        assert await gen._null_future is None
        assert gen.moment.result() is None and gen.moment.done()
        seen: list[Any] = []
        gen.moment.add_done_callback(seen.append)
        assert seen == [gen.moment]

    run(main)


def test_cancelled_result_future_logs_late_exception(caplog: pytest.LogCaptureFixture) -> None:
    finished: list[str] = []

    @gen.coroutine
    def f(exc: Any) -> Generator[Any, Any, None]:
        yield gen.moment
        finished.append("ran")
        if exc is not None:
            raise exc

    async def main() -> None:
        quiet = f(None)
        quiet.cancel()
        loud = f(ValueError("late"))
        loud.cancel()
        cancelled = f(asyncio.CancelledError())
        cancelled.cancel()
        for _ in range(3):
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger=APP_LOG):
        run(main)
    assert finished == ["ran", "ran", "ran"]
    assert [r.getMessage() for r in caplog.records] == ["Exception after Future was cancelled"]


# -- coroutine: memory ------------------------------------------------------


def test_locals_are_freed_without_the_garbage_collector() -> None:
    refs: list[weakref.ref[Any]] = []

    class Local:
        pass

    @gen.coroutine
    def inner() -> Generator[Any, Any, None]:
        local = Local()
        refs.append(weakref.ref(local))
        yield gen.coroutine(lambda: None)()
        raise ValueError("fails while starting")

    @gen.coroutine
    def later() -> Generator[Any, Any, None]:
        local = Local()
        refs.append(weakref.ref(local))
        yield gen.moment
        raise ValueError("fails later")

    @gen.coroutine
    def outer() -> Generator[Any, Any, None]:
        for make in (inner, later):
            try:
                yield make()
            except ValueError:
                pass

    gc.disable()
    try:
        IOLoop(make_current=False).run_sync(outer, timeout=LIMIT)
        assert [ref() for ref in refs] == [None, None]
    finally:
        gc.enable()


def test_runner_stays_alive_while_its_future_is_awaited() -> None:
    async def main() -> None:
        scope: list[weakref.ref[Future[int]]] = []

        def complete() -> None:
            gc.collect()
            fut = scope[0]()
            assert fut is not None
            fut.set_result(123)

        @gen.coroutine
        def tester() -> Generator[Any, Any, Any]:
            fut: Future[int] = Future()
            scope.append(weakref.ref(fut))
            asyncio.get_running_loop().call_soon(complete)
            return (yield fut)

        assert await gen.with_timeout(datetime.timedelta(seconds=LIMIT), tester()) == 123

    run(main)


def test_suspended_coroutines_are_collected_with_their_closed_loop() -> None:
    events: list[str] = []
    refs: list[weakref.ref[Any]] = []

    @gen.coroutine
    def forever() -> Generator[Any, Any, None]:
        try:
            while True:
                yield gen.sleep(0.001)
                events.append("tick")
        finally:
            events.append("closed")

    @gen.coroutine
    def start() -> Generator[Any, Any, None]:
        fut = forever()
        fut.cycle = fut  # type: ignore[attr-defined]
        refs.append(weakref.ref(fut))
        yield gen.moment

    loop = IOLoop(make_current=False)
    loop.run_sync(start)
    loop.close()
    gc.collect()
    assert refs[0]() is None
    assert events[-1] == "closed"


# -- coroutine: contextvars -------------------------------------------------

VAR: contextvars.ContextVar[int] = contextvars.ContextVar("VAR")


def test_context_is_kept_across_yields_and_isolated_between_coroutines() -> None:
    async def main() -> None:
        seen: list[tuple[int, int]] = []

        @gen.coroutine
        def gen_inner(x: int) -> Generator[Any, Any, None]:
            seen.append((x, VAR.get()))
            yield
            seen.append((x, VAR.get()))

        async def native_inner(x: int) -> None:
            seen.append((x, VAR.get()))
            await gen_inner(x)

        @gen.coroutine
        def gen_root(x: int) -> Generator[Any, Any, None]:
            VAR.set(x)
            yield
            yield native_inner(x)
            yield gen.sleep(0)
            seen.append((x, VAR.get()))

        async def native_root(x: int) -> None:
            VAR.set(x)
            await native_inner(x)

        await gen.multi([gen_root(1), native_root(2), gen_root(3)])
        assert seen and all(x == value for x, value in seen)
        assert VAR.get(None) is None

    run(main)


def test_context_var_reset_across_a_yield() -> None:
    async def main() -> None:
        @gen.coroutine
        def f() -> Generator[Any, Any, None]:
            token = VAR.set(1)
            yield
            VAR.reset(token)

        await f()

    run(main)


def test_runner_accepts_any_context_runner() -> None:
    async def main() -> None:
        ctx = contextvars.copy_context()
        ctx.run(VAR.set, 9)

        def ctx_run(fn: Callable[..., Any], *args: Any) -> Any:
            return ctx.run(fn, *args)

        seen: list[int] = []
        waited: Future[None] = Future()

        def body() -> Generator[Any, Any, str]:
            seen.append(VAR.get())
            yield waited
            seen.append(VAR.get())
            yield gen.moment
            seen.append(VAR.get())
            return "ok"

        result: Future[Any] = Future()
        generator = body()
        first = ctx_run(next, generator)
        runner = gen.Runner(ctx_run, generator, result, first)
        assert runner.io_loop is IOLoop.current()
        asyncio.get_running_loop().call_soon(waited.set_result, None)
        assert await result == "ok"
        assert seen == [9, 9, 9]
        assert runner.finished and runner.result_future is None

    run(main)


def test_runner_handle_exception() -> None:
    async def main() -> None:
        ctx_run = contextvars.copy_context().run
        waited: Future[None] = Future()

        def body() -> Generator[Any, Any, str]:
            try:
                yield waited
            except KeyError:
                return "caught"
            return "not thrown"  # pragma: no cover

        result: Future[Any] = Future()
        generator = body()
        runner = gen.Runner(ctx_run, generator, result, ctx_run(next, generator))
        assert not runner.handle_exception(None, None, None)
        runner.run()  # still waiting: nothing happens
        assert not runner.finished
        assert runner.handle_exception(KeyError, KeyError("k"), None)
        assert await result == "caught"
        assert not runner.handle_exception(KeyError, KeyError("k"), None)
        runner.run()  # finished: nothing happens

    run(main)


def test_debug_mode_source_traceback_points_at_the_caller() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_debug(True)
        try:

            def f() -> Generator[Any, Any, None]:
                yield gen.moment

            line = f.__code__.co_firstlineno + 4
            future = gen.coroutine(f)()
            assert f"created at {__file__}:{line}" in repr(future)
            await future
        finally:
            loop.set_debug(False)

    run(main)


# -- convert_yielded --------------------------------------------------------


def test_convert_yielded() -> None:
    async def main() -> None:
        assert gen.convert_yielded(None) is gen.moment
        assert gen.convert_yielded(gen.moment) is gen.moment
        assert gen.convert_yielded(gen._null_future) is gen._null_future
        fut = resolved(1)
        assert gen.convert_yielded(fut) is fut
        cf: futures.Future[int] = futures.Future()
        assert gen.convert_yielded(cf) is cf  # type: ignore[comparison-overlap]

        async def native() -> int:
            return 5

        task = gen.convert_yielded(native())
        assert isinstance(task, asyncio.Task) and await task == 5
        assert await gen.convert_yielded([resolved(1), resolved(2)]) == [1, 2]
        with pytest.raises(gen.BadYieldError):
            gen.convert_yielded(object())

    run(main)


def test_convert_yielded_is_extensible() -> None:
    class Deferred:
        def __init__(self, value: int) -> None:
            self.value = value

    @gen.convert_yielded.register(Deferred)
    def _(d: Deferred) -> Future[int]:
        return resolved(d.value * 2)

    async def main() -> None:
        @gen.coroutine
        def f() -> Generator[Any, Any, Any]:
            return (yield Deferred(21))

        assert await f() == 42

    run(main)


def test_maybe_future() -> None:
    async def main() -> None:
        fut = resolved(1)
        assert gen.maybe_future(fut) is fut
        wrapped = gen.maybe_future(3)
        assert wrapped.done() and wrapped.result() == 3

    run(main)


# -- multi -------------------------------------------------------------------


def test_multi_lists_and_dicts() -> None:
    async def main() -> None:
        assert await gen.multi([after_moments(3, "v1"), after_moments(1, "v2")]) == ["v1", "v2"]
        result = await gen.multi_future({"foo": after_moments(3, 1), "bar": after_moments(1, 2)})
        assert result == {"foo": 1, "bar": 2}
        empty_list = await gen.multi([])
        empty_dict = await gen.multi({})
        assert empty_list == [] and isinstance(empty_list, list)
        assert empty_dict == {} and isinstance(empty_dict, dict)
        assert await gen.multi([gen.moment, gen.moment]) == [None, None]
        shared = after_moments(1, 2)
        assert await gen.multi([after_moments(1, 1), shared, shared]) == [1, 2, 2]

    run(main)


def test_multi_raises_first_error_and_logs_the_others(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="error 1"):
            await gen.multi(
                [
                    fail_after_moment(RuntimeError("error 1")),
                    fail_after_moment(RuntimeError("error 2")),
                ]
            )
        with pytest.raises(RuntimeError):
            await gen.multi(
                [fail_after_moment(RuntimeError("error 3")), fail_after_moment(RuntimeError("x"))],
                quiet_exceptions=RuntimeError,
            )
        with pytest.raises(RuntimeError):
            await gen.multi([fail_after_moment(RuntimeError("alone")), after_moments(1, 2)])

    with caplog.at_level(logging.ERROR, logger=APP_LOG):
        run(main)
    assert [r.getMessage() for r in caplog.records] == ["Multiple exceptions in yield list"]
    assert str(caplog.records[0].exc_info[1]) == "error 2"  # type: ignore[index]


def test_multi_waits_for_all_children_even_after_a_failure() -> None:
    async def main() -> None:
        slow = after_moments(5, "slow")
        with pytest.raises(ValueError):
            await gen.multi([fail_after_moment(ValueError()), slow])
        assert slow.done()

    run(main)


def test_multi_with_cancelled_children(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending: Future[None] = Future()
        loop.call_soon(pending.cancel)
        aggregate = gen.multi([pending, after_moments(1, 2)])
        with pytest.raises(asyncio.CancelledError):
            await aggregate
        assert not aggregate.cancelled()

        already: Future[None] = Future()
        already.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gen.multi([already])

        later: Future[None] = Future()
        loop.call_soon(later.cancel)
        with pytest.raises(RuntimeError):
            await gen.multi([fail_after_moment(RuntimeError()), later])

    with caplog.at_level(logging.ERROR, logger=APP_LOG):
        run(main)
    assert caplog.records == []


def test_multi_of_cancelled_aggregate_logs_child_errors(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        aggregate = gen.multi([fail_after_moment(RuntimeError("lost"))])
        aggregate.cancel()
        await asyncio.sleep(0)
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger=APP_LOG):
        run(main)
    assert [r.getMessage() for r in caplog.records] == ["Multiple exceptions in yield list"]


def test_multi_with_concurrent_futures() -> None:
    async def main() -> None:
        release = threading.Event()
        with futures.ThreadPoolExecutor(2) as executor:
            done = executor.submit(lambda: 1)
            done.result()
            pending = executor.submit(lambda: release.wait(LIMIT) and 2)
            asyncio.get_running_loop().call_soon(release.set)
            assert await gen.multi([done, pending]) == [1, 2]

    run(main)


def test_multi_performance_of_a_long_list() -> None:
    async def main() -> None:
        result = await gen.multi([gen.moment for _ in range(2000)])
        assert result == [None] * 2000
        result = await gen.multi([after_moments(1, i) for i in range(2000)])
        assert result == list(range(2000))

    run(main)


# -- with_timeout -----------------------------------------------------------


def test_with_timeout_fires() -> None:
    async def main() -> None:
        short = datetime.timedelta(seconds=0.01)
        with pytest.raises(TimeoutError, match="^Timeout$"):
            await gen.with_timeout(short, Future())
        with pytest.raises(TimeoutError, match="^custom$"):
            await gen.with_timeout(short, Future(), message="custom")
        with pytest.raises(TimeoutError, match="^lazy$"):
            await gen.with_timeout(short, Future(), message=lambda: "lazy")
        with pytest.raises(TimeoutError):
            await gen.with_timeout(IOLoop.current().time() - 1, Future())

    run(main)


def test_with_timeout_passes_outcomes_through() -> None:
    def never() -> str:
        raise AssertionError("message must not be built")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert await gen.with_timeout(HOUR, resolved("asdf"), message=never) == "asdf"

        later: Future[str] = Future()
        loop.call_soon(later.set_result, "later")
        assert await gen.with_timeout(HOUR, later, message=never) == "later"

        failing: Future[str] = Future()
        loop.call_soon(failing.set_exception, ZeroDivisionError())
        with pytest.raises(ZeroDivisionError):
            await gen.with_timeout(HOUR, failing)

        cancelled: Future[str] = Future()
        loop.call_soon(cancelled.cancel)
        wrapper = gen.with_timeout(HOUR, cancelled)
        with pytest.raises(asyncio.CancelledError):
            await wrapper
        assert wrapper.cancelled()

        async def native() -> int:
            return 42

        assert await gen.with_timeout(HOUR, native()) == 42

    run(main)


def test_with_timeout_and_concurrent_futures() -> None:
    async def main() -> None:
        release = threading.Event()
        with futures.ThreadPoolExecutor(1) as executor:
            done = executor.submit(lambda: "done")
            done.result()
            assert await gen.with_timeout(HOUR, done) == "done"
            stuck = executor.submit(release.wait, LIMIT)
            with pytest.raises(TimeoutError):
                await gen.with_timeout(IOLoop.current().time(), stuck)
            release.set()
            release.clear()
            pending = executor.submit(lambda: release.wait(LIMIT) and "pending")
            asyncio.get_running_loop().call_soon(release.set)
            assert await gen.with_timeout(HOUR, pending) == "pending"

    run(main)


def test_with_timeout_logs_failures_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        for exc, quiet in (
            (ValueError("late"), ()),
            (KeyError("quiet"), KeyError),
            (None, ()),
            (asyncio.CancelledError(), ()),
        ):
            inner: Future[None] = Future()
            with pytest.raises(TimeoutError):
                await gen.with_timeout(IOLoop.current().time(), inner, quiet)
            if isinstance(exc, asyncio.CancelledError):
                inner.cancel()
            elif exc is not None:
                inner.set_exception(exc)
            else:
                inner.set_result(None)
            await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger=APP_LOG):
        run(main)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("Exception in Future")
    assert isinstance(caplog.records[0].exc_info[1], ValueError)  # type: ignore[index]


def test_with_timeout_result_cancelled_by_the_caller() -> None:
    async def main() -> None:
        inner: Future[str] = Future()
        wrapper = gen.with_timeout(IOLoop.current().time(), inner)
        wrapper.cancel()
        for _ in range(3):
            await asyncio.sleep(0)
        assert not inner.done()
        inner.set_result("unused")
        await asyncio.sleep(0)
        assert wrapper.cancelled()

    run(main)


def test_with_timeout_rejects_bad_timeouts() -> None:
    async def main() -> None:
        with pytest.raises(TypeError):
            gen.with_timeout("soon", Future())  # type: ignore[arg-type]

    run(main)


# -- sleep ---------------------------------------------------------------


def test_sleep() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await gen.sleep(0.01) is None
        assert loop.time() - start >= 0.009
        cancelled = gen.sleep(0)
        cancelled.cancel()
        errors: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context))
        # A timer due after the sleep's: once it has fired, so has the
        # sleep's, on a cancelled future, without an error.
        after = loop.create_future()
        loop.call_later(0.001, after.set_result, None)
        await after
        assert cancelled.cancelled()
        assert errors == []

    run(main)


# -- WaitIterator -------------------------------------------------------------


def test_wait_iterator_empty_and_bad_arguments() -> None:
    async def main() -> None:
        iterator = gen.WaitIterator()
        assert iterator.done()
        assert iterator.current_index is None and iterator.current_future is None
        with pytest.raises(ValueError, match="not both"):
            gen.WaitIterator(Future(), bar=Future())

    run(main)


def test_wait_iterator_delivers_done_futures_in_order() -> None:
    async def main() -> None:
        f1, f2, f3 = resolved(24), resolved(42), resolved(84)
        iterator = gen.WaitIterator(f1, f2, f3)
        seen = []
        while not iterator.done():
            value = await iterator.next()
            seen.append((iterator.current_index, iterator.current_future, value))
        assert seen == [(0, f1, 24), (1, f2, 42), (2, f3, 84)]
        assert iterator.current_index is None and iterator.current_future is None

        by_name = gen.WaitIterator(first=f1, second=f2)
        named = []
        async for value in by_name:
            named.append((by_name.current_index, by_name.current_future, value))
        assert named == [("first", f1, 24), ("second", f2, 42)]

    run(main)


def test_wait_iterator_duplicate_futures() -> None:
    async def main() -> None:
        future = resolved(42)
        for iterator, expected in (
            (gen.WaitIterator(future, future, future), [0, 1, 2]),
            (gen.WaitIterator(first=future, second=future), ["first", "second"]),
        ):
            indices = []
            while not iterator.done():
                assert await iterator.next() == 42
                indices.append(iterator.current_index)
            assert indices == expected

    run(main)


def test_wait_iterator_in_completion_order_with_errors() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        futs: list[Future[int]] = [Future() for _ in range(4)]
        loop.call_soon(futs[2].set_result, 24)
        loop.call_soon(lambda: loop.call_soon(futs[0].set_exception, ZeroDivisionError()))
        loop.call_later(0.01, futs[1].set_result, 42)
        loop.call_later(0.02, futs[3].cancel)
        iterator = gen.WaitIterator(*futs)
        outcomes: list[tuple[Any, Any]] = []
        while not iterator.done():
            try:
                outcomes.append((iterator.current_index, await iterator.next()))
            except ZeroDivisionError:
                outcomes.append((iterator.current_index, "error"))
                assert iterator.current_future is futs[0]
            except asyncio.CancelledError:
                outcomes.append((iterator.current_index, "cancelled"))
        # The index read before awaiting next() is the previous one.
        assert [value for _, value in outcomes] == [24, "error", 42, "cancelled"]
        assert iterator.current_index is None

    run(main)


def test_wait_iterator_async_for_resumes_after_an_error() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        bad: Future[int] = Future()
        good: Future[int] = Future()
        loop.call_soon(bad.set_exception, ZeroDivisionError())
        loop.call_later(0.01, good.set_result, 1)
        iterator = gen.WaitIterator(bad, good)
        with pytest.raises(ZeroDivisionError):
            async for _ in iterator:
                pass  # pragma: no cover
        results = [value async for value in iterator]
        assert results == [1] and iterator.done()

    run(main)


def test_wait_iterator_accepts_other_awaitables() -> None:
    async def main() -> None:
        release = threading.Event()
        with futures.ThreadPoolExecutor(1) as executor:
            pending = executor.submit(lambda: release.wait(LIMIT) and "thread")
            iterator = gen.WaitIterator(pending, gen.sleep(0), after_moments(1, "coro"))
            asyncio.get_running_loop().call_later(0.01, release.set)
            results = {}
            async for value in iterator:
                results[iterator.current_index] = value
                if iterator.current_index == 0:
                    assert iterator.current_future is pending
            assert results == {0: "thread", 1: None, 2: "coro"}

    run(main)


def test_wait_iterator_without_a_reference() -> None:
    async def main() -> None:
        future = gen.WaitIterator(gen.sleep(0)).next()
        gc.collect()
        assert await gen.with_timeout(datetime.timedelta(seconds=LIMIT), future) is None

    run(main)
