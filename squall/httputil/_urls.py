"""URLs and their parts: host and port, query arguments, user credentials."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union
from urllib.parse import parse_qsl, urlencode, urlparse, urlsplit, urlunparse

__all__ = ["encode_username_password", "qs_to_qsl", "split_host_and_port", "url_concat"]


def split_host_and_port(netloc: str) -> tuple[str, Optional[int]]:
    """Splits ``host:port`` into ``(host, port)``; the port is ``None`` when absent.

    >>> split_host_and_port("[::1]:8888")
    ('[::1]', 8888)
    >>> split_host_and_port("example.com")
    ('example.com', None)
    """
    host, colon, port = netloc.rpartition(":")
    if colon and host and port.isascii() and port.isdigit():
        return host, int(port)
    return netloc, None


def qs_to_qsl(qs: Mapping[str, Sequence[Any]]) -> Iterable[tuple[str, Any]]:
    """Turns a ``{name: [values]}`` dict (as from `urllib.parse.parse_qs`) into pairs.

    >>> list(qs_to_qsl({"a": ["1", "2"], "b": ["3"]}))
    [('a', '1'), ('a', '2'), ('b', '3')]
    """
    for name, values in qs.items():
        for value in values:
            yield (name, value)


_QueryArgs = Union[
    None,
    Sequence[tuple[str, str]],
    Mapping[str, str],
]


def url_concat(url: str, args: _QueryArgs) -> str:
    """Appends query arguments to ``url``, whether or not it already has a query.

    ``args`` is a dict, or a list or tuple of ``(name, value)`` pairs (which
    may repeat a name); ``None`` returns ``url`` unchanged. A fragment stays
    at the end.

    >>> url_concat("/search?q=squall#top", [("page", "2"), ("page", "3")])
    '/search?q=squall&page=2&page=3#top'

    Raises:
        TypeError: if ``args`` is of another type.
    """
    if args is None:
        return url
    if isinstance(args, dict):
        extra: list[tuple[str, str]] = list(args.items())
    elif isinstance(args, (list, tuple)):
        extra = list(args)
    else:
        raise TypeError(f"'args' parameter should be dict, list or tuple. Not {type(args)}")
    parts = urlparse(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.extend(extra)
    return urlunparse(
        (parts.scheme, parts.netloc, parts.path, parts.params, urlencode(query), parts.fragment)
    )


def encode_username_password(username: Union[str, bytes], password: Union[str, bytes]) -> bytes:
    """Joins credentials as ``username:password`` bytes for HTTP Basic auth (RFC 7617).

    Text is encoded as UTF-8; the result still needs base64 encoding.

    >>> encode_username_password("al", "pa:ss")
    b'al:pa:ss'
    """
    if isinstance(username, str):
        username = username.encode("utf-8")
    if isinstance(password, str):
        password = password.encode("utf-8")
    return username + b":" + password


_WEB_SCHEMES = ("http://", "https://")


def origin_names_host(origin: str, host: Optional[str]) -> bool:
    """Whether the authority of ``origin`` (an ``Origin`` header) is the
    request's ``Host`` header, case aside: the same-origin test of a request
    whose browser sent no ``Sec-Fetch-Site``.

    The scheme is not compared, as in Tornado: behind a proxy that ends TLS,
    a page of ``https://host`` talks to a server that sees plain HTTP, and
    telling the two apart would need the proxy's headers trusted
    (``xheaders``). An origin that does not parse names no host.
    """
    host = (host or "").lower()
    lowered = origin.lower()
    if host and lowered.endswith(host) and lowered[: -len(host)] in _WEB_SCHEMES:
        return True  # what the parse below finds for a browser's own origin
    try:
        authority = urlsplit(lowered).netloc
    except ValueError:  # an invalid IPv6 authority ("http://[::1")
        return False
    return authority == host
