"""Measure a copy of squall/ instead of the working tree.

The benchmark venv installs squall in editable mode, so every run measures
the working tree as it is at that moment, which moves while people work.
To measure a fixed commit (before/after an optimisation), extract it and
point the benchmarks at it:

    git archive COMMIT squall | tar -x -C /tmp/squall-COMMIT
    SQUALL_SNAPSHOT=/tmp/squall-COMMIT PYTHONPATH=benchmarks/snapshot \\
        .venv-bench/bin/python benchmarks/callgrind_hotpath.py

Every Python process started with that environment (servers, valgrind's
inner run) then imports squall from the copy: the editable install's import
hook is removed and the copy goes first on sys.path.
"""

import os
import sys

_snap = os.environ.get("SQUALL_SNAPSHOT")
if _snap:
    sys.meta_path[:] = [
        f for f in sys.meta_path if "editable" not in str(getattr(f, "__module__", ""))
    ]
    sys.path.insert(0, _snap)
