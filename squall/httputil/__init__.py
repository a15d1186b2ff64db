"""HTTP utilities shared by the server, the clients and the web framework.

The API of ``tornado.httputil``: `HTTPHeaders`, `HTTPServerRequest`, the
delegate interfaces (`HTTPServerConnectionDelegate`, `HTTPMessageDelegate`,
`HTTPConnection`) and helpers for start lines, forms, cookies, URLs and dates.

Errors: `HTTPInputError` for anything malformed that a peer sent,
`HTTPOutputError` for anything invalid we were asked to send.

Layout (all names are re-exported here):

* ``_headers``: the RFC 9110/9112 grammar (``_ABNF``), the errors, `HTTPHeaders`
* ``_forms``: urlencoded and multipart bodies, header parameters, cookies, limits
* ``_startline``: request and response start lines
* ``_urls``: `url_concat`, host and port, query arguments, credentials
* ``_fieldvalues``: `format_timestamp`, byte ranges
* ``_delegates``: the delegate interfaces
* ``_request``: `HTTPServerRequest` (compiled in the speedups build)
* ``_qs``: query strings to arguments (compiled in the speedups build)
* ``_drivers``: what the HTTP/1.1 drivers share (``HTTP1ConnectionParameters`` included)
* ``_webtransport``: whether a WebTransport session may be had, for both its owners
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from squall.httputil._fieldvalues import (
    _get_content_range,
    _int_or_none,
    _parse_request_range,
    format_timestamp,
)
from squall.httputil._forms import (
    HTTPFile,
    ParseBodyConfig,
    ParseMultipartConfig,
    ParseUrlEncodedConfig,
    _encode_header,
    _parse_header,
    _unquote_cookie,
    parse_body_arguments,
    parse_cookie,
    parse_multipart_form_data,
    set_parse_body_config,
)
from squall.httputil._headers import (
    _ABNF,
    HTTP_WHITESPACE,
    HTTPHeaders,
    HTTPInputError,
    HTTPOutputError,
    _normalize_header,
)
from squall.httputil._qs import _parse_qs_bytes
from squall.httputil._startline import (
    RequestStartLine,
    ResponseStartLine,
    parse_request_start_line,
    parse_response_start_line,
    responses,
)
from squall.httputil._urls import (
    encode_username_password,
    qs_to_qsl,
    split_host_and_port,
    url_concat,
)

if TYPE_CHECKING:
    import unittest

from squall.httputil._delegates import (
    HTTPConnection,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
)
from squall.httputil._request import HTTPServerRequest

HTTP_WHITESPACE = HTTP_WHITESPACE  # re-exported: public data of this module

# The limits used when a parser is not given a config; replace it with
# set_parse_body_config().
_DEFAULT_PARSE_BODY_CONFIG = ParseBodyConfig()


def doctests() -> unittest.TestSuite:
    """The examples in this package's docstrings, as a test suite."""
    import doctest
    import inspect
    import unittest

    from squall.httputil import (
        _delegates,
        _fieldvalues,
        _forms,
        _headers,
        _request,
        _startline,
        _urls,
    )

    class LocalFinder(doctest.DocTestFinder):
        # The public objects carry this package's name in __module__, which
        # the stock finder takes to mean "defined elsewhere"; judge by the
        # globals their code runs in instead.
        def _from_module(self, module: Any, obj: Any) -> bool:
            if inspect.isfunction(obj):
                return obj.__globals__ is module.__dict__
            if inspect.isclass(obj):
                return any(
                    inspect.isfunction(member) and member.__globals__ is module.__dict__
                    for member in vars(obj).values()
                )
            return bool(super()._from_module(module, obj))  # type: ignore[misc]

    suite = unittest.TestSuite()
    for module in (_headers, _forms, _startline, _urls, _fieldvalues, _delegates, _request):
        suite.addTests(doctest.DocTestSuite(module, test_finder=LocalFinder()))
    return suite


# Show the public path in reprs, pickles and documentation.
for _obj in (
    HTTPFile,
    ParseBodyConfig,
    ParseMultipartConfig,
    ParseUrlEncodedConfig,
    parse_body_arguments,
    parse_cookie,
    parse_multipart_form_data,
    set_parse_body_config,
    HTTPHeaders,
    HTTPInputError,
    HTTPOutputError,
    RequestStartLine,
    ResponseStartLine,
    encode_username_password,
    format_timestamp,
    parse_request_start_line,
    parse_response_start_line,
    qs_to_qsl,
    split_host_and_port,
    url_concat,
    HTTPConnection,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
):
    _obj.__module__ = __name__
del _obj

__all__ = [
    "HTTPConnection",
    "HTTPFile",
    "HTTPHeaders",
    "HTTPInputError",
    "HTTPMessageDelegate",
    "HTTPOutputError",
    "HTTPServerConnectionDelegate",
    "HTTPServerRequest",
    "HTTP_WHITESPACE",
    "ParseBodyConfig",
    "ParseMultipartConfig",
    "ParseUrlEncodedConfig",
    "RequestStartLine",
    "ResponseStartLine",
    "doctests",
    "encode_username_password",
    "format_timestamp",
    "parse_body_arguments",
    "parse_cookie",
    "parse_multipart_form_data",
    "parse_request_start_line",
    "parse_response_start_line",
    "qs_to_qsl",
    "responses",
    "set_parse_body_config",
    "split_host_and_port",
    "url_concat",
]

# Private helpers other Squall modules use.
_PRIVATE = (
    _ABNF,
    _encode_header,
    _get_content_range,
    _int_or_none,
    _normalize_header,
    _parse_header,
    _parse_qs_bytes,
    _parse_request_range,
    _unquote_cookie,
)
