"""Uploads files to the upload server without reading them whole.

``python demos/file_upload/client.py --url=http://127.0.0.1:8888/upload FILE...``
Each file goes as ``PUT <url>/<file name>``, its body produced in
``CHUNK``-byte reads by a ``body_producer``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any, Optional

import squall.escape
import squall.options
from squall.httpclient import AsyncHTTPClient, HTTPRequest

CHUNK = 64 * 1024
Write = Callable[[bytes], Awaitable[None]]


def file_producer(path: str, chunk_size: int = CHUNK) -> Callable[[Write], Awaitable[None]]:
    """A body producer writing ``path`` in chunks, waiting for each to be sent."""

    async def produce(write: Write) -> None:
        with open(path, "rb") as f:
            while chunk := f.read(chunk_size):
                await write(chunk)

    return produce


async def upload(url: str, path: str, client: Optional[AsyncHTTPClient] = None) -> dict[str, Any]:
    """PUTs the file at ``path`` to ``url``/<its name>; returns the server's report."""
    client = client or AsyncHTTPClient()
    target = url.rstrip("/") + "/" + urllib.parse.quote(os.path.basename(path))
    request = HTTPRequest(
        target,
        method="PUT",
        headers={"Content-Length": str(os.path.getsize(path))},
        body_producer=file_producer(path),
        request_timeout=3600,
    )
    response = await client.fetch(request)
    report: dict[str, Any] = squall.escape.json_decode(response.body)
    return report


def main(argv: Optional[list[str]] = None) -> None:
    opts = squall.options.OptionParser()
    opts.define("url", default="http://127.0.0.1:8888/upload", help="the upload endpoint")
    paths = opts.parse_command_line(sys.argv if argv is None else argv, final=False)
    if not paths:
        sys.exit("usage: client.py [--url=URL] FILE...")

    async def run() -> None:
        for path in paths:
            report = await upload(opts.url, path)
            print(
                f"{path}: {report['bytes']} bytes in {report['chunks']} chunks, "
                f"sha256 {report['sha256']}"
            )

    asyncio.run(run())


if __name__ == "__main__":
    main()
