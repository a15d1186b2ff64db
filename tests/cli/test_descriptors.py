"""``squall run`` raises its soft descriptor limit to the hard one, for its
workers too: a service started with systemd's default soft limit (1024)
otherwise stops accepting at about a thousand open connections."""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path

import pytest

from ._proc import Squall

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/PID/limits"
)

# python -c in place of -m squall: the soft limit lowered to 256 first, as a
# service manager would hand it over, then the runner as `python -m squall`.
_LOWERED = (
    "-c",
    "import resource, runpy, sys; "
    "resource.setrlimit(resource.RLIMIT_NOFILE, "
    "(256, resource.getrlimit(resource.RLIMIT_NOFILE)[1])); "
    "sys.argv[0] = 'squall'; runpy.run_module('squall', run_name='__main__')",
)


def _soft_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError(f"no open files limit for {pid}")


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(workers: str) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit leaves nothing to raise")
    with Squall(
        "sample_apps:app", "--bind", "127.0.0.1:0", "--workers", workers, python_args=_LOWERED
    ) as squall:
        if workers == "1":
            squall.expect("serving")
            serving = [squall.proc.pid]
        else:
            for _ in range(2):
                squall.expect(r"Worker \d+ ready")
            serving = _children(squall.proc.pid)
            assert len(serving) == 2
        for pid in [squall.proc.pid, *serving]:
            assert _soft_limit(pid) > 256
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
