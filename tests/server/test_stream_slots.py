"""A multiplexed stream's slot in its connection's concurrency count
(``httpserver/_muxstream``'s `StreamSlots`), as a property.

Random sequences of what can happen to the streams of one HTTP/2
connection (a request opened, over the limit or not; body pieces, taken at
once, awaited, or refused by the delegate; the end of the body; a body over
the limit; an awaitable that ends well or fails; a reset by the client; a
reset by the application (``close()``); the body timeout; a handler that
takes the request, fails on it or answers it, early or late) are played on
the real driver over a fake transport, the client being the ``h2``
package. After each step every stream's slot is what the rule says: a
stream holds one until it is over on the wire (its answer ended, or it was
reset or refused) and no application code runs for it (an awaitable
pending, or a handler that took the whole request and has not answered);
the connection's count is the number of such streams (each freed once).
Once everything has ended, the count is zero and a new request is served.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Optional

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from squall._h2 import H2Limits  # noqa: E402
from squall.httpserver import HTTPServer  # noqa: E402
from squall.httputil import (  # noqa: E402
    HTTPConnection,
    HTTPHeaders,
    HTTPInputError,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    ResponseStartLine,
)
from squall.log import app_log, gen_log  # noqa: E402
from tests._wait import HANG_GUARD

from ._fakes import FakeTransport  # noqa: E402

LIMIT = 3
MAX_BODY = 64


@dataclass
class Stream:
    """One request as the test sees it (the client's side and the handler's)."""

    sid: int
    has_body: bool
    finish_mode: str  # what the delegate's finish() does: hold, raise, bad, answer
    conn: Optional[HTTPConnection] = None  # request.connection, once started
    data_mode: str = "take"  # what the next data_received does: take, block, raise, bad
    pending: Optional[asyncio.Future[None]] = None
    holds: bool = False  # the handler has the whole request and has not answered
    answered: bool = False  # the handler finished a response on an open stream
    client_done: bool = False  # the client sent END_STREAM or reset the stream
    server_ended: bool = False  # the server's END_STREAM came
    reset: bool = False  # a RST_STREAM either way

    def expected_counted(self) -> bool:
        if self.conn is None:
            return False  # refused over the limit: never started
        if self.answered and self.server_ended:
            return False  # complete
        if not (self.reset or self.server_ended):
            return True  # open on the wire
        return self.holds or (self.pending is not None and not self.pending.done())


class App(HTTPServerConnectionDelegate):
    def __init__(self) -> None:
        self.by_sid: dict[int, Stream] = {}
        self.loop = asyncio.get_running_loop()

    def start_request(self, server_conn: object, request_conn: HTTPConnection) -> Any:
        rec = self.by_sid[request_conn.stream_id]  # type: ignore[attr-defined]
        rec.conn = request_conn
        loop = self.loop

        class Message(HTTPMessageDelegate):
            def data_received(self, chunk: bytes) -> Optional[asyncio.Future[None]]:
                mode, rec.data_mode = rec.data_mode, "take"
                if mode == "block":
                    rec.pending = loop.create_future()
                    return rec.pending
                if mode == "raise":
                    raise RuntimeError("the application fails on a body piece")
                if mode == "bad":
                    raise HTTPInputError("a body piece the application refuses")
                return None

            def finish(self) -> None:
                if rec.finish_mode == "raise":
                    raise RuntimeError("the application fails on the request")
                if rec.finish_mode == "bad":
                    raise HTTPInputError("a request the application refuses")
                rec.holds = True
                if rec.finish_mode == "answer":
                    answer(rec)

        return Message()


def answer(rec: Stream) -> None:
    """The handler answers (on an exchange that may be gone already)."""
    conn = rec.conn
    assert conn is not None
    rec.holds = False
    conn.write_headers(
        ResponseStartLine("HTTP/2.0", 200, "OK"), HTTPHeaders({"Content-Length": "2"}), b"ok"
    )
    conn.finish()
    # An answer on a stream already over on the wire (reset, refused) is
    # dropped: it does not complete the stream.
    rec.answered = not (rec.reset or rec.server_ended)


# One step: (kind, which stream (an index into those opened), a choice).
STEPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "open",
                "open",
                "open",
                "data",
                "data",
                "big",
                "end",
                "resolve",
                "client_reset",
                "server_reset",
                "timeout",
                "respond",
            ]
        ),
        st.integers(0, 1000),
        st.integers(0, 3),
    ),
    min_size=4,
    max_size=40,
)


class Scenario:
    def __init__(self) -> None:
        from squall.httpserver._h2protocol import _H2Protocol

        self.loop = asyncio.get_running_loop()
        # Nothing may fail in the loop's callbacks (the driver's unblocking).
        self.errors: list[dict[str, Any]] = []
        self.loop.set_exception_handler(lambda loop, context: self.errors.append(context))
        self.app = App()
        limits = H2Limits(max_concurrent_streams=LIMIT)
        server = HTTPServer(self.app, http2=True, http2_limits=limits, max_body_size=MAX_BODY)
        self.proto = _H2Protocol(server, server.conn_params, self.loop, None, limits)
        self.transport = FakeTransport(self.proto, self.loop)
        self.proto.connection_made(self.transport)
        config = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.client = h2.connection.H2Connection(config)
        self.client.initiate_connection()
        self.streams: list[Stream] = []

    async def pump(self) -> None:
        """Move bytes both ways until neither side has more."""
        for _ in range(20):
            moved = False
            out = self.client.data_to_send()
            if out:
                moved = True
                self.proto.data_received(out)
            for _ in range(3):
                await asyncio.sleep(0)  # what the server flushes on the next turn
            back = b"".join(self.transport.writes)
            self.transport.writes.clear()
            if back:
                moved = True
                self.on_events(self.client.receive_data(back))
            if not moved:
                return
        raise AssertionError("the exchange does not settle")

    def on_events(self, events: list[Any]) -> None:
        by_sid = self.app.by_sid
        for event in events:
            rec = by_sid.get(getattr(event, "stream_id", 0) or 0)
            if rec is None:
                continue
            if isinstance(event, h2.events.StreamEnded):
                rec.server_ended = True
            elif isinstance(event, h2.events.StreamReset):
                rec.reset = True
            elif isinstance(event, h2.events.DataReceived):
                self.client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)

    def ignore_the_limit(self) -> None:
        """The client opens streams past the server's limit (they are refused)."""
        remote = self.client.remote_settings
        remote[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] = 10 * LIMIT
        remote.acknowledge()

    def pick(self, index: int) -> Optional[Stream]:
        return self.streams[index % len(self.streams)] if self.streams else None

    def send(self, rec: Stream, data: bytes, end: bool) -> None:
        """Client DATA, unless h2 says the stream is closed for sending."""
        try:
            self.client.send_data(rec.sid, data, end_stream=end)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
            return  # (KeyError: h2 has forgotten the stream)
        if end:
            rec.client_done = True

    async def step(self, kind: str, index: int, choice: int) -> None:
        rec = self.pick(index)
        if kind == "open":
            sid = self.client.get_next_available_stream_id()
            has_body = choice % 2 == 0
            modes = ["hold", "raise", "bad", "answer"]
            rec = Stream(sid, has_body, modes[(index + choice) % 4])
            self.app.by_sid[sid] = rec
            self.streams.append(rec)
            fields = [(":method", "POST" if has_body else "GET"), (":path", "/")]
            fields += [(":scheme", "http"), (":authority", "t")]
            self.client.send_headers(sid, fields, end_stream=not has_body)
            rec.client_done = not has_body
        elif rec is None:
            return
        elif kind in ("data", "big"):
            if rec.client_done or not rec.has_body:
                return
            rec.data_mode = ["take", "block", "raise", "bad"][choice]
            if rec.pending is not None and not rec.pending.done():
                rec.data_mode = "take"  # one awaitable at a time: the rest is held
            self.send(rec, b"x" * (MAX_BODY + 1 if kind == "big" else 8), False)
        elif kind == "end":
            if not rec.client_done:
                self.send(rec, b"", True)
        elif kind == "resolve":
            if rec.pending is not None and not rec.pending.done():
                if choice == 0:
                    rec.pending.set_exception(RuntimeError("the awaitable fails"))
                elif choice == 1:
                    rec.pending.set_exception(HTTPInputError("the awaitable refuses"))
                else:
                    rec.pending.set_result(None)
        elif kind == "client_reset":
            if not (rec.reset or (rec.client_done and rec.server_ended)):
                try:
                    self.client.reset_stream(rec.sid)
                except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                    return
                rec.reset = rec.client_done = True
        elif kind == "server_reset":
            if rec.conn is not None:
                rec.conn.close()  # the application resets its stream
        elif kind == "timeout":
            if rec.conn is not None:
                rec.conn.set_body_timeout(1e-9)
                self.proto._sweep()  # the driver's timer, run now
        elif kind == "respond":
            if rec.conn is not None and not rec.answered:
                answer(rec)
        await self.pump()

    def check(self) -> None:
        assert self.errors == []
        for rec in self.streams:
            if rec.conn is not None:
                counted = rec.conn._counted  # type: ignore[attr-defined]
                assert counted == rec.expected_counted(), rec
        expected = sum(rec.expected_counted() for rec in self.streams)
        assert self.proto.slots.active == expected

    async def wind_down(self) -> None:
        """End everything: awaitables done, handlers answer, the client resets what is open."""
        for rec in self.streams:
            if rec.pending is not None and not rec.pending.done():
                rec.pending.set_result(None)
        await self.pump()
        for rec in self.streams:
            if rec.conn is not None and rec.holds:
                answer(rec)
        await self.pump()
        for rec in self.streams:
            if rec.reset or (rec.client_done and rec.server_ended):
                continue
            try:
                self.client.reset_stream(rec.sid)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError, KeyError):
                continue
            rec.reset = True
        await self.pump()
        # Handlers that took a request after the resets above answer too.
        for rec in self.streams:
            if rec.conn is not None and rec.holds:
                answer(rec)
        await self.pump()

    async def served(self) -> bool:
        sid = self.client.get_next_available_stream_id()
        rec = Stream(sid, False, "answer")
        self.app.by_sid[sid] = rec
        fields = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "t")]
        self.client.send_headers(sid, fields, end_stream=True)
        await self.pump()
        return rec.answered and rec.server_ended and not rec.reset


def quiet_logs() -> Any:
    """What the steps make the server log (errors, malformed requests) is expected."""
    import contextlib

    @contextlib.contextmanager
    def quiet() -> Any:
        saved = [(log, log.disabled) for log in (app_log, gen_log)]
        for log, _ in saved:
            log.disabled = True
        try:
            yield
        finally:
            for log, disabled in saved:
                log.disabled = disabled

    return quiet()


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(STEPS)
def test_every_way_a_stream_ends_frees_its_slot_once(steps: list[tuple[str, int, int]]) -> None:
    async def main() -> None:
        scenario = Scenario()
        try:
            await scenario.pump()
            scenario.ignore_the_limit()
            for kind, index, choice in steps:
                await scenario.step(kind, index, choice)
                scenario.check()
            await scenario.wind_down()
            scenario.check()
            assert scenario.proto.slots.active == 0
            assert await scenario.served()
        finally:
            scenario.transport.close()
            await asyncio.sleep(0)

    with quiet_logs():
        asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
