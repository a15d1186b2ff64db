"""Ending every process an app's test run started, its daemons included.

A suite's tests start servers of their own: JupyterHub's start
configurable-http-proxy and single-user servers, each with
``start_new_session=True``, so that killing the run's session (what the
harness did first) misses them, and they outlive the run holding ports.

On Linux the harness makes itself a child subreaper (``prctl``): a process
whose parent exits is then re-parented to the harness, not to init, and
stays findable. At the end of each run the harness ends the run's process
tree and every process that came back to it while the run went on:
SIGTERM, a bounded wait, then SIGKILL, and reaps them.

Linux only (``/proc``); elsewhere a run's leftovers are what the session
kill reaches.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections import defaultdict

_PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Have orphaned descendants re-parented to this process; False if the OS cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _table() -> dict[int, tuple[int, bool]]:
    """Every process: pid -> (parent pid, whether it is a zombie)."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # it ended meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = stat.rsplit(b")", 1)[-1].split()
        if len(fields) >= 2:
            table[int(name)] = (int(fields[1]), fields[0] == b"Z")
    return table


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (zombies included)."""
    return {p for p, (parent, _) in _table().items() if parent == pid}


def run_tree(run_pid: int, before: set[int]) -> set[int]:
    """The living processes of a run: ``run_pid``'s tree, and the trees of
    this process's children that were not there before the run (orphans of
    the run re-parented to us). One reading of /proc, so that a process
    re-parented meanwhile is not missed between two readings."""
    table = _table()
    kids: dict[int, list[int]] = defaultdict(list)
    for pid, (parent, _) in table.items():
        kids[parent].append(pid)
    roots = {run_pid, *(set(kids.get(os.getpid(), [])) - before)}
    found: set[int] = set()
    todo = [r for r in roots if r in table]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo += kids.get(pid, [])
    return {p for p in found if not table[p][1]}


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return f"{pid}"
    words = [a.decode(errors="replace") for a in argv if a][:4]
    return f"{pid} {' '.join(words)[:100]}"


def end_run(run_pid: int, before: set[int], grace: float = 3.0) -> list[str]:
    """End what a run left: ``run_pid``'s tree and processes re-parented to us since.

    ``before`` is this process's children when the run started (they are not
    the run's). Returns a description of each process that had to be ended.
    """
    me = os.getpid()
    ended: list[str] = []
    for _ in range(5):  # a process that forks while it is being ended: a few rounds
        living = run_tree(run_pid, before)
        if not living:
            break
        ended += [describe(p) for p in sorted(living)]
        _signal_all(living, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and living & run_tree(run_pid, before):
            _reap(children(me) - before)
            time.sleep(0.05)
        _signal_all(living & run_tree(run_pid, before), signal.SIGKILL)
        _reap(children(me) - before)
    _reap(children(me) - before)
    return ended


def _signal_all(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _reap(pids: set[int]) -> None:
    """Collect the exit status of those of ``pids`` that are our children and ended."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
