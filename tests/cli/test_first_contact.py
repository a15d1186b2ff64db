"""What a new user meets first: a traceback without noise, errors before any
"Listening on", and the option an error names being the one given."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

import squall.cli._worker as worker
from squall.cli._options import parse_config

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the runner is POSIX")


def test_a_worker_traceback_does_not_begin_with_uvloop_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Where uvloop is not installed (the default install), its ImportError
    # must not become the context of every exception raised while serving.
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    raised: list[BaseException] = []

    async def serve(*args: object) -> int:
        try:
            raise ValueError("the application's own error")
        except ValueError as exc:
            raised.append(exc)
        return 0

    monkeypatch.setattr(worker, "serve", serve)
    assert worker.run_worker(parse_config(["sample_apps:app"]), []) == 0
    text = "".join(traceback.format_exception(raised[0]))
    assert raised[0].__context__ is None, text
    assert "uvloop" not in text
    assert "During handling" not in text


def _run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "squall", "run", *args],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_module_fails_before_anything_is_announced(workers: str) -> None:
    result = _run("no_such_module_here:app", "--bind", "127.0.0.1:0", "--workers", workers)
    assert result.returncode == 2, result.stderr
    assert "no module named 'no_such_module_here'" in result.stderr
    assert "Listening on" not in result.stderr
    assert "worker(s)" not in result.stderr


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_missing_attribute_fails_before_listening_is_announced(workers: str) -> None:
    # The module imports (in the worker); the attribute is not there.
    result = _run("sample_apps:no_such_app", "--bind", "127.0.0.1:0", "--workers", workers)
    assert result.returncode != 0, result.stderr
    assert "has no attribute 'no_such_app'" in result.stderr
    assert "Listening on" not in result.stderr
    assert "starting 2 worker(s)" not in result.stderr


def test_a_missing_module_inside_a_package_is_named_by_the_supervisor() -> None:
    result = _run("json.no_such_submodule:app", "--bind", "127.0.0.1:0", "--workers", "2")
    assert result.returncode == 2
    assert "no module named 'json.no_such_submodule'" in result.stderr
    assert "Listening on" not in result.stderr


def test_metrics_bind_on_a_port_in_use_names_metrics_bind() -> None:
    pytest.importorskip("prometheus_client")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _run(
            "sample_apps:app", "--bind", "127.0.0.1:0", "--metrics-bind", f"127.0.0.1:{port}"
        )
    assert result.returncode != 0
    assert f"--metrics-bind '127.0.0.1:{port}': " in result.stderr, result.stderr
    assert "--bind '127.0.0.1" not in result.stderr.replace("--metrics-bind", "")
    assert "Listening on" not in result.stderr


def test_compat_reports_a_port_in_use_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        script = tmp_path / "app.py"
        script.write_text(
            f"import tornado.web\ntornado.web.Application([]).listen({port}, address='127.0.0.1')\n"
        )
        result = subprocess.run(
            [sys.executable, "-m", "squall.compat", str(script)],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: " in result.stderr, result.stderr


def test_general_and_access_log_lines_write_the_time_alike() -> None:
    import logging
    import re

    from squall.cli._logging import _Formatter
    from squall.cli._serving import _Clock

    record = logging.LogRecord("squall.general", logging.INFO, __file__, 1, "hello", None, None)
    general = re.match(r"\[([^\]]+)\]", _Formatter().format(record))
    assert general is not None

    def shape(stamp: str) -> str:
        return re.sub(r"\d", "0", stamp)

    assert shape(general.group(1)) == shape(_Clock.now()) == "0000-00-00T00:00:00.000"


def test_a_handler_traceback_under_squall_run_without_uvloop(tmp_path: Path) -> None:
    from ._proc import Squall, get

    # A uvloop that cannot be imported, as where it is not installed.
    (tmp_path / "uvloop.py").write_text("raise ImportError('no uvloop here')\n")
    (tmp_path / "failing_app.py").write_text(
        "from squall.web import Application, RequestHandler\n"
        "class Fail(RequestHandler):\n"
        "    def get(self):\n"
        "        raise ValueError('the handler failed')\n"
        "app = Application([(r'/', Fail)])\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with Squall(
        "failing_app:app", "--bind", "127.0.0.1:0", "--app-dir", str(tmp_path), env=env
    ) as squall:
        address = squall.address()
        assert get(address)[0] == 500
        squall.expect(r"ValueError: the handler failed")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    text = "\n".join(squall.seen)
    assert "Traceback" in text
    assert "uvloop" not in text
    assert "During handling of the above exception" not in text
