"""Settings for the whole suite.

Hypothesis's per-example deadline (200 ms by default) is a timing check: on a
loaded machine (CI, or two suites at once on two cores) a correct example can
take longer, and the property test fails with DeadlineExceeded. Our properties
are about results, not speed (speed is measured by the benchmarks), so the
deadline is off everywhere; the number of examples stays each test's own.

A test that leaves the ``tornado`` alias (squall.compat) installed, or
SQUALL_TORNADO_ALIAS set, changes what every later test in the process
imports and what its subprocesses inherit: the failure then shows in
whichever test happens to run next (test_compat checks that no alias is
installed). `_no_tornado_alias_left_behind` makes it fail in the test that
left it, and undoes it so that the tests after run as they would alone.

gen_test's default time limit is the hang guard (tests/_wait.py's
HANG_GUARD), not Tornado's 5 s: a limit only turns a hang into a failure.
"""

from __future__ import annotations

import collections
import gc
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import settings

from tests._wait import hang_guard_for_gen_test

settings.register_profile("squall", deadline=None)
settings.load_profile("squall")


def _chromium_sharing_the_network() -> None:
    # The suite's Chromium runs through tests/chromium_shared_net, which
    # holds the root network namespace's lock shared while the browser
    # lives: a namespace lab of a parallel stage adding its bridge or veth
    # links during a page load made Chromium drop it (ERR_NETWORK_CHANGED).
    # Set before the test modules read CHROMIUM at their import.
    wrapper = str(Path(__file__).with_name("chromium_shared_net"))
    real = (
        os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if real is None or real == wrapper or shutil.which("flock") is None:
        return
    os.environ["SQUALL_REAL_CHROMIUM"] = real
    # benchmarks/cluster/netlab.py's ROOT_NETNS_LOCK (tests/test_root_netns_lock.py
    # checks that they agree).
    os.environ["SQUALL_ROOT_NETNS_LOCK"] = os.path.join(
        tempfile.gettempdir(), "squall-root-netns.lock"
    )
    os.environ["CHROMIUM"] = wrapper


_chromium_sharing_the_network()

_ALIAS_ENV = "SQUALL_TORNADO_ALIAS"  # squall.cli.TORNADO_ALIAS_ENV


@pytest.fixture(autouse=True)
def _gen_test_hang_guard() -> Iterator[None]:
    # gen_test's default limit (Tornado's 5 s) is a hang guard: every test
    # gets HANG_GUARD instead (a test of the limit itself sets its own).
    # A MonkeyPatch of its own: the test's monkeypatch is undone before
    # _no_tornado_alias_left_behind looks, as it was without this fixture.
    with pytest.MonkeyPatch.context() as patch:
        hang_guard_for_gen_test(patch)
        yield


@pytest.fixture(autouse=True)
def _no_tornado_alias_left_behind() -> Iterator[None]:
    import squall.compat

    installed = squall.compat.installed()
    env = os.environ.get(_ALIAS_ENV)
    yield
    left = []
    if squall.compat.installed() and not installed:
        squall.compat.uninstall()
        left.append("squall.compat installed")
    if os.environ.get(_ALIAS_ENV) != env:
        left.append(f"{_ALIAS_ENV}={os.environ.get(_ALIAS_ENV)!r}")
        if env is None:
            del os.environ[_ALIAS_ENV]
        else:
            os.environ[_ALIAS_ENV] = env
    if left:
        pytest.fail(f"the test left {' and '.join(left)} behind (use a fixture that undoes it)")


# Files whose subject is the tree, not the build: the documentation site's
# pages and links, the layering rules and the underscore reads read from
# the sources, the apps harness's bookkeeping of another program's runs.
# Whichever squall is installed they read the same files and drive the
# same programs, so the compiled run (`make test-compiled`,
# SQUALL_EXPECT_COMPILED=1) leaves them to the pure run and `make test`
# stays within CI's 20 minutes. A name ending in "/" is a folder: pubsub/
# drives squall.pubsub and squall.resume's reader over Redis, NATS and the
# chaos checker's faults (170 s, most of it waiting on brokers), and
# neither serves nor fetches over HTTP or WebSocket, where the compiled
# modules run (tests/test_speedups.py checks what its files import).
SAME_ON_BOTH_BUILDS = (
    "test_docs_site.py",
    "test_layers.py",
    "test_underscore_reads.py",
    "apps/test_harness.py",
    "pubsub/",
)


FOLDERS_ON_BOTH_BUILDS = tuple(name for name in SAME_ON_BOTH_BUILDS if name.endswith("/"))


def pytest_configure(config: pytest.Config) -> None:
    # tests/test_docs_commands.py: -m "not slow" leaves it out of a local run.
    config.addinivalue_line("markers", "slow: minutes long (a fresh venv and servers)")
    # tests/pubsub/test_chaos.py: not slow, so make test runs it; -m chaos alone.
    config.addinivalue_line(
        "markers", "chaos: the delivery checker's short run (benchmarks/chaos.py)"
    )


# What `make test` runs once, on the compiled build, where its pure run
# (SQUALL_LEAVE_TO_COMPILED=1) leaves it: the system tests, which start
# `squall run`'s workers and supervisor, the demos and their browsers as a
# user does, and serve through the very modules the folders of unit tests
# (h1, h2, h3, ws, web, asgi, server, httputil, hostile) drive on both
# builds. They run on the build `pip install squall` gives wherever a C
# compiler is found. In the pure suite they took 135 s of CPU (cli 72 s,
# demos 63 s) and 25 s more of waiting, most of it on the critical path of
# `make test`; `make pytest` and `make coverage` still run them.
LEFT_TO_THE_COMPILED_RUN = ("cli/", "demos/")


def _left_out(path: str) -> Optional[str]:
    """Why the run leaves the test file at ``path`` (relative to tests/) to the other run."""
    if os.environ.get("SQUALL_EXPECT_COMPILED") == "1":
        if path in SAME_ON_BOTH_BUILDS or path.startswith(FOLDERS_ON_BOTH_BUILDS):
            return "the same on both builds: the pure run runs it"
    elif os.environ.get("SQUALL_LEAVE_TO_COMPILED") == "1":
        if path.startswith(LEFT_TO_THE_COMPILED_RUN):
            return "a system test: the compiled run runs it"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Deselected, not skipped: a skip prints a line per test under -rs.
    here = os.path.dirname(os.path.abspath(__file__))
    kept, dropped, left = [], [], collections.Counter[str]()
    for item in items:
        reason = _left_out(os.path.relpath(str(item.path), here).replace(os.sep, "/"))
        if reason is None:
            kept.append(item)
        else:
            dropped.append(item)
            left[reason] += 1
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
        config.stash[_LEFT] = dict(left)


_LEFT = pytest.StashKey[dict[str, int]]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for reason, n in config.stash.get(_LEFT, {}).items():
        terminalreporter.write_line(f"deselected {n} tests, {reason}")


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection made (the test modules, the items, hypothesis's
    # strategies: 300k objects) lives as long as the run; frozen, the
    # collector's full passes stop walking it. Tests that collect garbage
    # themselves (tests/test_resources.py: three full passes a test) paid
    # for it on every pass, more the later they ran: test_resources,
    # server/ and h1/ 29.6 -> 16.6 s of CPU run together, the cycles still
    # found among what the tests make.
    gc.collect()
    gc.freeze()
