"""A small Django project in one module, served through Django's ASGI handler.

``squall run app:application`` (with this directory on the path) serves it;
compat/django_asgi/smoke.py starts that and checks each view's answer. The
views cover what Django's ASGI handler does differently from a plain ASGI
app: sync views run in a thread (sync_to_async), async views in the loop,
request bodies read from ``receive`` into a spooled file, streaming
responses from async iterators, FileResponse (which Django sends with its
own chunks, or ``http.response.pathsend`` when offered, by version).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import django
from django.conf import settings

HERE = Path(__file__).resolve().parent
FILE = Path(os.environ.get("DJANGO_SMOKE_FILE", str(HERE / "app.py")))

settings.configure(
    DEBUG=False,
    SECRET_KEY="squall-django-smoke-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    INSTALLED_APPS=[],
    DATA_UPLOAD_MAX_MEMORY_SIZE=None,
    FILE_UPLOAD_MAX_MEMORY_SIZE=64 * 1024,
    # The 404 and 500 the smoke run asks for are expected: not logged.
    LOGGING={"version": 1, "loggers": {"django.request": {"level": "CRITICAL"}}},
)
# FileResponse iterates its file synchronously; Django warns about that
# under ASGI whatever the server.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous")
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import (  # noqa: E402
    FileResponse,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def hello(request: HttpRequest) -> HttpResponse:
    """A sync view: Django runs it in a thread."""
    return HttpResponse(f"hello {request.GET.get('name', 'world')}", content_type="text/plain")


async def info(request: HttpRequest) -> JsonResponse:
    """An async view: the scope as Django saw it."""
    return JsonResponse(
        {
            "method": request.method,
            "path": request.path,
            "query": request.GET.dict(),
            "cookie": request.COOKIES.get("c"),
            "agent": request.headers.get("User-Agent"),
            "scheme": request.scheme,
        }
    )


@csrf_exempt
def echo(request: HttpRequest) -> HttpResponse:
    """The request body back, with its length (a large one is spooled to disk)."""
    body = request.body
    response = HttpResponse(body, content_type="application/octet-stream")
    response["X-Length"] = str(len(body))
    return response


async def stream(request: HttpRequest) -> StreamingHttpResponse:
    async def pieces() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"piece {i}\n".encode()

    return StreamingHttpResponse(pieces(), content_type="text/plain")


def download(request: HttpRequest) -> FileResponse:
    return FileResponse(open(FILE, "rb"), content_type="application/octet-stream")


def fail(request: HttpRequest) -> Any:
    raise RuntimeError("a view that fails: Django answers 500")


urlpatterns = [
    path("hello", hello),
    path("info", info),
    path("echo", echo),
    path("stream", stream),
    path("download", download),
    path("fail", fail),
]

application = get_asgi_application()
