"""Helpers for the demo tests: loading a demo's module, running coroutines, subprocesses."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from .._wait import HANG_GUARD

_T = TypeVar("_T")

ROOT = Path(__file__).resolve().parents[2]
DEMOS = ROOT / "demos"
# A hang guard, not a property: the demos' tests wait on events, and a
# loaded machine (make test's stages on two cores) took longer than 5 s.
LIMIT = HANG_GUARD


def load(relative: str) -> ModuleType:
    """Imports ``demos/<relative>`` under a name of its own (demos share file names)."""
    name = "demo_" + re.sub(r"\W", "_", relative.removesuffix(".py"))
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, DEMOS / relative)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run(coro: Coroutine[Any, Any, _T], limit: float = LIMIT) -> _T:
    return asyncio.run(asyncio.wait_for(coro, limit))


async def start_demo(
    relative: str, *args: str, pattern: str = r"https?://\S+|\d+\.\d+\.\d+\.\d+:\d+"
) -> tuple[asyncio.subprocess.Process, str]:
    """Starts ``python demos/<relative> ARGS`` and returns it with the address it printed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(DEMOS / relative),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    said = []
    try:
        # The address within its first lines (the forum prints a line, then
        # the address alone).
        for _ in range(5):
            line = (await process.stdout.readline()).decode()
            said.append(line)
            found = re.search(pattern, line)
            if found is not None or not line:
                break
    except BaseException:
        # A deadline (the test's wait_for) cancels the read: the child must
        # still be ended and reaped before the loop closes, or it outlives the
        # test and its transports are collected open.
        await stop(process)
        raise
    if found is None:
        await stop(process)
        raise AssertionError(f"{relative} printed no address: {''.join(said)!r}")
    return process, found.group(0)


async def stop(process: asyncio.subprocess.Process) -> None:
    """Ends the child and reads its output to the end.

    Reading to EOF is what lets the pipe transport close: the wait for the exit
    returns only once every pipe is closed, and a reader paused on a full
    buffer never sees EOF. A child that ignores SIGTERM is killed.
    """
    if process.returncode is None:
        process.terminate()
    try:
        await asyncio.wait_for(process.communicate(), LIMIT)
    except TimeoutError:
        process.kill()
        await process.communicate()
