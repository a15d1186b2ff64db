"""Hostile HTTP/3 clients: stream and QPACK abuse, a client that stops
reading, a flood of handshakes that never complete.

The client is aioquic's, bent where an attack needs it (its stream credit
ignored, raw frames, incoming datagrams dropped).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import time
import tracemalloc
import weakref
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.buffer import Buffer, encode_uint_var  # noqa: E402
from aioquic.h3.connection import FrameType, Setting, encode_frame  # noqa: E402
from aioquic.quic.connection import QuicConnection  # noqa: E402

from squall._quicstack import H3Connection as StackH3Connection  # noqa: E402
from squall.iostream import StreamClosedError  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, ExpectLog  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402
from tests._wait import HANG_GUARD, until  # noqa: E402
from tests.h3._client import Response, client_configuration, h3_client  # noqa: E402
from tests.h3._stack import only_on  # noqa: E402

from ._serve import LOOPS, run, serving  # noqa: E402


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


class Firehose(RequestHandler):
    async def get(self) -> None:
        settings = self.application.settings
        try:
            for _ in range(200):
                self.write(b"x" * 65536)
                await self.flush()
        except StreamClosedError:
            settings["outcome"].set_result("reset")
            return
        settings["outcome"].set_result("sent")


def app() -> Application:
    return Application([("/", Hello), ("/firehose", Firehose)])


def options(**extra: Any) -> dict[str, Any]:
    return {"ssl_options": AsyncHTTPSTestCase.default_ssl_options(), "http3": True, **extra}


async def served_ok(port: int) -> bool:
    async with h3_client(port) as client:
        r = await client.fetch("/")
        return r.body == b"hello"


@pytest.mark.parametrize("loop", LOOPS)
def test_streams_beyond_the_credit_close_the_connection(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                # The attacker ignores the MAX_STREAMS the server gave (100).
                client._quic._remote_max_streams_bidi = 10_000
                for _ in range(150):
                    client.request("/")
                # The server's CONNECTION_CLOSE arrived (aioquic reports the
                # termination itself only after its draining period).
                await until(lambda: client._quic._close_event is not None)
                assert client._quic._close_event.error_code == 0x4  # STREAM_LIMIT_ERROR
                # Its draining period is not waited out on the way out: it
                # lasts 3 PTO of the round trips this client measured on a
                # loop it shares with the server, and once in make test
                # that wait alone ran past run()'s limit.
                client._closed.set()
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_qpack_garbage_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                sid = client._quic.get_next_available_stream_id()
                # An encoded Required Insert Count (271) beyond what the
                # table's capacity allows (RFC 9204 section 4.5.1.1).
                client._quic.send_stream_data(
                    sid, encode_frame(FrameType.HEADERS, b"\xff\x10\x00\x80"), True
                )
                client.transmit()
                await until(lambda: client._quic._close_event is not None)
                # QPACK_DECOMPRESSION_FAILED (RFC 9204 section 6)
                assert client._quic._close_event.error_code == 0x200
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_client_that_stops_reading_is_reset(loop: str) -> None:
    async def main() -> None:
        application = app()
        outcome = application.settings["outcome"] = asyncio.get_running_loop().create_future()
        async with serving(application, **options(write_timeout=0.5)) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                client.request("/firehose")
                # The client goes silent: nothing it receives is acknowledged.
                client.datagram_received = lambda data, addr: None  # type: ignore[method-assign]
                with ExpectLog("squall.general", ".*took nothing for", level=logging.INFO):
                    assert await asyncio.wait_for(outcome, HANG_GUARD) == "reset"
                client.close()
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_handshakes_that_never_complete_are_dropped(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options(header_timeout=0.5)) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                # Twenty Initials from twenty connection IDs; no answer is read.
                for _ in range(20):
                    quic = QuicConnection(configuration=client_configuration())
                    quic.connect(("127.0.0.1", port), now=time.monotonic())
                    for data, addr in quic.datagrams_to_send(now=time.monotonic()):
                        sock.sendto(data, addr)
                with ExpectLog(
                    "squall.general", ".*handshake .* not completed", level=logging.DEBUG
                ) as dropped:
                    # Counted as they are dropped: on a loaded machine the
                    # first may time out before the last is even read.
                    await until(lambda: dropped.matched >= 20)
                    await until(lambda: not server._connections)
            finally:
                sock.close()
            assert await served_ok(port)

    run(main, loop)


@only_on("aioquic", "qh3: the endpoint's table is not empty 5 s after the close (not investigated)")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("ended", ["served, closed by the client", "handshake never completed"])
def test_a_terminated_connections_state_is_freed_without_the_collector(
    loop: str, ended: str
) -> None:
    # aioquic's connection state is all reference cycles: left so, each
    # ended connection's ~30 KiB waited for a full collection, and under
    # churn and Initial floods RSS climbed (make soak). With the collector
    # off, the connection and its QUIC state are gone once aioquic forgets it.
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            endpoint = endpoint_of(server)
            if ended == "served, closed by the client":
                async with h3_client(port) as client:
                    assert (await client.fetch("/")).body == b"hello"
                    (conn,) = set(endpoint._protocols.values())
                    refs = [weakref.ref(conn), weakref.ref(conn._quic)]
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    sock.sendto(initial()[1], ("127.0.0.1", port))
                    await until(lambda: len(endpoint.half_open) == 1)
                finally:
                    sock.close()
                (conn,) = endpoint.half_open
                refs = [weakref.ref(conn), weakref.ref(conn._quic)]
                # Timed out now, rather than waited for.
                with ExpectLog(
                    "squall.general", ".*handshake .* not completed", level=logging.DEBUG
                ):
                    conn._handshake_timer.cancel()
                    conn._handshake_timed_out()
            del conn
            await until(lambda: not table(endpoint))
            await until(lambda: all(ref() is None for ref in refs))

    enabled = gc.isenabled()
    gc.disable()
    try:
        run(main, loop)
    finally:
        if enabled:
            gc.enable()


@pytest.mark.parametrize("loop", LOOPS)
def test_connection_kept_alive_by_pings_alone_is_closed(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options(idle_connection_timeout=0.5)) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                r = await client.fetch("/")
                assert r.body == b"hello"
                # PINGs keep QUIC's own idle timer from firing; no request
                # comes, so the server's idle timeout closes the connection.
                deadline = asyncio.get_running_loop().time() + HANG_GUARD  # a hang guard
                while client._quic._close_event is None:
                    assert asyncio.get_running_loop().time() < deadline, "not closed"
                    try:
                        await asyncio.wait_for(client.ping(), 0.1)
                    except (TimeoutError, ConnectionError):
                        pass
                assert client._quic._close_event.error_code == 0x100  # H3_NO_ERROR

    run(main, loop)


# -- header sections: every limit before the work it bounds -----------------------


def qpack_bomb(references: int) -> tuple[bytes, bytes]:
    """An encoder-stream instruction that fills the dynamic table with one
    entry of about 4 KB, and a request's field section of ``references``
    one-byte references to it (RFC 9204 §4.3, §4.5.2)."""
    name, value = b"x-a", b"v" * (4096 - 32 - 3)
    capacity = b"\x3f\xe1\x1f"  # Set Dynamic Table Capacity 4096
    # Insert With Literal Name (5-bit name length), then a 7-bit value length.
    insert = bytes([0x40 | len(name)]) + name + b"\x7f" + encode_int(len(value) - 127) + value
    # Required Insert Count 1 (encoded as 2), Delta Base 0; :method GET,
    # :scheme https, :path /, :authority localhost; then the references.
    head = b"\x02\x00\xd1\xd7\xc1\x50\x09localhost"
    return capacity + insert, head + b"\x80" * references


def encode_int(n: int) -> bytes:
    """The continuation bytes of a prefixed integer (RFC 7541 §5.1)."""
    out = bytearray()
    while n >= 128:
        out.append(n % 128 + 128)
        n //= 128
    out.append(n)
    return bytes(out)


def server_h3(server: Any) -> Any:
    (conn,) = server._connections
    return conn.h3


@pytest.mark.parametrize("loop", LOOPS)
def test_qpack_bomb_refused_before_decoding(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # 16,000 references to one 4 KB entry decode to 62 MiB: the server
    # answers 431 having decoded none of it (it used to decode it all,
    # +128 MiB and seconds of CPU, then answer 431).
    decoded: list[int] = []
    original = StackH3Connection._decode_headers

    def counting(self: Any, stream_id: int, frame_data: Any, **where: Any) -> Any:
        headers = original(self, stream_id, frame_data, **where)
        if not self._is_client:
            decoded.append(sum(len(n) + len(v) for n, v in headers))
        return headers

    monkeypatch.setattr(StackH3Connection, "_decode_headers", counting)

    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                await client.until(lambda: client.h3.received_settings is not None)
                instructions, section = qpack_bomb(16_000)
                client._quic.send_stream_data(client.h3._local_encoder_stream_id, instructions)
                client.transmit()
                # The insert has arrived once a round trip after it has.
                await client.ping()
                sid = client._quic.get_next_available_stream_id()
                client.responses[sid] = r = Response()
                with ExpectLog("squall.general", ".*could decode to more than", level=logging.INFO):
                    client._quic.send_stream_data(
                        sid, encode_frame(FrameType.HEADERS, section), True
                    )
                    client.transmit()
                    await client.until(lambda: r.ended or r.reset is not None)
                assert r.status == 431
                assert sum(decoded) <= 4 * 65536, f"decoded {sum(decoded)} bytes first"
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_headers_frame_announced_too_long_refused_at_once(loop: str) -> None:
    # A HEADERS frame announced at 1 GiB: 431 as soon as its length is
    # read, and what follows of it is passed over, not gathered (it used
    # to be gathered by concatenation, quadratic in the frame's length;
    # qh3 closed the whole connection as it read the length).
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                sid = client._quic.get_next_available_stream_id()
                client.responses[sid] = r = Response()
                start = encode_uint_var(FrameType.HEADERS) + encode_uint_var(1 << 30)
                with ExpectLog(
                    "squall.general", ".*header section of 1073741824", level=logging.INFO
                ):
                    client._quic.send_stream_data(sid, start)
                    for _ in range(64):
                        client._quic.send_stream_data(sid, b"\x00" * 4096)
                    client.transmit()
                    await client.until(lambda: r.ended or r.reset is not None)
                assert r.status == 431
                await client.ping()
                h3 = server_h3(server)
                held = h3._stream.get(sid)
                assert held is None or len(held.buffer) < 4096
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_settings_frame_announced_too_long_closes_the_connection(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                # A second control stream would be an error of its own: the
                # attacker opens its control stream by hand, with a SETTINGS
                # frame announced at 1 GiB.
                client.h3._peer_control_stream_id = None
                sid = client._quic.get_next_available_stream_id(is_unidirectional=True)
                frame = encode_uint_var(FrameType.SETTINGS) + encode_uint_var(1 << 30)
                h3 = server_h3(server)
                h3._peer_control_stream_id = None
                h3._settings_received = False
                client._quic.send_stream_data(sid, b"\x00" + frame + b"\x00" * 1000)
                client.transmit()
                await until(lambda: client._quic._close_event is not None)
                assert client._quic._close_event.error_code == 0x107  # H3_EXCESSIVE_LOAD
                client._closed.set()
            assert await served_ok(port)

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_requests_using_the_dynamic_table_still_served(loop: str) -> None:
    async def main() -> None:
        async with serving(app(), **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                # Our QPACK settings (RFC 9204 section 5), and the limit.
                await client.until(lambda: client.h3.received_settings is not None)
                settings = client.h3.received_settings
                assert settings[Setting.QPACK_MAX_TABLE_CAPACITY] == 4096
                assert settings[Setting.QPACK_BLOCKED_STREAMS] == 0
                assert settings[Setting.MAX_FIELD_SECTION_SIZE] == 65536
                fields = [("x-trace", "a" * 200), ("cookie", "c" * 3000)]
                for _ in range(5):
                    r = await client.fetch("/", headers=fields)
                    assert r.status == 200 and r.body == b"hello"
                # The client's encoder did put entries in the server's table.
                assert client.h3._encoder_bytes_sent > 1000
                r = await client.fetch("/", headers=[(f"x-big{i}", "b" * 9000) for i in range(8)])
                assert r.status == 431

    run(main, loop)


class Counting(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += len(data)


@only_on("aioquic", "reads aioquic's path counters (qh3's core keeps its own, unread here)")
@pytest.mark.parametrize("loop", LOOPS)
def test_handshake_timeout_close_keeps_to_the_amplification_limit(loop: str) -> None:
    # RFC 9000 section 8.1: until the client's address is validated, the
    # server sends it at most three times what it received; the handshake
    # timeout's CONNECTION_CLOSE included (it used to go past: 3,726 bytes
    # sent for 1,200 received).
    async def main() -> None:
        async with serving(app(), **options(header_timeout=0.5)) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            transport, counter = await asyncio.get_running_loop().create_datagram_endpoint(
                Counting, remote_addr=("127.0.0.1", port)
            )
            try:
                quic = QuicConnection(configuration=client_configuration())
                quic.connect(("127.0.0.1", port), now=time.monotonic())
                sent = 0
                for data, _ in quic.datagrams_to_send(now=time.monotonic()):
                    transport.sendto(data)
                    sent += len(data)
                await until(lambda: len(server._connections) == 1)
                (conn,) = server._connections
                path = conn._quic._network_paths[0]
                await until(lambda: path.bytes_sent > 0)
                assert path.bytes_received == sent and not path.is_validated
                # The server's first flight has used all but 50 bytes of
                # what it may send (as a longer certificate chain would).
                path.bytes_sent = 3 * path.bytes_received - 50
                await client_turns(3)
                before = counter.received
                with ExpectLog(
                    "squall.general", ".*handshake .* not completed", level=logging.DEBUG
                ):
                    await until(lambda: not server._connections)
                # What the server sent before it forgot the connection has
                # reached the socket (loopback), and been read, a turn later.
                await client_turns(3)
                assert before > 0
                assert counter.received - before <= 50, counter.received - before
            finally:
                transport.close()

    run(main, loop)


async def client_turns(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# -- a flood of Initials from addresses that may be spoofed ----------------------

INVALID_TOKEN = 0xB  # RFC 9000 section 20.1


def is_retry(datagram: bytes) -> bool:
    # A long header whose type bits say Retry (RFC 9000 section 17.2.5).
    return bool(datagram[0] & 0x80) and (datagram[0] & 0x30) >> 4 == 3


def initial(token: bytes = b"", dcid: bytes = b"", port: int = 1) -> tuple[QuicConnection, bytes]:
    """A client connection and its first Initial (padded to 1,200 bytes)."""
    config = client_configuration()
    config.token = token
    quic = QuicConnection(configuration=config)
    if dcid:
        quic._peer_cid.cid = dcid
    quic.connect(("127.0.0.1", port), now=time.monotonic())
    (data, _), *_ = quic.datagrams_to_send(now=time.monotonic())
    return quic, data


class Sources:
    """UDP sockets on many local ports, each an attacker's address; what
    comes back to them is counted."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.transports: list[asyncio.DatagramTransport] = []

    async def open(self, port: int, n: int) -> None:
        loop = asyncio.get_running_loop()
        received = self.received

        class Source(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                received.append(data)

        for _ in range(n):
            transport, _ = await loop.create_datagram_endpoint(
                Source, remote_addr=("127.0.0.1", port)
            )
            self.transports.append(transport)

    def close(self) -> None:
        for transport in self.transports:
            transport.close()


def endpoint_of(server: Any) -> Any:
    (endpoint,) = server._h3_endpoints
    return endpoint


def table(endpoint: Any) -> int:
    """Connections in aioquic's table (each under several connection IDs)."""
    return len(set(endpoint._protocols.values()))


def initials(n: int) -> list[bytes]:
    """``n`` first Initials, each of a new connection."""
    return [initial()[1] for _ in range(n)]


async def flood(endpoint: Any, datagrams: list[bytes], sources: Sources) -> None:
    """The ``datagrams``, round-robin over the sources; sent in bursts the
    server is let to read (loopback drops what overflows a socket's buffer)."""
    n = len(datagrams)

    def seen() -> int:
        return endpoint.retries_sent + endpoint.initials_dropped + len(endpoint.half_open)

    start = seen()
    for i in range(0, n, 25):
        for j, data in enumerate(datagrams[i : i + 25]):
            sources.transports[(i + j) % len(sources.transports)].sendto(data)
        sent = min(i + 25, n)
        await until(lambda: seen() - start >= sent)  # noqa: B023


@pytest.mark.parametrize("loop", LOOPS)
def test_initial_flood_answered_with_retry_not_state(loop: str) -> None:
    # 200 Initials from 50 ports: past 20 half-open connections each gets a
    # stateless Retry, so aioquic's table and the server's memory stay at
    # 20 connections (they used to be 200 connections, about 33 KiB each).
    async def main() -> None:
        opts = options(header_timeout=5, http3_retry_threshold=20, http3_max_half_open=50)
        async with serving(app(), **opts) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            endpoint = endpoint_of(server)
            sources = Sources()
            await sources.open(port, 50)
            try:
                datagrams = initials(200)
                tracemalloc.start()
                before = tracemalloc.get_traced_memory()[0]
                await flood(endpoint, datagrams, sources)
                grown = tracemalloc.get_traced_memory()[0] - before
                tracemalloc.stop()
                assert len(endpoint.half_open) == 20
                assert table(endpoint) == 20
                assert endpoint.retries_sent == 180
                # Each half-open connection traces at about 115 KiB (its TLS
                # and packet state, the first one some caches): 200 would
                # be over 20 MiB.
                assert grown < 20 * 150 * 1024, f"{grown} bytes for 20 connections"
                await until(lambda: sum(map(is_retry, sources.received)) == 180)
                # A legitimate client still connects, through a Retry.
                async with h3_client(port) as client:
                    r = await client.fetch("/")
                    assert r.body == b"hello"
                    assert client._quic._retry_count == 1
            finally:
                if tracemalloc.is_tracing():
                    tracemalloc.stop()
                sources.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_initials_past_the_cap_dropped_without_state(loop: str) -> None:
    async def main() -> None:
        # No Retry below 1,000: the hard cap alone holds the table at 30.
        opts = options(header_timeout=10, http3_retry_threshold=1000, http3_max_half_open=30)
        async with serving(app(), **opts) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            endpoint = endpoint_of(server)
            sources = Sources()
            await sources.open(port, 20)
            try:
                await flood(endpoint, initials(100), sources)
                assert len(endpoint.half_open) == table(endpoint) == 30
                assert endpoint.initials_dropped == 70 and endpoint.retries_sent == 0
            finally:
                sources.close()
            # Once the half-open ones time out (made to now, rather than
            # waited for) and their state is gone, clients are served again.
            with ExpectLog("squall.general", ".*handshake .* not completed", level=logging.DEBUG):
                for conn in list(endpoint.half_open):
                    conn._handshake_timer.cancel()
                    conn._handshake_timed_out()
                await until(lambda: not endpoint.half_open and not table(endpoint))
            assert await served_ok(port)

    run(main, loop)


@only_on("aioquic", "aioquic's tokens; qh3's Retry tokens carry no time, so they never expire")
@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("token", ["valid", "forged", "expired", "other_port", "other_dcid"])
def test_retry_token_checked(loop: str, token: str) -> None:
    # Only a token the server made, for this address and port and this
    # connection ID, in the last 30 s, opens a connection; any other is
    # answered INVALID_TOKEN without state (RFC 9000 section 8.1.3). They
    # used to be ignored: every one opened a connection.
    async def main() -> None:
        opts = options(http3_retry_threshold=0)
        async with serving(app(), **opts) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            endpoint = endpoint_of(server)
            sources = Sources()
            await sources.open(port, 1)
            try:
                (transport,) = sources.transports
                addr = transport.get_extra_info("sockname")[:2]
                dcid = bytes(8)
                now = asyncio.get_running_loop().time()
                made = {
                    "valid": (addr, dcid, now),
                    "expired": (addr, dcid, now - 31),
                    "other_port": ((addr[0], addr[1] ^ 1), dcid, now),
                    "other_dcid": (addr, b"\x01" * 8, now),
                }
                if token == "forged":
                    value = bytes(range(60))
                else:
                    address, retry_cid, issued = made[token]
                    value = endpoint._tokens.create_token(
                        address=address,
                        original_destination_connection_id=b"\x02" * 8,
                        retry_source_connection_id=retry_cid,
                        now=issued,
                    )
                quic, data = initial(token=value, dcid=dcid, port=port)
                transport.sendto(data)
                await until(lambda: sources.received)
                if token == "valid":
                    assert table(endpoint) == 1 and len(endpoint.half_open) == 1
                    assert not is_retry(sources.received[0])
                    return
                assert table(endpoint) == 0 and not endpoint.half_open
                (answer,) = sources.received
                quic.receive_datagram(answer, ("127.0.0.1", port), now=time.monotonic())
                assert quic._close_event is not None
                assert quic._close_event.error_code == INVALID_TOKEN
            finally:
                sources.close()

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_retry_connection_id_routes_to_the_worker(loop: str) -> None:
    # Under squall run's routing by connection ID, the client's next
    # Initial goes where the Retry's Source Connection ID points: this
    # worker's slot, whose key can check the token.
    from aioquic.quic.packet import pull_quic_header

    from squall.httpserver._quicroute import slot_of

    async def main() -> None:
        async with serving(app(), **options(http3_retry_threshold=0)) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            endpoint = endpoint_of(server)
            endpoint._slot = 7  # as a worker of squall run has
            sources = Sources()
            await sources.open(port, 1)
            try:
                sources.transports[0].sendto(initial(port=port)[1])
                await until(lambda: sources.received)
                (answer,) = sources.received
                assert is_retry(answer) and not endpoint.half_open
                header = pull_quic_header(Buffer(data=answer), host_cid_length=8)
                assert slot_of(header.source_cid) == 7
            finally:
                sources.close()

    run(main, loop)


# A malformed request (RFC 9114 section 4.1.2) is its stream's error, not
# the connection's: the stacks closed the whole connection (H3_MESSAGE_ERROR)
# over one bad field, failing every other request on it.
MALFORMED_HEADS = {
    "uppercase name": [("X-Trace", "a")],
    "space in a name": [("x trace", "a")],
    "whitespace ending a value": [("x-trace", "a ")],
    "CR LF in a value": [("x-trace", "a\r\nx-injected: 1")],
    "NUL in a value": [("x-trace", "a\x00b")],
    "colon inside a name": [("x:trace", "a")],
    "connection-specific field": [("connection", "close")],
    "unknown pseudo-header": [(":protocol-x", "a")],
    "pseudo-header after a field": [("x-trace", "a"), (":method", "GET")],
}


class Echo(RequestHandler):
    def put(self) -> None:
        self.write(self.request.body)


@pytest.mark.parametrize("case", sorted(MALFORMED_HEADS))
@pytest.mark.parametrize("loop", LOOPS)
def test_a_malformed_request_head_is_its_streams_error(loop: str, case: str) -> None:
    async def main() -> None:
        application = Application([("/", Hello), ("/echo", Echo)])
        async with serving(application, **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                # A request in flight beside the bad one, on the same connection.
                upload = client.request("/echo", method="PUT", body=b"abc", end=False)
                with ExpectLog("squall.general", "Malformed HTTP/3 request", level=logging.INFO):
                    bad = await client.fetch("/", headers=MALFORMED_HEADS[case])
                assert bad.status == 400, (bad.status, bad.reset)
                ok = await client.fetch("/")
                assert (ok.status, ok.body) == (200, b"hello")
                client.send_body(upload, b"def", end=True)
                r = client.responses[upload]
                await client.until(lambda: r.ended or r.reset is not None)
                assert (r.status, r.body) == (200, b"abcdef")
                assert client._quic._close_event is None

    run(main, loop)


@pytest.mark.parametrize("loop", LOOPS)
def test_malformed_request_trailers_reset_their_stream(loop: str) -> None:
    async def main() -> None:
        application = Application([("/", Hello), ("/echo", Echo)])
        async with serving(application, **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                sid = client.request("/echo", method="PUT", body=b"abc", end=False)
                r = client.responses[sid]
                with ExpectLog("squall.general", "Malformed HTTP/3 request", level=logging.INFO):
                    client.h3.send_headers(sid, [(b"X-Sum", b"1")], end_stream=True)
                    client.transmit()
                    await client.until(lambda: r.ended or r.reset is not None)
                assert r.reset == 0x10E  # H3_MESSAGE_ERROR
                ok = await client.fetch("/")
                assert (ok.status, ok.body) == (200, b"hello")
                assert client._quic._close_event is None

    run(main, loop)


@pytest.mark.parametrize("body", [b"abcdef", b"ab"], ids=["longer", "shorter"])
@pytest.mark.parametrize("loop", LOOPS)
def test_a_body_off_its_content_length_is_its_streams_error(loop: str, body: bytes) -> None:
    # aioquic's H3 layer checks the length; qh3's does not, and Squall's
    # driver does it there (the handler got the body as it was sent).
    async def main() -> None:
        application = Application([("/", Hello), ("/echo", Echo)])
        async with serving(application, **options()) as (server, port):
            await asyncio.gather(*server._h3_tasks)
            async with h3_client(port) as client:
                sid = client.request(
                    "/echo", method="PUT", headers=[("content-length", "3")], end=False
                )
                r = client.responses[sid]
                await client.ping()
                client.send_body(sid, body, end=True)
                await client.until(lambda: r.ended or r.reset is not None)
                assert r.reset == 0x10E  # H3_MESSAGE_ERROR
                ok = await client.fetch("/")
                assert (ok.status, ok.body) == (200, b"hello")
                assert client._quic._close_event is None

    run(main, loop)
