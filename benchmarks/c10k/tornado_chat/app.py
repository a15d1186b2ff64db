"""A long-polling chat room with the shape of Tornado 6.6.1's ``demos/chat``.

Tornado's source distribution does not ship its demos, so this is our own
program written to behave as that demo does (read, not copied): the same
three routes, a message buffer whose `tornado.locks.Condition` is notified
once per new message, an ``async def post`` that awaits the condition and
cancels its wait when the client leaves, ``xsrf_cookies`` on and
``--debug`` defaulting to on. It imports only ``tornado``, so it runs on
real Tornado and, unchanged, under ``python -m squall.compat``.

Used by benchmarks/c10k/longpoll.py and benchmarks/callgrind_longpoll.py.
"""

import asyncio
import os.path
import uuid

import tornado
import tornado.escape
import tornado.locks
import tornado.web
from tornado.options import define, options, parse_command_line

define("port", default=8888, help="port to listen on", type=int)
define("debug", default=True, help="debug mode (autoreload and friends)")

HERE = os.path.dirname(os.path.abspath(__file__))
KEEP = 200  # messages kept for late pollers


class Room:
    def __init__(self):
        self.changed = tornado.locks.Condition()
        self.recent = []

    def after(self, cursor):
        """The messages that came after the one whose id is ``cursor``."""
        newer = []
        for item in reversed(self.recent):
            if item["id"] == cursor:
                break
            newer.append(item)
        newer.reverse()
        return newer

    def post(self, item):
        self.recent.append(item)
        if len(self.recent) > KEEP:
            self.recent = self.recent[-KEEP:]
        self.changed.notify_all()


room = Room()


class Home(tornado.web.RequestHandler):
    def get(self):
        self.render("index.html", messages=room.recent)


class Say(tornado.web.RequestHandler):
    def post(self):
        item = {"id": str(uuid.uuid4()), "body": self.get_argument("body")}
        # JSON needs text, and render_string gives bytes.
        item["html"] = tornado.escape.to_unicode(self.render_string("message.html", message=item))
        target = self.get_argument("next", None)
        if target:
            if target.startswith("//") or not target.startswith("/"):
                raise tornado.web.HTTPError(400)  # a same-site path only
            self.redirect(target)
        else:
            self.write(item)
        room.post(item)


class Updates(tornado.web.RequestHandler):
    async def post(self):
        cursor = self.get_argument("cursor", None)
        found = room.after(cursor)
        while not found:
            # Kept on the handler: on_connection_close cancels it.
            self.wait_future = room.changed.wait()
            try:
                await self.wait_future
            except asyncio.CancelledError:
                return
            found = room.after(cursor)
        if self.request.connection.stream.closed():
            return
        self.write(dict(messages=found))

    def on_connection_close(self):
        self.wait_future.cancel()


def make_app(debug):
    return tornado.web.Application(
        [(r"/", Home), (r"/a/message/new", Say), (r"/a/message/updates", Updates)],
        cookie_secret="bench-only-not-a-secret",
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        xsrf_cookies=True,
        debug=debug,
    )


async def main():
    parse_command_line()
    make_app(options.debug).listen(options.port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
