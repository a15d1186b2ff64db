"""Describe a Tornado-API package's surface as plain data, the same way for Tornado and Squall.

Run by the interpreter that has the package (standard library only)::

    python probe.py > tornado.json                # in a venv with Tornado 6.6.1
    python probe.py --compat > squall.json        # Squall answering to "tornado" (squall.compat)

Squall is probed as a Tornado program sees it: through `squall.compat`, with
``tornado.X`` imports answered by Squall's modules.

Four parts, each a dict of "key -> description" so that two runs compare key
by key (`run.py` does it; tests/test_surface.py does it for Squall against
the checked-in Tornado snapshot):

- ``names``: every public module of Tornado's; per module, each name `dir()`
  gives that is not private (loggers and re-exports included), what it is,
  each function's signature, each class's public members and their
  signatures. Names bound to other libraries' modules or to typing
  constructs are left out: they are what a module imported, not what it
  offers.
- ``states``: objects after each step of their life, driven by the same code
  on both (`lifecycle.py`): which attributes are present and what kind of
  value each holds.
- ``warnings``: for each call Tornado documents as deprecated (and a few
  others), which warnings it emits: category and exact text.
- ``raises``: for calls that fail, the exception type and where it
  surfaces: at the call, or when the awaitable it returned is awaited.
- ``coroutines``: for every function and every method (private ones too) of
  the public classes, whether `inspect.iscoroutinefunction` says so (what
  sentry-sdk checks on ``RequestHandler._execute`` before wrapping it).
- ``qualnames``: ``__module__`` and ``__qualname__`` of each public class and
  ``__name__`` of each module, as read back (not respelled): under
  `squall.compat` they should say ``tornado``.
- ``private``: the private attributes of the objects the ``states`` part
  records (those inherited from private base classes included).
- ``first_step``: public coroutines driven by hand with ``send(None)`` (as
  tests and frameworks do): whether the first step raises (and what),
  returns, or suspends; a call returning a Future is recorded with the
  Future's state right after the call.

``run.py`` also compares the members a public class has on Squall beyond
Tornado's (``extras``) from the ``names`` of both.

Keys and descriptions name modules relative to the package ("web.RequestHandler").
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import pkgutil
import sys
import types
import typing
from typing import Any

# Modules whose names in another module are imports, not offerings.
_IMPORT_ORIGINS = ("typing", "typing_extensions", "collections.abc", "types", "_typeshed")
# Where an imported object that its own module does not name is looked for
# first (``types.TracebackType`` says it is ``builtins.traceback``).
_PREFERRED_HOMES = ("__future__", "types", "typing", "collections.abc", "asyncio")
# Modules that need an optional dependency; compared when both sides import them.
_OPTIONAL = ("curl_httpclient", "platform.caresresolver", "platform.twisted")


def tornado_modules(package: str) -> list[str]:
    """Tornado's public module names (relative), found by walking the installed package."""
    pkg = importlib.import_module(package)
    found = [""]
    for info in pkgutil.walk_packages(pkg.__path__, package + "."):
        rel = info.name[len(package) + 1 :]
        if (
            rel == "test"
            or rel.startswith("test.")
            or any(p.startswith("_") for p in rel.split("."))
        ):
            continue
        found.append(rel)
    return sorted(found)


def _qual(package: str, rel: str) -> str:
    return package if not rel else f"{package}.{rel}"


def _module_of(obj: Any) -> str:
    """The module an object comes from, Squall's spelled as Tornado's."""
    if isinstance(obj, types.ModuleType):
        name = obj.__name__
    else:
        name = getattr(obj, "__module__", None) or ""
    if not isinstance(name, str):
        return "?"
    if name == "squall" or name.startswith("squall."):
        name = "tornado" + name[len("squall") :]
    return name


def _origin(obj: Any, package: str) -> str:
    """Where an object comes from: "" for the package itself, else its module."""
    name = _module_of(obj)
    if name == package or name.startswith(package + "."):
        return ""
    return name


def _home(obj: Any, package: str) -> str:
    """``"log.app_log"``: the public module and name a re-exported object lives at."""
    if isinstance(obj, types.ModuleType):
        return _module_of(obj)[len(package) + 1 :]
    if isinstance(obj, logging.Logger):
        log = importlib.import_module(f"{package}.log")
        for name in dir(log):
            if getattr(log, name) is obj:
                return f"log.{name}"
        return "?"
    parts = _module_of(obj)[len(package) + 1 :].split(".")
    public = [p for p in parts if not p.startswith("_")]
    return ".".join(public + [getattr(obj, "__name__", "?")])


def _default(value: Any) -> str:
    if value is inspect.Parameter.empty:
        return ""
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return repr(value)
    if isinstance(value, (tuple, list, dict, set, frozenset)) and not value:
        return repr(value)
    return "<object>"  # a sentinel or a function: its identity is not comparable


def signature(obj: Any, drop_first: bool = False) -> str:
    """Parameter names, kinds and defaults (annotations left out)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "?"
    params = list(sig.parameters.values())
    if (
        drop_first
        and params
        and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD)
    ):
        params = params[1:]
    out = []
    for p in params:
        text = {
            p.VAR_POSITIONAL: "*" + p.name,
            p.VAR_KEYWORD: "**" + p.name,
        }.get(p.kind, p.name)
        if p.kind is p.KEYWORD_ONLY:
            text = "kw:" + text
        elif p.kind is p.POSITIONAL_ONLY:
            text = "pos:" + text
        default = _default(p.default)
        if default:
            text += "=" + default
        out.append(text)
    return "(" + ", ".join(out) + ")"


def kind_of(value: Any, package: str) -> str:
    """A short description of a value: its kind and, for plain values, its type."""
    if value is None:
        return "None"
    if isinstance(value, types.ModuleType):
        return "module"
    if isinstance(value, type):
        return "class"
    if callable(value):
        return "function"
    return "value:" + type_name(value, package)


def type_name(value: Any, package: str = "") -> str:
    """The value's type by name: the first public class of its MRO."""
    for cls in type(value).__mro__:
        if not cls.__name__.startswith("_"):
            return cls.__name__
    return type(value).__name__


def _member_kind(cls: type, name: str) -> tuple[str, Any]:
    for klass in cls.__mro__:
        if name in klass.__dict__:
            raw = klass.__dict__[name]
            break
    else:
        return "data", None
    if isinstance(raw, staticmethod):
        return "staticmethod", getattr(cls, name)
    if isinstance(raw, classmethod):
        return "classmethod", getattr(cls, name)
    if inspect.isfunction(raw) or (inspect.ismethoddescriptor(raw) and callable(raw)):
        return "method", raw
    return "data", None


def descriptor_kind(cls: type, name: str) -> str:
    """What a non-method class member is: ``"data"`` (a plain class attribute,
    a slot), ``"property"`` (read-only), ``"property(settable)"``, or
    ``"descriptor"`` (another kind with ``__get__``).

    A subclass that assigns the name in its ``__init__`` before calling the
    base's (JupyterHub's ``SpawnException`` does it to ``HTTPError.log_message``)
    depends on which: a read-only property refuses it, a settable one runs
    the base's setter, a plain attribute is overwritten by the base.
    """
    for klass in cls.__mro__:
        if name in klass.__dict__:
            raw = klass.__dict__[name]
            break
    else:
        return "data"
    if isinstance(raw, property):
        return "property" if raw.fset is None else "property(settable)"
    if isinstance(raw, types.GetSetDescriptorType) and _compiled_property(klass, name, raw):
        return _compiled_property(klass, name, raw)
    if isinstance(raw, (types.MemberDescriptorType, types.GetSetDescriptorType)):
        return "data"  # a slot, or a C-level attribute (``BaseException.args``)
    if hasattr(type(raw), "__get__"):
        return "descriptor"
    return "data"


def _compiled_property(klass: type, name: str, raw: Any) -> str:
    """A property of a class compiled by mypyc (the compiled build), which
    mypyc turns into a getset descriptor like its attributes: its kind, or
    "" where ``name`` is one of the class's attributes (``__mypyc_attrs__``)
    or the class is not mypyc's. Settable or not is told by setting it on a
    bare instance: a read-only one refuses before looking at the value."""
    attrs = getattr(klass, "__mypyc_attrs__", None)
    if attrs is None or name in attrs:
        return ""
    try:
        raw.__set__(klass.__new__(klass), None)
    except AttributeError as exc:
        if "not writable" in str(exc):
            return "property"
    except Exception:
        pass
    return "property(settable)"


def coroutine_kind(fn: Any) -> str:
    """``"coroutine function"``, ``"async generator function"`` or ``"function"``."""
    if inspect.iscoroutinefunction(fn):
        return "coroutine function"
    if inspect.isasyncgenfunction(fn):
        return "async generator function"
    return "function"


def class_coroutines(cls: type) -> dict[str, str]:
    """What `coroutine_kind` says of each method of ``cls``, private ones
    included (dunders and what ``object`` has left out)."""
    out: dict[str, str] = {}
    for name in dir(cls):
        if name.startswith("__") or hasattr(object, name):
            continue
        kind, fn = _member_kind(cls, name)
        if kind != "data":
            out[name] = coroutine_kind(fn)
    return out


def qualname_of(obj: Any) -> str:
    """``module:qualname`` of a class (``module`` of a module), as the object says."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', '?')}"


def class_members(cls: type, package: str) -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        init = cls.__init__
    except AttributeError:
        init = None
    if isinstance(init, types.WrapperDescriptorType) and getattr(cls, "__text_signature__", None):
        # A class compiled by mypyc (the compiled build): its __init__ is a
        # slot wrapper, and the class itself carries the signature.
        out["__init__"] = signature(cls)
    elif init is not None:
        out["__init__"] = signature(init, drop_first=True)
    for name in dir(cls):
        if name.startswith("_"):
            continue
        kind, fn = _member_kind(cls, name)
        if kind == "data":
            out[name] = descriptor_kind(cls, name)
        elif kind == "method":
            out[name] = "method" + signature(fn, drop_first=True)
        else:
            out[name] = kind + signature(fn)
    return out


def names(
    package: str,
    modules: list[str],
    homes: dict[str, str] | None = None,
    coroutines: dict[str, str] | None = None,
    qualnames: dict[str, str] | None = None,
) -> dict[str, str]:
    """``"web.RequestHandler" -> "class"``, ``"web.RequestHandler.write" -> "method(chunk)"``...

    ``homes`` gets, for each name that a module has because it imported it
    from another module of the package, where it lives ("web.app_log" ->
    "log.app_log").
    """
    out: dict[str, str] = {}
    if homes is None:
        homes = {}
    if coroutines is None:
        coroutines = {}
    if qualnames is None:
        qualnames = {}
    for rel in modules:
        try:
            mod = importlib.import_module(_qual(package, rel))
        except ImportError as exc:
            if rel in _OPTIONAL:
                continue
            out[f"{rel or '<package>'}"] = f"import error: {type(exc).__name__}"
            continue
        prefix = f"{rel}." if rel else ""
        out[rel or "<package>"] = "module"
        qualnames[rel or "<package>"] = qualname_of(mod)
        for name in dir(mod):
            if name.startswith("_") or (not rel and name == "test"):
                continue  # (walking the package imported Tornado's own tests)
            value = getattr(mod, name)
            origin = _origin(value, package)
            key = prefix + name
            if _imported(value, origin):
                # Another library's object the module imported: programs
                # import it from there too (``from tornado.httputil import
                # urlencode``), so it must be the same object.
                out[key] = foreign_kind(value, origin, name)
                homes[key] = foreign_home(value, origin, name)
                continue
            if isinstance(value, logging.Logger) or (
                not origin
                and (
                    isinstance(value, types.ModuleType)
                    or not _defined_in_module(value, package, rel)
                )
            ):
                homes[key] = _home(value, package)
            kind = kind_of(value, package)
            if kind == "function":
                kind += signature(value)
                if _defined_in_module(value, package, rel):
                    coroutines[key] = coroutine_kind(value)
            out[key] = kind
            if kind == "class" and _defined_in(value, package, rel):
                qualnames[key] = qualname_of(value)
                for member, desc in class_members(value, package).items():
                    out[f"{key}.{member}"] = desc
                for member, desc in class_coroutines(value).items():
                    coroutines[f"{key}.{member}"] = desc
    return out


def _imported(value: Any, origin: str) -> bool:
    """Whether a module's name holds another library's module, class,
    function or typing construct (what it imported)."""
    if _is_typing(value):
        return True
    if not origin:
        return False
    return (
        isinstance(value, types.ModuleType)
        or origin in _IMPORT_ORIGINS
        or isinstance(value, type)
        or callable(value)
        or origin == "__future__"
    )


def foreign_kind(value: Any, origin: str, name: str) -> str:
    """``"imported function urllib.parse:urlencode"``: another library's object, by identity."""
    if isinstance(value, types.ModuleType):
        return f"imported module {value.__name__}"
    if _is_typing(value) and not isinstance(value, type):
        return f"imported typing {value!r}"
    kind = "class" if isinstance(value, type) else "function" if callable(value) else "value"
    qual = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(qual, str):
        # An instance (``__future__.annotations``): named by where it is found.
        home = sys.modules.get(origin)
        qual = name if getattr(home, name, None) is value else type_name(value)
    return f"imported {kind} {origin}:{qual}"


def foreign_home(value: Any, origin: str, name: str) -> str:
    """``"urllib.parse:urlencode"``: a module and attribute path that give the
    very object (``"datetime:"`` for a module), or ``"?"`` if none is found.

    The object's own module first; else (``types.TracebackType`` says it is
    ``builtins.traceback``) the first loaded public module holding it under
    the name the Tornado module uses.
    """
    if isinstance(value, types.ModuleType):
        return value.__name__ + ":"
    qual = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    home = sys.modules.get(origin)
    for path in (qual, name):
        if home is None or not isinstance(path, str):
            continue
        obj: Any = home
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is value:
            return f"{origin}:{path}"
    for modname in [*_PREFERRED_HOMES, *sorted(sys.modules)]:
        if modname not in sys.modules:
            continue
        if any(p.startswith("_") for p in modname.split(".")) or modname.startswith("tornado"):
            continue
        if getattr(sys.modules[modname], name, None) is value:
            return f"{modname}:{name}"
    return "?"


def _defined_in(cls: type, package: str, rel: str) -> bool:
    """Whether ``cls`` belongs to module ``rel`` (defined there or in a private
    submodule of it), not re-exported from elsewhere: its members are
    described once, under the module that offers it."""
    module = _module_of(cls)
    qual = _qual(package, rel)
    if module == qual:
        return True
    if not module.startswith(qual + "."):
        return False
    rest = module[len(qual) + 1 :].split(".")
    return all(part.startswith("_") for part in rest)


def _defined_in_module(value: Any, package: str, rel: str) -> bool:
    if not hasattr(value, "__module__") or not hasattr(value, "__name__"):
        return True  # a plain value: it is where it is
    return _defined_in(value, package, rel) or _home(value, package) == f"{rel}.{value.__name__}"


def _is_typing(value: Any) -> bool:
    return isinstance(value, (typing.TypeVar,)) or type(value).__module__ in (
        "typing",
        "typing_extensions",
    )


_IMPORTS_CODE = """
import json, sys
if {compat}:
    import squall.compat
    squall.compat.install()
import importlib
try:
    importlib.import_module({name!r})
except ImportError:
    print("null")
else:
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("tornado."))))
"""


def imports(modules: list[str], compat: bool) -> dict[str, str]:
    """``"testing" -> "concurrent escape gen httpserver ..."``: the public
    modules that ``import tornado.X`` brings into `sys.modules` under their
    ``tornado`` names, each in a new interpreter. Import hooks keyed on
    those names (New Relic's agent instruments ``tornado.httpserver`` when
    it is imported) fire when they are imported: on Squall as on Tornado."""
    import subprocess

    public = set(modules)
    # A fork of this process is much cheaper than a new interpreter, but
    # only says the truth while nothing of tornado's is imported here yet.
    fork = hasattr(os, "fork") and not any(
        m == "tornado" or m.startswith("tornado.") for m in sys.modules
    )
    out: dict[str, str] = {}
    for rel in modules:
        if not rel:
            continue
        if fork:
            loaded = _loaded_in_fork(f"tornado.{rel}")
        else:
            code = _IMPORTS_CODE.format(compat=compat, name=f"tornado.{rel}")
            proc = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
            )
            loaded = json.loads(proc.stdout or "null") if proc.returncode == 0 else None
        if loaded is None:
            continue  # an optional dependency missing: nothing to compare
        names = sorted({m[len("tornado.") :] for m in loaded} & public)
        out[rel] = " ".join(names)
    return out


def _loaded_in_fork(name: str) -> list[str] | None:
    """`imports` for one module, in a forked child (None: it does not import)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: import, report, and leave without cleanup
        os.close(read)
        try:
            importlib.import_module(name)
            text = json.dumps(sorted(m for m in sys.modules if m.startswith("tornado.")))
        except BaseException:
            text = "null"
        with os.fdopen(write, "w") as f:
            f.write(text)
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    os.waitpid(pid, 0)
    result: list[str] | None = json.loads(text or "null")
    return result


def probe(modules: list[str] | None = None, compat: bool = False) -> dict[str, Any]:
    """Everything: ``{"modules": [...], "names": {...}, "homes": {...}, "states": {...}, ...}``."""
    import lifecycle  # beside this file

    package = "tornado"
    if modules is None:
        modules = tornado_modules(package)
    result: dict[str, Any] = {"modules": modules, "homes": {}, "coroutines": {}, "qualnames": {}}
    # First: it looks at what importing each module brings, from nothing.
    result["imports"] = imports(modules, compat)
    result["names"] = names(
        package, modules, result["homes"], result["coroutines"], result["qualnames"]
    )
    result.update(lifecycle.run(package))
    return result


def main(argv: list[str]) -> int:
    args = argv[1:]
    compat = "--compat" in args
    if compat:
        args.remove("--compat")
        import squall.compat

        squall.compat.install()
    modules = None
    if args:
        with open(args[0]) as f:
            modules = json.load(f)["modules"]
    json.dump(probe(modules, compat), sys.stdout, indent=0, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
