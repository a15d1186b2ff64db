"""The browser side of the WebTransport demo, shared with its tests.

`page` is an HTML page that opens a WebTransport session, echoes one
datagram and one bidirectional stream through it, shows what came back,
closes the session with code 5 and reason "done", and posts the results
(JSON) to ``/result`` on the server that served it. It is served over
plain HTTP from 127.0.0.1 (a secure context); the session goes to an
HTTP/3 server whose certificate `short_lived_certificate` makes: ECDSA
P-256, valid 10 days, trusted by its hash (``serverCertificateHashes``),
so the browser needs no flag about certificates or QUIC.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
import os

__all__ = ["page", "short_lived_certificate"]

_PAGE = """<!doctype html><meta charset=utf-8><title>WebTransport echo</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 24px 32px; color: #1b1f24; }
h1 { font-size: 22px; margin: 0 0 4px; }
.sub { color: #57606a; margin: 0 0 18px; }
table { border-collapse: collapse; min-width: 640px; }
td, th { border: 1px solid #d0d7de; padding: 6px 12px; text-align: left; }
th { background: #f6f8fa; }
.ok { color: #1a7f37; font-weight: 600; }
.bad { color: #cf222e; font-weight: 600; }
pre { background: #0d1117; color: #e6edf3; padding: 10px 14px; border-radius: 6px;
      white-space: pre-wrap; font-size: 13px; }
</style>
<h1>Chromium &rarr; Squall over WebTransport (HTTP/3)</h1>
<p class=sub>session <code id=url></code>, certificate trusted by its SHA-256 hash</p>
<table>
<tr><th>what</th><th>sent</th><th>came back</th><th></th></tr>
<tr><td>datagram</td><td><code>ping</code></td><td><code id=datagram>&hellip;</code></td>
<td id=datagram-ok></td></tr>
<tr><td>bidirectional stream</td><td><code>hello</code></td><td><code id=stream>&hellip;</code></td>
<td id=stream-ok></td></tr>
<tr><td>session close</td><td><code>5 "done"</code></td><td colspan=2 id=closed>&hellip;</td></tr>
</table>
<script>
const URL_ = %(url)s, HASH = %(hash)s;
document.getElementById("url").textContent = URL_;
function show(id, value, expected) {
  document.getElementById(id).textContent = value;
  const ok = document.getElementById(id + "-ok");
  ok.textContent = value === expected ? "\\u2713 echoed" : "\\u2717";
  ok.className = value === expected ? "ok" : "bad";
}
(async () => {
  const out = {};
  try {
    const hash = Uint8Array.from(atob(HASH), c => c.charCodeAt(0));
    const wt = new WebTransport(URL_,
      {serverCertificateHashes: [{algorithm: "sha-256", value: hash}]});
    await wt.ready;
    const reader = wt.datagrams.readable.getReader();
    const writer = wt.datagrams.writable.getWriter();
    const got = reader.read();
    for (let i = 0; i < 20; i++) {  // datagrams may be lost: resend until one comes back
      await writer.write(new TextEncoder().encode("ping"));
      const r = await Promise.race([got, new Promise(ok => setTimeout(() => ok(null), 200))]);
      if (r) { out.datagram = new TextDecoder().decode(r.value); break; }
    }
    show("datagram", out.datagram, "echo ping");
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
    show("stream", text, "echo hello");
    wt.close({closeCode: 5, reason: "done"});
    await wt.closed;
    document.getElementById("closed").textContent = "closed by the page";
  } catch (e) {
    out.error = String(e);
    document.getElementById("closed").textContent = out.error;
  }
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
})();
</script>
"""


def page(url: str, digest: str) -> str:
    """The page, for a session to ``url`` whose certificate's SHA-256 is ``digest`` (base64)."""
    return _PAGE % {"url": json.dumps(url), "hash": json.dumps(digest)}


def short_lived_certificate(directory: str) -> tuple[str, str, str]:
    """(certfile, keyfile, base64 SHA-256 of the DER) in ``directory``: ECDSA
    P-256 for 127.0.0.1 and localhost, valid 10 days (what
    ``serverCertificateHashes`` accepts, at most 14)."""
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
