"""``--metrics-bind``: Prometheus metrics and health checks, on an address of their own.

The supervisor serves ``/metrics``, ``/livez`` and ``/readyz`` on the
``--metrics-bind`` address (never on the application's). The numbers are
`prometheus_client`'s multiprocess mode (``pip install squall[metrics]``):
every worker writes its counters to memory-mapped files in a directory
the supervisor makes (or ``$PROMETHEUS_MULTIPROC_DIR``), and a scrape adds
them up, the workers that have exited included, so counts stay right
across restarts. What the supervisor knows itself (workers ready,
restarts, draining) is read from it at scrape time.

Per request, a worker counts it by method, route (a Squall
Application's route name, else its pattern; ``-`` for ASGI and WSGI) and
status class. Every label value comes from a fixed set, so the number of
series is bounded however the clients behave: a method outside RFC 9110's
and RFC 5789's is counted as ``other``, a handler class that is none of
the application's routes (a 404's) by its class name, with at most
`_MAX_OTHER_ROUTES` such names and ``other`` beyond (unbounded, 5,000
made-up methods made 85,000 lines and 76 MB). It counts and its duration into the histogram's buckets, in plain
Python lists; once a second these go to prometheus_client, and
connections by protocol and requests in flight are sampled from the
server. Nothing of this exists unless
``--metrics-bind`` is given: the serving path is then exactly the one
without metrics.

Health: ``/livez`` answers 200 while the supervisor's loop runs;
``/readyz`` answers 200 when at least one worker serves and the server is
not stopping, 503 otherwise (while starting, and while draining), with
the reason in the body. A 200 says "degraded" when a worker's
``squall.pubsub`` engine cannot reach its broker (sampled once a second).
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional, Protocol

from squall.cli._options import UsageError
from squall.log import gen_log

if TYPE_CHECKING:
    from squall.httpserver import HTTPServer
    from squall.httputil import HTTPServerRequest

__all__ = ["SupervisorMetrics", "WorkerCensus", "WorkerMetrics", "start_metrics_server"]

_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds between two samples of a worker's gauges.
_SAMPLE_INTERVAL = 1.0
# Seconds: HTTP request latencies, from a fast cached answer to a slow report.
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_STATUS_CLASSES = {n: f"{n}xx" for n in range(1, 6)}
# The method label's values: a client's made-up token is "other".
_METHODS = {
    m: m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")
}
# squall.pubsub's Status counters, as gauges of per-process totals.
_PUBSUB_COUNTERS = {
    "published": "Publications sent through squall.pubsub.",
    "delivered": "Publications handed to local subscribers.",
    "dropped": "Publications a slow local subscriber discarded.",
    "missed": "Publications never received (a broker outage past the history kept).",
    "resubscribes": "Times squall.pubsub subscribed again after losing its broker.",
    "renewed": "Channels moved to a new epoch after a failover lost writes.",
}
# Handler classes named by class name (not one of the application's
# routes): a few for the 404 and redirect handlers, "other" past these.
_MAX_OTHER_ROUTES = 16


class WorkerCensus(Protocol):
    """What the metrics read of the supervisor (`_supervisor.Supervisor`),
    declared here so that the supervisor imports the metrics and not the
    other way round."""

    #: Worker processes wanted.
    target: int
    #: Workers started to replace one that exited.
    restarts: int
    #: The server stops gracefully.
    stopping: bool
    #: A worker has been ready at least once.
    ever_ready: bool

    def ready_pids(self) -> set[int]:
        """The workers serving now."""


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

    def __init__(self, supervisor: WorkerCensus) -> None:
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
        self.registry.register(_WorkerFiles(multiprocess, self.directory))
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
            try:
                body = self._client.generate_latest(self.registry)
            except Exception as exc:
                # A scrape that cannot be answered is answered 500, with
                # why: the scraper records a failed scrape instead of a
                # connection closed under it.
                gen_log.error("Metrics scrape failed", exc_info=True)
                message = f"metrics unavailable: {type(exc).__name__}: {exc}\n"
                self._answer(request, 500, message.encode())
                return
            self._answer(request, 200, body, self._client.CONTENT_TYPE_LATEST)
        elif path in ("/livez", "/healthz"):
            self._answer(request, 200, b"ok\n")
        elif path == "/readyz":
            reason = self.not_ready()
            if reason is None:
                self._answer(request, 200, self._ready_body())
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

    def _ready_body(self) -> bytes:
        """``ready``, saying so when squall.pubsub lost its broker in some worker.

        Still 200: such a node keeps serving its local subscribers (and
        everything else), so a load balancer should keep it.
        """
        unhealthy = 0.0
        try:
            for family in self.registry.collect():
                if family.name == "squall_pubsub_unhealthy":
                    unhealthy += sum(sample.value for sample in family.samples)
        except Exception:  # the files are /metrics' business; readiness stays
            gen_log.debug("readyz: metrics unreadable", exc_info=True)
        if unhealthy > 0:
            return (
                f"ready (degraded: the pub/sub broker is unreachable from {int(unhealthy)} "
                "engine(s); local subscribers are still served)\n"
            ).encode()
        return b"ready\n"

    @staticmethod
    def _answer(
        request: HTTPServerRequest, status: int, body: bytes, kind: str = "text/plain"
    ) -> None:
        from squall.httputil import HTTPHeaders, ResponseStartLine, responses

        conn = request.connection
        assert conn is not None
        headers = HTTPHeaders(
            {"Content-Type": kind, "Content-Length": str(len(body)), "Cache-Control": "no-store"}
        )
        conn.write_headers(ResponseStartLine("HTTP/1.1", status, responses[status]), headers, body)
        conn.finish()


class _WorkerFiles:
    """prometheus_client's MultiProcessCollector over the workers' files,
    leaving out a file a worker is still creating.

    prometheus_client makes a worker's file and sizes it in two steps, and
    reading a file still shorter than its 8-byte header raises (struct.error)
    and fails the whole scrape: a scrape as a worker first writes its
    metrics (once a second, or as it starts) could get the connection
    closed. Such a file holds nothing yet, and the next scrape reads it.
    """

    _HEADER = 8

    def __init__(self, multiprocess: Any, directory: str) -> None:
        self._merge = multiprocess.MultiProcessCollector.merge
        self._pattern = os.path.join(directory, "*.db")

    def collect(self) -> Any:
        settled = []
        for name in glob.glob(self._pattern):
            try:
                size = os.stat(name).st_size
            except FileNotFoundError:  # a live gauge's, its worker gone
                continue
            if size >= self._HEADER:
                settled.append(name)
        return self._merge(settled, accumulate=True)


class _SupervisorCollector:
    """What the supervisor knows, read at scrape time."""

    def __init__(self, supervisor: WorkerCensus) -> None:
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


async def start_metrics_server(supervisor: WorkerCensus, bind: str) -> SupervisorMetrics:
    """Serve the metrics and health endpoints on ``bind`` from the supervisor.

    Raises:
        UsageError: prometheus_client is missing, or the address cannot be bound.
    """
    from squall.cli._sockets import bind_all, describe
    from squall.httpserver import HTTPServer

    metrics = SupervisorMetrics(supervisor)
    try:
        sockets = bind_all([bind], 128, option="--metrics-bind")
    except UsageError:
        metrics.close()
        raise
    server = HTTPServer(metrics.handle)
    server.add_sockets(sockets)
    metrics.server = server
    for sock in sockets:
        gen_log.info("Metrics on %s/metrics", describe(sock))
    return metrics


class WorkerMetrics:
    """A worker's side: counts requests, samples its gauges.

    Created only when the supervisor asked for metrics (``--metrics-bind``).
    A request costs `record`: a few dictionary and list updates. The counts
    go to prometheus_client's memory-mapped values once a second (and when
    the worker stops), not per request: a write into them takes a lock and
    costs several times more. A worker killed outright (SIGKILL) loses at
    most its last second of counts.
    """

    def __init__(self) -> None:
        client = _import_client()
        self.requests = client.Counter(
            "squall_requests",
            "HTTP requests answered.",
            ("method", "route", "status"),
            registry=None,
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
        # squall.pubsub's engines in this worker (sampled; per-process totals).
        self.pubsub = {
            name: client.Gauge(
                f"squall_pubsub_{name}",
                text,
                registry=None,
                multiprocess_mode="livesum",
            )
            for name, text in _PUBSUB_COUNTERS.items()
        }
        self.pubsub_unhealthy = client.Gauge(
            "squall_pubsub_unhealthy",
            "Pub/sub engines that cannot reach their broker now (local subscribers still served).",
            registry=None,
            multiprocess_mode="livesum",
        )
        self.pubsub_round_trip = client.Gauge(
            "squall_pubsub_round_trip_seconds",
            "The last publish's round trip to the broker (the slowest worker's).",
            registry=None,
            multiprocess_mode="livemax",
        )
        # (method, handler class or None, status // 100) -> [count, sum, bucket counts...]
        self._pending: dict[tuple[str, Any, int], list[float]] = {}
        self._routes: dict[Any, str] = {None: "-"}
        self._other_routes = 0
        self._app: Any = None
        self._server: Any = None

    def attach(self, app: Any, server: Any) -> None:
        """What to sample: the application (for route names) and its server."""
        self._app = app
        self._server = server
        for protocol in ("http/1.1", "h2", "h3", "websocket"):
            self.connections.labels(protocol).set(0)

    def record(self, method: str, handler_class: Any, status: int, seconds: float) -> None:
        """One finished request (per request: keep it cheap)."""
        key = (_METHODS.get(method, "other"), handler_class, status // 100)
        entry = self._pending.get(key)
        if entry is None:
            entry = self._pending[key] = [0.0] * (len(_BUCKETS) + 3)
        entry[0] += 1
        entry[1] += seconds
        # Prometheus buckets count observations <= their bound; the last is +Inf.
        entry[2 + bisect_left(_BUCKETS, seconds)] += 1

    def observe(self, exchange: Any) -> None:
        """One finished request followed by `ServingDelegate` (ASGI, or an app of its own)."""
        start_line = exchange.start_line
        self.record(
            start_line.method if start_line is not None else "-",
            _handler_class(exchange.delegate),
            exchange.status,
            time.monotonic() - exchange.started,
        )

    def flush(self) -> None:
        """Move the counts kept since the last flush into prometheus_client's values."""
        pending, self._pending = self._pending, {}
        for (method, handler_class, status), entry in pending.items():
            route = self._routes.get(handler_class)
            if route is None:
                route = self._route_label(handler_class)
            self.requests.labels(method, route, _STATUS_CLASSES.get(status, "other")).inc(entry[0])
            child = self.duration.labels(method, route)
            # No bulk observe in prometheus_client: its per-bucket values.
            child._sum.inc(entry[1])
            for index, count in enumerate(entry[2:]):
                if count:
                    child._buckets[index].inc(count)

    def _route_label(self, handler_class: Any) -> str:
        name, is_route = _route_name(self._app, handler_class)
        if not is_route:
            if self._other_routes >= _MAX_OTHER_ROUTES:
                # Not remembered either: the cache stays bounded too.
                return "other"
            self._other_routes += 1
        self._routes[handler_class] = name
        return name

    def sample(self) -> None:
        """Flush the counts; set the gauges from the server's connections and pub/sub."""
        self.flush()
        self._sample_pubsub()
        server = self._server
        if server is None:
            return
        counts = {"http/1.1": 0, "h2": 0, "h3": 0}
        busy = tunnels = 0
        for conn in server._connections:
            # Every connection the server holds declares census(): its
            # drivers' and handle_stream's HTTP1ServerConnection.
            label, in_flight, held = conn.census()
            counts[label] += 1
            busy += in_flight
            tunnels += held
        for label, count in counts.items():
            self.connections.labels(label).set(count)
        self.connections.labels("websocket").set(len(server._detached) + tunnels)
        self.in_flight.set(busy)

    def _sample_pubsub(self) -> None:
        import sys

        pubsub = sys.modules.get("squall.pubsub")
        if pubsub is None:  # the application uses none
            return
        statuses = [p.status for p in pubsub.instances()]
        for name, gauge in self.pubsub.items():
            gauge.set(sum(getattr(status, name) for status in statuses))
        self.pubsub_unhealthy.set(sum(not status.healthy for status in statuses))
        self.pubsub_round_trip.set(max((s.round_trip for s in statuses), default=0.0))

    def start_sampling(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            self.sample()
            loop.call_later(_SAMPLE_INTERVAL, tick)

        tick()


def _handler_class(delegate: Any) -> Any:
    """The RequestHandler class serving a Squall Application's request, or None."""
    # The Application's delegate holds it (a literal route) or the
    # delegate its router picked does.
    for _ in range(3):
        if delegate is None:
            return None
        handler_class = getattr(delegate, "handler_class", None)
        if handler_class is not None:
            return handler_class
        delegate = getattr(delegate, "delegate", None)
    return None


def _route_name(app: Any, handler_class: Any) -> tuple[str, bool]:
    """A route's label: its name, else its pattern, else the handler class's
    name; and whether the class is one of the application's routes."""
    router = getattr(app, "wildcard_router", None)
    for rule in getattr(router, "rules", ()):
        if rule.target is handler_class:
            if rule.name:
                return str(rule.name), True
            pattern = getattr(getattr(rule.matcher, "regex", None), "pattern", None)
            if pattern:
                return str(pattern).removesuffix("$"), True
    return str(getattr(handler_class, "__name__", handler_class)), False
