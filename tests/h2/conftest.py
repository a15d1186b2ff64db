"""The HTTP/2 tests wait on events; their time limits only end hangs."""

from __future__ import annotations

import pytest

from .._wait import hang_guard_for_gen_test


@pytest.fixture(autouse=True)
def _hang_guard(monkeypatch: pytest.MonkeyPatch) -> None:
    hang_guard_for_gen_test(monkeypatch)
