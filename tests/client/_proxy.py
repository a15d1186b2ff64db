"""A small HTTP proxy, run as a subprocess by the tests: CONNECT tunnels and
absolute-form forwarding, with optional basic Proxy-Authorization.

Usage: python -m tests.client._proxy [USER:PASSWORD]; prints its port, then
one line per request it handles ("CONNECT host:port" or "GET url").
"""

from __future__ import annotations

import asyncio
import base64
import sys
import urllib.parse
from typing import Optional


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def log(line: str) -> None:
    print(line, flush=True)


async def handle(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, credentials: Optional[str]
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = [line.split(":", 1) for line in lines[1:] if line]
            fields = {name.strip().lower(): value.strip() for name, value in headers}
            if credentials is not None:
                expected = "Basic " + base64.b64encode(credentials.encode()).decode()
                if fields.get("proxy-authorization") != expected:
                    log(f"DENIED {method} {target}")
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n"
                    )
                    await writer.drain()
                    continue
            log(f"{method} {target}")
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                up_reader, up_writer = await asyncio.open_connection(host, int(port))
                writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                await writer.drain()
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
                return
            url = urllib.parse.urlsplit(target)
            length = int(fields.get("content-length", "0"))
            body = await reader.readexactly(length) if length else b""
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            out = [f"{method} {path} {version}"]
            out += [
                f"{name}:{value}"
                for name, value in headers
                if name.strip().lower() not in ("proxy-authorization", "connection")
            ]
            out.append("Connection: close")
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            response = await up_reader.read()
            up_writer.close()
            # The origin closed; re-frame the response for a keep-alive client.
            resp_head, _, resp_body = response.partition(b"\r\n\r\n")
            resp_lines = [
                line
                for line in resp_head.split(b"\r\n")
                if not line.lower().startswith(
                    (b"connection:", b"content-length:", b"transfer-encoding:")
                )
            ]
            resp_lines.append(b"Content-Length: %d" % len(resp_body))
            writer.write(b"\r\n".join(resp_lines) + b"\r\n\r\n" + resp_body)
            await writer.drain()
    finally:
        writer.close()


async def main() -> None:
    credentials = sys.argv[1] if len(sys.argv) > 1 else None
    server = await asyncio.start_server(lambda r, w: handle(r, w, credentials), "127.0.0.1", 0)
    log(str(server.sockets[0].getsockname()[1]))
    # Stops when the test closes our stdin.
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
