"""squall._ws's public names (its layering rules are in tests/test_layers.py)."""

from __future__ import annotations

import squall._ws


def test_public_names() -> None:
    for name in squall._ws.__all__:
        assert hasattr(squall._ws, name), name
