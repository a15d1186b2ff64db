"""Instructions per HTTP/3 request in the client, counted by callgrind.

The harness of callgrind_h3.py turned around: a fixed server (a bare
HTTP/3 server on aioquic's stack, the constant answer of callgrind_h3.py's
``--server aioquic``, transmitting after each datagram as Hypercorn does)
runs inside ``sq_measure_a`` (not counted), and the client is counted:
``--connections`` clients, each one QUIC connection keeping ``--streams``
requests (``GET /?n=bench``) in flight, on the virtual clock and fake
datagram transports of callgrind_h3.py.

Clients (``--client``):
- ``squall``: `squall.h3client.H3AsyncHTTPClient` (``http3_prior_knowledge``),
  ``--streams`` coroutines per client each looping ``await client.fetch(url)``:
  what a user's code costs, the Future, the Task's wake-up and the
  `HTTPResponse` included.
- ``aioquic`` (or ``qh3``): the shape of aioquic's example client
  (callgrind_h3.py's load client: `H3Connection` events on a
  `QuicConnectionProtocol`, a request sent as each one ends), the floor a
  Python HTTP/3 client on that stack has: no policy, no response objects.

Instructions per request = the measured run's count / its requests, after
a warm-up (handshakes, first requests) that is not counted. The fake
transport's ``sendto`` (a list append and a timer) stands in for the system
call (not counted by callgrind); datagrams per request are reported.

Stages (``--profile``): probes on aioquic's and Squall's functions give
each one's inclusive count per request, the client's calls only.

Usage:
  python benchmarks/callgrind_h3client.py [-n 1280] [--connections 4]
      [--streams 16] [--client squall|aioquic|qh3] [--profile] [--json FILE]
Needs valgrind and aioquic; SQUALL_NO_SPEEDUPS=1 for the pure build.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import socket
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import callgrind_h3 as h3  # noqa: E402
from callgrind_hotpath import Probes  # noqa: E402

URL = f"https://localhost:{h3.SERVER_ADDR[1]}/?n=bench"

# (stage, module, qualname): inclusive counts per request, client side only.
STAGES = [
    ("fetch() (request side)", "squall.httpclient", "AsyncHTTPClient.fetch"),
    ("  HTTPRequest()", "squall.httpclient", "HTTPRequest.__init__"),
    ("  fetch_impl", "squall.simple_httpclient._h3", "H3AsyncHTTPClient.fetch_impl"),
    ("    options", "squall.simple_httpclient._policy", "options"),
    ("    _h3_key", "squall.simple_httpclient._h3", "H3AsyncHTTPClient._h3_key"),
    ("    _new_fetch (policy)", "squall.simple_httpclient._h2", "H2AsyncHTTPClient._new_fetch"),
    ("      request_fields", "squall.simple_httpclient._policy", "request_fields"),
    ("    submit", "squall.simple_httpclient._h3", "_H3ClientProtocol.submit"),
    ("      _message", "squall.simple_httpclient._h3", "_H3ClientProtocol._message"),
    ("      new stream id", "aioquic.quic.connection",
     "QuicConnection.get_next_available_stream_id"),
    ("      send_headers", "aioquic.h3.connection", "H3Connection.send_headers"),
    ("        QPACK encode", "squall.httpserver._h3conn", "GuardedH3Connection._encode_headers"),
    ("        send_stream_data", "aioquic.quic.connection", "QuicConnection.send_stream_data"),
    ("datagram in", "squall.simple_httpclient._h3", "_H3ClientProtocol.datagram_received"),
    ("datagram in (aioquic's)", "aioquic.asyncio.protocol",
     "QuicConnectionProtocol.datagram_received"),
    *h3.QUIC_RECEIVE,
    ("  events", "aioquic.asyncio.protocol", "QuicConnectionProtocol._process_events"),
    ("    h3 handle_event", "squall.httpserver._h3conn", "GuardedH3Connection.handle_event"),
    ("      QPACK decode", "squall.httpserver._h3conn", "GuardedH3Connection._decode_headers"),
    ("      section_cost", "squall.httpserver._h3conn", "section_cost"),
    ("    driver: response head", "squall.simple_httpclient._h3", "_H3ClientProtocol._head"),
    ("      on_head", "squall.simple_httpclient._mux", "StreamResponses.on_head"),
    ("    driver: body", "squall.simple_httpclient._mux", "StreamResponses.on_body"),
    ("    driver: end", "squall.simple_httpclient._mux", "StreamResponses.on_end"),
    ("      complete_fetch", "squall.simple_httpclient._h2", "H2AsyncHTTPClient.complete_fetch"),
    ("      HTTPResponse()", "squall.httpclient", "HTTPResponse.__init__"),
    ("      deliver (Future)", "squall.simple_httpclient._h2", "H2AsyncHTTPClient._deliver"),
    *h3.QUIC_TRANSMIT,
    ("  (harness) sendto", "callgrind_h3", "ClientTransport.sendto"),
    *h3.QUIC_TIMER,
]  # fmt: skip


class _PeerTransport(h3.ClientTransport):
    """callgrind_h3's client transport, saying whom it is connected to (the
    client's QUIC connection takes its network path from it)."""

    __slots__ = ()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": h3.SERVER_ADDR, "sockname": self.addr}.get(name, default)


class _Loop(h3.VirtualLoop):
    """The virtual loop, whose datagram endpoints are fake transports to the server."""

    def __init__(self) -> None:
        super().__init__()
        self.endpoint: Any = None
        self.clients: dict[Any, Any] = {}
        self.transports: list[Any] = []

    async def create_datagram_endpoint(  # type: ignore[override]
        self, protocol_factory: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, Any]:
        protocol = protocol_factory()
        addr = ("127.0.0.1", 50000 + len(self.clients))
        transport = _PeerTransport(self, self.endpoint, addr)
        self.clients[addr] = protocol
        self.transports.append(transport)
        protocol.connection_made(transport)
        return transport, protocol


def _resolver() -> Any:
    from squall.netutil import Resolver

    class Fixed(Resolver):
        """``localhost`` is the fake server (no getaddrinfo thread)."""

        async def resolve(
            self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
        ) -> list[tuple[int, Any]]:
            return [(socket.AF_INET, h3.SERVER_ADDR)]

    return Fixed()


class SquallClients:
    """``connections`` H3AsyncHTTPClients (one QUIC connection each), each
    with ``streams`` coroutines fetching while the run hands out requests."""

    def __init__(self, loop: _Loop, connections: int, streams: int, run: Any) -> None:
        from squall.h3client import H3AsyncHTTPClient

        self.loop = loop
        self.streams = streams
        self.run = run
        resolver = _resolver()

        async def make() -> list[Any]:
            return [
                H3AsyncHTTPClient(
                    force_instance=True, http3_prior_knowledge=True, resolver=resolver
                )
                for _ in range(connections)
            ]

        self.clients = loop.run_until_complete(make())

    async def worker(self, client: Any) -> None:
        run = self.run
        while run.take():
            response = await client.fetch(URL, validate_cert=False, raise_error=False)
            run.statuses[str(response.code)] += 1
            run.finished()

    def kick(self) -> None:
        for client in self.clients:
            for _ in range(self.streams):
                self.loop.create_task(self.worker(client))


def build(loop: _Loop, cfg: dict[str, Any]) -> tuple[Any, Any, Any]:
    """The fixed server and the clients: ``(run, server transport, kick)``,
    where ``kick()`` starts the clients on the run's requests."""
    if cfg["client"] != "squall":
        # aioquic's example-client shape: callgrind_h3.py's load clients.
        run, transport, conns = h3.build(loop, dict(cfg, client=cfg["client"]))
        loop.transports.extend(client._transport for client in conns)

        def kick() -> None:
            for client in conns:
                client.kick()

        return run, transport, kick
    run = h3.Run(loop)

    async def in_loop() -> Any:
        return h3.bare_endpoint(cfg["server"], cfg["cpu"])

    endpoint = loop.run_until_complete(in_loop())
    transport = h3.ServerTransport(loop, loop.clients)
    endpoint.connection_made(transport)
    loop.endpoint = endpoint
    clients = SquallClients(loop, cfg["connections"], cfg["streams"], run)
    return run, transport, clients.kick


def drive(loop: _Loop, run: Any, kick: Any, total: int) -> None:
    done = run.start(total)
    loop.call_soon(kick)
    loop.run_until_complete(done)


def _client_sent(loop: _Loop) -> int:
    """Datagrams the clients have sent so far."""
    return sum(transport.sent for transport in loop.transports)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: builds the server and clients, warms up, measures."""
    import _probe

    mod = _probe.load()
    h3.Meter.mod = mod
    h3.Meter.counted = "client"
    loop = _Loop()
    asyncio.set_event_loop(loop)
    probes = Probes(mod)
    if cfg["profile"]:
        for label, module, qualname in STAGES:
            if module == "callgrind_h3":
                probes.wrap(h3.ClientTransport, qualname.split(".")[1], label, qualname)
            elif cfg["client"] == "squall" or not module.startswith("squall"):
                probes.wrap_path(label, module, qualname)
    run, server_transport, kick = build(loop, cfg)
    drive(loop, run, kick, h3.WARMUP)
    mod.reset()
    sent0 = server_transport.sent
    client_sent0 = _client_sent(loop)
    h3.Meter.measuring = True
    mod.measure_b(lambda: drive(loop, run, kick, cfg["n"]))
    h3.Meter.measuring = False
    result = {
        "statuses": dict(run.statuses),
        "labels": probes.labels,
        "edges": mod.edges(),
        "server_datagrams": server_transport.sent - sent0,
        "client_datagrams": _client_sent(loop) - client_sent0,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1280, help="requests measured")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--cpu", type=float, default=h3.CPU_PER_REQUEST, help="server's virtual s/req")
    ap.add_argument("--client", choices=["squall", "aioquic", "qh3"], default="squall")
    ap.add_argument(
        "--server", choices=["aioquic", "qh3"], default="aioquic", help="the bare server's stack"
    )
    ap.add_argument("--profile", action="store_true", help="stages and hottest C functions")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--keep", metavar="FILE", help="keep the callgrind output as FILE")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    if shutil.which("valgrind") is None or shutil.which("callgrind_annotate") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    cfg = {
        "n": args.n,
        "connections": args.connections,
        "streams": args.streams,
        "cpu": args.cpu,
        "client": args.client,
        "server": args.server,
        "profile": args.profile,
    }
    result = h3.run_one(cfg, args.keep, script=__file__)
    n = args.n
    print(
        f"== HTTP/3 client instructions per request ({args.client}, against a bare "
        f"{args.server} server): {args.connections} connections x {args.streams} streams, "
        f"{n} requests measured"
    )
    print(f"total: {result['per_request']:,.0f}")
    print(
        f"datagrams per request: client sent {result['client_datagrams'] / n:.3f}, "
        f"server sent {result['server_datagrams'] / n:.3f}"
    )
    if args.profile:
        h3.print_profile(result, n, "client")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
