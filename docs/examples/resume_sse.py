"""A chat room's messages as Server-Sent Events that resume after a reconnection.

``python resume_sse.py`` serves http://127.0.0.1:8000/ (this machine only):
open it in two windows, and post with
``curl -d text=hello http://127.0.0.1:8000/rooms/lobby``. Close the laptop's
lid, or cut the network, and post meanwhile: the page gets what it missed
when it reconnects.

A restart is survived only with a broker: the default ``memory://`` keeps
nothing across one (the channel, its history and its epoch live in the
process), so the restarted server starts a new epoch and the page reloads.
With ``PUBSUB_URL=redis://127.0.0.1:6379/0 python resume_sse.py`` the
history lives in Redis: restart the server, post, and the page gets what it
missed without reloading.
"""

import asyncio
import os

import squall.pubsub
import squall.web
from squall.resume import ChannelEventSource, ClientScriptHandler

PAGE = """<!doctype html>
<title>Room</title>
<ul id="messages"></ul>
<script src="/squall-resume.js"></script>
<script>
  SquallResume.follow({
    eventsource: '/rooms/lobby/events',
    onmessage(data) {
      const item = document.createElement('li');
      item.textContent = data;
      document.getElementById('messages').append(item);
    },
    // Too long away: the missed messages are gone from history. Reload.
    onreset() { location.reload(); },
  });
</script>
"""


class RoomEvents(ChannelEventSource):
    """``GET /rooms/NAME/events``: the room's messages; ``id`` is each one's position."""

    def channel(self, room: str) -> str:
        return f"room:{room}"


class Post(squall.web.RequestHandler):
    async def post(self, room: str) -> None:
        pubsub: squall.pubsub.PubSub = self.settings["pubsub"]
        position = await pubsub.publish(f"room:{room}", self.get_body_argument("text"))
        self.write({"position": str(position)})


class Page(squall.web.RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


def make_app(pubsub_url: str = "") -> squall.web.Application:
    # The broker from PUBSUB_URL when none is given: `squall run
    # resume_sse:make_app --workers 2` shares channels over it too.
    pubsub_url = pubsub_url or os.environ.get("PUBSUB_URL", "memory://")
    # Keep the last 500 messages of each room for 5 minutes: a client away
    # for less than that resumes without losing any.
    pubsub = squall.pubsub.connect(pubsub_url, history_size=500, history_ttl=300)
    return squall.web.Application(
        [
            (r"/", Page),
            (r"/rooms/(\w+)/events", RoomEvents),
            (r"/rooms/(\w+)", Post),
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
