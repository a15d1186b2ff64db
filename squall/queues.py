"""Asynchronous queues for coroutines: Queue, PriorityQueue and LifoQueue.

Like :mod:`asyncio`'s queues, but with Tornado's API: :meth:`Queue.get`,
:meth:`Queue.put` and :meth:`Queue.join` return a future at once and take an
optional ``timeout`` (a deadline in ``IOLoop.time()`` units or a
:class:`datetime.timedelta`). Not thread-safe.

Subclasses change the storage order by overriding three hooks: ``_init``
(create ``self._queue``), ``_put(item)`` and ``_get()``; ``qsize`` reads
``len(self._queue)``.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
from typing import Any, Generic, TypeVar

from squall.locks import _SWEEP_THRESHOLD, Event, _cancel_on_done, _schedule_timeout, _Timeout

__all__ = ["Queue", "PriorityQueue", "LifoQueue", "QueueFull", "QueueEmpty"]

_T = TypeVar("_T")


class QueueEmpty(Exception):
    """Raised by :meth:`Queue.get_nowait` when the queue has no items."""


class QueueFull(Exception):
    """Raised by :meth:`Queue.put_nowait` when the queue is at its maxsize."""


class _QueueIterator(Generic[_T]):
    """What ``async for item in queue`` iterates with: each step is a get()."""

    __slots__ = ("_q",)

    def __init__(self, q: Queue[_T]) -> None:
        self._q = q

    def __anext__(self) -> asyncio.Future[_T]:
        return self._q.get()


class Queue(Generic[_T]):
    """A first-in, first-out queue that coroutines put to and get from.

    Args:
        maxsize: the most items the queue holds before :meth:`put` waits;
            0 means no limit.

    Raises:
        TypeError: if ``maxsize`` is None.
        ValueError: if ``maxsize`` is negative.

    Example::

        q = Queue(maxsize=2)

        async def consumer():
            async for item in q:
                try:
                    print(item)
                finally:
                    q.task_done()
    """

    # Set by _init(); the storage the _get/_put hooks work on.
    _queue: Any

    def __init__(self, maxsize: int = 0) -> None:
        if maxsize is None:
            raise TypeError("maxsize can't be None")
        if maxsize < 0:
            raise ValueError("maxsize can't be negative")
        self._maxsize = maxsize
        self._init()
        self._getters: collections.deque[asyncio.Future[_T]] = collections.deque()
        self._putters: collections.deque[tuple[_T, asyncio.Future[None]]] = collections.deque()
        self._unfinished_tasks = 0
        self._finished = Event()
        self._finished.set()
        # Getters and putters that timed out since the last sweep.
        self._timeouts = 0

    @property
    def maxsize(self) -> int:
        """The number of items allowed in the queue (0 for no limit)."""
        return self._maxsize

    def qsize(self) -> int:
        """Returns the number of items in the queue."""
        return len(self._queue)

    def empty(self) -> bool:
        """Returns True if the queue holds no items."""
        return not self._queue

    def full(self) -> bool:
        """Returns True if the queue holds maxsize items (never, without a maxsize)."""
        if self._maxsize == 0:
            return False
        return self.qsize() >= self._maxsize

    def put(self, item: _T, timeout: _Timeout | None = None) -> asyncio.Future[None]:
        """Puts an item into the queue, waiting while it is full.

        Args:
            item: the item.
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Returns:
            A future that resolves once the item is in the queue.

        Raises:
            TimeoutError: (through the future) if the timeout expires first;
                the item is not put then.
        """
        future: asyncio.Future[None] = asyncio.Future()
        try:
            self.put_nowait(item)
        except QueueFull:
            self._putters.append((item, future))
            self._set_timeout(future, timeout)
        else:
            future.set_result(None)
        return future

    def put_nowait(self, item: _T) -> None:
        """Puts an item into the queue without waiting.

        A waiting getter receives it; its coroutine resumes on a later loop
        iteration.

        Raises:
            QueueFull: if the queue is full.
        """
        self._consume_expired()
        if self._getters:
            getter = self._getters.popleft()
            self._put_internal(item)
            getter.set_result(self._get())
        elif self.full():
            raise QueueFull(f"queue is full (maxsize={self._maxsize!r})")
        else:
            self._put_internal(item)

    def get(self, timeout: _Timeout | None = None) -> asyncio.Future[_T]:
        """Removes and returns an item, waiting until one is available.

        Args:
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Returns:
            A future that resolves to the item.

        Raises:
            TimeoutError: (through the future) if the timeout expires first.
        """
        future: asyncio.Future[_T] = asyncio.Future()
        try:
            future.set_result(self.get_nowait())
        except QueueEmpty:
            self._getters.append(future)
            self._set_timeout(future, timeout)
        return future

    def get_nowait(self) -> _T:
        """Removes and returns an item without waiting.

        If a putter is waiting, its item enters the queue and it is woken.

        Raises:
            QueueEmpty: if the queue has no items.
        """
        self._consume_expired()
        if self._putters:
            item, putter = self._putters.popleft()
            self._put_internal(item)
            putter.set_result(None)
            return self._get()
        if self.qsize():
            return self._get()
        raise QueueEmpty("queue is empty")

    def task_done(self) -> None:
        """Marks one item taken from the queue as processed.

        Each :meth:`get` is meant to be matched by one ``task_done``; when every
        item put has been marked, :meth:`join` returns.

        Raises:
            ValueError: if called more times than items were put.
        """
        if self._unfinished_tasks <= 0:
            # Tornado's words, which tests of consumers match.
            raise ValueError("task_done() called too many times")
        self._unfinished_tasks -= 1
        if self._unfinished_tasks == 0:
            self._finished.set()

    def join(self, timeout: _Timeout | None = None) -> asyncio.Future[None]:
        """Waits until every item put has been marked with :meth:`task_done`.

        Args:
            timeout: a deadline (``IOLoop.time()`` units) or a timedelta.

        Raises:
            TimeoutError: (through the future) if the timeout expires first.
        """
        return self._finished.wait(timeout)

    def __aiter__(self) -> _QueueIterator[_T]:
        return _QueueIterator(self)

    # Hooks for subclasses that store items in another order.

    def _init(self) -> None:
        self._queue = collections.deque()

    def _get(self) -> _T:
        item: _T = self._queue.popleft()
        return item

    def _put(self, item: _T) -> None:
        self._queue.append(item)

    # Internals.

    def _put_internal(self, item: _T) -> None:
        self._unfinished_tasks += 1
        self._finished.clear()
        self._put(item)

    def _set_timeout(self, future: asyncio.Future[Any], timeout: _Timeout | None) -> None:
        if timeout is None:
            return

        def on_timeout() -> None:
            if not future.done():
                future.set_exception(TimeoutError())
                self._timed_out()

        _cancel_on_done(future, _schedule_timeout(future.get_loop(), timeout, on_timeout))

    def _timed_out(self) -> None:
        # Expired waiters are dropped lazily from the front by
        # _consume_expired; this sweep bounds how many can pile up behind a
        # waiter that stays live.
        self._timeouts += 1
        if self._timeouts > _SWEEP_THRESHOLD and 2 * self._timeouts >= len(self._getters) + len(
            self._putters
        ):
            self._timeouts = 0
            self._getters = collections.deque(g for g in self._getters if not g.done())
            self._putters = collections.deque(p for p in self._putters if not p[1].done())

    def _consume_expired(self) -> None:
        # Drop waiters at the front that timed out or were cancelled.
        putters = self._putters
        while putters and putters[0][1].done():
            putters.popleft()
        getters = self._getters
        while getters and getters[0].done():
            getters.popleft()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} at {hex(id(self))} {self._format()}>"

    def __str__(self) -> str:
        return f"<{type(self).__name__} {self._format()}>"

    def _format(self) -> str:
        parts = [f"maxsize={self._maxsize!r}"]
        if getattr(self, "_queue", None):
            parts.append(f"queue={self._queue!r}")
        if self._getters:
            parts.append(f"getters[{len(self._getters)}]")
        if self._putters:
            parts.append(f"putters[{len(self._putters)}]")
        if self._unfinished_tasks:
            parts.append(f"tasks={self._unfinished_tasks}")
        return " ".join(parts)


class PriorityQueue(Queue[_T]):
    """A :class:`Queue` that hands out its smallest item first.

    Items are usually ``(priority, data)`` tuples::

        q = PriorityQueue()
        q.put((1, "medium"))
        q.put((0, "high"))
        q.get_nowait()  # (0, "high")
    """

    def _init(self) -> None:
        self._queue = []

    def _put(self, item: _T) -> None:
        heapq.heappush(self._queue, item)

    def _get(self) -> _T:
        item: _T = heapq.heappop(self._queue)
        return item


class LifoQueue(Queue[_T]):
    """A :class:`Queue` that hands out its most recently put item first."""

    def _init(self) -> None:
        self._queue = []

    def _put(self, item: _T) -> None:
        self._queue.append(item)

    def _get(self) -> _T:
        item: _T = self._queue.pop()
        return item
