"""Runs a program on the event loop named first: ``with_loop.py uvloop|asyncio PROGRAM ...``.

PROGRAM is a script path or ``-m module``, with its arguments. For
``uvloop`` the event loop policy is set before the program starts, so that
its own ``asyncio.run`` gets a uvloop loop: the program is not changed.
"""

from __future__ import annotations

import asyncio
import runpy
import sys


def main() -> None:
    loop, *rest = sys.argv[1:]
    if loop == "uvloop":
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif loop != "asyncio":
        raise SystemExit(f"unknown loop {loop!r}")
    if rest[0] == "-m":
        sys.argv = [rest[1], *rest[2:]]
        runpy.run_module(rest[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        sys.path.insert(0, rest[0].rpartition("/")[0] or ".")
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
