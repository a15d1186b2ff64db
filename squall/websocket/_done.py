"""The resolved future a server WebSocket's direct writes return (see its ``_done``)."""

from __future__ import annotations

import asyncio
from typing import Optional

from squall.concurrent import Future

# The resolved future of the loop connections last started on.
_last_done: Optional[Future[None]] = None


def loop_done() -> Future[None]:
    """A resolved future of the running loop, the same for its connections."""
    global _last_done
    loop = asyncio.get_running_loop()
    done = _last_done
    if done is None or done.get_loop() is not loop:
        done = _last_done = loop.create_future()
        done.set_result(None)
    return done
