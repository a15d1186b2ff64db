"""Periodic pings of many WebSockets from one timer per loop (a million connections).

A timer per connection (and a second one per ping for its pong's
deadline) costs about 2.9 KB of RSS and 15 objects the collector walks per
connection on uvloop: a libuv timer, a TimerHandle, a partial, bound
methods and a Context each. Here the connections that ping with the same
interval and timeout share one `PingWheel`: the interval is cut into up to
100 ticks, each connection sits in the set of one tick and is pinged
every time that tick comes round, and its pong's deadline is checked from
the set of the tick ``timeout`` later. A connection costs two set entries.
"""

from __future__ import annotations

import math
import weakref
from typing import Optional, Protocol

from squall.ioloop import IOLoop
from squall.log import gen_log

__all__ = ["Pinged", "PingWheel", "capped_ping_timeout", "wheel_for"]

# A tick is at least this long, and an interval is cut into at most so many.
_MIN_TICK = 0.05
_MAX_TICKS = 100


class Pinged(Protocol):
    """What a wheel asks of a connection it pings."""

    def send_periodic_ping(self, now: float) -> None:
        """Sends a ping (the connection's turn has come)."""

    def check_pong(self, now: float, timeout: float) -> None:
        """Closes the connection if a ping has waited ``timeout`` for its pong."""


class PingWheel:
    """Pings every connection added once per ``interval``, from one timer."""

    # (No reference to its loop: the loop's entry in _wheels holds it.)
    __slots__ = (
        "interval",
        "timeout",
        "tick",
        "pings",
        "checks",
        "lag",
        "at",
        "due",
        "timer",
        "count",
    )

    def __init__(self, interval: float, timeout: Optional[float]) -> None:
        self.interval = interval
        self.timeout = timeout
        ticks = max(1, min(_MAX_TICKS, int(interval / _MIN_TICK)))
        self.tick = interval / ticks
        self.pings: list[set[Pinged]] = [set() for _ in range(ticks)]
        # A pong's deadline is checked this many ticks after its ping
        # (modulo the round: a deadline past the next ping is found by the
        # ping's age, see check_pong).
        self.checks: Optional[list[set[Pinged]]] = None
        self.lag = 0
        if timeout:
            self.checks = [set() for _ in range(ticks)]
            self.lag = math.ceil(timeout / self.tick - 1e-9)
        self.at = 0  # the slot the next tick serves
        self.due = 0.0  # when it comes
        self.timer: Optional[object] = None
        self.count = 0

    def add(self, conn: Pinged) -> int:
        """Adds ``conn``; its first ping comes about one interval from now.

        Returns its slot, for `remove`.
        """
        ticks = len(self.pings)
        if self.timer is None:
            loop = IOLoop.current()
            self.at = 0
            self.due = loop.time() + self.tick
            self.timer = loop.call_at(self.due, self._tick)
        # The slot served last: it comes round again in one interval less
        # at most one tick.
        slot = (self.at - 1) % ticks
        self.pings[slot].add(conn)
        if self.checks is not None:
            self.checks[(slot + self.lag) % ticks].add(conn)
        self.count += 1
        return slot

    def remove(self, conn: Pinged, slot: int) -> None:
        """Removes ``conn`` (added in ``slot``); the timer stops with the last one."""
        ticks = len(self.pings)
        pinged = self.pings[slot]
        if conn not in pinged:
            return
        pinged.discard(conn)
        if self.checks is not None:
            self.checks[(slot + self.lag) % ticks].discard(conn)
        self.count -= 1
        if self.count == 0 and self.timer is not None:
            IOLoop.current().remove_timeout(self.timer)
            self.timer = None

    def _tick(self) -> None:
        ticks = len(self.pings)
        slot = self.at
        self.at = (slot + 1) % ticks
        loop = IOLoop.current()
        now = loop.time()
        timeout = self.timeout
        if self.checks is not None and timeout:
            # A deadline found up to half a tick early is due: ticks fall
            # on the same grid as the pings they check.
            for conn in list(self.checks[slot]):
                conn.check_pong(now + self.tick / 2, timeout)
        for conn in list(self.pings[slot]):
            conn.send_periodic_ping(now)
        self.timer = None
        if self.count:
            self.due = max(self.due + self.tick, now)
            self.timer = loop.call_at(self.due, self._tick)


_wheels: weakref.WeakKeyDictionary[IOLoop, dict[tuple[float, Optional[float]], PingWheel]] = (
    weakref.WeakKeyDictionary()
)


def wheel_for(interval: float, timeout: Optional[float]) -> PingWheel:
    """The current loop's wheel for this interval and timeout (made when first asked)."""
    loop = IOLoop.current()
    wheels = _wheels.get(loop)
    if wheels is None:
        wheels = _wheels[loop] = {}
    key = (interval, timeout)
    wheel = wheels.get(key)
    if wheel is None:
        wheel = wheels[key] = PingWheel(interval, timeout)
    return wheel


# The (timeout, interval) pairs warned about (see capped_ping_timeout).
warned_ping_timeouts: set[tuple[float, float]] = set()


def capped_ping_timeout(timeout: float, interval: float) -> float:
    """The ping timeout to use when ``timeout`` is over ``interval``: the
    interval, with a warning once per process for each pair of values (one
    per connection would flood the log)."""
    if (timeout, interval) not in warned_ping_timeouts:
        warned_ping_timeouts.add((timeout, interval))
        gen_log.warning(
            "The websocket_ping_timeout (%s) cannot be longer than the "
            "websocket_ping_interval (%s).\nSetting websocket_ping_timeout=%s",
            timeout,
            interval,
            interval,
        )
    return interval
