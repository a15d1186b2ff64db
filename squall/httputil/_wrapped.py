"""An exchange in front of another: `WrappedConnection`.

Squall puts a connection of its own in front of a driver's when it has to
see or change the response on its way out: the runner follows status and
size for the access log (``cli/_serving._AppConnection``), a server that
also serves HTTP/3 adds ``Alt-Svc`` (``httpserver/_altsvc._AltSvcConnection``).
Each is an `.Exchange` (the contract's phase and close callback are its
own; the Content-Length is checked here and counted behind) whose emit
hooks call the connection behind it;
what a protocol adds to the contract is forwarded by name, never by
``__getattr__``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import IO, Any, Optional

from squall.httputil._exchange import IDLE, Exchange, HTTPConnection, close_by_attribute
from squall.httputil._headers import HTTPHeaders, HTTPOutputError
from squall.httputil._startline import ResponseStartLine

__all__ = ["WrappedConnection"]


class WrappedConnection(Exchange):
    """An `.Exchange` over ``conn``, the connection a driver made.

    It keeps ``conn``'s close_callback_attribute capability, so that a
    handler's fast path holds behind it. Who reports the close is the
    subclass's choice: `watch_close` has ``conn`` report it here.
    """

    def __init__(self, conn: HTTPConnection) -> None:
        Exchange.__init__(self, conn.context)
        if isinstance(conn, Exchange):
            self.loop = conn.loop
        self._conn = conn
        self.close_callback_attribute = close_by_attribute(conn)

    def watch_close(self) -> None:
        """Has the connection behind report its close to this exchange
        (which reports it to its own close callback, if unfinished)."""
        conn = self._conn
        if self.close_callback_attribute:
            conn.close_callback = self._lost
        else:
            conn.set_close_callback(self._lost)

    def _lost(self) -> None:
        self._report_gone()

    # -- the emit hooks (Exchange) ------------------------------------------------

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        conn = self._conn
        try:
            sent = conn.write_headers(start_line, headers, chunk)
        except HTTPOutputError:
            if not conn.head_written:
                self._phase = IDLE  # refused, nothing sent: an error may follow
            raise
        # The connection behind counts the body against the Content-Length:
        # it knows what this one does not (a HEAD request's has no body).
        self._declared = None
        return sent

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        return self._conn.write(chunk)

    def _emit_raw(self, chunk: bytes) -> asyncio.Future[None]:
        # The legacy raw response (HTTP/1.1): the connection behind decides.
        return self._conn.write(chunk)

    def _emit_end(self, phase: int) -> None:
        self._conn.finish()

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        return self._conn.write_informational(code, headers) is True

    def _refuse(self) -> None:
        self._conn.close()

    # -- the rest of the contract, forwarded ----------------------------------------

    def sendfile(self, file: IO[bytes], count: int) -> Optional[Awaitable[None]]:
        """Declined (None): the body goes through `write`, where it is counted."""
        return None

    def set_body_timeout(self, timeout: float) -> None:
        """The connection behind's (see `HTTPConnection.set_body_timeout`)."""
        self._conn.set_body_timeout(timeout)

    def set_max_body_size(self, max_body_size: int) -> None:
        """The connection behind's (see `HTTPConnection.set_max_body_size`)."""
        self._conn.set_max_body_size(max_body_size)

    def detach(self) -> Any:
        """The connection behind's (see `HTTPConnection.detach`)."""
        return self._conn.detach()

    def close(self) -> None:
        """The connection behind's (see `HTTPConnection.close`)."""
        self._conn.close()

    def send_now(self) -> None:
        """The connection behind's (see `Exchange.send_now`): what a
        handler's flush() wrote goes on the wire before it returns, as
        without the wrapper (a handler that flushes, then closes or blocks,
        had its client see nothing of it)."""
        send_now = getattr(self._conn, "send_now", None)
        if send_now is not None:
            send_now()

    # -- what a protocol adds: the connection behind's own ------------------------

    @property
    def stream(self) -> Any:
        """The HTTP/1.1 connection's IOStream (None elsewhere)."""
        return getattr(self._conn, "stream", None)

    @property
    def transport(self) -> Optional[asyncio.BaseTransport]:
        """The transport of the connection behind, if it has one."""
        transport: Optional[asyncio.BaseTransport] = getattr(self._conn, "transport", None)
        return transport

    @property
    def protocol(self) -> Optional[str]:
        """An extended CONNECT's ``:protocol`` (HTTP/2 and 3), else None."""
        protocol: Optional[str] = getattr(self._conn, "protocol", None)
        return protocol

    @property
    def webtransport(self) -> Any:
        """A WebTransport CONNECT's connection and stream ID (HTTP/3), else None."""
        return getattr(self._conn, "webtransport", None)

    @property
    def trailers(self) -> Optional[HTTPHeaders]:
        """The request's trailer section (HTTP/2 and 3), else None."""
        trailers: Optional[HTTPHeaders] = getattr(self._conn, "trailers", None)
        return trailers

    def set_trailers(self, trailers: HTTPHeaders) -> None:
        """Sends the response's trailers where the protocol has them (HTTP/2, 3).

        Raises:
            HTTPOutputError: the protocol carries no trailers, or as the
                connection behind raises.
        """
        set_trailers = getattr(self._conn, "set_trailers", None)
        if set_trailers is None:
            raise HTTPOutputError("this connection sends no trailers")
        set_trailers(trailers)
