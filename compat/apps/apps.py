"""The applications whose own test suites the harness runs on Tornado and on Squall.

Adding an application is one entry in `APPS`. Its tests are taken from its
sdist at the pinned version; an app whose sdist lacks them names the GitHub
repository whose tag holds them (``tests_repo``), and is installed from the
index instead, as is an app whose tests are in its installed package
(``tests_installed``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: Configuration the suites read (see config/README.md).
CONFIG = Path(__file__).resolve().parent / "config"


@dataclass(frozen=True)
class App:
    """One application: what to download, what to install with it, how to test it."""

    #: Distribution name on the package index.
    name: str
    #: The pinned release whose sdist (and tests) are used.
    version: str
    #: Requirements installed beside the app for its tests (its "test" extra,
    #: less linters and release tools that the tests do not import).
    test_deps: tuple[str, ...] = ()
    #: Arguments to pytest, run from the unpacked sdist's directory.
    pytest_args: tuple[str, ...] = ("tests",)
    #: Wall-time limit for one side's whole suite, in seconds.
    suite_timeout: int = 30 * 60
    #: Per-test limit (pytest-timeout), in seconds; 0 keeps the app's own.
    test_timeout: int = 0
    #: Extra environment variables for the test run.
    env: dict[str, str] = field(default_factory=dict)
    #: "owner/name" of the GitHub repository whose tag holds the tests, for an
    #: app whose sdist does not ship them. The app is then installed from the
    #: index (its wheel) and the suite runs from the tag's ``tests_paths``.
    #: The harness reads a local clone given by ``--tests-repo owner/name=PATH``,
    #: or clones one into its cache.
    tests_repo: str = ""
    #: The tag (default: ``version``) and the paths taken from it.
    tests_ref: str = ""
    tests_paths: tuple[str, ...] = ("tests",)
    #: The tests ship inside the app's own package (its wheel), and its sdist
    #: cannot be built here: the app is installed from the index and pytest
    #: runs them from the installed package (``--pyargs`` in ``pytest_args``),
    #: in an empty directory.
    tests_installed: bool = False
    #: Directories of the test tree (relative to it) that pip installs beside
    #: the app, in both sides' venvs: packages its CI installs from there.
    test_installs: tuple[str, ...] = ()
    #: Run each test file in its own pytest (the paths in ``pytest_args`` are
    #: expanded to their ``test_*.py`` files), so that a file that hangs or
    #: crashes its interpreter costs that file alone.
    per_file: bool = False
    #: Wall-time limit for one file's pytest in ``per_file`` mode, in seconds.
    file_timeout: int = 10 * 60
    #: Packages from the npm registry whose commands the tests run (on PATH
    #: in both sides' runs), installed once into the app's cache directory.
    npm: tuple[str, ...] = ()
    #: An environment variable set, in both sides' runs, to the directory
    #: that holds the npm packages' ``node_modules`` (for tests that look
    #: packages up there rather than on PATH).
    npm_root_env: str = ""
    #: Harness plugins (modules in compat/apps/plugin) loaded into the app's
    #: run with ``-p``, on both sides alike.
    plugins: tuple[str, ...] = ()


APPS: dict[str, App] = {
    app.name: app
    for app in (
        App(
            name="jupyter_server",
            version="2.21.1",
            test_deps=(
                "ipykernel",
                "pytest-console-scripts",
                "pytest-timeout",
                "pytest-jupyter[server]>=0.7",
                "pytest>=7.0,<10",
                "requests",
                "flaky",
            ),
            suite_timeout=50 * 60,
            test_timeout=60,
        ),
        App(
            name="terminado",
            version="0.18.1",
            test_deps=("pytest>=7.0", "pytest-timeout"),
            suite_timeout=10 * 60,
            test_timeout=60,
            # Its tests start interactive bash shells and give each command
            # one second: a slow ~/.bashrc (pyenv init on a loaded machine
            # takes seconds) fails them on both sides. No home, no rc file.
            env={"HOME": "/nonexistent"},
        ),
        # The Bokeh server (under Panel, HoloViews, Dask's dashboard): its
        # server, client and `bokeh serve` tests. They are not in the sdist.
        App(
            name="bokeh",
            version="3.6.0",
            tests_repo="bokeh/bokeh",
            tests_paths=(
                "pyproject.toml",
                "tests/__init__.py",
                "tests/conftest.py",
                "tests/support",
                "tests/unit",
            ),
            # Bokeh's own test environment pins (conda/environment-test-3.12.yml).
            test_deps=(
                "pytest>=7.0,<8",
                "pytest-asyncio==0.21.1",
                "pytest-timeout",
                "requests>=1.2.3,<2.32",
                "urllib3<2",
                "requests-unixsocket>=0.3.0",
                "psutil",
                "beautifulsoup4",
                "colorama",
            ),
            pytest_args=(
                "tests/unit/bokeh/server",
                "tests/unit/bokeh/client",
                "tests/unit/bokeh/command/subcommands/test_serve.py",
            ),
            suite_timeout=20 * 60,
            test_timeout=60,
        ),
        App(
            name="jupyterlab_server",
            version="2.28.1",
            # Its "test" extra, less hatch, coverage and the spelling checker.
            test_deps=(
                "ipykernel",
                "pytest-jupyter[server]>=0.6.2",
                "openapi_core~=0.18.0",
                "openapi-spec-validator>=0.6.0,<0.8.0",
                "requests_mock",
                "ruamel.yaml",
                "pytest>=7.0,<8",
                "pytest-console-scripts",
                "pytest-timeout",
                "strict-rfc3339",
                "werkzeug",
            ),
            suite_timeout=20 * 60,
            test_timeout=120,
        ),
        # Notebook 7: its sdist builds the front end (node); the wheel has it,
        # and the Python tests are taken from the tag.
        App(
            name="notebook",
            version="7.6.1",
            tests_repo="jupyter/notebook",
            tests_ref="v7.6.1",
            tests_paths=("pyproject.toml", "tests"),
            test_deps=(
                "nbval",
                "pytest>=7.0,<9",
                "requests",
                "pytest-tornasync",
                "pytest-timeout",
                "pytest-console-scripts",
                "ipykernel",
                "jupyter_server[test]>=2.19.0,<3",
                "jupyterlab_server[test]>=2.28.0,<3",
            ),
            suite_timeout=15 * 60,
            test_timeout=120,
        ),
        # Error and performance monitoring: its Tornado integration patches
        # RequestHandler._execute and log_exception, and reads the request's
        # context from a contextvar set while the handler runs.
        App(
            name="sentry-sdk",
            version="2.68.0",
            tests_repo="getsentry/sentry-python",
            tests_paths=(
                "pyproject.toml",
                "tests/__init__.py",
                "tests/conftest.py",
                "tests/integrations/__init__.py",
                "tests/integrations/utils.py",
                "tests/integrations/tornado",
            ),
            # Its tox "common" dependencies (tox.ini), less coverage.
            test_deps=(
                "pytest",
                "pytest-asyncio",
                "pytest-forked",
                "pytest-timeout",
                "pytest-localserver",
                "werkzeug",
                "jsonschema",
                "executing",
                "brotli",
            ),
            # Its addopts ask for pytest-cov (--cov) and -s; neither is needed.
            pytest_args=("tests/integrations/tornado", "-o", "addopts=-rfEs"),
            per_file=True,
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # OpenTelemetry's instrumentation: wraps RequestHandler methods and
        # the HTTP client's fetch, and checks the installed tornado's version
        # (importlib.metadata) before it instruments anything.
        App(
            name="opentelemetry-instrumentation-tornado",
            version="0.65b0",
            tests_repo="open-telemetry/opentelemetry-python-contrib",
            tests_ref="v0.65b0",
            tests_paths=(
                "pytest.ini",
                "instrumentation/opentelemetry-instrumentation-tornado/tests",
            ),
            # Its test-requirements.txt, less the pins of what the app pulls in.
            test_deps=(
                "opentelemetry-test-utils==0.65b0",
                "http_server_mock==1.7",
                "requests",
                "pytest",
                "pytest-timeout",
            ),
            pytest_args=("instrumentation/opentelemetry-instrumentation-tornado/tests",),
            per_file=True,
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # OpenAPI specs from Tornado URLSpecs: reads the routing rules' matchers.
        App(
            name="apispec-webframeworks",
            version="1.2.0",
            tests_repo="marshmallow-code/apispec-webframeworks",
            tests_paths=(
                "pyproject.toml",
                "tests/__init__.py",
                "tests/utils.py",
                "tests/test_ext_tornado.py",
            ),
            test_deps=("apispec==6.10.0", "pytest", "pytest-timeout"),
            pytest_args=("tests/test_ext_tornado.py",),
            per_file=True,
            suite_timeout=5 * 60,
            test_timeout=60,
        ),
        # Dask's scheduler and workers talk over Tornado's TCP and WebSocket
        # streams and serve the dashboard with Tornado's web framework. The
        # tests live in the package; the whole package is taken from the tag
        # (and imported from there), with the root conftest and pytest config.
        App(
            name="distributed",
            version="2026.7.1",
            tests_repo="dask/distributed",
            # test_prometheus_api_doc reads the metrics' documentation page.
            tests_paths=(
                "pyproject.toml",
                "conftest.py",
                "distributed",
                "docs/source/prometheus.rst",
            ),
            # Its pixi "test" feature, and the optional packages the chosen
            # files import (the dashboard, the Prometheus endpoint).
            test_deps=(
                "pytest",
                "pytest-timeout",
                "pytest-rerunfailures",
                "pytest-repeat",
                "requests",
                "prometheus_client",
                "bokeh",
                "lz4",
            ),
            pytest_args=(
                "distributed/comm/tests",
                "distributed/tests/test_core.py",
                "distributed/tests/test_batched.py",
                "distributed/tests/test_utils_comm.py",
                "distributed/http",
                "distributed/deploy/tests/test_local.py",
                "distributed/tests/test_nanny.py",
            ),
            per_file=True,
            file_timeout=15 * 60,
            suite_timeout=60 * 60,
            test_timeout=120,
        ),
        # New Relic's agent: wraps HTTPServer.start_request (and the delegate's
        # headers_received on the instance), the request connection's
        # write_headers and finish, RequestHandler._execute and the client's
        # fetch, and keys its current transaction by the asyncio Task. Its
        # tests ship in the sdist and import `testing_support` from tests/;
        # the [pytest] section of its tox.ini adds the agent's fixtures.
        App(
            name="newrelic",
            version="14.1.0",
            # Its tox environment "framework_tornado", less coverage.
            test_deps=("pytest", "pytest-timeout", "WebTest", "pycurl"),
            pytest_args=("tests/framework_tornado",),
            env={"PYTHONPATH": "tests", "NEW_RELIC_DEVELOPER_MODE": "1"},
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # JupyterHub: its web app (Tornado handlers, auth, the REST API) in front
        # of configurable-http-proxy (from the npm registry), with its mock
        # spawners; the tests that run offline (no browser, no database server).
        App(
            name="jupyterhub",
            version="6.1.1",
            # Its "test" extra, less coverage and playwright (the browser tests).
            test_deps=(
                "beautifulsoup4[html5lib]",
                "cryptography",
                "jsonschema",
                "jupyterlab>=3",
                "mock",
                "nbclassic",
                "pytest>=3.3",
                "pytest-asyncio>=1.1",
                "pytest-rerunfailures",
                "pytest-timeout",
                "requests-mock",
                "virtualenv",
            ),
            npm=("configurable-http-proxy@5",),
            # The files that start no single-user server: those that do
            # (test_api, test_pages, test_singleuser, test_spawner, ...) spend
            # minutes per test here waiting for one, on Tornado as well.
            pytest_args=(
                "jupyterhub/tests/test_auth.py",
                "jupyterhub/tests/test_scopes.py",
                "jupyterhub/tests/test_roles.py",
                "jupyterhub/tests/test_services_auth.py",
                "jupyterhub/tests/test_proxy.py",
                "jupyterhub/tests/test_named_servers.py",
                "jupyterhub/tests/test_utils.py",
                "jupyterhub/tests/test_user.py",
                "jupyterhub/tests/test_app.py",
            ),
            # With its servers stopping on SIGINT (see run.py's _interruptible),
            # test_services_auth.py and test_named_servers.py run past 6
            # minutes each on a loaded machine, on both sides.
            per_file=True,
            file_timeout=10 * 60,
            suite_timeout=45 * 60,
            test_timeout=60,
        ),
        # Instana's tracer: wraps RequestHandler methods and the client's
        # fetch (a span per hop, redirects included). Its tests ship in the
        # sdist; they serve the app on a fixed port from a thread, and count
        # the spans as soon as the client has its response, while the server
        # ends its span on its own thread: `server_settle` waits (bounded)
        # for the server's requests to finish before the spans are read.
        App(
            name="instana",
            version="3.20.0",
            test_deps=("pytest", "pytest-timeout", "pytest-mock", "aiohttp"),
            pytest_args=(
                "tests/frameworks/test_tornado_server.py",
                "tests/frameworks/test_tornado_client.py",
            ),
            plugins=("server_settle",),
            per_file=True,
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # Elastic's APM agent: wraps RequestHandler._execute (awaited as a
        # coroutine), _handle_request_exception and render with wrapt, and
        # reads the handler's request, status and headers; its tests run
        # through pytest-tornado's fixtures (a server, a client, the loop).
        App(
            name="elastic-apm",
            version="6.26.2",
            tests_repo="elastic/apm-agent-python",
            tests_ref="v6.26.2",
            tests_paths=(
                "setup.cfg",
                "tests/__init__.py",
                "tests/conftest.py",
                "tests/fixtures.py",
                "tests/utils",
                "tests/upstream/json-specs",
                "tests/ca",
                "tests/contrib/__init__.py",
                "tests/contrib/asyncio/__init__.py",
                "tests/contrib/asyncio/tornado",
            ),
            # Its reqs-tornado-newest.txt and reqs-base.txt, less coverage,
            # the other frameworks' plugins and pytest-random-order (the
            # order is kept fixed here).
            test_deps=(
                "pytest==7.4.0",
                "pytest-tornado",
                "pytest-localserver==0.9.0",
                "pytest-mock==3.10.0",
                "pytest-timeout",
                "jsonschema==4.17.3",
                "mock",
                "wrapt>=1.14.1,!=1.15.0",
            ),
            # setup.cfg's addopts ask for pytest-random-order.
            pytest_args=("tests/contrib/asyncio/tornado", "-o", "addopts=", "-m", "tornado"),
            suite_timeout=5 * 60,
            test_timeout=60,
        ),
        # Celery's monitor: an Application subclass with its own settings,
        # handlers reading tornado.options (patched in tests through
        # options.mockable()), basic and OAuth logins on signed cookies,
        # XSRF, Prometheus metrics; tested with AsyncHTTPTestCase.
        App(
            name="flower",
            version="2.2.0",
            # Its tests/run-unit-tests.sh runs them with unittest; pytest
            # collects the same TestCases. redis: its broker tests.
            test_deps=("pytest", "pytest-timeout", "redis"),
            pytest_args=("tests/unit",),
            env={"PYTHONPATH": "."},
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # Globo's image server: handlers serving images fetched with
        # AsyncHTTPClient (the HTTP loader), stored and cropped in threads;
        # tested with AsyncHTTPTestCase and pytest-asyncio.
        App(
            name="thumbor",
            version="7.8.0",
            # Its "tests" extra, less linters, coverage and release tools.
            test_deps=(
                "preggy>=1.4.4,<2.0.0",
                "pyssim>=0.7,<1.0.0",
                "pytest>=7.4.4,<8.0.0",
                "pytest-asyncio>=0.23.3,<2.0.0",
                "pytest-timeout",
                "redis>=5.0.1,<6.0.0",
                "remotecv>=5.2.0,<6.0.0",
                "sentry-sdk>=1.39.1,<3.0.0",
                # Its "extra-libs" that install from wheels (HEIF, AVIF, and
                # pycurl: its loader on CurlAsyncHTTPClient).
                "pycurl>=7.45.2,<8.0.0",
                "pillow-heif>=1.3.0,<2.0.0",
                "pillow-avif-plugin>=1.4.1,<2.0.0",
            ),
            # The sdist's thumbor/ lacks the C filters the install built
            # (its Makefile builds them in place): the installed package is
            # imported first (no cwd on sys.path, the rootdir appended).
            pytest_args=("tests", "--import-mode=append"),
            env={"PYTHONSAFEPATH": "1"},
            per_file=True,
            suite_timeout=30 * 60,
            test_timeout=60,
        ),
        # Jupyter's proxy to the processes a user starts (an HTTP and
        # WebSocket proxy inside Jupyter Server): requests relayed with
        # AsyncHTTPClient (streamed or buffered), WebSockets with
        # websocket_connect, to backends that are Tornado apps too; its
        # tests start `jupyter notebook` and `jupyter lab` with it.
        App(
            name="jupyter-server-proxy",
            # The newest release whose tag the mirror here holds.
            version="4.4.0",
            tests_repo="jupyterhub/jupyter-server-proxy",
            tests_ref="v4.4.0",
            tests_paths=("tests", "pyproject.toml"),
            # Its "test" extra, less coverage and the HTML report, and its
            # "lab" extra (the servers its tests start).
            test_deps=(
                "pytest",
                "pytest-asyncio",
                "pytest-timeout",
                "jupyterlab>=4.0.5,<5.0.0a0",
                "nbclassic",
                "notebook>=7",
            ),
            # The acceptance tests drive Firefox with Robot Framework; the
            # addopts ask for pytest-cov and pytest-html.
            pytest_args=("tests", "--ignore=tests/acceptance", "-o", "addopts="),
            env={"JUPYTER_CONFIG_PATH": str(CONFIG / "jupyter")},
            suite_timeout=15 * 60,
            test_timeout=120,
        ),
        # Jupyter's kernel gateway: a Jupyter Server application serving
        # kernels over its REST and WebSocket API, or a notebook's cells as
        # HTTP endpoints; its tests talk to it with AsyncHTTPClient and
        # websocket_connect, with every warning an error.
        App(
            name="jupyter-kernel-gateway",
            version="3.0.1",
            # Its "test" extra, less coverage.
            test_deps=("pytest", "pytest_jupyter", "pytest-timeout", "ipykernel"),
            pytest_args=("tests",),
            suite_timeout=15 * 60,
            test_timeout=120,
        ),
        # Spotify's workflow scheduler: luigid, its central scheduler, is a
        # Tornado app (a JSON RPC API with CORS, the visualiser's static
        # files), served in-process, in a forked process, as a daemon and on
        # a Unix socket by its tests.
        App(
            name="luigi",
            version="3.8.1",
            tests_repo="spotify/luigi",
            tests_ref="v3.8.1",
            # The one test file that runs the scheduler's server.
            tests_paths=("test/server_test.py", "test/helpers.py", "test/testconfig"),
            # requests-unixsocket: its client to a scheduler on a Unix socket
            # (without it those tests fail in setUp, leaving their server
            # processes, which pytest then waits for at exit).
            test_deps=("pytest", "pytest-timeout", "mock", "requests-unixsocket2"),
            # Each test_404 of a scheduler in a process of its own waits out
            # the client's three retries, 30 s apart, and fails on Tornado at
            # the per-test limit (its CI skips them on GitHub Actions):
            # 5 minutes a side for nothing.
            pytest_args=(
                "test/server_test.py",
                *(
                    f"--deselect=test/server_test.py::{case}::test_404"
                    for case in (
                        "UNIXServerTest",
                        "INETProcessServerTest",
                        "INETURLLibServerTest",
                        "INETLuigidServerTest",
                        "INETLuigidDaemonServerTest",
                    )
                ),
            ),
            # tox.ini's environment for its tests.
            env={"LUIGI_CONFIG_PATH": "test/testconfig/luigi.cfg"},
            suite_timeout=10 * 60,
            test_timeout=60,
        ),
        # Bugsnag's error reporter: a RequestHandler subclass of its own
        # (prepare, _handle_request_exception, the request turned into a
        # WSGI environ), tested with tornado.testing's AsyncHTTPTestCase.
        App(
            name="bugsnag",
            version="4.9.0",
            tests_repo="bugsnag/bugsnag-python",
            tests_ref="v4.9.0",
            tests_paths=(
                "tests/__init__.py",
                "tests/conftest.py",
                "tests/utils.py",
                # (its __init__ imports these three)
                "tests/fixtures/__init__.py",
                "tests/fixtures/start_and_end_of_file.py",
                "tests/fixtures/caused_by.py",
                "tests/fixtures/exception_groups.py",
                "tests/fixtures/tornado",
                "tests/integrations/conftest.py",
                "tests/integrations/test_tornado.py",
            ),
            # Its tox environment "tornado"; tox.ini's addopts ask for pytest-cov.
            test_deps=("pytest<8.2", "pytest-timeout"),
            pytest_args=("tests/integrations/test_tornado.py", "-o", "addopts="),
            # tox runs it with the checkout on PYTHONPATH (tests.utils).
            env={"PYTHONPATH": "."},
            suite_timeout=5 * 60,
            test_timeout=60,
        ),
        # Datadog's tracer: patches RequestHandler, the template loader,
        # run_on_executor and the client. Its tests, from the release tag,
        # with the modules they import from its tests/ package.
        App(
            name="ddtrace",
            version="4.13.1",
            tests_repo="DataDog/dd-trace-py",
            tests_ref="v4.13.1",
            tests_paths=(
                "setup.cfg",
                "tests/__init__.py",
                "tests/conftest.py",
                "tests/utils.py",
                "tests/subprocesstest.py",
                "tests/contrib/__init__.py",
                "tests/contrib/patch.py",
                "tests/contrib/tornado",
                "tests/tracer/__init__.py",
                "tests/tracer/utils_inferred_spans",
            ),
            # Its riotfile's base packages and the tornado venv's, less
            # coverage and pytest-randomly (the order is kept fixed here).
            test_deps=(
                "mock",
                "pytest",
                "pytest-mock",
                "pytest-timeout",
                "opentracing",
                "hypothesis<6.45.1",
            ),
            # Its setup.cfg's addopts ask for pytest-cov and a junit file.
            pytest_args=("tests/contrib/tornado", "-o", "addopts="),
            # Its riotfile's base environment, less the build settings.
            env={
                "DD_TESTING_RAISE": "1",
                "DD_REMOTE_CONFIGURATION_ENABLED": "false",
                "DD_INJECTION_ENABLED": "1",
                "DD_INJECT_FORCE": "1",
                "DD_PATCH_MODULES": "unittest:false",
                "DD_TRACE_COMPUTE_STATS": "false",
                "DD_CODE_ORIGIN_FOR_SPANS_ENABLED": "false",
            },
            per_file=True,
            suite_timeout=15 * 60,
            test_timeout=60,
        ),
        # Panel (HoloViz's dashboards, on the Bokeh server): pn.serve, its own
        # Tornado handlers (REST, liveness, static resources), OAuth login
        # through tornado.auth, `panel serve`, on the newest Bokeh it allows.
        # Its tests ship in the wheel too; they are taken from the tag, so
        # that test ids do not name the venv. Every warning is an error
        # (its pyproject.toml), as in Panel's CI.
        App(
            name="panel",
            version="1.9.4",
            tests_repo="holoviz/panel",
            tests_ref="v1.9.4",
            tests_paths=("pyproject.toml", "panel/tests"),
            # Its pixi "test-core" feature, less coverage, the CI annotations
            # and xdist's workers (kept for its markers), and what the chosen
            # files import. pandas before 3.1, whose deprecation warning (an
            # error here) Panel's Tabulator meets.
            test_deps=(
                "pandas<3.1",
                "pytest",
                "pytest-asyncio",
                "pytest-rerunfailures",
                "pytest-xdist",
                "pytest-timeout",
                "psutil",
                "requests",
                "cryptography",
                "watchfiles",
            ),
            pytest_args=(
                # In Panel's checkout its conftest is panel.tests.conftest, and
                # importing it imports panel first, which makes Bokeh's
                # document state; the conftest binds that state at its import.
                # Here panel/tests has no panel/__init__.py beside it: panel
                # is imported first by loading it as a (hookless) plugin.
                "-p",
                "panel",
                "panel/tests/test_server.py",
                "panel/tests/test_auth.py",
                "panel/tests/command/test_serve.py",
                "panel/tests/io/test_document.py",
                "panel/tests/io/test_location.py",
                "panel/tests/io/test_state.py",
                "panel/tests/io/test_reload.py",
            ),
            suite_timeout=20 * 60,
            test_timeout=60,
        ),
        # Voila (Jupyter notebooks served as dashboards): its own Tornado
        # app and handlers (a notebook rendered while its kernel runs,
        # streamed, with templates and static files) and as a Jupyter
        # server extension, with real kernels. Its tests from the tag; the
        # wheel holds its front end.
        App(
            name="voila",
            version="0.5.12",
            tests_repo="voila-dashboards/voila",
            tests_ref="v0.5.12",
            tests_paths=("tests",),
            # Its "test" extra, and pytest-timeout.
            test_deps=(
                "ipykernel",
                "ipywidgets",
                "matplotlib",
                "numpy",
                "pandas",
                "papermill",
                "pytest",
                "pytest-tornasync",
                "pytest-timeout",
            ),
            # The two template packages its CI installs from its tests.
            test_installs=("tests/test_template", "tests/skip_template"),
            # As its CI runs them (which gives each test 240 s).
            pytest_args=(
                "--async-test-timeout=120",
                # Its one test is xfail, and its pytest never exits, on
                # Tornado as on Squall: an AnyIO worker thread (not a
                # daemon) waits on its queue after the test's loop is gone.
                "--ignore=tests/server/nbextensions_test.py",
                "tests/app",
                "tests/server",
                "tests/execute_output_test.py",
            ),
            suite_timeout=30 * 60,
            test_timeout=180,
            # A pytest per file: a test whose server stops answering (on
            # Tornado too) costs its file alone.
            per_file=True,
            file_timeout=5 * 60,
        ),
        # Real-time collaboration in JupyterLab (jupyter-server-ydoc): a
        # document's room shared over WebSockets by every client editing it
        # (Y.js updates through pycrdt-websocket), its awareness, and the
        # file kept in step. Its tests connect with httpx-ws, not Tornado's
        # client. Every warning is an error (its pyproject.toml).
        App(
            name="jupyter-collaboration",
            version="5.0.0",
            tests_repo="jupyterlab/jupyter-collaboration",
            tests_ref="v5.0.0",
            tests_paths=("pyproject.toml", "tests"),
            # jupyter-server-ydoc's "test" extra, less coverage.
            test_deps=(
                "dirty-equals",
                "jupyter_server[test]>=2.19.0",
                "jupyter_server_fileid[test]",
                "pytest>=7.0",
                "pytest-timeout",
                "anyio",
                "httpx-ws>=0.9.0",
            ),
            pytest_args=("tests",),
            suite_timeout=20 * 60,
            test_timeout=120,
        ),
        # Streamlit (data apps in a script): its server is a Tornado
        # application (the browser's WebSocket, static files, media and
        # uploads, the health and stats endpoints, the runtime on Tornado's
        # loop). Its tests ship in no release; the newest release whose
        # tests the repository snapshot here holds is 1.39.0 (its release
        # commit: the repository tags no release).
        App(
            name="streamlit",
            version="1.39.0",
            tests_repo="streamlit/streamlit",
            tests_ref="07f8e106271b9627f4ba43c98870b72be834b536",
            tests_paths=("lib/tests", "lib/pytest.ini"),
            # Its test requirements that these files import, and
            # pytest-timeout; pytest before 8.2, as it pins.
            test_deps=(
                "pytest<8.2.0",
                "pytest-timeout",
                "parameterized",
                "requests-mock",
                "testfixtures",
                "hypothesis",
                # What its element mocks import (charts of each library).
                "matplotlib",
                "plotly",
            ),
            pytest_args=(
                "-c",
                "lib/pytest.ini",
                # Its addopts ask for coverage, which the harness does not install.
                "-o",
                "addopts=",
                "lib/tests/streamlit/web",
                "lib/tests/streamlit/runtime",
                "lib/tests/streamlit/logger_test.py",
            ),
            suite_timeout=30 * 60,
            test_timeout=120,
        ),
        # pyzmq's Tornado integration, which Jupyter's kernels and servers
        # run on: ZMQStream on Tornado's IOLoop, zmq.eventloop's futures and
        # ioloop shims, the IOLoop-driven authenticator. Its tests are not in
        # the sdist (which builds libzmq); the wheel is installed.
        App(
            name="pyzmq",
            version="27.2.0",
            tests_repo="zeromq/pyzmq",
            tests_ref="v27.2.0",
            tests_paths=("tests", "pytest.ini"),
            # Its test requirements that these files import, and pytest-timeout.
            test_deps=("pytest", "pytest-asyncio>=0.17", "pytest-timeout"),
            pytest_args=(
                "tests/test_zmqstream.py",
                "tests/test_ioloop.py",
                "tests/test_future.py",
                "tests/test_asyncio.py",
                "tests/test_auth.py",
                "tests/test_imports.py",
            ),
            suite_timeout=15 * 60,
            test_timeout=60,
        ),
        # Salt (infrastructure automation): its master and minions talk over
        # transports built on Tornado's TCPServer, TCPClient and IOStream
        # (and on pyzmq's ZMQStream), its event bus runs on the IOLoop, and
        # its REST API (rest_tornado, "saltnado") is a Tornado application
        # with a WebSocket. Its tests ship in the sdist. 3008.2: the newer
        # 3008 releases require a certifi the package index does not have yet.
        App(
            name="salt",
            version="3008.2",
            # Its requirements/pytest.txt, less docker (its container tests
            # are not run here) and the benchmark plugin.
            test_deps=(
                "mock>=5.2.0",
                "pytest>=8.4.2,<9",
                "pytest-salt-factories>=1.0.5",
                "pytest-helpers-namespace>=2021.12.29",
                "pytest-subtests",
                "pytest-timeout>=2.4.0",
                "pytest-httpserver",
                "pytest-custom-exit-code>=0.3",
                "flaky",
                "more-itertools",
                "pyfakefs",
                "trustme",
                "pytest-skip-markers>=1.5.2",
                "pytest-shell-utilities>=1.9.7",
            ),
            pytest_args=(
                # Its CI's selection: the core and the slow tests (the
                # destructive ones, which change the machine, stay off).
                "--core-tests",
                "--run-slow",
                "tests/pytests/unit/transport",
                "tests/pytests/unit/channel",
                "tests/pytests/unit/netapi/saltnado",
                "tests/pytests/unit/utils/event",
                "tests/pytests/unit/utils/test_asynchronous.py",
                "tests/pytests/unit/utils/test_http.py",
                "tests/pytests/unit/test_minion.py",
                "tests/pytests/unit/test_client.py",
                "tests/pytests/functional/transport",
                "tests/pytests/functional/netapi/rest_tornado",
            ),
            suite_timeout=30 * 60,
            test_timeout=120,
        ),
        # nbdime (notebook diff and merge): nbdiff-web and nbmerge-web are
        # Tornado applications of its own (started and stopped on the
        # IOLoop by its tests), and its Jupyter server extension. Its sdist
        # builds its front end with npm; its tests ship in its wheel.
        App(
            name="nbdime",
            version="4.0.4",
            tests_installed=True,
            # Its "test" extra, less coverage; git for its git-driver tests.
            test_deps=(
                "jsonschema",
                "jupyter_server[test]",
                "mock",
                "notebook",
                "pytest>=6.0",
                "pytest-timeout",
                "requests",
                "tabulate",
            ),
            pytest_args=("--pyargs", "nbdime.tests"),
            # The server extension's tests start `jupyter server` as the
            # user, who is root in CI's containers.
            env={"JUPYTER_CONFIG_PATH": str(CONFIG / "jupyter")},
            suite_timeout=20 * 60,
            test_timeout=120,
        ),
        # IPython Parallel: its controller (the hub and its schedulers) runs
        # on Tornado's IOLoop with pyzmq's ZMQStream, in processes of its own
        # that the tests start with their engines; the client drives its
        # own IOLoop in a thread. Its sdist builds a JupyterLab extension
        # with npm; its tests ship in its wheel.
        App(
            name="ipyparallel",
            version="9.2.0",
            tests_installed=True,
            # Its "test" extra, less coverage.
            test_deps=(
                "ipython[test]",
                "pytest",
                "pytest-asyncio",
                "pytest-timeout",
                "testpath",
            ),
            # Its pytest settings (its pyproject.toml, which the wheel
            # lacks): asyncio's tests run by pytest-asyncio's auto mode, and
            # a warning from its own or Jupyter's modules fails the test.
            pytest_args=(
                "--pyargs",
                "-o",
                "asyncio_mode=auto",
                "-Werror:::ipy*",
                "-Werror:::jupyter*",
                "-Wignore:zmq.eventloop.ioloop:DeprecationWarning:jupyter*",
                "-Wignore:unclosed event loop:ResourceWarning",
                "-Wignore:unclosed socket <zmq.Socket:ResourceWarning",
                "-Wignore:unclosed <socket.socket:ResourceWarning",
                "-Wignore:unclosed file <_io.BufferedWriter:ResourceWarning",
                "-Wignore:subprocess .* is still running:ResourceWarning",
                "-Wignore:unclosed file <_io.BufferedRandom>:ResourceWarning",
                "-Wignore:IPython could not determine IPs:RuntimeWarning",
                "-Wmodule:Jupyter is migrating its paths to use standard platformdirs"
                ":DeprecationWarning",
                "ipyparallel.tests",
            ),
            suite_timeout=40 * 60,
            test_timeout=120,
        ),
        # Jupyter's language-server proxy: a server extension whose
        # WebSocket handler relays each message to a language server's
        # stdio, and whose tests start `jupyter server` (as root: the
        # harness's allow_root configuration) and drive its handlers, with
        # real language servers: pylsp, and two from npm that answer within
        # the suite's 20 s on a busy machine (it finds them under
        # JLSP_TEST_ROOT). Those of the suite's list not installed fail
        # alike on each side.
        App(
            name="jupyter-lsp",
            version="2.3.1",
            test_deps=("pytest", "pytest-asyncio", "pytest-timeout", "python-lsp-server"),
            pytest_args=("jupyter_lsp/tests",),
            npm=("bash-language-server", "dockerfile-language-server-nodejs"),
            npm_root_env="JLSP_TEST_ROOT",
            env={"JUPYTER_CONFIG_PATH": str(CONFIG / "jupyter")},
            suite_timeout=15 * 60,
            test_timeout=120,
        ),
        # Jupyter Enterprise Gateway: Jupyter Server 1.x's kernel gateway for
        # remote kernels. Its tests are tornado.testing's AsyncHTTPTestCase
        # with gen.coroutine generators, websocket_connect to real kernels
        # and its REST API; they ship in its wheel.
        App(
            name="jupyter_enterprise_gateway",
            version="3.3.0",
            tests_installed=True,
            # Its "test" extra, less coverage and pre-commit.
            test_deps=(
                "ipykernel>=6.29,<7",
                "pytest<8.1.0",
                "pytest-timeout",
                "pytest-tornasync",
                "websocket-client",
            ),
            pytest_args=("--pyargs", "enterprise_gateway.tests"),
            # It refuses kernels to root, the user in CI's containers.
            env={"EG_UNAUTHORIZED_USERS": "nobody-in-particular"},
            suite_timeout=20 * 60,
            test_timeout=120,
        ),
        # Jupyter Server's terminals: a server extension whose REST API makes
        # terminado terminals and whose WebSocket handler relays a shell's
        # pty; its tests drive both through pytest-jupyter's fixtures, with
        # warnings made errors.
        App(
            name="jupyter_server_terminals",
            version="0.5.4",
            test_deps=("pytest-jupyter[server]>=0.5.3", "pytest>=7.0", "pytest-timeout"),
            env={"JUPYTER_CONFIG_PATH": str(CONFIG / "jupyter")},
            suite_timeout=10 * 60,
            test_timeout=120,
        ),
        # nbgitpuller: a Jupyter server extension that clones or pulls a git
        # repository and streams git's progress to the browser as Server-Sent
        # Events (a thread's output through a queue, flushed line by line).
        # Its tests start `jupyter-server` and `jupyter-notebook` with the
        # extension and read the stream; its sdist lacks their helpers.
        App(
            name="nbgitpuller",
            version="1.3.0",
            tests_repo="jupyterhub/nbgitpuller",
            tests_paths=("tests",),
            # Its dev requirements, less jupyter-packaging (a build tool) and
            # pytest-cov (its addopts ask for --cov; not needed).
            test_deps=("nbclassic", "notebook>=5.5", "packaging", "pytest", "pytest-timeout"),
            pytest_args=("tests", "-o", "addopts=-rfEs"),
            env={"JUPYTER_CONFIG_PATH": str(CONFIG / "jupyter")},
            suite_timeout=15 * 60,
            test_timeout=120,
        ),
        # OAuthenticator: JupyterHub's OAuth 2 login handlers for a dozen
        # providers. Its tests swap in a SimpleAsyncHTTPClient subclass
        # (AsyncHTTPClient.configure) whose fetch_impl answers the
        # providers' endpoints with HTTPResponses it builds itself.
        App(
            name="oauthenticator",
            version="17.4.0",
            # Its "test" extra, less pytest-cov (addopts' --cov: not needed).
            test_deps=(
                "google-auth-oauthlib",
                "mwoauth>=0.3.8",
                "pytest-asyncio>=1.2",
                "pytest>=6",
                "requests-mock",
                "pytest-timeout",
                # JupyterHub 6 adds user_info to the auth model, which the
                # suite's expected models of this release lack.
                "jupyterhub<6",
            ),
            pytest_args=("oauthenticator/tests", "-o", "addopts=-rfEs"),
            suite_timeout=10 * 60,
            test_timeout=120,
        ),
        # The pytest plugin for Tornado apps (used by Notebook's tests): it
        # reads HTTPServer internals and drives the IOLoop itself.
        App(
            name="pytest-tornasync",
            version="0.6.0.post2",
            # The sdist lacks test/__init__.py and conftest.py.
            tests_repo="eukaryote/pytest-tornasync",
            tests_paths=("test", "pytest.ini"),
            # No pytest-timeout: the plugin's own timeout marker takes
            # ``seconds=``, which pytest-timeout's refuses.
            test_deps=("pytest>=7.0,<9",),
            pytest_args=("test",),
            suite_timeout=5 * 60,
        ),
        # The other pytest plugin for Tornado apps (io_loop, http_server,
        # http_client and https_* fixtures, the gen_test marker): it starts
        # HTTPServer itself and reads its sockets; its https tests make a
        # certificate with pyOpenSSL.
        App(
            name="pytest-tornado",
            version="0.8.1",
            # The sdist has no tests.
            tests_repo="eugeniy/pytest-tornado",
            tests_ref="v0.8.1",
            tests_paths=("test", "setup.cfg"),
            test_deps=("pytest>=7.0,<9", "pyOpenSSL"),
            pytest_args=("test",),
            suite_timeout=5 * 60,
        ),
    )
}
