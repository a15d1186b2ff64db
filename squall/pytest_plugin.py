"""Squall's pytest plugin: fixtures for an application under test.

Installed with squall (the ``pytest11`` entry point ``squall``, by way of
``_squall_pytest_plugin``); ``pytest -p
no:squall`` turns it off. Define an ``app`` fixture that returns the
Application, then::

    def test_home(squall_client):          # in-process, no socket: fast
        assert squall_client.get("/").status_code == 200

    async def test_over_a_socket(http_server_client, ws_connect):
        response = await http_server_client.fetch("/")
        ws = await ws_connect("/socket")
        ws.write_message("hi")
        assert await ws.read_message() == "hi"

Tests written for pytest-tornado or pytest-tornasync run unchanged, with
only Squall installed:

- ``import tornado`` gives Squall for the session (`squall.compat`, as under
  ``squall run``), installed before the first conftest is imported and
  removed at the session's end; not when a real Tornado is installed, nor
  with ``SQUALL_TORNADO_ALIAS=0`` or the ini option
  ``squall_tornado_alias = false``;
- every ``async def`` test runs on the test's ``io_loop`` (set up for it when
  it does not ask for it), as under pytest-tornasync, unless another plugin
  claims it (marked ``asyncio``, ``anyio`` or ``trio``, or using
  ``anyio_backend``); within ``ASYNC_TEST_TIMEOUT`` seconds (5 by default);
- ``@pytest.mark.gen_test`` (``timeout=`` sets the limit) marks such a test,
  or a generator test in pytest-tornado's ``response = yield
  http_client.fetch(base_url)`` style, which pytest alone refuses.

The fixtures over a real socket take the names pytest-tornasync and
pytest-tornado gave them:

- ``io_loop``: a new `.IOLoop` (on a new asyncio loop) for the test, closed
  after it;
- ``http_port`` (also ``http_server_port``): the port the server listens on;
- ``base_url``: ``http://127.0.0.1:<port>`` (it starts ``http_server``);
- ``http_server``: an `.HTTPServer` serving ``app`` on that port;
- ``http_client``: an `.AsyncHTTPClient`, closed after the test; with an
  ``app`` fixture it starts ``http_server`` too, as pytest-tornado's does;
- ``http_server_client``: the same, whose ``fetch`` takes a path on the server.

Squall's own, under names no other plugin uses:

- ``squall_client``: a `squall.testclient.TestClient` on ``app``: synchronous
  ``get``/``post``/... in-process, without a socket;
- ``ws_connect``: ``await ws_connect(path, **kwargs)`` opens a WebSocket to
  the test server (`squall.websocket.websocket_connect`), closed after the test.

With pytest-tornasync or pytest-tornado installed (both load under the plugin
name ``tornado``), their fixtures of those names are the ones used and their
runner runs the coroutine tests: this plugin then provides only its own two,
which work over either's server. It adds no autouse fixture. (PYTEST_DONT_REWRITE:
pytest leaves its asserts alone, and does not warn when a test's in-process
pytest meets it already imported.) Not provided: pytest-tornado's
``https_*`` fixtures, its ``--async-test-timeout`` and ``--app-fixture``
options and ``gen_test(run_sync=False)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Optional

import pytest

__all__ = ["TornadoStyleFixtures"]

# The name pytest-tornasync and pytest-tornado both register their plugin under.
_OTHERS = "tornado"
_FIXTURES = "squall.fixtures"


_ALIAS_INI = "squall_tornado_alias"
_ALIAS_ENV = "SQUALL_TORNADO_ALIAS"  # squall.cli.TORNADO_ALIAS_ENV
# Whether this session installed the tornado alias (and so removes it at its end).
_alias_owner: list[pytest.Config] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        _ALIAS_INI,
        "make `import tornado` give Squall for the session when no Tornado is installed",
        type="bool",
        default=True,
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Installs the ``tornado`` alias before the first conftest is imported.

    A Tornado program's tests (and its conftest, and the plugins it names)
    import ``tornado``: with Squall installed and Tornado not, that import
    gives Squall for the session, as under ``squall run``. Not when a real
    Tornado is installed, nor with ``SQUALL_TORNADO_ALIAS=0`` or the ini
    option ``squall_tornado_alias = false``.
    """
    import importlib.util
    import os

    from squall import compat

    if compat.installed() or os.environ.get(_ALIAS_ENV, "").strip() == "0":
        return
    if not early_config.getini(_ALIAS_INI):
        return
    try:
        found = importlib.util.find_spec("tornado") is not None
    except (ImportError, ValueError):
        found = True  # something named tornado that does not import: leave it be
    if found or compat.installed():  # a real Tornado, or the venv-wide alias now on
        return
    compat.install()
    _alias_owner.append(early_config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _alias_owner:
        from squall import compat

        _alias_owner.remove(config)
        compat.uninstall()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "gen_test(timeout=None): the time limit of an async test run on the io_loop fixture",
    )
    manager = config.pluginmanager
    if manager.has_plugin(_OTHERS) or manager.has_plugin(_FIXTURES):
        return
    if _offered_elsewhere(manager):
        return
    manager.register(TornadoStyleFixtures(), _FIXTURES)


# The Tornado-style fixture names this plugin offers.
_STYLE_NAMES = (
    "io_loop",
    "http_port",
    "http_server_port",
    "http_server",
    "base_url",
    "http_client",
    "http_server_client",
)


def _offered_elsewhere(manager: pytest.PytestPluginManager) -> bool:
    """Whether a plugin already loaded offers a fixture of one of our names.

    pytest-jupyter (the conftest of Jupyter Server and of the apps built on it)
    defines its own ``io_loop``, ``http_server_port`` (a ``(socket, port)``
    pair) and ``http_server``; ours, registered later, would shadow them and
    break every test of those suites. The plugin then steps back as it does
    for pytest-tornasync.
    """
    for plugin in manager.get_plugins():
        if plugin is None or isinstance(plugin, TornadoStyleFixtures):
            continue
        if getattr(plugin, "__name__", "") in (__name__, "_squall_pytest_plugin"):
            continue
        for name in _STYLE_NAMES:
            value = getattr(plugin, name, None)
            if value is not None and _is_fixture(value):
                return True
    return False


def _is_fixture(value: object) -> bool:
    # pytest 8.4 wraps fixtures in FixtureFunctionDefinition; earlier
    # versions mark the function.
    return (
        type(value).__name__ == "FixtureFunctionDefinition"
        or getattr(value, "_pytestfixturefunction", None) is not None
        or getattr(value, "_fixture_function_marker", None) is not None
    )


class TornadoStyleFixtures:
    """The fixtures named as pytest-tornasync and pytest-tornado name theirs, and
    the runner of coroutine tests; registered unless one of those is installed."""

    @pytest.fixture
    def io_loop(self) -> Iterator[Any]:
        """A new IOLoop for the test (the current asyncio loop while it runs)."""
        import asyncio

        from squall.ioloop import IOLoop

        loop = IOLoop(make_current=False)
        asyncio_loop: asyncio.AbstractEventLoop = loop.asyncio_loop
        asyncio.set_event_loop(asyncio_loop)
        try:
            yield loop
        finally:
            try:
                _cancel_pending(loop, asyncio_loop)
            finally:
                asyncio.set_event_loop(None)
                loop.close(all_fds=True)

    @pytest.fixture
    def _squall_http_socket(self, io_loop: Any) -> Iterator[tuple[Any, int]]:
        from squall.testing import bind_unused_port

        sock, port = bind_unused_port()
        yield sock, port
        sock.close()

    @pytest.fixture
    def http_port(self, _squall_http_socket: tuple[Any, int]) -> int:
        """The port the test server listens on (on 127.0.0.1)."""
        return _squall_http_socket[1]

    @pytest.fixture
    def http_server_port(self, http_port: int) -> int:
        """The same as ``http_port`` (pytest-tornasync's name)."""
        return http_port

    @pytest.fixture
    def base_url(self, http_server: Any, http_port: int) -> str:
        """``http://127.0.0.1:<port>``, the URL of the test server (started by it)."""
        return f"http://127.0.0.1:{http_port}"

    @pytest.fixture
    def http_server(
        self, request: pytest.FixtureRequest, io_loop: Any, _squall_http_socket: tuple[Any, int]
    ) -> Iterator[Any]:
        """An HTTPServer serving the ``app`` fixture on ``http_port``."""
        from squall.httpserver import HTTPServer
        from squall.testing import get_async_test_timeout

        try:
            app = request.getfixturevalue("app")
        except pytest.FixtureLookupError:
            raise pytest.FixtureLookupError(
                "app", request, "define an `app` fixture that returns the Application to test"
            ) from None
        server = HTTPServer(app)
        server.add_sockets([_squall_http_socket[0]])
        yield server
        server.stop()
        io_loop.run_sync(server.close_all_connections, timeout=get_async_test_timeout())

    @pytest.fixture
    def http_client(self, request: pytest.FixtureRequest, io_loop: Any) -> Iterator[Any]:
        """An AsyncHTTPClient of the test's own, closed after it.

        With an ``app`` fixture, it starts ``http_server`` too, as
        pytest-tornado's does (``http_client.fetch(base_url)`` or
        ``f"http://localhost:{http_port}/"``); without one it is a client only,
        as pytest-tornasync's is.
        """
        from squall.httpclient import AsyncHTTPClient

        if _has_fixture(request, "app"):
            request.getfixturevalue("http_server")
        client = AsyncHTTPClient(force_instance=True)
        yield client
        client.close()

    @pytest.fixture
    def http_server_client(self, http_server: Any, base_url: str) -> Iterator[Any]:
        """An AsyncHTTPClient whose ``fetch`` takes a path on the test server."""
        from squall.httpclient import AsyncHTTPClient

        client = _ServerClient(AsyncHTTPClient(force_instance=True), base_url)
        yield client
        client.close()

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makeitem(
        self, collector: pytest.Module | pytest.Class, name: str, obj: object
    ) -> Optional[list[pytest.Function]]:
        """Collects generator tests marked ``gen_test`` (pytest-tornado's ``yield`` style).

        The mark is the function's own or one it inherits: a module's or a
        class's ``pytestmark``.
        """
        if not inspect.isgeneratorfunction(obj) or not collector.funcnamefilter(name):
            return None
        marks = getattr(obj, "pytestmark", [])
        if not any(getattr(mark, "name", None) == "gen_test" for mark in marks) and (
            collector.get_closest_marker("gen_test") is None
        ):
            return None  # pytest's own answer: yield tests are not supported
        return list(collector._genfunctions(name, obj))

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Optional[bool]:
        """Runs a coroutine test on the test's ``io_loop``, as pytest-tornasync does.

        That is every ``async def`` test (and every generator test marked
        ``gen_test``) but those another plugin claims: marked ``asyncio``,
        ``anyio`` or ``trio``, or using anyio's ``anyio_backend``. The
        ``io_loop`` fixture is set up for it when it does not ask for it.
        """
        function = pyfuncitem.obj
        marker = pyfuncitem.get_closest_marker("gen_test")
        if inspect.isgeneratorfunction(function) and marker is not None:
            from squall import gen

            function = gen.coroutine(function)
        elif not inspect.iscoroutinefunction(function):
            return None
        elif marker is None and "io_loop" not in pyfuncitem.fixturenames:
            if _claimed_elsewhere(pyfuncitem):
                return None
        from squall.testing import get_async_test_timeout

        timeout = marker.kwargs.get("timeout") if marker is not None else None
        if timeout is None:
            timeout = get_async_test_timeout()
        names = pyfuncitem._fixtureinfo.argnames
        kwargs = {name: pyfuncitem.funcargs[name] for name in names}
        loop: Any = pyfuncitem.funcargs.get("io_loop")
        if loop is None:
            loop = pyfuncitem._request.getfixturevalue("io_loop")
        loop.run_sync(lambda: function(**kwargs), timeout=timeout)
        return True


# Markers and fixtures by which other plugins claim a coroutine test.
_OTHER_RUNNERS = ("asyncio", "anyio", "trio")


def _claimed_elsewhere(item: pytest.Function) -> bool:
    if any(item.get_closest_marker(name) is not None for name in _OTHER_RUNNERS):
        return True
    return "anyio_backend" in item.fixturenames


class _ServerClient:
    """An AsyncHTTPClient bound to the test server: ``fetch("/path")``."""

    def __init__(self, client: Any, base_url: str) -> None:
        self._client = client
        self.base_url = base_url

    def fetch(self, path: str, **kwargs: Any) -> Awaitable[Any]:
        """``AsyncHTTPClient.fetch`` of ``base_url + path`` (an absolute URL as it is)."""
        url = path if path.lower().startswith(("http://", "https://")) else self.base_url + path
        result: Awaitable[Any] = self._client.fetch(url, **kwargs)
        return result

    def close(self) -> None:
        """Closes the underlying client."""
        self._client.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def _has_fixture(request: pytest.FixtureRequest, name: str) -> bool:
    try:
        return bool(request._fixturemanager.getfixturedefs(name, request.node))
    except (AttributeError, TypeError):  # a pytest whose private API moved: as without an app
        return False


def _cancel_pending(loop: Any, asyncio_loop: Any) -> None:
    """Cancels the tasks a test left running and lets them end."""
    import asyncio

    if asyncio_loop.is_closed():
        return
    tasks = [t for t in asyncio.all_tasks(asyncio_loop) if not t.done()]
    if not tasks:
        return
    for task in tasks:
        task.cancel()

    async def settle() -> None:
        await asyncio.wait(tasks)

    loop.run_sync(settle)


@pytest.fixture
def squall_client(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A `squall.testclient.TestClient` on the ``app`` fixture: in-process, no socket."""
    from squall.testclient import TestClient

    client = TestClient(request.getfixturevalue("app"))
    yield client
    client.close()


@pytest.fixture
def ws_connect(http_server: Any) -> Iterator[Callable[..., Awaitable[Any]]]:
    """``await ws_connect(path, **kwargs)``: a WebSocket client connection to the
    test server (`squall.websocket.websocket_connect`), closed after the test."""
    from squall.websocket import websocket_connect

    sockets = getattr(http_server, "_sockets", None) or {}
    ports = [s.getsockname()[1] for s in sockets.values()]
    if not ports:
        raise RuntimeError("the http_server fixture's server listens on no socket")
    opened: list[Any] = []

    async def connect(path: str, **kwargs: Any) -> Any:
        url = path if "://" in path else f"ws://127.0.0.1:{ports[0]}{path}"
        connection = await websocket_connect(url, **kwargs)
        opened.append(connection)
        return connection

    yield connect
    for connection in opened:
        connection.close()
