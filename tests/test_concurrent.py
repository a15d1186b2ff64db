"""Tests for squall.concurrent."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from concurrent import futures
from typing import Any

import pytest

from squall.concurrent import (
    FUTURES,
    DummyExecutor,
    Future,
    ReturnValueIgnoredError,
    chain_future,
    dummy_executor,
    future_add_done_callback,
    future_set_exc_info,
    future_set_exception_unless_cancelled,
    future_set_result_unless_cancelled,
    is_future,
    run_on_executor,
)
from tests._wait import HANG_GUARD


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, HANG_GUARD))


def test_future_is_asyncio_future() -> None:
    assert Future is asyncio.Future
    assert FUTURES == (futures.Future, asyncio.Future)
    assert issubclass(ReturnValueIgnoredError, Exception)


def test_is_future() -> None:
    async def main() -> None:
        assert is_future(asyncio.get_running_loop().create_future())

    run(main())
    assert is_future(futures.Future())
    assert not is_future(42)


def test_dummy_executor() -> None:
    assert isinstance(dummy_executor, DummyExecutor)
    ok = dummy_executor.submit(lambda x, y=0: x + y, 1, y=2)
    assert ok.result() == 3

    def boom() -> None:
        raise ZeroDivisionError("boom")

    bad = dummy_executor.submit(boom)
    assert isinstance(bad.exception(), ZeroDivisionError)
    dummy_executor.shutdown()
    dummy_executor.shutdown(wait=False, cancel_futures=True)


def test_set_result_unless_cancelled() -> None:
    f: futures.Future[int] = futures.Future()
    future_set_result_unless_cancelled(f, 1)
    assert f.result() == 1
    g: futures.Future[int] = futures.Future()
    g.cancel()
    future_set_result_unless_cancelled(g, 1)
    assert g.cancelled()


def test_set_exception_unless_cancelled_logs(caplog: pytest.LogCaptureFixture) -> None:
    f: futures.Future[int] = futures.Future()
    future_set_exception_unless_cancelled(f, ValueError("x"))
    assert isinstance(f.exception(), ValueError)
    g: futures.Future[int] = futures.Future()
    g.cancel()
    with caplog.at_level(logging.ERROR, logger="squall.application"):
        future_set_exception_unless_cancelled(g, ValueError("late"))
    assert "after Future was cancelled" in caplog.text
    assert caplog.records[0].name == "squall.application"


def test_future_set_exc_info() -> None:
    f: futures.Future[int] = futures.Future()
    try:
        raise KeyError("k")
    except KeyError:
        future_set_exc_info(f, sys.exc_info())
    assert isinstance(f.exception(), KeyError)
    with pytest.raises(Exception, match="no exception"):
        future_set_exc_info(f, (None, None, None))


def test_future_add_done_callback_runs_now_if_done() -> None:
    seen: list[Any] = []
    f: futures.Future[int] = futures.Future()
    f.set_result(1)
    future_add_done_callback(f, seen.append)
    assert seen == [f]
    g: futures.Future[int] = futures.Future()
    future_add_done_callback(g, seen.append)
    assert seen == [f]
    g.set_result(2)
    assert seen == [f, g]


def test_chain_asyncio_futures() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a: asyncio.Future[int] = loop.create_future()
        b: asyncio.Future[int] = loop.create_future()
        chain_future(a, b)
        a.set_result(42)
        assert await b == 42

        c: asyncio.Future[int] = loop.create_future()
        d: asyncio.Future[int] = loop.create_future()
        chain_future(c, d)
        c.set_exception(ValueError("bad"))
        with pytest.raises(ValueError, match="bad"):
            await d

        e: asyncio.Future[int] = loop.create_future()
        f: asyncio.Future[int] = loop.create_future()
        chain_future(e, f)
        f.set_result(0)  # already done: the outcome of e is not copied
        e.set_result(1)
        await asyncio.sleep(0)
        assert f.result() == 0

    run(main())


def test_chain_concurrent_to_asyncio_across_threads() -> None:
    async def main() -> None:
        a: futures.Future[int] = futures.Future()
        b: futures.Future[int] = futures.Future()
        c: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        chain_future(a, b)
        chain_future(b, c)
        t = threading.Thread(target=a.set_result, args=(7,))
        t.start()
        assert await c == 7
        t.join()

    run(main())


def test_chain_cancellation() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        a: asyncio.Future[int] = loop.create_future()
        b: asyncio.Future[int] = loop.create_future()
        chain_future(a, b)
        a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await b
        x: futures.Future[int] = futures.Future()
        y: futures.Future[int] = futures.Future()
        z: asyncio.Future[int] = loop.create_future()
        chain_future(x, y)
        chain_future(y, z)
        x.cancel()
        with pytest.raises(asyncio.CancelledError):
            await z
        assert y.cancelled()

    run(main())


def test_chain_into_closed_loop_is_ignored() -> None:
    loop = asyncio.new_event_loop()
    target: asyncio.Future[int] = loop.create_future()
    loop.close()
    source: futures.Future[int] = futures.Future()
    chain_future(source, target)
    source.set_result(1)
    assert not target.done()


class Worker:
    def __init__(self) -> None:
        self.executor = futures.ThreadPoolExecutor(1)
        self._other = futures.ThreadPoolExecutor(1)

    @run_on_executor
    def plain(self, x: int) -> int:
        return x * 2

    @run_on_executor()
    def called(self) -> str:
        return threading.current_thread().name

    @run_on_executor(executor="_other")
    def named(self, *, y: int) -> int:
        return y + 1

    @run_on_executor
    def fails(self) -> None:
        raise RuntimeError("in thread")

    def close(self) -> None:
        self.executor.shutdown()
        self._other.shutdown()


def test_run_on_executor_forms() -> None:
    w = Worker()

    async def main() -> None:
        fut = w.plain(21)
        assert isinstance(fut, asyncio.Future)
        assert await fut == 42
        assert await w.called() != threading.current_thread().name
        assert await w.named(y=1) == 2
        with pytest.raises(RuntimeError, match="in thread"):
            await w.fails()

    try:
        run(main())
    finally:
        w.close()
    assert Worker.plain.__name__ == "plain"


def test_run_on_executor_bad_arguments() -> None:
    # Tornado's exact words (ddtrace's test of its tracing asserts them).
    with pytest.raises(ValueError, match="^expected 1 argument, got 2$"):
        run_on_executor(1, 2)
    with pytest.raises(ValueError, match="^cannot combine positional and keyword args$"):
        run_on_executor(lambda self: None, executor="x")
