"""Query strings and urlencoded bodies to arguments: `_parse_qs_bytes`.

Alone in its module so that the speedups build compiles it (mypyc): every
request whose handler reads an argument parses its query string here (from
`.HTTPServerRequest.query_arguments`, compiled too). `squall.httputil._forms`
uses it for urlencoded bodies and re-exports it.
"""

from __future__ import annotations

import re
from typing import Final, Optional
from urllib.parse import unquote_to_bytes

from squall.httputil._headers import HTTPInputError

__all__: list[str] = []  # _parse_qs_bytes is re-exported by squall.httputil


def _parse_qs_bytes(data: bytes, max_fields: Optional[int]) -> dict[str, list[bytes]]:
    """Parses ``application/x-www-form-urlencoded`` data, keeping blank values.

    Names are decoded as latin-1 and values stay bytes; splitting is on ``&``
    only, as in `urllib.parse.parse_qs`, whose results this matches.

    Raises:
        HTTPInputError: if there are more than ``max_fields`` fields.
    """
    if not data:
        return {}
    if max_fields is not None and data.count(b"&") >= max_fields:
        raise HTTPInputError(f"Max number of fields exceeded (the limit is {max_fields})")
    result: dict[str, list[bytes]] = {}
    # Looked for once in the whole query, not per field: most queries have
    # neither. (find(), not ``in``: on 3.11 ``bytes in bytes`` first tries
    # the needle as an int and builds and drops a TypeError.)
    plus = data.find(b"+") >= 0
    percent = data.find(b"%") >= 0
    for field in data.split(b"&"):
        if not field:
            continue
        raw_name, _, value = field.partition(b"=")
        if plus:
            raw_name = raw_name.replace(b"+", b" ")
            value = value.replace(b"+", b" ")
        if percent:
            if raw_name.find(b"%") >= 0:
                raw_name = unquote_to_bytes(raw_name)
            if value.find(b"%") >= 0:
                value = unquote_to_bytes(value)
        name = raw_name.decode("latin1")
        values = result.get(name)
        if values is None:
            result[name] = [value]
        else:
            values.append(value)
    return result


# Controls other than whitespace, replaced by a space in decoded arguments
# (RequestHandler.get_argument and the like).
ARGUMENT_CONTROL_CHARS: Final = re.compile(r"[\x00-\x08\x0e-\x1f]")


def decoded_arguments(raw_values: Optional[list[bytes]], strip: bool) -> Optional[list[str]]:
    """An argument's values as `.RequestHandler.get_arguments` gives them with
    the stock ``decode_argument``: UTF-8 decoded, controls replaced by a
    space, stripped when ``strip``. None when a value is not bytes or not
    UTF-8: the handler's own path then decodes it (and reports the error).

    Compiled: it runs for every argument a handler reads.
    """
    values: list[str] = []
    if raw_values is None:
        return values
    for raw in raw_values:
        if type(raw) is not bytes:
            return None
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        # A printable str holds none of the controls replaced (the regular
        # expression's call is spared for most values).
        if not value.isprintable():
            value = ARGUMENT_CONTROL_CHARS.sub(" ", value)
        if strip:
            value = value.strip()
        values.append(value)
    return values
