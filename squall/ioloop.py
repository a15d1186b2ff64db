"""The event loop: Tornado's `IOLoop` interface over an asyncio event loop.

Every asyncio event loop has at most one `IOLoop`, found with
`IOLoop.current` (which creates it when needed). New code can use the asyncio
loop directly; the `IOLoop` interface exists so that code written for Tornado
runs unchanged. `PeriodicCallback` runs a function on a fixed schedule.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import importlib
import inspect
import logging
import math
import numbers
import os
import random
import sys
import time
import warnings
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Optional, TypeVar, Union, overload

from squall.concurrent import (
    Future,
    _held_future,
    _held_tasks,
    chain_future,
    future_add_done_callback,
    future_set_exc_info,
    is_future,
)
from squall.util import Configurable, TimeoutError, import_object  # re-exported

if TYPE_CHECKING:
    from squall.platform.asyncio import BaseAsyncIOLoop

__all__ = ["IOLoop", "PeriodicCallback", "TimeoutError"]

# The same object as squall.log.app_log, found by name so that nothing here
# depends on the import order of the logging module.
_app_log = logging.getLogger("squall.application")

_T = TypeVar("_T")


def _as_future(value: Any) -> Optional[asyncio.Future[Any]]:
    """Turn what a callback returned into a future, or None if it is not awaitable.

    Uses `squall.gen.convert_yielded` when the gen module is available, so
    that lists and dicts of futures are understood as they are in coroutines.
    """
    try:
        # Imported lazily: gen is built on this module.
        gen: Any = importlib.import_module("squall.gen")
    except ImportError:
        gen = None
    if gen is not None:
        try:
            converted: asyncio.Future[Any] = gen.convert_yielded(value)
        except gen.BadYieldError:
            return None
        return converted
    if isinstance(value, asyncio.Future) or inspect.isawaitable(value):
        return _held_future(value)
    return None


def _peek_event_loop() -> Optional[asyncio.AbstractEventLoop]:
    """Return the thread's current event loop without creating one."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    if sys.version_info >= (3, 14):
        # From 3.14 get_event_loop() creates nothing (it raises instead), and
        # the policy API it used to take is deprecated.
        try:
            return asyncio.get_event_loop()
        except RuntimeError:
            return None
    policy = asyncio.get_event_loop_policy()
    local = getattr(policy, "_local", None)
    if local is not None and hasattr(local, "_loop"):
        # Before 3.14 the default policy's get_event_loop() creates a loop
        # in the main thread (with a DeprecationWarning from 3.12); reading
        # its slot avoids both the warning and a leaked loop.
        loop: Optional[asyncio.AbstractEventLoop] = local._loop
        return loop
    try:
        return policy.get_event_loop()
    except RuntimeError:
        return None


def _platform_asyncio() -> Any:
    """The module of the asyncio-based IOLoops, imported on first use.

    Only the paths that make a loop come here, not `IOLoop.current`'s
    lookup of an existing one; run as Tornado, `squall.compat` presents
    the module under its ``tornado.platform.asyncio`` name as it loads.
    """
    return importlib.import_module("squall.platform.asyncio")


def _bad_yield(value: Any) -> Exception:
    message = f"yielded unknown object {value!r}"
    try:
        gen: Any = importlib.import_module("squall.gen")
    except ImportError:
        return TypeError(message)
    error: Exception = gen.BadYieldError(message)
    return error


class IOLoop(Configurable):
    """An I/O event loop, wrapping an asyncio event loop.

    ``IOLoop()`` creates a new asyncio event loop (an
    `~squall.platform.asyncio.AsyncIOLoop`); `IOLoop.current` returns the
    `IOLoop` of the running (or current) asyncio loop, creating one if
    needed. By default a new `IOLoop` becomes the current loop of its
    thread; pass ``make_current=False`` to prevent that.
    """

    # Event masks, as in epoll.
    NONE = 0
    READ = 0x001
    WRITE = 0x004
    ERROR = 0x018

    # asyncio event loop -> its IOLoop. Entries of loops that were closed
    # through asyncio rather than IOLoop.close are pruned when a new IOLoop
    # is created.
    _ioloop_for_asyncio: dict[asyncio.AbstractEventLoop, BaseAsyncIOLoop] = {}

    # Tasks started for callbacks, coroutines and handlers, kept alive until
    # they finish (asyncio holds only weak references to tasks): the one set
    # `squall.concurrent` keeps.
    _pending_tasks: set[asyncio.Future[Any]] = _held_tasks

    # The executor of run_in_executor(None, ...), created on first use.
    _executor: Optional[concurrent.futures.Executor] = None

    @classmethod
    def configure(cls, impl: Any, **kwargs: Any) -> None:
        """Choose the `IOLoop` implementation; it must wrap asyncio.

        Raises:
            RuntimeError: if ``impl`` is not a ``BaseAsyncIOLoop`` subclass.
        """
        base: type[IOLoop] = _platform_asyncio().BaseAsyncIOLoop
        if isinstance(impl, str):
            impl = import_object(impl)
        if isinstance(impl, type) and not issubclass(impl, base):
            raise RuntimeError(f"only asyncio-based IOLoops can be configured, not {impl.__name__}")
        super().configure(impl, **kwargs)

    @staticmethod
    def instance() -> IOLoop:
        """Deprecated alias for `IOLoop.current()`."""
        return IOLoop.current()

    def install(self) -> None:
        """Deprecated alias for `make_current()`."""
        self.make_current()

    @staticmethod
    def clear_instance() -> None:
        """Deprecated alias for `clear_current()`."""
        IOLoop.clear_current()

    @overload
    @staticmethod
    def current() -> IOLoop: ...

    @overload
    @staticmethod
    def current(instance: Literal[True] = ...) -> IOLoop: ...

    @overload
    @staticmethod
    def current(instance: bool = ...) -> Optional[IOLoop]: ...

    @staticmethod
    def current(instance: bool = True) -> Optional[IOLoop]:
        """Return the `IOLoop` of the current thread's asyncio event loop.

        The running loop is used if there is one, else the thread's current
        loop. If that loop has no `IOLoop` yet, one is created, unless
        ``instance`` is False, in which case None is returned. With
        ``instance`` True, a thread with no event loop gets a new one, set
        as its current loop (no loop is created implicitly otherwise).
        """
        try:
            loop: asyncio.AbstractEventLoop = asyncio.get_running_loop()
        except RuntimeError:
            current = _peek_event_loop()
            if current is None:
                if not instance:
                    return None
                current = asyncio.new_event_loop()
                asyncio.set_event_loop(current)
            loop = current
        existing: Optional[IOLoop] = IOLoop._ioloop_for_asyncio.get(loop)
        if existing is not None or not instance:
            return existing
        created: IOLoop = _platform_asyncio().AsyncIOMainLoop()
        return created

    def make_current(self) -> None:
        """Make this loop the current one of its thread (deprecated).

        Start the event loop instead: a running loop is always current.
        """
        # Tornado's words: programs filter this warning by its text.
        warnings.warn(
            "make_current is deprecated; start the event loop first",
            DeprecationWarning,
            stacklevel=2,
        )
        self._make_current()

    def _make_current(self) -> None:
        raise NotImplementedError()

    @staticmethod
    def clear_current() -> None:
        """Unset the current `IOLoop` of this thread (deprecated)."""
        warnings.warn("clear_current is deprecated", DeprecationWarning, stacklevel=2)
        IOLoop._clear_current()

    @staticmethod
    def _clear_current() -> None:
        old = IOLoop.current(instance=False)
        if old is not None:
            old._clear_current_hook()

    def _clear_current_hook(self) -> None:
        """Called when this loop stops being current; for subclasses."""

    @classmethod
    def configurable_base(cls) -> type[Configurable]:
        return IOLoop

    @classmethod
    def configurable_default(cls) -> type[Configurable]:
        loop_class: type[Configurable] = _platform_asyncio().AsyncIOLoop
        return loop_class

    def initialize(self, make_current: bool = True) -> None:
        """Set up a new loop; with ``make_current``, make it current."""
        if make_current:
            self._make_current()

    def close(self, all_fds: bool = False) -> None:
        """Close the loop, releasing its resources.

        With ``all_fds``, the file descriptors (or file objects) still
        registered with `add_handler` are closed too. The loop must be
        stopped first.
        """
        raise NotImplementedError()

    def add_handler(self, fd: Any, handler: Callable[..., None], events: int) -> None:
        """Call ``handler(fd, events)`` whenever ``fd`` is ready for ``events``.

        ``fd`` is an integer file descriptor or an object with a ``fileno()``
        method; the handler receives it as given. ``events`` is a
        combination of ``READ``, ``WRITE`` and ``ERROR``.
        """
        raise NotImplementedError()

    def update_handler(self, fd: Any, events: int) -> None:
        """Change the events ``fd`` is watched for."""
        raise NotImplementedError()

    def remove_handler(self, fd: Any) -> None:
        """Stop watching ``fd``; a no-op if it is not watched."""
        raise NotImplementedError()

    def start(self) -> None:
        """Run the loop until `stop` is called."""
        raise NotImplementedError()

    def stop(self) -> None:
        """Stop the loop after the current iteration; `start` then returns."""
        raise NotImplementedError()

    def run_sync(self, func: Callable[[], Any], timeout: Optional[float] = None) -> Any:
        """Start the loop, run ``func`` on it, and stop when its result is ready.

        ``func`` may return an awaitable (usually it is a coroutine function)
        or None. Returns its result, or raises its exception.

        Raises:
            TimeoutError: if ``timeout`` seconds pass first.
            RuntimeError: if the loop is stopped before the result is ready.
        """
        holder: list[asyncio.Future[Any]] = []

        def run() -> None:
            try:
                value = func()
                fut = _as_future(value) if value is not None else None
                if value is not None and fut is None:
                    raise _bad_yield(value)
            except Exception:
                fut = Future()
                future_set_exc_info(fut, sys.exc_info())
            if fut is None:
                fut = Future()
                fut.set_result(None)
            holder.append(fut)
            self.add_future(fut, lambda _: self.stop())

        timed_out = False

        def on_timeout() -> None:
            nonlocal timed_out
            timed_out = True
            # Cancelling wakes add_future's callback, which stops the loop;
            # a future that cannot be cancelled is left behind.
            if not holder or not holder[0].cancel():
                self.stop()

        self.add_callback(run)
        handle = self.call_later(timeout, on_timeout) if timeout is not None else None
        self.start()
        if handle is not None:
            self.remove_timeout(handle)
        if not holder or not holder[0].done() or (timed_out and holder[0].cancelled()):
            if timed_out:
                raise TimeoutError(f"Operation timed out after {timeout} seconds")
            raise RuntimeError("Event loop stopped before Future completed.")
        return holder[0].result()

    def time(self) -> float:
        """Return the loop's clock, the same one `add_timeout` deadlines use."""
        return time.time()

    def add_timeout(
        self,
        deadline: Union[float, datetime.timedelta],
        callback: Callable[..., Any],
        *args: Any,
        **kwargs: Any,
    ) -> object:
        """Run ``callback`` at ``deadline``.

        Args:
            deadline: a time on the `time` clock, or a `datetime.timedelta`
                relative to now.

        Returns:
            A handle for `remove_timeout`.

        Raises:
            TypeError: for any other kind of deadline.
        """
        if isinstance(deadline, numbers.Real):
            return self.call_at(float(deadline), callback, *args, **kwargs)
        if isinstance(deadline, datetime.timedelta):
            return self.call_at(self.time() + deadline.total_seconds(), callback, *args, **kwargs)
        # Tornado's words, which tests of timeout handling match.
        raise TypeError(f"Unsupported deadline {deadline!r}")

    def call_later(
        self, delay: float, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``callback`` after ``delay`` seconds; returns a handle for `remove_timeout`."""
        return self.call_at(self.time() + delay, callback, *args, **kwargs)

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``callback`` at time ``when``; returns a handle for `remove_timeout`."""
        raise NotImplementedError()

    def remove_timeout(self, timeout: object) -> None:
        """Cancel a pending timeout; a no-op if it already ran."""
        raise NotImplementedError()

    def add_callback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``callback`` on the next loop iteration.

        Safe to call from any thread; once the loop is closed, callbacks are
        dropped silently.
        """
        raise NotImplementedError()

    def add_callback_from_signal(
        self, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """Like `add_callback`, for signal handlers (deprecated).

        Use `asyncio.loop.add_signal_handler` instead.
        """
        raise NotImplementedError()

    def spawn_callback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``callback`` on the next loop iteration, detached from the caller."""
        self.add_callback(callback, *args, **kwargs)

    def add_future(
        self,
        future: Union[asyncio.Future[_T], concurrent.futures.Future[_T]],
        callback: Callable[[Any], None],
    ) -> None:
        """Call ``callback(future)`` on this loop once ``future`` is done.

        Accepts asyncio and `concurrent.futures` futures.

        Raises:
            TypeError: if ``future`` is not a future.
        """
        if isinstance(future, asyncio.Future):
            future.add_done_callback(lambda f: self._run_callback(functools.partial(callback, f)))
            return
        if not is_future(future):
            raise TypeError(f"add_future expects a future, got {future!r}")
        future_add_done_callback(future, lambda f: self.add_callback(callback, f))

    def run_in_executor(
        self,
        executor: Optional[concurrent.futures.Executor],
        func: Callable[..., _T],
        *args: Any,
    ) -> Awaitable[_T]:
        """Run ``func(*args)`` on ``executor`` (or the default one).

        Returns:
            A future of this loop holding the result.
        """
        if executor is None:
            executor = self._default_executor()
        result: asyncio.Future[_T] = Future()
        self.add_future(executor.submit(func, *args), lambda f: chain_future(f, result))
        return result

    def _default_executor(self) -> concurrent.futures.Executor:
        executor = self._executor
        if executor is None:
            executor = concurrent.futures.ThreadPoolExecutor(max_workers=(os.cpu_count() or 1) * 5)
            self._executor = executor
        return executor

    def set_default_executor(self, executor: concurrent.futures.Executor) -> None:
        """Use ``executor`` when `run_in_executor` is given None."""
        self._executor = executor

    def _run_callback(self, callback: Callable[[], Any]) -> None:
        """Run a callback, logging its exception; await what it returns."""
        try:
            ret = callback()
            if ret is not None:
                fut = _as_future(ret)
                if fut is not None:
                    # Its outcome is checked so that an exception it ends
                    # with is logged rather than lost.
                    self.add_future(fut, self._discard_future_result)
        except asyncio.CancelledError:
            pass
        except Exception:
            _app_log.error("Exception in callback %r", callback, exc_info=True)

    def _discard_future_result(self, future: asyncio.Future[Any]) -> None:
        future.result()

    def _register_task(self, task: asyncio.Future[Any]) -> None:
        self._pending_tasks.add(task)

    def _unregister_task(self, task: asyncio.Future[Any]) -> None:
        self._pending_tasks.discard(task)

    def split_fd(self, fd: Any) -> tuple[int, Any]:
        """Return ``(file descriptor, object)`` for an fd or a file-like object."""
        if isinstance(fd, int):
            return fd, fd
        return fd.fileno(), fd

    def close_fd(self, fd: Any) -> None:
        """Close an fd or file-like object, ignoring `OSError`."""
        try:
            if isinstance(fd, int):
                os.close(fd)
            else:
                fd.close()
        except OSError:
            pass


class PeriodicCallback:
    """Call a function every ``callback_time`` milliseconds.

    A callback that returns an awaitable is awaited before the next run is
    scheduled. If a run overruns one or more periods, those periods are
    skipped so the schedule stays aligned. With ``jitter``, each period is
    scaled randomly by up to ``jitter / 2`` in either direction.

    Args:
        callback: the function to call (may be a coroutine function).
        callback_time: the period, in milliseconds or as a `datetime.timedelta`.
        jitter: relative random variation of each period (0 for none).

    Raises:
        ValueError: if the period is not positive.
    """

    def __init__(
        self,
        callback: Callable[[], Optional[Awaitable[Any]]],
        callback_time: Union[datetime.timedelta, float],
        jitter: float = 0,
    ) -> None:
        self.callback = callback
        if isinstance(callback_time, datetime.timedelta):
            callback_time = callback_time / datetime.timedelta(milliseconds=1)
        if callback_time <= 0:
            # Tornado's words: callers' tests match them.
            raise ValueError("Periodic callback must have a positive callback_time")
        self.callback_time: float = callback_time
        self.jitter = jitter
        self._running = False
        self._timeout: Optional[object] = None
        self._next_timeout = 0.0

    def start(self) -> None:
        """Start calling the callback, on the current `IOLoop`."""
        self.io_loop = IOLoop.current()
        self._running = True
        self._next_timeout = self.io_loop.time()
        self._schedule_next()

    def stop(self) -> None:
        """Stop calling the callback."""
        self._running = False
        if self._timeout is not None:
            self.io_loop.remove_timeout(self._timeout)
            self._timeout = None

    def is_running(self) -> bool:
        """Return True between `start` and `stop`."""
        return self._running

    def _run(self) -> None:
        # A plain method, not a coroutine: a synchronous callback (the usual
        # case) then costs no coroutine or Task per tick, and a tick that
        # falls in a closing loop's last turn leaves no Task that never ran.
        if not self._running:
            return
        try:
            ret = self.callback()
        except Exception:
            _app_log.error("Exception in callback %r", self.callback, exc_info=True)
            self._schedule_next()
            return
        if ret is not None and inspect.isawaitable(ret):
            # The next tick is scheduled once the awaitable has finished.
            future = _held_future(ret)
            future.add_done_callback(self._awaited)
            return
        self._schedule_next()

    def _awaited(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            _app_log.error(
                "Exception in callback %r",
                self.callback,
                exc_info=future.exception(),
            )
        self._schedule_next()

    def _schedule_next(self) -> None:
        if self._running:
            self._update_next(self.io_loop.time())
            self._timeout = self.io_loop.add_timeout(self._next_timeout, self._run)

    def _update_next(self, current_time: float) -> None:
        period = self.callback_time / 1000.0
        if self.jitter:
            period *= 1 + self.jitter * (random.random() - 0.5)
        if self._next_timeout <= current_time:
            # Skip every period that has already passed (the callback ran
            # long, or the clock jumped forward), keeping the phase.
            missed = math.floor((current_time - self._next_timeout) / period)
            self._next_timeout += (missed + 1) * period
        else:
            # The clock went backwards; keep the schedule rather than
            # waiting for the lost time.
            self._next_timeout += period
