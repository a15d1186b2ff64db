"""Hello, world: the smallest Squall application."""

import asyncio

import squall.web


class MainHandler(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


def make_app() -> squall.web.Application:
    return squall.web.Application([(r"/", MainHandler)])


async def main() -> None:
    app = make_app()
    app.listen(8888)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
