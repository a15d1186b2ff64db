"""Hello world and JSON through aiohttp.web."""

import sys

from aiohttp import web

from _speedups import choose_loop


async def hello(request: web.Request) -> web.Response:
    return web.Response(text="Hello, world")


async def json_(request: web.Request) -> web.Response:
    return web.json_response({"message": "Hello, world"})


def main() -> None:
    choose_loop(False)
    app = web.Application()
    app.router.add_get("/", hello)
    app.router.add_get("/json", json_)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
