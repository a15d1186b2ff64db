"""Hello world, JSON and a templated page through aiohttp.web (jinja2 via aiohttp_jinja2)."""

import sys

import aiohttp_jinja2
import jinja2
from _page import ITEMS, TEMPLATES, TITLE
from aiohttp import web

from _speedups import choose_loop


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def json_(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello, world"})


async def page(request: web.Request) -> web.Response:
    context = {
        "title": TITLE,
        "query": request.query.get("q", ""),
        "page": request.query.get("page", "1"),
        "items": ITEMS,
    }
    return aiohttp_jinja2.render_template("page.jinja2", request, context)


def make_app() -> web.Application:
    app = web.Application()
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True)
    app.router.add_get("/", hello)
    app.router.add_get("/json", json_)
    app.router.add_get("/page", page)
    return app


def main() -> None:
    choose_loop(False)
    web.run_app(make_app(), host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
