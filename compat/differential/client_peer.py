"""Fetch with one framework's simple HTTP client from a scripted server: ``python client_peer.py tornado|squall``.

Reads a JSON list of cases from stdin, writes a JSON list of results to
stdout (client_run.py runs it under Tornado and under Squall and compares
the two). A case is ``{"request": {...HTTPRequest arguments...}, "path":
..., "script": [base64 answer, ...]}``: a raw server on 127.0.0.1 answers
the client's requests in turn with the script's answers (``{port}`` in one
is its port; an answer that ends in ``<close>`` is followed by a close,
and the connection is closed when the script runs out). A result holds
the requests the server received (with the port replaced by ``PORT``) and
what the fetch gave: code, reason, header fields, body, ``effective_url``,
the error's type (and code), and what ``header_callback`` and
``streaming_callback`` got when the case asks for them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import importlib
import json
import logging
import sys
from typing import Any

import tls

FRAMEWORK = sys.argv[1]
httpclient: Any = importlib.import_module(f"{FRAMEWORK}.httpclient")
CLOSE = b"<close>"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class ScriptedServer:
    """Answers each request it reads with the next answer of the current script."""

    def __init__(self) -> None:
        self.script: list[bytes] = []
        self.received: list[str] = []
        self.port = 0

    async def start(self) -> None:
        context = tls.server_context() if tls.ON else None
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0, ssl=context)
        self.port = server.sockets[0].getsockname()[1]

    async def read_request(self, reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        if b"\r\nexpect: 100-continue\r\n" in head.lower():
            return head  # the body follows the 100 Continue (serve reads it then)
        return head + await self.read_body(reader, head)

    async def read_body(self, reader: asyncio.StreamReader, head: bytes) -> bytes:
        body = b""
        lowered = head.lower()
        if b"transfer-encoding: chunked" in lowered:
            while True:
                size_line = await reader.readline()
                body += size_line
                size = int(size_line.split(b";")[0] or b"0", 16)
                body += await reader.readexactly(size + 2)
                if size == 0:
                    break
        else:
            for line in lowered.split(b"\r\n"):
                if line.startswith(b"content-length:"):
                    body = await reader.readexactly(int(line.split(b":", 1)[1]))
        return body

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                # A request is read before the script is looked at: a close
                # with the request unread would be a reset, or not, by timing.
                request = await self.read_request(reader)
                if request is None or not self.script:
                    break
                answer = self.script.pop(0)
                if b"\r\nexpect: 100-continue\r\n" in request.lower():
                    if answer.startswith(CONTINUE):
                        # The client may send its body now; the answer's
                        # final part follows it.
                        writer.write(CONTINUE)
                        await writer.drain()
                        request += await self.read_body(reader, request)
                        answer = answer[len(CONTINUE) :]
                    elif not answer.endswith(CLOSE):
                        # Answered without the body: the connection cannot
                        # be read on (the body may come or not).
                        answer += CLOSE
                self.received.append(request.decode("latin-1").replace(str(self.port), "PORT"))
                if tls.ON:
                    # (Redirects to this server: to it over TLS.)
                    answer = answer.replace(b"http://127.0.0.1:{port}", b"https://127.0.0.1:{port}")
                answer = answer.replace(b"{port}", str(self.port).encode())
                close = answer.endswith(CLOSE)
                writer.write(answer.removesuffix(CLOSE))
                await writer.drain()
                if close:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()


async def fetch(server: ScriptedServer, case: dict[str, Any]) -> dict[str, Any]:
    server.script = [base64.b64decode(a) for a in case["script"]]
    server.received = []
    options = dict(case["request"])
    configured = {}
    if "client_max_body_size" in options:
        configured["max_body_size"] = options.pop("client_max_body_size")
    client = httpclient.AsyncHTTPClient(force_instance=True, **configured)
    pieces = options.pop("producer", None)
    if pieces is not None:

        async def produce(write: Any) -> None:
            for piece in pieces:
                await write(piece.encode("latin-1"))

        options["body_producer"] = produce
    if "if_modified_since" in options:
        options["if_modified_since"] = datetime.datetime.fromtimestamp(
            options["if_modified_since"], datetime.UTC
        )
    if "body" in options and options["body"] is not None:
        options["body"] = options["body"].encode("latin-1")
    url = f"{'https' if tls.ON else 'http'}://127.0.0.1:{server.port}{case['path']}"
    if tls.ON:
        options["validate_cert"] = False
    lines: list[str] = []
    chunks: list[bytes] = []
    if options.pop("callbacks", False):
        options["header_callback"] = lines.append
        options["streaming_callback"] = chunks.append
    try:
        request = httpclient.HTTPRequest(url, request_timeout=10, **options)
        response = await client.fetch(request, raise_error=False)
    except Exception as exc:
        return {"raised": type(exc).__name__, "received": server.received}
    finally:
        client.close()
    error = response.error
    port = str(server.port)
    return {
        "code": response.code,
        "reason": response.reason,
        "headers": sorted([k, v.replace(port, "PORT")] for k, v in response.headers.get_all()),
        "body": base64.b64encode(response.body or b"").decode(),
        "effective_url": response.effective_url.replace(port, "PORT"),
        "error": None if error is None else [type(error).__name__, getattr(error, "code", None)],
        "received": server.received,
        # What the callbacks got: the head's lines, and the body (its
        # pieces joined: where a read ends is the network's business).
        "header_lines": [line.replace(port, "PORT") for line in lines],
        "streamed": base64.b64encode(b"".join(chunks)).decode(),
    }


async def main() -> None:
    logging.disable(logging.CRITICAL)
    cases = json.load(sys.stdin)
    server = ScriptedServer()
    await server.start()
    results = [await fetch(server, case) for case in cases]
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
