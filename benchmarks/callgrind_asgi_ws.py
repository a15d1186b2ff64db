"""Instructions per WebSocket echo of a Squall handler under `ASGIAdapter`, by callgrind.

The adapter is driven in-process as an ASGI server would drive it: one
``websocket.receive`` (a 100-character text message) is handed to it, and
the loop runs until its ``websocket.send`` answer comes back; N+M echoes
counted minus M echoes, divided by N, so start-up costs cancel. What the
ASGI server itself costs (framing, the socket) is not in the count: this is
the adapter and the handler.

Usage: python benchmarks/callgrind_asgi_ws.py [-n N] [--loop uvloop|asyncio]
Needs valgrind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MESSAGE = "m" * 100
WARMUP = 20


def inner(cfg: dict[str, Any]) -> None:
    import _probe

    from squall.asgi import ASGIAdapter
    from squall.web import Application
    from squall.websocket import WebSocketHandler

    if cfg["loop"] == "uvloop":
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    class Echo(WebSocketHandler):
        def on_message(self, message: Any) -> None:
            self.write_message(message)

    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    waiting: list[asyncio.Future[dict[str, Any]]] = []

    async def send(message: dict[str, Any]) -> None:
        if waiting:
            waiting.pop().set_result(message)

    def exchange(message: dict[str, Any]) -> dict[str, Any]:
        answer: asyncio.Future[dict[str, Any]] = loop.create_future()
        waiting.append(answer)
        inbox.put_nowait(message)
        return loop.run_until_complete(answer)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "headers": [(b"host", b"bench")],
        "scheme": "ws",
        "client": ("127.0.0.1", 5000),
        "subprotocols": [],
    }
    adapter = ASGIAdapter(Application([("/ws", Echo)]))
    call = loop.create_task(adapter(scope, inbox.get, send))
    assert exchange({"type": "websocket.connect"})["type"] == "websocket.accept"
    text = {"type": "websocket.receive", "text": MESSAGE}
    for _ in range(WARMUP):
        assert exchange(text) == {"type": "websocket.send", "text": MESSAGE}

    def echoes(count: int) -> Any:
        def go() -> None:
            for _ in range(count):
                exchange(text)

        return go

    mod = _probe.load()
    mod.measure_a(echoes(cfg["m"]))
    mod.measure_b(echoes(cfg["m"] + cfg["n"]))
    inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
    loop.run_until_complete(asyncio.wait_for(call, 5))
    Path(cfg["out"]).write_text(json.dumps({"n": cfg["n"]}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    ap.add_argument("--inner", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:
        inner(json.loads(args.inner))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    from callgrind_hotpath import run_inner

    _result, incl, _self = run_inner(__file__, {"n": args.n, "m": 20, "loop": args.loop})
    per = (incl.get("sq_measure_b", 0) - incl.get("sq_measure_a", 0)) / args.n
    print(f"instructions per WebSocket echo under ASGIAdapter ({args.loop}): {per:,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
