"""ConnectionPool rules, without sockets: a fake clock and fake connections."""

from __future__ import annotations

import pytest

from squall.simple_httpclient._pool import ConnectionPool


class FakeConn:
    def __init__(self, alive: bool = True) -> None:
        self.alive = alive
        self.closed = False

    def is_reusable(self) -> bool:
        return self.alive and not self.closed

    def close(self) -> None:
        self.closed = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(idle_timeout: float = 10.0, max_idle: int = 2) -> tuple[ConnectionPool[FakeConn], Clock]:
    clock = Clock()
    return ConnectionPool(clock, idle_timeout=idle_timeout, max_idle_per_key=max_idle), clock


def test_acquire_empty_returns_none() -> None:
    pool, _ = make()
    assert pool.acquire("k") is None
    assert len(pool) == 0


def test_release_then_acquire_same_key_only() -> None:
    pool, _ = make()
    conn = FakeConn()
    pool.release("a", conn)
    assert pool.acquire("b") is None
    assert pool.acquire("a") is conn
    assert pool.acquire("a") is None
    assert not conn.closed


def test_most_recent_first() -> None:
    pool, clock = make()
    first, second = FakeConn(), FakeConn()
    pool.release("k", first)
    clock.now += 1
    pool.release("k", second)
    assert pool.acquire("k") is second
    assert pool.acquire("k") is first


def test_bound_per_key_closes_oldest() -> None:
    pool, _ = make(max_idle=2)
    conns = [FakeConn() for _ in range(3)]
    for conn in conns:
        pool.release("k", conn)
    assert conns[0].closed
    assert pool.idle_count("k") == 2
    pool.release("other", FakeConn())
    assert len(pool) == 3


def test_expired_connection_is_closed_not_returned() -> None:
    pool, clock = make(idle_timeout=10)
    conn = FakeConn()
    pool.release("k", conn)
    clock.now += 10
    assert pool.acquire("k") is None
    assert conn.closed
    assert pool.idle_count("k") == 0


def test_dead_connection_is_skipped() -> None:
    pool, clock = make()
    good, dead = FakeConn(), FakeConn(alive=False)
    pool.release("k", good)
    clock.now += 1
    pool.release("k", dead)
    assert pool.acquire("k") is good
    assert dead.closed


def test_prune_and_next_expiry() -> None:
    pool, clock = make(idle_timeout=10)
    assert pool.next_expiry() is None
    old, new = FakeConn(), FakeConn()
    pool.release("a", old)
    clock.now += 5
    pool.release("b", new)
    assert pool.next_expiry() == 110.0
    clock.now = 110.0
    assert pool.prune() == 1
    assert old.closed and not new.closed
    assert pool.next_expiry() == 115.0
    clock.now = 200
    assert pool.prune() == 1
    assert len(pool) == 0


def test_zero_bound_or_timeout_keeps_nothing() -> None:
    for pool, _ in (make(max_idle=0), make(idle_timeout=0)):
        conn = FakeConn()
        pool.release("k", conn)
        assert conn.closed
        assert len(pool) == 0


def test_close_closes_everything() -> None:
    pool, _ = make()
    conns = [FakeConn(), FakeConn()]
    pool.release("a", conns[0])
    pool.release("b", conns[1])
    pool.close()
    assert all(c.closed for c in conns)
    assert len(pool) == 0


@pytest.mark.parametrize("kwargs", [{"idle_timeout": -1}, {"max_idle_per_key": -1}])
def test_bad_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        ConnectionPool(Clock(), **kwargs)  # type: ignore[arg-type]
