"""State codes of the HTTP/1.1 connection (small ints: compared on every call)."""

from __future__ import annotations

from typing import Final

# Receive states (the peer's side).
_R_HEAD: Final = 0  # expecting a message head
_R_CL: Final = 1  # body delimited by Content-Length
_R_CHUNKED: Final = 2  # chunked body
_R_CLOSE: Final = 3  # body delimited by connection close (responses)
_R_EOM: Final = 4  # EndOfMessage is due next
_R_DONE: Final = 5  # message complete, waiting for our side
_R_IDLE: Final = 6  # client: no request outstanding
_R_MUST_CLOSE: Final = 7  # no further message may be read
_R_CLOSED: Final = 8  # ConnectionClosed reported
_R_SWITCHED: Final = 9  # protocol switched: bytes belong to the new protocol
_R_ERROR: Final = 10  # RemoteProtocolError raised

# Send states (our side).
_S_IDLE: Final = 0  # no message started
_S_BODY: Final = 1  # head sent, body (or its end) due
_S_DONE: Final = 2  # message complete, waiting for the peer's side
_S_MUST_CLOSE: Final = 3  # nothing more may be sent
_S_SWITCHED: Final = 4

# Chunked-body sub-states.
_C_SIZE: Final = 0
_C_DATA: Final = 1
_C_CRLF: Final = 2
_C_TRAILER: Final = 3

_NO_BODY: Final = -3  # outgoing framing: no body may be sent

_STATE_NAMES: Final = {
    _R_HEAD: "HEAD",
    _R_CL: "BODY",
    _R_CHUNKED: "BODY",
    _R_CLOSE: "BODY",
    _R_EOM: "BODY",
    _R_DONE: "DONE",
    _R_IDLE: "IDLE",
    _R_MUST_CLOSE: "MUST_CLOSE",
    _R_CLOSED: "CLOSED",
    _R_SWITCHED: "SWITCHED",
    _R_ERROR: "ERROR",
}
_SEND_NAMES: Final = {
    _S_IDLE: "IDLE",
    _S_BODY: "BODY",
    _S_DONE: "DONE",
    _S_MUST_CLOSE: "MUST_CLOSE",
    _S_SWITCHED: "SWITCHED",
}
