"""The parsed form of a template (a tree of nodes) and the Python code writer.

Each node knows how to write itself as Python source through a `CodeWriter`.
Every generated line ends with a ``# template.html:LINE`` comment, followed by
``(via parent.html:LINE, ...)`` when the code came from an included template
or an inherited block, so that a traceback through generated code names the
template line responsible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Optional

from squall.template._syntax import ParseError, filter_whitespace

if TYPE_CHECKING:
    from squall.template._template import BaseLoader, Template

__all__ = [
    "Apply",
    "Block",
    "Body",
    "Clause",
    "CodeWriter",
    "Compound",
    "Expression",
    "Extends",
    "Include",
    "Node",
    "Statement",
    "Text",
]

# Names the generated code uses; the ``_tt_`` prefix keeps them out of the way
# of template variables and is what Tornado-compatible namespaces provide.
BUFFER = "_tt_buffer"
APPEND = "_tt_append"
TMP = "_tt_tmp"
ENTRY_POINT = "_tt_execute"


class CodeWriter:
    """Accumulates indented Python source lines tagged with template locations."""

    __slots__ = (
        "_apply_count",
        "_indent",
        "_lines",
        "_stack",
        "blocks",
        "current",
        "loader",
    )

    def __init__(
        self, template: Template, blocks: dict[str, Block], loader: Optional[BaseLoader]
    ) -> None:
        self.current = template
        self.blocks = blocks
        self.loader = loader
        self._lines: list[str] = []
        self._indent = 0
        # (template, line) of each include or block override we are inside of.
        self._stack: list[tuple[Template, int]] = []
        self._apply_count = 0

    def line(self, code: str, lineno: int) -> None:
        """Write one line of code at the current indent, tagged with ``lineno``."""
        where = f"{self.current.name}:{lineno}"
        if self._stack:
            via = ", ".join(f"{t.name}:{n}" for t, n in reversed(self._stack))
            where = f"{where} (via {via})"
        self._lines.append(f"{'    ' * self._indent}{code}  # {where}")

    def line_count(self) -> int:
        """Number of lines written so far."""
        return len(self._lines)

    def next_apply_name(self) -> str:
        """A fresh name for the nested function of an ``{% apply %}`` block."""
        self._apply_count += 1
        return f"_tt_apply{self._apply_count}"

    @contextlib.contextmanager
    def indented(self) -> Iterator[None]:
        """Indent the lines written inside the ``with`` block one level deeper."""
        self._indent += 1
        try:
            yield
        finally:
            self._indent -= 1

    @contextlib.contextmanager
    def inside(self, template: Template, lineno: int) -> Iterator[None]:
        """Write code that belongs to ``template``, reached from line ``lineno``."""
        self._stack.append((self.current, lineno))
        self.current = template
        try:
            yield
        finally:
            self.current = self._stack.pop()[0]

    def source(self) -> str:
        """The code written so far, one line per entry."""
        return "\n".join(self._lines) + "\n"


class Node:
    """Base of the template tree."""

    __slots__ = ("line",)

    def __init__(self, line: int) -> None:
        self.line = line

    def children(self) -> Sequence[Node]:
        """Nodes directly below this one (used to find named blocks)."""
        return ()

    def collect_blocks(self, loader: Optional[BaseLoader], blocks: dict[str, Block]) -> None:
        """Record every ``{% block %}`` at or below this node into ``blocks``."""
        for child in self.children():
            child.collect_blocks(loader, blocks)

    def write(self, out: CodeWriter) -> None:
        """Write this node's Python code."""
        raise NotImplementedError


class Body(Node):
    """A sequence of nodes."""

    __slots__ = ("nodes",)

    def __init__(self, nodes: list[Node], line: int) -> None:
        super().__init__(line)
        self.nodes = nodes

    def children(self) -> Sequence[Node]:
        return self.nodes

    def write(self, out: CodeWriter) -> None:
        for node in self.nodes:
            node.write(out)

    def write_suite(self, out: CodeWriter, lineno: int) -> None:
        """Write the body as an indented Python suite, never an empty one."""
        with out.indented():
            before = out.line_count()
            self.write(out)
            if out.line_count() == before:
                out.line("pass", lineno)


class Text(Node):
    """Literal text, filtered by the whitespace mode in force where it appeared."""

    __slots__ = ("text", "whitespace")

    def __init__(self, text: str, line: int, whitespace: str) -> None:
        super().__init__(line)
        self.text = text
        self.whitespace = whitespace

    def write(self, out: CodeWriter) -> None:
        text = self.text
        # Whitespace inside preformatted HTML is content, not layout.
        if "<pre>" not in text:
            text = filter_whitespace(self.whitespace, text)
        if text:
            out.line(f"{APPEND}({text.encode('utf-8')!r})", self.line)


class Expression(Node):
    """``{{ expr }}``, ``{% raw expr %}`` or ``{% module expr %}``."""

    __slots__ = ("code", "raw")

    def __init__(self, code: str, line: int, raw: bool = False) -> None:
        super().__init__(line)
        self.code = code
        self.raw = raw

    def write(self, out: CodeWriter) -> None:
        # The expression gets a line of its own so that a trailing ``#``
        # comment inside the braces cannot swallow the code after it.
        out.line(f"{TMP} = {self.code}", self.line)
        # Escape functions are handed bytes, whatever the expression gave.
        out.line(
            f"{TMP} = _tt_utf8({TMP} if isinstance({TMP}, _tt_string_types) else str({TMP}))",
            self.line,
        )
        escape = out.current.autoescape
        if not self.raw and escape is not None:
            out.line(f"{TMP} = _tt_utf8({escape}({TMP}))", self.line)
        out.line(f"{APPEND}({TMP})", self.line)


class Statement(Node):
    """A Python statement: ``set``, ``import``, ``from``, ``break``, ``continue``."""

    __slots__ = ("code",)

    def __init__(self, code: str, line: int) -> None:
        super().__init__(line)
        self.code = code

    def write(self, out: CodeWriter) -> None:
        out.line(self.code, self.line)


class Clause:
    """One ``header:`` and its suite within a compound statement."""

    __slots__ = ("body", "header", "line")

    def __init__(self, header: str, line: int, body: Body) -> None:
        self.header = header
        self.line = line
        self.body = body


class Compound(Node):
    """``if``/``for``/``while``/``try`` with their ``elif``/``else``/``except``/``finally``."""

    __slots__ = ("clauses",)

    def __init__(self, clauses: list[Clause]) -> None:
        super().__init__(clauses[0].line)
        self.clauses = clauses

    def children(self) -> Sequence[Node]:
        return [clause.body for clause in self.clauses]

    def write(self, out: CodeWriter) -> None:
        for clause in self.clauses:
            out.line(f"{clause.header}:", clause.line)
            clause.body.write_suite(out, clause.line)


class Apply(Node):
    """``{% apply f %}...{% end %}``: the rendered body is passed through ``f``."""

    __slots__ = ("body", "function")

    def __init__(self, function: str, line: int, body: Body) -> None:
        super().__init__(line)
        self.function = function
        self.body = body

    def children(self) -> Sequence[Node]:
        return (self.body,)

    def write(self, out: CodeWriter) -> None:
        name = out.next_apply_name()
        out.line(f"def {name}():", self.line)
        with out.indented():
            out.line(f"{BUFFER} = []", self.line)
            out.line(f"{APPEND} = {BUFFER}.append", self.line)
            self.body.write(out)
            out.line(f"return b''.join({BUFFER})", self.line)
        out.line(f"{APPEND}(_tt_utf8({self.function}({name}())))", self.line)


class Block(Node):
    """``{% block name %}``: a region a child template may replace."""

    __slots__ = ("body", "name", "template")

    def __init__(self, name: str, line: int, body: Body, template: Template) -> None:
        super().__init__(line)
        self.name = name
        self.body = body
        self.template = template

    def children(self) -> Sequence[Node]:
        return (self.body,)

    def collect_blocks(self, loader: Optional[BaseLoader], blocks: dict[str, Block]) -> None:
        blocks[self.name] = self
        super().collect_blocks(loader, blocks)

    def write(self, out: CodeWriter) -> None:
        # The most derived definition of the block wins; its code belongs to
        # the template that defined it (its autoescape, its line numbers).
        chosen = out.blocks.get(self.name, self)
        with out.inside(chosen.template, self.line):
            chosen.body.write(out)


class Extends(Node):
    """``{% extends "base.html" %}``: writes nothing; read by the assembler."""

    __slots__ = ("name",)

    def __init__(self, name: str, line: int) -> None:
        super().__init__(line)
        self.name = name

    def write(self, out: CodeWriter) -> None:
        return None


class Include(Node):
    """``{% include "other.html" %}``: the other template's code, inlined."""

    __slots__ = ("name", "parent")

    def __init__(self, name: str, line: int, parent: str) -> None:
        super().__init__(line)
        self.name = name
        self.parent = parent

    def _load(self, loader: Optional[BaseLoader]) -> Template:
        if loader is None:
            raise ParseError(
                f"{{% include {self.name} %}} needs a template loader", self.parent, self.line
            )
        return loader.load(self.name, self.parent)

    def collect_blocks(self, loader: Optional[BaseLoader], blocks: dict[str, Block]) -> None:
        self._load(loader).file.collect_blocks(loader, blocks)

    def write(self, out: CodeWriter) -> None:
        included = self._load(out.loader)
        with out.inside(included, self.line):
            included.file.write(out)
