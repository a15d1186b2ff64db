"""What keeps the forum safe beyond escaping and parameters: where a login may
send the browser next, how fast names and passwords may be tried, the headers
every response carries, and a cookie secret that survives restarts."""

from __future__ import annotations

import math
import os
import secrets
import tempfile
import time
import unicodedata
from collections.abc import Callable
from typing import Any, Optional

# Every page: no inline script or style (the templates load static files only),
# no framing, no Referer to other sites, no MIME sniffing. 'self' in
# connect-src covers ws:// and wss:// to the same host (CSP Level 3, 6.7.2.8).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self';"
        " frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def safe_next(target: str) -> Optional[str]:
    """``target`` if it is a path on this site, else None.

    Browsers drop tabs and newlines inside URLs and read a backslash as a
    slash (WHATWG URL, "basic URL parser"), so ``/\\t/evil.com`` and
    ``/\\evil.com`` mean ``//evil.com``: another host. Only a path that starts
    with exactly one ``/`` and holds no control character, whitespace or
    backslash is kept. ``target`` is the decoded query argument.
    """
    if not target.startswith("/") or target.startswith("//"):
        return None
    for char in target:
        if char == "\\" or char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
            return None
    return target


class Throttle:
    """At most ``limit`` events per ``window`` seconds per key (a sliding window).

    Kept in the database, so that every worker of a cluster counts against
    the same limit and a restart does not reset it.

    Args:
        db: the forum's ``Database``.
        name: which throttle (several share the table).
        limit, window: events allowed per window, and the window in seconds.
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(
        self,
        db: Any,
        name: str,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.name = name
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits = 0

    async def retry_after(self, key: str) -> int:
        """Seconds until ``key`` may try again (0: it may now)."""
        now = self.clock()
        rows = await self.db.fetchall(
            "SELECT at FROM throttle_events WHERE name = ? AND event_key = ? AND at > ?"
            " ORDER BY at DESC LIMIT ?",
            self.name,
            key[:255],
            now - self.window,
            self.limit,
        )
        if len(rows) < self.limit:
            return 0
        # The limit-th newest must leave the window before one more fits.
        return max(1, math.ceil(float(rows[-1]["at"]) + self.window - now))

    async def hit(self, key: str) -> None:
        """Counts one event for ``key``."""
        now = self.clock()
        await self.db.insert("throttle_events", name=self.name, event_key=key[:255], at=now)
        self._hits += 1
        if self._hits % 100 == 0:
            # Old events are only clutter: forget them now and then.
            await self.db.execute(
                "DELETE FROM throttle_events WHERE name = ? AND at < ?",
                self.name,
                now - self.window,
            )


def load_cookie_secret(data_dir: str, environ: Optional[dict[str, str]] = None) -> str:
    """``FORUM_SECRET`` from the environment, else ``data_dir/cookie_secret``
    (made once, readable by its owner only), so that a restart keeps everyone
    signed in."""
    env = os.environ if environ is None else environ
    if env.get("FORUM_SECRET"):
        return env["FORUM_SECRET"]
    path = os.path.join(data_dir, "cookie_secret")
    try:
        with open(path, encoding="ascii") as file:
            secret = file.read().strip()
        if len(secret) >= 32:
            return secret
        raise ValueError(f"{path} holds fewer than 32 characters: delete it to make a new one")
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32)
    # Written whole to a file of our own, then linked into place: a worker
    # starting beside us reads either nothing or the whole secret.
    fd, temporary = tempfile.mkstemp(dir=data_dir, prefix=".cookie_secret.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as file:
            file.write(secret + "\n")
        os.link(temporary, path)
    except FileExistsError:
        return load_cookie_secret(data_dir, env)  # another worker's came first
    finally:
        os.unlink(temporary)
    return secret
