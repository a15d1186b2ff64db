"""Turns a token stream into the node tree of one template."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Optional

from squall.template._nodes import (
    Apply,
    Block,
    Body,
    Clause,
    Compound,
    Expression,
    Extends,
    Include,
    Node,
    Statement,
    Text,
)
from squall.template._syntax import WHITESPACE_MODES, ParseError, Token, tokenize

if TYPE_CHECKING:
    from squall.template._template import Template

__all__ = ["parse"]

_LOOPS = frozenset({"for", "while"})
_COMPOUNDS = frozenset({"if", "for", "while", "try"})

# For each compound statement: which clause keywords may follow a given one.
_NEXT_CLAUSES: dict[str, dict[str, frozenset[str]]] = {
    "if": {
        "if": frozenset({"elif", "else"}),
        "elif": frozenset({"elif", "else"}),
        "else": frozenset(),
    },
    "for": {"for": frozenset({"else"}), "else": frozenset()},
    "while": {"while": frozenset({"else"}), "else": frozenset()},
    "try": {
        "try": frozenset({"except", "finally"}),
        "except": frozenset({"except", "else", "finally"}),
        "else": frozenset({"finally"}),
        "finally": frozenset(),
    },
}

# Clause keyword -> the statements it can belong to.
_CLAUSE_OWNERS = {
    keyword: frozenset(owner for owner, table in _NEXT_CLAUSES.items() if keyword in table)
    for keyword in ("elif", "else", "except", "finally")
}


def _unquote(value: str) -> str:
    return value.strip().strip("'\"")


class _Parser:
    __slots__ = ("_template", "_tokens", "_whitespace")

    def __init__(self, template: Template, source: str, whitespace: str) -> None:
        self._template = template
        self._tokens: Iterator[Token] = tokenize(template.name, source)
        # Changed by {% whitespace %}; applies to all text after the tag.
        self._whitespace = whitespace

    def _error(self, message: str, line: int) -> ParseError:
        return ParseError(message, self._template.name, line)

    def parse(self) -> Body:
        body, _ = self._body(None, False, 0)
        return body

    def _body(
        self, opener: Optional[str], in_loop: bool, line: int
    ) -> tuple[Body, Optional[Token]]:
        """Parse nodes until the ``{% end %}`` or clause tag that closes ``opener``.

        Returns the body and the clause tag (``else``, ``elif``...) that ended
        it, or None when it ended with ``{% end %}`` or the end of the source.
        """
        nodes: list[Node] = []
        for token in self._tokens:
            if token.kind == "text":
                nodes.append(Text(token.value, token.line, self._whitespace))
            elif token.kind == "expr":
                nodes.append(Expression(token.value, token.line))
            else:
                keyword = token.value.split(None, 1)[0]
                if keyword == "end":
                    if opener is None:
                        raise self._error("Extra {% end %} block", token.line)
                    return Body(nodes, line), None
                if keyword in _CLAUSE_OWNERS:
                    self._check_clause(keyword, opener, token.line)
                    return Body(nodes, line), token
                node = self._tag(token, keyword, in_loop)
                if node is not None:
                    nodes.append(node)
        if opener is not None:
            raise self._error(f"Missing {{% end %}} block for {opener}", line)
        return Body(nodes, line), None

    def _check_clause(self, keyword: str, opener: Optional[str], line: int) -> None:
        owners = _CLAUSE_OWNERS[keyword]
        if opener is None:
            raise self._error(f"{keyword} outside {'/'.join(sorted(owners))} block", line)
        if opener not in owners:
            raise self._error(f"{keyword} block cannot be attached to {opener} block", line)

    def _tag(self, token: Token, keyword: str, in_loop: bool) -> Optional[Node]:
        """Build the node for one ``{% ... %}`` tag, parsing its body if it has one."""
        contents, line = token.value, token.line
        parts = contents.split(None, 1)
        rest = parts[1] if len(parts) > 1 else ""

        def required(what: str) -> str:
            if not rest:
                raise self._error(f"{keyword} missing {what}", line)
            return rest

        if keyword == "comment":
            return None
        if keyword in _COMPOUNDS:
            return self._compound(keyword, rest, line, in_loop)
        if keyword == "apply":
            function = required("method name")
            # The body becomes a nested function, so a loop around the
            # apply does not reach into it.
            body, _ = self._body("apply", False, line)
            return Apply(function, line, body)
        if keyword == "block":
            name = required("name")
            body, _ = self._body("block", in_loop, line)
            return Block(name, line, body, self._template)
        if keyword in ("break", "continue"):
            if not in_loop:
                raise self._error(f"{keyword} outside for/while block", line)
            return Statement(keyword, line)
        if keyword == "set":
            return Statement(required("statement"), line)
        if keyword in ("import", "from"):
            required("statement")
            return Statement(contents, line)
        if keyword in ("extends", "include"):
            path = _unquote(rest)
            if not path:
                raise self._error(f"{keyword} missing file path", line)
            if keyword == "extends":
                return Extends(path, line)
            return Include(path, line, self._template.name)
        if keyword == "raw":
            return Expression(required("expression"), line, raw=True)
        if keyword == "module":
            return Expression(f"_tt_modules.{required('expression')}", line, raw=True)
        if keyword == "autoescape":
            function = required("function name").strip()
            self._template.autoescape = None if function == "None" else function
            return None
        if keyword == "whitespace":
            mode = required("mode").strip()
            if mode not in WHITESPACE_MODES:
                raise self._error(
                    f"invalid whitespace mode {mode!r}: expected one of {WHITESPACE_MODES}", line
                )
            self._whitespace = mode
            return None
        raise self._error(f"unknown operator: {keyword!r}", line)

    def _compound(self, keyword: str, rest: str, line: int, in_loop: bool) -> Compound:
        if keyword != "try" and not rest:
            raise self._error(f"{keyword} missing condition", line)
        table = _NEXT_CLAUSES[keyword]
        clauses: list[Clause] = []
        clause_keyword, header, clause_line = keyword, f"{keyword} {rest}".rstrip(), line
        while True:
            # Inside a loop's body break/continue are fine; in its else clause
            # they refer to whatever loop surrounds the statement.
            body_in_loop = in_loop or (keyword in _LOOPS and clause_keyword == keyword)
            body, stop = self._body(keyword, body_in_loop, clause_line)
            clauses.append(Clause(header, clause_line, body))
            if stop is None:
                return Compound(clauses)
            next_keyword, *next_rest = stop.value.split(None, 1)
            if next_keyword not in table[clause_keyword]:
                raise self._error(
                    f"{next_keyword} cannot follow {clause_keyword} in {keyword} block", stop.line
                )
            header = " ".join([next_keyword, *next_rest])
            clause_keyword, clause_line = next_keyword, stop.line


def parse(template: Template, source: str, whitespace: str) -> Body:
    """Parse ``source`` as the text of ``template``.

    ``{% autoescape %}`` tags set ``template.autoescape`` as a side effect.

    Raises:
        ParseError: with the template name and line of the first problem.
    """
    return _Parser(template, source, whitespace).parse()
