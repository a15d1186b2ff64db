"""`Request.fields`: the request's header fields grouped by canonical name in
one pass (the dict the server wraps in HTTPHeaders), and `Request.headers`
built from the head only when read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import squall._h1._events as events
from squall._h1 import RemoteProtocolError, Request
from squall._h1._events import canonical_name, fields_from_pairs, pairs_of_block
from squall._h1._heads import PythonHeadParser
from squall._h1._rules import parse_fields, request_fields
from squall.httpserver._flow import wrap_fields
from squall.httputil import HTTPHeaders

from .conftest import drain, server


def head_request(parser: str, head: bytes) -> Request:
    evs = drain(server(parser, head))
    assert isinstance(evs[0], Request)
    return evs[0]


def test_fields_group_by_canonical_name_in_arrival_order(parser: str) -> None:
    req = head_request(
        parser,
        b"GET / HTTP/1.1\r\nhost: a\r\nX-Tag: 1\r\naccept:  */* \t\r\nx-TAG:2\r\nX-tag: 3\r\n\r\n",
    )
    assert req.fields == {"Host": ["a"], "X-Tag": ["1", "2", "3"], "Accept": ["*/*"]}
    assert list(req.fields) == ["Host", "X-Tag", "Accept"]
    assert req.headers == [
        ("host", "a"),
        ("X-Tag", "1"),
        ("accept", "*/*"),
        ("x-TAG", "2"),
        ("X-tag", "3"),
    ]


def test_no_fields(parser: str) -> None:
    req = head_request(parser, b"GET / HTTP/1.1\r\n\r\n")
    assert req.fields == {}
    assert req.headers == []


def test_values_keep_inner_space_and_obs_text(parser: str) -> None:
    req = head_request(
        parser, b"GET / HTTP/1.1\r\nA: x  y\t z\r\nB: caf\xe9\r\nC:\r\nD: \t\r\n\r\n"
    )
    assert req.fields == {"A": ["x  y\t z"], "B": ["café"], "C": [""], "D": [""]}


def test_framing_fields_found_in_any_spelling(parser: str) -> None:
    conn = server(parser, b"POST / HTTP/1.1\r\ncontent-LENGTH: 3\r\nCONNECTION: close\r\n\r\nabc")
    evs = drain(conn)
    assert [type(e).__name__ for e in evs] == ["Request", "Data", "EndOfMessage"]
    assert not conn.keep_alive
    conn = server(
        parser, b"POST / HTTP/1.1\r\ntransfer-ENCODING: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert [type(e).__name__ for e in drain(conn)] == ["Request", "Data", "EndOfMessage"]
    conn = server(parser, b"POST / HTTP/1.1\r\nexpect: 100-CONTINUE\r\nContent-Length: 1\r\n\r\n")
    drain(conn)
    assert conn.expects_continue


def test_headers_are_built_only_when_read() -> None:
    head = b"GET / HTTP/1.1\r\nA: 1\r\nb:2\r\n\r\n"
    req = PythonHeadParser(256, quick=None).request(head, 0, 14, len(head) - 4)
    assert req._headers is None  # type: ignore[attr-defined]
    assert req.headers == [("A", "1"), ("b", "2")]
    assert req.headers is req.headers


def test_request_built_by_hand() -> None:
    req = Request("GET", "/", "HTTP/1.1", [("a", "1"), ("A", "2")])
    assert req.fields == {"A": ["1", "2"]}
    assert Request("GET", "/", "HTTP/1.1").headers == []
    assert Request("GET", "/", "HTTP/1.1", None, None, "x: 1\r\nY:2").fields == {
        "X": ["1"],
        "Y": ["2"],
    }
    req.headers = [("b", "3")]
    assert req.fields == {"B": ["3"]}
    assert req == Request("GET", "/", "HTTP/1.1", [("b", "3")])


def test_name_cache_is_bounded() -> None:
    # Filled in place and restored in place: the compiled build binds the
    # dict and its bound as constants, so neither can be patched.
    cache = events.FIELD_NAMES
    saved = dict(cache)
    try:
        for i in range(events._FIELD_NAMES_MAX + 50):
            assert events.field_name(f"x-new-{i}") == f"X-New-{i}"
        assert len(cache) == events._FIELD_NAMES_MAX
        assert "x-new-2090" not in cache
    finally:
        cache.clear()
        cache.update(saved)


@pytest.mark.parametrize(
    "wrap", [HTTPHeaders._from_fields, wrap_fields], ids=["classmethod", "drivers"]
)
def test_server_headers_wrap_the_fields(
    wrap: Callable[[dict[str, list[str]]], HTTPHeaders],
) -> None:
    # The drivers' wrap_fields is _from_fields without its Python frame.
    fields = {"Host": ["a"], "X-A": ["1", "2"]}
    headers = wrap(fields)
    assert type(headers) is HTTPHeaders
    assert headers["x-a"] == "1,2"
    assert headers.get_list("HOST") == ["a"]
    headers.add("X-A", "3")
    assert fields["X-A"] == ["1", "2", "3"]


_NAMES = st.sampled_from(
    ["host", "Host", "HOST", "x-a", "X-A", "a", "Content-Type", "a_b", "x1-y2"]
)
_VALUES = st.text(alphabet=st.sampled_from(list("ab ,:\t\xe9")), max_size=6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_NAMES, st.sampled_from([":", ": ", ":\t"]), _VALUES), max_size=8))
def test_fields_agree_with_pairs(lines: list[tuple[str, str, str]]) -> None:
    block = "\r\n".join(n + sep + v for n, sep, v in lines)
    head = ("GET / HTTP/1.1\r\n" + block + ("\r\n" if block else "") + "\r\n").encode("latin-1")
    end = len(head) - 4
    req = PythonHeadParser(256, quick=None).request(head, 0, 14, end)
    pairs = [(n, v.strip(" \t")) for n, _, v in lines]
    assert req.headers == pairs == pairs_of_block(block)
    assert req.fields == fields_from_pairs(pairs)
    assert req.fields == {
        canonical_name(n): [v for m, v in pairs if m.lower() == n.lower()] for n, _ in pairs
    }
    assert HTTPHeaders._from_fields(req.fields)._as_list == HTTPHeaders._from_pairs(pairs)._as_list


_ODD_LINE = st.tuples(
    st.sampled_from(["Host", "host", "X-A", "x-a", "A B", "", " A", "Ä"]),
    st.sampled_from([":", ": ", " :", ":\t", ""]),
    st.text(
        alphabet=st.sampled_from(list(" \t\x00\x01\x0b\x7f\x80\x85\xe9\xff:ab\r\n")), max_size=6
    ),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ODD_LINE, min_size=1, max_size=6), st.integers(1, 7))
def test_field_pass_agrees_with_the_regex_path(
    lines: list[tuple[str, str, str]], count: int
) -> None:
    # request_fields takes a shortcut past FIELDS_RE for known names;
    # parse_fields always matches it. Same fields, or the same error.
    for name in ("Host", "host", "X-A", "x-a"):
        events.field_name(name)
    block = "\r\n".join(n + sep + v for n, sep, v in lines).encode("latin-1")
    buf = b"GET / HTTP/1.1\r\n" + block + b"\r\n\r\n"
    start, end = 16, len(buf) - 4
    if buf.find(b"\r\n\r\n") != end:
        return
    text_lines = block.decode("latin-1").split("\r\n")

    def run(f: Any) -> Any:
        try:
            return f()
        except RemoteProtocolError as exc:
            return (str(exc), exc.status_hint)

    got = run(lambda: request_fields(buf, start, end, list(text_lines), count))
    expected = run(lambda: fields_from_pairs(parse_fields(buf, start, end, count, False)))
    assert got == expected
