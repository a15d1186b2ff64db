"""Hello, world through squall.web: ``python demos/helloworld/app.py --port=8888``."""

from __future__ import annotations

import asyncio
import socket
import sys
from typing import Optional

import squall.netutil
import squall.options
import squall.web
from squall.httpserver import HTTPServer


class MainHandler(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


def make_app() -> squall.web.Application:
    """The demo application: one route, ``/``."""
    return squall.web.Application([("/", MainHandler)])


def main(argv: Optional[list[str]] = None) -> None:
    """Serves the demo until interrupted, printing its address first."""
    opts = squall.options.OptionParser()
    opts.define("port", default=8888, type=int, help="port to listen on (0: any free one)")
    opts.define("address", default="127.0.0.1", help="address to listen on")
    opts.parse_command_line(sys.argv if argv is None else argv, final=False)

    async def serve() -> None:
        sockets = squall.netutil.bind_sockets(opts.port, opts.address, family=socket.AF_INET)
        HTTPServer(make_app()).add_sockets(sockets)
        host, port = sockets[0].getsockname()[:2]
        print(f"Serving Hello, world on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
