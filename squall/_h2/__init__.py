"""Sans-I/O HTTP/2, server side: bytes in, events out; calls in, bytes out.

A layer over python-hyper's ``h2`` package (the ``http2`` extra:
``pip install squall[http2]``) that adds the limits a server exposed to the
Internet needs (`H2Limits`), outbound flow-control queues, and events shaped
for Squall's drivers. No ``asyncio``, ``socket``, ``ssl`` or ``time``
import: the driver (`squall.httpserver._h2protocol`) passes the clock in.
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
