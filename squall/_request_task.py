"""The Task a request's coroutine runs in: one of its own, made through
asyncio's public API.

Used by the application's delegate (`~squall.web.RequestHandler._execute`)
and by the ASGI driver (an application's coroutine). Each request gets a
fresh Task, as Tornado gives it: its name, its context (a copy of the
caller's) and its done callbacks are the request's alone, and ``prepare()``,
the HTTP method and ``on_finish()`` all see it as `asyncio.current_task`.

* Python 3.12+: an eager Task (``asyncio.Task(..., eager_start=True)``, as
  `asyncio.eager_task_factory` makes it), when the loop has no task factory
  of its own. The coroutine's first step runs at once, inside the
  Task (so `asyncio.current_task` already names it), and a request that
  answers without waiting is done before `start` returns, with no loop turn.
* Python 3.11: the Task made as the loop's ``create_task`` makes it when
  the loop has no task factory (`asyncio.Task` of the coroutine on that
  loop, without the call through the loop's method: uvloop's costs about
  1k instructions a request), else ``loop.create_task`` (an agent or a test
  may have put a factory there to see every Task). The first step runs on
  the loop's next turn. 3.11 has no public way to run a step
  of a coroutine inside a Task before the loop schedules it: a step run
  outside one sees no current task (``asyncio.timeout`` and anyio's scopes
  refuse it).

On every Python, `squall.web` runs a handler that cannot wait (plain
``prepare()`` and method) without a Task at all, and hands it to a Task
before it awaits anything (see
squall.web.handler.RequestHandler._step_at_once): on 3.13 the eager Task
costs about 3k instructions a hello request more (gate counts, compiled:
110,044 against 107,000).
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, Final, Optional

_Task: Final = asyncio.Task

if sys.version_info >= (3, 12):

    def start(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> Optional[asyncio.Task[None]]:
        """Start ``coro`` in a Task of its own; return the Task while it runs,
        or None if it ended in its first step.

        Raises:
            BaseException: what ended the first step other than a
                cancellation (the Task would keep it, unseen until the
                collector logged "exception was never retrieved").
        """
        task: asyncio.Task[None]
        if loop.get_task_factory() is None:
            # What asyncio.eager_task_factory makes, without its Python
            # frame and its two keyword arguments more (3.13: 1.5k
            # instructions a Task, 1.5% of the compiled hello request).
            task = _Task(coro, loop=loop, eager_start=True)
        else:
            task = loop.create_task(coro)
        if not task.done():
            return task
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
        return None

else:

    def start(
        loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
    ) -> Optional[asyncio.Task[None]]:
        """Start ``coro`` in a Task of its own; return the Task (its first
        step runs on the loop's next turn)."""
        if loop.get_task_factory() is None:
            return _Task(coro, loop=loop)
        return loop.create_task(coro)
