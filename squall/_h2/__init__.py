"""Sans-I/O HTTP/2: bytes in, events out; calls in, bytes out.

The server side (`H2Connection`) is our own: framing, stream states, flow
control and HPACK decoding (RFC 9113, RFC 7541), with the limits a server
exposed to the Internet needs (`H2Limits`), outbound flow-control queues,
and events shaped for Squall's drivers. The client side
(`squall._h2._client`) runs over python-hyper's ``h2`` package, which the
``http2`` extra installs (``pip install squall[http2]``) and whose ``hpack``
supplies the Huffman code table. No ``asyncio``, ``socket``, ``ssl`` or
``time`` import: the drivers (`squall.httpserver._h2protocol`,
`squall.h2client`) pass the clock in.
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
    StreamReset,
    Trailers,
)
from squall._h2._limits import H2Limits

__all__ = [
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
    "StreamReset",
    "Trailers",
]
