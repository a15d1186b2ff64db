"""EventSourceHandler over HTTP/1.1, HTTP/2 and HTTP/3: headers, events flushed
one by one, pings, Last-Event-ID checks, the client leaving, the server ending streams."""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any, Optional

import pytest

from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test
from squall.web import Application, EventSourceHandler, EventStreamError

from .._wait import HANG_GUARD
from ._clients import Stream, open_stream


class Feed(EventSourceHandler):
    """Sends what the test puts in its queue; None ends the stream."""

    ping_interval = None

    async def stream(self) -> None:
        state = self.settings["state"]
        state["handlers"].append(self)
        state["last_event_id"] = self.last_event_id
        queue: asyncio.Queue[Optional[dict[str, Any]]] = state["queue"]
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                try:
                    await self.send_event(**item)
                except EventStreamError as exc:
                    state["refused"].append(str(exc))
        except asyncio.CancelledError:
            state["cancelled"].set_result(True)
            raise


class Pinged(Feed):
    ping_interval = 0.02


class Broken(EventSourceHandler):
    async def stream(self) -> None:
        raise ZeroDivisionError("bug in stream")


class Cases:
    """The cases; each subclass runs them over one protocol."""

    protocol = "http/1.1"
    state: dict[str, Any]

    def get_app(self) -> Application:
        loop = asyncio.get_event_loop()
        self.state = {
            "queue": asyncio.Queue(),
            "handlers": [],
            "refused": [],
            "cancelled": loop.create_future(),
        }
        return Application(
            [("/feed", Feed), ("/pinged", Pinged), ("/broken", Broken)],
            state=self.state,
            compress_response=True,
        )

    async def started(self) -> None:
        pass

    async def open(self, path: str = "/feed", **headers: str) -> Stream:
        await self.started()
        port = self.get_http_port()  # type: ignore[attr-defined]
        return await open_stream(self.protocol, port, path, headers)

    @gen_test(timeout=HANG_GUARD)
    async def test_headers_retry_and_each_event_flushed_as_sent(self) -> None:
        stream = await self.open(**{"Accept-Encoding": "gzip"})
        assert stream.status == 200
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["cache-control"] == "no-store"
        assert stream.headers["x-accel-buffering"] == "no"
        # compress_response is on and the client takes gzip: still not compressed.
        assert "content-encoding" not in stream.headers
        await stream.until(lambda: stream.body.startswith(b"retry: 2000\n\n"))
        for n in range(3):
            # The next event is sent only once the previous one arrived.
            self.state["queue"].put_nowait({"data": f"line {n}\nmore", "id": f"{n}-e"})
            await stream.until(lambda n=n: len(stream.events()) == n + 1)  # type: ignore[misc]
        assert [(e["id"], e["data"]) for e in stream.events()] == [
            (f"{n}-e", f"line {n}\nmore") for n in range(3)
        ]
        assert not stream.ended
        self.state["queue"].put_nowait(None)
        await stream.until(lambda: stream.ended)
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_named_events_and_injection_refused(self) -> None:
        stream = await self.open()
        self.state["queue"].put_nowait({"data": "x", "event": "post\ndata: evil"})
        self.state["queue"].put_nowait({"data": "y", "id": "1\nevent: evil"})
        self.state["queue"].put_nowait({"data": "z", "event": "post"})
        await stream.until(lambda: len(stream.events()) == 1)
        assert stream.events()[0]["event"] == "post" and stream.events()[0]["data"] == "z"
        assert b"evil" not in stream.body
        assert len(self.state["refused"]) == 2
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_pings_keep_the_stream_alive(self) -> None:
        stream = await self.open("/pinged")
        await stream.until(lambda: stream.body.count(b": ping\n\n") >= 3)
        assert stream.events() == []  # comments dispatch nothing
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_last_event_id_is_read(self) -> None:
        stream = await self.open(**{"Last-Event-ID": "17-abc"})
        await stream.until(lambda: bool(self.state["handlers"]))
        assert self.state["last_event_id"] == "17-abc"
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_overlong_last_event_id_is_a_400(self) -> None:
        stream = await self.open(**{"Last-Event-ID": "9" * 300})
        assert stream.status == 400
        await stream.until(lambda: stream.ended)
        assert b"Bad Last-Event-ID" in stream.body
        assert self.state["handlers"] == []
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_client_leaving_cancels_the_stream(self) -> None:
        stream = await self.open()
        await stream.until(lambda: bool(self.state["handlers"]))
        await stream.leave()
        assert await asyncio.wait_for(self.state["cancelled"], HANG_GUARD) is True
        handler = self.state["handlers"][0]
        assert not handler.stream_open

    @gen_test(timeout=HANG_GUARD)
    async def test_end_all_ends_the_response_cleanly(self) -> None:
        stream = await self.open()
        await stream.until(lambda: bool(self.state["handlers"]))
        self.state["queue"].put_nowait({"data": "before", "id": "1-e"})
        await stream.until(lambda: len(stream.events()) == 1)
        assert Feed.end_all() == 1
        await stream.until(lambda: stream.ended)
        assert await asyncio.wait_for(self.state["cancelled"], HANG_GUARD) is True
        assert Feed.end_all() == 0
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_nothing_is_sent_after_the_end_was_asked_for(self) -> None:
        stream = await self.open()
        await stream.until(lambda: bool(self.state["handlers"]))
        # In one loop turn: events become ready to send, then the end is asked.
        for n in range(3):
            self.state["queue"].put_nowait({"data": f"late {n}"})
        assert Feed.end_all() == 1
        await stream.until(lambda: stream.ended)
        assert stream.events() == []
        await stream.leave()

    @gen_test(timeout=HANG_GUARD)
    async def test_a_bug_in_stream_ends_the_stream(self) -> None:
        from squall.testing import ExpectLog

        with ExpectLog("squall.application", "Uncaught exception"):
            stream = await self.open("/broken")
            await stream.until(lambda: stream.ended)
        await stream.leave()


class H1Test(Cases, AsyncHTTPTestCase):
    protocol = "http/1.1"


@pytest.mark.skipif(importlib.util.find_spec("h2") is None, reason="h2 is not installed")
class H2Test(Cases, AsyncHTTPTestCase):
    protocol = "h2"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}


@pytest.mark.skipif(
    importlib.util.find_spec("aioquic") is None,
    reason="aioquic (the tests' QUIC peer) is not installed",
)
class H3Test(Cases, AsyncHTTPSTestCase):
    protocol = "h3"

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http3": True}

    async def started(self) -> None:
        await asyncio.gather(*self.http_server._h3_tasks)
