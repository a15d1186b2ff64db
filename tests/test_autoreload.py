"""squall.autoreload: change detection, the restart command line, and the -m wrapper."""

from __future__ import annotations

import asyncio
import os
import queue
import subprocess
import sys
import textwrap
import threading
import types
import weakref
from pathlib import Path
from typing import Any, Optional

import pytest

import squall.process
import squall.util
from squall import autoreload
from squall.ioloop import IOLoop
from squall.testing import ExpectLog
from tests._wait import HANG_GUARD


class Exec(Exception):
    """Raised by the fake os.execv so that _reload's caller sees where it stopped."""


@pytest.fixture(autouse=True)
def fresh_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autoreload, "_watched_files", set())
    monkeypatch.setattr(autoreload, "_reload_hooks", [])
    monkeypatch.setattr(autoreload, "_reload_attempted", False)
    monkeypatch.setattr(autoreload, "_io_loops", weakref.WeakKeyDictionary())
    monkeypatch.setattr(autoreload, "_wrapper_argv", None)
    monkeypatch.setattr(autoreload, "_initial_mtimes", {})


def fake_main(monkeypatch: pytest.MonkeyPatch, spec_name: Optional[str]) -> None:
    main = types.ModuleType("__main__")
    main.__spec__ = (
        None if spec_name is None else types.SimpleNamespace(name=spec_name)  # type: ignore[assignment]
    )
    monkeypatch.setitem(sys.modules, "__main__", main)


# -- the restart command line -------------------------------------------------


def test_restart_argv_keeps_module_form(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_main(monkeypatch, "pkg.__main__")
    monkeypatch.setattr(sys, "argv", ["/src/pkg/__main__.py", "--x", "1"])
    assert autoreload._restart_argv() == ["-m", "pkg", "--x", "1"]
    fake_main(monkeypatch, "pkg.tool")
    assert autoreload._restart_argv() == ["-m", "pkg.tool", "--x", "1"]


def test_restart_argv_path_form_keeps_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_main(monkeypatch, None)
    monkeypatch.setattr(sys, "argv", ["app.py", "a"])
    monkeypatch.setattr(sys, "path", [""] + sys.path)
    monkeypatch.setenv("PYTHONPATH", "/lib")
    assert autoreload._restart_argv() == ["app.py", "a"]
    assert os.environ["PYTHONPATH"] == "." + os.pathsep + "/lib"
    autoreload._restart_argv()  # not added twice
    assert os.environ["PYTHONPATH"] == "." + os.pathsep + "/lib"


def test_restart_argv_directory_run_is_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    # "python somedir" runs somedir/__main__.py with a spec named "__main__".
    fake_main(monkeypatch, "__main__")
    monkeypatch.setattr(sys, "argv", ["somedir"])
    monkeypatch.setattr(sys, "path", ["/abs/somedir"] + sys.path)
    assert autoreload._restart_argv() == ["somedir"]


def test_outermost_wrapper_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_main(monkeypatch, "pkg")
    autoreload._set_wrapper_argv(["-m", "squall.compat", "app.py"])
    autoreload._set_wrapper_argv(["-m", "squall.autoreload", "app.py"])
    assert autoreload._restart_argv() == ["-m", "squall.compat", "app.py"]


def test_reload_runs_hooks_then_execs(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    autoreload.add_reload_hook(lambda: calls.append("hook"))
    autoreload._set_wrapper_argv(["-m", "squall.autoreload", "x.py"])

    def execv(path: str, argv: list[str]) -> None:
        calls.append((path, argv))
        raise Exec()

    monkeypatch.setattr(os, "execv", execv)
    with pytest.raises(Exec):
        autoreload._reload()
    assert calls == [
        "hook",
        (sys.executable, [sys.executable, "-m", "squall.autoreload", "x.py"]),
    ]
    assert autoreload._reload_attempted


def test_reload_without_execv_spawns_and_exits(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    autoreload._set_wrapper_argv(["app.py"])
    monkeypatch.setattr(autoreload, "_has_execv", False)
    monkeypatch.setattr(subprocess, "Popen", lambda argv: calls.append(argv))

    def exit_(code: int) -> None:
        calls.append(code)
        raise Exec()

    monkeypatch.setattr(os, "_exit", exit_)
    with pytest.raises(Exec):
        autoreload._reload()
    assert calls == [[sys.executable, "app.py"], 0]


# -- change detection ---------------------------------------------------------


def test_check_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    reloads: list[bool] = []
    monkeypatch.setattr(autoreload, "_reload", lambda: reloads.append(True))
    path = tmp_path / "f.py"
    path.write_text("x = 1")
    times: dict[str, float] = {}
    autoreload._check_file(times, str(path))
    autoreload._check_file(times, str(path))
    assert reloads == []
    os.utime(path, (times[str(path)] + 10, times[str(path)] + 10))
    with ExpectLog("squall.general", ".*f.py modified; restarting server", level=20):
        autoreload._check_file(times, str(path))
    assert reloads == [True]
    autoreload._check_file(times, str(tmp_path / "missing.py"))
    assert reloads == [True]


def test_modules_and_watched_files_are_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    checked: list[str] = []
    monkeypatch.setattr(autoreload, "_check_file", lambda times, path: checked.append(path))
    module = types.ModuleType("fake_mod")
    module.__file__ = str(tmp_path / "fake_mod.pyc")
    monkeypatch.setitem(sys.modules, "fake_mod", module)
    monkeypatch.setitem(sys.modules, "not_a_module", "junk")  # type: ignore[arg-type]
    autoreload.watch(str(tmp_path / "config.yaml"))
    autoreload._reload_on_update({})
    assert str(tmp_path / "fake_mod.py") in checked
    assert str(tmp_path / "config.yaml") in checked


def test_each_file_checked_once_per_round(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # squall.compat registers each squall module under a tornado.* name too:
    # one module object (or file) under two names is still one stat.
    checked: list[str] = []
    monkeypatch.setattr(autoreload, "_check_file", lambda times, path: checked.append(path))
    module = types.ModuleType("twice")
    module.__file__ = str(tmp_path / "twice.py")
    monkeypatch.setitem(sys.modules, "twice", module)
    monkeypatch.setitem(sys.modules, "alias.twice", module)
    autoreload.watch(str(tmp_path / "twice.py"))
    autoreload._reload_on_update({})
    assert checked.count(str(tmp_path / "twice.py")) == 1
    assert len(checked) == len(set(checked))


def test_no_checks_in_forked_children_or_after_a_reload(monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    monkeypatch.setattr(autoreload, "_check_file", lambda times, path: checked.append(path))
    monkeypatch.setattr(squall.process, "task_id", lambda: 3)
    autoreload._reload_on_update({})
    monkeypatch.setattr(squall.process, "task_id", lambda: None)
    monkeypatch.setattr(autoreload, "_reload_attempted", True)
    autoreload._reload_on_update({})
    assert checked == []


def test_start_once_per_loop() -> None:
    async def run() -> tuple[object, int]:
        autoreload.start(check_time=50)
        autoreload.start(check_time=50)
        return IOLoop.current(), len(autoreload._io_loops)

    # The first loop is kept alive (the registry holds loops weakly), so the
    # second start really is a second live loop in this process.
    first, count = asyncio.run(run())
    assert count == 1
    with ExpectLog("squall.general", "squall.autoreload started more than once"):
        asyncio.run(run())
    del first


def test_start_twice_warning_names_tornado_for_a_tornado_program(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A program run as Tornado (and its tests' ExpectLog) sees the module
    # under the name it imported.
    async def run() -> object:
        # The loop is made first: with the flag set, making one would load
        # Tornado's module names, which only squall.compat provides.
        loop = IOLoop.current()
        with monkeypatch.context() as patch:
            patch.setattr(squall.util, "running_as_tornado", True)
            autoreload.start(check_time=50)
        return loop

    first = asyncio.run(run())
    with ExpectLog(
        "squall.general", "tornado.autoreload started more than once in the same process"
    ):
        asyncio.run(run())
    del first


def test_start_uses_the_wrappers_early_mtimes(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "main.py"
    path.write_text("")
    autoreload._initial_mtimes[str(path)] = os.stat(path).st_mtime - 5  # edited since
    reloaded = asyncio.Event()

    async def run() -> None:
        monkeypatch.setattr(autoreload, "_reload", reloaded.set)
        autoreload.watch(str(path))
        autoreload.start(check_time=1)
        await asyncio.wait_for(reloaded.wait(), HANG_GUARD)

    with ExpectLog("squall.general", ".*main.py modified", level=20):
        asyncio.run(run())
    assert reloaded.is_set()


def test_application_autoreload_setting_starts_watching() -> None:
    from squall.web import Application

    async def run() -> int:
        Application([], autoreload=True)
        return len(autoreload._io_loops)

    assert asyncio.run(run()) == 1


# -- the wrapper, in process ---------------------------------------------------


def test_wait_watches_on_a_new_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[int] = []

    def fake_start(check_time: int = 500) -> None:
        started.append(check_time)
        autoreload.ioloop.IOLoop.current().stop()

    monkeypatch.setattr(autoreload, "start", fake_start)
    autoreload.wait()
    assert started == [500]


def test_parse_args() -> None:
    parse = autoreload._parse_args
    assert parse(["app.py", "-m", "x"]) == (None, "app.py", False, ["-m", "x"])
    assert parse(["--until-success", "-m", "pkg", "a"]) == ("pkg", None, True, ["a"])
    assert parse(["-mpkg"]) == ("pkg", None, False, [])
    assert parse(["--", "-weird.py"]) == (None, "-weird.py", False, [])
    for bad, message in (
        ([], "required"),
        (["-m"], "needs a module"),
        (["--nope", "a.py"], "unknown option '--nope'"),
    ):
        with pytest.raises(autoreload._UsageError, match=message):
            parse(bad)


def test_wrapper_options_are_read_after_the_module_name_too() -> None:
    # As Tornado's wrapper (optparse) reads its command line: "-m app" does
    # not end the wrapper's options, so "--until-success" after it is the
    # wrapper's, and "--" (the way to give a -m program options on Tornado)
    # is dropped rather than handed to the program, whose option parser
    # would take everything after it as positional arguments.
    parse = autoreload._parse_args
    assert parse(["-m", "app", "--until-success", "x"]) == ("app", None, True, ["x"])
    assert parse(["-m", "app", "--", "--port=8000"]) == ("app", None, False, ["--port=8000"])
    assert parse(["-m", "a", "-m", "b", "x"]) == ("b", None, False, ["x"])
    assert parse(["-m", "app", "x", "--until-success"]) == (
        "app",
        None,
        False,
        ["x", "--until-success"],
    )
    # An option of the program's own after -m is passed on (Tornado's
    # wrapper refuses it with a usage error).
    assert parse(["-m", "app", "--port=8000"]) == ("app", None, False, ["--port=8000"])


def run_main(monkeypatch: pytest.MonkeyPatch, *args: str) -> list[bool]:
    waited: list[bool] = []
    monkeypatch.setattr(autoreload, "_wait", lambda check_time: waited.append(True))
    monkeypatch.setattr(sys, "argv", ["autoreload.py", *args])
    fake_main(monkeypatch, "squall.autoreload")
    autoreload.main()
    return waited


def test_main_watches_a_script_that_failed_to_compile(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def broken(:\n")
    with ExpectLog("squall.general", "Script exited with uncaught exception"):
        waited = run_main(monkeypatch, str(bad), "arg")
    assert waited == [True]
    assert str(bad) in autoreload._watched_files
    assert str(bad) in autoreload._initial_mtimes
    assert autoreload._wrapper_argv == ["-m", "squall.autoreload", str(bad), "arg"]
    assert sys.argv == ["autoreload.py", str(bad), "arg"]  # restored


def test_main_watches_files_in_an_import_time_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "helper_mod_x.py").write_text("raise ValueError('at import')\n")
    script = tmp_path / "main.py"
    script.write_text("import helper_mod_x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with ExpectLog("squall.general", "Script exited with uncaught exception"):
        run_main(monkeypatch, str(script))
    assert str(tmp_path / "helper_mod_x.py") in autoreload._watched_files
    sys.modules.pop("helper_mod_x", None)


def test_main_until_success(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "ok.py"
    script.write_text("import sys\nprint(sys.argv)\nsys.exit(0)\n")
    assert run_main(monkeypatch, "--until-success", str(script), "a") == []
    assert capsys.readouterr().out == f"[{str(script)!r}, 'a']\n"
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.exit(3)\n")
    assert run_main(monkeypatch, "--until-success", str(failing)) == [True]


def test_main_runs_a_package_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "arpkg_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text("import sys\nprint(__name__, __spec__.name, sys.argv[1:])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run_main(monkeypatch, "-m", "arpkg_demo", "x") == [True]
    assert capsys.readouterr().out == "__main__ arpkg_demo.__main__ ['x']\n"
    assert str(pkg / "__main__.py") in autoreload._watched_files
    for name in ("arpkg_demo", "arpkg_demo.__main__"):
        sys.modules.pop(name, None)


def test_main_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        run_main(monkeypatch, "--bogus")
    assert info.value.code == 2
    assert "unknown option '--bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        run_main(monkeypatch, "--help")
    assert info.value.code == 0
    assert "usage: python -m squall.autoreload" in capsys.readouterr().out


# -- the wrapper, in a real process ----------------------------------------------

RELOAD_ONCE = """
import os, sys
import squall.autoreload
sys.stdout.flush()
if "RELOADED" not in os.environ:
    os.environ["RELOADED"] = "1"
    squall.autoreload._reload()
os._exit(0)
"""


def run(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env={k: v for k, v in os.environ.items() if k != "RELOADED"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_wrapper_restarts_a_script_with_its_arguments(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import sys\nprint(sys.argv, 'squall.autoreload' in sys.modules)\n" + RELOAD_ONCE
    )
    out = run(["-m", "squall.autoreload", "app.py", "-m", "--flag"], tmp_path)
    assert out == "['app.py', '-m', '--flag'] True\n" * 2


def test_plain_module_run_restarts_as_module(tmp_path: Path) -> None:
    pkg = tmp_path / "rpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(
        "import sys\nprint(__spec__.name, sys.argv[1:])\n" + RELOAD_ONCE
    )
    assert run(["-m", "rpkg", "a"], tmp_path) == "rpkg.__main__ ['a']\n" * 2


def test_wrapper_restarts_after_the_broken_script_is_fixed(tmp_path: Path) -> None:
    script = tmp_path / "app.py"
    script.write_text("print('broken'\n")
    with subprocess.Popen(
        [sys.executable, "-m", "squall.autoreload", "--until-success", "app.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines: queue.Queue[str] = queue.Queue()
        stderr = proc.stderr
        assert stderr is not None

        def pump() -> None:
            for line in stderr:
                lines.put(line)
            lines.put("")

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            while "Script exited with uncaught exception" not in lines.get(timeout=HANG_GUARD):
                pass
            mtime = os.stat(script).st_mtime
            script.write_text(textwrap.dedent("print('fixed')\n"))
            os.utime(script, (mtime + 5, mtime + 5))
            # stderr belongs to the reader thread; stdout is a few bytes.
            proc.wait(timeout=HANG_GUARD)
        finally:
            proc.kill()
            proc.wait()
            reader.join(timeout=HANG_GUARD)
        assert proc.stdout is not None
        out = proc.stdout.read()
    assert proc.returncode == 0
    assert out == "fixed\n"
