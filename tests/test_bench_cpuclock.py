"""benchmarks/cpuclock.py: another process's CPU time, read to the nanosecond."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import cpuclock  # noqa: E402

# A child that spends CPU until its own clock passes each target, says how
# much it used, and waits on stdin (using nothing) until told to go on.
_SPENDER = """
import sys, time
for target in map(float, sys.argv[1:]):
    while time.process_time() < target:
        pass
    print(repr(time.process_time()), flush=True)
    sys.stdin.readline()
"""


@pytest.fixture
def spender():
    children = []

    def start(*targets: float) -> subprocess.Popen[str]:
        child = subprocess.Popen(
            [sys.executable, "-c", _SPENDER, *map(str, targets)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()


def test_the_reading_is_the_processs_own_clock_not_its_ticks(spender):
    # Three readings of a waiting child, each within 2 ms of what the child
    # read of itself: ticks (10 ms) would land that close about one time
    # in five each.
    targets = (0.1234, 0.1567, 0.1891)
    child = spender(*targets)
    for target in targets:
        own = float(child.stdout.readline())
        assert own >= target
        read = cpuclock.cpu_seconds(child.pid)
        assert abs(read - own) < 0.002, (read, own, cpuclock.tick_cpu_seconds(child.pid))
        child.stdin.write("\n")
        child.stdin.flush()


def test_without_the_clock_the_ticks_are_read(spender, monkeypatch):
    child = spender(0.05)
    child.stdout.readline()

    def refused(clock: int) -> float:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(time, "clock_gettime", refused)
    assert cpuclock.cpu_seconds(child.pid) == cpuclock.tick_cpu_seconds(child.pid)


def test_a_process_that_is_gone_is_an_error():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    with pytest.raises(OSError):
        cpuclock.cpu_seconds(child.pid)


# A parent that spends CPU, starts a spender child (sharing its stdin and
# stdout), says so and waits for it.
_PARENT = """
import subprocess, sys, time
while time.process_time() < 0.08:
    pass
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], "0.13"])
print("child", child.pid, flush=True)
print("parent", repr(time.process_time()), flush=True)
child.wait()
"""


def test_a_tree_is_charged_for_the_parent_and_its_child():
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _SPENDER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [parent.stdout.readline().split() for _ in range(3)]
        said = {line[0]: line[1] for line in lines if len(line) == 2}
        child_own = float([line[0] for line in lines if len(line) == 1][0])
        child_pid = int(said["child"])
        parent_own = float(said["parent"])
        assert cpuclock.process_tree(parent.pid) == [parent.pid, child_pid]
        assert cpuclock.process_tree(child_pid) == [child_pid]
        alone = cpuclock.cpu_seconds(parent.pid)
        tree = cpuclock.tree_cpu_seconds(parent.pid)
        assert abs(alone - parent_own) < 0.005, (alone, parent_own)
        assert abs(tree - (parent_own + child_own)) < 0.01, (tree, parent_own, child_own)
    finally:
        parent.stdin.write("\n")
        parent.stdin.flush()
        parent.wait(10)
        parent.stdin.close()
        parent.stdout.close()


def test_a_tree_that_is_gone_is_empty_and_costs_nothing():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert cpuclock.process_tree(child.pid) == []
    assert cpuclock.tree_cpu_seconds(child.pid) == 0.0
