"""Choosing HTTP/2 on a new connection (`HTTPServer` with ``http2=True``).

Every connection is accepted as HTTP/1.1 (`_HTTPProtocol`); these decide,
from what the client does first, whether `_H2Protocol` takes it over:

* TLS: ALPN chose ``h2`` (`negotiated_h2`, called after the handshake);
* a plain port: the connection's first bytes are the HTTP/2 preface
  (prior knowledge, `PrefaceSniffer`), or its first request asks for
  ``Upgrade: h2c`` (`UpgradeSniffer`), unless the server was told not to
  take that upgrade (``h2c_upgrade=False``, the default behind a proxy:
  `PrefaceOnlySniffer`).

The checks cost only a connection's first read or first request; then the
object is an ordinary `_HTTPProtocol`. Imported by the server only.
"""

from __future__ import annotations

import asyncio

from squall._h1 import Request as H1Request
from squall._h2 import PREFACE
from squall.httpserver._h2protocol import _H2Protocol
from squall.httpserver._protocol import _HTTPProtocol

__all__ = ["PrefaceOnlySniffer", "PrefaceSniffer", "UpgradeSniffer", "negotiated_h2"]


def _wants_h2c(event: H1Request) -> bool:
    """An HTTP/1.1 request asking to switch to h2c, with no body to carry over."""
    upgrade = False
    settings = 0
    connection: set[str] = set()
    for name, value in event.headers:
        lname = name.lower()
        if lname == "upgrade":
            upgrade = upgrade or "h2c" in [t.strip().lower() for t in value.split(",")]
        elif lname == "connection":
            connection.update(t.strip().lower() for t in value.split(","))
        elif lname == "http2-settings":
            settings += 1
        elif lname == "transfer-encoding" or (lname == "content-length" and value != "0"):
            # RFC 9113 §3.2 lets a server ignore the upgrade; a body would
            # have to be read over HTTP/1.1 first.
            return False
    # RFC 7540 §3.2.1: no upgrade unless there is exactly one HTTP2-Settings
    # field; the request is then served over HTTP/1.1. §3.2 and RFC 9110
    # §7.8: both Upgrade and HTTP2-Settings are hop-by-hop, so Connection
    # names both. A proxy that forwards a client's Upgrade with "Connection:
    # upgrade" (nginx's WebSocket recipe) does not name HTTP2-Settings:
    # taking that request as an upgrade would turn the proxied connection
    # into a tunnel the proxy no longer inspects.
    return upgrade and settings == 1 and "upgrade" in connection and "http2-settings" in connection


class UpgradeSniffer(_HTTPProtocol):
    """HTTP/1.1 until its first request, which may ask for ``Upgrade: h2c``."""

    __slots__ = ()

    def _on_request(self, event: H1Request) -> None:
        # Only the first request is looked at; then this is plain HTTP/1.1.
        self.__class__ = _HTTPProtocol  # type: ignore[assignment]
        transport = self.transport
        if transport is not None and _wants_h2c(event):
            _H2Protocol.take_over(self, transport, self.h1.detach(), upgrade=event)
            return
        _HTTPProtocol._on_request(self, event)


class PrefaceSniffer(_HTTPProtocol):
    """A plain connection of an HTTP/2 server: its first bytes say which protocol.

    The check costs only the connection's first read(s); afterwards the
    object is an ordinary `_HTTPProtocol` (or `UpgradeSniffer` until the
    first request).
    """

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        _sniff(self, data, UpgradeSniffer)


class PrefaceOnlySniffer(PrefaceSniffer):
    """A `PrefaceSniffer` that never takes ``Upgrade: h2c``: HTTP/2 on a plain
    port by prior knowledge only (``h2c_upgrade=False``)."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        _sniff(self, data, _HTTPProtocol)


def _sniff(proto: _HTTPProtocol, data: bytes, then: type[_HTTPProtocol]) -> None:
    """A sniffer's read: the preface (HTTP/2), or HTTP/1.1 as ``then``."""
    if not isinstance(proto, PrefaceSniffer):
        # uvloop keeps calling the data_received it took at connection_made
        # after the class has changed: past the first read, this is HTTP/1.1
        # (and a later request no longer looked at for a preface or h2c).
        _HTTPProtocol.data_received(proto, data)
        return
    # Bytes held back so far are a prefix of the preface, so they are
    # known without reading them back.
    held = proto.h1.buffered
    seen = PREFACE[:held] + data if held else data
    n = min(len(seen), len(PREFACE))
    transport = proto.transport
    if transport is not None and seen[:n] == PREFACE[:n]:
        proto.h1.detach()
        if n == len(PREFACE):
            _H2Protocol.take_over(proto, transport, seen)
        else:
            proto.h1.receive_data(seen)  # wait for the rest of the preface
        return
    proto.__class__ = then  # type: ignore[assignment]
    _HTTPProtocol.data_received(proto, data)


def negotiated_h2(proto: _HTTPProtocol, transport: asyncio.Transport) -> bool:
    """After a TLS handshake: serve HTTP/2 if ALPN chose it (and take over)."""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
        return False
    _H2Protocol.take_over(proto, transport, proto.h1.detach())
    return True
