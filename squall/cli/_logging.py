"""Logging as ``squall run`` sets it up: one line per record on stderr.

General records go through a `logging.StreamHandler` on stderr, prefixed
with the time, the process and the level. Access-log lines are the
configured format alone (it has ``{time}`` and ``{pid}`` fields), through
`AccessHandler`: lines logged during one turn of the event loop are written
together at the end of that turn, with one system call per pipe-sized
block cut at line ends, so that they go out as they happen (in time order
with the other workers' lines) while a burst of requests still costs one
write, and lines of different workers never interleave inside a line.

``--log-config`` then applies a file as uvicorn does: ``.json`` and
``.yaml``/``.yml`` (PyYAML) through `logging.config.dictConfig`, anything
else (``.ini``) through `logging.config.fileConfig`; loggers it does not
name keep the handlers above.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import os
import sys
import time
from typing import Any, Optional

__all__ = ["AccessHandler", "apply_log_config", "flush_access_log", "setup_logging"]

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

_FORMAT = "[%(asctime)s] [%(process)d] %(levelname)s %(name)s: %(message)s"

# The largest write a pipe keeps whole (POSIX PIPE_BUF is at least 512;
# Linux's is 4096): lines of two workers sharing stderr do not interleave.
_ATOMIC_WRITE = 4096


class _Formatter(logging.Formatter):
    """`logging.Formatter` with the date part of the time cached per second."""

    def __init__(self) -> None:
        super().__init__(_FORMAT)
        self._second = -1
        self._text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        second = int(record.created)
        if second != self._second:
            self._second = second
            # The access log's {time} has the same form (ISO 8601, local time,
            # milliseconds): one log, one way to write a time.
            self._text = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        return f"{self._text}.{int(record.msecs):03d}"


class AccessHandler(logging.Handler):
    """Writes access lines to a file descriptor at the end of each loop turn.

    Args:
        fd: where to write (stderr's by default).
    """

    def __init__(self, fd: Optional[int] = None) -> None:
        super().__init__()
        self.fd = sys.stderr.fileno() if fd is None else fd
        self._lines: list[str] = []
        self._scheduled = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self._lines.append(line)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Write what was logged since the last flush."""
        self._scheduled = False
        lines, self._lines = self._lines, []
        if not lines:
            return
        data = ("\n".join(lines) + "\n").encode("utf-8", "replace")
        start = 0
        while start < len(data):
            end = len(data)
            if end - start > _ATOMIC_WRITE:
                cut = data.rfind(b"\n", start, start + _ATOMIC_WRITE)
                end = cut + 1 if cut >= start else start + _ATOMIC_WRITE
            try:
                start += os.write(self.fd, data[start:end])
            except InterruptedError:
                continue
            except OSError:
                return  # stderr is gone: nothing else to write to


def flush_access_log() -> None:
    """Write out the access lines not yet written (at exit)."""
    for handler in logging.getLogger("squall.access").handlers:
        handler.flush()


def _stderr_fd() -> Optional[int]:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


class _PeerCloseNotice(logging.Filter):
    """Drops qh3's WARNING "Native peer close: ..." (one a client close)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("Native peer close"))


def setup_logging(level: str, log_config: Optional[str] = None) -> None:
    """Log at ``level`` to stderr, then apply ``log_config`` if given."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(LEVELS[level])
    # aioquic (HTTP/3) logs every connection's negotiation and close at INFO
    # on "quic": one line per client is noise at the server's INFO; its
    # warnings and errors still show. --log-level debug lets them through.
    quic = logging.getLogger("quic")
    for old_filter in [f for f in quic.filters if isinstance(f, _PeerCloseNotice)]:
        quic.removeFilter(old_filter)
    if LEVELS[level] > logging.DEBUG:
        # qh3 says each ordinary close by a client at WARNING: the same noise.
        quic.addFilter(_PeerCloseNotice())
        if quic.level == logging.NOTSET:
            quic.setLevel(logging.WARNING)
    access = logging.getLogger("squall.access")
    for old in access.handlers[:]:
        if isinstance(old, AccessHandler):
            old.flush()
            access.removeHandler(old)
    fd = _stderr_fd()
    if fd is not None:
        access.addHandler(AccessHandler(fd))
        access.propagate = False
    else:
        # stderr is not a file (captured): the root handler writes the lines.
        access.propagate = True
    if log_config:
        apply_log_config(log_config)


def apply_log_config(path: str) -> None:
    """Configure logging from ``path`` as uvicorn's ``--log-config`` does.

    A dict configuration that does not say otherwise keeps loggers that
    exist already (``disable_existing_loggers`` false), Squall's included.

    Raises:
        UsageError: the file cannot be read or parsed, YAML without PyYAML,
            or a configuration `logging.config` rejects.
    """
    from squall.cli._options import UsageError

    lower = path.lower()
    try:
        if lower.endswith((".json", ".yaml", ".yml")):
            config = _read_dict_config(path)
            config.setdefault("disable_existing_loggers", False)
            logging.config.dictConfig(config)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except UsageError:
        raise
    except Exception as exc:
        raise UsageError(f"--log-config {path!r}: {type(exc).__name__}: {exc}") from None


def _read_dict_config(path: str) -> dict[str, Any]:
    from squall.cli._options import UsageError

    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.lower().endswith(".json"):
        import json

        config = json.loads(text)
    else:
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]
        except ImportError:
            raise UsageError(
                f"--log-config {path!r}: YAML needs PyYAML (pip install pyyaml), "
                "or give the configuration as .json"
            ) from None
        config = yaml.safe_load(text)
    if not isinstance(config, dict):
        raise UsageError(f"--log-config {path!r}: expected a mapping at the top")
    return config
