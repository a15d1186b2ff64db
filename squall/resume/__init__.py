"""Resuming streams: pub/sub channels over Server-Sent Events, WebSocket and
long polling, where a client that reconnects gets what it missed.

Every publication on a channel has a `~squall.pubsub.Position`; each
transport gives it to the client with the publication, and the client
hands back the last one it saw when it reconnects:

* Server-Sent Events (`ChannelEventSource`): the position is the event's
  ``id``, which ``EventSource`` sends back as ``Last-Event-ID``.
* WebSocket (`ChannelWebSocket`): the client sends
  ``{"subscribe": channel, "since": position}`` (the protocol is in
  `squall.resume._websocket`'s docstring and the guide).
* Long polling (`ChannelPollHandler`, `poll`): the position is the cursor.

The publications missed come from the channel's history, then the live
ones follow, with no gap and no duplicate. When history no longer holds
them, the client is told (a ``reset``), so it reloads its state. The
browser client (`CLIENT_SCRIPT`, served by `ClientScriptHandler`) speaks
all three, reconnecting with exponential backoff and full jitter.
"""

from __future__ import annotations

import os
from typing import ClassVar

from squall.resume._core import Reset, ResumedSubscription, parse_position, resume
from squall.resume._eventsource import ChannelEventSource
from squall.resume._poll import ChannelPollHandler, PollResult, poll
from squall.resume._websocket import ChannelWebSocket
from squall.web import RequestHandler

__all__ = [
    "CLIENT_SCRIPT",
    "ChannelEventSource",
    "ChannelPollHandler",
    "ChannelWebSocket",
    "ClientScriptHandler",
    "PollResult",
    "Reset",
    "ResumedSubscription",
    "parse_position",
    "poll",
    "resume",
]

#: Where the browser client ``squall-resume.js`` is (plain JavaScript, no build step).
CLIENT_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "squall-resume.js")


class ClientScriptHandler(RequestHandler):
    """Serves the browser client, ``squall-resume.js``.

    Route it where pages load it from::

        (r"/squall-resume.js", ClientScriptHandler)

    It answers with an ``ETag`` (a reload costs a 304) and lets caches keep
    it for `max_age` seconds.
    """

    #: Seconds browsers and caches may keep the script without asking again.
    max_age: ClassVar[int] = 3600
    _body: ClassVar[bytes] = b""

    def get(self) -> None:
        body = self._body
        if not body:
            with open(CLIENT_SCRIPT, "rb") as f:
                body = ClientScriptHandler._body = f.read()
        self.set_header("Content-Type", "text/javascript; charset=utf-8")
        self.set_header("Cache-Control", f"public, max-age={self.max_age}")
        self.write(body)

    head = get


for _obj in (
    ChannelEventSource,
    ChannelPollHandler,
    ChannelWebSocket,
    ClientScriptHandler,
    PollResult,
    Reset,
    ResumedSubscription,
    parse_position,
    poll,
    resume,
):
    _obj.__module__ = __name__
del _obj
