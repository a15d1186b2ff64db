"""Who is in a room, with `ChannelWebSocket`: join on subscribe, leave on the way out.

``python presence_websocket.py`` serves http://127.0.0.1:8000/?name=ada
(this machine only). Each open page is in the room's presence list
(``GET /rooms/lobby/who``) while its WebSocket is subscribed; a message is
sent with a POST (``curl -d text=hi http://127.0.0.1:8000/rooms/lobby``):
the browser client only receives.

`ChannelWebSocket.on_subscribe` is a plain method and `PubSub.join` a
coroutine: the join runs as a task, kept so that the leave can wait for it
(a connection that closes while its join is on the way still leaves).
``PUBSUB_URL=redis://127.0.0.1:6379/0`` shares rooms and presence with other
processes (``memory://``, the default, is this process's only).
"""

import asyncio
import json
import os
import uuid
from typing import Optional

import squall.pubsub
import squall.web
from squall.resume import ChannelWebSocket, ClientScriptHandler

PAGE = """<!doctype html>
<title>Lobby</title>
<ul id="messages"></ul>
<form id="say"><input name="text" autocomplete="off"><button>Say</button></form>
<script src="/squall-resume.js"></script>
<script>
  const name = new URLSearchParams(location.search).get('name') || 'guest';
  SquallResume.follow({
    channel: 'room:lobby',
    websocket: '/live?name=' + encodeURIComponent(name),
    eventsource: null,
    onmessage(data) {
      const item = document.createElement('li');
      item.textContent = data;
      document.getElementById('messages').append(item);
    },
    onreset() { location.reload(); },
  });
  // The client only receives: what a reader says goes by a POST.
  document.getElementById('say').onsubmit = (event) => {
    event.preventDefault();
    fetch('/rooms/lobby', {method: 'POST', body: new FormData(event.target)});
    event.target.reset();
  };
</script>
"""


class Live(ChannelWebSocket):
    """``/live?name=NAME``: the room's messages, and NAME in its presence list."""

    def open(self) -> None:
        self.client_id = uuid.uuid4().hex
        self.info = json.dumps({"name": self.get_query_argument("name", "guest")})
        self.joins: dict[str, asyncio.Future[squall.pubsub.Presence]] = {}

    def may_subscribe(self, channel: str) -> bool:
        return channel.startswith("room:")

    def on_subscribe(self, channel: str) -> None:
        # A plain method: start the join, do not wait for it here.
        join = self.pubsub.join(channel, self.client_id, self.info)
        self.joins[channel] = asyncio.ensure_future(join)

    def on_unsubscribe(self, channel: str) -> None:
        # Called for every subscription that ends, the connection's close too.
        joining = self.joins.pop(channel, None)
        if joining is not None:
            asyncio.ensure_future(leave(joining))


async def leave(joining: "asyncio.Future[squall.pubsub.Presence]") -> None:
    """Leave once the join is done (nothing to leave if it failed)."""
    try:
        entry = await joining
    except Exception:  # the join failed (logged by the task's caller): not in the room
        return
    await entry.leave()


class Who(squall.web.RequestHandler):
    """``GET /rooms/NAME/who``: the names in the room."""

    async def get(self, room: str) -> None:
        pubsub: squall.pubsub.PubSub = self.settings["pubsub"]
        present = await pubsub.presence(f"room:{room}", limit=100)
        self.write({"names": sorted(json.loads(info)["name"] for info in present.values())})


class Say(squall.web.RequestHandler):
    """``POST /rooms/NAME`` with ``text``: published to the room."""

    async def post(self, room: str) -> None:
        pubsub: squall.pubsub.PubSub = self.settings["pubsub"]
        await pubsub.publish(f"room:{room}", self.get_body_argument("text"))
        self.set_status(204)


class Page(squall.web.RequestHandler):
    def get(self) -> None:
        self.write(PAGE)


def make_app(pubsub_url: Optional[str] = None) -> squall.web.Application:
    pubsub = squall.pubsub.connect(pubsub_url or os.environ.get("PUBSUB_URL", "memory://"))
    return squall.web.Application(
        [
            (r"/", Page),
            (r"/live", Live),
            (r"/rooms/(\w+)/who", Who),
            (r"/rooms/(\w+)", Say),
            (r"/squall-resume.js", ClientScriptHandler),
        ],
        pubsub=pubsub,
    )


async def main() -> None:
    make_app().listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
