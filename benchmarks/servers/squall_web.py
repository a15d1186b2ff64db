"""Hello world, JSON and a templated page through squall.web."""

import sys

from _page import ITEMS, TEMPLATES, TITLE

import squall.ioloop
import squall.web

from _speedups import choose_loop


class Hello(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


class Json(squall.web.RequestHandler):
    def get(self) -> None:
        self.write({"message": "Hello, world"})


class Page(squall.web.RequestHandler):
    def get(self) -> None:
        self.render(
            "page.html",
            title=TITLE,
            query=self.get_argument("q", ""),
            page=self.get_argument("page", "1"),
            items=ITEMS,
        )


def make_app() -> squall.web.Application:
    return squall.web.Application(
        [("/", Hello), ("/json", Json), ("/page", Page)], template_path=TEMPLATES
    )


def main() -> None:
    choose_loop(True)
    make_app().listen(int(sys.argv[1]), "127.0.0.1")
    squall.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
