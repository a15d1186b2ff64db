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
browser client (`CLIENT_SCRIPT`, served by `ClientScriptHandler`; the ES
module `CLIENT_MODULE` and its package are beside it) speaks all three,
reconnecting with exponential backoff and full jitter, reset only once the
server confirms a subscription; each transport carries a heartbeat, and an
``error`` says whether it is temporary (retried) or not (the client stops).
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
    "CLIENT_MODULE",
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

_CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client")
#: Where the browser client ``squall-resume.js`` is (a classic script: the
#: global ``SquallResume``; no build step, no dependency).
CLIENT_SCRIPT = os.path.join(_CLIENT, "squall-resume.js")
#: The same client as an ES module (``import {follow} from ...``), in the
#: npm package ``squall-resume`` (its directory: ``package.json``, the type
#: declarations ``squall-resume.d.ts``, its tests under ``node --test``).
CLIENT_MODULE = os.path.join(_CLIENT, "squall-resume.mjs")


class ClientScriptHandler(RequestHandler):
    """Serves the browser client, ``squall-resume.js`` (or, given ``path``, the module).

    Route it where pages load it from::

        (r"/squall-resume.js", ClientScriptHandler),
        (r"/squall-resume.mjs", ClientScriptHandler, {"path": CLIENT_MODULE}),

    It answers with an ``ETag`` (a reload costs a 304) and lets caches keep
    it for `max_age` seconds.
    """

    #: Seconds browsers and caches may keep the script without asking again.
    max_age: ClassVar[int] = 3600
    _bodies: ClassVar[dict[str, bytes]] = {}
    _path: str = CLIENT_SCRIPT

    def initialize(self, path: str = CLIENT_SCRIPT) -> None:
        self._path = path

    def get(self) -> None:
        body = self._bodies.get(self._path)
        if body is None:
            with open(self._path, "rb") as f:
                body = self._bodies[self._path] = f.read()
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
