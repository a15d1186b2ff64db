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
* Python 3.11 has no eager start. A Task bound to `_ShellLoop` (a stand-in
  whose ``call_soon`` schedules nothing) is entered as the loop's current
  task while the step runs; if the coroutine suspended, it is initialised
  again on the real loop with `_continue`, which hands the Task what the
  coroutine yielded and then delegates to it. A cancellation requested
  during the first step is carried over.

  Making that Task is most of the cost of a step that does not suspend
  (about 10,000 instructions: the registry's WeakSet, its name, its
  scheduling; a WebSocket handshake or an ASGI request that answers at
  once pays it for nothing), so such a Task is kept for the next step when
  nothing can tell: no reference to it is left (nobody kept
  ``current_task()``), no weak reference but the registry's (anyio keys its
  task states by weak reference), no done callback, no cancellation. Any
  Task an application saw and kept is never handed to another request; it
  ends on the next turn as the request's own Task would (``done()``, its
  done callbacks run, awaiting it returns). Done callbacks given during a
  step that suspends stay with the Task that goes on.
  While it is a shell its coroutine is a started placeholder generator (not
  the request's); ``get_name()`` answers the same for the steps it serves.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import weakref
from typing import Any, Optional

from squall._eager_resume import _continue, _Coro, _ended, _go_on, _new_shell

__all__: list[str] = []

_enter_task = asyncio.tasks._enter_task
_leave_task = asyncio.tasks._leave_task
_current_task = asyncio.current_task
_Task = asyncio.Task


if sys.version_info >= (3, 12):

    def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
        """Run ``coro`` until it first suspends; return the Task that goes
        on with it, or None if it is done already."""
        task: asyncio.Task[None] = _Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        return None if task.done() else task

else:
    # Shells free for a step (a list: pop and append are atomic, so nested
    # steps and threads each take their own).
    _shells: list[asyncio.Task[None]] = []
    _getrefcount = sys.getrefcount
    _getweakrefcount = weakref.getweakrefcount

    def _refs_of_a_local() -> int:
        # What getrefcount says of an object only a local holds, written as
        # start() asks it of a shell: 2 interpreted (the local and the
        # argument), possibly another figure when mypyc compiles this module.
        held: Optional[object] = None
        held = object()
        return _getrefcount(held)

    # References to a shell while start() checks it (see _refs_of_a_local).
    # Weak references: the registry's (_all_tasks).
    _OWN_REFS = _refs_of_a_local()
    _OWN_WEAKREFS = 1

    # What next() returns for a coroutine that finished its step (a
    # coroutine may yield None itself: a bare yield, asyncio.sleep(0)).
    _FINISHED: Any = object()
    _next = next

    def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
        """Run ``coro`` until it first suspends; return the Task that goes
        on with it, or None if it is done already.

        Raises:
            BaseException: what the coroutine raised other than
                ``CancelledError`` (which ends it, as in a Task).
        """
        context = contextvars.copy_context()
        task: Optional[asyncio.Task[None]] = None
        if _shells:
            try:
                task = _shells.pop()
            except IndexError:  # another thread's step took the last one
                pass
        if task is None:
            task = _new_shell()
        # Called from inside a task (a driver's coroutine, a mounted app's
        # handler), that task steps aside for the step, as 3.12's eager start
        # does. Asked first, not learnt from _enter_task's RuntimeError: its
        # message holds the repr of both tasks, about 40,000 instructions.
        outer: Optional[asyncio.Task[Any]] = _current_task(loop)
        if outer is not None:
            _leave_task(loop, outer)
        _enter_task(loop, task)
        error: Optional[BaseException] = None
        try:
            # next() with a default: a coroutine that returns None ends the
            # step with no StopIteration made, raised and caught.
            yielded = context.run(_next, coro.__await__(), _FINISHED)
        except BaseException as exc:
            error = exc
            yielded = _FINISHED
        _leave_task(loop, task)
        if outer is not None:
            _enter_task(loop, outer)
        if yielded is _FINISHED:
            if (
                _getrefcount(task) == _OWN_REFS
                and _getweakrefcount(task) == _OWN_WEAKREFS
                and not task.cancelling()
                and task._callbacks is None
            ):
                # Nobody kept it or heard from it: the next step's shell.
                _shells.append(task)
            else:
                # Someone holds it, waits on it or gave it a done callback:
                # it must end as a Task does (done(), callbacks run, awaiters
                # woken) on the next turn, not stay pending for ever.
                cancelled = task.cancelling() or isinstance(error, asyncio.CancelledError)
                _go_on(task, _ended(), loop, context)
                if cancelled:
                    task.cancel()
            if error is None:
                return None
            # (error dropped on the way out: its traceback holds this frame.)
            try:
                if isinstance(error, (StopIteration, asyncio.CancelledError)):
                    return None
                raise error
            finally:
                error = None
        # A Future marks itself blocking when awaited and refuses a second
        # await while marked; the Task that receives it clears the mark at
        # once. Here that Task runs a loop turn later: cleared now, so that
        # another step may await the same Future meanwhile (two requests
        # waiting on one event), and set again in `_rest`.
        if getattr(yielded, "_asyncio_future_blocking", False) is True:
            yielded._asyncio_future_blocking = False
        cancels = task.cancelling()
        body = _continue(coro, yielded)
        body.send(None)  # to _rest's first yield
        _go_on(task, body, loop, context)
        if cancels:
            task.cancel()
        return task
