"""Event-loop choice shared by the benchmark servers.

Squall's "speedups" contender runs on uvloop (part of squall[speedups]); the
pure contender sets SQUALL_NO_SPEEDUPS=1 and runs on asyncio's own loop. Peers
run on asyncio's loop unless SQUALL_BENCH_UVLOOP=1 asks for uvloop, so that the
table can show them both ways. SQUALL_BENCH_LOOP=asyncio keeps every server,
Squall's compiled build included, on asyncio's own loop (what ``pip install
squall`` without the speedups extra runs; benchmarks/asyncio_loop.py).
"""

import asyncio
import os


def choose_loop(squall: bool) -> None:
    wanted = (squall and not os.environ.get("SQUALL_NO_SPEEDUPS")) or os.environ.get(
        "SQUALL_BENCH_UVLOOP"
    )
    if wanted and os.environ.get("SQUALL_BENCH_LOOP") != "asyncio":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
