"""TLS handshakes that stall, over real sockets, on asyncio's loop (where
the connection runs ``start_tls`` itself) and on uvloop (where the loop's
listener runs the handshake): both are bounded by ``header_timeout``, as a
head is. Before: asyncio's default of 60 seconds held every such connection.
"""

from __future__ import annotations

import asyncio
import ssl

import pytest

from squall.testing import AsyncHTTPSTestCase
from squall.web import Application, RequestHandler

from .._wait import HANG_GUARD, until
from ._serve import LOOPS, read_response, run, serving

STALLED = 20


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("ok")


def client_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("partial", [False, True], ids=["silent", "half-hello"])
def test_stalled_handshakes_are_closed_after_the_header_timeout(loop: str, partial: bool) -> None:
    async def main() -> None:
        options = AsyncHTTPSTestCase.default_ssl_options()
        app = Application([("/", Hello)])
        async with serving(app, ssl_options=options, header_timeout=0.3) as (server, port):
            stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(STALLED)]
            try:
                if partial:
                    # The first bytes of a ClientHello, then nothing.
                    for _, writer in stalled:
                        writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
                # Another client completes its handshake meanwhile and is served.
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", port, ssl=client_context()
                )
                writer.write(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                status, _, body = await read_response(reader)
                assert (status, body) == (200, b"ok")
                # Each stalled connection is closed by the server...
                for stalled_reader, _ in stalled:
                    assert await asyncio.wait_for(stalled_reader.read(), HANG_GUARD) == b""
                # ... and forgotten; the served one is kept alive.
                await until(lambda: len(server._connections) == 1)
                writer.close()
            finally:
                for _, stalled_writer in stalled:
                    stalled_writer.transport.abort()

    run(main, loop)
