"""Idle keep-alive connections, by key, with an idle timeout and a bound per key.

The pool only holds connections nobody is using: a request takes one out
with `ConnectionPool.acquire` and puts it back with `ConnectionPool.release`
when its response allowed reuse. It does no I/O and reads no clock of its
own (the clock is passed in), so its rules are tested without sockets.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, Optional, Protocol, TypeVar

__all__ = ["ConnectionPool", "Poolable"]


class Poolable(Protocol):
    """What the pool needs of a connection."""

    def is_reusable(self) -> bool:
        """Whether the idle connection is still open with nothing unread."""
        ...

    def close(self) -> None:
        """Close the connection."""
        ...


C = TypeVar("C", bound=Poolable)


class ConnectionPool(Generic[C]):
    """Idle connections keyed by ``(scheme, host, port, TLS and proxy settings)``.

    Args:
        clock: Monotonic time source (seconds).
        idle_timeout: Seconds an idle connection is kept; 0 keeps none.
        max_idle_per_key: Most idle connections kept per key; the oldest
            is closed to make room.
    """

    __slots__ = ("_idle", "_clock", "idle_timeout", "max_idle_per_key")

    def __init__(
        self,
        clock: Callable[[], float],
        idle_timeout: float = 60.0,
        max_idle_per_key: int = 10,
    ) -> None:
        if idle_timeout < 0:
            raise ValueError(f"idle_timeout must be >= 0, not {idle_timeout!r}")
        if max_idle_per_key < 0:
            raise ValueError(f"max_idle_per_key must be >= 0, not {max_idle_per_key!r}")
        # Per key, oldest first; each entry is (connection, time it went idle).
        self._idle: dict[Hashable, list[tuple[C, float]]] = {}
        self._clock = clock
        self.idle_timeout = idle_timeout
        self.max_idle_per_key = max_idle_per_key

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._idle.values())

    def idle_count(self, key: Hashable) -> int:
        """How many idle connections ``key`` has."""
        return len(self._idle.get(key, ()))

    def acquire(self, key: Hashable) -> Optional[C]:
        """Take the most recently used live idle connection for ``key``.

        Expired or dead connections found on the way are closed.
        """
        entries = self._idle.get(key)
        if not entries:
            return None
        deadline = self._clock() - self.idle_timeout
        found: Optional[C] = None
        while entries:
            conn, since = entries.pop()
            if since > deadline and conn.is_reusable():
                found = conn
                break
            conn.close()
        if not entries:
            del self._idle[key]
        return found

    def release(self, key: Hashable, conn: C) -> None:
        """Keep ``conn`` as idle for ``key`` (or close it if none may be kept)."""
        if self.max_idle_per_key == 0 or self.idle_timeout == 0:
            conn.close()
            return
        entries = self._idle.setdefault(key, [])
        entries.append((conn, self._clock()))
        while len(entries) > self.max_idle_per_key:
            oldest, _ = entries.pop(0)
            oldest.close()

    def prune(self) -> int:
        """Close the connections idle for longer than ``idle_timeout``.

        Returns:
            How many were closed.
        """
        deadline = self._clock() - self.idle_timeout
        closed = 0
        for key in list(self._idle):
            entries = self._idle[key]
            keep = [(conn, since) for conn, since in entries if since > deadline]
            for conn, since in entries:
                if since <= deadline:
                    conn.close()
                    closed += 1
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        return closed

    def next_expiry(self) -> Optional[float]:
        """When the oldest idle connection expires (clock time), or None."""
        oldest = min(
            (entries[0][1] for entries in self._idle.values() if entries),
            default=None,
        )
        return None if oldest is None else oldest + self.idle_timeout

    def close(self) -> None:
        """Close every idle connection."""
        idle = self._idle
        self._idle = {}
        for entries in idle.values():
            for conn, _ in entries:
                conn.close()
