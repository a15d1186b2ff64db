"""Accounts: sign-up, login (throttled), logout, and each user's page."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
import unicodedata
from typing import Any

from .base import USER_COOKIE, BaseHandler
from .security import Throttle, safe_next

MAX_NAME = 32
# Unicode categories refused in names: controls, format characters (the
# bidirectional overrides and isolates, zero-width joiners), surrogates,
# private use and unassigned code points.
_HIDDEN = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
MIN_PASSWORD = 8
MAX_PASSWORD = 1024


# Passwords: scrypt (memory-hard) with a random salt per user; the parameters
# are stored with the hash, so that they can be raised later.


def hash_password(password: str, n: int = 2**14) -> str:
    """``scrypt$n$r$p$salt$hash`` for ``password``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=8, p=1, maxmem=2**26, dklen=32)
    return f"scrypt${n}$8$1${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time."""
    try:
        scheme, n, r, p, salt, expected = stored.split("$")
        if scheme != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=2**26,
            dklen=len(expected) // 2,
        )
    except ValueError:
        return False
    return hmac.compare_digest(digest.hex(), expected)


def make_throttles(db: Any, settings: dict[str, Any]) -> dict[str, Throttle]:
    """The throttles named by the settings' ``(limit, window seconds)`` pairs."""
    return {
        name: Throttle(db, name, *settings[name])
        for name in (
            "login_account_limit",
            "login_address_limit",
            "signup_address_limit",
            "post_user_limit",
        )
        if settings.get(name)
    }


class AccountHandler(BaseHandler):
    def throttle(self, name: str) -> Throttle:
        throttle: Throttle = self.settings["throttles"][name]
        return throttle

    async def refuse_if_throttled(
        self, checks: list[tuple[str, str]], template: str, **kw: Any
    ) -> bool:
        """Answers 429 with Retry-After when any ``(throttle, key)`` is over its limit."""
        wait = max([await self.throttle(name).retry_after(key) for name, key in checks])
        if not wait:
            return False
        self.set_status(429)
        self.set_header("Retry-After", str(wait))
        minutes = max(1, round(wait / 60))
        self.render(
            template,
            error=f"Too many attempts. Try again in about {minutes} minute"
            f"{'' if minutes == 1 else 's'}.",
            **kw,
        )
        return True

    def sign_in(self, user_id: int) -> None:
        self.set_signed_cookie(USER_COOKIE, str(user_id), httponly=True, samesite="Lax")

    def next_url(self) -> str:
        return safe_next(self.get_query_argument("next", "") or "") or self.reverse_url("index")


class SignupHandler(AccountHandler):
    def get(self) -> None:
        self.render("signup.html", error=None, name="")

    async def post(self) -> None:
        name = " ".join((self.get_body_argument("name", "") or "").split())
        password = self.get_body_argument("password", "") or ""
        address = self.request.remote_ip or "?"
        if await self.refuse_if_throttled(
            [("signup_address_limit", address)], "signup.html", name=name
        ):
            return
        await self.throttle("signup_address_limit").hit(address)
        error = None
        if not name or len(name) > MAX_NAME:
            error = f"Pick a name of 1 to {MAX_NAME} characters."
        elif any(unicodedata.category(char) in _HIDDEN for char in name):
            # A right-to-left override shows "\u202eevil" as "live", and an
            # invisible character makes "bob\u200b" look like "bob".
            error = "A name cannot hold control, format or direction characters."
        elif not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            error = f"Pick a password of at least {MIN_PASSWORD} characters."
        elif await self.db.fetchone("SELECT id FROM users WHERE name = ?", name) is not None:
            error = "That name is taken."
        if error is not None:
            self.set_status(400)
            self.render("signup.html", error=error, name=name)
            return
        # scrypt takes tens of milliseconds of CPU: keep it off the event loop.
        stored = await asyncio.get_running_loop().run_in_executor(
            None, hash_password, password, self.settings["scrypt_n"]
        )
        try:
            user_id = await self.db.insert("users", name=name, password=stored, created=time.time())
        except Exception:
            if await self.db.fetchone("SELECT id FROM users WHERE name = ?", name) is None:
                raise
            self.set_status(400)
            self.render("signup.html", error="That name is taken.", name=name)
            return
        self.sign_in(user_id)
        self.redirect(self.next_url())


class LoginHandler(AccountHandler):
    def get(self) -> None:
        self.render("login.html", error=None, name="")

    async def post(self) -> None:
        name = " ".join((self.get_body_argument("name", "") or "").split())
        password = self.get_body_argument("password", "") or ""
        checks = [
            ("login_account_limit", name.casefold()),
            ("login_address_limit", self.request.remote_ip or "?"),
        ]
        # Checked before scrypt: a throttled guesser costs no CPU.
        if await self.refuse_if_throttled(checks, "login.html", name=name):
            return
        user = await self.db.fetchone("SELECT id, password FROM users WHERE name = ?", name)
        # An unknown name costs the same scrypt as a wrong password, so that
        # timing does not tell which names exist.
        stored = user["password"] if user else self.settings["dummy_hash"]
        ok = await asyncio.get_running_loop().run_in_executor(
            None, check_password, password[:MAX_PASSWORD], stored
        )
        if user is None or not ok:
            for throttle, key in checks:
                await self.throttle(throttle).hit(key)
            self.set_status(403)
            self.render("login.html", error="Wrong name or password.", name=name)
            return
        self.sign_in(user["id"])
        self.redirect(self.next_url())


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.clear_cookie(USER_COOKIE)
        self.redirect(self.reverse_url("index"))


class UserHandler(BaseHandler):
    """``/u/NAME``: a user's topics and posts, newest first, a page at a time."""

    async def get(self, name: str) -> None:
        user = await self.row_or_404(
            "user", "SELECT id, name, created, is_admin FROM users WHERE name = ?", name
        )
        topics = await self.db.fetchall(
            "SELECT id, title, posts, last_post FROM topics WHERE user_id = ?"
            " ORDER BY id DESC LIMIT 10",
            user["id"],
        )
        visible = "p.user_id = ? AND p.is_deleted = 0 AND p.is_hidden = 0"
        total = await self.db.count(
            f"SELECT COUNT(*) AS n FROM posts p WHERE {visible}", user["id"]
        )
        page, pages, offset = self.paging(total)
        posts = await self.db.fetchall(
            "SELECT p.id, p.body, p.created, p.edited, t.id AS topic_id, t.title"
            f" FROM posts p JOIN topics t ON t.id = p.topic_id WHERE {visible}"
            " ORDER BY p.id DESC LIMIT ? OFFSET ?",
            user["id"],
            self.settings["page_size"],
            offset,
        )
        self.render(
            "user.html", user=user, topics=topics, posts=posts, total=total, page=page, pages=pages
        )
