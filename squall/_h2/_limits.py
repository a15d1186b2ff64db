"""Named limits of the HTTP/2 core, with the attack each one answers."""

from __future__ import annotations

from typing import Final

__all__ = ["H2Limits"]

# The field names, for the checks and repr; not read from __slots__, which a
# class compiled by mypyc (the speedups build) does not keep.
_FIELDS: Final = (
    "max_concurrent_streams",
    "max_header_list_size",
    "max_continuation_frames",
    "initial_window_size",
    "connection_window_size",
    "max_frame_size",
    "max_resets_per_second",
    "max_settings_per_second",
    "max_pings_per_second",
    "max_window_updates_per_second",
    "max_empty_frames_per_second",
    "send_timeout",
    "idle_stream_timeout",
    "max_body_size",
)


class H2Limits:
    """Limits of one HTTP/2 connection (server side).

    Rates are token buckets: on average at most ``N`` frames a second, with
    bursts of up to ``N``. A peer over a rate gets ``GOAWAY
    ENHANCE_YOUR_CALM`` and the connection is closed.

    Args:
        max_concurrent_streams: Streams a client may have open at once,
            advertised in SETTINGS (100). Streams the client has reset but
            whose handler still runs count too (rapid reset,
            CVE-2023-44487); a stream over the limit is refused with
            ``RST_STREAM REFUSED_STREAM``.
        max_header_list_size: Largest decoded header list, in bytes as
            RFC 9113 §6.5.2 counts them (64 KiB): the HPACK bomb. The
            encoded header block (HEADERS plus CONTINUATION) has the same
            limit.
        max_continuation_frames: CONTINUATION frames in one header block
            (32): the CONTINUATION flood of 2024.
        initial_window_size: Receive window of each stream (256 KiB): the
            most request body held for a handler that does not read it.
        connection_window_size: Receive window of the whole connection (1 MiB).
        max_frame_size: Largest frame we accept, advertised (16 KiB).
        max_resets_per_second: Streams reset by the client, or refused by
            us, per second (100): rapid reset.
        max_settings_per_second: SETTINGS frames per second (10).
        max_pings_per_second: PING frames per second (20).
        max_window_updates_per_second: WINDOW_UPDATE frames per second
            beyond two for each DATA frame we send (1000).
        max_empty_frames_per_second: Frames that carry no work (empty DATA
            or CONTINUATION without an END flag, PRIORITY, unknown types)
            per second (100).
        send_timeout: Seconds a response may wait for the client to open
            its flow-control window or read from the socket (60): a zero
            window held forever. The stream is reset, or the connection
            closed when the socket itself is not read.
        idle_stream_timeout: Seconds a stream whose request is not complete
            may go without a frame (300): a stream opened and never
            finished is reset.
        max_body_size: Largest request body of one stream, in bytes (100
            MiB, as HTTP/1.1's): a larger declared Content-Length, or more
            DATA, is answered 400. The server's ``max_body_size`` option,
            when given, overrides it; a handler may lower it for its own
            request (``set_max_body_size``).
    """

    __slots__ = _FIELDS

    def __init__(
        self,
        *,
        max_concurrent_streams: int = 100,
        max_header_list_size: int = 64 * 1024,
        max_continuation_frames: int = 32,
        initial_window_size: int = 256 * 1024,
        connection_window_size: int = 1024 * 1024,
        max_frame_size: int = 16 * 1024,
        max_resets_per_second: float = 100.0,
        max_settings_per_second: float = 10.0,
        max_pings_per_second: float = 20.0,
        max_window_updates_per_second: float = 1000.0,
        max_empty_frames_per_second: float = 100.0,
        send_timeout: float = 60.0,
        idle_stream_timeout: float = 300.0,
        max_body_size: int = 100 * 1024 * 1024,
    ) -> None:
        self.max_concurrent_streams = max_concurrent_streams
        self.max_header_list_size = max_header_list_size
        self.max_continuation_frames = max_continuation_frames
        self.initial_window_size = initial_window_size
        self.connection_window_size = connection_window_size
        self.max_frame_size = max_frame_size
        self.max_resets_per_second = max_resets_per_second
        self.max_settings_per_second = max_settings_per_second
        self.max_pings_per_second = max_pings_per_second
        self.max_window_updates_per_second = max_window_updates_per_second
        self.max_empty_frames_per_second = max_empty_frames_per_second
        self.send_timeout = send_timeout
        self.idle_stream_timeout = idle_stream_timeout
        self.max_body_size = max_body_size
        # Checked once set: four ranges, and every limit is above zero.
        if not 1 <= max_concurrent_streams < 2**31:
            raise ValueError(f"max_concurrent_streams out of range: {max_concurrent_streams}")
        if not 65535 <= connection_window_size < 2**31:
            raise ValueError(f"connection_window_size out of range: {connection_window_size}")
        if not 0 < initial_window_size < 2**31:
            raise ValueError(f"initial_window_size out of range: {initial_window_size}")
        if not 16384 <= max_frame_size < 2**24:
            raise ValueError(f"max_frame_size out of range: {max_frame_size}")
        for name in _FIELDS:
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} must be positive, not {value!r}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"H2Limits({fields})"
