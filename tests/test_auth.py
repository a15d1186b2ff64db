"""squall.auth against a fake provider that checks what a real one would check.

The provider side (``/p/...``) verifies OAuth 1 signatures with its own
RFC 5849 implementation, Facebook's appsecret_proof, and the form fields of
the OAuth 2 token exchange; the client side (``/c/...``) is a set of login
handlers built on the mixins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from typing import Any, Optional

import pytest

from squall.auth import (
    AuthError,
    FacebookGraphMixin,
    GoogleOAuth2Mixin,
    OAuth2Mixin,
    OAuthMixin,
    OpenIdMixin,
    TwitterMixin,
    _oauth10a_signature,
    _oauth_parse_response,
    _oauth_signature,
)
from squall.escape import json_decode, json_encode
from squall.httpclient import HTTPClientError
from squall.testing import AsyncHTTPTestCase, ExpectLog
from squall.web import Application, HTTPError, RequestHandler

pytestmark = pytest.mark.filterwarnings("ignore:OpenIdMixin is deprecated:DeprecationWarning")

CONSUMER = {"key": "ck", "secret": "c s&~"}
REQUEST_TOKEN = {"key": "rt-1", "secret": "rs/1"}
ACCESS_TOKEN = {"key": "at-1", "secret": "as+1"}
FB_SECRET = "fb-secret"

# -- an independent RFC 5849 verifier for the fake provider -------------------


def _pct(value: str) -> str:
    return urllib.parse.quote(value.encode("utf-8"), safe="-._~")


def _expected_signature(
    method: str, url: str, params: list[tuple[str, str]], token_secret: str, version: str
) -> str:
    parts = urllib.parse.urlsplit(url)
    base_uri = f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path}"
    pairs = sorted((_pct(k), _pct(v)) for k, v in params if k != "oauth_signature")
    normalized = "&".join(f"{k}={v}" for k, v in pairs)
    base = "&".join(_pct(p) for p in (method.upper(), base_uri, normalized))
    if version == "1.0a":
        key = _pct(CONSUMER["secret"]) + "&" + _pct(token_secret)
    else:
        key = CONSUMER["secret"] + "&" + token_secret
    digest = hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# The oauth_* arguments of a signed call, in the order Tornado writes them.
SIGNED_ARGS = [
    "oauth_consumer_key",
    "oauth_token",
    "oauth_signature_method",
    "oauth_timestamp",
    "oauth_nonce",
    "oauth_version",
    "oauth_signature",
]


class ProviderHandler(RequestHandler):
    """Checks the OAuth 1 signature of the request (query and form arguments)."""

    token_secret = ""
    version = "1.0a"

    def check_signature(self) -> None:
        params = [(k, v.decode()) for k, values in self.request.arguments.items() for v in values]
        url = f"{self.request.protocol}://{self.request.host}{self.request.path}"
        got = self.get_argument("oauth_signature")
        want = _expected_signature(
            self.request.method or "GET", url, params, self.token_secret, self.version
        )
        if got != want:
            raise HTTPError(401, "bad signature")
        assert self.get_argument("oauth_consumer_key") == CONSUMER["key"]
        assert self.get_argument("oauth_signature_method") == "HMAC-SHA1"
        assert self.get_argument("oauth_version") == "1.0"
        assert len(self.get_argument("oauth_nonce")) == 32
        assert self.get_argument("oauth_timestamp").isdigit()


class RequestTokenEndpoint(ProviderHandler):
    def initialize(self, version: str = "1.0a") -> None:
        self.version = version

    def get(self) -> None:
        self.check_signature()
        if self.version == "1.0a":
            self.application.settings["seen_callback"] = self.get_argument("oauth_callback", None)
            self.application.settings["seen_extra"] = self.get_argument("scope", None)
        else:
            assert "oauth_callback" not in self.request.arguments
        self.write("oauth_token=rt-1&oauth_token_secret=rs%2F1&oauth_callback_confirmed=true")


class AccessTokenEndpoint(ProviderHandler):
    token_secret = REQUEST_TOKEN["secret"]

    def initialize(self, version: str = "1.0a") -> None:
        self.version = version

    def get(self) -> None:
        self.check_signature()
        assert self.get_argument("oauth_token") == REQUEST_TOKEN["key"]
        self.application.settings["seen_verifier"] = self.get_argument("oauth_verifier", None)
        self.application.settings["access_query_names"] = [
            name for name, _ in urllib.parse.parse_qsl(self.request.query)
        ]
        self.write("oauth_token=at-1&oauth_token_secret=as%2B1&screen_name=ann")


class TwitterApi(ProviderHandler):
    token_secret = ACCESS_TOKEN["secret"]

    def get(self, path: str) -> None:
        self.check_signature()
        assert self.get_argument("oauth_token") == ACCESS_TOKEN["key"]
        if path == "account/verify_credentials":
            self.write({"screen_name": "ann", "name": "Ann"})
        elif path == "fail":
            raise HTTPError(403)
        else:
            self.write({"path": path, "q": self.get_argument("q", None)})

    def post(self, path: str) -> None:
        self.check_signature()
        self.write({"path": path, "status": self.get_argument("status")})


class OpenIdEndpoint(RequestHandler):
    def post(self) -> None:
        assert self.get_argument("openid.mode") == "check_authentication"
        self.application.settings["openid_checked"] = dict(
            (k, v[-1].decode()) for k, v in self.request.body_arguments.items()
        )
        if self.get_argument("openid.sig", "") == "forged":
            self.write("ns:http://specs.openid.net/auth/2.0\nis_valid:false\n")
        else:
            self.write("ns:http://specs.openid.net/auth/2.0\nis_valid:true\n")


class OAuth2TokenEndpoint(RequestHandler):
    def post(self) -> None:
        assert self.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        self.application.settings["seen_token_form"] = {
            k: self.get_body_argument(k) for k in self.request.body_arguments
        }
        self.write({"access_token": "g-token", "expires_in": 3599})


class FacebookTokenEndpoint(RequestHandler):
    def get(self) -> None:
        assert self.get_argument("client_secret") == FB_SECRET
        if self.get_argument("code") == "no-token":
            self.write({"error": "nope"})
        else:
            self.write({"access_token": "fb-token", "expires_in": 5000})


class FacebookGraph(RequestHandler):
    def get(self, path: str) -> None:
        token = self.get_argument("access_token")
        proof = hmac.new(FB_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
        assert self.get_argument("appsecret_proof") == proof
        fields = self.get_argument("fields").split(",")
        self.application.settings["seen_fields"] = fields
        user = {"id": "7", "name": "Fay", "locale": "en_GB", "extra": "x"}
        self.write({k: v for k, v in user.items() if k in fields})

    def post(self, path: str) -> None:
        self.write({"posted": self.get_body_argument("message"), "path": path})


class EchoJson(RequestHandler):
    def get(self) -> None:
        self.write({k: self.get_argument(k) for k in self.request.arguments})

    def post(self) -> None:
        self.write({k: self.get_body_argument(k) for k in self.request.body_arguments})


# -- client handlers ---------------------------------------------------------


class ClientBase(RequestHandler):
    def initialize(self, test: AsyncHTTPTestCase) -> None:
        self.test = test


class OpenIdLogin(ClientBase, OpenIdMixin):
    def initialize(self, test: AsyncHTTPTestCase, attrs: Optional[list[str]] = None) -> None:
        super().initialize(test)
        self._OPENID_ENDPOINT = test.get_url("/p/openid")
        self.attrs = attrs

    async def get(self) -> None:
        if self.get_argument("openid.mode", None):
            try:
                user = await self.get_authenticated_user(http_client=self.test.http_client)
            except AuthError as exc:
                self.set_status(403)
                self.finish(str(exc))
                return
            self.finish(user)
            return
        if self.attrs is None:
            self.authenticate_redirect()
        else:
            self.authenticate_redirect(callback_uri="/back", ax_attrs=self.attrs)


class OAuth1Login(ClientBase, OAuthMixin):
    def initialize(  # type: ignore[override]
        self, test: AsyncHTTPTestCase, version: str, callback: Optional[str] = None
    ) -> None:
        super().initialize(test)
        self._OAUTH_VERSION = version
        self._OAUTH_REQUEST_TOKEN_URL = test.get_url(f"/p/oauth1/{version}/request_token")
        self._OAUTH_ACCESS_TOKEN_URL = test.get_url(f"/p/oauth1/{version}/access_token")
        self._OAUTH_AUTHORIZE_URL = "https://provider.example/authorize"
        self.callback = callback

    def get_auth_http_client(self) -> Any:
        return self.test.http_client

    def _oauth_consumer_token(self) -> dict[str, Any]:
        return dict(CONSUMER)

    async def _oauth_get_user_future(self, access_token: dict[str, Any]) -> dict[str, Any]:
        if self.get_argument("no_user", None):
            return {}
        return {"who": "ann", "token_key": access_token["key"]}

    async def get(self) -> None:
        if self.get_argument("oauth_token", None):
            try:
                user = await self.get_authenticated_user()
            except AuthError as exc:
                self.set_status(403)
                self.finish(str(exc))
                return
            self.finish(user)
            return
        extra = {"scope": "photos"} if self.get_argument("extra", None) else None
        await self.authorize_redirect(callback_uri=self.callback, extra_params=extra)


class OAuth1Params(RequestHandler, OAuthMixin):
    def _oauth_consumer_token(self) -> dict[str, Any]:
        return dict(CONSUMER)

    def get(self) -> None:
        self.write(
            self._oauth_request_parameters(
                "http://api.example/x", dict(ACCESS_TOKEN), {"a": "1"}, method="POST"
            )
        )


class NoCallbackLogin(OAuth1Login):
    _OAUTH_NO_CALLBACKS = True


class OAuth2Login(ClientBase, OAuth2Mixin):
    _OAUTH_AUTHORIZE_URL = "https://provider.example/o2/auth?tenant=t1"

    def get_auth_http_client(self) -> Any:
        return self.test.http_client

    async def get(self) -> None:
        if self.get_argument("call", None) == "get":
            self.write(
                await self.oauth2_request(
                    self.test.get_url("/p/echo"), access_token="tok", extra="e"
                )
            )
        elif self.get_argument("call", None) == "post":
            self.write(
                await self.oauth2_request(self.test.get_url("/p/echo"), post_args={"message": "hi"})
            )
        else:
            self.authorize_redirect(
                redirect_uri="https://app.example/cb",
                client_id="cid",
                client_secret="never-sent",
                scope=["read", "write"],
                extra_params={"prompt": "consent"},
            )


class GoogleLogin(ClientBase, GoogleOAuth2Mixin):
    def initialize(self, test: AsyncHTTPTestCase) -> None:
        super().initialize(test)
        self._OAUTH_ACCESS_TOKEN_URL = test.get_url("/p/google/token")

    def get_auth_http_client(self) -> Any:
        return self.test.http_client

    async def get(self) -> None:
        if self.get_argument("explicit", None):
            token = await self.get_authenticated_user(
                "https://app.example/cb", "the-code", client_id="id2", client_secret="s2"
            )
        else:
            token = await self.get_authenticated_user("https://app.example/cb", "the-code")
        self.write(token)


class FacebookLogin(ClientBase, FacebookGraphMixin):
    def initialize(self, test: AsyncHTTPTestCase) -> None:
        super().initialize(test)
        self._OAUTH_ACCESS_TOKEN_URL = test.get_url("/p/fb/token")
        self._FACEBOOK_BASE_URL = test.get_url("/p/fb/graph")

    def get_auth_http_client(self) -> Any:
        return self.test.http_client

    async def get(self) -> None:
        if self.get_argument("post", None):
            self.write(
                await self.facebook_request(
                    "/me/feed", access_token="fb-token", post_args={"message": "yo"}
                )
            )
            return
        try:
            user = await self.get_authenticated_user(
                redirect_uri="https://app.example/cb",
                client_id="fb-id",
                client_secret=FB_SECRET,
                code=self.get_argument("code"),
                extra_fields={"extra"},
            )
        except AuthError as exc:
            self.set_status(403)
            self.finish(str(exc))
            return
        self.write(json_encode(user))


class TwitterBase(ClientBase, TwitterMixin):
    def initialize(self, test: AsyncHTTPTestCase) -> None:
        super().initialize(test)
        self._OAUTH_REQUEST_TOKEN_URL = test.get_url("/p/oauth1/1.0a/request_token")
        self._OAUTH_ACCESS_TOKEN_URL = test.get_url("/p/oauth1/1.0a/access_token")
        self._TWITTER_BASE_URL = test.get_url("/p/twitter")

    def get_auth_http_client(self) -> Any:
        return self.test.http_client


class TwitterLogin(TwitterBase):
    async def get(self) -> None:
        if self.get_argument("oauth_token", None):
            self.finish(await self.get_authenticated_user())
        elif self.get_argument("authenticate", None):
            await self.authenticate_redirect()
        else:
            await self.authorize_redirect()


class TwitterCall(TwitterBase):
    async def get(self) -> None:
        how = self.get_argument("how")
        if how == "get":
            result = await self.twitter_request("/search", dict(ACCESS_TOKEN), q="a b")
        elif how == "post":
            result = await self.twitter_request(
                "/statuses/update", dict(ACCESS_TOKEN), post_args={"status": "hé!"}
            )
        elif how == "url":
            result = await self.twitter_request(
                self.test.get_url("/p/twitter/full.json"), dict(ACCESS_TOKEN)
            )
        else:
            try:
                await self.twitter_request("/fail", dict(ACCESS_TOKEN))
            except HTTPClientError as exc:
                result = {"error": exc.code}
        self.write(result)


COOKIE = "_oauth_request_token=" + "|".join(
    base64.b64encode(REQUEST_TOKEN[k].encode()).decode() for k in ("key", "secret")
)


class AuthTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        t = {"test": self}
        self.app = Application(
            [
                ("/c/openid", OpenIdLogin, t),
                ("/c/openid_email", OpenIdLogin, dict(test=self, attrs=["email"])),
                ("/c/oauth10", OAuth1Login, dict(test=self, version="1.0", callback="/cb")),
                ("/c/oauth10a", OAuth1Login, dict(test=self, version="1.0a", callback="/cb")),
                ("/c/oob", OAuth1Login, dict(test=self, version="1.0a", callback="oob")),
                ("/c/nocb", NoCallbackLogin, dict(test=self, version="1.0a", callback="/cb")),
                ("/c/params", OAuth1Params),
                ("/c/oauth2", OAuth2Login, t),
                ("/c/google", GoogleLogin, t),
                ("/c/facebook", FacebookLogin, t),
                ("/c/twitter", TwitterLogin, t),
                ("/c/twitter_call", TwitterCall, t),
                ("/p/openid", OpenIdEndpoint),
                ("/p/oauth1/1.0/request_token", RequestTokenEndpoint, {"version": "1.0"}),
                ("/p/oauth1/1.0a/request_token", RequestTokenEndpoint, {"version": "1.0a"}),
                ("/p/oauth1/1.0/access_token", AccessTokenEndpoint, {"version": "1.0"}),
                ("/p/oauth1/1.0a/access_token", AccessTokenEndpoint, {"version": "1.0a"}),
                (r"/p/twitter/(.*)\.json", TwitterApi),
                ("/p/google/token", OAuth2TokenEndpoint),
                ("/p/fb/token", FacebookTokenEndpoint),
                ("/p/fb/graph/(.*)", FacebookGraph),
                ("/p/echo", EchoJson),
            ],
            google_oauth={"key": "gid", "secret": "gsecret"},
            twitter_consumer_key=CONSUMER["key"],
            twitter_consumer_secret=CONSUMER["secret"],
        )
        return self.app

    def settings(self) -> dict[str, Any]:
        return self.app.settings

    # -- OpenID --

    def test_openid_redirect_asks_for_default_attributes(self) -> None:
        response = self.fetch("/c/openid?x=1", follow_redirects=False)
        assert response.code == 302
        location = urllib.parse.urlsplit(response.headers["Location"])
        assert location.path == "/p/openid"
        args = dict(urllib.parse.parse_qsl(location.query))
        assert args["openid.mode"] == "checkid_setup"
        assert args["openid.return_to"] == self.get_url("/c/openid?x=1")
        assert args["openid.realm"] == self.get_url("/")
        assert args["openid.ns.ax"] == "http://openid.net/srv/ax/1.0"
        assert set(args["openid.ax.required"].split(",")) == {
            "firstname",
            "fullname",
            "lastname",
            "email",
            "language",
            "username",
        }
        assert args["openid.ax.type.email"] == "http://axschema.org/contact/email"

    def test_openid_redirect_with_callback_and_fewer_attributes(self) -> None:
        response = self.fetch("/c/openid_email", follow_redirects=False)
        args = dict(
            urllib.parse.parse_qsl(urllib.parse.urlsplit(response.headers["Location"]).query)
        )
        assert args["openid.return_to"] == self.get_url("/back")
        assert args["openid.ax.required"] == "email"
        assert "openid.ax.type.fullname" not in args

    def _openid_answer(self, **ax: str) -> str:
        query = {"openid.mode": "id_res", "openid.ns.ext1": "http://openid.net/srv/ax/1.0"}
        uris = {
            "email": "http://axschema.org/contact/email",
            "first": "http://axschema.org/namePerson/first",
            "last": "http://axschema.org/namePerson/last",
            "full": "http://axschema.org/namePerson",
            "nick": "http://axschema.org/namePerson/friendly",
            "lang": "http://axschema.org/pref/language",
        }
        for i, (key, value) in enumerate(ax.items()):
            query[f"openid.ext1.type.a{i}"] = uris[key]
            query[f"openid.ext1.value.a{i}"] = value
        return "/c/openid?" + urllib.parse.urlencode(query)

    def test_openid_user_from_attributes_with_any_alias(self) -> None:
        url = self._openid_answer(
            email="ann@example.com", first="Ann", last="Lee", nick="annl", lang="EN-gb"
        )
        response = self.fetch(url + "&openid.claimed_id=https%3A%2F%2Fid.example%2Fann")
        assert json_decode(response.body) == {
            "first_name": "Ann",
            "last_name": "Lee",
            "name": "Ann Lee",
            "email": "ann@example.com",
            "locale": "en-gb",
            "username": "annl",
            "claimed_id": "https://id.example/ann",
        }
        checked = self.settings()["openid_checked"]
        assert checked["openid.mode"] == "check_authentication"
        assert checked["openid.ext1.value.a0"] == "ann@example.com"

    def test_openid_name_falls_back_to_full_name_then_email(self) -> None:
        user = json_decode(self.fetch(self._openid_answer(full="Ann Lee", first="A")).body)
        assert user["name"] == "Ann Lee"
        user = json_decode(self.fetch(self._openid_answer(email="bob@example.com")).body)
        assert user == {"name": "bob", "email": "bob@example.com"}

    def test_openid_without_attribute_exchange(self) -> None:
        response = self.fetch("/c/openid?openid.mode=id_res")
        assert json_decode(response.body) == {}

    def test_openid_rejected_by_provider(self) -> None:
        response = self.fetch(self._openid_answer(email="x@y") + "&openid.sig=forged")
        assert response.code == 403
        assert b"Invalid OpenID response" in response.body

    def test_openid_unknown_attribute(self) -> None:
        class Bare(OpenIdMixin):
            pass

        handler: Any = Bare()
        handler.request = type("R", (), {"full_url": lambda self: "http://h/x"})()
        with pytest.raises(ValueError, match="unknown OpenID attribute 'shoe_size'"):
            handler._openid_args("/cb", ax_attrs=["shoe_size"])

    # -- OAuth 1 --

    def _check_redirect(self, path: str, authorize: str) -> dict[str, str]:
        response = self.fetch(path, follow_redirects=False)
        assert response.code == 302, response.body
        location = urllib.parse.urlsplit(response.headers["Location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == authorize
        assert COOKIE in response.headers["Set-Cookie"].replace('"', "")
        return dict(urllib.parse.parse_qsl(location.query))

    def test_oauth10a_redirect_signs_and_sends_callback(self) -> None:
        args = self._check_redirect("/c/oauth10a?extra=1", "https://provider.example/authorize")
        assert args == {"oauth_token": "rt-1", "oauth_callback": self.get_url("/cb")}
        assert self.settings()["seen_callback"] == self.get_url("/cb")
        assert self.settings()["seen_extra"] == "photos"

    def test_oauth10_redirect_uses_plain_key(self) -> None:
        args = self._check_redirect("/c/oauth10", "https://provider.example/authorize")
        assert args["oauth_token"] == "rt-1"

    def test_oauth_oob_writes_the_url(self) -> None:
        response = self.fetch("/c/oob")
        assert response.code == 200
        assert response.body == b"https://provider.example/authorize?oauth_token=rt-1"
        assert self.settings()["seen_callback"] == "oob"

    def test_oauth_no_callbacks_provider(self) -> None:
        with ExpectLog("squall.application", "Uncaught exception"):
            response = self.fetch("/c/nocb")
        assert response.code == 500

    def test_oauth10a_get_user_with_verifier(self) -> None:
        response = self.fetch(
            "/c/oauth10a?oauth_token=rt-1&oauth_verifier=v123", headers={"Cookie": COOKIE}
        )
        assert response.code == 200, response.body
        assert json_decode(response.body) == {
            "who": "ann",
            "token_key": "at-1",
            "access_token": {"key": "at-1", "secret": "as+1", "screen_name": "ann"},
        }
        assert self.settings()["seen_verifier"] == "v123"
        # Tornado's order, which tests that mock the provider compare.
        assert self.settings()["access_query_names"] == [
            *SIGNED_ARGS[:-1],
            "oauth_verifier",
            "oauth_signature",
        ]
        assert "_oauth_request_token=;" in response.headers["Set-Cookie"].replace('""', "")

    def test_oauth10_get_user(self) -> None:
        response = self.fetch("/c/oauth10?oauth_token=rt-1", headers={"Cookie": COOKIE})
        assert json_decode(response.body)["access_token"]["key"] == "at-1"
        assert self.settings()["seen_verifier"] is None

    def test_oauth_get_user_errors(self) -> None:
        response = self.fetch("/c/oauth10a?oauth_token=rt-1")
        assert (response.code, response.body) == (403, b"Missing OAuth request token cookie")
        response = self.fetch("/c/oauth10a?oauth_token=other", headers={"Cookie": COOKIE})
        assert (response.code, response.body) == (403, b"Request token does not match cookie")
        response = self.fetch(
            "/c/oauth10a?oauth_token=rt-1", headers={"Cookie": "_oauth_request_token=abc"}
        )
        assert response.code == 403
        assert response.body.startswith(b"Malformed OAuth request token cookie")
        response = self.fetch("/c/oauth10a?oauth_token=rt-1&no_user=1", headers={"Cookie": COOKIE})
        assert (response.code, response.body) == (403, b"Error getting user")

    def test_oauth_request_parameters(self) -> None:
        params = json_decode(self.fetch("/c/params").body)
        # In Tornado's order: a program that builds the query from them
        # sends the URL a test mocking the provider expects.
        assert list(params) == SIGNED_ARGS
        signed = [(k, v) for k, v in params.items()] + [("a", "1")]
        assert params["oauth_signature"] == _expected_signature(
            "POST", "http://api.example/x", signed, ACCESS_TOKEN["secret"], "1.0a"
        )

    # -- OAuth 2 and providers --

    def test_oauth2_authorize_redirect(self) -> None:
        response = self.fetch("/c/oauth2", follow_redirects=False)
        assert response.code == 302
        location = urllib.parse.urlsplit(response.headers["Location"])
        assert location.netloc == "provider.example"
        assert dict(urllib.parse.parse_qsl(location.query)) == {
            "tenant": "t1",
            "response_type": "code",
            "redirect_uri": "https://app.example/cb",
            "client_id": "cid",
            "scope": "read write",
            "prompt": "consent",
        }

    def test_oauth2_request_get_and_post(self) -> None:
        assert json_decode(self.fetch("/c/oauth2?call=get").body) == {
            "access_token": "tok",
            "extra": "e",
        }
        assert json_decode(self.fetch("/c/oauth2?call=post").body) == {"message": "hi"}

    def test_google_token_exchange_uses_settings(self) -> None:
        response = self.fetch("/c/google")
        assert json_decode(response.body) == {"access_token": "g-token", "expires_in": 3599}
        assert self.settings()["seen_token_form"] == {
            "redirect_uri": "https://app.example/cb",
            "code": "the-code",
            "client_id": "gid",
            "client_secret": "gsecret",
            "grant_type": "authorization_code",
        }
        self.fetch("/c/google?explicit=1")
        form = self.settings()["seen_token_form"]
        assert (form["client_id"], form["client_secret"]) == ("id2", "s2")

    def test_facebook_login_with_proof_and_fields(self) -> None:
        response = self.fetch("/c/facebook?code=c1")
        assert response.code == 200, response.body
        user = json_decode(response.body)
        assert user["name"] == "Fay" and user["extra"] == "x" and user["link"] is None
        assert user["access_token"] == "fb-token"
        assert user["session_expires"] == "5000"
        assert set(self.settings()["seen_fields"]) == {
            "id",
            "name",
            "first_name",
            "last_name",
            "locale",
            "picture",
            "link",
            "extra",
        }

    def test_facebook_without_access_token(self) -> None:
        response = self.fetch("/c/facebook?code=no-token")
        assert response.code == 403
        assert b"Facebook returned no access token" in response.body

    def test_facebook_request_post(self) -> None:
        response = self.fetch("/c/facebook?post=1")
        assert json_decode(response.body) == {"posted": "yo", "path": "me/feed"}

    # -- Twitter --

    def test_twitter_redirects(self) -> None:
        self._check_redirect("/c/twitter", "https://api.twitter.com/oauth/authorize")
        self._check_redirect(
            "/c/twitter?authenticate=1", "https://api.twitter.com/oauth/authenticate"
        )

    def test_twitter_get_user(self) -> None:
        response = self.fetch("/c/twitter?oauth_token=rt-1", headers={"Cookie": COOKIE})
        assert json_decode(response.body) == {
            "screen_name": "ann",
            "name": "Ann",
            "username": "ann",
            "access_token": {"key": "at-1", "secret": "as+1", "screen_name": "ann"},
        }

    def test_twitter_request_get_post_and_url(self) -> None:
        assert json_decode(self.fetch("/c/twitter_call?how=get").body) == {
            "path": "search",
            "q": "a b",
        }
        assert json_decode(self.fetch("/c/twitter_call?how=post").body) == {
            "path": "statuses/update",
            "status": "hé!",
        }
        assert json_decode(self.fetch("/c/twitter_call?how=url").body)["path"] == "full"

    def test_twitter_request_http_error(self) -> None:
        with ExpectLog("squall.access", "403", required=False):
            response = self.fetch("/c/twitter_call?how=fail")
        assert json_decode(response.body) == {"error": 403}

    def test_twitter_needs_settings(self) -> None:
        class Bare(TwitterMixin):
            settings: dict[str, Any] = {}

            def require_setting(self, name: str, feature: str = "") -> None:
                raise Exception(f"You must define the '{name}' setting to use {feature}")

        with pytest.raises(Exception, match="twitter_consumer_key"):
            Bare()._oauth_consumer_token()


# -- signatures and parsing, no network ------------------------------------------


def test_rfc5849_example_signature() -> None:
    # RFC 5849 section 1.2: the signed request for vacation.jpg.
    params = {
        "file": "vacation.jpg",
        "size": "original",
        "oauth_consumer_key": "dpf43f3p2l4k3l03",
        "oauth_token": "nnch734d00sl2jdk",
        "oauth_signature_method": "HMAC-SHA1",
        "oauth_timestamp": "137131202",
        "oauth_nonce": "chapoH",
    }
    signature = _oauth10a_signature(
        {"key": "dpf43f3p2l4k3l03", "secret": "kd94hf93k423kf44"},
        "GET",
        "http://photos.example.net/photos",
        params,
        {"key": "nnch734d00sl2jdk", "secret": "pfkkdhi9sl3r4s00"},
    )
    assert signature == b"MdpQcU8iPSUjWoN/UDMsK2sui9I="


def test_oauth10_signature_does_not_encode_secrets() -> None:
    consumer = {"key": "k", "secret": "a&b"}
    url = "HTTP://Host.Example/p?ignored=1"
    plain = _oauth_signature(consumer, "get", url, {"x": "1"})
    # Base string URI: lower-case scheme and host, no query (RFC 5849 3.4.1.2).
    assert plain.decode() == _expected_signature_with_key("a&b&", "GET", "http://host.example/p")
    encoded = _oauth10a_signature(consumer, "get", url, {"x": "1"})
    assert encoded.decode() == _expected_signature_with_key(
        "a%26b&", "GET", "http://host.example/p"
    )


def _expected_signature_with_key(key: str, method: str, url: str) -> str:
    base = "&".join(_pct(p) for p in (method, url, "x=1"))
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha1).digest()).decode()


def test_parse_token_response() -> None:
    token = _oauth_parse_response(b"oauth_token=a&oauth_token_secret=b&user_id=9")
    assert token == {"key": "a", "secret": "b", "user_id": "9"}
    with pytest.raises(AuthError, match="no oauth_token_secret"):
        _oauth_parse_response(b"oauth_token=a")


def test_defaults_and_abstract_methods() -> None:
    from squall.httpclient import AsyncHTTPClient

    async def check() -> None:
        for mixin in (OpenIdMixin(), OAuthMixin(), OAuth2Mixin()):
            assert isinstance(mixin.get_auth_http_client(), AsyncHTTPClient)
        with pytest.raises(NotImplementedError):
            OAuthMixin()._oauth_consumer_token()
        with pytest.raises(NotImplementedError):
            await OAuthMixin()._oauth_get_user_future({})

    import asyncio

    asyncio.run(check())


def test_openid_oauth_scope_and_google_settings() -> None:
    class Bare(OpenIdMixin):
        pass

    handler: Any = Bare()
    handler.request = type("R", (), {"full_url": lambda self: "http://h:8/x", "host": "h:8"})()
    args = handler._openid_args("/cb", ax_attrs=[], oauth_scope="calendar")
    assert args["openid.oauth.consumer"] == "h"
    assert args["openid.oauth.scope"] == "calendar"
    assert "openid.ns.ax" not in args

    class NoSettings(GoogleOAuth2Mixin):
        settings: dict[str, Any] = {}

    with pytest.raises(KeyError, match="'google_oauth' application setting must be a dict"):
        NoSettings().get_google_oauth_settings()


def test_openid_mixin_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="OpenIdMixin is deprecated"):
        OpenIdMixin()
