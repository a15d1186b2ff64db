"""Signed values: both wire formats, key rotation, tampering and expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging

import pytest

from squall.web.signing import (
    DEFAULT_SIGNED_VALUE_MIN_VERSION,
    DEFAULT_SIGNED_VALUE_VERSION,
    MAX_SUPPORTED_SIGNED_VALUE_VERSION,
    MIN_SUPPORTED_SIGNED_VALUE_VERSION,
    create_signed_value,
    decode_signed_value,
    get_signature_key_version,
)

SECRET = "correct horse battery staple"
NOW = 1_700_000_000.0
KEYS = {3: "three", 7: "seven"}


def clock() -> float:
    return NOW


def v1_signature(secret: str, *parts: bytes) -> bytes:
    mac = hmac.new(secret.encode(), digestmod=hashlib.sha1)
    for part in parts:
        mac.update(part)
    return mac.hexdigest().encode()


def v2_signature(secret: str, data: bytes) -> bytes:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest().encode()


def test_constants() -> None:
    assert DEFAULT_SIGNED_VALUE_VERSION == 2
    assert DEFAULT_SIGNED_VALUE_MIN_VERSION == 1
    assert (MIN_SUPPORTED_SIGNED_VALUE_VERSION, MAX_SUPPORTED_SIGNED_VALUE_VERSION) == (1, 2)


def test_v1_layout_matches_the_format() -> None:
    signed = create_signed_value(SECRET, "sid", "hello", version=1, clock=clock)
    payload = base64.b64encode(b"hello")
    assert signed == payload + b"|1700000000|" + v1_signature(
        SECRET, b"sid", payload, b"1700000000"
    )


def test_v2_layout_matches_the_format() -> None:
    signed = create_signed_value(SECRET, "sid", "hello", clock=clock)
    prefix = b"2|1:0|10:1700000000|3:sid|8:aGVsbG8=|"
    assert signed == prefix + v2_signature(SECRET, prefix)


def test_v2_with_key_version_records_it() -> None:
    signed = create_signed_value(KEYS, "sid", b"x", clock=clock, key_version=7)
    assert signed.startswith(b"2|1:7|")
    assert get_signature_key_version(signed) == 7
    assert decode_signed_value(KEYS, "sid", signed, clock=clock) == b"x"


@pytest.mark.parametrize("version", [1, 2])
def test_round_trip_of_arbitrary_bytes(version: int) -> None:
    value = bytes(range(256))
    signed = create_signed_value(SECRET, "n", value, version=version, clock=clock)
    assert decode_signed_value(SECRET, "n", signed, clock=clock) == value
    assert decode_signed_value(SECRET, "n", signed.decode(), clock=clock) == value


def test_default_clock_is_now() -> None:
    signed = create_signed_value(SECRET, "n", "v")
    assert decode_signed_value(SECRET, "n", signed) == b"v"


def test_missing_value_is_none() -> None:
    assert decode_signed_value(SECRET, "n", None) is None
    assert decode_signed_value(SECRET, "n", "") is None


@pytest.mark.parametrize("version", [1, 2])
def test_other_name_is_refused(version: int, caplog: pytest.LogCaptureFixture) -> None:
    signed = create_signed_value(SECRET, "a", "v", version=version, clock=clock)
    with caplog.at_level(logging.WARNING):
        assert decode_signed_value(SECRET, "b", signed, clock=clock) is None


@pytest.mark.parametrize("version", [1, 2])
def test_expired_value_is_refused(version: int, caplog: pytest.LogCaptureFixture) -> None:
    signed = create_signed_value(SECRET, "n", "v", version=version, clock=lambda: NOW - 10 * 86400)
    assert decode_signed_value(SECRET, "n", signed, clock=clock, max_age_days=11) == b"v"
    with caplog.at_level(logging.WARNING):
        assert decode_signed_value(SECRET, "n", signed, clock=clock, max_age_days=9) is None
    if version == 1:
        assert "Expired cookie" in caplog.text


def test_min_version_refuses_v1() -> None:
    signed = create_signed_value(SECRET, "n", "v", version=1, clock=clock)
    assert decode_signed_value(SECRET, "n", signed, clock=clock, min_version=2) is None


def test_unsupported_versions_raise() -> None:
    # Tornado's text, word for word.
    with pytest.raises(ValueError, match="^Unsupported version 3$"):
        create_signed_value(SECRET, "n", "v", version=3)
    with pytest.raises(ValueError, match="min_version"):
        decode_signed_value(SECRET, "n", "x", min_version=3)


def test_dict_secret_needs_v2_and_a_known_key_version() -> None:
    with pytest.raises(ValueError, match="version 2"):
        create_signed_value(KEYS, "n", "v", version=1, key_version=3)
    with pytest.raises(ValueError, match="key_version must be given"):
        create_signed_value(KEYS, "n", "v")
    # A key_version the dict lacks is a KeyError naming it, as a dict
    # lookup gives (the type Tornado raises).
    with pytest.raises(KeyError) as info:
        create_signed_value(KEYS, "n", "v", key_version=5)
    assert info.value.args == (5,)


def test_rotated_out_key_is_refused() -> None:
    signed = create_signed_value(KEYS, "n", "v", clock=clock, key_version=3)
    assert decode_signed_value({7: "seven"}, "n", signed, clock=clock) is None


def test_v1_value_with_dict_secret_is_refused() -> None:
    signed = create_signed_value(SECRET, "n", "v", version=1, clock=clock)
    assert decode_signed_value(KEYS, "n", signed, clock=clock) is None


def test_unknown_version_prefix_is_refused() -> None:
    assert decode_signed_value(SECRET, "n", b"7|whatever", clock=clock) is None


def test_v1_payload_that_looks_like_a_version() -> None:
    # base64 of b"\xd7m\xf8" is "1234": a v1 value starting "1234|".
    signed = create_signed_value(SECRET, "n", b"\xd7m\xf8", version=1, clock=clock)
    assert signed.startswith(b"1234|")
    assert decode_signed_value(SECRET, "n", signed, clock=clock) == b"\xd7m\xf8"


@pytest.mark.parametrize(
    "value",
    [
        b"abc",  # one part
        b"a|b",  # two parts
        b"a|b|c|d",  # four parts
    ],
)
def test_v1_wrong_number_of_parts(value: bytes) -> None:
    assert decode_signed_value(SECRET, "n", value, clock=clock) is None


def test_v1_bad_signature_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    signed = create_signed_value(SECRET, "n", "v", version=1, clock=clock)
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        assert decode_signed_value(SECRET, "n", signed[:-1] + b"0", clock=clock) is None
    assert "Invalid cookie signature" in caplog.text


def test_v1_long_values_are_logged_shortened(caplog: pytest.LogCaptureFixture) -> None:
    signed = create_signed_value(SECRET, "n", b"x" * 1000, version=1, clock=clock)
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        decode_signed_value(SECRET, "n", signed[:-1] + b"0", clock=clock)
    assert len(caplog.text) < 400


def _v1(payload: bytes, timestamp: bytes, name: str = "n") -> bytes:
    return b"|".join([payload, timestamp, v1_signature(SECRET, name.encode(), payload, timestamp)])


def test_v1_future_timestamp_is_tampering(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        assert decode_signed_value(SECRET, "n", _v1(b"dg==", b"1800000000"), clock=clock) is None
    assert "Cookie timestamp in future" in caplog.text


def test_v1_leading_zero_timestamp_is_tampering(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="squall.general"):
        value = _v1(b"dg==", b"01700000000")
        assert decode_signed_value(SECRET, "n", value, clock=clock) is None
    assert "Tampered cookie" in caplog.text


def test_v1_malformed_timestamp_and_payload() -> None:
    assert decode_signed_value(SECRET, "n", _v1(b"dg==", b"x1"), clock=clock) is None
    assert decode_signed_value(SECRET, "n", _v1(b"d", b"1700000000"), clock=clock) is None


def _v2(fields: list[bytes], secret: str = SECRET) -> bytes:
    prefix = b"|".join([b"2", *(b"%d:%s" % (len(f), f) for f in fields), b""])
    return prefix + v2_signature(secret, prefix)


def test_v2_malformed_fields() -> None:
    good = [b"0", b"1700000000", b"n", b"dg=="]
    assert decode_signed_value(SECRET, "n", _v2(good), clock=clock) == b"v"
    assert decode_signed_value(SECRET, "n", b"2|nope", clock=clock) is None
    assert decode_signed_value(SECRET, "n", b"2|x:0|", clock=clock) is None
    assert decode_signed_value(SECRET, "n", b"2|5:0|", clock=clock) is None
    assert decode_signed_value(SECRET, "n", _v2([b"z", *good[1:]]), clock=clock) is None
    assert (
        decode_signed_value(SECRET, "n", _v2([b"0", b"soon", b"n", b"dg=="]), clock=clock) is None
    )
    assert (
        decode_signed_value(SECRET, "n", _v2([b"0", b"1700000000", b"n", b"d"]), clock=clock)
        is None
    )


def test_v2_tampered_signature_and_field() -> None:
    signed = create_signed_value(SECRET, "n", "v", clock=clock)
    assert decode_signed_value(SECRET, "n", signed[:-1] + b"x", clock=clock) is None
    assert decode_signed_value(SECRET, "n", signed.replace(b"1:0", b"1:1"), clock=clock) is None


def test_key_version_of_v1_and_malformed_values() -> None:
    assert get_signature_key_version(create_signed_value(SECRET, "n", "v", version=1)) is None
    assert get_signature_key_version("2|garbage") is None
    assert get_signature_key_version(create_signed_value(SECRET, "n", "v")) == 0


def test_signing_again_within_a_second_skips_the_hmac(monkeypatch: pytest.MonkeyPatch) -> None:
    from squall.web import signing

    calls = []
    real = signing._create_signature_v2

    def counting(secret, data):  # type: ignore[no-untyped-def]
        calls.append(data)
        return real(secret, data)

    monkeypatch.setattr(signing, "_create_signature_v2", counting)
    first = create_signed_value(SECRET, "user", "alice", clock=clock)
    again = create_signed_value(SECRET, "user", "alice", clock=lambda: NOW + 0.9)
    assert again == first and len(calls) == 1
    later = create_signed_value(SECRET, "user", "alice", clock=lambda: NOW + 1)
    assert later != first and len(calls) == 2
    # Any other input is signed afresh; key version 0 and None write the same field.
    cases = [
        ("other secret", "user", "alice"),
        (SECRET, "session", "alice"),
        (SECRET, "user", "bob"),
        (SECRET, "user", b"alice"),
    ]
    signed = [create_signed_value(*case, clock=lambda: NOW + 1) for case in cases]
    assert len(calls) == 6
    for (secret, name, value), one in zip(cases, signed, strict=True):
        expected = value.encode() if isinstance(value, str) else value
        assert decode_signed_value(secret, name, one, clock=clock) == expected


def test_signing_again_sees_a_dict_of_secrets_changed_in_place() -> None:
    keys = {1: "first key"}
    create_signed_value(keys, "user", "alice", clock=clock, key_version=1)
    keys[1] = "second key"
    signed = create_signed_value(keys, "user", "alice", clock=clock, key_version=1)
    assert decode_signed_value({1: "second key"}, "user", signed, clock=clock) == b"alice"
    assert decode_signed_value({1: "first key"}, "user", signed, clock=clock) is None
    # A key version spelt another way writes another field: not the remembered value.
    create_signed_value({1: SECRET}, "user", "alice", clock=clock, key_version=1)
    signed = create_signed_value({True: SECRET}, "user", "alice", clock=clock, key_version=True)  # type: ignore[dict-item]
    assert b"|4:True|" in signed
