"""Instructions per HTTP/3 request on the server, counted by callgrind.

`HTTPServer(app, http3=True)`'s UDP endpoint runs in-process on an asyncio
loop whose clock is virtual (it moves only when the loop would sleep, by
the time it would sleep), with aioquic clients beside it: ``--connections``
QUIC connections, each keeping ``--streams`` requests (``GET /?n=bench``,
the request ``make bench-h3`` sends) in flight, datagrams carried between
them by fake transports with a fixed one-way delay. Everything but the
clients is counted: each client callback runs inside ``sq_measure_a``,
which turns callgrind's collection off while ``sq_measure_b`` (the
measured run) has it on. So the figure is the server's: its QUIC stack,
HTTP/3 layer, driver, application and the loop's share, with the fake
transport's ``sendto`` (a list append and a timer) in place of the system
call (which callgrind does not count; ``sendto`` calls per request are
reported beside it).

Instructions per request = the count of the measured run / its requests,
after a warm-up (handshakes, first requests) that is not counted.

Stages (``--profile``): probes on aioquic's and Squall's functions (see
_probe.py) give each one's inclusive count per request; collection is off
in the clients, so they count the server's calls only.

Usage:
  python benchmarks/callgrind_h3.py [-n 1280] [--connections 4] [--streams 16]
                                    [--browser-head] [--profile] [--json FILE] [--keep FILE]
Installs nothing: needs valgrind and aioquic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import selectors
import shutil
import sys
from collections import defaultdict
from functools import partial
from pathlib import Path
from typing import Any, Optional

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from callgrind_hotpath import Probes, run_inner  # noqa: E402

CERT = ROOT / "squall" / "_certs" / "test.crt"
KEY = ROOT / "squall" / "_certs" / "test.key"
WARMUP = 640
# One-way delay of the fake network (seconds of the virtual clock).
DELAY = 0.00005
# The virtual time one request takes on the server's CPU (by default about
# what a real one does: without it the server would answer in no time, and
# the clients' delayed acknowledgements would keep many more streams open).
CPU_PER_REQUEST = 0.0005
SERVER_ADDR = ("127.0.0.1", 4433)

# aioquic's receive, transmit and timer paths (stage, module, qualname),
# shared with callgrind_h3client.py.
QUIC_RECEIVE = [
    ("  quic receive", "aioquic.quic.connection", "QuicConnection.receive_datagram"),
    ("    decrypt", "aioquic.quic.crypto", "CryptoPair.decrypt_packet"),
    ("    ACK frames in", "aioquic.quic.connection", "QuicConnection._handle_ack_frame"),
    ("      recovery on_ack", "aioquic.quic.recovery", "QuicPacketRecovery.on_ack_received"),
    ("    STREAM frames in", "aioquic.quic.connection", "QuicConnection._handle_stream_frame"),
]  # fmt: skip
QUIC_TRANSMIT = [
    ("transmit (all callers)", "aioquic.asyncio.protocol", "QuicConnectionProtocol.transmit"),
    ("  datagrams_to_send", "aioquic.quic.connection", "QuicConnection.datagrams_to_send"),
    ("    encrypt", "aioquic.quic.crypto", "CryptoPair.encrypt_packet"),
    ("    ACK frames out", "aioquic.quic.connection", "QuicConnection._write_ack_frame"),
    ("    STREAM frames out", "aioquic.quic.connection", "QuicConnection._write_stream_frame"),
    ("    recovery on_sent", "aioquic.quic.recovery", "QuicPacketRecovery.on_packet_sent"),
    ("  get_timer", "aioquic.quic.connection", "QuicConnection.get_timer"),
]  # fmt: skip
QUIC_TIMER = [
    ("timer", "aioquic.asyncio.protocol", "QuicConnectionProtocol._handle_timer"),
    ("  quic handle_timer", "aioquic.quic.connection", "QuicConnection.handle_timer"),
]

# (stage, module, qualname): inclusive counts, per request, server side only.
STAGES = [
    ("endpoint", "squall.httpserver._h3protocol", "_H3Endpoint.datagram_received"),
    *QUIC_RECEIVE,
    ("  events", "aioquic.asyncio.protocol", "QuicConnectionProtocol._process_events"),
    ("    h3 handle_event", "aioquic.h3.connection", "H3Connection.handle_event"),
    ("      QPACK decode", "aioquic.h3.connection", "H3Connection._decode_headers"),
    ("    driver _on_request", "squall.httpserver._h3protocol", "_H3Protocol._on_request"),
    ("      app start_request", "squall.web.application", "Application.start_request"),
    ("      app headers_received", "squall.web.application",
     "_HandlerDelegate.headers_received"),
    ("  response: send_head", "squall.httpserver._h3session", "_H3Session.send_head"),
    ("  response: end_response", "squall.httpserver._h3session", "_H3Session.end_response"),
    ("    QPACK encode", "aioquic.h3.connection", "H3Connection._encode_headers"),
    *QUIC_TRANSMIT,
    ("  (harness) sendto", "callgrind_h3", "ServerTransport.sendto"),
    *QUIC_TIMER,
    ("flush (call_soon)", "squall.httpserver._h3session", "_H3Session._flush"),
    ("sweep", "squall.httpserver._h3session", "_H3Session._sweep"),
]  # fmt: skip


class Clock:
    now = 1000.0


class VirtualSelector(selectors.DefaultSelector):
    """Never sleeps: a wait moves the virtual clock on by its timeout."""

    def select(self, timeout: Optional[float] = None) -> list[Any]:
        ready = super().select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("the loop would wait for ever")
        Clock.now += timeout
        return []


class VirtualLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        super().__init__(VirtualSelector())

    def time(self) -> float:
        return Clock.now


class Meter:
    """The side not counted has its callbacks run through ``off`` while a
    measured run is on: the clients here, the server in
    callgrind_h3client.py (``counted = "client"``)."""

    mod: Any = None
    measuring = False
    counted = "server"

    @classmethod
    def off(cls, func: Any, *args: Any) -> None:
        if cls.measuring:
            cls.mod.measure_a(lambda: func(*args))
        else:
            func(*args)

    @classmethod
    def client(cls, func: Any) -> Any:
        """``func``, a client's callback, as the loop should call it (through
        ``off`` unless the clients are counted: nothing added to a counted side)."""
        return func if cls.counted == "client" else partial(cls.off, func)

    @classmethod
    def server(cls, func: Any) -> Any:
        """``func``, a server's callback, as the loop should call it."""
        return partial(cls.off, func) if cls.counted == "client" else func


class ServerTransport(asyncio.DatagramTransport):
    """The server's socket: each datagram reaches its client after DELAY."""

    __slots__ = ("loop", "clients", "delivers", "sent", "sent_bytes")  # see callgrind_hotpath

    def __init__(self, loop: asyncio.AbstractEventLoop, clients: dict[Any, Any]) -> None:
        super().__init__()
        self.loop = loop
        self.clients = clients
        self.delivers: dict[Any, Any] = {}
        self.sent = 0
        self.sent_bytes = 0

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.sent += 1
        self.sent_bytes += len(data)
        deliver = self.delivers.get(addr)
        if deliver is None:
            deliver = self.delivers[addr] = Meter.client(self.clients[addr].datagram_received)
        self.loop.call_later(DELAY, deliver, bytes(data), SERVER_ADDR)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": SERVER_ADDR}.get(name, default)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


class ClientTransport(asyncio.DatagramTransport):
    __slots__ = ("loop", "endpoint", "deliver", "addr", "sent")  # see callgrind_hotpath

    def __init__(self, loop: asyncio.AbstractEventLoop, endpoint: Any, addr: Any) -> None:
        super().__init__()
        self.loop = loop
        self.endpoint = endpoint
        self.deliver = Meter.server(endpoint.datagram_received)
        self.addr = addr
        self.sent = 0

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.sent += 1
        self.loop.call_later(DELAY, self.deliver, bytes(data), self.addr)

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def abort(self) -> None:
        pass


def make_client_class(stack: str) -> Any:
    from importlib import import_module

    QuicConnectionProtocol = import_module(f"{stack}.asyncio.protocol").QuicConnectionProtocol
    H3Connection = import_module(f"{stack}.h3.connection").H3Connection
    DataReceived = import_module(f"{stack}.h3.events").DataReceived
    HeadersReceived = import_module(f"{stack}.h3.events").HeadersReceived

    class Client(QuicConnectionProtocol):  # type: ignore[misc,valid-type]
        """Keeps ``streams`` requests in flight while the run wants more."""

        def __init__(
            self, *args: Any, streams: int, run: Any, browser: bool = False, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.streams = streams
            self.run = run
            self.in_flight = 0
            self.head = [
                (b":method", b"GET"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", b"/?n=bench"),
            ]
            if browser:
                from h3load import BROWSER_FIELDS

                self.head += BROWSER_FIELDS

        def fill(self) -> None:
            while self.in_flight < self.streams and self.run.take():
                sid = self._quic.get_next_available_stream_id()
                self.h3.send_headers(sid, self.head, end_stream=True)
                self.in_flight += 1

        def kick(self) -> None:
            self.fill()
            self.transmit()

        if Meter.counted == "server":

            def _handle_timer(self) -> None:
                Meter.off(super()._handle_timer)

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    self.run.statuses[h3_event.headers[0][1].decode()] += 1
                    ended = h3_event.stream_ended
                elif isinstance(h3_event, DataReceived):
                    ended = h3_event.stream_ended
                else:
                    continue
                if ended:
                    self.in_flight -= 1
                    self.run.finished()
            if self.in_flight < self.streams:
                # Sent with the acknowledgement, after the datagram's events
                # (as benchmarks/h3load.py does).
                self.fill()

    return Client


class Run:
    """Hands out ``total`` requests and completes ``done`` when all came back."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.statuses: dict[str, int] = defaultdict(int)
        self.left = 0
        self.outstanding = 0
        self.done: Optional[asyncio.Future[None]] = None

    def start(self, total: int) -> asyncio.Future[None]:
        self.left = total
        self.outstanding = total
        self.done = self.loop.create_future()
        return self.done

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        return True

    def finished(self) -> None:
        self.outstanding -= 1
        if self.outstanding == 0 and self.done is not None and not self.done.done():
            self.done.set_result(None)


def bare_endpoint(stack: str, cpu: float) -> Any:
    """A bare HTTP/3 server on ``stack`` (aioquic or qh3, the same API): a
    constant answer from the H3 layer's events, transmitting as the stack's
    own protocol does (after each datagram), as Hypercorn does."""
    from importlib import import_module

    QuicServer = import_module(f"{stack}.asyncio.server").QuicServer
    Protocol = import_module(f"{stack}.asyncio.protocol").QuicConnectionProtocol
    h3 = import_module(f"{stack}.h3.connection")
    HeadersReceived = import_module(f"{stack}.h3.events").HeadersReceived
    QuicConfiguration = import_module(f"{stack}.quic.configuration").QuicConfiguration

    class Bare(Protocol):  # type: ignore[misc,valid-type]
        h3: Any = None

        if Meter.counted == "client":

            def _handle_timer(self) -> None:
                Meter.off(super()._handle_timer)

        def quic_event_received(self, event: Any) -> None:
            if self.h3 is None:
                self.h3 = h3.H3Connection(self._quic)
            for e in self.h3.handle_event(event):
                if isinstance(e, HeadersReceived):  # (a GET: its FIN may come apart)
                    Clock.now += cpu
                    head = [(b":status", b"200"), (b"content-type", b"text/plain"),
                            (b"content-length", b"13")]  # fmt: skip
                    self.h3.send_headers(e.stream_id, head)
                    self.h3.send_data(e.stream_id, b"Hello, bench!", end_stream=True)

    config = QuicConfiguration(is_client=False, alpn_protocols=list(h3.H3_ALPN))
    config.max_datagram_frame_size = 65536  # as Squall's server (qh3's H3 announces them)
    config.load_cert_chain(str(CERT), str(KEY))
    return QuicServer(configuration=config, create_protocol=Bare)


def build(loop: asyncio.AbstractEventLoop, cfg: dict[str, Any]) -> tuple[Any, Any, list[Any]]:
    import ssl
    from importlib import import_module

    stack = cfg.get("client", "aioquic")
    H3_ALPN = import_module(f"{stack}.h3.connection").H3_ALPN
    QuicConfiguration = import_module(f"{stack}.quic.configuration").QuicConfiguration
    QuicConnection = import_module(f"{stack}.quic.connection").QuicConnection

    cpu = cfg.get("cpu", 0.0)
    clients: dict[Any, Any] = {}
    transport = ServerTransport(loop, clients)

    async def in_loop(make: Any, *args: Any, **kwargs: Any) -> Any:
        # (aioquic's protocols read the running loop when made.)
        return make(*args, **kwargs)

    if cfg.get("server", "squall") == "squall":
        endpoint = loop.run_until_complete(in_loop(squall_endpoint, cpu))
    else:
        endpoint = loop.run_until_complete(in_loop(bare_endpoint, cfg["server"], cpu))
    endpoint.connection_made(transport)
    run = Run(loop)
    client_class = make_client_class(stack)
    conns = []
    for i in range(cfg["connections"]):
        config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
        config.verify_mode = ssl.CERT_NONE
        config.server_name = "localhost"
        # (qh3's H3 layer announces HTTP Datagrams, and its client then wants them.)
        config.max_datagram_frame_size = 65536
        quic = QuicConnection(configuration=config)
        client = loop.run_until_complete(
            in_loop(client_class, quic, streams=cfg["streams"], run=run, browser=cfg.get("browser"))
        )
        addr = ("127.0.0.1", 50000 + i)
        clients[addr] = client
        client.connection_made(ClientTransport(loop, endpoint, addr))
        quic.connect(SERVER_ADDR, now=loop.time())
        conns.append(client)
    return run, transport, conns


def squall_endpoint(cpu: float) -> Any:
    """`HTTPServer(app, http3=True)`'s UDP endpoint, serving ``make bench-h3``'s app."""
    from squall.httpserver import HTTPServer
    from squall.httpserver._h3protocol import _H3Endpoint
    from squall.web import Application, RequestHandler

    class Hello(RequestHandler):
        def get(self) -> None:
            Clock.now += cpu  # the server's time on its CPU, as the clients see it
            self.set_header("Content-Type", "text/plain")
            self.write("Hello, " + self.get_argument("n", "world") + "!")

    app = Application([("/", Hello)], log_function=lambda handler: None)
    server = HTTPServer(
        app, ssl_options={"certfile": str(CERT), "keyfile": str(KEY)}, http2=True, http3=True
    )
    return _H3Endpoint(server, server._h3_config)


def drive(loop: asyncio.AbstractEventLoop, run: Any, conns: list[Any], total: int) -> None:
    done = run.start(total)
    for client in conns:
        loop.call_soon(Meter.client(client.kick))
    loop.run_until_complete(done)


def inner(cfg: dict[str, Any]) -> None:
    """Runs inside valgrind: builds the server and clients, warms up, measures."""
    import _probe

    mod = _probe.load()
    Meter.mod = mod
    loop = VirtualLoop()
    asyncio.set_event_loop(loop)
    probes = Probes(mod)
    if cfg["profile"] and cfg.get("server", "squall") != "qh3":
        import aioquic.asyncio.protocol
        import aioquic.h3.connection
        import aioquic.quic.connection  # noqa: F401

        for label, module, qualname in STAGES:
            if module == "callgrind_h3":
                probes.wrap(ServerTransport, qualname.split(".")[1], label, qualname)
            else:
                probes.wrap_path(label, module, qualname)
    run, transport, conns = build(loop, cfg)
    drive(loop, run, conns, WARMUP)
    mod.reset()
    sent0, bytes0 = transport.sent, transport.sent_bytes
    client_sent0 = sum(c._transport.sent for c in conns)
    Meter.measuring = True
    mod.measure_b(lambda: drive(loop, run, conns, cfg["n"]))
    Meter.measuring = False
    result = {
        "statuses": dict(run.statuses),
        "labels": probes.labels,
        "edges": mod.edges(),
        "server_datagrams": transport.sent - sent0,
        "server_bytes": transport.sent_bytes - bytes0,
        "client_datagrams": sum(c._transport.sent for c in conns) - client_sent0,
    }
    Path(cfg["out"]).write_text(json.dumps(result))


def run_one(
    cfg: dict[str, Any], keep: Optional[str] = None, script: str = __file__
) -> dict[str, Any]:
    """One valgrind run of ``script``'s inner run (this one's, or
    callgrind_h3client.py's, which counts the other side)."""
    result, incl, self_costs_c = run_inner(script, cfg, keep, build_from_env=True)
    result["self_c"] = sorted(self_costs_c.items(), key=lambda kv: -kv[1])[:30]
    n = cfg["n"]
    if result["statuses"].get("200") != WARMUP + n:
        raise RuntimeError(f"responses {result['statuses']}, expected {WARMUP + n} x 200")
    # The side not counted runs inside sq_measure_a (collection off); what
    # is left under sq_measure_b is the counted side's.
    result["per_request"] = incl.get("sq_measure_b", 0) / n
    result["probe_incl"] = {
        name: cost / n for name, cost in incl.items() if name.startswith("sq_probe_")
    }
    result["incl_c"] = {name: cost / n for name, cost in incl.items()}
    return result


def print_profile(result: dict[str, Any], n: int, side: str) -> None:
    """The stages' inclusive counts and the hottest C functions, per request."""
    other = "clients'" if side == "server" else "server's"
    print(f"\nstage (inclusive, {side} side; indented = inside the line above)")
    for slot, (label, name) in enumerate(result["labels"]):
        cost = result["probe_incl"].get(f"sq_probe_{slot:04d}", 0.0)
        calls = sum(c for _p, child, c in result["edges"] if child == slot)
        print(f"  {label:<32} {cost:>10,.0f}   ({name}; calls/req incl. {other} "
              f"{calls / n:.2f})")  # fmt: skip
    print("\nhottest C functions (self, per request)")
    for name, cost in result["self_c"][:25]:
        print(f"  {cost / n:>10,.0f}  {name}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=1280, help="requests measured")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument(
        "--cpu", type=float, default=CPU_PER_REQUEST, help="virtual seconds per request"
    )
    ap.add_argument(
        "--server",
        choices=["squall", "aioquic", "qh3"],
        default="squall",
        help="Squall's HTTP/3 server, or a bare one on aioquic's or qh3's stack",
    )
    ap.add_argument(
        "--client",
        choices=["aioquic", "qh3"],
        default="aioquic",
        help="the clients' QUIC stack (not counted; it sets the acknowledgements' pattern)",
    )
    ap.add_argument(
        "--browser-head",
        action="store_true",
        help="requests with the fields a browser sends (h3load.BROWSER_FIELDS), not the pseudo-headers alone",
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
        "server": args.server,
        "client": args.client,
        "profile": args.profile,
        "browser": args.browser_head,
    }
    result = run_one(cfg, args.keep)
    n = args.n
    print(
        f"== HTTP/3 server instructions per request ({args.server}): "
        f"{args.connections} connections x "
        f"{args.streams} streams, {n} requests measured"
    )
    print(f"total: {result['per_request']:,.0f}")
    print(
        f"datagrams per request: server sent {result['server_datagrams'] / n:.3f} "
        f"({result['server_bytes'] / max(result['server_datagrams'], 1):.0f} B each), "
        f"clients sent {result['client_datagrams'] / n:.3f}"
    )
    if args.profile:
        print_profile(result, n, "server")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
