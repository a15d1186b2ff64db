"""``squall run --certfile/--keyfile``: SIGHUP reads the certificate again.

One process (no supervisor): the running server swaps its certificate for
new connections (`HTTPServer.reload_ssl`); a certificate that does not load
is logged and the old one serves on.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
from pathlib import Path

import pytest

from tests._wait import HANG_GUARD
from tests.server.test_reload_ssl import der, make_cert

from ._proc import Squall

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def presented(address: tuple[str, int]) -> bytes:
    """The certificate a new TLS handshake with ``address`` presents."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(address, timeout=HANG_GUARD) as raw:
        with ctx.wrap_socket(raw) as tls:
            cert = tls.getpeercert(binary_form=True)
    assert cert is not None
    return cert


def test_sighup_reloads_the_certificate(tmp_path: Path) -> None:
    first = make_cert(tmp_path, "first")
    second = make_cert(tmp_path, "second")
    live_cert, live_key = tmp_path / "live.crt", tmp_path / "live.key"
    shutil.copy(first[0], live_cert)
    shutil.copy(first[1], live_key)
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--certfile",
        str(live_cert),
        "--keyfile",
        str(live_key),
    ) as squall:
        address = squall.address()
        squall.expect("serving")
        assert presented(address) == der(first[0])
        # A key that does not go with the certificate: refused, logged.
        shutil.copy(second[0], live_cert)
        squall.signal(signal.SIGHUP)
        squall.expect("the certificate was not reloaded")
        assert presented(address) == der(first[0])
        shutil.copy(second[1], live_key)
        squall.signal(signal.SIGHUP)
        squall.expect("certificate reloaded from")
        assert presented(address) == der(second[0])
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
