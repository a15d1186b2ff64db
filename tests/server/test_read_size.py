"""Reads on asyncio's own loop allocate no more than they need.

asyncio's socket transport reads with ``recv(256 KiB)``. Under glibc's
initial mmap threshold (128 KiB) each such read was an mmap, an mremap and
a munmap, with two page faults: hello world at half speed, in a compiled
server until its first connection closed. The server fixes the threshold
(MALLOC_MMAP_THRESHOLD_) so that this cannot depend on what the process
happened to free before, and counts its own minor page faults per request.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import subprocess
import sys
import textwrap

import pytest

from squall._h1 import H1Limits
from squall.platform.asyncio import _READ_SIZE
from squall.simple_httpclient._connection import ClientConnection
from tests._wait import HANG_GUARD

_SERVER = textwrap.dedent(
    """
    import asyncio, resource, sys
    import squall.web
    from squall.httpserver import HTTPServer
    from squall.netutil import bind_sockets

    class Hello(squall.web.RequestHandler):
        def get(self):
            self.write("Hello, world")

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    async def main():
        server = HTTPServer(squall.web.Application([("/", Hello)]))
        socks = bind_sockets(0, "127.0.0.1")
        server.add_sockets(socks)
        print(socks[0].getsockname()[1], flush=True)
        # One line from the client per measure: reply with the fault count.
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
        )
        while await reader.readline():
            print(faults(), flush=True)

    asyncio.run(main())
    """
)

_REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: test\r\n\r\n"


def _ask(sock: socket.socket, count: int) -> None:
    """``count`` requests, one after the other's response, on one connection."""
    for _ in range(count):
        sock.sendall(_REQUEST)
        got = b""
        while not got.endswith(b"Hello, world"):
            chunk = sock.recv(4096)
            assert chunk, "the server closed the connection"
            got += chunk


@pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc",
    reason="counts glibc's mmap behaviour, through Linux's page fault count",
)
def test_server_reads_on_asyncio_loop_do_not_map_memory() -> None:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(128 * 1024))
    env.pop("SQUALL_BENCH_LOOP", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=HANG_GUARD) as sock:
            _ask(sock, 50)  # warm-up: first-time allocations

            def faults() -> int:
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(b"?\n")
                proc.stdin.flush()
                return int(proc.stdout.readline())

            before = faults()
            _ask(sock, 200)
            per_request = (faults() - before) / 200
        # Two faults per request when each read maps its 256 KiB buffer.
        assert per_request < 0.5, f"{per_request:.2f} minor page faults per request"
    finally:
        proc.kill()
        proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def test_client_connection_bounds_its_reads() -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        a, b = socket.socketpair()
        conn = ClientConnection(("http", "h", 80), H1Limits(), False)
        try:
            transport, _ = await loop.create_connection(lambda: conn, sock=a)
            size: int = transport.max_size  # type: ignore[attr-defined]
            transport.close()
            await asyncio.sleep(0)  # the transport closes its socket a turn later
            return size
        finally:
            b.close()

    assert asyncio.run(main()) == _READ_SIZE
