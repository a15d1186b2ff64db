"""`HTTPConnection`, the exchange contract's declaration (see ``_exchange``).

Kept interpreted while ``_exchange`` (its `.Exchange`) is compiled: compiled
code checks the type of an argument annotated with a compiled class, and a
connection the application hands in (a Tornado-style object that only has
the methods, a test's stand-in, None) must go through wherever the
contract's type is written, as it does on Tornado. A compiled subclass
declares again each field below that it sets (`.Exchange.__init__` does):
mypyc makes fields only of what the compiled class declares, and anything
else goes to an instance ``__dict__``, one made per request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import IO, Any, Optional

from squall.httputil._headers import HTTPHeaders, HTTPOutputError
from squall.httputil._startline import StartLine

__all__ = ["HTTPConnection", "check_informational"]


class HTTPConnection:
    """The application's side of one HTTP message exchange: what it writes the response to.

    A server hands one to the application per request (``request.connection``).
    Every method below is part of the contract; a method a protocol cannot
    honour raises as documented instead of being absent. The base class
    raises `NotImplementedError` everywhere: a subclass from outside Squall
    (Tornado's interface has only the first three) implements what it needs.
    """

    #: A capability of the connection, read by the application
    #: (`.RequestHandler`) instead of testing for a concrete class. ``True``
    #: promises two things: the close callback is the plain attribute
    #: `close_callback` (``set_close_callback(cb)`` only assigns it, so the
    #: application may assign it directly; ``set_close_callback(None)``
    #: assigns a callback that does nothing, so that ``None`` means unset),
    #: and the application may leave it unset until its synchronous part
    #: has returned, setting it only if it is still running and the
    #: attribute still unset then (a callback chosen in that part stands):
    #: a close that comes while the attribute is unset and the response
    #: unfinished (from the event loop, or from the
    #: application's own calls, such as a stream reset by ``close()``) is
    #: reported again on the next loop turn, to the callback set by then.
    #: ``False``
    #: (the default): the application calls ``set_close_callback`` as soon as
    #: it starts. A class attribute here; a connection may set it per
    #: instance (a slot is read faster).
    close_callback_attribute: bool = False
    #: Called if the connection closes before the response is finished
    #: (only where `close_callback_attribute` is ``True``).
    close_callback: Optional[Callable[[], None]]
    #: What the request reads of the peer: ``remote_ip``, ``protocol`` and
    #: ``address`` (a server's connections have all three).
    context: Any

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> asyncio.Future[None]:
        """Writes the start line and headers, and optionally the first body chunk.

        Args:
            start_line: a `.RequestStartLine` or `.ResponseStartLine`.
            headers: the headers to send.
            chunk: the first (possibly only) piece of the body.

        Returns:
            A future that resolves once the data has been written out; if
            the peer is gone, one failed with `.StreamClosedError`.

        Raises:
            HTTPOutputError: a head already written, a field the protocol
                cannot carry, an invalid Content-Length, or a first chunk
                longer than it. Unless `head_written` says otherwise
                afterwards, nothing was sent and the application may still
                answer with an error instead.
        """
        raise NotImplementedError()

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Writes a chunk of the body.

        Returns:
            A future that resolves once the chunk has been written out (the
            peer's flow control holds it back); if the peer is gone or the
            response finished, one failed with `.StreamClosedError`.

        Raises:
            HTTPOutputError: more bytes than the Content-Length (the
                exchange is then aborted), or no head written where the
                protocol needs one first (HTTP/2, ASGI).
        """
        raise NotImplementedError()

    def finish(self) -> None:
        """Marks the end of the message. A second call does nothing.

        Raises:
            HTTPOutputError: fewer bytes written than the Content-Length (the
                exchange is then aborted).
        """
        raise NotImplementedError()

    def write_informational(self, code: int, headers: HTTPHeaders) -> bool:
        """Sends an interim (1xx) response ahead of the final one, if the
        connection can: a capability a connection may decline.

        ``103 Early Hints`` (RFC 8297) is what an application sends this way;
        ``100 Continue`` is the server's own. The base class declines.

        Args:
            code: the status, 1xx and not 101 (a switch of protocol is a
                final answer here).
            headers: the fields of the interim head (``Link``, for 103).

        Returns:
            True once the head is queued to go out ahead of the response.
            False, with nothing sent, when the connection declines: the
            response has started, the client cannot take a 1xx (HTTP/1.0,
            RFC 9110 section 15.2), or the protocol has no way to carry it.

        Raises:
            HTTPOutputError: ``code`` is not an interim status, or a field
                the protocol cannot carry.
        """
        check_informational(code)
        return False

    @property
    def head_written(self) -> bool:
        """Whether a head went out (read after `write_headers` raised).

        ``True`` where the connection cannot tell: the application then
        does not try a second head.
        """
        return True

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        """Call ``callback`` (from the event loop) if the connection closes
        before the response is finished; ``None`` removes it. Raises nothing."""
        raise NotImplementedError()

    # -- optional capabilities: each may decline (None), and then nothing was done ----

    def write_rendered_head(
        self, head: bytes, framing: int, chunk: bytes
    ) -> Optional[asyncio.Future[None]]:
        """Writes a response head already rendered to bytes, with the first body chunk.

        For a caller that renders heads itself from checked bytes (the ASGI
        driver): ``head`` is the status line and fields, each line checked,
        ending with the blank line; ``framing`` the body's length (its
        Content-Length, already in ``head``), or -1 if none is declared.

        Returns:
            The future of `write_headers`; or None, with nothing written,
            where the connection declines (the default, and HTTP/1.1 where
            its state needs the head changed: a HEAD request, HTTP/1.0, a
            connection to close): the caller then uses `write_headers`.
        """
        return None

    def sendfile(self, file: IO[bytes], count: int) -> Optional[Awaitable[None]]:
        """Sends ``count`` body bytes of ``file``, from its offset, without
        copying them through Python (sendfile(2)), after `write_headers`.

        Returns:
            An awaitable that resolves once sent; or None, with nothing done,
            where the connection declines (the default; TLS; a body not framed
            by a Content-Length): the caller then writes the bytes itself.

        Raises:
            HTTPOutputError: more bytes than the Content-Length.
        """
        return None

    def set_body_timeout(self, timeout: float) -> None:
        """Limits the time to receive this request's body (seconds), where
        the server owns the timeouts (an ASGI server keeps its own). Raises nothing."""
        raise NotImplementedError()

    def set_max_body_size(self, max_body_size: int) -> None:
        """Limits the size of this request's body (bytes); a larger body
        closes the exchange (a 400 if no response started). Raises nothing."""
        raise NotImplementedError()

    def detach(self) -> Any:
        """Takes the connection over as an `.IOStream` (after a 101 answer,
        for WebSocket); HTTP processing stops.

        Raises:
            HTTPOutputError: the protocol cannot hand the connection over (an
                HTTP/2 stream shares its connection; an ASGI HTTP request).
            RuntimeError: already detached.
        """
        raise NotImplementedError()

    def close(self) -> None:
        """Closes the exchange now (HTTP/1.1: the connection; HTTP/2: the
        stream, by a reset; ASGI: the call returns). Raises nothing."""
        raise NotImplementedError()


def check_informational(code: int) -> None:
    """Raises `.HTTPOutputError` unless ``code`` may be sent as an interim head."""
    if type(code) is not int or not 100 <= code < 200 or code == 101:
        raise HTTPOutputError(f"{code!r} is not an interim (1xx) status other than 101")
