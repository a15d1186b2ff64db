"""The streaming upload demo: a large body goes to disk chunk by chunk."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.netutil import bind_sockets

from ._util import load, run

server_mod = load("file_upload/server.py")
client_mod = load("file_upload/client.py")

SIZE = 8 * 1024 * 1024 + 123


def test_large_upload_is_streamed_to_disk(tmp_path: Path) -> None:
    source = tmp_path / "big file.bin"
    source.write_bytes(os.urandom(SIZE))
    uploads = tmp_path / "uploads"

    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = HTTPServer(server_mod.make_app(str(uploads)))
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        try:
            url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/upload"
            report = await client_mod.upload(url, str(source), http)
        finally:
            http.close()
            server.stop()
        assert report["bytes"] == SIZE
        assert report["sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
        # Many chunks, none near the whole file: the body was never held whole.
        assert report["chunks"] >= 8
        stored = Path(report["path"])
        assert stored.parent == uploads and stored.name.endswith("-big_file.bin")
        assert stored.read_bytes() == source.read_bytes()
        assert [p.name for p in uploads.iterdir()] == [stored.name]

    run(main())


def test_producer_reads_the_file_in_chunks(tmp_path: Path) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"abcdefghij")
    pieces: list[bytes] = []

    async def write(chunk: bytes) -> None:
        pieces.append(chunk)

    run(client_mod.file_producer(str(source), chunk_size=4)(write))
    assert pieces == [b"abcd", b"efgh", b"ij"]


def test_a_refused_upload_leaves_no_file(tmp_path: Path) -> None:
    uploads = tmp_path / "uploads"

    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = HTTPServer(server_mod.make_app(str(uploads), max_upload=1000))
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        try:
            url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/upload/x"
            response = await http.fetch(url, method="PUT", body=b"z" * 5000, raise_error=False)
            # Over the handler's limit: refused as Tornado does, with a 400.
            assert response.code == 400
        finally:
            http.close()
            server.stop()
            await server.close_all_connections()

    run(main())
    assert list(uploads.iterdir()) == []
