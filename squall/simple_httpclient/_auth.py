"""HTTP authentication headers: Basic (RFC 7617) and Digest (RFC 7616)."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from typing import Optional

from squall.httputil import encode_username_password

__all__ = ["basic_authorization", "digest_authorization", "parse_digest_challenge"]

_PARAM_RE = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*,?')


def basic_authorization(username: str, password: str) -> str:
    """The ``Authorization`` value for Basic auth (UTF-8, NFC, RFC 7617 §2.1)."""
    import unicodedata

    user = unicodedata.normalize("NFC", username)
    secret = unicodedata.normalize("NFC", password)
    token = base64.b64encode(encode_username_password(user, secret))
    return "Basic " + token.decode("ascii")


def parse_digest_challenge(header: str) -> Optional[dict[str, str]]:
    """The parameters of a ``Digest`` challenge in a WWW-Authenticate value, or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        match = _PARAM_RE.match(rest, pos)
        if match is None or match.end() == pos:
            break
        name, value = match.group(1).lower(), match.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[name] = value
        pos = match.end()
    if "nonce" not in params or "realm" not in params:
        return None
    return params


_HASHES = {"MD5": "md5", "MD5-SESS": "md5", "SHA-256": "sha256", "SHA-256-SESS": "sha256"}


def digest_authorization(
    challenge: dict[str, str],
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: Optional[str] = None,
) -> str:
    """The ``Authorization`` value answering a Digest ``challenge`` (RFC 7616 §3.4).

    Raises:
        ValueError: For an algorithm or qop this client does not implement.
    """
    algorithm = challenge.get("algorithm", "MD5")
    hash_name = _HASHES.get(algorithm.upper())
    if hash_name is None:
        raise ValueError(f"Unsupported digest algorithm {algorithm!r}")

    def h(text: str) -> str:
        return hashlib.new(hash_name, text.encode("utf-8")).hexdigest()

    realm = challenge["realm"]
    nonce = challenge["nonce"]
    if cnonce is None:
        cnonce = os.urandom(8).hex()
    ha1 = h(f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    nc_text = f"{nc:08x}"
    parts = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f"algorithm={algorithm}",
    ]
    if qops:
        if "auth" not in qops:
            raise ValueError(f"Unsupported digest qop {challenge['qop']!r} (only 'auth' is)")
        response = h(f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        parts += [f'response="{response}"', "qop=auth", f"nc={nc_text}", f'cnonce="{cnonce}"']
    else:
        parts.append(f'response="{h(f"{ha1}:{nonce}:{ha2}")}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)
