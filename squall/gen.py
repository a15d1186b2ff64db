"""Generator-based coroutines and helpers for waiting on several things at once.

`coroutine` turns a generator function into a function returning a
`~squall.concurrent.Future`: each ``yield`` hands an awaitable (a future, a
native coroutine, a list or dict of them, or `moment`) to a `Runner`, which
sends the result back into the generator when it is ready. Native coroutines
(``async def``) are the modern equivalent; the helpers here work with both:
`multi` waits for many awaitables, `with_timeout` bounds one, `sleep` and
`moment` pause, and `WaitIterator` delivers results in completion order.

A generator coroutine costs no `asyncio.Task`: its `Runner` resumes it from
future callbacks directly, and a yielded future that is already done is
consumed in the same step, without a trip through the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime
import functools
import inspect
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent import futures
from typing import Any, Optional, TypeVar, Union, cast, overload

from squall.concurrent import Future, _copy_outcome, _held_future, is_future
from squall.ioloop import IOLoop
from squall.log import app_log
from squall.util import TimeoutError  # re-exported for compatibility

__all__ = [
    "BadYieldError",
    "Multi",
    "Return",
    "Runner",
    "TimeoutError",
    "WaitIterator",
    "convert_yielded",
    "coroutine",
    "is_coroutine_function",
    "maybe_future",
    "moment",
    "multi",
    "multi_future",
    "sleep",
    "with_timeout",
]

_T = TypeVar("_T")

_Yieldable = Union[
    None, Awaitable[Any], list[Awaitable[Any]], dict[Any, Awaitable[Any]], "futures.Future[Any]"
]
_AnyFuture = Union["asyncio.Future[Any]", "futures.Future[Any]", "_NullFuture"]
_QuietExceptions = Union[type[Exception], tuple[type[Exception], ...]]

# The attribute `coroutine` puts on its wrappers; the name is Tornado's, so
# that tools which look for it keep recognising decorated functions.
_MARKER = "__tornado_coroutine__"


class KeyReuseError(Exception):
    """Kept for compatibility; nothing raises it any more."""


class UnknownKeyError(Exception):
    """Kept for compatibility; nothing raises it any more."""


class LeakedCallbackError(Exception):
    """Kept for compatibility; nothing raises it any more."""


class BadYieldError(Exception):
    """A coroutine yielded something that is not awaitable."""


class ReturnValueIgnoredError(Exception):
    """Kept for compatibility; nothing raises it any more."""


class Return(Exception):
    """Raise ``Return(value)`` to return a value from a generator coroutine.

    A plain ``return value`` does the same; this spelling is kept for code
    written before generators could return values.
    """

    def __init__(self, value: Any = None) -> None:
        super().__init__()
        self.value = value
        # So that str() and repr() show the value.
        self.args = (value,)


class _NullFuture:
    """A stateless stand-in for a future that is already done with result None."""

    __slots__ = ()

    def result(self) -> None:
        return None

    def exception(self) -> None:
        return None

    def done(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def add_done_callback(self, fn: Callable[[Any], object]) -> None:
        fn(self)

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield


class _Moment(_NullFuture):
    """`moment`: done, yet a coroutine that yields it waits one loop iteration."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        # A bare yield makes an asyncio Task reschedule itself once.
        yield


_null_future = cast("Future[None]", _NullFuture())

moment = cast("Future[None]", _Moment())
"""Yield (or await) this to let the event loop run one iteration.

It lets other callbacks and coroutines run before this coroutine resumes;
``yield None`` means the same. In native coroutines ``await
asyncio.sleep(0)`` is the usual spelling.
"""


def _create_future() -> Future[Any]:
    future: Future[Any] = Future()
    # In asyncio debug mode a future records where it was created; the frames
    # of this module say nothing useful, so the record ends at our caller.
    trace = getattr(future, "_source_traceback", None)
    if trace:
        while trace and trace[-1].filename == __file__:
            del trace[-1]
    return future


def _resolved_future(value: Any) -> Future[Any]:
    future = _create_future()
    future.set_result(value)
    return future


def _failed_future(exc: BaseException) -> Future[Any]:
    future = _create_future()
    _settle_failure(future, exc)
    return future


def _settle_failure(future: Future[Any], exc: BaseException) -> None:
    """Fail ``future`` with ``exc``; a CancelledError cancels it, as in a Task."""
    if future.cancelled():
        if not isinstance(exc, asyncio.CancelledError):
            app_log.error("Exception after Future was cancelled", exc_info=exc)
    elif isinstance(exc, asyncio.CancelledError):
        future.cancel()
    else:
        future.set_exception(exc)


def _outcome(future: _AnyFuture) -> tuple[Optional[BaseException], Any]:
    """The ``(exception, result)`` of a done future, without raising either."""
    if future.cancelled():
        return asyncio.CancelledError(), None
    exc = future.exception()
    if exc is not None:
        return exc, None
    return None, future.result()


def is_coroutine_function(func: Any) -> bool:
    """Return whether ``func`` was made by `coroutine`.

    Native ``async def`` functions are not counted.
    """
    return getattr(func, _MARKER, False) is True


@overload
def coroutine(
    func: Callable[..., Generator[Any, Any, _T]],
) -> Callable[..., Future[_T]]: ...


@overload
def coroutine(func: Callable[..., _T]) -> Callable[..., Future[_T]]: ...


def coroutine(func: Callable[..., Any]) -> Callable[..., Future[Any]]:
    """Decorator for generator-based coroutines.

    The decorated function returns a `~squall.concurrent.Future`. When
    ``func`` returns a generator, each value it yields is waited for (see
    `convert_yielded` for what may be yielded) and sent back as the value of
    the ``yield`` expression; the future gets the generator's return value,
    or its exception. A ``func`` that is not a generator function works too:
    its return value or exception is put in an already-resolved future.

    Exceptions never escape the call itself, only the future. A
    `asyncio.CancelledError` raised by the coroutine cancels the future.
    Each call runs in a copy of the caller's `contextvars` context, kept
    for the whole life of the generator.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Future[Any]:
        ctx_run = contextvars.copy_context().run
        try:
            result = ctx_run(func, *args, **kwargs)
        except (Return, StopIteration) as e:
            return _resolved_future(e.value)
        except (Exception, asyncio.CancelledError) as e:
            return _failed_future(e)
        if not isinstance(result, Generator):
            return _resolved_future(result)
        try:
            yielded = ctx_run(next, result)
        except (Return, StopIteration) as e:
            return _resolved_future(e.value)
        except (Exception, asyncio.CancelledError) as e:
            return _failed_future(e)
        future = _create_future()
        try:
            Runner(ctx_run, result, future, yielded)
            return future
        finally:
            # An exception raised while the runner starts keeps this frame
            # alive through its traceback; this frame must then not keep the
            # future holding that exception (CPython frees it sooner).
            del future, yielded

    setattr(wrapper, _MARKER, True)
    return wrapper


class Runner:
    """Drives one generator coroutine; made by `coroutine`, not meant for direct use.

    Attributes:
        gen: the generator.
        result_future: the future the coroutine's outcome goes to; None once
            it has been delivered.
        future: the future the generator is waiting for.
        ctx_run: runs a call in the coroutine's `contextvars` context.
    """

    __slots__ = (
        "ctx_run",
        "gen",
        "result_future",
        "future",
        "running",
        "finished",
        "io_loop",
        "_loop",
        "_context",
    )

    def __init__(
        self,
        ctx_run: Callable[..., Any],
        gen: Generator[Any, Any, Any],
        result_future: Future[Any],
        first_yielded: _Yieldable,
    ) -> None:
        self.ctx_run = ctx_run
        self.gen = gen
        self.result_future: Optional[Future[Any]] = result_future
        self.future: Optional[_AnyFuture] = _null_future
        self.running = False
        self.finished = False
        self.io_loop = IOLoop.current()
        self._loop = result_future.get_loop()
        # With the Context itself at hand, the loop can enter it for us when
        # it runs our callbacks, instead of a copy of whatever is current.
        context = getattr(ctx_run, "__self__", None)
        self._context = context if isinstance(context, contextvars.Context) else None
        # Nothing else may hold this runner while the generator waits on a
        # future that only the generator references (a cycle the garbage
        # collector would reclaim); the result future keeps it alive.
        result_future.add_done_callback(self._keep_alive)
        ready = ctx_run(self.handle_yield, first_yielded)
        # As in coroutine(): no reference cycle through this frame.
        del gen, result_future, first_yielded
        if ready:
            ctx_run(self.run)

    def _keep_alive(self, _future: Future[Any]) -> None:
        pass

    def run(self) -> None:
        """Resume the generator for as long as what it waits on is ready."""
        if self.running or self.finished:
            return
        self.running = True
        try:
            while True:
                future = self.future
                if future is None or not future.done():
                    return
                self.future = None
                exc, value = _outcome(future)
                future = None
                # Sent and thrown outside any except clause, so that an
                # exception raised by the generator gets no stray __context__.
                try:
                    if exc is None:
                        yielded = self.gen.send(value)
                    else:
                        yielded = self.gen.throw(exc)
                except (Return, StopIteration) as e:
                    self._finish(e.value, None)
                    return
                except (Exception, asyncio.CancelledError) as e:
                    self._finish(None, e)
                    return
                finally:
                    # Break exception -> traceback -> this frame -> exception.
                    exc = value = None
                ready = self.handle_yield(yielded)
                # The frames of a coroutine that fails while starting stay
                # reachable from its exception, this one included: it must
                # not hold the future that holds that exception.
                yielded = None
                if not ready:
                    return
        finally:
            self.running = False

    def handle_yield(self, yielded: _Yieldable) -> bool:
        """Start waiting for ``yielded``; True if it is ready already."""
        try:
            future: _AnyFuture = convert_yielded(yielded)
        except Exception as e:
            self.future = _failed_future(e)
            return True
        if future is moment:
            self.future = future
            if self._context is not None:
                self._loop.call_soon(self.run, context=self._context)
            else:
                self._loop.call_soon(self.ctx_run, self.run)
            return False
        if future.done():
            self.future = future
            return True
        if isinstance(future, futures.Future):
            future = asyncio.wrap_future(future, loop=self._loop)
        assert isinstance(future, asyncio.Future)
        self.future = future
        if self._context is not None:
            future.add_done_callback(self._resume, context=self._context)
        else:
            future.add_done_callback(self._resume_in_context)
        return False

    def _resume(self, _future: Future[Any]) -> None:
        # On Python 3.12+ a traceback through run() keeps this frame, and so
        # the future, alive: drop it so that future -> exception -> traceback
        # -> frame -> future is no cycle left for the garbage collector.
        del _future
        self.run()

    def _resume_in_context(self, _future: Future[Any]) -> None:
        del _future
        self.ctx_run(self.run)

    def handle_exception(
        self,
        typ: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[types.TracebackType],
    ) -> bool:
        """Throw ``value`` into a suspended generator; False if it is not suspended."""
        if self.running or self.finished or value is None:
            return False
        self.future = _failed_future(value.with_traceback(tb))
        self.ctx_run(self.run)
        return True

    def _finish(self, value: Any, exc: Optional[BaseException]) -> None:
        self.finished = True
        self.future = _null_future
        result_future = self.result_future
        self.result_future = None
        assert result_future is not None
        result_future.remove_done_callback(self._keep_alive)
        if exc is not None:
            _settle_failure(result_future, exc)
        elif not result_future.cancelled():
            result_future.set_result(value)


@functools.singledispatch
def convert_yielded(yielded: _Yieldable) -> Future[Any]:
    """Turn something a coroutine may yield into a future.

    Accepted: None and `moment` (wait one loop iteration), futures (asyncio
    or `concurrent.futures`, returned unchanged), awaitables such as native
    coroutines (wrapped in a Task), and lists or dicts of those (see
    `multi`). This is a `functools.singledispatch` function: register a
    converter for another type with ``convert_yielded.register``.

    Raises:
        BadYieldError: for anything else.
    """
    if yielded is None or yielded is moment:
        return moment
    if yielded is _null_future:
        return _null_future
    if isinstance(yielded, asyncio.Future):
        return yielded
    if isinstance(yielded, (list, dict)):
        return multi(yielded)
    if isinstance(yielded, futures.Future):
        return cast("Future[Any]", yielded)
    if inspect.isawaitable(yielded):
        return _held_future(yielded)
    raise BadYieldError(f"yielded unknown object {yielded!r}")


def multi(
    children: Union[list[Any], dict[Any, Any]],
    quiet_exceptions: _QuietExceptions = (),
) -> Future[Any]:
    """Wait for several awaitables at once.

    ``children`` is a list or a dict of anything `convert_yielded` accepts;
    the result is a list of their results in the same order, or a dict with
    the same keys. All of them are waited for even if some fail. The first
    failure (in ``children`` order) becomes the exception of the result;
    any later one is logged to ``squall.application`` unless it is an
    instance of ``quiet_exceptions``. A cancelled child fails the result
    with `asyncio.CancelledError` but does not cancel it, as with
    `asyncio.gather`.
    """
    return multi_future(children, quiet_exceptions=quiet_exceptions)


Multi = multi


def multi_future(
    children: Union[list[Any], dict[Any, Any]],
    quiet_exceptions: _QuietExceptions = (),
) -> Future[Any]:
    """The same as `multi`; the older name."""
    keys: Optional[list[Any]]
    values: Iterable[Any]
    if isinstance(children, dict):
        keys = list(children)
        values = children.values()
    else:
        keys = None
        values = children
    children_futures: list[_AnyFuture] = []
    for child in values:
        converted: _AnyFuture = convert_yielded(child)
        if isinstance(converted, futures.Future) and not converted.done():
            converted = asyncio.wrap_future(converted)
        children_futures.append(converted)
    result = _create_future()
    pending = {f for f in children_futures if not f.done()}
    if not pending:
        _gather_outcomes(result, keys, children_futures, quiet_exceptions)
        return result

    def on_child_done(child: Future[Any]) -> None:
        pending.discard(child)
        if not pending:
            _gather_outcomes(result, keys, children_futures, quiet_exceptions)

    for child in pending:
        cast("Future[Any]", child).add_done_callback(on_child_done)
    return result


def _gather_outcomes(
    result: Future[Any],
    keys: Optional[list[Any]],
    children: list[_AnyFuture],
    quiet_exceptions: _QuietExceptions,
) -> None:
    values = []
    for child in children:
        exc, value = _outcome(child)
        if exc is None:
            values.append(value)
        elif not result.done():
            # Like asyncio.gather: a cancelled child is an error, and the
            # aggregate itself stays uncancelled.
            result.set_exception(exc)
        elif not isinstance(exc, asyncio.CancelledError) and not isinstance(exc, quiet_exceptions):
            app_log.error("Multiple exceptions in yield list", exc_info=exc)
    if not result.done():
        result.set_result(dict(zip(keys, values, strict=True)) if keys is not None else values)


def maybe_future(x: Any) -> Future[Any]:
    """Return ``x`` if it is a future, else a future already resolved to ``x``.

    Deprecated: it handles futures only, not other awaitables. Check for the
    plain values you expect instead and yield (or await) anything else.
    """
    if is_future(x):
        return cast("Future[Any]", x)
    return _resolved_future(x)


def with_timeout(
    timeout: Union[float, datetime.timedelta],
    future: _Yieldable,
    quiet_exceptions: _QuietExceptions = (),
    *,
    message: Union[None, str, Callable[[], str]] = None,
) -> Future[Any]:
    """Wrap ``future`` in a future that fails with `TimeoutError` at ``timeout``.

    Args:
        timeout: a deadline on the `~squall.ioloop.IOLoop.time` clock, or a
            `datetime.timedelta` from now.
        future: anything `convert_yielded` accepts.
        quiet_exceptions: if ``future`` fails after the timeout, its
            exception is logged unless it is an instance of these.
        message: the `TimeoutError` message (default ``"Timeout"``), or a
            function called only on timeout to make it.

    The wrapped operation is not cancelled on timeout; it keeps running.
    """
    inner: _AnyFuture = convert_yielded(future)
    result = _create_future()
    if inner.done():
        _copy_outcome(inner, result)
        return result
    if isinstance(inner, futures.Future):
        inner = asyncio.wrap_future(inner, loop=result.get_loop())
    waited = cast("Future[Any]", inner)
    io_loop = IOLoop.current()

    def log_late_failure(done: Future[Any]) -> None:
        exc, _ = _outcome(done)
        if exc is None or isinstance(exc, asyncio.CancelledError):
            return
        if not isinstance(exc, quiet_exceptions):
            app_log.error("Exception in Future %r after timeout", done, exc_info=exc)

    def on_timeout() -> None:
        if not result.done():
            text = message() if callable(message) else message
            result.set_exception(TimeoutError("Timeout" if text is None else text))
        waited.add_done_callback(log_late_failure)

    handle = io_loop.add_timeout(timeout, on_timeout)

    def on_done(done: Future[Any]) -> None:
        io_loop.remove_timeout(handle)
        _copy_outcome(done, result)

    waited.add_done_callback(on_done)
    return result


def sleep(duration: float) -> Future[None]:
    """Return a future that resolves (to None) after ``duration`` seconds.

    ``yield gen.sleep(0.5)`` in a coroutine; unlike `time.sleep` it does not
    block the event loop.
    """
    future = _create_future()
    IOLoop.current().call_later(duration, _resolve_if_pending, future)
    return future


def _resolve_if_pending(future: Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


class WaitIterator:
    """Deliver the results of several futures in the order they finish.

    Pass the futures positionally or by keyword (not both). Each `next`
    returns a future for the next result to arrive; afterwards
    ``current_index`` holds its position or keyword and ``current_future`` the
    future it came from. Futures already done are delivered first, in the
    order given. Use it in a loop::

        iterator = WaitIterator(first, second)
        while not iterator.done():
            try:
                result = yield iterator.next()
            except Exception as e:
                print(f"{iterator.current_index} failed: {e}")

    or with ``async for result in WaitIterator(...)``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args and kwargs:
            raise ValueError("You must provide args or kwargs, not both")
        entries: list[tuple[Union[int, str], Any]] = (
            list(kwargs.items()) if kwargs else list(enumerate(args))
        )
        self.current_index: Optional[Union[int, str]] = None
        self.current_future: Optional[Any] = None
        self._undelivered = len(entries)
        self._ready: deque[tuple[Union[int, str], Any, _AnyFuture]] = deque()
        self._waiter: Optional[Future[Any]] = None
        for index, given in entries:
            converted: _AnyFuture = convert_yielded(given)
            source = given if is_future(given) else converted
            if converted.done():
                self._on_done(index, source, converted)
                continue
            if isinstance(converted, futures.Future):
                converted = asyncio.wrap_future(converted)
            cast("Future[Any]", converted).add_done_callback(
                functools.partial(self._on_done, index, source)
            )

    def done(self) -> bool:
        """Return True once every result has been delivered.

        ``current_index`` and ``current_future`` are reset to None then.
        """
        if self._undelivered:
            return False
        self.current_index = self.current_future = None
        return True

    def next(self) -> Future[Any]:
        """Return a future for the next result to arrive."""
        waiter = _create_future()
        if self._ready:
            self._deliver(waiter, *self._ready.popleft())
        else:
            self._waiter = waiter
        return waiter

    def _on_done(self, index: Union[int, str], source: Any, done: _AnyFuture) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            self._deliver(waiter, index, source, done)
        else:
            self._ready.append((index, source, done))

    def _deliver(
        self, waiter: Future[Any], index: Union[int, str], source: Any, done: _AnyFuture
    ) -> None:
        self._waiter = None
        self._undelivered -= 1
        self.current_index = index
        self.current_future = source
        _copy_outcome(done, waiter)

    def __aiter__(self) -> WaitIterator:
        return self

    def __anext__(self) -> Future[Any]:
        if self.done():
            raise StopAsyncIteration()
        return self.next()
