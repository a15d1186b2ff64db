"""The web framework: `RequestHandler`, `Application` and their companions.

The public names of ``tornado.web``, gathered from the modules of this package:

* ``handler``: `RequestHandler`
* ``application``: `Application`
* ``errors``: `HTTPError`, `Finish`, `MissingArgumentError`
* ``decorators``: `stream_request_body`, `authenticated`, `removeslash`, `addslash`
* ``handlers``: `ErrorHandler`, `RedirectHandler`, `FallbackHandler`
* ``cookies``, ``signing``: cookies, signed values and XSRF protection
* ``rendering``, ``ui``: templates and UI modules
* ``static``: `StaticFileHandler`
* ``transforms``: `OutputTransform`, `GZipContentEncoding`
* ``eventsource``: `EventSourceHandler` (Server-Sent Events; Squall's own)

Routes are `squall.routing` objects; `~squall.routing.URLSpec` is re-exported and `url` is its alias.
"""

from __future__ import annotations

from squall.routing import URLSpec
from squall.web.application import Application, _ApplicationRouter, _HandlerDelegate
from squall.web.decorators import (
    _has_stream_request_body,
    addslash,
    authenticated,
    removeslash,
    stream_request_body,
)
from squall.web.errors import Finish, HTTPError, MissingArgumentError
from squall.web.eventsource import EventSourceHandler, EventStreamError
from squall.web.handler import _ARG_DEFAULT, RequestHandler
from squall.web.handlers import ErrorHandler, FallbackHandler, RedirectHandler
from squall.web.rendering import _UIModuleNamespace, is_absolute
from squall.web.signing import (  # re-exported, with the format versions
    DEFAULT_SIGNED_VALUE_MIN_VERSION,
    DEFAULT_SIGNED_VALUE_VERSION,
    MAX_SUPPORTED_SIGNED_VALUE_VERSION,
    MIN_SUPPORTED_SIGNED_VALUE_VERSION,
    _create_signature_v1,
    _create_signature_v2,
    create_signed_value,
    decode_signed_value,
    get_signature_key_version,
)
from squall.web.static import StaticFileHandler
from squall.web.transforms import GZipContentEncoding, OutputTransform
from squall.web.ui import TemplateModule, UIModule, _linkify, _xsrf_form_html

#: Shorthand for `~squall.routing.URLSpec` in handler lists: ``url(r"/", MainHandler, name="home")``.
url = URLSpec

for _obj in (
    Application,
    RequestHandler,
    HTTPError,
    Finish,
    MissingArgumentError,
    ErrorHandler,
    FallbackHandler,
    RedirectHandler,
    addslash,
    authenticated,
    removeslash,
    stream_request_body,
    create_signed_value,
    decode_signed_value,
    get_signature_key_version,
    is_absolute,
    StaticFileHandler,
    GZipContentEncoding,
    OutputTransform,
    TemplateModule,
    UIModule,
    EventSourceHandler,
    EventStreamError,
):
    _obj.__module__ = __name__
del _obj

__all__ = [
    "DEFAULT_SIGNED_VALUE_MIN_VERSION",
    "DEFAULT_SIGNED_VALUE_VERSION",
    "Application",
    "ErrorHandler",
    "EventSourceHandler",
    "EventStreamError",
    "FallbackHandler",
    "Finish",
    "GZipContentEncoding",
    "HTTPError",
    "MAX_SUPPORTED_SIGNED_VALUE_VERSION",
    "MIN_SUPPORTED_SIGNED_VALUE_VERSION",
    "MissingArgumentError",
    "OutputTransform",
    "RedirectHandler",
    "RequestHandler",
    "StaticFileHandler",
    "TemplateModule",
    "UIModule",
    "URLSpec",
    "addslash",
    "authenticated",
    "create_signed_value",
    "decode_signed_value",
    "get_signature_key_version",
    "is_absolute",
    "removeslash",
    "stream_request_body",
    "url",
]

_PRIVATE = (
    _ARG_DEFAULT,
    _ApplicationRouter,
    _HandlerDelegate,
    _UIModuleNamespace,
    _create_signature_v1,
    _create_signature_v2,
    _has_stream_request_body,
    _linkify,
    _xsrf_form_html,
)
