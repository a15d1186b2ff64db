"""Hello world and JSON through tornado.web (the peer Squall is measured against)."""

import sys

import tornado.ioloop
import tornado.web

from _speedups import choose_loop


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class Json(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"message": "Hello, world"})


def main() -> None:
    choose_loop(False)
    app = tornado.web.Application([("/", Hello), ("/json", Json)])
    app.listen(int(sys.argv[1]), "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
