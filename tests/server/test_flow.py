"""ReadFlow (httpserver/_flow.py): the read-side flow control both drivers use."""

from __future__ import annotations

import asyncio

from squall.httpserver._flow import ReadFlow


class _Transport:
    # Counts the calls: ReadFlow must pause and resume a transport once each.
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def _flow() -> tuple[ReadFlow, _Transport]:
    flow = ReadFlow()
    transport = _Transport()
    flow.transport = transport  # type: ignore[assignment]
    return flow, transport


def test_a_pause_is_not_doubled_and_a_resume_follows_only_a_pause() -> None:
    flow, transport = _flow()
    flow.resume()
    assert transport.calls == [] and not flow.paused
    flow.pause()
    flow.pause()
    assert transport.calls == ["pause"] and flow.paused
    flow.resume()
    flow.resume()
    assert transport.calls == ["pause", "resume"] and not flow.paused


def test_no_transport_yet_nothing_is_paused() -> None:
    flow = ReadFlow()
    flow.pause()
    assert not flow.paused


def test_release_reports_the_pause_and_lets_the_transport_go() -> None:
    flow, transport = _flow()
    flow.pause()
    assert flow.release() is True
    assert flow.transport is None and not flow.paused
    flow.pause()
    flow.resume()
    assert transport.calls == ["pause"]
    assert flow.release() is False


def test_both_drivers_pause_reading_while_the_transport_is_over_its_mark() -> None:
    # The HTTP/1.1 and HTTP/2 protocols each hold a ReadFlow; pause_writing
    # pauses reading through it and resume_writing resumes it.
    from squall.httpserver import HTTPServer
    from squall.httpserver._h2protocol import _H2Protocol
    from squall.httpserver._protocol import _HTTPProtocol

    from ._fakes import FakeTransport

    loop = asyncio.new_event_loop()
    try:
        server = HTTPServer(lambda request: None, http2=True)
        h1 = _HTTPProtocol(server, server.conn_params, None, loop)
        h2 = _H2Protocol(server, server.conn_params, loop, None, server._h2_limits)
        for proto in (h1, h2):
            transport = FakeTransport(proto, loop)
            proto.connection_made(transport)
            proto.pause_writing()
            assert not transport.reading and proto._reading.paused
            proto.resume_writing()
            assert transport.reading and not proto._reading.paused
            proto._reading.release()
    finally:
        loop.close()


def test_both_drivers_sort_a_delegates_outcome_the_same_way() -> None:
    # One helper for both drivers (_protocol and _h2protocol): the request's
    # fault is a 400 with its message; anything else is the application's,
    # logged once, cancellation included.
    import logging

    from squall.httpserver._flow import (
        APP_ERROR,
        BAD_REQUEST,
        FINISHED,
        sort_outcome,
        wait_on,
    )
    from squall.httputil import HTTPInputError
    from squall.testing import ExpectLog

    async def main() -> list[tuple[int, str]]:
        loop = asyncio.get_running_loop()
        outcomes: list[tuple[int, str]] = []
        futures = []
        for fill in ("result", "input", "app", "cancel"):
            future: asyncio.Future[None] = loop.create_future()
            if fill == "result":
                future.set_result(None)
            elif fill == "input":
                future.set_exception(HTTPInputError("bad chunk"))
            elif fill == "app":
                future.set_exception(ValueError("oops"))
            else:
                future.cancel()
            futures.append(future)
        sorted_all = loop.create_future()

        def collect(future: asyncio.Future[None]) -> None:
            outcomes.append(sort_outcome(future))
            if len(outcomes) == 5 and not sorted_all.done():
                sorted_all.set_result(None)

        for future in futures:
            wait_on(future, loop, collect)

        async def coroutine() -> None:
            return None

        wait_on(coroutine(), loop, collect)  # a coroutine gets a Task
        await asyncio.wait_for(sorted_all, 1)
        return outcomes

    with ExpectLog("squall.application", "Uncaught exception", level=logging.ERROR):
        outcomes = asyncio.run(main())
    assert outcomes[:4] == [
        (FINISHED, ""),
        (BAD_REQUEST, "bad chunk"),
        (APP_ERROR, ""),
        (APP_ERROR, ""),
    ]
    assert outcomes[4] == (FINISHED, "")
