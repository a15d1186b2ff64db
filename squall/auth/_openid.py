"""OpenID 2.0 login with Attribute Exchange (deprecated, as in Tornado 6.6)."""

from __future__ import annotations

import re
import urllib.parse
import warnings
from typing import Any, Optional, Union

from squall import escape
from squall.auth._common import AuthError, _as_handler, _default_http_client
from squall.httpclient import AsyncHTTPClient, HTTPResponse

_OPENID_NS = "http://specs.openid.net/auth/2.0"
_OPENID_SELECT = "http://specs.openid.net/auth/2.0/identifier_select"
_AX_NS = "http://openid.net/srv/ax/1.0"
_AX_FIRST = "http://axschema.org/namePerson/first"
_AX_FULL = "http://axschema.org/namePerson"
_AX_LAST = "http://axschema.org/namePerson/last"
_AX_EMAIL = "http://axschema.org/contact/email"
_AX_LANGUAGE = "http://axschema.org/pref/language"
_AX_FRIENDLY = "http://axschema.org/namePerson/friendly"
# The attribute-exchange types a caller may ask for by short name ("name"
# expands to the three name attributes).
_AX_TYPES = {"email": _AX_EMAIL, "language": _AX_LANGUAGE, "username": _AX_FRIENDLY}
_AX_NAME_TYPES = {"firstname": _AX_FIRST, "fullname": _AX_FULL, "lastname": _AX_LAST}
# The verification answer is "key:value" lines; is_valid may be on any line.
_IS_VALID = re.compile(r"^is_valid:true$", re.MULTILINE)


class OpenIdMixin:
    """OpenID 2.0 login with Attribute Exchange (name, email, language, username).

    Class attributes:
        _OPENID_ENDPOINT: the provider's OpenID endpoint URL.
    """

    _OPENID_ENDPOINT: str

    def __init__(self) -> None:
        # OpenID 2.0 has been retired by the providers that spoke it.
        warnings.warn(
            # Tornado's words: programs filter deprecations by their text.
            "OpenIdMixin is deprecated and will be removed in Tornado 6.7",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__()

    def authenticate_redirect(
        self,
        callback_uri: Optional[str] = None,
        ax_attrs: list[str] = ["name", "email", "language", "username"],  # noqa: B006
    ) -> None:
        """Redirect the browser to the provider to log in.

        Args:
            callback_uri: where the provider sends the browser back (relative
                to the current URL); the current request URI by default.
            ax_attrs: the user attributes to ask for.
        """
        handler = _as_handler(self)
        args = self._openid_args(callback_uri or handler.request.uri or "/", ax_attrs=ax_attrs)
        handler.redirect(self._OPENID_ENDPOINT + "?" + urllib.parse.urlencode(args))

    async def get_authenticated_user(
        self, http_client: Optional[AsyncHTTPClient] = None
    ) -> dict[str, Any]:
        """Check the provider's answer (this request's arguments) and return the user.

        The provider is asked to confirm the answer (``check_authentication``)
        before any attribute is trusted.

        Returns:
            A dict with whichever of ``name``, ``first_name``, ``last_name``,
            ``email``, ``locale``, ``username`` and ``claimed_id`` are known.

        Raises:
            AuthError: the provider did not confirm the answer.
        """
        handler = _as_handler(self)
        args = {name: values[-1] for name, values in handler.request.arguments.items()}
        args["openid.mode"] = b"check_authentication"
        client = http_client if http_client is not None else self.get_auth_http_client()
        response = await client.fetch(
            self._OPENID_ENDPOINT, method="POST", body=urllib.parse.urlencode(args)
        )
        return self._on_authentication_verified(response)

    def _openid_args(
        self,
        callback_uri: str,
        ax_attrs: Union[list[str], tuple[str, ...]] = (),
        oauth_scope: Optional[str] = None,
    ) -> dict[str, str]:
        handler = _as_handler(self)
        return_to = urllib.parse.urljoin(handler.request.full_url(), callback_uri)
        args = {
            "openid.ns": _OPENID_NS,
            "openid.claimed_id": _OPENID_SELECT,
            "openid.identity": _OPENID_SELECT,
            "openid.return_to": return_to,
            "openid.realm": urllib.parse.urljoin(return_to, "/"),
            "openid.mode": "checkid_setup",
        }
        if ax_attrs:
            args["openid.ns.ax"] = _AX_NS
            args["openid.ax.mode"] = "fetch_request"
            wanted = list(dict.fromkeys(ax_attrs))
            required: list[str] = []
            if "name" in wanted:
                for short, uri in _AX_NAME_TYPES.items():
                    args["openid.ax.type." + short] = uri
                    required.append(short)
            for short in wanted:
                if short == "name" or short in _AX_NAME_TYPES:
                    continue
                if short not in _AX_TYPES:
                    raise ValueError(
                        f"unknown OpenID attribute {short!r}; known: name, "
                        + ", ".join(sorted(_AX_TYPES))
                    )
                args["openid.ax.type." + short] = _AX_TYPES[short]
                required.append(short)
            args["openid.ax.required"] = ",".join(required)
        if oauth_scope:
            args["openid.ns.oauth"] = "http://specs.openid.net/extensions/oauth/1.0"
            args["openid.oauth.consumer"] = handler.request.host.split(":")[0]
            args["openid.oauth.scope"] = oauth_scope
        return args

    def _on_authentication_verified(self, response: HTTPResponse) -> dict[str, Any]:
        handler = _as_handler(self)
        body = escape.to_unicode(response.body or b"")
        if not _IS_VALID.search(body):
            raise AuthError(f"Invalid OpenID response: {body!r}")

        # The provider picks the alias of the attribute-exchange namespace.
        arguments = handler.request.arguments
        ax_alias = ""
        for name in arguments:
            if name.startswith("openid.ns.") and handler.get_argument(name) == _AX_NS:
                ax_alias = name[len("openid.ns.") :]
                break

        def ax_value(uri: str) -> str:
            if not ax_alias:
                return ""
            prefix = "openid." + ax_alias + ".type."
            for name in arguments:
                if name.startswith(prefix) and handler.get_argument(name) == uri:
                    value_name = "openid." + ax_alias + ".value." + name[len(prefix) :]
                    return handler.get_argument(value_name, "") or ""
            return ""

        email = ax_value(_AX_EMAIL)
        full_name = ax_value(_AX_FULL)
        first_name = ax_value(_AX_FIRST)
        last_name = ax_value(_AX_LAST)
        username = ax_value(_AX_FRIENDLY)
        locale = ax_value(_AX_LANGUAGE).lower()
        user: dict[str, Any] = {
            key: value
            for key, value in (("first_name", first_name), ("last_name", last_name))
            if value
        }
        if full_name:
            user["name"] = full_name
        elif first_name or last_name:
            user["name"] = " ".join(part for part in (first_name, last_name) if part)
        elif email:
            user["name"] = email.split("@")[0]
        user.update(
            (key, value)
            for key, value in (("email", email), ("locale", locale), ("username", username))
            if value
        )
        claimed_id = handler.get_argument("openid.claimed_id", None)
        if claimed_id:
            user["claimed_id"] = claimed_id
        return user

    def get_auth_http_client(self) -> AsyncHTTPClient:
        """The HTTP client used to talk to the provider (override to change it)."""
        return _default_http_client()
