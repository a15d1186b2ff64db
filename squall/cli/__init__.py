"""The ``squall`` command: ``squall run TARGET [OPTIONS]`` (also ``python -m squall``).

Serves a Squall/Tornado `~squall.web.Application`, an ASGI or a WSGI
application with production defaults: several worker processes under a
supervisor, graceful drain on SIGTERM, rolling restart on SIGHUP, proxy
headers, an access log and protective timeouts. ``squall --help`` lists
the options; each has a ``SQUALL_*`` environment variable twin.

A program written for Tornado is served unchanged: when no Tornado is
installed, every ``squall`` process (supervisor and workers) makes
``import tornado`` give Squall's modules (`squall.compat`), and sets
``SQUALL_TORNADO_ALIAS=1`` in the environment its workers and the
application's subprocesses inherit. ``SQUALL_TORNADO_ALIAS=1`` forces the
alias even where a real Tornado is installed; ``0`` turns it off.

Layout: ``_options`` (parser, `Config`), ``_target`` (what TARGET is),
``_sockets`` (``--bind``), ``_serving`` (proxy headers, access log,
request ids, limits), ``_worker`` (one serving process), ``_supervisor``
(workers, signals, reload, stuck workers), ``_link`` (the worker's pipe to
the supervisor), ``_metrics`` (Prometheus and health), ``_reload`` (the
file watcher), ``_logging``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Optional

from squall.cli._alias import TORNADO_ALIAS_ENV as TORNADO_ALIAS_ENV
from squall.cli._alias import tornado_alias as tornado_alias
from squall.cli._options import Config, UsageError, build_parser, parse_config

__all__ = ["Config", "UsageError", "main", "run"]

log = logging.getLogger("squall.general")

_TOP_USAGE = """usage: squall run [OPTIONS] TARGET

Commands:
  run TARGET    serve module:attribute (an Application, ASGI or WSGI app)

"""


def _setup_logging(level: str, log_config: Optional[str] = None) -> None:
    from squall.cli._logging import setup_logging

    setup_logging(level, log_config)


# An option, the module it needs, and what to install for it.
_EXTRAS = (
    (
        "metrics_bind",
        "prometheus_client",
        "--metrics-bind needs prometheus_client: pip install 'squall[metrics]'",
    ),
    (
        "opentelemetry",
        "opentelemetry.instrumentation.tornado",
        "--opentelemetry needs opentelemetry-instrumentation-tornado: "
        "pip install 'squall[opentelemetry]'",
    ),
)


def _check_extras(config: Config) -> None:
    """Refuse an option whose optional dependency is not installed.

    Raises:
        UsageError: naming the option and what to install.
    """
    import importlib.util

    for attribute, module, message in _EXTRAS:
        if not getattr(config, attribute):
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            raise UsageError(message)


def _raise_descriptor_limit() -> None:
    """Lets this process, and the workers it starts, open as many descriptors as allowed.

    Every connection, WebSocket included, is a descriptor. The soft limit a
    service inherits is often 1024 (systemd's default), far under its hard
    limit: past it, accept() fails with EMFILE and the loop stops accepting
    for a while. The soft limit is raised to the hard one (bounded by the
    kernel's nr_open), as Go's runtime and Node.js do at start.
    """
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard
    if hard == resource.RLIM_INFINITY:
        try:
            with open("/proc/sys/fs/nr_open") as f:
                target = int(f.read())
        except (OSError, ValueError):
            target = 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return
        log.debug("descriptor limit raised from %d to %d", soft, target)


def h2c_note(config: Config) -> str:
    """Why ``curl --http2`` gets HTTP/1.1 from this server, or ``""``.

    With ``--http2`` on a plain port, HTTP/2 is taken by prior knowledge
    always, but the ``Upgrade: h2c`` that ``curl --http2`` sends only with
    ``--no-proxy-headers`` or ``--h2c-upgrade``: behind a proxy, the upgrade
    would make the proxied connection a tunnel the proxy no longer reads.
    """
    if not config.http2 or config.certfile:
        return ""
    upgrade = config.h2c_upgrade
    if upgrade is None:
        upgrade = not config.proxy_headers
    if upgrade:
        return ""
    return (
        "HTTP/2 without TLS: by prior knowledge only (curl --http2-prior-knowledge); "
        "Upgrade: h2c (curl --http2) is answered in HTTP/1.1 because proxy headers are "
        "trusted; --h2c-upgrade takes it"
    )


def run(config: Config) -> int:
    """Serve ``config.target`` as ``squall run`` does; returns the exit status.

    One worker without ``--reload`` or ``--max-requests`` is served in this
    process; otherwise a supervisor starts worker processes.

    Raises:
        UsageError: a bad option, address or target.
    """
    from squall.cli._options import StartupError
    from squall.cli._sockets import bind_all, describe, unix_paths, unlink_unix
    from squall.cli._target import check_importable

    # What can be known to fail is refused before anything is bound or
    # announced: "Listening on ..." followed by an error misleads.
    check_importable(config.target, config.app_dir)
    _check_extras(config)
    _raise_descriptor_limit()
    sockets = bind_all(config.bind, config.backlog, config.reuse_port)
    paths = unix_paths(sockets)

    def announce() -> None:
        tls = bool(config.certfile)
        for sock in sockets:
            # Tests and scripts read this line for the address (port 0 included).
            log.info("Listening on %s", describe(sock, tls))
        why = h2c_note(config)
        if why:
            log.info("%s", why)
        if config.http3:
            try:
                from squall._quicstack import describe as quic_stack
            except ImportError:  # the worker says so, naming the extra
                pass
            else:
                log.info("HTTP/3 on %s (SQUALL_QUIC=aioquic or qh3 picks the stack)", quic_stack())
        sys.stderr.flush()

    try:
        if (
            config.workers == 1
            and not config.reload
            and not config.max_requests
            and not config.metrics_bind
        ):
            from squall.cli._worker import run_worker

            try:
                # Announced once the target is loaded and started.
                return run_worker(config, sockets, announce=announce)
            except StartupError as exc:
                log.error("%s", exc)
                return 1
        from squall.cli._supervisor import Supervisor

        if config.reload:
            # In development the supervisor waits for a broken application
            # to be fixed: the address is wanted meanwhile.
            announce()
            return asyncio.run(Supervisor(config, sockets).run())
        return asyncio.run(Supervisor(config, sockets, announce).run())
    finally:
        unlink_unix(paths)
        for sock in sockets:
            sock.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console entry point; returns the exit status (2 for a usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["__worker"]:
        from squall.cli._supervisor import worker_main

        # The supervisor checked the log configuration: it loads here too.
        _setup_logging(
            os.environ.get("SQUALL_WORKER_LOG_LEVEL", "info"),
            os.environ.get("SQUALL_WORKER_LOG_CONFIG") or None,
        )
        tornado_alias()
        return worker_main()
    if not args or args[0] in ("-h", "--help", "help"):
        sys.stdout.write(_TOP_USAGE)
        sys.stdout.write(build_parser().format_help().split("\n", 1)[1])
        return 0
    if args[0] in ("-V", "--version"):
        import squall

        sys.stdout.write(f"squall {squall.version}\n")
        return 0
    if args[0] != "run":
        sys.stderr.write(f"squall: unknown command {args[0]!r}; try: squall run --help\n")
        return 2
    try:
        config = parse_config(args[1:])
        _setup_logging(config.log_level, config.log_config)
        for note in config.notes:
            log.info("%s", note)
        tornado_alias()
        return run(config)
    except UsageError as exc:
        sys.stderr.write(f"squall run: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
