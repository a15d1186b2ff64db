"""Coroutine-aware synchronization primitives: Condition, Event, Semaphore and Lock.

These mirror the classes of :mod:`asyncio` but follow Tornado's API: waiting
methods return a :class:`~asyncio.Future` at once (so they can be called from
plain callbacks as well as awaited), and accept an optional ``timeout`` that is
either an absolute deadline in :meth:`IOLoop.time() <squall.ioloop.IOLoop.time>`
units or a :class:`datetime.timedelta` relative to now.

None of these classes is thread-safe: use them from the thread that runs the
event loop.
"""

from __future__ import annotations

import asyncio
import collections
import datetime
import heapq
import itertools
import numbers
import types
from collections.abc import Callable
from typing import Any, ClassVar, Union

from squall.ioloop import IOLoop

__all__ = ["Condition", "Event", "Semaphore", "BoundedSemaphore", "Lock"]

_Timeout = Union[float, datetime.timedelta]

# A sweep of timed-out waiters runs once more than this many have timed out
# and they make up at least half of the waiter queue, so each sweep costs
# O(1) per timeout it clears and dead waiters never outnumber live ones by
# more than this constant.
_SWEEP_THRESHOLD = 100


def _schedule_timeout(
    loop: asyncio.AbstractEventLoop, timeout: _Timeout, callback: Callable[[], None]
) -> asyncio.TimerHandle:
    """Arranges for ``callback`` to run on ``loop`` when ``timeout`` expires.

    A timedelta is relative to now; a number is a deadline on the
    ``IOLoop.time()`` clock (wall-clock time), which is not the asyncio
    loop's own monotonic clock, so it is turned into a delay.
    """
    if isinstance(timeout, datetime.timedelta):
        return loop.call_later(timeout.total_seconds(), callback)
    if isinstance(timeout, numbers.Real) and not isinstance(timeout, bool):
        return loop.call_later(float(timeout) - IOLoop.current().time(), callback)
    raise _bad_deadline(timeout)


def _loop_deadline(loop: asyncio.AbstractEventLoop, timeout: _Timeout) -> float:
    """``timeout`` as a time on ``loop``'s own clock (see `_schedule_timeout`)."""
    if isinstance(timeout, datetime.timedelta):
        return loop.time() + timeout.total_seconds()
    if isinstance(timeout, numbers.Real) and not isinstance(timeout, bool):
        return loop.time() + (float(timeout) - IOLoop.current().time())
    raise _bad_deadline(timeout)


def _bad_deadline(timeout: object) -> TypeError:
    # The words of IOLoop.add_timeout, through which Tornado's primitives
    # schedule their timeouts: one message for a bad deadline anywhere.
    return TypeError(f"Unsupported deadline {timeout!r}")


# Orders waiters with the same deadline by when they began to wait.
_sequence = itertools.count()


def _cancel_on_done(future: asyncio.Future[Any], handle: asyncio.TimerHandle) -> None:
    """Cancels the timer ``handle`` as soon as ``future`` resolves."""
    future.add_done_callback(lambda _: handle.cancel())


class _TimeoutGarbageCollector:
    """Base for primitives that keep a FIFO of waiter futures.

    A waiter that times out stays in the deque until it reaches the front (the
    release paths skip finished waiters) or until enough of them accumulate to
    make a sweep worthwhile; see ``_SWEEP_THRESHOLD``.
    """

    __slots__ = ("_waiters", "_timeouts")

    def __init__(self) -> None:
        self._waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._timeouts = 0

    def _garbage_collect(self) -> None:
        # Called once per waiter that timed out.
        self._timeouts += 1
        if self._timeouts > _SWEEP_THRESHOLD and 2 * self._timeouts >= len(self._waiters):
            self._timeouts = 0
            self._waiters = collections.deque(w for w in self._waiters if not w.done())


class Condition(_TimeoutGarbageCollector):
    """A condition lets coroutines wait until another one notifies them.

    Unlike :class:`threading.Condition` there is no underlying lock to hold
    around :meth:`wait` and :meth:`notify`.

    Example::

        condition = Condition()

        async def waiter():
            await condition.wait()
            print("notified")

        async def notifier():
            condition.notify()
    """

    # Waits with a timeout share one loop timer, armed for the earliest
    # deadline (``_deadlines`` is a heap of (loop time, sequence, waiter)):
    # a long poll's wait then costs no timer of its own, and waking it no
    # done callback (a loop callback per waiter) to cancel one. Entries of
    # waiters that are done already are dropped when they come up, or all
    # at once when the heap outgrows the live waiters (`_prune`).
    __slots__ = ("_deadlines", "_timer", "_timer_when", "_timer_loop")

    def __init__(self) -> None:
        super().__init__()
        self._deadlines: list[tuple[float, int, asyncio.Future[bool]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_when = 0.0
        # The loop the timer is on: a condition kept across event loops
        # (one asyncio.run after another) arms the timer on the new one.
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        if self._waiters:
            return f"<{type(self).__name__} waiters[{len(self._waiters)}]>"
        return f"<{type(self).__name__}>"

    def wait(self, timeout: _Timeout | None = None) -> asyncio.Future[bool]:
        """Waits for :meth:`notify`.

        Args:
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Returns:
            A future that resolves to True when notified, or to False if the
            timeout expired first.
        """
        waiter: asyncio.Future[bool] = asyncio.Future()
        if timeout is not None:
            loop = waiter.get_loop()
            when = _loop_deadline(loop, timeout)
            deadlines = self._deadlines
            if len(deadlines) > 2 * len(self._waiters) + 64:
                self._prune()
            heapq.heappush(deadlines, (when, next(_sequence), waiter))
            timer = self._timer
            if timer is None or when < self._timer_when or loop is not self._timer_loop:
                if timer is not None:
                    timer.cancel()
                self._arm(loop, when)
        self._waiters.append(waiter)
        return waiter

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._timer_when = when
        self._timer_loop = loop
        self._timer = loop.call_at(when, self._expire)

    def _expire(self) -> None:
        """The timer: every waiter whose deadline has come resolves to False."""
        self._timer = None
        loop = self._timer_loop
        deadlines = self._deadlines
        if loop is None or not deadlines:
            return
        # Never before the deadline the timer was armed for, whatever the
        # loop's clock resolution.
        limit = max(loop.time(), self._timer_when)
        while deadlines and deadlines[0][0] <= limit:
            waiter = heapq.heappop(deadlines)[2]
            # (A waiter of a loop that is gone is only dropped.)
            if not waiter.done() and waiter.get_loop() is loop:
                waiter.set_result(False)
                self._garbage_collect()
        while deadlines and (deadlines[0][2].done() or deadlines[0][2].get_loop() is not loop):
            heapq.heappop(deadlines)
        if deadlines:
            self._arm(loop, deadlines[0][0])

    def _prune(self) -> None:
        """Drops the deadlines of waiters already done."""
        live = [entry for entry in self._deadlines if not entry[2].done()]
        heapq.heapify(live)
        self._deadlines = live

    def notify(self, n: int = 1) -> None:
        """Wakes up to ``n`` waiters, oldest first."""
        woken: list[asyncio.Future[Any]] = []
        waiters = self._waiters
        while n > 0 and waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip those that timed out or were cancelled
                n -= 1
                woken.append(waiter)
        if not waiters and self._deadlines:
            # Nobody waits any more: no deadline is left to keep.
            self._deadlines = []
            timer = self._timer
            if timer is not None:
                self._timer = None
                timer.cancel()
        # Resolve only after the selection so that a waiter's callback that
        # re-enters notify() sees a consistent deque.
        for waiter in woken:
            waiter.set_result(True)

    def notify_all(self) -> None:
        """Wakes every waiter."""
        self.notify(len(self._waiters))


class Event:
    """A flag that coroutines can wait on until it is set.

    The event starts clear. :meth:`set` wakes every waiter and makes later
    :meth:`wait` calls return at once, until :meth:`clear` is called.
    """

    __slots__ = ("_value", "_waiters")

    def __init__(self) -> None:
        self._value = False
        self._waiters: set[asyncio.Future[None]] = set()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'set' if self._value else 'clear'}>"

    def is_set(self) -> bool:
        """Returns True if the flag is set."""
        return self._value

    def set(self) -> None:
        """Sets the flag and wakes every waiter."""
        if self._value:
            return
        self._value = True
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Clears the flag, so that later :meth:`wait` calls block."""
        self._value = False

    def wait(self, timeout: _Timeout | None = None) -> asyncio.Future[None]:
        """Waits until the flag is set.

        Args:
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Returns:
            A future that resolves once the flag is set.

        Raises:
            TimeoutError: (through the future) if the timeout expires first.
        """
        waiter: asyncio.Future[None] = asyncio.Future()
        if self._value:
            waiter.set_result(None)
            return waiter
        waiters = self._waiters
        waiters.add(waiter)
        if timeout is None:
            # Forget a waiter its owner cancelled.
            waiter.add_done_callback(self._forget)
            return waiter

        def on_timeout() -> None:
            if not waiter.done():
                # "Timeout", as gen.with_timeout says: a program may show it.
                waiter.set_exception(TimeoutError("Timeout"))

        handle = _schedule_timeout(waiter.get_loop(), timeout, on_timeout)

        def on_done(_: asyncio.Future[None]) -> None:
            handle.cancel()
            self._waiters.discard(waiter)

        waiter.add_done_callback(on_done)
        return waiter

    def _forget(self, waiter: asyncio.Future[None]) -> None:
        self._waiters.discard(waiter)


class _ReleasingContextManager:
    """What a successful acquire resolves to: ``with`` releases the semaphore."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Semaphore) -> None:
        self._obj = obj

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: types.TracebackType | None,
    ) -> None:
        self._obj.release()


class _AsyncWith:
    # What Semaphore and Lock share as context managers: ``async with``
    # releases at the end (each acquires in its own __aenter__); a plain
    # ``with`` is refused, since acquiring may have to wait.
    __slots__ = ()

    # Tornado's words (a subclass of Semaphore says "Semaphore" too), which
    # tests of code misusing the primitives match.
    _PLAIN_WITH: ClassVar[str] = "Use 'async with' instead of 'with' for Semaphore"

    def release(self) -> None:
        raise NotImplementedError()

    def __enter__(self) -> None:
        raise RuntimeError(self._PLAIN_WITH)

    def __exit__(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.release()


class Semaphore(_AsyncWith, _TimeoutGarbageCollector):
    """A counter of permits that coroutines acquire and release.

    :meth:`acquire` takes a permit, waiting while none is left; :meth:`release`
    gives one back and wakes the oldest waiter. Use it as ``async with sem:``,
    or as ``with (yield sem.acquire()):`` in a ``gen.coroutine``.

    Args:
        value: the initial number of permits (not negative).

    Raises:
        ValueError: if ``value`` is negative.
    """

    __slots__ = ("_value", "_releaser")

    def __init__(self, value: int = 1) -> None:
        super().__init__()
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._value = value
        # Stateless, so one instance serves every acquire.
        self._releaser = _ReleasingContextManager(self)

    def __repr__(self) -> str:
        state = "locked" if self._value == 0 else f"unlocked,value:{self._value}"
        if self._waiters:
            state += f",waiters:{len(self._waiters)}"
        # object's own repr with the state after it, as on Tornado.
        return f"<{object.__repr__(self)[1:-1]} [{state}]>"

    def release(self) -> None:
        """Gives a permit back, waking the oldest waiter if there is one."""
        self._value += 1
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():  # skip those that timed out or were cancelled
                self._value -= 1
                waiter.set_result(self._releaser)
                return

    def acquire(self, timeout: _Timeout | None = None) -> asyncio.Future[_ReleasingContextManager]:
        """Takes a permit, waiting until one is free.

        Args:
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Returns:
            A future that resolves, once a permit is taken, to an object whose
            ``with`` block releases it.

        Raises:
            TimeoutError: (through the future) if the timeout expires first;
                no permit is taken then.
        """
        waiter: asyncio.Future[_ReleasingContextManager] = asyncio.Future()
        if self._value > 0:
            self._value -= 1
            waiter.set_result(self._releaser)
            return waiter
        self._waiters.append(waiter)
        if timeout is not None:

            def on_timeout() -> None:
                if not waiter.done():
                    waiter.set_exception(TimeoutError())
                    self._garbage_collect()

            _cancel_on_done(waiter, _schedule_timeout(waiter.get_loop(), timeout, on_timeout))
        return waiter

    async def __aenter__(self) -> None:
        waiter = self.acquire()
        try:
            await waiter
        except asyncio.CancelledError:
            # The permit may have been granted in the same loop iteration the
            # task was cancelled; give it back or it would be lost.
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self.release()
            raise


class BoundedSemaphore(Semaphore):
    """A :class:`Semaphore` that refuses to be released above its initial value.

    Raises:
        ValueError: from :meth:`release`, when it would exceed the initial value.
    """

    __slots__ = ("_initial_value",)

    def __init__(self, value: int = 1) -> None:
        super().__init__(value=value)
        self._initial_value = value

    def release(self) -> None:
        """Gives a permit back; raises ValueError if none is taken."""
        if self._value >= self._initial_value:
            # Tornado's words: tests of code that over-releases match them.
            raise ValueError("Semaphore released too many times")
        super().release()


class Lock(_AsyncWith):
    """A mutual-exclusion lock for coroutines.

    Acquire it with ``async with lock:`` (or ``with (yield lock.acquire()):``
    in a ``gen.coroutine``). Waiters get the lock in the order they asked.
    """

    __slots__ = ("_block",)

    _PLAIN_WITH: ClassVar[str] = "Use `async with` instead of `with` for Lock"

    def __init__(self) -> None:
        self._block = BoundedSemaphore(value=1)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} _block={self._block!r}>"

    def acquire(self, timeout: _Timeout | None = None) -> asyncio.Future[_ReleasingContextManager]:
        """Takes the lock, waiting until it is free: `Semaphore.acquire` on a
        semaphore of one (the same ``timeout``, future and `TimeoutError`)."""
        return self._block.acquire(timeout)

    def release(self) -> None:
        """Releases the lock, handing it to the oldest waiter if there is one.

        Raises:
            RuntimeError: if the lock is not held.
        """
        try:
            self._block.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    async def __aenter__(self) -> None:
        await self._block.__aenter__()
