"""Proving a cost linear by its growth, not by the clock.

A test that compares one run's time with a fixed bound fails on a busy
machine and passes slow quadratic code on a fast one. `growth` runs the
same work at size n and at 4n and returns the ratio of their CPU times
(this thread's, per call, the least of many short runs): about 4 for linear work,
about 16 for quadratic, whatever the machine's speed or load, which
scales both runs alike. `assert_linear` fails above 8, halfway (on a log
scale) between the two, in each of three measures.

The thread's clock, not the process's: a test suite leaves threads
behind (resolvers, executors, servers run beside a loop), and the
process's clock counts their CPU too, in bursts that land in the larger
run's longer window more often than in the smaller one's. With a busy
thread beside it, the process's clock measured a linear parse at 3.3-7.2x
and this thread's at 2.3-4.4x.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FACTOR = 4
# A ratio past this is not linear: 2x linear's, half quadratic's.
LIMIT = 2 * FACTOR


def _per_call(func: Callable[[], object], loops: int, windows: int) -> float:
    """The least CPU time of one call, over ``windows`` runs of ``loops`` calls."""
    best = float("inf")
    # The collector runs when allocations pile up, which the larger run
    # does more often: kept out, so that it does not tilt the ratio.
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(windows):
            start = time.thread_time()
            for _ in range(loops):
                func()
            best = min(best, time.thread_time() - start)
    finally:
        if enabled:
            gc.enable()
    return best / loops


# The length of one measured window, in CPU seconds: long against the
# clock's own cost, short against the gaps between interruptions.
_WINDOW = 0.0005
_WINDOWS = 11
_MAX_LOOPS = 4096


def growth(make: Callable[[int], Callable[[], object]], n: int) -> float:
    """CPU time of ``make(FACTOR * n)()`` over that of ``make(n)()``.

    ``make(size)`` builds the input outside the timing and returns the
    work to time. Work at ``n`` too quick to measure is repeated rather
    than made larger: inputs of megabytes leave the CPU's caches, and the
    larger run then pays for memory as well as for steps (a linear scan
    of 2.5 MB measured 12x the time of one of 640 KB).

    Each size is measured in many short windows of about the same length
    (the larger size repeated a quarter as often), and the least per call
    counts. An interruption (another process's turn on the core, the
    hypervisor's, a page fault) spoils the window it lands in, and the
    least of eleven is one it missed. Windows of 2 ms and more, three to
    a size, were too few: on a loaded machine every window of the larger
    size was spoiled while one of the smaller size's was not, and a
    linear parse measured 9.7x, 10.3x and 9.7x.
    """
    small = make(n)
    small()  # warm: imports, caches, first allocations
    loops = 1
    small_cpu = _per_call(small, loops, _WINDOWS)
    while small_cpu * loops < _WINDOW and loops < _MAX_LOOPS:
        loops *= FACTOR
        small_cpu = _per_call(small, loops, _WINDOWS)
    large = make(FACTOR * n)
    large()
    large_cpu = _per_call(large, max(1, loops // FACTOR), _WINDOWS)
    return large_cpu / max(small_cpu, 1e-9)


def assert_linear(make: Callable[[int], Callable[[], object]], n: int, trials: int = 3) -> None:
    """Fail if the work grows faster than linearly from ``n`` to 4n.

    The least ratio of up to ``trials`` measures counts: another process
    that evicts this one's caches midway makes one measure high, never
    all of them, while quadratic work measures ~16x every time.
    """
    ratios = []
    for _ in range(trials):
        ratios.append(growth(make, n))
        if ratios[-1] < LIMIT:
            return
    raise AssertionError(
        f"cost grew {min(ratios):.1f}x for {FACTOR}x the input (linear: ~{FACTOR}x); "
        f"measures: {', '.join(f'{r:.1f}' for r in ratios)}"
    )
