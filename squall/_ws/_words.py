"""The field names an open WebSocket's packed upgrade writes as one character.

Read by `squall._ws._packing`, which packs with these codes.
"""

from __future__ import annotations

from typing import Final

__all__ = ["WORDS"]

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
