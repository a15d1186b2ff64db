"""A chat room's messages as Server-Sent Events that resume after a reconnection.

Run it, open http://localhost:8888/ in two windows, and post with
``curl -d text=hello localhost:8888/rooms/lobby``. Stop the server for a few
seconds while posting from another process on the same pub/sub (with Redis),
or close the laptop's lid: the page gets what it missed when it reconnects.
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


def make_app(pubsub_url: str = "memory://") -> squall.web.Application:
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
    app = make_app(os.environ.get("PUBSUB_URL", "memory://"))
    app.listen(8888)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
