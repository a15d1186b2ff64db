"""squall.pytest_plugin: a user project's tests run by an inner pytest (pytester)."""

from __future__ import annotations

import importlib.metadata
import tomllib

import pytest

# Imported here, so that pytester's in-process runs (which forget the modules
# first imported during each run) share one copy of each with this process.
import squall.httpclient
import squall.httpserver
import squall.pytest_plugin
import squall.testclient
import squall.testing
import squall.web
import squall.websocket  # noqa: F401
from tests._paths import SQUALL_DIR

pytest_plugins = ["pytester"]


def _entry_point_installed() -> bool:
    return any(
        ep.name == "squall" and ep.value == "_squall_pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


# Through the entry point where this squall is installed with it; by -p where
# the venv's metadata predates it (the plugin is the same module either way).
PLUGIN = [] if _entry_point_installed() else ["-p", "squall.pytest_plugin"]
# Warnings are errors, but one: an inner run against an installed squall
# marks it for rewriting when this process has imported it already.
STRICT = ["-W", "error", "-W", "ignore::pytest.PytestAssertRewriteWarning"]

APP = """
import pytest
from squall import web, websocket

class Hello(web.RequestHandler):
    def get(self):
        self.write({"hello": self.get_argument("name", "world")})

class Echo(websocket.WebSocketHandler):
    def on_message(self, message):
        self.write_message("echo " + message)

@pytest.fixture
def app():
    return web.Application([(r"/", Hello), (r"/ws", Echo)])
"""

USER_TESTS = """
import pytest
from squall.escape import json_decode

def test_in_process(squall_client):
    assert squall_client.get("/", params={"name": "x"}).json() == {"hello": "x"}

async def test_server_client(http_server_client):
    response = await http_server_client.fetch("/?name=y")
    assert json_decode(response.body) == {"hello": "y"}

async def test_base_url_and_client(http_client, base_url, http_port):
    assert base_url == f"http://127.0.0.1:{http_port}"
    response = await http_client.fetch(base_url + "/")
    assert response.code == 200

async def test_websocket(ws_connect):
    ws = await ws_connect("/ws")
    await ws.write_message("hi")
    assert await ws.read_message() == "echo hi"

@pytest.mark.gen_test(timeout=30)
async def test_marked_as_for_pytest_tornado(http_client, base_url):
    response = await http_client.fetch(base_url + "/?name=gen")
    assert json_decode(response.body) == {"hello": "gen"}

def test_io_loop_is_current(io_loop):
    from squall.ioloop import IOLoop
    assert io_loop.run_sync(lambda: _current()) is io_loop

async def _current():
    from squall.ioloop import IOLoop
    return IOLoop.current()
"""


def test_user_project(pytester: pytest.Pytester) -> None:
    # One inner run (each costs a pytest start-up): the project's passing
    # tests, one that fails, and a directory without an app fixture.
    app_dir = pytester.mkpydir("with_app")
    (app_dir / "conftest.py").write_text(APP)
    (app_dir / "test_user.py").write_text(USER_TESTS)
    (app_dir / "test_failing.py").write_text(
        "async def test_wrong(http_server_client):\n"
        "    response = await http_server_client.fetch('/', raise_error=False)\n"
        "    assert response.code == 404\n"
    )
    no_app = pytester.mkpydir("no_app")
    (no_app / "test_no_app.py").write_text("def test_x(http_server):\n    pass\n")
    result = pytester.runpytest(*PLUGIN, *STRICT)
    result.assert_outcomes(passed=6, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*assert 200 == 404*"])
    result.stdout.fnmatch_lines(["*define an `app` fixture*"])


TORNADO_CONFTEST = """
import pytest
import tornado.web


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world")


@pytest.fixture
def app():
    return tornado.web.Application([(r"/", MainHandler)])
"""

# Written for pytest-tornado and pytest-tornasync, with Tornado's imports.
TORNADO_TESTS = """
import asyncio
import importlib.metadata

import pytest
import tornado.web
from tornado import gen
from tornado.ioloop import IOLoop


@pytest.mark.gen_test
def test_hello_world(http_client, base_url):
    response = yield http_client.fetch(base_url)
    assert response.code == 200


@pytest.mark.gen_test(timeout=30)
def test_http_client_starts_the_server(http_client, http_port):
    response = yield http_client.fetch(f"http://127.0.0.1:{http_port}/")
    assert response.body == b"Hello, world"


@pytest.mark.gen_test
async def test_marked_without_io_loop():
    await gen.moment
    assert IOLoop.current().asyncio_loop is asyncio.get_running_loop()


async def test_plain_async_def(http_server_client):
    response = await http_server_client.fetch("/")
    assert response.body == b"Hello, world"


async def test_plain_async_def_without_fixtures():
    await gen.moment


@pytest.mark.gen_test(timeout=0.2)
async def test_times_out():
    await asyncio.Event().wait()


async def test_fails():
    await gen.moment
    assert 1 == 2


@pytest.mark.anyio
async def test_left_to_anyio():
    await asyncio.sleep(0)


def test_names_say_tornado():
    assert tornado.web.ErrorHandler.__module__ == "tornado.web"
    assert importlib.metadata.version("tornado") == "6.6.1"
"""


def test_tornado_style_tests_run_unchanged(pytester: pytest.Pytester) -> None:
    # Tornado is not installed: the plugin makes `import tornado` give Squall
    # (the conftest imports it), runs async def tests and gen_test-marked
    # ones (yield-style too) on io_loop without their asking for it.
    pytester.makeconftest(TORNADO_CONFTEST)
    pytester.makepyfile(test_tornado_style=TORNADO_TESTS)
    result = pytester.runpytest_subprocess(*PLUGIN, *STRICT, "-p", "anyio")
    result.assert_outcomes(passed=7, failed=2)
    result.stdout.fnmatch_lines(["*test_times_out*", "*timed out after 0.2 seconds*"])
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    result.stdout.no_fnmatch_line("*not natively supported*")


def test_alias_is_off_by_ini_option_and_undone_after_the_session(
    pytester: pytest.Pytester,
) -> None:
    import squall.compat

    pytester.makepyfile(
        test_user="""
        import squall.compat

        def test_installed():
            assert squall.compat.installed()
        """
    )
    result = pytester.runpytest(*PLUGIN, *STRICT)
    result.assert_outcomes(passed=1)
    assert not squall.compat.installed()
    pytester.makeini("[pytest]\nsquall_tornado_alias = false\n")
    result = pytester.runpytest(*PLUGIN, *STRICT)
    result.assert_outcomes(failed=1)


def test_coroutine_tests_of_other_plugins_are_left_alone(pytester: pytest.Pytester) -> None:
    # Marked for pytest-asyncio (not installed here): not run by this plugin,
    # so pytest reports it as it does without it.
    pytester.makeini("[pytest]\nmarkers =\n    asyncio: pytest-asyncio's marker\n")
    pytester.makepyfile(
        test_user="""
        import pytest

        @pytest.mark.asyncio
        async def test_x():
            pass
        """
    )
    result = pytester.runpytest(*PLUGIN, "-p", "no:anyio")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*async def functions are not natively supported*"])


def test_opt_out(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(APP)
    pytester.makepyfile(test_user="def test_x(squall_client):\n    pass\n")
    blocked = ["-p", "no:squall"] if not PLUGIN else []
    result = pytester.runpytest(*blocked)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'squall_client' not found*"])


def test_steps_back_for_pytest_tornasync_and_pytest_tornado(pytester: pytest.Pytester) -> None:
    # Both register as "tornado": a stand-in under that name provides
    # http_server; this plugin's io_loop and runner are then not there, its
    # own fixtures are, and ws_connect works over the other plugin's server.
    pytester.makeconftest(
        APP
        + """
class Other:
    @pytest.fixture
    def io_loop(self):
        import asyncio
        from squall.ioloop import IOLoop
        loop = IOLoop(make_current=False)
        asyncio.set_event_loop(loop.asyncio_loop)
        yield loop
        asyncio.set_event_loop(None)
        loop.close(all_fds=True)

    @pytest.fixture
    def http_server(self, app, io_loop):
        from squall.httpserver import HTTPServer
        from squall.testing import bind_unused_port
        sock, port = bind_unused_port()
        server = HTTPServer(app)
        server.add_sockets([sock])
        yield server
        server.stop()
        io_loop.run_sync(server.close_all_connections)

def pytest_addhooks(pluginmanager):
    pluginmanager.register(Other(), "tornado")
"""
    )
    pytester.makepyfile(
        test_user="""
        import pytest

        def test_ours_stepped_back(request):
            for name in ("http_server_client", "base_url", "http_port"):
                with pytest.raises(pytest.FixtureLookupError):
                    request.getfixturevalue(name)
            assert request.config.pluginmanager.get_plugin("squall.fixtures") is None

        def test_in_process(squall_client):
            assert squall_client.get("/").json() == {"hello": "world"}

        def test_ws_over_their_server(io_loop, ws_connect):
            async def talk():
                ws = await ws_connect("/ws")
                await ws.write_message("x")
                return await ws.read_message()
            assert io_loop.run_sync(talk, timeout=30) == "echo x"
        """
    )
    result = pytester.runpytest(*PLUGIN, *STRICT)
    result.assert_outcomes(passed=3)


def test_steps_back_for_a_plugin_with_fixtures_of_those_names(pytester: pytest.Pytester) -> None:
    # pytest-jupyter's shape: a plugin module (loaded by a conftest's
    # pytest_plugins) whose http_server_port is a (socket, port) pair.
    pytester.makepyfile(
        jupyterish="""
        import pytest

        @pytest.fixture
        def http_server_port():
            return ("a socket", 4242)
        """
    )
    pytester.makeconftest(APP + "\npytest_plugins = ['jupyterish']\n")
    pytester.makepyfile(
        test_user="""
        def test_theirs_is_used(http_server_port, request):
            assert http_server_port == ("a socket", 4242)
            assert request.config.pluginmanager.get_plugin("squall.fixtures") is None

        def test_in_process(squall_client):
            assert squall_client.get("/").json() == {"hello": "world"}
        """
    )
    result = pytester.runpytest(*PLUGIN, *STRICT)
    result.assert_outcomes(passed=2)


def test_entry_point_declared() -> None:
    pyproject = SQUALL_DIR.parent / "pyproject.toml"
    if pyproject.is_file():
        declared = tomllib.loads(pyproject.read_text())["project"]["entry-points"]["pytest11"]
    else:
        # An installed squall (the compiled run, make dist): what pip installed says it.
        entry_points = importlib.metadata.distribution("squall").entry_points
        declared = {ep.name: ep.value for ep in entry_points if ep.group == "pytest11"}
    assert declared == {"squall": "_squall_pytest_plugin"}


def test_squall_is_not_rewritten_by_pytest() -> None:
    # pytest marks a plugin's distribution for assertion rewriting; the entry
    # point module takes squall off (in an installed squall, whose files the
    # distribution lists, the mark would otherwise apply).
    import squall.escape

    assert not [name for name in vars(squall.escape) if name.startswith("@")]
    assert type(squall.escape.__loader__).__name__ != "AssertionRewritingHook"


def test_gen_test_inherited_from_module_and_class(pytester: pytest.Pytester) -> None:
    # pytest-tornado collects a yield-style test whose gen_test mark comes
    # from the module's or the class's pytestmark, not only its own.
    pytester.makeconftest(TORNADO_CONFTEST)
    pytester.makepyfile(
        test_module_mark="""
        import pytest
        from tornado import gen

        pytestmark = pytest.mark.gen_test


        def test_yield_style(http_client, base_url):
            response = yield http_client.fetch(base_url)
            assert response.body == b"Hello, world"


        def test_yield_style_fails(io_loop):
            yield gen.moment
            assert 1 == 2
        """,
        test_class_mark="""
        import pytest
        from tornado import gen


        @pytest.mark.gen_test(timeout=0.2)
        class TestMarked:
            # Its own limit, a hang guard: a fetch's time is no part of it.
            @pytest.mark.gen_test(timeout=30)
            def test_yield_style(self, http_client, base_url):
                response = yield http_client.fetch(base_url)
                assert response.code == 200

            def test_times_out(self, io_loop):
                yield gen.sleep(5)
        """,
    )
    result = pytester.runpytest_subprocess(*PLUGIN, *STRICT)
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*assert 1 == 2*"])
    result.stdout.fnmatch_lines(["*timed out after 0.2 seconds*"])
