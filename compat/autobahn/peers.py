"""Squall's WebSocket peers for Autobahn|Testsuite.

``python peers.py server PORT`` serves an echo WebSocket on 127.0.0.1:PORT
(permessage-deflate offered, large messages allowed, as the suite's 9.*
cases send up to 16 MiB).

``python peers.py client URL AGENT`` plays the suite's fuzzingserver
protocol: asks for the case count, connects to each case and echoes what it
receives, then asks the suite to write its report.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any, Optional, Union

if os.environ.get("AUTOBAHN_PEER") == "tornado":
    # The same peers on Tornado, to compare a result (run with a Python
    # that has Tornado: AUTOBAHN_PYTHON).
    from tornado.web import Application
    from tornado.websocket import WebSocketClosedError, WebSocketHandler, websocket_connect
else:
    from squall.web import Application  # type: ignore[assignment]
    from squall.websocket import (  # type: ignore[assignment]
        WebSocketClosedError,
        WebSocketHandler,
        websocket_connect,
    )

MAX_MESSAGE = 64 * 1024 * 1024
# Echo without waiting for each write to drain (to compare close timings).
NO_AWAIT = os.environ.get("AUTOBAHN_NO_AWAIT") == "1"


class Echo(WebSocketHandler):
    def get_compression_options(self) -> dict[str, Any]:
        return {}

    def check_origin(self, origin: str) -> bool:
        return True

    async def on_message(self, message: Union[str, bytes]) -> None:
        try:
            fut = self.write_message(message, binary=isinstance(message, bytes))
            if not NO_AWAIT:
                await fut
        except WebSocketClosedError:
            pass


async def serve(port: int) -> None:
    app = Application([("/", Echo)], websocket_max_message_size=MAX_MESSAGE)
    app.listen(port, "127.0.0.1", max_body_size=MAX_MESSAGE)
    print(f"listening on {port}", flush=True)
    await asyncio.Event().wait()


async def run_case(url: str) -> None:
    conn = await websocket_connect(url, compression_options={}, max_message_size=MAX_MESSAGE)
    while True:
        msg: Optional[Union[str, bytes]] = await conn.read_message()
        if msg is None:
            return
        try:
            await conn.write_message(msg, binary=isinstance(msg, bytes))
        except WebSocketClosedError:
            return


async def clients(base: str, agent: str) -> None:
    conn = await websocket_connect(f"{base}/getCaseCount")
    count = int(await conn.read_message() or 0)
    print(f"{count} cases", flush=True)
    for case in range(1, count + 1):
        try:
            await asyncio.wait_for(run_case(f"{base}/runCase?case={case}&agent={agent}"), 120)
        except Exception as exc:  # a case may close the connection in any way
            print(f"case {case}: {type(exc).__name__}: {exc}", flush=True)
        if case % 50 == 0:
            print(f"{case}/{count}", flush=True)
    conn = await websocket_connect(f"{base}/updateReports?agent={agent}")
    while await conn.read_message() is not None:
        pass


def main() -> None:
    if sys.argv[1] == "server":
        asyncio.run(serve(int(sys.argv[2])))
    else:
        asyncio.run(clients(sys.argv[2], sys.argv[3]))


if __name__ == "__main__":
    main()
