"""One serving process: load TARGET, serve the sockets, drain on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Optional

from squall.cli._link import WorkerLink
from squall.cli._logging import flush_access_log
from squall.cli._options import Config, StartupError, UsageError, webtransport_limits
from squall.cli._serving import (
    ProxyHeaders,
    RequestIds,
    RequestIdTransform,
    ServingDelegate,
    TrustedPeers,
    header_editor,
    headers_transform,
    request_logger,
    wsgi_logger,
)
from squall.cli._target import Served, load, serve_target
from squall.httpserver import HTTPServer

__all__ = ["build_server", "run_worker"]

log = logging.getLogger("squall.general")


_CERT_REQS = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL, "required": ssl.CERT_REQUIRED}


def ssl_context(config: Config) -> Optional[ssl.SSLContext]:
    """The server's TLS context from the ``--certfile``/``--ssl-*`` options, or None.

    Raises:
        UsageError: a file that cannot be loaded, a wrong key password, or a
            cipher list OpenSSL does not take.
    """
    if not config.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(config.certfile, config.keyfile, config.ssl_keyfile_password)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(
            f"--certfile/--keyfile: cannot load {config.certfile} / {config.keyfile}: {exc}"
        ) from None
    if config.ssl_ca_certs:
        try:
            context.load_verify_locations(config.ssl_ca_certs)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"--ssl-ca-certs: cannot load {config.ssl_ca_certs}: {exc}") from None
    context.verify_mode = _CERT_REQS[config.ssl_cert_reqs]
    if config.ssl_ciphers:
        try:
            context.set_ciphers(config.ssl_ciphers)
        except ssl.SSLError as exc:
            raise UsageError(f"--ssl-ciphers {config.ssl_ciphers!r}: {exc}") from None
    return context


def _reload_certificate(config: Config, server: HTTPServer) -> None:
    """SIGHUP without a supervisor: read ``--certfile``/``--keyfile`` again.

    New connections get the new certificate; open ones keep theirs. A
    certificate that does not load is logged and the old one serves on.
    (Under a supervisor, SIGHUP replaces the workers, each of which reads
    the files as it starts.)
    """
    try:
        server.reload_ssl(ssl_context(config))
    except (UsageError, OSError, ValueError) as exc:
        log.error("SIGHUP: the certificate was not reloaded (the old one serves on): %s", exc)
        return
    log.info("SIGHUP: certificate reloaded from %s", config.certfile)


def build_server(
    config: Config,
    served: Served,
    on_request_done: Optional[Callable[[int], None]] = None,
    metrics: Any = None,
) -> tuple[HTTPServer, Optional[ServingDelegate]]:
    """The `HTTPServer` for ``served`` with the options of ``config``.

    The access log, the request count (``--max-requests``) and the
    metrics use the application's own per-request hook where it has one
    (an Application's ``log_function``, WSGIContainer's log), which costs
    less than following every response; proxy headers and the root path
    only look at the head.
    """
    from squall.web import Application

    callback: Any = served.callback
    app = served.app
    fmt = config.access_log_format if config.access_log else None
    # What the ServingDelegate still has to do by following responses.
    track_fmt: Optional[str] = fmt
    track_done = on_request_done
    track_metrics = metrics
    if served.kind == "squall" and isinstance(app, Application):
        # The operator's options win over the application's settings.
        for option, setting in (
            (config.ws_max_size, "websocket_max_message_size"),
            (config.ws_ping_interval, "websocket_ping_interval"),
            (config.ws_ping_timeout, "websocket_ping_timeout"),
        ):
            if option is not None:
                app.settings[setting] = option or None
    if (
        served.kind == "squall"
        and isinstance(app, Application)
        and type(app).log_request is Application.log_request
    ):
        own = app.settings.get("log_function")
        if own is None:
            # Our line replaces Tornado's, so that requests are logged once.
            app.settings["log_function"] = request_logger(fmt, on_request_done, metrics)
        elif on_request_done is not None or metrics is not None:
            # The application logs its own way; count around it.
            counter = request_logger(None, on_request_done, metrics)

            def both(handler: Any) -> None:
                own(handler)
                counter(handler)

            app.settings["log_function"] = both
        track_fmt, track_done, track_metrics = None, None, None
    elif served.kind == "wsgi":
        callback._log = wsgi_logger(fmt, on_request_done, metrics)
        track_fmt, track_done, track_metrics = None, None, None
    trusted = (
        ProxyHeaders(config.proxy_header_style, TrustedPeers(config.forwarded_allow_ips))
        if config.proxy_headers
        else None
    )
    strip_root = config.root_path.rstrip("/") if served.kind != "asgi" else ""
    ids = RequestIds(TrustedPeers(config.forwarded_allow_ips)) if config.request_id else None
    # The response's copy of the id: an Application's transform, else the exchange.
    track_ids = ids is not None
    if ids is not None and served.kind == "squall" and isinstance(app, Application):
        app.transforms.append(RequestIdTransform)  # type: ignore[arg-type]  # duck-typed
        track_ids = False
    # --header, --no-server-header: an Application's transform, else the exchange.
    edit_head = header_editor(config.headers, config.server_header)
    if edit_head is not None and served.kind == "squall" and isinstance(app, Application):
        app.transforms.append(headers_transform(edit_head))
        edit_head = None
    track = (
        track_fmt is not None
        or track_done is not None
        or config.limit_concurrency is not None
        or track_ids
        or track_metrics is not None
        or edit_head is not None
    )
    if trusted is not None and not track and ids is None and served.kind == "asgi":
        from squall.asgi import ASGIServerDelegate

        if type(callback) is ASGIServerDelegate:
            # The scope is built with the client and scheme the proxy
            # headers name: no delegate in front (it cost about 8,000
            # instructions a request).
            callback._proxy = trusted.resolve
            trusted = None
    serving: Optional[ServingDelegate] = None
    if track or trusted is not None or strip_root or ids is not None:
        serving = ServingDelegate(
            callback,
            proxy_headers=trusted,
            strip_root=strip_root,
            access_format=track_fmt,
            limit_concurrency=config.limit_concurrency,
            on_request_done=track_done,
            track=track,
            request_ids=ids,
            metrics=track_metrics,
            edit_head=edit_head,
        )
        callback = serving
    extra: dict[str, Any] = {}
    if config.http2:
        extra["http2"] = True
        # Behind a proxy, an h2c upgrade would tunnel past it: the proxy
        # would pass on bytes it no longer parses as HTTP/1.1.
        upgrade = config.h2c_upgrade
        extra["h2c_upgrade"] = not config.proxy_headers if upgrade is None else upgrade
    if config.http3:
        extra["http3"] = {
            "certfile": config.certfile,
            "keyfile": config.keyfile,
            "password": config.ssl_keyfile_password,
        }
        extra["http3_retry_threshold"] = config.http3_retry_threshold
        extra["http3_max_half_open"] = config.http3_max_half_open
    try:
        server = HTTPServer(
            callback,
            ssl_options=ssl_context(config),
            idle_connection_timeout=config.timeout_keep_alive or None,
            header_timeout=config.timeout_header or None,
            body_timeout=config.timeout_body,
            **extra,
        )
    except ImportError as exc:
        flag = "--http3" if config.http3 else "--http2"
        raise UsageError(f"{flag}: {exc}") from None
    except ValueError as exc:
        if not config.http3:
            raise
        raise UsageError(f"--http3: {exc}") from None
    return server, serving


def warn_process_local_pubsub(app: Any, workers: int) -> bool:
    """Log one warning when ``app`` keeps a process-local pub/sub (``memory://``).

    Each worker would have a channel of its own: a publication reaches the
    subscribers of one worker, and positions alternate between epochs.
    Returns whether it warned.
    """
    settings = getattr(app, "settings", None)
    if not isinstance(settings, dict) or "squall.pubsub" not in sys.modules:
        return False
    from squall.pubsub import LocalPubSub

    for name, value in settings.items():
        if isinstance(value, LocalPubSub):
            log.warning(
                "settings[%r] is a process-local pub/sub (memory://) under --workers %d: "
                "each worker has its own channels; give a broker (redis://...) to share them",
                name,
                workers,
            )
            return True
    return False


def _no_log(*args: Any) -> None:
    pass


async def serve(
    config: Config,
    sockets: list[socket.socket],
    link: Optional[WorkerLink] = None,
    announce: Optional[Callable[[], None]] = None,
) -> int:
    """Serve until SIGTERM/SIGINT (or ``--max-requests``), then drain.

    Args:
        config: the options.
        sockets: listening sockets, already bound.
        link: the pipe to the supervisor (ready, heartbeats), if supervised.
        announce: called once the target is loaded and started, before
            serving (``squall run`` logs its "Listening on" lines there, so
            that a bad target is not announced first).

    Returns:
        The process exit status.

    Raises:
        UsageError: a bad target or option.
        StartupError: the application's startup (ASGI lifespan) failed.
    """
    loop = asyncio.get_running_loop()
    asgi_wrapper = None
    if config.opentelemetry:
        from squall.cli._otel import instrument_squall, wrap_asgi

        # Before the application is imported: its handlers are then traced.
        instrument_squall()
        asgi_wrapper = wrap_asgi
    served = serve_target(
        load(config.target, config.app_dir),
        config.target,
        config.root_path,
        config.factory,
        lifespan=config.lifespan,
        ws_max_size=config.ws_max_size,
        ws_ping_interval=config.ws_ping_interval,
        asgi_wrapper=asgi_wrapper,
        webtransport=webtransport_limits(config),
        interface=config.interface,
    )
    if config.workers > 1 and os.environ.get("SQUALL_WORKER_FIRST") == "1":
        warn_process_local_pubsub(served.app, config.workers)
    if served.startup is not None:
        try:
            await served.startup()
        except RuntimeError as exc:  # squall.asgi.LifespanFailure
            raise StartupError(_sentence(str(exc))) from None
    if announce is not None:
        announce()
    stop = asyncio.Event()
    reason = ["signal"]
    on_done = None
    if config.max_requests:
        limit = config.max_requests + random.randint(0, config.max_requests_jitter)

        def on_done(count: int) -> None:
            if count >= limit and not stop.is_set():
                reason[0] = f"served {count} requests (--max-requests)"
                stop.set()

    metrics = None
    if link is not None and os.environ.get("SQUALL_WORKER_METRICS") == "1":
        from squall.cli._metrics import WorkerMetrics

        metrics = WorkerMetrics()
    server, serving = build_server(config, served, on_done, metrics)
    server.add_sockets(sockets)
    if metrics is not None:
        metrics.attach(served.app, server)
        metrics.start_sampling(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    supervisor_signals = (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU)
    if link is None:
        # One process, no supervisor: these would otherwise end (HUP) or
        # suspend (TTIN, TTOU) the server.
        def unsupervised(sig: signal.Signals) -> None:
            log.warning(
                "%s ignored: restarts and worker counts need the supervisor "
                "(--workers 2 or more, or --max-requests)",
                sig.name,
            )

        for sig in supervisor_signals:
            if sig == signal.SIGHUP and config.certfile:
                loop.add_signal_handler(sig, _reload_certificate, config, server)
            else:
                loop.add_signal_handler(sig, unsupervised, sig)
    if link is not None:
        # Under a supervisor: if it dies (SIGKILL, OOM), stop rather than
        # serve on unsupervised.
        parent = os.getppid()

        def check_parent() -> None:
            if os.getppid() != parent:
                reason[0] = "the supervisor is gone"
                stop.set()
            elif not stop.is_set():
                loop.call_later(1.0, check_parent)

        loop.call_later(1.0, check_parent)
        if config.timeout_worker_healthcheck:
            _start_heartbeat(loop, link, config.timeout_worker_healthcheck)
        link.ready()

    log.info("Worker %d serving (%s app %s)", os.getpid(), served.kind, config.target)
    await stop.wait()
    if link is not None:
        link.draining()
    if metrics is not None:
        metrics.draining.set(1)
    log.info(
        "Worker %d draining (%s); %d connection(s) open",
        os.getpid(),
        reason[0],
        len(server._connections) + len(server._detached),
    )
    # Server-Sent Events streams never end by themselves: end them now, so
    # that their clients reconnect (with their Last-Event-ID) elsewhere
    # rather than being cut at the drain's deadline.
    from squall.web import EventSourceHandler

    EventSourceHandler.end_all()
    drain = asyncio.ensure_future(server.drain(config.timeout_graceful_shutdown))
    forced = []

    def force() -> None:
        if not drain.done():
            log.warning("Worker %d: interrupted again, stopping now", os.getpid())
            forced.append(True)
            drain.cancel()

    # While draining, TERM changes nothing (after a Ctrl-C in a terminal, the
    # supervisor's TERM follows the INT every worker got); a second INT is
    # the user insisting.
    loop.add_signal_handler(signal.SIGTERM, _no_log)
    loop.add_signal_handler(signal.SIGINT, force)
    try:
        try:
            clean = await drain
        except asyncio.CancelledError:
            if not forced:
                raise
            clean = await server.drain(0)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if link is None:
            for sig in supervisor_signals:
                loop.remove_signal_handler(sig)
    if not clean:
        log.warning("Worker %d: graceful shutdown timed out; aborted the rest", os.getpid())
    wait_requests = getattr(served.callback, "wait_requests", None)
    if wait_requests is not None:
        # ASGI request tasks outlive an aborted connection (the app sees
        # http.disconnect): give them a moment to end before the lifespan's.
        await wait_requests(timeout=1.0)
    if served.shutdown is not None:
        try:
            await served.shutdown()
        except RuntimeError as exc:
            log.error("%s", _sentence(str(exc)))
            return 1
    flush_access_log()
    if metrics is not None:
        metrics.sample()  # the last counts, before the process ends
    log.info("Worker %d stopped", os.getpid())
    return 0


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _start_heartbeat(loop: asyncio.AbstractEventLoop, link: WorkerLink, timeout: float) -> None:
    """Tell the supervisor, from a loop callback, that the loop still turns."""
    interval = min(1.0, timeout / 4)

    def beat() -> None:
        link.beat()
        loop.call_later(interval, beat)

    loop.call_later(interval, beat)


def run_worker(
    config: Config,
    sockets: list[socket.socket],
    link: Optional[WorkerLink] = None,
    announce: Optional[Callable[[], None]] = None,
) -> int:
    """Run `serve` on a fresh event loop (uvloop's when installed)."""
    # The loop is started outside the ``except ImportError`` block: inside it,
    # every traceback the worker prints (a handler's 500, the debug page, a
    # failed import) would begin with uvloop's ModuleNotFoundError as its
    # context, which reads as if uvloop were required.
    runner: Callable[[Coroutine[Any, Any, int]], int] = asyncio.run
    if config.loop != "asyncio":  # auto or uvloop (parse_config checked it is there)
        try:
            import uvloop
        except ImportError:
            pass
        else:
            runner = uvloop.run
    return runner(serve(config, sockets, link, announce))
