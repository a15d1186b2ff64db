"""Headless Chromium opens a WebTransport session to Squall: a datagram and a stream echo.

The page comes over plain HTTP from 127.0.0.1 (a secure context); the
session goes to an HTTP/3 server whose certificate is short-lived ECDSA
P-256, trusted by its hash (``serverCertificateHashes``): no browser flag
about certificates or QUIC. The page posts what it got back to the page
server, which the test waits on. Skipped without Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import ipaddress
import json
import os
import shutil
import tempfile
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="the http3 extra (aioquic) is not installed")

from squall.httpserver import HTTPServer  # noqa: E402
from squall.netutil import bind_sockets  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from squall.webtransport import WebTransportHandler, WebTransportStream  # noqa: E402
from tests.h3._stack import only_on  # noqa: E402

CHROMIUM = (
    os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
)

PAGE = """<!doctype html><title>WebTransport echo</title><pre id=out>running</pre><script>
(async () => {
  const out = {};
  try {
    const hash = Uint8Array.from(atob("%(hash)s"), c => c.charCodeAt(0));
    const wt = new WebTransport("%(url)s",
      {serverCertificateHashes: [{algorithm: "sha-256", value: hash}]});
    await wt.ready;
    const reader = wt.datagrams.readable.getReader();
    const writer = wt.datagrams.writable.getWriter();
    const got = reader.read();
    for (let i = 0; i < 20; i++) {
      await writer.write(new TextEncoder().encode("ping"));
      const r = await Promise.race([got, new Promise(ok => setTimeout(() => ok(null), 200))]);
      if (r) { out.datagram = new TextDecoder().decode(r.value); break; }
    }
    const s = await wt.createBidirectionalStream();
    const sw = s.writable.getWriter();
    await sw.write(new TextEncoder().encode("hello"));
    await sw.close();
    let text = "";
    const sr = s.readable.getReader();
    for (;;) {
      const {value, done} = await sr.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    out.stream = text;
    wt.close({closeCode: 5, reason: "done"});
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById("out").textContent = JSON.stringify(out);
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script>"""


def short_lived_certificate(directory: str) -> tuple[str, str, str]:
    """(certfile, keyfile, base64 SHA-256 of the DER): ECDSA P-256, valid 10 days."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=10))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = os.path.join(directory, "wt.crt"), os.path.join(directory, "wt.key")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    der = cert.public_bytes(serialization.Encoding.DER)
    return certfile, keyfile, base64.b64encode(hashlib.sha256(der).digest()).decode()


class Echo(WebTransportHandler):
    def on_datagram(self, data: bytes) -> None:
        self.send_datagram(b"echo " + data)

    async def on_stream(self, stream: WebTransportStream) -> None:
        data = await stream.read_all()
        stream.write(b"echo " + data, end=True)

    def on_session_close(self, code: int, reason: str) -> None:
        self.application.settings["closed"].append((code, reason))
        self.application.settings["closing"].set()


class Page(RequestHandler):
    def get(self) -> None:
        self.write(PAGE % self.application.settings["page"])

    def post(self) -> None:
        future = self.application.settings["result"]
        if not future.done():
            future.set_result(json.loads(self.request.body))


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")
@only_on("aioquic", "qh3 2.1's server does not complete Chromium 156's handshake")
def test_chromium_datagram_and_stream_echo() -> None:
    async def main() -> tuple[Any, list[tuple[int, str]]]:
        loop = asyncio.get_running_loop()
        result: asyncio.Future[Any] = loop.create_future()
        closed: list[tuple[int, str]] = []
        with tempfile.TemporaryDirectory(prefix="squall-wt-") as tmp:
            certfile, keyfile, digest = short_lived_certificate(tmp)
            closing = asyncio.Event()
            wt_app = Application([("/echo", Echo)], closed=closed, closing=closing)
            wt_server = HTTPServer(
                wt_app, ssl_options={"certfile": certfile, "keyfile": keyfile}, http3=True
            )
            wt_socks = bind_sockets(0, "127.0.0.1")
            wt_server.add_sockets(wt_socks)
            await asyncio.gather(*wt_server._h3_tasks)
            wt_port = wt_socks[0].getsockname()[1]
            page = {"hash": digest, "url": f"https://127.0.0.1:{wt_port}/echo"}
            page_server = HTTPServer(
                Application([("/", Page), ("/result", Page)], page=page, result=result)
            )
            page_socks = bind_sockets(0, "127.0.0.1")
            page_server.add_sockets(page_socks)
            page_port = page_socks[0].getsockname()[1]
            proc = await asyncio.create_subprocess_exec(
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                f"--user-data-dir={tmp}/profile",
                "--remote-debugging-port=0",
                f"http://127.0.0.1:{page_port}/",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            try:
                got = await asyncio.wait_for(result, 40)
                await asyncio.wait_for(closing.wait(), 10)
            finally:
                proc.kill()
                await proc.wait()
                page_server.stop()
                await wt_server.drain(2)
        return got, closed

    got, closed = asyncio.run(main())
    assert got == {"datagram": "echo ping", "stream": "echo hello"}, got
    assert closed == [(5, "done")]
