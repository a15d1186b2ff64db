"""Running a request's coroutine at once, in a Task only if it suspends.

Used by the ASGI driver (an application's coroutine) and by
`~squall.web.RequestHandler` subclasses that ask for it (a
`~squall.websocket.WebSocketHandler`'s ``get``, whose upgrade usually
finishes without waiting).

`start` runs the coroutine's first step in the caller's frame (the driver's
``headers_received``): an application that answers without waiting, the
usual case, is done before `start` returns, with no Task scheduled, no loop
turn and no entry in asyncio's task registry. Only a coroutine that suspends
goes on in a Task, which picks it up where it stopped.

What the application observes during that first step is what it would see
in a Task of its own: `asyncio.current_task` returns the very Task object
that continues the coroutine if it suspends (so anyio's cancel scopes and
task groups, ``asyncio.timeout`` and ``asyncio.TaskGroup`` find the same
task before and after the first ``await``), and the step runs in a copy of
the context, so context variables it sets stay with the request.

* Python 3.12+: ``asyncio.Task(coro, eager_start=True)``, the interpreter's
  own eager start, which does exactly this.
* Python 3.11 has no eager start. A Task bound to `_SHELL` (a stand-in loop
  whose ``call_soon`` schedules nothing) is entered as the loop's current
  task while the step runs; if the coroutine suspended, that Task is
  initialised again on the real loop with a `_Continuation`, which hands it
  what the coroutine yielded and then delegates to the coroutine. A
  cancellation requested during the first step is carried over. A step that
  ends without suspending and leaves no trace of its Task (no reference to
  it, no cancellation, no done callback) gives the Task back for the next
  step: making one costs more than the rest of `start` (asyncio registers
  each in a WeakSet, in Python code). Until it suspends, the Task's
  ``get_coro()`` is a placeholder, not the application's coroutine.

Compiled by mypyc in the compiled build (speedups/squall_build.py).
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import functools
import sys
import types
import weakref
from collections.abc import Coroutine
from typing import Any, Final, Optional, cast

__all__: list[str] = []

_Coro = Coroutine[Any, Any, None]


def _no_handler(context: dict[str, Any]) -> None:
    return None


# The loop a 3.11 Task is bound to while its coroutine's first step runs
# outside it: Task.__init__ asks it for its debug flag (``bool()``: False)
# and to schedule the first step, which it does not (``partial`` makes an
# object and calls nothing; `start` runs that step itself). Both are C
# callables: no Python frame. A namespace rather than a class, so that the
# compiled build keeps them plain attributes.
_SHELL: Any = types.SimpleNamespace(
    get_debug=bool, call_soon=functools.partial, call_exception_handler=_no_handler
)


class _Continuation:
    """What a Task runs for a coroutine whose first step ran outside it.

    Its first ``send`` returns what that step yielded (the Task then waits
    on it, as the coroutine asked); everything after, and an exception the
    Task throws in at any point (a cancellation before its first resume
    included), goes to the coroutine.
    """

    def __init__(self, coro: _Coro, yielded: Any) -> None:
        self._coro = coro
        self._yielded = yielded
        self._fresh = True

    def send(self, value: Any) -> Any:
        if self._fresh:
            self._fresh = False
            yielded = self._yielded
            self._yielded = None
            return yielded
        return self._coro.send(value)

    def throw(self, exc: Any, *rest: Any) -> Any:
        self._fresh = False
        self._yielded = None
        return self._coro.throw(exc, *rest)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> _Continuation:
        return self

    def __iter__(self) -> _Continuation:
        return self

    def __next__(self) -> Any:
        return self.send(None)


# Task() takes it for a coroutine (asyncio.iscoroutine asks the ABC).
collections.abc.Coroutine.register(_Continuation)


# Final: the compiled build reads them as constants, not from the module's dict.
_enter_task: Final = asyncio.tasks._enter_task
_leave_task: Final = asyncio.tasks._leave_task
_current_task: Final = asyncio.current_task
_copy_context: Final = contextvars.copy_context
_Task: Final = asyncio.Task
_getrefcount: Final = sys.getrefcount
_getweakrefcount: Final = weakref.getweakrefcount

# Spare Tasks for first steps (3.11), handed to one caller at a time by
# list.pop() and append(), whatever thread.
_spares: Final[list[asyncio.Task[Any]]] = []
_MAX_SPARES: Final = 16
_SHELL_CONTEXT: Final = contextvars.Context()
# What a step that ran the coroutine to its end returns.
_DONE: Final = object()


async def _first_step() -> None:
    """What a spare Task stands for until a coroutine that suspends takes it over."""


def _refs(task: asyncio.Task[Any]) -> int:
    # Counted one call down, as _spare_again counts: the same references
    # held by the callers' frames, interpreted or compiled.
    return _getrefcount(task)


def _spare_again(task: asyncio.Task[Any], refs: int) -> None:
    """Keep ``task``, whose step is over, for the next step if nothing can
    tell it from a new one: no reference to it kept (``refs``, from `_refs`,
    is its count before the step), strong or weak beyond asyncio's
    registry, no cancellation asked, no done callback."""
    if (
        _getrefcount(task) == refs
        and _getweakrefcount(task) <= 1
        and not task.cancelling()
        and cast(Any, task)._callbacks is None  # the C Task's: None or a list
        and len(_spares) < _MAX_SPARES
    ):
        _spares.append(task)


def _new_spare() -> asyncio.Task[Any]:
    placeholder = _first_step()
    task: asyncio.Task[Any] = _Task(placeholder, loop=_SHELL, context=_SHELL_CONTEXT)
    placeholder.close()  # never run: no "never awaited" warning
    # Never to run: no "Task was destroyed but it is pending".
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    return task


if sys.version_info >= (3, 12):

    def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
        """Run ``coro`` until it first suspends; return the Task that goes
        on with it, or None if it is done already."""
        task: asyncio.Task[None] = _Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        return None if task.done() else task

else:

    def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
        """Run ``coro`` until it first suspends; return the Task that goes
        on with it, or None if it is done already.

        Raises:
            BaseException: what the coroutine raised other than
                ``CancelledError`` (which ends it, as in a Task).
        """
        context = _copy_context()
        try:
            task = _spares.pop()
        except IndexError:
            task = _new_spare()
        # Called from inside a task (a driver's coroutine, a mounted app's
        # handler), that task steps aside for the step, as 3.12's eager start
        # does. Asked first, not learnt from _enter_task's RuntimeError: its
        # message holds the repr of both tasks, about 40,000 instructions.
        outer: Optional[asyncio.Task[Any]] = _current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        refs = _refs(task)
        _enter_task(loop, task)
        try:
            # next() with a default: a coroutine that returns ends the step
            # without a StopIteration raised and caught (a traceback entry,
            # an exception object).
            yielded = context.run(next, coro.__await__(), _DONE)
        except BaseException as exc:
            _leave_task(loop, task)
            if outer is not None:
                _enter_task(loop, outer)
            _spare_again(task, refs)
            if isinstance(exc, asyncio.CancelledError):
                return None
            raise
        _leave_task(loop, task)
        if outer is not None:
            _enter_task(loop, outer)
        if yielded is _DONE:
            _spare_again(task, refs)
            return None
        cancels = task.cancelling()
        # The Task the step saw as current_task() goes on with the coroutine.
        task.__init__(_Continuation(coro, yielded), loop=loop, context=context)  # type: ignore[misc]
        if cancels:
            task.cancel()
        return task
