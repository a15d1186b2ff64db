"""Headless Chromium loads a Squall page over HTTP/3 (QUIC forced on the origin).

The server records the protocol each request came over; Chromium prints
the page's DOM, which names it too. Skipped without Chromium or openssl.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.testing import gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._paths import CERTS  # noqa: E402

from ._stack import only_on  # noqa: E402
from .test_server import H3TestCase  # noqa: E402

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)


def spki_hash(pem_path: str) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's
    --ignore-certificate-errors-spki-list takes."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(pem_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class Page(RequestHandler):
    def get(self) -> None:
        self.application.settings["versions"].append(self.request.version)
        self.write(f"<!doctype html><p id=v>served over {self.request.version}</p>")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
class ChromiumH3Test(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/", Page)], versions=[])

    @only_on("aioquic", "qh3 2.1's server does not complete Chromium 156's handshake")
    @gen_test(timeout=30)
    async def test_page_over_http3(self) -> None:
        await self.started()
        port = self.get_http_port()
        spki = spki_hash(str(CERTS / "test.crt"))
        with tempfile.TemporaryDirectory(prefix="squall-chromium-") as profile:
            proc = await asyncio.create_subprocess_exec(
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-quic",
                f"--origin-to-force-quic-on=127.0.0.1:{port}",
                f"--ignore-certificate-errors-spki-list={spki}",
                f"--user-data-dir={profile}",
                "--dump-dom",
                f"https://127.0.0.1:{port}/",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                out, _ = await asyncio.wait_for(proc.communicate(), 25)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert b"served over HTTP/3" in out
        assert self._app.settings["versions"][0] == "HTTP/3"
