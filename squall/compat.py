"""Run programs written for Tornado on Squall, unmodified.

From the command line, like ``python``::

    python -m squall.compat app.py [args...]
    python -m squall.compat -m package.module [args...]

or from code, before the first ``import tornado``::

    import squall.compat
    squall.compat.install()

`install` puts an import hook first on `sys.meta_path` that answers every
``tornado`` and ``tornado.X`` import with Squall's own module (``squall`` and
``squall.X``): the *same* module object, entered in `sys.modules` under both
names, so classes are identical (``tornado.web.RequestHandler is
squall.web.RequestHandler``) and ``isinstance`` checks hold across the two
spellings. The top-level ``tornado`` package is the one exception: it is a
small facade module whose ``version``/``version_info`` give the Tornado API
level Squall implements (`TORNADO_VERSION`), so that a program checking
``tornado.version_info >= (6, 3)`` takes its modern branch; Squall's own
version is ``tornado.squall_version``, and ``tornado.X`` attributes load
Squall's submodules lazily, as ``squall.X`` does. A
``tornado.X`` for which Squall has no ``squall.X`` raises
`ModuleNotFoundError` naming both. A real Tornado installation is never
imported while the hook is installed.

Logging: the loggers ``tornado``, ``tornado.access``, ``tornado.application``
and ``tornado.general`` are made aliases of ``squall``, ``squall.access``,
``squall.application`` and ``squall.general``: `logging.getLogger` returns
the same `logging.Logger` object for either name, so a level, handler or
filter set on ``tornado.access`` applies to Squall's access log. Records
keep Squall's logger names (``record.name == "squall.access"``). A logger
that already existed under a ``tornado`` name when `install` ran has its
handlers, filters and level moved onto Squall's. One caveat: a
`logging.config.dictConfig` with ``disable_existing_loggers=True`` (its
default) that names only the ``tornado.*`` loggers also sees the ``squall.*``
names as existing loggers and disables them, which is the same objects; pass
``disable_existing_loggers=False`` (or name the ``squall.*`` loggers).

`uninstall` undoes all of it (for tests).

For a whole virtual environment (so that pytest plugins written for Tornado,
``squall run`` workers and every subprocess find it) without wrapping each
command::

    python -m squall.compat --install-alias     # once, with the venv's python
    python -m squall.compat --uninstall-alias   # to undo

writes (or removes) ``squall-tornado-alias.pth`` in the environment's
site-packages: at each start-up Python puts a small finder on
`sys.meta_path` that imports nothing, and on the first ``import tornado``
it runs `install`. It refuses while a real Tornado is installed (``pip
uninstall tornado`` first; a plugin that requires tornado, such as
pytest-tornasync, installs beside Squall with ``pip install --no-deps``).
Remove the alias before uninstalling squall: pip does not know of the file.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import os
import sys
import threading
import types
from collections.abc import Callable, Sequence
from typing import Optional, Union

__all__ = ["TORNADO_VERSION", "TORNADO_VERSION_INFO", "install", "installed", "main", "uninstall"]

#: The Tornado release whose public API Squall implements.
TORNADO_VERSION = "6.6.1"
TORNADO_VERSION_INFO = (6, 6, 1, 0)

_ALIAS = "tornado"
_TARGET = "squall"
_LOGGER_SUFFIXES = ("", ".access", ".application", ".general")

_lock = threading.RLock()
_finder: Optional[_TornadoFinder] = None
# Logger names aliased by install -> what loggerDict held there before.
_saved_loggers: dict[str, Union[logging.Logger, logging.PlaceHolder, None]] = {}

_USAGE = """\
usage: python -m squall.compat script.py [args...]
       python -m squall.compat -m module [args...]
       python -m squall.compat --install-alias | --uninstall-alias

Runs a program written for Tornado on Squall: "import tornado.X" gives squall.X.
--install-alias makes that hold for every program of this Python environment.
"""


def _target_name(fullname: str) -> str:
    return _TARGET + fullname[len(_ALIAS) :]


def _is_alias(fullname: str) -> bool:
    return fullname == _ALIAS or fullname.startswith(_ALIAS + ".")


class _AliasLoader(importlib.abc.Loader):
    """Loads ``tornado.X`` as the already-imported ``squall.X`` module object."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._own_spec: Optional[importlib.machinery.ModuleSpec] = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        if self.target == _TARGET:
            return _facade()
        module = importlib.import_module(self.target)
        self._own_spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system stamped the alias spec on the module; give it
        # back its own, so that its identity (and importlib.reload, pickle,
        # autoreload's "-m" form) stays Squall's.
        if self._own_spec is not None:
            module.__spec__ = self._own_spec
            _offer_homes(module, self.target[len(_TARGET) + 1 :])

    def _target_loader(self) -> importlib.abc.InspectLoader:
        spec = importlib.util.find_spec(self.target)
        loader = getattr(spec, "loader", None)
        if not isinstance(loader, importlib.abc.InspectLoader):
            raise ImportError(f"cannot get the code of {self.target!r}", name=self.target)
        return loader

    # runpy ("python -m squall.compat -m tornado.autoreload") asks the loader
    # for the code to run as __main__: Squall's code.
    def get_code(self, fullname: str) -> Optional[types.CodeType]:
        return self._target_loader().get_code(self.target)

    def is_package(self, fullname: str) -> bool:
        return self._target_loader().is_package(self.target)


# Modules given a __getattr__ by _offer_homes -> the one they had before (or None).
_hooked: dict[types.ModuleType, Optional[Callable[[str], object]]] = {}


def _offer_homes(module: types.ModuleType, rel: str) -> None:
    """Offer the names Tornado's module of that name has because it imports them.

    ``from tornado.web import app_log`` works on Tornado because its web
    module imports ``app_log``; a module-level ``__getattr__`` (PEP 562)
    answers such a name from where it lives, when first asked, so nothing is
    imported early. Programs run as Tornado only: ``squall.X`` users import
    names from their homes.
    """
    from squall._tornado_homes import HOMES

    homes = HOMES.get(rel)
    if not homes or module in _hooked:
        return
    previous: Optional[Callable[[str], object]] = module.__dict__.get("__getattr__")

    def __getattr__(name: str) -> object:
        home = homes.get(name)
        if home is None:
            if previous is not None:
                return previous(name)
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        if not home:  # the package itself ("tornado.web.tornado")
            return importlib.import_module(_ALIAS)
        where, _, attr = home.rpartition(".")
        if where:
            parent = importlib.import_module(f"{_TARGET}.{where}")
            if hasattr(parent, attr):
                return getattr(parent, attr)
        return importlib.import_module(f"{_TARGET}.{home}")

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(homes))

    _hooked[module] = previous
    module.__dict__["__getattr__"] = __getattr__
    module.__dict__["__dir__"] = __dir__


def _withdraw_homes() -> None:
    for module, previous in _hooked.items():
        module.__dict__.pop("__dir__", None)
        if previous is None:
            module.__dict__.pop("__getattr__", None)
        else:
            module.__dict__["__getattr__"] = previous
    _hooked.clear()


def _facade() -> types.ModuleType:
    """The ``tornado`` package: Tornado's version numbers, Squall's submodules."""
    squall = importlib.import_module(_TARGET)
    module = types.ModuleType(_ALIAS, "Squall, answering to the name tornado (see squall.compat).")
    module.version = TORNADO_VERSION  # type: ignore[attr-defined]
    module.version_info = TORNADO_VERSION_INFO  # type: ignore[attr-defined]
    module.squall_version = squall.version  # type: ignore[attr-defined]
    module.__all__ = list(squall.__all__)  # type: ignore[attr-defined]
    module.__path__ = list(squall.__path__)
    module._squall_facade = True  # type: ignore[attr-defined]
    lazy = squall._LAZY

    def __getattr__(name: str) -> types.ModuleType:
        if name in lazy:
            return importlib.import_module(f"{_ALIAS}.{name}")
        raise AttributeError(f"module {_ALIAS!r} has no attribute {name!r}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _is_ours(name: str, module: object) -> bool:
    return module is sys.modules.get(_target_name(name)) or bool(
        getattr(module, "_squall_facade", False)
    )


class _TornadoFinder(importlib.abc.MetaPathFinder):
    """Finds ``tornado`` and ``tornado.X`` as aliases of ``squall`` and ``squall.X``."""

    def find_spec(
        self,
        fullname: str,
        path: Optional[Sequence[str]],
        target: Optional[types.ModuleType] = None,
    ) -> Optional[importlib.machinery.ModuleSpec]:
        if not _is_alias(fullname):
            return None
        squall_name = _target_name(fullname)
        try:
            squall_spec = importlib.util.find_spec(squall_name)
        except ModuleNotFoundError:
            squall_spec = None
        if squall_spec is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: squall.compat maps it to {squall_name!r}, "
                "which Squall does not have",
                name=fullname,
            )
        # The origin is Squall's file: runpy takes __file__ from it when it
        # runs "-m tornado.X" as __main__.
        return importlib.machinery.ModuleSpec(
            fullname,
            _AliasLoader(squall_name),
            origin=squall_spec.origin,
            is_package=squall_spec.submodule_search_locations is not None,
        )


def installed() -> bool:
    """True while the ``tornado`` import hook is installed."""
    return _finder is not None


def install() -> None:
    """Make ``tornado`` imports and loggers resolve to Squall's (idempotent).

    Raises:
        RuntimeError: a module named ``tornado`` that is not Squall's is
            already imported (a real Tornado), so aliases would mix the two.
    """
    global _finder
    with _lock:
        if _finder is not None:
            return
        for name, module in list(sys.modules.items()):
            if _is_alias(name) and not _is_ours(name, module):
                raise RuntimeError(
                    f"{name!r} is already imported and is not Squall's module "
                    f"({getattr(module, '__file__', module)!r}); install squall.compat "
                    "before anything imports tornado"
                )
        _finder = _TornadoFinder()
        sys.meta_path.insert(0, _finder)
        _alias_loggers()
        from squall import util

        util._running_as_tornado = True


def uninstall() -> None:
    """Remove the import hook, the ``tornado`` module aliases and the logger aliases."""
    global _finder
    with _lock:
        if _finder is None:
            return
        try:
            sys.meta_path.remove(_finder)
        except ValueError:
            pass
        _finder = None
        from squall import util

        util._running_as_tornado = False
        _withdraw_homes()
        for name, module in list(sys.modules.items()):
            if _is_alias(name) and _is_ours(name, module):
                del sys.modules[name]
        _unalias_loggers()


def _logging_lock() -> threading.RLock:
    # logging's module lock guards Manager.loggerDict; it is private, so
    # fall back to our own where it is missing.
    lock = getattr(logging, "_lock", None)
    return lock if lock is not None else _lock


def _clear_logging_cache(manager: logging.Manager) -> None:
    # Loggers cache isEnabledFor answers; changed parents invalidate them.
    clear = getattr(manager, "_clear_cache", None)
    if clear is not None:
        clear()


def _alias_loggers() -> None:
    manager = logging.Logger.manager
    # Create the squall loggers first, so that "squall.access" and friends
    # have "squall" (not the root) as parent and a level on "tornado"
    # reaches them.
    squall_loggers = {s: logging.getLogger(_TARGET + s) for s in _LOGGER_SUFFIXES}
    with _logging_lock():
        for suffix, squall_logger in squall_loggers.items():
            alias = _ALIAS + suffix
            previous = manager.loggerDict.get(alias)
            _saved_loggers[alias] = previous
            if isinstance(previous, logging.Logger) and previous is not squall_logger:
                _merge_logger(previous, squall_logger)
            elif isinstance(previous, logging.PlaceHolder):
                # Loggers already created below the alias ("tornado.x.y")
                # now hang under Squall's.
                for child in list(previous.loggerMap):
                    child.parent = squall_logger
            manager.loggerDict[alias] = squall_logger
        _clear_logging_cache(manager)


def _merge_logger(source: logging.Logger, dest: logging.Logger) -> None:
    for handler in source.handlers:
        if handler not in dest.handlers:
            dest.addHandler(handler)
    for flt in source.filters:
        dest.addFilter(flt)
    if source.level != logging.NOTSET:
        dest.setLevel(source.level)
    if not source.propagate:
        dest.propagate = False
    if source.disabled:
        dest.disabled = True


def _unalias_loggers() -> None:
    manager = logging.Logger.manager
    with _logging_lock():
        for alias, previous in _saved_loggers.items():
            current = manager.loggerDict.get(alias)
            if current is not logging.getLogger(_TARGET + alias[len(_ALIAS) :]):
                continue  # replaced by someone else since: leave it
            if previous is None or isinstance(previous, logging.PlaceHolder):
                del manager.loggerDict[alias]
            else:
                manager.loggerDict[alias] = previous
        _saved_loggers.clear()
        _clear_logging_cache(manager)


def _parse_args(args: list[str]) -> tuple[Optional[str], Optional[str], list[str]]:
    if not args:
        raise ValueError("a script path or -m module is required")
    first = args[0]
    if first in ("-h", "--help"):
        print(_USAGE, end="")
        sys.exit(0)
    if first == "-m":
        if len(args) < 2:
            raise ValueError("-m needs a module name")
        return args[1], None, args[2:]
    if first.startswith("-m"):
        return first[2:], None, args[1:]
    if first == "--":
        return _parse_args(args[1:]) if len(args) > 1 else _parse_args([])
    if first.startswith("-"):
        raise ValueError(f"unknown option {first!r}")
    return None, first, args[1:]


def main() -> None:
    """``python -m squall.compat``: run a Tornado program on Squall.

    See the module documentation for the arguments.
    """
    original_argv = sys.argv[:]
    if original_argv[1:] in (["--install-alias"], ["--uninstall-alias"]):
        sys.exit(_alias_command(original_argv[1]))
    try:
        module, path, rest = _parse_args(original_argv[1:])
    except ValueError as exc:
        print(f"python -m squall.compat: error: {exc}\n\n{_USAGE}", end="", file=sys.stderr)
        sys.exit(2)
    install()
    # A reload (Application(debug=True)) must come back through this
    # wrapper, or the new process could not import tornado.
    from squall import autoreload

    autoreload._wrap_main(original_argv)
    try:
        autoreload._run_main(module, path, rest, original_argv[0], path_dir=True)
    except OSError as exc:
        address = _listen_address(exc)
        if address is None:
            raise
        # A port in use is the commonest first-run failure: one line saying
        # which address, not a traceback through the program and runpy.
        print(
            f"python -m squall.compat: error: cannot listen on {address}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        sys.exit(1)


def _listen_address(exc: OSError) -> Optional[str]:
    """``host:port`` when ``exc`` is `~squall.netutil.bind_sockets` failing to bind."""
    tb = exc.__traceback__
    address = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "bind_sockets" and frame.f_globals.get("__name__") == (
            "squall.netutil"
        ):
            sockaddr = frame.f_locals.get("sockaddr")
            if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
                host = f"[{sockaddr[0]}]" if ":" in str(sockaddr[0]) else sockaddr[0]
                address = f"{host}:{sockaddr[1]}"
        tb = tb.tb_next
    return address


# -- the alias for a whole environment (a .pth file) ----------------------------------

ALIAS_PTH = "squall-tornado-alias.pth"
"""The file ``--install-alias`` writes into site-packages."""

# One line that site.py runs at every start-up (a .pth line that begins with
# "import" is executed): a finder that imports nothing until a tornado name
# is looked up, then hands over to _alias_find_spec.
_PTH_LINE = (
    "import sys; sys.meta_path.insert(0, type('SquallTornadoAlias', (), {'_squall_pth': True, "
    "'find_spec': staticmethod(lambda name, path=None, target=None: "
    "__import__('squall.compat').compat._alias_find_spec(name, path, target) "
    "if name == 'tornado' or name.startswith('tornado.') else None)})())\n"
)


def _alias_find_spec(
    name: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType]
) -> Optional[importlib.machinery.ModuleSpec]:
    """The .pth finder's first tornado lookup: `install`, then answer as its finder."""
    install()
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "_squall_pth", False)]
    assert _finder is not None
    return _finder.find_spec(name, path, target)


def _real_tornado() -> Optional[str]:
    """Where a real Tornado is installed (looked up past any alias), or None."""
    import importlib.metadata

    spec = importlib.machinery.PathFinder.find_spec(_ALIAS)
    if spec is not None:
        return str(spec.origin or list(spec.submodule_search_locations or ["?"])[0])
    try:
        dist = importlib.metadata.distribution(_ALIAS)
    except importlib.metadata.PackageNotFoundError:
        return None
    return f"the distribution tornado {dist.version}"


def install_alias(site_dir: Optional[str] = None) -> str:
    """Makes ``import tornado`` give Squall in every program of this environment.

    Args:
        site_dir: the site-packages directory (this interpreter's by default).

    Returns:
        The path of the ``.pth`` file written.

    Raises:
        RuntimeError: a real Tornado is installed; the message says how to proceed.
    """
    import sysconfig

    found = _real_tornado()
    if found is not None:
        raise RuntimeError(
            f"a real Tornado is installed ({found}): `pip uninstall tornado` first "
            "(a plugin that requires tornado, such as pytest-tornasync, can stay: "
            "install it with `pip install --no-deps`)"
        )
    target = os.path.join(site_dir or sysconfig.get_paths()["purelib"], ALIAS_PTH)
    with open(target, "w") as f:
        f.write(_PTH_LINE)
    return target


def uninstall_alias(site_dir: Optional[str] = None) -> Optional[str]:
    """Removes what `install_alias` wrote; returns its path, or None if it was not there."""
    import sysconfig

    target = os.path.join(site_dir or sysconfig.get_paths()["purelib"], ALIAS_PTH)
    try:
        os.remove(target)
    except FileNotFoundError:
        return None
    return target


def _alias_command(option: str) -> int:
    if option == "--install-alias":
        try:
            path = install_alias()
        except (RuntimeError, OSError) as exc:
            print(f"python -m squall.compat: error: {exc}", file=sys.stderr)
            return 1
        print(f"wrote {path}: `import tornado` now gives Squall in {sys.prefix}")
        return 0
    removed = uninstall_alias()
    print(f"removed {removed}" if removed else "no alias was installed")
    return 0


if __name__ == "__main__":
    # Run the copy of this module that imports see, so that there is one
    # hook and one set of saved state.
    from squall.compat import main as _real_main

    _real_main()
