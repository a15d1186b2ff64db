"""A template language that compiles to Python.

A template is text with three kinds of markup:

* ``{{ expression }}`` inserts the value of a Python expression. Strings and
  bytes are used as they are, anything else goes through ``str()``; the
  result is then passed through the template's autoescape function
  (``xhtml_escape`` unless configured otherwise).
* ``{# comment #}`` is dropped from the output.
* ``{% tag %}`` is a directive:

  - ``{% if %}``/``{% elif %}``/``{% else %}``, ``{% for %}``,
    ``{% while %}`` (with ``{% break %}`` and ``{% continue %}``),
    ``{% try %}``/``{% except %}``/``{% else %}``/``{% finally %}``: the
    Python statements, each closed by ``{% end %}``.
  - ``{% set x = value %}``, ``{% import mod %}``, ``{% from mod import x %}``:
    the Python statements.
  - ``{% extends "base.html" %}`` with ``{% block name %}...{% end %}``:
    template inheritance; a child's blocks replace the parent's.
  - ``{% include "other.html" %}``: the other template, rendered with the
    same variables.
  - ``{% apply function %}...{% end %}``: the rendered body, passed through
    ``function``.
  - ``{% autoescape function %}`` (or ``None``) sets the escaping of this
    template; ``{% raw expression %}`` inserts a value unescaped;
    ``{% module expression %}`` inserts a UI module's output.
  - ``{% whitespace mode %}`` changes the whitespace mode for the text that
    follows; ``{% comment ... %}`` is ignored.

Write ``{{!``, ``{%!`` or ``{#!`` for literal ``{{``, ``{%`` or ``{#``.

Example::

    loader = Loader("/path/to/templates")
    html = loader.load("page.html").generate(title="Hello", items=[1, 2])
"""

from squall.template._syntax import ParseError, filter_whitespace
from squall.template._template import BaseLoader, DictLoader, Loader, Template

__all__ = [
    "BaseLoader",
    "DictLoader",
    "Loader",
    "ParseError",
    "Template",
    "filter_whitespace",
]

for _public in (BaseLoader, DictLoader, Loader, ParseError, Template, filter_whitespace):
    _public.__module__ = __name__
del _public
