"""benchmarks/apps_bench.py: whose a py-spy sample is (the profile reader), the save row's wrk
script, the hub's configuration, the Tornado control and a row's figures."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._paths import SQUALL_DIR
from ._wait import HANG_GUARD

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import apps_bench  # noqa: E402

LOOP = (
    "<module> (squall/compat.py:746);ServerApp.start (jupyter_server/serverapp.py:3265);"
    "BaseAsyncIOLoop.start (squall/platform/asyncio.py:227);"
    "BaseEventLoop.run_forever (asyncio/base_events.py:607);"
    "BaseEventLoop._run_once (asyncio/base_events.py:1922)"
)


def read(*lines: str) -> apps_bench.Profile:
    return apps_bench.read_profile("\n".join(lines) + "\n", "squall")


def test_the_standard_library_is_its_callers() -> None:
    profile = read(
        # logging under Squall's log_request: Squall's.
        f"{LOOP};Application.log_request (squall/web/application.py:365);"
        "Logger.info (logging/__init__.py:1489) 3",
        # json under the application's handler: the application's.
        f"{LOOP};RequestHandler._execute (squall/web/handler.py:669);"
        "APIStatusHandler.get (jupyter_server/services/api/handlers.py:70);"
        "dumps (json/__init__.py:231) 5",
        # The loop's own work, under IOLoop.start: Squall's.
        f"{LOOP};Handle._run (asyncio/events.py:80) 2",
    )
    assert profile.samples == 10
    assert profile.framework == 5
    assert profile.self_ == 0  # no sample's innermost frame is in squall/
    assert profile.top[0] == ("Application.log_request (squall/web/application.py)", 0.3)


def test_a_wait_in_the_selector_is_idle() -> None:
    profile = read(
        f"{LOOP};EpollSelector.select (selectors.py:468) 40",
        f"{LOOP};EpollSelector.select (selectors.py:468);epoll_wait (libc.so.6) 7",
        f"{LOOP};RequestHandler.finish (squall/web/handler.py:509) 10",
    )
    assert (profile.samples, profile.framework, profile.self_) == (10, 10, 10)
    assert profile.share == 1.0


def test_a_thread_waiting_for_work_is_idle() -> None:
    worker = (
        "Thread._bootstrap (threading.py:995);WorkerThread.run (anyio/_backends/_asyncio.py:1113)"
    )
    profile = read(
        f"{worker};Queue.get (queue.py:171);Condition.wait (threading.py:320) 60",
        f"{worker};Thread.join (threading.py:1119);"
        "Thread._wait_for_tstate_lock (threading.py:1139) 5",
        f"{worker};from_dict (nbformat/notebooknode.py:83) 9",
        f"{LOOP};RequestHandler.finish (squall/web/handler.py:509) 1",
    )
    assert (profile.samples, profile.framework) == (10, 1)


def test_native_frames_are_their_callers_unless_compiled_squall() -> None:
    compiled = (
        f"{LOOP};CPyDef__delegate____HandlerDelegate___execute "
        "(__native_squall___web____delegate.c:1940);PyObject_Call (call.c:12) 4"
    )
    app_c = (
        f"{LOOP};RequestHandler._execute (squall/web/handler.py:669);"
        "ZMQStream._handle_recv (zmq/eventloop/zmqstream.py:557);recv (libzmq.so.5) 6"
    )
    profile = read(compiled, app_c)
    assert (profile.samples, profile.framework) == (10, 4)
    assert profile.self_ == 4
    assert profile.share == pytest.approx(0.4)


def test_tornado_frames_are_tornados() -> None:
    stacks = (
        "<module> (jupyter_server/__main__.py:6);"
        "BaseAsyncIOLoop.start (tornado/platform/asyncio.py:211);"
        "RequestHandler.flush (tornado/web.py:1180);"
        "socket.send (socket.py:1) 2\n"
    )
    tornado = apps_bench.read_profile(stacks, "tornado")
    squall = apps_bench.read_profile(stacks, "squall")
    assert (tornado.framework, squall.framework) == (2, 0)


def test_stdlib_names() -> None:
    assert apps_bench.is_stdlib("asyncio/base_events.py")
    assert apps_bench.is_stdlib("<frozen runpy>")
    assert apps_bench.is_stdlib("selectors.py")
    assert not apps_bench.is_stdlib("jupyter_server/serverapp.py")
    assert not apps_bench.is_stdlib("squall/web/handler.py")


# -- the save row's wrk script ------------------------------------------------------------------


class _Saves(http.server.BaseHTTPRequestHandler):
    """Answers a PUT to a path ending in ``-1.ipynb`` with ``failing``, any other with 200."""

    failing = 200
    seen: set[tuple[str, str, str, bytes]] = set()

    def do_PUT(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.add(
            (self.path, self.headers["Content-Type"], self.headers["Authorization"], body)
        )
        status = self.failing if self.path.endswith("-1.ipynb") else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def saves() -> Iterator[http.server.ThreadingHTTPServer]:
    _Saves.seen = set()
    _Saves.failing = 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Saves)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(HANG_GUARD)
        server.server_close()


needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
SAVE = next(w for w in apps_bench.WORKLOADS if w.method == "PUT")


@needs_wrk
def test_each_connection_saves_its_own_file(
    saves: http.server.ThreadingHTTPServer, tmp_path: Path
) -> None:
    assert apps_bench.run_wrk(saves.server_port, SAVE, 1, 2, tmp_path) > 0
    auth = f"token {apps_bench.TOKEN}"
    assert {(path, kind, token) for path, kind, token, _ in _Saves.seen} == {
        (SAVE.target % n, "application/json", auth) for n in range(2)
    }
    assert {body for *_, body in _Saves.seen} == {SAVE.body}
    model = json.loads(SAVE.body)
    assert (model["type"], model["format"]) == ("notebook", "json")
    assert len(model["content"]["cells"]) == 30


@needs_wrk
@pytest.mark.parametrize("status", [500, 204 + 100])  # 304: wrk's own count leaves it out
def test_a_save_answered_outside_2xx_fails_the_run(
    saves: http.server.ThreadingHTTPServer, tmp_path: Path, status: int
) -> None:
    _Saves.failing = status
    with pytest.raises(RuntimeError, match="answers outside 2xx: [1-9]"):
        apps_bench.run_wrk(saves.server_port, SAVE, 1, 2, tmp_path)


# -- JupyterHub's configuration, the Tornado control --------------------------------------------


def test_the_hub_configuration_is_python() -> None:
    text = apps_bench.HUB_CONFIG.format(
        port=1, public_port=2, work="/w", token=apps_bench.TOKEN, users={"user-00"}
    )
    compile(text, "jupyterhub_config.py", "exec")
    assert 'api_token": "squall-bench-apps"' in text
    assert "c.Authenticator.allowed_users = {'user-00'}" in text


def test_the_nodelay_control_keeps_tornados_streams_nodelay(tmp_path: Path) -> None:
    # A stand-in tornado.iostream that remembers the last value it was given.
    (tmp_path / "tornado").mkdir()
    (tmp_path / "tornado" / "__init__.py").write_text("")
    (tmp_path / "tornado" / "iostream.py").write_text(
        "class IOStream:\n    def set_nodelay(self, value):\n        self.nodelay = value\n"
    )
    (tmp_path / "probe.py").write_text(
        "import sys\n"
        "from tornado.iostream import IOStream\n"
        "stream = IOStream()\n"
        "stream.set_nodelay(False)\n"
        "print(__name__, sys.argv[1:], stream.nodelay)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", apps_bench.NODELAY_PRELUDE, "probe", "--port", "5"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=HANG_GUARD,
    ).stdout
    assert out == "__main__ ['--port', '5'] True\n"


def test_a_row_has_its_rates_per_second_and_each_servers_busy_share() -> None:
    w = apps_bench.WORKLOADS[0]
    results = {
        ("jupyter status", "tornado"): [apps_bench.Run(100, 100, 5.0, 1.0)],
        ("jupyter status", "squall"): [apps_bench.Run(300, 300, 5.0, 2.5)],
    }
    (row,) = apps_bench.summarize([w], results, {})
    assert (row["tornado_per_cpu_s"], row["squall_per_cpu_s"]) == (100, 120)
    assert (row["tornado_per_s"], row["squall_per_s"], row["ratio_rps"]) == (20, 60, 3)
    assert (row["tornado_busy"], row["squall_busy"]) == (0.2, 0.5)


def test_an_instruction_count_names_where_its_squall_differs(tmp_path: Path) -> None:
    # benchmarks/callgrind_apps.py runs in the bench venv, whose Squall is
    # whatever the last `make bench-apps` installed: it refuses to count a
    # squall/ that is not the checkout's, and says which files differ.
    import callgrind_apps

    checkout, installed = tmp_path / "checkout", tmp_path / "installed"
    for root in (checkout, installed):
        (root / "web").mkdir(parents=True)
        (root / "__init__.py").write_text("")
        (root / "web" / "cookies.py").write_text("v = 1\n")
    assert callgrind_apps.stale_files(checkout, installed) == []
    (installed / "web" / "cookies.py").write_text("v = 0\n")
    (checkout / "web" / "signing.py").write_text("")
    (installed / "gone.py").write_text("")
    assert callgrind_apps.stale_files(checkout, installed) == [
        "gone.py",
        "web/cookies.py",
        "web/signing.py",
    ]
    assert callgrind_apps.stale_files(SQUALL_DIR, SQUALL_DIR) == []
