"""Hello, world through squall.web, on 127.0.0.1:8888 (``make demo``)."""

from __future__ import annotations

import sys

import squall.ioloop
import squall.web


class MainHandler(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


def make_app() -> squall.web.Application:
    """The demo application: one route, ``/``."""
    return squall.web.Application([("/", MainHandler)])


def main(port: int = 8888, address: str = "127.0.0.1") -> None:
    """Serves the demo until interrupted."""
    make_app().listen(port, address)
    print(f"Serving Hello, world on http://{address}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        squall.ioloop.IOLoop.current().start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888)
