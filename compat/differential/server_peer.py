"""Run request streams through a real HTTP server over loopback.

``python server_peer.py tornado|squall < cases.json > results.json``

The same script drives Tornado's HTTPServer (in a virtualenv that has
Tornado) and Squall's (whose API is Tornado's), so each is exercised the
way it is deployed: its own connection code, its parser, its limits, its
checks above the parser (Host, for one). A case's bytes are written on a
fresh connection; the server's plain request callback records each request
it receives in full and answers 200. The case ends when the server closes
the connection or has been quiet for a short while. The case is "refused"
when the server answered with a 4xx/5xx status or logged the message as
malformed. Cases run concurrently, each slot from its own loopback source
address so that log lines (which name only the peer's IP) can be told
apart.

Input: a JSON list of base64 strings; output: a JSON list of
{"msgs": [[method, target, version, [[name, value], ...], body_b64], ...],
"end": "refused" | "open"}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import socket
import sys
from typing import Any

IMPL = sys.argv[1]
if IMPL == "tornado":
    from tornado.httpserver import HTTPServer
    from tornado.httputil import HTTPHeaders, ResponseStartLine
else:
    from squall.httpserver import HTTPServer  # type: ignore[assignment]
    from squall.httputil import HTTPHeaders, ResponseStartLine  # type: ignore[assignment]

QUIET = float(sys.argv[2]) if len(sys.argv) > 2 else 0.05
SLOTS = 64
_STATUS = re.compile(rb"HTTP/1\.[01] ([0-9]{3})")

# slot ip -> current case's record
_records: dict[str, dict[str, Any]] = {}


class _LogSink(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        m = re.search(r"from (127\.\d+\.\d+\.\d+)", text)
        if m and m.group(1) in _records:
            _records[m.group(1)]["logs"].append(text[:200])


def _handle(request: Any) -> None:
    rec = _records.get(request.remote_ip)
    if rec is not None:
        rec["msgs"].append(
            [
                request.method,
                request.uri,
                request.version[5:],
                [[k.lower(), v.strip(" \t")] for k, v in request.headers.get_all()],
                base64.b64encode(request.body or b"").decode(),
            ]
        )
    request.connection.write_headers(
        ResponseStartLine("HTTP/1.1", 200, "OK"), HTTPHeaders({"Content-Length": "0"})
    )
    request.connection.finish()


async def _one(slot_ip: str, port: int, data: bytes) -> dict[str, Any]:
    rec: dict[str, Any] = {"msgs": [], "logs": []}
    _records[slot_ip] = rec
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((slot_ip, 0))
    received = b""
    try:
        await loop.sock_connect(sock, ("127.0.0.1", port))
        if data:
            await loop.sock_sendall(sock, data)
        while True:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), QUIET)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    except OSError:
        pass
    finally:
        sock.close()
    # Let the server finish logging about this connection.
    await asyncio.sleep(0)
    del _records[slot_ip]
    statuses = [int(s) for s in _STATUS.findall(received)]
    # The server logs one line naming the peer for a message it refuses
    # ("Malformed HTTP message from", "Unsatisfiable read from"); its error
    # response may be lost to a reset when it closes with unread input.
    refused = any(s >= 400 for s in statuses) or bool(rec["logs"])
    return {"msgs": rec["msgs"], "end": "refused" if refused else "open", "logs": rec["logs"]}


async def main() -> None:
    cases = [base64.b64decode(c) for c in json.load(sys.stdin)]
    sink = _LogSink()
    for name in ("tornado.general", "tornado.application", "squall.general", "squall.application"):
        lg = logging.getLogger(name)
        lg.addHandler(sink)
        lg.setLevel(logging.INFO)
        lg.propagate = False
    server = HTTPServer(_handle)
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    lsock.setblocking(False)
    server.add_sockets([lsock])
    port = lsock.getsockname()[1]
    results: list[dict[str, Any] | None] = [None] * len(cases)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(cases)):
        queue.put_nowait(i)

    async def worker(slot: int) -> None:
        ip = f"127.0.{10 + slot // 250}.{1 + slot % 250}"
        while not queue.empty():
            i = queue.get_nowait()
            results[i] = await _one(ip, port, cases[i])

    await asyncio.gather(*(worker(s) for s in range(SLOTS)))
    server.stop()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
