"""``squall run --backlog N``: the kernel's backlog is N once the workers serve."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.server.test_backlog import SS, listen_backlog

from ._proc import Squall

pytestmark = [
    pytest.mark.skipif(SS is None, reason="ss is not installed (apt-get install iproute2)"),
    pytest.mark.skipif(not os.uname().sysname == "Linux", reason="ss reads Linux's sock_diag"),
]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_backlog_option_is_the_kernels_backlog(workers: str, tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--bind",
        f"unix:{path}",
        "--backlog",
        "321",
        "--workers",
        workers,
    ) as squall:
        _, port = squall.address()
        if workers == "1":
            squall.expect("serving")
        else:
            for _ in range(2):
                squall.expect(r"Worker \d+ ready")
        assert listen_backlog(port=port) == 321
        assert listen_backlog(path=str(path)) == 321
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
