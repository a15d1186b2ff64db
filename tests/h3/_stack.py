"""Which QUIC stack the HTTP/3 tests run on (``squall._quicstack.STACK``),
and a mark for the checks one stack cannot keep (each says why)."""

from __future__ import annotations

import pytest

try:
    from squall._quicstack import STACK
except ImportError:  # neither stack: the HTTP/3 tests skip themselves
    STACK = ""

#: Why a qh3 2.1 server completes no handshake with Chromium (the packets
#: and qh3's code paths: squall/_quicstack.py's docstring).
NO_ZERO_LENGTH_CID = (
    "qh3 2.1's server cannot serve a client whose connection ID is zero-length "
    "(Chromium's): it refuses the client's initial_source_connection_id, and "
    "would address its packets to the client's first destination ID"
)


def only_on(stack: str, reason: str) -> pytest.MarkDecorator:
    """Run the test on ``stack`` only; ``reason`` says what the other lacks."""
    return pytest.mark.skipif(STACK != stack, reason=f"{stack} only: {reason}")
