"""What a request stream of a multiplexed connection is, whatever the
protocol: the base of `_H2Stream` (``_h2stream``) and `_H3Stream` (``_h3stream``).

Both are `.Exchange`s whose connection is shared by other streams: closing
one resets it (the connection stays), only an accepted extended CONNECT
(RFC 8441, RFC 9220: a WebSocket) can be detached, and a broken
Content-Length resets the stream. Their read side is the same too (the
driver's, through `squall.httpserver._flow`): its fields are declared here,
and set by the one ``__init__`` (with HTTP/2's write-side fields, which an
HTTP/3 stream leaves as set: one call per stream on HTTP/2's request path).
Each subclass names its protocol and its two reset codes, and writes the
emit hooks that move frames.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the drivers

import asyncio
from collections.abc import Iterable
from typing import Any, ClassVar, Optional

from squall._compiled import mypyc_attr
from squall.httputil import HTTPHeaders, HTTPMessageDelegate, HTTPOutputError
from squall.httputil._exchange import DONE, GONE, IDLE, Exchange


@mypyc_attr(allow_interpreted_subclasses=True)
class _MuxStream(Exchange):
    """A request stream of an HTTP/2 or HTTP/3 connection (see the module).

    ``_closed``: the stream was reset, timed out or its connection lost;
    nothing more goes out (it may come after the response is done).
    """

    __slots__ = (
        "_proto",
        "stream_id",
        "_delegate",
        "_read_done",
        "_closed",
        "_counted",
        "_inbox",
        "_blocked",
        "_received",
        "_max_body",
        "_body_timeout",
        "_started",
        "protocol",
        "_tunnel",
        # HTTP/2's (HTTP/3 leaves them as __init__ sets them): see _H2Stream.
        "_waiters",
        "_head",
        "_last_active",
        "_expect_continue",
        "trailers",
        "_trailers_out",
    )

    #: The protocol's name, in what is raised.
    PROTOCOL: ClassVar[str]
    #: The stream reset a broken response gets, and the one close() sends.
    INTERNAL_ERROR: ClassVar[int]
    CANCEL: ClassVar[int]

    # The driver's protocol (each subclass's own type). Compiled (mypyc,
    # with _H2Stream), a subclass cannot narrow a field's type: a method
    # names the protocol's type on a local.
    _proto: Any
    stream_id: int
    _delegate: Optional[HTTPMessageDelegate]
    _read_done: bool
    _closed: bool
    _counted: bool
    _inbox: Optional[list[Any]]
    _blocked: bool
    _received: int
    _max_body: int
    _body_timeout: Optional[float]
    _started: float
    #: The ``:protocol`` of an extended CONNECT (``"websocket"``), or None;
    #: its stream is taken over by `detach` after a 2xx.
    protocol: Optional[str]
    _tunnel: Any
    # Writes waiting for the stream's output to go out (HTTP/2's windows).
    _waiters: Optional[list[asyncio.Future[None]]]
    # A response head (its header block) and first chunk not yet handed to
    # the core: sent with the end of the stream when finish() follows at once.
    _head: Optional[tuple[bytes, bytes]]
    # When the request last sent something (HTTP/2's idle stream timeout).
    _last_active: float
    _expect_continue: bool
    #: The request's trailer section, once the client sent one after the
    #: body (HTTP/2 only; None otherwise).
    trailers: Optional[HTTPHeaders]
    _trailers_out: Optional[list[tuple[bytes, bytes]]]

    def __init__(
        self,
        proto: Any,
        stream_id: int,
        now: float,
        context: Any,
        loop: asyncio.AbstractEventLoop,
        max_body: int,
    ) -> None:
        # The protocol's context, loop and body limit come as arguments: the
        # compiled HTTP/2 driver reads them from its own fields, where this
        # (for a protocol typed Any) would go through getattr for each.
        # The close callback is the plain attribute; a reset from the
        # application's own first step reaches it on the next loop turn
        # (see HTTPConnection.close_callback_attribute).
        super().__init__(context, False, True)
        # The loop the protocol's callbacks run on: the application's
        # delegate takes it from here, not from get_running_loop() (a getpid
        # system call per request on Python 3.11).
        self.loop = loop
        self._proto = proto
        self.stream_id = stream_id
        self._max_body = max_body
        self._started = self._last_active = now
        # Counted against the connection's stream limit until the response ends.
        self._counted = True
        # _closed: reset, timed out or the connection lost (nothing more goes
        # out); _inbox: body pieces (and the end, as None) held while the
        # delegate is busy.
        self._read_done = self._closed = self._blocked = self._expect_continue = False
        self._received = 0
        self._delegate = self._inbox = self._body_timeout = self.protocol = None
        self._tunnel = self._waiters = self._head = self.trailers = self._trailers_out = None

    def _emit_end(self, phase: int) -> None:
        p = self._proto
        if phase == GONE:
            p._release(self)
        elif phase == IDLE:
            # Nothing was written: the stream cannot carry a response.
            p._reset(self, self.INTERNAL_ERROR)
            p._release(self)
        else:
            p._end_response(self)

    def _emit_raw(self, chunk: bytes) -> Any:
        raise HTTPOutputError(f"write_headers must come first on an {self.PROTOCOL} stream")

    def _refuse(self) -> None:
        p = self._proto
        p._reset(self, self.INTERNAL_ERROR)
        if self._phase == DONE:
            p._release(self)

    def set_body_timeout(self, timeout: float) -> None:
        """Limit the time to receive this request's body (seconds)."""
        self._body_timeout = timeout

    def set_max_body_size(self, max_body_size: int) -> None:
        """Limit the size of this request's body (bytes)."""
        self._max_body = max_body_size

    def detach(self) -> Any:
        """Take over the stream of an extended CONNECT answered with a 2xx
        (RFC 8441, RFC 9220: a WebSocket over HTTP/2 or HTTP/3), as an
        IOStream whose bytes travel in the stream's DATA frames (the
        protocol's tunnel).

        Raises:
            HTTPOutputError: any other stream (the connection is shared by
                other streams; only the stream of an accepted extended
                CONNECT can be handed over).
            RuntimeError: already detached.
        """
        tunnel = self._tunnel
        if tunnel is None or not tunnel.accepted or self._phase < DONE:
            raise HTTPOutputError(f"an {self.PROTOCOL} stream cannot be detached")
        return tunnel._detach()

    def close(self) -> None:
        """Reset the stream (the connection stays open for other streams)."""
        self._proto._reset(self, self.CANCEL)


def stream_census(streams: Iterable[_MuxStream]) -> tuple[int, int]:
    """Requests in flight and WebSocket tunnels among a connection's streams.

    A WebSocket over HTTP/2 or HTTP/3 (RFC 8441, RFC 9220) holds its stream
    for as long as it is open: it is a connection, not a request in flight.
    """
    busy = tunnels = 0
    for stream in streams:
        if stream._tunnel is None:
            busy += 1
        else:
            tunnels += 1
    return busy, tunnels
