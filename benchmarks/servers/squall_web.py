"""Hello world and JSON through squall.web (the peer Squall is measured against)."""

import sys

import squall.ioloop
import squall.web

from _speedups import choose_loop


class Hello(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class Json(squall.web.RequestHandler):
    def get(self) -> None:
        self.write({"message": "Hello, world"})


def main() -> None:
    choose_loop(True)
    app = squall.web.Application([("/", Hello), ("/json", Json)])
    app.listen(int(sys.argv[1]), "127.0.0.1")
    squall.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
