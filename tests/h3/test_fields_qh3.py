"""squall._h3fields on qh3: qh3's own check of a received field section
looks for uppercase names and the pseudo-header rules only; Squall's, put
in its place, refuses what aioquic's refuses (every malformed message of
RFC 9114 section 4.2), accepts nothing qh3's own refuses, and gives qh3's
callers the same answers (a response's status)."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType
from typing import Any

import pytest
from hypothesis import example, given, settings

qh3_h3 = pytest.importorskip("qh3.h3.connection", reason="qh3 is not installed")

from squall import _h3fields  # noqa: E402
from tests.h3.test_fields import CHECKS, SHIPPED, _answer, sections  # noqa: E402


def _qh3s_own() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qh3.h3._connection_as_shipped", qh3_h3.__file__)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


OWN = _qh3s_own()
CHECKED = _qh3s_own()
COMPARED = _h3fields.qh3_digest(OWN) in _h3fields.KNOWN_QH3_SOURCES
INSTALLED = _h3fields.install_qh3(CHECKED)
compared_only = pytest.mark.skipif(
    not COMPARED,
    reason=f"this qh3's checks are not the ones compared (digest "
    f"{_h3fields.qh3_digest(OWN)}): compare them, then add it to KNOWN_QH3_SOURCES",
)


def test_installed_for_the_qh3_compared_only() -> None:
    assert INSTALLED == COMPARED
    assert (CHECKED.validate_headers.__module__ == _h3fields.__name__) == COMPARED


@compared_only
def test_the_stack_module_uses_it_on_qh3() -> None:
    from squall import _quicstack

    if _quicstack.STACK == "qh3":
        assert qh3_h3.validate_headers.__module__ == _h3fields.__name__
    # Installing again changes nothing.
    installed = CHECKED.validate_headers
    assert _h3fields.install_qh3(CHECKED)
    assert CHECKED.validate_headers is installed


def _qh3_answer(module: ModuleType, check: str, headers: list[tuple[bytes, bytes]]) -> Any:
    try:
        return (None, getattr(module, check)(headers))
    except Exception as exc:  # the answer compared is the error itself
        return (type(exc).__name__, str(exc))


@compared_only
@pytest.mark.parametrize("check", CHECKS)
@settings(max_examples=400, deadline=None)
@given(headers=sections)
@example(headers=[(b":status", b"200"), (b"x", b"a ")])
@example(headers=[(b":status", b"abc")])
# Found by generated runs: qh3 took both.
@example(headers=[(b":status", b"101")])
@example(headers=[(b":status", b"2000")])
@example(headers=[(b":method", b"GET"), (b":authority", b"a"), (b"te", b"gzip")])
@example(headers=[(b":method", b"GET"), (b":authority", b"a"), (b"upgrade", b"websocket")])
@example(headers=[(b":method", b"GET"), (b":authority", b"a"), (b"x y", b"1")])
def test_aioquics_refusals_and_qh3s_answers(check: str, headers: list[tuple[bytes, bytes]]) -> None:
    kind, message, _ = _answer(SHIPPED, check, headers)
    ours = _qh3_answer(CHECKED, check, headers)
    qh3s = _qh3_answer(OWN, check, headers)
    if kind is not None and "b':status' has invalid value" in message:
        # aioquic's check of a status that is no number: qh3's caller's.
        assert ours[0] == kind
    elif kind is not None:
        # What aioquic refuses is refused, for the same first fault.
        assert ours == (kind, message)
    elif ours[0] is not None:
        # Past aioquic's rules, only qh3's own: a status that is no number.
        assert ours == qh3s and "Invalid :status value" in ours[1]
    if ours[0] is None:
        # Nothing qh3's own check refuses is accepted, and its callers get
        # the same answer (a response's status).
        assert qh3s == ours


@compared_only
@pytest.mark.parametrize(
    "fault",
    [(b"x y", b"1"), (b"x:y", b"1"), (b"x", b"a "), (b"x", b"\ta"), (b"connection", b"close")],
)
def test_what_qh3s_own_check_let_through_is_refused(fault: tuple[bytes, bytes]) -> None:
    headers = [(b":method", b"GET"), (b":authority", b"a"), (b":path", b"/"), fault]
    assert _qh3_answer(OWN, "validate_request_headers", headers) == (None, None)
    kind, message = _qh3_answer(CHECKED, "validate_request_headers", headers)
    assert kind == "MessageError" and message


def test_another_qh3s_check_is_left_in_place() -> None:
    other = _qh3s_own()

    def validate_trailers(headers: Any) -> None:
        other.validate_headers(headers, frozenset(), frozenset())

    other.validate_trailers = validate_trailers
    shipped = other.validate_headers
    assert _h3fields.qh3_digest(other) not in _h3fields.KNOWN_QH3_SOURCES
    assert _h3fields.install_qh3(other) is False
    assert other.validate_headers is shipped
    assert _h3fields.qh3_digest(ModuleType("empty")) is None
    assert _h3fields.install_qh3(ModuleType("empty")) is False
