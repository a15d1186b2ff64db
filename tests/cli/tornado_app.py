"""A program written for Tornado, imports and all: squall run must serve it unchanged."""

from __future__ import annotations

import os

import tornado.web


class Main(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write({"pid": os.getpid(), "module": type(self).__mro__[1].__module__})


app = tornado.web.Application([("/", Main)])
