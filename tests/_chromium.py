"""Ending a Chromium that a test started with ``start_new_session=True``.

Chromium's helper processes (renderer, utility, crash handler) outlive a
SIGKILL of the browser alone for a moment and keep writing into the
profile directory, which the test then fails to remove ("Directory not
empty"). Started in a session of its own, the whole group is ended.
"""

from __future__ import annotations

import asyncio
import os
import signal


async def end(browser: asyncio.subprocess.Process) -> None:
    """SIGKILL the browser's process group; wait for the browser."""
    try:
        os.killpg(browser.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # gone, helpers with it
    await browser.wait()
