"""``--opentelemetry``: OpenTelemetry spans for the requests a worker serves.

Squall's `~squall.web.RequestHandler` is Tornado's, so OpenTelemetry's
Tornado instrumentation (``opentelemetry-instrumentation-tornado``) traces
it as it is: a server span per request (method, route handler, status,
client) and a client span per `~squall.httpclient.AsyncHTTPClient` fetch.
It needs ``import tornado`` to resolve to Squall (`squall.compat`, which
``squall run`` sets up); the alias also answers its check of the installed
``tornado`` distribution (6.6.1); the check is skipped here all the same,
as it would tell nothing more.
ASGI applications are wrapped in ``opentelemetry-instrumentation-asgi``'s
middleware instead.

The SDK (exporter, sampler, resource) is configured the usual way: by
``opentelemetry-instrument squall run ... --opentelemetry`` and the
``OTEL_*`` environment variables, or by the application's own code.
"""

from __future__ import annotations

import importlib
from typing import Any

from squall.cli._options import UsageError

__all__ = ["instrument_squall", "wrap_asgi"]


def _instrumentation(name: str, case: str) -> Any:
    try:
        return importlib.import_module(f"opentelemetry.instrumentation.{name}")
    except ImportError as exc:
        package = f"opentelemetry-instrumentation-{name}"
        raise UsageError(
            f"--opentelemetry{case} needs {package} (pip install {package}): {exc}"
        ) from None


def instrument_squall(tracer_provider: Any = None) -> None:
    """Start the Tornado instrumentation over Squall (idempotent).

    Args:
        tracer_provider: the provider for the spans (the global one if None).

    Raises:
        UsageError: the instrumentation is not installed.
    """
    from squall.cli._alias import tornado_alias

    tornado_alias()
    module = _instrumentation("tornado", "")
    instrumentor = module.TornadoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        options: dict[str, Any] = {"skip_dep_check": True}
        if tracer_provider is not None:
            options["tracer_provider"] = tracer_provider
        instrumentor.instrument(**options)


def wrap_asgi(app: Any) -> Any:
    """``app`` inside OpenTelemetry's ASGI middleware.

    Raises:
        UsageError: the ASGI instrumentation is not installed.
    """
    module = _instrumentation("asgi", " with an ASGI app")
    return module.OpenTelemetryMiddleware(app)
