"""Helpers for working with futures.

Squall's `Future` is `asyncio.Future`. Code in Squall also accepts
`concurrent.futures.Future` in most places where a future is expected (for
instance `.IOLoop.add_future`); the helpers here work with both kinds.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import types
from collections.abc import Awaitable, Callable
from concurrent import futures
from typing import Any, Optional, Protocol, TypeVar, Union, overload

__all__ = [
    "FUTURES",
    "DummyExecutor",
    "Future",
    "ReturnValueIgnoredError",
    "chain_future",
    "dummy_executor",
    "future_add_done_callback",
    "future_set_exc_info",
    "future_set_exception_unless_cancelled",
    "future_set_result_unless_cancelled",
    "is_future",
    "run_on_executor",
]

# The same object as squall.log.app_log, looked up by name (private here so
# that it is not part of this module's public API).
_app_log = logging.getLogger("squall.application")

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])

Future = asyncio.Future

FUTURES = (futures.Future, Future)

_AnyFuture = Union["futures.Future[Any]", "asyncio.Future[Any]"]


# Tasks Squall started that nothing else may hold: a request handler's,
# a coroutine a callback returned, one ``gen`` wraps. asyncio's loop holds a
# Task only weakly, and so does a Future's owner now and then (the reader of
# a client stream asyncio opens is held weakly by its protocol): a Task
# waiting there is then garbage, and the collector ends it in the middle,
# with its locks and connections taken (a pool's lock never released hangs
# every later request). Each is held here until it ends. `.IOLoop` calls
# this set ``_pending_tasks``.
_held_tasks: set[asyncio.Future[Any]] = set()


def _held_future(
    awaitable: Awaitable[Any], loop: Optional[asyncio.AbstractEventLoop] = None
) -> asyncio.Future[Any]:
    """``asyncio.ensure_future(awaitable)``, the Task it makes held until it
    ends; a Future is returned as it is (its owner holds it)."""
    if isinstance(awaitable, asyncio.Future):
        return awaitable
    task = asyncio.ensure_future(awaitable, loop=loop)
    _held_tasks.add(task)
    task.add_done_callback(_held_tasks.discard)
    return task


class ReturnValueIgnoredError(Exception):
    """Raised when a callback's return value would be silently dropped."""


def is_future(x: Any) -> bool:
    """Return True if ``x`` is an asyncio or a `concurrent.futures` future."""
    return isinstance(x, FUTURES)


class DummyExecutor(futures.Executor):
    """An executor that runs each function at once, in the calling thread."""

    def submit(  # type: ignore[override]
        self, fn: Callable[..., _T], *args: Any, **kwargs: Any
    ) -> futures.Future[_T]:
        """Run ``fn(*args, **kwargs)`` now; return a future holding its outcome."""
        future: futures.Future[_T] = futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as exc:
            future.set_exception(exc)
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        """Do nothing: there are no workers to stop."""


dummy_executor = DummyExecutor()


def run_on_executor(*args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Decorate a method so that it runs on an executor and returns a future.

    The method's object must have an ``executor`` attribute (or the one named
    with ``executor=``) holding a `concurrent.futures.Executor`. The wrapper
    returns an asyncio `Future` of the current loop. Usable as
    ``@run_on_executor``, ``@run_on_executor()`` or
    ``@run_on_executor(executor="_thread_pool")``.

    Raises:
        ValueError: if given more than one positional argument.
    """

    def make_wrapper(fn: _F) -> _F:
        executor_attr: str = kwargs.get("executor", "executor")

        @functools.wraps(fn)
        def wrapper(self: Any, *w_args: Any, **w_kwargs: Any) -> Future[Any]:
            result: Future[Any] = Future()
            submitted = getattr(self, executor_attr).submit(fn, self, *w_args, **w_kwargs)
            chain_future(submitted, result)
            return result

        return wrapper  # type: ignore[return-value]

    if args and kwargs:
        # Tornado's words: tests of code that decorates with it (ddtrace's) match them.
        raise ValueError("cannot combine positional and keyword args")
    if len(args) == 1:
        fn: Callable[..., Any] = args[0]
        return make_wrapper(fn)
    if len(args) == 0:
        return make_wrapper
    raise ValueError(f"expected 1 argument, got {len(args)}")


class _Done(Protocol):
    # What _copy_outcome reads of a done future (gen's _NullFuture has it too).
    def cancelled(self) -> bool: ...
    def exception(self) -> Optional[BaseException]: ...
    def result(self) -> Any: ...


def _copy_outcome(source: _Done, target: _AnyFuture) -> None:
    if target.done():
        return
    if source.cancelled():
        target.cancel()
        return
    exc = source.exception()
    if exc is not None:
        target.set_exception(exc)
    else:
        target.set_result(source.result())


def chain_future(a: _AnyFuture, b: _AnyFuture) -> None:
    """Make future ``b`` complete with the outcome of future ``a``.

    Either may be an asyncio or a `concurrent.futures` future. A result,
    exception or cancellation of ``a`` is copied to ``b`` unless ``b`` is
    already done. When ``b`` is an asyncio future, the copy happens in its
    event loop's thread.
    """
    if isinstance(b, asyncio.Future) and not isinstance(a, asyncio.Future):
        loop = b.get_loop()

        def on_done(source: _AnyFuture) -> None:
            try:
                loop.call_soon_threadsafe(_copy_outcome, source, b)
            except RuntimeError:
                # b's loop is closed; nothing can await b any more.
                pass

        a.add_done_callback(on_done)
    else:
        future_add_done_callback(a, lambda source: _copy_outcome(source, b))


def future_set_result_unless_cancelled(future: _AnyFuture, value: Any) -> None:
    """Set ``future``'s result unless it was cancelled."""
    if not future.cancelled():
        future.set_result(value)


def future_set_exception_unless_cancelled(future: _AnyFuture, exc: BaseException) -> None:
    """Set ``future``'s exception unless it was cancelled.

    An exception arriving after cancellation would otherwise be lost, so it
    is logged to ``squall.application`` instead.
    """
    if not future.cancelled():
        future.set_exception(exc)
    else:
        _app_log.error("Exception after Future was cancelled", exc_info=exc)


def future_set_exc_info(
    future: _AnyFuture,
    exc_info: tuple[
        Optional[type[BaseException]], Optional[BaseException], Optional[types.TracebackType]
    ],
) -> None:
    """Set ``future``'s exception from a ``sys.exc_info()`` triple.

    Raises:
        Exception: if the triple holds no exception.
    """
    if exc_info[1] is None:
        raise Exception("future_set_exc_info called with no exception")
    future_set_exception_unless_cancelled(future, exc_info[1])


@overload
def future_add_done_callback(
    future: futures.Future[_T], callback: Callable[[futures.Future[_T]], None]
) -> None: ...


@overload
def future_add_done_callback(
    future: asyncio.Future[_T], callback: Callable[[asyncio.Future[_T]], None]
) -> None: ...


def future_add_done_callback(future: Any, callback: Callable[[Any], None]) -> None:
    """Call ``callback(future)`` when ``future`` is done.

    If it is already done, the callback runs now, before this function
    returns (asyncio's own ``add_done_callback`` would defer it to the next
    loop iteration).
    """
    if future.done():
        callback(future)
    else:
        future.add_done_callback(callback)
