"""WebSocketProtocol13 driven over a fake stream: batching, pongs, closing, errors."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, Optional

import squall.websocket._pings as pings_module
import squall.websocket._protocol as protocol_module
from squall import _ws
from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream import StreamClosedError
from squall.log import app_log, gen_log
from squall.testing import AsyncTestCase, ExpectLog, gen_test
from squall.websocket import WebSocketClosedError, WebSocketProtocol, WebSocketProtocol13
from squall.websocket._protocol import _Peer
from tests._clock import LoopClock
from tests._wait import until

KEY = b"abcd"


def frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return _ws.build_frame(opcode, payload, fin, mask_key=KEY)


class FakeStream:
    """Just the IOStream surface the protocol uses."""

    def __init__(self) -> None:
        self.inbox = bytearray()
        self.reader: Optional[Future[bytes]] = None
        self.written: list[bytes] = []
        self.write_futures: list[Future[None]] = []
        self.auto_resolve = True
        self._closed = False
        self.close_callback: Any = None
        self.nodelay: Optional[bool] = None

    def feed(self, data: bytes) -> None:
        self.inbox += data
        reader = self.reader
        if reader is not None and not reader.done():
            self.reader = None
            reader.set_result(bytes(self.inbox))
            self.inbox.clear()

    def read_bytes(self, n: int, partial: bool = False) -> Future[bytes]:
        future: Future[bytes] = Future()
        if self._closed:
            future.set_exception(StreamClosedError())
        elif self.inbox:
            future.set_result(bytes(self.inbox))
            self.inbox.clear()
        else:
            self.reader = future
        return future

    def write(self, data: bytes) -> Future[None]:
        if self._closed:
            raise StreamClosedError()
        self.written.append(data)
        future: Future[None] = Future()
        if self.auto_resolve:
            future.set_result(None)
        self.write_futures.append(future)
        return future

    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.reader is not None and not self.reader.done():
            self.reader.set_exception(StreamClosedError())
        if self.close_callback is not None:
            IOLoop.current().add_callback(self.close_callback)

    def set_close_callback(self, callback: Any) -> None:
        self.close_callback = callback

    def set_nodelay(self, value: bool) -> None:
        self.nodelay = value


class ReceivingStream(FakeStream):
    """FakeStream that can hand reads to a receiver, as the server's detached stream does."""

    def __init__(self) -> None:
        super().__init__()
        self.receiver: Any = None
        self.receiving: list[bool] = []
        self.paused = False

    def set_receiver(self, receiver: Any) -> bytes:
        if self.reader is not None and not self.reader.done():
            raise RuntimeError("a read is pending")
        self.receiver = receiver
        self.paused = False
        pending = bytes(self.inbox)
        self.inbox.clear()
        return pending

    def set_receiving(self, receiving: bool) -> None:
        self.receiving.append(receiving)
        self.paused = not receiving
        if receiving and self.inbox and self.receiver is not None:
            data = bytes(self.inbox)
            self.inbox.clear()
            self.receiver(data)

    def feed(self, data: bytes) -> None:
        if self.receiver is None or self._closed:
            super().feed(data)
        elif self.paused:
            self.inbox += data
        else:
            self.receiver(data)


class Peer(_Peer):
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.pings: list[bytes] = []
        self.pongs: list[bytes] = []
        self.closed: Future[tuple[Optional[int], Optional[str]]] = Future()
        self.protocol: Optional[WebSocketProtocol13] = None
        self.reply = True

    def on_message(self, message: Any) -> Any:
        self.messages.append(message)
        if self.reply and self.protocol is not None:
            self.protocol.write_message(message)
        return None

    def on_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def on_pong(self, data: bytes) -> None:
        self.pongs.append(data)

    def on_ws_connection_close(self, code: Optional[int], reason: Optional[str]) -> None:
        self.closed.set_result((code, reason))


def server_frames(data: bytes) -> list[Any]:
    parser = _ws.FrameParser(masked=False)
    parser.feed(data)
    frames = []
    while (f := parser.next_frame()) is not None:
        frames.append((f.opcode, f.payload))
    return frames


class ProtocolTest(AsyncTestCase):
    """Over a stream read with read_bytes, by a task (the client's case)."""

    stream_class: type[FakeStream] = FakeStream

    def make(
        self, peer: Optional[_Peer] = None, **kwargs: Any
    ) -> tuple[WebSocketProtocol13, Any, Any]:
        peer = peer or Peer()
        proto = WebSocketProtocol13(peer, client=False, **kwargs)
        if isinstance(peer, Peer):
            peer.protocol = proto
        stream = self.stream_class()
        proto.start(stream, _ws.WSConnection(False))  # type: ignore[arg-type]
        proto.start_reading()
        return proto, stream, peer

    @gen_test
    async def test_one_write_per_read(self) -> None:
        proto, stream, peer = self.make()
        stream.feed(frame(1, b"a") + frame(1, b"b") + frame(2, b"c"))
        while len(peer.messages) < 3:
            await asyncio.sleep(0)
        self.assertEqual(peer.messages, ["a", "b", b"c"])
        self.assertEqual(len(stream.written), 1)
        self.assertEqual(server_frames(stream.written[0]), [(1, b"a"), (1, b"b"), (1, b"c")])
        proto.set_nodelay(True)
        self.assertTrue(stream.nodelay)

    @gen_test
    async def test_a_read_of_one_message_is_answered_as_the_callback_writes(self) -> None:
        # A client waiting for its answer: the callback's write leaves before
        # it returns (as Tornado's does), so one that answers and then works
        # synchronously has its client see the answer meanwhile.
        seen: list[int] = []

        class AnswersThenWorks(Peer):
            def on_message(self, message: Any) -> None:
                assert self.protocol is not None
                self.protocol.write_message("ack " + message)
                seen.append(len(stream.written))  # the work would start here

        proto, stream, peer = self.make(AnswersThenWorks())
        stream.feed(frame(1, b"x"))
        while not seen:
            await asyncio.sleep(0)
        self.assertEqual(seen, [1])
        self.assertEqual(server_frames(stream.written[0]), [(1, b"ack x")])

    @gen_test
    async def test_coroutine_callbacks_see_their_writes_flushed(self) -> None:
        order: list[str] = []

        class Slow(Peer):
            async def on_message(self, message: Any) -> None:  # type: ignore[override]
                assert self.protocol is not None
                await self.protocol.write_message(message)
                order.append(message)

        proto, stream, peer = self.make(Slow())
        stream.feed(frame(1, b"1") + frame(1, b"2"))
        while len(order) < 2:
            await asyncio.sleep(0)
        self.assertEqual(order, ["1", "2"])
        self.assertEqual([server_frames(w) for w in stream.written], [[(1, b"1")], [(1, b"2")]])

    @gen_test
    async def test_pong_answers_only_the_latest_ping_while_one_is_pending(self) -> None:
        proto, stream, peer = self.make()
        stream.auto_resolve = False
        stream.feed(frame(9, b"1"))
        while not peer.pings:
            await asyncio.sleep(0)
        stream.feed(frame(9, b"2") + frame(9, b"3"))
        while len(peer.pings) < 3:
            await asyncio.sleep(0)
        self.assertEqual([server_frames(w) for w in stream.written], [[(10, b"1")]])
        stream.write_futures[0].set_result(None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.assertEqual(server_frames(stream.written[-1]), [(10, b"3")])
        self.assertEqual(len(stream.written), 2)

    @gen_test
    async def test_every_ping_of_one_read_is_answered_in_one_write(self) -> None:
        proto, stream, peer = self.make()
        stream.auto_resolve = False
        payloads = [str(i).encode() for i in range(10)]
        stream.feed(b"".join(frame(9, p) for p in payloads) + frame(1, b"after"))
        while len(peer.messages) < 1:
            await asyncio.sleep(0)
        self.assertEqual(peer.pings, payloads)
        [written] = stream.written
        self.assertEqual(server_frames(written), [(10, p) for p in payloads] + [(1, b"after")])
        # That write is still pending: the next read's pings are coalesced.
        stream.feed(frame(9, b"a") + frame(9, b"b"))
        while len(peer.pings) < 12:
            await asyncio.sleep(0)
        self.assertEqual(len(stream.written), 1)
        stream.write_futures[0].set_result(None)
        while len(stream.written) < 2:
            await asyncio.sleep(0)
        self.assertEqual(server_frames(stream.written[1]), [(10, b"b")])

    @gen_test
    async def test_a_reader_woken_by_a_message_answers_before_the_close(self) -> None:
        # The client's read_message: the message wakes a reader on the next
        # loop turn, whose answer should not be cut off by a close that came
        # in the same read.
        class Deferred(Peer):
            def on_message(self, message: Any) -> None:
                self.messages.append(message)
                protocol = self.protocol
                assert protocol is not None
                IOLoop.current().add_callback(lambda: protocol.write_message("re:" + message))

        proto, stream, peer = self.make(Deferred())
        stream.feed(frame(1, b"q") + frame(8, b"\x03\xe8"))
        await peer.closed
        self.assertEqual(server_frames(b"".join(stream.written)), [(1, b"re:q"), (8, b"\x03\xe8")])

    @gen_test
    async def test_peer_close_is_echoed(self) -> None:
        proto, stream, peer = self.make()
        stream.feed(frame(1, b"last") + frame(8, b"\x03\xe9bye"))
        self.assertEqual(await peer.closed, (1001, "bye"))
        self.assertEqual(server_frames(b"".join(stream.written)), [(1, b"last"), (8, b"\x03\xe9")])
        self.assertTrue(stream.closed())
        self.assertTrue(proto.is_closing())
        with self.assertRaises(WebSocketClosedError):
            proto.write_message("late")

    @gen_test
    async def test_protocol_failure_sends_the_code(self) -> None:
        proto, stream, peer = self.make()
        stream.feed(_ws.build_frame(1, b"unmasked"))
        self.assertEqual(await peer.closed, (None, None))
        [(opcode, payload)] = server_frames(b"".join(stream.written))
        self.assertEqual((opcode, payload[:2]), (8, b"\x03\xea"))

    @gen_test
    async def test_close_times_out_without_an_echo(self) -> None:
        original = protocol_module._CLOSE_TIMEOUT
        protocol_module._CLOSE_TIMEOUT = 0.01
        try:
            proto, stream, peer = self.make()
            proto.close(reason="only a reason")
            self.assertEqual(await peer.closed, (None, None))
        finally:
            protocol_module._CLOSE_TIMEOUT = original
        self.assertEqual(server_frames(stream.written[0]), [(8, b"\x03\xe8only a reason")])
        proto.close()  # closing twice is harmless

    @gen_test
    async def test_unsendable_close_code_sends_an_empty_close(self) -> None:
        proto, stream, peer = self.make()
        proto.close(1005)
        self.assertEqual(server_frames(stream.written[0]), [(8, b"")])
        stream.close()
        await peer.closed

    @gen_test
    async def test_write_errors(self) -> None:
        proto, stream, peer = self.make()
        stream.auto_resolve = False
        pending = proto.write_message({"a": 1})
        self.assertEqual(server_frames(stream.written[0]), [(1, b'{"a": 1}')])
        stream.write_futures[0].set_exception(StreamClosedError())
        with self.assertRaises(WebSocketClosedError):
            await pending
        other = proto.write_message(b"x", binary=True)
        stream.write_futures[1].set_exception(OSError("disk on fire"))
        with self.assertRaisesRegex(OSError, "fire"):
            await other
        with self.assertRaises(TypeError):
            proto.write_message(42)  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            proto.write_ping(b"x" * 126)
        stream.close()
        await peer.closed
        with self.assertRaises(WebSocketClosedError):
            proto.write_message("closed")
        with self.assertRaises(WebSocketClosedError):
            proto.write_ping(b"")
        with self.assertRaises(WebSocketClosedError):
            proto._write(b"raw")

    @gen_test
    async def test_corked_writes_fail_when_the_stream_closes_mid_batch(self) -> None:
        results: list[Future[None]] = []

        class Closing(Peer):
            def on_message(self, message: Any) -> None:
                assert self.protocol is not None and self.protocol.stream is not None
                results.append(self.protocol.write_message(message))
                if len(results) == 2:
                    self.protocol.stream._closed = True  # type: ignore[attr-defined]

        proto, stream, peer = self.make(Closing())
        stream.feed(frame(1, b"x") + frame(1, b"y"))  # a batch: its writes are held
        while len(results) < 2:
            await asyncio.sleep(0)
        for result in results:
            with self.assertRaises(WebSocketClosedError):
                await result
        stream._closed = False
        stream.close()
        await peer.closed

    @gen_test
    async def test_callback_errors_are_logged_and_abort(self) -> None:
        class Failing(Peer):
            def on_message(self, message: Any) -> None:
                raise ValueError("bad callback")

        proto, stream, peer = self.make(Failing())
        with ExpectLog(app_log, "Uncaught exception in WebSocket"):
            stream.feed(frame(1, b"x"))
            await peer.closed
        self.assertTrue(stream.closed())

    @gen_test
    async def test_cancelled_callback_is_an_error(self) -> None:
        class Cancelling(Peer):
            def on_message(self, message: Any) -> None:
                raise asyncio.CancelledError()

        proto, stream, peer = self.make(Cancelling())
        with ExpectLog(app_log, "Uncaught exception"):
            stream.feed(frame(1, b"x"))
            await peer.closed

    @gen_test
    async def test_a_flood_yields_to_the_loop(self) -> None:
        proto, stream, peer = self.make()
        peer.reply = False
        ticks = 0

        def tick() -> None:
            nonlocal ticks
            ticks += 1
            if len(peer.messages) < 1000:
                IOLoop.current().add_callback(tick)

        tick()
        stream.feed(frame(2, b"m") * 1000)
        while len(peer.messages) < 1000:
            await asyncio.sleep(0)
        self.assertGreater(ticks, 10)

    def test_ping_settings_read_back_as_tornados_protocol_gives_them(self) -> None:
        # 0 for no pings; a timeout defaults to the interval and is cut to it
        # when longer (with one warning per pair of values, not one per
        # connection); without an interval a timeout is kept as given.
        def read(interval: Any, timeout: Any) -> tuple[Any, Any]:
            proto = WebSocketProtocol13(
                Peer(), client=False, ping_interval=interval, ping_timeout=timeout
            )
            return proto.ping_interval, proto.ping_timeout

        self.assertEqual(read(None, None), (0, 0))
        self.assertEqual(read(0, None), (0, 0))
        self.assertEqual(read(None, 5), (0, 5))
        self.assertEqual(read(10, None), (10, 10))
        self.assertEqual(read(10, 5), (10, 5))
        self.assertEqual(read(10, 0), (10, 0))
        pings_module.warned_ping_timeouts.discard((30, 10))
        with self.assertLogs(gen_log, "WARNING") as logs:
            self.assertEqual(read(10, 30), (10, 10))
            self.assertEqual(read(10, 30), (10, 10))
        self.assertEqual(
            [record.getMessage().splitlines()[0] for record in logs.records],
            [
                "The websocket_ping_timeout (30) cannot be longer than the"
                " websocket_ping_interval (10)."
            ],
        )

    @gen_test
    async def test_periodic_pings_time_out(self) -> None:
        proto, stream, peer = self.make(ping_interval=0.01, ping_timeout=0.005)
        self.assertEqual(proto.ping_timeout, 0.005)
        await until(lambda: bool(stream.written))
        self.assertEqual(server_frames(stream.written[0]), [(9, b"")])
        await until(proto.is_closing)
        self.assertEqual(server_frames(stream.written[-1]), [(8, b"\x03\xe8ping timed out")])
        stream.close()
        await peer.closed

    @gen_test(timeout=60)  # (on the clock the test moves 30 s)
    async def test_answered_pings_keep_the_connection(self) -> None:
        # Pings every 10 s of a clock the test moves, each answered before
        # the next is due: with 10 ms of real time, a loaded machine's
        # stall between a ping and its answer timed the connection out.
        # (The ping wheel reads IOLoop.time(): moved too.)
        clock = LoopClock(asyncio.get_running_loop(), self.io_loop)
        try:
            proto, stream, peer = self.make(ping_interval=10)
            self.assertEqual(proto.ping_timeout, 10)
            for answered in range(1, 4):
                count = len(stream.written)
                # A tick of the ping wheel (a hundredth of the interval) at
                # a time, for up to two intervals.
                for _ in range(200):
                    if len(stream.written) != count:
                        break
                    await clock.advance(0.1)
                self.assertEqual(server_frames(stream.written[-1]), [(9, b"")])
                stream.feed(frame(10, b""))
                await until(lambda: len(peer.pongs) == answered)  # noqa: B023 (awaited here)
            self.assertFalse(proto.is_closing())
            proto.close(1000)
            stream.close()
            await peer.closed
        finally:
            clock.close()

    def test_ping_sleep_time(self) -> None:
        self.assertEqual(
            WebSocketProtocol13.ping_sleep_time(last_ping_time=10, interval=5, now=12), 3
        )
        self.assertEqual(
            WebSocketProtocol13.ping_sleep_time(last_ping_time=10, interval=5, now=20), 0
        )

    def test_counters_before_start_and_base_classes(self) -> None:
        proto = WebSocketProtocol13(Peer(), client=True)
        self.assertEqual(
            (
                proto._message_bytes_in,
                proto._message_bytes_out,
                proto._wire_bytes_in,
                proto._wire_bytes_out,
            ),
            (0, 0, 0, 0),
        )
        self.assertTrue(proto.is_closing())
        with self.assertRaises(WebSocketClosedError):
            proto._write_frame(True, 9, b"")
        with self.assertRaises(NotImplementedError):
            WebSocketProtocol().is_closing()
        base = _Peer()
        with self.assertRaises(NotImplementedError):
            base.on_message("x")
        base.on_ping(b"")
        base.on_pong(b"")
        base.on_ws_connection_close(None, None)
        with ExpectLog(app_log, "Uncaught exception in WebSocket"):
            try:
                raise ValueError("x")
            except ValueError as exc:
                base.log_exception(type(exc), exc, exc.__traceback__)
        proto.close()
        self.assertTrue(proto._closed)

    def test_close_before_start_closes_quietly(self) -> None:
        for code in (None, 1000):
            peer = Peer()
            proto = WebSocketProtocol13(peer, client=False)
            proto.close(code)
            self.assertTrue(peer.closed.done())


class DirectProtocolTest(ProtocolTest):
    """The same tests over a stream that hands reads straight to the protocol."""

    stream_class = ReceivingStream
    # Server handlers answer inside on_message; only the client's reader
    # is woken a turn later (and its stream is read by a task).
    test_a_reader_woken_by_a_message_answers_before_the_close = None  # type: ignore[assignment]

    @gen_test
    async def test_events_are_dispatched_as_the_bytes_arrive(self) -> None:
        proto, stream, peer = self.make()
        self.assertIsNotNone(stream.receiver)
        stream.feed(frame(1, b"a") + frame(2, b"b")[:3])
        # No task, no loop turn: dispatched inside the feed.
        self.assertEqual(peer.messages, ["a"])
        stream.feed(frame(2, b"b")[3:])
        self.assertEqual(peer.messages, ["a", b"b"])
        self.assertEqual([server_frames(w) for w in stream.written], [[(1, b"a")], [(1, b"b")]])
        self.assertIsNone(proto._task)

    @gen_test
    async def test_bytes_buffered_before_reading_starts_come_first(self) -> None:
        peer = Peer()
        proto = WebSocketProtocol13(peer, client=False)
        peer.protocol = proto
        stream = ReceivingStream()
        stream.inbox += frame(1, b"early")
        proto.start(stream, _ws.WSConnection(False))  # type: ignore[arg-type]
        proto.start_reading()
        proto.start_reading()  # a second call changes nothing
        self.assertEqual(peer.messages, ["early"])

    @gen_test
    async def test_an_awaitable_moves_reading_to_a_task_in_order(self) -> None:
        release: Future[None] = Future()
        order: list[str] = []

        class Waits(Peer):
            def on_message(self, message: Any) -> Any:
                order.append(message)
                if message == "wait":
                    return release
                return None

        proto, stream, peer = self.make(Waits())
        stream.feed(frame(1, b"one") + frame(1, b"wait") + frame(1, b"after"))
        self.assertEqual(order, ["one", "wait"])
        self.assertIsNone(stream.receiver)
        self.assertIsNotNone(proto._task)
        stream.feed(frame(1, b"later"))
        release.set_result(None)
        while len(order) < 4:
            await asyncio.sleep(0)
        self.assertEqual(order, ["one", "wait", "after", "later"])

    @gen_test
    async def test_a_flood_pauses_reading_between_turns(self) -> None:
        proto, stream, peer = self.make()
        peer.reply = False
        stream.feed(frame(2, b"m") * 200)
        self.assertEqual(len(peer.messages), protocol_module._EVENTS_PER_TURN)
        self.assertEqual(stream.receiving, [False])
        stream.feed(frame(1, b"queued"))  # held while paused
        while len(peer.messages) < 201:
            await asyncio.sleep(0)
        self.assertEqual(peer.messages[-1], "queued")
        self.assertEqual(stream.receiving[-1], True)

    @gen_test
    async def test_callbacks_run_in_the_context_reading_started_in(self) -> None:
        seen: list[Any] = []
        var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

        class Reads(Peer):
            def on_message(self, message: Any) -> None:
                seen.append(var.get())

        var.set("from open")
        proto, stream, peer = self.make(Reads())
        var.set("changed later")
        stream.feed(frame(1, b"x"))
        self.assertEqual(seen, ["from open"])
