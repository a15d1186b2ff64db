"""Serving an ASGI application's ``webtransport`` scope: `WebTransportCycle`.

A browser's ``new WebTransport(url)`` is an extended CONNECT with
``:protocol webtransport`` over HTTP/3 (draft-ietf-webtrans-http3, as
Chromium speaks it). It arrives through the HTTP delegate seam like any
request; the application gets a ``webtransport`` scope and, once it
accepts, the session's datagrams and streams as messages. The session
itself (capsules, streams, limits) is ``httpserver/_h3webtransport``'s,
the one `squall.webtransport.WebTransportHandler` uses, and whether it may
be had is ``httputil/_webtransport``'s `SessionRequest`'s (400, 429, the
seat held while the application decides, the draft's header) for both:
this object is the session's owner, as a handler is, and translates.

ASGI has no WebTransport specification yet (the proposal is open at
https://github.com/django/asgiref/issues/280). The messages follow the
prototype that proposal points to (aioquic's
``examples/demo.py``) and Hypercorn's pull request 341: ``connect``,
``accept``, ``close``, ``datagram.receive``/``send``, and
``stream.receive``/``send`` keyed by the QUIC stream ID ``stream``.
Where they stop short, the additions (see docs/guide/http3.md) are:

* ``webtransport.disconnect`` carries the close's ``code`` and ``reason``,
  and ``webtransport.close`` sends them (CLOSE_WEBTRANSPORT_SESSION);
* ``webtransport.close`` before ``accept`` refuses the session with
  ``status`` (403 unless given), as the prototype's bare 403 does;
* the end of a stream: ``more_body`` on ``stream.receive`` (False on the
  last message, as for HTTP bodies), ``end_stream`` on ``stream.send``;
* the application opens streams with ``webtransport.stream.open``
  (``unidirectional``); the very next ``receive()`` returns
  ``webtransport.stream.opened`` with its ``stream``;
* ``webtransport.stream.reset``, both ways: a stream aborted (its unread
  data dropped), by the client or by the application (``code``);
* back-pressure, which the prototype has none of. In: messages are held
  up to `INBOX_HIGH_WATER`; past it, streams are not read (their bytes
  wait in the session, up to its unread limit, beyond which the stream is
  reset) and datagrams are dropped and counted (they are unreliable by
  definition; a browser drops them too). Out: ``webtransport.stream.send``
  returns once the stream holds at most the server's high-water mark of
  output the client has not acknowledged (a stream the client takes
  nothing of for the server's write timeout is reset, and the send raises
  `ClientDisconnected`); datagrams are queued by the session, a bounded
  number, the oldest dropped past it.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the ASGI server

import asyncio
from typing import TYPE_CHECKING, Any, Optional

from squall.asgi._cycle import (
    CLOSED,
    CONNECTING,
    INBOX_HIGH_WATER,
    OPEN,
    SessionCycle,
    header_pairs,
)
from squall.asgi._types import ASGIProtocolError, ClientDisconnected, Message, expected, resolve
from squall.httputil import HTTPHeaders, RequestStartLine, ResponseStartLine
from squall.httputil._headers import fields_of
from squall.httputil._webtransport import DRAFT_FIELD, Session, SessionRequest, SessionStream

if TYPE_CHECKING:
    from squall.asgi._types import Scope  # the hook's annotation only


def _stream_id(message: Message) -> int:
    sid = message.get("stream")
    if not isinstance(sid, int) or isinstance(sid, bool):
        raise ASGIProtocolError(f"{message.get('type')} needs an int 'stream', got {sid!r}")
    return sid


def _payload(message: Message) -> bytes:
    data = message.get("data", b"")
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ASGIProtocolError(f"{message.get('type')} 'data' must be bytes")
    return bytes(data)


class WebTransportCycle(SessionCycle):
    """One WebTransport session: the application's receive/send, and the
    session's `SessionOwner` (as a `WebTransportHandler` is)."""

    _ACCEPTED = "session"
    _UNANSWERED = "ASGI callable returned without accepting or refusing the session"
    _CONNECT = "webtransport.connect"

    _held: int
    _session: Optional[Session]
    _streams: dict[int, SessionStream]
    _readers: dict[int, asyncio.Task[None]]
    _writes: dict[int, asyncio.Future[None]]
    _ended_out: set[int]
    _close: Optional[tuple[int, str]]
    _asked: SessionRequest
    #: Datagrams from the client dropped while the application was not
    #: receiving (the session counts those over the size limit).
    dropped_datagrams: int

    def _take(self, start_line: RequestStartLine, headers: HTTPHeaders) -> Optional[Scope]:
        # Stream bytes in the inbox (bounded by the server's wt_max_stream_buffer).
        self._held = 0
        self._session = None
        self._streams = {}
        self._readers = {}
        self._writes = {}
        # Streams the application ended (FIN sent): forgotten once read too.
        self._ended_out = set()
        self._close = None
        self.dropped_datagrams = 0
        server = self._server
        # A seat is held from here until the session opens or is not had.
        self._asked = asked = SessionRequest(self._conn, server.wt_limits)
        refusal = asked.refusal
        if refusal is not None:
            self._refuse(*refusal)
            return None
        scope = server.http_scope(start_line, fields_of(headers), self._conn)
        del scope["method"]
        scope["type"] = "webtransport"
        extensions: dict[str, Any] = {"webtransport": {}}
        tls = scope["extensions"].get("tls")
        if tls is not None:
            extensions["tls"] = tls
        scope["extensions"] = extensions
        return scope

    # -- the HTTP driver's side ------------------------------------------------------

    def on_connection_close(self) -> None:
        """The CONNECT stream closed before the session was accepted."""
        if self._state == CONNECTING:
            self._ended(0, "")
        self.request_finished()

    # -- the session's owner (called by WTSession) ------------------------------------

    def on_stream(self, stream: SessionStream) -> None:
        """The client opened ``stream``: read it into messages."""
        sid = stream.stream_id
        self._streams[sid] = stream
        self._readers[sid] = self._loop.create_task(self._read_stream(stream))

    def on_datagram(self, data: bytes) -> None:
        if self._full():
            self.dropped_datagrams += 1
            return
        self._put({"type": "webtransport.datagram.receive", "data": data})

    def on_drain(self) -> None:
        """The server drains: the session closes (the application hears it)."""
        session = self._session
        if session is not None:
            self._state = CLOSED
            session.close(0, "server shutting down")

    def on_session_close(self, code: int, reason: str) -> None:
        """The session ended (either side closed it, or the connection went)."""
        self._ended(code, reason)

    # -- in ----------------------------------------------------------------------------

    async def _read_stream(self, stream: SessionStream) -> None:
        sid = stream.stream_id
        try:
            limit = min(self._server.wt_max_stream_buffer, 65536)
            while True:
                if self._full():
                    space = self._space
                    if space is None:
                        space = self._space = self._loop.create_future()
                    await space
                    continue
                data = await stream.read(limit)
                if self._close is not None:
                    return
                more = bool(data)
                self._held += len(data)
                self._put(
                    {
                        "type": "webtransport.stream.receive",
                        "stream": sid,
                        "data": data,
                        "more_body": more,
                    }
                )
                if not more:
                    if not stream.writable or sid in self._ended_out:
                        self._forget(sid)
                    return
        except ConnectionResetError:
            # Reset by the client (the application's own reset forgot it first).
            if self._close is None and sid in self._streams:
                self._forget(sid)
                self._put({"type": "webtransport.stream.reset", "stream": sid})
        finally:
            self._readers.pop(sid, None)

    def _full(self) -> bool:
        return (
            len(self._inbox) >= INBOX_HIGH_WATER or self._held >= self._server.wt_max_stream_buffer
        )

    def _forget(self, sid: int) -> None:
        self._streams.pop(sid, None)
        self._ended_out.discard(sid)

    def _put(self, message: Message) -> None:
        self._inbox.append(message)
        self._wake()

    def _ended(self, code: int, reason: str) -> None:
        if self._close is not None:
            return
        self._asked.release()  # not had: refused, failed, gone (nothing once open)
        self._close = (code, reason)
        self._state = CLOSED
        self._put({"type": "webtransport.disconnect", "code": code, "reason": reason})
        for task in list(self._readers.values()):
            task.cancel()
        for write in list(self._writes.values()):
            write.cancel()
        space = self._space
        self._space = None
        resolve(space)

    # -- the application's side ------------------------------------------------------

    async def receive(self) -> Message:
        """The next message (see the module)."""
        while True:
            inbox = self._inbox
            if inbox:
                message = inbox.popleft()
                if message["type"] == "webtransport.stream.receive":
                    self._held -= len(message["data"])
                space = self._space
                if space is not None and not self._full():
                    self._space = None
                    resolve(space)
                return message
            close = self._close
            if close is not None:
                return {"type": "webtransport.disconnect", "code": close[0], "reason": close[1]}
            waiter = self._waiter = self._loop.create_future()
            await waiter

    async def send(self, message: Message) -> None:
        """Carry out one message from the application.

        Raises:
            ASGIProtocolError: a message out of order or malformed.
            ClientDisconnected: the session (or the stream written) is closed.
            ValueError: a datagram over the size limit.
        """
        kind = message.get("type")
        state = self._state
        if state == OPEN:
            session = self._session
            assert session is not None
            if kind == "webtransport.datagram.send":
                session.send_datagram(_payload(message))
            elif kind == "webtransport.stream.send":
                await self._stream_send(message)
            elif kind == "webtransport.stream.open":
                stream = session.create_stream(bool(message.get("unidirectional", False)))
                self._streams[stream.stream_id] = stream
                self._inbox.appendleft(
                    {
                        "type": "webtransport.stream.opened",
                        "stream": stream.stream_id,
                        "unidirectional": not stream.readable,
                    }
                )
                if stream.readable:
                    reader = self._loop.create_task(self._read_stream(stream))
                    self._readers[stream.stream_id] = reader
            elif kind == "webtransport.stream.reset":
                sid = _stream_id(message)
                code = self._code(message)
                target = self._streams.get(sid)
                if target is None:
                    raise ClientDisconnected(f"WebTransport stream {sid} is not open")
                self._forget(sid)
                target.reset(code)
            elif kind == "webtransport.close":
                self._state = CLOSED
                reason = message.get("reason") or ""
                if not isinstance(reason, str):
                    raise ASGIProtocolError("webtransport.close 'reason' must be a str")
                session.close(self._code(message), reason)
            else:
                raise expected(
                    "'webtransport.datagram.send', 'webtransport.stream.send', "
                    "'webtransport.stream.open', 'webtransport.stream.reset' or "
                    "'webtransport.close'",
                    message,
                )
        elif state == CONNECTING:
            if kind == "webtransport.accept":
                await self._accept(message)
            elif kind == "webtransport.close":
                status = message.get("status", 403)
                if not isinstance(status, int) or not 400 <= status <= 599:
                    raise ASGIProtocolError(
                        f"webtransport.close 'status' (a refusal) must be 4xx or 5xx, not {status!r}"
                    )
                self._state = CLOSED
                self._respond(status, HTTPHeaders(), b"")
                self._ended(0, "")
            else:
                raise expected("'webtransport.accept' or 'webtransport.close'", message)
        elif kind != "webtransport.close":
            if isinstance(kind, str) and kind.startswith("webtransport."):
                raise ClientDisconnected("the WebTransport session is closed")
            raise ASGIProtocolError(
                f"Unexpected ASGI message {kind!r} sent, after the session closed"
            )

    @staticmethod
    def _code(message: Message) -> int:
        code = message.get("code", 0)
        if not isinstance(code, int) or not 0 <= code < 1 << 32:
            raise ASGIProtocolError(
                f"{message.get('type')} 'code' must be a 32-bit number, not {code!r}"
            )
        return code

    async def _stream_send(self, message: Message) -> None:
        sid = _stream_id(message)
        data = _payload(message)
        stream = self._streams.get(sid)
        if stream is None:
            raise ClientDisconnected(f"WebTransport stream {sid} is not open")
        if not stream.writable:
            raise ASGIProtocolError(f"WebTransport stream {sid} is the client's unidirectional one")
        end = bool(message.get("end_stream", False))
        try:
            ready = stream.write(data, end)
        except ConnectionResetError:
            raise ClientDisconnected(f"WebTransport stream {sid} is closed for writing") from None
        if end:
            if stream.readable and sid in self._readers:
                self._ended_out.add(sid)
            else:
                self._forget(sid)
        if ready.done():
            return
        self._writes[sid] = ready
        try:
            await ready
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise ClientDisconnected("the WebTransport session closed") from None
        except OSError:
            raise ClientDisconnected(f"WebTransport stream {sid} is closed") from None
        finally:
            self._writes.pop(sid, None)

    async def _accept(self, message: Message) -> None:
        await self._request_read()
        fields = HTTPHeaders()
        for name, value in header_pairs(message, "webtransport.accept"):
            fields.add(name, value)
        fields[DRAFT_FIELD[0]] = DRAFT_FIELD[1]
        conn = self._conn
        conn.write_headers(ResponseStartLine(self._version, 200, "OK"), fields)
        conn.finish()
        tunnel = conn.detach()
        self._state = OPEN
        self._session = self._asked.open(self, tunnel)

    # -- the application's end -------------------------------------------------------

    def _app_cancelled(self) -> None:
        self._app_done(failed=False)

    def _app_done(self, failed: bool) -> None:
        """Refuses a session the application did not answer, closes one it left open."""
        state = self._state
        self._state = CLOSED
        if state == CONNECTING:
            self._respond(500, HTTPHeaders(), b"")
            self._ended(0, "")
        elif state == OPEN and self._session is not None:
            self._session.close(0, "internal server error" if failed else "")
