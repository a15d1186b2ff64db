"""Which proxy headers name a request's client, and from which peers.

One model serves the three places that read them: `HTTPServer` with
``xheaders=True``, ``squall run --proxy-headers`` and the ASGI scope it
builds. A `ProxyHeaders` says which family of headers counts (its
``style``) and which peers are trusted to have set them; the headers of
any other family are ignored, since a proxy that sets one family usually
passes the other on from the client untouched (nginx's ``proxy_set_header
X-Forwarded-For`` leaves a client's ``Forwarded`` as it came):

* ``"x-forwarded"``: ``X-Forwarded-For`` and ``X-Forwarded-Proto``;
* ``"forwarded"``: RFC 7239 ``Forwarded``;
* ``"xheaders"``: Tornado's ``xheaders=True``, kept as Tornado documents it:
  ``X-Real-Ip`` before ``X-Forwarded-For``, ``X-Scheme`` before
  ``X-Forwarded-Proto``, from any peer.

In an address list, each proxy appends the address it received the
request from, so the list is read from the right: the first address that
is not itself a trusted proxy's is the client's, and what lies left of it
was written by the client and is not believed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

from squall import netutil

__all__ = ["STYLES", "ProxyHeaders", "TrustedPeers", "parse_forwarded"]

#: The header families a `ProxyHeaders` may be told to read.
STYLES = ("x-forwarded", "forwarded", "xheaders")

_Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
_Fields = Mapping[str, Sequence[str]]


class TrustedPeers:
    """A set of proxy addresses: addresses, networks (``10.0.0.0/8``) or ``*``.

    Args:
        items: the addresses and networks.

    Raises:
        ValueError: an item with a ``/`` is not a network.
    """

    def __init__(self, items: Sequence[str]) -> None:
        self.any = "*" in items
        self.addresses: set[str] = set()
        self.networks: list[_Network] = []
        for item in items:
            if item == "*":
                continue
            if "/" in item:
                try:
                    self.networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise ValueError(f"--forwarded-allow-ips: {item!r} is not a network") from None
            else:
                self.addresses.add(item)

    def __contains__(self, ip: object) -> bool:
        if self.any or ip in self.addresses:
            return True
        if not self.networks or not isinstance(ip, str):
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1].replace('\\"', '"')
    return value


def _node_ip(node: str) -> Optional[str]:
    """The IP of a ``for=`` node (RFC 7239 §6), without port; None if obfuscated."""
    node = _unquote(node)
    if node.startswith("["):
        end = node.find("]")
        node = node[1:end] if end > 0 else node[1:]
    elif node.count(":") == 1:
        node = node.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(node))
    except ValueError:
        return None


def parse_forwarded(value: str) -> list[dict[str, str]]:
    """The elements of a ``Forwarded`` header (RFC 7239 §4), nearest proxy last."""
    elements = []
    # Quoted strings may hold commas and semicolons: split outside quotes only.
    element: dict[str, str] = {}
    pair: list[str] = []
    quoted = False
    for ch in value + ",":
        if ch == '"':
            quoted = not quoted
            pair.append(ch)
        elif not quoted and ch in ";,":
            text = "".join(pair).strip()
            pair = []
            if "=" in text:
                name, _, val = text.partition("=")
                element[name.strip().lower()] = _unquote(val)
            if ch == ",":
                if element:
                    elements.append(element)
                element = {}
        else:
            pair.append(ch)
    return elements


class ProxyHeaders:
    """Which proxy headers count (``style``), and from which peers.

    Args:
        style: one of `STYLES`.
        trusted: the peers whose headers count, also skipped in address
            lists; None: any peer's (``xheaders``), skipping ``skip``.
        skip: with ``trusted`` None, addresses passed over in
            ``X-Forwarded-For`` (HTTPServer's ``trusted_downstream``).

    Raises:
        ValueError: an unknown style.
    """

    __slots__ = ("style", "trusted", "skip", "names")

    def __init__(
        self,
        style: str = "x-forwarded",
        trusted: Optional[TrustedPeers] = None,
        skip: Any = (),
    ) -> None:
        if style not in STYLES:
            raise ValueError(f"proxy header style {style!r}: expected one of {', '.join(STYLES)}")
        self.style = style
        self.trusted = trusted
        self.skip: Any = trusted if trusted is not None else frozenset(skip)
        #: The fields this style reads: a request with none of them is the peer's.
        self.names: tuple[str, ...] = {
            "x-forwarded": ("X-Forwarded-For", "X-Forwarded-Proto"),
            "forwarded": ("Forwarded",),
            "xheaders": ("X-Forwarded-For", "X-Real-Ip", "X-Scheme", "X-Forwarded-Proto"),
        }[style]

    def trusts(self, ctx: Any) -> bool:
        """Whether the connection's peer may set proxy headers (any peer on
        a Unix socket: only a local proxy can reach one)."""
        if self.trusted is None:
            return True
        if ctx is None:
            return False
        return ctx.address_family == socket.AF_UNIX or ctx._orig_remote_ip in self.trusted

    def resolve(self, ctx: Any, fields: _Fields) -> Optional[tuple[Optional[str], Optional[str]]]:
        """The client's address and scheme (``"http"``/``"https"``) the headers
        name, each None if they name none; None if neither, or if the peer
        is not trusted.

        Args:
            ctx: the connection's `_HTTPRequestContext` (its peer address).
            fields: the request's header fields, name -> list of values.
        """
        # (A loop, not all() over a generator: most requests carry none of
        # these, and this runs for each under squall run.)
        for name in self.names:
            if name in fields:
                break
        else:
            return None
        if not self.trusts(ctx):
            return None
        get = fields.get
        if self.style == "forwarded":
            ip, scheme = self._forwarded(get("Forwarded"))
        elif self.style == "x-forwarded":
            ip = self._rightmost(get("X-Forwarded-For"))
            scheme = _last(get("X-Forwarded-Proto"))
        else:
            # Validated there, and kept as written, as Tornado keeps it.
            return self._xheaders(fields)
        address: Optional[str] = None
        if ip:
            try:
                address = str(ipaddress.ip_address(ip))
            except ValueError:
                pass
        protocol: Optional[str] = None
        if scheme is not None:
            scheme = scheme.lower()
            if scheme in ("http", "https", "ws", "wss"):
                protocol = "https" if scheme in ("https", "wss") else "http"
        if address is None and protocol is None:
            return None
        return address, protocol

    def _rightmost(self, values: Optional[Sequence[str]]) -> Optional[str]:
        """The right-most address of a list that is not a trusted proxy's."""
        if values is None:
            return None
        ip: Optional[str] = None
        for candidate in reversed(",".join(values).split(",")):
            ip = candidate.strip()
            if ip not in self.skip:
                break
        return ip

    def _forwarded(self, values: Optional[Sequence[str]]) -> tuple[Optional[str], Optional[str]]:
        if values is None:
            return None, None
        chosen: Optional[dict[str, str]] = None
        for element in reversed(parse_forwarded(",".join(values))):
            chosen = element
            node = _node_ip(element.get("for", ""))
            if node is None or node not in self.skip:
                break
        if chosen is None:
            return None, None
        # The element the outermost trusted proxy appended: its proto is the
        # scheme the client used to reach it.
        return _node_ip(chosen.get("for", "")), chosen.get("proto")

    def _xheaders(self, fields: _Fields) -> Optional[tuple[Optional[str], Optional[str]]]:
        # Tornado's documented order, values of repeated fields joined as
        # HTTPHeaders.get joins them (an invalid result is not taken).
        real = _joined(fields.get("X-Real-Ip"))
        ip = real if real is not None else self._rightmost(fields.get("X-Forwarded-For"))
        if ip is not None and not netutil.is_valid_ip(ip):
            ip = None
        scheme = _joined(fields.get("X-Scheme"))
        if scheme is None:
            scheme = _joined(fields.get("X-Forwarded-Proto"))
        if scheme is not None:
            scheme = scheme.split(",")[-1].strip()
            if scheme not in ("http", "https"):
                scheme = None
        if ip is None and scheme is None:
            return None
        return ip, scheme


def _joined(values: Optional[Sequence[str]]) -> Optional[str]:
    return None if values is None else ",".join(values)


def _last(values: Optional[Sequence[str]]) -> Optional[str]:
    """The right-most entry of a comma-separated list (the nearest proxy's)."""
    return None if values is None else values[-1].split(",")[-1].strip()
