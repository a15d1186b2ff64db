"""Hello, world: the smallest Squall application.

``python hello.py`` serves http://127.0.0.1:8000/ (this machine only).
"""

import asyncio

import squall.web


class MainHandler(squall.web.RequestHandler):
    def get(self) -> None:
        self.write("Hello, world")


def make_app() -> squall.web.Application:
    return squall.web.Application([(r"/", MainHandler)])


async def main() -> None:
    app = make_app()
    app.listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
