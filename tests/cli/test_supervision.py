"""The supervisor as an operator meets it: exits, failed boots, stuck workers, Tornado programs."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

import pytest

from tests._wait import HANG_GUARD

from ._proc import Load, Squall, get, get_json

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")


def _get_quietly(address: tuple[str, int], path: str) -> None:
    try:
        get(address, path, timeout=30)
    except OSError:
        pass  # the worker serving it is killed: that is the point


def test_a_worker_exiting_with_status_3_after_serving_is_replaced() -> None:
    with Squall("sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2") as squall:
        address = squall.address()
        pids = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        # Status 3 was taken for "bad target or options": this one served first.
        try:
            get(address, "/exit?code=3")
        except OSError:
            pass  # the worker is gone before answering, as it should be
        match = squall.expect(r"Worker (\d+) died \(exit status 3\) after")
        assert int(match.group(1)) in pids
        new = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert new not in pids
        assert not any("could not start" in line for line in squall.seen)
        for _ in range(4):
            assert get_json(address)["pid"] in (pids | {new})
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_a_startup_failing_in_every_worker_stops_with_one_message() -> None:
    with Squall(
        "sample_apps:failing_lifespan_app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--lifespan",
        "on",
    ) as squall:
        squall.expect(r"No worker could start, so the server stops\. .*startup failed: no database")
        assert squall.wait() == 1
        failures = [line for line in squall.seen if "no database" in line]
        assert len(failures) == 1, squall.seen
        assert "Application startup failed: no database" in failures[0]
        assert "startup failed: application startup failed" not in failures[0].lower()
        assert not any("ready" in line for line in squall.seen)


def test_a_startup_failure_in_one_process_says_it_once() -> None:
    with Squall(
        "sample_apps:failing_lifespan_app", "--bind", "127.0.0.1:0", "--lifespan", "on"
    ) as squall:
        squall.expect(r"ERROR squall.general: Application startup failed: no database$")
        assert squall.wait() == 1


def test_an_abbreviated_option_is_refused() -> None:
    # "--http httptools" once parsed as --http2 and a stray argument (it is
    # uvicorn's own option now: tests/cli/test_foreign.py); "--reuse" must
    # not pass for --reuse-port either.
    with Squall("sample_apps:app", "--reuse") as squall:
        squall.expect(r"unrecognized arguments: --reuse")
        assert squall.wait() == 2


@pytest.mark.parametrize("wrapped", [False, True], ids=["squall-run", "under-squall.compat"])
def test_a_tornado_program_is_served_by_every_worker(wrapped: bool) -> None:
    args = ("tornado_app:app", "--bind", "127.0.0.1:0", "--workers", "2")
    prefix = ("-m", "squall.compat", "-m", "squall") if wrapped else ()
    with Squall(*args, python_args=prefix, env={"SQUALL_TORNADO_ALIAS": ""}) as squall:
        address = squall.address()
        pids = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        seen = set()
        for _ in range(6):
            answer = get_json(address)
            # Squall's RequestHandler (no Tornado is installed), answering to
            # Tornado's name under the alias.
            assert answer["module"] == "tornado.web"
            seen.add(answer["pid"])
        assert seen <= pids
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_without_the_alias_a_tornado_program_gets_a_hint() -> None:
    with Squall(
        "tornado_app:app", "--bind", "127.0.0.1:0", env={"SQUALL_TORNADO_ALIAS": "0"}
    ) as squall:
        squall.expect(r"imports 'tornado'.*SQUALL_TORNADO_ALIAS=1.*python -m squall\.compat")
        assert squall.wait() == 2


def test_a_stuck_worker_is_detected_its_stack_logged_and_replaced() -> None:
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--timeout-worker-healthcheck",
        "1",
        "--no-access-log",
    ) as squall:
        address = squall.address()
        pids = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        load = Load(address, "/slow", clients=2)
        load.start()
        blocker = threading.Thread(target=_get_quietly, args=(address, "/block"), daemon=True)
        blocker.start()
        match = squall.expect(
            r"Worker (\d+) has not turned its event loop for [\d.]+s", timeout=HANG_GUARD
        )
        stuck = int(match.group(1))
        assert stuck in pids
        # faulthandler's dump, from inside the stuck worker: the blocking call.
        squall.expect(r'File ".*sample_apps\.py", line \d+ in stuck_in_a_blocking_call')
        squall.expect(rf"Worker {stuck} was stuck and is gone \(signal SIGABRT\)")
        new = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert new not in pids
        load.wait_ok(load.ok + 20)
        load.stop()
        assert load.failures == []
        blocker.join(5)
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
        assert sys.platform != "linux" or not any("core dumped" in x for x in squall.seen)


def test_opentelemetry_option_serves_or_says_what_is_missing() -> None:
    with Squall(
        "sample_apps:app", "--bind", "127.0.0.1:0", "--opentelemetry", "--no-access-log"
    ) as squall:
        address = squall.address()
        match = squall.expect(r"serving|needs opentelemetry-instrumentation-tornado")
        if match.group(0) == "serving":
            assert get_json(address, "/")["pid"] == squall.proc.pid
            squall.signal(signal.SIGTERM)
            assert squall.wait() == 0
        else:
            assert squall.wait() == 2


def test_reload_waits_for_a_fix_when_the_application_does_not_start(tmp_path: Path) -> None:
    module = tmp_path / "broken_app.py"
    module.write_text("from squall.web import Application\napp = Application([]\n")  # SyntaxError
    with Squall(
        "broken_app:app",
        "--bind",
        "127.0.0.1:0",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--app-dir",
        str(tmp_path),
    ) as squall:
        address = squall.address()
        squall.expect(r"Worker \d+ could not start: Traceback.*", timeout=HANG_GUARD)
        # The traceback's last line, then what the supervisor does about it.
        squall.expect(r"SyntaxError: .*; waiting for a change$")
        module.write_text("from squall.web import Application\napp = Application([])\n")
        squall.expect(r"Reloading: .*broken_app\.py changed")
        squall.expect(r"Worker \d+ ready")
        assert get(address)[0] == 404  # served: an application without routes
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_log_config_reaches_the_workers(tmp_path: Path) -> None:
    config = tmp_path / "logging.json"
    config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {"f": {"format": "CONFIGURED %(process)d %(message)s"}},
                "handlers": {"h": {"class": "logging.StreamHandler", "formatter": "f"}},
                "loggers": {"squall.general": {"handlers": ["h"], "propagate": False}},
            }
        )
    )
    with Squall(
        "sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2", "--log-config", str(config)
    ) as squall:
        pids = {
            int(squall.expect(r"CONFIGURED \d+ Worker (\d+) serving").group(1)) for _ in range(2)
        }
        assert len(pids) == 2
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_lifespan_off_serves_an_app_whose_startup_would_fail() -> None:
    with Squall(
        "sample_apps:failing_lifespan_app", "--bind", "127.0.0.1:0", "--lifespan", "off"
    ) as squall:
        squall.address()
        squall.expect("serving")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
