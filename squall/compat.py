"""Run programs written for Tornado on Squall, unmodified.

From the command line, like ``python``::

    python -m squall.compat app.py [args...]
    python -m squall.compat -m package.module [args...]
    python -m squall.compat --loop uvloop -m package.module [args...]

The program runs on asyncio's own event loop, as it would on Tornado;
``--loop uvloop`` (or ``SQUALL_LOOP=uvloop``) runs it on uvloop's, as
``squall run`` does, for programs that do not depend on asyncio's own
loop; ``auto`` takes uvloop's when it is installed. What it saves is the
loop's own work: Jupyter Server's ``/api/status`` counted 4.5% fewer
instructions a request (benchmarks/callgrind_apps.py ``--loop uvloop``),
which ``make bench-apps`` could not tell from its noise (1.99x Tornado
per CPU-second on uvloop, 2.05x on asyncio's loop, in two runs).

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

Names: what programs and tools read back says Tornado. When ``tornado.X``
is imported, the module's ``__name__`` becomes ``"tornado.X"`` and the
classes and functions it defines take ``__module__ == "tornado.X"``
(``tornado.web.ErrorHandler.__module__ == "tornado.web"``), before the
module is entered in `sys.modules` under that name, so that post-import
hooks keyed on ``tornado.*`` names fire. Squall's own submodules of it
(``squall.web.handler``) become ``tornado.web.handler`` in `sys.modules`
too, and the Squall modules Tornado has that are loaded by then are imported
under their ``tornado`` names (`_import_companions`); one Squall loads
later (``AsyncHTTPClient()`` loading ``squall.simple_httpclient``) is
imported under its ``tornado`` name as soon as it is loaded
(`_PresentingLoader`). `uninstall` puts
Squall's names back; without the alias nothing is renamed. While it is installed, ``importlib.metadata.version("tornado")``
answers `TORNADO_VERSION` (``tornado_distribution``), so instrumentation
that checks the installed tornado's version (OpenTelemetry's) proceeds.

Logging: the loggers ``tornado``, ``tornado.access``, ``tornado.application``
and ``tornado.general`` are made aliases of ``squall``, ``squall.access``,
``squall.application`` and ``squall.general``: `logging.getLogger` returns
the same `logging.Logger` object for either name, so a level, handler or
filter set on ``tornado.access`` applies to Squall's access log. Once a
``tornado`` module is imported the four loggers are named ``tornado.*``
(records say ``record.name == "tornado.access"``, as on Tornado). A logger
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
it runs `install`. Beside it, a ``tornado-6.6.1.dist-info`` says that Squall
provides tornado 6.6.1: pip and `importlib.metadata` see it installed (a
package that requires tornado installs beside Squall without pulling in
the real one), and ``pip uninstall tornado`` removes the alias. It refuses
while a real Tornado is installed (``pip uninstall tornado`` first).
Remove the alias before uninstalling squall (``pip check`` reports the
shim's requirement of squall otherwise).

pip replaces the alias when a package requires an older Tornado
(``tornado<=6.4.2``): the shim and its ``.pth`` go, the real Tornado comes.
A ``squall-tornado-alias.wanted`` file beside them, which pip does not
own, remembers that the alias was wanted: `alias_state` (``python -m
squall.compat --status``, and a warning from ``python -m squall.compat
script.py`` and ``squall run``) then names the Tornado that took its place,
the packages that pinned it and what to do (``pip install --no-deps``, or a
constraints file with ``tornado==6.6.1``).
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
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Optional, Union

import squall
from squall import _tornado_dist
from squall._tornado_dist import ALIAS as _ALIAS
from squall._tornado_dist import ALIAS_MARK as ALIAS_MARK
from squall._tornado_dist import ALIAS_PTH as ALIAS_PTH
from squall._tornado_dist import TARGET as _TARGET
from squall._tornado_dist import AliasState as AliasState
from squall._tornado_dist import alias_state as alias_state
from squall._tornado_dist import dist_info_name, normalize, tornado_distribution
from squall._tornado_dist import install_alias as install_alias
from squall._tornado_dist import uninstall_alias as uninstall_alias

if TYPE_CHECKING:
    import importlib.metadata

#: The Tornado release whose public API Squall implements.
TORNADO_VERSION = _tornado_dist.TORNADO_VERSION
TORNADO_VERSION_INFO = _tornado_dist.TORNADO_VERSION_INFO

# Defined in squall._tornado_dist, documented and shown here.
for _public in (AliasState, alias_state, install_alias, uninstall_alias):
    _public.__module__ = __name__

__all__ = [
    "TORNADO_VERSION",
    "TORNADO_VERSION_INFO",
    "AliasState",
    "alias_state",
    "install",
    "installed",
    "main",
    "uninstall",
]

_LOGGER_SUFFIXES = ("", ".access", ".application", ".general")

_lock = threading.RLock()
_finder: Optional[_TornadoFinder] = None
# Logger names aliased by install -> what loggerDict held there before.
_saved_loggers: dict[str, Union[logging.Logger, logging.PlaceHolder, None]] = {}

_USAGE = """\
usage: python -m squall.compat [--loop asyncio|uvloop|auto] script.py [args...]
       python -m squall.compat [--loop asyncio|uvloop|auto] -m module [args...]
       python -m squall.compat --install-alias | --uninstall-alias | --status

Runs a program written for Tornado on Squall: "import tornado.X" gives squall.X.
--loop (or SQUALL_LOOP): the program's event loop; asyncio's own by default,
as on Tornado; uvloop's (auto: uvloop's when it is installed) is faster.
--install-alias makes that hold for every program of this Python environment;
--status says whether it still does (pip may have replaced it by a Tornado).
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
        importing = _importing()
        importing.add(self.target)
        try:
            module = importlib.import_module(self.target)
        finally:
            importing.discard(self.target)
        self._own_spec = module.__spec__
        # Before the import system enters it in sys.modules under the alias,
        # so that hooks keyed on tornado names (wrapt's post-import hooks,
        # watchers of sys.modules) find the name they wait for.
        _present_as_tornado(module, self.target[len(_TARGET) + 1 :])
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # The import system stamped the alias spec on the module; give it
        # back its own, so that its identity (and importlib.reload, pickle,
        # autoreload's "-m" form) stays Squall's.
        if self._own_spec is not None:
            module.__spec__ = self._own_spec
            rel = self.target[len(_TARGET) + 1 :]
            _offer_homes(module, rel)
            _import_companions(rel)

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
        if ":" in home:
            return _foreign(home)
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


def _foreign(home: str) -> object:
    """Another library's object a Tornado module imported, from its home
    ``"urllib.parse:urlencode"`` (``"datetime:"``: the module): the very
    object, so ``tornado.httputil.urlencode is urllib.parse.urlencode``."""
    where, _, path = home.partition(":")
    found: object = importlib.import_module(where)
    for attr in filter(None, path.split(".")):
        found = getattr(found, attr)
    return found


def _withdraw_homes() -> None:
    for module, previous in _hooked.items():
        module.__dict__.pop("__dir__", None)
        if previous is None:
            module.__dict__.pop("__getattr__", None)
        else:
            module.__dict__["__getattr__"] = previous
    _hooked.clear()


# The modules Tornado 6.6.1 has (its surface snapshot's list, without the
# package): Squall's lazily imported submodules, which are Tornado's, and the
# submodules of platform and the C speedups module Tornado has beside them.
_SQUALL_LAZY: frozenset[str] = squall._LAZY
_TORNADO_MODULES = _SQUALL_LAZY | {
    "platform.asyncio",
    "platform.caresresolver",
    "platform.twisted",
    "speedups",
}

# (object, attribute, value before) for every name rewritten by
# _present_as_tornado, in order, so that uninstall puts each one back.
_renamed: list[tuple[object, str, str]] = []
_presented: set[str] = set()


def _tornado_spelling(name: str) -> str:
    return _ALIAS + name[len(_TARGET) :]


def _rename(obj: object, attr: str, value: str) -> None:
    before = getattr(obj, attr, None)
    if not isinstance(before, str) or before == value:
        return
    try:
        setattr(obj, attr, value)
    except (AttributeError, TypeError):
        return  # a compiled (mypyc) class whose type is immutable keeps its name
    _renamed.append((obj, attr, before))


def _present_as_tornado(module: types.ModuleType, rel: str) -> None:
    """Make ``squall.<rel>`` (being imported as ``tornado.<rel>``) say Tornado's names.

    The module's ``__name__``, and the ``__module__`` of the classes and
    functions it defines (methods included), take the ``tornado`` spelling,
    so that what tools read back (``f"{cls.__module__}.{cls.__qualname__}"``
    in a span name, ``frame.f_globals["__name__"]`` in an error report, the
    name a post-import hook waits for) is what it is on Tornado. Squall's own
    submodules of it that Tornado does not have (``squall.web.handler``) are
    entered in `sys.modules` under their ``tornado`` spelling too: a
    ``__module__`` always names a module that is imported, which
    `inspect.getmodule`, `pickle` and `typing.get_type_hints` rely on. A
    name changes only once its Tornado module is imported (which, after the
    program's first ``tornado`` import, is as soon as Squall loads it), and
    `uninstall` puts every one back.
    """
    if not rel or rel in _presented:
        return
    if not _presented:
        # The first Tornado module imported: the loggers say Tornado's names
        # too (a record's name is its logger's), so that a filter or an error
        # reporter keyed on "tornado.access" (Sentry ignores that logger's
        # lines) meets them as on Tornado. The objects were already shared.
        for suffix in _LOGGER_SUFFIXES:
            _rename(logging.getLogger(_TARGET + suffix), "name", _ALIAS + suffix)
    _presented.add(rel)
    prefix = f"{_TARGET}.{rel}"
    family = {prefix: module}
    for name, sub in list(sys.modules.items()):
        if not name.startswith(prefix + ".") or not isinstance(sub, types.ModuleType):
            continue
        sub_rel = name[len(_TARGET) + 1 :]
        # A submodule Tornado has (tornado.platform.asyncio under
        # tornado.platform) is presented when it is itself imported.
        parts = sub_rel.split(".")
        if any(".".join(parts[:i]) in _TORNADO_MODULES for i in range(len(parts), 1, -1)):
            continue
        family[name] = sub
    for name, member in family.items():
        if name != prefix:
            sys.modules.setdefault(_tornado_spelling(name), member)
            _presented.add(name[len(_TARGET) + 1 :])
        _rename(member, "__name__", _tornado_spelling(name))
    for member in family.values():
        for value in list(member.__dict__.values()):
            if isinstance(value, (type, types.FunctionType, types.BuiltinFunctionType)):
                _rename_defined(value, family)


_companions = threading.local()


def _import_companions(imported: str = "") -> None:
    """Imports, under their ``tornado`` names, the Squall modules Tornado has
    that are loaded, and those that Tornado's ``imported`` module imports.

    On Tornado, ``import tornado.web`` imports ``tornado.iostream``,
    ``tornado.httputil`` and the rest of what it uses, each through the
    import system. Here ``squall.web`` loaded their Squall modules under
    Squall's names; importing them as ``tornado.X`` now presents them as
    Tornado would have (``StreamClosedError.__module__ ==
    "tornado.iostream"`` in an error report) and fires the import hooks
    waiting for those names. Squall imports some modules later than
    Tornado does (``squall.testing`` imports ``squall.httpserver`` when a
    test starts a server): those Tornado's module imports
    (`squall._tornado_imports.IMPORTS`) are imported now, as on Tornado, so a
    hook waiting for ``tornado.httpserver`` (New Relic's agent wraps
    ``HTTPServer.start_request`` there) fires when ``tornado.testing`` is
    imported, not never.
    """
    if getattr(_companions, "busy", False):
        return
    from squall._tornado_imports import IMPORTS

    brought = set(IMPORTS.get(imported, "").split()) if imported else set()
    _companions.busy = True
    try:
        for rel in sorted(_TORNADO_MODULES):  # a package before its submodules
            if f"{_ALIAS}.{rel}" in sys.modules:
                continue
            name = f"{_TARGET}.{rel}"
            if name not in sys.modules and rel not in brought:
                continue
            if name in _importing():
                # Still being imported (this import came from inside it):
                # presented when it is done, by the loader importing it.
                continue
            try:
                importlib.import_module(f"{_ALIAS}.{rel}")
            except ImportError:
                continue  # not importable as it stands (an extra missing): left as it is
    finally:
        _companions.busy = False


def _rename_defined(obj: object, family: dict[str, types.ModuleType]) -> None:
    home = getattr(obj, "__module__", None)
    if not isinstance(home, str) or home not in family:
        return
    _rename(obj, "__module__", _tornado_spelling(home))
    if not isinstance(obj, type):
        return
    for value in list(vars(obj).values()):
        function = getattr(value, "__func__", value)  # classmethod, staticmethod
        if isinstance(function, types.FunctionType):
            method_home = function.__module__
            if method_home in family:
                _rename(function, "__module__", _tornado_spelling(method_home))


def _restore_names() -> None:
    while _renamed:
        obj, attr, before = _renamed.pop()
        try:
            setattr(obj, attr, before)
        except (AttributeError, TypeError):
            pass
    _presented.clear()


def _facade() -> types.ModuleType:
    """The ``tornado`` package: Tornado's version numbers, Squall's submodules."""
    squall = importlib.import_module(_TARGET)
    module = types.ModuleType(_ALIAS, "Squall, answering to the name tornado (see squall.compat).")
    module.version = TORNADO_VERSION  # type: ignore[attr-defined]
    module.version_info = TORNADO_VERSION_INFO  # type: ignore[attr-defined]
    module.squall_version = squall.version  # type: ignore[attr-defined]
    module.__all__ = list(squall.__all__)  # type: ignore[attr-defined]
    module.__path__ = list(squall.__path__)
    # Squall's package file, as the spec's origin says: programs and tools
    # read ``tornado.__file__`` (os.path.dirname, inspect.getfile), and a
    # module without one reads as built in.
    module.__file__ = squall.__file__
    module._squall_facade = True  # type: ignore[attr-defined]
    lazy = _SQUALL_LAZY
    from squall._tornado_homes import HOMES

    # What Tornado's package imported (``tornado.typing``, ``tornado.importlib``).
    imported = {name: home for name, home in HOMES.get("", {}).items() if ":" in home}

    def __getattr__(name: str) -> object:
        if name in lazy:
            return importlib.import_module(f"{_ALIAS}.{name}")
        if name in imported:
            return _foreign(imported[name])
        raise AttributeError(f"module {_ALIAS!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(module.__dict__) | set(lazy) | set(imported))

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__dir__ = __dir__  # type: ignore[method-assign]
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
            return _presenting_spec(fullname, path)
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

    def find_distributions(self, context: object = None) -> list[object]:
        """Answers ``importlib.metadata`` lookups of ``tornado`` (see ``tornado_distribution``).

        Only a lookup by that name on the default path is answered: a listing
        of every distribution, or a search of given directories, is left to
        the distributions installed there.
        """
        name = getattr(context, "name", None)
        if not isinstance(name, str) or normalize(name) != _ALIAS:
            return []
        if vars(context).get("path") is not None:
            return []
        return [tornado_distribution()]


_imports = threading.local()


def _importing() -> set[str]:
    """The ``squall.X`` modules this thread is importing through our loaders."""
    names: Optional[set[str]] = getattr(_imports, "names", None)
    if names is None:
        names = _imports.names = set()
    return names


class _PresentingLoader(importlib.abc.Loader):
    """Loads ``squall.X`` with its own loader, then imports it as ``tornado.X``.

    For a Squall module Tornado has that Squall imports after the program's
    first ``tornado`` import (``AsyncHTTPClient()`` bringing
    ``squall.simple_httpclient``): on Tornado that import is of
    ``tornado.X``, so the module is presented as Tornado's and the hooks
    waiting for the name fire, as soon as it is loaded.
    """

    def __init__(self, loader: importlib.abc.Loader, rel: str) -> None:
        self.loader = loader
        self.rel = rel

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its own loader (reload, get_code, resources).
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        importing = _importing()
        importing.add(module.__name__)
        try:
            self.loader.exec_module(module)
        finally:
            importing.discard(module.__name__)
        if _finder is not None and f"{_ALIAS}.{self.rel}" not in sys.modules:
            importlib.import_module(f"{_ALIAS}.{self.rel}")


def _presenting_spec(
    fullname: str, path: Optional[Sequence[str]]
) -> Optional[importlib.machinery.ModuleSpec]:
    """The spec of ``squall.X`` with a `_PresentingLoader`, if it is to be presented.

    Only a module Tornado has, loaded after a ``tornado`` module was: before
    the program's first ``tornado`` import, `_import_companions` presents
    what is loaded by then.
    """
    if not _presented or not fullname.startswith(_TARGET + ".") or fullname in _importing():
        return None
    rel = fullname[len(_TARGET) + 1 :]
    if rel not in _TORNADO_MODULES or f"{_ALIAS}.{rel}" in sys.modules:
        return None
    # The finders ahead of this one have declined; the path finder is next.
    spec = importlib.machinery.PathFinder.find_spec(fullname, path)
    if spec is None or spec.loader is None:
        return None
    spec.loader = _PresentingLoader(spec.loader, rel)
    return spec


def _finder_position() -> int:
    """Where the hook goes on `sys.meta_path`: just before the path finder.

    Finders already ahead of it stay ahead: an import hook that chains to
    the others (wrapt's post-import hooks, an APM agent's module watcher)
    then sees ``tornado.X`` imports, whichever of it and us came first.
    Ahead of the path finder, a real Tornado on `sys.path` is never found.
    """
    for index, finder in enumerate(sys.meta_path):
        if finder is importlib.machinery.PathFinder:
            return index
    return 0


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
        sys.meta_path.insert(_finder_position(), _finder)
        _alias_loggers()
        from squall import util

        util.running_as_tornado = True


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

        util.running_as_tornado = False
        _withdraw_homes()
        for name, module in list(sys.modules.items()):
            if _is_alias(name) and _is_ours(name, module):
                del sys.modules[name]
        _restore_names()
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


_LOOPS = ("asyncio", "uvloop", "auto")


def _take_loop(args: list[str], environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The event loop asked for (``--loop X`` before the program, else
    ``SQUALL_LOOP``, else asyncio's) and the arguments after the option.

    Raises ValueError naming what was wrong: an unknown loop, or uvloop
    asked for by name where it is not installed."""
    loop, source = environ.get("SQUALL_LOOP", "").strip() or "asyncio", "SQUALL_LOOP"
    if args and (args[0] == "--loop" or args[0].startswith("--loop=")):
        if args[0] == "--loop":
            if len(args) < 2:
                raise ValueError("--loop needs a value: asyncio, uvloop or auto")
            loop, args = args[1], args[2:]
        else:
            loop, args = args[0][len("--loop=") :], args[1:]
        source = "--loop"
    if loop not in _LOOPS:
        raise ValueError(f"{source} {loop!r}: expected asyncio, uvloop or auto")
    if loop != "asyncio":
        installed = importlib.util.find_spec("uvloop") is not None
        if loop == "uvloop" and not installed:
            raise ValueError(f"{source} uvloop: uvloop is not installed (pip install uvloop)")
        loop = "uvloop" if installed else "asyncio"
    return loop, args


def _use_loop(loop: str) -> None:
    """Makes every event loop the program creates from now on uvloop's
    (``loop == "uvloop"``), through asyncio's event loop policy, which is
    what ``asyncio.run``, ``IOLoop()`` and ``IOLoop.current()`` ask."""
    if loop == "uvloop":
        import asyncio  # here: the alias's .pth imports this module in every process

        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


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
    if original_argv[1:] in (["--install-alias"], ["--uninstall-alias"], ["--status"]):
        sys.exit(_alias_command(original_argv[1]))
    try:
        loop, args = _take_loop(original_argv[1:], os.environ)
        module, path, rest = _parse_args(args)
    except ValueError as exc:
        print(f"python -m squall.compat: error: {exc}\n\n{_USAGE}", end="", file=sys.stderr)
        sys.exit(2)
    state = alias_state()
    if state.state in ("replaced", "removed"):
        # This program runs on Squall (the hook below), the environment's
        # other programs do not: say so once, before the program's output.
        print(f"python -m squall.compat: warning: {state.message}", file=sys.stderr)
    install()
    _use_loop(loop)
    # A reload (Application(debug=True)) must come back through this
    # wrapper, or the new process could not import tornado.
    from squall import autoreload

    try:
        autoreload.run_program(module, path, rest, original_argv, path_dir=True)
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
    from squall import netutil

    # By its code object: under the alias the module is named tornado.netutil.
    code = netutil.bind_sockets.__code__
    tb = exc.__traceback__
    address = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is code:
            sockaddr = frame.f_locals.get("sockaddr")
            if isinstance(sockaddr, tuple) and len(sockaddr) >= 2:
                host = f"[{sockaddr[0]}]" if ":" in str(sockaddr[0]) else sockaddr[0]
                address = f"{host}:{sockaddr[1]}"
        tb = tb.tb_next
    return address


def _alias_find_spec(
    name: str, path: Optional[Sequence[str]], target: Optional[types.ModuleType]
) -> Optional[importlib.machinery.ModuleSpec]:
    """The .pth finder's first tornado lookup: `install`, then answer as its finder."""
    install()
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "_squall_pth", False)]
    assert _finder is not None
    return _finder.find_spec(name, path, target)


def _alias_command(option: str) -> int:
    if option == "--install-alias":
        try:
            path = install_alias()
        except (RuntimeError, OSError) as exc:
            print(f"python -m squall.compat: error: {exc}", file=sys.stderr)
            return 1
        print(
            f"wrote {path}: `import tornado` now gives Squall in {sys.prefix}, "
            f"and pip sees {dist_info_name()[: -len('.dist-info')]} provided by Squall "
            "(`pip uninstall tornado` or --uninstall-alias removes both)"
        )
        return 0
    if option == "--status":
        state = alias_state()
        if state.state in ("replaced", "removed"):
            print(f"python -m squall.compat: {state.message}", file=sys.stderr)
            return 1
        print(state.message)
        return 0
    removed = uninstall_alias()
    print(f"removed {removed}" if removed else "no alias was installed")
    return 0


if __name__ == "__main__":
    # Run the copy of this module that imports see, so that there is one
    # hook and one set of saved state.
    from squall.compat import main as _real_main

    _real_main()
