"""`EtagMixin`, part of `RequestHandler`: the response's ``Etag`` and the
``If-None-Match`` check that turns a 200 into a 304 (`~squall.web.RequestHandler.finish`
calls both).
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any, Optional

from squall.escape import utf8
from squall.httputil import HTTPHeaders

if TYPE_CHECKING:
    from squall.httputil import HTTPServerRequest

__all__ = ["EtagMixin"]

_ETAG_TOKEN = re.compile(rb'\*|(?:W/)?"[^"]*"')

# The last small one-part body hashed for an Etag, with its Etag: replies
# that repeat a short body (health checks, "OK", small JSON) spare the
# sha1 (~0.5 us). One tuple, swapped whole, so threads see a matching pair;
# bodies over _ETAG_MEMO_MAX bytes are never kept.
_ETAG_MEMO_MAX = 128
_EMPTY_ETAG = '"' + hashlib.sha1(b"").hexdigest() + '"'
# The memo also holds the Etag's value list, shared as the default fields'
# are (see _status._new_headers).
_etag_memo: tuple[bytes, str, list[str]] = (b"", _EMPTY_ETAG, [_EMPTY_ETAG])


class EtagMixin:
    """The Etag methods of `RequestHandler`."""

    request: HTTPServerRequest
    _headers: HTTPHeaders
    _write_buffer: list[bytes]

    if TYPE_CHECKING:
        # Provided by RequestHandler.
        def set_header(self, name: str, value: Any) -> None: ...

    def compute_etag(self) -> Optional[str]:
        """The ETag of the response: a hash of the body; None to send none."""
        buffer = self._write_buffer
        if len(buffer) == 1:
            body = buffer[0]
            if len(body) <= _ETAG_MEMO_MAX:
                # Small bodies repeat (health checks, "OK", small JSON): the
                # last one's Etag spares the sha1.
                memo = _etag_memo
                if memo[0] == body:
                    return memo[1]
                etag = f'"{hashlib.sha1(body).hexdigest()}"'
                if type(body) is bytes:
                    _remember_etag(body, etag)
                return etag
            return f'"{hashlib.sha1(body).hexdigest()}"'
        hasher = hashlib.sha1()
        for part in buffer:
            hasher.update(part)
        return f'"{hasher.hexdigest()}"'

    def set_etag_header(self) -> None:
        """Sets the ``Etag`` header from `compute_etag` (unless it returns None)."""
        etag = self.compute_etag()
        if etag is not None:
            memo = _etag_memo
            if etag is memo[1]:
                # The stock compute_etag's (remembered) Etag: our own
                # quoted hex digest, valid as it is; its list is shared.
                self._headers._as_list["Etag"] = memo[2]
            elif type(etag) is str and etag.isprintable():
                # set_header()'s own fast case, without the call (straight
                # into the dict, as the framework's own Content-Length is).
                self._headers._as_list["Etag"] = [etag]
            else:
                self.set_header("Etag", etag)

    def check_etag_header(self) -> bool:
        """Whether the response's ``Etag`` matches the request's ``If-None-Match``.

        Weak comparison (RFC 9110 section 13.1.2): a ``W/`` prefix is ignored,
        and ``*`` matches anything.
        """
        headers = self.request.headers
        if type(headers) is HTTPHeaders:
            # Most requests have none: one dict lookup says so.
            values = headers._as_list.get("If-None-Match")
            if not values:
                return False
            if_none_match: Optional[str] = values[0] if len(values) == 1 else ",".join(values)
        else:
            if_none_match = headers.get("If-None-Match")
        if not if_none_match:
            return False
        computed = utf8(self._headers.get("Etag", ""))
        if not computed:
            return False
        etags = _ETAG_TOKEN.findall(utf8(if_none_match))
        if not etags:
            return False
        if etags[0] == b"*":
            return True
        computed = computed[2:] if computed.startswith(b"W/") else computed
        for etag in etags:
            if (etag[2:] if etag.startswith(b"W/") else etag) == computed:
                return True
        return False


def _remember_etag(body: bytes, etag: str) -> None:
    global _etag_memo
    _etag_memo = (body, etag, [etag])
