"""Cookies, signed cookies and XSRF protection for request handlers.

`CookieMixin` is part of `RequestHandler`. Outgoing cookies live only in the
response's ``Set-Cookie`` headers, one line per cookie name: setting a cookie
again replaces its line, so there is no second copy of the state to keep in
step with the headers. `RequestHandler.clear` (as called by
`RequestHandler.send_error`) keeps those lines, as Tornado keeps its cookies.
"""

from __future__ import annotations

import binascii
import datetime
import hmac
import http.cookies
import math
import os
import re
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from squall.escape import utf8, xhtml_escape
from squall.httputil import HTTPServerRequest, format_timestamp
from squall.log import gen_log
from squall.util import _websocket_mask
from squall.web.errors import HTTPError
from squall.web.signing import create_signed_value as _create_signed_value
from squall.web.signing import decode_signed_value, get_signature_key_version

if TYPE_CHECKING:
    from squall.httputil import HTTPHeaders

__all__ = ["CookieMixin", "format_set_cookie"]

# Attribute keys (lower case) and how each is spelled in a Set-Cookie line.
_ATTRIBUTE_NAMES = {
    "comment": "Comment",
    "domain": "Domain",
    "expires": "expires",
    "httponly": "HttpOnly",
    "max-age": "Max-Age",
    "partitioned": "Partitioned",
    "path": "Path",
    "samesite": "SameSite",
    "secure": "Secure",
    "version": "Version",
}
_FLAGS = frozenset({"httponly", "partitioned", "secure"})

# RFC 6265 section 4.1.1: a cookie name is a token.
_NAME_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~:"
)
# Any of these in a name or an attribute would end it and start another
# attribute (or another header line), or is not part of one (a space):
# refused, never escaped, as Tornado refuses them.
_BREAKING_CHARS = frozenset([chr(c) for c in range(0x21)] + ["\x7f", ";"])
# What set_cookie refuses in a value (Tornado's rule: a space or a control
# character, though the quoting could carry them).
_VALUE_REFUSED = re.compile(r"[\x00-\x20]")

# value_encode is SimpleCookie's quoting: values outside the token set are
# wrapped in double quotes with backslash and octal escapes.
_VALUE_ENCODER = http.cookies.SimpleCookie()
# Its two common outcomes without its per-character translation (a signed
# value, base64 with "=" padding, is quoted): a value of name characters is
# sent as it is; one whose other characters need no escape inside the
# quotes (" ()/<=>?@[]{}") is quoted as it is. Told apart by deleting those
# characters (bytes.translate: one pass in C).
_NAME_BYTES = "".join(sorted(_NAME_CHARS)).encode("ascii")
_QUOTED_AS_IS = b" ()/<=>?@[]{}"


def _quote_value(value: str) -> str:
    """``value`` as SimpleCookie's value_encode spells it."""
    if value.isascii():
        rest = value.encode("ascii").translate(None, _NAME_BYTES)
        if not rest:
            return value if value else '""'
        if not rest.translate(None, _QUOTED_AS_IS):
            return f'"{value}"'
    encoded: str = _VALUE_ENCODER.value_encode(value)[1]
    return encoded


def _check_attribute(label: str, value: str, cookie: str) -> None:
    if not _BREAKING_CHARS.isdisjoint(value):
        # Tornado's words: tests match on "Invalid cookie attribute <label>".
        raise http.cookies.CookieError(
            f"Invalid cookie attribute {label}={value!r} for cookie {cookie!r}"
        )


def _max_age(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and value.isascii():
        return int(value)
    if isinstance(value, float) and math.isfinite(value):
        return int(value)  # whole seconds, as Tornado writes int(max_age)
    raise ValueError(f"Cookie max_age must be an integer number of seconds, not {value!r}")


def _check_name(name: str) -> None:
    _check_attribute("name", name, name)
    if not name or not _NAME_CHARS.issuperset(name):
        raise http.cookies.CookieError(f"Illegal cookie name {name!r}")


def format_set_cookie(name: str, value: str, attributes: dict[str, Any]) -> str:
    """Formats one ``Set-Cookie`` header value, as `http.cookies.Morsel` would.

    Args:
        name: the cookie name; must be a token.
        value: the cookie value; quoted if it holds characters outside the token set.
        attributes: lower-case attribute names (``path``, ``domain``,
            ``expires``, ``max-age``, ``samesite``, ``comment``, ``version``
            and the flags ``secure``, ``httponly``, ``partitioned``) to values;
            None or False leaves an attribute out. ``expires`` may be a
            timestamp, a UTC time tuple or a `datetime.datetime`.

    Raises:
        http.cookies.CookieError: for a name or an attribute value holding a
            control character or ``;``, an illegal name, or an unknown attribute.
        ValueError: for a ``max-age`` that is not an integer, or a value
            holding characters beyond Latin-1.
    """
    _check_name(name)
    encoded = _quote_value(value)
    if not encoded.isascii():
        # Only Latin-1 is octal-escaped; anything else could not be sent in a header.
        raise ValueError(
            f"Cookie value {value!r} holds characters beyond Latin-1; escape it first (url_escape)"
        )
    parts = [f"{name}={encoded}"]
    for key in sorted(attributes):
        item = attributes[key]
        if key not in _ATTRIBUTE_NAMES:
            raise http.cookies.CookieError(f"Unknown cookie attribute {key!r}")
        if item is None or item is False or item == "":
            continue  # (an empty Domain, Path or SameSite is left out, as Tornado leaves it)
        label = _ATTRIBUTE_NAMES[key]
        if key in _FLAGS:
            if item:
                parts.append(label)
        elif key == "max-age":
            if item:  # (0 sets no Max-Age, as on Tornado: not "expire now")
                parts.append(f"{label}={_max_age(item)}")
        elif key == "expires":
            parts.append(f"{label}={item if isinstance(item, str) else format_timestamp(item)}")
        else:
            text = str(item)
            if text and max(text) > "\xff":
                raise ValueError(
                    f"Cookie attribute {label}={text!r} holds characters beyond Latin-1,"
                    " which a header cannot carry"
                )
            parts.append(f"{label}={text}")
    return "; ".join(parts)


class CookieMixin:
    """Cookie, signed-cookie and XSRF methods of `RequestHandler`."""

    request: HTTPServerRequest
    application: Any
    settings: dict[str, Any]
    _headers: HTTPHeaders
    _xsrf_token: bytes
    _raw_xsrf_token: tuple[Optional[int], bytes, float]

    if TYPE_CHECKING:
        # Provided by RequestHandler.
        @property
        def current_user(self) -> Any: ...
        def require_setting(self, name: str, feature: str = "this feature") -> None: ...

        get_argument: Callable[..., Any]

    @property
    def cookies(self) -> dict[str, http.cookies.Morsel[str]]:
        """The cookies of the request, by name (an `http.cookies.SimpleCookie`)."""
        return self.request.cookies

    def get_cookie(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Returns the value of the request cookie ``name``, or ``default``.

        The value is what the client sent, unsigned: never trust it for
        anything that matters (see `get_signed_cookie`).
        """
        request = self.request
        if type(request) is HTTPServerRequest:
            # The same answer without a Morsel per cookie (a jar is built
            # only once `request.cookies` is read).
            return request.cookie_value(name, default)
        morsel = request.cookies.get(name)
        return default if morsel is None else morsel.value

    def set_cookie(
        self,
        name: str,
        value: Union[str, bytes],
        domain: Optional[str] = None,
        expires: Optional[Union[float, tuple[int, ...], datetime.datetime]] = None,
        path: str = "/",
        expires_days: Optional[float] = None,
        *,
        max_age: Optional[int] = None,
        httponly: bool = False,
        secure: bool = False,
        samesite: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Sets an outgoing cookie; a later call with the same name replaces it.

        Args:
            name: the cookie name.
            value: the value (bytes are decoded as UTF-8); quoted as needed.
            domain: the ``Domain`` attribute.
            expires: when it expires: a Unix timestamp, a UTC time tuple or a
                `datetime.datetime`.
            path: the ``Path`` attribute.
            expires_days: days from now until it expires (when ``expires`` is not given).
            max_age: the ``Max-Age`` attribute, in seconds.
            httponly: hide the cookie from JavaScript.
            secure: send it over HTTPS only.
            samesite: the ``SameSite`` attribute (``"Strict"``, ``"Lax"`` or ``"None"``).
            kwargs: other attributes: ``partitioned=True`` (CHIPS) and the
                `http.cookies.Morsel` ones (``comment``, ``version``);
                capitalized spellings of any attribute work but are deprecated.

        Raises:
            http.cookies.CookieError: if the name or an attribute holds a
                space, a control character or ``;`` (or the name is not a
                token).
            ValueError: if the value holds a space or a control character
                (encode it first: `~squall.escape.url_escape`, or a signed
                cookie), or ``max_age`` is not an integer.
        """
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        if _VALUE_REFUSED.search(text) is not None:
            raise ValueError(f"Invalid cookie {name!r}: {text!r}")
        attributes: dict[str, Any] = {
            "domain": domain,
            "expires": expires or None,  # (expires=0 sets none, as on Tornado)
            "path": path,
            "max-age": max_age,
            "httponly": httponly,
            "secure": secure,
            "samesite": samesite,
        }
        labels = {"domain": "domain", "path": "path", "samesite": "samesite"}
        capitalized = {key for key in kwargs if key.lower() != key}
        if capitalized:
            # One warning, in Tornado's words (programs filter by the text).
            warnings.warn(
                f"Deprecated arguments to set_cookie: {capitalized} (should be lowercase)",
                DeprecationWarning,
                stacklevel=2,
            )
        for key, item in kwargs.items():
            lower = key.lower()
            lower = "max-age" if lower == "max_age" else lower
            attributes[lower] = item
            labels[lower] = key
        if isinstance(name, bytes):
            name = name.decode("utf-8")
        # The name first, then the attributes, then the name's characters, as
        # Tornado reports them.
        _check_attribute("name", name, name)
        for key, label in labels.items():
            item = attributes.get(key)
            if isinstance(item, str):
                _check_attribute(label, item, name)
        _check_name(name)
        if not expires and expires_days is not None:
            # A timestamp: formatted as the same HTTP date a datetime would
            # be, without one (computed after the checks above, so that a bad
            # attribute is reported before a bad expires_days, as in Tornado).
            attributes["expires"] = time.time() + expires_days * 86400
        line = format_set_cookie(name, text, attributes)
        headers = self._headers
        # One Set-Cookie line per name: a new value replaces the old line.
        if "Set-Cookie" in headers:
            kept = [old for old in headers.get_list("Set-Cookie") if old.partition("=")[0] != name]
            del headers["Set-Cookie"]
            for old in kept:
                headers.add("Set-Cookie", old)
        headers.add("Set-Cookie", line)

    def clear_cookie(self, name: str, **kwargs: Any) -> None:
        """Deletes the cookie ``name`` by sending it empty and already expired.

        Args:
            name: the cookie name.
            kwargs: the attributes the cookie was set with (``path``,
                ``domain``, ``samesite``, ``secure``...): a browser deletes a
                cookie only when they match.

        Raises:
            TypeError: if ``expires`` or ``max_age`` is given.
        """
        for excluded in ("expires", "max_age"):
            if excluded in kwargs:
                raise TypeError(f"clear_cookie() got an unexpected keyword argument {excluded!r}")
        expires = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=365)
        self.set_cookie(name, value="", expires=expires, **kwargs)

    def clear_all_cookies(self, **kwargs: Any) -> None:
        """Deletes every cookie the request sent (see `clear_cookie` for ``kwargs``)."""
        for name in list(self.request.cookies):
            self.clear_cookie(name, **kwargs)

    def set_signed_cookie(
        self,
        name: str,
        value: Union[str, bytes],
        expires_days: Optional[float] = 30,
        version: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        """Signs and timestamps a cookie so it cannot be forged.

        Needs the ``cookie_secret`` setting. Read it back with `get_signed_cookie`.
        The value is signed, not encrypted: the client can read it.

        Args:
            name: the cookie name.
            value: any bytes or text.
            expires_days: the cookie's lifetime in the browser; `get_signed_cookie`
                applies its own ``max_age_days``.
            version: the signed-value format (default 2).
            kwargs: passed to `set_cookie`.
        """
        self.set_cookie(
            name,
            self.create_signed_value(name, value, version=version),
            expires_days=expires_days,
            **kwargs,
        )

    set_secure_cookie = set_signed_cookie

    def create_signed_value(
        self, name: str, value: Union[str, bytes], version: Optional[int] = None
    ) -> bytes:
        """Signs and timestamps ``value`` with the ``cookie_secret`` setting.

        For values carried elsewhere than a cookie (a query argument, say);
        decode with `get_signed_cookie` and its ``value`` argument.

        Raises:
            ValueError: if ``cookie_secret`` is a dict and ``key_version`` is not set.
        """
        self.require_setting("cookie_secret", "secure cookies")
        settings = self.application.settings
        secret = settings["cookie_secret"]
        key_version = None
        if isinstance(secret, dict):
            key_version = settings.get("key_version")
            if key_version is None:
                raise ValueError("the key_version setting is required when cookie_secret is a dict")
        return _create_signed_value(secret, name, value, version=version, key_version=key_version)

    def get_signed_cookie(
        self,
        name: str,
        value: Optional[str] = None,
        max_age_days: float = 31,
        min_version: Optional[int] = None,
    ) -> Optional[bytes]:
        """Returns the signed cookie ``name`` if it validates, else None.

        Args:
            name: the cookie name (the signature binds it).
            value: a signed value to check instead of the request cookie.
            max_age_days: refuse values signed longer ago than this.
            min_version: the oldest signed-value format accepted.
        """
        self.require_setting("cookie_secret", "secure cookies")
        if value is None:
            value = self.get_cookie(name)
        return decode_signed_value(
            self.application.settings["cookie_secret"],
            name,
            value,
            max_age_days=max_age_days,
            min_version=min_version,
        )

    get_secure_cookie = get_signed_cookie

    def get_signed_cookie_key_version(
        self, name: str, value: Optional[str] = None
    ) -> Optional[int]:
        """Returns the signing key version of the signed cookie ``name`` (None if absent)."""
        self.require_setting("cookie_secret", "secure cookies")
        if value is None:
            value = self.get_cookie(name)
        if value is None:
            return None
        return get_signature_key_version(value)

    get_secure_cookie_key_version = get_signed_cookie_key_version

    @property
    def xsrf_token(self) -> bytes:
        """The XSRF-prevention token of this client, masked anew on each request.

        Reading it sets the XSRF cookie (named by the ``xsrf_cookie_name``
        setting, default ``_xsrf``, with the ``xsrf_cookie_kwargs`` setting as
        `set_cookie` arguments) unless the client already has one. Version 2
        tokens (the default, setting ``xsrf_cookie_version``) are XOR-masked
        with a random mask so the page never holds the same bytes twice
        (BREACH); version 1 tokens are the bare hex token.

        Raises:
            ValueError: for an unknown ``xsrf_cookie_version``.
        """
        cached: Optional[bytes] = getattr(self, "_xsrf_token", None)
        if cached is not None:
            return cached
        version, token, timestamp = self._get_raw_xsrf_token()
        output_version = self.settings.get("xsrf_cookie_version", 2)
        cookie_kwargs = dict(self.settings.get("xsrf_cookie_kwargs", {}))
        if output_version == 1:
            encoded = binascii.b2a_hex(token)
        elif output_version == 2:
            mask = os.urandom(4)
            encoded = b"|".join(
                [
                    b"2",
                    binascii.b2a_hex(mask),
                    binascii.b2a_hex(_websocket_mask(mask, token)),
                    str(int(timestamp)).encode("ascii"),
                ]
            )
        else:
            raise ValueError(f"unknown xsrf cookie version {output_version!r}")
        if version is None:
            # A new token: the client gets it as a cookie. Logged-in users
            # keep it across browser restarts.
            if self.current_user and "expires_days" not in cookie_kwargs:
                cookie_kwargs["expires_days"] = 30
            name = self.settings.get("xsrf_cookie_name", "_xsrf")
            self.set_cookie(name, encoded, **cookie_kwargs)
        self._xsrf_token = encoded
        return encoded

    def _get_raw_xsrf_token(self) -> tuple[Optional[int], bytes, float]:
        """The unmasked token: ``(version, token, timestamp)``; version None if new."""
        raw: Optional[tuple[Optional[int], bytes, float]] = getattr(self, "_raw_xsrf_token", None)
        if raw is None:
            cookie = self.get_cookie(self.settings.get("xsrf_cookie_name", "_xsrf"))
            version: Optional[int] = None
            token: Optional[bytes] = None
            timestamp: Optional[float] = None
            if cookie:
                version, token, timestamp = self._decode_xsrf_token(cookie)
            if token is None or timestamp is None:
                version, token, timestamp = None, os.urandom(16), time.time()
            raw = (version, token, timestamp)
            self._raw_xsrf_token = raw
        return raw

    def _decode_xsrf_token(
        self, cookie: str
    ) -> tuple[Optional[int], Optional[bytes], Optional[float]]:
        """Unmasks a token from a cookie or a form: ``(version, token, timestamp)``.

        A value that is not ``2|mask|masked|timestamp`` is a version-1 token:
        hex if it decodes as hex, else the raw bytes. A malformed
        versioned value gives ``(None, None, None)``.
        """
        data = utf8(cookie)
        head, bar, _ = data.partition(b"|")
        if bar and head.isdigit() and not head.startswith(b"0"):
            if head != b"2":
                return None, None, None
            fields = data.split(b"|")
            try:
                if len(fields) != 4:
                    raise ValueError("a version 2 XSRF token has four fields")
                mask = binascii.a2b_hex(fields[1])
                token = _websocket_mask(mask, binascii.a2b_hex(fields[2]))
                return 2, token, float(int(fields[3]))
            except (ValueError, binascii.Error):
                gen_log.debug("Malformed XSRF token %r", cookie)
                return None, None, None
        try:
            token = binascii.a2b_hex(data)
        except (ValueError, binascii.Error):
            token = data
        return 1, token, float(int(time.time()))

    def check_xsrf_cookie(self) -> None:
        """Raises a 403 `HTTPError` unless the request carries the XSRF token.

        The token comes from the ``_xsrf`` argument or the ``X-Xsrftoken`` or
        ``X-Csrftoken`` header, and must match the XSRF cookie (masking and
        version aside). `RequestHandler` calls this for every request that is
        not GET, HEAD or OPTIONS when the ``xsrf_cookies`` setting is true.
        """
        sent = (
            self.get_argument("_xsrf", None)
            or self.request.headers.get("X-Xsrftoken")
            or self.request.headers.get("X-Csrftoken")
        )
        if not sent:
            raise HTTPError(403, "'_xsrf' argument missing from POST")
        _, token, _ = self._decode_xsrf_token(sent)
        _, expected, _ = self._get_raw_xsrf_token()
        if not token:
            raise HTTPError(403, "'_xsrf' argument has invalid format")
        if not hmac.compare_digest(token, expected):
            raise HTTPError(403, "XSRF cookie does not match POST argument")

    def xsrf_form_html(self) -> str:
        """A hidden ``<input>`` carrying the XSRF token, to put in every HTML form."""
        return f'<input type="hidden" name="_xsrf" value="{xhtml_escape(self.xsrf_token)}"/>'
