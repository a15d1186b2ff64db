"""squall run's options, environment twins, targets by shape and --bind, in-process."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from squall.cli import main
from squall.cli._options import Config, UsageError, build_parser, parse_config
from squall.cli._sockets import bind_all, describe, parse_bind
from squall.cli._target import is_asgi, is_wsgi, load, serve_target
from squall.web import Application

from . import sample_apps


def test_help_reads_like_uvicorns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: squall run [OPTIONS] TARGET")
    for option in [
        "--bind",
        "--workers",
        "--reload",
        "--reload-dir",
        "--certfile",
        "--keyfile",
        "--http2",
        "--proxy-headers",
        "--forwarded-allow-ips",
        "--root-path",
        "--access-log",
        "--access-log-format",
        "--log-level",
        "--timeout-keep-alive",
        "--timeout-graceful-shutdown",
        "--limit-concurrency",
        "--backlog",
        "--max-requests",
        "--max-requests-jitter",
    ]:
        assert option in out, option
        env = "SQUALL_" + option[2:].upper().replace("-", "_")
        if option == "--reload-dir":
            env = "SQUALL_RELOAD_DIRS"
        assert env in out, env


def test_unknown_command_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve"]) == 2
    assert "unknown command 'serve'" in capsys.readouterr().err
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("squall ")


def test_defaults() -> None:
    config = parse_config(["m:app"], environ={})
    assert config.bind == ["127.0.0.1:8000"]
    assert config.workers == 1
    assert config.proxy_headers is True
    assert config.forwarded_allow_ips == ["127.0.0.1"]
    assert config.timeout_keep_alive == 5.0
    assert config.timeout_header == 10.0
    assert config.timeout_graceful_shutdown == 30.0


def test_environment_twins_and_command_line_precedence() -> None:
    env = {
        "SQUALL_APP": "env:app",
        "SQUALL_BIND": "0.0.0.0:80, unix:/tmp/s.sock",
        "SQUALL_WORKERS": "4",
        "SQUALL_PROXY_HEADERS": "no",
        "SQUALL_FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.0/8",
        "SQUALL_TIMEOUT_GRACEFUL_SHUTDOWN": "2.5",
        "SQUALL_ACCESS_LOG": "off",
        "SQUALL_MAX_REQUESTS": "100",
        "SQUALL_MAX_REQUESTS_JITTER": "10",
        "SQUALL_LOG_LEVEL": "debug",
    }
    config = parse_config([], environ=env)
    assert config.target == "env:app"
    assert config.bind == ["0.0.0.0:80", "unix:/tmp/s.sock"]
    assert config.workers == 4
    assert config.proxy_headers is False
    assert config.forwarded_allow_ips == ["10.0.0.1", "10.0.0.0/8"]
    assert config.timeout_graceful_shutdown == 2.5
    assert config.access_log is False
    assert (config.max_requests, config.max_requests_jitter) == (100, 10)
    assert config.log_level == "debug"
    config = parse_config(["cli:app", "-w", "2", "--proxy-headers", "-b", "fd://3"], environ=env)
    assert (config.target, config.workers, config.proxy_headers) == ("cli:app", 2, True)
    assert config.bind == ["fd://3"]


def test_host_and_port() -> None:
    assert parse_config(["m:a", "--host", "::1", "--port", "9"], environ={}).bind == ["[::1]:9"]
    assert parse_config(["m:a", "--port", "9"], environ={}).bind == ["127.0.0.1:9"]


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "missing TARGET"),
        (["m:a", "--certfile", "c.pem"], {}, "--certfile and --keyfile go together"),
        (["m:a", "--reload", "-w", "2"], {}, "--reload runs one worker"),
        (["m:a"], {"SQUALL_WORKERS": "many"}, "SQUALL_WORKERS='many': expected a int"),
        (["m:a"], {"SQUALL_RELOAD": "perhaps"}, "SQUALL_RELOAD='perhaps': expected 1/0"),
    ],
)
def test_usage_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_config(argv, environ=env)


def test_bad_option_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["m:a", "--workers", "0"])
    assert exc.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_config_round_trips_to_workers() -> None:
    config = parse_config(["m:a", "-b", "unix:/x", "--root-path", "/api"], environ={})
    assert Config.from_env(config.to_env()) == config


def test_bind_forms() -> None:
    assert parse_bind("0.0.0.0:8080") == ("tcp", "0.0.0.0", 8080)
    assert parse_bind("[::1]:80") == ("tcp", "::1", 80)
    assert parse_bind("localhost") == ("tcp", "localhost", 8000)
    assert parse_bind("unix:/run/a.sock") == ("unix", "/run/a.sock", 0)
    assert parse_bind("fd://5") == ("fd", "", 5)
    for bad, message in [
        ("host:http", "bad port 'http'"),
        ("host:70000", "bad port '70000'"),
        ("unix:", "unix: needs a path"),
        ("fd://x", "fd:// needs a file descriptor"),
    ]:
        with pytest.raises(UsageError, match=message):
            parse_bind(bad)


def test_bind_reports_a_busy_port() -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        port = busy.getsockname()[1]
        with pytest.raises(UsageError, match=f"--bind '127.0.0.1:{port}': .*in use"):
            bind_all([f"127.0.0.1:{port}"], 16)
    finally:
        busy.close()
    sockets = bind_all(["127.0.0.1:0"], 16)
    assert describe(sockets[0]).startswith("http://127.0.0.1:")
    assert describe(sockets[0], tls=True).startswith("https://")
    for sock in sockets:
        sock.close()


def test_targets_by_shape() -> None:
    served = serve_target(sample_apps.app, "t:app")
    assert served.kind == "squall" and served.callback is sample_apps.app
    made = serve_target(sample_apps.make_app, "t:make_app")
    assert made.kind == "squall" and isinstance(made.app, Application)
    assert made.app is not sample_apps.app
    assert is_asgi(sample_apps.asgi_app) and not is_wsgi(sample_apps.asgi_app)
    assert is_wsgi(sample_apps.wsgi_app) and not is_asgi(sample_apps.wsgi_app)
    asgi = serve_target(sample_apps.asgi_app, "t:asgi_app", root_path="/r")
    assert asgi.kind == "asgi" and asgi.startup is not None and asgi.shutdown is not None
    assert serve_target(sample_apps.wsgi_app, "t:wsgi_app").kind == "wsgi"


def test_objects_with_async_call_are_asgi() -> None:
    class App:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            pass

    class Wsgi:
        def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
            return []

    assert is_asgi(App()) and not is_wsgi(App())
    assert is_wsgi(Wsgi()) and not is_asgi(Wsgi())
    assert not is_asgi(App)  # the class itself is not the app


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("sample_apps:not_an_app", r"is a builtins\.int: expected a squall/Tornado Application"),
        ("sample_apps:two_many", r"is a function of 4 required argument\(s\)"),
        ("sample_apps:missing", r"has no attribute 'missing'"),
        ("no_such_module_here:app", r"no module named 'no_such_module_here'"),
        ("sample_apps", r"must be module:attribute"),
    ],
)
def test_bad_targets_are_clear_errors(spec: str, message: str) -> None:
    import os

    here = os.path.dirname(__file__)
    with pytest.raises(UsageError, match=message):
        serve_target(load(spec, here), spec)


def test_an_async_factory_is_refused() -> None:
    async def factory() -> Application:
        return Application()

    with pytest.raises(UsageError, match="is an async function") as refused:
        serve_target(factory, "m:factory")
    # Most often a Tornado program's own main(): the error names the command
    # that runs it.
    assert "python -m squall.compat m.py" in str(refused.value)
    with pytest.raises(UsageError, match=r"python -m squall\.compat pkg/app\.py"):
        serve_target(factory, "pkg.app:main")


def test_a_factory_is_found_by_shape_from_the_command_line() -> None:
    # Without --factory the option is unset, not false: a zero-argument
    # callable TARGET is called for the application.
    config = parse_config(["m:make_app"], environ={})
    assert config.factory is None
    app = Application()

    def make_app(debug: bool = False) -> Application:
        return app

    served = serve_target(make_app, config.target, factory=config.factory)
    assert served.app is app
    assert parse_config(["m:a", "--no-factory"], environ={}).factory is False
    assert parse_config(["m:a", "--factory"], environ={}).factory is True
