"""HTTPHeaders and the header grammar of squall.httputil."""

from __future__ import annotations

import copy
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squall.httputil import _ABNF, HTTP_WHITESPACE, HTTPHeaders, HTTPInputError, HTTPOutputError
from squall.httputil import _headers as headers_module


def test_errors_are_plain_exceptions() -> None:
    assert issubclass(HTTPInputError, Exception)
    assert issubclass(HTTPOutputError, Exception)
    assert not issubclass(HTTPInputError, HTTPOutputError)
    assert HTTP_WHITESPACE == " \t"


class TestConstruction:
    def test_empty(self) -> None:
        h = HTTPHeaders()
        assert len(h) == 0
        assert list(h) == []
        assert str(h) == ""

    def test_from_dict_and_kwargs(self) -> None:
        h = HTTPHeaders({"content-type": "text/plain"}, X_Thing="1")
        assert h["Content-Type"] == "text/plain"
        assert h["x_thing"] == "1"
        assert list(h) == ["Content-Type", "X_thing"]

    def test_from_pairs_list_last_wins(self) -> None:
        h = HTTPHeaders([("A", "1"), ("a", "2")])
        assert h.get_list("A") == ["2"]

    def test_copy_constructor_keeps_every_value(self) -> None:
        h = HTTPHeaders()
        h.add("Vary", "Accept")
        h.add("Vary", "Cookie")
        h2 = HTTPHeaders(h)
        assert h2.get_list("vary") == ["Accept", "Cookie"]
        h2.add("Vary", "Origin")
        assert h.get_list("vary") == ["Accept", "Cookie"]

    def test_value_that_is_not_a_string_is_stored_as_given(self) -> None:
        # Tornado's own tests build HTTPHeaders({"Name": ["value"]}); it must not raise.
        h = HTTPHeaders({"Canary": ["Coal Mine"]})  # type: ignore[dict-item]
        assert h["canary"] == ["Coal Mine"]


class TestAdd:
    def test_multi_valued_lookup(self) -> None:
        h = HTTPHeaders()
        h.add("Set-Cookie", "a=1")
        h.add("set-cookie", "b=2")
        assert h["SET-COOKIE"] == "a=1,b=2"
        assert h.get_list("Set-Cookie") == ["a=1", "b=2"]
        assert list(h.get_all()) == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
        assert len(h) == 1

    @pytest.mark.parametrize(
        "name", ["", "foo bar", "foo\tbar", "foo\nbar", "foo\x00bar", "foo ", " foo", "é", "a:b"]
    )
    def test_invalid_names(self, name: str) -> None:
        with pytest.raises(HTTPInputError, match="Invalid header name"):
            HTTPHeaders().add(name, "v")

    def test_non_string_name(self) -> None:
        with pytest.raises(HTTPInputError, match="Invalid header name"):
            HTTPHeaders().add(3, "v")  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "\x00", " lead", "trail ", "\x7f", "日本"])
    def test_invalid_byte_values(self, value: str) -> None:
        with pytest.raises(HTTPInputError, match="Invalid header value"):
            HTTPHeaders().add("X", value)

    def test_text_values_allow_non_latin1(self) -> None:
        h = HTTPHeaders()
        h.add("X", "日本 ", _chars_are_bytes=False)
        assert h["x"] == "日本 "
        with pytest.raises(HTTPInputError, match="Invalid header value"):
            h.add("X", "a\rb", _chars_are_bytes=False)

    def test_valid_values(self) -> None:
        h = HTTPHeaders()
        for value in ["", "a", "a b\tc", "caf\xe9", "x" * 1000]:
            h.add("X", value)
        assert h.get_list("x")[:4] == ["", "a", "a b\tc", "caf\xe9"]

    def test_non_string_value_is_stored_as_given(self) -> None:
        h = HTTPHeaders()
        h.add("X", b"raw")  # type: ignore[arg-type]
        assert h.get_list("x") == [b"raw"]

    def test_many_values_stay_cheap(self) -> None:
        h = HTTPHeaders()
        for _ in range(50_000):
            h.add("X-Foo", "bar")
        assert len(h.get_list("x-foo")) == 50_000
        assert len(h["X-Foo"]) == 50_000 * 4 - 1


class TestMappingInterface:
    def make(self) -> HTTPHeaders:
        h = HTTPHeaders()
        h.add("Accept", "text/html")
        h.add("Accept", "*/*")
        h["Host"] = "example.com"
        return h

    def test_getitem_missing(self) -> None:
        with pytest.raises(KeyError):
            self.make()["Missing"]
        # An invalid name is simply absent, not an error.
        assert "bad name" not in self.make()
        assert self.make().get("bad name") is None

    def test_contains_any_case(self) -> None:
        h = self.make()
        assert "host" in h and "HOST" in h and "Host" in h
        assert 42 not in h

    def test_setitem_replaces_all_values_in_place(self) -> None:
        h = self.make()
        h["accept"] = "image/png"
        assert h.get_list("Accept") == ["image/png"]
        assert list(h) == ["Accept", "Host"]

    def test_setitem_validates_name(self) -> None:
        with pytest.raises(HTTPInputError):
            HTTPHeaders()["a b"] = "c"

    def test_delitem(self) -> None:
        h = self.make()
        del h["ACCEPT"]
        assert list(h.get_all()) == [("Host", "example.com")]
        with pytest.raises(KeyError):
            del h["accept"]

    def test_readd_after_delete_goes_last(self) -> None:
        h = self.make()
        del h["Accept"]
        h.add("accept", "x")
        assert list(h) == ["Host", "Accept"]

    def test_get_pop_setdefault_update(self) -> None:
        h = self.make()
        assert h.get("accept") == "text/html,*/*"
        assert h.get("nope", "dflt") == "dflt"
        assert h.setdefault("host", "other") == "example.com"
        assert h.setdefault("X-New", "v") == "v"
        assert h.pop("x-new") == "v"
        assert h.pop("x-new", None) is None
        h.update({"Etag": '"1"'}, server="s")
        assert h["ETAG"] == '"1"' and h["Server"] == "s"
        assert sorted(h.keys()) == ["Accept", "Etag", "Host", "Server"]

    def test_equality_uses_joined_values(self) -> None:
        h = self.make()
        assert h == {"Accept": "text/html,*/*", "Host": "example.com"}
        # Like Tornado: equality compares canonical names with a plain mapping.
        assert h != {"accept": "text/html,*/*", "host": "example.com"}
        assert h == HTTPHeaders(h)
        assert h != HTTPHeaders()
        assert h != "not a mapping"

    def test_str_round_trips_through_parse(self) -> None:
        h = self.make()
        text = str(h)
        assert text == "Accept: text/html\nAccept: */*\nHost: example.com\n"
        assert HTTPHeaders.parse(text) == h
        assert h.__unicode__() == text  # type: ignore[attr-defined]


class TestCopies:
    def test_copy_pickle_deepcopy_are_independent(self) -> None:
        h = HTTPHeaders()
        h.add("A", "1")
        h.add("A", "2")
        for other in (h.copy(), copy.copy(h), copy.deepcopy(h), pickle.loads(pickle.dumps(h))):
            assert other is not h
            assert list(other.get_all()) == [("A", "1"), ("A", "2")]
            assert other.get_list("a") is not h.get_list("a")
            assert type(other) is HTTPHeaders

    def test_has_no_instance_dict(self) -> None:
        # __slots__: one per message, on the hot path.
        assert not hasattr(HTTPHeaders(), "__dict__")


class TestParse:
    def test_crlf_and_lf_lines(self) -> None:
        h = HTTPHeaders.parse("A: 1\r\nB: 2\nC: 3\r\n\r\n")
        assert list(h.get_all()) == [("A", "1"), ("B", "2"), ("C", "3")]

    def test_no_trailing_newline_and_blank_lines(self) -> None:
        h = HTTPHeaders.parse("\r\nA: 1\r\n\nB:2")
        assert list(h.get_all()) == [("A", "1"), ("B", "2")]

    def test_ows_is_stripped_but_other_whitespace_kept(self) -> None:
        h = HTTPHeaders.parse("A: \t x y \t\r\nB:\xa0v\x85\r\n")
        assert h["a"] == "x y"
        assert h["b"] == "\xa0v\x85"

    def test_empty_value(self) -> None:
        assert HTTPHeaders.parse("A:\r\n")["a"] == ""

    def test_colon_in_value(self) -> None:
        assert HTTPHeaders.parse("Host: h:80")["host"] == "h:80"

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("Foo: bar\r\n\tbaz", "obs-fold"),
            ("Foo: bar\r\n baz", "obs-fold"),
            ("Foo: a\rB: c", "Invalid header value"),
            # A CR that ends the text is not a line ending: no LF follows it.
            ("Foo: b\r", "Invalid header value"),
            ("Foo: b\r\nC: d\r", "Invalid header value"),
            ("Foo: b\n\r", "no colon"),
            ("\r", "no colon"),
            ("Foo: a\x00b", "Invalid header value"),
            ("Foo: a\x1bb", "Invalid header value"),
            ("Foo: a\x7fb", "Invalid header value"),
            ("Foo: \u0100", "Invalid header value"),
            ("Foo bar", "no colon"),
            ("Foo : bar", "Invalid header name"),
            (": bar", "Invalid header name"),
        ],
    )
    def test_rejects(self, text: str, message: str) -> None:
        with pytest.raises(HTTPInputError, match=message):
            HTTPHeaders.parse(text)

    def test_every_octet(self) -> None:
        for code in range(0x100):
            char = chr(code)
            if code == 0x09 or (code >= 0x20 and code != 0x7F):
                assert HTTPHeaders.parse(f"Foo: a{char}b\r\n")["foo"] == f"a{char}b"
            else:
                with pytest.raises(HTTPInputError):
                    HTTPHeaders.parse(f"Foo: a{char}b\r\n")

    def test_unicode_line_separators_are_not_newlines(self) -> None:
        for sep in ("\x85", "\u2028".encode().decode("latin1")):
            h = HTTPHeaders.parse(f"Cookie: a={sep}b")
            assert list(h.get_all()) == [("Cookie", f"a={sep}b")]

    def test_text_mode_accepts_decoded_text(self) -> None:
        h = HTTPHeaders.parse('Content-Disposition: form-data; name="日本"', _chars_are_bytes=False)
        assert "日本" in h["content-disposition"]
        with pytest.raises(HTTPInputError, match="Invalid header value"):
            HTTPHeaders.parse("A: x\x08y", _chars_are_bytes=False)

    def test_many_distinct_headers(self) -> None:
        text = "".join(f"X{i}: v\r\n" for i in range(5000))
        h = HTTPHeaders.parse(text)
        assert len(h) == 5000
        assert h["x4999"] == "v"


class TestParseLine:
    @pytest.mark.parametrize("line", ["A: b", "A: b\r\n", "A: b\n", "A:   b  \r\n"])
    def test_line_endings(self, line: str) -> None:
        h = HTTPHeaders()
        h.parse_line(line)
        assert list(h.get_all()) == [("A", "b")]

    @pytest.mark.parametrize("line", ["", "\r\n", "\n"])
    def test_empty_lines_ignored(self, line: str) -> None:
        h = HTTPHeaders()
        h.parse_line(line)
        assert len(h) == 0

    def test_continuation_rejected(self) -> None:
        h = HTTPHeaders()
        h.parse_line("A: b")
        with pytest.raises(HTTPInputError, match="obs-fold"):
            h.parse_line(" more")

    def test_bare_cr_inside_rejected(self) -> None:
        with pytest.raises(HTTPInputError):
            HTTPHeaders().parse_line("A: b\rc\r\n")


class TestFromPairs:
    def test_groups_and_normalises(self) -> None:
        h = HTTPHeaders._from_pairs(
            [("host", "x"), ("COOKIE", "a=1"), ("cookie", "b=2"), ("x-custom-thing", "v")]
        )
        assert list(h.get_all()) == [
            ("Host", "x"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("X-Custom-Thing", "v"),
        ]
        assert h["cookie"] == "a=1,b=2"
        assert isinstance(h, HTTPHeaders)

    def test_subclass(self) -> None:
        class Sub(HTTPHeaders):
            __slots__ = ()

        assert type(Sub._from_pairs([("a", "b")])) is Sub

    def test_empty(self) -> None:
        assert len(HTTPHeaders._from_pairs([])) == 0

    def test_new_names_are_cached(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(headers_module, "_NAME_CACHE", {})
        HTTPHeaders._from_pairs([("x-brand-new", "1")])
        assert headers_module._NAME_CACHE == {"x-brand-new": "X-Brand-New"}


class TestNameCache:
    def test_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(headers_module, "_NAME_CACHE", dict(headers_module._NAME_CACHE))
        monkeypatch.setattr(headers_module, "_NAME_CACHE_MAX", len(headers_module._NAME_CACHE) + 3)
        h = HTTPHeaders()
        for i in range(10):
            h.add(f"x-new-{i}", "v")
        HTTPHeaders._from_pairs([(f"y-new-{i}", "v") for i in range(10)])
        assert len(headers_module._NAME_CACHE) == headers_module._NAME_CACHE_MAX
        assert list(h)[-1] == "X-New-9"

    def test_canonical_spelling(self) -> None:
        canonical = headers_module._canonical
        assert canonical("content-type") == "Content-Type"
        assert canonical("WWW-AUTHENTICATE") == "Www-Authenticate"
        assert canonical("x_under-score") == "X_under-Score"
        assert canonical("etag") == "Etag"
        same = "Host"
        assert canonical(same) is same

    def test_invalid_lookup_names_are_not_cached(self) -> None:
        h = HTTPHeaders()
        assert h.get("in valid") is None
        assert "in valid" not in headers_module._NAME_CACHE
        with pytest.raises(HTTPInputError):
            h.add("in valid", "x")


class TestABNF:
    @pytest.mark.parametrize(
        ("pattern", "good", "bad"),
        [
            (_ABNF.token, ["GET", "x-y_z.1~"], ["", "a b", "a:b", "é"]),
            (_ABNF.field_value, ["", "a", "a b", "\xff"], [" a", "a ", "a\r", "\u0100"]),
            (_ABNF.request_target, ["/", "*", "/a?b=c#d"], ["", "/a b", "/\x7f"]),
            (_ABNF.reason_phrase, ["OK", "Not Found", " x\t"], ["", "a\nb"]),
            (_ABNF.host, ["", "example.com", "[::1]:80", "h:8080"], ["a b", "a/b", "a@b", "é"]),
        ],
    )
    def test_patterns(self, pattern: object, good: list[str], bad: list[str]) -> None:
        import re

        assert isinstance(pattern, re.Pattern)
        for text in good:
            assert pattern.fullmatch(text), text
        for text in bad:
            assert not pattern.fullmatch(text), text


names = st.from_regex(_ABNF.field_name, fullmatch=True)
values = st.from_regex(_ABNF.field_value, fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(names, values), max_size=8))
def test_property_add_str_parse_round_trip(pairs: list[tuple[str, str]]) -> None:
    h = HTTPHeaders()
    for name, value in pairs:
        h.add(name, value)
    parsed = HTTPHeaders.parse(str(h).replace("\n", "\r\n"))
    assert list(parsed.get_all()) == list(h.get_all())
    assert list(HTTPHeaders._from_pairs(pairs).get_all()) == list(h.get_all())


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_property_parse_raises_only_input_error(text: str) -> None:
    try:
        h = HTTPHeaders.parse(text)
    except HTTPInputError:
        return
    for name, value in h.get_all():
        assert _ABNF.field_name.fullmatch(name)
        assert _ABNF.field_value.fullmatch(value)


def test_built_from_a_plain_dict_like_update() -> None:
    h = HTTPHeaders({"content-type": "text/plain", "X-A": "1", "x-a": "2"})
    assert list(h.get_all()) == [("Content-Type", "text/plain"), ("X-A", "2")]
    with pytest.raises(HTTPInputError, match="Invalid header name"):
        HTTPHeaders({"bad name": "1"})

    class Upper(HTTPHeaders):
        def __setitem__(self, name: str, value: str) -> None:
            super().__setitem__(name, value.upper())

    assert Upper({"A": "x"})["A"] == "X"
