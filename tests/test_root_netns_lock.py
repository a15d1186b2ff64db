"""The root network namespace's lock between the namespace lab and Chromium.

A lab adds and removes links of the root namespace (its bridge, the outside
ends of its veth pairs); Chromium drops a page load that such a change lands
in (net::ERR_NETWORK_CHANGED, seen in make test's compiled stage while the
pure stage's lab tests ran). The suite's Chromium holds the lock shared
(tests/chromium_shared_net, set up by tests/conftest.py), a lab takes it
alone around its changes (benchmarks/cluster/netlab.py).
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ROOT / "tests" / "chromium_shared_net"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "_netlab_lock", ROOT / "benchmarks" / "cluster" / "netlab.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


netlab = _load()


def test_the_suite_and_the_lab_name_the_same_lock() -> None:
    if os.environ.get("CHROMIUM") != str(WRAPPER):
        pytest.skip("no Chromium here, or flock missing: CHROMIUM is not wrapped")
    assert os.environ["SQUALL_ROOT_NETNS_LOCK"] == netlab.ROOT_NETNS_LOCK


def test_a_lab_change_waits_for_a_browser_holding_the_lock(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A lock of the test's own: the suite's Chromium (another stage of make
    # test, running at the same time) holds the real one shared while it
    # loads a page, which made the second, unheld change below wait too.
    monkeypatch.setattr(netlab, "ROOT_NETNS_LOCK", str(tmp_path / "root-netns.lock"))
    monkeypatch.setattr(netlab, "ROOT_NETNS_WAIT", 0.3)
    # The lab's waits for the lock, counted (each still made).
    waits: list[float] = []
    sleep = time.sleep

    def counted(seconds: float) -> None:
        waits.append(seconds)
        sleep(seconds)

    monkeypatch.setattr(netlab.time, "sleep", counted)
    fd = os.open(netlab.ROOT_NETNS_LOCK, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        start = time.monotonic()
        with netlab.changing_root_namespace():
            waited = time.monotonic() - start
        assert waited >= 0.3
        assert waits
    finally:
        os.close(fd)
    # Nobody holds it now: the lab takes it alone without waiting.
    del waits[:]
    with netlab.changing_root_namespace():
        assert waits == []
        other = os.open(netlab.ROOT_NETNS_LOCK, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
        finally:
            os.close(other)


@pytest.mark.skipif(shutil.which("flock") is None, reason="flock (util-linux) is not installed")
def test_the_wrapped_browser_holds_the_lock_shared_while_it_runs(tmp_path: Path) -> None:
    lock = tmp_path / "root-netns.lock"
    # The "browser" is a shell: while it runs, another may share the lock
    # but none may take it alone.
    env = dict(os.environ, SQUALL_ROOT_NETNS_LOCK=str(lock), SQUALL_REAL_CHROMIUM="/bin/sh")
    script = f'flock -n -s "{lock}" true; echo shared=$?; flock -n -x "{lock}" true; echo alone=$?'
    out = subprocess.run(
        [str(WRAPPER), "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["shared=0", "alone=1"]
    # Gone with it.
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
