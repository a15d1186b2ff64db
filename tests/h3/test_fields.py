"""squall._h3fields: aioquic's check of a received field section, done by a
few scans of its names and values joined, gives every section aioquic's
own answer.

Compared with a copy of aioquic's module loaded apart (its functions as
aioquic ships them), through the four checks aioquic's connection calls:
the same error (type name and message) or none, and the same
``expected_content_length`` on the stream."""

from __future__ import annotations

import importlib.util
import inspect
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

aioquic_h3 = pytest.importorskip("aioquic.h3.connection", reason="aioquic is not installed")

from squall import _h3fields  # noqa: E402


def _aioquics_own() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "aioquic.h3._connection_as_shipped", aioquic_h3.__file__
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.validate_headers.__module__ != _h3fields.__name__
    return module


SHIPPED = _aioquics_own()
# The module aioquic's connections use, with squall's check in place (as
# squall._quicstack leaves it; done here too for a run of this file alone).
_h3fields.install(aioquic_h3)
COMPARED = _h3fields.shipped_digest(SHIPPED) in _h3fields.KNOWN_SOURCES
compared_only = pytest.mark.skipif(
    not COMPARED,
    reason=f"this aioquic's checks are not the ones compared (digest "
    f"{_h3fields.shipped_digest(SHIPPED)}): compare them, then add it to KNOWN_SOURCES",
)

CHECKS = [
    "validate_request_headers",
    "validate_response_headers",
    "validate_trailers",
    "validate_push_promise_headers",
]

# Bytes at every edge the checks draw: controls, the whitespace pair, the
# colon, the uppercase range's ends and neighbours, DEL, a high byte.
EDGES = b"\x00\t\n\r \x1f!9:;@AZ[`az{~\x7f\x80\xff-0_+"
NAMES = [
    b":method",
    b":path",
    b":authority",
    b":scheme",
    b":protocol",
    b":status",
    b":other",
    b"content-length",
    b"te",
    b"connection",
    b"transfer-encoding",
    b"host",
    b"user-agent",
    b"",
]
VALUES = [b"GET", b"/", b"https", b"http", b"200", b"101", b"2000", b"trailers", b"TRAILERS"]
VALUES += [b"-1", b"+5", b"1_000", b" 7", b"7 ", b"\t", b"", b"example.com", b"9" * 5000]

name = st.one_of(
    st.sampled_from(NAMES),
    st.binary(max_size=6),
    st.lists(st.sampled_from(EDGES), max_size=5).map(bytes),
)
value = st.one_of(
    st.sampled_from(VALUES),
    st.binary(max_size=6),
    st.lists(st.sampled_from(EDGES), max_size=5).map(bytes),
)
sections = st.lists(st.tuples(name, value), max_size=7)


def _answer(module: ModuleType, check: str, headers: list[tuple[bytes, bytes]]) -> Any:
    stream = SimpleNamespace(expected_content_length=None)
    args: tuple[Any, ...] = (headers,)
    if "stream" in inspect.signature(getattr(module, check)).parameters:
        args = (headers, stream)
    try:
        getattr(module, check)(*args)
    except Exception as exc:  # the answer compared is the error itself
        return (type(exc).__name__, str(exc), stream.expected_content_length)
    return (None, None, stream.expected_content_length)


def test_squalls_check_is_in_place_for_the_aioquic_compared_only() -> None:
    installed = aioquic_h3.validate_headers.__module__ == _h3fields.__name__
    assert installed == COMPARED


@compared_only
def test_aioquics_module_uses_squalls_check() -> None:
    assert aioquic_h3.validate_headers.__module__ == _h3fields.__name__
    # Installing again changes nothing.
    installed = aioquic_h3.validate_headers
    assert _h3fields.install(aioquic_h3)
    assert aioquic_h3.validate_headers is installed


@compared_only
@pytest.mark.parametrize("check", CHECKS)
@settings(max_examples=600, deadline=None)
@given(headers=sections)
@example(headers=[])
@example(headers=[(b":method", b"GET"), (b":authority", b"a"), (b":scheme", b"https")])
@example(headers=[(b":method", b"GET"), (b":authority", b"a"), (b"te", b"Trailers")])
@example(headers=[(b":status", b"200"), (b"content-length", b"12"), (b"te", b"trailers")])
@example(headers=[(b"a\nb", b"x"), (b"c", b"y")])
@example(headers=[(b"a", b"x\ny"), (b"c", b"y")])
@example(headers=[(b"a:b", b"x"), (b"Ab", b"y")])
@example(headers=[(b"Ab:", b"x")])
@example(headers=[(b":a:b", b"x")])
@example(headers=[(b"x", b" "), (b"y", b"\x00")])
@example(headers=[(b"content-length", b"9" * 5000)])
def test_every_section_gets_aioquics_answer(check: str, headers: list[tuple[bytes, bytes]]) -> None:
    assert _answer(aioquic_h3, check, headers) == _answer(SHIPPED, check, headers)


def _browser_request() -> list[tuple[bytes, bytes]]:
    return [
        (b":method", b"GET"),
        (b":authority", b"localhost:8443"),
        (b":scheme", b"https"),
        (b":path", b"/api/contents/nb.ipynb?content=1"),
        (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36"),
        (b"accept", b"application/json, text/plain, */*"),
        (b"cookie", b"_xsrf=2|abcdef12|0123456789abcdef|1732912345"),
        (b"priority", b"u=1, i"),
    ]


@compared_only
@pytest.mark.parametrize(
    "fault, error",
    [
        ((b"X-Upper", b"1"), "contains invalid characters"),
        ((b"x-colon:", b"1"), "contains a non-initial colon"),
        ((b"x-nul", b"a\x00b"), "value has forbidden characters"),
        ((b"x-lf", b"a\nb"), "value has forbidden characters"),
        ((b"x-space", b" a"), "value starts with whitespace"),
        ((b"x-tab", b"a\t"), "value ends with whitespace"),
        ((b"connection", b"close"), "is connection-specific"),
        ((b"content-length", b"-3"), "content-length is not a non-negative integer"),
    ],
)
def test_a_browsers_request_with_one_fault_is_refused_for_it(
    fault: tuple[bytes, bytes], error: str
) -> None:
    headers = _browser_request()
    assert _answer(aioquic_h3, "validate_request_headers", headers) == (None, None, None)
    headers.insert(5, fault)
    kind, message, _ = _answer(aioquic_h3, "validate_request_headers", headers)
    assert kind == "MessageError" and message is not None and error in message
    assert _answer(SHIPPED, "validate_request_headers", headers) == (kind, message, None)


@compared_only
def test_content_length_reaches_the_stream() -> None:
    headers = [*_browser_request(), (b"content-length", b"42")]
    assert _answer(aioquic_h3, "validate_request_headers", headers) == (None, None, 42)


def test_checks_of_another_source_are_left_in_place() -> None:
    # As a later aioquic's might be: the same names and arguments, another body.
    other = _aioquics_own()
    assert _h3fields.shipped_digest(other) in _h3fields.KNOWN_SOURCES or not COMPARED

    def validate_header_value(key: bytes, value: bytes) -> None:
        if b"\x00" in value:
            raise other.MessageError("another rule")

    other.validate_header_value = validate_header_value
    shipped = other.validate_headers
    assert _h3fields.shipped_digest(other) not in _h3fields.KNOWN_SOURCES
    assert _h3fields.install(other) is False
    assert other.validate_headers is shipped
    # Nor a module without those checks (their source unreadable or gone).
    assert _h3fields.shipped_digest(ModuleType("empty")) is None
    assert _h3fields.install(ModuleType("empty")) is False
