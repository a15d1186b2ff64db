"""Query strings and urlencoded bodies to arguments: `_parse_qs_bytes`.

Alone in its module so that the speedups build compiles it (mypyc): every
request whose handler reads an argument parses its query string here (from
`.HTTPServerRequest.query_arguments`, compiled too). `squall.httputil._forms`
uses it for urlencoded bodies and re-exports it.
"""

from __future__ import annotations

__all__: list[str] = []  # _parse_qs_bytes is re-exported by squall.httputil

import re
from typing import Final, Optional
from urllib.parse import unquote_to_bytes

from squall.httputil._headers import HTTPInputError


def _parse_qs_bytes(data: bytes, max_fields: Optional[int]) -> dict[str, list[bytes]]:
    """Parses ``application/x-www-form-urlencoded`` data, keeping blank values.

    Names are decoded as latin-1 and values stay bytes; splitting is on ``&``
    only, as in `urllib.parse.parse_qs`, whose results this matches.

    Raises:
        HTTPInputError: if there are more than ``max_fields`` fields.
    """
    # Parsed as latin-1 text, which maps byte for byte (see parse_qs_text).
    return parse_qs_text(data.decode("latin1"), max_fields)


def parse_qs_text(text: str, max_fields: Optional[int]) -> dict[str, list[bytes]]:
    """`_parse_qs_bytes` of ``text.encode("latin1")``, without encoding the
    whole of it: a request's query string is latin-1 text already.

    Worked on as str because the compiled build has primitives for str's
    methods (split, partition, find, replace, encode): bytes' are generic
    calls that parse their arguments, about 600 instructions each.

    Raises:
        HTTPInputError: as `_parse_qs_bytes`.
        UnicodeEncodeError: ``text`` holds a character past U+00FF.
    """
    if not text:
        return {}
    if max_fields is not None and text.count("&") >= max_fields:
        raise HTTPInputError(f"Max number of fields exceeded (the limit is {max_fields})")
    result: dict[str, list[bytes]] = {}
    # Looked for once in the whole query, not per field: most queries have
    # neither.
    plus = text.find("+") >= 0
    percent = text.find("%") >= 0
    for field in text.split("&"):
        if not field:
            continue
        name, _, raw_value = field.partition("=")
        if plus:
            name = name.replace("+", " ")
            raw_value = raw_value.replace("+", " ")
        value = raw_value.encode("latin1")
        if percent:
            if name.find("%") >= 0:
                name = unquote_to_bytes(name.encode("latin1")).decode("latin1")
            if raw_value.find("%") >= 0:
                value = unquote_to_bytes(value)
        values = result.get(name)
        if values is None:
            result[name] = [value]
        else:
            values.append(value)
    return result


# Controls other than whitespace, replaced by a space in decoded arguments
# (RequestHandler.get_argument and the like).
ARGUMENT_CONTROL_CHARS: Final = re.compile(r"[\x00-\x08\x0e-\x1f]")


def decoded_arguments(raw_values: object, strip: bool) -> Optional[list[str]]:
    """An argument's values as `.RequestHandler.get_arguments` gives them with
    the stock ``decode_argument``: UTF-8 decoded, controls replaced by a
    space, stripped when ``strip``. None when the values are not a list, or
    one is not bytes or not UTF-8: the handler's own path then decodes them
    (and reports an error).

    Compiled: it runs for every argument a handler reads.
    """
    values: list[str] = []
    if raw_values is None:
        return values
    # Types tested here, not declared: an application may have put a tuple
    # or str values there, which the compiled build would refuse as
    # arguments of a list[bytes].
    if type(raw_values) is not list:
        return None
    for raw in raw_values:
        if not isinstance(raw, bytes):
            return None
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        values.append(clean_argument(value, strip))
    return values


def clean_argument(value: str, strip: bool) -> str:
    """A decoded argument as handlers get it: controls other than
    whitespace replaced by a space, then stripped when ``strip``."""
    # A printable str holds none of the controls replaced (the regular
    # expression's call is spared for most values).
    if not value.isprintable():
        value = ARGUMENT_CONTROL_CHARS.sub(" ", value)
    return value.strip() if strip else value
