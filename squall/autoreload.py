"""Restart the process when its source files change (Tornado's ``tornado.autoreload``).

In a program: `start` checks, every ``check_time`` milliseconds on the
current `~squall.ioloop.IOLoop`, the modification time of every loaded
module's file and of every file given to `watch`; when one changes, the
hooks from `add_reload_hook` run and the process re-executes itself with the
same interpreter and arguments (``os.execv``; a new process and an exit on
platforms without it). ``Application(debug=True)`` or
``Application(autoreload=True)`` calls `start` for you. Processes made by
`squall.process.fork_processes` never reload (the parent would lose them).

From the command line, the wrapper also survives errors that stop the
program before it could start watching (a syntax error, an exception at
import time)::

    python -m squall.autoreload path/to/script.py [args...]
    python -m squall.autoreload -m package.module [args...]
    python -m squall.autoreload --until-success script.py   # stop after exit status 0

The program runs in the wrapper's process, as ``__main__``. When it exits or
fails, the wrapper keeps watching its files (including those named in the
traceback) and runs it again after the next change. A restart re-executes
the wrapper too, in the form it was started with: ``-m module`` stays
``-m module``, a script path stays a path.

Reloading re-executes the process, so it is for development, not for
production: sockets are closed and in-memory state is lost.
"""

from __future__ import annotations

import os
import sys

_this_file = globals().get("__file__")
if (
    __name__ == "__main__"
    and isinstance(_this_file, str)
    and sys.path
    and sys.path[0] == os.path.dirname(os.path.abspath(_this_file))
):
    # Run as a script, Python put squall/ first on the path, where our own
    # module names (squall/platform, squall/process...) could shadow others.
    del sys.path[0]

import functools  # noqa: E402
import importlib.util  # noqa: E402
import runpy  # noqa: E402
import signal as _signal  # noqa: E402
import subprocess  # noqa: E402
import traceback  # noqa: E402
import types  # noqa: E402
import weakref  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Optional  # noqa: E402

from squall import ioloop, util  # noqa: E402
from squall.log import gen_log  # noqa: E402

__all__ = ["add_reload_hook", "main", "start", "wait", "watch"]

# Public as in Tornado, where it may be missing on some platforms.
signal: Optional[types.ModuleType] = _signal

_has_execv = sys.platform != "win32"
_watched_files: set[str] = set()
_reload_hooks: list[Callable[[], None]] = []
_reload_attempted = False
_io_loops: weakref.WeakKeyDictionary[ioloop.IOLoop, bool] = weakref.WeakKeyDictionary()
# The interpreter arguments that re-run a wrapper (``-m squall.autoreload
# ...`` or ``-m squall.compat ...``) which started this process; None when
# the program was started directly. The outermost wrapper sets it.
_wrapper_argv: Optional[list[str]] = None
# Modification times taken by the wrapper before it ran the program, so that
# an edit made while the program was starting (or failing) is not missed by
# the first check, which would otherwise take the edited time as the base.
_initial_mtimes: dict[str, float] = {}

_WRAPPER_CHECK_TIME = 200  # ms

_USAGE = """\
usage: python -m squall.autoreload [--until-success] -m module [args...]
       python -m squall.autoreload [--until-success] path/to/script.py [args...]

Runs the program and runs it again whenever one of its source files changes.
  -m module         run a module, as ``python -m module`` does
  --until-success   stop after the program exits with status 0
  --                end of these options: what follows is the program's
"""


def start(check_time: int = 500) -> None:
    """Begin watching source files on the current IOLoop.

    Calling it again for the same IOLoop does nothing.

    Args:
        check_time: milliseconds between two checks of the files.
    """
    io_loop = ioloop.IOLoop.current()
    if io_loop in _io_loops:
        return
    _io_loops[io_loop] = True
    if len(_io_loops) > 1:
        # The module's name as the program imported it: a program's test
        # written for Tornado expects Tornado's text in this log line.
        name = "tornado.autoreload" if util.running_as_tornado else "squall.autoreload"
        gen_log.warning("%s started more than once in the same process", name)
    modify_times = dict(_initial_mtimes)
    callback = functools.partial(_reload_on_update, modify_times)
    ioloop.PeriodicCallback(callback, check_time).start()


def wait() -> None:
    """Block, watching files on a new IOLoop, until one changes; then restart.

    For the end of scripts that do not run an IOLoop of their own (test
    runners, batch jobs) and should run again after an edit.
    """
    _wait(500)


def _wait(check_time: int) -> None:
    io_loop = ioloop.IOLoop(make_current=False)
    io_loop.add_callback(start, check_time)
    io_loop.start()


def watch(filename: str) -> None:
    """Restart also when ``filename`` changes (modules are watched already)."""
    _watched_files.add(filename)


def add_reload_hook(fn: Callable[[], None]) -> None:
    """Call ``fn()`` just before the process re-executes itself.

    Files and sockets are closed by the exec already (Python opens them
    non-inheritable); use hooks for other cleanup.
    """
    _reload_hooks.append(fn)


def _set_wrapper_argv(argv: list[str]) -> None:
    """Record how a wrapper was started, unless an outer wrapper did already."""
    global _wrapper_argv
    if _wrapper_argv is None:
        _wrapper_argv = list(argv)


def _reload_on_update(modify_times: dict[str, float]) -> None:
    if _reload_attempted:
        return  # an exec failed or a hook is slow: do not try twice
    # Imported here: the wrapper needs it only once it watches, and
    # starting fast matters to a restart.
    from squall import process

    if process.task_id() is not None:
        # A child of fork_processes: re-executing it would orphan it from
        # the parent that watches its children.
        return
    # Each file once per check: a module may be in sys.modules under two
    # names (squall.compat registers every squall module as tornado.* too).
    paths: dict[str, None] = {}
    for module in list(sys.modules.values()):
        if not isinstance(module, types.ModuleType):
            continue
        path = getattr(module, "__file__", None)
        if not isinstance(path, str):
            continue
        if path.endswith((".pyc", ".pyo")):
            path = path[:-1]
        paths[path] = None
    for path in list(_watched_files):
        paths[path] = None
    for path in paths:
        _check_file(modify_times, path)


def _check_file(modify_times: dict[str, float], path: str) -> None:
    try:
        modified = os.stat(path).st_mtime
    except OSError:
        return
    previous = modify_times.setdefault(path, modified)
    if previous != modified:
        gen_log.info("%s modified; restarting server", path)
        _reload()


def _restart_argv() -> list[str]:
    """The interpreter arguments that start this program again the same way."""
    if _wrapper_argv is not None:
        return list(_wrapper_argv)
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name != "__main__":
        # Started with "python -m name": keep the module form, so that
        # relative imports and sys.path work as the first time.
        name = spec.name
        if name.endswith(".__main__"):
            name = name[: -len(".__main__")]
        return ["-m", name] + sys.argv[1:]
    # The path form. If the current directory was on sys.path (as an empty
    # entry), keep it there for the new process through PYTHONPATH.
    prefix = "." + os.pathsep
    if sys.path and sys.path[0] == "":
        current = os.environ.get("PYTHONPATH", "")
        if not current.startswith(prefix):
            os.environ["PYTHONPATH"] = prefix + current
    return list(sys.argv)


def _reload() -> None:
    global _reload_attempted
    _reload_attempted = True
    for fn in _reload_hooks:
        fn()
    if signal is not None and hasattr(signal, "setitimer"):
        # A pending interval timer would survive the exec and kill the new
        # process with SIGALRM.
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
    argv = [sys.executable] + _restart_argv()
    # exec replaces the process without flushing Python's buffers.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    if _has_execv:
        os.execv(sys.executable, argv)
    else:
        subprocess.Popen(argv)
        os._exit(0)


def _parse_args(args: list[str]) -> tuple[Optional[str], Optional[str], bool, list[str]]:
    """(module, path, until_success, program args) from the wrapper's arguments.

    The wrapper's options are read up to the first argument that is not
    one of them, ``-m module`` included, as Tornado's wrapper reads them:
    ``-m app --until-success -- --port=8000`` runs ``app`` until it
    succeeds with ``--port=8000`` as its only argument (a later ``-m``
    replaces an earlier one). A ``--`` ends the wrapper's options and is
    not passed on. After ``-m module``, another option starting with ``-``
    is the program's (Tornado's wrapper refuses it).
    """
    until_success = False
    module: Optional[str] = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--until-success":
            until_success = True
        elif arg in ("-h", "--help"):
            print(_USAGE, end="")
            sys.exit(0)
        elif arg == "-m":
            if i + 1 >= len(args):
                raise _UsageError("-m needs a module name")
            i += 1
            module = args[i]
        elif arg.startswith("-m"):
            module = arg[2:]
        elif arg == "--":
            i += 1
            break
        elif arg.startswith("-") and arg != "-":
            if module is not None:
                break
            raise _UsageError(f"unknown option {arg!r}")
        else:
            break
        i += 1
    rest = args[i:]
    if module is not None:
        return module, None, until_success, rest
    if not rest:
        raise _UsageError("either -m module or a script path is required")
    return None, rest[0], until_success, rest[1:]


class _UsageError(Exception):
    pass


def _main_file(module: Optional[str], path: Optional[str]) -> Optional[str]:
    if module is None:
        return os.path.abspath(path) if path is not None and os.path.isfile(path) else None
    try:
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.submodule_search_locations is not None:
            # A package runs its __main__ module.
            spec = importlib.util.find_spec(module + ".__main__")
    except Exception:
        # Finding a submodule imports its parents, which may fail; runpy
        # reports that with a traceback of its own.
        return None
    if spec is not None and spec.has_location and spec.origin:
        return spec.origin
    return None


def _remember_mtime(module: Optional[str], path: Optional[str]) -> None:
    main_file = _main_file(module, path)
    if main_file is not None:
        try:
            _initial_mtimes[main_file] = os.stat(main_file).st_mtime
        except OSError:
            pass


def _wrap_main(original_argv: list[str]) -> None:
    # A reload restarts the program as it was started: ``-m module`` when
    # __main__ was imported as a module, else the command line as it is.
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if main_spec is not None and main_spec.name != "__main__":
        _set_wrapper_argv(["-m", main_spec.name] + original_argv[1:])
    else:
        _set_wrapper_argv(original_argv)


def _run_main(
    module: Optional[str],
    path: Optional[str],
    rest: list[str],
    argv0: str,
    *,
    path_dir: bool = False,
) -> None:
    # Runs the wrapped program as __main__ with its own arguments in sys.argv;
    # ``path_dir``: a script's folder is importable, as under "python app.py".
    if module is not None:
        sys.argv = [argv0] + rest
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        assert path is not None
        sys.argv = [path] + rest
        if path_dir and os.path.isfile(path):
            sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        runpy.run_path(path, run_name="__main__")


def run_program(
    module: Optional[str],
    path: Optional[str],
    rest: list[str],
    original_argv: list[str],
    *,
    path_dir: bool = False,
) -> None:
    """Run ``-m module`` (or the script ``path``) as ``__main__``, with ``rest`` as its arguments.

    A reload then restarts the process with ``original_argv`` (its
    ``sys.argv`` when it started), so a wrapper's command line (such as
    ``python -m squall.compat app.py``) comes back through the wrapper.
    ``path_dir``: the script's folder is importable, as under ``python app.py``.
    """
    _wrap_main(original_argv)
    _run_main(module, path, rest, original_argv[0], path_dir=path_dir)


def main() -> None:
    """Run a program under the reloader: ``python -m squall.autoreload``.

    See the module documentation for the arguments.
    """
    original_argv = sys.argv[:]
    _wrap_main(original_argv)
    try:
        module, path, until_success, rest = _parse_args(original_argv[1:])
    except _UsageError as exc:
        print(f"python -m squall.autoreload: error: {exc}\n\n{_USAGE}", end="", file=sys.stderr)
        sys.exit(2)

    _remember_mtime(module, path)
    exit_status: object = 1
    try:
        _run_main(module, path, rest, original_argv[0])
    except SystemExit as exc:
        exit_status = exc.code
        gen_log.info("Script exited with status %s", exc.code)
    except Exception as exc:
        gen_log.warning("Script exited with uncaught exception", exc_info=True)
        # A module that failed at import time is not in sys.modules, so
        # watch every file the traceback went through.
        for frame in traceback.extract_tb(exc.__traceback__):
            watch(frame.filename)
        if isinstance(exc, SyntaxError) and exc.filename:
            watch(exc.filename)
    else:
        exit_status = 0
        gen_log.info("Script exited normally")
    sys.argv = original_argv
    # runpy ran the program as __main__, so it is not in sys.modules under
    # its own name: watch its file explicitly.
    main_file = _main_file(module, path)
    if main_file is not None:
        watch(main_file)
    if until_success and exit_status in (0, None):
        return
    # Nothing else runs in the wrapper now: checking often costs little and
    # restarts sooner after the fix.
    _wait(_WRAPPER_CHECK_TIME)


if __name__ == "__main__":
    # Run the copy of this module that the program itself imports, so that
    # its state (the wrapper's arguments) is the one _reload reads.
    from squall.autoreload import main as _real_main

    _real_main()
