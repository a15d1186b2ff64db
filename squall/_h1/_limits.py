"""Named limits of the HTTP/1.1 core, each mapped to the status it produces."""

from __future__ import annotations

from typing import Final

__all__ = ["H1Limits"]

# The field names, for replace() and repr; not read from __slots__, which a
# class compiled by mypyc (the speedups build) does not keep.
_FIELDS: Final = (
    "max_start_line",
    "max_header_size",
    "max_header_count",
    "max_body_size",
    "max_chunk_line",
    "max_trailer_size",
    "max_informational",
    "max_data_event",
)


class H1Limits:
    """Size limits applied while parsing; exceeding one raises
    `RemoteProtocolError` with the status hint given below.

    Args:
        max_start_line: Longest request line or status line, CRLF excluded
            (414 for a request line, RFC 9112 §3).
        max_header_size: Longest head: start line plus header fields, the
            final empty line included (431). Tornado's ``max_header_size``.
        max_header_count: Most header fields in one head (431).
        max_body_size: Largest body, after removing the chunked coding (413).
            Tornado's ``max_body_size``; a driver may override it for one
            message with `H1Connection.set_max_body_size`.
        max_chunk_line: Longest chunk-size line, chunk extensions included (400).
        max_trailer_size: Largest trailer section of a chunked body (431).
        max_informational: Most ``1xx`` responses before a final one (client).
        max_data_event: Largest `Data` event assembled from several chunks;
            bounds the work done per `next_event` call.
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        max_start_line: int = 16 * 1024,
        max_header_size: int = 64 * 1024,
        max_header_count: int = 256,
        max_body_size: int = 100 * 1024 * 1024,
        max_chunk_line: int = 1024,
        max_trailer_size: int = 16 * 1024,
        max_informational: int = 10,
        max_data_event: int = 64 * 1024,
    ) -> None:
        for name, value in (
            ("max_start_line", max_start_line),
            ("max_header_size", max_header_size),
            ("max_header_count", max_header_count),
            ("max_body_size", max_body_size),
            ("max_chunk_line", max_chunk_line),
            ("max_trailer_size", max_trailer_size),
            ("max_informational", max_informational),
            ("max_data_event", max_data_event),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, not {value!r}")
        self.max_start_line = max_start_line
        self.max_header_size = max_header_size
        self.max_header_count = max_header_count
        self.max_body_size = max_body_size
        self.max_chunk_line = max_chunk_line
        self.max_trailer_size = max_trailer_size
        self.max_informational = max_informational
        self.max_data_event = max(1, max_data_event)

    def replace(self, **changes: int) -> H1Limits:
        """Return a copy with some limits changed."""
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return H1Limits(**values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)}" for name in _FIELDS)
        return f"H1Limits({inner})"


DEFAULT_LIMITS: Final = H1Limits()
