"""`start` for Python 3.11: a coroutine's first step outside a Task.

`squall._eager` says what `start` promises and why; this module is how
Python 3.11 keeps it, and it is the reference: the compiled build loads
``speedups/c/eager.c`` under this module's name instead (see
`squall._compiled`), which does the same step with the same outcome in C
(tests/test_eager.py runs its tests on both). Only the step that ends at
once, the usual case, is written twice: a step that suspends, raises, or
leaves its Task to someone goes on in `squall._eager_resume`, shared.

The step, in order: a copy of the context; a Task (a shell, see below)
entered as the loop's current task in asyncio's registry of current tasks
(whoever was current steps aside and is put back after); the coroutine
sent None once inside that context; the registry restored.

A shell is a Task bound to a stand-in loop that never runs it. One that
served a step and that nobody can tell from a fresh one (its reference
count as before the step, no weak reference but asyncio's registry of all
tasks, no done callback, no cancellation asked) is kept for the next step:
making a Task is most of what a step would otherwise cost.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from typing import Any, Optional

from squall._eager_resume import _Coro, _kept, _new_shell, _suspended

__all__ = ["start"]

# asyncio's registry of current tasks, read and written as the dict it is
# on 3.11 (asyncio.current_task is a Python function there; the C
# _enter_task and _leave_task check what the step cannot have changed).
_current_tasks: dict[asyncio.AbstractEventLoop, asyncio.Task[Any]] = asyncio.tasks._current_tasks  # type: ignore[attr-defined]

# Shells free for a step (pop and append are atomic: nested steps and
# threads each take their own).
_shells: list[asyncio.Task[None]] = []

# Weak references a free shell has: the registry of all tasks' (a WeakSet).
_OWN_WEAKREFS = 1

# What next() returns for a coroutine that finished its step (one may yield
# None itself: a bare yield, asyncio.sleep(0)).
_FINISHED: Any = object()

_getrefcount = sys.getrefcount
_getweakrefcount = weakref.getweakrefcount
_next = next
_copy_context = contextvars.copy_context
_CancelledError = asyncio.CancelledError


def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
    """Run ``coro`` until it first suspends; return the Task that goes on
    with it, or None if it is done already.

    Raises:
        BaseException: what the coroutine raised other than
            ``CancelledError`` (which ends it, as in a Task).
    """
    context = _copy_context()
    try:
        task = _shells.pop()
    except IndexError:
        task = _new_shell()
    outer = _current_tasks.get(loop)
    own_refs = _getrefcount(task)
    _current_tasks[loop] = task
    error: Optional[BaseException] = None
    try:
        # next() with a default: a coroutine that returns ends the step
        # with no StopIteration made, raised and caught.
        yielded = context.run(_next, coro.__await__(), _FINISHED)
    except BaseException as exc:  # noqa: BLE001 - every exception is the caller's, after
        error = exc
        yielded = _FINISHED
    if outer is None:
        _current_tasks.pop(loop, None)
    else:
        _current_tasks[loop] = outer
    if yielded is not _FINISHED:
        return _suspended(task, coro, yielded, loop, context)
    if (
        _getrefcount(task) == own_refs
        and _getweakrefcount(task) == _OWN_WEAKREFS
        and task._callbacks is None
        and not task.cancelling()
    ):
        _shells.append(task)
    else:
        _kept(task, loop, context, error)
    if error is None or isinstance(error, _CancelledError):
        return None
    # (error dropped on the way out: its traceback holds this frame.)
    try:
        raise error
    finally:
        error = None
