"""Tests for squall.testing."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import traceback
import unittest
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from squall import gen, testing
from squall.ioloop import IOLoop
from squall.platform.asyncio import AsyncIOMainLoop
from squall.testing import (
    AsyncHTTPSTestCase,
    AsyncHTTPTestCase,
    AsyncTestCase,
    ExpectLog,
    bind_unused_port,
    gen_test,
    get_async_test_timeout,
    setup_with_context_manager,
)
from tests._wait import HANG_GUARD

ROOT = Path(__file__).resolve().parent.parent


def run_case(case: unittest.TestCase) -> unittest.TestResult:
    result = unittest.TestResult()
    case.run(result)
    return result


def errors_of(result: unittest.TestResult) -> list[str]:
    return [text for _, text in result.errors + result.failures]


@contextlib.contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


# -- get_async_test_timeout ---------------------------------------------------


def test_async_test_timeout_default_and_environment() -> None:
    with environ("ASYNC_TEST_TIMEOUT", "0.25"):
        assert get_async_test_timeout() == 0.25
    with environ("ASYNC_TEST_TIMEOUT", "soon"):
        assert get_async_test_timeout() == 5
    os.environ.pop("ASYNC_TEST_TIMEOUT", None)
    assert get_async_test_timeout() == 5


# -- AsyncTestCase: loop lifecycle --------------------------------------------


def test_each_test_gets_a_new_current_loop_closed_afterwards() -> None:
    loops: list[IOLoop] = []

    class Case(AsyncTestCase):
        def test_a(self) -> None:
            loops.append(self.io_loop)
            assert asyncio.get_event_loop() is self.io_loop.asyncio_loop  # type: ignore[attr-defined]
            assert IOLoop.current() is self.io_loop

        test_b = test_a

    for name in ("test_a", "test_b"):
        assert run_case(Case(name)).wasSuccessful()
    assert len(loops) == 2 and loops[0] is not loops[1]
    assert all(loop.asyncio_loop.is_closed() for loop in loops)  # type: ignore[attr-defined]


def test_default_method_name_can_be_instantiated() -> None:
    assert isinstance(AsyncTestCase(), AsyncTestCase)


def test_setup_and_teardown_call_super() -> None:
    events: list[str] = []

    class Base(unittest.TestCase):
        def setUp(self) -> None:
            events.append("setUp")

        def tearDown(self) -> None:
            events.append("tearDown")

    class Both(AsyncTestCase, Base):
        def test(self) -> None:
            events.append("test")

    assert run_case(Both("test")).wasSuccessful()
    assert events == ["setUp", "test", "tearDown"]


def test_pending_tasks_are_cancelled_at_teardown() -> None:
    outcomes: list[str] = []

    class Case(AsyncTestCase):
        def test(self) -> None:
            async def forever() -> None:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    outcomes.append("cancelled")
                    raise

            async def swallow() -> None:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    outcomes.append("swallowed")

            self.io_loop.add_callback(forever)
            self.io_loop.add_callback(swallow)
            # Stop one iteration later, once both tasks have started.
            self.io_loop.add_callback(self.io_loop.add_callback, self.stop)
            self.wait()

    assert run_case(Case("test")).wasSuccessful()
    assert sorted(outcomes) == ["cancelled", "swallowed"]


def test_task_failing_on_cancellation_fails_the_test() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            async def bad() -> None:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    raise KeyError("raised while cancelled")

            self.io_loop.add_callback(bad)
            self.io_loop.add_callback(self.io_loop.add_callback, self.stop)
            self.wait()

    case = Case("test")
    result = run_case(case)
    assert len(result.errors) == 1 and "raised while cancelled" in result.errors[0][1]
    assert case.io_loop.asyncio_loop.is_closed()  # type: ignore[attr-defined]


def test_overriding_get_new_ioloop_is_deprecated_and_shared_loops_stay_open() -> None:
    shared = asyncio.new_event_loop()
    try:

        class Case(AsyncTestCase):
            def get_new_ioloop(self) -> IOLoop:
                asyncio.set_event_loop(shared)
                loop: IOLoop = AsyncIOMainLoop()
                return loop

            def test(self) -> None:
                assert self.io_loop.asyncio_loop is shared  # type: ignore[attr-defined]

        with pytest.warns(DeprecationWarning, match="get_new_ioloop"):
            result = run_case(Case("test"))
        assert result.wasSuccessful()
        assert not shared.is_closed()
    finally:
        shared.close()


def test_teardown_tolerates_a_loop_closed_by_the_test() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            self.io_loop.close()

    assert run_case(Case("test")).wasSuccessful()


# -- AsyncTestCase: test method return values ---------------------------------


def test_undecorated_generator_and_coroutine_methods_are_errors() -> None:
    class Case(AsyncTestCase):
        def test_gen(self) -> Generator[None, None, None]:
            yield

        async def test_coro(self) -> None:
            pass

        def test_value(self) -> int:
            return 42

        @unittest.skip("skipped")
        def test_skipped(self) -> Generator[None, None, None]:
            yield  # pragma: no cover

    for name in ("test_gen", "test_coro"):
        result = run_case(Case(name))
        assert len(result.errors) == 1 and "should be decorated" in result.errors[0][1]
    result = run_case(Case("test_value"))
    assert "Return value from test method ignored: 42" in result.errors[0][1]
    result = run_case(Case("test_skipped"))
    assert not result.errors and len(result.skipped) == 1


# -- AsyncTestCase: stop and wait ---------------------------------------------


def test_stop_and_wait() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            self.io_loop.add_callback(self.stop, "value")
            assert self.wait() == "value"
            self.io_loop.add_callback(lambda: self.stop(a=1))
            assert self.wait() == {"a": 1}
            self.stop("early")
            assert self.wait() == "early"
            with pytest.raises(ValueError, match="not both"):
                self.stop(1, a=2)
            self.io_loop.add_callback(self.stop)
            assert self.wait(timeout=0) is None

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_wait_with_a_condition_runs_until_it_holds() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            count = 0

            def tick() -> None:
                nonlocal count
                count += 1
                self.stop()
                if count < 3:
                    self.io_loop.add_callback(tick)

            self.io_loop.add_callback(tick)
            self.wait(condition=lambda: count >= 3)
            assert count == 3

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_a_wait_the_loop_ends_without_stop_fails_the_test() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            self.io_loop.add_callback(self.io_loop.stop)
            with pytest.raises(self.failureException, match="stopped without stop"):
                self.wait()
            # A wait after it works as ever.
            self.io_loop.add_callback(self.stop, "later")
            assert self.wait() == "later"

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_wait_timeouts() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            with pytest.raises(self.failureException, match="timed out after 0.01 seconds"):
                self.wait(timeout=0.01)
            with environ("ASYNC_TEST_TIMEOUT", "0.01"):
                with pytest.raises(self.failureException):
                    self.wait()
            # A wait that ends early leaves no timeout behind for the next.
            self.io_loop.add_callback(self.stop)
            self.wait(timeout=0.05)
            self.io_loop.call_later(0.07, self.stop)
            self.wait(timeout=HANG_GUARD)

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_handled_exceptions_fail_the_test_at_the_next_wait() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            def fail() -> None:
                for message in ("first", "second"):
                    try:
                        raise ValueError(message)
                    except ValueError:
                        self._handle_exception(*sys.exc_info())  # type: ignore[arg-type]

            self.io_loop.add_callback(fail)
            with ExpectLog("squall.application", "multiple unhandled exceptions"):
                with pytest.raises(ValueError, match="first"):
                    self.wait()

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_failure_left_by_teardown_is_raised_by_run() -> None:
    class Case(AsyncTestCase):
        def test(self) -> None:
            self._handle_exception(KeyError, KeyError("left over"), None)

        def tearDown(self) -> None:
            self.io_loop.close()  # skips AsyncTestCase.tearDown

    with pytest.raises(KeyError, match="left over"):
        run_case(Case("test"))


# -- gen_test ---------------------------------------------------------------


def test_gen_test_runs_generators_and_coroutines() -> None:
    seen: list[Any] = []

    class Case(AsyncTestCase):
        @gen_test
        def test_sync(self) -> None:
            seen.append("sync")

        @gen_test
        def test_gen(self) -> Generator[Any, Any, None]:
            seen.append((yield gen.moment))

        @gen_test
        async def test_native(self) -> None:
            await gen.moment
            seen.append("native")

        @gen_test(timeout=30)
        def test_args(self, *args: Any, **kwargs: Any) -> Generator[Any, Any, None]:
            yield gen.moment
            seen.append((args, kwargs))

    for name in ("test_sync", "test_gen", "test_native"):
        result = run_case(Case(name))
        assert result.wasSuccessful(), errors_of(result)
    case = Case("test_args")
    case.setUp()
    try:
        case.test_args("a", b=1)
    finally:
        case.tearDown()
    assert seen == ["sync", None, "native", (("a",), {"b": 1})]


def test_gen_test_failures_propagate() -> None:
    class Case(AsyncTestCase):
        @gen_test
        def test(self) -> Generator[Any, Any, None]:
            yield gen.moment
            raise KeyError("inside")

    result = run_case(Case("test"))
    assert len(result.errors) == 1 and "inside" in result.errors[0][1]


def run_method(method: Any) -> None:
    """Call a gen_test-decorated function on a throwaway AsyncTestCase."""
    case = AsyncTestCase()
    case.setUp()
    try:
        method(case)
    finally:
        case.tearDown()


def test_gen_test_timeout_blames_the_waiting_line() -> None:
    @gen_test(timeout=0.01)
    def waits(self: AsyncTestCase) -> Generator[Any, Any, None]:
        yield gen.sleep(1)  # the line to blame

    with pytest.raises(TimeoutError) as info:
        run_method(waits)
    assert "the line to blame" in "".join(traceback.format_tb(info.value.__traceback__))


def test_gen_test_timeout_with_a_broad_except_in_the_test() -> None:
    @gen_test(timeout=0.01)
    def swallows(self: AsyncTestCase) -> Generator[Any, Any, None]:
        while True:
            try:
                yield gen.sleep(1)
            except Exception:
                pass

    with pytest.raises(TimeoutError):
        run_method(swallows)


def test_gen_test_timeout_of_a_native_coroutine() -> None:
    @gen_test(timeout=0.01)
    async def waits(self: AsyncTestCase) -> None:
        await gen.sleep(1)

    with pytest.raises(TimeoutError):
        run_method(waits)


def test_gen_test_timeout_from_environment_is_read_at_run_time() -> None:
    @gen_test
    def waits(self: AsyncTestCase) -> Generator[Any, Any, None]:
        yield gen.sleep(1)

    @gen_test(timeout=0.5)
    def explicit(self: AsyncTestCase) -> Generator[Any, Any, None]:
        yield gen.sleep(0.02)

    with environ("ASYNC_TEST_TIMEOUT", "0.01"):
        with pytest.raises(TimeoutError):
            run_method(waits)
        run_method(explicit)


# -- ExpectLog ----------------------------------------------------------------


def test_expect_log_swallows_matching_records(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("squall.test.expect")
    with caplog.at_level(logging.INFO):
        with ExpectLog(logger, "expected") as expect:
            logger.error("expected message")
            logger.error("other message")
            logger.error("not expected at start")
        with ExpectLog("squall.test.expect", "exp.*d", required=False) as optional:
            pass
    assert expect.matched == 1 and optional.matched == 0
    assert [r.getMessage() for r in caplog.records] == ["other message", "not expected at start"]
    assert logger.filters == []


def test_expect_log_required_and_exceptions() -> None:
    logger = logging.getLogger("squall.test.expect")
    with pytest.raises(Exception, match="did not get expected log message"):
        with ExpectLog(logger, "never"):
            pass
    # An exception leaving the block is not hidden by the missing message.
    with pytest.raises(KeyError):
        with ExpectLog(logger, "never"):
            raise KeyError()


def test_expect_log_logged_stack() -> None:
    logger = logging.getLogger("squall.test.expect")
    with ExpectLog(logger, "boom") as expect:
        try:
            raise ValueError()
        except ValueError:
            logger.exception("boom")
    assert expect.logged_stack
    with ExpectLog(logger, "plain") as plain:
        logger.error("plain")
    assert not plain.logged_stack


def test_expect_log_level(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("squall.test.level")
    logger.setLevel(logging.WARNING)
    try:
        with ExpectLog(logger, "quiet", level=logging.INFO) as expect:
            assert logger.getEffectiveLevel() == logging.INFO
            logger.info("quiet info")
        assert logger.level == logging.WARNING and expect.matched == 1
        with caplog.at_level(logging.WARNING):
            with ExpectLog(logger, "loud", level=logging.INFO, required=False) as wrong:
                logger.error("loud error")
        assert wrong.matched == 0
        messages = [r.getMessage() for r in caplog.records]
        assert "loud error" in messages
        assert any("unexpected level" in m for m in messages)
    finally:
        logger.setLevel(logging.NOTSET)


def test_expect_log_below_warning_without_level_is_deprecated() -> None:
    logger = logging.getLogger("squall.test.deprecated")
    logger.setLevel(logging.INFO)
    try:
        with pytest.warns(
            DeprecationWarning, match="^ExpectLog matched at INFO or below without level argument$"
        ):
            with ExpectLog(logger, "info"):
                logger.info("info")
    finally:
        logger.setLevel(logging.NOTSET)


# -- bind_unused_port and setup_with_context_manager --------------------------


def test_bind_unused_port() -> None:
    sock, port = bind_unused_port()
    with sock:
        assert sock.getsockname() == ("127.0.0.1", port)
        assert not sock.getblocking()
        client = socket.create_connection(("127.0.0.1", port), timeout=1)
        client.close()
    reused, port = bind_unused_port(reuse_port=True)
    with reused:
        assert reused.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    named, port = bind_unused_port(address="localhost")
    with named:
        assert named.family == socket.AF_INET and port > 0


def test_bind_unused_port_ipv6() -> None:
    try:
        sock, port = bind_unused_port(address="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with sock:
        assert sock.family == socket.AF_INET6 and sock.getsockname()[1] == port


def test_bind_unused_port_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OSError):
        bind_unused_port(address="192.0.2.1")  # TEST-NET-1: not a local address
    monkeypatch.delattr(socket, "SO_REUSEPORT")
    with pytest.raises(ValueError, match="SO_REUSEPORT"):
        bind_unused_port(reuse_port=True)


def test_setup_with_context_manager() -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def managed() -> Iterator[str]:
        events.append("enter")
        yield "value"
        events.append("exit")

    class Case(unittest.TestCase):
        def setUp(self) -> None:
            events.append(setup_with_context_manager(self, managed()))

        def test(self) -> None:
            events.append("test")

    assert run_case(Case("test")).wasSuccessful()
    assert events == ["enter", "value", "test", "exit"]


# -- HTTP test cases (without the HTTP layer) ---------------------------------


def test_http_test_case_api_without_the_http_layer() -> None:
    case = AsyncHTTPTestCase()
    case._port = 1234
    assert case.get_protocol() == "http"
    assert case.get_url("/path?q=1") == "http://127.0.0.1:1234/path?q=1"
    assert case.get_http_port() == 1234
    assert case.get_httpserver_options() == {}
    with pytest.raises(NotImplementedError):
        case.get_app()
    secure = AsyncHTTPSTestCase()
    secure._port = 443
    assert secure.get_url("/") == "https://127.0.0.1:443/"
    assert secure.get_ssl_options() == AsyncHTTPSTestCase.default_ssl_options()
    assert secure.get_httpserver_options() == {"ssl_options": secure.get_ssl_options()}


class FakeServer:
    """Stands in for squall.httpserver.HTTPServer: accepts nothing, records calls."""

    def __init__(self, app: Any, **options: Any) -> None:
        self.app = app
        self.options = options
        self.sockets: list[socket.socket] = []
        self.calls: list[str] = []

    def add_sockets(self, sockets: list[socket.socket]) -> None:
        self.sockets.extend(sockets)

    def stop(self) -> None:
        self.calls.append("stop")
        for sock in self.sockets:
            sock.close()

    async def close_all_connections(self) -> None:
        self.calls.append("close_all_connections")


class FakeClient:
    """Stands in for squall.httpclient.AsyncHTTPClient: answers with its arguments."""

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.closed = False

    async def fetch(self, url: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
        return url, kwargs

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_http(monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    server_module = types.ModuleType("squall.httpserver")
    server_module.HTTPServer = FakeServer  # type: ignore[attr-defined]
    client_module = types.ModuleType("squall.httpclient")
    client_module.AsyncHTTPClient = FakeClient  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "squall.httpserver", server_module)
    monkeypatch.setitem(sys.modules, "squall.httpclient", client_module)


@pytest.mark.usefixtures("fake_http")
def test_http_test_case_lifecycle() -> None:
    app = object()
    seen: dict[str, Any] = {}

    class Case(AsyncHTTPTestCase):
        def get_app(self) -> Any:
            return app

        def get_httpserver_options(self) -> dict[str, Any]:
            return {"xheaders": True}

        def test(self) -> None:
            server = self.http_server
            seen["server"] = server
            seen["client"] = self.http_client
            assert server.app is app and server.options == {"xheaders": True}
            port = server.sockets[0].getsockname()[1]
            assert self.get_http_port() == port
            assert self.fetch("/a", method="POST") == (
                f"http://127.0.0.1:{port}/a",
                {"raise_error": False, "method": "POST"},
            )
            url, kwargs = self.fetch("HTTPS://example.com/", raise_error=True)
            assert url == "HTTPS://example.com/" and kwargs == {"raise_error": True}

    case = Case("test")
    result = run_case(case)
    assert result.wasSuccessful(), errors_of(result)
    assert seen["server"].calls == ["stop", "close_all_connections"]
    assert seen["client"].closed and seen["client"].kwargs == {}
    assert not hasattr(case, "http_server") and not hasattr(case, "_app")


@pytest.mark.usefixtures("fake_http")
def test_https_test_case_client_and_server_options() -> None:
    class Case(AsyncHTTPSTestCase):
        def get_app(self) -> Any:
            return None

        def test(self) -> None:
            assert self.http_client.kwargs == {
                "force_instance": True,
                "defaults": {"validate_cert": False},
            }
            assert self.http_server.options == {
                "ssl_options": AsyncHTTPSTestCase.default_ssl_options()
            }
            assert self.get_url("/x").startswith("https://127.0.0.1:")

    result = run_case(Case("test"))
    assert result.wasSuccessful(), errors_of(result)


def test_default_ssl_options_load_a_localhost_certificate() -> None:
    options = AsyncHTTPSTestCase.default_ssl_options()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(options["certfile"], options["keyfile"])
    info = ssl._ssl._test_decode_cert(options["certfile"])  # type: ignore[attr-defined]
    names = {value for _, value in info["subjectAltName"]}
    assert {"localhost", "127.0.0.1"} <= names
    assert info["notAfter"].endswith("2126 GMT")


# -- main ---------------------------------------------------------------------


def run_main(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    return subprocess.run(
        [sys.executable, "-m", "squall.testing", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=30,
    )


def test_main_runs_named_tests(tmp_path: Path) -> None:
    (tmp_path / "sample_tests.py").write_text(
        textwrap.dedent(
            """
            from squall.testing import AsyncTestCase, gen_test

            class Sample(AsyncTestCase):
                @gen_test
                async def test_ok(self):
                    pass

                def test_fails(self):
                    self.fail("expected failure")
            """
        )
    )
    passing = run_main(tmp_path, "sample_tests.Sample.test_ok", "--verbose")
    assert passing.returncode == 0, passing.stderr
    assert "test_ok" in passing.stderr and "OK" in passing.stderr
    failing = run_main(tmp_path, "--failfast", "--quiet", "sample_tests")
    assert failing.returncode == 1
    assert "expected failure" in failing.stderr


def test_main_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from squall import options as options_module

    (tmp_path / "inproc_tests.py").write_text(
        "import unittest\n\nclass Sample(unittest.TestCase):\n    def test_ok(self):\n        pass\n"
    )
    parser = options_module.OptionParser()
    monkeypatch.setattr(options_module, "options", parser)
    monkeypatch.setattr(options_module, "define", parser.define)
    monkeypatch.setattr(options_module, "parse_command_line", parser.parse_command_line)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(
        sys,
        "argv",
        ["prog", "--exception_on_interrupt=false", "--buffer", "inproc_tests"],
    )
    previous = signal.getsignal(signal.SIGINT)
    stream = io.StringIO()
    try:
        testing.main(exit=False, testRunner=unittest.TextTestRunner(stream=stream))
        assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGINT, previous)
    assert "Ran 1 test" in stream.getvalue() and "OK" in stream.getvalue()


def test_main_without_tests_says_so(tmp_path: Path) -> None:
    result = run_main(tmp_path)
    assert result.returncode == 1
    assert "No tests specified" in result.stderr


def test_module_imports_without_the_http_layer() -> None:
    code = textwrap.dedent(
        """
        import sys
        for name in ("squall.httpserver", "squall.httpclient", "squall.web", "squall.netutil"):
            sys.modules[name] = None
        import squall.testing as t
        assert t.AsyncHTTPTestCase and t.AsyncHTTPSTestCase
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_public_names() -> None:
    assert set(testing.__all__) == {
        "AsyncHTTPSTestCase",
        "AsyncHTTPTestCase",
        "AsyncTestCase",
        "ExpectLog",
        "bind_unused_port",
        "gen_test",
        "get_async_test_timeout",
        "main",
        "setup_with_context_manager",
    }
