"""Turning ``--bind`` addresses into listening sockets."""

from __future__ import annotations

import os
import socket
from typing import Optional

from squall.cli._options import UsageError
from squall.netutil import _remember_backlog, bind_sockets, bind_unix_socket

__all__ = ["bind_all", "describe", "parse_bind"]


def parse_bind(text: str, option: str = "--bind") -> tuple[str, str, int]:
    """``(kind, host_or_path, port_or_fd)`` with kind ``tcp``, ``unix`` or ``fd``.

    Args:
        text: the address, as ``--bind`` takes it.
        option: the option it came from, named in errors.

    Raises:
        UsageError: an address of none of the forms.
    """
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise UsageError(f"{option} {text!r}: unix: needs a path, e.g. unix:/run/app.sock")
        return "unix", path, 0
    if text.startswith("fd://"):
        try:
            return "fd", "", int(text[5:])
        except ValueError:
            raise UsageError(f"{option} {text!r}: fd:// needs a file descriptor number") from None
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, "8000"
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise UsageError(
            f"{option} {text!r}: expected host:port, unix:PATH or fd://N (bad port {port_text!r})"
        ) from None
    return "tcp", host, port


def bind_all(
    binds: list[str], backlog: int, reuse_port: bool = False, option: str = "--bind"
) -> list[socket.socket]:
    """Bind (or adopt) a listening socket for every address.

    Args:
        binds: the addresses, as ``--bind`` takes them.
        backlog: the listen backlog.
        reuse_port: set SO_REUSEPORT.
        option: the option the addresses came from, named in errors.

    Raises:
        UsageError: an address that cannot be bound, with the reason.
    """
    sockets: list[socket.socket] = []
    for text in binds:
        kind, host, port = parse_bind(text, option)
        try:
            if kind == "unix":
                sockets.append(bind_unix_socket(host, mode=0o666, backlog=backlog))
            elif kind == "fd":
                sock = socket.socket(fileno=port)
                if sock.type != socket.SOCK_STREAM:
                    raise UsageError(f"{option} {text!r}: fd {port} is not a stream socket")
                sock.setblocking(False)
                sock.listen(backlog)
                _remember_backlog(sock, backlog)
                sockets.append(sock)
            else:
                sockets.extend(
                    bind_sockets(port, host or None, backlog=backlog, reuse_port=reuse_port)
                )
        except OSError as exc:
            for sock in sockets:
                sock.close()
            raise UsageError(f"{option} {text!r}: {exc.strerror or exc}") from None
    return sockets


def describe(sock: socket.socket, tls: bool = False) -> str:
    """``http://127.0.0.1:8000``, ``unix:/run/app.sock``: for the log."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        return f"unix:{name}"
    host, port = name[0], name[1]
    if sock.family == socket.AF_INET6:
        host = f"[{host}]"
    return f"{'https' if tls else 'http'}://{host}:{port}"


def unix_paths(sockets: list[socket.socket]) -> list[str]:
    """The files of the Unix sockets among ``sockets`` (read before serving closes them)."""
    paths = []
    for sock in sockets:
        if sock.family == socket.AF_UNIX:
            name = sock.getsockname()
            if isinstance(name, str) and name and not name.startswith("\0"):
                paths.append(name)
    return paths


def unlink_unix(paths: list[str], pid: Optional[int] = None) -> None:
    """Remove socket files (only in the process that made them)."""
    if pid is not None and pid != os.getpid():
        return
    for path in paths:
        try:
            os.unlink(path)
        except OSError:
            pass
