"""The delegate interfaces between server, router and application.

`HTTPServerConnectionDelegate`, `HTTPMessageDelegate` and `HTTPConnection`
(defined with the rest of the exchange contract in ``_exchange``) are base
classes that servers, routers and applications subclass; they stay
interpreted in every build (``_request``, beside them, may be compiled).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Optional

from squall.httputil._exchange import HTTPConnection
from squall.httputil._headers import HTTPHeaders
from squall.httputil._startline import StartLine

__all__ = ["HTTPConnection", "HTTPMessageDelegate", "HTTPServerConnectionDelegate"]


class HTTPServerConnectionDelegate:
    """What a server calls for each connection it accepts (`.HTTPServer` is one)."""

    def start_request(
        self, server_conn: object, request_conn: HTTPConnection
    ) -> HTTPMessageDelegate:
        """Called as a new request begins on a connection.

        Args:
            server_conn: an opaque object standing for the long-lived
                (possibly multi-request) connection.
            request_conn: the `~squall.httputil.HTTPConnection` for this one request.

        Returns:
            The `~squall.httputil.HTTPMessageDelegate` that will receive the request.
        """
        raise NotImplementedError()

    def on_close(self, server_conn: object) -> None:
        """Called once a connection has closed.

        Args:
            server_conn: the object that was passed to `start_request`.
        """


class HTTPMessageDelegate:
    """Receives one HTTP message (a request on a server, a response on a client).

    The methods are called in order: `headers_received` once, `data_received`
    for each piece of the body, then `finish`, or `on_connection_close` if the
    connection closes first.
    """

    def headers_received(
        self, start_line: StartLine, headers: HTTPHeaders
    ) -> Optional[Awaitable[None]]:
        """Called when the start line and headers have arrived.

        Args:
            start_line: a `.RequestStartLine` or `.ResponseStartLine`.
            headers: the message's headers.

        Returns:
            ``None``, or an awaitable to apply flow control: no more body is
            read until it completes.
        """
        return None

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        """Called with each chunk of the body.

        Returns:
            ``None``, or an awaitable that delays reading until it completes.
        """
        return None

    def finish(self) -> None:
        """Called after the last chunk of the body."""

    def on_connection_close(self) -> None:
        """Called if the connection closes before the message is complete."""


class _Forwarding(HTTPMessageDelegate):
    # A delegate in front of another one: a subclass handles the head and
    # sets ``delegate`` by then (a slot of its own); the body, the end and a
    # close pass through (routing's delegate, squall run's front).
    __slots__ = ()
    delegate: Optional[HTTPMessageDelegate]

    def data_received(self, chunk: bytes) -> Optional[Awaitable[None]]:
        assert self.delegate is not None
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        assert self.delegate is not None
        self.delegate.finish()

    def on_connection_close(self) -> None:
        if self.delegate is not None:
            self.delegate.on_connection_close()


class _OpenAttributes:
    # The base of HTTPServerRequest. Empty, and always interpreted: a class
    # that mypyc compiles gets an instance __dict__ only when it inherits
    # from an interpreted class, and applications hang their own attributes
    # on requests.
    __slots__ = ()
