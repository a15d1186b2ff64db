"""Tests for squall.platform.asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import gc
import logging
import socket
import threading
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import squall.platform.asyncio as platform_asyncio
from squall.ioloop import IOLoop
from squall.platform.asyncio import (
    AddThreadSelectorEventLoop,
    AsyncIOLoop,
    AsyncIOMainLoop,
    SelectorThread,
    to_asyncio_future,
    to_tornado_future,
)
from tests._wait import HANG_GUARD


def test_asyncio_main_loop_wraps_running_loop() -> None:
    async def main() -> tuple[Any, Any]:
        return IOLoop.current(), asyncio.get_running_loop()

    io_loop, aloop = asyncio.run(main())
    assert isinstance(io_loop, AsyncIOMainLoop)
    assert io_loop.asyncio_loop is aloop


def test_asyncio_main_loop_on_current_loop() -> None:
    aloop = asyncio.new_event_loop()
    saved = asyncio.get_event_loop_policy()._local._loop  # type: ignore[attr-defined]
    asyncio.set_event_loop(aloop)
    try:
        main = AsyncIOMainLoop()
        assert main.asyncio_loop is aloop
        assert IOLoop.current() is main
        with pytest.warns(DeprecationWarning):
            main.make_current()  # a no-op for the wrapped loop
        assert IOLoop.current() is main
        main.close()
    finally:
        asyncio.set_event_loop(saved)
    assert aloop.is_closed()


def test_closed_loops_are_pruned() -> None:
    AsyncIOLoop(make_current=False).close()
    before = len(IOLoop._ioloop_for_asyncio)
    for _ in range(5):
        aloop = asyncio.new_event_loop()
        aloop.run_until_complete(asyncio.sleep(0))
        aloop.call_soon(IOLoop.current)
        aloop.call_soon(aloop.stop)
        aloop.run_forever()
        aloop.close()
    # Each new IOLoop prunes the previous closed loop: one entry is left.
    assert len(IOLoop._ioloop_for_asyncio) - before == 1
    for _ in range(5):
        AsyncIOLoop(make_current=False).close()
    assert len(IOLoop._ioloop_for_asyncio) - before == 0


def test_asyncio_loop_closed_on_failed_init(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[asyncio.AbstractEventLoop] = []
    real_new = asyncio.new_event_loop

    def tracking_new() -> asyncio.AbstractEventLoop:
        loop = real_new()
        created.append(loop)
        return loop

    def refuse(self: Any, asyncio_loop: Any, **kwargs: Any) -> None:
        raise RuntimeError("refused")

    monkeypatch.setattr(asyncio, "new_event_loop", tracking_new)
    monkeypatch.setattr(platform_asyncio.BaseAsyncIOLoop, "initialize", refuse)
    with pytest.raises(RuntimeError, match="refused"):
        AsyncIOLoop(make_current=False)
    assert len(created) == 1 and created[0].is_closed()


def test_to_asyncio_future() -> None:
    async def inner() -> int:
        return 5

    async def main() -> list[int]:
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(1)
        a = await to_asyncio_future(fut)
        b = await to_asyncio_future(inner())
        c = await to_tornado_future(asyncio.ensure_future(inner()))
        with pytest.raises(TypeError, match="cannot convert"):
            to_asyncio_future(42)
        return [a, b, c]

    assert asyncio.run(main()) == [1, 5, 5]


@pytest.fixture
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


def test_any_thread_event_loop_policy(restore_policy: None) -> None:
    with pytest.warns(DeprecationWarning, match="AnyThreadEventLoopPolicy"):
        policy_cls = platform_asyncio.AnyThreadEventLoopPolicy
    assert policy_cls.__name__ == "AnyThreadEventLoopPolicy"
    asyncio.set_event_loop_policy(policy_cls())

    def in_thread() -> bool:
        loop = asyncio.get_event_loop()
        same = asyncio.get_event_loop() is loop
        loop.close()
        return same

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        assert pool.submit(in_thread).result(5)


def test_module_getattr_unknown() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = platform_asyncio.Nope  # type: ignore[attr-defined]


def test_peek_event_loop_without_default_policy(restore_policy: None) -> None:
    class Custom(asyncio.AbstractEventLoopPolicy):
        def __init__(self) -> None:
            self.loop: Any = None

        def get_event_loop(self) -> asyncio.AbstractEventLoop:
            if self.loop is None:
                raise RuntimeError("none")
            loop: asyncio.AbstractEventLoop = self.loop
            return loop

        def set_event_loop(self, loop: Any) -> None:
            self.loop = loop

        def new_event_loop(self) -> asyncio.AbstractEventLoop:
            return asyncio.SelectorEventLoop()

    policy = Custom()
    asyncio.set_event_loop_policy(policy)
    assert platform_asyncio._peek_event_loop() is None
    aloop = policy.new_event_loop()
    policy.set_event_loop(aloop)
    assert platform_asyncio._peek_event_loop() is aloop
    aloop.close()


# --- SelectorThread -----------------------------------------------------------


@pytest.fixture
def wrapped() -> Iterator[AddThreadSelectorEventLoop]:
    loop = AddThreadSelectorEventLoop(asyncio.new_event_loop())  # type: ignore[abstract]
    yield loop
    loop.close()


def test_add_thread_selector_loop_delegates(wrapped: AddThreadSelectorEventLoop) -> None:
    async def three() -> int:
        return 3

    assert wrapped.run_until_complete(three()) == 3
    assert not wrapped.is_closed()


def test_selector_thread_reader_and_writer(wrapped: AddThreadSelectorEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        a.setblocking(False)
        events: list[str] = []
        done: asyncio.Future[None] = wrapped.create_future()

        def on_write() -> None:
            events.append("w")
            assert wrapped.remove_writer(a.fileno())
            b.send(b"hi")

        def on_read(tag: str) -> None:
            events.append(tag + a.recv(10).decode())
            assert wrapped.remove_reader(a)
            done.set_result(None)

        wrapped.add_writer(a, on_write)
        wrapped.add_reader(a.fileno(), on_read, "r:")
        wrapped.run_until_complete(asyncio.wait_for(done, HANG_GUARD))
        assert events == ["w", "r:hi"]
        assert not wrapped.remove_reader(a)
        assert not wrapped.remove_writer(a)
    finally:
        a.close()
        b.close()


_CTX: contextvars.ContextVar[str] = contextvars.ContextVar("_CTX", default="default")


def test_selector_thread_keeps_registration_context(wrapped: AddThreadSelectorEventLoop) -> None:
    a, b = socket.socketpair()
    try:
        seen: asyncio.Future[str] = wrapped.create_future()

        def on_write() -> None:
            wrapped.remove_writer(a)
            seen.set_result(_CTX.get())

        token = _CTX.set("registered")
        try:
            wrapped.add_writer(a, on_write)
        finally:
            _CTX.reset(token)
        assert wrapped.run_until_complete(asyncio.wait_for(seen, HANG_GUARD)) == "registered"
    finally:
        a.close()
        b.close()


def test_selector_thread_callback_error_logged(
    wrapped: AddThreadSelectorEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = socket.socketpair()
    try:
        done: asyncio.Future[None] = wrapped.create_future()

        def on_write() -> None:
            wrapped.remove_writer(a)
            done.set_result(None)
            raise ValueError("selector callback")

        wrapped.add_writer(a, on_write)
        with caplog.at_level(logging.ERROR, logger="squall.application"):
            wrapped.run_until_complete(asyncio.wait_for(done, HANG_GUARD))
        assert "selector callback" in caplog.text
    finally:
        a.close()
        b.close()


def test_selector_thread_close_idempotent_and_stops_thread() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    a, b = socket.socketpair()
    try:
        aloop.run_until_complete(asyncio.sleep(0))  # starts the thread
        selector.add_reader(a, lambda: None)
        thread = selector._thread
        assert thread is not None and thread.is_alive()
        assert selector in platform_asyncio._selector_loops
        selector.close()
        selector.close()
        assert not thread.is_alive()
        assert selector not in platform_asyncio._selector_loops
        assert selector._waker_r.fileno() == -1
    finally:
        a.close()
        b.close()
        aloop.close()


def test_selector_thread_stopped_by_shutdown_asyncgens() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    aloop.run_until_complete(asyncio.sleep(0))
    thread = selector._thread
    assert thread is not None and thread.is_alive()
    aloop.run_until_complete(aloop.shutdown_asyncgens())
    assert not thread.is_alive()
    assert selector not in platform_asyncio._selector_loops
    aloop.close()


def test_selector_thread_closed_before_start(caplog: pytest.LogCaptureFixture) -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    aloop.call_soon(aloop.stop)
    aloop.run_forever()
    task = selector._thread_manager_task
    assert task is not None and not task.done()
    selector.close()
    aloop.close()
    del task, selector
    gc.collect()
    assert caplog.records == []


def test_selector_thread_not_started_after_close() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    selector.close()
    aloop.run_until_complete(asyncio.sleep(0))
    assert selector._thread is None and selector._thread_manager_task is None
    aloop.close()


def test_selector_thread_closed_fd_reports_ready() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    a, b = socket.socketpair()
    try:
        ready: asyncio.Future[None] = aloop.create_future()

        def on_read() -> None:
            selector.remove_reader(fd)
            if not ready.done():
                ready.set_result(None)

        fd = a.fileno()
        selector.add_reader(fd, on_read)
        a.close()  # select() now fails with EBADF; the handler is told
        aloop.run_until_complete(asyncio.wait_for(ready, HANG_GUARD))
        assert ready.done()
    finally:
        selector.close()
        b.close()
        aloop.close()


def test_selector_thread_real_loop_closed() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    a, b = socket.socketpair()
    try:
        aloop.run_until_complete(asyncio.sleep(0))
        thread = selector._thread
        assert thread is not None
        aloop.close()
        selector.add_writer(a, lambda: None)
        thread.join(5)  # handing over to the closed loop fails: the thread exits
        assert not thread.is_alive()
    finally:
        selector.close()
        a.close()
        b.close()


def test_atexit_callback_closes_selectors() -> None:
    aloop = asyncio.new_event_loop()
    selector = SelectorThread(aloop)
    platform_asyncio._atexit_callback()
    assert selector not in platform_asyncio._selector_loops
    aloop.close()


def test_ioloop_over_loop_without_add_reader() -> None:
    class NoReaders(asyncio.SelectorEventLoop):
        add_reader = asyncio.AbstractEventLoop.add_reader  # type: ignore[assignment]

    aloop = NoReaders()
    io_loop = IOLoop(asyncio_loop=aloop, make_current=False)
    a, b = socket.socketpair()
    try:
        assert isinstance(io_loop.selector_loop, AddThreadSelectorEventLoop)  # type: ignore[attr-defined]
        got = threading.Event()

        def handler(fd: Any, events: int) -> None:
            got.set()
            io_loop.remove_handler(fd)
            io_loop.stop()

        io_loop.add_handler(a, handler, IOLoop.READ)
        b.send(b"x")
        io_loop.call_later(5, io_loop.stop)
        io_loop.start()
        assert got.is_set()
    finally:
        io_loop.close()
        a.close()
        b.close()
    assert aloop.is_closed()


def test_duplicate_ioloop_closes_selector_wrapper() -> None:
    class NoReaders(asyncio.SelectorEventLoop):
        add_reader = asyncio.AbstractEventLoop.add_reader  # type: ignore[assignment]

    aloop = NoReaders()
    first = IOLoop(asyncio_loop=aloop, make_current=False)
    before = set(platform_asyncio._selector_loops)
    with pytest.raises(RuntimeError, match="already exists"):
        IOLoop(asyncio_loop=aloop, make_current=False)
    assert set(platform_asyncio._selector_loops) == before
    first.close()


def test_no_warnings_from_default_paths() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        io_loop = IOLoop(make_current=False)
        io_loop.run_sync(lambda: asyncio.sleep(0))
        io_loop.close()


def test_bound_reads_only_changes_asyncio_socket_transports() -> None:
    class Other(asyncio.Transport):
        max_size = 256 * 1024

    other = Other()
    platform_asyncio._bound_reads(other)
    assert other.max_size == 256 * 1024  # uvloop's and TLS transports read their own way

    async def main() -> int:
        a, b = socket.socketpair()
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(
                asyncio.Protocol, sock=a
            )
            platform_asyncio._bound_reads(transport)
            size: int = transport.max_size  # type: ignore[attr-defined]
            transport.close()
            await asyncio.sleep(0)  # the transport closes its socket a turn later
            return size
        finally:
            b.close()

    assert asyncio.run(main()) == platform_asyncio._READ_SIZE < 128 * 1024
