"""Lexical layer of the template language: errors, whitespace modes, tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal, NamedTuple, Optional

__all__ = ["ParseError", "Token", "WHITESPACE_MODES", "filter_whitespace", "tokenize"]


class ParseError(Exception):
    """A template could not be parsed or assembled.

    Attributes:
        filename: name of the template where the problem was found, if known.
        lineno: 1-based line of the problem (0 when unknown).
    """

    def __init__(self, message: str, filename: Optional[str] = None, lineno: int = 0) -> None:
        # All three in args, as Tornado's: repr() shows where, and a copy
        # made from args (pickle) is whole.
        super().__init__(message, filename, lineno)
        self.message = message
        self.filename = filename
        self.lineno = lineno

    def __str__(self) -> str:
        return f"{self.message} at {self.filename}:{self.lineno}"


_BLANKS = re.compile(r"[\t ]+")
_LINE_BREAK_RUN = re.compile(r"\s*\n\s*")
_ANY_SPACE_RUN = re.compile(r"\s+")

WHITESPACE_MODES = ("all", "single", "oneline")


def filter_whitespace(mode: str, text: str) -> str:
    """Apply a whitespace mode to a run of template text.

    Args:
        mode: ``"all"`` keeps the text unchanged; ``"single"`` turns each run of
            spaces and tabs into one space and each run of whitespace holding a
            newline into one newline; ``"oneline"`` turns every run of
            whitespace, newlines included, into one space.
        text: the text to filter.

    Returns:
        The filtered text.

    Raises:
        ValueError: if ``mode`` is not one of the three modes.
    """
    if mode == "all":
        return text
    if mode == "single":
        return _LINE_BREAK_RUN.sub("\n", _BLANKS.sub(" ", text))
    if mode == "oneline":
        return _ANY_SPACE_RUN.sub(" ", text)
    raise ValueError(f"invalid whitespace mode {mode!r}: expected one of {WHITESPACE_MODES}")


TokenKind = Literal["text", "expr", "tag"]


class Token(NamedTuple):
    """One lexical unit: literal text, an ``{{ expression }}`` or a ``{% tag %}``.

    ``value`` is the literal text, or the stripped inside of the braces.
    ``line`` is the 1-based line where the token starts.
    """

    kind: TokenKind
    value: str
    line: int


# Opening delimiter -> (closing delimiter, what the error message calls it).
_DELIMITERS = {
    "{{": ("}}", "expression"),
    "{%": ("%}", "block"),
    "{#": ("#}", "comment"),
}


def _find_opener(text: str, start: int) -> int:
    """Index of the next ``{{``, ``{%`` or ``{#`` at or after ``start``, or -1.

    In a run of three or more braces the last two open the tag, so that
    languages where braces matter (LaTeX, JavaScript objects) can put a
    literal brace right before an expression.
    """
    end = len(text)
    i = text.find("{", start)
    while i != -1 and i + 1 < end:
        nxt = text[i + 1]
        if nxt in "%#" or (nxt == "{" and (i + 2 >= end or text[i + 2] != "{")):
            return i
        i = text.find("{", i + 1)
    return -1


def tokenize(name: str, text: str) -> Iterator[Token]:
    """Split template source into tokens; comments are dropped.

    An opener followed by ``!`` (``{{!``, ``{%!``, ``{#!``) stands for the two
    opening characters themselves, as literal text.

    Raises:
        ParseError: on an unclosed delimiter or an empty expression or tag.
    """
    pos = 0
    line = 1
    while True:
        opener_at = _find_opener(text, pos)
        if opener_at == -1:
            if pos < len(text):
                yield Token("text", text[pos:], line)
            return
        if opener_at > pos:
            chunk = text[pos:opener_at]
            yield Token("text", chunk, line)
            line += chunk.count("\n")
        opener = text[opener_at : opener_at + 2]
        pos = opener_at + 2
        if text.startswith("!", pos):
            yield Token("text", opener, line)
            pos += 1
            continue
        closer, what = _DELIMITERS[opener]
        close_at = text.find(closer, pos)
        if close_at == -1:
            raise ParseError(f"Missing end {what} {closer}", name, line)
        inside = text[pos:close_at]
        start_line = line
        line += inside.count("\n")
        pos = close_at + 2
        if opener == "{#":
            continue
        contents = inside.strip()
        if opener == "{{":
            if not contents:
                raise ParseError("Empty expression", name, start_line)
            yield Token("expr", contents, start_line)
        else:
            if not contents:
                raise ParseError("Empty block tag ({% %})", name, start_line)
            yield Token("tag", contents, start_line)
