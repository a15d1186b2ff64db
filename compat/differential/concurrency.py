"""Tornado's coroutine primitives and Squall's, running the same Hypothesis-chosen programs.

Run by ``make differential`` in ``.venv-differential`` (Tornado 6.6.1 and
Squall both importable): ``python compat/differential/concurrency.py
--examples 500``. A program is two to four tasks over one of each shared
object (a queue of a chosen class and size, a lock, a semaphore and a
bounded one, an event, a condition). Each task is an ``async def`` or a
``gen.coroutine`` generator that runs a list of steps: puts and gets with
and without timeouts, ``join`` and ``task_done``; acquiring and releasing
(awaited, or with ``async with`` around a sleep); setting, clearing and
waiting on the event; waiting on and notifying the condition;
``gen.sleep``, ``gen.moment``, ``gen.with_timeout``, ``gen.multi`` and
``gen.WaitIterator`` around waits; cancelling another task; callbacks
through ``IOLoop.add_callback`` and ``call_later``, a timeout taken back
with ``remove_timeout`` before or after it is due, and a
``PeriodicCallback`` that stops itself after a few runs (each run a plain
call, or a coroutine that outlasts its period).

Both run on an asyncio loop whose clock is virtual: when nothing is ready,
it moves to the next timer at once, and ``time.time`` (the ``IOLoop.time``
clock that absolute deadlines are on) reads the same virtual clock. Every
step's outcome (its value or its exception's class name) is recorded in
the order it happens, with the virtual time; so are each task's end, a
callback's run, and, when every task waits forever, the program's being
stuck. The two traces, the objects' states after them and how the
programs ended must be the same. Timeouts and sleeps are distinct lengths
(no two timers are due at one instant), and an Event's waiters, a set on
both, wake in the order they came (see `run`), so that the order does not
depend on how a loop breaks ties or where a future was allocated.

The differences Squall keeps on purpose are named below, each as a change
to Tornado that makes it do what Squall does; tests/COMPAT.md lists them
for users. A program whose runs differ is explained when Tornado so
changed runs it as Squall did. Anything else is printed with the smallest
program Hypothesis finds, and the run exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import logging
import selectors
import sys
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any, Optional

import tornado.gen as t_gen
import tornado.ioloop as t_ioloop
import tornado.locks as t_locks
import tornado.queues as t_queues
from hunt import hunt
from hypothesis import given
from hypothesis import strategies as st

import squall.gen as s_gen
import squall.ioloop as s_ioloop
import squall.locks as s_locks
import squall.queues as s_queues

# The virtual clock's value, as time.time() reads it, when a program starts:
# 0, so that a deadline taken apart again (Tornado's call_at gives asyncio
# a delay, when - time()) loses no more than an ulp of a small number.
EPOCH = 0.0
# A program that has not ended by this virtual time, or after this many
# loop turns, is cut short (and recorded as such: the same on both sides).
VIRTUAL_LIMIT = 1_000.0
TURN_LIMIT = 20_000

TRACE_BOUND = 400


class _Stuck(Exception):
    """Every task waits and no timer is due: the program can go no further."""


class _VirtualSelector(selectors.BaseSelector):
    """A selector with nothing to wait on: a select moves the loop's clock."""

    def __init__(self, loop: VirtualLoop) -> None:
        self._loop = loop
        self._map: dict[Any, selectors.SelectorKey] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = selectors.SelectorKey(fileobj, id(fileobj), events, data)
        self._map[fileobj] = key
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._map.pop(fileobj)

    def select(self, timeout: Optional[float] = None) -> list[Any]:
        loop = self._loop
        loop.turns += 1
        if loop.turns > TURN_LIMIT:
            raise _Stuck("turns")
        if timeout is None:
            raise _Stuck("waiting")
        if timeout > 0:
            loop.now += timeout
        if loop.now > VIRTUAL_LIMIT:
            raise _Stuck("time")
        return []

    def close(self) -> None:
        self._map.clear()

    def get_map(self) -> Any:
        return self._map


class VirtualLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop on a virtual clock (see `_VirtualSelector`)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.turns = 0
        super().__init__(_VirtualSelector(self))

    def time(self) -> float:
        return self.now


class Library:
    """One side's modules, under the names a program uses."""

    def __init__(
        self, name: str, gen: ModuleType, ioloop: ModuleType, locks: ModuleType, queues: ModuleType
    ) -> None:
        self.name = name
        self.gen = gen
        self.ioloop = ioloop
        self.locks = locks
        self.queues = queues


TORNADO = Library("tornado", t_gen, t_ioloop, t_locks, t_queues)
SQUALL = Library("squall", s_gen, s_ioloop, s_locks, s_queues)


def _outcome_of(exc: BaseException) -> tuple[str, str]:
    return ("err", type(exc).__name__)


class Program:
    """A program's shared objects and its tasks, run on one library."""

    def __init__(self, lib: Library, spec: dict[str, Any], loop: VirtualLoop) -> None:
        self.lib = lib
        self.spec = spec
        self.loop = loop
        self.trace: list[tuple[Any, ...]] = []
        queue_class = getattr(lib.queues, spec["queue"])
        self.q = queue_class(maxsize=spec["maxsize"])
        self.lock = lib.locks.Lock()
        self.sem = lib.locks.Semaphore(spec["sem"])
        self.bsem = lib.locks.BoundedSemaphore(spec["bsem"])
        self.event = lib.locks.Event()
        self.cond = lib.locks.Condition()
        # Each task's future (an asyncio Task, or a gen.coroutine's future).
        self.tasks: list[Any] = []

    def note(self, *entry: Any) -> None:
        if len(self.trace) < TRACE_BOUND:
            self.trace.append((round(self.loop.now, 9), *entry))

    def timeout(self, spec: Optional[tuple[str, float]]) -> Any:
        if spec is None:
            return None
        kind, length = spec
        if kind == "delta":
            return datetime.timedelta(seconds=length)
        return self.lib.ioloop.IOLoop.current().time() + length

    def awaitable(self, step: tuple[Any, ...]) -> Any:
        """The future (or None for a step that does not wait) of ``step``."""
        kind = step[0]
        gen = self.lib.gen
        if kind == "put":
            return self.q.put(step[1], self.timeout(step[2]))
        if kind == "get":
            return self.q.get(self.timeout(step[1]))
        if kind == "join":
            return self.q.join(self.timeout(step[1]))
        if kind == "acquire":
            return getattr(self, step[1]).acquire(self.timeout(step[2]))
        if kind == "event_wait":
            return self.event.wait(self.timeout(step[1]))
        if kind == "cond_wait":
            return self.cond.wait(self.timeout(step[1]))
        if kind == "sleep":
            return gen.sleep(step[1])
        if kind == "moment":
            return gen.moment
        if kind == "sub":
            return self.sub(*step[1:])
        if kind == "multi":
            parts = self.futures(step[1:])
            return gen.multi(parts) if parts else None
        if kind == "with_timeout":
            inner = self.awaitable(step[2])
            if inner is None or inner is gen.moment:
                return None
            return gen.with_timeout(datetime.timedelta(seconds=step[1]), inner)
        return None

    def sub(self, style: str, waiter: tuple[Any, ...], fail: bool) -> Any:
        """A coroutine the task calls: it waits on ``waiter``, then returns
        what it got or raises ValueError; an ``async def`` (a coroutine
        object) or a ``gen.coroutine`` (a future, already running)."""
        if style == "async":

            async def child() -> Any:
                future = self.awaitable(waiter)
                value = None if future is None else await future
                if fail:
                    raise ValueError(value)
                return _plain(value)

            return child()

        @self.lib.gen.coroutine
        def generator_child() -> Any:
            future = self.awaitable(waiter)
            value = None if future is None else (yield future)
            if fail:
                raise ValueError(value)
            return _plain(value)

        return generator_child()

    def futures(self, steps: tuple[Any, ...]) -> list[Any]:
        """The futures of ``steps`` (waits), or none if one of them does not wait."""
        parts = [self.awaitable(part) for part in steps]
        if any(part is None or part is self.lib.gen.moment for part in parts):
            return []
        return parts

    def at_once(self, task: int, index: int, step: tuple[Any, ...]) -> Any:
        """Runs a step that does not wait; returns its value."""
        kind = step[0]
        if kind == "put_nowait":
            return self.q.put_nowait(step[1])
        if kind == "get_nowait":
            return self.q.get_nowait()
        if kind == "task_done":
            return self.q.task_done()
        if kind == "qsize":
            return (self.q.qsize(), self.q.empty(), self.q.full())
        if kind == "release":
            return getattr(self, step[1]).release()
        if kind == "event_set":
            return self.event.set()
        if kind == "event_clear":
            return self.event.clear()
        if kind == "is_set":
            return self.event.is_set()
        if kind == "notify":
            return self.cond.notify(step[1])
        if kind == "notify_all":
            return self.cond.notify_all()
        if kind == "cancel":
            target = step[1]
            if target >= len(self.tasks) or target == task:
                return None
            return self.tasks[target].cancel()
        if kind == "periodic":
            return self.periodic((task, index), *step[1:])
        if kind == "removed":
            # A timeout taken back before it is due: it must never run.
            io_loop = self.lib.ioloop.IOLoop.current()
            handle = io_loop.call_later(step[1], self.note, "callback", (task, index))
            io_loop.call_later(step[2], io_loop.remove_timeout, handle)
            return None
        if kind == "callback":
            io_loop = self.lib.ioloop.IOLoop.current()
            label = (task, index)
            if step[1] == "soon":
                io_loop.add_callback(self.note, "callback", label)
            else:
                io_loop.call_later(step[2], self.note, "callback", label)
            return None
        raise AssertionError(f"unknown step {step!r}")

    def periodic(self, label: tuple[int, int], period: float, ticks: int, busy: float) -> None:
        """A PeriodicCallback every ``period`` seconds that stops itself
        after ``ticks`` runs; with ``busy``, each run is a coroutine that
        sleeps that long (a run that overruns its period)."""
        runs = [0]

        def tick() -> Any:
            runs[0] += 1
            self.note("callback", (*label, runs[0]))
            if runs[0] >= ticks:
                periodic.stop()
            if busy:
                return self.lib.gen.sleep(busy)
            return None

        periodic = self.lib.ioloop.PeriodicCallback(tick, period * 1000)
        periodic.start()

    def needs_await(self, step: tuple[Any, ...]) -> bool:
        return step[0] in _AWAITED

    async def run_async(self, task: int, steps: list[tuple[Any, ...]]) -> None:
        for index, step in enumerate(steps):
            try:
                if step[0] == "hold":
                    async with getattr(self, step[1]):
                        self.note(task, index, "held")
                        await self.lib.gen.sleep(step[2])
                    value = None
                elif step[0] == "wait_iterator":
                    futures = self.futures(step[1:])
                    order = []
                    if futures:
                        it = self.lib.gen.WaitIterator(*futures)
                        while not it.done():
                            item = await it.next()
                            order.append((it.current_index, _plain(item)))
                    value = tuple(order)
                elif step[0] == "moment":
                    # What a native coroutine awaits for one loop turn
                    # (Tornado's moment is not awaitable, Squall's is:
                    # tests/COMPAT.md lists it).
                    value = await asyncio.sleep(0)
                elif self.needs_await(step):
                    future = self.awaitable(step)
                    value = None if future is None else await future
                else:
                    value = self.at_once(task, index, step)
            except asyncio.CancelledError:
                self.note(task, index, "cancelled")
                raise
            except Exception as exc:
                self.note(task, index, _outcome_of(exc))
            else:
                self.note(task, index, ("ok", _plain(value)))
        self.note(task, "end")

    def run_generator(self, task: int, steps: list[tuple[Any, ...]]) -> Any:
        @self.lib.gen.coroutine
        def body() -> Any:
            for index, step in enumerate(steps):
                try:
                    if step[0] == "hold":
                        # A generator coroutine has no async with: acquire,
                        # sleep and release, as its users write it.
                        yield getattr(self, step[1]).acquire()
                        try:
                            self.note(task, index, "held")
                            yield self.lib.gen.sleep(step[2])
                        finally:
                            getattr(self, step[1]).release()
                        value = None
                    elif step[0] == "wait_iterator":
                        futures = self.futures(step[1:])
                        order = []
                        if futures:
                            it = self.lib.gen.WaitIterator(*futures)
                            while not it.done():
                                item = yield it.next()
                                order.append((it.current_index, _plain(item)))
                        value = tuple(order)
                    elif self.needs_await(step):
                        future = self.awaitable(step)
                        value = None if future is None else (yield future)
                    else:
                        value = self.at_once(task, index, step)
                except asyncio.CancelledError:
                    self.note(task, index, "cancelled")
                    raise
                except Exception as exc:
                    self.note(task, index, _outcome_of(exc))
                else:
                    self.note(task, index, ("ok", _plain(value)))
            self.note(task, "end")

        return body()

    def state(self) -> tuple[Any, ...]:
        """What the objects hold after the program: the queue's items and
        unfinished tasks, the lock's, semaphore's and bounded semaphore's
        values (fields both libraries keep under these names, the values
        their reprs show) and the event's flag."""
        return (
            self.q.qsize(),
            self.q._unfinished_tasks,
            self.lock._block._value,
            self.sem._value,
            self.bsem._value,
            self.event.is_set(),
        )


_AWAITED = frozenset(
    "put get join acquire event_wait cond_wait sleep moment with_timeout multi wait_iterator sub".split()
)


def _plain(value: Any) -> Any:
    """A value both libraries' results compare by (their own objects by class name)."""
    if value is None or isinstance(value, (bool, int, float, str, tuple)):
        return value
    if type(value) is list:  # gen.multi's results
        return ("list", *(_plain(item) for item in value))
    return type(value).__name__


class _ArrivalOrderSet(dict):  # type: ignore[type-arg]
    """A set that iterates in the order its items came (a dict's keys)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__((item, None) for item in items)

    def add(self, item: Any) -> None:
        self[item] = None

    def remove(self, item: Any) -> None:
        del self[item]

    def discard(self, item: Any) -> None:
        self.pop(item, None)


def run(lib: Library, spec: dict[str, Any]) -> tuple[list[Any], Any, str]:
    """The trace, the shared objects' state after it, and how the program ended.

    An Event keeps its waiters in a set on both libraries (the only sets of
    their locks modules), and wakes them in the set's order: the futures'
    addresses, chance. The run gives each module a set that keeps the
    order of arrival, so that both wake an Event's waiters first come,
    first served, and the runs can be compared step by step."""
    loop = VirtualLoop()
    real_time = time.time
    time.time = lambda: EPOCH + loop.now  # type: ignore[assignment]
    lib.locks.set = _ArrivalOrderSet  # type: ignore[attr-defined]
    asyncio.set_event_loop(loop)
    ending = "done"
    try:
        program = Program(lib, spec, loop)

        async def main() -> None:
            tasks = program.tasks
            for task, (style, steps) in enumerate(spec["tasks"]):
                if style == "async":
                    tasks.append(asyncio.ensure_future(program.run_async(task, steps)))
                else:
                    tasks.append(asyncio.ensure_future(program.run_generator(task, steps)))
            # Every task to its end, a cancelled one too.
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            loop.run_until_complete(main())
        except _Stuck as exc:
            ending = f"stuck ({exc})"
        state = program.state()
        return program.trace, state, ending
    finally:
        time.time = real_time  # type: ignore[assignment]
        del lib.locks.set  # type: ignore[attr-defined]
        asyncio.set_event_loop(None)
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.close()


# Lengths of time, in seconds: `_distinct` adds each step its own fraction.
_lengths = st.integers(min_value=0, max_value=6)


def _timeout() -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.tuples(st.sampled_from(["delta", "deadline"]), _lengths))


# The steps by the object they work on: a program draws most of its steps
# from one or two of these groups, so that its tasks meet on the same
# object (two waiters and a notify, a full queue and a getter) often.
_WAITERS = {
    "queue": [
        st.tuples(st.just("get"), st.none()),
        st.tuples(st.just("put"), st.integers(0, 9), st.none()),
        st.tuples(st.just("join"), st.none()),
    ],
    "locks": [st.tuples(st.just("acquire"), st.sampled_from(["lock", "sem", "bsem"]), st.none())],
    "event": [st.tuples(st.just("event_wait"), st.none())],
    "condition": [st.tuples(st.just("cond_wait"), st.none())],
}

_GROUPS = {
    "queue": [
        st.tuples(st.just("put"), st.integers(0, 9), _timeout()),
        st.tuples(st.just("get"), _timeout()),
        st.tuples(st.just("put_nowait"), st.integers(0, 9)),
        st.tuples(st.just("get_nowait")),
        st.tuples(st.just("task_done")),
        st.tuples(st.just("join"), _timeout()),
        st.tuples(st.just("qsize")),
    ],
    "locks": [
        st.tuples(st.just("acquire"), st.sampled_from(["lock", "sem", "bsem"]), _timeout()),
        st.tuples(st.just("release"), st.sampled_from(["lock", "sem", "bsem"])),
        st.tuples(st.just("hold"), st.sampled_from(["lock", "sem", "bsem"]), _lengths),
    ],
    "event": [
        st.tuples(st.just("event_set")),
        st.tuples(st.just("event_clear")),
        st.tuples(st.just("event_wait"), _timeout()),
        st.tuples(st.just("is_set")),
    ],
    "condition": [
        st.tuples(st.just("cond_wait"), _timeout()),
        st.tuples(st.just("notify"), st.integers(0, 3)),
        st.tuples(st.just("notify_all")),
    ],
}

_WAITER = st.one_of(*(w for ws in _WAITERS.values() for w in ws))
# A coroutine called: it waits, then returns or raises.
_SUB = st.tuples(
    st.just("sub"),
    st.sampled_from(["async", "generator"]),
    st.one_of(_WAITER, st.tuples(st.just("sleep"), _lengths)),
    st.booleans(),
)
_WAITER_OR_SUB = st.one_of(_WAITER, _SUB)

# Steps of every program: time passing, wrappers around a wait, another
# task cancelled, callbacks.
_COMMON = [
    st.tuples(st.just("sleep"), _lengths),
    st.tuples(st.just("moment")),
    st.tuples(st.just("with_timeout"), _lengths, _WAITER_OR_SUB),
    st.tuples(
        st.just("multi"),
        _WAITER_OR_SUB,
        st.one_of(_WAITER_OR_SUB, st.tuples(st.just("sleep"), _lengths)),
    ),
    _SUB,
    st.tuples(
        st.just("wait_iterator"),
        _WAITER,
        st.one_of(_WAITER, st.tuples(st.just("sleep"), _lengths)),
    ),
    st.tuples(st.just("cancel"), st.integers(0, 3)),
    st.tuples(st.just("periodic"), _lengths.map(lambda n: n + 1), st.integers(1, 4), _lengths),
    st.tuples(st.just("removed"), _lengths.map(lambda n: n + 1), _lengths),
    st.tuples(st.just("callback"), st.just("soon")),
    st.tuples(st.just("callback"), st.just("later"), _lengths),
]

_STEP = st.one_of(*(step for steps in _GROUPS.values() for step in steps), *_COMMON)


def _focused(groups: list[str]) -> st.SearchStrategy[tuple[Any, ...]]:
    """Steps on ``groups``' objects, three in four; any step otherwise."""
    chosen = [step for group in groups for step in _GROUPS[group]]
    waiters = st.one_of(*(w for group in groups for w in _WAITERS[group]))
    around = [
        st.tuples(st.just("with_timeout"), _lengths, waiters),
        st.tuples(st.just("sleep"), _lengths),
    ]
    return st.one_of(st.one_of(*chosen, *chosen, *chosen, *around), _STEP)


def _salt(key: int) -> float:
    """A fraction below 0.01 that is ``key``'s alone: a multiplicative hash
    of it over 2**40 steps, so that no sum of a few lengths is another
    length (timers that could fall due together, a sleep after a timeout
    and a longer timeout, do not)."""
    return ((key * 0x9E3779B97F4A7C15) % (1 << 40)) / (1 << 40) * 0.01


def _distinct(steps: list[tuple[Any, ...]], task: int) -> list[tuple[Any, ...]]:
    """``steps`` with every length made distinct: n seconds becomes n plus
    a fraction of a second unique to the step in its program (the task's
    number and the step's position; a step nested in another's, its own)."""

    def fix(step: tuple[Any, ...], key: int) -> tuple[Any, ...]:
        out: list[Any] = []
        for part in step:
            if isinstance(part, tuple) and len(part) == 2 and part[0] in ("delta", "deadline"):
                out.append((part[0], part[1] + _salt(key)))
            elif isinstance(part, tuple) and part and isinstance(part[0], str):
                out.append(fix(part, key + 5000))
            elif (
                isinstance(part, int)
                and not isinstance(part, bool)
                and len(out) in _TIMED.get(step[0], ())
            ):
                out.append(part + _salt(key + 20_000 * len(out)))
            else:
                out.append(part)
        return tuple(out)

    stride = SIZE["steps"] + 1
    return [fix(step, task * stride + i + 1) for i, step in enumerate(steps)]


# Which positions of a step hold a length (a plain number of seconds).
_TIMED = {
    "sleep": (1,),
    "hold": (2,),
    "with_timeout": (1,),
    "callback": (2,),
    "periodic": (1, 3),
    "removed": (1, 2),
}


# The most tasks in a program and steps in a task (--tasks, --steps).
SIZE = {"tasks": 4, "steps": 6}


@st.composite
def programs(draw: Any) -> dict[str, Any]:
    count = draw(st.integers(2, SIZE["tasks"]))
    groups = draw(st.lists(st.sampled_from(sorted(_GROUPS)), min_size=1, max_size=2, unique=True))
    step = _focused(groups)
    tasks = []
    for task in range(count):
        style = draw(st.sampled_from(["async", "generator"]))
        steps = draw(st.lists(step, min_size=1, max_size=SIZE["steps"]))
        tasks.append((style, _distinct(steps, task)))
    return {
        "queue": draw(st.sampled_from(["Queue", "LifoQueue", "PriorityQueue"])),
        "maxsize": draw(st.integers(0, 2)),
        "sem": draw(st.integers(0, 2)),
        "bsem": draw(st.integers(1, 2)),
        "tasks": tasks,
    }


@contextlib.contextmanager
def _returns_a_cancelled_grant() -> Iterator[None]:
    """Tornado's ``async with`` on a lock or semaphore, made to give back
    a permit granted in the loop turn its task was cancelled, as Squall's
    does (Tornado's keeps it: the lock stays held by no one, and every
    later ``acquire`` waits forever)."""
    semaphore, lock = t_locks.Semaphore.__aenter__, t_locks.Lock.__aenter__
    # Squall's own methods: they ask only acquire(), release() and the
    # lock's _block, which Tornado's objects have too.
    t_locks.Semaphore.__aenter__ = s_locks.Semaphore.__aenter__  # type: ignore[method-assign]
    t_locks.Lock.__aenter__ = s_locks.Lock.__aenter__  # type: ignore[method-assign]
    try:
        yield
    finally:
        t_locks.Semaphore.__aenter__ = semaphore  # type: ignore[method-assign]
        t_locks.Lock.__aenter__ = lock  # type: ignore[method-assign]


@contextlib.contextmanager
def _event_wait_resolves_in_set() -> Iterator[None]:
    """Tornado's ``Event.wait`` with a timeout, made Squall's: the future a
    waiter gets is resolved by ``set()`` itself, where Tornado's is a
    ``gen.with_timeout`` wrapper that resolves one loop turn later."""
    wait = t_locks.Event.wait
    # Squall's own method: it asks _value, _waiters and _forget, which the
    # patch gives Tornado's Event too.
    t_locks.Event.wait = s_locks.Event.wait  # type: ignore[method-assign]
    t_locks.Event._forget = s_locks.Event._forget  # type: ignore[attr-defined]
    try:
        yield
    finally:
        t_locks.Event.wait = wait  # type: ignore[method-assign]
        del t_locks.Event._forget  # type: ignore[attr-defined]


# Differences Squall keeps on purpose, by name (tests/COMPAT.md lists
# them): each is Tornado changed as Squall departs from it. A program whose
# runs differ is explained by one when Tornado so changed runs it as
# Squall does.
DEPARTURES: dict[str, Callable[[], contextlib.AbstractContextManager[None]]] = {
    "a permit granted as its task is cancelled is given back": _returns_a_cancelled_grant,
    "Event.wait(timeout) resolves in set() itself": _event_wait_resolves_in_set,
}


def explained(spec: dict[str, Any], squall_run: Any) -> Optional[str]:
    """The departure (or " and "-joined departures) that, applied to
    Tornado, makes it run ``spec`` as Squall did; None if none does."""
    for name, departure in DEPARTURES.items():
        with departure():
            changed = run(TORNADO, spec)
        if changed == squall_run:
            return name
    with contextlib.ExitStack() as stack:
        for departure in DEPARTURES.values():
            stack.enter_context(departure())
        changed = run(TORNADO, spec)
    if changed == squall_run:
        return " and ".join(DEPARTURES)
    return None


# Programs run the same, and explained by each departure (or several).
KINDS: dict[str, int] = {"same": 0}


@given(programs())
def same_programs(spec: dict[str, Any]) -> None:
    theirs = run(TORNADO, spec)
    ours = run(SQUALL, spec)
    if theirs != ours:
        name = explained(spec, ours)
        if name is None:
            raise AssertionError(
                f"\n  program: {spec!r}\n  tornado: {theirs!r}\n  squall:  {ours!r}\n  first difference: "
                f"{_first_difference(theirs, ours)}"
            )
        KINDS[name] = KINDS.get(name, 0) + 1
    else:
        KINDS["same"] += 1


def _first_difference(a: tuple[list[Any], Any, str], b: tuple[list[Any], Any, str]) -> str:
    for i, (x, y) in enumerate(zip(a[0], b[0], strict=False)):
        if x != y:
            return f"entry {i}: tornado {x!r}, squall {y!r}"
    if len(a[0]) != len(b[0]):
        return f"lengths {len(a[0])} and {len(b[0])}"
    return f"after the same trace: tornado {a[1:]!r}, squall {b[1:]!r}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="programs to run")
    ap.add_argument("--seed", type=int, help="Hypothesis seed (default: random)")
    ap.add_argument("--tasks", type=int, default=4, help="the most tasks in a program (at least 2)")
    ap.add_argument("--steps", type=int, default=6, help="the most steps in a task")
    args = ap.parse_args()
    # Lengths stay distinct while tasks x (steps + 1) is below 5,000.
    SIZE.update(tasks=max(2, min(args.tasks, 50)), steps=max(1, min(args.steps, 90)))
    # A program left stuck leaves tasks that never finished: asyncio logs
    # each one it destroys. Expected here, and many lines.
    logging.disable(logging.CRITICAL)
    found = hunt(same_programs, args.examples, args.seed)
    if found is not None:
        print(f"programs: DIFFERENT {found}")
        return 1
    print(f"programs: same on {args.examples} examples ({KINDS['same']} the same trace)")
    for name, count in KINDS.items():
        if name != "same":
            print(f"  explained as '{name}': {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
