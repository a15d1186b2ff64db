"""squall.compat: tornado.* imports and loggers resolve to Squall's; the runner."""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import logging
import os
import queue
import subprocess
import sys
import threading
import types
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import squall
import squall.compat
from squall import autoreload
from squall.log import access_log, app_log, gen_log
from tests._wait import HANG_GUARD

HELLO = Path(__file__).parent / "data" / "compat" / "hello.py"


@pytest.fixture
def compat() -> Iterator[None]:
    squall.compat.install()
    try:
        yield
    finally:
        squall.compat.uninstall()


def test_tornado_is_not_installed() -> None:
    # The tests below would prove nothing if a real Tornado answered.
    assert not squall.compat.installed()
    assert importlib.util.find_spec("tornado") is None


def test_tornado_names_are_squall_modules(compat: None) -> None:
    import tornado
    import tornado.platform.asyncio
    import tornado.web
    from tornado import gen
    from tornado.httputil import HTTPHeaders

    import squall.gen
    import squall.httputil
    import squall.platform.asyncio
    import squall.web

    assert tornado is not squall and tornado.__all__ == squall.__all__
    assert tornado.web is squall.web
    assert gen is squall.gen
    assert tornado.platform.asyncio is squall.platform.asyncio
    assert HTTPHeaders is squall.httputil.HTTPHeaders
    assert isinstance(squall.web.RequestHandler, type)
    assert issubclass(squall.web.ErrorHandler, tornado.web.RequestHandler)
    assert sys.modules["tornado.web"] is sys.modules["squall.web"]
    # The modules answer to Tornado's names (test_compat_names) and keep
    # their own spec.
    assert tornado.web.__name__ == "tornado.web"
    assert tornado.web.__spec__ is not None and tornado.web.__spec__.name == "squall.web"


def test_names_tornado_modules_have_by_importing_them() -> None:
    import squall.httpserver
    import squall.log
    import squall.web

    assert not hasattr(squall.web, "app_log")
    squall.compat.install()
    try:
        import tornado.web
        from tornado.web import HTTPServer, app_log

        assert app_log is squall.log.app_log
        assert HTTPServer is squall.httpserver.HTTPServer
        assert tornado.web.escape is squall.escape
        assert tornado.web.tornado is sys.modules["tornado"]
        assert {"app_log", "HTTPServer", "RequestHandler"} <= set(dir(tornado.web))
        with pytest.raises(AttributeError, match="no attribute 'nope'"):
            tornado.web.nope  # noqa: B018
    finally:
        squall.compat.uninstall()
    # Offered to programs run as Tornado only, and withdrawn with the hook.
    assert not hasattr(squall.web, "app_log")
    assert "app_log" not in dir(squall.web)


def test_version_is_the_tornado_api_level(compat: None) -> None:
    import tornado

    assert tornado.version == "6.6.1"
    assert tornado.version_info == (6, 6, 1, 0)
    assert tornado.version_info >= (6, 3)
    assert tornado.squall_version == squall.version
    assert tornado.__all__ == squall.__all__


def test_facade_has_squalls_package_file(compat: None) -> None:
    # os.path.dirname(tornado.__file__) and inspect.getfile(tornado) work as
    # on Tornado; both name Squall's package, where the code is.
    import inspect

    import tornado

    assert tornado.__file__ == squall.__file__
    assert inspect.getfile(tornado) == squall.__file__


def test_facade_loads_submodules_lazily_and_refuses_unknown_names(compat: None) -> None:
    import tornado

    assert tornado.locks is squall.locks
    assert sys.modules["tornado.locks"] is squall.locks
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tornado.nope  # noqa: B018


def test_missing_module_names_both(compat: None) -> None:
    with pytest.raises(ModuleNotFoundError) as info:
        importlib.import_module("tornado.no_such_module")
    message = str(info.value)
    assert "'tornado.no_such_module'" in message and "'squall.no_such_module'" in message
    assert info.value.name == "tornado.no_such_module"


def test_install_is_idempotent_and_uninstall_undoes_it() -> None:
    squall.compat.install()
    squall.compat.install()
    try:
        assert squall.compat.installed()
        assert sum(isinstance(f, squall.compat._TornadoFinder) for f in sys.meta_path) == 1
        importlib.import_module("tornado.escape")
    finally:
        squall.compat.uninstall()
        squall.compat.uninstall()
    assert not squall.compat.installed()
    assert not any(name == "tornado" or name.startswith("tornado.") for name in sys.modules)
    assert not any(isinstance(f, squall.compat._TornadoFinder) for f in sys.meta_path)
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("tornado")


def test_install_refuses_a_foreign_tornado(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tornado", types.ModuleType("tornado"))
    with pytest.raises(RuntimeError, match="'tornado' is already imported and is not Squall's"):
        squall.compat.install()
    assert not squall.compat.installed()


def test_alias_loader_gives_squall_code_to_runpy(compat: None) -> None:
    spec = importlib.util.find_spec("tornado.escape")
    assert spec is not None and isinstance(spec.loader, squall.compat._AliasLoader)
    code = spec.loader.get_code("tornado.escape")
    assert code is not None and code.co_filename.endswith(os.path.join("squall", "escape.py"))
    assert spec.loader.is_package("tornado.escape") is False
    package = importlib.util.find_spec("tornado.platform")
    assert package is not None and package.submodule_search_locations is not None


# -- logging --


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_handler_and_level_on_tornado_access_see_squall_records(compat: None) -> None:
    importlib.import_module("tornado.log")
    tornado_access = logging.getLogger("tornado.access")
    assert tornado_access is access_log
    collect = Collect()
    tornado_access.addHandler(collect)
    old_level = tornado_access.level
    tornado_access.setLevel(logging.INFO)
    try:
        access_log.info("200 GET / (::1) 1.00ms")
    finally:
        tornado_access.removeHandler(collect)
        tornado_access.setLevel(old_level)
    assert [r.getMessage() for r in collect.records] == ["200 GET / (::1) 1.00ms"]
    # A tornado module has been imported: records say Tornado's names, which
    # error reporters filter on (Sentry ignores tornado.access).
    assert collect.records[0].name == "tornado.access"


def test_logger_names_are_tornados_only_once_tornado_is_imported() -> None:
    squall.compat.install()
    try:
        assert access_log.name == "squall.access"  # nothing imported tornado yet
        importlib.import_module("tornado.web")
        assert [logging.getLogger(f"squall{s}").name for s in ("", ".access", ".general")] == [
            "tornado",
            "tornado.access",
            "tornado.general",
        ]
    finally:
        squall.compat.uninstall()
    assert access_log.name == "squall.access" and app_log.name == "squall.application"


def test_level_on_tornado_reaches_squall_loggers(compat: None) -> None:
    parent = logging.getLogger("tornado")
    assert parent is logging.getLogger("squall")
    old = parent.level
    parent.setLevel(logging.ERROR)
    try:
        assert gen_log.getEffectiveLevel() == logging.ERROR
        assert not gen_log.isEnabledFor(logging.WARNING)
    finally:
        parent.setLevel(old)
    child = logging.getLogger("tornado.custom_child_x")
    assert child.parent is parent


def test_existing_tornado_loggers_are_merged_and_restored() -> None:
    manager = logging.Logger.manager
    manager.loggerDict.pop("tornado.general", None)
    manager.loggerDict.pop("tornado.general.sub", None)
    before = logging.getLogger("tornado.general")
    sub = logging.getLogger("tornado.general.sub.leaf")  # placeholder "tornado.general.sub"
    collect = Collect()
    before.addHandler(collect)
    try:
        squall.compat.install()
        try:
            assert logging.getLogger("tornado.general") is gen_log
            assert collect in gen_log.handlers
            gen_log.warning("merged")
            assert [r.getMessage() for r in collect.records] == ["merged"]
        finally:
            squall.compat.uninstall()
        assert logging.getLogger("tornado.general") is before
        assert sub.parent is before
    finally:
        before.removeHandler(collect)
        gen_log.removeHandler(collect)
        manager.loggerDict.pop("tornado.general", None)
        manager.loggerDict.pop("tornado.general.sub", None)
        manager.loggerDict.pop("tornado.general.sub.leaf", None)


def test_placeholder_children_move_under_squall() -> None:
    manager = logging.Logger.manager
    leaf = logging.getLogger("tornado.application.deep.leaf_x")
    try:
        squall.compat.install()
        try:
            assert leaf.parent is logging.getLogger("squall.application")
        finally:
            squall.compat.uninstall()
    finally:
        for name in [n for n in manager.loggerDict if n.startswith("tornado.application.")]:
            del manager.loggerDict[name]


# -- the runner, in process --


def test_parse_args() -> None:
    parse = squall.compat._parse_args
    assert parse(["app.py", "-m", "x"]) == (None, "app.py", ["-m", "x"])
    assert parse(["-m", "pkg.mod", "a"]) == ("pkg.mod", None, ["a"])
    assert parse(["-mpkg"]) == ("pkg", None, [])
    assert parse(["--", "app.py"]) == (None, "app.py", [])
    for bad, message in (([], "required"), (["-m"], "needs a module"), (["-x"], "unknown option")):
        with pytest.raises(ValueError, match=message):
            parse(bad)


def test_take_loop() -> None:
    take = squall.compat._take_loop
    uvloop_installed = importlib.util.find_spec("uvloop") is not None
    assert take(["app.py", "--loop", "uvloop"], {}) == ("asyncio", ["app.py", "--loop", "uvloop"])
    assert take(["-m", "x"], {"SQUALL_LOOP": "asyncio"}) == ("asyncio", ["-m", "x"])
    auto = "uvloop" if uvloop_installed else "asyncio"
    assert take(["--loop=auto", "a.py"], {}) == (auto, ["a.py"])
    assert take(["a.py"], {"SQUALL_LOOP": "auto"}) == (auto, ["a.py"])
    # The option wins over the environment.
    assert take(["--loop", "asyncio", "a.py"], {"SQUALL_LOOP": "uvloop"}) == ("asyncio", ["a.py"])
    for args, environ, message in (
        (["--loop"], {}, "--loop needs a value"),
        (["--loop", "fast", "a.py"], {}, "--loop 'fast': expected asyncio, uvloop or auto"),
        (["a.py"], {"SQUALL_LOOP": "fast"}, "SQUALL_LOOP 'fast': expected"),
    ):
        with pytest.raises(ValueError, match=message):
            take(args, environ)


@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed")
def test_main_runs_the_program_on_the_loop_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "prog_loop.py"
    script.write_text(
        "import asyncio, tornado.ioloop\n"
        "async def main():\n"
        "    print(type(asyncio.get_running_loop()).__module__)\n"
        "asyncio.run(main())\n"
        "loop = tornado.ioloop.IOLoop(make_current=False)\n"
        "print(type(loop.asyncio_loop).__module__)\n"
        "loop.close()\n"
    )
    monkeypatch.setattr(autoreload, "_wrapper_argv", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    sys.modules["__main__"].__spec__ = importlib.util.find_spec("squall.compat")
    policy = asyncio.get_event_loop_policy()
    try:
        monkeypatch.setattr(sys, "argv", ["/x/compat.py", "--loop", "uvloop", str(script)])
        squall.compat.main()
        assert capsys.readouterr().out == "uvloop\nuvloop\n"
        # A reload comes back through the runner with the same loop.
        assert autoreload._wrapper_argv == ["-m", "squall.compat", "--loop", "uvloop", str(script)]
    finally:
        asyncio.set_event_loop_policy(policy)
        squall.compat.uninstall()
    monkeypatch.setenv("SQUALL_LOOP", "asyncio")
    monkeypatch.setattr(sys, "argv", ["/x/compat.py", str(script)])
    try:
        squall.compat.main()
        assert capsys.readouterr().out == "asyncio.unix_events\nasyncio.unix_events\n"
    finally:
        squall.compat.uninstall()


def test_main_refuses_an_unknown_loop(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["compat.py", "--loop", "fast", "app.py"])
    with pytest.raises(SystemExit) as info:
        squall.compat.main()
    assert info.value.code == 2
    assert "--loop 'fast': expected asyncio, uvloop or auto" in capsys.readouterr().err


def test_main_usage(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["compat.py"])
    with pytest.raises(SystemExit) as info:
        squall.compat.main()
    assert info.value.code == 2
    assert "usage: python -m squall.compat" in capsys.readouterr().err
    monkeypatch.setattr(sys, "argv", ["compat.py", "-h"])
    with pytest.raises(SystemExit) as info:
        squall.compat.main()
    assert info.value.code == 0


def test_main_runs_a_script_and_a_module(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "prog.py"
    (tmp_path / "prog_helper_x.py").write_text("VALUE = 42\n")
    script.write_text(
        "import sys, tornado.web, squall.web, prog_helper_x\n"
        "print(sys.argv, tornado.web is squall.web, prog_helper_x.VALUE, __name__)\n"
    )
    monkeypatch.setattr(autoreload, "_wrapper_argv", None)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setattr(sys, "argv", ["/x/compat.py", str(script), "--a"])
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    sys.modules["__main__"].__spec__ = importlib.util.find_spec("squall.compat")
    try:
        squall.compat.main()
        assert capsys.readouterr().out == f"[{str(script)!r}, '--a'] True 42 __main__\n"
        # A reload comes back through the runner.
        assert autoreload._wrapper_argv == ["-m", "squall.compat", str(script), "--a"]
        assert sys.argv == [str(script), "--a"]

        (tmp_path / "prog_mod_y.py").write_text(
            "import sys, tornado\nprint(sys.argv[0].endswith('prog_mod_y.py'), sys.argv[1:])\n"
        )
        monkeypatch.setattr(sys, "argv", ["/x/compat.py", "-m", "prog_mod_y", "b"])
        squall.compat.main()
        assert capsys.readouterr().out == "True ['b']\n"
    finally:
        squall.compat.uninstall()
        sys.modules.pop("prog_helper_x", None)


# -- the runner, in a real process --


def read_lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def pump() -> None:
        for line in stdout:
            lines.put(line)
        lines.put("")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def test_unmodified_tornado_hello_world() -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "squall.compat", str(HELLO), "--port=0", "--logging=warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines, reader = read_lines(proc)
        try:
            first = lines.get(timeout=HANG_GUARD)
            assert first.startswith("listening on "), first
            base = f"http://127.0.0.1:{int(first.split()[2])}"
            with urllib.request.urlopen(base + "/", timeout=HANG_GUARD) as response:
                assert response.read() == b"Hello, world"
            with urllib.request.urlopen(base + "/info", timeout=HANG_GUARD) as response:
                info = json.loads(response.read())
            assert info["version"] == "6.6.1" and info["is_handler"] is True
            assert len(info["version_info"]) == 4
            with urllib.request.urlopen(base + "/stop", data=b"", timeout=HANG_GUARD) as response:
                assert response.read() == b"bye"
            # stdout belongs to the reader thread: only wait here.
            proc.wait(timeout=HANG_GUARD)
        finally:
            proc.kill()
            proc.wait()
            reader.join(timeout=HANG_GUARD)
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert proc.returncode == 0, err
    access = [lines.get(timeout=HANG_GUARD) for _ in range(3)]
    assert access[0].startswith("ACCESS 200 GET / (127.0.0.1)")
    assert access[1].startswith("ACCESS 200 GET /info")
    assert access[2].startswith("ACCESS 200 POST /stop")


def test_reload_comes_back_through_the_runner(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(
        "import os, sys\n"
        "import tornado.autoreload\n"
        "print('run', sys.argv[1:], flush=True)\n"
        "if 'COMPAT_RELOADED' not in os.environ:\n"
        "    os.environ['COMPAT_RELOADED'] = '1'\n"
        "    tornado.autoreload._reload()\n"
        "os._exit(0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "COMPAT_RELOADED"}
    result = subprocess.run(
        [sys.executable, "-m", "squall.compat", "app.py", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "run ['x']\n" * 2


def test_tornado_autoreload_wrapper_under_the_runner(tmp_path: Path) -> None:
    # "python -m squall.compat -m tornado.autoreload app.py": runpy runs
    # Squall's autoreload code as __main__ under the tornado name.
    (tmp_path / "app.py").write_text(
        "import sys, tornado.web\nprint('ok', sys.argv[1:], flush=True)\nsys.exit(0)\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "squall.compat",
            "-m",
            "tornado.autoreload",
            "--until-success",
            "app.py",
            "a",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=HANG_GUARD,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok ['a']\n"


def test_merge_copies_level_filters_and_flags() -> None:
    source = logging.Logger("tornado.x")
    dest = logging.Logger("squall.x")
    flt = logging.Filter("only")
    source.addFilter(flt)
    source.setLevel(logging.DEBUG)
    source.propagate = False
    source.disabled = True
    squall.compat._merge_logger(source, dest)
    assert (dest.level, dest.propagate, dest.disabled) == (logging.DEBUG, False, True)
    assert dest.filters == [flt]


def test_nested_missing_module(compat: None) -> None:
    with pytest.raises(ModuleNotFoundError, match="'squall.no_such_pkg'"):
        importlib.import_module("tornado.no_such_pkg.mod")
    # squall.escape is a module, not a package: nothing can be below it.
    with pytest.raises(ModuleNotFoundError, match="'tornado.escape' is not a package"):
        importlib.import_module("tornado.escape.sub")
    with pytest.raises(ModuleNotFoundError, match="'squall.escape.sub'"):
        squall.compat._TornadoFinder().find_spec("tornado.escape.sub", None)
    assert squall.compat._TornadoFinder().find_spec("tornadox", None) is None
