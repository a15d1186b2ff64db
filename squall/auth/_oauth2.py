"""OAuth 2: the authorization-code flow, Google and Facebook."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable
from typing import Any, Optional, cast

from squall import escape
from squall.auth._common import AuthError, _as_handler, _default_http_client, _fetch_json
from squall.httpclient import AsyncHTTPClient
from squall.httputil import url_concat


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
        return await _fetch_json(self.get_auth_http_client(), url, post_args)

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
            redirect_uri: the same redirect URI given to `~squall.auth.OAuthMixin.authorize_redirect`.
            code: the ``code`` argument Google sent back.
            client_id: defaults to the setting's ``key``.
            client_secret: defaults to the setting's ``secret``.

        Returns:
            Google's token answer (``access_token``, ``expires_in``, ...);
            fetch the profile with `~squall.auth.OAuth2Mixin.oauth2_request` and ``_OAUTH_USERINFO_URL``.
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
            redirect_uri: the same redirect URI given to `~squall.auth.OAuthMixin.authorize_redirect`.
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
