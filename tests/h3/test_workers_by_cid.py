"""``squall run --workers N --http3``: datagrams go to the worker that owns their connection ID.

A client that moves to a new port (and connection ID) on every request
keeps its one connection and its one worker; a rolling restart (HUP)
during a download lets the old worker finish it. The routing program
itself is checked on sockets of this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import select
import signal
import socket
from typing import Any, Optional

import pytest

from squall.httpserver._quicroute import attach, filter_program, issue_cid, slot_of
from tests._paths import CERTS
from tests.cli._proc import Squall
from tests.cli.sample_apps import download_chunk

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.quic.connection import QuicConnection  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._client import H3Client, client_configuration  # noqa: E402
from ._stack import only_on  # noqa: E402

CERT, KEY = str(CERTS / "test.crt"), str(CERTS / "test.key")


def _group(count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind(("127.0.0.1", socks[0].getsockname()[1] if socks else 0))
        s.setblocking(False)
        socks.append(s)
    return socks


def _cbpf_refused() -> Optional[str]:
    socks = _group(1)
    try:
        attach(socks[0], filter_program([0], [0]))
    except OSError as exc:
        return f"SO_ATTACH_REUSEPORT_CBPF refused here: {exc}"
    finally:
        socks[0].close()
    return None


_REFUSED = _cbpf_refused()
needs_cbpf = pytest.mark.skipif(_REFUSED is not None, reason=_REFUSED or "")


def test_issued_ids_name_their_slot() -> None:
    for slot in (0, 1, 7, 255):
        cid = issue_cid(slot)
        assert len(cid) == 8 and slot_of(cid) == slot
    assert issue_cid(3) != issue_cid(3)
    # An ID whose check byte is wrong names no slot.
    assert slot_of(bytes((3, 0)) + b"\0" * 6) is None


@needs_cbpf
def test_program_routes_by_id_and_spreads_new_clients() -> None:
    socks = _group(5)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Slots 1, 2, 4 have workers; 1 drains (no new connections).
        attach(socks[0], filter_program([1, 2, 4], [2, 4]))
        address = socks[0].getsockname()

        def lands(data: bytes) -> int:
            client.sendto(data, address)
            readable, _, _ = select.select(socks, [], [], 2.0)
            assert len(readable) == 1
            readable[0].recv(2048)
            return socks.index(readable[0])

        for slot in (1, 2, 4):
            short = bytes([0x41]) + issue_cid(slot) + b"payload"
            long = bytes([0xC0, 0, 0, 0, 1, 8]) + issue_cid(slot) + b"payload"
            assert lands(short) == slot and lands(long) == slot
        # No worker at slots 0 and 3; random Initial IDs; runts: accepting slots only.
        others = [lands(bytes([0x41]) + issue_cid(s) + b"x") for s in (0, 3)]
        initials = [lands(bytes([0xC0, 0, 0, 0, 1, 8]) + os.urandom(8) + b"x") for _ in range(24)]
        runts = [lands(b"\x40"), lands(b"\xc0\x00\x00\x00")]
        assert set(others + initials + runts) <= {2, 4}
        assert set(initials) == {2, 4}
    finally:
        client.close()
        for s in socks:
            s.close()


class _Relay(asyncio.DatagramProtocol):
    """A local UDP port whose datagrams go to the client's QUIC connection."""

    def __init__(self, client: H3Client) -> None:
        self.client = client
        self.received = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received += 1
        self.client.datagram_received(data, addr)


async def _relay(client: H3Client) -> tuple[asyncio.DatagramTransport, _Relay]:
    loop = asyncio.get_running_loop()
    transport, relay = await loop.create_datagram_endpoint(
        lambda: _Relay(client), local_addr=("127.0.0.1", 0)
    )
    return transport, relay


def _squall(workers: int) -> Squall:
    return Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--certfile",
        CERT,
        "--keyfile",
        KEY,
        "--http3",
        "--workers",
        str(workers),
        "--timeout-graceful-shutdown",
        "30",
        # QUIC's idle timeout is the keep-alive one: a download held for the
        # restart (slow to start four workers here) sends nothing meanwhile.
        "--timeout-keep-alive",
        "120",
    )


# Four workers starting on a loaded two-core machine can take a while.
_START = 60.0


def _port(squall: Squall) -> int:
    return int(squall.expect(r"Listening on https://[\d.]+:(\d+)", _START).group(1))


def _ready_pids(squall: Squall, count: int) -> list[int]:
    return [int(squall.expect(r"Worker (\d+) ready", _START).group(1)) for _ in range(count)]


@needs_cbpf
@only_on(
    "aioquic",
    "qh3's core issues the later connection IDs itself (unrouted), and qh3 2.1 loses"
    " a connection at its client's fourth address change (one process, too)",
)
def test_migrating_client_keeps_its_connection_and_worker() -> None:
    with _squall(4) as squall:
        port = _port(squall)
        workers = _ready_pids(squall, 4)

        async def run() -> tuple[set[int], set[int], list[int]]:
            client = H3Client(QuicConnection(configuration=client_configuration()))
            transport, relay = await _relay(client)
            client.connection_made(transport)
            client.connect(("127.0.0.1", port))
            await asyncio.wait_for(client.wait_connected(), HANG_GUARD)
            pids: set[int] = set()
            ports: set[int] = set()
            received: list[int] = []
            for _ in range(10):
                old = transport
                transport, relay = await _relay(client)
                ports.add(transport.get_extra_info("sockname")[1])
                client._transport = transport
                old.close()
                client.change_connection_id()
                r = await client.fetch("/")
                assert r.status == 200, r.status
                pids.add(json.loads(r.body)["pid"])
                # The answer came to the new port.
                received.append(relay.received)
            assert client.terminated is None
            client.close()
            transport.close()
            return pids, ports, received

        pids, ports, received = asyncio.run(asyncio.wait_for(run(), 30))
        assert len(ports) == 10
        assert all(received)
        # One connection, one worker: ten ports hashed over four workers
        # would have spread (and the others know no such connection).
        assert len(pids) == 1 and pids <= set(workers)
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


@needs_cbpf
def test_rolling_restart_lets_a_download_finish() -> None:
    chunks = 40
    with _squall(4) as squall:
        port = _port(squall)
        old_workers = _ready_pids(squall, 4)

        async def run() -> None:
            client = H3Client(QuicConnection(configuration=client_configuration()))
            transport, _ = await _relay(client)
            client.connection_made(transport)
            client.connect(("127.0.0.1", port))
            await asyncio.wait_for(client.wait_connected(), HANG_GUARD)
            sid = client.request(f"/download?chunks={chunks}")
            r = client.responses[sid]
            await client.until(lambda: len(r.body) >= 65536)
            pid = int(r.headers["x-pid"])
            assert pid in old_workers
            squall.signal(signal.SIGHUP)
            # Four new workers, each ready before an old one drains; the
            # fourth old one (not this download's, maybe) is told last.
            new_workers = await asyncio.to_thread(_ready_pids, squall, 4)
            assert not set(new_workers) & set(old_workers)
            await asyncio.to_thread(squall.expect, rf"Worker {pid} draining")
            # Its worker drains, new connections go elsewhere: the body goes on.
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                raise AssertionError("\n".join(squall.seen)) from None
            try:
                await client.until(lambda: r.ended or r.reset is not None, timeout=HANG_GUARD)
            except TimeoutError:
                raise AssertionError(
                    f"{len(r.body)} {client.terminated} " + "\n".join(squall.seen)
                ) from None
            assert r.reset is None and r.status == 200
            assert r.body == b"".join(download_chunk(n) for n in range(chunks))
            # A new connection goes to a new worker.
            fresh = H3Client(QuicConnection(configuration=client_configuration()))
            t2, _ = await _relay(fresh)
            fresh.connection_made(t2)
            fresh.connect(("127.0.0.1", port))
            await asyncio.wait_for(fresh.wait_connected(), HANG_GUARD)
            answer = await fresh.fetch("/")
            assert json.loads(answer.body)["pid"] in new_workers
            fresh.close()
            client.close()
            t2.close()
            transport.close()

        asyncio.run(asyncio.wait_for(run(), 60))
        squall.expect(rf"Worker {old_workers[0]} exited")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
        assert not [line for line in squall.seen if re.search(r"Traceback", line)]
