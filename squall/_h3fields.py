"""The check aioquic's HTTP/3 layer makes of every field section it receives
(a request's head, a response's, trailers, a push promise), at C speed.

aioquic (`squall._quicstack`'s default stack) validates each field with a
Python loop over its bytes: the characters RFC 9113 §8.2.1 forbids in a
name (controls, space, uppercase, DEL and above, a colon past the first
byte) and in a value (NUL, CR, LF; whitespace at either end), then the
pseudo-header rules of RFC 9114 §4.3. For a browser's request (17 fields,
900 bytes: Chromium's client hints, its user agent, a session cookie) that
loop was 30% of the instructions Squall's HTTP/3 server spent on the whole
request (``benchmarks/callgrind_h3.py --browser-head``: 1,420,145, and
989,481 with this check).

`validate_headers` here gives every section the same answer (the same
`MessageError`, with the same message, for the same first fault; the same
``expected_content_length`` on the stream) from a few scans, by ``bytes``
methods, of all the names joined and all the values joined; a field is
checked byte by byte, by aioquic's own per-field checks, only in a section
those scans do not clear, to name its fault. tests/h3/test_fields.py
compares it with aioquic's own function on generated sections.

`install` puts it in place of aioquic's module-level ``validate_headers``,
which the four checks (request, response, trailers, push promise) call: for
every aioquic connection in the process, Squall's or not, as its answers
are aioquic's. It does so only for the aioquic whose checks it was compared
with, known by the digest of their source (`KNOWN_SOURCES`): another
version's checks, which may answer otherwise, are left in place (slower,
but that version's own answers). qh3 has checks of its own, written
otherwise; it is left as it is.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, Optional

__all__ = ["install", "make_validate_headers"]

# What a name may hold, in names joined by LF (the count of LFs says
# whether a name held one): "!" to "@" (the digits, the colon and the
# punctuation) and "[" to "~" (lowercase letters and the rest).
_NAME_BYTES = b"\n" + bytes(range(0x21, 0x41)) + bytes(range(0x5B, 0x7F))


def _clean(names: bytes, values: list[bytes]) -> bool:
    """Whether no name and no value has a fault of its bytes: ``names`` are
    a section's names joined by LF, ``values`` its values."""
    lfs = len(values) - 1
    joined = b"\n".join(values)
    return (
        names.count(b"\n") == lfs
        and not names.translate(None, _NAME_BYTES)
        # every colon at a name's start
        and names.count(b":") == names.count(b"\n:") + names.startswith(b":")
        and joined.count(b"\n") == lfs
        and b"\x00" not in joined
        and b"\r" not in joined
        # no value starts or ends with whitespace (strip gives back each
        # value itself, so that the lists compare by identity)
        and [value.strip(b" \t") for value in values] == values
    )


# aioquic's functions this check answers for, and the constants they read.
_SHIPPED = ("validate_headers", "validate_header_name", "validate_header_value")
_CONSTANTS = ("COLON", "NUL", "LF", "CR", "WHITESPACE")
#: The `shipped_digest` of each aioquic whose checks tests/h3/test_fields.py
#: compared with this one: aioquic 1.7.2's.
KNOWN_SOURCES = frozenset({"ff891629192ef41a11323768b5ef8f0bf6f6e9a76f401933dbf5395effa3bfd7"})


def shipped_digest(module: ModuleType) -> Optional[str]:
    """SHA-256 of the source of ``module``'s checks (aioquic.h3.connection's)
    and the constants they read; None where the source cannot be read."""
    try:
        text = "".join(inspect.getsource(getattr(module, name)) for name in _SHIPPED)
        constants = repr([getattr(module, name) for name in _CONSTANTS])
    except (AttributeError, OSError, TypeError):
        return None
    return hashlib.sha256((text + constants).encode()).hexdigest()


def make_validate_headers(
    error: type[Exception],
    connection_specific: frozenset[bytes],
    check_name: Callable[[bytes], None],
    check_value: Callable[[bytes, bytes], None],
) -> Callable[..., None]:
    """A ``validate_headers`` raising ``error`` (the stack's MessageError),
    with ``connection_specific`` the names no HTTP/3 section may carry, and
    ``check_name`` and ``check_value`` the stack's own checks of one field's
    bytes, called only for a section whose scans found a fault, to name it."""

    special = connection_specific | {b"content-length", b"te"}

    def validate_headers(
        headers: Any,
        *,
        allow_te: bool = False,
        allowed_pseudo_headers: frozenset[bytes],
        required_pseudo_headers: frozenset[bytes],
        stream: Optional[Any] = None,
    ) -> None:
        """Raises ``error`` for the first fault of ``headers`` (a list of
        (name, value) byte pairs), as aioquic's function of that name."""
        # If some field's bytes have a fault, each field's are checked in
        # turn below, so that the first fault is the one named.
        clean = _clean(b"\n".join([field[0] for field in headers]), [field[1] for field in headers])
        regular = False
        seen: set[bytes] = set()
        authority = path = scheme = None
        for key, value in headers:
            if not clean:
                check_name(key)
                check_value(key, value)
            if key[:1] == b":":
                if regular:
                    raise error(f"Pseudo-header {key!r} is not allowed after regular headers")
                if key not in allowed_pseudo_headers:
                    raise error(f"Pseudo-header {key!r} is not valid")
                if key in seen:
                    raise error(f"Pseudo-header {key!r} is included twice")
                seen.add(key)
                if key == b":authority":
                    authority = value
                elif key == b":path":
                    path = value
                elif key == b":scheme":
                    scheme = value
                continue
            regular = True
            if key not in special:
                continue
            if key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length < 0:
                    raise error("content-length is not a non-negative integer")
                if stream:
                    stream.expected_content_length = length
            elif key == b"te" and allow_te:
                if value.lower() != b"trailers":
                    raise error(f"Header {key!r} value is not trailers")
            elif key in connection_specific:
                raise error(f"Header {key!r} is connection-specific")
        missing = required_pseudo_headers - seen
        if missing:
            raise error(f"Pseudo-headers {sorted(missing)} are missing")
        if scheme == b"http" or scheme == b"https":
            if not authority:
                raise error("Pseudo-header b':authority' cannot be empty")
            if not path:
                raise error("Pseudo-header b':path' cannot be empty")

    return validate_headers


def install(module: ModuleType) -> bool:
    """Puts `make_validate_headers`'s function in place of ``module``'s
    (aioquic.h3.connection) ``validate_headers``; False, and nothing done,
    where ``module``'s checks are not ones `KNOWN_SOURCES` names."""
    current = getattr(module, "validate_headers", None)
    if current is not None and getattr(current, "__module__", None) == __name__:
        return True
    error = getattr(module, "MessageError", None)
    specific = getattr(module, "CONNECTION_SPECIFIC_HEADERS", None)
    if (
        shipped_digest(module) not in KNOWN_SOURCES
        or error is None
        or not isinstance(specific, frozenset)
    ):
        return False
    module.validate_headers = make_validate_headers(  # type: ignore[attr-defined]
        error, specific, module.validate_header_name, module.validate_header_value
    )
    return True
