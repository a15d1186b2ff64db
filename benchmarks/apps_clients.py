"""The WebSocket load of ``make bench-apps``: one client per run, on CPU 1,
run by the benchmark venv's interpreter (it needs ``websocket-client``,
which jupyter_server brings).

    python apps_clients.py kernel --port P --token T --kernel K --duration S
    python apps_clients.py bokeh --port P --app NAME --duration S

Each warms up, prints ``ready``, waits for a line on its standard input (the
benchmark reads the server's CPU clock meanwhile), runs for ``--duration``
seconds and prints one JSON line: the units it completed and the messages
the server took and sent for them.

``kernel``: Jupyter's channels WebSocket of one running kernel (the JSON
protocol, no subprotocol asked), ``--window`` executions of a trivial cell
in flight; one ends when its ``execute_reply`` (shell) and the ``idle``
status (iopub) of its request have both arrived. Messages: the request
and every reply the server relayed.

``bokeh``: one unit is what a browser's visit costs the server: ``GET
/NAME`` (a session and its document made, the page rendered), the
session's WebSocket opened with the page's token, ``PULL-DOC-REQ``, one
``PATCH-DOC`` setting the slider's value, and the answer: ``OK`` and the
``PATCH-DOC`` the app's callback makes (the text of a ``Div``); then the
socket closes. Messages: the Bokeh messages both ways (each is three or
more WebSocket frames). ``--concurrency`` visitors at once (threads): a
visit mostly waits, on the server's timers and callbacks.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import threading
import time
import urllib.request
import uuid
from typing import Any

import websocket  # websocket-client

CELL = "a = 1"


def go(ready: str = "ready") -> None:
    print(ready, flush=True)
    sys.stdin.readline()


# -- a Jupyter kernel ----------------------------------------------------------------------------


class Kernel:
    def __init__(self, port: int, token: str, kernel: str) -> None:
        self.session = uuid.uuid4().hex
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?session_id={self.session}",
            header=[f"Authorization: token {token}"],
            timeout=30,
        )
        self.ids = itertools.count()
        # msg_id -> what is still awaited of it ({"reply", "idle"}).
        self.pending: dict[str, set[str]] = {}
        self.messages = 0

    def send(self) -> None:
        msg_id = f"{self.session}-{next(self.ids)}"
        msg = {
            "header": {
                "msg_id": msg_id,
                "msg_type": "execute_request",
                "username": "bench",
                "session": self.session,
                "date": "2026-01-01T00:00:00.000000Z",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": CELL,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        self.pending[msg_id] = {"reply", "idle"}
        self.ws.send(json.dumps(msg))
        self.messages += 1

    def receive(self) -> bool:
        """Read one message; True when it completed an execution."""
        msg = json.loads(self.ws.recv())
        self.messages += 1
        parent = msg.get("parent_header", {}).get("msg_id")
        waiting = self.pending.get(parent)
        if waiting is None:
            return False
        kind = msg["msg_type"]
        if kind == "execute_reply":
            if msg["content"]["status"] != "ok":
                raise RuntimeError(f"the cell failed: {msg['content']}")
            waiting.discard("reply")
        elif kind == "status" and msg["content"]["execution_state"] == "idle":
            waiting.discard("idle")
        if waiting:
            return False
        del self.pending[parent]
        return True

    def run(self, seconds: float, window: int) -> int:
        """Executions completed in ``seconds`` (then the ones in flight drained)."""
        for _ in range(window):
            self.send()
        done = 0
        end = time.monotonic() + seconds
        while self.pending:
            if self.receive():
                done += 1
                if time.monotonic() < end:
                    self.send()
        return done


def kernel_main(args: argparse.Namespace) -> None:
    client = Kernel(args.port, args.token, args.kernel)
    client.run(1.0, args.window)
    go()
    client.messages = 0
    start = time.monotonic()
    done = client.run(args.duration, args.window)
    print(
        json.dumps(
            {"units": done, "messages": client.messages, "seconds": time.monotonic() - start}
        ),
        flush=True,
    )
    client.ws.close()


# -- a Bokeh document ------------------------------------------------------------------------------


def bokeh_send(ws: Any, msgtype: str, content: dict[str, Any]) -> str:
    msgid = uuid.uuid4().hex
    ws.send(json.dumps({"msgid": msgid, "msgtype": msgtype}))
    ws.send("{}")
    ws.send(json.dumps(content))
    return msgid


def bokeh_receive(ws: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One Bokeh message: (header, content); its buffers, if any, read and dropped."""
    header = json.loads(ws.recv())
    ws.recv()  # metadata
    content = json.loads(ws.recv())
    for _ in range(2 * header.get("num_buffers", 0)):
        ws.recv()
    return header, content


def find_model(doc: Any, name: str) -> str:
    """The id of the model whose ``name`` attribute is ``name`` in a pulled document."""
    if isinstance(doc, dict):
        if doc.get("type") == "object" and doc.get("attributes", {}).get("name") == name:
            return str(doc["id"])
        items: Any = doc.values()
    elif isinstance(doc, list):
        items = doc
    else:
        items = ()
    for item in items:
        found = find_model(item, name)
        if found:
            return found
    return ""


TOKEN_RE = re.compile(r'"token":\s*"([^"]+)"')


def bokeh_visit(port: int, app: str, value: int) -> int:
    """One visit; the Bokeh messages it took."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/{app}", timeout=30) as response:
        page = response.read().decode()
    token = TOKEN_RE.search(page)
    if token is None:
        raise RuntimeError("no session token in the page")
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/{app}/ws", subprotocols=["bokeh", token.group(1)], timeout=30
    )
    try:
        header, _ = bokeh_receive(ws)
        if header["msgtype"] != "ACK":
            raise RuntimeError(f"expected ACK, got {header}")
        bokeh_send(ws, "PULL-DOC-REQ", {})
        header, content = bokeh_receive(ws)
        if header["msgtype"] != "PULL-DOC-REPLY":
            raise RuntimeError(f"expected PULL-DOC-REPLY, got {header}")
        slider = find_model(content["doc"], "slider")
        event = {"kind": "ModelChanged", "model": {"id": slider}, "attr": "value", "new": value}
        sent = bokeh_send(ws, "PATCH-DOC", {"events": [event]})
        ok = patched = False
        messages = 4
        while not (ok and patched):
            header, content = bokeh_receive(ws)
            messages += 1
            if header["msgtype"] == "OK" and header.get("reqid") == sent:
                ok = True
            elif header["msgtype"] == "PATCH-DOC":
                texts = [e.get("new") for e in content["events"] if e.get("attr") == "text"]
                patched = f"x is {value}" in texts
            elif header["msgtype"] == "ERROR":
                raise RuntimeError(f"the server answered {content}")
        return messages
    finally:
        ws.close()


def bokeh_main(args: argparse.Namespace) -> None:
    values = itertools.count()
    lock = threading.Lock()
    totals = {"units": 0, "messages": 0}

    def visitor(until: float, count: bool) -> None:
        while time.monotonic() < until:
            with lock:
                value = 1 + next(values) % 99  # never the slider's first value, 0
            messages = bokeh_visit(args.port, args.app, value)
            if count:
                with lock:
                    totals["units"] += 1
                    totals["messages"] += messages

    def visitors(seconds: float, count: bool) -> None:
        until = time.monotonic() + seconds
        threads = [
            threading.Thread(target=visitor, args=(until, count)) for _ in range(args.concurrency)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    visitors(1.0, count=False)
    go()
    start = time.monotonic()
    visitors(args.duration, count=True)
    print(json.dumps({**totals, "seconds": time.monotonic() - start}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    kernel = sub.add_parser("kernel")
    kernel.add_argument("--port", type=int, required=True)
    kernel.add_argument("--token", required=True)
    kernel.add_argument("--kernel", required=True)
    kernel.add_argument("--duration", type=float, default=5.0)
    kernel.add_argument("--window", type=int, default=4)
    bokeh = sub.add_parser("bokeh")
    bokeh.add_argument("--port", type=int, required=True)
    bokeh.add_argument("--app", required=True)
    bokeh.add_argument("--duration", type=float, default=5.0)
    bokeh.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    if args.what == "kernel":
        kernel_main(args)
    else:
        bokeh_main(args)


if __name__ == "__main__":
    main()
