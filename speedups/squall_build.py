"""How ``pip install squall`` compiles the hot modules: used by the root ``setup.py``.

squall's sans-I/O cores and a few per-request modules are compiled by mypyc
from the very same ``.py`` files, and the hand-written C modules of
``C_MODULES`` replace pure twins (``c/quick.c``: the request head's common
case in one pass; ``c/xhtml.c``: HTML escaping; ``c/jsonenc.c``: JSON of
plain values; ``c/wswrite.c``: ``WebSocketHandler.write_message``; ``c/fastpaths.c``: a
coroutine's step and a bare instance through the C API). The
sources are copied into ``build/mypyc-src``, type-checked and compiled
there, and the extension modules land in the package as
``squall/_native/...`` beside a ``manifest.json``: the squall version, the extension suffix, and the SHA-256
of every compiled module's source, which ``import squall`` checks before it
loads anything (``squall._compiled``; a build from other sources is ignored).

Everything falls back to an installable pure-Python package, with one line
saying why, and a manifest that says ``"compiled": false`` and why:

- ``SQUALL_NO_EXTENSIONS=1`` skips compiling;
- an editable install (``pip install -e .``) is never compiled: it runs the
  tree's ``.py`` files, which a compiled copy would shadow;
- no working C compiler or no Python headers (probed first, in a second);
- mypy or mypyc refusing the sources (a single module that mypyc refuses is
  left out alone, see ``COMPILED_MODULES``);
- the C build failing (a hand-written C module that does not build is left
  out alone).

The C files are compiled ``SQUALL_BUILD_JOBS`` at a time (the CPUs the
build may use, by default), and an object file is reused when what it was
built from has not changed since the last build in this tree (pip builds a
checkout in its ``build/``): a rebuild after an edit compiles the edited
modules' C files, not all of them.

``SQUALL_SPEEDUPS_FAIL=1`` takes the mypyc failure path on purpose,
``SQUALL_SPEEDUPS_FAIL=c`` the C module's.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from typing import Any, Optional

from setuptools import Extension
from setuptools.command.build_ext import build_ext
from setuptools.command.build_py import build_py
from setuptools.errors import CCompilerError, CompileError

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NATIVE = "squall._native"
# The compiler runs this many at once over the C sources (SQUALL_BUILD_JOBS,
# else the CPUs this process may run on).
JOBS_VARIABLE = "SQUALL_BUILD_JOBS"
# The shared library that holds every compiled module's code (mypyc's "group").
# mypyc writes it as one C file per module (multi_file), which the build
# compiles as many at a time as there are CPUs (see ObjectCache and
# BuildExt.build_extensions), where one file of 23 MB took one gcc process
# most of the install's 94-105 s of CPU (61-70 s in all now):
# the instruction-count gate (benchmarks/gate.py, 3.11, compiled) counted the
# same within its run-to-run noise on every workload (hello 95,363 -> 95,266
# instructions per request, handshake 297,768 -> 296,892, write_message
# 2,372.1 -> 2,372.0 per delivery, with --no-site-packages below): the
# modules still call each other's native functions directly, in one shared
# library.
GROUP = NATIVE + ".hotpath"
# The packages compiled whole: no asyncio, no I/O, strictly typed, and no
# class in them is meant to be subclassed by users. Measured (callgrind,
# varied stream, benchmarks/callgrind_hotpath.py): 238k instructions per
# request pure, 208k with these. httputil/_headers.py hits a mypyc internal
# error (cls.__new__ in a classmethod), and HTTPHeaders is a public,
# subclassable class that web/ and asgi/ build with object.__new__ (refused
# for a compiled class); web/ holds the classes users subclass and stays
# interpreted. Compiling RequestHandler's bodies instead (__init__, write,
# flush, finish and the Etag hooks as functions of an Any-typed handler in
# a compiled module, the methods calling them) was measured slower, not
# faster: hello over HTTP/1.1 125.0k -> 131.0k instructions per request,
# the Application over h2c 111.5k -> 116.3k. Compiled code reads an
# interpreted object's attributes by the generic getattr, where 3.11's
# specialized bytecode reads the instance's inline values directly.
# squall._h2 (HTTP/2 framing, HPACK, stream states) was interpreted in the
# compiled build; compiled (benchmarks/callgrind_h2.py, h2load stream, 16
# streams per read, instructions per request): bare ASGI app under squall
# run --http2 141.9k -> 116.7k, Application with http2=True 170.4k -> 143.1k.
# Then squall.httpserver._h2protocol (the HTTP/2 driver): 116.7k -> 107.2k and
# 143.1k -> 135.7k. Its _h2stream stays interpreted (an interpreted subclass
# of the compiled Exchange): compiled, its __slots__ refused when the module
# loaded ("mypyc classes can't have __slots__"), under the interpreted
# Exchange it had then.
COMPILED_PACKAGES = ("_h1", "_ws", "_h2")
# Single modules compiled beside those packages. Measured (callgrind, varied
# stream, asyncio loop, instructions per request, same tree otherwise):
# squall.httpserver._protocol, hello 134.8k -> 120.1k, json 153.4k -> 138.7k;
# then squall.httputil._request (HTTPServerRequest alone in it) with
# squall.web._delegate (the application's per-request delegate, which builds
# the request natively), hello 120.4k -> 115.3k, json 130.1k -> 125.0k. Either
# alone pays less: the delegate alone 118.1k (it still calls the interpreted
# request's __init__); the request alone 119.9k (interpreted code reads a
# compiled class's fields through descriptors, dearer than slots).
# A compiled class calls its own methods directly, past any override in a
# subclass that interpreted code defines (_negotiate's sniffers override
# _HTTPProtocol.data_received and _on_request; applications subclass
# HTTPServerRequest): such a class must be marked
# @mypyc_attr(allow_interpreted_subclasses=True) (squall._compiled has the
# decorator), else its module is not compiled (see _unmarked_bases).
# squall.asgi._http (a served ASGI app's request cycle) and squall.asgi._scope
# (its scope): callgrind_asgi.py, bare ASGI app, squall-bare 106.8k net per
# request, Starlette hello 183.1k (uvicorn 162.7k and 239.4k); with the scope
# built in _scope (not the interpreted delegate) 95.9k and 171.9k; with a
# spare Task reused for a first step (3.11; removed since), the scope copied from a
# template and the modules' constants Final, uvloop: bare 82.8k -> ~72k.
# squall._request_task (the Task each request runs in) is
# compiled: the delegate and the ASGI cycle call its start() for every
# request, a compiled call without a Python frame.
# With the response head rendered from the app's byte pairs as well
# (asgi._http -> _h1 send_rendered_head), uvloop, net: bare squall-bare
# 70.7k -> 62.7k, Starlette under squall run 147.8k -> 138.6k (uvicorn 205.7k).
# squall.httpserver._h1exchange (the connection states, the write queue and
# _RequestConnection) was split out of _protocol for size and is compiled
# with it: each reads the other's fields natively. squall.httpserver._flow
# (ReadFlow, read-side flow control for both drivers) is compiled with them
# for the same reason: the HTTP/1.1 driver checks it once per request.
# squall.httpserver._h1output and _h1lifecycle hold _HTTPProtocol's bases
# (its fields and output, its connection life), split out of _protocol for
# size: compiled with it, so that one class's code stays native.
# squall.httputil._exchange (Exchange, marked for interpreted subclasses) is
# compiled so that _RequestConnection runs Exchange's write, finish and
# phase with its own emit hooks. Hello, asyncio loop,
# squall-httptools, instructions per request: 130,540 before (it subclassed
# HTTPConnection and wrote its own write, finish, phase and close callback);
# 129,958 with HTTPConnection compiled too, but compiled code then checks
# the type of every argument annotated HTTPConnection and refuses a
# duck-typed connection or None (HTTPServerRequest._for_server(None, ...)
# in tests/httputil/test_request.py); with HTTPConnection interpreted
# (httputil/_contract.py) under the compiled Exchange, 131,768 (+1.2k, the
# figure an interpreted Exchange had). That +1.2k was an instance __dict__:
# mypyc makes fields only of what the compiled class declares, and context
# and close_callback_attribute, declared by the interpreted HTTPConnection
# alone, went to a dict made for every request. Exchange declares them too
# and HTTPConnection stays interpreted and unchecked: hello,
# squall, instructions per request, asyncio loop 127,116 -> 125,624,
# uvloop 102,343 -> 100,841.
# squall.httputil._qs (_parse_qs_bytes, moved out of the interpreted _forms):
# every handler that reads an argument parses its query string there, from
# the compiled HTTPServerRequest.query_arguments. callgrind_h2.py, compiled,
# Application over h2c, the handler reads ?n=, n=800: h2load stream 128.3k ->
# 126.2k instructions per request, varied stream (three query fields) 255.1k -> 251.4k.
# squall.httpserver._muxstream and squall.httpserver._h2stream (an HTTP/2
# request's connection): the compiled _h2protocol reads and writes
# the stream's fields natively, and Exchange calls its emit hooks natively.
# _MuxStream is marked for interpreted subclasses (_H3Stream, which imports
# the optional aioquic, stays interpreted); a compiled subclass cannot narrow
# a field's type, so _H2Stream names its protocol's type on locals.
# _H2Stream is marked as well, so that Python code that makes one runs its
# __init__ once (see _inherited_inits): callgrind_h2.py, compiled, app,
# h2load stream, n=400, 125,596 -> 125,585 instructions per request (an
# __init__ of its own instead: 125,568, and +1,491 in the pure build).
# callgrind_h2.py, compiled, h2load stream, n=1600: Application 125.0k ->
# 113.9k instructions per request, ASGI 90.1k -> 77.1k; HTTP/1.1 hello
# (callgrind_hotpath.py --server squall) 125.7k -> 125.7k.
# squall.httpserver._h2session holds _H2Protocol's base (the stream table,
# output, timeouts, GOAWAY and close), split out of _h2protocol for size:
# compiled with it, so that one class's code stays native.
# squall._qpack (section_cost: the walk of each received HTTP/3 field
# section that bounds its decoded size before ls-qpack decodes it, a loop
# over the section's bytes): callgrind_h3.py, compiled build, aioquic,
# n=640, instructions per request, two runs each: pseudo-headers alone
# 574,674 and 576,606 -> 564,031 and 565,077 (-1.9%); with a browser's 17
# fields (--browser-head) 918,730 and 914,908 -> 843,893 and 844,345 (-7.9%).
COMPILED_MODULES = (
    "squall.httpserver._protocol",
    "squall.httpserver._h1lifecycle",
    "squall.httpserver._h1output",
    "squall.httpserver._h1exchange",
    "squall.httpserver._flow",
    "squall.httputil._request",
    "squall.web._delegate",
    "squall.asgi._http",
    "squall.asgi._scope",
    "squall._request_task",
    "squall.httpserver._h2protocol",
    "squall.httpserver._h2session",
    "squall.httputil._exchange",
    "squall.httputil._qs",
    "squall.httpserver._muxstream",
    "squall.httpserver._h2stream",
    "squall._qpack",
)
# Interpreted modules that import an optional extra (aioquic or qh3,
# squall[http3]): type-checked by the build with their errors ignored (see
# _compile).
OPTIONAL_EXTRA_MODULES = (
    "squall._quicstack",
    "squall.httpserver._h3conn",
    "squall.httpserver._h3protocol",
    "squall.httpserver._h3session",
    "squall.httpserver._h3setup",
    "squall.httpserver._h3stream",
    "squall.httpserver._h3webtransport",
    "squall.httpserver._h3websocket",
    "squall.simple_httpclient._h3",
)
# Modules that would be compiled but must not be; why beside each.
SKIPPED: dict[str, str] = {
    "squall._h1._quick": "replaced by the C module c/quick.c, not compiled by mypyc",
    "squall._h2._limits": "H2Limits is public configuration, read once per connection",
}
# Hand-written C modules: the squall module each replaces, and its source.
# Measured (callgrind, varied stream, hello handler, instructions per
# request, same tree otherwise): the fused Python parse compiled by mypyc,
# 190.0k; with c/quick.c's pass over the head, 159.2k; the parse stage is
# now 11.9k (aiohttp's C parser: 34.8k). The C pass
# makes no string per field name (a table of canonical names) and checks
# values eight octets at a time; mypyc still goes through str.partition,
# str.strip and a name cache per field.
# c/xhtml.c (squall._xhtml): HTML escaping in one pass, one call per
# template value instead of the pure build's inline tests; measured (page
# handler, same tree otherwise) 333.4k -> 274.8k instructions per request.
# c/jsonenc.c (squall._jsonenc): JSON text of plain values (exact dicts,
# lists, strs, numbers) written into one buffer, for json_encode (every
# write(dict)); anything else goes to the standard library's encoder.
# Measured (callgrind, json_encode of a chat message, {"messages": [{"id",
# "body", "html"}]}, instructions a call): 22.1k -> 5.4k; a woken long poll
# of the chat demos (callgrind_longpoll.py, GC off) 104.2k -> 87.6k (Tornado's
# shape) and 124.3k -> 107.5k (Squall's).
# c/wswrite.c (squall._wswrite): WebSocketHandler.write_message as a native
# method descriptor, for the loop programs write over their subscribers:
# the usual case (an open, uncompressed server connection, a str or bytes)
# frames the message and writes it to the transport itself, looking the
# protocol's _sink and _done and the transport's write up by name (public
# API only); the rest goes to the Python method. callgrind_broadcast.py
# -c 300, squall-loop, uvloop, pure tree otherwise, instructions per
# delivery: Python method 3,253, this module 2,149 (with the version-tag
# caches it had before it kept to CPython's public API, 1,768).
# c/packing.c (squall._ws._packing), c/h2frame.c (squall._h2._framing) and
# c/typetags.c (squall._typetags) were removed: each saved under
# 2% of a headline path (a handshake, an HTTP/2 response, an access line),
# which a rebuild moves as much; _packing and _framing are compiled by mypyc
# with their packages again, _typetags stays pure (the CHANGELOG has the
# figures).
C_MODULES = {
    "squall._h1._quick": "speedups/c/quick.c",
    "squall._xhtml": "speedups/c/xhtml.c",
    "squall._jsonenc": "speedups/c/jsonenc.c",
    "squall._wswrite": "speedups/c/wswrite.c",
    "squall._fastpaths": "speedups/c/fastpaths.c",
}


def _say(message: str) -> None:
    print(f"squall: {message}", file=sys.stderr, flush=True)


def _squall_source() -> Path:
    src = ROOT / "squall"
    if not (src / "__init__.py").is_file():
        raise RuntimeError(f"squall's sources not found at {src}")
    return src


def _squall_version(src: Path) -> str:
    for line in (src / "__init__.py").read_text().splitlines():
        if line.startswith("version = "):
            return str(line.split("=", 1)[1].strip().strip("\"'"))
    raise RuntimeError(f"no version in {src / '__init__.py'}")


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _marked(node: ast.ClassDef) -> bool:
    """Whether a class is decorated @mypyc_attr(allow_interpreted_subclasses=True)."""
    return any(
        isinstance(d, ast.Call)
        and getattr(d.func, "id", getattr(d.func, "attr", "")) == "mypyc_attr"
        and any(
            k.arg == "allow_interpreted_subclasses"
            and isinstance(k.value, ast.Constant)
            and k.value.value is True
            for k in d.keywords
        )
        for d in node.decorator_list
    )


def _inherited_inits(root: Path, compiled: set[str]) -> dict[str, list[str]]:
    """``{module: [class, ...]}``: unmarked classes of the modules in
    ``compiled`` whose ``__init__`` is inherited from a marked one.

    mypyc runs such a class's ``__init__`` twice when Python code calls the
    class (its tp_new runs it, then the marked base's tp_init, which the
    class inherits, runs it again; a call from compiled code runs it once):
    the compiled _H2Stream took two of its connection's stream slots. An
    ``__init__`` of the class's own (or the mark) gives it a tp_init of its own.
    """
    classes: dict[str, tuple[str, Optional[str], bool, bool]] = {}
    for path in sorted((root / "squall").rglob("*.py")):
        module = _module_name(root, path)
        if module not in compiled:
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported = {
            alias.asname or alias.name: f"{node.module}.{alias.name}"
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
            for alias in node.names
        }
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            first = node.bases[0] if node.bases else None
            base = None
            if isinstance(first, ast.Name):
                base = imported.get(first.id, f"{module}.{first.id}")
            own_init = any(
                isinstance(item, ast.FunctionDef) and item.name == "__init__" for item in node.body
            )
            classes[f"{module}.{node.name}"] = (module, base, _marked(node), own_init)
    found: dict[str, list[str]] = {}
    for name, (module, base, marked, own_init) in sorted(classes.items()):
        # Up the (single, first-base) chain of compiled classes to the first
        # that is marked or has an __init__ of its own.
        while not marked and not own_init and base in classes:
            _, base, marked, own_init = classes[base]
        if marked and not classes[name][2]:
            found.setdefault(module, []).append(name.rpartition(".")[2])
    return found


def _unmarked_bases(root: Path, compiled: set[str]) -> dict[str, list[str]]:
    """``{module: [class, ...]}``: classes of the modules in ``compiled`` that a
    module left interpreted subclasses, and that lack
    ``@mypyc_attr(allow_interpreted_subclasses=True)``."""
    bases: dict[str, set[str]] = {}
    for path in sorted((root / "squall").rglob("*.py")):
        if _module_name(root, path) in compiled:
            continue
        tree = ast.parse(path.read_text(), str(path))
        imported: dict[str, tuple[str, str]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in compiled:
                for alias in node.names:
                    imported[alias.asname or alias.name] = (node.module, alias.name)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    if isinstance(base, ast.Name) and base.id in imported:
                        module, name = imported[base.id]
                        bases.setdefault(module, set()).add(name)
    unmarked: dict[str, list[str]] = {}
    for module, names in sorted(bases.items()):
        path = root.joinpath(*module.split(".")).with_suffix(".py")
        tree = ast.parse(path.read_text(), str(path))
        marked = {
            node.name for node in tree.body if isinstance(node, ast.ClassDef) and _marked(node)
        }
        if names - marked:
            unmarked[module] = sorted(names - marked)
    return unmarked


# mypyc's coroutines took an exception thrown into them alone (asyncio's
# Task throws what an awaited future failed with: ``coro.throw(exc)``) as
# one with no traceback: its runtime restores the error with the traceback
# argument, None, and the exception's own traceback was then replaced by
# the frames it passed on its way out. So an error from an awaited Task or
# future reached write_error, a logged traceback or an error reporter
# without the frames where it was raised, under a compiled coroutine
# (squall.web._delegate._made_in_task on 3.11, the ASGI driver's). CPython's
# coroutines keep the exception's own traceback when none is given; the
# runtime's function (one copy in the build, exc_ops.c) is made to as well.
_THROWN = "        type = (PyObject *)Py_TYPE(value);\n"
_KEEP_OWN_TRACEBACK = """        if (Py_IsNone(traceback)) {
            /* squall: keep the thrown exception's own traceback
               (speedups/squall_build.py, _keep_thrown_tracebacks) */
            PyObject *own = PyException_GetTraceback(value);
            if (own != NULL) {
                Py_INCREF(type);
                Py_INCREF(value);
                PyErr_Restore(type, value, own);
                return;
            }
        }
"""


def _keep_thrown_tracebacks(target: Path) -> bool:
    """Patch mypyc's runtime copy under ``target`` (see _THROWN); False if
    its source is not the one known (a mypyc of another shape)."""
    path = target / "exc_ops.c"
    if not path.exists():
        return False
    text = path.read_text()
    if _KEEP_OWN_TRACEBACK in text:
        return True
    start = text.find("void CPyErr_SetObjectAndTraceback(")
    at = text.find(_THROWN, start)
    if start < 0 or at < 0 or text.find("}", start) < at:
        return False
    at += len(_THROWN)
    path.write_text(text[:at] + _KEEP_OWN_TRACEBACK + text[at:])
    return True


def _failed(reason: str) -> dict[str, Any]:
    return {"compiled": False, "reason": reason}


def mypy_config() -> str:
    """The configuration mypy (mypyc) checks the staged sources with."""
    # The HTTP/3 modules are built on aioquic, an optional extra: where it is
    # not installed (pip's isolated build environment has only the build
    # requirements) its names are Any, and strict mode's errors about them (a
    # class over Any, a return of Any) would make mypyc refuse the build of
    # the compiled modules that import the server. They stay interpreted.
    return (
        "[mypy]\nstrict = True\nwarn_unused_ignores = False\nignore_missing_imports = True\n"
        f"[mypy-{','.join(OPTIONAL_EXTRA_MODULES)}]\nignore_errors = True\n"
    )


def _compile() -> tuple[list[Any], dict[str, Any]]:
    """mypycify over a copy of squall; returns (extensions, manifest)."""
    if os.environ.get("SQUALL_SPEEDUPS_FAIL") == "1":
        raise RuntimeError("SQUALL_SPEEDUPS_FAIL=1")
    # mypy (which brings mypyc) is in pyproject's [build-system] requires.
    from mypyc.build import mypycify

    src = _squall_source()
    root = ROOT / "build" / "mypyc-src"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    # The whole package, so that mypy resolves every import; only the
    # modules listed below are compiled.
    shutil.copytree(src, root / "squall", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (root / "mypy.ini").write_text(mypy_config())
    modules: dict[str, str] = {}
    paths: list[str] = []
    for package in COMPILED_PACKAGES:
        for path in sorted((root / "squall" / package).glob("*.py")):
            name = f"squall.{package}.{path.stem}"
            if path.name == "__init__.py" or name in SKIPPED:
                continue
            modules[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            paths.append(path.relative_to(root).as_posix())
    unmarked = _unmarked_bases(root, set(COMPILED_MODULES))
    twice = _inherited_inits(root, {*COMPILED_MODULES, *modules})
    for name in COMPILED_MODULES:
        if name in unmarked or name in twice:
            if name in unmarked:
                SKIPPED[name] = (
                    f"{', '.join(unmarked[name])}: subclassed by interpreted code, not marked"
                    " @mypyc_attr(allow_interpreted_subclasses=True)"
                )
            else:
                SKIPPED[name] = (
                    f"{', '.join(twice[name])}: __init__ inherited from a class marked"
                    " @mypyc_attr(allow_interpreted_subclasses=True) (run twice from Python)"
                )
            _say(f"{name} not compiled ({SKIPPED[name]})")
            continue
        path = root.joinpath(*name.split(".")).with_suffix(".py")
        modules[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        paths.append(path.relative_to(root).as_posix())
    c_exts = []
    for name, source in C_MODULES.items():
        pure = root.joinpath(*name.split(".")).with_suffix(".py")
        modules[name] = hashlib.sha256(pure.read_bytes()).hexdigest()
        c_exts.append(Extension(f"{NATIVE}.{name}", sources=[source], extra_compile_args=["-O2"]))
    target = ROOT / "build" / "mypyc"
    # --no-site-packages: mypy would otherwise read the types of whatever is
    # installed where squall is being installed (httptools, uvloop, an earlier
    # squall), so that the C it writes, and the objects ObjectCache reuses,
    # would depend on that: a first install into a fresh venv and the next
    # one (pip install '.[redis]' after it) differed in every module's C file.
    # Without them, every build of the same sources writes the same C, the
    # one a fresh venv's first install gets.
    options = ["--no-site-packages", "--config-file", "mypy.ini"]
    options += ["--cache-dir", str(root / ".mypy_cache")]
    cwd = os.getcwd()
    os.chdir(root)  # mypy derives module names from paths relative to here
    try:
        try:
            exts = mypycify(
                [*options, *paths],
                target_dir=str(target),
                group_name=GROUP,
                multi_file=True,
            )
        except BaseException as exc:  # SystemExit too: mypy exits on a type error
            singles = [name for name in COMPILED_MODULES if name in modules]
            if isinstance(exc, KeyboardInterrupt) or not singles:
                raise
            # The packages alone still pay: an edit to a single module that
            # mypyc refuses leaves that module interpreted, not all of them.
            traceback.print_exc()
            for name in singles:
                del modules[name]
                SKIPPED[name] = f"mypyc refused the build with it: {exc!r}"[:300]
                paths.remove(name.replace(".", "/") + ".py")
                _say(f"retrying without {name}")
            shutil.rmtree(target, ignore_errors=True)
            exts = mypycify(
                [*options, *paths],
                target_dir=str(target),
                group_name=GROUP,
                multi_file=True,
            )
    finally:
        os.chdir(cwd)
    if not _keep_thrown_tracebacks(target):
        _say("mypyc's exc_ops.c is not the one known: thrown exceptions lose their tracebacks")
    # multi_file writes each module's C file at the top of the target and
    # the group's headers beside the group's own file (squall/_native/),
    # where a module's file includes them from.
    headers = sorted({str(h.parent) for h in target.rglob("__native*.h")})
    for ext in exts:
        # Sources relative to the project (egg_info refuses absolute ones;
        # mypyc wrote them relative to the staging root), and the shims moved
        # under squall._native: squall's finder loads them under their own
        # names, squall._h1._connection and so on.
        ext.sources = [os.path.relpath(Path(root, s), ROOT) for s in ext.sources]
        ext.include_dirs = [str(Path(root, d)) for d in ext.include_dirs]
        if len(ext.sources) > 1:
            ext.include_dirs.extend(h for h in headers if h not in ext.include_dirs)
        if not ext.name.startswith(NATIVE):
            ext.name = f"{NATIVE}.{ext.name}"
    exts.extend(c_exts)
    manifest = {
        "compiled": True,
        "squall_version": _squall_version(src),
        "suffix": EXTENSION_SUFFIXES[0],
        "python": sys.version.split()[0],
        "modules": modules,
        "skipped": SKIPPED,
    }
    return exts, manifest


# pip asks for metadata (egg_info, dist_info) and builds the sdist in other
# runs of setup.py than the wheel's: compile only for the commands that build.
_BUILDS = {"build", "build_ext", "bdist_wheel", "bdist", "install"}
# An editable install runs the tree's .py files, which compiled modules
# would shadow (and the tree would then test the compiled build by surprise).
_EDITABLE = {"develop", "editable_wheel"}


def _compiler_problem() -> Optional[str]:
    """Why no extension module can be built here, or None: compiles a file
    that includes Python.h with the compiler setuptools would use."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    if shutil.which(cc[0]) is None:
        return f"no C compiler ({cc[0]} not found)"
    if not Path(include, "Python.h").is_file():
        return f"no Python headers ({include}/Python.h not found)"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "probe.c")
        src.write_text("#include <Python.h>\nint squall_probe(void) { return 0; }\n")
        try:
            proc = subprocess.run(
                [*cc, f"-I{include}", "-c", str(src), "-o", str(Path(tmp, "probe.o"))],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"the C compiler {cc[0]} did not run ({exc})"
    if proc.returncode != 0:
        return f"the C compiler {cc[0]} failed on Python.h: {proc.stderr.strip()[:200]}"
    return None


def _plan(argv: list[str]) -> tuple[list[Any], dict[str, Any]]:
    """The extension modules to build and the manifest, for this run of setup.py."""
    commands = set(argv[1:])
    if commands & _EDITABLE:
        return [], _failed("an editable install runs the tree's pure-Python sources")
    if _BUILDS.isdisjoint(commands):
        return [], _failed("metadata only")
    if os.environ.get("SQUALL_NO_EXTENSIONS") == "1":
        _say("SQUALL_NO_EXTENSIONS=1: installing pure Python")
        return [], _failed("built with SQUALL_NO_EXTENSIONS=1")
    problem = _compiler_problem()
    if problem is not None:
        _say(f"{problem}: installing pure Python")
        return [], _failed(problem)
    try:
        return _compile()
    except BaseException as exc:  # SystemExit too: mypy exits on a type error
        if isinstance(exc, KeyboardInterrupt):
            raise
        traceback.print_exc()
        _say(f"mypyc could not compile ({exc!r}): installing pure Python")
        return [], _failed(f"mypyc could not compile: {exc!r}"[:500])


def _write_manifest(build_lib: str, manifest: dict[str, Any]) -> None:
    out = Path(build_lib, *NATIVE.split("."), "manifest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def build_jobs() -> int:
    """How many C compilers the build runs at once: ``SQUALL_BUILD_JOBS``, else
    the CPUs this process may run on."""
    value = os.environ.get(JOBS_VARIABLE, "").strip()
    if value:
        try:
            return max(1, int(value))
        except ValueError:
            _say(f"{JOBS_VARIABLE}={value!r} is not a number: ignored")
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


class ObjectCache:
    """A compiler's ``compile``, one source at a time, that reuses an object
    file built from the same input.

    The input is the source's bytes, the headers of its include directories
    and of its own directory (names relative to each, and contents: pip's
    build environment is a new temporary directory each time), the
    compiler's command, the other arguments and the Python; its digest is
    kept beside the object (``OBJECT.key``). pip builds a checkout in its
    ``build/``, so that a rebuild after an edit compiles only the C files
    the edit changed (mypyc rewrites a C file only when its text changes,
    and a module's file holds that module's code alone), and a rebuild of
    the same sources compiles none. Threads may call it at once for
    different sources.
    """

    def __init__(self, compiler: Any) -> None:
        self.compiler = compiler
        self.stock = compiler.compile
        self.lock = threading.Lock()
        self.headers: dict[str, str] = {}
        self.built: set[str] = set()
        self.reused: set[str] = set()

    def _headers(self, directory: str) -> str:
        with self.lock:
            known = self.headers.get(directory)
        if known is None:
            digest = hashlib.sha256()
            for header in sorted(Path(directory).rglob("*.h")):
                name = header.relative_to(directory).as_posix()
                digest.update(name.encode() + b"\0" + header.read_bytes())
            known = digest.hexdigest()
            with self.lock:
                self.headers[directory] = known
        return known

    def key(self, source: str, include_dirs: Sequence[str], *args: Any) -> str:
        """The digest of what the object of ``source`` is built from."""
        key = hashlib.sha256(
            json.dumps(
                [
                    # (unix compilers have compiler_so; others: their class)
                    getattr(self.compiler, "compiler_so", type(self.compiler).__name__),
                    sys.version,
                    sysconfig.get_paths()["include"],
                    *args,
                ],
                default=repr,
            ).encode()
        )
        for directory in [*include_dirs, os.path.dirname(os.path.abspath(source))]:
            key.update(self._headers(directory).encode())
        key.update(Path(source).read_bytes())
        return key.hexdigest()

    def __call__(
        self,
        sources: Sequence[str],
        output_dir: Optional[str] = None,
        macros: Any = None,
        include_dirs: Optional[Sequence[str]] = None,
        debug: bool = False,
        extra_preargs: Optional[Sequence[str]] = None,
        extra_postargs: Optional[Sequence[str]] = None,
        depends: Optional[Sequence[str]] = None,
    ) -> list[str]:
        objects = []
        for source in sources:
            digest = self.key(
                source, include_dirs or (), macros, debug, extra_preargs, extra_postargs
            )
            [obj] = self.compiler.object_filenames([source], output_dir=output_dir)
            stamp = Path(obj + ".key")
            if Path(obj).is_file() and stamp.is_file() and stamp.read_text() == digest:
                with self.lock:
                    if obj not in self.built:
                        self.reused.add(obj)
                objects.append(obj)
                continue
            stamp.unlink(missing_ok=True)
            objects.extend(
                self.stock(
                    [source],
                    output_dir=output_dir,
                    macros=macros,
                    include_dirs=include_dirs,
                    debug=debug,
                    extra_preargs=extra_preargs,
                    extra_postargs=extra_postargs,
                    depends=depends,
                )
            )
            stamp.write_text(digest)
            with self.lock:
                self.built.add(obj)
        return objects


def setup_arguments(argv: Optional[list[str]] = None) -> dict[str, Any]:
    """``setup()``'s ext_modules and cmdclass for this run (``sys.argv`` by default)."""
    ext_modules, manifest = _plan(sys.argv if argv is None else argv)

    class BuildPy(build_py):
        """Writes the manifest of a build without extension modules."""

        def run(self) -> None:
            # An earlier build's extension modules may still be in build/lib
            # (pip builds in the tree): this build's are the only ones shipped.
            native = Path(self.build_lib, *NATIVE.split("."))
            shutil.rmtree(native / "squall", ignore_errors=True)
            for stale in native.glob("*.so"):
                stale.unlink()
            (native / "manifest.json").unlink(missing_ok=True)
            super().run()
            if not self.distribution.has_ext_modules() and not self.editable_mode:
                _write_manifest(self.build_lib, manifest)

    class BuildExt(build_ext):
        """Builds the extensions; a compiler failure leaves a pure package, or,
        for a hand-written C module alone, the mypyc build without it."""

        def build_extension(self, ext: Any) -> None:
            name = ext.name.removeprefix(NATIVE + ".")
            if name not in C_MODULES:
                super().build_extension(ext)
                return
            try:
                if os.environ.get("SQUALL_SPEEDUPS_FAIL") == "c":
                    raise RuntimeError("SQUALL_SPEEDUPS_FAIL=c")
                super().build_extension(ext)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                traceback.print_exc()
                _say(f"{name} not built; its Python module stays")
                manifest.get("modules", {}).pop(name, None)
                manifest.setdefault("skipped", {})[name] = f"C build failed: {exc!r}"[:300]

        def build_extensions(self) -> None:
            # mypyc writes one C file per module (multi_file), and each shim
            # is one more: every source of every extension goes to a pool of
            # compilers first, the largest first, then the extensions are
            # built one by one as usual, linking the objects already made
            # (their compile finds each one in the cache).
            cache = ObjectCache(self.compiler)
            self.compiler.compile = cache
            jobs = build_jobs()
            work = [(source, ext) for ext in self.extensions for source in ext.sources]
            work.sort(key=lambda item: -os.path.getsize(item[0]))
            if jobs > 1 and len(work) > 1:
                with ThreadPoolExecutor(jobs) as pool:
                    list(pool.map(self._precompile, work))
            super().build_extensions()
            _say(
                f"{len(cache.built)} C files compiled, {jobs} at a time;"
                f" {len(cache.reused)} unchanged since the last build in this tree"
            )

        def _precompile(self, item: tuple[str, Any]) -> None:
            source, ext = item
            macros = [*ext.define_macros, *((name,) for name in ext.undef_macros)]
            try:
                self.compiler.compile(
                    [source],
                    output_dir=self.build_temp,
                    macros=macros,
                    include_dirs=ext.include_dirs,
                    debug=self.debug,
                    extra_postargs=ext.extra_compile_args or [],
                    depends=ext.depends,
                )
            except (CCompilerError, CompileError, OSError):
                # Left for the extension's own build, which compiles the
                # source again and handles the failure as it does (a C
                # module is left out alone, anything else falls back).
                pass

        def run(self) -> None:
            try:
                super().run()
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                traceback.print_exc()
                _say("the C build failed: installing pure Python")
                for ext in self.extensions:
                    try:
                        os.remove(self.get_ext_fullpath(ext.name))
                    except OSError:
                        pass
                _write_manifest(self.build_lib, _failed(f"C build failed: {exc!r}"[:500]))
                return
            _write_manifest(self.build_lib, manifest)

    # The egg-info goes under build/, not beside squall/: in the tree (where pip
    # builds), importlib.metadata would find it on sys.path ("python -m pytest"
    # puts the tree there), and pytest would load the plugin of its entry points.
    # (An sdist keeps its egg-info at the top, where pip looks for it.)
    options: dict[str, Any] = {}
    if "sdist" not in (sys.argv if argv is None else argv):
        Path(ROOT, "build").mkdir(exist_ok=True)
        options = {"egg_info": {"egg_base": "build"}}
    return {
        "ext_modules": ext_modules,
        "cmdclass": {"build_py": BuildPy, "build_ext": BuildExt},
        "options": options,
    }
