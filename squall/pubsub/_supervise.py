"""The background loops of squall.pubsub, kept alive: `Backoff` and `Supervised`.

An engine's loops (the Redis subscriber connection's reader, the Redis
Cluster's re-subscription manager and PING watch, the NATS client keeper,
the presence heartbeat) must outlive any one exception: a broker that
answers something unexpected, a client library that raises from a
connection closed under a command, a bug of ours. `Supervised` runs one
such loop as a task: when its body raises, the exception is logged with the
loop's name (with its traceback unless it is one the loop expects, such as
a lost connection, which the loop's own ``failed`` hook reports), it waits a
`Backoff` delay and runs the body again. ``stop`` cancels it and waits for
it; it never raises what a body raised earlier.

The delays are exponential with full jitter (a uniform draw between 0 and
the exponential step, capped), so that the workers of a fleet that lost
their broker at the same instant do not come back in lock-step.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Optional

from squall.log import gen_log
from squall.pubsub._types import check_seconds

__all__ = ["Backoff", "Supervised"]


class Backoff:
    """Exponential delays with full jitter: attempt n waits uniform(0, min(cap, base * 2**n)).

    Args:
        base: the first step, in seconds.
        cap: the largest step.
        draw: a uniform draw in [0, 1) (`random.random`; a test may pass its own).
    """

    __slots__ = ("base", "cap", "attempts", "_draw")

    def __init__(self, base: float, cap: float, draw: Callable[[], float] = random.random) -> None:
        self.base = check_seconds("a reconnect delay", base)
        if not isinstance(cap, (int, float)) or cap < base:
            raise ValueError(f"a longest reconnect delay must be at least {base}, not {cap!r}")
        self.cap = float(cap)
        #: Delays drawn since the last `reset`.
        self.attempts = 0
        self._draw = draw

    def step(self) -> float:
        """The ceiling of the next delay (what it would be without jitter)."""
        step: float = self.base * 2.0 ** min(self.attempts, 62)
        return min(self.cap, step)

    def next(self) -> float:
        """The next delay, in seconds."""
        ceiling = self.step()
        self.attempts += 1
        return self._draw() * ceiling

    def reset(self) -> None:
        """Back to the first step (the loop made progress)."""
        self.attempts = 0


class Supervised:
    """Runs ``body`` as a task and runs it again, after a `Backoff` delay, whenever it raises.

    Args:
        name: the loop's name in log lines ("Redis reader of redis://...").
        body: the loop; returning ends the supervision (nothing left to do).
        backoff: the delays between a failure and the next run (``body``
            calls its ``reset`` when it made progress).
        failed: called with each exception before the delay (to mark the
            engine unhealthy, say); returns True when it reported the
            exception itself, else the exception is logged with its
            traceback on ``squall.general``.
    """

    __slots__ = ("name", "backoff", "failures", "_body", "_failed", "_task", "_stopping")

    def __init__(
        self,
        name: str,
        body: Callable[[], Awaitable[None]],
        backoff: Backoff,
        failed: Optional[Callable[[BaseException], bool]] = None,
    ) -> None:
        self.name = name
        self.backoff = backoff
        #: Exceptions the body raised (each followed by a delay and a new run).
        self.failures = 0
        self._body = body
        self._failed = failed
        self._task: Optional[asyncio.Task[None]] = None
        self._stopping = False

    @property
    def running(self) -> bool:
        """True while the loop's task is alive (started, not stopped, not finished)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Starts the task, unless it is running."""
        if not self.running:
            self._stopping = False
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._body()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping:
                    # stop() cancelled the body, and something under it
                    # swallowed the cancellation (3.11's wait_for does when
                    # the awaited future completes in the same turn).
                    return
                self.failures += 1
                reported = False
                if self._failed is not None:
                    try:
                        reported = self._failed(exc)
                    except Exception:
                        gen_log.exception("pubsub: %s: its failure hook raised", self.name)
                delay = self.backoff.next()
                if not reported:
                    gen_log.error(
                        "pubsub: %s failed; running it again in %.3fs",
                        self.name,
                        delay,
                        exc_info=exc,
                    )
            await asyncio.sleep(delay)

    async def stop(self) -> None:
        """Cancels the task and waits for it to end (raises nothing it raised).

        A cancellation that something under the body swallows is sent again
        (once a second) until the task ends.
        """
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        if asyncio.current_task() is task:
            return
        while not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=1.0)
        if not task.cancelled():
            task.exception()  # retrieved: it was logged when raised, if ever
