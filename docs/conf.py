"""Sphinx configuration for Squall's documentation site (``make docs``).

The API reference and the ``squall run`` reference are generated here, at
build time, from the package itself: one page per public module (autodoc
over its docstrings) and the runner's argument parser rendered option by
option, so neither can drift from the code.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE / "examples"))

import squall  # noqa: E402

project = "Squall"
author = "The Squall developers"
copyright = "2026, the Squall developers"
release = squall.version
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.intersphinx",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build", "examples", "_intersphinx"]
html_theme = "furo"
html_title = f"Squall {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes sections become fields of their class, not a second description
# of attributes autodoc documents anyway.
napoleon_use_ivar = True
# A name in single backquotes is a cross-reference (``~squall.web.Application``
# shows only the last part); every reference must resolve (``make docs``
# builds with -n -W).
default_role = "py:obj"
nitpicky = True
# The build has no network: Python's inventory is a committed copy (from
# Debian's python3.11-doc package), and links go to docs.python.org.
intersphinx_mapping = {"python": ("https://docs.python.org/3", "_intersphinx/python3.11.inv")}
# Names private by their leading underscore (type variables, private bases
# shown by show-inheritance, internal hooks a docstring mentions) have no
# page of their own, on purpose.
nitpick_ignore_regex = [(r"py:.*", r"(.+\.)?_\w+(\..+)?")]
# In Python but not in its 3.11 inventory.
nitpick_ignore = [("py:class", "socket.AddressFamily"), ("py:class", "re.Pattern")]
# Type aliases in annotations (Union, Literal and Callable spelled out in
# the text of the functions that take them): autodoc gives aliases no entry.
nitpick_ignore += [
    ("py:class", name) for name in ("ASGIApp", "LifespanMode", "MessageType", "Leave")
]
# squall.pubsub's Roster (presence's owner) is internal; PubSub's signatures name it.
nitpick_ignore += [("py:class", "Roster")]
# RequestHandler's mixins: their members are documented on RequestHandler.
nitpick_ignore += [
    ("py:class", f"squall.web.{name}") for name in ("rendering.RenderMixin", "cookies.CookieMixin")
]
# Type hints name the classes where they are defined; Python documents them
# under their public module.
_STDLIB_PUBLIC = {
    "concurrent.futures._base.Future": "concurrent.futures.Future",
    "concurrent.futures._base.Executor": "concurrent.futures.Executor",
    "unittest.case.TestCase": "unittest.TestCase",
    "unittest.suite.TestSuite": "unittest.TestSuite",
    "asyncio.events.AbstractEventLoop": "asyncio.AbstractEventLoop",
}
# Annotations that name a type alias, or a class imported only for type
# checking, by its short name.
_SHORT_NAMES = {
    "BytesIO": "io.BytesIO",
    "TracebackType": "types.TracebackType",
}
# Smart quotes would turn "--port" into an en dash in option names.
smartquotes = False
suppress_warnings = ["myst.xref_missing"]

# The modules a program imports, each with a page of its own.
PUBLIC_MODULES = sorted(
    [f"squall.{name}" for name in squall.__all__]
    + ["squall.websocket", "squall.wsgi", "squall.asgi", "squall.pubsub", "squall.compat"]
    + ["squall.resume"]
    + ["squall.testclient", "squall.platform.asyncio"]
)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _api_pages() -> None:
    names = []
    for module in PUBLIC_MODULES:
        names.append(module)
        title = f"``{module}``"
        body = f"{title}\n{'=' * len(title)}\n\n.. automodule:: {module}\n"
        # The builtin TimeoutError, re-exported under Tornado's names, is
        # the standard library's class: not described again here.
        body += "   :exclude-members: TimeoutError, CalledProcessError\n"
        if module == "squall.web":
            # RequestHandler is assembled from mixins in private modules:
            # their methods are documented as RequestHandler's own (after
            # the module's other names: one directive cannot do both).
            body = body.replace("TimeoutError", "TimeoutError, RequestHandler")
            body += (
                "\n.. autoclass:: squall.web.RequestHandler\n"
                "   :members:\n   :inherited-members: object\n   :show-inheritance:\n"
            )
        _write_if_changed(HERE / "api" / f"{module}.rst", body)
    toc = "\n".join(f"   {name}" for name in names)
    index = (
        "API reference\n=============\n\n"
        "One page per public module, generated from the docstrings.\n\n"
        f".. toctree::\n   :maxdepth: 1\n\n{toc}\n"
    )
    _write_if_changed(HERE / "api" / "index.rst", index)


def _rst_text(text: str) -> str:
    """Help text as reStructuredText that says exactly what argparse prints."""
    return re.sub(r"([\\*`_|])", r"\\\1", text)


def _cli_page() -> None:
    from squall.cli._options import build_parser

    parser = build_parser()
    lines = [
        "``squall run`` reference",
        "========================",
        "",
        "Generated from the runner's argument parser. Every option can also be",
        "given as an environment variable (shown beside it).",
        "",
        ".. code-block:: text",
        "",
    ]
    lines += ["   " + line for line in parser.format_usage().splitlines()]
    lines.append("")
    groups = [parser._positionals, parser._optionals, *parser._action_groups[2:]]
    seen: set[int] = set()
    for group in groups:
        actions = [a for a in group._group_actions if id(a) not in seen]
        actions = [a for a in actions if a.help != argparse.SUPPRESS]
        if not actions:
            continue
        title = (group.title or "options").capitalize()
        lines += [title, "-" * len(title), ""]
        for action in actions:
            seen.add(id(action))
            names = ", ".join(action.option_strings) or action.dest
            if action.nargs != 0 and action.option_strings:
                names += f" {action.metavar or action.dest.upper()}"
            lines.append(f"``{names}``")
            text = (action.help or "").replace("%(default)s", str(action.default))
            text = _rst_text(text.replace("%%", "%"))
            lines.append(f"   {text}")
            if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in (
                action.help or ""
            ):
                lines.append("")
                lines.append(f"   Default: ``{action.default!r}``.")
            lines.append("")
    _write_if_changed(HERE / "guide" / "cli.rst", "\n".join(lines) + "\n")


_api_pages()
_cli_page()
os.environ.setdefault("SQUALL_DOCS_BUILD", "1")


def _public_stdlib_name(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    from sphinx.ext.intersphinx import missing_reference

    target = node.get("reftarget")
    target = _STDLIB_PUBLIC.get(target) or _SHORT_NAMES.get(target)
    if target is None:
        return None
    node["reftarget"] = target
    return missing_reference(app, env, node, contnode)


def _drop_modules_without_source(app: Any) -> list[Any]:
    # viewcode lists, on its index of source pages, modules whose source it
    # could not read (asyncio's C module, builtins) and links to pages it
    # never writes; run before its collect_pages and forget them.
    modules = getattr(app.env, "_viewcode_modules", {})
    for name in [name for name, entry in modules.items() if entry is False]:
        del modules[name]
    # Its links back to the documentation go to the page that last mentioned
    # an object (an alias documented elsewhere: squall.web.url); send them to
    # the page that documents it under that name.
    objects = app.env.get_domain("py").objects
    for entry in modules.values():
        used, module = entry[2], entry[3]
        for name in used:
            if f"{module}.{name}" in objects:
                used[name] = objects[f"{module}.{name}"].docname
    return []


def setup(app: Any) -> None:
    app.connect("missing-reference", _public_stdlib_name)
    app.connect("html-collect-pages", _drop_modules_without_source, priority=100)
