"""uvicorn's and gunicorn's spellings of ``squall run``'s options.

A command line or an environment written for uvicorn or gunicorn is taken
as it is. Each foreign option is either mapped onto ours (``--loop
asyncio`` runs asyncio's own loop, ``--header`` adds a response header,
``--no-server-header`` drops ``Server``, ``--access-logfile -`` is the
access log, ``UVICORN_PORT`` is ``SQUALL_PORT``) or, where Squall has
nothing that it would change, accepted with a one-line note at startup
that says why (``--http httptools``: Squall has its own HTTP/1.1 parser,
on httptools when installed).
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any

__all__ = [
    "INTERFACES",
    "add_foreign_options",
    "apply_foreign_options",
    "foreign_environment",
    "gunicorn_arguments",
]

#: uvicorn's ``--interface`` values (`Config.interface`).
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")

# uvicorn's environment variables are UVICORN_ and the option's name, as
# ours are SQUALL_ and its name; these name the same option under another
# word (uvicorn's --limit-max-requests is our --max-requests).
_UVICORN_NAMES = {
    "LIMIT_MAX_REQUESTS": "MAX_REQUESTS",
    "SSL_CERTFILE": "CERTFILE",
    "SSL_KEYFILE": "KEYFILE",
}


def add_foreign_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that only uvicorn or gunicorn spell (their shared ones are aliases)."""
    group = parser.add_argument_group(
        "uvicorn's and gunicorn's spellings",
        "Taken so that their command lines run unchanged: mapped where Squall has the same "
        "thing, else accepted with a note at startup saying why they change nothing. "
        "UVICORN_* variables count as SQUALL_* ones, and GUNICORN_CMD_ARGS as options "
        "before the command line's.",
    )
    add = group.add_argument
    add(
        "--loop",
        choices=("auto", "asyncio", "uvloop", "none"),
        help="event loop: uvloop's when installed (auto), or asyncio's own [SQUALL_LOOP]",
    )
    add(
        "--http",
        dest="foreign_http",
        choices=("auto", "h11", "httptools"),
        help="(uvicorn) accepted: Squall parses HTTP/1.1 itself, with httptools when installed",
    )
    add(
        "--ws",
        dest="foreign_ws",
        choices=("auto", "none", "websockets", "websockets-sansio", "wsproto"),
        help="(uvicorn) accepted: Squall's own WebSocket implementation serves WebSockets",
    )
    add(
        "--use-colors",
        dest="foreign_use_colors",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="(uvicorn) accepted: Squall's log lines have no colors",
    )
    add(
        "--interface",
        choices=INTERFACES,
        help="(uvicorn) asgi2: TARGET is an ASGI 2 app (TARGET(scope) returns an async "
        "callable of receive, send), served through an adapter; a class of that shape is "
        "found without it. auto, asgi3, wsgi: the interface is found from TARGET's shape "
        "[SQUALL_INTERFACE]",
    )
    add(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the Server header of responses (default on) [SQUALL_SERVER_HEADER]",
    )
    add(
        "--header",
        dest="headers",
        action="append",
        metavar="NAME:VALUE",
        help="add this header to every response; repeatable [SQUALL_HEADERS]",
    )
    add(
        "--access-logfile",
        dest="foreign_access_logfile",
        metavar="FILE",
        help="(gunicorn) '-': the access log, on stderr with the other lines; a file: refused "
        "(use --log-config)",
    )
    add(
        "-k",
        "--worker-class",
        dest="foreign_worker_class",
        metavar="CLASS",
        help="(gunicorn) accepted: Squall's workers serve every kind of app",
    )
    add(
        "--preload",
        dest="foreign_preload",
        action="store_true",
        default=None,
        help="(gunicorn) accepted: each worker imports TARGET itself",
    )


def foreign_environment(env: dict[str, str]) -> dict[str, str]:
    """``env`` with each ``UVICORN_*`` variable also under its ``SQUALL_*`` name.

    A ``SQUALL_*`` variable already set wins.
    """
    found = dict(env)
    for name, value in env.items():
        if not name.startswith("UVICORN_"):
            continue
        word = name[len("UVICORN_") :]
        found.setdefault("SQUALL_" + _UVICORN_NAMES.get(word, word), value)
    return found


def gunicorn_arguments(env: dict[str, str]) -> list[str]:
    """``GUNICORN_CMD_ARGS`` split as a shell would: options that go before the command line's."""
    return shlex.split(env.get("GUNICORN_CMD_ARGS", ""))


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep or not name or any(c in name for c in " \t\r\n") or any(c in value for c in "\r\n"):
        raise ValueError(f"--header {text!r}: expected NAME:VALUE")
    return name, value.strip()


def apply_foreign_options(args: argparse.Namespace, values: dict[str, Any]) -> list[str]:
    """Map the foreign options of ``args`` into ``values`` (`Config`'s fields).

    Returns:
        One note per option accepted without effect, for the startup log.

    Raises:
        ValueError: a foreign option whose value Squall cannot honour.
    """
    notes = []
    if isinstance(values.get("headers"), str):  # SQUALL_HEADERS: comma-separated
        values["headers"] = [h for h in values["headers"].split(",") if h.strip()]
    values["headers"] = [":".join(_header(h)) for h in values.get("headers", [])]
    if values.get("loop") == "none":
        values["loop"] = "auto"
        notes.append("--loop none: Squall sets up its own loop; uvloop's when installed")
    if args.foreign_http not in (None, "auto"):
        notes.append(
            f"--http {args.foreign_http}: ignored, Squall parses HTTP/1.1 itself "
            "(on httptools when it is installed; SQUALL_NO_SPEEDUPS=1 for pure Python)"
        )
    if args.foreign_ws not in (None, "auto"):
        notes.append(f"--ws {args.foreign_ws}: ignored, Squall serves WebSockets itself")
    if args.foreign_use_colors is not None:
        notes.append("--use-colors: ignored, Squall's log lines have no colors")
    interface = values.get("interface", "auto")
    if interface not in INTERFACES:  # SQUALL_INTERFACE, UVICORN_INTERFACE
        raise ValueError(f"--interface {interface!r}: expected one of {', '.join(INTERFACES)}")
    if interface in ("asgi3", "wsgi"):
        notes.append(
            f"--interface {interface}: ignored, the interface is found "
            "from TARGET's shape (ASGI 3, WSGI, or an Application)"
        )
    logfile = args.foreign_access_logfile
    if logfile is not None:
        if logfile != "-":
            raise ValueError(
                f"--access-logfile {logfile!r}: Squall writes the access log on stderr "
                "('-'); to send it to a file, use --log-config (logger squall.access)"
            )
        values.setdefault("access_log", True)
    if args.foreign_worker_class is not None:
        notes.append(
            f"--worker-class {args.foreign_worker_class}: ignored, Squall's own workers "
            "serve ASGI, WSGI and Tornado applications"
        )
    if args.foreign_preload:
        notes.append("--preload: ignored, each worker imports TARGET itself")
    return notes
