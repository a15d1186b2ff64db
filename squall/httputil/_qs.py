"""Query strings and urlencoded bodies to arguments: `_parse_qs_bytes`.

Alone in its module so that the speedups build compiles it (mypyc): every
request whose handler reads an argument parses its query string here (from
`.HTTPServerRequest.query_arguments`, compiled too). `squall.httputil._forms`
uses it for urlencoded bodies and re-exports it.
"""

from __future__ import annotations

from typing import Optional
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
