"""benchmarks/apps_bench.py's profile reader: whose a py-spy sample is."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
