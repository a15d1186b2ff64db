"""Third-party login: OpenID 2.0, OAuth 1.0/1.0a, OAuth 2 (Tornado's ``tornado.auth``).

Every class here is a mixin for a `~squall.web.RequestHandler`. A login
handler sends the browser to the provider (``authorize_redirect`` or
``authenticate_redirect``) and, when the provider sends it back, turns the
answer into a user dict (``get_authenticated_user``). Other handlers call the
provider's API with the stored access token (``oauth2_request``,
``facebook_request``, ``twitter_request``). All network calls go through
`get_auth_http_client`, a `~squall.httpclient.AsyncHTTPClient` unless
overridden.

Providers are configured by class attributes (``_OAUTH_AUTHORIZE_URL`` and
friends), named with a leading underscore as in Tornado, so that a subclass
can point a mixin at another provider (or at a fake one in tests).

Errors: `AuthError` for a provider answer that cannot be trusted or parsed;
HTTP failures of the provider propagate as
`~squall.httpclient.HTTPClientError`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
import urllib.parse
import uuid
import warnings
from collections.abc import Iterable
from typing import Any, Optional, Union, cast

from squall import escape
from squall.httpclient import AsyncHTTPClient, HTTPResponse
from squall.httputil import url_concat
from squall.web import RequestHandler

__all__ = [
    "AuthError",
    "FacebookGraphMixin",
    "GoogleOAuth2Mixin",
    "OAuth2Mixin",
    "OAuthMixin",
    "OpenIdMixin",
    "TwitterMixin",
]

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


class AuthError(Exception):
    """The provider's answer was missing, inconsistent or not valid."""


def _as_handler(mixin: object) -> RequestHandler:
    # The mixins only work combined with a RequestHandler; saying so once
    # keeps the type checker informed without repeating casts everywhere.
    return cast(RequestHandler, mixin)


def _default_http_client() -> AsyncHTTPClient:
    return AsyncHTTPClient()


class OpenIdMixin:
    """OpenID 2.0 login with Attribute Exchange (name, email, language, username).

    Class attributes:
        _OPENID_ENDPOINT: the provider's OpenID endpoint URL.
    """

    _OPENID_ENDPOINT: str

    def __init__(self) -> None:
        # OpenID 2.0 has been retired by the providers that spoke it.
        warnings.warn(
            "OpenIdMixin is deprecated: OpenID 2.0 is obsolete; use OAuth2Mixin "
            "(or an OpenID Connect provider) instead",
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
        user: dict[str, Any] = {}
        if first_name:
            user["first_name"] = first_name
        if last_name:
            user["last_name"] = last_name
        if full_name:
            user["name"] = full_name
        elif first_name or last_name:
            user["name"] = " ".join(part for part in (first_name, last_name) if part)
        elif email:
            user["name"] = email.split("@")[0]
        if email:
            user["email"] = email
        if locale:
            user["locale"] = locale
        if username:
            user["username"] = username
        claimed_id = handler.get_argument("openid.claimed_id", None)
        if claimed_id:
            user["claimed_id"] = claimed_id
        return user

    def get_auth_http_client(self) -> AsyncHTTPClient:
        """The HTTP client used to talk to the provider (override to change it)."""
        return _default_http_client()


def _oauth_escape(value: Union[str, bytes]) -> str:
    # RFC 5849 section 3.6: percent-encode everything but the unreserved set.
    return urllib.parse.quote(escape.utf8(value), safe="~")


def _signature_base_string(method: str, url: str, parameters: dict[str, Any]) -> str:
    # RFC 5849 section 3.4.1: method, base string URI (lower-case scheme and
    # host, no query or fragment) and the normalized parameters, each
    # percent-encoded and joined by "&".
    parts = urllib.parse.urlsplit(url)
    base_uri = parts.scheme.lower() + "://" + parts.netloc.lower() + parts.path
    pairs = sorted((_oauth_escape(str(k)), _oauth_escape(str(v))) for k, v in parameters.items())
    normalized = "&".join(k + "=" + v for k, v in pairs)
    return "&".join(_oauth_escape(part) for part in (method.upper(), base_uri, normalized))


def _hmac_sha1(key: bytes, base_string: str) -> bytes:
    digest = hmac.new(key, escape.utf8(base_string), hashlib.sha1).digest()
    return base64.b64encode(digest)


def _oauth_signature(
    consumer_token: dict[str, Any],
    method: str,
    url: str,
    parameters: dict[str, Any] = {},  # noqa: B006
    token: Optional[dict[str, Any]] = None,
) -> bytes:
    """The OAuth 1.0 HMAC-SHA1 signature (secrets used as they are)."""
    key = (
        escape.utf8(consumer_token["secret"])
        + b"&"
        + escape.utf8(token["secret"] if token else b"")
    )
    return _hmac_sha1(key, _signature_base_string(method, url, parameters))


def _oauth10a_signature(
    consumer_token: dict[str, Any],
    method: str,
    url: str,
    parameters: dict[str, Any] = {},  # noqa: B006
    token: Optional[dict[str, Any]] = None,
) -> bytes:
    """The OAuth 1.0a (RFC 5849 section 3.4.2) HMAC-SHA1 signature."""
    # The key is the encoded consumer secret and encoded token secret.
    key = (
        _oauth_escape(consumer_token["secret"])
        + "&"
        + _oauth_escape(token["secret"] if token else b"")
    )
    return _hmac_sha1(escape.utf8(key), _signature_base_string(method, url, parameters))


def _oauth_parse_response(body: Optional[bytes]) -> dict[str, Any]:
    """A token from a form-encoded answer: ``key``, ``secret`` and any other fields."""
    fields = urllib.parse.parse_qs(escape.to_unicode(body or b""), keep_blank_values=False)
    try:
        token: dict[str, Any] = {
            "key": fields["oauth_token"][0],
            "secret": fields["oauth_token_secret"][0],
        }
    except KeyError as exc:
        raise AuthError(f"OAuth token response has no {exc.args[0]}: {body!r}") from None
    for name, values in fields.items():
        if name not in ("oauth_token", "oauth_token_secret"):
            token[name] = values[0]
    return token


def _nonce() -> str:
    return binascii.b2a_hex(uuid.uuid4().bytes).decode("ascii")


class OAuthMixin:
    """OAuth 1.0 and 1.0a (RFC 5849) with HMAC-SHA1 signatures.

    Subclasses set ``_OAUTH_REQUEST_TOKEN_URL``, ``_OAUTH_ACCESS_TOKEN_URL``,
    ``_OAUTH_AUTHORIZE_URL``, optionally ``_OAUTH_VERSION`` ("1.0a" by
    default, or "1.0") and ``_OAUTH_NO_CALLBACKS``, and implement
    `_oauth_consumer_token` and `_oauth_get_user_future`.
    """

    _OAUTH_REQUEST_TOKEN_URL: str
    _OAUTH_ACCESS_TOKEN_URL: str
    _OAUTH_AUTHORIZE_URL: str
    _OAUTH_VERSION = "1.0a"
    _OAUTH_NO_CALLBACKS = False

    async def authorize_redirect(
        self,
        callback_uri: Optional[str] = None,
        extra_params: Optional[dict[str, Any]] = None,
        http_client: Optional[AsyncHTTPClient] = None,
    ) -> None:
        """Get a request token and redirect the browser to authorize it.

        The request token is kept in the ``_oauth_request_token`` cookie for
        `get_authenticated_user`.

        Args:
            callback_uri: where the provider sends the browser back; "oob"
                writes the authorization URL as the response instead.
            extra_params: more arguments for the request-token call (1.0a).
            http_client: the client to use instead of `get_auth_http_client`.

        Raises:
            Exception: a callback URI given to a provider that takes none.
        """
        if callback_uri and self._OAUTH_NO_CALLBACKS:
            raise Exception("This service does not support oauth_callback")
        client = http_client if http_client is not None else self.get_auth_http_client()
        if self._OAUTH_VERSION == "1.0a":
            url = self._oauth_request_token_url(
                callback_uri=callback_uri, extra_params=extra_params
            )
        else:
            url = self._oauth_request_token_url()
        response = await client.fetch(url)
        self._on_request_token(self._OAUTH_AUTHORIZE_URL, callback_uri, response)

    async def get_authenticated_user(
        self, http_client: Optional[AsyncHTTPClient] = None
    ) -> dict[str, Any]:
        """Exchange the authorized request token for an access token; return the user.

        Returns:
            `_oauth_get_user_future`'s dict with ``access_token`` added.

        Raises:
            AuthError: the request-token cookie is missing or does not match,
                or no user came back.
        """
        handler = _as_handler(self)
        request_key = escape.utf8(handler.get_argument("oauth_token"))
        verifier = handler.get_argument("oauth_verifier", None)
        cookie = handler.get_cookie("_oauth_request_token")
        if not cookie:
            raise AuthError("Missing OAuth request token cookie")
        handler.clear_cookie("_oauth_request_token")
        try:
            key_b64, secret_b64 = cookie.split("|")
            cookie_key = base64.b64decode(escape.utf8(key_b64))
            cookie_secret = base64.b64decode(escape.utf8(secret_b64))
        except (ValueError, binascii.Error):
            raise AuthError(f"Malformed OAuth request token cookie: {cookie!r}") from None
        if cookie_key != request_key:
            raise AuthError("Request token does not match cookie")
        token: dict[str, Any] = {"key": cookie_key, "secret": cookie_secret}
        if verifier:
            token["verifier"] = verifier
        client = http_client if http_client is not None else self.get_auth_http_client()
        response = await client.fetch(self._oauth_access_token_url(token))
        access_token = _oauth_parse_response(response.body)
        user = await self._oauth_get_user_future(access_token)
        if not user:
            raise AuthError("Error getting user")
        user["access_token"] = access_token
        return user

    def _base_oauth_args(self, consumer_token: dict[str, Any]) -> dict[str, str]:
        return {
            "oauth_consumer_key": escape.to_unicode(consumer_token["key"]),
            "oauth_signature_method": "HMAC-SHA1",
            "oauth_timestamp": str(int(time.time())),
            "oauth_nonce": _nonce(),
            "oauth_version": "1.0",
        }

    def _sign(
        self,
        consumer_token: dict[str, Any],
        method: str,
        url: str,
        parameters: dict[str, Any],
        token: Optional[dict[str, Any]] = None,
    ) -> bytes:
        signer = _oauth10a_signature if self._OAUTH_VERSION == "1.0a" else _oauth_signature
        return signer(consumer_token, method, url, parameters, token)

    def _oauth_request_token_url(
        self,
        callback_uri: Optional[str] = None,
        extra_params: Optional[dict[str, Any]] = None,
    ) -> str:
        handler = _as_handler(self)
        consumer_token = self._oauth_consumer_token()
        url = self._OAUTH_REQUEST_TOKEN_URL
        args: dict[str, Any] = self._base_oauth_args(consumer_token)
        if self._OAUTH_VERSION == "1.0a":
            if callback_uri == "oob":
                args["oauth_callback"] = "oob"
            elif callback_uri:
                args["oauth_callback"] = urllib.parse.urljoin(
                    handler.request.full_url(), callback_uri
                )
            if extra_params:
                args.update(extra_params)
        args["oauth_signature"] = self._sign(consumer_token, "GET", url, args)
        return url + "?" + urllib.parse.urlencode(args)

    def _on_request_token(
        self, authorize_url: str, callback_uri: Optional[str], response: HTTPResponse
    ) -> None:
        handler = _as_handler(self)
        request_token = _oauth_parse_response(response.body)
        cookie = (
            base64.b64encode(escape.utf8(request_token["key"]))
            + b"|"
            + base64.b64encode(escape.utf8(request_token["secret"]))
        )
        handler.set_cookie("_oauth_request_token", cookie.decode("ascii"))
        args = {"oauth_token": request_token["key"]}
        if callback_uri == "oob":
            handler.finish(authorize_url + "?" + urllib.parse.urlencode(args))
            return
        if callback_uri:
            args["oauth_callback"] = urllib.parse.urljoin(handler.request.full_url(), callback_uri)
        handler.redirect(authorize_url + "?" + urllib.parse.urlencode(args))

    def _oauth_access_token_url(self, request_token: dict[str, Any]) -> str:
        consumer_token = self._oauth_consumer_token()
        url = self._OAUTH_ACCESS_TOKEN_URL
        args: dict[str, Any] = self._base_oauth_args(consumer_token)
        args["oauth_token"] = escape.to_unicode(request_token["key"])
        if "verifier" in request_token:
            args["oauth_verifier"] = request_token["verifier"]
        args["oauth_signature"] = self._sign(consumer_token, "GET", url, args, request_token)
        return url + "?" + urllib.parse.urlencode(args)

    def _oauth_consumer_token(self) -> dict[str, Any]:
        """The application's consumer token: a dict with ``key`` and ``secret``.

        Subclasses must implement it.
        """
        raise NotImplementedError()

    async def _oauth_get_user_future(self, access_token: dict[str, Any]) -> dict[str, Any]:
        """Fetch the user for ``access_token`` (subclasses must implement it).

        Returns:
            A dict describing the user, or a false value if there is none.
        """
        raise NotImplementedError()

    def _oauth_request_parameters(
        self,
        url: str,
        access_token: dict[str, Any],
        parameters: dict[str, Any] = {},  # noqa: B006
        method: str = "GET",
    ) -> dict[str, Any]:
        """The signed ``oauth_*`` arguments for a call to ``url`` with ``access_token``.

        Args:
            url: the URL of the call, without its query.
            access_token: a dict with ``key`` and ``secret``.
            parameters: the call's own query or form arguments (signed too).
            method: the HTTP method of the call.
        """
        consumer_token = self._oauth_consumer_token()
        oauth_args: dict[str, Any] = self._base_oauth_args(consumer_token)
        oauth_args["oauth_token"] = escape.to_unicode(access_token["key"])
        signed = dict(oauth_args)
        signed.update(parameters)
        signature = self._sign(consumer_token, method, url, signed, access_token)
        oauth_args["oauth_signature"] = escape.to_unicode(signature)
        return oauth_args

    def get_auth_http_client(self) -> AsyncHTTPClient:
        """The HTTP client used to talk to the provider (override to change it)."""
        return _default_http_client()


class OAuth2Mixin:
    """OAuth 2.0 authorization-code flow.

    Subclasses set ``_OAUTH_AUTHORIZE_URL`` and ``_OAUTH_ACCESS_TOKEN_URL``.
    """

    _OAUTH_AUTHORIZE_URL: str
    _OAUTH_ACCESS_TOKEN_URL: str

    def authorize_redirect(
        self,
        redirect_uri: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        extra_params: Optional[dict[str, Any]] = None,
        scope: Optional[list[str]] = None,
        response_type: str = "code",
    ) -> None:
        """Redirect the browser to the provider's authorization page.

        Args:
            redirect_uri: where the provider sends the browser back.
            client_id: the application's id at the provider.
            client_secret: ignored (never sent to the browser).
            extra_params: more query arguments for the provider.
            scope: the permissions asked for (joined by spaces).
            response_type: the OAuth 2 response type.
        """
        handler = _as_handler(self)
        args: dict[str, Any] = {"response_type": response_type}
        if redirect_uri is not None:
            args["redirect_uri"] = redirect_uri
        if client_id is not None:
            args["client_id"] = client_id
        if extra_params:
            args.update(extra_params)
        if scope:
            args["scope"] = " ".join(scope)
        handler.redirect(url_concat(self._OAUTH_AUTHORIZE_URL, args))

    def _oauth_request_token_url(
        self,
        redirect_uri: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        code: Optional[str] = None,
        extra_params: Optional[dict[str, Any]] = None,
    ) -> str:
        args: dict[str, Any] = {}
        for name, value in (
            ("redirect_uri", redirect_uri),
            ("code", code),
            ("client_id", client_id),
            ("client_secret", client_secret),
        ):
            if value is not None:
                args[name] = value
        if extra_params:
            args.update(extra_params)
        return url_concat(self._OAUTH_ACCESS_TOKEN_URL, args)

    async def oauth2_request(
        self,
        url: str,
        access_token: Optional[str] = None,
        post_args: Optional[dict[str, Any]] = None,
        **args: Any,
    ) -> Any:
        """Call an OAuth 2 API: GET (or POST with ``post_args``), JSON back.

        Args:
            url: the API URL.
            access_token: sent as the ``access_token`` query argument.
            post_args: form arguments; makes the call a POST.
            **args: more query arguments.

        Returns:
            The decoded JSON answer.
        """
        query: dict[str, Any] = {}
        if access_token:
            query["access_token"] = access_token
        query.update(args)
        if query:
            url += "?" + urllib.parse.urlencode(query)
        client = self.get_auth_http_client()
        if post_args is not None:
            response = await client.fetch(
                url, method="POST", body=urllib.parse.urlencode(post_args)
            )
        else:
            response = await client.fetch(url)
        return escape.json_decode(response.body)

    def get_auth_http_client(self) -> AsyncHTTPClient:
        """The HTTP client used to talk to the provider (override to change it)."""
        return _default_http_client()


class GoogleOAuth2Mixin(OAuth2Mixin):
    """Google login with OAuth 2.

    The application setting ``google_oauth`` is a dict with the client
    ``key`` and ``secret`` from the Google developer console.
    """

    _OAUTH_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
    _OAUTH_ACCESS_TOKEN_URL = "https://www.googleapis.com/oauth2/v4/token"
    _OAUTH_USERINFO_URL = "https://www.googleapis.com/oauth2/v1/userinfo"
    _OAUTH_NO_CALLBACKS = False
    _OAUTH_SETTINGS_KEY = "google_oauth"

    def get_google_oauth_settings(self) -> dict[str, Any]:
        """The ``google_oauth`` application setting (override to read it elsewhere)."""
        handler = _as_handler(self)
        settings = handler.settings.get(self._OAUTH_SETTINGS_KEY)
        if not isinstance(settings, dict):
            raise KeyError(
                f"the {self._OAUTH_SETTINGS_KEY!r} application setting must be a dict "
                "with 'key' and 'secret'"
            )
        return settings

    async def get_authenticated_user(
        self,
        redirect_uri: str,
        code: str,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
    ) -> dict[str, Any]:
        """Exchange the authorization ``code`` for tokens.

        Args:
            redirect_uri: the same redirect URI given to `authorize_redirect`.
            code: the ``code`` argument Google sent back.
            client_id: defaults to the setting's ``key``.
            client_secret: defaults to the setting's ``secret``.

        Returns:
            Google's token answer (``access_token``, ``expires_in``, ...);
            fetch the profile with `oauth2_request` and ``_OAUTH_USERINFO_URL``.
        """
        if client_id is None or client_secret is None:
            settings = self.get_google_oauth_settings()
            if client_id is None:
                client_id = settings["key"]
            if client_secret is None:
                client_secret = settings["secret"]
        body = urllib.parse.urlencode(
            {
                "redirect_uri": redirect_uri,
                "code": code,
                "client_id": client_id,
                "client_secret": client_secret,
                "grant_type": "authorization_code",
            }
        )
        response = await self.get_auth_http_client().fetch(
            self._OAUTH_ACCESS_TOKEN_URL,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            body=body,
        )
        return cast(dict[str, Any], escape.json_decode(response.body))


class FacebookGraphMixin(OAuth2Mixin):
    """Facebook login and Graph API calls."""

    _OAUTH_ACCESS_TOKEN_URL = "https://graph.facebook.com/oauth/access_token"
    _OAUTH_AUTHORIZE_URL = "https://www.facebook.com/dialog/oauth?"
    _OAUTH_NO_CALLBACKS = False
    _FACEBOOK_BASE_URL = "https://graph.facebook.com"

    async def get_authenticated_user(
        self,
        redirect_uri: str,
        client_id: str,
        client_secret: str,
        code: str,
        extra_fields: Optional[Iterable[str]] = None,
    ) -> Optional[dict[str, Any]]:
        """Exchange ``code`` for an access token and fetch the user's profile.

        Args:
            redirect_uri: the same redirect URI given to `authorize_redirect`.
            client_id: the application id.
            client_secret: the application secret.
            code: the ``code`` argument Facebook sent back.
            extra_fields: profile fields wanted beyond id, name, first_name,
                last_name, locale, picture and link.

        Returns:
            The fields, plus ``access_token`` and ``session_expires``; None if
            Facebook returned no profile.
        """
        client = self.get_auth_http_client()
        response = await client.fetch(
            self._oauth_request_token_url(
                redirect_uri=redirect_uri,
                client_id=client_id,
                client_secret=client_secret,
                code=code,
            )
        )
        answer = escape.json_decode(response.body)
        access_token = answer.get("access_token")
        if not access_token:
            raise AuthError(f"Facebook returned no access token: {response.body!r}")
        fields = {"id", "name", "first_name", "last_name", "locale", "picture", "link"}
        if extra_fields:
            fields.update(extra_fields)
        # Graph API calls made with a secret-derived proof cannot be replayed
        # with a stolen token alone.
        proof = hmac.new(
            escape.utf8(client_secret), escape.utf8(access_token), hashlib.sha256
        ).hexdigest()
        user = await self.facebook_request(
            path="/me",
            access_token=access_token,
            appsecret_proof=proof,
            fields=",".join(sorted(fields)),
        )
        if user is None:
            return None
        result: dict[str, Any] = {field: user.get(field) for field in fields}
        result["access_token"] = access_token
        result["session_expires"] = str(answer.get("expires_in"))
        return result

    async def facebook_request(
        self,
        path: str,
        access_token: Optional[str] = None,
        post_args: Optional[dict[str, Any]] = None,
        **args: Any,
    ) -> Any:
        """Call the Graph API at ``path`` (e.g. ``"/me/feed"``).

        Args:
            path: the API path, appended to ``_FACEBOOK_BASE_URL``.
            access_token: the user's access token.
            post_args: form arguments; makes the call a POST.
            **args: query arguments.

        Returns:
            The decoded JSON answer.
        """
        url = self._FACEBOOK_BASE_URL + path
        return await self.oauth2_request(
            url, access_token=access_token, post_args=post_args, **args
        )


class TwitterMixin(OAuthMixin):
    """Twitter login (OAuth 1.0a) and API calls.

    Needs the application settings ``twitter_consumer_key`` and
    ``twitter_consumer_secret``.
    """

    _OAUTH_REQUEST_TOKEN_URL = "https://api.twitter.com/oauth/request_token"
    _OAUTH_ACCESS_TOKEN_URL = "https://api.twitter.com/oauth/access_token"
    _OAUTH_AUTHORIZE_URL = "https://api.twitter.com/oauth/authorize"
    _OAUTH_AUTHENTICATE_URL = "https://api.twitter.com/oauth/authenticate"
    _OAUTH_NO_CALLBACKS = False
    _TWITTER_BASE_URL = "https://api.twitter.com/1.1"

    async def authenticate_redirect(self, callback_uri: Optional[str] = None) -> None:
        """Like `authorize_redirect`, but skips the prompt for users who already allowed the app.

        Args:
            callback_uri: where Twitter sends the browser back.
        """
        response = await self.get_auth_http_client().fetch(
            self._oauth_request_token_url(callback_uri=callback_uri)
        )
        self._on_request_token(self._OAUTH_AUTHENTICATE_URL, None, response)

    async def twitter_request(
        self,
        path: str,
        access_token: dict[str, Any],
        post_args: Optional[dict[str, Any]] = None,
        **args: Any,
    ) -> Any:
        """Call the Twitter API, signed with ``access_token``.

        Args:
            path: an API path such as ``"/statuses/update"`` (``.json`` is
                appended), or a full ``http(s)://`` URL used as it is.
            access_token: a dict with ``key`` and ``secret``.
            post_args: form arguments; makes the call a POST.
            **args: query arguments.

        Returns:
            The decoded JSON answer.
        """
        if path.startswith(("http:", "https:")):
            url = path
        else:
            url = self._TWITTER_BASE_URL + path + ".json"
        if access_token:
            signed: dict[str, Any] = dict(args)
            signed.update(post_args or {})
            method = "POST" if post_args is not None else "GET"
            args.update(self._oauth_request_parameters(url, access_token, signed, method=method))
        if args:
            url += "?" + urllib.parse.urlencode(args)
        client = self.get_auth_http_client()
        if post_args is not None:
            response = await client.fetch(
                url, method="POST", body=urllib.parse.urlencode(post_args)
            )
        else:
            response = await client.fetch(url)
        return escape.json_decode(response.body)

    def _oauth_consumer_token(self) -> dict[str, Any]:
        handler = _as_handler(self)
        handler.require_setting("twitter_consumer_key", "Twitter OAuth")
        handler.require_setting("twitter_consumer_secret", "Twitter OAuth")
        return {
            "key": handler.settings["twitter_consumer_key"],
            "secret": handler.settings["twitter_consumer_secret"],
        }

    async def _oauth_get_user_future(self, access_token: dict[str, Any]) -> dict[str, Any]:
        user = await self.twitter_request("/account/verify_credentials", access_token=access_token)
        if user:
            user["username"] = user["screen_name"]
        return cast(dict[str, Any], user)
