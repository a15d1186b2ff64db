"""Connect with one framework's WebSocket client to a scripted server: ``python ws_peer.py tornado``.

Reads a JSON list of cases from stdin and writes a JSON list of results
(client_run.py runs it under Tornado and, through ``squall.compat``, under
Squall, and compares them). A case is ``{"path", "subprotocols",
"compress", "send", "handshake", "frames", "abrupt", "callback"}``: the raw
server reads the client's handshake, answers with ``handshake``
(``{accept}`` in it is the right Sec-WebSocket-Accept for the client's
key), sends ``frames`` (base64 bytes, unmasked as a server's are; the
last, a close frame unless the case is ``abrupt``, once the client's
messages have arrived), then reads the client's frames until its close
frame or the end of the connection, and closes. The client sends ``send``
(a list of text messages) once connected and reads messages until the
connection ends, by ``read_message`` or, with ``callback``, through an
``on_message_callback`` until it is given None. A result holds the
handshake the server received (key and version fields elided), the
client's frames (unmasked), what ``websocket_connect`` raised or the
messages read, and ``close_code``/``close_reason``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib
import json
import logging
import re
import sys
from typing import Any

import tls

FRAMEWORK = sys.argv[1]
websocket: Any = importlib.import_module(f"{FRAMEWORK}.websocket")
httpclient: Any = importlib.import_module(f"{FRAMEWORK}.httpclient")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first = await reader.readexactly(2)
    size = first[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await reader.readexactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await reader.readexactly(8), "big")
    mask = await reader.readexactly(4) if first[1] & 0x80 else b"\0\0\0\0"
    payload = await reader.readexactly(size)
    return first[0], bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Server:
    def __init__(self) -> None:
        self.case: dict[str, Any] = {}
        self.record: dict[str, Any] = {}
        self.port = 0

    async def start(self) -> None:
        context = tls.server_context() if tls.ON else None
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=context)
        self.port = server.sockets[0].getsockname()[1]

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # This connection's case and record: a connection of an earlier case
        # (a client that read on after a protocol error, or wrote after its
        # case ended) must not add its frames to the current case's record.
        case, record = self.case, self.record

        async def read_recorded(reader: asyncio.StreamReader) -> int:
            opcode, payload = await _read_frame(reader)
            record["frames"].append([opcode, base64.b64encode(payload).decode()])
            return opcode

        try:
            head = await reader.readuntil(b"\r\n\r\n")
            key = re.search(rb"(?i)\r\nsec-websocket-key: *([^\r]*)", head)
            accept = base64.b64encode(hashlib.sha1((key.group(1) if key else b"") + GUID).digest())
            text = head.decode("latin-1").replace(str(self.port), "PORT")
            text = re.sub(r"(?i)(sec-websocket-key:)[^\r]*", r"\1 <key>", text)
            record["handshake"] = sorted(text.split("\r\n"), key=str.lower)
            answer = base64.b64decode(case["handshake"]).replace(b"{accept}", accept)
            frames = [base64.b64decode(frame) for frame in case["frames"]]
            # The closing frame waits for the client's messages: whether a
            # write_message came before the close would be timing.
            final = None if case["abrupt"] else frames.pop()
            writer.write(answer + b"".join(frames))
            await writer.drain()
            if not answer.startswith(b"HTTP/1.1 101"):
                return
            if final is None:
                # The end without a close frame: the server's half only, then
                # what the client still sends is read (a close with it unread
                # would be a reset, which drops what the client had not read
                # yet, or not, by timing).
                writer.write_eof()
                while True:
                    await read_recorded(reader)
            wanted = len(case["send"])
            closed = False
            while wanted and not closed:
                opcode = await read_recorded(reader)
                closed = opcode & 0x0F == 8
                wanted -= opcode in (0x81, 0x82, 0xC1, 0xC2)
            writer.write(final)
            await writer.drain()
            while not closed:
                closed = await read_recorded(reader) & 0x0F == 8
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def connect(server: Server, case: dict[str, Any]) -> dict[str, Any]:
    server.case = case
    server.record = {"handshake": [], "frames": []}
    result: dict[str, Any] = server.record
    request = httpclient.HTTPRequest(
        f"{'wss' if tls.ON else 'ws'}://127.0.0.1:{server.port}{case['path']}",
        request_timeout=10,
        validate_cert=not tls.ON,
    )
    received: list[Any] = []
    ended = asyncio.get_running_loop().create_future()

    def on_message(message: Any) -> None:
        if message is None:
            if not ended.done():
                ended.set_result(None)
        else:
            received.append(message)

    try:
        conn = await websocket.websocket_connect(
            request,
            subprotocols=case["subprotocols"],
            compression_options={} if case["compress"] else None,
            on_message_callback=on_message if case.get("callback") else None,
        )
    except Exception as exc:
        result["raised"] = [type(exc).__name__, getattr(exc, "code", None)]
        return result
    result["subprotocol"] = conn.selected_subprotocol
    for message in case["send"]:
        try:
            await conn.write_message(message)
        except Exception as exc:
            result.setdefault("write_errors", []).append(type(exc).__name__)
    if case.get("callback"):
        await ended
    else:
        while True:
            message = await conn.read_message()
            if message is None:
                break
            received.append(message)
    messages = [m if isinstance(m, str) else ["bytes", m.hex()] for m in received]
    result["messages"] = messages
    result["close"] = [conn.close_code, conn.close_reason]
    return result


async def main() -> None:
    logging.disable(logging.CRITICAL)
    cases = json.load(sys.stdin)
    server = Server()
    await server.start()
    results = []
    for case in cases:
        try:
            results.append(await asyncio.wait_for(connect(server, case), 20))
        except TimeoutError:
            results.append({"hung": True})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
