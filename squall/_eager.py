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
  That step lives in `squall._eager_step`, which the compiled build
  replaces with C (``speedups/c/eager.c``); what follows a step that
  suspends or is kept, in `squall._eager_resume`.
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio
import sys
from typing import Optional

from squall._eager_resume import _Coro

if sys.version_info >= (3, 12):
    _Task = asyncio.Task

    def start(loop: asyncio.AbstractEventLoop, coro: _Coro) -> Optional[asyncio.Task[None]]:
        """Run ``coro`` until it first suspends; return the Task that goes
        on with it, or None if it is done already."""
        task: asyncio.Task[None] = _Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg,unused-ignore]
        if not task.done():
            return task
        # Done in its first step. An error is raised to the caller, as on
        # 3.11 (the Task would keep it, unseen until the collector logged
        # "exception was never retrieved"); a cancellation is not.
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error
        return None

else:
    from squall._eager_step import start as start
