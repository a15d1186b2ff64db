"""Setting up HTTP/3 at listen time: the QUIC server configuration from the
certificate's files, and the UDP socket beside a TCP listener.

Run once per listener, not per connection or per datagram: kept out of the
driver (``_h3protocol``), which re-exports both.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from squall._quicstack import H3_ALPN, QuicConfiguration

__all__ = ["quic_configuration", "udp_socket"]


def quic_configuration(options: Any, idle_timeout: float) -> QuicConfiguration:
    """The QUIC server configuration for ``options``: a dict with
    ``certfile``, ``keyfile`` (and ``password``), as the QUIC stack reads the
    certificate from files, not from an `ssl.SSLContext`.

    Raises:
        ValueError: no certificate file in ``options``.
        OSError, ValueError: a certificate or key that does not load.
    """
    if not isinstance(options, dict) or not options.get("certfile"):
        raise ValueError(
            "http3 needs the certificate's files: ssl_options as a dict with "
            "'certfile' and 'keyfile', or http3={'certfile': ..., 'keyfile': ...}"
        )
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.idle_timeout = idle_timeout
    # The RTT assumed before the first sample: aioquic's 100 ms on both
    # stacks (qh3 takes RFC 9002's 333 ms, which triples its wait to
    # retransmit a first flight it failed to build, see _quicstack).
    config.initial_rtt = 0.1
    # HTTP Datagrams (RFC 9297), for WebTransport.
    config.max_datagram_frame_size = 65536
    config.load_cert_chain(options["certfile"], options.get("keyfile"), options.get("password"))
    return config


def udp_socket(tcp: socket.socket, reuse_port: bool = True) -> Optional[socket.socket]:
    """A UDP socket bound where ``tcp`` listens (None for a Unix socket).

    With SO_REUSEPORT, so that each worker of ``squall run`` binds its own
    at the port the supervisor's TCP listener has (workers inherit the TCP
    socket, not this one). The kernel picks a worker's socket by a hash of
    the 4-tuple: a QUIC connection's packets reach the worker that has it
    as long as the client's address and port stay the same and the set of
    workers does not change (a worker that leaves or joins moves some
    clients' packets to a worker that does not know their connection,
    which then times out; connection migration is not followed either).
    """
    if tcp.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    udp = socket.socket(tcp.family, socket.SOCK_DGRAM)
    try:
        if tcp.family == socket.AF_INET6:
            udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        udp.bind(tcp.getsockname()[:2])
        udp.setblocking(False)
    except BaseException:
        udp.close()
        raise
    return udp
