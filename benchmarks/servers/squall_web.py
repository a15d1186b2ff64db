"""Hello world, JSON and a templated page through squall.web."""

import os
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
    if os.environ.get("SQUALL_BENCH_NO_HEAD_CACHE"):
        # For idle_rss.py: measure without the per-connection copy of the
        # previous request head and its parse (turned off by its size limit).
        import squall._h1._connection as h1_connection

        h1_connection._HEAD_CACHE_MAX = -1  # type: ignore[misc]
    make_app().listen(int(sys.argv[1]), "127.0.0.1")
    squall.ioloop.IOLoop.current().start()


if __name__ == "__main__":
    main()
