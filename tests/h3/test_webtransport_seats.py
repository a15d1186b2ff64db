"""WebTransport's sessions per connection, counted when each is asked for.

A seat is taken when the extended CONNECT arrives, before the application
decides (``prepare_session()``, or an ASGI application between
``webtransport.connect`` and ``webtransport.accept``), and given back if
the session is refused, fails or is cancelled: a crowd of CONNECTs on one
QUIC connection, all decided at once after a wait, gets exactly the limit
(when the limit was checked before the wait and counted after it, 40 of
40 were accepted where the limit was 8).
"""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import weakref
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.asgi import ASGIServerDelegate  # noqa: E402
from squall.testing import ExpectLog, gen_test  # noqa: E402
from squall.web import Application  # noqa: E402
from squall.webtransport import WebTransportHandler  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from .test_server import H3TestCase  # noqa: E402
from .test_webtransport import _WTProtocol, wt_client  # noqa: E402

LIMIT = 8
CROWD = 40


class Crowd:
    """What the application side saw; the client is told of each change."""

    def __init__(self) -> None:
        self.waiting = 0
        self.closed = 0
        self.gate = asyncio.Event()
        self.pokes: list[Callable[[], None]] = []

    def note(self) -> None:
        for poke in self.pokes:
            poke()


async def a_turn_later() -> None:
    """A real suspension (the decision comes after an await, as an auth check's)."""
    loop = asyncio.get_running_loop()
    later = loop.create_future()
    loop.call_soon(lambda: later.done() or later.set_result(None))
    await later


class Gated(WebTransportHandler):
    max_sessions_per_connection = LIMIT

    async def prepare_session(self, mode: str) -> None:
        crowd: Crowd = self.settings["crowd"]
        if mode == "gated":
            crowd.waiting += 1
            crowd.note()
            await crowd.gate.wait()
            return
        await a_turn_later()
        if mode == "refuse":
            self.send_error(403)
        elif mode == "fail":
            raise RuntimeError("prepare_session failed")
        elif mode == "cancel":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await a_turn_later()

    def on_session_close(self, code: int, reason: str) -> None:
        crowd: Crowd = self.settings["crowd"]
        crowd.closed += 1
        crowd.note()


def gated_app(crowd: Crowd) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "webtransport":
            return
        assert (await receive())["type"] == "webtransport.connect"
        mode = scope["path"].rsplit("/", 1)[-1]
        if mode == "gated":
            crowd.waiting += 1
            crowd.note()
            await crowd.gate.wait()
        else:
            await a_turn_later()
        if mode == "refuse":
            await send({"type": "webtransport.close", "status": 403})
            return
        if mode == "fail":
            raise RuntimeError("the application failed before accepting")
        if mode == "cancel":
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await a_turn_later()
        await send({"type": "webtransport.accept"})
        while (await receive())["type"] != "webtransport.disconnect":
            pass
        crowd.closed += 1
        crowd.note()

    return app


def statuses(client: _WTProtocol, sessions: list[int]) -> collections.Counter[int]:
    return collections.Counter(client.responses[s].status for s in sessions)


def decided(client: _WTProtocol, sessions: list[int]) -> int:
    return sum(1 for s in sessions if client.responses[s].status != 0)


def close_all(client: _WTProtocol, sessions: list[int]) -> None:
    """The client ends each session's CONNECT stream (closed without a capsule)."""
    for session in sessions:
        client.send_body(session, b"", end=True)


class SeatChecks(H3TestCase):
    """What both applications pass; a subclass gives the app (no tests of its own)."""

    crowd: Crowd

    async def the_limit_holds_while_the_application_decides(self) -> None:
        await self.started()
        crowd = self.crowd
        async with wt_client(self.get_http_port()) as client:
            crowd.pokes.append(client.poke)
            sessions = [client.open_session("/wt/gated") for _ in range(CROWD)]
            # Every CONNECT is either waiting for the decision or answered.
            await client.until(lambda: crowd.waiting + decided(client, sessions) == CROWD)
            crowd.gate.set()
            await client.until(lambda: decided(client, sessions) == CROWD)
            assert statuses(client, sessions) == {200: LIMIT, 429: CROWD - LIMIT}
            assert crowd.waiting == LIMIT
            # The seats come back as the sessions end: as many again fit.
            accepted = [s for s in sessions if client.responses[s].status == 200]
            close_all(client, accepted)
            await client.until(lambda: crowd.closed == LIMIT)
            again = [client.open_session("/wt/gated") for _ in range(LIMIT)]
            await client.until(lambda: decided(client, again) == LIMIT)
            assert statuses(client, again) == {200: LIMIT}
            one_more = [client.open_session("/wt/gated")]
            await client.until(lambda: decided(client, one_more) == 1)
            assert statuses(client, one_more) == {429: 1}

    async def refused_failed_and_cancelled_give_their_seat_back(self) -> None:
        await self.started()
        crowd = self.crowd
        crowd.gate.set()
        async with wt_client(self.get_http_port()) as client:
            crowd.pokes.append(client.poke)
            # More of each than the limit, all at once: none is left holding a seat.
            tried = {
                mode: [client.open_session(f"/wt/{mode}") for _ in range(LIMIT + 1)]
                for mode in ("refuse", "fail", "cancel")
            }
            everyone = [s for group in tried.values() for s in group]
            with ExpectLog(
                "squall.application", "(Uncaught exception|Exception in ASGI application)"
            ):
                await client.until(
                    lambda: all(
                        client.responses[s].ended or client.responses[s].reset is not None
                        for s in everyone
                    )
                )
            assert 429 not in statuses(client, everyone), statuses(client, everyone)
            assert statuses(client, tried["refuse"]) == {403: LIMIT + 1}
            assert statuses(client, tried["fail"]) == {500: LIMIT + 1}
            after = [client.open_session("/wt/gated") for _ in range(LIMIT)]
            await client.until(lambda: decided(client, after) == LIMIT)
            assert statuses(client, after) == {200: LIMIT}


class HandlerSeatsTest(SeatChecks):
    def get_app(self) -> Application:
        self.crowd = Crowd()
        return Application([(r"/wt/(\w+)", Gated)], crowd=self.crowd)

    @gen_test(timeout=HANG_GUARD)
    async def test_the_limit_holds_while_prepare_session_awaits(self) -> None:
        await self.the_limit_holds_while_the_application_decides()

    @gen_test(timeout=HANG_GUARD)
    async def test_refused_failed_and_cancelled_give_their_seat_back(self) -> None:
        with ExpectLog("squall.access", ".*", level=logging.WARNING, required=False):
            await self.refused_failed_and_cancelled_give_their_seat_back()


class ASGISeatsTest(SeatChecks):
    def get_app(self) -> Any:
        self.crowd = Crowd()
        return ASGIServerDelegate(gated_app(self.crowd), wt_max_sessions=LIMIT)

    @gen_test(timeout=HANG_GUARD)
    async def test_the_limit_holds_while_the_app_awaits_before_accepting(self) -> None:
        await self.the_limit_holds_while_the_application_decides()

    @gen_test(timeout=HANG_GUARD)
    async def test_refused_failed_and_cancelled_give_their_seat_back(self) -> None:
        await self.refused_failed_and_cancelled_give_their_seat_back()


class Parked(WebTransportHandler):
    """on_datagram parks on a Future only a weak reference names."""

    async def on_datagram(self, data: bytes) -> None:
        settings = self.settings
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        settings["parked"].append(weakref.ref(future))
        settings["crowd"].note()
        try:
            await future
            settings["ends"].append("resumed")
        except asyncio.CancelledError:
            settings["ends"].append("cancelled")
            raise
        finally:
            settings["crowd"].note()


class HeldTasksTest(H3TestCase):
    def get_app(self) -> Application:
        self.crowd = Crowd()
        self.parked: list[weakref.ReferenceType[asyncio.Future[None]]] = []
        self.ends: list[str] = []
        return Application([("/wt", Parked)], crowd=self.crowd, parked=self.parked, ends=self.ends)

    @gen_test(timeout=HANG_GUARD)
    async def test_the_owners_tasks_are_held_and_end_with_the_session(self) -> None:
        await self.started()
        async with wt_client(self.get_http_port()) as client:
            self.crowd.pokes.append(client.poke)
            session = client.open_session("/wt")
            await client.until(lambda: client.responses[session].status == 200)
            for data in (b"one", b"two"):
                client.h3.send_datagram(session, data)
            client.transmit()
            await client.until(lambda: len(self.parked) == 2)
            gc.collect()
            first = self.parked[0]()
            assert first is not None, "the on_datagram task was collected"
            first.set_result(None)
            await client.until(lambda: self.ends == ["resumed"])
            # The session ends: the task still parked ends with it.
            client.send_body(session, b"", end=True)
            await client.until(lambda: self.ends == ["resumed", "cancelled"])
