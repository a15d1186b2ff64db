"""Options of ``squall run``: the parser, environment twins and `Config`."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Sequence
from typing import Any, Optional

__all__ = ["Config", "UsageError", "build_parser", "parse_config"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

#: The default access-log line; the fields are listed in the ``--help``.
DEFAULT_ACCESS_FORMAT = (
    '{client} - "{method} {target} HTTP/{version}" {status} {size} {duration_ms:.1f}ms'
)


class UsageError(Exception):
    """A bad option, target or environment variable; the message says which."""


@dataclasses.dataclass
class Config:
    """Everything ``squall run`` was asked to do (see ``squall --help``)."""

    target: str = ""
    factory: Optional[bool] = None  # None: decided by the target's shape
    bind: list[str] = dataclasses.field(default_factory=list)
    workers: int = 1
    reload: bool = False
    reload_dirs: list[str] = dataclasses.field(default_factory=list)
    certfile: Optional[str] = None
    keyfile: Optional[str] = None
    http2: bool = False
    proxy_headers: bool = True
    forwarded_allow_ips: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1"])
    root_path: str = ""
    access_log: bool = True
    access_log_format: str = DEFAULT_ACCESS_FORMAT
    log_level: str = "info"
    timeout_keep_alive: float = 5.0
    timeout_header: float = 10.0
    timeout_body: Optional[float] = None
    timeout_graceful_shutdown: float = 30.0
    limit_concurrency: Optional[int] = None
    backlog: int = 2048
    max_requests: Optional[int] = None
    max_requests_jitter: int = 0
    reuse_port: bool = False
    app_dir: str = "."

    def to_env(self) -> str:
        """The config as JSON, to hand to a worker process."""
        import json

        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls, text: str) -> Config:
        """The inverse of `to_env`."""
        import json

        return cls(**json.loads(text))


def _env_name(dest: str) -> str:
    return "SQUALL_" + dest.upper()


def _bool(text: str, name: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{name}={text!r}: expected 1/0, true/false, yes/no or on/off")


def _split(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must not be negative")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)


def build_parser() -> argparse.ArgumentParser:
    """The ``squall run`` parser; every option's help names its environment twin."""
    parser = argparse.ArgumentParser(
        prog="squall run",
        usage="squall run [OPTIONS] TARGET",
        formatter_class=_Formatter,
        description=(
            "Serve TARGET, given as module:attribute (e.g. myapp.main:app). It may be a\n"
            "Squall/Tornado Application, a factory returning one, an ASGI application or a\n"
            "WSGI application; the kind is found from its shape."
        ),
        epilog=(
            "Every option can also be set with an environment variable, SQUALL_ followed by\n"
            "its name in capitals (SQUALL_BIND, SQUALL_WORKERS, ...); lists are separated by\n"
            "commas or spaces. Command-line options win.\n\n"
            "Access-log fields: {client} {method} {target} {path} {version} {status} {size}\n"
            "{duration_ms} {user_agent} {referer} {host}.\n\n"
            "Signals: TERM/INT stop gracefully; HUP restarts the workers one by one (new\n"
            "before old); TTIN/TTOU add or remove one worker."
        ),
    )
    add = parser.add_argument
    add("target", nargs="?", metavar="TARGET", help="module:attribute to serve [SQUALL_APP]")
    add(
        "--factory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="treat TARGET as a factory to call (found by shape when unset) [SQUALL_FACTORY]",
    )
    add(
        "-b",
        "--bind",
        action="append",
        metavar="ADDRESS",
        help="host:port, [ipv6]:port, unix:PATH or fd://N; repeatable "
        "(default 127.0.0.1:8000) [SQUALL_BIND]",
    )
    add("--host", help="bind this host (with --port); an alternative to --bind [SQUALL_HOST]")
    add("--port", type=int, help="bind this port (with --host) [SQUALL_PORT]")
    add(
        "-w",
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes; more than 1 starts a supervisor (default 1) [SQUALL_WORKERS]",
    )
    add(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="restart the worker when a source file changes (development) [SQUALL_RELOAD]",
    )
    add(
        "--reload-dir",
        action="append",
        dest="reload_dirs",
        metavar="DIR",
        help="directory to watch with --reload; repeatable (default: the current "
        "directory) [SQUALL_RELOAD_DIRS]",
    )
    add(
        "--app-dir",
        metavar="DIR",
        help="directory put first on sys.path to import TARGET (default .) [SQUALL_APP_DIR]",
    )
    add("--certfile", metavar="FILE", help="TLS certificate (PEM) [SQUALL_CERTFILE]")
    add("--keyfile", metavar="FILE", help="TLS private key (PEM) [SQUALL_KEYFILE]")
    add(
        "--http2",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also serve HTTP/2: h2 by ALPN with TLS, h2c without (needs squall[http2]) [SQUALL_HTTP2]",
    )
    add(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take the client address and scheme from X-Forwarded-For/X-Forwarded-Proto "
        "or Forwarded, when the peer is in --forwarded-allow-ips (default on) "
        "[SQUALL_PROXY_HEADERS]",
    )
    add(
        "--forwarded-allow-ips",
        metavar="IPS",
        help="comma-separated proxy addresses (or networks, or *) trusted for proxy "
        "headers; Unix-socket peers are always trusted (default 127.0.0.1) "
        "[SQUALL_FORWARDED_ALLOW_IPS]",
    )
    add(
        "--root-path",
        metavar="PATH",
        help="the path prefix the application is mounted under behind a proxy [SQUALL_ROOT_PATH]",
    )
    add(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="log one line per request on squall.access (default on) [SQUALL_ACCESS_LOG]",
    )
    add(
        "--access-log-format",
        metavar="FORMAT",
        help="access-log line, str.format fields below [SQUALL_ACCESS_LOG_FORMAT]",
    )
    add(
        "--log-level",
        choices=_LOG_LEVELS,
        help="critical, error, warning, info, debug or trace (default info) [SQUALL_LOG_LEVEL]",
    )
    add(
        "--timeout-keep-alive",
        type=_seconds,
        metavar="SECONDS",
        help="close a keep-alive connection idle this long (default 5) [SQUALL_TIMEOUT_KEEP_ALIVE]",
    )
    add(
        "--timeout-header",
        type=_seconds,
        metavar="SECONDS",
        help="a request head must arrive within this (default 10) [SQUALL_TIMEOUT_HEADER]",
    )
    add(
        "--timeout-body",
        type=_seconds,
        metavar="SECONDS",
        help="a request body must arrive within this once its head has (default: no "
        "limit) [SQUALL_TIMEOUT_BODY]",
    )
    add(
        "--timeout-graceful-shutdown",
        type=_seconds,
        metavar="SECONDS",
        help="on stop, wait this long for requests in progress before aborting them "
        "(default 30) [SQUALL_TIMEOUT_GRACEFUL_SHUTDOWN]",
    )
    add(
        "--limit-concurrency",
        type=_positive_int,
        metavar="N",
        help="answer 503 beyond N requests in progress per worker [SQUALL_LIMIT_CONCURRENCY]",
    )
    add(
        "--backlog",
        type=_positive_int,
        metavar="N",
        help="listen() backlog (default 2048) [SQUALL_BACKLOG]",
    )
    add(
        "--max-requests",
        type=_positive_int,
        metavar="N",
        help="replace a worker after it served about N requests [SQUALL_MAX_REQUESTS]",
    )
    add(
        "--max-requests-jitter",
        type=int,
        metavar="N",
        help="add up to N (random per worker) to --max-requests [SQUALL_MAX_REQUESTS_JITTER]",
    )
    add(
        "--reuse-port",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bind host:port with SO_REUSEPORT, so that another server (a new release) can "
        "bind the same address while this one drains [SQUALL_REUSE_PORT]",
    )
    return parser


def _from_env(dest: str, kind: str, environ: dict[str, str]) -> Any:
    name = _env_name(dest)
    if dest == "target":
        name = "SQUALL_APP"
    text = environ.get(name)
    if text is None:
        return None
    try:
        if kind == "bool":
            return _bool(text, name)
        if kind == "list":
            return _split(text)
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise UsageError(f"{name}={text!r}: expected a {kind}") from None
    return text


_KINDS = {
    "target": "str",
    "factory": "bool",
    "bind": "list",
    "host": "str",
    "port": "int",
    "workers": "int",
    "reload": "bool",
    "reload_dirs": "list",
    "app_dir": "str",
    "certfile": "str",
    "keyfile": "str",
    "http2": "bool",
    "proxy_headers": "bool",
    "forwarded_allow_ips": "list",
    "root_path": "str",
    "access_log": "bool",
    "access_log_format": "str",
    "log_level": "str",
    "timeout_keep_alive": "float",
    "timeout_header": "float",
    "timeout_body": "float",
    "timeout_graceful_shutdown": "float",
    "limit_concurrency": "int",
    "backlog": "int",
    "max_requests": "int",
    "max_requests_jitter": "int",
    "reuse_port": "bool",
}


def parse_config(argv: Sequence[str], environ: Optional[dict[str, str]] = None) -> Config:
    """Parse ``squall run`` arguments over the ``SQUALL_*`` environment.

    Raises:
        UsageError: a missing target, a bad environment value, or options
            that cannot go together.
    """
    env = dict(os.environ if environ is None else environ)
    args = build_parser().parse_args(list(argv))
    values: dict[str, Any] = {}
    for dest, kind in _KINDS.items():
        value = getattr(args, dest)
        if value is None:
            value = _from_env(dest, kind, env)
        if value is not None:
            values[dest] = value
    if "forwarded_allow_ips" in values and isinstance(values["forwarded_allow_ips"], str):
        values["forwarded_allow_ips"] = _split(values["forwarded_allow_ips"])
    host = values.pop("host", None)
    port = values.pop("port", None)
    if host is not None or port is not None:
        host = host or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        values.setdefault("bind", []).append(f"{host}:{8000 if port is None else port}")
    config = Config(**values)
    if not config.target:
        raise UsageError("missing TARGET (module:attribute), e.g. squall run myapp:app")
    if not config.bind:
        config.bind = ["127.0.0.1:8000"]
    if bool(config.certfile) != bool(config.keyfile):
        raise UsageError("--certfile and --keyfile go together: give both or neither")
    if config.reload and config.workers > 1:
        raise UsageError("--reload runs one worker: drop --workers or --reload")
    if config.max_requests_jitter < 0:
        raise UsageError("--max-requests-jitter must not be negative")
    if config.log_level not in _LOG_LEVELS:
        raise UsageError(f"--log-level {config.log_level!r}: expected one of {_LOG_LEVELS}")
    return config
