"""What instrumentation observes of a request's execution.

Error reporters, tracers and APM agents wrap ``RequestHandler._execute``
(``async def w(self, *a, **k): return await original(self, *a, **k)``),
check ``inspect.iscoroutinefunction`` on it, and keep state in context
variables and the current Task between ``prepare()`` and ``on_finish()``.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import socket
from typing import Any, Optional
from unittest import mock

import pytest
import wrapt

from squall import gen
from squall.iostream import IOStream
from squall.simple_httpclient import HTTPStreamClosedError
from squall.testing import AsyncHTTPTestCase, ExpectLog, gen_test
from squall.web import Application, HTTPError, RequestHandler
from squall.web._delegate import _surface_error
from squall.websocket import WebSocketHandler

_request_id: contextvars.ContextVar[Optional[str]] = contextvars.ContextVar(
    "_request_id", default=None
)


def test_execute_is_a_coroutine_function() -> None:
    assert inspect.iscoroutinefunction(RequestHandler._execute)
    assert inspect.iscoroutinefunction(WebSocketHandler._execute)


class _Observed(RequestHandler):
    """Records the Task and context variable each hook sees."""

    seen: list[tuple[str, Any, Optional[str]]] = []

    def _note(self, hook: str) -> None:
        self.seen.append((hook, asyncio.current_task(), _request_id.get()))

    def prepare(self) -> None:
        self._token = _request_id.set(self.get_argument("id", "x"))
        self._note("prepare")

    def on_finish(self) -> None:
        self._note("on_finish")
        # Raises ValueError if on_finish runs in another Context than the
        # one prepare() set the variable in.
        _request_id.reset(self._token)


class _Plain(_Observed):
    def get(self) -> None:
        self._note("get")
        self.write("plain")


class _Waiting(_Observed):
    async def get(self) -> None:
        self._note("get")
        await asyncio.sleep(0)
        await gen.moment
        self._note("get, resumed")
        self.write("waited")


class _AsyncPrepare(_Observed):
    async def prepare(self) -> None:  # type: ignore[override]
        super().prepare()
        await asyncio.sleep(0)

    def get(self) -> None:
        self._note("get")
        self.write("prepared")


class ExecutionTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application(
            [("/plain", _Plain), ("/waiting", _Waiting), ("/prepare", _AsyncPrepare)]
        )

    def setUp(self) -> None:
        super().setUp()
        _Observed.seen = []

    def _hooks_share_one_task_and_context(
        self, path: str, body: bytes, hooks: list[str], in_task: bool = True
    ) -> None:
        response = self.fetch(path + "?id=" + path.strip("/"))
        assert response.code == 200 and response.body == body
        assert [hook for hook, _, _ in _Observed.seen] == hooks
        tasks = {id(task) for _, task, _ in _Observed.seen}
        assert len(tasks) == 1
        if in_task:
            assert None not in [task for _, task, _ in _Observed.seen]
        else:
            assert {task for _, task, _ in _Observed.seen} == {None}
        assert {value for _, _, value in _Observed.seen} == {path.strip("/")}
        # The request's context did not leak into the server's.
        assert _request_id.get() is None

    def test_a_plain_handler(self) -> None:
        # A handler whose prepare() and method are plain functions is
        # answered without a Task, on every Python (see
        # RequestHandler._step_at_once), in a context of its own.
        self._hooks_share_one_task_and_context(
            "/plain", b"plain", ["prepare", "get", "on_finish"], in_task=False
        )

    def test_a_plain_class_and_a_waiting_one_have_plans_of_their_own(self) -> None:
        # _Plain and _Waiting share their hook traits: what one's GET does
        # is not taken for the other's.
        self._hooks_share_one_task_and_context(
            "/plain", b"plain", ["prepare", "get", "on_finish"], in_task=False
        )
        _Observed.seen = []
        self._hooks_share_one_task_and_context(
            "/waiting", b"waited", ["prepare", "get", "get, resumed", "on_finish"]
        )

    def test_what_a_plain_method_returns_is_awaited_in_a_task(self) -> None:
        # A decorator that does not say what it wraps: the plan takes the
        # method for a plain one, and the coroutine it returns runs in a
        # Task all the same (asyncio.timeout refuses to run outside one).
        seen: list[Any] = []

        async def body(handler: RequestHandler) -> None:
            async with asyncio.timeout(5):
                await asyncio.sleep(0)
            seen.append(asyncio.current_task())
            handler.write("wrapped")

        class Undeclared(RequestHandler):
            def get(self) -> Any:
                seen.append(asyncio.current_task())
                return body(self)

        self._app.add_handlers(".*", [("/undeclared", Undeclared)])
        response = self.fetch("/undeclared")
        assert response.code == 200 and response.body == b"wrapped"
        assert len(seen) == 2 and seen[1] is not None
        assert seen[0] is None

    def test_a_wrapped_coroutine_method_runs_in_its_task_from_the_start(self) -> None:
        # functools.wraps (web.authenticated, a tracer's decorator) says
        # what it wraps: a coroutine method, so prepare() sees the Task too.
        seen: list[Any] = []

        def traced(method: Any) -> Any:
            @functools.wraps(method)
            def wrapper(self: RequestHandler) -> Any:
                return method(self)

            return wrapper

        class Wrapped(RequestHandler):
            def prepare(self) -> None:
                seen.append(asyncio.current_task())

            @traced
            async def get(self) -> None:
                await asyncio.sleep(0)
                seen.append(asyncio.current_task())
                self.write("w")

        self._app.add_handlers(".*", [("/wrapped", Wrapped)])
        response = self.fetch("/wrapped")
        assert response.code == 200 and response.body == b"w"
        assert len(seen) == 2 and seen[0] is not None and seen[0] is seen[1]

    def test_a_wrapper_patched_after_the_class_served_is_planned_for(self) -> None:
        # An agent's wrapt wrapper on prepare() (not a plain function: the
        # class is served in a Task) sees the Task whether it came before
        # the class's first request or after the class served without it;
        # removed, the class is served at once again.
        seen: list[Any] = []

        def agent(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            seen.append(asyncio.current_task())
            return wrapped(*args, **kwargs)

        class Served(RequestHandler):
            def get(self) -> None:
                seen.append(asyncio.current_task())
                self.write("s")

        self._app.add_handlers(".*", [("/served", Served)])
        assert self.fetch("/served").body == b"s"
        assert seen == [None]
        for target in (Served, RequestHandler):
            seen.clear()
            wrapper = wrapt.FunctionWrapper(RequestHandler.prepare, agent)
            with mock.patch.object(target, "prepare", wrapper):
                assert self.fetch("/served").body == b"s"
            assert len(seen) == 2 and seen[0] is not None and seen[0] is seen[1], target
            seen.clear()
            assert self.fetch("/served").body == b"s"
            assert seen == [None]

    def test_a_handler_that_waits(self) -> None:
        self._hooks_share_one_task_and_context(
            "/waiting", b"waited", ["prepare", "get", "get, resumed", "on_finish"]
        )

    def test_a_prepare_that_waits(self) -> None:
        self._hooks_share_one_task_and_context(
            "/prepare", b"prepared", ["prepare", "get", "on_finish"]
        )

    def test_an_async_wrapper_of_execute_is_awaited(self) -> None:
        original = RequestHandler._execute
        events: list[str] = []

        async def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
            events.append("enter")
            try:
                return await original(self, *args, **kwargs)
            finally:
                events.append(f"exit finished={self._finished}")

        with mock.patch.object(RequestHandler, "_execute", wrapper):
            assert inspect.iscoroutinefunction(RequestHandler._execute)
            for path, body in (("/plain", b"plain"), ("/waiting", b"waited")):
                events.clear()
                response = self.fetch(path)
                assert response.code == 200 and response.body == body
                assert events == ["enter", "exit finished=True"]

    def test_a_wrapper_object_of_execute_is_served_as_any_wrapper(self) -> None:
        # wrapt's wrappers (New Relic's, OpenTelemetry's) are objects that
        # hand on what they do not have, __code__ too: one in _execute's
        # place must not be taken for the stock function. Served as any
        # wrapper, the handler is made where the request was read, before
        # its Task (New Relic names its transaction in __init__ by the
        # Task it runs in); taken for the stock one on 3.11, a waiting
        # handler would be made in its request's Task.
        class Proxy:
            def __init__(self, wrapped: Any) -> None:
                self.__wrapped__ = wrapped

            def __getattr__(self, name: str) -> Any:
                return getattr(self.__wrapped__, name)

            def __get__(self, instance: Any, owner: Any = None) -> Any:
                return self if instance is None else functools.partial(self, instance)

            def __call__(self, *args: Any, **kwargs: Any) -> Any:
                return self.__wrapped__(*args, **kwargs)

        seen: dict[str, Any] = {}

        class Traced(RequestHandler):
            def initialize(self) -> None:
                seen["initialize"] = asyncio.current_task()

            async def get(self) -> None:
                await asyncio.sleep(0)
                seen["get"] = asyncio.current_task()
                self.write("traced")

        self._app.add_handlers(".*", [("/traced", Traced)])
        proxy = Proxy(RequestHandler._execute)
        assert proxy.__code__ is RequestHandler._execute.__code__
        with mock.patch.object(RequestHandler, "_execute", proxy):
            response = self.fetch("/traced")
        assert response.code == 200 and response.body == b"traced"
        assert seen["get"] is not None
        assert seen["initialize"] is not seen["get"]

    def test_a_wrapper_returning_a_future_is_awaited(self) -> None:
        # The shape of a pre-Tornado-6 instrumentation: a gen.coroutine.
        original = RequestHandler._execute
        calls: list[str] = []

        @gen.coroutine
        def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
            calls.append("before")
            yield original(self, *args, **kwargs)
            calls.append("after")

        with mock.patch.object(RequestHandler, "_execute", wrapper):
            response = self.fetch("/waiting")
        assert response.code == 200 and response.body == b"waited"
        assert calls == ["before", "after"]

    def _surfacing_callbacks_while_waiting(self) -> list[int]:
        # The _surface_error callbacks on the request's Task, counted once the
        # handler has gone on in it (removed to count them, then put back).
        found: list[int] = []

        class Probe(RequestHandler):
            async def get(self) -> None:
                await asyncio.sleep(0)
                task = asyncio.current_task()
                assert task is not None
                count = task.remove_done_callback(_surface_error)
                for _ in range(count):
                    task.add_done_callback(_surface_error)
                found.append(count)
                self.write("probed")

        self._app.add_handlers(".*", [("/probe", Probe)])
        response = self.fetch("/probe")
        assert response.code == 200 and response.body == b"probed"
        return found

    def test_the_stock_execute_task_needs_no_callback_at_its_end(self) -> None:
        # RequestHandler._execute handles its own errors: no loop turn is
        # spent looking at how its Task ended.
        assert self._surfacing_callbacks_while_waiting() == [0]

    def test_a_wrapper_of_execute_has_its_task_end_looked_at(self) -> None:
        original = RequestHandler._execute

        async def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
            return await original(self, *args, **kwargs)

        with mock.patch.object(RequestHandler, "_execute", wrapper):
            assert self._surfacing_callbacks_while_waiting() == [1]

    def test_an_error_a_wrapper_lets_out_is_logged(self) -> None:
        original = RequestHandler._execute

        failing: list[asyncio.Future[None]] = []

        async def wrapper(self: RequestHandler, *args: Any, **kwargs: Any) -> Any:
            await original(self, *args, **kwargs)
            failing[0].set_result(None)
            raise LookupError("from the wrapper")

        async def failed() -> None:
            failing.append(asyncio.get_running_loop().create_future())
            await failing[0]
            # The Task's end is looked at on the loop turn after it ended.
            await asyncio.sleep(0)

        with mock.patch.object(RequestHandler, "_execute", wrapper):
            with ExpectLog("asyncio", "Exception in callback"):
                self.io_loop.run_sync(
                    lambda: asyncio.gather(
                        self.http_client.fetch(self.get_url("/waiting")), failed()
                    )
                )

    def test_an_error_in_the_handler_is_reported_in_its_task(self) -> None:
        reported: list[Any] = []

        class Failing(RequestHandler):
            def prepare(self) -> None:
                self._task = asyncio.current_task()

            async def get(self) -> None:
                await asyncio.sleep(0)
                raise ZeroDivisionError("boom")

            def log_exception(self, *exc_info: Any) -> None:
                reported.append((exc_info[0], asyncio.current_task() is self._task))

        self._app.add_handlers(".*", [("/failing", Failing)])
        response = self.fetch("/failing")
        assert response.code == 500
        assert reported == [(ZeroDivisionError, True)]


class _FailsToStart(RequestHandler):
    def initialize(self) -> None:
        raise ZeroDivisionError("no handler")

    def get(self) -> None:
        self.write("never")


class _WaitingFailsToStart(_FailsToStart):
    async def get(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0)
        self.write("never")


class HandlerMadeTest(AsyncHTTPTestCase):
    # A handler that cannot be made (its initialize() raises) is logged and
    # its connection closed, whether it would have waited or not (on 3.11 a
    # waiting one is made in its Task, see squall.web._delegate._made_in_task).
    def get_app(self) -> Application:
        return Application([("/plain", _FailsToStart), ("/waiting", _WaitingFailsToStart)])

    def test_a_handler_that_cannot_be_made(self) -> None:
        from squall.log import app_log

        for path in ("/plain", "/waiting"):
            with ExpectLog(app_log, "Uncaught exception"):
                with pytest.raises(HTTPStreamClosedError):
                    self.fetch(path, raise_error=True)


class _Ordered(RequestHandler):
    def initialize(self, calls: list[str]) -> None:
        self.calls = calls

    async def get(self) -> None:
        name = self.get_argument("n")
        self.calls.append(f"get {name}")
        if self.get_argument("wait", None):
            await asyncio.sleep(0)
        self.write(name)

    def on_finish(self) -> None:
        self.calls.append(f"on_finish {self.get_argument('n')}")


class _OrderedAtOnce(_Ordered):
    def get(self) -> None:  # type: ignore[override]
        name = self.get_argument("n")
        self.calls.append(f"get {name}")
        self.write(name)


class PipelinedOrderTest(AsyncHTTPTestCase):
    # A pipelined request waits for the response before it; that response,
    # finished from its handler's Task, used to start the next request
    # inside its finish(): a handler that runs at once then ran (on_finish
    # included) before the first one's on_finish() and log line. Tornado
    # reads the next request only after them.
    def get_app(self) -> Application:
        self.calls: list[str] = []
        kwargs = {"calls": self.calls}
        return Application([("/wait", _Ordered, kwargs), ("/now", _OrderedAtOnce, kwargs)])

    @gen_test
    async def test_a_pipelined_request_starts_after_the_previous_on_finish(self) -> None:
        stream = IOStream(socket.socket())
        await stream.connect(("127.0.0.1", self.get_http_port()))
        await stream.write(
            b"GET /wait?n=1&wait=1 HTTP/1.1\r\nHost: x\r\n\r\n"
            b"GET /now?n=2 HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        await stream.read_until(b"\r\n\r\n1")
        await stream.read_until(b"\r\n\r\n2")
        stream.close()
        assert self.calls == ["get 1", "on_finish 1", "get 2", "on_finish 2"]


class _UnsendableError(RequestHandler):
    def get(self) -> None:
        # A status the connection refuses to send: its error page cannot go.
        raise HTTPError(int(self.get_argument("code")))


class _ErrorPageAlwaysFails(RequestHandler):
    def get(self) -> None:
        raise ValueError("first")

    def finish(self, chunk: Any = None) -> Any:
        raise RuntimeError("finish refuses")


class FailedErrorPageTest(AsyncHTTPTestCase):
    # An error page that cannot be sent must not leave the client waiting.
    def get_app(self) -> Application:
        return Application([("/unsendable", _UnsendableError), ("/never", _ErrorPageAlwaysFails)])

    def test_an_unsendable_error_status_becomes_the_500_page(self) -> None:
        from squall.log import app_log

        with ExpectLog(app_log, "Exception in exception handler"):
            response = self.fetch("/unsendable?code=99")
        assert response.code == 500
        assert b"500: Internal Server Error" in response.body
        # The connection is still good for the next request.
        assert self.fetch("/unsendable?code=404").code == 404

    def test_a_handler_that_cannot_finish_has_its_connection_closed(self) -> None:
        from squall.log import app_log

        with ExpectLog(app_log, "Cannot send the 500 page either"):
            with pytest.raises(HTTPStreamClosedError):
                self.fetch("/never", raise_error=True)
