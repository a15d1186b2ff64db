"""`HTTPServer.reload_ssl`: a certificate rotated under a running server.

Two self-signed certificates are made with the ``openssl`` command; the test
reads which one each new handshake presents, and checks that a connection
opened before the reload keeps serving. Files of an ``ssl_options`` dict
replaced on disk are served from the next handshake on without a reload, as
on Tornado (which reads them for every connection), by `HTTPServer` and by
`TCPServer`.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from squall.httpserver import HTTPServer
from squall.iostream import IOStream
from squall.tcpserver import TCPServer
from squall.testing import ExpectLog, bind_unused_port
from squall.web import Application, RequestHandler
from tests._wait import HANG_GUARD

DEADLINE = HANG_GUARD  # a hang guard, not a measure of speed

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl command")


def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed EC certificate whose subject CN is ``name``."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-subj", f"/CN={name}", "-days", "2", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


def rotation(directory: Path) -> tuple[Path, Path, Path, Path, Path, Path]:
    """A first and a second certificate with their keys, and the live files
    a server is given (copies of the first): what a rotation test swaps."""
    first_cert, first_key = make_cert(directory, "first")
    second_cert, second_key = make_cert(directory, "second")
    live_cert, live_key = directory / "live.crt", directory / "live.key"
    shutil.copy(first_cert, live_cert)
    shutil.copy(first_key, live_key)
    return first_cert, first_key, second_cert, second_key, live_cert, live_key


def der(path: Path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(path.read_text())


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hi")


def client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def handshake(port: int) -> tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=client_context()), DEADLINE
    )
    seen = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    return seen, reader, writer


async def get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    assert head.startswith(b"HTTP/1.1 200 ")
    return await asyncio.wait_for(reader.readexactly(2), DEADLINE)


async def close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, ssl.SSLError):
        pass


def serve(ssl_options: Any, **kwargs: Any) -> tuple[HTTPServer, int, socket.socket]:
    server = HTTPServer(Application([("/", Hello)]), ssl_options=ssl_options, **kwargs)
    sock, port = bind_unused_port()
    server.add_sockets([sock])
    return server, port, sock


def run(main: Any, loop: str = "asyncio") -> None:
    factory = None
    if loop == "uvloop":
        # The loop runs the handshake itself there (see HTTPServer.add_sockets).
        uvloop = pytest.importorskip("uvloop")
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(asyncio.wait_for(main(), DEADLINE * 2))


@pytest.mark.parametrize(
    ("http2", "loop"), [(False, "asyncio"), (True, "asyncio"), (True, "uvloop")]
)
def test_rotated_files_reloaded(tmp_path: Path, http2: bool, loop: str) -> None:
    first_cert, first_key, second_cert, second_key, live_cert, live_key = rotation(tmp_path)

    async def main() -> None:
        options = {"certfile": str(live_cert), "keyfile": str(live_key)}
        server, port, _ = serve(options, http2=http2)
        try:
            seen, r1, w1 = await handshake(port)
            assert seen == der(first_cert)
            assert await get(r1, w1) == b"hi"
            # The files are replaced on disk (as certbot does), then reloaded.
            shutil.copy(second_cert, live_cert)
            shutil.copy(second_key, live_key)
            server.reload_ssl()
            seen, r2, w2 = await handshake(port)
            assert seen == der(second_cert)
            assert await get(r2, w2) == b"hi"
            # The connection made before the reload keeps working.
            assert await get(r1, w1) == b"hi"
            await close(w1)
            await close(w2)
        finally:
            server.stop()
            await server.close_all_connections()

    run(main, loop)


@pytest.mark.parametrize(
    ("http2", "loop"), [(False, "asyncio"), (True, "asyncio"), (True, "uvloop")]
)
def test_files_replaced_on_disk_are_served_without_a_reload(
    tmp_path: Path, http2: bool, loop: str
) -> None:
    # A Tornado program whose certificate is renewed on disk (certbot) serves
    # the new one to new connections with no restart and no call.
    first_cert, first_key, second_cert, second_key, live_cert, live_key = rotation(tmp_path)

    async def main() -> None:
        options = {"certfile": str(live_cert), "keyfile": str(live_key)}
        server, port, _ = serve(options, http2=http2)
        try:
            seen, r1, w1 = await handshake(port)
            assert seen == der(first_cert)
            # Half replaced (the key still the old one): logged, the old
            # certificate serves on.
            shutil.copy(second_cert, live_cert)
            with ExpectLog("squall.general", "ssl_options: the certificate files changed"):
                seen, _, w = await handshake(port)
            assert seen == der(first_cert)
            await close(w)
            shutil.copy(second_key, live_key)
            seen, r2, w2 = await handshake(port)
            assert seen == der(second_cert)
            assert await get(r2, w2) == b"hi"
            assert await get(r1, w1) == b"hi"
            await close(w1)
            await close(w2)
        finally:
            server.stop()
            await server.close_all_connections()

    run(main, loop)


class _Echo(TCPServer):
    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        try:
            await stream.write(await stream.read_until(b"\n"))
        finally:
            stream.close()


def test_tcpserver_serves_files_replaced_on_disk(tmp_path: Path) -> None:
    first_cert, first_key, second_cert, second_key, live_cert, live_key = rotation(tmp_path)

    async def echoed(port: int) -> bytes:
        seen, reader, writer = await handshake(port)
        writer.write(b"x\n")
        assert await asyncio.wait_for(reader.readline(), DEADLINE) == b"x\n"
        await close(writer)
        return seen

    async def main() -> None:
        server = _Echo(ssl_options={"certfile": str(live_cert), "keyfile": str(live_key)})
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        try:
            assert await echoed(port) == der(first_cert)
            shutil.copy(second_cert, live_cert)
            shutil.copy(second_key, live_key)
            assert await echoed(port) == der(second_cert)
        finally:
            server.stop()

    asyncio.run(asyncio.wait_for(main(), DEADLINE * 2))


def test_new_context_and_a_bad_certificate(tmp_path: Path) -> None:
    first_cert, first_key = make_cert(tmp_path, "first")
    second_cert, second_key = make_cert(tmp_path, "second")

    async def main() -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(first_cert), str(first_key))
        server, port, _ = serve(ctx)
        try:
            with pytest.raises(ValueError, match="pass the new context"):
                server.reload_ssl()
            # A key that does not match: refused, the old certificate stays.
            with pytest.raises(ssl.SSLError):
                server.reload_ssl({"certfile": str(second_cert), "keyfile": str(first_key)})
            seen, _, w = await handshake(port)
            assert seen == der(first_cert)
            await close(w)
            new = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            new.load_cert_chain(str(second_cert), str(second_key))
            server.reload_ssl(new)
            seen, _, w = await handshake(port)
            assert seen == der(second_cert)
            await close(w)
        finally:
            server.stop()
            await server.close_all_connections()

    asyncio.run(asyncio.wait_for(main(), DEADLINE * 2))


def test_plain_server_has_nothing_to_reload() -> None:
    server = HTTPServer(Application([("/", Hello)]))
    with pytest.raises(ValueError, match="does not serve TLS"):
        server.reload_ssl()
