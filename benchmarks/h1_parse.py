"""Micro-benchmark of squall._h1: parse pipelined GET requests.

Feeds batches of pipelined requests (as wrk -s pipeline.lua would send
them) to a server-role `H1Connection` and answers each with a small
pre-built response, with each parser backend. Prints requests per second
of CPU time (process time, so that other processes on a shared machine
disturb the figure less), best of ``--repeat`` runs.

    python benchmarks/h1_parse.py [-n 200000] [--depth 16]
"""

from __future__ import annotations

import argparse
import time

from squall._h1 import NEED_DATA, PAUSED, H1Connection, Request

REQUEST = (
    b"GET /plaintext HTTP/1.1\r\n"
    b"Host: localhost:8080\r\n"
    b"User-Agent: wrk/4.2.0\r\n"
    b"Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9\r\n"
    b"Accept-Encoding: gzip, deflate\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
)
HEADERS = [("Content-Type", "text/plain"), ("Server", "squall")]


def run(parser: str, n: int, depth: int) -> float:
    conn = H1Connection("server", parser=parser)
    batch = REQUEST * depth
    done = 0
    start = time.process_time()
    while done < n:
        conn.receive_data(batch)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                conn.send_response(200, "OK", HEADERS, b"Hello, World!")
                done += 1
            elif type(ev) is not Request:
                continue
    elapsed = time.process_time() - start
    return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200_000, help="requests per backend")
    ap.add_argument("--depth", type=int, default=16, help="requests per read")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    args = ap.parse_args()
    for parser in ("python", "httptools"):
        try:
            H1Connection("server", parser=parser)
        except ImportError:
            print(f"{parser:10} not installed")
            continue
        best = max(run(parser, args.n, args.depth) for _ in range(args.repeat))
        print(f"{parser:10} {best:12,.0f} requests/s of CPU (depth {args.depth})")


if __name__ == "__main__":
    main()
