"""ReadFlow (httpserver/_flow.py): the read-side flow control both drivers use."""

from __future__ import annotations

import asyncio
from typing import Any

from squall.httpserver._flow import ReadFlow, request_line
from squall.httputil import RequestStartLine
from tests._wait import HANG_GUARD


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


def _stream(**fields: object) -> Any:
    # A real stream of a multiplexed connection (its protocol left out): the
    # helpers read its fields natively in the compiled build, which refuses
    # any other object.
    from squall.httpserver._muxstream import StreamSlots, _MuxStream

    slots = StreamSlots()
    stream = _MuxStream(None, 1, 0.0, None, asyncio.AbstractEventLoop(), 1024, slots)
    for name, value in fields.items():
        setattr(stream, name, value)
    return stream


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
        await asyncio.wait_for(sorted_all, HANG_GUARD)
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


class _Delegate:
    """Takes body pieces; answers the piece numbered ``busy_at`` with an awaitable."""

    def __init__(self, busy_at: int = -1) -> None:
        self.pieces: list[bytes] = []
        self.busy_at = busy_at

    def data_received(self, chunk: bytes) -> object:
        self.pieces.append(chunk)
        return object() if len(self.pieces) - 1 == self.busy_at else None


def test_deliver_hands_a_body_on_in_chunk_size_pieces() -> None:
    from squall.httpserver._flow import deliver

    delegate = _Delegate()
    assert deliver(delegate, b"abcdefg", 3) == (None, b"")  # type: ignore[arg-type]
    assert delegate.pieces == [b"abc", b"def", b"g"]
    small = _Delegate()
    assert deliver(small, b"ab", 3) == (None, b"")  # type: ignore[arg-type]
    assert small.pieces == [b"ab"]


def test_deliver_stops_at_a_busy_delegate_and_returns_the_rest() -> None:
    from squall.httpserver._flow import deliver

    delegate = _Delegate(busy_at=1)
    ret, rest = deliver(delegate, b"abcdefg", 3)  # type: ignore[arg-type]
    assert ret is not None and rest == b"g"
    assert delegate.pieces == [b"abc", b"def"]


def test_hold_keeps_the_rest_ahead_of_what_came_later() -> None:
    stream = _stream()
    stream.hold(b"later")
    stream.hold(None)  # the end of the body
    stream.hold(b"rest", True)
    assert stream._inbox == [b"rest", b"later", None]


def test_body_overdue_takes_the_requests_timeout_first() -> None:
    from squall.httpserver._flow import body_overdue

    assert body_overdue(None, None, 1e9) is False  # no limit at all
    assert body_overdue(None, 5.0, 6.0) is True
    assert body_overdue(10.0, 5.0, 6.0) is False  # set_body_timeout wins
    assert body_overdue(1.0, None, 2.0) is True


def test_checked_host_returns_the_host_to_remember() -> None:
    import pytest

    from squall.httpserver._flow import checked_host
    from squall.httputil import HTTPHeaders, HTTPInputError

    assert checked_host(HTTPHeaders({"Host": "example.com:8080"}), "HTTP/1.1") == (
        "example.com:8080"
    )
    assert checked_host(HTTPHeaders(), "HTTP/1.0") is None
    with pytest.raises(HTTPInputError):
        checked_host(HTTPHeaders(), "HTTP/1.1")
    with pytest.raises(HTTPInputError):
        checked_host(HTTPHeaders({"Host": "a b"}), "HTTP/1.1")


def test_a_host_that_passed_is_taken_from_the_table_and_nothing_else_is() -> None:
    import pytest

    from squall.httpserver import _flow
    from squall.httputil import HTTPHeaders, HTTPInputError, _drivers

    table = _drivers._GOOD_HOSTS
    table.clear()
    assert _flow.checked_host(HTTPHeaders({"Host": "chat.example:443"}), "HTTP/1.1") == (
        "chat.example:443"
    )
    assert "chat.example:443" in table
    # From the table: the same answer, for any version.
    assert _flow.checked_host(HTTPHeaders({"Host": "chat.example:443"}), "HTTP/1.0") == (
        "chat.example:443"
    )
    # A good value twice is still two Host fields; a bad one never enters.
    twice = HTTPHeaders()
    twice.add("Host", "chat.example:443")
    twice.add("Host", "chat.example:443")
    with pytest.raises(HTTPInputError, match="Multiple Host headers"):
        _flow.checked_host(twice, "HTTP/1.1")
    with pytest.raises(HTTPInputError, match="Invalid Host header"):
        _flow.checked_host(HTTPHeaders({"Host": "a b"}), "HTTP/1.1")
    assert "a b" not in table
    with pytest.raises(HTTPInputError, match="Missing Host header"):
        _flow.checked_host(HTTPHeaders(), "HTTP/1.1")
    # Bounded in count and in length: a client naming ever new hosts only
    # makes the table start again.
    for i in range(3 * _drivers._GOOD_HOSTS_MAX):
        _flow.checked_host(HTTPHeaders({"Host": f"h{i}.example"}), "HTTP/1.1")
        assert len(table) <= _drivers._GOOD_HOSTS_MAX
    long_host = "a" * (_drivers._GOOD_HOST_MAX_LEN + 1)
    assert _flow.checked_host(HTTPHeaders({"Host": long_host}), "HTTP/1.1") == long_host
    assert long_host not in table
    table.clear()


def test_the_three_drivers_read_through_one_path() -> None:
    # Body delivery, the Host check and the inbox of a busy stream are
    # _flow's, not a copy per driver; the multiplexed drivers'
    # is their streams' base's. Read as text: the compiled
    # build has no source to inspect.
    from pathlib import Path

    import squall

    here = Path(squall.__file__).parent / "httpserver"
    assert "deliver(delegate" in (here / "_protocol.py").read_text()
    assert "deliver(delegate" in (here / "_muxstream.py").read_text()
    for name in ("_h2protocol.py", "_h3protocol.py"):
        assert "stream.deliver(" in (here / name).read_text(), name
    for name in ("_protocol.py", "_h2protocol.py", "_h3protocol.py"):
        source = (here / name).read_text()
        # (known_host: checked_host unless the connection's last Host.)
        assert "checked_host(headers" in source or "known_host(headers" in source, name
        assert "delegate.data_received(" not in source, name
        assert "_check_host(" not in source, name
        # The start line too: one constructor, not a tuple.__new__ each.
        assert "request_line(" in source, name
        assert "tuple.__new__" not in source, name


def test_request_line_is_the_namedtuple_the_delegates_are_given() -> None:
    line = request_line("GET", "/a?b=c", "HTTP/2.0")
    assert type(line) is RequestStartLine
    assert line == RequestStartLine("GET", "/a?b=c", "HTTP/2.0")
    assert (line.method, line.path, line.version) == ("GET", "/a?b=c", "HTTP/2.0")


def test_http2_and_http3_streams_share_one_base() -> None:
    # What an HTTP/2 and an HTTP/3 stream do alike (detach, close, the body
    # limits, a broken Content-Length) is written once, in _MuxStream.
    import pytest

    from squall.httpserver._h2stream import _H2Stream
    from squall.httpserver._muxstream import _MuxStream

    pytest.importorskip("aioquic")
    from squall.httpserver._h3stream import _H3Stream

    shared = ("detach", "close", "set_body_timeout", "set_max_body_size", "_refuse", "_emit_raw")
    for cls in (_H2Stream, _H3Stream):
        assert issubclass(cls, _MuxStream)
        assert not [name for name in shared if name in vars(cls)], cls.__name__
    assert (_H2Stream.PROTOCOL, _H3Stream.PROTOCOL) == ("HTTP/2", "HTTP/3")


def test_end_of_body_waits_behind_a_busy_delegate_then_drain_hands_on_in_order() -> None:
    from squall.httputil import HTTPMessageDelegate

    finished: list[bool] = []

    class Delegate(HTTPMessageDelegate):
        def finish(self) -> None:
            finished.append(True)

    delegate = Delegate()
    stream = _stream(_blocked=True, _delegate=delegate)
    stream.hold(b"a")
    assert stream.end_request() is False  # busy: the end waits behind b"a"
    assert stream._inbox == [b"a", None] and not stream._read_done and finished == []
    seen: list[object] = []
    stream._blocked = False
    stream.drain(lambda s, item: seen.append(item), lambda s: seen.append(s.end_request() or "end"))
    assert seen == [b"a", "end"] and finished == [True]
    assert stream._inbox is None and stream._read_done


def test_drain_stops_when_the_delegate_is_busy_again() -> None:
    stream = _stream(_inbox=[b"a", b"b", None])

    def piece(s: Any, item: object) -> None:
        s.block()  # the delegate answered with an awaitable

    stream.drain(piece, lambda s: None)
    assert stream._inbox == [b"b", None]


def test_hold_if_busy_keeps_a_piece_only_behind_a_busy_delegate_or_held_pieces() -> None:
    stream = _stream()
    assert stream.hold_if_busy(b"a") is False and stream._inbox is None
    stream.block()
    assert stream.hold_if_busy(b"b") is True
    stream._blocked = False
    assert stream.hold_if_busy(b"c") is True  # behind b"b", in order
    assert stream._inbox == [b"b", b"c"]


class _Driver:
    """What a multiplexed stream asks of its driver (`MuxDriver`), recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def reset_stream(self, stream: Any, code: int) -> None:
        self.calls.append(("reset", code))
        stream.lost()

    def refuse_request(self, stream: Any, status: int, message: str) -> None:
        self.calls.append(("refuse", status, message))
        stream.refused()

    def end_response(self, stream: Any) -> None:
        self.calls.append(("end",))

    def streams_idle(self) -> None:
        self.calls.append(("idle",))


def _h2_stream(driver: _Driver, loop: asyncio.AbstractEventLoop) -> Any:
    from squall.httpserver._h2stream import _H2Stream
    from squall.httpserver._muxstream import StreamSlots

    return _H2Stream(driver, 1, 0.0, None, loop, 1024, StreamSlots())


def test_a_stream_made_from_python_takes_one_slot() -> None:
    # Compiled, _H2Stream (under _MuxStream, marked for interpreted
    # subclasses) ran __init__ twice when Python code made it: two slots
    # taken, one given back, and the connection never went idle.
    from squall.httpserver._h2stream import _H2Stream
    from squall.httpserver._muxstream import StreamSlots

    loop = asyncio.new_event_loop()
    try:
        driver = _Driver()
        slots = StreamSlots()
        stream = _H2Stream(driver, 1, 0.0, None, loop, 1024, slots)
        assert slots.active == 1
        stream.free_slot()
        stream.free_slot()
        assert slots.active == 0
        assert driver.calls == [("idle",)]
    finally:
        loop.close()


def test_start_hands_the_head_on_and_answers_what_the_delegate_raises() -> None:
    # One answer whatever carries the request: the stream, not
    # each driver, sorts what a delegate's headers_received raised.
    import logging

    from squall._h2 import ErrorCode
    from squall.httputil import HTTPHeaders, HTTPInputError, HTTPMessageDelegate
    from squall.testing import ExpectLog

    class Delegate(HTTPMessageDelegate):
        def __init__(self, error: Exception | None) -> None:
            self.error = error
            self.heads: list[str] = []

        def headers_received(self, start_line: Any, headers: HTTPHeaders) -> None:
            self.heads.append(start_line.method)
            if self.error is not None:
                raise self.error

    loop = asyncio.new_event_loop()
    try:
        driver = _Driver()
        stream = _h2_stream(driver, loop)
        delegate = Delegate(None)
        head = request_line("HEAD", "/", "HTTP/2.0")
        assert stream.start(delegate, head, HTTPHeaders()) is None
        assert delegate.heads == ["HEAD"] and not stream.is_closed and stream.wants_body()
        assert stream._bodiless  # a HEAD request's response carries no body
        assert driver.calls == []

        driver = _Driver()
        stream = _h2_stream(driver, loop)
        # (Built from Python code, as here, the compiled stream's slot count
        # reads 2 after one construction; the driver builds its streams from
        # compiled code, where it reads 1. So: one slot given back.)
        held = stream._slots.active
        bad = Delegate(HTTPInputError("bad head"))
        assert stream.start(bad, request_line("GET", "/", "HTTP/2.0"), HTTPHeaders()) is None
        # Answered 400, and its slot given back (the connection idle again
        # when it was the last).
        assert driver.calls[0] == ("refuse", 400, "bad head")
        assert stream._slots.active == held - 1
        assert (("idle",) in driver.calls) == (held == 1)
        assert stream.is_closed and not stream.wants_body()

        driver = _Driver()
        stream = _h2_stream(driver, loop)
        broken = Delegate(ValueError("application bug"))
        with ExpectLog("squall.application", "Uncaught exception", level=logging.ERROR):
            assert stream.start(broken, request_line("GET", "/", "HTTP/2.0"), HTTPHeaders()) is None
        assert ("reset", ErrorCode.INTERNAL_ERROR) in driver.calls
        assert stream.is_closed and not stream.wants_body()
    finally:
        loop.close()


def test_a_lost_stream_fails_its_waiting_writes_and_closes_its_tunnel() -> None:
    from squall.iostream import StreamClosedError

    class Tunnel:
        accepted = False

        def __init__(self) -> None:
            self.told: list[BaseException | None] = []

        def lost(self, exc: BaseException | None = None) -> None:
            self.told.append(exc)

    loop = asyncio.new_event_loop()
    try:
        stream = _h2_stream(_Driver(), loop)
        first, second = stream.output_waiter(), stream.output_waiter()
        assert stream.writers_waiting()
        stream.wake_writers()
        assert first.result() is None and second.result() is None
        assert not stream.writers_waiting()

        waiter = stream.output_waiter()
        tunnel = stream.tunnel = Tunnel()
        error = ConnectionResetError("gone")
        stream.lost(error)
        assert stream.is_closed and stream.read_done and not stream.writers_waiting()
        with_error = waiter.exception()
        assert isinstance(with_error, StreamClosedError) and with_error.real_error is error
        assert tunnel.told == [error]
        assert stream.mark_closed() is False  # closed once
    finally:
        loop.close()


def test_take_continue_answers_an_expectation_once_and_only_while_the_body_is_wanted() -> None:
    loop = asyncio.new_event_loop()
    try:
        stream = _h2_stream(_Driver(), loop)
        stream.expect_continue = True
        assert stream.take_continue() is True and stream.expect_continue is False
        stream.expect_continue = True
        assert stream.mark_closed() is True
        assert stream.take_continue() is False  # closed: no 100 for it
    finally:
        loop.close()
