"""Micro-benchmark of squall._h1: parse pipelined GET requests.

Feeds batches of pipelined requests to a server-role `H1Connection` and
answers each with a small pre-built response, with each parser backend;
each request's fields are wrapped in HTTPHeaders as the server does. With
squall installed compiled, "python" is the compiled build (its C pass over
the head first).
The requests are varied (benchmarks/callgrind_hotpath.py's stream: each has
its own query string, cookie and user agent, ~400 bytes), drawn in turn
from a pool of ``--pool`` distinct heads, so the connection's cache of the
previous head never answers and the parser itself is measured. ``--repeated``
feeds one head over and over instead (what the cache answers), as a
comparison. Prints requests per second of CPU time (process time, so that
other processes on a shared machine disturb the figure less), best of
``--repeat`` runs.

    python benchmarks/h1_parse.py [-n 200000] [--depth 16] [--repeated]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from callgrind_hotpath import request_stream  # noqa: E402

import squall.speedups  # noqa: E402
from squall._h1 import NEED_DATA, PAUSED, H1Connection, Request  # noqa: E402
from squall.httputil import HTTPHeaders  # noqa: E402

HEADERS = [("Content-Type", "text/plain"), ("Server", "squall")]


def _wrap_fields(ev: Request) -> HTTPHeaders:
    return HTTPHeaders._from_fields(ev.fields)


def _wrap_pairs(ev: Request) -> HTTPHeaders:
    # Trees from before Request.fields (SQUALL_SNAPSHOT of an older commit).
    return HTTPHeaders._from_pairs(ev.headers)


wrap = _wrap_fields if hasattr(HTTPHeaders, "_from_fields") else _wrap_pairs


def run(parser: str, n: int, batches: list[bytes]) -> float:
    conn = H1Connection("server", parser=parser)
    done = 0
    i = 0
    start = time.process_time()
    while done < n:
        conn.receive_data(batches[i])
        i = (i + 1) % len(batches)
        while True:
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            if ev is PAUSED:
                conn.send_response(200, "OK", HEADERS, b"Hello, World!")
                done += 1
            elif type(ev) is Request:
                # As the server does: the head's fields become its HTTPHeaders.
                wrap(ev)
    elapsed = time.process_time() - start
    return done / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=200_000, help="requests per backend")
    ap.add_argument("--depth", type=int, default=16, help="requests per read")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--pool", type=int, default=8192, help="distinct requests")
    ap.add_argument("--repeated", action="store_true", help="one head over and over")
    args = ap.parse_args()
    pool = request_stream("repeated" if args.repeated else "varied", args.pool)
    batches = [
        b"".join(pool[i : i + args.depth]) for i in range(0, len(pool) - args.depth + 1, args.depth)
    ]
    kind = "repeated head" if args.repeated else f"varied heads, {len(set(pool))} distinct"
    print(f"squall {'compiled' if squall.speedups.compiled else 'pure Python'}")
    for parser in ("python", "httptools"):
        try:
            H1Connection("server", parser=parser)
        except ImportError:
            print(f"{parser:10} not installed")
            continue
        best = max(run(parser, args.n, batches) for _ in range(args.repeat))
        print(f"{parser:10} {best:12,.0f} requests/s of CPU (depth {args.depth}, {kind})")


if __name__ == "__main__":
    main()
