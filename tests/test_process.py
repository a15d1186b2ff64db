"""process: cpu_count, fork_processes (faked fork, plus one real run), and Subprocess."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from squall import process
from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream import PipeIOStream
from squall.process import Subprocess, cpu_count, fork_processes, task_id
from tests._wait import HANG_GUARD

_T = TypeVar("_T")

LIMIT = HANG_GUARD  # a hang guard, not a measure of speed
ROOT = Path(__file__).resolve().parents[1]


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, LIMIT))


# -- cpu_count --------------------------------------------------------------------------


def test_cpu_count_is_the_affinity_when_known(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert cpu_count() == 3


def test_cpu_count_falls_back_to_os_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(pid: int) -> set[int]:
        raise OSError("not here")

    monkeypatch.setattr(os, "sched_getaffinity", refuse, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert cpu_count() == 6
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    assert cpu_count() == 6


def test_cpu_count_unknown_is_one_with_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    with caplog.at_level(logging.ERROR, logger="squall.general"):
        assert cpu_count() == 1
    assert "number of processors" in caplog.text


# -- fork_processes with a fake fork ----------------------------------------------------------


def exited(code: int) -> int:
    return code << 8


def killed(signum: int) -> int:
    return signum


class FakeOS:
    """Stands in for os.fork and os.wait: the parent's view of its children."""

    def __init__(self, waits: list[tuple[int, int]], child_on_fork: int = -1) -> None:
        self.waits = iter(waits)
        self.next_pid = 100
        self.forks = 0
        # The fork call (counting from 0) that returns 0, as in the child.
        self.child_on_fork = child_on_fork

    def fork(self) -> int:
        n = self.forks
        self.forks += 1
        if n == self.child_on_fork:
            return 0
        self.next_pid += 1
        return self.next_pid

    def wait(self) -> tuple[int, int]:
        return next(self.waits)


@pytest.fixture
def fake_os(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def install(waits: list[tuple[int, int]], child_on_fork: int = -1) -> FakeOS:
        fake = FakeOS(waits, child_on_fork)
        monkeypatch.setattr(os, "fork", fake.fork)
        monkeypatch.setattr(os, "wait", fake.wait)
        return fake

    monkeypatch.setattr(process, "_task_id", None)
    yield install


def test_parent_exits_when_every_child_exits_cleanly(
    fake_os: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # 999 is not a child of ours (say, a reparented grandchild): ignored.
    fake = fake_os([(999, 0), (101, exited(0)), (102, exited(0))])
    with caplog.at_level(logging.INFO, logger="squall.general"), pytest.raises(SystemExit) as info:
        fork_processes(2)
    assert info.value.code == 0
    assert fake.forks == 2
    assert task_id() is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "Starting 2 processes",
        "child 0 (pid 101) exited normally",
        "child 1 (pid 102) exited normally",
    ]


def test_child_gets_its_task_id(fake_os: Any) -> None:
    fake = fake_os([], child_on_fork=1)
    assert fork_processes(3) == 1
    assert task_id() == 1
    assert fake.forks == 2
    with pytest.raises(RuntimeError, match="already called: this is worker 1"):
        fork_processes(3)


def test_dead_children_are_restarted_with_the_same_task_id(
    fake_os: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Child 1 exits with status 3, then child 0 is killed; its replacement
    # (the fifth fork) is where this process becomes the child.
    fake_os([(102, exited(3)), (101, killed(signal.SIGKILL))], child_on_fork=3)
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        assert fork_processes(2) == 0
    assert task_id() == 0
    assert [r.getMessage() for r in caplog.records] == [
        "child 1 (pid 102) exited with status 3, restarting",
        f"child 0 (pid 101) killed by signal {int(signal.SIGKILL)}, restarting",
    ]


def test_too_many_restarts(fake_os: Any) -> None:
    fake_os([(101, exited(1)), (102, exited(1))])
    with pytest.raises(RuntimeError) as info:
        fork_processes(1, max_restarts=1)
    # Tornado's message, word for word.
    assert str(info.value) == "Too many child restarts, giving up"


@pytest.mark.parametrize("asked", [None, 0, -1])
def test_default_is_one_process_per_cpu(
    asked: Any, fake_os: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "cpu_count", lambda: 3)
    fake = fake_os([(101, 0), (102, 0), (103, 0)])
    with pytest.raises(SystemExit):
        fork_processes(asked)
    assert fake.forks == 3


def test_default_restart_limit_is_100(fake_os: Any) -> None:
    fake = fake_os([(100 + n, exited(1)) for n in range(1, 102)])
    with pytest.raises(RuntimeError, match="Too many child restarts"):
        fork_processes(1)
    assert fake.forks == 101


def test_windows_has_no_fork(fake_os: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(RuntimeError, match="Windows"):
        fork_processes(2)


def test_real_fork_runs_and_restarts_workers(tmp_path: Path) -> None:
    marker = tmp_path / "crashed-once"
    script = textwrap.dedent(f"""
        import os, sys
        from squall.process import fork_processes, task_id

        worker = fork_processes(2, max_restarts=1)
        assert worker == task_id()
        if worker == 1 and not os.path.exists({str(marker)!r}):
            open({str(marker)!r}, "w").close()
            os._exit(7)
        sys.stdout.write(str(worker))
    """)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        timeout=LIMIT,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout) == ["0", "1"]
    assert marker.exists()


# -- Subprocess ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_watchers() -> Iterator[None]:
    yield
    Subprocess.uninitialize()
    for subproc in list(Subprocess._waiting.values()):
        subproc.proc.kill()
        subproc.proc.wait()
        subproc._unwatch()
    Subprocess._waiting.clear()


def python(code: str, **kwargs: Any) -> Subprocess:
    return Subprocess([sys.executable, "-c", code], **kwargs)


def test_stdout_stream_and_exit_status() -> None:
    async def main() -> None:
        sub = python("print('hello')", stdout=Subprocess.STREAM)
        assert isinstance(sub.stdout, PipeIOStream)
        assert sub.stdin is None and sub.stderr is None
        assert await sub.stdout.read_until_close() == b"hello\n"
        assert await sub.wait_for_exit() == 0
        assert sub.returncode == 0 and sub.proc.returncode == 0
        assert sub.pid == sub.proc.pid

    run(main())


def test_stdin_and_stderr_streams() -> None:
    async def main() -> None:
        sub = python(
            "import sys; sys.stderr.write(sys.stdin.read().upper())",
            stdin=Subprocess.STREAM,
            stderr=Subprocess.STREAM,
        )
        await sub.stdin.write(b"quiet")
        sub.stdin.close()
        assert await sub.stderr.read_until_close() == b"QUIET"
        sub.stderr.close()
        assert await sub.wait_for_exit() == 0

    run(main())


def test_other_arguments_go_to_popen_unchanged() -> None:
    async def main() -> None:
        sub = python("print('piped')", stdout=subprocess.PIPE)
        assert not isinstance(sub.stdout, PipeIOStream)
        assert await sub.wait_for_exit() == 0
        assert sub.stdout.read() == b"piped\n"
        sub.stdout.close()

    run(main())


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_failed_start_leaks_no_pipe() -> None:
    async def main() -> None:
        before = fd_count()
        with pytest.raises(FileNotFoundError):
            Subprocess(
                ["/nonexistent/program"],
                stdin=Subprocess.STREAM,
                stdout=Subprocess.STREAM,
                stderr=Subprocess.STREAM,
            )
        assert fd_count() == before

    run(main())


def test_non_zero_exit_raises_called_process_error() -> None:
    async def main() -> None:
        sub = python("import sys; sys.exit(3)")
        with pytest.raises(subprocess.CalledProcessError) as info:
            await sub.wait_for_exit()
        assert info.value.returncode == 3
        assert info.value.cmd == [sys.executable, "-c", "import sys; sys.exit(3)"]
        sub = python("import sys; sys.exit(4)")
        assert await sub.wait_for_exit(raise_error=False) == 4

    run(main())


def test_killed_child_reports_minus_the_signal() -> None:
    async def main() -> None:
        sub = python("import signal; signal.pause()")  # runs until killed
        exited: Future[int] = Future()
        sub.set_exit_callback(exited.set_result)
        os.kill(sub.pid, signal.SIGTERM)
        assert await exited == -signal.SIGTERM
        assert sub.returncode == -signal.SIGTERM

    run(main())


def test_exit_callback_set_again_after_exit_runs_again() -> None:
    async def main() -> None:
        sub = python("pass")
        assert await sub.wait_for_exit() == 0
        again: Future[int] = Future()
        sub.set_exit_callback(again.set_result)
        assert await again == 0

    run(main())


def test_exit_callback_failure_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        sub = python("pass")
        done: Future[None] = Future()

        def callback(returncode: int) -> None:
            IOLoop.current().add_callback(done.set_result, None)
            raise RuntimeError("callback bug")

        sub.set_exit_callback(callback)
        await done

    with caplog.at_level(logging.ERROR, logger="squall.application"):
        run(main())
    assert "Exception in callback" in caplog.text
    assert "callback bug" in caplog.text


def test_child_reaped_elsewhere_is_still_reported() -> None:
    async def main() -> None:
        sub = python("import sys; sys.exit(5)")
        sub.proc.wait()
        assert await sub.wait_for_exit(raise_error=False) == 5

    run(main())


def test_waiter_thread_where_there_are_no_pidfds(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pidfds(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(process, "_pidfd_open", no_pidfds)

    async def main() -> None:
        sub = python("import sys; sys.exit(2)")
        exiting = sub.wait_for_exit(raise_error=False)
        assert sub._waiter is not None and sub._pidfd is None
        assert await exiting == 2

    run(main())


def test_setting_the_callback_twice_watches_once() -> None:
    async def main() -> None:
        sub = python("import sys; sys.stdin.read()", stdin=Subprocess.STREAM)
        first: Future[int] = Future()
        second: Future[int] = Future()
        sub.set_exit_callback(first.set_result)
        pidfd = sub._pidfd
        sub.set_exit_callback(second.set_result)
        assert sub._pidfd == pidfd
        # Nothing to report while the child runs.
        sub._check()
        assert sub.returncode is None
        sub.stdin.close()
        assert await second == 0
        assert not first.done()

    run(main())


def test_uninitialize_holds_exits_until_initialize() -> None:
    async def main() -> None:
        sub = python("import sys; sys.stdin.read()", stdin=Subprocess.STREAM)
        exited: Future[int] = Future()
        sub.set_exit_callback(exited.set_result)
        Subprocess.uninitialize()
        Subprocess.uninitialize()
        assert sub._pidfd is None
        sub.stdin.close()
        sub.proc.wait()
        await asyncio.sleep(0)
        sub._check()  # what a late wake-up would do
        assert not exited.done()
        Subprocess.initialize()
        Subprocess.initialize()
        assert await exited == 0

    run(main())


def test_uninitialize_ignores_a_waiter_thread_until_initialize(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_pidfds(pid: int) -> int:
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(process, "_pidfd_open", no_pidfds)

    async def main() -> None:
        sub = python("import sys; sys.stdin.read()", stdin=Subprocess.STREAM)
        exited: Future[int] = Future()
        sub.set_exit_callback(exited.set_result)
        waiter = sub._waiter
        assert waiter is not None
        Subprocess.uninitialize()
        sub.stdin.close()
        await asyncio.get_running_loop().run_in_executor(None, waiter.join, LIMIT)
        await asyncio.sleep(0)  # the waiter's report runs and is ignored
        assert not exited.done()
        Subprocess.initialize()
        assert await exited == 0

    run(main())


def test_child_of_a_closed_loop_is_dropped() -> None:
    async def main() -> None:
        sub = python("pass")
        closed = IOLoop(make_current=False)
        closed.close()
        sub.io_loop = closed
        sub.set_exit_callback(lambda returncode: None)
        assert sub.pid not in Subprocess._waiting
        assert sub._pidfd is None
        sub.proc.wait()

    run(main())
