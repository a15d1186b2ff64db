"""WebTransport over HTTP/3 (draft-ietf-webtrans-http3, HTTP Datagrams RFC 9297).

A session is an extended CONNECT (``:protocol webtransport``) answered
2xx: `squall.webtransport.WebTransportHandler` answers it and
``detach()``es the request stream, whose DATA then carries capsules
(CLOSE_WEBTRANSPORT_SESSION, DRAIN_WEBTRANSPORT_SESSION); the session's
own streams and datagrams are the QUIC streams and DATAGRAM frames that
aioquic's H3 layer tags with the session's stream ID. `route_event`
hands them from `_H3Protocol` to the `WTSession` registered for it.

Who may have a session is decided once, by ``httputil/_webtransport``'s
`SessionRequest` (for the handler and the ASGI server alike); this module
keeps the connection's count (`SessionTable`: the sessions open and the
seats held by requests still being decided) and runs the sessions.

Limits are the owner's (`SessionLimits`): sessions per connection (a
seat taken when the CONNECT arrives), peer streams open at once per
session (a stream over it is reset with WT_BUFFERED_STREAM_REJECTED),
the datagram size (a larger one in is dropped and counted; out, it is an
error), and bytes a stream may hold unread (beyond that it is reset: a
handler that stops reading does not make the server keep what the client
sends). aioquic credits QUIC flow control as data arrives, so that last
bound is the flow control. Out, a client that does not keep up is
bounded too: a stream write's Future waits on its acknowledgements and
the server's write timeout resets a stream it takes nothing of
(`stream_timed_out`), and datagrams wait in a queue of `DATAGRAM_QUEUE`
per session, the oldest dropped past it, until the stack has sent what
it held (`send_datagrams`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Protocol

from squall._quicstack import (
    Buffer,
    BufferReadError,
    DatagramReceived,
    H3Connection,
    H3Event,
    QuicConnection,
    WebTransportStreamDataReceived,
    datagram_backlog,
    datagram_stream_id,
    encode_uint_var,
    send_h3_datagram,
)
from squall.httpserver._h3conn import GuardedH3Connection
from squall.httputil._webtransport import SessionLimits, SessionOwner
from squall.log import app_log

if TYPE_CHECKING:
    from squall.httpserver._tunnel import _Tunnel

__all__ = [
    "SessionTable",
    "WTCarrier",
    "WTSession",
    "WTSeat",
    "WTStream",
    "WebTransportH3Connection",
    "drain_sessions",
    "route_event",
    "stream_reset",
]

CLOSE_SESSION = 0x2843
DRAIN_SESSION = 0x78AE
# draft-ietf-webtrans-http3 section 9.5: a stream refused over the limit.
WT_BUFFERED_STREAM_REJECTED = 0x3994BD84
# An application error code 0 mapped into HTTP/3's space (section 4.3).
WT_APPLICATION_ERROR_FIRST = 0x52E4A40FA8DB
_MAX_REASON = 1024
# Datagrams a session may have queued to send (the application sent them
# faster than the path takes them); past it the oldest is dropped. The
# W3C WebTransport API queues outgoing datagrams too and drops them from
# the head (those past their max age), as browsers drop the oldest
# incoming ones and QUIC stacks (quinn) the oldest unsent: a datagram
# carries what a newer one supersedes (a position, a frame), so the
# newest is the one worth sending.
DATAGRAM_QUEUE = 64


def _wt_error(code: int) -> int:
    # draft section 4.3: application codes skip HTTP/3's reserved ones.
    return WT_APPLICATION_ERROR_FIRST + code + code // 0x1E


class WebTransportH3Connection(GuardedH3Connection):
    """The guarded H3 layer with WebTransport and HTTP Datagrams in SETTINGS."""

    def _init_connection(self) -> None:
        # H3Connection.__init__ sets the flag from its argument, then calls
        # this, which sends SETTINGS: set here so that they say so.
        self._enable_webtransport = True
        super()._init_connection()


class WTCarrier(Protocol):
    """What the sessions ask of their connection (`_H3Protocol`)."""

    @property
    def quic(self) -> QuicConnection:
        """aioquic's connection: the session's streams, their resets."""

    @property
    def h3(self) -> Optional[H3Connection]:
        """The H3 layer: datagrams, the session's new streams."""

    def flush_soon(self) -> None:
        """Send what aioquic has queued, on the next turn."""

    def stream_writable(self, sid: int) -> asyncio.Future[None]:
        """Done, or a wait while stream ``sid`` holds too much unacknowledged output."""

    def abandon_writes(self, sid: int) -> None:
        """Stream ``sid`` was reset: the writes waiting on it fail."""

    def webtransport_sessions(self) -> SessionTable:
        """The connection's sessions (the table made on first use)."""


class SessionTable:
    """One connection's WebTransport sessions, by CONNECT stream ID, and the
    seats held by CONNECTs whose owner is still deciding (so the limit is
    counted when a session is asked for, not when it is opened). True while
    a session is open."""

    __slots__ = ("live", "held")

    def __init__(self) -> None:
        self.live: dict[int, WTSession] = {}
        self.held: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self.live)

    def reserve(self, session_id: int, limit: int) -> bool:
        """A seat for ``session_id`` if fewer than ``limit`` are taken."""
        if session_id in self.held:
            return True
        if len(self.live) + len(self.held) >= limit:
            return False
        self.held.add(session_id)
        return True

    def release(self, session_id: int) -> None:
        """``session_id``'s seat, not taken up, goes back."""
        self.held.discard(session_id)

    def seat(self, session: WTSession) -> None:
        """``session`` opens in its seat."""
        self.held.discard(session.session_id)
        self.live[session.session_id] = session

    def leave(self, session: WTSession) -> None:
        """``session`` ended: its seat is free."""
        if self.live.get(session.session_id) is session:
            del self.live[session.session_id]

    def get(self, session_id: int) -> Optional[WTSession]:
        """The open session of CONNECT stream ``session_id``, if any."""
        return self.live.get(session_id)

    def sessions(self) -> list[WTSession]:
        """The sessions open now (a copy: calls may end some)."""
        return list(self.live.values())


class WTSeat:
    """``request.connection.webtransport`` of an extended CONNECT with
    ``:protocol webtransport`` (a `SessionSeat`): its connection's table,
    seen from the request that asks for a session (the CONNECT stream's ID
    names it). Holds no state of its own: the table does."""

    __slots__ = ("carrier", "session_id")

    def __init__(self, carrier: WTCarrier, session_id: int) -> None:
        self.carrier = carrier
        #: The CONNECT stream's ID, which names the session.
        self.session_id = session_id

    def reserve(self, limit: int) -> bool:
        """A seat for this request's session, if fewer than ``limit`` are taken."""
        return self.carrier.webtransport_sessions().reserve(self.session_id, limit)

    def release(self) -> None:
        """The seat goes back (the session was refused, failed or was cancelled)."""
        self.carrier.webtransport_sessions().release(self.session_id)

    def open(self, owner: SessionOwner, tunnel: _Tunnel, limits: SessionLimits) -> WTSession:
        """The session, once its CONNECT was answered 2xx and ``detach()``ed
        (``tunnel``); ``owner`` hears of its streams, datagrams and end."""
        return WTSession(self.carrier, self.session_id, owner, tunnel, limits)


def route_event(proto: WTCarrier, event: H3Event) -> bool:
    """Give ``event`` to its session if it is WebTransport's (True), else False."""
    if isinstance(event, WebTransportStreamDataReceived):
        session = proto.webtransport_sessions().get(event.session_id)
        if session is None:
            # No such session (closed, not yet accepted, or never asked for): not wanted.
            try:
                proto.quic.stop_stream(event.stream_id, WT_BUFFERED_STREAM_REJECTED)
            except Exception:
                pass
            return True
        session.stream_data_received(event.stream_id, event.data, event.stream_ended)
        return True
    if isinstance(event, DatagramReceived):
        session = proto.webtransport_sessions().get(datagram_stream_id(event))
        if session is not None:
            session.datagram_received(event.data)
        return True
    return False


def send_datagrams(proto: WTCarrier) -> None:
    """Give the stack the datagrams the sessions queued, once it has sent
    what it held (called before each transmit): so what waits for the path
    is bounded by `DATAGRAM_QUEUE` per session, not by the application's
    pace. (qh3's queue is not visible: each transmit gets what is queued.)"""
    if datagram_backlog(proto.quic):
        return
    h3 = proto.h3
    if h3 is None:
        return
    for session in proto.webtransport_sessions().sessions():
        session.release_datagrams(h3)


def stream_timed_out(proto: WTCarrier, stream_id: int) -> bool:
    """The client took none of ``stream_id``'s output for the server's write
    timeout: if it is a WebTransport stream, it is reset (True), as a
    response's stream is; the writes waiting on it fail."""
    sessions = proto.webtransport_sessions().sessions()
    return any(session.write_timed_out(stream_id) for session in sessions)


def stream_reset(proto: WTCarrier, stream_id: int) -> None:
    """The client reset a WebTransport stream (or asked us to stop sending on it)."""
    for session in proto.webtransport_sessions().sessions():
        if session.stream_reset(stream_id):
            return


def drain_sessions(proto: WTCarrier) -> None:
    """The server drains: each session is told (DRAIN_WEBTRANSPORT_SESSION,
    and its owner's ``on_drain``)."""
    for session in proto.webtransport_sessions().sessions():
        session.going_away()


class WTStream:
    """One WebTransport stream: bidirectional, or unidirectional either way.

    Reads are ``await stream.read()`` (``b""`` at the end); writes are
    ``stream.write(data)`` and ``stream.end()`` (FIN), or ``stream.reset(code)``.
    """

    __slots__ = (
        "_session",
        "stream_id",
        "readable",
        "writable",
        "_inbox",
        "_eof",
        "_waiter",
        "_ended",
        "_gone",
    )

    def __init__(self, session: WTSession, stream_id: int, readable: bool, writable: bool) -> None:
        self._session = session
        self.stream_id = stream_id
        self.readable = readable
        self.writable = writable
        self._inbox = bytearray()
        self._eof = not readable
        self._waiter: Optional[asyncio.Future[None]] = None
        self._ended = not writable
        self._gone = False

    async def read(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` as they come; ``b""`` once the peer ended the stream.

        Raises:
            ConnectionResetError: the stream or its session is gone.
        """
        while True:
            if self._gone:
                raise ConnectionResetError("WebTransport stream reset or session closed")
            if self._inbox or self._eof:
                break
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._inbox[:max_bytes])
        del self._inbox[:max_bytes]
        if self._eof and not self._inbox:
            self._forget_if_done()
        return data

    async def read_all(self, limit: int = 1 << 20) -> bytes:
        """Everything until the peer ends the stream (at most ``limit`` bytes).

        Raises:
            ValueError: more than ``limit`` bytes.
        """
        out = bytearray()
        while chunk := await self.read():
            out += chunk
            if len(out) > limit:
                raise ValueError(f"WebTransport stream longer than {limit} bytes")
        return bytes(out)

    def write(self, data: bytes, end: bool = False) -> asyncio.Future[None]:
        """Send ``data`` (and FIN with ``end``).

        Returns a Future to await for back-pressure: done at once, or once
        the client has acknowledged enough of what the stream holds (256
        KiB at most); it fails with `ConnectionResetError` if the stream is
        reset meanwhile (by the client, the session's end, or the server's
        ``write_timeout`` when the client takes nothing for that long).

        Raises:
            ConnectionResetError: the stream is gone or already ended.
        """
        if self._ended or self._gone:
            raise ConnectionResetError("WebTransport stream closed for writing")
        session = self._session
        session.quic.send_stream_data(self.stream_id, data, end)
        if end:
            self._ended = True
            self._forget_if_done()
        session.flush_soon()
        return session.stream_writable(self.stream_id)

    def end(self) -> asyncio.Future[None]:
        """FIN: nothing more will be written (the Future is `write`'s)."""
        return self.write(b"", True)

    def reset(self, code: int = 0) -> None:
        """Abort both directions with an application error ``code``."""
        if self._gone:
            return
        quic = self._session.quic
        try:
            if not self._ended:
                quic.reset_stream(self.stream_id, _wt_error(code))
            if not self._eof:
                quic.stop_stream(self.stream_id, _wt_error(code))
        except Exception:
            pass
        self._lose()
        self._session.flush_soon()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet read."""
        return len(self._inbox)

    # -- the session's side (called by WTSession, not by applications) --------------

    def data_received(self, data: bytes, ended: bool) -> None:
        """``data`` arrived (``ended``: with the peer's FIN)."""
        self._inbox += data
        if ended:
            self._eof = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def reset_received(self) -> None:
        """The client reset the stream (or asked us to stop sending); our
        side is reset too, unless it ended."""
        if not self._ended:
            try:
                self._session.quic.reset_stream(self.stream_id, _wt_error(0))
            except Exception:
                pass
        self._lose()

    def _forget_if_done(self) -> None:
        if self._eof and self._ended and not self._inbox:
            self._session.forget_stream(self.stream_id)

    def _lose(self) -> None:
        # Reset: what was not read is dropped (the peer knows it was not taken).
        self._gone = True
        self._inbox.clear()
        self._eof = self._ended = True
        self._session.forget_stream(self.stream_id)
        self._session.abandon_writes(self.stream_id)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class WTSession:
    """The protocol's side of one session (a `Session`); whoever accepted
    it is its `SessionOwner`, and the tasks its calls start are held here
    until they end, or until the session does."""

    __slots__ = (
        "_proto",
        "session_id",
        "_owner",
        "_streams",
        "max_streams",
        "max_datagram_size",
        "max_stream_buffer",
        "dropped_datagrams",
        "closed",
        "_tunnel",
        "_capsules",
        "_reader",
        "_tasks",
        "_peer_max",
        "_waiting",
        "_outgoing",
        "dropped_outgoing",
    )

    def __init__(
        self,
        proto: WTCarrier,
        session_id: int,
        owner: SessionOwner,
        tunnel: _Tunnel,
        limits: SessionLimits,
    ) -> None:
        self._proto = proto
        self.session_id = session_id
        self._owner = owner
        self._streams: dict[int, WTStream] = {}
        self.max_streams = limits.streams
        self.max_datagram_size = limits.datagram_size
        self.max_stream_buffer = limits.stream_buffer
        self.dropped_datagrams = 0
        self.closed = False
        self._tunnel = tunnel
        self._capsules = bytearray()
        self._peer_max: dict[int, int] = {}
        # Streams with a write waiting for the client's acknowledgements.
        self._waiting: set[int] = set()
        # Datagrams sent by the application, not yet given to the stack.
        self._outgoing: deque[bytes] = deque()
        #: Datagrams to send dropped for `DATAGRAM_QUEUE` (the oldest first).
        self.dropped_outgoing = 0
        # The owner's coroutines (on_stream, on_datagram) until they end.
        self._tasks: set[asyncio.Task[Any]] = set()
        proto.webtransport_sessions().seat(self)
        # The capsule reader also sees the CONNECT stream's end (its read fails).
        self._reader = asyncio.ensure_future(self._read_capsules())

    # -- out -------------------------------------------------------------------------

    def send_datagram(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("WebTransport session closed")
        if len(data) > self.max_datagram_size:
            raise ValueError(
                f"WebTransport datagram of {len(data)} bytes over the limit of "
                f"{self.max_datagram_size}"
            )
        queue = self._outgoing
        if len(queue) >= DATAGRAM_QUEUE:
            queue.popleft()
            self.dropped_outgoing += 1
        queue.append(data)
        self._proto.flush_soon()

    def release_datagrams(self, h3: H3Connection) -> None:
        """Hand the queued datagrams to the stack (see `send_datagrams`)."""
        queue = self._outgoing
        while queue:
            send_h3_datagram(h3, self.session_id, queue.popleft())

    def create_stream(self, unidirectional: bool = False) -> WTStream:
        if self.closed:
            raise ConnectionResetError("WebTransport session closed")
        h3 = self._proto.h3
        assert h3 is not None
        sid = h3.create_webtransport_stream(self.session_id, is_unidirectional=unidirectional)
        stream = WTStream(self, sid, readable=not unidirectional, writable=True)
        self._streams[sid] = stream
        self._proto.flush_soon()
        return stream

    def close(self, code: int = 0, reason: str = "") -> None:
        """CLOSE_WEBTRANSPORT_SESSION, then FIN on the CONNECT stream."""
        if self.closed:
            return
        raw = reason.encode()[:_MAX_REASON]
        body = code.to_bytes(4, "big") + raw
        capsule = encode_uint_var(CLOSE_SESSION) + encode_uint_var(len(body)) + body
        try:
            self._tunnel.write(capsule)
        except Exception:
            pass
        self._tunnel.close()
        self._ended(code, reason)

    def going_away(self) -> None:
        """The server drains: DRAIN_WEBTRANSPORT_SESSION, and the handler's on_drain."""
        if self.closed:
            return
        try:
            self._tunnel.write(encode_uint_var(DRAIN_SESSION) + encode_uint_var(0))
        except Exception:
            pass
        try:
            self._owner.on_drain()
        except Exception:
            app_log.error("Uncaught exception in WebTransport on_drain", exc_info=True)

    # -- for its streams ---------------------------------------------------------------

    @property
    def quic(self) -> QuicConnection:
        """aioquic's connection, which carries the session's streams."""
        return self._proto.quic

    def flush_soon(self) -> None:
        """Send what the streams queued, on the next turn."""
        self._proto.flush_soon()

    def forget_stream(self, stream_id: int) -> None:
        """A stream is done (both ways, everything read) or reset."""
        self._streams.pop(stream_id, None)

    def stream_writable(self, stream_id: int) -> asyncio.Future[None]:
        """What a write on one of its streams returns (see `WTStream.write`)."""
        ready = self._proto.stream_writable(stream_id)
        if not ready.done():
            # Known until it is done: a stream that ended (FIN) is forgotten,
            # and its last write may still wait.
            waiting = self._waiting
            waiting.add(stream_id)
            ready.add_done_callback(lambda _: waiting.discard(stream_id))
        return ready

    def write_timed_out(self, stream_id: int) -> bool:
        """The client took nothing of ``stream_id`` for the write timeout:
        reset it if it is one of the session's (True)."""
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.reset(0)
            return True
        if stream_id not in self._waiting:
            return False
        # Ended (FIN sent), its last write still waiting.
        try:
            self._proto.quic.reset_stream(stream_id, _wt_error(0))
        except Exception:
            pass
        self.abandon_writes(stream_id)
        self._proto.flush_soon()
        return True

    def abandon_writes(self, stream_id: int) -> None:
        """One of its streams was reset: the writes waiting on it fail."""
        self._proto.abandon_writes(stream_id)

    # -- in (from route_event and stream_reset) --------------------------------------

    def stream_data_received(self, sid: int, data: bytes, ended: bool) -> None:
        """Data on one of the session's streams (a new one if the client opened it)."""
        stream = self._streams.get(sid)
        if stream is None:
            if self.closed:
                return
            # Stream IDs of a kind only grow: a lower one is a stream already
            # refused, reset or done, whose late data is not a new stream.
            if sid <= self._peer_max.get(sid & 3, -1):
                return
            self._peer_max[sid & 3] = sid
            # Client-initiated IDs are even.
            peer_open = sum(1 for s in self._streams if s % 2 == 0)
            if peer_open >= self.max_streams:
                app_log.info(
                    "WebTransport session %d: more than %d streams; stream %d refused",
                    self.session_id,
                    self.max_streams,
                    sid,
                )
                quic = self._proto.quic
                try:
                    quic.stop_stream(sid, WT_BUFFERED_STREAM_REJECTED)
                    if sid & 2 == 0:
                        quic.reset_stream(sid, WT_BUFFERED_STREAM_REJECTED)
                except Exception:
                    pass
                self._proto.flush_soon()
                return
            # Client-initiated: bidirectional (ID % 4 == 0) or unidirectional (2).
            stream = WTStream(self, sid, readable=True, writable=sid & 2 == 0)
            self._streams[sid] = stream
            self._call("on_stream", self._owner.on_stream, stream)
        stream.data_received(data, ended)
        if stream.buffered > self.max_stream_buffer:
            app_log.info(
                "WebTransport stream %d: more than %d bytes unread; reset",
                sid,
                self.max_stream_buffer,
            )
            stream.reset(0)

    def datagram_received(self, data: bytes) -> None:
        """A datagram for the session (one over the size limit is dropped, counted)."""
        if self.closed:
            return
        if len(data) > self.max_datagram_size:
            self.dropped_datagrams += 1
            return
        self._call("on_datagram", self._owner.on_datagram, data)

    async def _read_capsules(self) -> None:
        tunnel = self._tunnel
        code, reason = 0, ""
        try:
            while True:
                self._capsules += await tunnel.read_bytes(65536, partial=True)
                found = self._parse()
                if found is not None:
                    code, reason = found
                    break
        except Exception:
            pass  # the stream ended or was reset: closed without a reason
        if not self.closed:
            tunnel.close()
            self._ended(code, reason)

    def _parse(self) -> Optional[tuple[int, str]]:
        """The peer's close (code, reason) once its capsule has come, else None."""
        while self._capsules:
            buf = Buffer(data=bytes(self._capsules))
            try:
                kind = buf.pull_uint_var()
                length = buf.pull_uint_var()
                body = buf.pull_bytes(length)
            except BufferReadError:
                if len(self._capsules) > 65536:
                    return (0, "capsule too long")
                return None
            del self._capsules[: buf.tell()]
            if kind == CLOSE_SESSION and len(body) >= 4:
                return int.from_bytes(body[:4], "big"), body[4:].decode("utf-8", "replace")
            # Other capsules (DRAIN, unknown ones) are ignored (RFC 9297 3.2).
        return None

    def _ended(self, code: int, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        if not self._reader.done():
            self._reader.cancel()
        self._proto.webtransport_sessions().leave(self)
        for stream in list(self._streams.values()):
            stream.reset(0)
        for sid in list(self._waiting):
            self.abandon_writes(sid)  # ended streams' last writes
        self._outgoing.clear()
        try:
            self._owner.on_session_close(code, reason)
        except Exception:
            app_log.error("Uncaught exception in WebTransport on_session_close", exc_info=True)
        # What the owner's calls still run ends with the session (not the
        # caller itself, when the owner closed it from one of them).
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()

    def stream_reset(self, stream_id: int) -> bool:
        """The client reset ``stream_id``: True if it is one of this session's."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return False
        stream.reset_received()
        return True

    def _call(self, name: str, method: Callable[..., Any], *args: Any) -> None:
        try:
            result = method(*args)
        except Exception:
            app_log.error("Uncaught exception in WebTransport %s", name, exc_info=True)
            return
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(result)
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            app_log.error("Uncaught exception in WebTransport handler", exc_info=task.exception())
