"""Several channels over one WebSocket, each resumed from its last position.

``python resume_websocket.py`` serves http://127.0.0.1:8000/ (this machine
only); ``PUBSUB_URL=redis://127.0.0.1:6379/0`` shares the channels with
other processes and keeps them across a restart (``memory://``, the
default, keeps nothing).
"""

import asyncio
import os

import squall.pubsub
import squall.web
from squall.resume import ChannelWebSocket, ClientScriptHandler

PAGE = """<!doctype html>
<title>Scores</title>
<pre id="log"></pre>
<script src="/squall-resume.js"></script>
<script>
  const log = document.getElementById('log');
  const feed = SquallResume.follow({
    channel: 'scores:final',
    websocket: '/live',
    eventsource: null,          // only the WebSocket here
    onmessage(data, position) { log.textContent += position + ' ' + data + '\\n'; },
    onreset(position) { log.textContent = '(reloaded at ' + position + ')\\n'; },
    onstate(state) { document.title = 'Scores (' + state + ')'; },
    // A temporary error (the broker away) is retried; a permanent one
    // (not allowed) stops the feed: say so.
    onerror(error) { if (!error.temporary) log.textContent += '(stopped: ' + error.message + ')\\n'; },
  });
</script>
"""


class Live(ChannelWebSocket):
    """``/live``: the client sends ``{"subscribe": CHANNEL, "since": POSITION}``."""

    def may_subscribe(self, channel: str) -> bool:
        # Everything under "scores:" is public; nothing else is served here.
        return channel.startswith("scores:")


class Page(squall.web.RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


class Score(squall.web.RequestHandler):
    async def post(self, game: str) -> None:
        pubsub: squall.pubsub.PubSub = self.settings["pubsub"]
        await pubsub.publish(f"scores:{game}", self.request.body.decode())
        self.set_status(204)


def make_app(pubsub_url: str = "") -> squall.web.Application:
    # The broker from PUBSUB_URL when none is given: `squall run
    # resume_websocket:make_app --workers 2` shares channels over it too.
    pubsub_url = pubsub_url or os.environ.get("PUBSUB_URL", "memory://")
    pubsub = squall.pubsub.connect(pubsub_url, history_size=1000, history_ttl=600)
    return squall.web.Application(
        [
            (r"/", Page),
            (r"/live", Live),
            (r"/scores/(\w+)", Score),
            (r"/squall-resume.js", ClientScriptHandler),
        ],
        pubsub=pubsub,
    )


async def main() -> None:
    app = make_app()
    app.listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
