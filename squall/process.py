"""Worker processes for pre-fork servers, and child processes with stream pipes.

- `fork_processes` forks workers that share listening sockets, restarts
  those that die abnormally, and returns each worker's `task_id`.
- `Subprocess` is `subprocess.Popen` whose pipes can be `~squall.iostream.PipeIOStream`\\s
  and whose exit is reported on the IOLoop.

How a child's exit is noticed: Tornado installs a process-wide SIGCHLD
handler. Squall watches each child on its own instead, which needs no
signal handler and none of asyncio's child watchers (deprecated in Python
3.12): where the system has pidfds (Linux 5.3+, ``os.pidfd_open``), the
child's pidfd is watched on the IOLoop and becomes readable when the child
exits; elsewhere a daemon thread waits for the child and wakes the IOLoop.
Either way the exit status is collected with ``Popen.poll``, so a
``Popen.wait()`` or ``poll()`` made elsewhere on ``Subprocess.proc`` stays
correct. `Subprocess.initialize` and `Subprocess.uninitialize` keep
Tornado's names and meaning: exit callbacks run only while initialized.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any, Optional

from squall.concurrent import (
    Future,
    future_set_exception_unless_cancelled,
    future_set_result_unless_cancelled,
)
from squall.ioloop import IOLoop
from squall.iostream import PipeIOStream
from squall.log import gen_log

__all__ = ["cpu_count", "fork_processes", "task_id", "Subprocess", "CalledProcessError"]

# Re-exported because Tornado's process module names it.
CalledProcessError = subprocess.CalledProcessError

# How many abnormal child exits fork_processes tolerates by default.
_DEFAULT_MAX_RESTARTS = 100

_task_id: Optional[int] = None


def cpu_count() -> int:
    """Returns the number of processors this process may run on.

    CPU affinity is honoured where the system reports it (a container or
    ``taskset`` limited to two cores gives 2). If nothing can be detected,
    an error is logged and 1 is returned.
    """
    if hasattr(os, "sched_getaffinity"):
        try:
            return len(os.sched_getaffinity(0))
        except OSError:
            pass
    count = os.cpu_count()
    if count:
        return count
    gen_log.error("Could not detect the number of processors; assuming 1")
    return 1


def task_id() -> Optional[int]:
    """Returns this worker's task id from `fork_processes`, or None if not forked."""
    return _task_id


def fork_processes(num_processes: Optional[int], max_restarts: Optional[int] = None) -> int:
    """Forks worker processes and supervises them from the parent.

    Each worker gets a task id from 0 to ``num_processes - 1``, returned here
    in the worker and later available from `task_id`. The parent never
    returns: it waits for the workers, starts a replacement (with the same
    task id) for each that exits with a non-zero status or is killed by a
    signal, and calls ``sys.exit(0)`` once every worker has exited cleanly.

    Call this before creating an event loop: a forked child must not share
    its parent's loop (or its epoll/kqueue descriptor). Sockets bound before
    the fork are shared by all workers. Python reseeds `random` in each
    child by itself.

    Args:
        num_processes: how many workers; None or a number <= 0 means
            `cpu_count`.
        max_restarts: the most replacements over the parent's lifetime
            before giving up; default 100.

    Returns:
        The task id, in a worker.

    Raises:
        RuntimeError: on Windows (no ``fork``), if called again in a process
            that already forked, or (in the parent) after too many restarts.
    """
    if sys.platform == "win32":
        raise RuntimeError("fork_processes needs os.fork, which Windows does not have")
    if _task_id is not None:
        raise RuntimeError(f"fork_processes was already called: this is worker {_task_id}")
    if max_restarts is None:
        max_restarts = _DEFAULT_MAX_RESTARTS
    if num_processes is None or num_processes <= 0:
        num_processes = cpu_count()
    gen_log.info("Starting %d processes", num_processes)
    children: dict[int, int] = {}
    for worker in range(num_processes):
        if _spawn(worker, children):
            return worker
    restarts = 0
    while children:
        pid, status = os.wait()
        worker = children.pop(pid, -1)
        if worker < 0:
            continue  # not one of ours (a grandchild reparented, say)
        if os.WIFSIGNALED(status):
            gen_log.warning(
                "child %d (pid %d) killed by signal %d, restarting",
                worker,
                pid,
                os.WTERMSIG(status),
            )
        elif os.WEXITSTATUS(status) != 0:
            gen_log.warning(
                "child %d (pid %d) exited with status %d, restarting",
                worker,
                pid,
                os.WEXITSTATUS(status),
            )
        else:
            gen_log.info("child %d (pid %d) exited normally", worker, pid)
            continue
        restarts += 1
        if restarts > max_restarts:
            # Tornado's wording, without the count (always max_restarts + 1):
            # a supervisor may match the text.
            raise RuntimeError("Too many child restarts, giving up")
        if _spawn(worker, children):
            return worker
    # Every worker finished cleanly; the parent has nothing left to do.
    sys.exit(0)


def _spawn(worker: int, children: dict[int, int]) -> bool:
    """Forks one worker; True in the child, False in the parent."""
    global _task_id
    pid = os.fork()
    if pid == 0:
        _task_id = worker
        return True
    children[pid] = worker
    return False


def _pidfd_open(pid: int) -> int:
    """``os.pidfd_open``; a separate name so tests can take pidfds away."""
    return os.pidfd_open(pid)


class Subprocess:
    """`subprocess.Popen` with IOLoop-friendly pipes and exit notification.

    Pass ``stdin``, ``stdout`` or ``stderr=Subprocess.STREAM`` to get that
    pipe as a `~squall.iostream.PipeIOStream` in the attribute of the same name; every other
    argument goes to `subprocess.Popen` as it is. An attribute not asked
    for as a stream holds what ``Popen`` made of it (a file or None).

    Attributes:
        proc: the `subprocess.Popen` object.
        pid: the child's process id.
        returncode: None until the exit is reported to `set_exit_callback`
            or `wait_for_exit`; then the exit status, or ``-N`` if signal N
            killed the child.
        stdin: the child's standard input, as described above.
        stdout: its standard output, likewise.
        stderr: its standard error, likewise.
    """

    STREAM = object()

    _initialized = False
    # The children whose exit is awaited, by pid.
    _waiting: dict[int, Subprocess] = {}

    # Typed loosely on purpose: each is a PipeIOStream, a file or None,
    # depending on the arguments, and callers know which they asked for.
    stdin: Any
    stdout: Any
    stderr: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.io_loop = IOLoop.current()
        parent_ends: dict[str, int] = {}
        child_ends: list[int] = []
        try:
            for name in ("stdin", "stdout", "stderr"):
                if kwargs.get(name) is Subprocess.STREAM:
                    read_fd, write_fd = os.pipe()
                    if name == "stdin":
                        child_ends.append(read_fd)
                        parent_ends[name] = write_fd
                    else:
                        child_ends.append(write_fd)
                        parent_ends[name] = read_fd
                    kwargs[name] = child_ends[-1]
            self.proc = subprocess.Popen(*args, **kwargs)
        except BaseException:
            for fd in parent_ends.values():
                os.close(fd)
            raise
        finally:
            # The child has its copies now (or never will).
            for fd in child_ends:
                os.close(fd)
        for name in ("stdin", "stdout", "stderr"):
            if name in parent_ends:
                setattr(self, name, PipeIOStream(parent_ends[name]))
            else:
                setattr(self, name, getattr(self.proc, name))
        self.pid: int = self.proc.pid
        self.returncode: Optional[int] = None
        self._exit_callback: Optional[Callable[[int], None]] = None
        self._pidfd: Optional[int] = None
        self._waiter: Optional[threading.Thread] = None

    def set_exit_callback(self, callback: Callable[[int], None]) -> None:
        """Runs ``callback(returncode)`` on the IOLoop when the child exits.

        Replaces any earlier callback. Calls `initialize` if needed. If the
        exit was already reported, the callback runs on the next loop
        iteration.
        """
        self._exit_callback = callback
        Subprocess.initialize()
        if self.returncode is not None:
            self._deliver()
            return
        self._waiting[self.pid] = self
        self._watch()

    def wait_for_exit(self, raise_error: bool = True) -> Future[int]:
        """Returns a Future resolving to the return code once the child exits.

        Uses `set_exit_callback`, replacing any callback set there.

        Args:
            raise_error: fail the Future with `subprocess.CalledProcessError`
                if the return code is not 0.
        """
        future: Future[int] = Future()

        def on_exit(returncode: int) -> None:
            if returncode != 0 and raise_error:
                error = CalledProcessError(returncode, self.proc.args)
                future_set_exception_unless_cancelled(future, error)
            else:
                future_set_result_unless_cancelled(future, returncode)

        self.set_exit_callback(on_exit)
        return future

    @classmethod
    def initialize(cls) -> None:
        """Starts reporting child exits (safe to call more than once).

        Tornado installs its SIGCHLD handler here; Squall needs none (see the
        module docstring), so this resumes watching the children that
        `uninitialize` stopped watching. `set_exit_callback` calls it.
        """
        if cls._initialized:
            return
        cls._initialized = True
        for subproc in list(cls._waiting.values()):
            subproc._watch()

    @classmethod
    def uninitialize(cls) -> None:
        """Stops reporting child exits; exit callbacks wait for `initialize`."""
        if not cls._initialized:
            return
        cls._initialized = False
        for subproc in list(cls._waiting.values()):
            subproc._unwatch()

    def _watch(self) -> None:
        if self._pidfd is not None or self._waiter is not None:
            return
        if self.io_loop.asyncio_loop.is_closed():  # type: ignore[attr-defined]
            # The child's IOLoop is gone (a finished test, say): nobody is
            # left to tell, so stop waiting for this child.
            self._waiting.pop(self.pid, None)
            return
        try:
            pidfd = _pidfd_open(self.pid)
        except ProcessLookupError:
            # Already reaped (by a Popen.wait elsewhere): poll knows the status.
            self.io_loop.add_callback(self._check)
            return
        except (AttributeError, OSError):
            # No pidfds on this system (or kernel): wait in a thread.
            waiter = threading.Thread(
                target=self._wait_in_thread, name=f"squall-wait-{self.pid}", daemon=True
            )
            self._waiter = waiter
            waiter.start()
            return
        self.io_loop.add_handler(pidfd, self._on_pidfd_ready, IOLoop.READ)
        self._pidfd = pidfd

    def _unwatch(self) -> None:
        pidfd = self._pidfd
        if pidfd is not None:
            self._pidfd = None
            self.io_loop.remove_handler(pidfd)
            os.close(pidfd)
        # A waiter thread cannot be stopped; _check ignores what it reports
        # while uninitialized.
        self._waiter = None

    def _wait_in_thread(self) -> None:
        # Popen.wait reaps under Popen's own lock, so it cannot race with a
        # poll on the loop thread.
        self.proc.wait()
        self.io_loop.add_callback(self._check)

    def _on_pidfd_ready(self, fd: Any, events: int) -> None:
        self._check()

    def _check(self) -> None:
        if not self._initialized or self._waiting.get(self.pid) is not self:
            return
        returncode = self.proc.poll()
        if returncode is None:
            return
        self._unwatch()
        del self._waiting[self.pid]
        self.returncode = returncode
        self._deliver()

    def _deliver(self) -> None:
        callback = self._exit_callback
        if callback is not None:
            self._exit_callback = None
            # Through the loop, so that an exception in it is logged there.
            self.io_loop.add_callback(callback, self.returncode)
