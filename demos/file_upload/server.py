"""Streaming uploads: ``python demos/file_upload/server.py --port=8888``.

``PUT /upload/<name>`` streams the request body into a temporary file chunk
by chunk (`squall.web.stream_request_body`), so a file of any size costs
only one chunk of memory. The answer reports the size, the SHA-256 and how
many chunks arrived. Send one with ``client.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import socket
import sys
import tempfile
from typing import IO, Optional

import squall.netutil
import squall.options
import squall.web
from squall.httpserver import HTTPServer

MAX_UPLOAD = 1024**3
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")


@squall.web.stream_request_body
class UploadHandler(squall.web.RequestHandler):
    """Writes the body of ``PUT /upload/<name>`` to ``upload_dir``."""

    def initialize(self, upload_dir: str) -> None:
        self.upload_dir = upload_dir
        self.file: Optional[IO[bytes]] = None
        self.digest = hashlib.sha256()
        self.size = 0
        self.chunks = 0
        self.done = False

    def prepare(self) -> None:
        if self.request.method != "PUT":
            return
        # The server's default body limit (100 MB) is too small for uploads;
        # HTTP/1 connections let a streaming handler raise it for its request.
        set_limit = getattr(self.request.connection, "set_max_body_size", None)
        if set_limit is not None:
            set_limit(self.settings["max_upload"])
        os.makedirs(self.upload_dir, exist_ok=True)
        self.file = tempfile.NamedTemporaryFile(
            dir=self.upload_dir, prefix="upload-", suffix=".part", delete=False
        )

    def data_received(self, chunk: bytes) -> None:
        assert self.file is not None
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size += len(chunk)
        self.chunks += 1

    def put(self, name: str) -> None:
        assert self.file is not None
        self.file.close()
        safe = _SAFE_NAME.sub("_", name)[:100] or "upload"
        final = os.path.join(self.upload_dir, f"{os.path.basename(self.file.name)[:-5]}-{safe}")
        os.replace(self.file.name, final)
        self.done = True
        self.write(
            {
                "name": name,
                "path": final,
                "bytes": self.size,
                "chunks": self.chunks,
                "sha256": self.digest.hexdigest(),
            }
        )

    def on_finish(self) -> None:
        self._discard_partial()

    def on_connection_close(self) -> None:
        self._discard_partial()

    def _discard_partial(self) -> None:
        # A body cut short (or refused) leaves no half-written file behind.
        if self.file is not None and not self.done:
            self.file.close()
            try:
                os.unlink(self.file.name)
            except FileNotFoundError:
                pass
            self.done = True


def make_app(upload_dir: str, max_upload: int = MAX_UPLOAD) -> squall.web.Application:
    """The upload application, storing files in ``upload_dir``."""
    return squall.web.Application(
        [(r"/upload/([^/]+)", UploadHandler, {"upload_dir": upload_dir})],
        max_upload=max_upload,
    )


def main(argv: Optional[list[str]] = None) -> None:
    """Serves until interrupted, printing the address first."""
    opts = squall.options.OptionParser()
    opts.define("port", default=8888, type=int, help="port to listen on (0: any free one)")
    opts.define("address", default="127.0.0.1", help="address to listen on")
    opts.define(
        "upload_dir",
        default=os.path.join(tempfile.gettempdir(), "squall-uploads"),
        help="where uploaded files go",
    )
    opts.parse_command_line(sys.argv if argv is None else argv, final=False)

    async def serve() -> None:
        sockets = squall.netutil.bind_sockets(opts.port, opts.address, family=socket.AF_INET)
        HTTPServer(make_app(opts.upload_dir)).add_sockets(sockets)
        host, port = sockets[0].getsockname()[:2]
        print(f"Upload server on http://{host}:{port}/upload/<name> (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
