"""Hello world from aiohttp's low-level server (no router, no application)."""

import asyncio
import sys

from aiohttp import web

from _speedups import choose_loop


async def handler(request: web.BaseRequest) -> web.Response:
    return web.Response(text="Hello, world")


async def main() -> None:
    server = web.Server(handler)
    loop = asyncio.get_running_loop()
    await loop.create_server(server, "127.0.0.1", int(sys.argv[1]))
    await asyncio.Event().wait()


if __name__ == "__main__":
    choose_loop(False)
    asyncio.run(main())
