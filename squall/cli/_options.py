"""Options of ``squall run``: the parser, environment twins and `Config`."""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import Any, Optional, TypeVar

from squall.cli._foreign import (
    add_foreign_options,
    apply_foreign_options,
    foreign_environment,
    gunicorn_arguments,
)

__all__ = ["Config", "StartupError", "UsageError", "build_parser", "parse_config", "read_env_file"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

#: The default access-log line; the fields are listed in the ``--help``.
DEFAULT_ACCESS_FORMAT = (
    '[{time}] [{pid}] {client} - "{method} {target} HTTP/{version}" {status} {size} '
    "{duration_ms:.1f}ms"
)


class UsageError(Exception):
    """A bad option, target or environment variable; the message says which."""


class StartupError(Exception):
    """The application could not start (an ASGI lifespan startup failed, say)."""


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
    h2c_upgrade: Optional[bool] = None  # None: only when proxy headers are not trusted
    http3: bool = False
    http3_retry_threshold: Optional[int] = None  # None: the server's default (100)
    http3_max_half_open: Optional[int] = None  # None: the server's default (1,000)
    # An ASGI app's WebTransport limits (None: ASGIServerDelegate's defaults).
    wt_max_sessions: Optional[int] = None
    wt_max_streams: Optional[int] = None
    wt_max_datagram_size: Optional[int] = None
    wt_max_stream_buffer: Optional[int] = None
    proxy_headers: bool = True
    proxy_header_style: str = "x-forwarded"
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
    reload_includes: list[str] = dataclasses.field(default_factory=list)
    reload_excludes: list[str] = dataclasses.field(default_factory=list)
    reload_delay: float = 0.5
    ssl_keyfile_password: Optional[str] = None
    ssl_ca_certs: Optional[str] = None
    ssl_cert_reqs: str = "none"
    ssl_ciphers: Optional[str] = None
    log_config: Optional[str] = None
    env_file: Optional[str] = None
    lifespan: str = "auto"
    ws_max_size: Optional[int] = None
    ws_ping_interval: Optional[float] = None
    ws_ping_timeout: Optional[float] = None
    timeout_worker_healthcheck: float = 30.0
    metrics_bind: Optional[str] = None
    request_id: bool = False
    opentelemetry: bool = False
    loop: str = "auto"  # auto: uvloop's when installed; asyncio; uvloop
    # uvicorn's --interface: asgi2 serves TARGET through an ASGI 2 adapter;
    # auto, asgi3 and wsgi leave it to TARGET's shape.
    interface: str = "auto"
    server_header: bool = True
    headers: list[str] = dataclasses.field(default_factory=list)  # "name:value", added
    # One line each, logged at startup: foreign options taken without effect.
    notes: list[str] = dataclasses.field(default_factory=list)

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


_N = TypeVar("_N", int, float)


def _at_least(convert: Callable[[str], _N], kind: str, least: _N, rule: str) -> Callable[[str], _N]:
    """An argparse ``type``: ``convert(text)``, refused below ``least``."""

    def parse(text: str) -> _N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text!r} {rule}")
        return value

    return parse


_positive_int = _at_least(int, "an integer", 1, "must be at least 1")
_non_negative_int = _at_least(int, "an integer", 0, "must be 0 or more")
_seconds = _at_least(float, "a number of seconds", 0.0, "must not be negative")


_CERT_REQS = {"0": "none", "1": "optional", "2": "required"}
# The largest DATAGRAM frame the HTTP/3 server accepts (its transport
# parameter, squall.httpserver._h3setup): a WebTransport datagram is no larger.
_MAX_DATAGRAM = 65536


def _cert_reqs(text: str) -> str:
    low = text.strip().lower()
    low = _CERT_REQS.get(low, low)
    if low not in ("none", "optional", "required"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected none, optional or required (0, 1, 2)")
    return low


class _Formatter(argparse.RawDescriptionHelpFormatter):
    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=36, width=100)


def build_parser() -> argparse.ArgumentParser:
    """The ``squall run`` parser; every option's help names its environment twin."""
    parser = argparse.ArgumentParser(
        prog="squall run",
        # "--http httptools" must not parse as "--http2" and a stray argument.
        allow_abbrev=False,
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
            "Access-log fields: {time} {pid} {client} {method} {target} {path} {version} {status}\n"
            "{size} {duration_ms} {user_agent} {referer} {host} {request_id}; the format json\n"
            "writes them as one JSON object per line, every value escaped.\n\n"
            "Aliases of uvicorn and gunicorn spellings with the same meaning are accepted\n"
            "(--uds, --fd, --ssl-certfile, --limit-max-requests, --timeout, --graceful-timeout...),\n"
            "and their other options are listed above.\n\n"
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
    add("--uds", metavar="PATH", help="bind this Unix socket: the same as --bind unix:PATH")
    add(
        "--fd", type=int, metavar="N", help="serve this inherited socket: the same as --bind fd://N"
    )
    add(
        "-w",
        "--workers",
        type=_positive_int,
        metavar="N",
        help="worker processes; more than 1 starts a supervisor (default 1, or "
        "$WEB_CONCURRENCY) [SQUALL_WORKERS]",
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
        "--reload-include",
        action="append",
        dest="reload_includes",
        metavar="GLOB",
        help="also watch files matching this pattern (default: source suffixes such as "
        "*.py, *.html, *.json); repeatable [SQUALL_RELOAD_INCLUDES]",
    )
    add(
        "--reload-exclude",
        action="append",
        dest="reload_excludes",
        metavar="GLOB",
        help="ignore files or directories matching this pattern; repeatable "
        "[SQUALL_RELOAD_EXCLUDES]",
    )
    add(
        "--reload-delay",
        type=_seconds,
        metavar="SECONDS",
        help="seconds between two scans of the watched files (default 0.5) [SQUALL_RELOAD_DELAY]",
    )
    add(
        "--app-dir",
        metavar="DIR",
        help="directory put first on sys.path to import TARGET (default .) [SQUALL_APP_DIR]",
    )
    add(
        "--certfile",
        "--ssl-certfile",
        dest="certfile",
        metavar="FILE",
        help="TLS certificate chain (PEM) [SQUALL_CERTFILE]",
    )
    add(
        "--keyfile",
        "--ssl-keyfile",
        dest="keyfile",
        metavar="FILE",
        help="TLS private key (PEM) [SQUALL_KEYFILE]",
    )
    add(
        "--ssl-keyfile-password",
        metavar="TEXT",
        help="password of an encrypted --keyfile [SQUALL_SSL_KEYFILE_PASSWORD]",
    )
    add(
        "--ssl-ca-certs",
        "--ca-certs",
        dest="ssl_ca_certs",
        metavar="FILE",
        help="CA certificates (PEM) that client certificates are checked against "
        "[SQUALL_SSL_CA_CERTS]",
    )
    add(
        "--ssl-cert-reqs",
        "--cert-reqs",
        dest="ssl_cert_reqs",
        type=_cert_reqs,
        metavar="REQS",
        help="client certificates (mutual TLS): none, optional or required (or 0, 1, 2, "
        "as uvicorn takes them); default none [SQUALL_SSL_CERT_REQS]",
    )
    add(
        "--ssl-ciphers",
        "--ciphers",
        dest="ssl_ciphers",
        metavar="LIST",
        help="OpenSSL cipher list for TLS 1.2 and below (default: OpenSSL's) [SQUALL_SSL_CIPHERS]",
    )
    add(
        "--http2",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also serve HTTP/2: h2 by ALPN with TLS, h2c without [SQUALL_HTTP2]",
    )
    add(
        "--h2c-upgrade",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="with --http2 on a plain port, also take 'Upgrade: h2c' (prior knowledge is "
        "always taken); default: only with --no-proxy-headers, since behind a proxy the "
        "upgrade would make the proxied connection a tunnel. So `curl --http2` (which "
        "upgrades) gets HTTP/1.1 by default, `curl --http2-prior-knowledge` HTTP/2 "
        "[SQUALL_H2C_UPGRADE]",
    )
    add(
        "--http3",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also serve HTTP/3 over QUIC on UDP at each TLS port, advertised by Alt-Svc; "
        "needs --certfile/--keyfile and squall[http3]; runs on qh3 when installed, else "
        "aioquic (SQUALL_QUIC=aioquic or qh3 picks one) [SQUALL_HTTP3]",
    )
    add(
        "--http3-retry-threshold",
        type=_non_negative_int,
        metavar="N",
        help="with --http3, answer new connections with a QUIC Retry (address validation) "
        "past N half-open ones per worker; 0: always (default 100) "
        "[SQUALL_HTTP3_RETRY_THRESHOLD]",
    )
    add(
        "--http3-max-half-open",
        type=_non_negative_int,
        metavar="N",
        help="with --http3, drop new connections' Initials past N half-open ones per worker "
        "(default 1000) [SQUALL_HTTP3_MAX_HALF_OPEN]",
    )
    add(
        "--wt-max-sessions",
        type=_positive_int,
        metavar="N",
        help="with --http3, an ASGI app's WebTransport sessions at once per connection; one "
        "more is answered 429 (default 8; an Application's WebTransportHandler has its own "
        "class attributes) [SQUALL_WT_MAX_SESSIONS]",
    )
    add(
        "--wt-max-streams",
        type=_positive_int,
        metavar="N",
        help="with --http3, streams a client may hold open at once per WebTransport session "
        "(ASGI); one more is refused (default 100) [SQUALL_WT_MAX_STREAMS]",
    )
    add(
        "--wt-max-datagram-size",
        type=_positive_int,
        metavar="BYTES",
        help=f"with --http3, the largest WebTransport datagram either way (ASGI), at most "
        f"{_MAX_DATAGRAM}; a larger one in is dropped (default 1200) "
        "[SQUALL_WT_MAX_DATAGRAM_SIZE]",
    )
    add(
        "--wt-max-stream-buffer",
        type=_positive_int,
        metavar="BYTES",
        help="with --http3, bytes a WebTransport stream may hold that the ASGI app has not "
        "received; past it the stream is reset (default 1 MiB) [SQUALL_WT_MAX_STREAM_BUFFER]",
    )
    add(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="take the client address and scheme from proxy headers (see "
        "--proxy-header-style), when the peer is in --forwarded-allow-ips (default on) "
        "[SQUALL_PROXY_HEADERS]",
    )
    add(
        "--proxy-header-style",
        choices=("x-forwarded", "forwarded"),
        help="which headers your proxy sets: X-Forwarded-For/X-Forwarded-Proto "
        "(default), or RFC 7239 Forwarded; the other kind is ignored, since a proxy "
        "passes it on from the client as it came [SQUALL_PROXY_HEADER_STYLE]",
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
        help="access-log line, str.format fields below, or json [SQUALL_ACCESS_LOG_FORMAT]",
    )
    add(
        "--request-id",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="give each request an X-Request-ID (a trusted proxy's, else a new one), in the "
        "response and the access log (default off) [SQUALL_REQUEST_ID]",
    )
    add(
        "--opentelemetry",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="OpenTelemetry spans for every request (needs opentelemetry-instrumentation-tornado, "
        "or -asgi for an ASGI app; configure the SDK with opentelemetry-instrument or OTEL_*) "
        "[SQUALL_OPENTELEMETRY]",
    )
    add(
        "--log-config",
        metavar="FILE",
        help="logging configuration: .json or .yaml (dictConfig; YAML needs PyYAML) or "
        ".ini (fileConfig) [SQUALL_LOG_CONFIG]",
    )
    add(
        "--env-file",
        metavar="FILE",
        help="read KEY=VALUE lines into the environment before anything else "
        "(the variables already set win) [SQUALL_ENV_FILE]",
    )
    add(
        "--lifespan",
        choices=("auto", "on", "off"),
        help="ASGI lifespan: auto (run it if the app answers), on (a failure stops the "
        "worker) or off (default auto) [SQUALL_LIFESPAN]",
    )
    add(
        "--ws-max-size",
        type=_positive_int,
        metavar="BYTES",
        help="largest WebSocket message accepted (default: 10 MiB for Application, "
        "16 MiB for ASGI) [SQUALL_WS_MAX_SIZE]",
    )
    add(
        "--ws-ping-interval",
        type=_seconds,
        metavar="SECONDS",
        help="ping open WebSockets this often (default: never) [SQUALL_WS_PING_INTERVAL]",
    )
    add(
        "--ws-ping-timeout",
        type=_seconds,
        metavar="SECONDS",
        help="close a WebSocket whose pong is this late (Application only; default: "
        "3 ping intervals) [SQUALL_WS_PING_TIMEOUT]",
    )
    add(
        "--log-level",
        choices=_LOG_LEVELS,
        help="critical, error, warning, info, debug or trace (default info) [SQUALL_LOG_LEVEL]",
    )
    add(
        "--timeout-keep-alive",
        "--keep-alive",
        dest="timeout_keep_alive",
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
        "--graceful-timeout",
        dest="timeout_graceful_shutdown",
        type=_seconds,
        metavar="SECONDS",
        help="on stop, wait this long for requests in progress before aborting them "
        "(default 30) [SQUALL_TIMEOUT_GRACEFUL_SHUTDOWN]",
    )
    add(
        "--timeout-worker-healthcheck",
        "-t",
        "--timeout",
        dest="timeout_worker_healthcheck",
        type=_seconds,
        metavar="SECONDS",
        help="kill and replace a worker whose event loop has not turned for this long, "
        "logging the stack it is stuck in; 0: never (default 30; with a supervisor) "
        "[SQUALL_TIMEOUT_WORKER_HEALTHCHECK]",
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
        "--limit-max-requests",
        dest="max_requests",
        type=_positive_int,
        metavar="N",
        help="replace a worker after it served about N requests [SQUALL_MAX_REQUESTS]",
    )
    add(
        "--max-requests-jitter",
        "--limit-max-requests-jitter",
        dest="max_requests_jitter",
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
    add(
        "--metrics-bind",
        metavar="ADDRESS",
        help="serve Prometheus metrics (/metrics) and health (/livez, /readyz) on this "
        "host:port, apart from the application; needs squall[metrics] [SQUALL_METRICS_BIND]",
    )
    add_foreign_options(parser)
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
    "h2c_upgrade": "bool",
    "http3": "bool",
    "http3_retry_threshold": "int",
    "http3_max_half_open": "int",
    "wt_max_sessions": "int",
    "wt_max_streams": "int",
    "wt_max_datagram_size": "int",
    "wt_max_stream_buffer": "int",
    "proxy_headers": "bool",
    "proxy_header_style": "str",
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
    "uds": "str",
    "fd": "int",
    "reload_includes": "list",
    "reload_excludes": "list",
    "reload_delay": "float",
    "ssl_keyfile_password": "str",
    "ssl_ca_certs": "str",
    "ssl_cert_reqs": "str",
    "ssl_ciphers": "str",
    "log_config": "str",
    "env_file": "str",
    "lifespan": "str",
    "ws_max_size": "int",
    "ws_ping_interval": "float",
    "ws_ping_timeout": "float",
    "timeout_worker_healthcheck": "float",
    "metrics_bind": "str",
    "request_id": "bool",
    "opentelemetry": "bool",
    "loop": "str",
    "interface": "str",
    "server_header": "bool",
    "headers": "str",
}


def parse_config(argv: Sequence[str], environ: Optional[dict[str, str]] = None) -> Config:
    """Parse ``squall run`` arguments over the ``SQUALL_*`` environment.

    Raises:
        UsageError: a missing target, a bad environment value, or options
            that cannot go together.
    """
    env = foreign_environment(dict(os.environ if environ is None else environ))
    # gunicorn's variable: options before the command line's, which win.
    args = build_parser().parse_args([*gunicorn_arguments(env), *argv])
    env_file = args.env_file or env.get("SQUALL_ENV_FILE")
    if env_file:
        for key, value in read_env_file(env_file).items():
            if key not in env:
                env[key] = value
                if environ is None:
                    # The application (and the workers) read os.environ.
                    os.environ[key] = value
    # uvicorn's and gunicorn's variables, under our own.
    for ours, theirs in (
        ("SQUALL_WORKERS", "WEB_CONCURRENCY"),
        ("SQUALL_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"),
    ):
        if ours not in env and theirs in env:
            env[ours] = env[theirs]
    env = foreign_environment(env)  # an --env-file's UVICORN_* too
    values: dict[str, Any] = {}
    for dest, kind in _KINDS.items():
        value = getattr(args, dest)
        if value is None:
            value = _from_env(dest, kind, env)
        if value is not None:
            values[dest] = value
    try:
        notes = apply_foreign_options(args, values)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if "forwarded_allow_ips" in values and isinstance(values["forwarded_allow_ips"], str):
        values["forwarded_allow_ips"] = _split(values["forwarded_allow_ips"])
    uds = values.pop("uds", None)
    if uds:
        values.setdefault("bind", []).append(f"unix:{uds}")
    fd = values.pop("fd", None)
    if fd is not None:
        values.setdefault("bind", []).append(f"fd://{fd}")
    host = values.pop("host", None)
    port = values.pop("port", None)
    if host is not None or port is not None:
        host = host or "127.0.0.1"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        values.setdefault("bind", []).append(f"{host}:{8000 if port is None else port}")
    config = Config(**values, notes=notes)
    if not config.target:
        raise UsageError("missing TARGET (module:attribute), e.g. squall run myapp:app")
    if not config.bind:
        config.bind = ["127.0.0.1:8000"]
    if bool(config.certfile) != bool(config.keyfile):
        raise UsageError("--certfile and --keyfile go together: give both or neither")
    if config.http3 and not config.certfile:
        raise UsageError("--http3 needs --certfile and --keyfile: QUIC is always TLS")
    if config.reload and config.workers > 1:
        raise UsageError("--reload runs one worker: drop --workers or --reload")
    if config.max_requests_jitter < 0:
        raise UsageError("--max-requests-jitter must not be negative")
    if config.log_level not in _LOG_LEVELS:
        raise UsageError(f"--log-level {config.log_level!r}: expected one of {_LOG_LEVELS}")
    if config.lifespan not in ("auto", "on", "off"):
        raise UsageError(f"--lifespan {config.lifespan!r}: expected auto, on or off")
    if config.proxy_header_style not in ("x-forwarded", "forwarded"):
        raise UsageError(
            f"--proxy-header-style {config.proxy_header_style!r}: expected x-forwarded or forwarded"
        )
    try:
        config.ssl_cert_reqs = _cert_reqs(config.ssl_cert_reqs)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"--ssl-cert-reqs {exc}") from None
    if config.ssl_cert_reqs != "none" and not config.ssl_ca_certs:
        raise UsageError(
            "--ssl-cert-reqs needs --ssl-ca-certs (the CAs client certificates must chain to)"
        )
    if (
        config.ssl_ca_certs or config.ssl_ciphers or config.ssl_keyfile_password
    ) and not config.certfile:
        raise UsageError(
            "--ssl-ca-certs, --ssl-ciphers and --ssl-keyfile-password need --certfile and --keyfile"
        )
    _check_webtransport(config)
    _check_loop(config)
    if config.log_config and not os.path.isfile(config.log_config):
        raise UsageError(f"--log-config {config.log_config!r}: no such file")
    return config


def _check_loop(config: Config) -> None:
    if config.loop not in ("auto", "asyncio", "uvloop"):
        raise UsageError(f"--loop {config.loop!r}: expected auto, asyncio or uvloop")
    if config.loop == "uvloop":
        import importlib.util

        if importlib.util.find_spec("uvloop") is None:
            raise UsageError("--loop uvloop: uvloop is not installed (pip install uvloop)")


def _check_webtransport(config: Config) -> None:
    """The WebTransport limits, however given (the environment's are not
    checked by argparse)."""
    for name in (
        "wt_max_sessions",
        "wt_max_streams",
        "wt_max_datagram_size",
        "wt_max_stream_buffer",
    ):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} {value}: must be at least 1")
    size = config.wt_max_datagram_size
    if size is not None and size > _MAX_DATAGRAM:
        raise UsageError(
            f"--wt-max-datagram-size {size}: at most {_MAX_DATAGRAM} (the largest datagram "
            "the HTTP/3 server accepts)"
        )


def webtransport_limits(config: Config) -> dict[str, int]:
    """The WebTransport limits given, as `ASGIServerDelegate` arguments."""
    found = {
        "wt_max_sessions": config.wt_max_sessions,
        "wt_max_streams": config.wt_max_streams,
        "wt_max_datagram_size": config.wt_max_datagram_size,
        "wt_max_stream_buffer": config.wt_max_stream_buffer,
    }
    return {name: value for name, value in found.items() if value is not None}


def read_env_file(path: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of ``path`` (``#`` comments, ``export`` and quotes allowed).

    Raises:
        UsageError: the file cannot be read, or a line is not ``KEY=VALUE``.
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--env-file {path!r}: {exc}") from None
    found: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
            raise UsageError(f"--env-file {path!r} line {number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        found[key] = value
    return found
