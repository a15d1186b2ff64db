"""Which QUIC stack HTTP/3 runs on: aioquic when it is installed, else qh3;
``SQUALL_QUIC`` picks one. Each case imports ``squall._quicstack`` in a
fresh interpreter, with a stack made unimportable where the case says so."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from typing import Optional

import pytest

pytest.importorskip("qh3", reason="qh3 is not installed")
pytest.importorskip("aioquic", reason="aioquic is not installed")


def _chosen(
    forced: Optional[str], hidden: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        f"for name in {hidden!r}:\n"
        "    sys.modules[name] = None  # as if not installed\n"
        "import squall._quicstack as q\n"
        "print(q.STACK)\n"
        "print(q.describe())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "SQUALL_QUIC"}
    if forced is not None:
        env["SQUALL_QUIC"] = forced
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )


def test_aioquic_is_the_default_when_both_are_installed() -> None:
    """qh3 2.1.0's server completes no handshake with Chromium (its
    zero-length connection ID: squall/_quicstack.py)."""
    done = _chosen(None)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["aioquic", f"aioquic {version('aioquic')}"]


def test_qh3_when_aioquic_is_not_installed() -> None:
    done = _chosen(None, hidden=("aioquic",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["qh3", f"qh3 {version('qh3')}"]


@pytest.mark.parametrize("stack", ["aioquic", "qh3"])
def test_squall_quic_picks_either(stack: str) -> None:
    done = _chosen(stack)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == stack


def test_a_forced_stack_that_is_missing_is_named_not_replaced() -> None:
    done = _chosen("qh3", hidden=("qh3",))
    assert done.returncode != 0
    assert "HTTP/3 needs a QUIC stack (qh3): pip install 'squall[http3-qh3]'" in done.stderr


def test_an_unknown_stack_is_refused() -> None:
    done = _chosen("quiche")
    assert done.returncode != 0
    assert "SQUALL_QUIC='quiche': it is 'qh3' or 'aioquic'" in done.stderr
