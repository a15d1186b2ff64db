"""The ``squall`` command: ``squall run TARGET [OPTIONS]`` (also ``python -m squall``).

Serves a Squall/Tornado `~squall.web.Application`, an ASGI or a WSGI
application with production defaults: several worker processes under a
supervisor, graceful drain on SIGTERM, rolling restart on SIGHUP, proxy
headers, an access log and protective timeouts. ``squall --help`` lists
the options; each has a ``SQUALL_*`` environment variable twin.

Layout: ``_options`` (parser, `Config`), ``_target`` (what TARGET is),
``_sockets`` (``--bind``), ``_serving`` (proxy headers, access log,
limits), ``_worker`` (one serving process), ``_supervisor`` (workers,
signals, reload), ``_reload`` (the file watcher).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from typing import Optional

from squall.cli._options import Config, UsageError, build_parser, parse_config

__all__ = ["Config", "UsageError", "main", "run"]

log = logging.getLogger("squall.general")

# A worker's exit status for a bad target or option: the supervisor stops.
_WORKER_USAGE_ERROR = 3

_TOP_USAGE = """usage: squall run [OPTIONS] TARGET

Commands:
  run TARGET    serve module:attribute (an Application, ASGI or WSGI app)

"""


def _setup_logging(level: str) -> None:
    from squall.cli._logging import setup_logging

    setup_logging(level)


def run(config: Config) -> int:
    """Serve ``config.target`` as ``squall run`` does; returns the exit status.

    One worker without ``--reload`` or ``--max-requests`` is served in this
    process; otherwise a supervisor starts worker processes.

    Raises:
        UsageError: a bad option, address or target.
    """
    from squall.cli._sockets import bind_all, describe, unix_paths, unlink_unix

    sockets = bind_all(config.bind, config.backlog, config.reuse_port)
    paths = unix_paths(sockets)
    try:
        tls = bool(config.certfile)
        for sock in sockets:
            # Tests and scripts read this line for the address (port 0 included).
            log.info("Listening on %s", describe(sock, tls))
        sys.stderr.flush()
        if config.workers == 1 and not config.reload and not config.max_requests:
            from squall.cli._worker import run_worker

            return run_worker(config, sockets)
        from squall.cli._supervisor import Supervisor

        return asyncio.run(Supervisor(config, sockets).run())
    finally:
        unlink_unix(paths)
        for sock in sockets:
            sock.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The console entry point; returns the exit status (2 for a usage error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["__worker"]:
        from squall.cli._supervisor import worker_main

        _setup_logging(os.environ.get("SQUALL_WORKER_LOG_LEVEL", "info"))
        try:
            return worker_main()
        except UsageError as exc:
            sys.stderr.write(f"squall run: error: {exc}\n")
            return _WORKER_USAGE_ERROR
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
        _setup_logging(config.log_level)
        return run(config)
    except UsageError as exc:
        sys.stderr.write(f"squall run: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
