"""The hello-world demo, in-process and as a program."""

from __future__ import annotations

import socket

from squall.httpclient import AsyncHTTPClient
from squall.httpserver import HTTPServer
from squall.netutil import bind_sockets

from ._util import load, run, start_demo, stop

hello = load("helloworld/app.py")


def test_says_hello() -> None:
    async def main() -> None:
        sockets = bind_sockets(0, "127.0.0.1", socket.AF_INET)
        server = HTTPServer(hello.make_app())
        server.add_sockets(sockets)
        http = AsyncHTTPClient(force_instance=True)
        try:
            port = sockets[0].getsockname()[1]
            response = await http.fetch(f"http://127.0.0.1:{port}/")
            assert response.code == 200 and response.body == b"Hello, world"
            missing = await http.fetch(f"http://127.0.0.1:{port}/nope", raise_error=False)
            assert missing.code == 404
        finally:
            http.close()
            server.stop()

    run(main())


def test_program_prints_the_address_it_serves() -> None:
    async def main() -> None:
        process, url = await start_demo("helloworld/app.py", "--port=0")
        http = AsyncHTTPClient(force_instance=True)
        try:
            assert (await http.fetch(url)).body == b"Hello, world"
        finally:
            http.close()
            await stop(process)

    run(main())
