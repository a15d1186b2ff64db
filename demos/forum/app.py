"""A technical forum on squall.web that stays live across processes.

Boards hold topics; a topic is a paginated list of numbered posts written in
Markdown (code highlighted), which their authors may edit or delete and
administrators may hide. New replies appear in every open page of the topic
at once, over a WebSocket or by long polling, and ``@name`` mentions reach
the user named the same way. Live delivery goes through `squall.pubsub`,
in-process by default and over Redis when the forum runs as several workers
(``--pubsub=redis://127.0.0.1:6379/0``).

Run ``python demos/forum/app.py`` (``make demo``) and open the printed address.
Data is kept in SQLite (``--db=sqlite:///tmp/forum.sqlite3``; by default a
file beside this one) through ``aiosqlite``; ``--db=postgresql://...``
(asyncpg) or ``--db=mysql://...`` (aiomysql, MariaDB too) use a server
instead. The schema is created and migrated on start. Every query takes its
values as parameters, never by formatting them into the SQL text.

The seed of this demo, the course's message board (``tb_message``: name,
email, address, message), is kept as one board at ``/messages``.

The code is in ``forumlib/``: ``db`` (the three backends), ``security``,
``markup`` (Markdown), ``accounts``, ``pages``, ``live``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from typing import Any, Optional
from urllib.parse import parse_qsl, urlsplit

import squall.netutil
import squall.options
import squall.web
from squall.httpserver import HTTPServer
from squall.pubsub import connect as connect_pubsub
from squall.resume import ClientScriptHandler

HERE = os.path.dirname(os.path.abspath(__file__))
# forumlib sits beside this file, which runs as a script, as ``squall run
# app:cluster_app --app-dir`` and as a module loaded by path (the tests).
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from forumlib import accounts, live, pages  # noqa: E402
from forumlib.accounts import check_password, hash_password  # noqa: E402, F401
from forumlib.base import (  # noqa: E402, F401
    USER_COOKIE,
    NotFoundHandler,
    PagerModule,
    PostModule,
    StaticHandler,  # noqa: E402
)
from forumlib.db import MIGRATIONS, Database, DatabaseURLError  # noqa: E402, F401
from forumlib.live import Rooms, topic_channel  # noqa: E402, F401
from forumlib.markup import highlight_css, make_renderer, user_path  # noqa: E402
from forumlib.security import load_cookie_secret, safe_next  # noqa: E402, F401

# Replies a topic's channel keeps, and for how long: a reader cut off for
# less than this gets every reply it missed from the channel's history.
# A killed worker's readers stay counted until its presence entries expire:
# 10 s here (squall.pubsub's default is 30 s), for a refresh every 3.3 s.
HISTORY = {"history_size": 1000, "history_ttl": 600.0, "presence_ttl": 10.0}


def pubsub_with_history(url: Optional[str]) -> Any:
    """The pub/sub for ``url``, keeping `HISTORY` unless its query says otherwise."""
    query = dict(parse_qsl(urlsplit(url or "memory://").query))
    return connect_pubsub(url, **{k: v for k, v in HISTORY.items() if k not in query})


DEFAULT_DB = "sqlite:///" + os.path.join(HERE, "forum.sqlite3")


def make_app(
    db: Optional[str] = None,
    pubsub: Optional[str] = None,
    cookie_secret: Optional[str] = None,
    data_dir: Optional[str] = None,
    page_size: int = 20,
    poll_timeout: float = 25.0,
    scrypt_n: int = 2**14,
    admins: tuple[str, ...] = (),
    login_account_limit: tuple[int, float] = (12, 900.0),
    login_address_limit: tuple[int, float] = (50, 900.0),
    signup_address_limit: tuple[int, float] = (20, 3600.0),
    post_user_limit: Optional[tuple[int, float]] = (30, 60.0),
    debug: bool = False,
) -> squall.web.Application:
    """The forum application; it connects to its database on the first request.

    Args:
        db: database URL (default: SQLite in ``demos/forum/forum.sqlite3``).
        pubsub: ``memory://`` (one process, the default) or ``redis://...``.
        cookie_secret: signs the user cookie (all workers must share it);
            by default ``FORUM_SECRET``, else ``data_dir/cookie_secret``
            (made on first start), so that a restart keeps people signed in.
        data_dir: where the cookie secret is kept (default: beside this file).
        page_size: posts per topic page and topics per board page.
        poll_timeout: seconds a long poll waits before answering empty.
        scrypt_n: scrypt's cost for new passwords (a power of two).
        admins: names that are administrators (besides ``users.is_admin``).
        login_account_limit: wrong passwords per name per window (limit, seconds);
            the next try gets 429 with Retry-After.
        login_address_limit: wrong passwords per client address per window.
        signup_address_limit: sign-up attempts per client address per window.
        post_user_limit: new topics, replies and edits per user per window
            (429 beyond); None: no limit.
        debug: squall.web's debug mode.

    Raises:
        DatabaseURLError: ``db`` is not a URL the forum can use.
    """
    S = squall.web.url
    database = Database(db or DEFAULT_DB)
    settings: dict[str, Any] = dict(
        login_account_limit=login_account_limit,
        login_address_limit=login_address_limit,
        signup_address_limit=signup_address_limit,
        post_user_limit=post_user_limit,
    )
    return squall.web.Application(
        [
            S(r"/", pages.IndexHandler, name="index"),
            S(r"/b/([a-z0-9-]+)", pages.BoardHandler, name="board"),
            S(r"/t/([0-9]{1,18})", pages.TopicHandler, name="topic"),
            S(r"/t/([0-9]{1,18})/poll", live.TopicPollHandler, name="topic_poll"),
            S(r"/t/([0-9]{1,18})/live", live.TopicSocketHandler, name="topic_live"),
            S(r"/t/([0-9]{1,18})/events", live.TopicEventsHandler, name="topic_events"),
            S(r"/t/([0-9]{1,18})/feed", live.TopicFeedHandler, name="topic_feed"),
            S(r"/live", live.LiveSocketHandler, name="live"),
            S(r"/squall-resume.js", ClientScriptHandler, name="resume_js"),
            S(r"/t/([0-9]{1,18})/lock", pages.LockHandler, name="topic_lock"),
            S(r"/p/([0-9]{1,18})", pages.PostHandler, name="post"),
            S(r"/p/([0-9]{1,18})/(edit|delete|hide)", pages.PostHandler, name="post_action"),
            S(r"/u/([^/]{1,64})", accounts.UserHandler, name="user"),
            S(r"/search", pages.SearchHandler, name="search"),
            S(r"/preview", pages.PreviewHandler, name="preview"),
            S(r"/notifications", pages.NotificationsHandler, name="notifications"),
            S(r"/notify", live.NotifySocketHandler, name="notify"),
            S(r"/code.css", pages.CodeStyleHandler, name="code_css"),
            S(r"/signup", accounts.SignupHandler, name="signup"),
            S(r"/login", accounts.LoginHandler, name="login"),
            S(r"/logout", accounts.LogoutHandler, name="logout"),
            S(r"/messages", pages.MessageBoardHandler, name="messages"),
            S(
                r"/(favicon\.ico)",
                StaticHandler,
                {"path": os.path.join(HERE, "static")},
                name="favicon",
            ),
        ],
        db=database,
        pubsub=pubsub_with_history(pubsub),
        rooms=Rooms(),
        cookie_secret=cookie_secret or load_cookie_secret(data_dir or HERE),
        login_url="/login",
        template_path=os.path.join(HERE, "templates"),
        static_path=os.path.join(HERE, "static"),
        static_handler_class=StaticHandler,
        default_handler_class=NotFoundHandler,
        ui_modules={"Post": PostModule, "Pager": PagerModule},
        xsrf_cookies=True,
        page_size=page_size,
        poll_timeout=poll_timeout,
        scrypt_n=scrypt_n,
        admins=frozenset(admins),
        throttles=accounts.make_throttles(database, settings),
        render=make_renderer(user_path),
        code_css=highlight_css(),
        dummy_hash=hash_password(secrets.token_hex(8), n=scrypt_n),
        debug=debug,
        **settings,
    )


def cluster_app() -> squall.web.Application:
    """The factory ``squall run`` calls in each worker; configured by the environment.

    ``FORUM_DB``, ``FORUM_PUBSUB`` (``redis://...``: workers see each other's
    posts), ``FORUM_SECRET`` (the same in every worker) and
    ``FORUM_POST_LIMIT`` (``N/SECONDS``, or ``off`` for load tests).
    """
    limit = os.environ.get("FORUM_POST_LIMIT", "")
    post_limit: Optional[tuple[int, float]] = (30, 60.0)
    if limit == "off":
        post_limit = None
    elif limit:
        count, _, seconds = limit.partition("/")
        post_limit = (int(count), float(seconds or 60))
    return make_app(
        post_user_limit=post_limit,
        db=os.environ.get("FORUM_DB") or None,
        pubsub=os.environ.get("FORUM_PUBSUB") or None,
        cookie_secret=os.environ.get("FORUM_SECRET") or None,
        admins=tuple(n for n in os.environ.get("FORUM_ADMINS", "").split(",") if n),
    )


def parse_options(argv: list[str]) -> squall.options.OptionParser:
    """The demo's command line (its own parser, so demos can share a process)."""
    parser = squall.options.OptionParser()
    parser.define("port", default=8888, type=int, help="port to listen on (0: any free one)")
    parser.define("address", default="127.0.0.1", help="address to listen on")
    parser.define("db", default=DEFAULT_DB, help="database URL (sqlite, postgresql, mysql)")
    parser.define("pubsub", default="memory://", help="memory:// or redis://host:port/db")
    parser.define("cookie_secret", default="", help="secret signing the user cookie")
    parser.define("data_dir", default=HERE, help="where the cookie secret is kept")
    parser.define("admins", default="", help="comma-separated names of administrators")
    parser.define("debug", default=False, type=bool, help="reload templates and static files")
    parser.define("seed", default=False, type=bool, help="post a few topics if there are none")
    parser.parse_command_line(argv, final=False)
    return parser


def listen(app: squall.web.Application, port: int, address: str) -> tuple[HTTPServer, str]:
    """Starts serving ``app``; returns the server and its URL (the real port)."""
    sockets = squall.netutil.bind_sockets(port, address, family=socket.AF_INET)
    # No xheaders: served directly, X-Forwarded-For would let a client pick
    # the address the login throttle counts against.
    server = HTTPServer(app)
    server.add_sockets(sockets)
    host, real_port = sockets[0].getsockname()[:2]
    return server, f"http://{host}:{real_port}/"


def main(argv: Optional[list[str]] = None) -> None:
    """Serves the forum until interrupted, printing its address first."""
    opts = parse_options(sys.argv if argv is None else argv)

    try:
        Database(opts.db)
    except DatabaseURLError as exc:
        print(f"forum: --db: {exc}", file=sys.stderr)
        raise SystemExit(2)

    async def serve() -> None:
        app = make_app(
            db=opts.db,
            pubsub=opts.pubsub,
            cookie_secret=opts.cookie_secret,
            data_dir=opts.data_dir,
            admins=tuple(n for n in opts.admins.split(",") if n),
            debug=opts.debug,
        )
        await app.settings["db"].ready()
        if opts.seed:
            from forumlib.seed import seed_if_empty

            await seed_if_empty(app.settings["db"])
        _, url = listen(app, opts.port, opts.address)
        # The address last and alone, where a newcomer looks for it.
        print(f"== the forum demo is serving; Ctrl-C stops\n\n    {url}\n", flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
