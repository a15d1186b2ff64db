"""The TLS the differential's servers use: Squall's test certificate
(squall/_certs, CN=localhost), on Tornado's side and on Squall's alike.

``DIFF_TLS=1`` in the environment asks the client peers (client_peer.py,
ws_peer.py) for their scripted server over TLS.
"""

from __future__ import annotations

import importlib.util
import os
import ssl

# Where the squall under test is (a copy of the tree for the compiled build).
_SQUALL = importlib.util.find_spec("squall")
assert _SQUALL is not None and _SQUALL.submodule_search_locations
CERTS = os.path.join(list(_SQUALL.submodule_search_locations)[0], "_certs")
ON = os.environ.get("DIFF_TLS") == "1"


def server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.path.join(CERTS, "test.crt"), os.path.join(CERTS, "test.key"))
    return context


def client_context() -> ssl.SSLContext:
    """A client's, checking nothing (the certificate is the test's own)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
