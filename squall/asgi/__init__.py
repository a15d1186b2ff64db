"""ASGI both ways.

* Serve an ASGI 3.0 application (Starlette, FastAPI, Django, a bare
  callable) on Squall's `~squall.httpserver.HTTPServer`::

      delegate = ASGIServerDelegate(app)
      await delegate.startup()          # lifespan
      server = HTTPServer(delegate)
      server.listen(8000)
      ...
      await delegate.shutdown()

* Run a Squall (Tornado-API) `~squall.web.Application` under any ASGI
  server: ``asgi_app = ASGIAdapter(application)``, then
  ``uvicorn module:asgi_app``.

* Mount an ASGI application inside an Application, beside its
  RequestHandlers: ``Application([mount("/api", fastapi_app), (r"/", Main)])``.

Scopes follow the HTTP and WebSocket spec 2.5 and lifespan 2.0; over
HTTP/3 a WebTransport session is a ``webtransport`` scope (no ASGI
specification yet: the messages are described in the HTTP/3 guide).
"""

from squall.asgi._adapter import ASGIAdapter
from squall.asgi._lifespan import Lifespan, LifespanFailure, LifespanMode
from squall.asgi._mount import ASGIHandler, mount
from squall.asgi._server import ASGIServerDelegate
from squall.asgi._types import (
    ASGIApp,
    ASGIProtocolError,
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
)

__all__ = [
    "ASGIAdapter",
    "ASGIApp",
    "ASGIHandler",
    "ASGIProtocolError",
    "ASGIServerDelegate",
    "ClientDisconnected",
    "Lifespan",
    "LifespanFailure",
    "LifespanMode",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "mount",
]

# The classes and functions show the public path (the type aliases are not
# objects of ours).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith(__name__ + "."):
        _obj.__module__ = __name__
del _name, _obj
