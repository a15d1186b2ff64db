"""Header fields packed into one string: what an open WebSocket keeps of its upgrade.

An open WebSocket keeps its upgrade request for as long as it lives, and
most of them spend that life idle: `squall.websocket` packs the request's
header fields (a dict of value lists) into one string once the socket is
open, and unpacks them the first time anything reads them. The packing is
here, among the compiled modules, because every handshake pays for it; the
names every upgrade repeats take one character each (their index in
`WORDS`, a control character, which no field name can be).
"""

from __future__ import annotations

from typing import Final, Optional

__all__ = ["CODES", "SEPARATOR", "WORDS", "pack_fields"]

# Between names and values: header values never contain a line feed (RFC
# 9110 section 5.5: the parsers refuse control characters).
SEPARATOR: Final = "\n"
# The field names of browsers' upgrades and of the proxies in front of them
# (canonical: the keys of HTTPHeaders' fields), each packed as the control
# character whose code is its index (10 is the separator's: no name there).
WORDS: Final = (
    "Host",
    "Connection",
    "Upgrade",
    "Sec-Websocket-Key",
    "Sec-Websocket-Version",
    "Sec-Websocket-Extensions",
    "Sec-Websocket-Protocol",
    "Origin",
    "User-Agent",
    "Pragma",
    "",
    "Cache-Control",
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Cookie",
    "Sec-Fetch-Dest",
    "Sec-Fetch-Mode",
    "Sec-Fetch-Site",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Real-Ip",
    "Forwarded",
    "Authorization",
    "Referer",
    "Dnt",
    "Sec-Gpc",
    "Sec-Ch-Ua",
    "Sec-Ch-Ua-Mobile",
    "Sec-Ch-Ua-Platform",
    "Priority",
)
CODES: Final = {word: chr(i) for i, word in enumerate(WORDS) if word}


def pack_fields(fields: dict[str, list[str]]) -> Optional[str]:
    """``fields`` as one string: name (or its code), value, name, value... joined by `SEPARATOR`.

    Returns:
        The packed string, or None when it could not be unpacked into the
        same fields: a name that is a single control character (written
        into the fields directly), or a separator inside a name or a value.

    Raises:
        TypeError: a name or a value is not a str.
    """
    parts: list[str] = []
    codes = CODES
    for name, values in fields.items():
        code = codes.get(name)
        if code is None:
            if len(name) == 1 and name < " ":
                return None
            code = name
        if len(values) == 1:
            # (The usual field: no loop over its values.)
            parts.append(code)
            parts.append(values[0])
        else:
            for value in values:
                parts.append(code)
                parts.append(value)
    packed = SEPARATOR.join(parts)
    if parts and packed.count(SEPARATOR) != len(parts) - 1:
        return None
    return packed
