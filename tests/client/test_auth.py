"""Basic and Digest Authorization values (RFC 7617, RFC 7616)."""

from __future__ import annotations

import hashlib

import pytest

from squall.simple_httpclient._auth import (
    basic_authorization,
    digest_authorization,
    parse_digest_challenge,
)


def test_basic_is_nfc_utf8() -> None:
    assert basic_authorization("Aladdin", "open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    assert basic_authorization("jose\u0301", "x") == basic_authorization("jos\u00e9", "x")


def test_parse_challenge() -> None:
    params = parse_digest_challenge(
        'Digest realm="a \\"b\\"", nonce="n", qop="auth,auth-int", algorithm=SHA-256'
    )
    assert params == {
        "realm": 'a "b"',
        "nonce": "n",
        "qop": "auth,auth-int",
        "algorithm": "SHA-256",
    }
    assert parse_digest_challenge('Basic realm="x"') is None
    assert parse_digest_challenge('Digest realm="x"') is None
    assert parse_digest_challenge('Digest realm="x", nonce="n", ,,') == {"realm": "x", "nonce": "n"}


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def test_rfc2069_without_qop() -> None:
    value = digest_authorization({"realm": "r", "nonce": "n"}, "GET", "/p", "u", "pw")
    expected = md5(f"{md5('u:r:pw')}:n:{md5('GET:/p')}")
    assert f'response="{expected}"' in value
    assert "qop" not in value


def test_qop_auth_sha256_sess_and_opaque() -> None:
    challenge = {
        "realm": "r",
        "nonce": "n",
        "qop": "auth",
        "algorithm": "SHA-256-sess",
        "opaque": "o",
    }
    value = digest_authorization(challenge, "POST", "/x", "u", "pw", cnonce="c")

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    ha1 = sha(f"{sha('u:r:pw')}:n:c")
    expected = sha(f"{ha1}:n:00000001:c:auth:{sha('POST:/x')}")
    assert f'response="{expected}"' in value
    assert 'opaque="o"' in value and "nc=00000001" in value


def test_unsupported_algorithm_and_qop() -> None:
    with pytest.raises(ValueError, match="algorithm"):
        digest_authorization(
            {"realm": "r", "nonce": "n", "algorithm": "SHA-512"}, "GET", "/", "u", "p"
        )
    with pytest.raises(ValueError, match="qop"):
        digest_authorization({"realm": "r", "nonce": "n", "qop": "auth-int"}, "GET", "/", "u", "p")
