"""Proving a cost linear by its growth, not by the clock.

A test that compares one run's time with a fixed bound fails on a busy
machine and passes slow quadratic code on a fast one. `growth` runs the
same work at size n and at 4n and returns the ratio of their CPU times
(this process's, the least of a few runs each): about 4 for linear work,
about 16 for quadratic, whatever the machine's speed or load, which
scales both runs alike. `assert_linear` fails above 8, halfway (on a log
scale) between the two, in each of three measures.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

FACTOR = 4
# A ratio past this is not linear: 2x linear's, half quadratic's.
LIMIT = 2 * FACTOR


def _cpu(func: Callable[[], object], repeat: int, loops: int = 1) -> float:
    best = float("inf")
    # The collector runs when allocations pile up, which the larger run
    # does more often: kept out, so that it does not tilt the ratio.
    enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.process_time()
            for _ in range(loops):
                func()
            best = min(best, time.process_time() - start)
    finally:
        if enabled:
            gc.enable()
    return best


# The smaller run's least CPU time: below it, one cache miss or page
# fault is a visible part of the measure.
_MIN_CPU = 0.002
_MAX_LOOPS = 4096


def growth(make: Callable[[int], Callable[[], object]], n: int, repeat: int = 3) -> float:
    """CPU time of ``make(FACTOR * n)()`` over that of ``make(n)()``.

    ``make(size)`` builds the input outside the timing and returns the
    work to time. Work at ``n`` too quick to measure is repeated (the same
    number of times at both sizes) rather than made larger: inputs of
    megabytes leave the CPU's caches, and the larger run then pays for
    memory as well as for steps (a linear scan of 2.5 MB measured 12x the
    time of one of 640 KB).
    """
    small = make(n)
    small()  # warm: imports, caches, first allocations
    loops = 1
    small_cpu = _cpu(small, repeat)
    while small_cpu < _MIN_CPU and loops < _MAX_LOOPS:
        loops *= 4
        small_cpu = _cpu(small, repeat, loops)
    large = make(FACTOR * n)
    large()
    return _cpu(large, repeat, loops) / max(small_cpu, 1e-6)


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
