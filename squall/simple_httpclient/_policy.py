"""The client policy: the decisions every HTTP client here makes the same way,
whatever protocol carries the request.

* Default fields: ``Host`` (the URL's authority unless the caller set one),
  ``User-Agent``, ``Accept-Encoding: gzip`` when decompressing,
  ``Content-Length`` and a form ``Content-Type`` for a POST, ``Authorization``
  from the URL's userinfo or ``auth_username``; checked for CR, LF and NUL.
* Redirects (RFC 9110 §15.4): which statuses are followed; 303 (but for a
  HEAD), and 301/302 after a POST, become a GET without a body; 307 and 308
  keep the method and the body. ``Host`` is always recomputed for the new URL.
* Credentials: a redirect to another origin (scheme, host and port; userinfo
  is not part of it, RFC 6454) drops ``Authorization``, ``Cookie`` and
  ``Proxy-Authorization`` (as urllib3 does since CVE-2024-37891) and the
  ``auth_username``/``auth_password`` options.
* Decompression: any coding `squall._content_coding` can decode is decoded,
  in bounded steps, and ``Content-Encoding`` becomes
  ``X-Consumed-Content-Encoding``.

`SimpleAsyncHTTPClient` (HTTP/1.1), `squall.h2client.H2AsyncHTTPClient` and,
for the defaults and checks libcurl leaves to it,
`squall.curl_httpclient.CurlAsyncHTTPClient` use it.
"""

from __future__ import annotations

import copy
import re
import urllib.parse
from typing import Any, Optional, cast

import squall
from squall import util
from squall._content_coding import Decoder, make_decoder
from squall.httpclient import HTTPRequest, _RequestProxy
from squall.httputil import HTTPHeaders
from squall.simple_httpclient._auth import basic_authorization

__all__ = [
    "CREDENTIAL_FIELDS",
    "DECOMPRESS_STEP",
    "REDIRECT_CODES",
    "USER_AGENT",
    "STANDARD_METHODS",
    "default_user_agent",
    "check_method_body",
    "follows_redirects",
    "location_reference",
    "options",
    "origin",
    "redirected",
    "request_fields",
    "take_decoder",
]

REDIRECT_CODES = frozenset((301, 302, 303, 307, 308))

# The library and its version, as Tornado's default names Tornado and its own.
USER_AGENT = "Squall/" + squall.version


def default_user_agent() -> str:
    """The User-Agent a request that names none is sent with.

    A program written for Tornado (run under squall.compat) sends Tornado's
    name and the version its ``tornado.version`` gives: such programs' tests
    compare it (Salt's webhook test expects f"Tornado/{tornado.version}"), as
    servers beside them may.
    """
    if util.running_as_tornado:
        # Tornado's version is kept by the compat layer, above this one.
        from squall._tornado_dist import TORNADO_VERSION

        return "Tornado/" + TORNADO_VERSION
    return USER_AGENT


# Fields that carry one origin's (or its proxy's) credentials: never sent on
# to another origin by a redirect.
CREDENTIAL_FIELDS = ("Authorization", "Cookie", "Proxy-Authorization")

# Fields that describe a body: gone with the body when a redirect turns the
# request into a GET.
_BODY_FIELDS = ("Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding")

# Decompressed output per step: bounds memory for a compression bomb.
DECOMPRESS_STEP = 64 * 1024

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BAD_VALUE_RE = re.compile(r"[\x00\r\n]")


def options(req: HTTPRequest) -> dict[str, Any]:
    """Every option of ``req``, with the client's defaults filled in.

    A copy of the request's attributes instead of a `_RequestProxy` lookup
    per use: the planning reads each option once from a dict.
    """
    if isinstance(req, _RequestProxy):
        opts = vars(req.request).copy()
        defaults = req.defaults
    else:
        opts = vars(req).copy()
        defaults = None
    opts["headers"] = opts.get("_headers")
    opts["body"] = opts.get("_body")
    if defaults:
        get = opts.get
        for name, value in defaults.items():
            if get(name) is None:
                opts[name] = value
    return opts


# Fields the client sets even when the caller gave them (request_fields's
# put): the request's own headers are given the value sent.
_SET_FIELDS = frozenset(
    ("Authorization", "User-Agent", "Expect", "Content-Length", "Accept-Encoding")
)


def fields_written_back(
    sent: list[tuple[str, str]], own: HTTPHeaders, wants_digest: bool
) -> tuple[tuple[str, str], ...]:
    """The fields of ``sent`` (`request_fields`'s) that go into the request's
    own headers ``own``, as Tornado's client writes them there (tracers and
    tests read them back from ``response.request.headers``).

    What the client added, and what it set over the caller's value; never a
    proxy's credentials or a digest answer (which belongs to one challenge).
    """
    return tuple(
        (name, value)
        for name, value in sent
        if (name in _SET_FIELDS or name not in own)
        and name != "Proxy-Authorization"
        and not (wants_digest and name == "Authorization")
    )


def ascii_target(target: str) -> str:
    """``target`` (a request-target or a URL's path, query and fragment)
    with each non-ASCII character percent-encoded as UTF-8.

    Tornado's simple client writes such a URL's UTF-8 bytes into the
    request line as they are (its curl client refuses it); RFC 9112 §3.2
    allows only ASCII there (Squall's server answers 400), and RFC 3987
    §3.1 maps an IRI to a URI this way, which a server decodes back to the
    same text. Spaces and controls are left for the caller to refuse.
    """
    return "".join(c if c.isascii() else urllib.parse.quote(c, safe="") for c in target)


def ascii_url(url: str) -> str:
    """``url`` with `ascii_target` applied to its path, query and fragment
    (the host is left as it is: it is a name, not a target)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            ascii_target(parts.path),
            ascii_target(parts.query),
            ascii_target(parts.fragment),
        )
    )


def location_reference(value: str) -> str:
    """A ``Location`` field's value made a URI reference, as libcurl (which
    Tornado's curl client follows redirects with) and browsers make it.

    Each space, and each character beyond ASCII, is percent-encoded: a
    field's characters are its bytes (decoded as latin-1), so a UTF-8
    ``café`` becomes ``caf%C3%A9``. Tornado's simple client wrote the space
    into the request line (a 400 from most servers, a ValueError here) and
    the bytes encoded a second time as UTF-8.
    """
    if value.isascii() and " " not in value:
        return value
    out = []
    for char in value:
        if char == " ":
            out.append("%20")
        elif char.isascii():
            out.append(char)
        elif ord(char) < 256:
            out.append(f"%{ord(char):02X}")
        else:
            # Not from an HTTP/1.1 field; as a URL's text, then.
            out.append(urllib.parse.quote(char, safe=""))
    return "".join(out)


def origin(url: str) -> tuple[str, str, Optional[int]]:
    """``url``'s origin: scheme, host and port (the scheme's default if none).

    Userinfo is not part of it: ``http://u@a/`` and ``http://a/`` are one
    origin.
    """
    parsed = urllib.parse.urlsplit(url)
    scheme = parsed.scheme.lower()
    try:
        port = parsed.port
    except ValueError:
        port = None
    if port is None:
        port = 443 if scheme == "https" else 80
    return scheme, (parsed.hostname or ""), port


# The methods a request may use without ``allow_nonstandard_methods``
# (Tornado's clients refuse the others before sending anything).
STANDARD_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def check_method_body(method: str, body_present: bool, allow_nonstandard: Any) -> None:
    """Refuse a method outside `STANDARD_METHODS`, a body where the method
    has none, or none where it needs one, unless ``allow_nonstandard`` is true.

    Raises:
        KeyError: an unknown method (a typo such as ``"GETT"`` or a
            lowercase ``"get"`` would otherwise reach the server).
        ValueError: POST, PATCH or PUT without a body, or another method
            with one.
    """
    if allow_nonstandard:
        return
    if method not in STANDARD_METHODS:
        # Tornado's type and words: tests (New Relic's) expect a KeyError.
        raise KeyError(f"unknown method {method}")
    body_expected = method in ("POST", "PATCH", "PUT")
    if body_expected != body_present:
        raise ValueError(
            "Body must {}be None for method {} (unless allow_nonstandard_methods is true)".format(
                "not " if body_expected else "", method
            )
        )


def request_fields(
    opts: dict[str, Any],
    parsed: urllib.parse.SplitResult,
    netloc: str,
    *,
    digest: Optional[str] = None,
    keep_alive: bool = True,
    proxy_auth: Optional[str] = None,
) -> tuple[list[tuple[str, str]], bool]:
    """The header fields of a request: the caller's, checked, and the defaults.

    Args:
        opts: The request's `options`.
        parsed: Its URL, split.
        netloc: The URL's authority without userinfo (the default ``Host``).
        digest: A digest ``Authorization`` answer to a challenge, if any.
        keep_alive: False to ask the server to close (``Connection: close``).
        proxy_auth: The ``Proxy-Authorization`` for a proxy that sees the
            request (absolute-form through an HTTP proxy).

    Returns:
        The fields, ``Host`` first, and whether digest auth is wanted.

    Raises:
        ValueError: An invalid field name or value (RFC 9110 §5.5: a CR or LF
            would inject fields), a body that does not fit the method, or an
            unknown ``auth_mode``.
    """
    items: list[tuple[str, str]] = []
    names: set[str] = set()
    source = opts["headers"]
    if source is None:
        pairs: Any = ()
    else:
        pairs = source.get_all() if isinstance(source, HTTPHeaders) else source.items()
    for name, value in pairs:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif not isinstance(value, str):
            value = str(value)
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError(f"Invalid header name {name!r}")
        if _BAD_VALUE_RE.search(value) is not None:
            raise ValueError(f"Unsafe header value {value!r} for {name}: no CR, LF or NUL")
        items.append((name, value))
        names.add(name.lower())

    def put(name: str, value: str) -> None:
        low = name.lower()
        if low in names:
            items[:] = [(n, v) for n, v in items if n.lower() != low]
        items.append((name, value))
        names.add(low)

    if "host" not in names:
        items.insert(0, ("Host", netloc))
        names.add("host")
    wants_digest = False
    if parsed.username is not None:
        username: Optional[str] = urllib.parse.unquote(parsed.username)
        password = urllib.parse.unquote(parsed.password or "")
    else:
        username = opts["auth_username"]
        password = opts["auth_password"] or ""
    if username is not None:
        mode = opts["auth_mode"]
        if mode in (None, "basic"):
            put("Authorization", basic_authorization(username, password))
        elif mode == "digest":
            wants_digest = True
            if digest is not None:
                put("Authorization", digest)
        else:
            # Tornado's wording.
            raise ValueError(f"unsupported auth_mode {mode}")
    method = opts["method"]
    if opts["user_agent"]:
        put("User-Agent", opts["user_agent"])
    elif "user-agent" not in names:
        items.append(("User-Agent", default_user_agent()))
    body = opts["body"]
    check_method_body(
        method,
        body is not None or opts["body_producer"] is not None,
        opts["allow_nonstandard_methods"],
    )
    if opts["expect_100_continue"]:
        put("Expect", "100-continue")
    if body is not None:
        put("Content-Length", str(len(body)))
    if method == "POST" and "content-type" not in names:
        items.append(("Content-Type", "application/x-www-form-urlencoded"))
    if opts["decompress_response"]:
        put("Accept-Encoding", "gzip")
    if proxy_auth is not None:
        put("Proxy-Authorization", proxy_auth)
    if not keep_alive and "connection" not in names:
        # Nothing will be reused: let the server close too (RFC 9112 §9.6).
        items.append(("Connection", "close"))
    return items, wants_digest


def follows_redirects(opts: dict[str, Any]) -> bool:
    """Whether a request with options ``opts`` follows a redirect."""
    return bool(opts["follow_redirects"]) and (opts["max_redirects"] or 0) > 0


def redirected(
    req: HTTPRequest,
    status: int,
    location: str,
    defaults: Optional[dict[str, Any]],
    original: HTTPRequest,
) -> HTTPRequest:
    """The request that follows ``req``'s redirect ``status`` to ``location``.

    Args:
        req: The request redirected (a `_RequestProxy` or an `HTTPRequest`).
        status: The redirect's status, one of `REDIRECT_CODES`.
        location: Its ``Location``, relative to ``req``'s URL or absolute.
        defaults: The client's defaults, for the new request's proxy.
        original: The request the caller made (``original_request``).
    """
    url: str = req.url
    method: str = req.method
    base = req.request if isinstance(req, _RequestProxy) else req
    new = copy.copy(base)
    new.url = urllib.parse.urljoin(url, location_reference(location))
    new.max_redirects = (req.max_redirects or 0) - 1
    headers = new.headers = HTTPHeaders(new.headers)
    # The caller's Host named the first URL's server, not this one's.
    drop = ["Host"]
    # RFC 9110 §15.4.4: 303 means GET; 301/302 turn POST into GET, as
    # browsers do.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        new.method = "GET"
        new.body = None
        new.body_producer = None
        drop += _BODY_FIELDS
    if origin(new.url) != origin(url):
        # Credentials for one origin must not leak to another.
        drop += CREDENTIAL_FIELDS
        new.auth_username = None
        new.auth_password = None
    for name in drop:
        if name in headers:
            del headers[name]
    new.original_request = original
    return cast(HTTPRequest, _RequestProxy(new, defaults))


def take_decoder(headers: HTTPHeaders) -> Optional[Decoder]:
    """A decoder for the response's ``Content-Encoding``, if it is one we can
    decode; the field is then renamed ``X-Consumed-Content-Encoding``.

    Any coding we can decode, asked for or not: decoding is bounded (see
    `DECOMPRESS_STEP`), so an unrequested br or zstd body costs no more.
    """
    coding = headers.get("Content-Encoding")
    decoder = make_decoder(coding) if coding is not None else None
    if decoder is not None:
        headers.add("X-Consumed-Content-Encoding", headers["Content-Encoding"])
        del headers["Content-Encoding"]
    return decoder
