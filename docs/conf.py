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
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
exclude_patterns = ["_build", "examples"]
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
# Docstrings mention Tornado's and the standard library's names in backquotes;
# without intersphinx (the build runs with no network) they cannot resolve.
nitpicky = False
suppress_warnings = ["myst.xref_missing"]

# The modules a program imports, each with a page of its own.
PUBLIC_MODULES = sorted(
    [f"squall.{name}" for name in squall.__all__]
    + ["squall.websocket", "squall.wsgi", "squall.asgi", "squall.pubsub", "squall.compat"]
    + ["squall.testclient"]
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
        body += "   :exclude-members: TimeoutError\n"
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
