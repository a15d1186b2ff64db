"""`EventSourceHandler`: a ``text/event-stream`` response (Server-Sent Events).

The same handler serves HTTP/1.1 (a chunked response), HTTP/2 and HTTP/3
(one stream each): it only writes and flushes, and the drivers below carry
each flush out at once.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar, Optional

from squall._sse import (
    CONTENT_TYPE,
    EventStreamError,
    check_last_event_id,
    format_comment,
    format_event,
    format_retry,
)
from squall.web.errors import HTTPError
from squall.web.handler import RequestHandler

__all__ = ["EventSourceHandler", "EventStreamError"]

# Every stream open in this process, for `EventSourceHandler.end_all`.
_open: weakref.WeakSet[EventSourceHandler] = weakref.WeakSet()


class EventSourceHandler(RequestHandler):
    """Streams Server-Sent Events to a browser's ``EventSource`` (or any SSE client).

    Override `stream` and call `send_event` from it; the response ends when
    `stream` returns, when the client goes away (`stream` is then
    cancelled) or when the server asks (`end_all`, or its task cancelled
    at shutdown). Before `stream` runs, the handler sends the headers
    (``Content-Type: text/event-stream``, ``Cache-Control: no-store``,
    ``X-Accel-Buffering: no`` so that nginx passes each event on at once)
    and the ``retry`` hint; while it runs, a comment (``: ping``) goes out
    every ``ping_interval`` seconds so that proxies do not close a quiet
    stream. Output is never compressed (``compress_response`` would hold
    events back in the compressor) and each event is flushed as it is sent.

    A client that reconnects sends the id of the last event it saw as
    ``Last-Event-ID``: `last_event_id` holds it (a value we cannot have
    sent, with a control character or far too long, gets a 400).

    Example::

        class Clock(EventSourceHandler):
            async def stream(self) -> None:
                for tick in itertools.count(int(self.last_event_id or 0) + 1):
                    await self.send_event(time.ctime(), id=str(tick))
                    await asyncio.sleep(1)
    """

    #: Milliseconds the client waits before reconnecting (sent first); None sends none.
    retry: ClassVar[Optional[int]] = 2000
    #: Seconds between comment pings; None or 0 sends none.
    ping_interval: ClassVar[Optional[float]] = 15.0

    _ended: Optional[asyncio.Future[None]] = None
    _task: Optional[asyncio.Task[None]] = None
    _ping: Optional[asyncio.TimerHandle] = None
    _events_sent = 0

    @property
    def last_event_id(self) -> Optional[str]:
        """The client's ``Last-Event-ID`` header, checked (None when absent).

        Raises:
            HTTPError: 400, when the value cannot be an id we sent.
        """
        value = self.request.headers.get("Last-Event-ID")
        if value is None:
            return None
        try:
            return check_last_event_id(value)
        except EventStreamError as exc:
            raise HTTPError(400, "%s", exc, reason="Bad Last-Event-ID") from None

    @property
    def events_sent(self) -> int:
        """Events written by `send_event` so far (comments not counted)."""
        return self._events_sent

    @property
    def stream_open(self) -> bool:
        """True while the stream runs and the client is still there."""
        ended = self._ended
        return ended is not None and not ended.done()

    async def stream(self, *args: Any, **kwargs: Any) -> None:
        """Sends the events (override); gets the URL's path arguments."""
        raise NotImplementedError("override EventSourceHandler.stream")

    async def open_stream(self, *args: Any, **kwargs: Any) -> None:
        """Checks the request before the stream starts (override; may raise `~squall.web.HTTPError`).

        Runs before any byte is sent, so an error here is an ordinary
        error response (the client's ``EventSource`` then stops trying).
        """

    async def get(self, *args: Any, **kwargs: Any) -> None:
        _ = self.last_event_id  # a bad one is a 400, before anything is sent
        await self.open_stream(*args, **kwargs)
        # An event held in a compressor reaches nobody: send as written.
        self._transforms = ()
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Accel-Buffering", "no")
        loop = asyncio.get_running_loop()
        self._ended = ended = loop.create_future()
        _open.add(self)
        task = self._task = asyncio.ensure_future(self._run(args, kwargs))
        try:
            await asyncio.wait([task, ended], return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # The server is shutting down (its tasks cancelled): end the
            # response properly, so the client reconnects elsewhere.
            task.cancel()
            self._end_stream()
            raise
        finally:
            _open.discard(self)
            self._stop_pinging()
            if not task.done():
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        if task.done() and not task.cancelled():
            exc = task.exception()
            # A write that failed because the client left is that close, not an error.
            if exc is not None and not (isinstance(exc, OSError) and ended.done()):
                raise exc  # a bug in stream() is logged and answered like any other
        self._end_stream()

    async def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.retry is not None:
            self.write(format_retry(self.retry))
        await self._flush_or_end()
        self._schedule_ping()
        await self.stream(*args, **kwargs)

    def _end_stream(self) -> None:
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(None)
        if not self._finished:
            try:
                future = self.finish()
            except (OSError, RuntimeError):
                return  # the client is gone: nothing more to send
            future.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def send_event(
        self,
        data: str,
        *,
        event: Optional[str] = None,
        id: Optional[str] = None,
        retry: Optional[int] = None,
    ) -> None:
        """Writes one event and flushes it (waiting while the client is slow to read).

        Args:
            data: the message; multi-line text becomes several ``data:`` lines.
            event: the event's type (the client's ``addEventListener`` name);
                None for ``message``.
            id: what the client sends back as ``Last-Event-ID``.
            retry: a new reconnection delay, in milliseconds.

        Raises:
            EventStreamError: ``event`` or ``id`` holds CR, LF (or NUL, for ``id``).
            squall.iostream.StreamClosedError: the client went away (an
                `OSError`; the stream ends, and `stream` is cancelled if it
                goes on).
        """
        chunk = format_event(data, event=event, id=id, retry=retry)
        self.write(chunk)
        self._events_sent += 1
        await self._flush_or_end()

    async def send_comment(self, text: str = "") -> None:
        """Writes a comment (``: text``), which the client ignores, and flushes it."""
        self.write(format_comment(text))
        await self._flush_or_end()

    async def _flush_or_end(self) -> None:
        try:
            await self.flush()
        except OSError:
            # The client is gone (the connection's close may not have been
            # reported yet): the stream ends either way.
            self._close_stream()
            raise

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._close_stream()

    def _close_stream(self) -> None:
        ended = self._ended
        if ended is not None and not ended.done():
            ended.set_result(None)
        # At once, not when get() wakes: stream() may be about to run with
        # more to send, which must not go out after the end was asked for.
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def end_stream(self) -> None:
        """Ends the response now (from outside `stream`, which is cancelled)."""
        self._close_stream()

    @classmethod
    def end_all(cls) -> int:
        """Ends every stream of this class (and subclasses) open in this process.

        Call it when the server stops (before `HTTPServer.drain
        <squall.httpserver.HTTPServer.drain>`, which waits for responses in
        progress): each client sees its response end and reconnects, with
        its ``Last-Event-ID``, to a server still running.

        Returns:
            How many streams were ended.
        """
        ended = [handler for handler in list(_open) if isinstance(handler, cls)]
        for handler in ended:
            handler.end_stream()
        return len(ended)

    def _schedule_ping(self) -> None:
        interval = self.ping_interval
        if interval and self.stream_open:
            loop = asyncio.get_running_loop()
            self._ping = loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping = None
        if not self.stream_open or self._finished:
            return
        self.write(format_comment("ping"))
        try:
            future = self.flush()
        except OSError:
            self._close_stream()
            return
        # A failed write shows as a connection close; nothing to wait for here.
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._schedule_ping()

    def _stop_pinging(self) -> None:
        ping = self._ping
        if ping is not None:
            ping.cancel()
            self._ping = None
