"""The TCP echo demo: server and client."""

from __future__ import annotations

import logging
import socket

import pytest

from squall.iostream import StreamClosedError
from squall.netutil import bind_sockets
from squall.tcpclient import TCPClient

from ._util import load, run, start_demo, stop

server_mod = load("tcpecho/server.py")
client_mod = load("tcpecho/client.py")


def test_lines_come_back_in_order() -> None:
    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = server_mod.EchoServer()
        server.add_sockets(sockets)
        try:
            port = sockets[0].getsockname()[1]
            lines = ["hello", "", "grüße", "x" * 10_000]
            assert await client_mod.echo("127.0.0.1", port, lines) == lines
        finally:
            server.stop()

    run(main())


def test_an_overlong_line_closes_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = server_mod.EchoServer()
        server.add_sockets(sockets)
        try:
            stream = await TCPClient().connect("127.0.0.1", sockets[0].getsockname()[1])
            await stream.write(b"y" * (server_mod.MAX_LINE + 10))
            with pytest.raises(StreamClosedError):
                await stream.read_until(b"\n")
            stream.close()
        finally:
            server.stop()

    with caplog.at_level(logging.WARNING, logger="squall.application"):
        run(main())
    assert any("over 65536 bytes" in r.getMessage() for r in caplog.records)


def test_programs_talk_to_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> None:
        process, address = await start_demo("tcpecho/server.py", "--port=0")
        try:
            port = int(address.rsplit(":", 1)[1])
            assert await client_mod.echo("127.0.0.1", port, ["ping", "pong"]) == ["ping", "pong"]
        finally:
            await stop(process)

    run(main())
