"""The transport-backed stream that ``request.connection.detach()`` returns."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from squall.httpserver._stream import _TransportStream
from squall.httputil import HTTPServerRequest
from squall.iostream import StreamClosedError
from squall.iostream._buffer import NO_WRITES
from squall.testing import AsyncTestCase, gen_test

from ._fakes import FakeTransport, make


class StreamTest(AsyncTestCase):
    def detached(self, data: bytes = b"") -> tuple[Any, FakeTransport, _TransportStream]:
        streams: list[_TransportStream] = []

        def handle(request: HTTPServerRequest) -> None:
            streams.append(request.connection.detach())  # type: ignore[union-attr]

        loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        server, proto, t = make(loop, handle)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n" + data)
        (stream,) = streams
        assert not server._connections
        return proto, t, stream

    def test_connection_stream_is_none_once_detached(self) -> None:
        # As on Tornado: Dask's WebSocket comm takes a connection whose
        # ``stream`` is still set for one that is not upgraded yet.
        seen: list[Any] = []

        def handle(request: HTTPServerRequest) -> None:
            connection: Any = request.connection
            seen.append(connection.stream)
            detached = connection.detach()
            seen.extend([connection.stream, detached])

        loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        _, proto, _ = make(loop, handle)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        before, after, detached = seen
        assert isinstance(before, _TransportStream) and before is detached
        assert after is None

    @gen_test
    async def test_reads_leftover_then_new_data(self) -> None:
        proto, t, stream = self.detached(b"early")
        assert await stream.read_bytes(5) == b"early"
        proto.data_received(b"late\n")
        assert await stream.read_until(b"\n") == b"late\n"
        # Data with no read pending is read ahead once, then reading pauses.
        proto.data_received(b"ahead")
        assert not t.reading
        assert await stream.read_bytes(5) == b"ahead"
        future = stream.read_bytes(3)
        assert t.reading
        proto.data_received(b"xyz")
        assert await future == b"xyz"

    @gen_test
    async def test_the_read_state_is_made_by_the_first_read_and_is_each_streams_own(
        self,
    ) -> None:
        proto, t, stream = self.detached()
        other_proto, _, other = self.detached()
        # An idle stream keeps none (its class stands for it)...
        assert not vars(stream) and stream._read_delimiter == b""
        proto.data_received(b"abc;de")
        assert await stream.read_until(b";", max_bytes=10) == b"abc;"
        # ...a read after the idle time makes it, for this stream alone.
        assert vars(stream)["_read_delimiter"] == b";" and not vars(other)
        other_proto.data_received(b"x1y")
        assert await other.read_until_regex(b"[0-9]") == b"x1"
        target = bytearray(2)
        assert await stream.read_into(target) == 2 and target == b"de"
        assert await other.read_bytes(1) == b"y"
        assert stream._read_delimiter == b";" and other._read_regex is None

    @gen_test
    async def test_an_on_drain_hook_is_the_streams_own_until_closed(self) -> None:
        proto, t, stream = self.detached()
        _, _, other = self.detached()
        assert stream.on_drain is None and "_on_drain" not in vars(stream)
        calls: list[str] = []
        stream.on_drain = lambda: calls.append("drain")
        assert other.on_drain is None
        hook = stream.on_drain
        assert hook is not None
        hook()
        assert calls == ["drain"]
        stream.close()
        assert stream.on_drain is None and t.closed

    @gen_test
    async def test_writes_follow_the_high_water_mark(self) -> None:
        proto, t, stream = self.detached()
        _, _, other = self.detached()
        await stream.write(b"one")
        assert t.writes == [b"one"]
        # Nothing queued yet: the shared empty buffer.
        assert stream._write_buffer is NO_WRITES is other._write_buffer
        proto.pause_writing()
        future = stream.write(b"two")
        assert not future.done() and t.writes == [b"one"]
        # Queued in a buffer of its own; the shared one stays empty.
        assert stream._write_buffer is not NO_WRITES and len(stream._write_buffer) == 3
        assert not len(NO_WRITES) and other._write_buffer is NO_WRITES
        proto.resume_writing()
        await future
        assert t.writes == [b"one", b"two"]
        with pytest.raises(RuntimeError):
            NO_WRITES.append(b"x")

    @gen_test
    async def test_eof_ends_read_until_close(self) -> None:
        proto, t, stream = self.detached(b"abc")
        future = stream.read_until_close()
        proto.data_received(b"def")
        proto.eof_received()
        assert await future == b"abcdef"
        assert stream.closed() and t.closed

    @gen_test
    async def test_buffered_data_survives_connection_lost(self) -> None:
        proto, t, stream = self.detached()
        closed: list[bool] = []
        stream.set_close_callback(lambda: closed.append(True))
        proto.data_received(b"0123456789")
        proto.connection_lost(None)
        assert stream.closed()
        assert await stream.read_bytes(10) == b"0123456789"
        with pytest.raises(StreamClosedError):
            await stream.read_bytes(1)

    @gen_test
    async def test_write_after_transport_closed(self) -> None:
        proto, t, stream = self.detached()
        t.closed = True
        with pytest.raises(StreamClosedError):
            await stream.write(b"x")
        assert stream.closed()

    @gen_test
    async def test_socket_and_nodelay(self) -> None:
        proto, t, stream = self.detached()
        assert stream.socket is t.sock and stream.fileno() is t.sock
        stream.set_nodelay(True)
        assert t.sock.options[(socket.IPPROTO_TCP, socket.TCP_NODELAY)] == 1
        stream.close()
        assert t.closed
        # As an IOStream's: programs test ``socket is None`` for a closed one.
        assert stream.socket is None and stream.fileno() is None

    @gen_test
    async def test_stream_of_a_closed_connection_is_closed(self) -> None:
        loop = self.io_loop.asyncio_loop  # type: ignore[attr-defined]
        pending: list[HTTPServerRequest] = []
        _, proto, t = make(loop, pending.append)
        proto.data_received(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        proto.connection_lost(None)
        stream = pending[0].connection.stream  # type: ignore[union-attr]
        assert stream.closed()
        with pytest.raises(RuntimeError):
            pending[0].connection.detach()  # type: ignore[union-attr]
            pending[0].connection.detach()  # type: ignore[union-attr]
