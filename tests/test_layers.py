"""The layering rule of DESIGN.md: a module imports (at import time) only from its
own layer or the layers below it, and the sans-I/O cores import no I/O at all."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._paths import SQUALL_DIR

ROOT = SQUALL_DIR

LAYERS: dict[str, int] = {}
for level, names in enumerate(
    [
        ["_h1", "_ws", "_h2", "_content_coding", "_compiled", "_native", "_xhtml"],
        ["util", "escape", "log", "options", "speedups"],
        ["concurrent", "ioloop", "gen", "locks", "queues", "platform", "_eager", "_eager_resume"],
        ["iostream", "netutil", "tcpserver", "tcpclient", "process"],
        [
            "httputil",
            "http1connection",
            "httpserver",
            "httpclient",
            "simple_httpclient",
            "curl_httpclient",
            "h2client",
        ],
        ["web", "routing", "template", "locale", "websocket"],
        ["auth", "wsgi", "autoreload", "testing", "compat", "_tornado_homes", "asgi", "pubsub"],
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


def test_every_top_level_module_has_a_layer() -> None:
    unknown = sorted({top_name(p) for p in modules()} - set(LAYERS) - {"_certs"})
    assert not unknown, f"add these to LAYERS in {__file__}: {unknown}"


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


# (folder, package): no module of the folder imports a private name of the
# package. web/ reaches the server through HTTPConnection's contract
# (httputil), never through a driver's own classes; the drivers share the kit
# in httputil/_kit.py, and http1connection is one driver, not its home.
# websocket/ (broadcast) writes to a server connection through the public
# capability of its stream (transport, writing_paused, get_write_buffer_size).
PRIVATE_RULES = [
    ("web", "squall.httpserver"),
    ("httpserver", "squall.http1connection"),
    ("websocket", "squall.httpserver"),
]


@pytest.mark.parametrize(
    ("path", "package"),
    [
        (p, package)
        for folder, package in PRIVATE_RULES
        for p in sorted((ROOT / folder).glob("*.py"))
    ],
    ids=lambda v: str(v.relative_to(ROOT)) if isinstance(v, Path) else v,
)
def test_imports_no_private_names_across_the_seam(path: Path, package: str) -> None:
    bad = [f"line {n}: {name}" for n, name in private_imports(path, package)]
    assert not bad, f"{path.name} imports private names of {package}: {bad}"


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
