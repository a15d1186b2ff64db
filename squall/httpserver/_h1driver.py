"""`H1Driver`: what the HTTP/1.1 driver (`_HTTPProtocol`, in ``_protocol``) offers
the objects that work for it (``_h1exchange``). A declaration for the type
checker, in a module of its own: mypyc, which compiles those two modules,
takes no class nested in an ``if``.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the driver

import asyncio
from typing import TYPE_CHECKING, Optional, Protocol

from squall._h1 import H1Connection
from squall.httputil import HTTPMessageDelegate

if TYPE_CHECKING:
    from squall.httpserver._h1exchange import _RequestConnection
    from squall.httpserver._stream import _TransportStream


class H1Driver(Protocol):
    """What the HTTP/1.1 driver (`_HTTPProtocol`) offers the objects that work
    for it: the exchange (`_RequestConnection`), the write queue, the
    transport stream (``_stream``) and sendfile. ``_protocol`` checks that
    the driver has it."""

    loop: asyncio.AbstractEventLoop
    transport: Optional[asyncio.Transport]
    # The connection state (_IDLE ... _CLOSED) and flow bits (_BLOCKED ...).
    state: int
    flow: int
    # The core, the exchange being served, and the request's delegate until
    # its body has been read.
    h1: H1Connection
    exchange: Optional[_RequestConnection]
    delegate: Optional[HTTPMessageDelegate]
    # Output queued for the next write (None once detached); whether the
    # driver is handing events on (it flushes at the end); the resolved
    # future a write returns while the transport takes more.
    output: Optional[list[bytes]]
    in_feed: bool
    done_future: asyncio.Future[None]
    # The server's no_keep_alive setting.
    no_keep_alive: bool

    @property
    def taken(self) -> bool:
        """Whether the connection was detached (even if lost since)."""

    @property
    def detached(self) -> bool:
        """Whether an IOStream has the connection now."""

    @property
    def write_paused(self) -> bool:
        """Whether the transport is over its high-water mark."""

    def set_stream_reading(self, reading: bool) -> None:
        """Resumes or pauses reading for the detached stream."""

    def send(self, data: bytes) -> asyncio.Future[None]:
        """Queues ``data`` to be written."""

    def flush(self) -> None:
        """Writes the queued output."""

    def abort(self) -> None:
        """Stops HTTP and closes, sending only what was already queued."""

    def end_exchange(self) -> None:
        """Both the request and its response are complete."""

    def get_stream(self) -> _TransportStream:
        """The IOStream over the connection."""

    def detach(self) -> _TransportStream:
        """Hands the connection over to an IOStream; HTTP stops."""
