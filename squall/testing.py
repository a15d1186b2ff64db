"""Test support for code that runs on an `~squall.ioloop.IOLoop`.

* `AsyncTestCase` gives each test a fresh `~squall.ioloop.IOLoop`; decorate test methods with
  `gen_test` to write them as coroutines (generator or ``async def``).
* `AsyncHTTPTestCase` and `AsyncHTTPSTestCase` also start an HTTP(S) server
  for the application returned by ``get_app`` and a client to fetch from it.
* `ExpectLog` expects (and swallows) a log message, so that tests which log
  something unexpectedly can be made to fail.
* `bind_unused_port` binds a listening socket to a free port.
* `main` runs tests from the command line (``python -m squall.testing MODULE``).

The HTTP layer is imported only when an HTTP test case is set up, so this
module can be imported by code that needs none of it.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import re
import signal
import socket
import sys
import types
import unittest
import warnings
from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Optional, TypeVar, Union, cast, overload

from squall import gen
from squall.ioloop import IOLoop
from squall.log import app_log
from squall.util import raise_exc_info

if TYPE_CHECKING:
    # The HTTP layer sits above this module's import-time dependencies.
    from squall.httpclient import (  # type: ignore[import-not-found, unused-ignore]
        AsyncHTTPClient,
        HTTPResponse,
    )
    from squall.httpserver import HTTPServer  # type: ignore[import-not-found, unused-ignore]
    from squall.platform.asyncio import BaseAsyncIOLoop
    from squall.web import Application  # type: ignore[import-not-found, unused-ignore]

__all__ = [
    "AsyncHTTPSTestCase",
    "AsyncHTTPTestCase",
    "AsyncTestCase",
    "ExpectLog",
    "bind_unused_port",
    "gen_test",
    "get_async_test_timeout",
    "main",
    "setup_with_context_manager",
]

_T = TypeVar("_T")
_ExcInfo = tuple[type[BaseException], BaseException, Optional[types.TracebackType]]

_DEFAULT_ASYNC_TEST_TIMEOUT = 5.0
_CERTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_certs")


def bind_unused_port(
    reuse_port: bool = False, address: str = "127.0.0.1"
) -> tuple[socket.socket, int]:
    """Bind a listening, non-blocking TCP socket to a free port of ``address``.

    Args:
        reuse_port: set ``SO_REUSEPORT`` on the socket.
        address: the local address to bind (IPv4 or IPv6).

    Returns:
        ``(socket, port)``.

    Raises:
        ValueError: if ``reuse_port`` is asked for on a platform without it.
    """
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ValueError("reuse_port is not supported on this platform (no SO_REUSEPORT)")
    infos = socket.getaddrinfo(
        address, 0, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    # Prefer IPv4 when a name resolves to both, like the default address does.
    infos.sort(key=lambda info: info[0] != socket.AF_INET)
    family, type_, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setblocking(False)
        sock.bind(sockaddr)
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    port: int = sock.getsockname()[1]
    return sock, port


def get_async_test_timeout() -> float:
    """Return the default timeout of async tests, in seconds.

    It is the ``ASYNC_TEST_TIMEOUT`` environment variable when that holds a
    number, else 5.
    """
    value = os.environ.get("ASYNC_TEST_TIMEOUT")
    if value is not None:
        try:
            return float(value)
        except ValueError:
            pass
    return _DEFAULT_ASYNC_TEST_TIMEOUT


def setup_with_context_manager(testcase: unittest.TestCase, cm: AbstractContextManager[_T]) -> _T:
    """Enter ``cm`` now and exit it in ``testcase``'s cleanup; return what it gives.

    Meant for ``setUp`` (the same as `unittest.TestCase.enterContext`).
    """
    return testcase.enterContext(cm)


class AsyncTestCase(unittest.TestCase):
    """A `unittest.TestCase` with a new `~squall.ioloop.IOLoop` for each test, as ``self.io_loop``.

    Test methods are synchronous; to write one as a coroutine decorate it
    with `gen_test`. The older style is `stop` and `wait`: the test calls
    ``self.wait()``, which runs the loop until a callback calls
    ``self.stop()``, and gets what was passed to it::

        class MyTest(AsyncTestCase):
            @gen_test
            async def test_sleep(self):
                await gen.sleep(0.01)

            def test_callback(self):
                self.io_loop.call_later(0.01, self.stop, 42)
                self.assertEqual(self.wait(), 42)

    Tasks still pending when the test ends are cancelled, and `tearDown`
    closes the loop (a task that then ends with an error other than
    cancellation fails the test). A test method that returns a generator or a
    coroutine without `gen_test`, or any other value, is an error.
    """

    def __init__(self, methodName: str = "runTest") -> None:
        super().__init__(methodName)
        self._stopped = False
        self._running = False
        self._failure: Optional[_ExcInfo] = None
        self._stop_args: Any = None
        self._timeout_handle: Optional[object] = None
        # Set by gen_test to the running test's generator or coroutine.
        self._test_generator: Union[None, Generator[Any, Any, Any], Coroutine[Any, Any, Any]] = None

    def setUp(self) -> None:
        super().setUp()
        if type(self).get_new_ioloop is not AsyncTestCase.get_new_ioloop:
            warnings.warn(
                "get_new_ioloop is deprecated",
                DeprecationWarning,
                stacklevel=2,
            )
        self.io_loop = self.get_new_ioloop()
        asyncio.set_event_loop(self._asyncio_loop())

    def tearDown(self) -> None:
        failure: Optional[BaseException] = None
        try:
            failure = self._finish_pending_tasks()
        finally:
            process = sys.modules.get("squall.process")
            if process is not None:
                # Its SIGCHLD handling is tied to this test's loop.
                process.Subprocess.uninitialize()
            asyncio.set_event_loop(None)
            if not self._loop_is_shared():
                self.io_loop.close(all_fds=True)
        super().tearDown()
        if failure is not None:
            raise failure
        self._rethrow()

    def _finish_pending_tasks(self) -> Optional[BaseException]:
        """Cancel unfinished tasks and let them end; return the first real error."""
        loop = self._asyncio_loop()
        if loop.is_closed():
            return None
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if not tasks:
            return None
        for task in tasks:
            task.cancel()

        async def wait_for_tasks() -> None:
            await asyncio.wait(tasks)

        self.io_loop.run_sync(wait_for_tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None

    def _asyncio_loop(self) -> asyncio.AbstractEventLoop:
        return cast("BaseAsyncIOLoop", self.io_loop).asyncio_loop

    def _loop_is_shared(self) -> bool:
        from squall.platform.asyncio import AsyncIOMainLoop

        # An AsyncIOMainLoop wraps a loop that belongs to someone else.
        return isinstance(self.io_loop, AsyncIOMainLoop)

    def get_new_ioloop(self) -> IOLoop:
        """Return the `~squall.ioloop.IOLoop` for one test; a new one by default.

        Overriding this is deprecated.
        """
        loop: IOLoop = IOLoop(make_current=False)
        return loop

    def _handle_exception(
        self,
        typ: type[BaseException],
        value: BaseException,
        tb: Optional[types.TracebackType],
    ) -> bool:
        if self._failure is None:
            self._failure = (typ, value, tb)
        else:
            app_log.error("multiple unhandled exceptions in test", exc_info=(typ, value, tb))
        self.stop()
        return True

    def _rethrow(self) -> None:
        failure = self._failure
        if failure is not None:
            self._failure = None
            raise_exc_info(failure)

    def run(self, result: Optional[unittest.TestResult] = None) -> Optional[unittest.TestResult]:
        outcome = super().run(result)
        # A failure nothing else reported (tearDown never ran, say) must not
        # vanish silently.
        self._rethrow()
        return outcome

    def _callTestMethod(self, method: Callable[[], Any]) -> None:
        result = method()
        if isinstance(result, Generator) or inspect.iscoroutine(result):
            result.close()
            raise TypeError(
                "Generator and coroutine test methods should be decorated with "
                "squall.testing.gen_test"
            )
        if result is not None:
            raise ValueError(f"Return value from test method ignored: {result!r}")

    def stop(self, _arg: Any = None, **kwargs: Any) -> None:
        """End the current (or next) `wait`, which returns ``_arg`` or ``kwargs``.

        Deprecated in favour of `gen_test`.
        """
        if _arg is not None and kwargs:
            raise ValueError("stop() takes a positional argument or keyword arguments, not both")
        self._stop_args = kwargs or _arg
        if self._running:
            self.io_loop.stop()
            self._running = False
        self._stopped = True

    def wait(
        self,
        condition: Optional[Callable[..., bool]] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        """Run the loop until `stop` is called, and return what was passed to it.

        Args:
            condition: if given, keep running until ``condition()`` is true
                after a `stop`.
            timeout: seconds before failing the test; defaults to
                `get_async_test_timeout`. 0 means no timeout.

        Deprecated in favour of `gen_test`.
        """
        if timeout is None:
            timeout = get_async_test_timeout()
        if not self._stopped:
            if timeout:
                self._timeout_handle = self.io_loop.add_timeout(
                    self.io_loop.time() + timeout, functools.partial(self._time_out, timeout)
                )
            while True:
                self._running = True
                self.io_loop.start()
                if self._failure is not None or condition is None or condition():
                    break
            if self._timeout_handle is not None:
                self.io_loop.remove_timeout(self._timeout_handle)
                self._timeout_handle = None
            if not self._stopped and self._failure is None:
                # The loop was stopped by something else (io_loop.stop()):
                # there is nothing to return, and the test's wait is not over.
                self._running = False
                raise self.failureException(
                    "wait() returned because the IOLoop was stopped without stop(); "
                    "call self.stop() to end a wait"
                )
        self._stopped = False
        self._rethrow()
        result = self._stop_args
        self._stop_args = None
        return result

    def _time_out(self, timeout: float) -> None:
        exc = self.failureException(f"Async operation timed out after {timeout} seconds")
        self._failure = (type(exc), exc, None)
        self.stop()


@overload
def gen_test(
    *, timeout: Optional[float] = None
) -> Callable[[Callable[..., Any]], Callable[..., None]]: ...


@overload
def gen_test(func: Callable[..., Any]) -> Callable[..., None]: ...


def gen_test(
    func: Optional[Callable[..., Any]] = None, timeout: Optional[float] = None
) -> Union[Callable[..., None], Callable[[Callable[..., Any]], Callable[..., None]]]:
    """Run an `AsyncTestCase` test method written as a coroutine.

    The method may be a generator (as with `squall.gen.coroutine`) or an
    ``async def`` function; it runs on ``self.io_loop`` until it finishes::

        class MyTest(AsyncHTTPTestCase):
            @gen_test
            async def test_fetch(self):
                response = await self.http_client.fetch(self.get_url("/"))

    It fails with `TimeoutError` after ``timeout`` seconds: by default
    `get_async_test_timeout` (5, or the ``ASYNC_TEST_TIMEOUT`` environment
    variable), read when the test runs. Use ``@gen_test(timeout=10)`` to
    change it for one test. On a timeout the error is thrown into a generator
    test where it is suspended, so the traceback shows the line it waited on.
    """

    def decorate(test: Callable[..., Any]) -> Callable[..., None]:
        @functools.wraps(test)
        def record(self: AsyncTestCase, *args: Any, **kwargs: Any) -> Any:
            result = test(self, *args, **kwargs)
            if isinstance(result, Generator) or inspect.iscoroutine(result):
                self._test_generator = result
            else:
                self._test_generator = None
            return result

        body: Callable[..., Any] = (
            record if inspect.iscoroutinefunction(test) else gen.coroutine(record)
        )

        @functools.wraps(test)
        def run_test(self: AsyncTestCase, *args: Any, **kwargs: Any) -> None:
            limit = timeout if timeout is not None else get_async_test_timeout()
            try:
                self.io_loop.run_sync(functools.partial(body, self, *args, **kwargs), timeout=limit)
            except TimeoutError as e:
                suspended = self._test_generator
                # A native coroutine has been cancelled by now; a generator
                # is still suspended where it waited, so the error raised
                # there carries a traceback that points at that line.
                if suspended is not None and isinstance(suspended, Generator):
                    suspended.throw(e)
                raise

        return run_test

    if func is not None:
        return decorate(func)
    return decorate


class ExpectLog(logging.Filter):
    """Context manager expecting a log message; matching records are swallowed.

    Useful with test runners that fail a test which logs anything
    unexpected::

        with ExpectLog("squall.application", "Uncaught exception"):
            self.fetch("/raises")

    Args:
        logger: the `logging.Logger` (or its name) the message is logged on;
            ``""`` is the root logger. Records of child loggers that only
            propagate to it are not seen.
        regex: matched (`re.match`, from the start) against the formatted
            message.
        required: if true, leaving the block without a match raises.
        level: the `logging` level the message must have; the logger's
            level is lowered for the block if needed. A match logged at
            another level is let through, with a warning. Without ``level``,
            matching a message below WARNING is deprecated.

    Attributes:
        matched: how many records matched.
        logged_stack: whether any record seen carried exception info.
    """

    def __init__(
        self,
        logger: Union[logging.Logger, str],
        regex: str,
        required: bool = True,
        level: Optional[int] = None,
    ) -> None:
        super().__init__()
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        self.logger = logger
        self.regex = re.compile(regex)
        self.required = required
        self.matched = 0
        self.deprecated_level_matched = 0
        self.logged_stack = False
        self.level = level
        self.orig_level: Optional[int] = None

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            self.logged_stack = True
        message = record.getMessage()
        if not self.regex.match(message):
            return True
        if self.level is None:
            if record.levelno < logging.WARNING:
                # Warning here, inside logging, would be swallowed by it;
                # __exit__ reports it.
                self.deprecated_level_matched += 1
        elif record.levelno != self.level:
            app_log.warning(
                "Got expected log message %r at unexpected level (%s vs %s)",
                message,
                logging.getLevelName(self.level),
                record.levelname,
            )
            return True
        self.matched += 1
        return False

    def __enter__(self) -> ExpectLog:
        if self.level is not None and self.level < self.logger.getEffectiveLevel():
            self.orig_level = self.logger.level
            self.logger.setLevel(self.level)
        self.logger.addFilter(self)
        return self

    def __exit__(
        self,
        typ: Optional[type[BaseException]],
        value: Optional[BaseException],
        tb: Optional[types.TracebackType],
    ) -> None:
        if self.orig_level is not None:
            self.logger.setLevel(self.orig_level)
            self.orig_level = None
        self.logger.removeFilter(self)
        if typ is None and self.required:
            if not self.matched:
                raise Exception(
                    f"did not get expected log message matching {self.regex.pattern!r} "
                    f"on logger {self.logger.name!r}"
                )
            if self.deprecated_level_matched >= self.matched:
                warnings.warn(
                    "ExpectLog matched at INFO or below without level argument",
                    DeprecationWarning,
                    stacklevel=2,
                )


class AsyncHTTPTestCase(AsyncTestCase):
    """An `AsyncTestCase` that serves ``get_app()`` over HTTP for each test.

    Subclasses implement `get_app`. `fetch` requests a path of the test
    server synchronously::

        class MyHTTPTest(AsyncHTTPTestCase):
            def get_app(self):
                return Application([("/", MainHandler)])

            def test_homepage(self):
                response = self.fetch("/")
                self.assertEqual(response.code, 200)

    For asynchronous tests use ``self.http_client`` and `get_url` in a
    `gen_test` method. ``self.http_server`` and ``self.http_client`` exist
    while a test runs.
    """

    def setUp(self) -> None:
        super().setUp()
        sock, port = bind_unused_port()
        self._port = port
        self.http_client = self.get_http_client()
        self._app = self.get_app()
        self.http_server = self.get_http_server()
        self.http_server.add_sockets([sock])

    def get_http_client(self) -> AsyncHTTPClient:
        """Return the client for ``self.http_client``."""
        from squall.httpclient import AsyncHTTPClient

        return AsyncHTTPClient()

    def get_http_server(self) -> HTTPServer:
        """Return the server for ``self.http_server``, serving the app."""
        from squall.httpserver import HTTPServer

        return HTTPServer(self._app, **self.get_httpserver_options())

    def get_app(self) -> Application:
        """Return the application to test; subclasses must implement this."""
        raise NotImplementedError("AsyncHTTPTestCase subclasses must implement get_app()")

    def fetch(self, path: str, raise_error: bool = False, **kwargs: Any) -> HTTPResponse:
        """Fetch ``path`` from the test server, running the loop until done.

        A ``path`` starting with ``http://`` or ``https://`` is fetched as the
        full URL it is. Unlike `~squall.httpclient.AsyncHTTPClient.fetch`, an error status is
        returned as a response unless ``raise_error`` is true. Other keyword
        arguments go to `~squall.httpclient.AsyncHTTPClient.fetch`. Times out after
        `get_async_test_timeout` seconds.
        """
        if path.lower().startswith(("http://", "https://")):
            url = path
        else:
            url = self.get_url(path)
        response: HTTPResponse = self.io_loop.run_sync(
            lambda: self.http_client.fetch(url, raise_error=raise_error, **kwargs),
            timeout=get_async_test_timeout(),
        )
        return response

    def get_httpserver_options(self) -> dict[str, Any]:
        """Return keyword arguments for the `~squall.httpserver.HTTPServer`; override to add some."""
        return {}

    def get_http_port(self) -> int:
        """Return the port the test server listens on."""
        return self._port

    def get_protocol(self) -> str:
        """Return the URL scheme of the test server."""
        return "http"

    def get_url(self, path: str) -> str:
        """Return the absolute URL of ``path`` on the test server."""
        return f"{self.get_protocol()}://127.0.0.1:{self.get_http_port()}{path}"

    def tearDown(self) -> None:
        self.http_server.stop()
        self.io_loop.run_sync(
            self.http_server.close_all_connections, timeout=get_async_test_timeout()
        )
        self.http_client.close()
        del self.http_server
        del self._app
        super().tearDown()


class AsyncHTTPSTestCase(AsyncHTTPTestCase):
    """An `AsyncHTTPTestCase` whose server speaks HTTPS.

    The certificate is a self-signed one for ``localhost``; the client does
    not verify it.
    """

    def get_http_client(self) -> AsyncHTTPClient:
        from squall.httpclient import AsyncHTTPClient

        return AsyncHTTPClient(force_instance=True, defaults=dict(validate_cert=False))

    def get_httpserver_options(self) -> dict[str, Any]:
        return dict(ssl_options=self.get_ssl_options())

    def get_ssl_options(self) -> dict[str, Any]:
        """Return the ``ssl_options`` of the server; `default_ssl_options` by default."""
        return AsyncHTTPSTestCase.default_ssl_options()

    @staticmethod
    def default_ssl_options() -> dict[str, Any]:
        """Return ``ssl_options`` using the test certificate shipped with Squall."""
        return dict(
            certfile=os.path.join(_CERTS_DIR, "test.crt"),
            keyfile=os.path.join(_CERTS_DIR, "test.key"),
        )

    def get_protocol(self) -> str:
        return "https"


def main(**kwargs: Any) -> None:
    """Run tests named on the command line, or the ``all()`` suite of ``__main__``.

    Like `unittest.main` (``kwargs`` go to it), with Squall's option parsing
    and log formatting: ``python -m squall.testing myapp.test_module``. Test
    scripts may define ``all()`` returning a suite and call ``main()``.

    Options: ``--exception_on_interrupt=false`` lets Ctrl-C kill the process
    instead of raising `KeyboardInterrupt`; ``--verbose``, ``--quiet``,
    ``--failfast``, ``--catch`` and ``--buffer`` are passed to unittest.
    """
    from squall.options import define, options, parse_command_line

    define(
        "exception_on_interrupt",
        type=bool,
        default=True,
        help="Ctrl-C raises KeyboardInterrupt (true) or kills the process at once (false)",
    )
    define("verbose", type=bool)
    define("quiet", type=bool)
    define("failfast", type=bool)
    define("catch", type=bool)
    define("buffer", type=bool)
    argv = [sys.argv[0]] + parse_command_line(sys.argv)
    if not options.exception_on_interrupt:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    if options.verbose:
        kwargs["verbosity"] = 2
    if options.quiet:
        kwargs["verbosity"] = 0
    for option, argument in (
        ("failfast", "failfast"),
        ("catch", "catchbreak"),
        ("buffer", "buffer"),
    ):
        if getattr(options, option):
            kwargs[argument] = True
    if len(argv) > 1:
        # module=None lets unittest import each named test itself.
        unittest.main(module=None, argv=argv, **kwargs)
    else:
        if __name__ == "__main__":
            print("No tests specified", file=sys.stderr)
            sys.exit(1)
        unittest.main(defaultTest="all", argv=argv, **kwargs)


if __name__ == "__main__":
    main()
