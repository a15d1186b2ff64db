"""A hello-world program written for Tornado, not for Squall.

It must run unmodified under ``python -m squall.compat hello.py --port=0``:
it imports only ``tornado`` names. It prints ``listening on PORT`` when it
accepts connections, copies the ``tornado.access`` log to stdout with an
``ACCESS`` prefix, and exits cleanly after a request to ``/stop``.
"""

import asyncio
import logging
import sys

import tornado
import tornado.httpserver
import tornado.ioloop
import tornado.netutil
import tornado.web
from tornado import gen
from tornado.options import define, options, parse_command_line

define("port", default=8888, type=int, help="port to listen on (0 picks a free one)")


class MainHandler(tornado.web.RequestHandler):
    def get(self):
        self.write("Hello, world")


class InfoHandler(tornado.web.RequestHandler):
    @gen.coroutine
    def get(self):
        yield gen.sleep(0)
        self.write(
            {
                "version": tornado.version,
                "version_info": list(tornado.version_info),
                "is_handler": isinstance(self, tornado.web.RequestHandler),
                "loop": type(tornado.ioloop.IOLoop.current()).__name__,
            }
        )


class StopHandler(tornado.web.RequestHandler):
    def initialize(self, stop):
        self.stop = stop

    def post(self):
        self.write("bye")
        tornado.ioloop.IOLoop.current().add_callback(self.stop.set)


async def main():
    parse_command_line()
    access = logging.getLogger("tornado.access")
    to_stdout = logging.StreamHandler(sys.stdout)
    to_stdout.setFormatter(logging.Formatter("ACCESS %(message)s"))
    access.addHandler(to_stdout)
    access.setLevel(logging.INFO)

    stop = asyncio.Event()
    app = tornado.web.Application(
        [
            (r"/", MainHandler),
            (r"/info", InfoHandler),
            (r"/stop", StopHandler, dict(stop=stop)),
        ]
    )
    sockets = tornado.netutil.bind_sockets(options.port, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    print(f"listening on {sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.stop()
    await server.close_all_connections()


if __name__ == "__main__":
    asyncio.run(main())
