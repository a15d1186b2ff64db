"""The parsed form of a template (a tree of nodes) and the Python code writer.

Each node knows how to write itself as Python source through a `CodeWriter`.
Every generated line ends with a ``# template.html:LINE`` comment, followed by
``(via parent.html:LINE, ...)`` when the code came from an included template
or an inherited block, so that a traceback through generated code names the
template line responsible.

The generated entry point returns a list of str pieces (see
`squall.template._runtime`). Where an expression's autoescape function is
known to be squall's ``xhtml_escape`` (the writer's ``fast_names``), the
escaping is written inline (in the compiled build, as one call of the C
``escape_value``, see `ESCAPE_BY_CALL`), and a run of text and such expressions becomes
one f-string appended once: the values are computed into temporaries first,
each on the line of its own expression. Other expressions go through their
escape function by name with bytes in and out, as Tornado's templates do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from types import FunctionType
from typing import TYPE_CHECKING, Optional

from squall._xhtml import escape_value
from squall.template._runtime import HELPERS
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
# The helpers arrive as parameters with defaults (see Template._render).
SIGNATURE = f"def {ENTRY_POINT}({', '.join(HELPERS)}):"

# xhtml_escape written inline on the str in variable ``{v}``: the
# membership tests are cheaper than five replace() calls on text that needs
# none, which is most text. "&" first, or the entities would be escaped again.
_INLINE_ESCAPE = (
    "if '&' in {v} or '<' in {v} or '>' in {v} or '\"' in {v} or \"'\" in {v}:",
    "    {v} = {v}.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')"
    ".replace('\"', '&quot;').replace(\"'\", '&#x27;')",
)


# With the compiled build's C escape_value, one call per value costs less
# than the inline tests (which cost less than a call to the Python function).
# Read when a template is compiled.
ESCAPE_BY_CALL = not isinstance(escape_value, FunctionType)


class CodeWriter:
    """Accumulates indented Python source lines tagged with template locations."""

    __slots__ = (
        "_apply_count",
        "_indent",
        "_lines",
        "_stack",
        "blocks",
        "current",
        "escape_names",
        "fast_names",
        "loader",
        "try_depth",
    )

    def __init__(
        self,
        template: Template,
        blocks: dict[str, Block],
        loader: Optional[BaseLoader],
        fast_names: frozenset[str] = frozenset(),
    ) -> None:
        self.current = template
        self.blocks = blocks
        self.loader = loader
        # Autoescape names to write inline as xhtml_escape; the caller makes
        # sure each is bound to squall's xhtml_escape when the code runs.
        self.fast_names = fast_names
        # Every autoescape name the code uses, written inline or not.
        self.escape_names: set[str] = set()
        self._lines: list[str] = []
        self._indent = 0
        # (template, line) of each include or block override we are inside of.
        self._stack: list[tuple[Template, int]] = []
        self._apply_count = 0
        # How many ``{% try %}`` bodies the code being written is inside of.
        self.try_depth = 0

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
        run = _Run()
        for node in self.nodes:
            if isinstance(node, Text):
                run.add_text(node)
            elif isinstance(node, Expression) and node.inline(out):
                run.add_expression(node, out)
            else:
                run.flush(out)
                node.write(out)
        run.flush(out)

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

    def output(self) -> str:
        """The text as rendered."""
        text = self.text
        # Whitespace inside preformatted HTML is content, not layout.
        if "<pre>" not in text:
            text = filter_whitespace(self.whitespace, text)
        # Text that cannot be UTF-8 (a lone surrogate in a str source) fails
        # now, when the template is compiled, not at each render.
        text.encode("utf-8")
        return text

    def write(self, out: CodeWriter) -> None:  # pragma: no cover
        # Text is written by the Body it is in, joined with its neighbours.
        raise AssertionError("Text is written through Body")


class Expression(Node):
    """``{{ expr }}``, ``{% raw expr %}`` or ``{% module expr %}``."""

    __slots__ = ("code", "raw")

    def __init__(self, code: str, line: int, raw: bool = False) -> None:
        super().__init__(line)
        self.code = code
        self.raw = raw

    def inline(self, out: CodeWriter) -> bool:
        """Whether this expression is escaped by inline code (see `write_value`)."""
        escape = out.current.autoescape
        if self.raw or escape is None:
            return False
        out.escape_names.add(escape)
        return escape in out.fast_names

    def write_value(self, out: CodeWriter, var: str) -> None:
        """Write code that leaves the escaped text of the expression in ``var``."""
        line = self.line
        # The expression gets a line of its own so that a trailing ``#``
        # comment inside the braces cannot swallow the code after it.
        out.line(f"{var} = {self.code}", line)
        if ESCAPE_BY_CALL:
            out.line(f"{var} = _tt_xhtml({var}, _tt_escape)", line)
            return
        out.line(f"if _tt_type({var}) is _tt_str:", line)
        with out.indented():
            for code in _INLINE_ESCAPE:
                out.line(code.format(v=var), line)
        # An int's digits need no escaping; str() here keeps its errors
        # (more than 4300 digits) on this line.
        out.line(f"elif _tt_type({var}) is _tt_int:", line)
        out.line(f"    {var} = _tt_str({var})", line)
        out.line("else:", line)
        out.line(f"    {var} = _tt_escape({var})", line)

    def write(self, out: CodeWriter) -> None:
        line = self.line
        out.line(f"{TMP} = {self.code}", line)
        escape = out.current.autoescape
        if self.raw or escape is None:
            out.line(f"{APPEND}({TMP} if _tt_type({TMP}) is _tt_str else _tt_raw({TMP}))", line)
            return
        out.escape_names.add(escape)
        # The escape function is handed bytes, whatever the expression gave,
        # and may return str or bytes.
        out.line(
            f"{TMP} = _tt_utf8({TMP} if _tt_isinstance({TMP}, _tt_string_types)"
            f" else _tt_str({TMP}))",
            line,
        )
        out.line(f"{TMP} = {escape}({TMP})", line)
        # A str result is used as it is: the same as its UTF-8, for less.
        out.line(
            f"{APPEND}({TMP} if _tt_type({TMP}) is _tt_str else _tt_text(_tt_utf8({TMP})))", line
        )


class _Run:
    """Consecutive text and inline-escaped expressions, appended as one f-string."""

    __slots__ = ("line", "parts", "values")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.values = 0
        self.line = 0

    def add_text(self, node: Text) -> None:
        text = node.output()
        if text:
            self.parts.append(repr(text))
            self.line = node.line

    def add_expression(self, node: Expression, out: CodeWriter) -> None:
        if out.try_depth:
            # An exception a {% try %} catches must find what came before
            # the expression already in the output, as it is in Tornado's.
            self.flush(out)
        var = f"_tt_v{self.values}"
        self.values += 1
        node.write_value(out, var)
        # Adjacent literals make one f-string; braces in the text stay in
        # plain literals, where they mean nothing.
        self.parts.append(f"f'{{{var}}}'")
        self.line = node.line

    def flush(self, out: CodeWriter) -> None:
        if self.parts:
            out.line(f"{APPEND}({' '.join(self.parts)})", self.line)
        self.parts = []
        self.values = 0


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
            caught = clause.header == "try"
            out.try_depth += caught
            clause.body.write_suite(out, clause.line)
            out.try_depth -= caught


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
            # The function is given bytes and may return str or bytes.
            out.line(f"return _tt_join({BUFFER})", self.line)
        out.line(f"{APPEND}(_tt_text(_tt_utf8({self.function}({name}()))))", self.line)


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
