"""The compiled build's C pass over request heads (speedups/c/quick.c) against
the Python parser it stands in front of.

The C function returns a `Request` or None ("left to Python"). The rule it
must keep, checked here on the same bytes: whatever Python rejects, C leaves
(so every error, message and status, is Python's); whatever C accepts, Python
accepts with an equal event (method, target, version, headers and fields).
And it must actually take the common heads (a fast path that always says None
would pass the rest).

In the compiled run the installed module is tested; in the pure run the C
source is compiled here (skipped, saying why, without a C compiler).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import squall._h1._quick
from squall._h1 import (
    NEED_DATA,
    PAUSED,
    EndOfMessage,
    H1Connection,
    H1Limits,
    RemoteProtocolError,
    Request,
)
from squall._h1._heads import PythonHeadParser
from tests import _cext
from tests._paths import SQUALL_DIR

ROOT = Path(__file__).resolve().parents[2]
Quick = Callable[[bytes | bytearray, int, int, int, int], Request | None]


@pytest.fixture(scope="module")
def module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if squall._h1._quick.request_head is not None:
        return squall._h1._quick
    return _cext.build("quick.c", "squall._h1._quick", tmp_path_factory.mktemp("quick"))


def _pure_quick() -> ModuleType:
    """squall/_h1/_quick.py itself, whichever module the build loads under
    that name (the C one in the compiled run), beside it in the package."""
    if not str(squall._h1._quick.__file__).endswith(".py"):
        path = SQUALL_DIR / "_h1" / "_quick.py"
        return _cext.load("squall._h1._quick_pure", path)
    return squall._h1._quick


_PURE_FIND = _pure_quick()._find_request_head


class _PythonPass:
    """Pure Python's fast path, shaped like the C module (no request_head)."""

    request_head = None
    find_request_head = staticmethod(_PURE_FIND)


@pytest.fixture(scope="module", params=["c", "python"])
def finder(request: pytest.FixtureRequest) -> Any:
    """The pass that finds and parses a head: C's, then pure Python's."""
    if request.param == "python":
        # It takes known field names only: the full parser learns them.
        head = b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\r\n"
        PythonHeadParser(256, quick=None).request(head, 0, 14, len(head) - 4)
        return _PythonPass
    return request.getfixturevalue("module")


@pytest.fixture(scope="module")
def quick(module: Any) -> Quick:
    func: Quick = module.request_head
    return func


def layout(head: bytes) -> tuple[int, int]:
    """(line_end, end) as H1Connection._find_head gives them."""
    end = head.find(b"\r\n\r\n")
    assert end >= 0
    return head.find(b"\r\n", 0, end + 2), end


def outcome(parser: PythonHeadParser, buf: bytes | bytearray) -> tuple[Any, ...]:
    line_end, end = layout(bytes(buf))
    try:
        req = parser.request(buf, 0, line_end, end)
    except RemoteProtocolError as exc:
        return ("error", str(exc), exc.status_hint)
    return ("ok", req.method, req.target, req.version, req.headers, req.fields)


def check(quick: Quick, head: bytes, max_count: int = 256) -> Request | None:
    """Both rules on one head; returns what C gave."""
    line_end, end = layout(head)
    python = PythonHeadParser(max_count, quick=None)
    fast = PythonHeadParser(max_count, quick=quick)
    expected = outcome(python, head)
    for buf in (head, bytearray(head)):
        got = quick(buf, 0, line_end, end, max_count)
        if got is not None:
            assert expected[0] == "ok", (head, expected)
            assert type(got) is Request
            assert ("ok", got.method, got.target, got.version, got.headers, got.fields) == expected
            assert got == python.request(head, 0, line_end, end)
        # Through the parser, C first: the very same result or error.
        assert outcome(fast, buf) == expected
    return quick(head, 0, line_end, end, max_count)


COMMON = [
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET /a?b=c HTTP/1.0\r\nHost: x\r\n\r\n",
    b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n",
    b"PUT /p HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\nX-A:3\r\n\r\n",
    b"DELETE /x HTTP/1.1\r\nA:\r\nB: \t \r\nC:\tv\t \r\n\r\n",
    b"OPTIONS /o HTTP/1.1\r\nWeird-NAME-x_y: caf\xe9\r\n\r\n",
    b"PATCH /p HTTP/1.1\r\nA: a b  c\r\nHEAD: 1\r\n\r\n",
    b"HEAD / HTTP/1.1\r\ncontent-type--x: 1\r\n-a: 2\r\nx1-2b: 3\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"".join(b"N%d: %d\r\n" % (i, i) for i in range(40)) + b"\r\n",
    b"GET / HTTP/1.1\r\n" + b"L" * 60 + b": long name\r\n\r\n",
]

LEFT = [
    # Python decides these: some it accepts, some it refuses.
    b"CONNECT a:1 HTTP/1.1\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"GET http://a/ HTTP/1.1\r\n\r\n",
    b"BREW /pot HTTP/1.1\r\n\r\n",
    b"get / HTTP/1.1\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1 \r\n\r\n",
    b"GET / HTTP/2.0\r\n\r\n",
    b"GET / HTTP/1.2\r\n\r\n",
    b"GET /\x7f HTTP/1.1\r\n\r\n",
    b"GET /\xe9 HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET / HTTP/1.1\r\n x: folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: 1\r\n  folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: \x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: \x7f\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: b\nc: d\r\n\r\n",
    b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
    b"GET / HTTP/1.1\r\nA\x01: b\r\n\r\n",
]


def test_common_heads_are_taken_and_equal(quick: Quick) -> None:
    for head in COMMON:
        assert check(quick, head) is not None, head


def test_other_heads_are_left_to_python(quick: Quick) -> None:
    for head in LEFT:
        assert check(quick, head) is None, head


def test_field_count_limit_is_pythons(quick: Quick) -> None:
    head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
    assert check(quick, head, max_count=3) is not None
    assert check(quick, head, max_count=2) is None
    assert outcome(PythonHeadParser(2, quick=quick), head)[:3] == (
        "error",
        "Too many header fields (more than 2)",
        431,
    )


def test_layout_it_was_not_promised_is_left(quick: Quick) -> None:
    head = b"GET / HTTP/1.1\r\nA: 1\r\n\r\n"
    line_end, end = layout(head)
    assert quick(head, 0, line_end, end - 1, 256) is None
    assert quick(head, 0, line_end, len(head), 256) is None
    assert quick(memoryview(head), 0, line_end, end, 256) is None  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        quick(head, 0, line_end, end)  # type: ignore[call-arg]


def test_names_share_one_canonical_string(quick: Quick) -> None:
    head = b"GET / HTTP/1.1\r\ncontent-LENGTH: 0\r\n\r\n"
    a = quick(head, 0, *layout(head), 256)
    b = quick(head.replace(b"content-LENGTH", b"Content-Length"), 0, *layout(head), 256)
    assert a is not None and b is not None
    assert list(a.fields) == list(b.fields) == ["Content-Length"]
    assert list(a.fields)[0] is list(b.fields)[0]
    assert a.headers == [("content-LENGTH", "0")]


def test_many_distinct_names_keep_working(quick: Quick) -> None:
    # The name table is fixed-size: names evict each other, results stay right.
    for i in range(3000):
        head = b"GET / HTTP/1.1\r\nx-%d-n: v\r\nHost: h\r\n\r\n" % i
        req = quick(head, 0, *layout(head), 256)
        assert req is not None
        assert req.fields == {f"X-{i}-N": ["v"], "Host": ["h"]}


def _import_from(folder: str, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Imports ``name`` from ``folder`` of the checkout, with ``sys.path``
    as it was again after the test (the whole list: callgrind_hotpath
    puts benchmarks/ and benchmarks/servers/ on it, whose run.py and
    http_client.py would then answer later tests' imports)."""
    monkeypatch.syspath_prepend(str(ROOT / folder))
    return importlib.import_module(name)


def test_the_benchmark_stream_takes_the_fast_path(
    quick: Quick, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_stream = _import_from("benchmarks", "callgrind_hotpath", monkeypatch).request_stream
    for head in request_stream("varied", 200):
        assert check(quick, head) is not None


def python_pass(head: bytes, max_count: int = 256) -> Request | None:
    """Pure Python's pass on one complete head, checked against the full
    parser (which runs first, so the names are known); returns its Request."""
    python = PythonHeadParser(max_count, quick=None)
    expected = outcome(python, head)
    got = _PURE_FIND(head, 0, 0, 16384, 65536, max_count)
    if got is None:
        return None
    req, after = got
    assert after == len(head)
    assert expected[0] == "ok", (head, expected)
    assert ("ok", req.method, req.target, req.version, req.headers, req.fields) == expected
    assert req == python.request(head, 0, *layout(head))
    return req


def test_python_pass_takes_the_common_heads() -> None:
    taken = [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET /a?b=c HTTP/1.0\r\nHost: x\r\n\r\n",
        b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n",
        b"OPTIONS /o HTTP/1.1\r\nWeird-NAME-x_y: caf\xe9\r\n\r\n",
        b"PATCH /p HTTP/1.1\r\nA: a b  c\r\nHEAD: 1\r\nB: \t \r\nC: \tv\t \r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"N%d: %d\r\n" % (i, i) for i in range(40)) + b"\r\n",
    ]
    for head in taken:
        assert python_pass(head) is not None, head
    # Left to the full parser: a repeated name, no space after the colon, an
    # unknown method, any odd octet, too many fields.
    for head in [*LEFT, COMMON[3], COMMON[4], taken[4].replace(b"\t", b"\x01")]:
        assert python_pass(head) is None, head
    assert python_pass(taken[2], max_count=1) is None
    assert python_pass(taken[2], max_count=2) is not None


def test_python_pass_takes_the_benchmark_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    request_stream = _import_from("benchmarks", "callgrind_hotpath", monkeypatch).request_stream
    for head in request_stream("varied", 200):
        assert python_pass(head) is not None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=1, max_size=300), cut=st.integers(0, 300))
def test_property_python_pass_mutated_heads(data: bytes, cut: int) -> None:
    base = b"GET /a?b HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"
    head = base[: cut % len(base)] + data + base[cut % len(base) :]
    end = head.find(b"\r\n\r\n")
    if end >= 0:
        python_pass(head[: end + 4])


def test_differential_seed_corpus(quick: Quick, monkeypatch: pytest.MonkeyPatch) -> None:
    request_seeds = _import_from("compat/differential", "corpus", monkeypatch).request_seeds
    taken = 0
    for _name, stream in request_seeds():
        end = stream.find(b"\r\n\r\n")
        if end < 0:
            continue
        head = stream[: end + 4]
        if head.startswith(b"\r\n") or head.find(b"\r\n") > end:
            continue
        taken += check(quick, head) is not None
    assert taken > 100


_TOKEN = st.sampled_from(["Host", "host", "X-A", "a", "Content-Length", "x_y", "ÿ", "A B", ""])
_VALUE = st.text(alphabet=st.sampled_from(list(" \t\x00\x01\x7f\x80\xe9\xff:abc,\r\n")), max_size=8)
_LINE = st.tuples(_TOKEN, st.sampled_from([":", ": ", " :", ":\t", ""]), _VALUE).map(
    lambda t: (t[0] + t[1] + t[2]).encode("latin-1")
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from([b"GET", b"POST", b"PATCH", b"CONNECT", b"get", b"X", b""]),
    target=st.sampled_from([b"/", b"/a?b", b"*", b"http://h/", b"/\x80", b"/ /", b""]),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.9", b"HTTP/2.0", b"http/1.1"]),
    lines=st.lists(_LINE, max_size=6),
    max_count=st.integers(1, 8),
)
def test_property_same_outcome(
    quick: Quick, method: bytes, target: bytes, version: bytes, lines: list[bytes], max_count: int
) -> None:
    head = b" ".join([method, target, version]) + b"".join(b"\r\n" + li for li in lines)
    head += b"\r\n\r\n"
    if head.find(b"\r\n\r\n") != len(head) - 4:
        return  # an empty line inside: not one head
    check(quick, head, max_count)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=80), cut=st.integers(0, 80))
def test_property_mutated_heads(quick: Quick, data: bytes, cut: int) -> None:
    base = b"GET /x HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n"
    head = base[:cut] + data + base[cut:] + b"\r\n"
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return
    check(quick, head[: end + 4])


def test_server_connection_uses_it_in_the_compiled_build() -> None:
    conn = H1Connection("server", parser="python")
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    req = conn.next_event()
    assert isinstance(req, Request)
    assert req.fields == {"Host": ["a"]}
    # The parser connections share carries the module's fast path.
    assert conn._heads._quick is squall._h1._quick.request_head  # type: ignore[attr-defined]


def connection(module: Any | None, limits: H1Limits, bare_lf: bool = False) -> H1Connection:
    """A server connection whose head parser has the C pass (module) or not."""
    conn = H1Connection("server", parser="python", limits=limits, allow_bare_lf=bare_lf)
    heads = PythonHeadParser(limits.max_header_count, quick=None)
    if module is not None:
        heads = PythonHeadParser(limits.max_header_count, quick=module.request_head)
        heads.quick_find = module.find_request_head
    conn._heads = heads  # type: ignore[misc]
    return conn


def events(conn: H1Connection, reads: list[bytes]) -> list[Any]:
    """Everything the connection says for these reads, responding to each request."""
    out: list[Any] = []
    for data in reads:
        conn.receive_data(data)
        while True:
            try:
                ev = conn.next_event()
            except RemoteProtocolError as exc:
                out.append(("error", str(exc), exc.status_hint))
                return out
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                if conn.our_state != "IDLE":
                    break
                conn.send_response(200, "OK", [("Content-Length", "0")], b"")
                if not conn.keep_alive:
                    out.append(("close",))
                    return out
                continue
            if isinstance(ev, Request):
                out.append(("request", ev.method, ev.target, ev.version, ev.headers, ev.fields))
                out.append(("after", conn._pos, conn.keep_alive, conn.expects_continue))  # type: ignore[attr-defined]
            elif isinstance(ev, EndOfMessage):
                out.append(("end",))
            else:
                out.append(ev)
    return out


def same_stream(module: Any, data: bytes, cuts: list[int], limits: H1Limits, lf: bool) -> None:
    bounds = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    reads = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]
    assert events(connection(module, limits, lf), reads) == events(
        connection(None, limits, lf), reads
    )


def test_find_takes_pipelined_heads(finder: Any) -> None:
    module = finder
    limits = H1Limits()
    heads = [b"GET /%d HTTP/1.1\r\nHost: a\r\nX: %d\r\n\r\n" % (i, i) for i in range(5)]
    buf = b"".join(heads)
    pos = 0
    for head in heads:
        got = module.find_request_head(buf, pos, pos, 16384, 65536, 256)
        assert got is not None
        req, after = got
        assert after == pos + len(head)
        assert (
            req.fields
            == PythonHeadParser(256, quick=None)
            .request(head, 0, head.find(b"\r\n"), len(head) - 4)
            .fields
        )
        pos = after
    assert module.find_request_head(buf, pos, pos, 16384, 65536, 256) is None
    same_stream(module, buf, [7, 60, 61, 130], limits, False)


def test_find_leaves_what_the_connection_decides(finder: Any) -> None:
    module = finder
    find = module.find_request_head
    head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    assert find(head, 0, 0, 16384, 65536, 256) is not None
    assert find(b"\r\n" + head, 0, 0, 16384, 65536, 256) is None  # empty line first
    assert find(head[:-1], 0, 0, 16384, 65536, 256) is None  # incomplete
    assert find(head, 0, 0, 13, 65536, 256) is None  # start line too long
    assert find(head, 0, 0, 16384, len(head) - 1, 256) is None  # head too large
    assert find(head, 0, 0, 16384, 65536, 0) is None  # too many fields
    assert find(head, len(head), 0, 16384, 65536, 256) is None
    assert find(bytearray(head), 0, 0, 16384, 65536, 256) is not None
    assert find(memoryview(head), 0, 0, 16384, 65536, 256) is None
    with pytest.raises(TypeError):
        find(head, 0, 0, 16384, 65536)
    for limits in (
        H1Limits(max_start_line=13),
        H1Limits(max_header_size=20),
        H1Limits(max_header_count=0),
    ):
        same_stream(module, head + head, [], limits, False)
    same_stream(module, b"\r\n" + head, [], H1Limits(), False)


def test_find_is_off_in_bare_lf_mode(finder: Any) -> None:
    module = finder
    data = b"GET /a HTTP/1.1\nHost: a\n\nGET /b HTTP/1.1\r\nHost: b\r\n\r\n"
    same_stream(module, data, [3, 40], H1Limits(), True)


_SMALL = H1Limits(max_start_line=40, max_header_size=120, max_header_count=4)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    heads=st.lists(
        st.tuples(
            st.sampled_from([b"GET", b"POST", b"CONNECT", b"BREW", b""]),
            st.sampled_from([b"/", b"/a?b", b"*", b"http://h/", b"/\x80"]),
            st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0"]),
            st.lists(_LINE, max_size=5),
            st.sampled_from([b"", b"\r\n", b"\n", b"abc"]),
        ),
        min_size=1,
        max_size=3,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=4),
    small=st.booleans(),
    lf=st.booleans(),
)
def test_property_connection_same_with_and_without(
    finder: Any,
    heads: list[tuple[bytes, bytes, bytes, list[bytes], bytes]],
    cuts: list[int],
    small: bool,
    lf: bool,
) -> None:
    data = b""
    for method, target, version, lines, before in heads:
        data += before + b" ".join([method, target, version])
        data += b"".join(b"\r\n" + li for li in lines) + b"\r\n\r\n"
    same_stream(finder, data, cuts, _SMALL if small else H1Limits(), lf)


def test_long_values_with_one_odd_octet_anywhere(quick: Quick) -> None:
    # The C pass reads values eight octets at a time: an odd octet at each
    # offset of a chunk, and at the end of the block, must still be seen.
    for odd in (0x00, 0x09, 0x0A, 0x0D, 0x1F, 0x20, 0x7E, 0x7F, 0x80, 0xA0, 0xFF):
        for offset in range(0, 20):
            value = b"a" * offset + bytes([odd]) + b"b" * (19 - offset)
            for head in (
                b"GET / HTTP/1.1\r\nX: " + value + b"\r\nY: 1\r\n\r\n",
                b"GET / HTTP/1.1\r\nX: " + value + b"\r\n\r\n",
            ):
                got = check(quick, head)
                assert (got is not None) == (odd in (0x09, 0x20, 0x7E, 0x80, 0xA0, 0xFF)), head
