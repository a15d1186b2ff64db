"""ASGI both ways: a Squall application under any ASGI server, and an ASGI
application served by Squall."""

import squall.asgi
import squall.web


class MainHandler(squall.web.RequestHandler):
    def get(self) -> None:
        self.write({"framework": "squall"})


application = squall.web.Application([(r"/", MainHandler)])

# ``uvicorn asgi_both_ways:asgi_app`` (or any ASGI server) serves it.
asgi_app = squall.asgi.ASGIAdapter(application)


async def plain_asgi_app(
    scope: squall.asgi.Scope, receive: squall.asgi.Receive, send: squall.asgi.Send
) -> None:
    """A bare ASGI application; ``squall run asgi_both_ways:plain_asgi_app`` serves it."""
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"served by squall"})
