"""The forum's base handler, UI modules and the handlers every request may end in."""

from __future__ import annotations

import math
import sqlite3
import time
from typing import Any, Optional

import squall.httputil
import squall.web

from .db import Database, Row
from .markup import excerpt, user_path
from .security import SECURITY_HEADERS

USER_COOKIE = "forum_user"
GUEST_COOKIE = "forum_guest"


def when(timestamp: float) -> str:
    """A post's time, as shown (UTC)."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


class TooFast(squall.web.HTTPError):
    """429: a throttle's limit is reached; ``retry_after`` seconds until the next."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            429, reason=f"too many posts and edits: try again in {retry_after} seconds"
        )
        self.retry_after = retry_after


class FieldTooLong(squall.web.HTTPError):
    """A form field over its limit: the form comes back with the text in it.

    Only a client that bypasses the field's ``maxlength`` sends one; its text
    is not thrown away with a bare 400 page.
    """

    def __init__(self, name: str, limit: int, length: int) -> None:
        super().__init__(
            400, reason=f"{name} is over {limit} characters (it has {length:,}): not saved yet"
        )
        self.field = name


# Form fields shown as a text area when a form is sent back.
_LONG_FIELDS = ("body", "message")


class ForumResponses(squall.web.RequestHandler):
    """Mixed into every handler (pages, static files): the security headers, and
    errors shown as the forum's own styled page."""

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        reason = getattr(exc, "reason", None)
        if isinstance(exc, TooFast):
            # (send_error cleared the headers set before the raise.)
            self.set_header("Retry-After", str(exc.retry_after))
        if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
            # Other workers held SQLite's one write lock longer than busy_timeout:
            # load, not a fault here. RFC 9110 section 15.6.4: 503, come back soon.
            status_code, reason = 503, "the forum is busy: try again in a moment"
            self.set_status(status_code)
            self.set_header("Retry-After", "1")
        if isinstance(exc, squall.web.HTTPError) and exc.log_message and status_code < 500:
            # A client error's detail says what to fix (a 5xx's stays in the log).
            reason = exc.log_message % exc.args if exc.args else exc.log_message
        if not reason:
            reason = squall.httputil.responses.get(status_code, "Error")
        try:
            if isinstance(exc, FieldTooLong) and self.request.method == "POST":
                self.render_form_again(reason, exc.field)
                return
            self.render("error.html", status_code=status_code, reason=reason)
        except Exception:
            # The error page itself failed (the database is down, say): plain text.
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(f"{status_code}: {reason}\n")

    def render_form_again(self, reason: str, field: str) -> None:
        """The form just posted, filled with what was sent, and why it was refused."""
        fields = [
            (name, self.decode_argument(values[-1], name))
            for name, values in self.request.body_arguments.items()
            if name != "_xsrf" and values
        ]
        self.render(
            "form_again.html",
            reason=reason,
            field=field,
            fields=fields,
            long_fields=_LONG_FIELDS,
            action=self.request.uri,
        )


class BaseHandler(ForumResponses):
    """Loads the user named by the signed cookie, and gives handlers the db and pub/sub."""

    @property
    def db(self) -> Database:
        db: Database = self.settings["db"]
        return db

    @property
    def pubsub(self) -> Any:
        return self.settings["pubsub"]

    @property
    def is_admin(self) -> bool:
        return bool(self.current_user and self.current_user["is_admin"])

    async def prepare(self) -> None:
        await self.db.ready()
        raw = self.get_signed_cookie(USER_COOKIE, max_age_days=30)
        user: Optional[Row] = None
        if raw is not None and raw.isdigit():
            user = await self.db.fetchone(
                "SELECT id, name, is_admin FROM users WHERE id = ?", int(raw)
            )
        if user is not None:
            user["is_admin"] = bool(user["is_admin"]) or user["name"] in self.settings["admins"]
            user["unseen"] = await self.db.count(
                "SELECT COUNT(*) AS n FROM notifications WHERE user_id = ? AND seen = 0",
                user["id"],
            )
        self.current_user = user

    def get_template_namespace(self) -> dict[str, Any]:
        namespace = super().get_template_namespace()
        namespace.update(
            when=when, user_path=user_path, excerpt=excerpt, render=self.settings["render"]
        )
        namespace["is_admin"] = self.is_admin
        return namespace

    async def row_or_404(self, what: str, sql: str, *params: Any) -> Row:
        """The row ``sql`` finds, or a 404 saying there is no such ``what``."""
        row = await self.db.fetchone(sql, *params)
        if row is None:
            raise squall.web.HTTPError(404, reason=f"no such {what}")
        return row

    def text_argument(self, name: str, limit: int, *, strip: bool = True) -> str:
        """A required form field of at most ``limit`` characters (400 otherwise)."""
        value = self.get_body_argument(name, "") or ""
        if strip:
            value = value.strip()
        if not value:
            raise squall.web.HTTPError(400, reason=f"{name} is required")
        if len(value) > limit:
            raise FieldTooLong(name, limit, len(value))
        return value

    def page_argument(self) -> int:
        raw = self.get_query_argument("page", "1") or "1"
        if raw == "last":
            return 10**9  # clamped to the last page by paging()
        if not raw.isdigit() or int(raw) < 1 or len(raw) > 9:
            raise squall.web.HTTPError(400, reason="page must be a positive integer")
        return int(raw)

    def paging(self, total: int, size: Optional[int] = None) -> tuple[int, int, int]:
        """The page asked for (clamped to the last), the page count, and its offset."""
        size = size or self.settings["page_size"]
        pages = max(1, math.ceil(total / size))
        page = min(self.page_argument(), pages)
        return page, pages, (page - 1) * size


class NotFoundHandler(BaseHandler):
    """Any URL no route matches: the styled 404 page."""

    async def prepare(self) -> None:
        try:
            await super().prepare()
        except Exception:
            self.current_user = None
        raise squall.web.HTTPError(404, reason="there is no page at this address")


class StaticHandler(ForumResponses, squall.web.StaticFileHandler):
    """Static files, with the same security headers as pages."""


class PostModule(squall.web.UIModule):
    """``{% module Post(post, number) %}``: one post, as shown in a topic and sent live."""

    def render(self, post: Row, number: int = 0, topic: Optional[Row] = None) -> str:
        return self.render_string(
            "modules/post.html", post=post, number=number, topic=topic
        ).decode()


class PagerModule(squall.web.UIModule):
    """``{% module Pager(url, page, pages) %}``: links to the other pages of a list."""

    def render(self, url: str, page: int, pages: int) -> str:
        if pages <= 1:
            return ""
        joiner = "&" if "?" in url else "?"
        shown = sorted({1, pages, *range(max(1, page - 2), min(pages, page + 2) + 1)})
        return self.render_string(
            "modules/pager.html", url=url, joiner=joiner, page=page, pages=pages, shown=shown
        ).decode()
