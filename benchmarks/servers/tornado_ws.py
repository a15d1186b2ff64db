"""WebSocket echo through tornado.websocket (for benchmarks/ws_echo.py)."""

import sys
from typing import Union

from tornado.ioloop import IOLoop
from tornado.web import Application
from tornado.websocket import WebSocketHandler

from _speedups import choose_loop


class Echo(WebSocketHandler):
    def check_origin(self, origin: str) -> bool:
        return True

    def on_message(self, message: Union[str, bytes]) -> None:
        self.write_message(message, binary=isinstance(message, bytes))


def main() -> None:
    choose_loop(False)
    app = Application([("/ws", Echo)])
    app.listen(int(sys.argv[1]), "127.0.0.1")
    IOLoop.current().start()


if __name__ == "__main__":
    main()
