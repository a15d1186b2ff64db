"""A tiny DNS responder on 127.0.0.1 (UDP, port 0) for resolver tests.

It answers A and AAAA questions from a fixed table and NXDOMAIN otherwise
(RFC 1035 §4.1), so that resolvers can be tested through their real socket
path without a network.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Optional

A, AAAA, ANY = 1, 28, 255


class DNSResponder(asyncio.DatagramProtocol):
    """Answers from ``table``: {name: [address, ...]} (IPv4 and IPv6 literals)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.transport: Optional[asyncio.DatagramTransport] = None
        self.questions: list[tuple[str, int]] = []

    @classmethod
    async def start(cls, table: dict[str, list[str]]) -> tuple[DNSResponder, int]:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(table), local_addr=("127.0.0.1", 0)
        )
        assert proto.transport is not None
        return proto, proto.transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ident, _flags, qdcount = struct.unpack("!HHH", data[:6])
        labels = []
        pos = 12
        while data[pos]:
            length = data[pos]
            labels.append(data[pos + 1 : pos + 1 + length].decode("ascii"))
            pos += 1 + length
        qtype, _qclass = struct.unpack("!HH", data[pos + 1 : pos + 5])
        question = data[12 : pos + 5]
        name = ".".join(labels).lower()
        self.questions.append((name, qtype))
        answers = []
        for address in self.table.get(name, []):
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            rtype = AAAA if family == socket.AF_INET6 else A
            # ANY (255) gets every record, as Twisted's getHostByName asks.
            if qtype not in (rtype, ANY):
                continue
            rdata = socket.inet_pton(family, address)
            # A pointer to the question's name, then type, class IN, TTL, data.
            answers.append(b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 60, len(rdata)) + rdata)
        known = name in self.table
        flags = 0x8180 if known else 0x8183  # response, RD+RA; rcode 3 = NXDOMAIN
        header = struct.pack("!HHHHHH", ident, flags, qdcount, len(answers), 0, 0)
        assert self.transport is not None
        self.transport.sendto(header + question + b"".join(answers), addr)
