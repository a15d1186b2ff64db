"""Runs a benchmark server with a few in-process counters a signal reads out.

Usage: python _stats.py OUT_FILE SCRIPT PORT

On SIGUSR1 the server appends one line to OUT_FILE: the garbage collector's
collections per generation and the seconds spent in them (counted by a
``gc.callbacks`` entry), and ``sys.getallocatedblocks()``, the interpreter's
live small-object blocks (a proxy for the object count that allocates
nothing: ``gc.get_objects()`` would build a list of a megabyte, and freeing
that changes the very malloc state benchmarks/asyncio_loop.py looks at).
Everything else it reports comes from /proc, outside the process.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

_gc_time = [0.0, 0.0, 0.0]
_gc_started = 0.0


def _on_gc(phase: str, info: dict[str, int]) -> None:
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    else:
        _gc_time[info["generation"]] += time.perf_counter() - _gc_started


def _snapshot(out: str) -> None:
    stats = gc.get_stats()
    fields = [
        *(str(s["collections"]) for s in stats),
        *(f"{t:.6f}" for t in _gc_time),
        str(sys.getallocatedblocks()),
    ]
    with open(out, "a") as f:
        f.write(" ".join(fields) + "\n")


def main() -> None:
    out, script, port = sys.argv[1:4]
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR1, lambda signum, frame: _snapshot(out))
    sys.argv = [script, port]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    with open(script) as f:
        code = compile(f.read(), script, "exec")
    exec(code, {"__name__": "__main__", "__file__": script})


if __name__ == "__main__":
    main()
