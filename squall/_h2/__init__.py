"""Sans-I/O HTTP/2: bytes in, events out; calls in, bytes out.

One core for both ends, and no other package: framing, the stream states
of RFC 9113 §5.1 (`squall._h2._state`), flow control and HPACK (RFC 7541)
in `squall._h2._base`, with the limits an endpoint exposed to the Internet
needs (`H2Limits`), outbound flow-control queues, and events shaped for
Squall's drivers. The server side (`H2Connection`) checks request heads;
the client side (`squall._h2._client`) sends requests and checks response
heads; `squall._h2._rules` holds the field rules HTTP/2 adds to HTTP. No
``asyncio``, ``socket``, ``ssl`` or ``time`` import: the drivers
(`squall.httpserver._h2protocol`, `squall.h2client`) pass the clock in.
"""

from squall._h2._connection import PREFACE, ErrorCode, H2Connection
from squall._h2._errors import H2Error, LocalProtocolError, RemoteProtocolError
from squall._h2._events import (
    Data,
    Drained,
    EndOfStream,
    Event,
    GoAway,
    Request,
    Response,
    StreamReset,
    Trailers,
)
from squall._h2._limits import H2Limits
from squall._h2._rules import (
    INVALID_LENGTH,
    NO_LENGTH,
    bad_value,
    content_length,
    response_fields,
    trailer_fields,
    tunnel_fields,
)

__all__ = [
    "INVALID_LENGTH",
    "NO_LENGTH",
    "PREFACE",
    "Data",
    "Drained",
    "EndOfStream",
    "ErrorCode",
    "Event",
    "GoAway",
    "H2Connection",
    "H2Error",
    "H2Limits",
    "LocalProtocolError",
    "RemoteProtocolError",
    "Request",
    "Response",
    "StreamReset",
    "Trailers",
    "bad_value",
    "content_length",
    "response_fields",
    "trailer_fields",
    "tunnel_fields",
]
