"""What a flood of unvalidated QUIC Initials costs the HTTP/3 server.

The server runs in a child process pinned to one core; this process, on
another, sends N first Initials (each a new connection ID, none ever
answered) from many local ports, in bursts it paces by the answers, then
reads the child's RSS and CPU time from /proc. Run once with the defaults
(Retry past 100 half-open connections, at most 1,000) and once as before
(no Retry, no cap)::

    python benchmarks/h3_flood.py --initials 10000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from typing import Any

from aioquic.h3.connection import H3_ALPN
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

CHILD = """
import asyncio, sys
from squall.httpserver import HTTPServer
from squall.testing import AsyncHTTPSTestCase, bind_unused_port
from squall.web import Application

async def main():
    sock, port = bind_unused_port()
    limits = {} if sys.argv[1] == "retry" else dict(
        http3_retry_threshold=10**9, http3_max_half_open=10**9)
    server = HTTPServer(Application([]), ssl_options=AsyncHTTPSTestCase.default_ssl_options(),
                        http3=True, header_timeout=600, **limits)
    server.add_sockets([sock])
    await asyncio.gather(*server._h3_tasks)
    print(port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def initials(n: int) -> list[bytes]:
    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    out = []
    for _ in range(n):
        quic = QuicConnection(configuration=config)
        quic.connect(("127.0.0.1", 1), now=time.monotonic())
        out.append(quic.datagrams_to_send(now=time.monotonic())[0][0])
    return out


def usage(pid: int) -> tuple[int, float]:
    """RSS in bytes and CPU seconds (user + system) of ``pid``."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def flood(port: int, datagrams: list[bytes], ports: int) -> int:
    """Send the datagrams round-robin from ``ports`` sockets, 50 at a time,
    each burst waiting (at most 2 s) for an answer to each; the answers."""
    loop = asyncio.get_running_loop()
    answered = 0
    got = asyncio.Event()

    class Source(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            nonlocal answered
            answered += 1
            got.set()

    transports = []
    for _ in range(ports):
        t, _ = await loop.create_datagram_endpoint(Source, remote_addr=("127.0.0.1", port))
        transports.append(t)
    try:
        for i in range(0, len(datagrams), 50):
            burst = datagrams[i : i + 50]
            want = answered + len(burst)
            for j, data in enumerate(burst):
                transports[(i + j) % ports].sendto(data)
            deadline = loop.time() + 2
            while answered < want and loop.time() < deadline:
                got.clear()
                try:
                    await asyncio.wait_for(got.wait(), deadline - loop.time())
                except TimeoutError:
                    break
    finally:
        for t in transports:
            t.close()
    return answered


def run(mode: str, datagrams: list[bytes], ports: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    child = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-c", CHILD, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        rss0, cpu0 = usage(child.pid)
        start = time.monotonic()
        answered = asyncio.run(flood(port, datagrams, ports))
        wall = time.monotonic() - start
        rss1, cpu1 = usage(child.pid)
    finally:
        child.kill()
        child.wait()
    return {
        "rss_mib": (rss1 - rss0) / 2**20,
        "cpu_s": cpu1 - cpu0,
        "wall_s": wall,
        "answered": answered,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--initials", type=int, default=10_000)
    parser.add_argument("--ports", type=int, default=100)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
    datagrams = initials(args.initials)
    print(f"{args.initials} unvalidated Initials from {args.ports} local ports:")
    for mode in ("retry", "none"):
        r = run(mode, datagrams, args.ports)
        label = "Retry past 100, cap 1,000" if mode == "retry" else "no Retry, no cap"
        print(
            f"  {label:28} +{r['rss_mib']:.1f} MiB RSS, {r['cpu_s']:.2f} s server CPU "
            f"({r['wall_s']:.1f} s wall, {r['answered']:.0f} answer datagrams)"
        )


if __name__ == "__main__":
    main()
