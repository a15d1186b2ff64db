"""Every layering rule of DESIGN.md, in one place (docs/guide/seam.md draws them):

* a module imports (at import time) only from its own layer or the layers
  below it (`LAYERS`);
* the sans-I/O cores import no I/O, even lazily inside a function, nor
  anything of squall above them; importing one loads no I/O module;
* across a seam, no module imports a private name of the package on the
  other side (`PRIVATE_RULES`: every package that has a seam, asgi and cli
  included), except the few listed with their reason (`PRIVATE_KNOWN`);
* no module reads another object's private attribute by name
  (``getattr(x, "_name")``, ``hasattr``, ``setattr`` on anything but
  ``self`` or ``cls``), except the ones listed with their reason
  (`GETATTR_KNOWN`): a capability two packages share is declared (a
  `typing.Protocol` with public names, see ``httputil/_websocket_link.py``);
* the driver packages have no import cycle;
* squall/ has no import circle beyond those listed (`CIRCLES_KNOWN`, which
  only shrinks), every import counted: lazy ones inside functions and
  ``TYPE_CHECKING`` ones too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from tests._paths import SQUALL_DIR

ROOT = SQUALL_DIR

LAYERS: dict[str, int] = {}
for level, names in enumerate(
    [
        [
            "_h1",
            "_ws",
            "_h2",
            "_content_coding",
            "_compiled",
            "_native",
            "_xhtml",
            "_jsonenc",
            "_typetags",
            "_wswrite",
            "_fastpaths",
            "_qpack",
            "_h3fields",
            "_sse",
        ],
        ["util", "escape", "log", "options", "speedups", "extras", "_traits", "_sizes"],
        [
            "concurrent",
            "ioloop",
            "gen",
            "locks",
            "queues",
            "platform",
            "_request_task",
        ],
        ["iostream", "netutil", "tcpserver", "tcpclient", "process", "_quicstack"],
        [
            "httputil",
            "http1connection",
            "httpserver",
            "httpclient",
            "simple_httpclient",
            "curl_httpclient",
            "h2client",
            "h3client",
        ],
        ["web", "routing", "template", "locale", "websocket", "webtransport"],
        [
            "auth",
            "wsgi",
            "autoreload",
            "testing",
            "compat",
            "_tornado_homes",
            "_tornado_imports",
            "_tornado_dist",
            "asgi",
            "pubsub",
            "resume",
        ],
        ["testclient", "pytest_plugin"],
        ["cli"],
    ]
):
    for name in names:
        LAYERS[name] = level

# Modules inside a package whose layer is not the package's: the bridges to
# pycares and Twisted subclass netutil.Resolver, so they sit above streams.
FILE_LAYERS = {"platform/caresresolver.py": 3, "platform/twisted.py": 3}

IO_MODULES = {"asyncio", "socket", "ssl", "time", "selectors", "select", "threading"}


def modules() -> Iterator[Path]:
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] != "__init__.py" and not rel.parts[0].startswith("__"):
            yield path


def top_name(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def import_time_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Absolute names imported at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ".".join(("squall",) + path.relative_to(ROOT).with_suffix("").parts[:-1])

    def visit(nodes: list[ast.stmt]) -> Iterator[tuple[int, str]]:
        for node in nodes:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield node.lineno, alias.name
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                yield node.lineno, mod
                for alias in node.names:
                    yield node.lineno, f"{mod}.{alias.name}"
            elif isinstance(node, (ast.If, ast.Try)):
                if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
                    continue
                yield from visit(node.body)
                yield from visit(node.orelse)
                if isinstance(node, ast.Try):
                    for handler in node.handlers:
                        yield from visit(handler.body)
                    yield from visit(node.finalbody)

    yield from visit(tree.body)


CASES = [p for p in modules() if top_name(p) in LAYERS]


@pytest.mark.parametrize("path", CASES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_from_lower_layers(path: Path) -> None:
    own = FILE_LAYERS.get(path.relative_to(ROOT).as_posix(), LAYERS[top_name(path)])
    bad = []
    for lineno, name in import_time_imports(path):
        parts = name.split(".")
        if parts[0] != "squall" or len(parts) < 2 or parts[1] not in LAYERS:
            continue
        if LAYERS[parts[1]] > own:
            bad.append(f"line {lineno}: {name}")
    assert not bad, f"{path.name} imports from a higher layer: {bad}"


@pytest.mark.parametrize(
    "path",
    [p for p in CASES if LAYERS[top_name(p)] == 0],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_sans_io_cores_import_no_io(path: Path) -> None:
    names = [(n, name) for n, name in import_time_imports(path)]
    bad = [f"line {n}: {name}" for n, name in names if name.split(".")[0] in IO_MODULES]
    squall = [
        f"line {n}: {name}"
        for n, name in names
        if name.startswith("squall.") and LAYERS.get(name.split(".")[1], 0) != 0
    ]
    assert not bad and not squall, f"{path.name} must stay sans-I/O: {bad + squall}"


# The sans-I/O cores (the protocol cores; _compiled and _native are loaders
# and helpers of layer 0, not cores).
CORES = [
    "_h1",
    "_qpack",
    "_h3fields",
    "_ws",
    "_h2",
    "_content_coding",
    "_xhtml",
    "_jsonenc",
    "_typetags",
    "_wswrite",
    "_fastpaths",
    "_sse",
]
# Beyond "no I/O": what a core may import at all, where that is kept explicit
# (anything outside the standard library's pure modules could pull I/O in).
CORE_ALLOWED = {
    "_h1": {"__future__", "re", "typing", "itertools", "collections", "httptools"},
}


def core_files(core: str) -> list[Path]:
    folder = ROOT / core
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{core}.py"]


def all_imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every absolute module name imported anywhere in the module (functions too)."""
    package = ".".join(("squall",) + path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                yield node.lineno, ".".join(base + ([node.module] if node.module else []))
            else:
                yield node.lineno, node.module or ""


@pytest.mark.parametrize(
    "path",
    [p for core in CORES for p in core_files(core)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_sans_io_cores_import_no_io_anywhere(path: Path) -> None:
    core = path.relative_to(ROOT).parts[0].removesuffix(".py")
    allowed = CORE_ALLOWED.get(core)
    bad = []
    for lineno, name in all_imports(path):
        top = name.split(".")[0]
        if top in IO_MODULES:
            bad.append(f"line {lineno}: {name}")
        elif top == "squall":
            parts = name.split(".")
            if len(parts) < 2 or parts[1] not in CORES:
                bad.append(f"line {lineno}: {name}")
        elif allowed is not None and top not in allowed:
            bad.append(f"line {lineno}: {name} (not in CORE_ALLOWED[{core!r}])")
    assert not bad, f"{path.name} must stay sans-I/O: {bad}"


def test_importing_the_cores_loads_no_io_module() -> None:
    code = (
        "import sys; "
        + "; ".join(f"import squall.{core}" for core in CORES)
        + "; print(sorted({'asyncio', 'socket', 'ssl', 'selectors'} & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert out.stdout.strip() == "[]"


def test_every_top_level_module_has_a_layer() -> None:
    unknown = sorted({top_name(p) for p in modules()} - set(LAYERS) - {"_certs"})
    assert not unknown, f"add these to LAYERS in {__file__}: {unknown}"


# {package: packages whose private names (a private module, or an
# underscore name) it never imports}. web/ reaches the server through
# HTTPConnection's contract (httputil), never through a driver's own
# classes; the drivers share httputil/_drivers.py, and
# http1connection is one driver, not its home. websocket/ writes to a server
# connection through the declared capability of its stream
# (httputil/_websocket_link.py). The adapters (asgi, wsgi, testclient) and
# the runner (cli) are one more driver or delegate at the seam: they talk to
# the contract too.
DRIVERS = ["squall.httpserver", "squall.http1connection"]
PRIVATE_RULES: dict[str, list[str]] = {
    "web": DRIVERS + ["squall.websocket", "squall.asgi", "squall.cli"],
    "routing": DRIVERS,
    "websocket": DRIVERS + ["squall.web", "squall.asgi"],
    "httpserver": [
        "squall.http1connection",
        "squall.simple_httpclient",
        "squall.h2client",
        "squall.h3client",
    ],
    "http1connection": ["squall.httpserver"],
    "asgi": DRIVERS + ["squall.web", "squall.websocket", "squall.cli"],
    "wsgi": DRIVERS + ["squall.web"],
    "testclient": DRIVERS + ["squall.web"],
    "cli": DRIVERS + ["squall.web", "squall.websocket", "squall.asgi"],
}
# Known crossings, each with its reason; the list only shrinks.
PRIVATE_KNOWN = {
    ("asgi/_websocket.py", "squall.websocket._protocol.MessageType"): (
        "the ASGI WebSocket app drives WebSocketProtocol13 with its own peer"
    ),
    ("asgi/_websocket.py", "squall.websocket._protocol.WebSocketProtocol13"): (
        "the ASGI WebSocket app drives WebSocketProtocol13 with its own peer"
    ),
    ("asgi/_websocket.py", "squall.websocket._protocol._Peer"): (
        "the ASGI WebSocket app drives WebSocketProtocol13 with its own peer"
    ),
    ("cli/_serving.py", "squall.httpserver._context._CallableAdapter"): (
        "the runner wraps a request callback as HTTPServer does"
    ),
    # The supervisor owns the QUIC slot sockets and their BPF
    # program, the worker's server issues the connection IDs: one routing
    # scheme on both sides of the seam, not yet behind a public interface.
    ("cli/_quicslots.py", "squall.httpserver._quicroute.MAX_SLOTS"): (
        "the supervisor's QUIC slots and the server's connection IDs share one scheme"
    ),
    ("cli/_quicslots.py", "squall.httpserver._quicroute.attach"): (
        "the supervisor's QUIC slots and the server's connection IDs share one scheme"
    ),
    ("cli/_quicslots.py", "squall.httpserver._quicroute.filter_program"): (
        "the supervisor's QUIC slots and the server's connection IDs share one scheme"
    ),
    ("cli/_supervisor.py", "squall.httpserver._quicroute"): (
        "a worker takes its QUIC slot from the supervisor's environment"
    ),
}


def private_imports(path: Path, package: str) -> Iterator[tuple[int, str]]:
    """Names imported anywhere in the module (functions too) that are private to
    ``package``: a private module of it, or an underscore name from it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [(alias.name, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names = [(node.module, f"{node.module}.{a.name}") for a in node.names]
        else:
            continue
        for module, name in names:
            if module == package or module.startswith(package + "."):
                rest = name[len(package) + 1 :].split(".")
                if any(part.startswith("_") for part in rest if part):
                    yield node.lineno, name


def package_files(name: str) -> list[Path]:
    folder = ROOT / name
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [ROOT / f"{name}.py"]


@pytest.mark.parametrize(
    "path",
    [p for folder in PRIVATE_RULES for p in package_files(folder)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_imports_no_private_names_across_the_seam(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    bad = [
        f"line {n}: {name}"
        for package in PRIVATE_RULES[rel.split("/")[0].removesuffix(".py")]
        for n, name in private_imports(path, package)
        if (rel, name) not in PRIVATE_KNOWN
    ]
    assert not bad, f"{rel} imports private names across the seam: {bad}"


def test_known_private_imports_still_exist() -> None:
    # A crossing removed must leave PRIVATE_KNOWN too, so the list only shrinks.
    stale = [
        key
        for key in PRIVATE_KNOWN
        if not any(name == key[1] for _, name in private_imports(ROOT / key[0], "squall"))
    ]
    assert not stale, f"remove from PRIVATE_KNOWN: {stale}"


def private_getattrs(path: Path) -> Iterator[tuple[int, str]]:
    """``getattr(x, "_name", ...)`` (and hasattr, setattr) where ``x`` is not
    ``self`` or ``cls``: a read of another object's private attribute that
    neither the type checker nor the import rules see."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "hasattr", "setattr")
            and len(node.args) >= 2
        ):
            continue
        target, name = node.args[0], node.args[1]
        if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
            continue
        attr = name.value
        if not attr.startswith("_") or attr.startswith("__"):
            continue
        if isinstance(target, ast.Name) and target.id in ("self", "cls"):
            continue
        yield node.lineno, f"{node.func.id}({ast.unparse(target)}, {attr!r})"


# Known reads of another object's private attribute, each with its reason;
# the list only shrinks. Keyed by (file, call) so a moved line keeps its entry.
_THIRD_PARTY = "a private name of asyncio, logging, pytest or the stdlib that has no public one"
GETATTR_KNOWN = {
    ("httpserver/_h3session.py", "getattr(h3, '_local_control_stream_id')"): (
        "aioquic's H3Connection: the control stream a GOAWAY is written on"
    ),
    ("compat.py", "getattr(logging, '_lock')"): _THIRD_PARTY,
    ("compat.py", "getattr(manager, '_clear_cache')"): _THIRD_PARTY,
    ("compat.py", "getattr(module, '_squall_facade')"): "a marker squall sets on modules it makes",
    ("compat.py", "getattr(f, '_squall_pth')"): "a marker squall sets on its .pth finder",
    ("gen.py", "getattr(future, '_source_traceback')"): _THIRD_PARTY,
    ("ioloop.py", "getattr(policy, '_local')"): _THIRD_PARTY,
    ("ioloop.py", "hasattr(local, '_loop')"): _THIRD_PARTY,
    ("pytest_plugin.py", "getattr(value, '_pytestfixturefunction')"): _THIRD_PARTY,
    ("pytest_plugin.py", "getattr(value, '_fixture_function_marker')"): _THIRD_PARTY,
    ("pytest_plugin.py", "getattr(http_server, '_sockets')"): (
        "HTTPServer._sockets is API in practice (Tornado's and Jupyter's pytest plugins)"
    ),
    ("httpserver/_server.py", "getattr(io_loop, '_fd_owners')"): "the IOLoop's fd table",
    ("simple_httpclient/_client.py", "getattr(self.io_loop, '_fd_owners')"): (
        "the IOLoop's fd table"
    ),
    ("http1connection.py", "getattr(stream, '_rbuf')"): (
        "an IOStream's read buffer, put back when a connection is detached"
    ),
    ("cli/_serving.py", "getattr(ctx, '_orig_remote_ip')"): (
        "Tornado's name for the peer before proxy headers (_HTTPRequestContext)"
    ),
    ("pubsub/_redis.py", "getattr(conn, '_writer')"): "redis-py's connection",
    (
        "pubsub/_redis_scripts.py",
        "getattr(getattr(client, 'connection_pool', None), '_available_connections')",
    ): "redis-py's idle pooled connections, whose server may have closed them",
    ("pubsub/_redis_scripts.py", "getattr(node, '_free')"): (
        "redis-py's idle connections of a cluster node, whose server may have closed them"
    ),
    ("pubsub/_redis_scripts.py", "getattr(connection, '_reader')"): (
        "redis-py's connection: whether its server closed it (the reader at EOF)"
    ),
    ("websocket/_idle.py", "getattr(request, '_cookies')"): (
        "Tornado's lazily parsed cookie cache on HTTPServerRequest"
    ),
}


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_getattr_of_private_names(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    bad = [
        f"line {n}: {call}"
        for n, call in private_getattrs(path)
        if (rel, call) not in GETATTR_KNOWN
    ]
    assert not bad, f"{rel} reads private names of other objects: {bad}"


def test_known_getattrs_still_exist() -> None:
    stale = [
        key
        for key in GETATTR_KNOWN
        if key[1] not in {call for _, call in private_getattrs(ROOT / key[0])}
    ]
    assert not stale, f"remove from GETATTR_KNOWN: {stale}"


def test_private_getattr_scan_finds_one(tmp_path: Path) -> None:
    # The scan sees what it is for, and leaves self, cls and public names alone.
    module = tmp_path / "m.py"
    module.write_text(
        "getattr(stream, '_ws', None)\ngetattr(self, '_x')\ngetattr(s, 'public')\n"
        "hasattr(conn, '_drain')\ngetattr(x, '__name__')\n"
    )
    found = [call for _, call in private_getattrs(module)]
    assert found == ["getattr(stream, '_ws')", "hasattr(conn, '_drain')"]


# asyncio's private state (DESIGN.md, "Compiled speedups"): a
# private name of asyncio read or written (``asyncio.tasks._current_tasks``,
# ``from asyncio.tasks import _enter_task``, a Future's
# ``_asyncio_future_blocking``), or a live object initialised again
# (``task.__init__(...)``). Such code breaks with any CPython release and
# with any loop that is not asyncio's own.
ASYNCIO_PRIVATE_ATTRS = frozenset(
    {
        "_asyncio_future_blocking",
        "_current_tasks",
        "_enter_task",
        "_leave_task",
        "_swap_current_task",
        "_register_task",
        "_unregister_task",
        "_register_eager_task",
        "_unregister_eager_task",
        "_all_tasks",
        "_scheduled_tasks",
        "_eager_tasks",
        "_log_destroy_pending",
        "_log_traceback",
        "_source_traceback",
        "_fut_waiter",
        "_must_cancel",
        "_num_cancels_requested",
        "_callbacks",
        "_PyTask",
        "_CTask",
        "_PyFuture",
        "_CFuture",
        "_get_running_loop",
        "_set_running_loop",
        "_task_factory",
        "_local",
    }
)


def _dotted(node: ast.expr) -> Optional[list[str]]:
    """``a.b.c`` as ``["a", "b", "c"]``; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def asyncio_private_uses(path: Path) -> Iterator[tuple[int, str]]:
    """Each use of one of asyncio's private names in ``path`` (see above)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # The names asyncio or one of its modules is bound to here.
    roots = {"asyncio", "_asyncio"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in ("asyncio", "_asyncio"):
                    roots.add(alias.asname or top)
                    if top == "_asyncio" or any(map(_private, alias.name.split("."))):
                        yield node.lineno, f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            parts = node.module.split(".")
            if parts[0] not in ("asyncio", "_asyncio"):
                continue
            for alias in node.names:
                if parts[0] == "_asyncio" or any(map(_private, parts + [alias.name])):
                    yield node.lineno, f"from {node.module} import {alias.name}"
                else:
                    roots.add(alias.asname or alias.name)
    seen: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        found: Optional[str] = None
        if isinstance(node, ast.Attribute):
            chain = _dotted(node)
            if chain is not None and chain[0] in roots and any(map(_private, chain[1:])):
                found = ".".join(chain)
            elif node.attr in ASYNCIO_PRIVATE_ATTRS and not (
                isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            ):
                found = f"{ast.unparse(node.value)}.{node.attr}"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if (
                node.func.id in ("getattr", "hasattr", "setattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in ASYNCIO_PRIVATE_ATTRS
            ):
                found = f"{node.func.id}({ast.unparse(node.args[0])}, {node.args[1].value!r})"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "__init__"
        ):
            # A class's __init__ called on self (a base class's, or
            # super()'s) is construction; called on an instance, it is an
            # object made again in place (a Task given a new coroutine).
            target = node.func.value
            if not (
                (
                    isinstance(target, ast.Name)
                    and (target.id in ("self", "cls") or target.id[0].isupper())
                )
                or (isinstance(target, ast.Call) and ast.unparse(target.func) == "super")
            ):
                found = f"{ast.unparse(target)}.__init__()"
        if found is not None:
            line = getattr(node, "lineno", 0)
            key = (line, found)
            if key not in seen:
                seen.add(key)
                yield key


# Uses of asyncio's private names left, each with its reason; the list only
# shrinks. Keyed by (file, use).
ASYNCIO_PRIVATE_KNOWN = {
    ("platform/asyncio.py", "asyncio.selector_events._SelectorSocketTransport"): (
        "the type of asyncio's plain socket transport, to bound its read size "
        "(public max_size); nothing of its state is read"
    ),
    ("platform/asyncio.py", "task._log_destroy_pending"): (
        "a Task of the selector thread that the loop stopped before it ran: "
        "no 'destroyed but pending' report for it"
    ),
    ("gen.py", "getattr(future, '_source_traceback')"): (
        "asyncio's debug-mode record of where a Future was made, trimmed of gen's own frames"
    ),
    ("ioloop.py", "getattr(policy, '_local')"): (
        "the default policy's loop slot before 3.14, read without creating a loop"
    ),
}


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_asyncio_internals(path: Path) -> None:
    rel = path.relative_to(ROOT).as_posix()
    bad = [
        f"line {n}: {use}"
        for n, use in asyncio_private_uses(path)
        if (rel, use) not in ASYNCIO_PRIVATE_KNOWN
    ]
    assert not bad, f"{rel} uses asyncio's private names: {bad}"


def test_known_asyncio_internals_still_exist() -> None:
    stale = [
        key
        for key in ASYNCIO_PRIVATE_KNOWN
        if key[1] not in {use for _, use in asyncio_private_uses(ROOT / key[0])}
    ]
    assert not stale, f"remove from ASYNCIO_PRIVATE_KNOWN: {stale}"


def test_asyncio_internals_scan_finds_them(tmp_path: Path) -> None:
    # What the Task recycling of 3.11 did, each seen; a squall
    # object's own underscore names and a base class's __init__ are not.
    module = tmp_path / "m.py"
    module.write_text(
        "import asyncio\n"
        "import asyncio.tasks as at\n"
        "from asyncio.tasks import _enter_task\n"
        "from asyncio import tasks\n"
        "import _asyncio\n"
        "current = asyncio.tasks._current_tasks\n"
        "at._leave_task(loop, task)\n"
        "tasks._register_task(task)\n"
        "fut._asyncio_future_blocking = False\n"
        "getattr(y, '_asyncio_future_blocking', None)\n"
        "task.__init__(coro, loop=loop)\n"
        "Base.__init__(self, x)\n"
        "super().__init__()\n"
        "proto._loop.time()\n"
        "asyncio.get_running_loop()\n"
    )
    found = [use for _, use in sorted(asyncio_private_uses(module))]
    assert found == [
        "from asyncio.tasks import _enter_task",
        "import _asyncio",
        "asyncio.tasks._current_tasks",
        "at._leave_task",
        "tasks._register_task",
        "fut._asyncio_future_blocking",
        "getattr(y, '_asyncio_future_blocking')",
        "task.__init__()",
    ]


def _module_graph(package: str) -> dict[str, set[str]]:
    """``{module: modules of the same package it imports at import time}``."""
    folder = ROOT / package
    own = {p.stem for p in folder.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        edges = graph.setdefault(path.stem, set())
        for _, name in import_time_imports(path):
            parts = name.split(".")
            if parts[:2] == ["squall", package] and len(parts) > 2 and parts[2] in own:
                if parts[2] != path.stem:
                    edges.add(parts[2])
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` (as a path), or [] if there is none."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str]:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return []
        for nxt in sorted(graph.get(node, ())):
            found = visit(nxt, path + [node])
            if found:
                return found
        done.add(node)
        return []

    for start in sorted(graph):
        found = visit(start, [])
        if found:
            return found
    return []


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


@pytest.mark.parametrize("package", ["httpserver", "httputil"])
def test_no_import_cycle_inside_the_driver_packages(package: str) -> None:
    # At import time only (type-checking imports excluded): the driver's
    # modules stay a stack, so each can be read (and compiled) after those it uses.
    graph = _module_graph(package)
    if package == "httpserver":
        assert "_protocol" in graph["_negotiate"]  # the graph sees the imports
    assert not _cycle(graph), f"import cycle in squall/{package}: {' -> '.join(_cycle(graph))}"


SEAM_DOC = Path(__file__).resolve().parent.parent / "docs" / "guide" / "seam.md"


def test_the_drawing_in_the_guide_matches_the_layers() -> None:
    if not SEAM_DOC.is_file():
        pytest.skip(f"{SEAM_DOC} is not in this tree")
    text = SEAM_DOC.read_text(encoding="utf-8")
    block = text.split("## Layers", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    drawn: dict[str, int] = {}
    level = -1
    for line in block.splitlines():
        if not line.strip():
            continue
        head = line.split()[0]
        if head.isdigit():
            level = int(head)
            # "8  serving        cli": the names follow the row's title.
            names = line.split(None, 1)[1].split("  ", 1)[1]
        else:
            names = line
        for name in names.split(","):
            if name.strip():
                drawn[name.strip()] = level
    assert drawn == LAYERS


def private_exports(path: Path) -> list[str]:
    """The underscore names a module's ``__all__`` lists."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign) and node.value is not None
            else []
        )
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            value = node.value
            assert value is not None
            try:
                names = ast.literal_eval(value)
            except ValueError:
                return []
            return [name for name in names if name.startswith("_")]
    return []


# Modules whose __all__ still lists private names; the list only shrinks.
EXPORTS_KNOWN = {
    "httpserver/_context.py",
    "iostream/_base.py",
    "iostream/_buffer.py",
}


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_all_lists_no_private_names(path: Path) -> None:
    # __all__ says what a module offers; a private name is offered to nobody
    # (the driver's modules import each other's private names by name).
    rel = path.relative_to(ROOT).as_posix()
    found = private_exports(path)
    if rel in EXPORTS_KNOWN:
        assert found, f"{rel} no longer exports private names: remove it from EXPORTS_KNOWN"
    else:
        assert not found, f"{rel}.__all__ lists private names: {found}"


def private_declaration_line(path: Path) -> tuple[int, int]:
    """The line of a module's empty ``__all__`` (0 when it offers names) and
    of its first import other than ``from __future__``."""
    declared = first_import = 0
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not first_import:
            if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
                first_import = node.lineno
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "__all__":
            value = node.value  # type: ignore[attr-defined]
            if isinstance(value, ast.List) and not value.elts:
                declared = node.lineno
    return declared, first_import


@pytest.mark.parametrize("path", list(modules()), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_private_module_says_so_before_its_imports(path: Path) -> None:
    # An empty __all__ is a statement about the module, like its docstring:
    # it stands where PEP 8 puts module dunders, before the imports.
    declared, first_import = private_declaration_line(path)
    if declared and first_import:
        assert declared < first_import, f"{path}: __all__ = [] after the imports"


def _squall_module_graph() -> dict[str, set[str]]:
    """``{module: squall modules it imports}`` over all of squall/, every
    import counted: at import time, under ``TYPE_CHECKING`` and inside
    functions (a lazy import is still a dependency, only a later one). A
    package is its ``__init__``; a name imported from a package that is one
    of its modules counts as that module."""
    names: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str:
        while name and name not in names:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for name, path in names.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges.update(owner(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    edges.add(full if full in names else owner(module))
        edges.discard(name)
        edges.discard("")
    return graph


def _circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The import circles of ``graph``: its strongly connected parts of two
    modules or more (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            part = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.add(top)
                if top == node:
                    break
            if len(part) > 1:
                found.append(part)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_circle_finder_finds_circles() -> None:
    graph = {"a": {"b"}, "b": {"c", "d"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}}
    assert sorted(sorted(part) for part in _circles(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert _circles({"a": {"b"}, "b": set()}) == []


# Import circles that stand, each a decision nobody owns yet; the list only
# shrinks (a circle found must lie inside one of these). Broken by moving
# what both sides need below them: asgi's server and its cycles
# (`asgi/_host.py`), cli's supervisor, worker and metrics (`WorkerCensus`,
# `cli/_alias.py`), http1connection and httputil/_drivers
# (`HTTP1ConnectionParameters` lives in _drivers).
CIRCLES_KNOWN: list[set[str]] = [
    {"squall.ioloop", "squall.platform.asyncio"},
    {"squall.log", "squall.options"},
    {"squall.httputil._delegates", "squall.httputil._exchange"},
    {"squall.template._nodes", "squall.template._parser", "squall.template._template"},
    {"squall.asgi._adapter", "squall.asgi._adapter_ws"},
    {
        "squall.httpclient",
        "squall.simple_httpclient",
        "squall.simple_httpclient._client",
        "squall.simple_httpclient._connection",
        "squall.simple_httpclient._errors",
        "squall.simple_httpclient._exchange",
        "squall.simple_httpclient._policy",
    },
    {
        "squall.httpserver._h1driver",
        "squall.httpserver._h1exchange",
        "squall.httpserver._h1lifecycle",
        "squall.httpserver._h1output",
        "squall.httpserver._h2protocol",
        "squall.httpserver._h2session",
        "squall.httpserver._h2stream",
        "squall.httpserver._h2websocket",
        "squall.httpserver._h3protocol",
        "squall.httpserver._h3session",
        "squall.httpserver._h3stream",
        "squall.httpserver._h3websocket",
        "squall.httpserver._negotiate",
        "squall.httpserver._protocol",
        "squall.httpserver._sendfile",
        "squall.httpserver._server",
        "squall.httpserver._stream",
    },
    {
        "squall.web._arguments",
        "squall.web._delegate",
        "squall.web._failure",
        "squall.web._records.web",
        "squall.web._status",
        "squall.web.application",
        "squall.web.handler",
        "squall.web.handlers",
        "squall.web.rendering",
        "squall.web.static",
        "squall.web.ui",
    },
]


def test_no_new_import_circle_in_squall() -> None:
    graph = _squall_module_graph()
    assert "squall.asgi._http" in graph["squall.asgi._server"]  # the graph sees the imports
    new = [
        sorted(part)
        for part in _circles(graph)
        if not any(part <= known for known in CIRCLES_KNOWN)
    ]
    assert not new, f"import circles in squall/ (move what both sides need below them): {new}"


def test_known_import_circles_still_stand() -> None:
    found = _circles(_squall_module_graph())
    gone = [sorted(known) for known in CIRCLES_KNOWN if not any(part & known for part in found)]
    assert not gone, f"no longer circles: remove from CIRCLES_KNOWN: {gone}"
