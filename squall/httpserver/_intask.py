"""A request's delegate called from a Task of the request's own.

The HTTP/1.1 server calls a request's delegate from its protocol callbacks:
no Task is current there, and the contextvars Context is the transport's
(one that uvloop shares between connections). Squall's own application
delegate needs nothing more. Code of a program or an instrumentation in
the delegate expects what Tornado gives it: ``headers_received``,
``data_received`` and ``finish`` called from one Task that reads the
request, the handler's Task started from that one (so it copies that
Task's Context). New Relic's agent starts a transaction in
``headers_received``, keyed by `asyncio.current_task`, and finds it again
in ``RequestHandler.__init__`` and in the handler's Task; a contextvar set
in ``headers_received`` is the handler's.

`TaskedDelegate` gives that shape: each call is queued for the request's
Task, and returns a future the driver waits on before it hands the next
event over (so the calls keep their order and the body is read at the
pace the delegate takes it, as when the delegate returns an awaitable).
"""

from __future__ import annotations

__all__ = ["TaskedDelegate", "python_methods"]

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from types import FunctionType
from typing import Any, Optional

from squall.concurrent import _held_tasks
from squall.httputil import HTTPHeaders, HTTPMessageDelegate
from squall.httputil._startline import StartLine
from squall.log import app_log

_Call = tuple[str, tuple[Any, ...], asyncio.Future[None]]


class TaskedDelegate(HTTPMessageDelegate):
    """Calls ``delegate``'s methods in one Task, made at the first call.

    Args:
        delegate: the request's delegate (what ``start_request`` gave).
        loop: the loop the driver runs on.
        finished: called with the future of ``finish``'s call once it is
            done (the driver answers an error there as it would have
            answered one raised by a direct call).
    """

    __slots__ = ("delegate", "_loop", "_calls", "_wake", "_task", "_finished")

    def __init__(
        self,
        delegate: HTTPMessageDelegate,
        loop: asyncio.AbstractEventLoop,
        finished: Callable[[asyncio.Future[None]], None],
    ) -> None:
        self.delegate = delegate
        self._loop = loop
        self._calls: deque[_Call] = deque()
        self._wake: Optional[asyncio.Future[None]] = None
        self._task: Optional[asyncio.Task[None]] = None
        self._finished = finished

    def _call(self, name: str, args: tuple[Any, ...]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._calls.append((name, args, future))
        if self._task is None:
            task = self._task = self._loop.create_task(self._run())
            # Nothing else holds the Task while it waits for the next call.
            _held_tasks.add(task)
            task.add_done_callback(_held_tasks.discard)
        else:
            wake = self._wake
            if wake is not None:
                self._wake = None
                if not wake.done():
                    wake.set_result(None)
        return future

    async def _run(self) -> None:
        calls = self._calls
        delegate = self.delegate
        while True:
            if not calls:
                wake = self._wake = self._loop.create_future()
                await wake
                continue
            name, args, future = calls.popleft()
            try:
                # Looked up now, in the Task: an instrumentation may have put
                # its wrapper on the instance.
                ret = getattr(delegate, name)(*args)
                if ret is not None:
                    await ret
            except asyncio.CancelledError:
                future.cancel()
                raise
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(None)
            if name == "finish" or name == "on_connection_close":
                return

    def headers_received(self, start_line: StartLine, headers: HTTPHeaders) -> Awaitable[None]:
        return self._call("headers_received", (start_line, headers))

    def data_received(self, chunk: bytes) -> Awaitable[None]:
        return self._call("data_received", (chunk,))

    def finish(self) -> None:
        self._call("finish", ()).add_done_callback(self._finished)

    def on_connection_close(self) -> None:
        self._call("on_connection_close", ()).add_done_callback(_log_error)


def _log_error(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        exc = future.exception()
        if exc is not None:
            app_log.error("Uncaught exception", exc_info=exc)


def python_methods(delegate: HTTPMessageDelegate) -> HTTPMessageDelegate:
    """``delegate``, or one in front of it whose methods are Python functions.

    New Relic's agent wraps ``delegate.headers_received`` (with wrapt) and
    reads the delegate from the bound method. A method of a compiled class
    (the application's delegate in the compiled build) is bound as a
    builtin, from which wrapt reads no instance: the agent then fails.
    """
    if type(getattr(type(delegate), "headers_received", None)) is FunctionType:
        return delegate
    return _PythonDelegate(delegate)


class _PythonDelegate(HTTPMessageDelegate):
    # No __slots__: the agent takes its wrapper out of the instance's
    # __dict__ once called.

    def __init__(self, delegate: HTTPMessageDelegate) -> None:
        self.delegate = delegate

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        return self.delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.delegate.on_connection_close()
