"""Run real Tornado applications' own test suites on Tornado and on Squall.

For each application in apps.py: download its sdist at the pinned version,
unpack it (the tests live there), make two venvs under the cache directory
(the app and its test dependencies with Tornado 6.6.1; the same with Squall
from this checkout and Tornado uninstalled, ``tornado`` resolving to Squall in
every process through a ``.pth`` file), run the suite in both with bounded
time, and print what passes on Tornado but not on Squall, grouped by cause.

Usage (``make apps APPS_ARGS="..."`` passes the same arguments)::

    python compat/apps/run.py                      # every app, both sides
    python compat/apps/run.py --app terminado      # one app
    python compat/apps/run.py --app jupyter_server --squall-only -k login
    python compat/apps/run.py --report             # no run: compare what is saved

``--squall-only`` runs the Squall side alone and compares it with the saved
Tornado baseline (the last Tornado run of each test). Results accumulate: a
run with ``-k`` updates the saved outcome of the tests it selected.

Standard library only; the cache directory is ``$SQUALL_APPS_CACHE`` or
``~/.cache/squall-apps``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import reaper  # noqa: E402
from apps import APPS, App  # noqa: E402

REPO = HERE.parent.parent
COMPAT = REPO / "tests" / "COMPAT.md"
TIMING = re.compile(r"<!--\s*apps-timing:\s*(\S+)\s+(\S+)\s+(.+?)\s*-->")
PLUGIN_DIR = HERE / "plugin"
TORNADO_PIN = "tornado==6.6.1"
# What `python -m squall.compat --install-alias` writes into site-packages:
# a .pth that installs the alias in every interpreter the venv starts
# (subprocesses included) and a tornado dist-info that importlib.metadata reads.
ALIAS_PTH = "squall-tornado-alias.pth"
# The .pth this harness wrote before Squall had --install-alias.
OLD_PTH = "squall_as_tornado.pth"


def log(msg: str) -> None:
    print(f"[apps {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a setup command, failing loudly with its output."""
    proc = subprocess.run(cmd, text=True, capture_output=True, **kw)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"command failed ({proc.returncode}): {shlex.join(cmd)}")
    return proc


# --- setup ---------------------------------------------------------------


def fetch_sdist(app: App, cache: Path) -> Path:
    """Download and unpack the app's sdist; return the unpacked directory."""
    src_root = cache / "src"
    stem = f"{app.name}-{app.version}"
    unpacked = src_root / stem
    if (unpacked / ".unpacked").exists():
        return unpacked
    dl = src_root / "sdists"
    dl.mkdir(parents=True, exist_ok=True)
    log(f"{stem}: downloading the sdist")
    run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
            "-d", str(dl), f"{app.name}=={app.version}",
        ]
    )  # fmt: skip
    # Index file names spell "-", "_" and "." differently across releases.
    want = norm(f"{app.name}-{app.version}")
    archives = [
        p
        for p in dl.iterdir()
        if p.name.endswith((".tar.gz", ".zip"))
        and norm(p.name.rsplit(".", 2 if p.name.endswith(".tar.gz") else 1)[0]) == want
    ]
    if not archives:
        raise SystemExit(f"{stem}: no sdist found in {dl}")
    archive = archives[0]
    shutil.rmtree(unpacked, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(dir=src_root))
    if archive.name.endswith(".zip"):
        shutil.unpack_archive(str(archive), str(tmp))
    else:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
    (top,) = list(tmp.iterdir())
    top.rename(unpacked)
    tmp.rmdir()
    (unpacked / ".unpacked").write_text(archive.name + "\n")
    return unpacked


def clone_in(directory: Path, repo: str) -> Optional[Path]:
    """The clone of ``repo`` ("owner/name") kept in ``directory`` as
    ``owner+name`` or ``owner+name/repo`` (a bare git directory or a work
    tree), or None."""
    base = directory / repo.replace("/", "+")
    for candidate in (base / "repo", base):
        if (candidate / "HEAD").is_file() or (candidate / ".git").exists():
            return candidate
    return None


def fetch_tests(app: App, cache: Path, local: dict[str, str]) -> Path:
    """Check the tests out of the app's repository at its tag; return that directory.

    The repository is a local clone (``--tests-repo owner/name=PATH``, a bare
    git directory or a work tree) or, failing that, a blobless clone made in
    the cache. Only ``tests_paths`` are taken, with ``git archive``.
    """
    ref = app.tests_ref or app.version
    dest = cache / "src" / f"{app.name}-{app.version}-tests"
    stamp = f"{app.tests_repo}@{ref}: {' '.join(app.tests_paths)}\n"
    if (dest / ".unpacked").exists() and (dest / ".unpacked").read_text() == stamp:
        return dest
    gitdir = local.get(app.tests_repo)
    if gitdir is None:
        gitdir = str(cache / "repos" / app.tests_repo.replace("/", "+"))
        if not Path(gitdir).exists():
            log(f"{app.name}: cloning github.com/{app.tests_repo} for its tests")
            run(
                [
                    "git", "clone", "--bare", "--filter=blob:none",
                    f"https://github.com/{app.tests_repo}", gitdir,
                ]
            )  # fmt: skip
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    log(f"{app.name}: tests from {app.tests_repo} at {ref}: {' '.join(app.tests_paths)}")
    proc = subprocess.run(
        ["git", "-C", gitdir, "archive", "--format=tar", ref, *app.tests_paths],
        capture_output=True,
        check=True,
    )
    with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
        tar.extractall(dest, filter="data")
    (dest / ".unpacked").write_text(stamp)
    return dest


def install_spec(app: App, src: Path) -> str:
    """What pip installs for the app: its unpacked sdist, or its release from the index."""
    return f"{app.name}=={app.version}" if app.tests_repo or app.tests_installed else str(src)


def empty_workdir(app: App, cache: Path) -> Path:
    """The directory pytest runs in for an app whose tests are in its
    installed package: empty, so that nothing in it shadows that package."""
    dest = cache / "src" / f"{app.name}-{app.version}-installed"
    dest.mkdir(parents=True, exist_ok=True)
    return dest


def test_installs(app: App, src: Path) -> list[str]:
    """The app's ``test_installs``: directories of its test tree, as paths pip installs."""
    return [str(src / path) for path in app.test_installs]


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(py: Path) -> Path:
    out = run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    return Path(out.stdout.strip())


def setup_key(app: App, python: str) -> str:
    blob = json.dumps(
        [app.name, app.version, app.test_deps, app.test_installs, TORNADO_PIN, python, 1]
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_venv(venv: Path, python: str) -> Path:
    shutil.rmtree(venv, ignore_errors=True)
    run([python, "-m", "venv", str(venv)])
    return venv_python(venv)


def setup_tornado(app: App, src: Path, work: Path, python: str, rebuild: bool) -> Path:
    """The app and its test deps with Tornado 6.6.1; its freeze pins the Squall venv."""
    venv = work / "tornado"
    stamp = venv / ".squall-apps-stamp"
    key = setup_key(app, python)
    if not rebuild and stamp.exists() and stamp.read_text() == key:
        return venv_python(venv)
    log(f"{app.name}: making the Tornado venv")
    py = make_venv(venv, python)
    run(
        [
            str(py), "-m", "pip", "install", "-q", install_spec(app, src), *app.test_deps,
            *test_installs(app, src), TORNADO_PIN,
        ]
    )  # fmt: skip
    freeze = run([str(py), "-m", "pip", "freeze", "--all"]).stdout
    (work / "tornado-freeze.txt").write_text(freeze)
    stamp.write_text(key)
    return py


def constraints_from(freeze: str, app: App) -> str:
    """The Tornado venv's versions, less Tornado, the app itself and direct URLs."""
    keep = []
    skip = {"tornado", norm(app.name), "pip", "setuptools", "wheel"}
    for line in freeze.splitlines():
        name = re.split(r"[=<>@ ]", line, maxsplit=1)[0].strip()
        if not name or " @ " in line or line.startswith("-e"):
            continue
        if norm(name) in skip:
            continue
        keep.append(line)
    return "\n".join(keep) + "\n"


def setup_squall(
    app: App,
    src: Path,
    work: Path,
    python: str,
    wheel: Path,
    side: str,
    rebuild: bool,
    reinstall: bool,
) -> Path:
    """The same venv with Tornado uninstalled and Squall's ``wheel`` answering for it.

    ``side`` is ``squall`` (the compiled build) or ``squall-pure``; each has its venv.
    """
    venv = work / side
    stamp = venv / ".squall-apps-stamp"
    key = setup_key(app, python)
    if rebuild or not stamp.exists() or stamp.read_text() != key:
        log(f"{app.name}: making the {side} venv")
        py = make_venv(venv, python)
        freeze_file = work / "tornado-freeze.txt"
        cons = work / "squall-constraints.txt"
        cons.write_text(
            constraints_from(freeze_file.read_text(), app) if freeze_file.exists() else ""
        )
        run(
            [
                str(py), "-m", "pip", "install", "-q", "-c", str(cons),
                install_spec(app, src), *app.test_deps, *test_installs(app, src),
            ]
        )  # fmt: skip
        # The app's requirement on tornado pulled it in; Squall answers instead.
        run([str(py), "-m", "pip", "uninstall", "-q", "-y", "tornado"])
        stamp.write_text(key)
    py = venv_python(venv)
    site = site_packages(py)
    (site / OLD_PTH).unlink(missing_ok=True)
    if reinstall or not (site / ALIAS_PTH).exists():
        run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)])
        # Squall's own way to stand in for Tornado, as a deployment would do it.
        run([str(py), "-m", "squall.compat", "--install-alias"], cwd="/")
    return py


def setup_npm(app: App, work: Path) -> Path:
    """Install the app's npm packages under ``work/node``; return their bin directory."""
    prefix = work / "node"
    stamp = prefix / ".squall-apps-stamp"
    key = " ".join(app.npm)
    if not stamp.exists() or stamp.read_text() != key:
        log(f"{app.name}: npm install {key}")
        shutil.rmtree(prefix, ignore_errors=True)
        prefix.mkdir(parents=True)
        run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix), *app.npm])
        stamp.write_text(key)
    return prefix / "node_modules" / ".bin"


def add_npm(app: App, bin_dir: Path, env: dict[str, str]) -> None:
    """The app's npm commands (``bin_dir``) go first on PATH, and its
    ``npm_root_env``, if any, names the directory that holds their
    ``node_modules``."""
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    if app.npm_root_env:
        env[app.npm_root_env] = str(bin_dir.parent.parent)


def build_wheel(squall_src: Path, python: str, pure: bool, cache: Path) -> Path:
    """A wheel of the checkout: compiled (mypyc and C, where a compiler is) or pure.

    A wheel is a snapshot: a suite that runs for half an hour sees one state of
    the tree even while it is being edited, and the run also checks that the
    package ships everything it needs. The compiled build takes minutes, so a
    wheel is kept in the cache under the git trees of what goes into it, and
    one of a tree with uncommitted changes there is built once per harness run.
    """
    kind = "pure" if pure else "compiled"
    pyver = run([python, "-c", "import sys; print(sys.implementation.cache_tag)"]).stdout.strip()
    rev = _build_inputs_key(squall_src)
    dest = cache / "wheels" / f"{rev}-{pyver}-{kind}"
    found = sorted(dest.glob("squall-*.whl")) if dest.exists() else []
    if found:
        return found[0]
    log(f"building a {kind} wheel of {squall_src} ({rev}, {pyver})")
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    env = dict(os.environ)
    env.pop("SQUALL_NO_EXTENSIONS", None)
    if pure:
        env["SQUALL_NO_EXTENSIONS"] = "1"
    # The venvs' interpreter builds it (pip's build isolation leaves it
    # untouched): the compiled modules are tied to its version.
    run(
        [python, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(squall_src)],
        cwd=squall_src,
        env=env,
    )  # fmt: skip
    (wheel,) = list(dest.glob("squall-*.whl"))
    return wheel


_BUILD_INPUTS = ("squall", "speedups", "setup.py", "pyproject.toml")


def _build_inputs_key(squall_src: Path) -> str:
    """The git object names of what the wheel is built from; a run's own key when edited."""
    git = ["git", "-C", str(squall_src)]
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", *_BUILD_INPUTS], text=True, capture_output=True
    )
    names = subprocess.run(
        [*git, "rev-parse", *(f"HEAD:{p}" for p in _BUILD_INPUTS)], text=True, capture_output=True
    )
    if dirty.returncode or names.returncode or dirty.stdout.strip():
        return f"{squall_revision(squall_src)}-{os.getpid()}"
    return hashlib.sha256(names.stdout.encode()).hexdigest()[:16]


def verify(py: Path, side: str) -> str:
    """Check which package answers ``import tornado.web`` in a fresh interpreter.

    On the Squall sides the alias may call its modules ``tornado.*`` and answer
    ``importlib.metadata`` for ``tornado``, so identity with ``squall.web`` and
    the absence of a real ``tornado`` package on disk are what is checked; and
    the build (compiled or pure) must be the one asked for, since a compiled
    build that fell back to pure Python would measure the wrong thing.
    """
    code = (
        "import importlib.metadata as m, importlib.util, sys, tornado, tornado.web\n"
        "try:\n    dist = m.version('tornado')\nexcept m.PackageNotFoundError:\n    dist = None\n"
        "try:\n    import squall.web, squall.speedups\n"
        "    alias = tornado.web.RequestHandler is squall.web.RequestHandler\n"
        "    build = 'compiled' if squall.speedups.compiled else 'pure'\n"
        "except ImportError:\n    alias, build = False, '-'\n"
        "print(tornado.web.__name__, tornado.version, dist, alias, build)\n"
    )
    out = run([str(py), "-c", code], cwd="/").stdout.strip()
    name, api, dist, alias, build = out.split()
    if side.startswith("squall"):
        want = "pure" if side == "squall-pure" else "compiled"
        real = site_packages(py) / "tornado"
        if alias != "True" or real.exists():
            raise SystemExit(f"{side} venv: tornado.web is not Squall's ({out}; {real})")
        if build != want:
            raise SystemExit(f"{side} venv: squall runs {build}, not {want} ({out})")
    if side == "tornado" and (name != "tornado.web" or dist != TORNADO_PIN.split("==")[1]):
        raise SystemExit(f"Tornado venv: tornado.web is {name}, tornado distribution {dist}")
    return out


def squall_revision(squall_src: Path) -> str:
    proc = subprocess.run(
        ["git", "-C", str(squall_src), "describe", "--always", "--dirty"],
        text=True,
        capture_output=True,
    )
    return proc.stdout.strip() or "unknown"


# --- running ---------------------------------------------------------------


def test_files(app: App, src: Path) -> list[list[str]]:
    """The pytest invocations of a suite: one, or one per test file (``per_file``).

    Each is the list of ``pytest_args`` paths it runs; options in
    ``pytest_args`` (those starting with ``-``, and an ``-o``'s value) are
    kept apart by `split_args` and given to every invocation.
    """
    paths, options = split_args(app.pytest_args)
    if not app.per_file:
        return [paths]
    # pytest collects a file named on its command line even when an
    # --ignore names it: the files ignored are left out here.
    ignored = {opt.split("=", 1)[1] for opt in options if opt.startswith("--ignore=")}
    units = []
    for arg in paths:
        path = src / arg
        if path.is_dir():
            found = sorted({*path.rglob("test_*.py"), *path.rglob("*_test.py")})
            units += [[name] for f in found if (name := str(f.relative_to(src))) not in ignored]
        else:
            units.append([arg])
    return units


def split_args(args: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``pytest_args`` as (paths, options); an option's separate value stays with it."""
    paths: list[str] = []
    options: list[str] = []
    takes_value = {"-o", "-p", "-m", "-k", "-c", "--override-ini", "--rootdir", "--deselect"}
    it = iter(args)
    for arg in it:
        if arg.startswith("-"):
            options.append(arg)
            if arg in takes_value:
                options.append(next(it))
        else:
            paths.append(arg)
    return paths, options


def run_suite(
    app: App, side: str, py: Path, src: Path, work: Path, k: Optional[str], extra: list[str]
) -> dict[str, Any]:
    """Run one side's suite; return its summary and outcomes.

    The JSON lines of each pytest invocation (one, or one per file) go to
    their own file under ``<side>-last/``, read back when the run ends.
    """
    outdir = work / f"{side}-last"
    shutil.rmtree(outdir, ignore_errors=True)
    outdir.mkdir()
    logfile = work / f"{side}.log"
    logfile.unlink(missing_ok=True)
    _, options = split_args(app.pytest_args)
    common = ["-p", "no:cacheprovider", "-p", "squall_apps_outcomes", "--color=no", *options]
    for plugin in app.plugins:
        common += ["-p", plugin]
    if app.test_timeout:
        # The signal method fails the one test that hangs; the thread method
        # (jupyter_server's and dask's setting) ends the whole run at the first hang.
        common += [f"--timeout={app.test_timeout}", "-o", "timeout_method=signal"]
    if k:
        common += ["-k", k]
    common += extra
    env = {key: val for key, val in os.environ.items() if key not in ("PYTHONHOME", "PYTHONPATH")}
    env.update(app.env)
    env["PATH"] = f"{py.parent}{os.pathsep}{env.get('PATH', '')}"
    if app.npm:
        add_npm(app, setup_npm(app, work), env)
    env["VIRTUAL_ENV"] = str(py.parent.parent)
    # The outcomes plugin first; an app's own PYTHONPATH (relative to its
    # source directory) after it.
    paths = [
        str(PLUGIN_DIR),
        *(str(src / d) for d in app.env.get("PYTHONPATH", "").split(":") if d),
    ]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    units = test_files(app, src)
    log(
        f"{app.name} on {side}: pytest {shlex.join(common)} on "
        f"{len(units)} {'files, one pytest each' if app.per_file else 'path set'} (log: {logfile})"
    )
    start = time.monotonic()
    records: list[dict[str, Any]] = []
    timed_out = False
    resumed = 0
    rc = 0
    files_timed_out = []
    for i, unit in enumerate(units):
        left = app.suite_timeout - (time.monotonic() - start)
        if left <= 0:
            timed_out = True
            log(f"{app.name} on {side}: suite time limit reached; {len(units) - i} files not run")
            break
        limit = min(left, app.file_timeout) if app.per_file else left
        jsonl = outdir / f"{i:03d}.jsonl"
        env["SQUALL_APPS_OUTCOMES"] = str(jsonl)
        rc_unit, unit_timed_out, unit_resumed = _run_unit(
            [str(py), "-m", "pytest", *unit, *common], common, py, src, env, logfile, limit, k
        )
        rc = rc or rc_unit
        resumed += unit_resumed
        unit_records = read_jsonl(jsonl)
        records += unit_records
        if unit_timed_out:
            if app.per_file and left > app.file_timeout:
                files_timed_out.append(" ".join(unit))
                log(f"{app.name} on {side}: {' '.join(unit)} hit the per-file limit")
            else:
                timed_out = True
        if app.per_file:
            outcomes = fold(unit_records)
            log(
                f"{app.name} on {side}: {' '.join(unit)}: {len(outcomes)} tests, "
                f"{sum(o['outcome'] == 'passed' for o in outcomes.values())} passed, exit {rc_unit}"
            )
    wall = time.monotonic() - start
    outcomes = fold(records)
    summary = {
        "side": side,
        "wall": round(wall, 1),
        "rc": rc,
        "timed_out": timed_out,
        "files_timed_out": files_timed_out,
        "k": k,
        "extra": extra,
        "count": len(outcomes),
        "resumed": resumed,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    log(
        f"{app.name} on {side}: {len(outcomes)} tests, "
        f"{sum(o['outcome'] == 'passed' for o in outcomes.values())} passed, "
        f"{wall:.0f}s, exit {rc}{' (TIMED OUT)' if timed_out else ''}"
        f"{f', resumed {resumed}x after a pytest crash' if resumed else ''}"
    )
    return {"summary": summary, "outcomes": outcomes}


def _run_unit(
    cmd: list[str],
    common: list[str],
    py: Path,
    src: Path,
    env: dict[str, str],
    logfile: Path,
    limit: float,
    k: Optional[str],
) -> tuple[int, bool, int]:
    """One pytest invocation, resumed on the tests it had not reached if it crashed.

    Returns (exit code, whether it hit ``limit``, how many times it was resumed).
    """
    start = time.monotonic()
    resumed = 0
    run_cmd = cmd
    jsonl = Path(env["SQUALL_APPS_OUTCOMES"])
    while True:
        with open(logfile, "a") as out:
            left = limit - (time.monotonic() - start)
            rc, timed_out = _run_bounded(run_cmd, src, env, out, max(left, 1.0))
        missing = _not_reached(read_jsonl(jsonl))
        # A pytest that crashed (INTERNALERROR, a segfault) mid-run leaves tests
        # unreached: run those again in a new pytest, so that one crash costs one test.
        if timed_out or not missing or resumed >= MAX_RESUMES:
            return rc, timed_out, resumed
        resumed += 1
        log(f"pytest ended (exit {rc}) with {len(missing)} tests unreached; resuming")
        run_cmd = [str(py), "-m", "pytest", *common, *missing]
        if k:  # the ids are already selected; -k would only narrow them again
            i = run_cmd.index("-k")
            del run_cmd[i : i + 2]


MAX_RESUMES = 5


def _run_bounded(
    cmd: list[str], cwd: Path, env: dict[str, str], out: Any, timeout: float
) -> tuple[int, bool]:
    """Run pytest in its own session; kill the session at the time limit.

    However it ends (done, timed out, or the harness interrupted), what the
    run started is ended with it: its session, and the servers its tests
    started in sessions of their own (`reaper`).
    """
    out.write(f"\n$ {shlex.join(cmd)}\n")
    out.flush()
    reaper.become_subreaper()
    before = reaper.children(os.getpid())
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    timed_out = False
    try:
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                rc = proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                rc = proc.wait()
    finally:
        # Kernels or servers a test left behind: in the run's session, or
        # (started with a session of their own) re-parented to the harness.
        _kill_group(proc.pid, signal.SIGKILL)
        # Once it has exited, its children have been re-parented.
        proc.wait()
        left = reaper.end_run(proc.pid, before)
        if left:
            out.write(f"\n[apps] ended {len(left)} processes the run left: {'; '.join(left)}\n")
            log(f"ended {len(left)} processes the run left behind (listed in the log)")
    return rc, timed_out


def _not_reached(records: list[dict[str, Any]]) -> list[str]:
    """Collected ids (from the first collection) that have no phase recorded."""
    collected: list[str] = next((r["collected"] for r in records if "collected" in r), [])
    seen = {r["nodeid"] for r in records if "nodeid" in r}
    return [n for n in collected if n not in seen]


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the last line of a killed run may be cut short
    return records


def fold(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One outcome per test from its phases: any failed phase makes it fail."""
    phases: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if "nodeid" in rec:
            phases[rec["nodeid"]].append(rec)
    result = {}
    for nodeid, recs in phases.items():
        failed = [r for r in recs if r["outcome"] == "failed"]
        duration = round(sum(r.get("duration", 0.0) for r in recs), 3)
        if failed:
            first = failed[0]
            outcome = "failed" if first["when"] == "call" else "error"
            result[nodeid] = {
                "outcome": outcome,
                "when": first["when"],
                "message": first.get("message", ""),
                "longrepr": first.get("longrepr", ""),
                "captured": first.get("captured", ""),
                "duration": duration,
            }
        elif not any(r["when"] in ("call", "teardown") for r in recs) and not any(
            r["outcome"] == "skipped" for r in recs
        ):
            result[nodeid] = {
                "outcome": "error",
                "when": "call",
                "message": "the run ended during this test (pytest crashed or was killed)",
                "duration": duration,
            }
        elif any(r["when"] == "call" and r["outcome"] == "passed" for r in recs):
            result[nodeid] = {"outcome": "passed", "duration": duration}
        else:
            skip = next((r for r in recs if r["outcome"] == "skipped"), None)
            xfail = bool(skip and skip.get("xfail"))
            result[nodeid] = {
                "outcome": "xfailed" if xfail else "skipped",
                "message": (skip or {}).get("message", ""),
                "duration": duration,
            }
    return result


# --- saved state -----------------------------------------------------------


def load_saved(work: Path, side: str) -> dict[str, Any]:
    path = work / f"{side}-outcomes.json"
    if path.exists():
        return json.loads(path.read_text())
    return {"summary": None, "outcomes": {}}


def save_merged(work: Path, side: str, result: dict[str, Any], full_run: bool) -> dict[str, Any]:
    """Merge this run's outcomes into the saved ones (a full run replaces them)."""
    saved = load_saved(work, side)
    outcomes = {} if full_run else saved["outcomes"]
    outcomes.update(result["outcomes"])
    summary = result["summary"] if full_run or saved["summary"] is None else saved["summary"]
    merged = {"summary": summary, "outcomes": outcomes, "last_run": result["summary"]}
    (work / f"{side}-outcomes.json").write_text(json.dumps(merged, indent=1))
    return merged


# --- comparing -------------------------------------------------------------

_NORMALISE = [
    (re.compile(r"0x[0-9a-fA-F]+"), "0x?"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<uuid>"),
    (re.compile(r"(/tmp|/private/var|/var/folders)/\S*"), "<tmp>"),
    (re.compile(r"\d+(\.\d+)?"), "N"),
    (re.compile(r"\s+"), " "),
]
_NOISE = ("Enable tracemalloc", "Traceback (most recent call last)")


_DIRECT_CAUSE = "The above exception was the direct cause of the following exception:"
# "path/to/file.py:123: ResourceWarning": where, not what.
_PATH_LINE = re.compile(r"^\S+\.py:\d+: \w+$")


def _unraisable_causes(text: str) -> list[str]:
    """The exceptions pytest reported as unraisable: the one each warning was raised from."""
    lines = [ln.strip().lstrip("|").strip() for ln in text.splitlines()]
    found = []
    for i, line in enumerate(lines):
        if line != _DIRECT_CAUSE:
            continue
        before = [ln for ln in lines[max(0, i - 200) : i] if ln]
        # pytest's long form marks the exception lines with "E "; the first
        # line of the last such block is "Type: message".
        marked = [j for j, ln in enumerate(before) if ln.startswith("E ")]
        if marked:
            j = marked[-1]
            while j > 0 and before[j - 1].startswith("E "):
                j -= 1
            found.append(before[j][1:].strip())
        elif before and not _PATH_LINE.match(before[-1]):
            found.append(before[-1])
    if not found:
        found = [ln for ln in lines if ln.startswith("Exception ignored in:")]
    return found


def _normalise(text: str) -> str:
    for pattern, repl in _NORMALISE:
        text = pattern.sub(repl, text)
    return text


def cause(rec: Optional[dict[str, Any]]) -> str:
    """A grouping key: the failure's exception type and message, numbers stripped."""
    if rec is None:
        return "not run on Squall (the run ended before it, or it was not collected)"
    if rec["outcome"] in ("skipped", "xfailed"):
        return _normalise(f"{rec['outcome']} on Squall: {rec.get('message', '')}")[:240]
    message = rec.get("message", "")
    if "unraisable" in message.lower() or "Exception ignored in:" in message:
        # Unraisable exceptions (an unclosed socket found by the collector, an
        # error in __del__) carry the real cause inside; one test may have several.
        inner = _unraisable_causes(message + "\n" + rec.get("longrepr", ""))
        text = "unraisable: " + " | ".join(sorted({_normalise(c) for c in inner}) or ["?"])
    else:
        lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith(_NOISE)] or ["(no message)"]
        text = _normalise(lines[0])
    if rec["when"] in ("setup", "teardown", "collect"):
        text = f"[{rec['when']}] {text}"
    return text[:300]


class Timing(NamedTuple):
    """A test tests/COMPAT.md lists as timing-dependent, with its failure."""

    app: str
    test: str  # a node id; its parametrisations ("test[...]") are meant too
    failure: str  # found in the cause of a loss this listing excuses

    def excuses(self, app: str, nodeid: str, key: str) -> bool:
        named = nodeid == self.test or nodeid.startswith(self.test + "[")
        return app == self.app and named and self.failure in key


def timing_listed(text: str) -> list[Timing]:
    """The tests COMPAT.md lists as timing-dependent, one marker each beside
    its reason::

        <!-- apps-timing: APP NODEID FAILURE -->

    FAILURE is the cause the harness prints for it (numbers as ``N``). A
    loss of that test with another failure is a loss like any other."""
    return [Timing(*m.groups()) for m in TIMING.finditer(text)]


def compare(
    app: App,
    work: Path,
    tornado: dict[str, Any],
    squall: dict[str, Any],
    only: Optional[set[str]],
    listed: Iterable[Timing] = (),
) -> dict[str, Any]:
    """Tests that pass on Tornado but not on Squall, grouped by cause; those
    ``listed`` as timing-dependent, with the failure listed, apart
    (``timing``)."""
    t_out, s_out = tornado["outcomes"], squall["outcomes"]
    ids = set(t_out) if only is None else (only & set(t_out)) | (only - set(t_out))
    lost: dict[str, list[str]] = defaultdict(list)
    examples: dict[str, dict[str, Any]] = {}
    gained = []
    timing: list[str] = []
    listed = list(listed)
    for nodeid in sorted(ids):
        t = t_out.get(nodeid)
        s = s_out.get(nodeid)
        if t and t["outcome"] == "passed" and (s is None or s["outcome"] != "passed"):
            key = cause(s)
            if any(item.excuses(app.name, nodeid, key) for item in listed):
                timing.append(nodeid)
                examples.setdefault(nodeid, s or {})
                continue
            lost[key].append(nodeid)
            examples.setdefault(key, s or {})
        elif s and s["outcome"] == "passed" and (t is None or t["outcome"] != "passed"):
            gained.append(nodeid)
    groups = sorted(lost.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return {
        "run": len(ids),
        "tornado_passed": sum(1 for i in ids if t_out.get(i, {}).get("outcome") == "passed"),
        "squall_passed": sum(1 for i in ids if s_out.get(i, {}).get("outcome") == "passed"),
        "groups": groups,
        "examples": examples,
        "gained": gained,
        "timing": timing,
    }


def write_report(
    app: App, work: Path, side: str, cmp: dict[str, Any], meta: dict[str, Any]
) -> Path:
    """A markdown file with every lost id and one traceback tail per cause."""
    pure = side == "squall-pure"
    path = work / ("report-pure.md" if pure else "report.md")
    build = "pure" if pure else "compiled"
    out = [f"# {app.name} {app.version} on Squall, {build} ({meta['squall_rev']})", ""]
    out.append(
        f"run {cmp['run']}, passed on Tornado {cmp['tornado_passed']}, "
        f"passed on Squall {cmp['squall_passed']}, "
        f"lost {sum(len(v) for _, v in cmp['groups'])}, gained {len(cmp['gained'])}"
    )
    sections = [(f"{len(ids)} × {key}", ids, key) for key, ids in cmp["groups"]]
    sections += [
        (f"timing-dependent, listed in tests/COMPAT.md: {n}", [n], n) for n in cmp.get("timing", ())
    ]
    for title, nodeids, key in sections:
        out += ["", f"## {title}", ""]
        out += [f"- `{n}`" for n in nodeids]
        example = cmp["examples"][key]
        tail = "\n".join(example.get("longrepr", "").splitlines()[-80:])
        if tail:
            out += ["", "```", tail, "```"]
        captured = "\n".join(example.get("captured", "").splitlines()[-60:])
        if captured:
            out += ["", "captured (less DEBUG/INFO):", "", "```", captured, "```"]
    if cmp["gained"]:
        out += ["", "## pass on Squall, not on Tornado", ""] + [f"- `{n}`" for n in cmp["gained"]]
    path.write_text("\n".join(out) + "\n")
    return path


def fmt_wall(summary: Optional[dict[str, Any]]) -> str:
    if not summary:
        return "-"
    mark = " (timed out)" if summary.get("timed_out") else ""
    return f"{summary['wall']:.0f}s{mark}"


# --- main ------------------------------------------------------------------


def _interruptible() -> None:
    """Let SIGINT, SIGTERM and SIGHUP end the harness through its cleanup.

    SIGINT gets Python's handler even where the harness was started with it
    ignored (a background job of a non-interactive shell, nohup): an ignored
    signal stays ignored in every child, and JupyterHub stops its servers with
    SIGINT first, so they would each take the spawner's whole interrupt
    timeout to stop (a test's teardown then passes its time limit).
    """

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--app", action="append", choices=sorted(APPS), help="run only this app (repeatable)"
    )
    parser.add_argument(
        "-k", help="pytest -k expression (both sides, or the Squall side with --squall-only)"
    )
    side = parser.add_mutually_exclusive_group()
    side.add_argument(
        "--squall-only",
        action="store_true",
        help="run Squall only; compare with the saved Tornado baseline",
    )
    side.add_argument(
        "--tornado-only", action="store_true", help="run Tornado only (refresh the baseline)"
    )
    side.add_argument(
        "--report", action="store_true", help="run nothing; compare the saved outcomes"
    )
    parser.add_argument(
        "--pytest-args", default="", help="more pytest arguments, one string (shlex-split)"
    )
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter for the venvs (default: this one)"
    )
    parser.add_argument(
        "--cache",
        default=os.environ.get("SQUALL_APPS_CACHE", str(Path.home() / ".cache" / "squall-apps")),
    )
    parser.add_argument(
        "--squall-src", default=str(REPO), help="the Squall checkout to install (default: this one)"
    )
    parser.add_argument(
        "--build",
        choices=("compiled", "pure", "both"),
        default="compiled",
        help="which Squall build the Squall side runs: the compiled wheel (default), "
        "the pure-Python one (SQUALL_NO_EXTENSIONS=1), or both, each in its venv",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        help="run only the app's test paths that contain this string (repeatable; "
        "a partial run, as with -k)",
    )
    parser.add_argument("--rebuild", action="store_true", help="remake the venvs")
    parser.add_argument(
        "--no-reinstall",
        action="store_true",
        help="keep the Squall already installed in the venv (to try a patch made there)",
    )
    parser.add_argument(
        "--ids", type=int, default=15, help="ids printed per cause (all are in report.md)"
    )
    parser.add_argument(
        "--tests-repos",
        default=os.environ.get("SQUALL_APPS_REPOS"),
        metavar="DIR",
        help="a directory of local clones named OWNER+NAME (a bare git directory, a work "
        "tree, or either as OWNER+NAME/repo), for every app whose --tests-repo is not "
        "given (default: $SQUALL_APPS_REPOS)",
    )
    parser.add_argument(
        "--tests-repo",
        action="append",
        default=[],
        metavar="OWNER/NAME=PATH",
        help="a local git clone of an app's repository, for apps whose tests are not in "
        "the sdist (repeatable; otherwise the harness clones it into the cache)",
    )
    args = parser.parse_args(argv)
    _interruptible()
    tests_repos = dict(item.split("=", 1) for item in args.tests_repo)
    if args.tests_repos:
        for app in APPS.values():
            if app.tests_repo and app.tests_repo not in tests_repos:
                found = clone_in(Path(args.tests_repos), app.tests_repo)
                if found is not None:
                    tests_repos[app.tests_repo] = str(found)

    cache = Path(args.cache).expanduser().resolve()
    squall_src = Path(args.squall_src).resolve()
    pyver = run(
        [args.python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    ).stdout.strip()
    extra = shlex.split(args.pytest_args)
    partial = bool(args.k or extra or args.file)
    squall_sides = {"compiled": ["squall"], "pure": ["squall-pure"]}.get(
        args.build, ["squall", "squall-pure"]
    )
    wheels: dict[str, Path] = {}
    listed = timing_listed(COMPAT.read_text())
    rows = []
    unfetched: list[str] = []
    for name in args.app or list(APPS):
        app = APPS[name]
        if args.file:
            paths, options = split_args(app.pytest_args)
            chosen = [p for p in paths if any(f in p for f in args.file)]
            if not chosen:
                raise SystemExit(f"{name}: no test path contains {' or '.join(args.file)}")
            app = dataclasses.replace(app, pytest_args=(*chosen, *options))
        work = cache / f"{app.name}-{app.version}" / f"py{pyver}"
        work.mkdir(parents=True, exist_ok=True)
        meta = {"squall_rev": squall_revision(squall_src)}
        only: Optional[set[str]] = None
        if not args.report:
            try:
                src = (
                    fetch_tests(app, cache, tests_repos)
                    if app.tests_repo
                    else empty_workdir(app, cache)
                    if app.tests_installed
                    else fetch_sdist(app, cache)
                )
            except SystemExit as exc:
                # One app that cannot be fetched (no network to its
                # repository here) does not stop the others' runs.
                log(f"{app.name}: not run: {exc}")
                unfetched.append(app.name)
                continue
            sides = (
                squall_sides
                if args.squall_only
                else ["tornado"]
                if args.tornado_only
                else ["tornado", *squall_sides]
            )
            selected: Optional[set[str]] = None
            for s in sides:
                if s == "tornado":
                    py = setup_tornado(app, src, work, args.python, args.rebuild)
                else:
                    if not (work / "tornado-freeze.txt").exists():
                        # The Squall venv copies the Tornado venv's versions.
                        setup_tornado(app, src, work, args.python, args.rebuild)
                    if s not in wheels and not args.no_reinstall:
                        wheels[s] = build_wheel(squall_src, args.python, s == "squall-pure", cache)
                    py = setup_squall(
                        app, src, work, args.python, wheels.get(s, Path()), s,
                        args.rebuild, not args.no_reinstall,
                    )  # fmt: skip
                log(f"{app.name} on {s}: import tornado.web -> {verify(py, s)}")
                result = run_suite(app, s, py, src, work, args.k, extra)
                save_merged(work, s, result, full_run=not partial)
                ran = set(result["outcomes"])
                selected = ran if selected is None else selected | ran
            only = selected if partial else None
        tornado = load_saved(work, "tornado")
        for side in squall_sides:
            squall = load_saved(work, side)
            if not tornado["outcomes"] or not squall["outcomes"]:
                missing = "Tornado" if not tornado["outcomes"] else side
                log(f"{app.name}: no saved {missing} outcomes to compare yet")
                continue
            cmp = compare(app, work, tornado, squall, only, listed)
            report = write_report(app, work, side, cmp, meta)
            rows.append((app, side, cmp, tornado, squall, report))

    if unfetched:
        log(f"not run (sources not fetched): {', '.join(unfetched)}")
    if not rows:
        return 1
    print()
    header = (
        f"{'app':<52} {'run':>6} {'tornado':>8} {'squall':>8} {'lost':>6} {'gained':>6}"
        f"  {'wall tornado':>13} {'wall squall':>13}"
    )
    print(header)
    print("-" * len(header))
    for app, side, cmp, tornado, squall, _ in rows:
        lost = sum(len(v) for _, v in cmp["groups"])
        label = f"{app.name} {app.version}{' (pure)' if side == 'squall-pure' else ''}"
        print(
            f"{label:<52} {cmp['run']:>6} {cmp['tornado_passed']:>8} "
            f"{cmp['squall_passed']:>8} {lost:>6} {len(cmp['gained']):>6}  "
            f"{fmt_wall(tornado.get('last_run')):>13} {fmt_wall(squall.get('last_run')):>13}"
        )
    for app, side, cmp, _, _, report in rows:
        if not cmp["groups"]:
            continue
        print(f"\n{app.name} ({side}): pass on Tornado, not on Squall (details: {report})")
        for key, nodeids in cmp["groups"]:
            print(f"\n  {len(nodeids)} × {key}")
            for n in nodeids[: args.ids]:
                print(f"      {n}")
            if len(nodeids) > args.ids:
                print(f"      ... {len(nodeids) - args.ids} more")
    for app, side, cmp, _, _, report in rows:
        if cmp["timing"]:
            # Lost in the way tests/COMPAT.md gives the reason for (on
            # Tornado too); printed, but no failure of the run.
            print(
                f"\n{app.name} ({side}): lost as tests/COMPAT.md lists, "
                f"timing-dependent (details: {report}):"
            )
            for n in cmp["timing"]:
                print(f"      {n}")
    if unfetched:
        return 1
    return 0 if all(not cmp["groups"] for _, _, cmp, *_ in rows) else 2


if __name__ == "__main__":
    sys.exit(main())
