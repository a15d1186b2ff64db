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
but that version's own answers).

qh3's checks (a Python loop over each name's bytes too) look for uppercase
and the pseudo-header rules only: a name with a space or a colon inside, a
value with whitespace at an end, and a connection-specific field such as
``Connection`` or ``Upgrade`` passed, where RFC 9114 section 4.2 makes
each a malformed message. `install_qh3` puts the same check in place of
qh3's ``validate_headers``, answering as qh3's does (the ``:status`` value
for a response) for every section qh3's accepts and the check does too,
for the qh3 whose function it was compared with (`KNOWN_QH3_SOURCES`).
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import Any, Optional

__all__ = ["CONNECTION_SPECIFIC", "install", "install_qh3", "make_validate_headers"]

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


#: Fields that belong to one HTTP/1.1 connection, which no HTTP/3 field
#: section may carry (RFC 9114 section 4.2); TE only in a request, and only
#: as "trailers".
CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"transfer-encoding", b"upgrade"}
)
_WHITESPACE = (b" ", b"\t")
# A name's bytes that are faults anywhere in it: controls and space,
# uppercase, DEL and above.
_BAD_NAME_BYTES = frozenset([*range(0x21), *range(0x41, 0x5B), *range(0x7F, 0x100)])


def _field_checks(
    error: type[Exception],
) -> tuple[Callable[[bytes], None], Callable[[bytes, bytes], None]]:
    """The per-field checks `make_validate_headers` calls to name a fault,
    raising ``error``; for a stack that has none of its own."""

    def check_name(name: bytes) -> None:
        # The first faulty byte names the fault.
        for at, byte in enumerate(name):
            if byte in _BAD_NAME_BYTES:
                raise error(f"Header {name!r} contains invalid characters")
            if byte == 0x3A and at > 0:
                raise error(f"Header {name!r} contains a non-initial colon")

    def check_value(name: bytes, value: bytes) -> None:
        if b"\x00" in value or b"\r" in value or b"\n" in value:
            raise error(f"Header {name!r} value has forbidden characters")
        if value[:1] in _WHITESPACE:
            raise error(f"Header {name!r} value starts with whitespace")
        if value[-1:] in _WHITESPACE:
            raise error(f"Header {name!r} value ends with whitespace")

    return check_name, check_value


#: The `qh3_digest` of each qh3 whose ``validate_headers`` this module's
#: check was compared with (tests/h3/test_fields.py): qh3 2.1.0's.
KNOWN_QH3_SOURCES = frozenset({"8bae3d23cdd0ccf38d28e90115b7391794030a2eb301dcb1da0a7115cc7c32f7"})


def qh3_digest(module: ModuleType) -> Optional[str]:
    """SHA-256 of the source of qh3.h3.connection's ``validate_headers`` and
    the four checks that call it; None where it cannot be read."""
    names = (
        "validate_headers",
        "validate_request_headers",
        "validate_response_headers",
        "validate_trailers",
        "validate_push_promise_headers",
    )
    try:
        text = "".join(inspect.getsource(getattr(module, name)) for name in names)
    except (AttributeError, OSError, TypeError):
        return None
    return hashlib.sha256(text.encode()).hexdigest()


def install_qh3(module: ModuleType) -> bool:
    """Puts the check in place of ``module``'s (qh3.h3.connection)
    ``validate_headers``; False, and nothing done, where that function is
    not one `KNOWN_QH3_SOURCES` names."""
    current = getattr(module, "validate_headers", None)
    if current is not None and getattr(current, "__module__", None) == __name__:
        return True
    error = getattr(module, "MessageError", None)
    if qh3_digest(module) not in KNOWN_QH3_SOURCES or error is None:
        return False
    check = make_validate_headers(error, CONNECTION_SPECIFIC, *_field_checks(error))

    def validate_headers(
        headers: Any,
        allowed_pseudo_headers: frozenset[bytes],
        required_pseudo_headers: frozenset[bytes],
        extract_header: Optional[bytes] = None,
    ) -> Optional[bytes]:
        """qh3's function of that name, refusing what RFC 9114 section 4.2
        refuses; for a response, its ``:status`` value."""
        check(
            headers,
            # TE (its "trailers" value only) is a request's field.
            allow_te=b":method" in required_pseudo_headers,
            allowed_pseudo_headers=allowed_pseudo_headers,
            required_pseudo_headers=required_pseudo_headers,
        )
        if extract_header is None:
            return None
        for name, value in headers:
            if name == extract_header:
                if name == b":status":
                    # As aioquic's response check: three digits (qh3's takes
                    # any number of them), and not 101 (RFC 9114 section
                    # 4.5; qh3's takes it for an interim head).
                    if len(value) != 3 or not value.isdigit():
                        raise error(f"Pseudo-header b':status' has invalid value {value!r}")
                    if value == b"101":
                        raise error("Pseudo-header b':status' cannot be 101")
                return value  # type: ignore[no-any-return]
        return None

    module.validate_headers = validate_headers  # type: ignore[attr-defined]
    return True
