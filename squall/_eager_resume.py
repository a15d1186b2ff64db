"""The interpreted half of `squall._eager` on Python 3.11: the coroutines and
generators a 3.11 Task runs, which must stay real generator/coroutine
objects (anyio inspects them with ``inspect.getcoroutinestate`` to tell
whether a task has started), the stand-in loop a shell Task is bound to,
and what becomes of a shell whose step did not simply end (`_suspended`,
`_kept`).

`squall._eager_step` (C in the compiled build: it runs for every request)
holds `~squall._eager.start` and the pool of shells, and calls these.
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio
import contextvars
import functools
import types
from collections.abc import Coroutine, Generator
from typing import Any, Optional

_Task = asyncio.Task

_Coro = Coroutine[Any, Any, None]


class _ShellLoop:
    """The loop a 3.11 Task is bound to while its coroutine's first step runs
    outside it: Task.__init__ asks it for its debug flag (``bool()``: False)
    and to schedule the first step, which it does not (``partial`` makes an
    object and calls nothing; `start` runs that step itself). Both are C
    callables: they cost no Python frame per request."""

    __slots__ = ()

    get_debug = bool
    call_soon = functools.partial

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        return None


_SHELL: Any = _ShellLoop()


@types.coroutine
def _rest(coro: _Coro, yielded: Any) -> Generator[Any, Any, None]:
    """Continues ``coro``, which yielded ``yielded`` at its first step.

    Primed to its first bare ``yield`` before the Task gets it, so that an
    exception the Task throws in at once (a cancellation before the first
    resume) lands inside this body and is thrown into ``coro``.
    """
    error: Optional[BaseException] = None
    try:
        yield None
    except BaseException as exc:  # noqa: BLE001 - every exception goes to the coroutine
        error = exc
    while True:
        if error is not None:
            try:
                yielded = coro.throw(error)
            except StopIteration:
                return None
            error = None
        # `start` cleared the blocking mark of the Future the first step
        # awaited (see there): the Task wants it set, as the await left it.
        if getattr(yielded, "_asyncio_future_blocking", None) is False:
            yielded._asyncio_future_blocking = True
        try:
            # What the coroutine waits on: the Task waits on it in turn.
            yield yielded
        except BaseException as exc:  # noqa: BLE001
            error = exc
        else:
            break
    # Resumed normally: the Task sends None, as `yield from` does first.
    yield from coro
    return None


async def _continue(coro: _Coro, yielded: Any) -> None:
    await _rest(coro, yielded)


def _go_on(
    task: asyncio.Task[None],
    body: _Coro,
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
) -> None:
    """Binds ``task`` to the real loop with ``body``, keeping the done
    callbacks the first step gave it (``Task.__init__`` drops them)."""
    callbacks = task._callbacks
    task.__init__(body, loop=loop, context=context)  # type: ignore[misc]
    if callbacks:
        for callback, callback_context in callbacks:
            task.add_done_callback(callback, context=callback_context)


async def _ended() -> None:
    """The body of a 3.11 Task whose coroutine ended in its first step, but
    which an application kept or asked to be told about: run on the real
    loop, it ends the Task as a Task of its own would have ended."""


def _placeholder() -> Generator[None, None, None]:
    # A shell's coroutine while it waits: started, so that a library
    # asking whether the current task has started (anyio) hears yes.
    while True:
        yield None


# The context every shell is made with. A shell whose step suspends is bound
# again by `_go_on` with ``Task.__init__(..., context=...)``, and on 3.11 that
# call replaces the Task's context without releasing the one it had: with a
# context of its own (copied at creation, the default) each such shell leaked
# that Context, about 100 bytes (`make soak`'s RSS slope; benchmarks/soak.py
# --memory-report showed the Contexts). What is left unreleased now is one
# reference to this one Context, which lives as long as the module anyway.
_SHELL_CONTEXT = contextvars.Context()


def _new_shell() -> asyncio.Task[None]:
    body = _placeholder()
    body.send(None)
    shell: asyncio.Task[None] = _Task(body, loop=_SHELL, context=_SHELL_CONTEXT)
    # Never to run: no "Task was destroyed but it is pending".
    shell._log_destroy_pending = False  # type: ignore[attr-defined]
    return shell


def _suspended(
    task: asyncio.Task[None],
    coro: _Coro,
    yielded: Any,
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
) -> asyncio.Task[None]:
    """Hands ``coro``, which yielded ``yielded`` in the step ``task`` served,
    to ``task`` on the real loop; returns ``task``."""
    # A Future marks itself blocking when awaited and refuses a second
    # await while marked; the Task that receives it clears the mark at
    # once. Here that Task runs a loop turn later: cleared now, so that
    # another step may await the same Future meanwhile (two requests
    # waiting on one event), and set again in `_rest`.
    if getattr(yielded, "_asyncio_future_blocking", False) is True:
        yielded._asyncio_future_blocking = False
    # (Task.__init__ forgets a cancellation asked during the step.)
    cancels = task.cancelling()
    body = _continue(coro, yielded)
    body.send(None)  # to _rest's first yield
    _go_on(task, body, loop, context)
    if cancels:
        task.cancel()
    return task


def _kept(
    task: asyncio.Task[None],
    loop: asyncio.AbstractEventLoop,
    context: contextvars.Context,
    error: Optional[BaseException],
) -> None:
    """Ends ``task``, whose step ended (raising ``error``, or not) but which
    someone holds, waits on, or gave a done callback, as a Task of its own
    ends: ``done()``, its callbacks run and awaiters woken on the next turn,
    not pending for ever. It serves no other step."""
    cancelled = task.cancelling() > 0 or isinstance(error, asyncio.CancelledError)
    _go_on(task, _ended(), loop, context)
    if cancelled:
        task.cancel()
