"""The application's delegate for one request: from its head to a handler's ``_execute``.

Alone in its module so that the speedups build compiles it (mypyc): the
server calls it for every request, and a compiled delegate builds the
(compiled) `.HTTPServerRequest` without a Python frame. It imports nothing
from the rest of ``squall.web``, which imports it: `squall.web.application`
fills in the few names it needs (see `_bind`).
"""

from __future__ import annotations

__all__: list[str] = []

import asyncio
import sys
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Optional

from squall._request_task import start as start_task
from squall.concurrent import Future, _held_tasks, future_set_result_unless_cancelled
from squall.httputil._delegates import HTTPConnection, HTTPMessageDelegate
from squall.httputil._exchange import Exchange, loop_of
from squall.httputil._headers import HTTPHeaders
from squall.httputil._request import HTTPServerRequest
from squall.httputil._startline import RequestStartLine, StartLine

if TYPE_CHECKING:
    from squall.web.application import Application
    from squall.web.handler import RequestHandler


# Final: the compiled build keeps these in C variables, read without the
# dictionary lookup of a module global (two per request).
_CoroutineType: Final = types.CoroutineType
# Python 3.11: a driver may have made the Task its request is read in (see
# Exchange.adopt); 3.12+ starts the request's own Task eagerly instead.
_ADOPTS: Final = sys.version_info < (3, 12)


# Filled in by squall.web.application (see _bind): Application's own
# find_handler (an application whose class answers with any other, an
# override or a wrapper a profiler or a test put on Application, routes
# everything through it), the application's router class, the router of last
# resort, the debug template reset, and RequestHandler._execute's code (a
# coroutine running it handles its own errors, see _surface_error). Fields of
# one object held in a Final: a module global that _bind assigned would be
# read through the module's dict (two or three lookups per request), a
# compiled class's field is read directly.
class _ApplicationParts:
    stock_find_handler: Any = None
    router_class: Any = None
    route_fallback: Any = None
    clear_template_loaders: Any = None
    stock_execute_code: Any = None


_app_parts: Final = _ApplicationParts()
_RequestStartLine: Final = RequestStartLine


def _bind(
    stock_find_handler: Any,
    router_class: Any,
    route_fallback: Callable[[Application, HTTPServerRequest, Optional[HTTPConnection], Any], Any],
    clear_template_loaders: Callable[[], None],
    stock_execute_code: Any,
) -> None:
    parts = _app_parts
    parts.stock_find_handler = stock_find_handler
    parts.router_class = router_class
    parts.route_fallback = route_fallback
    parts.clear_template_loaders = clear_template_loaders
    parts.stock_execute_code = stock_execute_code


class _HandlerDelegate(HTTPMessageDelegate):
    # The application's delegate for one request, in one of two roles.
    #
    # Made by Application.start_request (no request yet), it builds the
    # request when the head arrives and routes it: a literal route to a
    # RequestHandler that does not stream its body is served by this object
    # itself (one delegate per request); any other target's delegate, from
    # find_handler, gets everything forwarded (``delegate``).
    #
    # Made by get_handler_delegate (a router's target), it serves the given
    # handler class: buffers the body, or streams it to the handler.
    __slots__ = (
        "application",
        "server_conn",
        "request_conn",
        "request",
        "delegate",
        "handler_class",
        "handler_kwargs",
        "path_args",
        "path_kwargs",
        "chunks",
        "stream_request_body",
        "handler",
    )

    def __init__(
        self,
        application: Application,
        server_conn: object,
        request_conn: Optional[HTTPConnection],
    ) -> None:
        # For a connection's next request (Application.start_request): the
        # request is built and routed when its head arrives. The other role
        # is set up by _for_handler.
        self.application = application
        self.server_conn = server_conn
        self.request_conn: Optional[HTTPConnection] = request_conn
        self.request: Optional[HTTPServerRequest] = None
        self.delegate: Optional[HTTPMessageDelegate] = None
        self.handler_class: Optional[type[RequestHandler]] = None
        self.handler_kwargs: Optional[dict[str, Any]] = None
        self.path_args: Optional[list[bytes]] = None
        self.path_kwargs: Optional[dict[str, bytes]] = None
        self.chunks: Optional[list[bytes]] = None
        self.stream_request_body = False
        self.handler: Optional[RequestHandler] = None

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        request = self.request
        if request is None:
            assert isinstance(start_line, _RequestStartLine)
            request = HTTPServerRequest(
                None,
                None,
                "HTTP/1.0",
                headers,
                None,
                None,
                None,
                self.request_conn,
                start_line,
                self.server_conn,
            )
            self.request = request
            app: Any = self.application
            # The wildcard router when it routes every request (no host
            # rules, and the application's class answers with Application's
            # own find_handler), else None; the fallback is told which.
            router: Any = app.wildcard_router
            if not (
                type(app).find_handler is _app_parts.stock_find_handler
                and type(router) is _app_parts.router_class
                and len(app.default_router._rules) == 1
            ):
                router = None
            hit: Any = None if router is None else router.direct_target(request.path)
            if hit is not None:
                # A literal route to a handler that does not stream its
                # body (the index holds no other): served by this delegate.
                self.handler_class = hit[0]
                self.handler_kwargs = hit[1]
                return None
            delegate: HTTPMessageDelegate = _app_parts.route_fallback(
                app, request, self.request_conn, router
            )
            self.delegate = delegate
            return delegate.headers_received(start_line, headers)
        if self.stream_request_body:
            # An attribute of this request's own (in its __dict__).
            open_request: Any = request
            open_request._body_future = Future()
            return self.execute()
        return None

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        delegate = self.delegate
        if delegate is not None:
            return delegate.data_received(chunk)
        if self.stream_request_body:
            handler: Any = self.handler
            assert handler is not None
            result: Optional[Awaitable[None]] = handler.data_received(chunk)
            return result
        chunks = self.chunks
        if chunks is None:
            self.chunks = [chunk]
        else:
            chunks.append(chunk)
        return None

    def finish(self) -> None:
        delegate = self.delegate
        if delegate is not None:
            delegate.finish()
            return
        request = self.request
        assert request is not None
        if self.stream_request_body:
            body_request: Any = request
            future_set_result_unless_cancelled(body_request._body_future, None)
            return
        chunks = self.chunks
        if chunks:
            request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.execute()

    def on_connection_close(self) -> None:
        delegate = self.delegate
        if delegate is not None:
            delegate.on_connection_close()
        elif self.stream_request_body:
            handler: Any = self.handler
            if handler is not None:
                handler._connection_closed()
        else:
            self.chunks = None

    def execute(self) -> Optional[Awaitable[None]]:
        """Run the handler; returns the future of its ``prepare`` (for flow control:
        a streamed body is not read until prepare has finished)."""
        app: Any = self.application
        request = self.request
        handler_class: Any = self.handler_class
        assert request is not None and handler_class is not None
        settings: Any = app.settings
        if settings:
            # Debug settings that reset caches before every request (read
            # here, not in a helper: most applications have some settings,
            # and a call per request costs more than the two lookups). A
            # plain dict (as Application makes it) is read natively, without
            # a method call through Python's protocol for each lookup.
            if type(settings) is dict:
                plain: dict[str, Any] = settings
                template_cache = plain.get("compiled_template_cache", True)
                hash_cache = plain.get("static_hash_cache", True)
            else:
                template_cache = settings.get("compiled_template_cache", True)
                hash_cache = settings.get("static_hash_cache", True)
            if not template_cache:
                _app_parts.clear_template_loaders()
            if hash_cache is False:
                from squall.web.static import StaticFileHandler

                StaticFileHandler.reset()
        kwargs = self.handler_kwargs
        if kwargs:
            handler = handler_class(app, request, **kwargs)
        else:
            handler = handler_class(app, request)
        self.handler = handler
        # Only a handler that streams its body has a prepare() to wait for
        # (the whole body of any other is in already).
        prepared: Optional[Awaitable[None]] = None
        if self.stream_request_body:
            prepared = handler._prepared_future = Future()
        transforms = app.transforms
        # No list per request when the application has no transforms.
        applied: Sequence[Any] = [t(request) for t in transforms] if transforms else ()
        path_args = self.path_args
        path_kwargs = self.path_kwargs
        if path_args or path_kwargs:
            running = handler._execute(applied, *(path_args or ()), **(path_kwargs or {}))
        else:
            running = handler._execute(applied)
        task: Optional[asyncio.Future[Any]] = None
        if type(running) is _CoroutineType:
            # The usual case: a Task of the request's own (on 3.12+ started
            # eagerly: a handler that never waits is done when start()
            # returns None). On the loop the connection names (the HTTP/1.1
            # server's), without asking asyncio: on 3.11 that is a getpid
            # system call per request.
            try:
                loop: Optional[asyncio.AbstractEventLoop] = loop_of(self.request_conn)
            except RuntimeError:
                # No loop running (a test driving the delegate by hand):
                # the coroutine waits for one, as a Tornado handler's does.
                loop = None
            if loop is None:
                task = asyncio.ensure_future(running)
            else:
                # The Task the driver made to read this request, if it made
                # one (HTTP/1.1 on Python 3.11, see Exchange.adopt).
                conn = self.request_conn
                if _ADOPTS and isinstance(conn, Exchange):
                    task = conn.adopt(running)
                if task is None:
                    task = start_task(loop, running)
        elif running is not None:
            # What a wrapper of _execute may return: a Future, an awaitable.
            task = asyncio.ensure_future(running)
        if task is not None:
            # Held until it ends: nothing else holds the Task while it waits
            # (the loop holds it weakly; the connection may go; see
            # squall.concurrent._held_future).
            _held_tasks.add(task)
            # The Task's end is looked at unless it runs the stock _execute,
            # which lets the Task go itself as it ends (no done callback).
            stock = (
                type(running) is _CoroutineType and running.cr_code is _app_parts.stock_execute_code
            )
            if not stock:
                task.add_done_callback(_surface_error)
            else:
                handler._held_task = task
            if type(running) is _CoroutineType and running.cr_suspended:
                # Its first step ran (an eager start) and it waits: a close
                # from now on reaches it.
                handler._watch_close()
            elif not stock:
                # Its first step runs on the loop's next turn (3.11, a loop
                # with a task factory): it hears of a close once that step
                # has returned, as after an eager start, not in the middle
                # of a call of its own that resets the stream (such a close
                # is reported a turn later, see Exchange._report_gone). The
                # Task scheduled its step first: this runs right after it.
                # (The stock _execute, which finds its Task held before that
                # step, arranges this itself, see
                # RequestHandler._watch_first_wait: a loop callback only for
                # a handler that waits, none for one done in that step.)
                task.get_loop().call_soon(watch_after_first_step, handler, task)
        elif not handler._finished:
            # Done with its step but not finished (auto_finish off): a close
            # must still reach it.
            handler._watch_close()
        return prepared


def new_delegate(
    application: Application, server_conn: object, request_conn: Optional[HTTPConnection]
) -> _HandlerDelegate:
    """``Application.start_request`` as a server reads it (this, bound to
    the application): a compiled function takes its arguments off the stack, where
    the class itself, called from Python, parses a tuple of them."""
    return _HandlerDelegate(application, server_conn, request_conn)


def watch_after_first_step(handler: Any, task: asyncio.Future[Any]) -> None:
    """Called once the first step of ``handler``'s Task has returned: a
    close from now on reaches the handler, unless it is done."""
    if not task.done() or not handler._finished:
        handler._watch_close()


def _surface_error(task: asyncio.Future[Any]) -> None:
    # What a wrapper of _execute (an agent's, a subclass's override) lets
    # out, reported by the loop on the next turn. RequestHandler's own
    # _execute handles every Exception itself and lets out only its Task's
    # own cancellation, so its Task is spared this callback (a loop turn and,
    # on asyncio's loop, a Handle made in Python, about 6k instructions):
    # anything else it could end with (an error while answering 500 to that
    # cancellation) is still reported, as "Task exception was never
    # retrieved" when the Task goes.
    _held_tasks.discard(task)
    if not task.cancelled():
        task.result()


def _for_handler(
    application: Application,
    request: HTTPServerRequest,
    handler_class: type[RequestHandler],
    handler_kwargs: Optional[dict[str, Any]],
    path_args: Optional[list[bytes]],
    path_kwargs: Optional[dict[str, bytes]],
) -> _HandlerDelegate:
    """The delegate that runs ``handler_class`` for ``request`` (a router's target)."""
    delegate = _HandlerDelegate(application, request.server_connection, request.connection)
    delegate.request = request
    delegate.handler_class = handler_class
    delegate.handler_kwargs = handler_kwargs or {}
    delegate.path_args = path_args or []
    delegate.path_kwargs = path_kwargs or {}
    delegate.stream_request_body = bool(handler_class._stream_request_body)
    return delegate
