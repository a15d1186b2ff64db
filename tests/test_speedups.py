"""Which variant runs (pure, or the compiled build ``pip install`` makes where it
can), and the checks that decide whether a compiled build may be loaded.

``make test-compiled`` sets ``SQUALL_EXPECT_COMPILED=1``: then the compiled
modules must be the ones loaded, so that run is proven to test them.
"""

from __future__ import annotations

import ast
import configparser
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import squall
import squall._h1._connection
import squall._h2._base
import squall._h2._hpack
import squall._ws._frames
import squall.speedups
from squall import _compiled

ROOT = Path(__file__).resolve().parent.parent
SQUALL_DIR = Path(squall.__file__).resolve().parent
SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]


def is_extension(module: Any) -> bool:
    return str(module.__file__).endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def test_report_matches_what_is_loaded() -> None:
    loaded = [is_extension(squall._h1._connection), is_extension(squall._ws._frames)]
    assert loaded == [squall.speedups.compiled] * 2
    if squall.speedups.compiled:
        assert squall.speedups.reason == ""
        modules = squall.speedups.compiled_modules()
        assert modules["squall._h1._connection"] == squall._h1._connection.__file__
        assert "squall._ws._mask" in modules
    else:
        assert squall.speedups.reason
        assert squall.speedups.compiled_modules() == {}


@pytest.mark.skipif(os.environ.get("SQUALL_EXPECT_COMPILED") != "1", reason="not the compiled run")
def test_compiled_run_is_compiled() -> None:
    assert squall.speedups.compiled, squall.speedups.reason
    assert is_extension(squall._h1._connection)
    assert is_extension(squall._ws._frames)
    # HTTP/2's core too (its framing and HPACK run per request).
    assert is_extension(squall._h2._base) and is_extension(squall._h2._hpack)
    # A compiled class is a native type: it has no instance __dict__ and no
    # __slots__ attribute.
    assert not hasattr(squall._h1._connection.H1Connection, "__slots__")


def bound_names(source: Path) -> set[str]:
    """Names a module's source binds at top level (defs, classes, assignments,
    in either branch of a top-level if), and
    the names it imports anywhere: mypyc makes a function-level import (a lazy
    import in the pure module) a module global, so those may show up compiled."""
    tree = ast.parse(source.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    body = list(tree.body)
    while body:
        node = body.pop()
        if isinstance(node, ast.If):
            # Either branch of a top-level if (``if TYPE_CHECKING``, a
            # version check) binds at top level.
            body.extend(node.body + node.orelse)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


@pytest.mark.parametrize(
    "name",
    [
        "squall._h1._connection",
        "squall._h1._quick",
        "squall._ws._frames",
        "squall._ws._packing",
        "squall._ws._mask",
        "squall._h2._base",
        "squall._h2._connection",
        "squall._h2._hpack",
        "squall._xhtml",
        "squall._typetags",
        "squall._wswrite",
        "squall._fastpaths",
        "squall.httpserver._protocol",
        "squall.httpserver._h1output",
        "squall.httpserver._h1lifecycle",
        "squall.httpserver._h1exchange",
        "squall.httpserver._flow",
    ],
)
def test_loaded_module_exposes_nothing_the_pure_one_does_not(name: str) -> None:
    module = sys.modules.get(name) or __import__(name, fromlist=["_"])
    source = SQUALL_DIR.joinpath(*name.split(".")[1:]).with_suffix(".py")
    # "@..." are pytest's, where it rewrites an installed squall's asserts.
    exposed = {n for n in vars(module) if not n.startswith(("__", "@"))}
    pure = {n for n in bound_names(source) if not n.startswith("__")}
    assert exposed - pure == set()
    # And the public API is there.
    assert set(getattr(module, "__all__", ())) <= exposed


def test_mypyc_attr_leaves_the_class_as_it_is() -> None:
    # At run time the mark only matters to mypyc: the class is returned unchanged.
    class Marked:
        pass

    assert _compiled.mypyc_attr(allow_interpreted_subclasses=True)(Marked) is Marked
    assert "mypyc_attr" in _compiled.__all__


@pytest.mark.skipif(os.environ.get("SQUALL_EXPECT_COMPILED") != "1", reason="not the compiled run")
def test_compiled_run_compiles_the_protocol() -> None:
    # speedups/squall_build.py leaves it interpreted when mypyc refuses it or when a
    # class that interpreted code subclasses is not marked; the compiled run
    # must then say so rather than pass on the pure module.
    from squall.httpserver import _protocol

    home = _compiled._installed_home()
    assert home is not None
    skipped = json.loads((home / "manifest.json").read_text()).get("skipped", {})
    assert is_extension(_protocol), skipped.get("squall.httpserver._protocol")


def load_build() -> ModuleType:
    """speedups/squall_build.py, the build that ``pip install`` runs."""
    spec = importlib.util.spec_from_file_location(
        "_squall_build", ROOT / "speedups" / "squall_build.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(os.environ.get("SQUALL_EXPECT_COMPILED") != "1", reason="not the compiled run")
def test_compiled_run_compiles_every_listed_module() -> None:
    # The build drops a listed module that mypyc refuses (and all of them when
    # the type check fails): the run must show which one, not pass on its .py.
    home = _compiled._installed_home()
    assert home is not None
    manifest = json.loads((home / "manifest.json").read_text())
    build = load_build()
    listed = set(build.COMPILED_MODULES) | set(build.C_MODULES)
    assert listed - set(manifest["modules"]) == set(), manifest.get("skipped")
    for name in listed:
        assert is_extension(__import__(name, fromlist=["_"])), name


def test_check_built_names_the_listed_modules_the_install_lacks(tmp_path: Path) -> None:
    # speedups/check_built.py keeps the bench venv from being stamped (and
    # benchmarked) when the build left a listed module out: run here, it
    # must fail on an install without them and pass on a complete one.
    build = load_build()
    listed = set(build.COMPILED_MODULES) | set(build.C_MODULES)
    lacking = sorted(listed - set(squall.speedups.compiled_modules()))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if (ROOT / "squall").is_dir():
        # This tree's squall, as the tests import it (an editable install
        # finds it from anywhere; a copy of the tree for an installed run
        # has no squall/ of its own).
        env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, str(ROOT / "speedups" / "check_built.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    named = sorted(
        line.split()[2] for line in result.stderr.splitlines() if line.startswith("not compiled: ")
    )
    assert named == lacking, result.stderr
    assert result.returncode == (1 if lacking else 0)


def imports_of(source: Path) -> set[str]:
    """Top-level package names a module imports, at any depth of its code."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_build_ignores_type_errors_only_in_modules_of_optional_extras() -> None:
    # pip builds in an environment holding only the build requirements, so
    # aioquic (a QUIC stack, squall[http3-aioquic]) is missing there: its names are Any, which strict
    # mypy refuses in the modules built on it. Unless the build ignores their
    # errors, mypyc refuses the whole build and every module runs pure.
    build = load_build()
    on_aioquic = {
        ".".join(("squall", *path.relative_to(SQUALL_DIR).with_suffix("").parts))
        for path in SQUALL_DIR.rglob("*.py")
        if "aioquic" in imports_of(path)
    }
    assert on_aioquic, "no module imports aioquic: this test no longer checks anything"
    assert on_aioquic <= set(build.OPTIONAL_EXTRA_MODULES)
    config = configparser.ConfigParser()
    config.read_string(build.mypy_config())
    assert config.getboolean("mypy", "strict")
    assert config.getboolean("mypy", "ignore_missing_imports")
    ignored = {
        name
        for section in config.sections()
        if section.startswith("mypy-") and config.getboolean(section, "ignore_errors")
        for name in section.removeprefix("mypy-").split(",")
    }
    assert ignored == set(build.OPTIONAL_EXTRA_MODULES)
    # None of them is compiled: ignoring a compiled module's errors would compile
    # code that mypy did not check.
    in_packages = {name for name in ignored if name.split(".")[1] in build.COMPILED_PACKAGES}
    assert ignored & set(build.COMPILED_MODULES) == in_packages == set()


def test_no_speedups_env_keeps_pure() -> None:
    code = (
        "import squall.speedups as s, squall._h1._connection as c;"
        "print(s.compiled, c.__file__.endswith('.py'), s.reason)"
    )
    env = dict(os.environ, SQUALL_NO_SPEEDUPS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split(maxsplit=2)
    assert out == ["False", "True", "SQUALL_NO_SPEEDUPS=1\n"]


def test_speedups_extra_and_build_requirements() -> None:
    # The extra names only packages of the index (no second squall package);
    # mypy (mypyc) is a build requirement, as the compiled build needs it.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extra = project["project"]["optional-dependencies"]["speedups"]
    assert sorted(r.split(">")[0] for r in extra) == ["httptools", "uvloop"]
    assert any(r.startswith("mypy") for r in project["build-system"]["requires"])


def test_pure_reason_names_a_way_to_compile() -> None:
    if squall.speedups.compiled:
        pytest.skip("the compiled build is loaded")
    assert _compiled.HOW_TO_COMPILE in squall.speedups.reason
    assert "pip install --force-reinstall" in squall.speedups.reason


def test_report_command_says_which_variant() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "squall.speedups"], capture_output=True, text=True, check=True
    ).stdout
    if squall.speedups.compiled:
        assert out.startswith(f"squall runs {len(squall.speedups.compiled_modules())} compiled")
        assert "squall._h1._connection" in out
    else:
        assert out.startswith("squall runs pure Python: ")
    assert "uvloop" in out.splitlines()[-1]


# -- the checks, on a fake build --------------------------------------------------------


def fake_build(tmp_path: Path, names: list[str]) -> tuple[dict[str, Any], Path, Path]:
    """A squall source tree, a native dir with (empty) extension files, a manifest."""
    src = tmp_path / "squall"
    native = tmp_path / "native"
    modules = {}
    for name in names:
        parts = name.split(".")
        source = src.joinpath(*parts[1:]).with_suffix(".py")
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text(f"# {name}\n")
        modules[name] = hashlib.sha256(source.read_bytes()).hexdigest()
        ext = native.joinpath(*parts).with_name(parts[-1] + SUFFIX)
        ext.parent.mkdir(parents=True, exist_ok=True)
        ext.write_bytes(b"")
    manifest = {
        "compiled": True,
        "squall_version": "9.9",
        "suffix": SUFFIX,
        "modules": modules,
    }
    return manifest, native, src


def test_check_accepts_a_matching_build(tmp_path: Path) -> None:
    manifest, native, src = fake_build(tmp_path, ["squall._h1._a", "squall._ws._b"])
    files = _compiled.check(manifest, native, src, "9.9")
    assert sorted(files) == ["squall._h1._a", "squall._ws._b"]
    assert files["squall._h1._a"] == str(native / "squall" / "_h1" / ("_a" + SUFFIX))


def test_check_refuses_an_edited_source(tmp_path: Path) -> None:
    manifest, native, src = fake_build(tmp_path, ["squall._h1._a", "squall._h1._b"])
    (src / "_h1" / "_b.py").write_text("# edited\n")
    with pytest.raises(ValueError, match=r"squall\._h1\._b: .* differs from the source"):
        _compiled.check(manifest, native, src, "9.9")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"compiled": False, "reason": "no gcc"}, "without compiling: no gcc"),
        ({"squall_version": "1.0"}, "build is of squall 1.0, this is squall 9.9"),
        ({"suffix": ".cpython-27.so"}, "another Python"),
        ({"modules": {}}, "names no module"),
        ({"modules": {"os.path": "0"}}, "foreign module 'os.path'"),
        ({"modules": {"squall._h1._gone": "0"}}, "source not readable"),
    ],
)
def test_check_refuses_a_build_that_does_not_fit(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    manifest, native, src = fake_build(tmp_path, ["squall._h1._a"])
    manifest.update(change)
    with pytest.raises(ValueError, match=message):
        _compiled.check(manifest, native, src, "9.9")


def test_check_refuses_a_missing_extension(tmp_path: Path) -> None:
    manifest, native, src = fake_build(tmp_path, ["squall._h1._a"])
    (native / "squall" / "_h1" / ("_a" + SUFFIX)).unlink()
    with pytest.raises(ValueError, match="compiled module missing"):
        _compiled.check(manifest, native, src, "9.9")


def test_install_reports_a_bad_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "squall" / _compiled.NATIVE_DIR
    home.mkdir(parents=True)
    (home / "manifest.json").write_text(json.dumps({"compiled": False, "reason": "no gcc"}))
    assert _compiled._installed_home(tmp_path / "squall") == home
    monkeypatch.delenv("SQUALL_NO_SPEEDUPS", raising=False)
    state = _compiled._State()
    monkeypatch.setattr(_compiled, "state", state)
    before = list(sys.meta_path)
    _compiled.install(SQUALL_DIR, squall.version, home)
    assert not state.loaded
    assert (
        state.reason
        == f"squall was installed without compiling: no gcc; {_compiled.HOW_TO_COMPILE}"
    )
    assert sys.meta_path == before


def test_install_puts_a_finder_for_a_fitting_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, native, src = fake_build(tmp_path, ["squall._h1._a"])
    home = native
    (home / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.delenv("SQUALL_NO_SPEEDUPS", raising=False)
    state = _compiled._State()
    monkeypatch.setattr(_compiled, "state", state)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    monkeypatch.setattr(sys, "path_importer_cache", dict(sys.path_importer_cache))
    _compiled.install(src, "9.9", home, search_path=[str(src)])
    assert state.loaded, state.reason
    dir_finder = sys.path_importer_cache[str(src / "_h1")]
    assert isinstance(dir_finder, _compiled.CompiledDirFinder)
    assert dir_finder.files == state.modules
    assert str(src) not in sys.path_importer_cache  # no compiled module directly in squall/
    finder = sys.meta_path[0]
    assert isinstance(finder, _compiled.CompiledFinder)
    assert (
        finder.files
        == state.modules
        == {"squall._h1._a": str(home / "squall" / "_h1" / ("_a" + SUFFIX))}
    )
    finders = len(sys.meta_path)
    _compiled.install(src, "9.9", home)  # once only
    assert len(sys.meta_path) == finders


def test_finder_maps_only_its_names(tmp_path: Path) -> None:
    ext = tmp_path / ("_x" + SUFFIX)
    finder = _compiled.CompiledFinder({"squall._h1._x": str(ext)})
    assert finder.find_spec("squall._h1._y", None) is None
    spec = finder.find_spec("squall._h1._x", None)
    assert spec is not None
    assert spec.origin == str(ext)
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)


ONE_BUILD_TEST = """
import importlib.machinery
import sys

import squall.speedups
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, RequestHandler


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hi")


class TestServes(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/", Hello)])

    def test_get(self) -> None:
        assert self.fetch("/").body == b"hi"


def test_no_module_is_pure_beside_compiled_ones() -> None:
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    loaded = [n for n in squall.speedups.compiled_modules() if n in sys.modules]
    assert loaded or not squall.speedups.compiled
    assert [n for n in loaded if not str(sys.modules[n].__file__).endswith(suffixes)] == []
"""


def test_pytest_rewriting_squall_keeps_one_build(tmp_path: Path) -> None:
    # squall imported before pytest starts (by a .pth such as the Tornado
    # alias, or an app's own import), then squall's modules claimed by
    # pytest's assertion rewriting, whose finder goes ahead of squall's: the
    # modules imported from then on must be the compiled ones too. They were
    # the .py files, and a compiled server refused its pure H1Connection
    # (Jupyter Server's suite failed on the compiled build).
    (tmp_path / "conftest.py").write_text(
        'import pytest\n\npytest.register_assert_rewrite("squall")\n'
    )
    (tmp_path / "test_one_build.py").write_text(ONE_BUILD_TEST)
    code = (
        "import sys\nimport squall\nimport pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', 'test_one_build.py']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(SQUALL_DIR.parent)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_compiled_dir_finder_answers_its_names_and_finds_the_rest(tmp_path: Path) -> None:
    (tmp_path / "_plain.py").write_text("X = 1\n")
    ext = tmp_path / ("_x" + SUFFIX)
    finder = _compiled.CompiledDirFinder(str(tmp_path), {"squall._h1._x": str(ext)})
    spec = finder.find_spec("squall._h1._x")
    assert spec is not None and spec.origin == str(ext)
    assert isinstance(spec.loader, importlib.machinery.ExtensionFileLoader)
    plain = finder.find_spec("squall._h1._plain")
    assert plain is not None and plain.origin == str(tmp_path / "_plain.py")
    assert isinstance(plain.loader, importlib.machinery.SourceFileLoader)
    assert finder.find_spec("squall._h1._absent") is None


# Module-level names of the compiled modules that may stay plain globals,
# and why. Any other name bound at module level must be Final: mypyc reads
# a plain global through the module's dict (about 115 instructions a read,
# 29 of them per HTTP/2 request before they were made Final), a Final one
# as a C variable.
NOT_FINAL = {
    # Type aliases: read by the type checker, not at run time.
    "squall._h1._events": {"Headers", "Fields", "Event"},
    "squall._h1._heads": {"ResponseHead"},
    "squall._h1._sending": {"_FramingFields"},
    "squall._h2._events": {"Fields", "Event"},
    "squall._ws._deflate": {"Params"},
    "squall.asgi._scope": {"ProxyView"},
    # Rebound at run time (a `global` statement).
    "squall.httpserver._h1exchange": {"_last_shared"},
    "squall.httpserver._h1lifecycle": {
        "_spent",
        # Set by tests (a shorter grace): read once per connection.
        "_CLOSE_GRACE",
    },
    # Set by tests (a shorter linger): read once per connection.
    "squall.httpserver._h1output": {"_LINGER_SECONDS"},
    # Replaced by tests (counting the loop lookups a request makes).
    "squall.httputil._exchange": {"_get_running_loop"},
}


def module_level_names(source: Path) -> list[str]:
    """Names a module binds at its top level by assignment without Final."""
    names: list[str] = []
    for node in ast.parse(source.read_text()).body:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                names += [n.id for n in ast.walk(target) if isinstance(n, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            if not ast.unparse(node.annotation).startswith("Final"):
                names += [n.id for n in ast.walk(node.target) if isinstance(n, ast.Name)]
    return [name for name in names if not name.startswith("__")]


def compiled_module_sources() -> dict[str, Path]:
    """The source of each module the build compiles, in the squall imported
    (an install keeps its .py files beside the compiled ones)."""
    build = load_build()
    sources = {
        name: SQUALL_DIR.joinpath(*name.split(".")[1:]).with_suffix(".py")
        for name in build.COMPILED_MODULES
    }
    for package in build.COMPILED_PACKAGES:
        for path in sorted((SQUALL_DIR / package).glob("*.py")):
            name = f"squall.{package}" + ("" if path.stem == "__init__" else f".{path.stem}")
            if name not in build.SKIPPED:
                sources[name] = path
    assert all(path.is_file() for path in sources.values()), sources
    return sources


def test_the_compiled_modules_bind_their_globals_final() -> None:
    found = {
        name: set(module_level_names(path)) - NOT_FINAL.get(name, set())
        for name, path in compiled_module_sources().items()
    }
    assert {name: names for name, names in found.items() if names} == {}
    # The exceptions are all still there (a stale entry hides nothing new).
    for name, allowed in NOT_FINAL.items():
        assert allowed <= set(module_level_names(compiled_module_sources()[name])), name


def test_the_final_check_sees_a_plain_global(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text(
        "from typing import Final\n"
        "A = 1\nB: Final = 2\nC: int = 3\nD, E = 4, 5\n__all__ = []\nF: Final[int] = 6\n"
    )
    assert module_level_names(source) == ["A", "C", "D", "E"]


# What serves or fetches over HTTP or WebSocket: where the compiled modules
# run. tests/conftest.py's SAME_ON_BOTH_BUILDS leaves tests/pubsub to the
# pure run on the ground that none of its files imports one of these.
SERVING = (
    "squall.asgi",
    "squall.h2client",
    "squall.h3client",
    "squall.httpclient",
    "squall.httpserver",
    "squall.simple_httpclient",
    "squall.testing",
    "squall.web",
    "squall.websocket",
)


def squall_imports(path: Path) -> set[str]:
    """The squall modules ``path`` imports from, at its top or in a function."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.split(".")[0] == "squall"}


def serving(name: str) -> bool:
    return name.startswith(tuple(f"{package}." for package in SERVING)) or name in SERVING


def test_the_folders_left_to_the_pure_run_import_nothing_that_serves() -> None:
    from tests.conftest import FOLDERS_ON_BOTH_BUILDS

    assert serving("squall.web.RequestHandler") and not serving("squall.webtransport")
    assert FOLDERS_ON_BOTH_BUILDS, "no folder is left to the pure run: drop this test"
    for folder in FOLDERS_ON_BOTH_BUILDS:
        files = sorted((ROOT / "tests" / folder).glob("*.py"))
        assert files, folder
        if folder == "pubsub/":
            # test_chaos.py's checker
            files.append(ROOT / "benchmarks" / "chaos.py")
        for path in files:
            found = sorted(name for name in squall_imports(path) if serving(name))
            assert not found, (
                f"{path.relative_to(ROOT)} imports {found}: it runs compiled modules, "
                f"so tests/{folder} is no longer the same on both builds "
                "(take it out of SAME_ON_BOTH_BUILDS, or move that test)"
            )


def test_what_one_run_of_make_test_leaves_out_the_other_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.conftest import LEFT_TO_THE_COMPILED_RUN, SAME_ON_BOTH_BUILDS, _left_out

    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\ntest:\n") :]
    recipe = recipe[: recipe.index("\n\n")]
    # The pure stage leaves the system tests out; nothing else does.
    assert recipe.count("SQUALL_LEAVE_TO_COMPILED=1") == 1
    assert 'stage "pytest, pure" env SQUALL_LEAVE_TO_COMPILED=1' in recipe
    assert 'stage "pytest, compiled" $$m test-compiled' in recipe
    paths = [
        *SAME_ON_BOTH_BUILDS,
        *(f"{folder}test_x.py" for folder in LEFT_TO_THE_COMPILED_RUN),
        "pubsub/test_x.py",
        "h1/test_x.py",
        "test_gen.py",
    ]
    for path in paths:
        left = []
        for expect_compiled, leave in (("", "1"), ("1", "")):
            monkeypatch.setenv("SQUALL_EXPECT_COMPILED", expect_compiled)
            monkeypatch.setenv("SQUALL_LEAVE_TO_COMPILED", leave)
            left.append(_left_out(path) is not None)
        assert left.count(True) <= 1, f"tests/{path} runs on neither build"
    # A compiled run that happens to inherit the variable still runs all.
    monkeypatch.setenv("SQUALL_EXPECT_COMPILED", "1")
    monkeypatch.setenv("SQUALL_LEAVE_TO_COMPILED", "1")
    assert _left_out("cli/test_run.py") is None
    monkeypatch.setenv("SQUALL_EXPECT_COMPILED", "")
    assert _left_out("cli/test_run.py") is not None
    assert _left_out("h1/test_x.py") is None
