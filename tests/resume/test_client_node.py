"""The browser client's own tests (squall/resume/client/test/, under node's
test runner: ``node --test``), run from the suite so that ``make test`` runs
them. Node is all they need (no npm package). Skipped without node, or
where the client's tests are not beside the installed package."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from squall.resume import CLIENT_MODULE

NODE = shutil.which("node")
CLIENT = os.path.dirname(CLIENT_MODULE)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
@pytest.mark.skipif(
    not os.path.isdir(os.path.join(CLIENT, "test")),
    reason="the client's tests are in the source tree only",
)
def test_the_client_passes_its_node_tests() -> None:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "test/"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout
