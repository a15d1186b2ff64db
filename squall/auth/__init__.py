"""Third-party login: OpenID 2.0, OAuth 1.0/1.0a, OAuth 2 (Tornado's ``tornado.auth``).

Every class here is a mixin for a `~squall.web.RequestHandler`. A login
handler sends the browser to the provider (``authorize_redirect`` or
``authenticate_redirect``) and, when the provider sends it back, turns the
answer into a user dict (``get_authenticated_user``). Other handlers call the
provider's API with the stored access token (``oauth2_request``,
``facebook_request``, ``twitter_request``). All network calls go through
``get_auth_http_client``, a `~squall.httpclient.AsyncHTTPClient` unless
overridden.

Providers are configured by class attributes (``_OAUTH_AUTHORIZE_URL`` and
friends), named with a leading underscore as in Tornado, so that a subclass
can point a mixin at another provider (or at a fake one in tests).

Errors: `AuthError` for a provider answer that cannot be trusted or parsed;
HTTP failures of the provider propagate as
`~squall.httpclient.HTTPClientError`.
"""

from squall.auth._common import AuthError
from squall.auth._oauth1 import (
    OAuthMixin,
    TwitterMixin,
    _oauth10a_signature,
    _oauth_escape,
    _oauth_parse_response,
    _oauth_signature,
)
from squall.auth._oauth2 import FacebookGraphMixin, GoogleOAuth2Mixin, OAuth2Mixin
from squall.auth._openid import OpenIdMixin

__all__ = [
    "AuthError",
    "FacebookGraphMixin",
    "GoogleOAuth2Mixin",
    "OAuth2Mixin",
    "OAuthMixin",
    "OpenIdMixin",
    "TwitterMixin",
]

for _cls in (
    AuthError,
    FacebookGraphMixin,
    GoogleOAuth2Mixin,
    OAuth2Mixin,
    OAuthMixin,
    OpenIdMixin,
    TwitterMixin,
):
    _cls.__module__ = __name__
del _cls

# Private helpers that tests and subclasses reach through squall.auth.
_PRIVATE = (_oauth10a_signature, _oauth_escape, _oauth_parse_response, _oauth_signature)
