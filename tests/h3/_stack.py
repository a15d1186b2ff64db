"""Which QUIC stack the HTTP/3 tests run on (``squall._quicstack.STACK``),
and a mark for the checks one stack cannot keep (each says why)."""

from __future__ import annotations

import pytest

try:
    from squall._quicstack import STACK
except ImportError:  # neither stack: the HTTP/3 tests skip themselves
    STACK = ""


def only_on(stack: str, reason: str) -> pytest.MarkDecorator:
    """Run the test on ``stack`` only; ``reason`` says what the other lacks."""
    return pytest.mark.skipif(STACK != stack, reason=f"{stack} only: {reason}")
