"""A line echo server on squall.tcpserver: ``python demos/tcpecho/server.py --port=9888``.

Every line a client sends (up to ``MAX_LINE`` bytes, ending in ``\\n``) comes back.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Any, Optional

import squall.netutil
import squall.options
from squall.iostream import IOStream, StreamClosedError, UnsatisfiableReadError
from squall.log import app_log
from squall.tcpserver import TCPServer

MAX_LINE = 64 * 1024


class EchoServer(TCPServer):
    """Echoes each line back on the connection it came from."""

    async def handle_stream(self, stream: IOStream, address: Any) -> None:
        try:
            while True:
                line = await stream.read_until(b"\n", max_bytes=MAX_LINE)
                await stream.write(line)
        except StreamClosedError as exc:
            # The stream closes itself when a line outgrows max_bytes.
            if isinstance(exc.real_error, UnsatisfiableReadError):
                app_log.warning("%s sent a line over %d bytes; closed", address, MAX_LINE)


def main(argv: Optional[list[str]] = None) -> None:
    """Serves until interrupted, printing the address first."""
    opts = squall.options.OptionParser()
    opts.define("port", default=9888, type=int, help="port to listen on (0: any free one)")
    opts.define("address", default="127.0.0.1", help="address to listen on")
    opts.parse_command_line(sys.argv if argv is None else argv, final=False)

    async def serve() -> None:
        sockets = squall.netutil.bind_sockets(opts.port, opts.address, family=socket.AF_INET)
        EchoServer().add_sockets(sockets)
        host, port = sockets[0].getsockname()[:2]
        print(f"Echo server listening on {host}:{port} (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
