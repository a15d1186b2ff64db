"""The worker, the supervisor and the reload watcher run in the test process.

The subprocess tests (test_run) show the command end to end; these drive the
same code where the test can see inside it (and coverage can measure it).
Signals are sent to the test process itself while the code under test has
its handlers installed on the running loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from squall import compat
from squall.cli import TORNADO_ALIAS_ENV, main
from squall.cli._link import WorkerLink
from squall.cli._options import Config
from squall.cli._reload import Watcher
from squall.cli._sockets import bind_all, unix_paths, unlink_unix
from squall.cli._supervisor import Supervisor
from squall.cli._worker import serve
from tests._wait import HANG_GUARD

from ._proc import HERE, get, get_json

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


def test_watcher_sees_edits_additions_and_removals(tmp_path: Path) -> None:
    source = tmp_path / "mod.py"
    source.write_text("x = 1\n")
    (tmp_path / "notes.bin").write_bytes(b"ignored")
    (tmp_path / "__pycache__").mkdir()
    watcher = Watcher([str(tmp_path)])
    assert watcher.changed() is None
    source.write_text("x = 2\n")
    os.utime(source, ns=(1, 1))  # a different mtime, whatever the clock's grain
    assert watcher.changed() == os.path.relpath(source)
    assert watcher.changed() is None
    (tmp_path / "__pycache__" / "mod.cpython-311.py").write_text("")
    (tmp_path / "notes.bin").write_bytes(b"still ignored")
    assert watcher.changed() is None
    added = tmp_path / "pkg" / "new.html"
    added.parent.mkdir()
    added.write_text("<p>")
    assert watcher.wait_for_change(0.01) == os.path.relpath(added)
    added.unlink()
    assert watcher.changed() == os.path.relpath(added)
    watcher.stop()
    assert watcher.wait_for_change(10) is None


def test_unix_socket_files_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    sockets = bind_all([f"unix:{path}"], 8)
    paths = unix_paths(sockets)
    assert paths == [str(path)] and path.exists()
    unlink_unix(paths, pid=os.getpid() + 1)  # another process's: left alone
    assert path.exists()
    for sock in sockets:
        sock.close()
    unlink_unix(paths)
    assert not path.exists()


def _config(**options: object) -> Config:
    options.setdefault("target", "sample_apps:app")
    return Config(app_dir=str(HERE), **options)  # type: ignore[arg-type]


class _Link(WorkerLink):
    """The supervisor's pipe, as `serve` uses it, over a real pipe; `ready` also sets an Event."""

    def __init__(self, event: asyncio.Event) -> None:
        rfd, wfd = os.pipe()
        os.close(rfd)  # nobody reads: writes fail, which the link tolerates
        super().__init__(wfd)
        self.event = event

    def ready(self) -> None:
        super().ready()
        self.event.set()


def test_worker_recycles_after_max_requests_and_stops_on_sigterm() -> None:
    sockets = bind_all(["127.0.0.1:0"], 16)
    address = sockets[0].getsockname()

    async def scenario() -> None:
        ready = asyncio.Event()
        task = asyncio.ensure_future(serve(_config(max_requests=2), sockets, _Link(ready)))
        await asyncio.wait_for(ready.wait(), HANG_GUARD)
        for _ in range(2):
            assert (await asyncio.to_thread(get, address))[0] == 200
        assert await asyncio.wait_for(task, HANG_GUARD) == 0

        # An ASGI app, with its lifespan, stopped by SIGTERM.
        more = bind_all(["127.0.0.1:0"], 16)
        ready = asyncio.Event()
        config = _config(target="sample_apps:asgi_app", root_path="/r")
        task = asyncio.ensure_future(serve(config, more, _Link(ready)))
        await asyncio.wait_for(ready.wait(), HANG_GUARD)
        assert await asyncio.to_thread(get, more[0].getsockname(), "/x") == (
            200,
            b"asgi /r/x root=/r",
        )
        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(task, HANG_GUARD) == 0

    asyncio.run(scenario())


async def _until(
    event: asyncio.Event, condition: Callable[[], bool], timeout: float = HANG_GUARD
) -> None:
    """Wait for ``condition``, re-checked each time ``event`` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        event.clear()
        await asyncio.wait_for(event.wait(), deadline - loop.time())


def test_supervisor_restarts_rolls_scales_and_stops() -> None:
    sockets = bind_all(["127.0.0.1:0"], 64)
    address = sockets[0].getsockname()
    supervisor = Supervisor(_config(workers=2), sockets)

    async def scenario() -> None:
        changed = asyncio.Event()
        supervisor.on_change = changed.set
        run = asyncio.ensure_future(supervisor.run())
        await _until(changed, lambda: len(supervisor.ready_pids()) == 2)
        first = supervisor.ready_pids()
        assert (await asyncio.to_thread(get_json, address))["pid"] in first

        # A crash is replaced.
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await _until(changed, lambda: victim not in supervisor.workers)
        await _until(changed, lambda: len(supervisor.ready_pids()) == 2)
        second = supervisor.ready_pids()
        assert victim not in second and len(second - first) == 1

        # SIGHUP: every worker replaced.
        os.kill(os.getpid(), signal.SIGHUP)
        await _until(changed, lambda: not (set(supervisor.workers) & second))
        await _until(changed, lambda: len(supervisor.ready_pids()) == 2)
        third = supervisor.ready_pids()
        assert not third & second
        assert (await asyncio.to_thread(get_json, address))["pid"] in third

        # TTIN adds one; TTOU retires the oldest.
        os.kill(os.getpid(), signal.SIGTTIN)
        await _until(changed, lambda: len(supervisor.ready_pids()) == 3)
        assert supervisor.target == 3
        os.kill(os.getpid(), signal.SIGTTOU)
        await _until(changed, lambda: len(supervisor.workers) == 2)
        assert supervisor.target == 2

        os.kill(os.getpid(), signal.SIGTERM)
        assert await asyncio.wait_for(run, HANG_GUARD) == 0
        assert not supervisor.workers

    try:
        asyncio.run(scenario())
    finally:
        for pid in list(supervisor.workers):
            os.kill(pid, signal.SIGKILL)
        for sock in sockets:
            sock.close()


@pytest.fixture
def command_process() -> Iterator[None]:
    """Undoes what main() does to the process it runs in, for the tests after.

    main() is a command: it sets logging up, makes ``tornado`` an alias of
    squall (squall.compat) and exports SQUALL_TORNADO_ALIAS=1 for its
    workers and the application's subprocesses, all for the rest of the
    process, which ends with the command. Here the process goes on to run
    other tests, which must find none of it (test_compat checks that no
    alias is installed).
    """
    root = logging.getLogger()
    access = logging.getLogger("squall.access")
    saved = root.handlers[:], root.level, access.handlers[:], access.propagate
    aliased = compat.installed()
    alias_env = os.environ.get(TORNADO_ALIAS_ENV)
    try:
        yield
    finally:
        for handler in access.handlers:
            if handler not in saved[2]:
                handler.close()
        root.handlers[:], level, access.handlers[:], access.propagate = saved
        root.setLevel(level)
        if not aliased:
            compat.uninstall()
        if alias_env is None:
            os.environ.pop(TORNADO_ALIAS_ENV, None)
        else:
            os.environ[TORNADO_ALIAS_ENV] = alias_env


def test_run_in_process_serves_until_sigterm(
    command_process: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() binds, logs the address and serves in this process (one worker).
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    address = listener.getsockname()

    def client() -> None:
        # Queued in the backlog until the server accepts it.
        status, _ = get(address, "/")
        assert status == 200
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=client)
    thread.start()
    fd = listener.detach()  # main() owns (and closes) the descriptor now
    code = main(["run", "sample_apps:app", "--app-dir", str(HERE), "-b", f"fd://{fd}"])
    thread.join(10)
    assert code == 0
    assert main(["run", "sample_apps:app", "--certfile", "c.pem"]) == 2  # before any logging setup
    assert "go together" in capsys.readouterr().err


def test_a_worker_started_while_stopping_is_stopped_too() -> None:
    # A recycle's replacement may be starting when SIGTERM arrives; it
    # joins the workers after the stop has retired them, and must be
    # retired as well, or the supervisor waits for it until the kill.
    sockets = bind_all(["127.0.0.1:0"], 64)
    supervisor = Supervisor(_config(workers=1), sockets)

    async def scenario() -> None:
        changed = asyncio.Event()
        supervisor.on_change = changed.set
        run = asyncio.ensure_future(supervisor.run())
        await _until(changed, lambda: len(supervisor.ready_pids()) == 1)
        supervisor._task(supervisor._spawn())
        supervisor.stop()
        assert await asyncio.wait_for(run, HANG_GUARD) == 0
        assert not supervisor.workers

    try:
        asyncio.run(scenario())
    finally:
        for pid in list(supervisor.workers):
            os.kill(pid, signal.SIGKILL)
        for sock in sockets:
            sock.close()
