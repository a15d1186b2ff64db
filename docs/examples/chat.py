"""Live updates two ways: a WebSocket and a long poll, fed by one list.

``python chat.py`` listens on 127.0.0.1:8000 (this machine only):
``curl http://127.0.0.1:8000/poll`` waits for a message, which
``curl -d text=hi http://127.0.0.1:8000/post`` posts.
"""

import asyncio

import squall.locks
import squall.web
import squall.websocket


class Room:
    """Messages in order, and a way to wait for the next one."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.sockets: set[squall.websocket.WebSocketHandler] = set()
        self.changed = squall.locks.Condition()

    def post(self, text: str) -> None:
        self.messages.append(text)
        for socket in self.sockets:
            socket.write_message(text)
        self.changed.notify_all()


class PostHandler(squall.web.RequestHandler):
    def post(self) -> None:
        self.application.settings["room"].post(self.get_body_argument("text"))
        self.set_status(204)


class PollHandler(squall.web.RequestHandler):
    """Long polling: answers at once if the client is behind, else waits."""

    async def get(self) -> None:
        room: Room = self.application.settings["room"]
        seen = int(self.get_argument("seen", "0"))
        while len(room.messages) <= seen:
            await room.changed.wait()
        self.write({"messages": room.messages[seen:]})


class SocketHandler(squall.websocket.WebSocketHandler):
    def open(self) -> None:
        self.settings["room"].sockets.add(self)

    def on_message(self, message: str | bytes) -> None:
        self.settings["room"].post(str(message))

    def on_close(self) -> None:
        self.settings["room"].sockets.discard(self)


def make_app() -> squall.web.Application:
    return squall.web.Application(
        [(r"/post", PostHandler), (r"/poll", PollHandler), (r"/socket", SocketHandler)],
        room=Room(),
    )


async def main() -> None:
    make_app().listen(8000, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
