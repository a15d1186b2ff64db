"""The CPU time another process has used, to the nanosecond (Linux).

The benchmarks charge a server the CPU it spent on a workload: the
difference of two readings. ``/proc/PID/stat``'s utime + stime count clock
ticks (100 a second here), so each reading is off by up to 10 ms. That is
nothing against seconds of wrk, and a lot against 5,000 WebSocket
handshakes at 50 us (250 ms, 25 ticks): such a row could only move in
steps of 4% (48 us against 50 or 52, never 49), so an A/B ratio of 0.92x
and one of 0.96x could be the same code.

`cpu_seconds` reads the process's CPU clock instead: the scheduler's own
sum of every thread's time on a CPU, which ``clock_gettime`` gives in
nanoseconds for any process the caller can see (Linux encodes a process's
clock id from its pid: ``~pid << 3``, and 2 for the scheduler's clock). It
falls back to the ticks where the clock cannot be read.

`tree_cpu_seconds` sums that clock over a process and its descendants
(`process_tree`): servers that serve from a child (Granian, Hypercorn, a
pre-forked Squall) are charged every process of their side.

Read by benchmarks/c10k (the handshake, delivery and long-poll rows, which
``make bench-ab`` reports too) and by the wrk benchmarks (run.py,
asgi_bench.py, h2_bench.py).
"""

from __future__ import annotations

import os
import time

__all__ = ["cpu_seconds", "process_tree", "tick_cpu_seconds", "tree_cpu_seconds"]

_SCHED = 2  # CPUCLOCK_SCHED: the time the scheduler ran the process


def process_clock(pid: int) -> int:
    """The clock id of process ``pid``'s CPU time (all its threads)."""
    return (~pid << 3) | _SCHED


def tick_cpu_seconds(pid: int) -> float:
    """utime + stime from ``/proc/PID/stat``, in whole clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds process ``pid`` has used, every thread, to the nanosecond.

    Raises:
        OSError: no such process (neither the clock nor ``/proc`` has it).
    """
    try:
        return time.clock_gettime(process_clock(pid))
    except OSError:
        # Not Linux's encoding, or a kernel that refuses it: the ticks.
        return tick_cpu_seconds(pid)


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants, parents before their children; a
    process that ends while the tree is read is left out (``pid`` too)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        children: list[int] = []
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as f:
                    children += [int(child) for child in f.read().split()]
        except OSError:
            continue  # ended meanwhile
        found.append(current)
        todo += children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds used by ``pid`` and its descendants now alive, every
    thread (`cpu_seconds` of each; one that ends meanwhile counts 0)."""
    total = 0.0
    for member in process_tree(pid):
        try:
            total += cpu_seconds(member)
        except OSError:
            continue  # ended meanwhile
    return total
