"""Protocol errors of the HTTP/2 core.

::

    H2Error (error_code)
     +-- LocalProtocolError    we tried to do something the connection cannot do
     +-- RemoteProtocolError   the peer broke HTTP/2 or a limit; a GOAWAY is queued
"""

from __future__ import annotations

__all__ = ["H2Error", "LocalProtocolError", "RemoteProtocolError"]


class H2Error(Exception):
    """Root of the errors raised by `squall._h2`.

    Attributes:
        error_code: The HTTP/2 error code (RFC 9113 §7) that goes, or went,
            out in the GOAWAY or RST_STREAM frame.
    """

    error_code: int

    def __init__(self, message: str, error_code: int = 0x1) -> None:
        super().__init__(message)
        self.error_code = error_code


class LocalProtocolError(H2Error):
    """Our side misused the connection (a closed stream, a bad header field)."""


class RemoteProtocolError(H2Error):
    """The peer broke the protocol or exceeded a limit; the connection is over.

    The GOAWAY frame that says so is already in `H2Connection.data_to_send`.

    Attributes:
        too_large: A header list or block went over ``max_header_list_size``
            (what HTTP/1.1 answers with 431).
    """

    def __init__(self, message: str, error_code: int = 0x1, too_large: bool = False) -> None:
        super().__init__(message, error_code)
        self.too_large = too_large
