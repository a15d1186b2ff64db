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
import inspect
import sys
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Optional

from squall._request_task import start as start_task
from squall.concurrent import Future, _held_tasks, future_set_result_unless_cancelled
from squall.httputil._delegates import HTTPConnection, HTTPMessageDelegate
from squall.httputil._exchange import loop_of
from squall.httputil._headers import HTTPHeaders
from squall.httputil._request import HTTPServerRequest
from squall.httputil._startline import RequestStartLine, StartLine
from squall.log import app_log

if TYPE_CHECKING:
    from squall.web.application import Application
    from squall.web.handler import RequestHandler


# Final: the compiled build keeps these in C variables, read without the
# dictionary lookup of a module global (two per request).
_CoroutineType: Final = types.CoroutineType
_FunctionType: Final = types.FunctionType
# Python 3.12+ starts a request's Task eagerly; 3.11 makes the Task of a
# handler that waits before the handler (see _made_in_task).
_EAGER: Final = sys.version_info >= (3, 12)
_Task: Final = asyncio.Task


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
    stock_get_handler_delegate: Any = None
    router_class: Any = None
    route_fallback: Any = None
    clear_template_loaders: Any = None
    stock_execute_code: Any = None


_app_parts: Final = _ApplicationParts()
_RequestStartLine: Final = RequestStartLine


def _bind(
    stock_find_handler: Any,
    stock_get_handler_delegate: Any,
    router_class: Any,
    route_fallback: Callable[[Application, HTTPServerRequest, Optional[HTTPConnection], Any], Any],
    clear_template_loaders: Callable[[], None],
    stock_execute_code: Any,
) -> None:
    parts = _app_parts
    parts.stock_find_handler = stock_find_handler
    parts.stock_get_handler_delegate = stock_get_handler_delegate
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
        "body_future",
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
        self.body_future: Optional[Future[None]] = None
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
            # own find_handler and get_handler_delegate, by identity: a
            # wrapper patched on either, even after the class served, is
            # called), else None; the fallback is told which.
            router: Any = app.wildcard_router
            cls: Any = type(app)
            if not (
                cls.find_handler is _app_parts.stock_find_handler
                and cls.get_handler_delegate is _app_parts.stock_get_handler_delegate
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
            # An attribute of this request's own (in its __dict__), which
            # the handler awaits; resolved by finish().
            open_request: Any = request
            open_request._body_future = self.body_future = Future()
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
        body_future = self.body_future
        if body_future is not None:
            handler: Any = self.handler
            if handler is not None and handler._finished:
                self.answered_before_end()
                return
            future_set_result_unless_cancelled(body_future, None)
            return
        chunks = self.chunks
        if chunks:
            request.body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.execute()

    def answered_before_end(self) -> None:
        """A handler that streams its body finished its response before the
        body's end was taken (from ``prepare`` or ``data_received``, the last
        piece having come with the end): as on Tornado, whose connection then
        skips ``finish``, the method does not run, the connection closes
        after the response and the handler hears of that close."""
        conn = self.request_conn
        if conn is not None:
            conn.close()
        self.on_connection_close()

    def on_connection_close(self) -> None:
        delegate = self.delegate
        if delegate is not None:
            delegate.on_connection_close()
        elif self.stream_request_body:
            handler: Any = self.handler
            if handler is not None:
                prepared: Optional[Future[None]] = handler._prepared_future
                if prepared is not None and not prepared.done():
                    # Lost before prepare() is over (an HTTP/2 stream reset
                    # in the read that brought its head, before the handler's
                    # Task took a step; a client gone during an async
                    # prepare): told once it is over, as over HTTP/1.1 on
                    # Tornado, which reads nothing (the close included)
                    # until then. on_connection_close never precedes prepare.
                    prepared.add_done_callback(lambda _: handler._connection_closed())
                else:
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
        plan = GENERAL
        own: Optional[asyncio.AbstractEventLoop] = None
        if not self.stream_request_body and _is_stock_execute(handler_class._execute):
            known = _plans_of(handler_class).get(request.method)
            # The functions the plan was decided from are still the class's
            # (by identity: a patch after the class served is seen, a
            # wrapper that compares equal to the function too).
            if (
                known is None
                or handler_class.prepare is not known.prepare
                or getattr(handler_class, known.name, None) is not known.served
                or (
                    known.hook is not None
                    and getattr(handler_class, known.hook, None) is not known.hooked
                )
            ):
                plan = _plan(handler_class, request)
            else:
                plan = known.plan
            own = self.loop_for_steps()
            if own is None:
                plan = GENERAL
            elif plan == WAITS:
                # Python 3.11 (see _plan): made in its Task's first step,
                # which runs its own first step (see _made_in_task).
                _held_tasks.add(_Task(_made_in_task(self, own), loop=own))
                return None
        running = self.start_handler()
        handler: Any = self.handler
        if plan == AT_ONCE:
            # A Task only if it awaits after all.
            handler._step_at_once(own, running)
            return None
        # Only a handler that streams its body has a prepare() to wait for
        # (the whole body of any other is in already).
        prepared: Optional[Awaitable[None]] = None
        if self.stream_request_body:
            prepared = handler._prepared_future = Future()
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
            # Its first step ran (an eager start) and it waits: a close from
            # now on reaches it.
            watch = type(running) is _CoroutineType and running.cr_suspended
            if not watch and not stock:
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
                task.get_loop().call_soon(handler._watch_after_step, task)
        else:
            # Done with its step but not finished (auto_finish off): a close
            # must still reach it.
            watch = not handler._finished
        if watch:
            handler._watch_close()
        return prepared

    def start_handler(self) -> Any:
        """Makes the handler (``self.handler``) and returns what its
        ``_execute`` returns, not started."""
        app: Any = self.application
        request = self.request
        handler_class: Any = self.handler_class
        kwargs = self.handler_kwargs
        if kwargs:
            handler = handler_class(app, request, **kwargs)
        else:
            handler = handler_class(app, request)
        self.handler = handler
        transforms = app.transforms
        # No list per request when the application has no transforms.
        applied: Sequence[Any] = [t(request) for t in transforms] if transforms else ()
        path_args = self.path_args
        path_kwargs = self.path_kwargs
        if path_args or path_kwargs:
            return handler._execute(applied, *(path_args or ()), **(path_kwargs or {}))
        return handler._execute(applied)

    def loop_for_steps(self) -> Optional[asyncio.AbstractEventLoop]:
        """The connection's loop, when it has no task factory; else None."""
        try:
            loop: Optional[asyncio.AbstractEventLoop] = loop_of(self.request_conn)
        except RuntimeError:
            return None
        if loop is None or loop.get_task_factory() is not None:
            return None
        return loop


async def _made_in_task(delegate: _HandlerDelegate, loop: asyncio.AbstractEventLoop) -> None:
    """Python 3.11: the Task of a request whose handler waits, made when
    the request is read. The handler is made in the Task's first step, and
    its first step follows at once, as on 3.12+ (an eager Task) and as for a
    handler that answers at once: CPython gives instances of a class their
    attributes in place only while the class's first instances set them
    before more are made, and a crowd of handlers made in one loop turn and
    run in the next (a WebSocket server's clients all back at once) would
    have left every later handler of the class with a dictionary instead."""
    # (Of the loop given: asyncio would ask for the running loop, a getpid
    # system call on 3.11, see squall.httputil._exchange.loop_of.)
    task = asyncio.current_task(loop)
    assert task is not None
    try:
        running = delegate.start_handler()
    except Exception:
        # As the server answers an error raised when it made the handler.
        _held_tasks.discard(task)
        app_log.error("Uncaught exception", exc_info=True)
        close = getattr(delegate.request_conn, "close", None)
        if close is not None:
            close()
        return
    handler: Any = delegate.handler
    handler._held_task = task
    await running


# How a handler class serves a request method (see _plan).
GENERAL: Final = 0  # a Task from the start (3.12+: a handler that waits)
AT_ONCE: Final = 1  # its first step at once, outside a Task
WAITS: Final = 2  # 3.11, a handler that waits: made in its Task (_made_in_task)


class _Plan:
    """A handler class's plan for a request method, with the functions it
    was decided from (`_plan`): its ``prepare``, its method (``name``), and
    the hook that method defers to (`AT_ONCE_UNLESS`), if any. A class
    whose functions are no longer these (a wrapper patched after it served)
    is planned again."""

    def __init__(
        self, plan: int, prepare: Any, name: str, served: Any, hook: Optional[str], hooked: Any
    ) -> None:
        self.plan = plan
        self.prepare = prepare
        self.name = name
        self.served = served
        self.hook = hook
        self.hooked = hooked


# By handler class, by request method: its plan. Bounded (classes made at
# run time, by tests say, are let go when it is full).
_plans: Final[dict[Any, dict[str, _Plan]]] = {}
_PLANS_MAX: Final = 1024

# A function with one of these flags can suspend (async def, a generator
# function, @types.coroutine).
_SUSPENDS: Final = (
    inspect.CO_COROUTINE
    | inspect.CO_ITERABLE_COROUTINE
    | inspect.CO_GENERATOR
    | inspect.CO_ASYNC_GENERATOR
)


def _plans_of(handler_class: Any) -> dict[str, _Plan]:
    plans = _plans.get(handler_class)
    if plans is None:
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        plans = _plans[handler_class] = {}
    return plans


def _plan(handler_class: Any, request: HTTPServerRequest) -> int:
    """How ``handler_class`` (with the stock ``_execute``) serves
    ``request``'s method (kept in `_plans`): at once when
    its ``prepare()`` and its method for the request are Python functions
    that are neither coroutine nor generator functions, nor wrap one
    (``functools.wraps``): all its hooks then run outside a Task, as none
    can wait (what one returns to be awaited is, in a Task made then: see
    ``RequestHandler._step_at_once``); else in a Task of its own that all
    its hooks see (on 3.11 made before the handler, see `_made_in_task`; on
    3.12+ started eagerly)."""
    method = request.method
    name = method.lower()
    prepare = handler_class.prepare
    served = getattr(handler_class, name, None)
    if _plain(prepare) and _plain(served, handler_class):
        plan = AT_ONCE
    else:
        # 3.12+ starts its Task eagerly, with the handler made in the read.
        plan = GENERAL if _EAGER else WAITS
    hook = _deferred_hook(served)
    hooked = None if hook is None else getattr(handler_class, hook, None)
    plans = _plans_of(handler_class)
    if len(plans) < 16:  # (bounded: a client names the method)
        plans[method] = _Plan(plan, prepare, name, served, hook, hooked)
    return plan


def _deferred_hook(function: Any) -> Optional[str]:
    # The hook whose answer decides whether ``function`` waits (see
    # AT_ONCE_UNLESS), if it is one of those coroutine functions.
    code = getattr(function, "__code__", None)
    return None if code is None else AT_ONCE_UNLESS.get(code)


# Coroutine functions of squall's own that wait only if a hook of their
# class does not answer at once (the hook's name, by the function's code),
# and ask for their Task themselves before they do: WebSocketHandler.get,
# which awaits what open() returns. The handler's
# ``_into_task_for`` lets them run outside a Task.
AT_ONCE_UNLESS: Final[dict[Any, str]] = {}


def hooks_changed(traits: Any, cls: Any) -> bool:
    """Whether any hook ``traits`` were worked out from is no longer
    ``cls``'s (see `squall._traits`), by identity: a wrapt wrapper compares
    equal to the function it wraps. RequestHandler's ``__init__`` asks it
    for every request; here, it runs compiled (a loop of pointer
    comparisons, where ``any(map(operator.is_not, ...))`` in the
    interpreted handler cost about 3k instructions a request)."""
    now: tuple[Any, ...] = traits.read(cls)
    hooks: tuple[Any, ...] = traits.hooks
    for i in range(len(hooks)):
        if now[i] is not hooks[i]:
            return True
    return False


def _is_stock_execute(execute: Any) -> bool:
    # RequestHandler's _execute itself, a function: a wrapper an agent put
    # in its place is served as Tornado serves it, its handler made where
    # the request was read (New Relic names its transaction there). wrapt's
    # wrappers are not functions, and their __code__ is the wrapped one's.
    return type(execute) is _FunctionType and execute.__code__ is _app_parts.stock_execute_code


def _plain(function: Any, handler_class: Any = None) -> bool:
    # None (no such method: the handler answers 405) counts as plain.
    for _ in range(32):
        if function is None:
            return True
        if type(function) is not _FunctionType:
            return False
        if function.__code__.co_flags & _SUSPENDS:
            hook = AT_ONCE_UNLESS.get(function.__code__)
            if hook is None or handler_class is None:
                return False
            return _plain(getattr(handler_class, hook, None))
        function = getattr(function, "__wrapped__", None)
    return False


class _IntoTask:
    """What `RequestHandler._execute` awaits, in a first step run outside a
    Task, just before it awaits anything else (see its ``_step_at_once``)."""

    __slots__ = ("once",)

    def __init__(self) -> None:
        self.once = (self,)

    def __await__(self) -> Any:
        return iter(self.once)


INTO_TASK: Final = _IntoTask()


class _NoWait:
    """An awaitable that is done at once (what ``_into_task_for`` gives for a
    coroutine that asks for its Task itself)."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


NO_WAIT: Final = _NoWait()


def new_delegate(
    application: Application, server_conn: object, request_conn: Optional[HTTPConnection]
) -> _HandlerDelegate:
    """``Application.start_request`` as a server reads it (this, bound to
    the application): a compiled function takes its arguments off the stack, where
    the class itself, called from Python, parses a tuple of them."""
    return _HandlerDelegate(application, server_conn, request_conn)


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
