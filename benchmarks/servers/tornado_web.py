"""Hello world, JSON and a templated page through tornado.web (the same page as squall_web)."""

import sys

import tornado.ioloop
import tornado.web
from _page import ITEMS, TEMPLATES, TITLE

from _speedups import choose_loop


class Hello(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class Json(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"message": "Hello, world"})


class Page(tornado.web.RequestHandler):
    def get(self) -> None:
        self.render(
            "page.html",
            title=TITLE,
            query=self.get_argument("q", ""),
            page=self.get_argument("page", "1"),
            items=ITEMS,
        )


def make_app() -> tornado.web.Application:
    return tornado.web.Application(
        [("/", Hello), ("/json", Json), ("/page", Page)], template_path=TEMPLATES
    )


def main() -> None:
    choose_loop(False)
    make_app().listen(int(sys.argv[1]), "127.0.0.1")
    tornado.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
