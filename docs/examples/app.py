"""A page and a WebSocket in one application: the front page's example.

Serve it with ``squall run app:app`` (add ``--workers 4`` in production).
"""

import squall.web
import squall.websocket


class HomeHandler(squall.web.RequestHandler):
    def get(self) -> None:
        name = self.get_argument("name", "world")
        self.write({"hello": name})


class EchoSocket(squall.websocket.WebSocketHandler):
    def on_message(self, message: str | bytes) -> None:
        self.write_message(f"you said: {message}")


app = squall.web.Application(
    [
        (r"/", HomeHandler),
        (r"/echo", EchoSocket),
    ]
)
