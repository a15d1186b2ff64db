"""OAuth 1.0 and 1.0a (RFC 5849): signatures, the login flow, and Twitter."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import time
import urllib.parse
import uuid
from typing import Any, Optional, Union, cast

from squall import escape
from squall.auth._common import AuthError, _as_handler, _default_http_client, _fetch_json
from squall.httpclient import AsyncHTTPClient, HTTPResponse


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


def _signature(
    encode_secrets: bool,
    consumer_token: dict[str, Any],
    method: str,
    url: str,
    parameters: dict[str, Any] = {},  # noqa: B006
    token: Optional[dict[str, Any]] = None,
) -> bytes:
    """The HMAC-SHA1 signature: OAuth 1.0 takes the secrets as they are,
    1.0a (RFC 5849 section 3.4.2) percent-encodes them into the key."""
    secret = token["secret"] if token else b""
    if encode_secrets:
        key = escape.utf8(_oauth_escape(consumer_token["secret"]) + "&" + _oauth_escape(secret))
    else:
        key = escape.utf8(consumer_token["secret"]) + b"&" + escape.utf8(secret)
    return _hmac_sha1(key, _signature_base_string(method, url, parameters))


# (consumer_token, method, url, parameters={}, token=None) -> signature
_oauth_signature = functools.partial(_signature, False)
_oauth10a_signature = functools.partial(_signature, True)


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

    def _base_oauth_args(
        self, consumer_token: dict[str, Any], token: Optional[dict[str, Any]] = None
    ) -> dict[str, str]:
        # The order is the query's: the signature sorts the arguments, but
        # tests that mock the provider compare the URL Tornado builds.
        args = {"oauth_consumer_key": escape.to_unicode(consumer_token["key"])}
        if token is not None:
            args["oauth_token"] = escape.to_unicode(token["key"])
        return args | {
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
        args: dict[str, Any] = self._base_oauth_args(consumer_token, request_token)
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
        oauth_args: dict[str, Any] = self._base_oauth_args(consumer_token, access_token)
        signed = dict(oauth_args)
        signed.update(parameters)
        signature = self._sign(consumer_token, method, url, signed, access_token)
        oauth_args["oauth_signature"] = escape.to_unicode(signature)
        return oauth_args

    def get_auth_http_client(self) -> AsyncHTTPClient:
        """The HTTP client used to talk to the provider (override to change it)."""
        return _default_http_client()


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
        """Like `~squall.auth.OAuthMixin.authorize_redirect`, but skips the prompt for users who already allowed the app.

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
        return await _fetch_json(self.get_auth_http_client(), url, post_args)

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
