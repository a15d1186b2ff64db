"""Tests for squall.template."""

from __future__ import annotations

import datetime
import logging
import os
import pickle
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FunctionType
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import squall._xhtml
import squall.escape
import squall.template
from squall.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine
from squall.template import (
    BaseLoader,
    DictLoader,
    Loader,
    ParseError,
    Template,
    _nodes,
    filter_whitespace,
)
from squall.util import ObjectDict
from squall.web import Application, RequestHandler
from squall.web.rendering import RenderMixin

DATA = Path(__file__).parent / "data" / "templates"


def render(source: str, **kwargs: Any) -> bytes:
    return Template(source).generate(**kwargs)


def render_all(templates: dict[str, str], name: str, **kwargs: Any) -> bytes:
    return DictLoader(templates).load(name).generate(**kwargs)


def failure_trace(generate: Callable[[], bytes]) -> str:
    with pytest.raises(ZeroDivisionError) as info:
        generate()
    return "".join(traceback.format_exception(info.value))


# --- expressions and text ----------------------------------------------------


def test_expression_text_and_bytes_values() -> None:
    assert render("Hi {{ name }}!", name="Ann") == b"Hi Ann!"
    assert render("Hi {{ name }}!", name=b"Ann") == b"Hi Ann!"
    assert render("{{ 6 * 7 }} {{ [1] }} {{ None }}") == b"42 [1] None"


def test_generate_returns_utf8_bytes_for_unicode_source_and_values() -> None:
    assert Template("é".encode()).generate() == "é".encode()
    assert Template('{{ "é" }}'.encode()).generate() == "é".encode()
    assert render("{{ x }}", x="ü") == "ü".encode()


def test_comments_are_dropped() -> None:
    assert render("a{# hidden {{ x }} #}b") == b"ab"
    assert render("a{% comment anything at all %}b") == b"ab"


def test_escaped_delimiters_are_literal() -> None:
    assert render("{{!") == b"{{"
    assert render("{%!") == b"{%"
    assert render("{#!") == b"{#"
    assert render("{{ 'x' }} {{!raw expr}}") == b"x {{raw expr}}"
    assert render("{%! if %}") == b"{% if %}"


def test_lone_braces_and_brace_runs() -> None:
    assert render("a { b } c {") == b"a { b } c {"
    # In a run of braces the innermost two open the tag.
    assert render("{{{ x }}}", x=1) == b"{1}"
    assert render("\\frac{{{{ n }}}}{2}", n=3) == b"\\frac{{3}}{2}"


def test_expression_may_end_with_a_python_comment(escape_by_call: bool) -> None:
    assert render("{{ 5 # five }}!") == b"5!"


def test_multiline_tags() -> None:
    source = "{% for i in items\n  %}{% if i > 0 %}, {% end %}{#\n  #}{{i\n  }}{% end\n%}"
    assert Template(source, name="x.txt").generate(items=range(4)) == b"0, 1, 2, 3"
    assert render("{% if\nflag %}yes{% end %}", flag=True) == b"yes"


# --- autoescape ----------------------------------------------------------------


def test_default_autoescape_is_xhtml() -> None:
    assert (
        render("{{ x }}", x="<a href='b'>&</a>") == b"&lt;a href=&#x27;b&#x27;&gt;&amp;&lt;/a&gt;"
    )


def test_autoescape_argument_and_directive() -> None:
    assert Template("{{ x }}", autoescape=None).generate(x="<b>") == b"<b>"
    assert render("{% autoescape None %}{{ x }}", x="<b>") == b"<b>"
    # The directive applies to the whole template, wherever it appears.
    assert render("{{ x }}{% autoescape None %}", x="<b>") == b"<b>"
    assert Template("{% autoescape xhtml_escape %}{{ x }}", autoescape=None).generate(x="<") == (
        b"&lt;"
    )


def test_raw_skips_autoescape() -> None:
    assert render("{{ x }} {% raw x %}", x="<&>") == b"&lt;&amp;&gt; <&>"
    assert render("{% raw 7 %}") == b"7"


def test_custom_escape_receives_bytes() -> None:
    seen: list[object] = []

    def shout(value: bytes) -> str:
        seen.append(value)
        return value.decode().upper()

    out = render("{% autoescape shout %}{{ x }} {{ 3 }}", shout=shout, x="hi")
    assert out == b"HI 3"
    assert seen == [b"hi", b"3"]


class _Shouting(str):
    """A str subclass whose methods do not behave like str's."""

    def replace(self, *args: Any, **kwargs: Any) -> str:
        return "REPLACED"

    def __str__(self) -> str:
        return "STR"


@pytest.fixture(params=[False, True], ids=["inline", "by-call"])
def escape_by_call(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Templates compiled in the test escape inline (the pure build's code) or
    through ``escape_value`` (the compiled build's, here maybe the Python one)."""
    monkeypatch.setattr(_nodes, "ESCAPE_BY_CALL", request.param)
    return bool(request.param)


def test_escape_by_call_where_escape_value_is_compiled() -> None:
    assert _nodes.ESCAPE_BY_CALL is not isinstance(squall._xhtml.escape_value, FunctionType)
    with mock.patch.object(_nodes, "ESCAPE_BY_CALL", True):
        code = Template("{{ x }}").code
    assert "_tt_xhtml(_tt_v0, _tt_escape)" in code
    assert "replace" not in code
    with mock.patch.object(_nodes, "ESCAPE_BY_CALL", False):
        code = Template("{{ x }}").code
    assert "_tt_xhtml(" not in code
    assert "replace" in code


def test_inline_escape_of_each_kind_of_value(escape_by_call: bool) -> None:
    template = Template("[{{ x }}]")
    cases: list[tuple[object, bytes]] = [
        ("plain", b"[plain]"),
        ("<&>\"'", b"[&lt;&amp;&gt;&quot;&#x27;]"),
        ("&amp;", b"[&amp;amp;]"),
        ("é<ü>", "[é&lt;ü&gt;]".encode()),
        (b"<b>", b"[&lt;b&gt;]"),
        ("é".encode(), "[é]".encode()),
        (-12, b"[-12]"),
        (True, b"[True]"),
        (2.5, b"[2.5]"),
        (None, b"[None]"),
        (["<"], b"[[&#x27;&lt;&#x27;]]"),
        # A str subclass is escaped as the text it holds, as UTF-8 bytes
        # would be, whatever its own replace() or __str__ say.
        (_Shouting("<i>"), b"[&lt;i&gt;]"),
    ]
    for value, expected in cases:
        assert template.generate(x=value) == expected, value


_VALUES = st.one_of(
    st.text(),
    st.text().map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.integers(),
    st.booleans(),
    st.floats(allow_nan=False),
    st.none(),
    st.lists(st.text(max_size=3), max_size=3),
)


@settings(max_examples=40)
@given(st.lists(_VALUES, min_size=1, max_size=6), st.text(alphabet="ab<&'\"}\\ \n"))
def test_inline_escape_matches_escaping_by_name(values: list[Any], text: str) -> None:
    # The same template run twice: escaping written inline, and through a
    # function that only wraps xhtml_escape (so it is called by name, with
    # bytes, the way Tornado's code does it). Both must give the same bytes
    # or the same error.
    source = text.join(f"{{{{ v[{i}] }}}}" for i in range(len(values))) + text
    template = Template(source, name="t.txt")

    def outcome(**extra: Any) -> object:
        try:
            return template.generate(v=values, **extra)
        except (UnicodeError, ValueError) as exc:
            return type(exc)

    by_name = outcome(xhtml_escape=lambda b: squall.escape.xhtml_escape(b))
    assert outcome() == by_name
    # And the code of the other build (see ESCAPE_BY_CALL).
    with mock.patch.object(_nodes, "ESCAPE_BY_CALL", not _nodes.ESCAPE_BY_CALL):
        template = Template(source, name="t.txt")
    assert outcome() == by_name


def test_escaped_bytes_must_be_utf8(escape_by_call: bool) -> None:
    with pytest.raises(UnicodeDecodeError):
        render("{{ x }}", x=b"\xff")


def test_raw_values_keep_their_bytes() -> None:
    # Not UTF-8: written out as given, around UTF-8 text and other values.
    assert render("é{% raw x %}{{ y }}ü", x=b"\xff\xfe", y="<") == (
        "é".encode() + b"\xff\xfe&lt;" + "ü".encode()
    )
    assert render("{% raw x %}|{% raw y %}", x="é".encode(), y=_Shouting("<")) == "é|<".encode()
    assert render("{% autoescape None %}{{ x }}{{ 5 }}", x=b"\x80") == b"\x805"


def test_custom_escape_may_return_bytes_that_are_not_utf8() -> None:
    out = render("{% autoescape f %}a{{ x }}b", f=lambda v: b"\xff" + v, x="é")
    assert out == b"a\xff" + "é".encode() + b"b"
    with pytest.raises(TypeError):
        render("{% autoescape f %}{{ x }}", f=lambda v: 5, x="y")


def test_apply_result_must_be_text_or_bytes() -> None:
    assert render("{% apply f %}x{% end %}", f=lambda s: b"\xfe" + s) == b"\xfex"
    with pytest.raises(TypeError):
        render("{% apply f %}x{% end %}", f=lambda s: None)


def test_autoescape_name_bound_to_another_function_at_render_time() -> None:
    template = Template("{{ x }}")
    assert template.generate(x="<") == b"&lt;"
    # The name is looked up when the template runs, as in Tornado, and the
    # custom function gets bytes.
    assert template.generate(x="<", xhtml_escape=lambda v: v + b"!") == b"<!"
    assert template.generate(x="<") == b"&lt;"
    loader = DictLoader({"t.html": "{{ x }}"}, namespace={"xhtml_escape": lambda v: b"ns"})
    assert loader.load("t.html").generate(x="<") == b"ns"
    # Bound to squall's xhtml_escape under another name: escaped the same.
    assert render("{% autoescape escape %}{{ x }}", x="<") == b"&lt;"
    assert render("{% autoescape esc %}{{ x }}", x="<", esc=squall.escape.xhtml_escape) == b"&lt;"
    with pytest.raises(NameError):
        Template("{{ x }}", autoescape="missing").generate(x="<")


def test_several_autoescape_names_each_bound_at_render_time() -> None:
    loader = DictLoader(
        {
            "base.html": "{% autoescape escape %}{{ x }}|{% block b %}{% end %}|{% include 'i.html' %}",
            "page.html": "{% extends 'base.html' %}{% block b %}{{ x }}{% end %}",
            "i.html": "{% autoescape None %}{{ x }}",
        }
    )
    page = loader.load("page.html")
    assert page.generate(x="<") == b"&lt;|&lt;|<"
    assert page.generate(x="<", escape=lambda v: b"E") == b"E|&lt;|<"
    assert page.generate(x="<", xhtml_escape=lambda v: b"X") == b"&lt;|X|<"
    both = page.generate(x="<", escape=lambda v: b"E", xhtml_escape=lambda v: b"X")
    assert both == b"E|X|<"
    assert page.generate(x="<") == b"&lt;|&lt;|<"


def test_autoescape_name_rebound_by_the_template_itself() -> None:
    source = "{{ x }}{% set xhtml_escape = lambda v: b'[' + v + b']' %}{{ x }}"
    with pytest.raises(UnboundLocalError):
        render(source, x="<")
    out = render("{% for xhtml_escape in [f] %}{{ x }}{% end %}", f=lambda v: v * 2, x="<")
    assert out == b"<<"


def test_runs_of_text_and_expressions_with_awkward_text(escape_by_call: bool) -> None:
    source = "{ '\"\\n{x}' }}{{ a }}''' \"\"\" {{ b }}\\{{ c }}\n{"
    assert render(source, a=1, b="}", c="{") == b"{ '\"\\n{x}' }}1''' \"\"\" }\\{\n{"
    many = "".join(f"<{i}>{{{{ v[{i}] }}}}" for i in range(300))
    assert render(many, v=list(range(300))) == "".join(f"<{i}>{i}" for i in range(300)).encode()


def test_traceback_names_the_failing_expression_of_a_run(escape_by_call: bool) -> None:
    template = DictLoader({"t.html": "a{{ 1 }}\nb{{ x }}\nc{{ 1/0 }}d"}).load("t.html")
    trace = failure_trace(lambda: template.generate(x=1))
    assert "# t.html:3" in trace
    assert "# t.html:2" not in trace
    with pytest.raises(ValueError) as info:
        DictLoader({"t.html": "a\n{{ 10 ** 5000 }}"}).load("t.html").generate()
    tb = "".join(traceback.format_exception(info.value))
    assert "# t.html:2" in tb


def test_traceback_through_code_escaping_by_name_shows_that_code() -> None:
    # Code that escapes by name is laid out differently from the inline
    # kind: the traceback must show the lines of the code that ran.
    template = DictLoader({"t.html": "{{ a }}\n{{ 1/0 }}"}).load("t.html")
    assert "# t.html:2" in failure_trace(lambda: template.generate(a=1))
    custom = failure_trace(lambda: template.generate(a=1, xhtml_escape=lambda v: v))
    assert "_tt_tmp = 1/0  # t.html:2" in custom


def test_text_that_is_not_utf8_fails_when_compiled() -> None:
    with pytest.raises(UnicodeEncodeError):
        Template("a\udcff")


def test_loader_autoescape_default_and_per_template_override() -> None:
    templates = {
        "plain.html": "{{ x }}",
        "escaped.html": "{% autoescape xhtml_escape %}{{ x }}",
        "unescaped.html": "{% autoescape None %}{{ x }}",
        "all.html": "{% include 'plain.html' %} {% include 'escaped.html' %} "
        "{% include 'unescaped.html' %}",
    }
    off = DictLoader(templates, autoescape=None)
    on = DictLoader(templates)
    assert off.load("all.html").generate(x="<") == b"< &lt; <"
    assert on.load("all.html").generate(x="<") == b"&lt; &lt; <"


def test_blocks_keep_the_autoescape_of_the_template_defining_them() -> None:
    templates = {
        "esc_base.html": "{% autoescape xhtml_escape %}{% block b %}base {{ x }}{% end %}",
        "raw_base.html": "{% autoescape None %}{% block b %}base {{ x }}{% end %}",
        "esc_inherits.html": "{% autoescape xhtml_escape %}{% extends 'raw_base.html' %}",
        "esc_overrides.html": "{% autoescape xhtml_escape %}{% extends 'raw_base.html' %}"
        "{% block b %}child {{ x }}{% end %}",
        "raw_inherits.html": "{% autoescape None %}{% extends 'esc_base.html' %}",
        "raw_overrides.html": "{% autoescape None %}{% extends 'esc_base.html' %}"
        "{% block b %}child {{ x }}{% end %}",
    }
    loader = DictLoader(templates)

    def out(name: str) -> bytes:
        return loader.load(name).generate(x="<s>")

    assert out("esc_base.html") == b"base &lt;s&gt;"
    assert out("raw_base.html") == b"base <s>"
    assert out("esc_inherits.html") == b"base <s>"
    assert out("esc_overrides.html") == b"child &lt;s&gt;"
    assert out("raw_inherits.html") == b"base &lt;s&gt;"
    assert out("raw_overrides.html") == b"child <s>"


# --- control flow --------------------------------------------------------------


def test_if_elif_else() -> None:
    t = Template("{% if x > 4 %}big{% elif x > 2 %}mid{% else %}small{% end %}")
    assert [t.generate(x=x) for x in (5, 3, 1)] == [b"big", b"mid", b"small"]


def test_empty_bodies_are_valid() -> None:
    assert render("{% if True %}{% else %}{% end %}") == b""
    assert render("{% for i in [1] %}{% end %}") == b""
    assert render("{% if True %}{# nothing #}{% end %}") == b""


def test_for_else_and_while() -> None:
    # As in Python, the else clause runs unless the loop was left by break.
    t = Template(
        "{% for i in items %}{{ i }}{% if i > 2 %}{% break %}{% end %}{% else %}+{% end %}"
    )
    assert t.generate(items=[1, 2]) == b"12+"
    assert t.generate(items=[3, 4]) == b"3"
    assert t.generate(items=[]) == b"+"
    assert render("{% set n = 3 %}{% while n %}{{ n }}{% set n -= 1 %}{% end %}") == b"321"


def test_try_except_else_finally() -> None:
    t = Template(
        "{% try %}[{% set y = 1 / x %}{% except ZeroDivisionError %}except"
        "{% else %}else{% finally %}]{% end %}"
    )
    assert t.generate(x=1) == b"[else]"
    assert t.generate(x=0) == b"[except]"


def test_output_before_a_caught_exception_is_kept() -> None:
    # What a {% try %} body wrote before the expression that raised stays
    # in the output, text and values alike, in nested blocks and includes.
    loader = DictLoader(
        {
            "inc.html": "<{{ 1 / x }}>",
            "page.html": "{% try %}a{{ n }}b{% if 1 %}c{% include 'inc.html' %}{% end %}d"
            "{% except ZeroDivisionError %}!{% end %}{{ n }}e",
        }
    )
    assert loader.load("page.html").generate(n=5, x=0) == b"a5bc<!5e"
    assert loader.load("page.html").generate(n=5, x=1) == b"a5bc<1.0>d5e"
    t = Template("{% try %}{{ 'x' }}{{ b'\\xff' }}{% except %}!{% end %}")
    assert t.generate() == b"x!"


def test_break_and_continue() -> None:
    source = (
        "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% end %}"
        "{{ i }}{% if i == 5 %}{% break %}{% end %}{% end %}"
    )
    assert render(source) == b"01345"
    assert render("{% while True %}x{% break %}{% end %}") == b"x"


def test_break_in_loop_else_refers_to_outer_loop() -> None:
    source = "{% for a in 'ab' %}{{ a }}{% for b in [] %}{% else %}{% break %}{% end %}{% end %}"
    assert render(source) == b"a"
    with pytest.raises(ParseError, match="break outside for/while block"):
        Template("{% for b in [] %}{% else %}{% break %}{% end %}")


def test_set_import_and_from() -> None:
    assert render("{% set x = 2 %}{{ x * 3 }}") == b"6"
    assert render("{% import math %}{{ math.floor(2.5) }}") == b"2"
    assert render("{% from math import ceil %}{{ ceil(2.5) }}") == b"3"


def test_apply_with_text_and_bytes_results() -> None:
    def upper(s: bytes) -> str:
        return s.decode().upper()

    def upper_bytes(s: bytes) -> bytes:
        return s.decode().upper().encode()

    assert render("{% apply f %}foo é{% end %}", f=upper) == "FOO É".encode()
    assert render("{% apply f %}foo é{% end %}", f=upper_bytes) == "FOO É".encode()
    nested = "{% apply f %}a{% apply g %}b{% end %}c{% end %}"
    assert render(nested, f=upper, g=lambda s: s + b"!") == b"AB!C"


def test_module_directive_uses_tt_modules() -> None:
    modules = ObjectDict(Box=lambda text: f"<box>{text}</box>")
    assert render("{% module Box('<x>') %}", _tt_modules=modules) == b"<box><x></box>"


# --- namespace -----------------------------------------------------------------


def test_builtin_namespace() -> None:
    out = Template(
        "{{ escape('<') }}|{{ xhtml_escape('&') }}|{% raw url_escape('a b') %}|"
        "{% raw json_encode([1]) %}|{{ squeeze(' a  b ') }}|{% raw linkify('http://x.y') %}|"
        "{{ datetime.date(2020, 1, 2).isoformat() }}|{{ __name__ }}",
        name="n.v.html",
        autoescape=None,
    ).generate()
    assert out == (
        b'&lt;|&amp;|a+b|[1]|a b|<a href="http://x.y">http://x.y</a>|2020-01-02|n_v_html'
    )


def test_loader_namespace_and_kwargs_precedence() -> None:
    loader = DictLoader(
        {"t.html": "{{ inc(n) }} {{ squeeze }}"}, namespace={"inc": lambda x: x + 1, "n": 1}
    )
    template = loader.load("t.html")
    assert template.generate(squeeze="s") == b"2 s"
    assert template.generate(n=5, squeeze="s") == b"6 s"


# --- include and extends -------------------------------------------------------


def test_include_renders_other_template_with_same_variables() -> None:
    templates = {"index.html": '{% include "header.html" %}\nbody', "header.html": "hi {{ x }}"}
    assert render_all(templates, "index.html", x=1) == b"hi 1\nbody"


def test_relative_paths_in_dict_loader() -> None:
    templates = {
        "a/1.html": "{% include '2.html' %}",
        "a/2.html": "{% include '../b/3.html' %}",
        "b/3.html": "{% include '/c.html' %}",
        "/c.html": "ok",
    }
    assert render_all(templates, "a/1.html") == b"ok"


def test_extends_replaces_blocks() -> None:
    templates = {
        "base.html": "<t>{% block title %}default{% end %}</t><b>{% block body %}body{% end %}</b>",
        "page.html": "{% extends 'base.html' %}ignored{% block title %}{{ t }}{% end %}",
    }
    assert render_all(templates, "page.html", t="T") == b"<t>T</t><b>body</b>"


def test_multi_level_extends_and_nested_blocks() -> None:
    templates = {
        "root.html": "[{% block outer %}R{% block inner %}r{% end %}{% end %}]",
        "mid.html": "{% extends 'root.html' %}{% block inner %}m{% end %}",
        "leaf.html": "{% extends 'mid.html' %}{% block outer %}L{% block inner %}l"
        "{% end %}{% end %}",
        "leaf2.html": '{% extends "mid.html" %}',
    }
    assert render_all(templates, "mid.html") == b"[Rm]"
    assert render_all(templates, "leaf.html") == b"[Ll]"
    assert render_all(templates, "leaf2.html") == b"[Rm]"


def test_blocks_defined_in_included_templates_can_be_overridden() -> None:
    templates = {
        "base.html": "<{% include 'nav.html' %}>",
        "nav.html": "{% block nav %}default{% end %}",
        "page.html": "{% extends 'base.html' %}{% block nav %}custom{% end %}",
    }
    assert render_all(templates, "page.html") == b"<custom>"


def test_include_and_extends_need_a_loader() -> None:
    with pytest.raises(ParseError, match="include") as info:
        Template("x\n{% include 'a.html' %}", name="t.html")
    assert (info.value.filename, info.value.lineno) == ("t.html", 2)
    with pytest.raises(ParseError, match="no template loader") as info:
        Template("{% extends 'a.html' %}")
    assert info.value.lineno == 1


def test_more_than_one_extends_is_rejected() -> None:
    templates = {"a.html": "a", "b.html": "b", "c.html": "{% extends a.html %}{% extends b.html %}"}
    with pytest.raises(ParseError, match="more than one"):
        render_all(templates, "c.html")


@pytest.mark.parametrize(
    "templates",
    [
        {"a.html": "{% include 'a.html' %}"},
        {"a.html": "{% include 'b.html' %}", "b.html": "{% include 'a.html' %}"},
        {"a.html": "{% extends 'b.html' %}", "b.html": "{% extends 'a.html' %}"},
    ],
)
def test_circular_references_are_parse_errors(templates: dict[str, str]) -> None:
    loader = DictLoader(templates)
    with pytest.raises(ParseError, match="includes or extends itself: a.html -> .*a.html"):
        loader.load("a.html")
    # The failed load leaves the loader usable.
    with pytest.raises(ParseError):
        loader.load("a.html")


# --- errors: parse errors ---------------------------------------------------------


def test_parse_error_details() -> None:
    loader = DictLoader({"foo.html": "\n\n{{"})
    with pytest.raises(ParseError) as info:
        loader.load("foo.html")
    assert str(info.value) == "Missing end expression }} at foo.html:3"
    assert info.value.filename == "foo.html"
    assert info.value.lineno == 3
    assert str(ParseError("asdf")) == "asdf at None:0"


def test_parse_error_args_hold_message_file_and_line() -> None:
    # As Tornado's: repr() and pickling carry where the error was found.
    with pytest.raises(ParseError) as info:
        Template("a\n{% frob %}", name="pe.html")
    assert info.value.args == ("unknown operator: 'frob'", "pe.html", 2)
    assert repr(info.value) == "ParseError(\"unknown operator: 'frob'\", 'pe.html', 2)"
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.message, copy.filename, copy.lineno) == ("unknown operator: 'frob'", "pe.html", 2)
    assert ParseError("m").args == ("m", None, 0)


@pytest.mark.parametrize(
    ("source", "message", "line"),
    [
        ("{{", "Missing end expression }}", 1),
        ("a\n{%", "Missing end block %}", 2),
        ("{# x", "Missing end comment #}", 1),
        ("{{ }}", "Empty expression", 1),
        ("{%  %}", "Empty block tag ({% %})", 1),
        ("{% end %}", "Extra {% end %} block", 1),
        ("{% if x %}\n", "Missing {% end %} block for if", 1),
        ("{% frobnicate %}", "unknown operator: 'frobnicate'", 1),
        ("{% else %}", "else outside for/if/try/while block", 1),
        ("{% for x in y %}{% elif z %}{% end %}", "elif block cannot be attached to for block", 1),
        ("{% if x %}{% except %}{% end %}", "except block cannot be attached to if block", 1),
        ("{% block b %}{% else %}{% end %}", "else block cannot be attached to block block", 1),
        ("{% if a %}{% else %}{% elif b %}{% end %}", "elif cannot follow else in if block", 1),
        ("{% try %}{% else %}{% end %}", "else cannot follow try in try block", 1),
        ("{% for a in b %}{% else %}\n{% else %}{% end %}", "else cannot follow else", 2),
        ("{% break %}", "break outside for/while block", 1),
        ("{% continue %}", "continue outside for/while block", 1),
        ("{% for i in [] %}{% apply f %}{% break %}{% end %}{% end %}", "break outside", 1),
        ("{% if %}{% end %}", "if missing condition", 1),
        ("{% extends %}", "extends missing file path", 1),
        ("{% include '' %}", "include missing file path", 1),
        ("{% set %}", "set missing statement", 1),
        ("{% import %}", "import missing statement", 1),
        ("{% apply %}{% end %}", "apply missing method name", 1),
        ("{% block %}{% end %}", "block missing name", 1),
        ("{% raw %}", "raw missing expression", 1),
        ("{% module %}", "module missing expression", 1),
        ("{% autoescape %}", "autoescape missing function name", 1),
        ("{% whitespace %}", "whitespace missing mode", 1),
        ("\n{% whitespace tight %}", "invalid whitespace mode 'tight'", 2),
    ],
)
def test_parse_errors(source: str, message: str, line: int) -> None:
    with pytest.raises(ParseError) as info:
        Template(source, name="t.txt")
    assert info.value.message.startswith(message)
    assert (info.value.filename, info.value.lineno) == ("t.txt", line)


def test_invalid_python_logs_the_generated_code(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="squall.application"):
        with pytest.raises(SyntaxError):
            Template("{{ 1 + }}", name="bad.html")
    assert len(caplog.records) == 1
    assert "bad.html code:" in caplog.records[0].getMessage()
    assert "_tt_v0 = 1 +  # bad.html:1" in caplog.records[0].getMessage()


# --- errors: tracebacks point at template lines ---------------------------------


def test_traceback_names_line_of_expression_and_directive() -> None:
    expr = DictLoader({"t.html": "one\ntwo{{1/0}}\nthree"}).load("t.html")
    assert "# t.html:2" in failure_trace(expr.generate)
    directive = DictLoader({"t.html": "one\ntwo{%if 1/0%}\nthree{%end%}"}).load("t.html")
    assert "# t.html:2" in failure_trace(directive.generate)


def test_traceback_through_includes_lists_the_chain() -> None:
    loader = DictLoader(
        {
            "a.html": "{% include 'b.html' %}",
            "b.html": "\n{% include 'c.html' %}",
            "c.html": "{{1/0}}",
        }
    )
    assert "# c.html:1 (via b.html:2, a.html:1)" in failure_trace(loader.load("a.html").generate)


def test_traceback_through_extends() -> None:
    loader = DictLoader(
        {
            "base.html": "{{ 1/x }}{% block b %}{% end %}",
            "sub.html": "{% extends 'base.html' %}\n{% block b %}\n{{ 1/0 }}\n{% end %}",
        }
    )
    sub = loader.load("sub.html")
    assert "# base.html:1" in failure_trace(lambda: sub.generate(x=0))
    assert "# sub.html:3 (via base.html:1)" in failure_trace(lambda: sub.generate(x=1))


def test_traceback_through_modules_shows_both_templates() -> None:
    modules = ObjectDict()
    loader = DictLoader(
        {"base.html": "{% module Template('sub.html') %}", "sub.html": "{{1/0}}"},
        namespace={"_tt_modules": modules},
    )
    modules.Template = lambda name: loader.load(name).generate()
    trace = failure_trace(loader.load("base.html").generate)
    assert "# base.html:1" in trace and "# sub.html:1" in trace


def test_traceback_shows_the_right_source_for_same_named_templates() -> None:
    first = Template("{{ 1/0 }}", name="same.html")
    second = Template("\n\n{{ 2/0 }}", name="same.html")
    assert "# same.html:1" in failure_trace(first.generate)
    assert "# same.html:3" in failure_trace(second.generate)


# --- whitespace --------------------------------------------------------------------


def test_filter_whitespace_modes() -> None:
    text = " \t a \n\n  b\t\t"
    assert filter_whitespace("all", text) == text
    assert filter_whitespace("single", text) == " a\nb "
    assert filter_whitespace("oneline", text) == " a b "
    with pytest.raises(ValueError, match="invalid whitespace mode 'some'"):
        filter_whitespace("some", "x")


def test_whitespace_default_depends_on_file_name() -> None:
    templates = {
        "foo.html": "   \n\t\n asdf\t   ",
        "bar.js": " \n\n\n\t qwer     ",
        "baz.txt": "\t    zxcv\n\n",
        "include.html": "  {% include baz.txt %} \n ",
        "include.txt": "\t\t{% include foo.html %}    ",
    }
    loader = DictLoader(templates)
    assert loader.load("foo.html").generate() == b"\nasdf "
    assert loader.load("bar.js").generate() == b"\nqwer "
    assert loader.load("baz.txt").generate() == b"\t    zxcv\n\n"
    assert loader.load("include.html").generate() == b" \t    zxcv\n\n\n"
    assert loader.load("include.txt").generate() == b"\t\t\nasdf     "


@pytest.mark.parametrize(
    ("mode", "html", "txt"),
    [
        ("all", b"\t\tfoo\n\n", b"\t\tbar\n\n"),
        ("single", b" foo\n", b" bar\n"),
        ("oneline", b" foo ", b" bar "),
    ],
)
def test_whitespace_from_loader(mode: str, html: bytes, txt: bytes) -> None:
    loader = DictLoader({"foo.html": "\t\tfoo\n\n", "bar.txt": "\t\tbar\n\n"}, whitespace=mode)
    assert loader.load("foo.html").generate() == html
    assert loader.load("bar.txt").generate() == txt


def test_whitespace_directive_applies_to_following_text() -> None:
    source = (
        "{% whitespace oneline %}\n    {% for i in range(3) %}\n        {{ i }}\n    {% end %}\n"
        "{% whitespace all %}\n    pre\tformatted\n"
    )
    assert render(source) == b"  0  1  2  \n    pre\tformatted\n"


def test_whitespace_argument_and_deprecated_compress_whitespace() -> None:
    source = "a  \n\n  b"
    assert Template(source, whitespace="oneline").generate() == b"a b"
    assert Template(source, compress_whitespace=True).generate() == b"a\nb"
    assert Template(source, name="x.html", compress_whitespace=False).generate() == source.encode()
    with pytest.raises(ValueError, match="both"):
        Template(source, whitespace="all", compress_whitespace=True)
    with pytest.raises(ValueError, match="invalid whitespace mode 'tabs'"):
        Template(source, whitespace="tabs")


def test_text_with_pre_tag_keeps_its_whitespace() -> None:
    assert Template("<pre>\n  a\n</pre>", name="p.html").generate() == b"<pre>\n  a\n</pre>"


# --- compiled code and loaders ---------------------------------------------------


def test_template_attributes_and_compiled_code() -> None:
    template = Template("{{ x }}", name="t.html")
    assert template.name == "t.html"
    assert template.autoescape == "xhtml_escape"
    assert template.loader is None and template.namespace == {}
    assert template.code.startswith("def _tt_execute(_tt_type, ")
    compiled = template.compiled
    assert template.generate(x=1) == b"1" and template.generate(x=2) == b"2"
    assert template.compiled is compiled
    assert Template("x", name=b"b.html").name == "b.html"  # type: ignore[arg-type]


def test_public_names() -> None:
    assert set(squall.template.__all__) == {
        "BaseLoader",
        "DictLoader",
        "Loader",
        "ParseError",
        "Template",
        "filter_whitespace",
    }
    assert Template.__module__ == "squall.template"


def test_dict_loader_caches_until_reset() -> None:
    sources = {"t.html": "one", "tést.html": "two"}
    loader = DictLoader(sources)
    first = loader.load("t.html")
    assert loader.load("t.html") is first
    sources["t.html"] = "changed"
    assert loader.load("t.html").generate() == b"one"
    loader.reset()
    assert loader.load("t.html").generate() == b"changed"
    assert loader.load("tést.html").generate() == b"two"
    with pytest.raises(KeyError):
        loader.load("missing.html")


def test_base_loader_is_abstract() -> None:
    loader = BaseLoader()
    assert loader.autoescape == "xhtml_escape" and loader.namespace == {}
    with pytest.raises(NotImplementedError):
        loader.load("x")
    with pytest.raises(NotImplementedError):
        loader._create_template("x")


def test_file_loader_reads_utf8_and_resolves_relative_paths() -> None:
    loader = Loader(str(DATA))
    assert loader.load("greeting.html").generate(name="<x>") == "Grüße &lt;x&gt;\n".encode()
    page = loader.load("sub/page.html").generate(name="n")
    assert page == "<b>n</b>|Grüße n\n".encode()
    assert loader.load("sub/child.txt").generate(name="c") == b"[child c]\n"
    assert loader.resolve_path("part.html", "sub/page.html") == os.path.join("sub", "part.html")
    # Names leading out of the root, absolute names and "<string>" parents are kept.
    assert loader.resolve_path("../../x.html", "sub/page.html") == "../../x.html"
    assert loader.resolve_path("/abs.html", "sub/page.html") == "/abs.html"
    assert loader.resolve_path("x.html", "<string>") == "x.html"
    assert loader.resolve_path("x.html") == "x.html"


def test_file_loader_reset_rereads_files(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("v1", encoding="utf-8")
    loader = Loader(str(tmp_path), autoescape=None, whitespace="oneline")
    assert loader.load("t.txt").generate() == b"v1"
    path.write_text("v2", encoding="utf-8")
    assert loader.load("t.txt").generate() == b"v1"
    loader.reset()
    assert loader.load("t.txt").generate() == b"v2"
    with pytest.raises(FileNotFoundError):
        loader.load("nope.txt")


def test_datetime_is_the_module() -> None:
    assert render("{{ datetime is mod }}", mod=datetime) == b"True"


# --- through RequestHandler.render_string -----------------------------------------


class _Connection:
    """Enough of a connection for a handler that is never finished."""

    def set_close_callback(self, callback: Any) -> None:
        pass


def _render_string(loader: BaseLoader, name: str, **kwargs: Any) -> bytes:
    app = Application([], template_loader=loader)
    request = HTTPServerRequest(
        start_line=RequestStartLine("GET", "/", "HTTP/1.1"),
        headers=HTTPHeaders({"Host": "h"}),
        connection=_Connection(),  # type: ignore[arg-type]
    )
    handler = RequestHandler(app, request)
    # Loaders are kept per template directory, across applications.
    RenderMixin._template_loaders.clear()
    try:
        return handler.render_string(name, **kwargs)
    finally:
        handler._break_cycles()
        RenderMixin._template_loaders.clear()


def test_render_string_passes_the_handler_namespace_and_arguments() -> None:
    loader = DictLoader({"t.html": "{{ x }}|{{ request.path }}|{{ locale.code }}"})
    assert _render_string(loader, "t.html", x="<") == b"&lt;|/|en_US"
    # An argument named like a namespace entry wins, as with generate(**).
    assert _render_string(loader, "t.html", x=1, request=ObjectDict(path="p")) == b"1|p|en_US"


def test_render_string_calls_an_overridden_generate() -> None:
    calls: list[dict[str, Any]] = []

    class Counted(Template):
        def generate(self, **kwargs: Any) -> bytes:
            calls.append(kwargs)
            return super().generate(**kwargs) + b"!"

    class CountedLoader(DictLoader):
        def _create_template(self, name: str) -> Template:
            return Counted(self.dict[name], name=name, loader=self)

    out = _render_string(CountedLoader({"t.html": "{{ x }}"}), "t.html", x="a")
    assert out == b"a!"
    assert len(calls) == 1 and calls[0]["x"] == "a" and "handler" in calls[0]
