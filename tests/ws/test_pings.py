"""Periodic pings from one wheel per loop, not a timer per connection."""

from __future__ import annotations

from typing import Any

from squall.testing import AsyncHTTPTestCase, AsyncTestCase, gen_test
from squall.web import Application
from squall.websocket import WebSocketHandler, websocket_connect
from tests._wait import until


class Held(WebSocketHandler):
    def initialize(self, held: list[WebSocketHandler]) -> None:
        self.held = held

    def open(self, *args: Any) -> None:
        self.held.append(self)


def timers_of(state: Any) -> list[Any]:
    """The values in a connection's timer state that are scheduled callbacks."""
    values = [getattr(state, name, None) for name in type(state).__slots__]
    return [v for v in values if hasattr(v, "cancel") and hasattr(v, "when")]


class ManyPinged(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        self.held: list[WebSocketHandler] = []
        # Long enough that no ping is due during the test.
        return Application([("/", Held, {"held": self.held})], websocket_ping_interval=60)

    @gen_test
    async def test_open_connections_that_ping_keep_no_timer_of_their_own(self) -> None:
        url = f"ws://127.0.0.1:{self.get_http_port()}/"
        clients = [await websocket_connect(url) for _ in range(5)]
        await until(lambda: len(self.held) == 5)
        states = [h.ws_connection._timers for h in self.held]  # type: ignore[union-attr]
        assert all(state is not None for state in states)
        assert [timers_of(state) for state in states] == [[]] * 5
        wheels = {id(state.ping_wheel) for state in states}
        assert len(wheels) == 1 and states[0].ping_wheel.count == 5
        for client in clients:
            client.close()
        await until(
            lambda: states[0].ping_wheel is None and all(h.ws_connection is None for h in self.held)
        )


class Conn:
    def __init__(self) -> None:
        self.pings: list[float] = []
        self.checks: list[float] = []

    def send_periodic_ping(self, now: float) -> None:
        self.pings.append(now)

    def check_pong(self, now: float, timeout: float) -> None:
        self.checks.append(now)


class WheelTest(AsyncTestCase):
    @gen_test
    async def test_each_connection_is_pinged_every_round_and_checked_between(self) -> None:
        from squall.websocket._pings import PingWheel

        wheel = PingWheel(0.2, 0.1)  # 4 ticks of 0.05 s; checks 2 ticks after each ping
        conns = [Conn() for _ in range(3)]
        slots = [wheel.add(c) for c in conns]
        await until(lambda: all(len(c.pings) >= 2 for c in conns))
        for c in conns:
            # A round apart (less a tick: the first may come late), a check between.
            assert c.pings[1] - c.pings[0] >= 0.2 - 0.05 - 1e-3
            assert any(c.pings[0] < t < c.pings[1] + 0.05 for t in c.checks)
        for c, slot in zip(conns, slots, strict=True):
            wheel.remove(c, slot)
        assert wheel.count == 0 and wheel.timer is None
        pinged = [len(c.pings) for c in conns]
        wheel.remove(conns[0], slots[0])  # twice: nothing more
        assert wheel.count == 0 and [len(c.pings) for c in conns] == pinged
