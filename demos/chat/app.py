"""A chat room on squall.web: long polling and WebSocket side by side.

Run ``python demos/chat/app.py --port=8888`` and open the printed address in
two browsers. A visitor picks a name (kept in a signed cookie), then every
message posted reaches every open page: over ``/chatsocket`` when the browser
can hold a WebSocket, by long polling ``/a/message/updates`` otherwise.

Messages carry an increasing sequence number; a client asks for "everything
after N", so a message posted between two polls (or before a socket opened)
is never lost while it is still in the bounded cache.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import secrets
import socket
import sys
from collections.abc import Iterable
from typing import Any, Optional

import squall.escape
import squall.ioloop
import squall.locks
import squall.netutil
import squall.options
import squall.web
import squall.websocket
from squall.httpserver import HTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
USER_COOKIE = "chatuser"
MAX_NAME = 32
MAX_BODY = 2000

Message = dict[str, Any]


class MessageBuffer:
    """The last ``size`` messages, and the parties waiting for new ones.

    Long-polling requests wait on `cond`; WebSocket handlers register in
    `sockets` and are pushed each message as it arrives (by
    `squall.websocket.broadcast`).
    """

    def __init__(self, size: int = 200) -> None:
        self.size = size
        self.cache: collections.deque[Message] = collections.deque(maxlen=size)
        self.cond = squall.locks.Condition()
        self.sockets: set[ChatSocketHandler] = set()
        self.pollers = 0
        # Notified whenever `pollers` or `sockets` changes, so that tests can
        # wait for a listener to be in place instead of sleeping.
        self.listeners_changed = squall.locks.Condition()
        self._seq = itertools.count(1)

    @property
    def cursor(self) -> int:
        """The sequence number of the newest message (0 when none)."""
        return self.cache[-1]["seq"] if self.cache else 0

    def since(self, cursor: int) -> list[Message]:
        """The cached messages newer than ``cursor``, oldest first."""
        if cursor >= self.cursor:
            return []
        # From the newest back: a poll woken by one message reads one entry,
        # not the whole cache (every waiter of a wake-up does this).
        newer = []
        for message in reversed(self.cache):
            if message["seq"] <= cursor:
                break
            newer.append(message)
        newer.reverse()
        return newer

    def next_seq(self) -> int:
        """The sequence number for the next message (take one per `add`)."""
        return next(self._seq)

    def add(self, message: Message) -> Message:
        """Stores ``message`` (numbered by `next_seq`) and delivers it."""
        if self.cache and message["seq"] <= self.cursor:
            raise ValueError(f"message {message['seq']} is older than {self.cursor}")
        self.cache.append(message)
        self.cond.notify_all()
        # One frame for every socket, written without waiting. A socket whose
        # reader has fallen behind (its output over the high-water mark) is
        # not sent this message: it is closed with 1013 at once instead, so
        # that it never silently misses one; the page then resumes from its
        # cursor (by long polling), which loses nothing.
        squall.websocket.broadcast(self.sockets, {"messages": [message]}, max_skips=1)
        return message

    def polling(self, delta: int) -> None:
        """Counts a long poll in (``delta`` 1) or out (-1) of `pollers`."""
        self.pollers += delta
        self.listeners_changed.notify_all()

    def register(self, handler: ChatSocketHandler) -> None:
        self.sockets.add(handler)
        self.listeners_changed.notify_all()

    def unregister(self, handler: ChatSocketHandler) -> None:
        self.sockets.discard(handler)
        self.listeners_changed.notify_all()


class MessageModule(squall.web.UIModule):
    """``{% module Message(message) %}``: one message, escaped by the template."""

    def render(self, message: Message) -> str:
        return self.render_string("message.html", message=message).decode()


class BaseHandler(squall.web.RequestHandler):
    @property
    def buffer(self) -> MessageBuffer:
        buffer: MessageBuffer = self.settings["message_buffer"]
        return buffer

    def get_current_user(self) -> Optional[str]:
        raw = self.get_signed_cookie(USER_COOKIE)
        return raw.decode("utf-8") if raw else None

    def new_message(self, body: str) -> Message:
        """Validates ``body`` and stores it as a message of the current user."""
        body = body.strip()
        if not body:
            raise squall.web.HTTPError(400, reason="empty message")
        if len(body) > MAX_BODY:
            raise squall.web.HTTPError(400, reason=f"message over {MAX_BODY} characters")
        message: Message = {
            "id": secrets.token_hex(8),
            "seq": self.buffer.next_seq(),
            "from": self.current_user,
            "body": body,
        }
        message["html"] = self.render_string("message.html", message=message).decode()
        return self.buffer.add(message)


class MainHandler(BaseHandler):
    @squall.web.authenticated
    def get(self) -> None:
        self.render("index.html", messages=list(self.buffer.cache), cursor=self.buffer.cursor)


class LoginHandler(BaseHandler):
    def get(self) -> None:
        self.render("login.html", error=None, name=self.current_user or "")

    def post(self) -> None:
        name = " ".join((self.get_body_argument("name", "") or "").split())
        if not name or len(name) > MAX_NAME:
            self.set_status(400)
            self.render(
                "login.html", error=f"Pick a name of 1 to {MAX_NAME} characters.", name=name
            )
            return
        self.set_signed_cookie(USER_COOKIE, name, httponly=True, samesite="Lax")
        target = self.get_query_argument("next", "/") or "/"
        self.redirect(target if _local(target) else "/")


def _local(url: str) -> bool:
    """Only same-site paths are followed after login (no open redirect)."""
    return url.startswith("/") and not url.startswith("//") and "\\" not in url


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.clear_cookie(USER_COOKIE)
        self.redirect("/login")


class MessageNewHandler(BaseHandler):
    @squall.web.authenticated
    def post(self) -> None:
        message = self.new_message(self.get_body_argument("body", "") or "")
        if self.get_body_argument("next", None):
            self.redirect("/")
        else:
            self.write({"messages": [message]})


class MessageUpdatesHandler(BaseHandler):
    """Answers with the messages after ``cursor`` as soon as there is one.

    The poll awaits the buffer's condition itself: no Task of its own, and
    no timer of its own either (the condition keeps one timer for all its
    waiters' deadlines), so that one message wakes thousands of polls
    cheaply.
    """

    waiting: Optional[asyncio.Future[bool]] = None
    gone = False

    @squall.web.authenticated
    async def post(self) -> None:
        cursor = _cursor(self.get_body_argument("cursor", "0") or "0")
        buffer = self.buffer
        messages = buffer.since(cursor)
        if not messages:
            deadline = squall.ioloop.IOLoop.current().time() + self.settings["poll_timeout"]
            buffer.polling(1)
            try:
                while not messages:
                    self.waiting = buffer.cond.wait(timeout=deadline)
                    try:
                        notified = await self.waiting
                    except asyncio.CancelledError:
                        return  # the client left; there is nobody to answer
                    messages = buffer.since(cursor)
                    if not notified:
                        break  # timed out: answer with what there is (nothing)
            finally:
                buffer.polling(-1)
        if self.gone:
            return
        self.write({"messages": messages, "cursor": messages[-1]["seq"] if messages else cursor})

    def on_connection_close(self) -> None:
        self.gone = True
        if self.waiting is not None:
            self.waiting.cancel()


def _cursor(value: str) -> int:
    try:
        cursor = int(value)
    except ValueError:
        raise squall.web.HTTPError(400, reason="cursor must be an integer")
    if cursor < 0:
        raise squall.web.HTTPError(400, reason="cursor must not be negative")
    return cursor


class ChatSocketHandler(squall.websocket.WebSocketHandler, BaseHandler):
    """``/chatsocket?cursor=N``: the backlog after N, then each new message.

    The browser sends ``{"body": "..."}`` to post. The name comes from the
    signed cookie sent with the handshake; the default origin check stops
    other sites from opening a socket with that cookie.
    """

    def prepare(self) -> None:
        if self.current_user is None:
            raise squall.web.HTTPError(403, reason="log in first")

    def open(self, *args: Any, **kwargs: Any) -> None:
        cursor = _cursor(self.get_query_argument("cursor", "0") or "0")
        self.buffer.register(self)
        backlog = self.buffer.since(cursor)
        if backlog:
            self.send_messages(backlog)

    def on_message(self, message: str | bytes) -> None:
        try:
            data = squall.escape.json_decode(message)
            body = data["body"]
            if not isinstance(body, str):
                raise TypeError("body must be a string")
            self.new_message(body)
        except (ValueError, KeyError, TypeError) as exc:
            self.write_message({"error": f"bad message: {exc}"})
        except squall.web.HTTPError as exc:
            self.write_message({"error": exc.reason or "bad message"})

    def send_messages(self, messages: Iterable[Message]) -> None:
        try:
            self.write_message({"messages": list(messages)})
        except squall.websocket.WebSocketClosedError:
            self.buffer.unregister(self)

    def on_close(self) -> None:
        self.buffer.unregister(self)


def make_app(
    cookie_secret: Optional[str] = None,
    buffer_size: int = 200,
    poll_timeout: float = 25.0,
    debug: bool = False,
) -> squall.web.Application:
    """The chat application.

    Args:
        cookie_secret: signs the name cookie; a random one (names forgotten
            at restart) when None.
        buffer_size: how many recent messages are kept.
        poll_timeout: seconds a long poll waits before answering empty.
        debug: squall.web's debug mode (template and static reloading).
    """
    return squall.web.Application(
        [
            (r"/", MainHandler),
            (r"/login", LoginHandler),
            (r"/logout", LogoutHandler),
            (r"/a/message/new", MessageNewHandler),
            (r"/a/message/updates", MessageUpdatesHandler),
            (r"/chatsocket", ChatSocketHandler),
        ],
        cookie_secret=cookie_secret or secrets.token_hex(32),
        login_url="/login",
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        ui_modules={"Message": MessageModule},
        xsrf_cookies=True,
        message_buffer=MessageBuffer(buffer_size),
        poll_timeout=poll_timeout,
        debug=debug,
    )


def parse_options(argv: list[str]) -> squall.options.OptionParser:
    """The demo's command line (its own parser, so demos can share a process)."""
    parser = squall.options.OptionParser()
    parser.define("port", default=8888, type=int, help="port to listen on (0: any free one)")
    parser.define("address", default="127.0.0.1", help="address to listen on")
    parser.define("cookie_secret", default="", help="secret signing the name cookie")
    parser.define("debug", default=False, type=bool, help="reload templates and static files")
    parser.define("poll_timeout", default=25.0, type=float, help="seconds a long poll waits")
    parser.parse_command_line(argv, final=False)
    return parser


def listen(app: squall.web.Application, port: int, address: str) -> tuple[HTTPServer, str]:
    """Starts serving ``app``; returns the server and its URL (the real port)."""
    sockets = squall.netutil.bind_sockets(port, address, family=socket.AF_INET)
    server = HTTPServer(app)
    server.add_sockets(sockets)
    host, real_port = sockets[0].getsockname()[:2]
    return server, f"http://{host}:{real_port}/"


def main(argv: Optional[list[str]] = None) -> None:
    """Serves the chat room until interrupted, printing its address first."""
    opts = parse_options(sys.argv if argv is None else argv)

    async def serve() -> None:
        app = make_app(
            cookie_secret=opts.cookie_secret or None,
            poll_timeout=opts.poll_timeout,
            debug=opts.debug,
        )
        _, url = listen(app, opts.port, opts.address)
        print(f"Chat demo serving on {url} (Ctrl-C stops)", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
