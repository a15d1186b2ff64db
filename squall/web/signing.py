"""Signed, timestamped values: the format of Squall's (and Tornado's) signed cookies.

Two wire formats exist, both readable, version 2 written by default:

* version 1: ``base64(value)|timestamp|hex(HMAC-SHA1(secret, name + value + timestamp))``.
  The signed parts are concatenated without a delimiter, so the reader must
  refuse timestamps that are too far in the future or start with ``0`` (a
  payload byte moved into the timestamp would otherwise keep the signature).
* version 2: ``2|`` followed by four length-prefixed fields (``len:bytes``) for
  the key version, the timestamp, the name and ``base64(value)``, each ended
  by ``|``, then ``hex(HMAC-SHA256(secret, everything before))``. The key
  version selects a secret when the secret is a dict, for key rotation.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Optional, Union

from squall.escape import utf8
from squall.log import gen_log

__all__ = [
    "DEFAULT_SIGNED_VALUE_MIN_VERSION",
    "DEFAULT_SIGNED_VALUE_VERSION",
    "MAX_SUPPORTED_SIGNED_VALUE_VERSION",
    "MIN_SUPPORTED_SIGNED_VALUE_VERSION",
    "create_signed_value",
    "decode_signed_value",
    "get_signature_key_version",
]

MIN_SUPPORTED_SIGNED_VALUE_VERSION = 1
"""The oldest signed-value format this module reads."""

MAX_SUPPORTED_SIGNED_VALUE_VERSION = 2
"""The newest signed-value format this module reads and writes."""

DEFAULT_SIGNED_VALUE_VERSION = 2
"""The signed-value format written when no version is given."""

DEFAULT_SIGNED_VALUE_MIN_VERSION = 1
"""The oldest signed-value format accepted when no minimum is given."""

_Secret = Union[str, bytes]
_Secrets = Union[_Secret, dict[int, _Secret]]

# A version-1 cookie from the clock of a skewed client may be ahead of ours;
# a month is the most we tolerate (see the module docstring for why at all).
_MAX_FUTURE_SECONDS = 31 * 86400

# Version 1 has no version prefix. Its base64 payload could look like "1234|",
# but base64 pads to multiples of 4 characters, so numbers below 1000 can only
# be real version prefixes.
_MAX_VERSION = 999


def _create_signature_v1(secret: _Secret, *parts: Union[str, bytes]) -> bytes:
    mac = hmac.new(utf8(secret), digestmod=hashlib.sha1)
    for part in parts:
        mac.update(utf8(part))
    return mac.hexdigest().encode("ascii")


def _create_signature_v2(secret: _Secret, s: Union[bytes, memoryview]) -> bytes:
    # hmac.digest: one call into OpenSSL, no HMAC object. Named by its
    # constructor, not "sha256": OpenSSL 3 looks a name up on each call
    # (3.1 us a signature, 1.9 us this way).
    return hmac.digest(utf8(secret), s, hashlib.sha256).hex().encode("ascii")


# The last version-2 value signed and its bytes. Signing is a function of
# its inputs, and the timestamp has a resolution of a second: a program that
# signs the same value over and over (a login cookie set again on every
# request, as Jupyter Server does) gets the second one without the HMAC.
# Only signing looks here; checking a value always computes its signature.
# One tuple, replaced whole: threads that sign at once never pair one's key
# with another's bytes.
_last_signed: list[tuple[object, bytes]] = [(None, b"")]
_IMMUTABLE = (str, bytes)


def _length_prefixed(field: bytes) -> bytes:
    return b"%d:%s" % (len(field), field)


def create_signed_value(
    secret: _Secrets,
    name: str,
    value: Union[str, bytes],
    version: Optional[int] = None,
    clock: Optional[Callable[[], float]] = None,
    key_version: Optional[int] = None,
) -> bytes:
    """Signs and timestamps ``value`` under ``name``.

    Args:
        secret: the signing key, or a dict of keys by key version (version 2 only).
        name: the name the value is bound to (a cookie name); decoding under
            another name fails.
        value: the payload; any bytes (text is UTF-8 encoded).
        version: the format, 1 or 2 (default ``DEFAULT_SIGNED_VALUE_VERSION``).
        clock: returns the current Unix time (default `time.time`).
        key_version: which key of a dict ``secret`` signs; recorded in the value.

    Returns:
        The signed value, ASCII bytes safe for a cookie.

    Raises:
        ValueError: for an unknown version, or a dict secret without
            ``key_version`` or with version 1.
        KeyError: for a ``key_version`` missing from the dict.
    """
    if version is None:
        version = DEFAULT_SIGNED_VALUE_VERSION
    if clock is None:
        clock = time.time
    timestamp = str(int(clock())).encode("ascii")
    if version == 1:
        if isinstance(secret, dict):
            raise ValueError("a dict of secrets needs signed value version 2")
        payload = base64.b64encode(utf8(value))
        signature = _create_signature_v1(secret, name, payload, timestamp)
        return b"|".join([payload, timestamp, signature])
    if version == 2:
        if isinstance(secret, dict):
            if key_version is None:
                raise ValueError("key_version must be given when the secret is a dict of keys")
            # A key_version the dict lacks raises the lookup's KeyError, the
            # exception a Tornado program would catch here.
            secret = secret[key_version]
        # Remembered only for immutable inputs (a bytearray or a dict of
        # secrets may change in place between two calls).
        key_field = str(key_version or 0).encode("ascii")
        key = (secret, name, value, key_field, timestamp)
        last = _last_signed[0]
        if last[0] == key:
            return last[1]
        payload = base64.b64encode(utf8(value))
        to_sign = b"|".join(
            [
                b"2",
                _length_prefixed(key_field),
                _length_prefixed(timestamp),
                _length_prefixed(utf8(name)),
                _length_prefixed(payload),
                b"",
            ]
        )
        signed = to_sign + _create_signature_v2(secret, to_sign)
        if type(value) in _IMMUTABLE and type(secret) in _IMMUTABLE and type(name) is str:
            _last_signed[0] = (key, signed)
        return signed
    raise ValueError(f"Unsupported version {version!r}")


def _get_version(value: bytes) -> int:
    bar = value.find(b"|", 0, 4)
    if bar <= 0:
        return 1
    prefix = value[:bar]
    if not prefix.isdigit() or prefix.startswith(b"0"):
        return 1
    version = int(prefix)
    return version if version <= _MAX_VERSION else 1


def decode_signed_value(
    secret: _Secrets,
    name: str,
    value: Union[None, str, bytes],
    max_age_days: float = 31,
    clock: Optional[Callable[[], float]] = None,
    min_version: Optional[int] = None,
) -> Optional[bytes]:
    """Checks a value made by `create_signed_value` and returns its payload.

    Args:
        secret: the key, or a dict of keys by key version.
        name: the name the value must have been signed under.
        value: the signed value (None gives None).
        max_age_days: values signed longer ago than this are refused.
        clock: returns the current Unix time (default `time.time`).
        min_version: the oldest format accepted (default
            ``DEFAULT_SIGNED_VALUE_MIN_VERSION``).

    Returns:
        The payload bytes, or None if the value is missing, malformed,
        tampered with, expired, signed under another name or by an unknown key.

    Raises:
        ValueError: if ``min_version`` is not 1 or 2.
    """
    if clock is None:
        clock = time.time
    if min_version is None:
        min_version = DEFAULT_SIGNED_VALUE_MIN_VERSION
    if min_version > 2:
        raise ValueError(f"Unsupported min_version {min_version}")
    if not value:
        return None
    data = utf8(value)
    version = _get_version(data)
    if version < min_version:
        return None
    if version == 1:
        if isinstance(secret, dict):
            return None
        return _decode_v1(secret, name, data, max_age_days, clock)
    if version == 2:
        return _decode_v2(secret, name, data, max_age_days, clock)
    return None


def _short(value: bytes) -> str:
    # Cookies can be large and come from anyone: keep log lines bounded.
    return repr(value[:64] + b"...") if len(value) > 64 else repr(value)


def _decode_v1(
    secret: _Secret, name: str, value: bytes, max_age_days: float, clock: Callable[[], float]
) -> Optional[bytes]:
    first = value.find(b"|")
    second = value.find(b"|", first + 1)
    if first < 0 or second < 0 or value.find(b"|", second + 1) >= 0:
        return None
    timestamp = value[first + 1 : second]
    mac = hmac.new(utf8(secret), utf8(name), digestmod=hashlib.sha1)
    mac.update(memoryview(value)[:first])
    mac.update(timestamp)
    if not hmac.compare_digest(value[second + 1 :], mac.hexdigest().encode("ascii")):
        gen_log.warning("Invalid cookie signature %s", _short(value))
        return None
    if not timestamp.isdigit() or not timestamp.isascii():
        return None
    when = int(timestamp)
    now = clock()
    if when < now - max_age_days * 86400:
        gen_log.warning("Expired cookie %s", _short(value))
        return None
    if when > now + _MAX_FUTURE_SECONDS:
        gen_log.warning("Cookie timestamp in future; possible tampering %s", _short(value))
        return None
    if timestamp.startswith(b"0"):
        gen_log.warning("Tampered cookie %s", _short(value))
        return None
    try:
        return base64.b64decode(memoryview(value)[:first], validate=False)
    except (binascii.Error, ValueError):
        return None


def _fields_v2(value: bytes) -> tuple[int, bytes, bytes, tuple[int, int], int]:
    """Splits a version-2 value without copying its (possibly large) payload.

    Returns the key version, the timestamp, the name, the payload's
    ``(start, end)`` offsets and the offset of the signature.

    Raises:
        ValueError: if the value is not four well-formed fields after ``2|``.
    """
    pos = 2
    spans: list[tuple[int, int]] = []
    for _ in range(4):
        colon = value.find(b":", pos, pos + 21)
        if colon < 0:
            raise ValueError("missing length prefix in signed value")
        digits = value[pos:colon]
        if not digits.isdigit() or not digits.isascii():
            raise ValueError("malformed length prefix in signed value")
        start = colon + 1
        end = start + int(digits)
        if value[end : end + 1] != b"|":
            raise ValueError("field length does not match signed value")
        spans.append((start, end))
        pos = end + 1
    key_version = value[spans[0][0] : spans[0][1]]
    if not key_version.isdigit() or not key_version.isascii():
        raise ValueError("malformed key version in signed value")
    return (
        int(key_version),
        value[spans[1][0] : spans[1][1]],
        value[spans[2][0] : spans[2][1]],
        spans[3],
        pos,
    )


def _decode_v2(
    secret: _Secrets, name: str, value: bytes, max_age_days: float, clock: Callable[[], float]
) -> Optional[bytes]:
    try:
        key_version, timestamp, name_field, (start, end), sig_start = _fields_v2(value)
    except ValueError:
        return None
    if isinstance(secret, dict):
        if key_version not in secret:
            return None
        secret = secret[key_version]
    view = memoryview(value)
    expected = _create_signature_v2(secret, view[:sig_start])
    if not hmac.compare_digest(value[sig_start:], expected):
        return None
    if name_field != utf8(name):
        return None
    if not timestamp.isdigit() or not timestamp.isascii():
        return None
    if int(timestamp) < clock() - max_age_days * 86400:
        return None
    try:
        return base64.b64decode(view[start:end], validate=False)
    except (binascii.Error, ValueError):
        return None


def get_signature_key_version(value: Union[str, bytes]) -> Optional[int]:
    """The key version recorded in a signed value; None for version 1 or a malformed value."""
    data = utf8(value)
    if _get_version(data) < 2:
        return None
    try:
        return _fields_v2(data)[0]
    except ValueError:
        return None
