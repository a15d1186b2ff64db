"""Tests for squall.escape."""

from __future__ import annotations

import json
import threading
import tracemalloc
import urllib.parse
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from squall.escape import (
    _unquote_to_bytes,
    json_decode,
    json_encode,
    linkify,
    native_str,
    parse_qs_bytes,
    recursive_unicode,
    squeeze,
    to_basestring,
    to_unicode,
    url_escape,
    url_unescape,
    utf8,
    xhtml_escape,
    xhtml_unescape,
)
from tests._wait import HANG_GUARD

# --- str / bytes -------------------------------------------------------------


def test_utf8_encodes_text_and_passes_bytes_and_none() -> None:
    assert utf8("d\u00e9j\u00e0") == b"d\xc3\xa9j\xc3\xa0"
    raw = b"\xff\x00"
    assert utf8(raw) is raw
    assert utf8(None) is None


def test_to_unicode_decodes_bytes_and_passes_text_and_none() -> None:
    assert to_unicode(b"caf\xc3\xa9") == "caf\u00e9"
    text = "abc"
    assert to_unicode(text) is text
    assert to_unicode(None) is None
    assert native_str is to_unicode
    assert to_basestring is to_unicode


@pytest.mark.parametrize("func", [utf8, to_unicode])
def test_conversions_reject_other_types_with_the_type_in_the_message(
    func: Callable[[Any], Any],
) -> None:
    with pytest.raises(TypeError, match="int"):
        func(42)


def test_to_unicode_rejects_invalid_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        to_unicode(b"\xe9")


def test_recursive_unicode_walks_nested_containers() -> None:
    data = {b"k": [b"a", (b"b", 3)], "plain": None}
    assert recursive_unicode(data) == {"k": ["a", ("b", 3)], "plain": None}
    assert recursive_unicode(b"x") == "x"
    assert recursive_unicode(7) == 7


# --- HTML ----------------------------------------------------------------------


def test_xhtml_escape_replaces_the_five_special_characters() -> None:
    assert xhtml_escape("""<a href="x">'&'</a>""") == (
        "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
    )
    assert xhtml_escape(b"<\xc3\xa9>") == "&lt;\u00e9&gt;"
    assert xhtml_escape("&amp;") == "&amp;amp;"
    assert xhtml_escape("plain") == "plain"


def test_xhtml_escape_returns_plain_str() -> None:
    class Text(str):
        pass

    for value in (Text("plain"), Text("<b>"), b"bytes"):
        escaped = xhtml_escape(value)
        assert type(escaped) is str
        assert escaped == xhtml_escape(str(value) if isinstance(value, str) else value.decode())


@pytest.mark.parametrize(
    ("escaped", "plain"),
    [
        ("&lt;b&gt; &amp; &quot;", '<b> & "'),
        ("caf&eacute; &copy;", "caf\u00e9 \u00a9"),
        ("&#65;&#x42;&#X43;", "ABC"),
        ("&#x1F600;", "\U0001f600"),
        # HTML5's rules (Tornado's since 6.4): unknown names and malformed
        # numbers stay; the legacy names need no ";"; a number ends at its
        # last digit; no character (0, a surrogate, past the last code
        # point) is U+FFFD; C1 controls are Windows-1252's characters.
        ("&nosuch; &amp &copy2", "&nosuch; & \u00a92"),
        ("&#xZZ; &#; &#x; &#12a;", "&#xZZ; &#; &#x; \x0ca;"),
        ("&#99999999999;", "\ufffd"),
        ("&#x110000; &#0; &#xD800;", "\ufffd \ufffd \ufffd"),
        ("&#128;&#x9F;", "\u20ac\u0178"),
    ],
)
def test_xhtml_unescape(escaped: str, plain: str) -> None:
    assert xhtml_unescape(escaped) == plain


def test_xhtml_unescape_accepts_bytes() -> None:
    assert xhtml_unescape(b"a&gt;b") == "a>b"


@given(st.text())
def test_xhtml_unescape_inverts_xhtml_escape(text: str) -> None:
    assert xhtml_unescape(xhtml_escape(text)) == text


# --- URLs ----------------------------------------------------------------------


def test_url_escape_plus_and_path_forms() -> None:
    assert url_escape("a b/c+d?") == "a+b%2Fc%2Bd%3F"
    assert url_escape("a b/c+d?", plus=False) == "a%20b/c%2Bd%3F"
    assert url_escape("\u00e9") == "%C3%A9"
    assert url_escape(b"\xe9") == "%E9"


def test_url_unescape_variants() -> None:
    assert url_unescape("a+b%20c") == "a b c"
    assert url_unescape("a+b%20c", plus=False) == "a+b c"
    assert url_unescape(b"%C3%A9") == "\u00e9"
    assert url_unescape("%C3%A9", encoding="latin1") == "\u00c3\u00a9"
    assert url_unescape("%C3%A9+", encoding=None) == b"\xc3\xa9 "
    assert url_unescape(b"%E9+", encoding=None, plus=False) == b"\xe9+"


def test_url_unescape_replaces_undecodable_bytes() -> None:
    assert url_unescape("%E9x") == "\ufffdx"


def test_url_unescape_takes_raw_non_ascii_bytes_as_utf8() -> None:
    # As the str branch: raw text kept as text, whatever ``encoding`` is.
    assert url_unescape(b"\xc3\xa9+%41", encoding="latin1") == "\u00e9 A"
    assert url_unescape(b"\xc3\xa9+", encoding=None) == b"\xc3\xa9 "
    for plus, encoding in ((True, "utf-8"), (False, "utf-8"), (True, None), (False, "latin1")):
        with pytest.raises(UnicodeDecodeError):
            url_unescape(b"a\x80", encoding=encoding, plus=plus)
    # A path (no encoding, no plus) keeps its raw bytes.
    assert url_unescape(b"a\x80%41", encoding=None, plus=False) == b"a\x80A"


def test_url_unescape_keeps_raw_non_ascii_text() -> None:
    assert url_unescape("\u00e9+%41", encoding="latin1") == "\u00e9 A"
    assert url_unescape("\u00e9%41", encoding=None, plus=False) == b"\xc3\xa9A"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"plain",
        b"%41%3d%3D%25",
        b"%%41",
        b"%",
        b"a%",
        b"%4",
        b"%zz%4",
        b"%\r\n",
        bytes(range(256)),
    ],
)
def test_unquote_to_bytes_matches_the_standard_library(data: bytes) -> None:
    assert _unquote_to_bytes(data) == urllib.parse.unquote_to_bytes(data)


@given(st.lists(st.sampled_from([b"%", b"4", b"1", b"a", b"F", b"g", b"+", b"\xff"])).map(b"".join))
def test_unquote_to_bytes_property(data: bytes) -> None:
    assert _unquote_to_bytes(data) == urllib.parse.unquote_to_bytes(data)


def test_unquote_to_bytes_accepts_text() -> None:
    assert _unquote_to_bytes("%41\u00e9") == b"A\xc3\xa9"


def test_parse_qs_bytes_basic() -> None:
    assert parse_qs_bytes(b"a=1&b=%41+%2b&a=2") == {"a": [b"1", b"2"], "b": [b"A +"]}
    assert parse_qs_bytes("n%E9=%FF") == {"n\u00e9": [b"\xff"]}


def test_parse_qs_bytes_blank_values() -> None:
    assert parse_qs_bytes(b"a&b=&&c=1") == {"c": [b"1"]}
    assert parse_qs_bytes(b"a&b=&&c=1", keep_blank_values=True) == {
        "a": [b""],
        "b": [b""],
        "c": [b"1"],
    }


def test_parse_qs_bytes_strict_parsing_names_the_bad_field() -> None:
    with pytest.raises(ValueError, match="bad query field"):
        parse_qs_bytes(b"a=1&b", strict_parsing=True)
    with pytest.raises(ValueError):
        parse_qs_bytes(b"a=1&", strict_parsing=True)
    assert parse_qs_bytes(b"a=1", strict_parsing=True) == {"a": [b"1"]}


def test_parse_qs_bytes_max_num_fields() -> None:
    assert parse_qs_bytes(b"a=1&b=2", max_num_fields=2) == {"a": [b"1"], "b": [b"2"]}
    with pytest.raises(ValueError, match="Max number of fields"):
        parse_qs_bytes(b"a=1&b=2&c=3", max_num_fields=2)


@given(
    st.lists(st.sampled_from([b"a", b"=", b"&", b"%", b"41", b"+", b"\xe9", b"%e9"])).map(b"".join),
    st.booleans(),
)
def test_parse_qs_bytes_agrees_with_the_standard_library(qs: bytes, keep: bool) -> None:
    reference = urllib.parse.parse_qs(
        qs.decode("latin1"), keep_blank_values=keep, encoding="latin1", errors="strict"
    )
    expected = {k: [v.encode("latin1") for v in vs] for k, vs in reference.items()}
    assert parse_qs_bytes(qs, keep_blank_values=keep) == expected


# --- JSON and text -------------------------------------------------------------


def test_json_encode_cannot_close_a_script_element() -> None:
    encoded = json_encode({"html": "</script><script>alert(1)</script>"})
    assert "</" not in encoded
    assert json_decode(encoded) == {"html": "</script><script>alert(1)</script>"}


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(_JSON)
def test_json_encode_is_json_dumps_with_script_ends_escaped(value: Any) -> None:
    assert json_encode(value) == json.dumps(value).replace("</", "<\\/")


def test_json_encode_errors_read_as_json_dumps_and_leave_no_state() -> None:
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        json_encode({"a": [1, {"b": object()}]})
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference detected"):
        json_encode({"x": loop})
    # A failure half way through a container must not leave it marked as
    # "being encoded": the same objects encode cleanly afterwards.
    inner = {"k": [1, 2]}
    outer: list[Any] = [inner, inner, object()]
    with pytest.raises(TypeError):
        json_encode(outer)
    outer.pop()
    assert json_encode(outer) == '[{"k": [1, 2]}, {"k": [1, 2]}]'


def test_json_encode_from_threads_at_once() -> None:
    shared = {"list": list(range(50)), "nested": [{"a": i} for i in range(20)]}
    expected = json.dumps(shared)
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def work() -> None:
        start.wait(timeout=HANG_GUARD)
        try:
            for _ in range(200):
                results.append(json_encode(shared))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=HANG_GUARD)
    assert not errors
    assert results == [expected] * 800


def test_json_decode_accepts_utf8_bytes() -> None:
    assert json_decode('["\u00e9"]'.encode()) == ["\u00e9"]
    assert json_decode("[1, null]") == [1, None]


def test_json_decode_takes_what_json_loads_takes() -> None:
    # A buffer collected in a bytearray, or text in UTF-16: Tornado's
    # json_decode is json.loads, and programs pass it these.
    assert json_decode(bytearray(b'{"a": [1]}')) == {"a": [1]}
    assert json_decode('["\u00e9"]'.encode("utf-16")) == ["\u00e9"]
    with pytest.raises(TypeError, match="not int"):
        json_decode(5)  # type: ignore[arg-type]


def test_squeeze_collapses_whitespace_and_control_characters() -> None:
    assert squeeze("  a \t\n b\x00\x01c  ") == "a b c"
    assert squeeze("") == ""


# --- linkify -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kwargs", "html"),
    [
        ("see https://a.org/x.", {}, 'see <a href="https://a.org/x">https://a.org/x</a>.'),
        ("(at http://a.org)", {}, '(at <a href="http://a.org">http://a.org</a>)'),
        (
            "http://w.org/Foo_(bar)?",
            {},
            '<a href="http://w.org/Foo_(bar)">http://w.org/Foo_(bar)</a>?',
        ),
        (
            "http://a.org/?x=1&y=2",
            {},
            '<a href="http://a.org/?x=1&amp;y=2">http://a.org/?x=1&amp;y=2</a>',
        ),
        ("<b>www.a.org</b>", {}, '&lt;b&gt;<a href="http://www.a.org">www.a.org</a>&lt;/b&gt;'),
        ("www.a.org", {"require_protocol": True}, "www.a.org"),
        ("javascript://alert(1)", {}, "javascript://alert(1)"),
        ("ftp://a.org", {}, "ftp://a.org"),
        ("ftp://a.org", {"permitted_protocols": ["ftp"]}, '<a href="ftp://a.org">ftp://a.org</a>'),
        # Schemes compare as written (Tornado's rule).
        ("HTTP://A.ORG", {}, "HTTP://A.ORG"),
        (
            "HTTP://A.ORG",
            {"permitted_protocols": ["HTTP"]},
            '<a href="HTTP://A.ORG">HTTP://A.ORG</a>',
        ),
        # Leading hyphens belong to the text, not to the scheme.
        ("--http://a.org", {}, '--<a href="http://a.org">http://a.org</a>'),
        ("x-http://a.org", {}, "x-http://a.org"),
        ("nothing:here 12:30", {}, "nothing:here 12:30"),
        (b"http://a.org \xc3\xa9", {}, '<a href="http://a.org">http://a.org</a> \u00e9'),
        (
            "www.a.org",
            {"extra_params": ' rel="nofollow" '},
            '<a href="http://www.a.org" rel="nofollow">www.a.org</a>',
        ),
        (
            "www.a.org",
            {"extra_params": lambda href: ""},
            # Tornado's bytes: the space stays before nothing.
            '<a href="http://www.a.org" >www.a.org</a>',
        ),
        (
            "www.a.org",
            {"extra_params": lambda href: f'data-x="{len(href)}"'},
            '<a href="http://www.a.org" data-x="16">www.a.org</a>',
        ),
    ],
)
def test_linkify(text: str | bytes, kwargs: dict[str, Any], html: str) -> None:
    assert linkify(text, **kwargs) == html


def test_linkify_shorten_keeps_host_and_a_path_hint() -> None:
    url = "https://example.org/documentation/page.html?q=1"
    assert linkify(url, shorten=True) == (
        f'<a href="{url}" title="{url}">https://example.org/document...</a>'
    )


def test_linkify_shorten_cuts_long_hosts() -> None:
    url = "http://" + "h" * 50 + ".com"
    assert linkify(url, shorten=True) == (f'<a href="{url}" title="{url}">{url[:30]}...</a>')


def test_linkify_shorten_leaves_short_links_alone() -> None:
    assert linkify("http://a.org/b", shorten=True) == '<a href="http://a.org/b">http://a.org/b</a>'
    # Shortening that would not save anything is not done.
    url = "http://abcdefghijklmnopqrstuvw.org/x"
    assert linkify(url, shorten=True) == f'<a href="{url}">{url}</a>'


def test_linkify_shorten_cuts_as_tornado_does() -> None:
    # Up to 30 characters a link is shown whole.
    assert linkify("http://a.org/" + "b" * 17, shorten=True).endswith(
        ">http://a.org/bbbbbbbbbbbbbbbbb</a>"
    )
    # Longer: the host and a hint of the first path segment; an escaped "&"
    # in the cut's last characters goes with what follows it.
    for before in range(20, 30):
        url = "www." + "a" * before + '"b' + "c" * 40
        html = linkify(url, shorten=True)
        shown = html.split(">", 1)[1].split("<", 1)[0]
        assert shown.endswith("...")
        assert len(shown) < len(url)
        amp = shown.rfind("&")
        assert amp < 0 or amp <= 25, shown
        assert f'title="http://www.{"a" * before}&quot;b' in html


# --- resource use --------------------------------------------------------------


def _peak_memory(func: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("func", "data"),
    [
        (xhtml_escape, "<" * 50_000),
        (xhtml_unescape, "&a;" * 20_000),
        (linkify, "www.a " * 10_000),
        (linkify, "http://a(" + "b" * 50_000),
        (url_escape, "\u00e9<" * 25_000),
        (lambda d: parse_qs_bytes(d.encode()), "a=" + "%41" * 20_000),
        (lambda d: parse_qs_bytes(d.encode()), "%" * 60_000),
    ],
)
def test_memory_stays_proportional_to_input(func: Callable[[str], object], data: str) -> None:
    assert _peak_memory(lambda: func(data)) < 30 * len(data)


def test_parse_qs_bytes_empty_query_is_empty_even_when_strict() -> None:
    assert parse_qs_bytes(b"", strict_parsing=True) == {}
    assert parse_qs_bytes("", keep_blank_values=True) == {}
