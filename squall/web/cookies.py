"""Cookies, signed cookies and XSRF protection for request handlers."""

from __future__ import annotations

import datetime
import http.cookies
from typing import TYPE_CHECKING, Any, Optional, Union

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest

__all__ = ["CookieMixin"]


class CookieMixin:
    """Cookie, signed-cookie and XSRF methods of `RequestHandler`."""

    request: HTTPServerRequest
    settings: dict[str, Any]

    @property
    def cookies(self) -> dict[str, http.cookies.Morsel[str]]:
        """The cookies of the request."""
        raise NotImplementedError

    def get_cookie(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """Returns the value of the request cookie ``name``, or ``default``."""
        raise NotImplementedError

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
        partitioned: bool = False,
        **kwargs: Any,
    ) -> None:
        """Sets an outgoing cookie."""
        raise NotImplementedError

    def clear_cookie(self, name: str, **kwargs: Any) -> None:
        """Deletes the cookie ``name``."""
        raise NotImplementedError

    def clear_all_cookies(self, **kwargs: Any) -> None:
        """Deletes every cookie the request sent."""
        raise NotImplementedError

    def set_signed_cookie(
        self,
        name: str,
        value: Union[str, bytes],
        expires_days: Optional[float] = 30,
        version: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        """Signs and timestamps a cookie so it cannot be forged."""
        raise NotImplementedError

    set_secure_cookie = set_signed_cookie

    def create_signed_value(
        self, name: str, value: Union[str, bytes], version: Optional[int] = None
    ) -> bytes:
        """Signs and timestamps a string with the application's cookie secret."""
        raise NotImplementedError

    def get_signed_cookie(
        self,
        name: str,
        value: Optional[str] = None,
        max_age_days: float = 31,
        min_version: Optional[int] = None,
    ) -> Optional[bytes]:
        """Returns the signed cookie ``name`` if it validates, else None."""
        raise NotImplementedError

    get_secure_cookie = get_signed_cookie

    def get_signed_cookie_key_version(
        self, name: str, value: Optional[str] = None
    ) -> Optional[int]:
        """Returns the signing key version of the signed cookie ``name``."""
        raise NotImplementedError

    get_secure_cookie_key_version = get_signed_cookie_key_version

    @property
    def xsrf_token(self) -> bytes:
        """The XSRF-prevention token of the current user/session."""
        raise NotImplementedError

    def _get_raw_xsrf_token(self) -> tuple[Optional[int], bytes, float]:
        raise NotImplementedError

    def _decode_xsrf_token(
        self, cookie: str
    ) -> tuple[Optional[int], Optional[bytes], Optional[float]]:
        raise NotImplementedError

    def check_xsrf_cookie(self) -> None:
        """Raises a 403 HTTPError unless the request carries the XSRF token."""
        raise NotImplementedError

    def xsrf_form_html(self) -> str:
        """A hidden ``<input>`` carrying the XSRF token, for HTML forms."""
        raise NotImplementedError
