"""Headless Chromium loads a Squall page over HTTP/3 (QUIC forced on the origin).

The server records the protocol each request came over; Chromium prints
the page's DOM, which names it too. Skipped without Chromium or openssl.

What Chromium's handshake needs of a server first (its client's source
connection ID is zero-length, RFC 9000 section 5.1) is checked without
Chromium too, with an aioquic client that does the same.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import tempfile
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.asyncio.client import connect  # noqa: E402

from squall.testing import gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._paths import CERTS  # noqa: E402
from tests._wait import HANG_GUARD  # noqa: E402

from ._client import H3Client, client_configuration  # noqa: E402
from ._stack import NO_ZERO_LENGTH_CID, only_on  # noqa: E402
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


class _ZeroLengthCIDClient(H3Client):
    """A client as Chromium's: its own connection ID is zero-length, the
    first one it sends to is 8 random bytes (RFC 9000 section 7.2: at least
    8). aioquic's client, given ``connection_id_length=0``, would make that
    one zero-length too, and would go on to issue more (empty) IDs in
    NEW_CONNECTION_ID frames, which RFC 9000 section 5.1.1 rules out: both
    are set right on its connection before it starts."""

    def __init__(self, quic: Any, *args: Any, **kwargs: Any) -> None:
        first = os.urandom(8)
        quic._peer_cid.cid = first
        quic._original_destination_connection_id = first
        setattr(quic, "_replenish_connection_ids", lambda: None)  # noqa: B010
        super().__init__(quic, *args, **kwargs)


class ZeroLengthClientCIDTest(H3TestCase):
    """A client whose source connection ID is zero-length, as Chromium's
    (RFC 9000 section 5.1: it needs none to route what it receives)."""

    def get_app(self) -> Application:
        return Application([("/", Page)], versions=[])

    @only_on("aioquic", NO_ZERO_LENGTH_CID)
    @gen_test(timeout=30)
    async def test_a_client_without_connection_id_is_served(self) -> None:
        await self.started()
        config = client_configuration()
        config.connection_id_length = 0
        async with connect(
            "127.0.0.1",
            self.get_http_port(),
            configuration=config,
            create_protocol=_ZeroLengthCIDClient,
        ) as client:
            assert isinstance(client, _ZeroLengthCIDClient)
            quic = client._quic
            assert quic.host_cid == b""  # what the server is to address
            r = await client.fetch("/")
            assert quic._peer_cid.cid != quic._original_destination_connection_id
        assert (r.status, r.body) == (200, b"<!doctype html><p id=v>served over HTTP/3</p>")
        assert self._app.settings["versions"] == ["HTTP/3"]


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
class ChromiumH3Test(H3TestCase):
    def get_app(self) -> Application:
        return Application([("/", Page)], versions=[])

    @only_on("aioquic", NO_ZERO_LENGTH_CID)
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
                out, _ = await asyncio.wait_for(proc.communicate(), HANG_GUARD)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
        assert b"served over HTTP/3" in out
        assert self._app.settings["versions"][0] == "HTTP/3"
