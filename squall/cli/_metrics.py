"""``--metrics-bind``: Prometheus metrics and health checks, on an address of their own.

The supervisor serves ``/metrics``, ``/livez`` and ``/readyz`` on the
``--metrics-bind`` address (never on the application's). The numbers are
`prometheus_client`'s multiprocess mode (``pip install squall[metrics]``):
every worker writes its counters to memory-mapped files in a directory
the supervisor makes (or ``$PROMETHEUS_MULTIPROC_DIR``), and a scrape adds
them up, the workers that have exited included, so counts stay right
across restarts. What the supervisor knows itself (workers ready,
restarts, draining) is read from it at scrape time.

Per request, a worker counts it by method, route and status class and
observes its duration; connections by protocol, requests in flight and
the drain state are sampled once a second. Nothing of this exists unless
``--metrics-bind`` is given: the serving path is then exactly the one
without metrics.

Health: ``/livez`` answers 200 while the supervisor's loop runs;
``/readyz`` answers 200 when at least one worker serves and the server is
not stopping, 503 otherwise (while starting, and while draining), with
the reason in the body.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

from squall.cli._options import UsageError

if TYPE_CHECKING:
    from squall.cli._supervisor import Supervisor
    from squall.httpserver import HTTPServer
    from squall.httputil import HTTPServerRequest

__all__ = ["SupervisorMetrics", "WorkerMetrics", "start_metrics_server"]

_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds between two samples of a worker's gauges.
_SAMPLE_INTERVAL = 1.0
# Seconds: HTTP request latencies, from a fast cached answer to a slow report.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}


def _import_client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise UsageError(
            "--metrics-bind needs prometheus_client: pip install squall[metrics]"
        ) from None
    return prometheus_client


class SupervisorMetrics:
    """The supervisor's side: the multiprocess directory and the HTTP endpoints."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        given = os.environ.get(_DIR_ENV)
        # A directory we made is ours to remove; one the operator gave is not.
        self._own_dir = not given
        self.directory = given or tempfile.mkdtemp(prefix="squall-metrics-")
        os.makedirs(self.directory, exist_ok=True)
        # prometheus_client picks its value class when first imported.
        os.environ[_DIR_ENV] = self.directory
        client = _import_client()
        from prometheus_client import multiprocess

        self._client = client
        self._multiprocess = multiprocess
        self.registry = client.CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=self.directory)  # type: ignore[no-untyped-call]
        self.registry.register(_SupervisorCollector(supervisor))
        self.server: Optional[HTTPServer] = None

    def worker_env(self) -> dict[str, str]:
        """What a worker's environment needs to write its metrics."""
        return {_DIR_ENV: self.directory, "SQUALL_WORKER_METRICS": "1"}

    def worker_exited(self, pid: int) -> None:
        """Drop the live gauges of a worker gone (its counters stay counted)."""
        self._multiprocess.mark_process_dead(pid, self.directory)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    # -- the endpoints -------------------------------------------------------------

    def handle(self, request: HTTPServerRequest) -> None:
        path = request.path
        if path == "/metrics":
            body = self._client.generate_latest(self.registry)
            self._answer(request, 200, body, self._client.CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/healthz"):
            self._answer(request, 200, b"ok\n")
        elif path == "/readyz":
            reason = self.not_ready()
            if reason is None:
                self._answer(request, 200, b"ready\n")
            else:
                self._answer(request, 503, f"not ready: {reason}\n".encode())
        else:
            self._answer(request, 404, b"not found: try /metrics, /livez or /readyz\n")

    def not_ready(self) -> Optional[str]:
        """Why the server should not get traffic now, or None if it should."""
        sup = self.supervisor
        if sup.stopping:
            return "draining"
        if not sup.ready_pids():
            return "no worker ready yet" if not sup.ever_ready else "no worker ready"
        return None

    @staticmethod
    def _answer(
        request: HTTPServerRequest, status: int, body: bytes, kind: str = "text/plain"
    ) -> None:
        from squall.httputil import HTTPHeaders, ResponseStartLine

        conn = request.connection
        assert conn is not None
        headers = HTTPHeaders(
            {"Content-Type": kind, "Content-Length": str(len(body)), "Cache-Control": "no-store"}
        )
        reasons = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}
        conn.write_headers(ResponseStartLine("HTTP/1.1", status, reasons[status]), headers, body)
        conn.finish()


class _SupervisorCollector:
    """What the supervisor knows, read at scrape time."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        sup = self.supervisor
        yield GaugeMetricFamily(
            "squall_workers_ready", "Worker processes serving.", value=len(sup.ready_pids())
        )
        yield GaugeMetricFamily(
            "squall_workers_target", "Worker processes wanted.", value=sup.target
        )
        yield CounterMetricFamily(
            "squall_worker_restarts",
            "Workers started to replace one that exited (crashed, stuck or recycled).",
            value=sup.restarts,
        )
        yield GaugeMetricFamily(
            "squall_server_draining",
            "1 while the server stops gracefully.",
            value=int(sup.stopping),
        )


async def start_metrics_server(supervisor: Supervisor, bind: str) -> SupervisorMetrics:
    """Serve the metrics and health endpoints on ``bind`` from the supervisor.

    Raises:
        UsageError: prometheus_client is missing, or the address cannot be bound.
    """
    from squall.cli._sockets import bind_all, describe
    from squall.httpserver import HTTPServer

    metrics = SupervisorMetrics(supervisor)
    try:
        sockets = bind_all([bind], 128)
    except UsageError as exc:
        metrics.close()
        raise UsageError(f"--metrics-bind: {exc}") from None
    server = HTTPServer(metrics.handle)
    server.add_sockets(sockets)
    metrics.server = server
    import logging

    for sock in sockets:
        logging.getLogger("squall.general").info("Metrics on %s/metrics", describe(sock))
    return metrics


class WorkerMetrics:
    """A worker's side: counts requests, samples its gauges.

    Created only when the supervisor asked for metrics (``--metrics-bind``).
    """

    def __init__(self) -> None:
        client = _import_client()
        labels = ("method", "route", "status")
        self.requests = client.Counter(
            "squall_requests", "HTTP requests answered.", labels, registry=None
        )
        self.duration = client.Histogram(
            "squall_request_duration_seconds",
            "Time from a request's head to the end of its response.",
            ("method", "route"),
            buckets=_BUCKETS,
            registry=None,
        )
        self.in_flight = client.Gauge(
            "squall_requests_in_flight",
            "Requests received and not yet answered.",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.connections = client.Gauge(
            "squall_open_connections",
            "Open client connections by protocol.",
            ("protocol",),
            registry=None,
            multiprocess_mode="livesum",
        )
        self.draining = client.Gauge(
            "squall_workers_draining",
            "Workers draining (finishing their requests before they exit).",
            registry=None,
            multiprocess_mode="livesum",
        )
        # Children by label values: labels() costs a lock and a tuple each time.
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}
        self._routes: dict[Any, str] = {}
        self._app: Any = None
        self._active: Any = None
        self._server: Any = None

    def attach(self, app: Any, server: Any, serving: Any) -> None:
        """What to sample: the application (for route names), the server, its `ServingDelegate`."""
        self._app = app
        self._server = server
        self._active = serving
        for protocol in ("http/1.1", "h2", "websocket"):
            self.connections.labels(protocol).set(0)

    def observe(self, exchange: Any) -> None:
        """One finished request (called by `ServingDelegate`)."""
        start_line = exchange.start_line
        method = start_line.method if start_line is not None else "-"
        route = self._route(exchange.delegate)
        status = exchange._status // 100
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(
                method, route, _STATUS_CLASSES.get(status, "other")
            )
        counter.inc()
        hkey = (method, route)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = self.duration.labels(method, route)
        histogram.observe(time.monotonic() - exchange._start)

    def _route(self, delegate: Any) -> str:
        """The route's name (or pattern) for a Squall Application's request, else ``-``."""
        # An Application's delegate holds the handler class itself (a
        # literal route) or in the delegate its router picked.
        handler_class = None
        for _ in range(3):
            if delegate is None:
                break
            handler_class = getattr(delegate, "handler_class", None)
            if handler_class is not None:
                break
            delegate = getattr(delegate, "delegate", None)
        if handler_class is None:
            return "-"
        route = self._routes.get(handler_class)
        if route is None:
            route = self._routes[handler_class] = _route_name(self._app, handler_class)
        return route

    def sample(self) -> None:
        """Set the gauges from the server's state."""
        server = self._server
        if server is None:
            return
        counts = {"http/1.1": 0, "h2": 0}
        for conn in server._connections:
            counts["h2" if "H2" in type(conn).__name__ else "http/1.1"] += 1
        for protocol, count in counts.items():
            self.connections.labels(protocol).set(count)
        self.connections.labels("websocket").set(len(server._detached))
        if self._active is not None:
            self.in_flight.set(self._active.active)

    def start_sampling(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            self.sample()
            loop.call_later(_SAMPLE_INTERVAL, tick)

        tick()


def _route_name(app: Any, handler_class: type) -> str:
    router = getattr(app, "wildcard_router", None)
    for rule in getattr(router, "rules", ()):
        if rule.target is handler_class:
            if rule.name:
                return str(rule.name)
            pattern = getattr(getattr(rule.matcher, "regex", None), "pattern", None)
            if pattern:
                return str(pattern).removesuffix("$")
    return handler_class.__name__
