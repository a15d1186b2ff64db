"""Which QUIC stack the HTTP/3 tests run on (``squall._quicstack.STACK``),
and a mark for the checks one stack cannot keep (each says why)."""

from __future__ import annotations

import pytest

try:
    from squall._quicstack import STACK
except ImportError:  # neither stack: the HTTP/3 tests skip themselves
    STACK = ""

# Why a test with tight timeouts cannot run on qh3 (see squall._quicstack).
QH3_STALL = "qh3 2.1 stalls about 0.3 s in each handshake with an aioquic client"


def only_on(stack: str, reason: str) -> pytest.MarkDecorator:
    """Run the test on ``stack`` only; ``reason`` says what the other lacks."""
    return pytest.mark.skipif(STACK != stack, reason=f"{stack} only: {reason}")
