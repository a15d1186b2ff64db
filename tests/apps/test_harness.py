"""compat/apps/run.py: a suite killed mid-run still counts what ran, and the rest runs."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

APPS = Path(__file__).resolve().parent.parent.parent / "compat" / "apps"


def _harness(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # run.py puts its folder on sys.path itself (so the removal of our own
    # entry left one behind): the whole list is restored after the test.
    monkeypatch.syspath_prepend(str(APPS))
    spec = importlib.util.spec_from_file_location("apps_run", APPS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_killed_by_a_plugin_counts_what_ran_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only the harness's own plugin (loaded by -p): a fast start.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    # The second test ends the process the way a plugin's hard timeout does
    # (os._exit, no report, no junit file).
    (tmp_path / "test_suite.py").write_text(
        "import os\n\n"
        "def test_a():\n    pass\n\n"
        "def test_b():\n    os._exit(3)\n\n"
        "def test_c():\n    pass\n"
    )
    run = _harness(monkeypatch)
    app = run.App(name="fake", version="0", pytest_args=("test_suite.py",), suite_timeout=120)
    result = run.run_suite(app, "tornado", Path(sys.executable), tmp_path, tmp_path, None, [])
    outcomes = {key.split("::")[-1]: value["outcome"] for key, value in result["outcomes"].items()}
    assert outcomes == {"test_a": "passed", "test_b": "error", "test_c": "passed"}
    b = next(v for k, v in result["outcomes"].items() if k.endswith("test_b"))
    assert "ended during this test" in b["message"]
    assert result["summary"]["resumed"] == 1 and not result["summary"]["timed_out"]


def test_per_file_runs_each_file_alone_so_a_hang_costs_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    tests = tmp_path / "suite"
    tests.mkdir()
    # The first file hangs in its second test (the file's time limit ends it);
    # the second file, and an option from pytest_args, must still be used.
    (tests / "test_hangs.py").write_text(
        "import threading\n\n"
        "def test_a():\n    pass\n\n"
        "def test_b():\n    threading.Event().wait()\n"
    )
    (tests / "test_after.py").write_text(
        "def test_c():\n    pass\n\ndef test_d():\n    pass\n\ndef test_skipped_by_k():\n    pass\n"
    )
    run = _harness(monkeypatch)
    app = run.App(
        name="fake",
        version="0",
        pytest_args=("suite", "-k", "not skipped_by_k"),
        per_file=True,
        file_timeout=10,
        suite_timeout=120,
    )
    assert run.test_files(app, tmp_path) == [["suite/test_after.py"], ["suite/test_hangs.py"]]
    result = run.run_suite(app, "tornado", Path(sys.executable), tmp_path, tmp_path, None, [])
    outcomes = {key.split("::")[-1]: value["outcome"] for key, value in result["outcomes"].items()}
    assert outcomes == {
        "test_c": "passed",
        "test_d": "passed",
        "test_a": "passed",
        "test_b": "error",
    }
    assert result["summary"]["files_timed_out"] == ["suite/test_hangs.py"]
    assert not result["summary"]["timed_out"]


def test_per_file_leaves_out_the_files_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest would collect a file named on its command line despite an
    # --ignore naming it: the harness must not name it.
    tests = tmp_path / "suite"
    tests.mkdir()
    for name in ("test_kept.py", "never_exits_test.py", "other_test.py"):
        (tests / name).write_text("def test_x():\n    pass\n")
    run = _harness(monkeypatch)
    app = run.App(
        name="fake",
        version="0",
        pytest_args=("--ignore=suite/never_exits_test.py", "suite"),
        per_file=True,
    )
    assert run.test_files(app, tmp_path) == [["suite/other_test.py"], ["suite/test_kept.py"]]


def test_packages_from_the_test_tree_are_installed_and_key_the_venvs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _harness(monkeypatch)
    plain = run.App(name="fake", version="0")
    app = run.App(name="fake", version="0", test_installs=("tests/a_template",))
    assert run.test_installs(app, tmp_path) == [str(tmp_path / "tests" / "a_template")]
    assert run.test_installs(plain, tmp_path) == []
    # A venv made without them is made again.
    assert run.setup_key(app, "python3") != run.setup_key(plain, "python3")


def test_an_app_whose_tests_are_in_its_package_runs_them_from_the_installed_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _harness(monkeypatch)
    app = run.App(
        name="fake", version="1.2", tests_installed=True, pytest_args=("--pyargs", "fake.tests")
    )
    workdir = run.empty_workdir(app, tmp_path)
    # pytest runs in an empty directory, so the package it imports is the
    # one pip installed from the index, not a copy beside the tests.
    assert workdir.is_dir() and not any(workdir.iterdir())
    assert run.install_spec(app, workdir) == "fake==1.2"
    assert run.install_spec(run.App(name="fake", version="1.2"), tmp_path) == str(tmp_path)
    assert run.split_args(app.pytest_args) == (["fake.tests"], ["--pyargs"])


def test_npm_commands_go_on_path_and_their_root_is_named_where_the_app_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = _harness(monkeypatch)
    bin_dir = tmp_path / "node" / "node_modules" / ".bin"
    env = {"PATH": "/usr/bin"}
    run.add_npm(run.App(name="fake", version="0", npm=("a-server",)), bin_dir, env)
    assert env == {"PATH": f"{bin_dir}{os.pathsep}/usr/bin"}
    app = run.App(name="fake", version="0", npm=("a-server",), npm_root_env="FAKE_ROOT")
    env = {"PATH": "/usr/bin"}
    run.add_npm(app, bin_dir, env)
    # The root holds node_modules, where such an app looks its packages up.
    assert env["FAKE_ROOT"] == str(tmp_path / "node")
    assert env["PATH"].startswith(f"{bin_dir}{os.pathsep}")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[-1].split()[0] != b"Z"
    except OSError:
        return False


_LEAKS = """
import subprocess, sys

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_server():
    p = subprocess.Popen(SLEEP, start_new_session=True)
    open(PIDS, "a").write(f"{p.pid}\\n")


def test_orphan():
    # A parent that starts a daemon and exits: the daemon is re-parented.
    code = (
        "import subprocess, sys\\n"
        f"p = subprocess.Popen({SLEEP!r}, start_new_session=True)\\n"
        f"open({PIDS!r}, 'a').write(str(p.pid) + ' ')\\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reaper reads /proc")
def test_servers_a_run_starts_in_sessions_of_their_own_end_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As JupyterHub starts its proxy and single-user servers: a session of
    # their own (the run's session kill misses them), and one of them is
    # orphaned by its parent exiting before the run ends.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pids = tmp_path / "pids"
    (tmp_path / "test_leaks.py").write_text(_LEAKS.replace("PIDS", repr(str(pids))))
    run = _harness(monkeypatch)
    app = run.App(name="fake", version="0", pytest_args=("test_leaks.py",), suite_timeout=60)
    started: list[int] = []
    try:
        result = run.run_suite(app, "tornado", Path(sys.executable), tmp_path, tmp_path, None, [])
        started = [int(line) for line in pids.read_text().split()]
        assert {k.split("::")[-1]: v["outcome"] for k, v in result["outcomes"].items()} == {
            "test_server": "passed",
            "test_orphan": "passed",
        }
        assert len(started) == 2
        assert [pid for pid in started if _alive(pid)] == []
        assert "ended 2 processes the run left" in (tmp_path / "tornado.log").read_text()
    finally:
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_the_harness_gives_its_runs_sigint_even_when_started_with_it_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An ignored signal stays ignored across exec: JupyterHub's servers would
    # then not stop on its SIGINT, and each stop waits out its timeout.
    run = _harness(monkeypatch)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        run._interruptible()
        probe = (
            "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
        )
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
        assert out.stdout.strip() == "True"
        with pytest.raises(SystemExit) as stopped:
            signal.raise_signal(signal.SIGTERM)
        assert stopped.value.code == 128 + signal.SIGTERM
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


_HANGS = """
import socket, subprocess, sys, threading

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_hangs():
    p = subprocess.Popen(SLEEP, start_new_session=True)
    with socket.create_connection(("127.0.0.1", PORT)) as told:
        told.sendall(f"{p.pid}\\n".encode())
    threading.Event().wait(60)
"""

_DRIVER = """
import sys
from pathlib import Path

sys.path.insert(0, APPS)
import run

run._interruptible()
app = run.App(name="fake", version="0", pytest_args=("test_hangs.py",), suite_timeout=60)
run.run_suite(app, "tornado", Path(sys.executable), Path(TMP), Path(TMP), None, [])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the reaper reads /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_harness_ends_the_servers_of_its_run(tmp_path: Path, sig: int) -> None:
    # The run's test tells its server's pid over a connection to this
    # listener: the harness is signalled once that has arrived.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    (tmp_path / "test_hangs.py").write_text(_HANGS.replace("PORT", str(port)))
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER.replace("APPS", repr(str(APPS))).replace("TMP", repr(str(tmp_path))))
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    harness = subprocess.Popen([sys.executable, str(driver)], env=env, stderr=subprocess.PIPE)
    assert harness.stderr is not None
    started: list[int] = []
    said = b""
    try:
        deadline = time.monotonic() + 30  # a hang guard: the wait ends on an event
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "the run's test never started its server"
            ready, _, _ = select.select([listener, harness.stderr], [], [], left)
            if listener in ready:
                break
            if ready:
                # The harness wrote to stderr, or ended (EOF) before its test told.
                chunk = os.read(harness.stderr.fileno(), 65536)
                assert chunk, "the harness ended first: " + said.decode(errors="replace")
                said += chunk
        told, _ = listener.accept()
        with told, told.makefile("rb") as lines:
            started = [int(lines.readline())]
        harness.send_signal(sig)
        _, err = harness.communicate(timeout=30)
        err = said + err
        assert harness.returncode != 0
        assert (b"KeyboardInterrupt" if sig == signal.SIGINT else b"SystemExit") in err or (
            harness.returncode == 128 + sig
        )
        assert [pid for pid in started if _alive(pid)] == []
        assert "ended 1 processes the run left" in (tmp_path / "tornado.log").read_text()
    finally:
        listener.close()
        if harness.poll() is None:
            harness.kill()
            harness.wait()
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_an_app_that_cannot_be_fetched_does_not_stop_the_others(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _harness(monkeypatch)
    tried: list[str] = []

    def unreachable(app: Any, *args: object) -> Path:
        tried.append(app.name)
        raise SystemExit(f"command failed (128): git clone {app.name}")

    monkeypatch.setattr(run, "fetch_tests", unreachable)
    monkeypatch.setattr(run, "fetch_sdist", unreachable)
    names = sorted(run.APPS)[:2]
    argv = ["--squall-only", "--cache", str(tmp_path)]
    for name in names:
        argv += ["--app", name]
    assert run.main(argv) == 1
    assert tried == names
    err = capsys.readouterr()
    assert f"not run (sources not fetched): {', '.join(names)}" in err.out + err.err


def test_tests_repos_names_a_directory_of_clones_for_every_app(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # One directory of clones, as a mirror keeps them (owner+name, bare or
    # with the git directory in repo/): each app with a tests_repo is given
    # its clone, one given by --tests-repo wins, one not there is cloned.
    run = _harness(monkeypatch)
    with_repo = sorted({app.tests_repo for app in run.APPS.values() if app.tests_repo})
    assert len(with_repo) >= 3
    bare, tree, given = with_repo[:3]
    repos = tmp_path / "repos"
    subprocess.run(
        ["git", "init", "-q", "--bare", str(repos / bare.replace("/", "+") / "repo")], check=True
    )
    subprocess.run(["git", "init", "-q", str(repos / tree.replace("/", "+"))], check=True)
    (repos / given.replace("/", "+")).mkdir(parents=True)
    (repos / "not-a-clone+at-all").mkdir()
    seen: dict[str, dict[str, str]] = {}

    def fetched(app: Any, cache: Path, local: dict[str, str]) -> Path:
        seen[app.name] = dict(local)
        raise SystemExit("stop here")

    monkeypatch.setattr(run, "fetch_tests", fetched)
    monkeypatch.setattr(run, "fetch_sdist", fetched)
    app = next(a for a in run.APPS.values() if a.tests_repo == bare)
    argv = ["--squall-only", "--cache", str(tmp_path / "cache"), "--app", app.name]
    argv += ["--tests-repos", str(repos), "--tests-repo", f"{given}=/elsewhere"]
    assert run.main(argv) == 1
    local = seen[app.name]
    assert local[bare] == str(repos / bare.replace("/", "+") / "repo")
    assert local[tree] == str(repos / tree.replace("/", "+"))
    assert local[given] == "/elsewhere"
    assert len(local) == 3


def _outcome(outcome: str, message: str = "") -> dict[str, Any]:
    return {"outcome": outcome, "when": "call", "message": message, "longrepr": message}


@pytest.mark.parametrize(
    ("lost", "message", "status"),
    [
        # The loss tests/COMPAT.md lists, with the failure it lists: printed, no failure.
        ("tests/basic_test.py::UniqueTermTests::test_max_terminals",
         "TypeError: 'NoneType' object is not subscriptable", 0),
        # The same test failing another way is a loss like any other.
        ("tests/basic_test.py::UniqueTermTests::test_max_terminals",
         "AssertionError: assert 3 == 2", 2),
        # So is another test failing the listed way.
        ("tests/basic_test.py::UniqueTermTests::test_single_process",
         "TypeError: 'NoneType' object is not subscriptable", 2),
    ],
)  # fmt: skip
def test_a_loss_listed_as_timing_dependent_with_its_failure_does_not_fail_the_run(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    lost: str,
    message: str,
    status: int,
) -> None:
    run = _harness(monkeypatch)
    listed = run.timing_listed(run.COMPAT.read_text())
    assert {item.app for item in listed} <= set(run.APPS)
    assert any(item.test == lost.replace("single_process", "max_terminals") for item in listed)
    app = run.APPS["terminado"]
    work = tmp_path / f"{app.name}-{app.version}" / "py{}.{}".format(*sys.version_info[:2])
    work.mkdir(parents=True)
    others = {f"tests/basic_test.py::T::test_{n}": _outcome("passed") for n in range(3)}
    tornado = {**others, lost: _outcome("passed")}
    squall = {**others, lost: _outcome("failed", message)}
    for side, outcomes in (("tornado", tornado), ("squall", squall)):
        saved = {"summary": None, "outcomes": outcomes}
        (work / f"{side}-outcomes.json").write_text(json.dumps(saved))
    argv = ["--report", "--app", app.name, "--cache", str(tmp_path)]
    assert run.main(argv) == status
    out = capsys.readouterr().out
    said = "lost as tests/COMPAT.md lists, timing-dependent (details:"
    assert (said in out) == (status == 0)
    assert ("pass on Tornado, not on Squall" in out) == (status != 0)
    assert lost in out
    assert lost in (work / "report.md").read_text()
