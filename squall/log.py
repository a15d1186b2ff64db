"""Squall's loggers, a terminal-friendly log formatter, and logging setup.

Three loggers carry everything Squall logs:

* ``access_log`` (``squall.access``): one line per completed HTTP request.
* ``app_log`` (``squall.application``): errors from application code, such
  as uncaught exceptions in handlers and callbacks.
* ``gen_log`` (``squall.general``): everything else Squall has to say.

`enable_pretty_logging` (run by `squall.options.parse_command_line` unless
``--logging=none``) configures the root logger from the options that
`define_logging_options` declares.
"""

from __future__ import annotations

import importlib
import io
import logging
import logging.handlers
import os
import sys
import threading
import time
import types
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, cast

from squall._typetags import tags_hold, version_tags
from squall.escape import to_unicode

if TYPE_CHECKING:
    from squall.options import OptionParser

__all__ = [
    "LogFormatter",
    "log_from_caller",
    "make_record",
    "handle_line",
    "access_log",
    "app_log",
    "define_logging_options",
    "enable_pretty_logging",
    "gen_log",
]

access_log = logging.getLogger("squall.access")
app_log = logging.getLogger("squall.application")
gen_log = logging.getLogger("squall.general")


# -- records made from a template ------------------------------------------------------
#
# An access line is one LogRecord per request, thousands at once when long
# polls wake; most of LogRecord.__init__ (about 22k instructions) computes
# fields that are the same for every record of one call site in one thread of
# one process (file, module, level name, thread and process names, pid).
# `make_record` copies those from a template and computes only the rest.

_stock_make_record = logging.Logger.makeRecord
_stock_format_message = logging.Formatter.formatMessage
# Python 3.13 counts the start time (and so relativeCreated) in nanoseconds.
_NS_TIMES = sys.version_info >= (3, 13)
# The fields each record computes for itself; the rest come from the template.
_PER_RECORD = ("args", "created", "msecs", "relativeCreated", "taskName")
# Python 3.12 added taskName.
_TASK_NAMES = sys.version_info >= (3, 12)
# (logger name, level, site, msg) -> (the state it was made in, the template).
_templates: dict[tuple[Any, ...], tuple[tuple[Any, ...], dict[str, Any]]] = {}


def _forget_templates() -> None:
    # A forked child has another pid (and names its process anew).
    _templates.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_templates)


def make_record(
    logger: logging.Logger, level: int, site: tuple[str, int, str], msg: str, args: tuple[Any, ...]
) -> logging.LogRecord:
    """The record ``logger.makeRecord`` would make for ``msg % args`` logged at
    ``site`` (``(pathname, lineno, function)``), with no exception or stack.

    Equal to it field for field (the times are read now), at a fraction of
    its cost. A record factory set with `logging.setLogRecordFactory`, or a
    logger class with its own ``makeRecord``, is used as it is.
    """
    if (
        logging.getLogRecordFactory() is not logging.LogRecord
        or type(logger).makeRecord is not _stock_make_record
    ):
        return logger.makeRecord(logger.name, level, site[0], site[1], msg, args, None, site[2])
    key = (logger.name, level, site, msg)
    entry = _templates.get(key)
    thread = threading.current_thread()
    state = (
        thread.ident,
        thread.name,
        logging.logThreads,
        logging.logProcesses,
        logging.logMultiprocessing,
    )
    if entry is None or entry[0] != state:
        base = logging.LogRecord(logger.name, level, site[0], site[1], msg, None, None, site[2])
        template = {k: v for k, v in base.__dict__.items() if k not in _PER_RECORD}
        if len(_templates) > 256:
            _templates.clear()  # call sites are few
        _templates[key] = entry = (state, template)
    fields = entry[1].copy()
    if len(args) == 1 and isinstance(args[0], Mapping) and args[0]:
        # As LogRecord: one non-empty mapping is the arguments by name.
        fields["args"] = args[0]
    else:
        fields["args"] = args
    # As LogRecord.__init__ computes them (gh-89047 for msecs), from the
    # time logging was imported (no public name for it).
    start = logging._startTime  # type: ignore[attr-defined]
    if _NS_TIMES:
        ct = time.time_ns()
        created = ct / 1e9
        msecs = (ct % 1_000_000_000) // 1_000_000 + 0.0
        if msecs == 999.0 and int(created) != ct // 1_000_000_000:
            msecs = 0.0
        fields["relativeCreated"] = (ct - start) / 1e6
    else:
        created = time.time()
        msecs = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - start) * 1000
    fields["created"] = created
    fields["msecs"] = msecs
    if _TASK_NAMES:
        task_name = None
        if logging.logAsyncioTasks:  # type: ignore[attr-defined]
            asyncio = sys.modules.get("asyncio")
            if asyncio is not None:
                try:
                    task_name = asyncio.current_task().get_name()
                except Exception:
                    pass
        fields["taskName"] = task_name
    record = _new_record(logging.LogRecord)
    record.__dict__ = fields
    return record


_new_record = object.__new__


# -- lines written straight to the one handler -----------------------------------------
#
# What most programs configure (`enable_pretty_logging`, or a StreamHandler
# with a LogFormatter of their own) sends every record of the access log to a
# single StreamHandler, where it only carries the line. Making the record and
# handing it down the logger chain and through the handler and formatter
# costs about 48k instructions an access line, writing the line under the
# handler's lock with the checks below 26.6k (22.6k in the compiled build,
# where the classes' version tags stand for reading the sixteen methods of
# `_route` again). `handle_line` writes it itself when
# nothing else could see the record: one handler in the chain, no filter on
# it or on the logger, logging's own functions on the classes a record goes
# through (an agent that patches ``Logger.callHandlers`` or
# ``StreamHandler.emit`` gets every record), none shadowed on the instances,
# and no record factory. The formatter's prefix (the same for every line of
# one second, level and call site) comes from a record it formatted the
# general way, once a second (a change to the formatter's settings other
# than its date format shows from the next second).

_LOGGING_FILE = logging.getLogger.__code__.co_filename
_Logger = logging.Logger
_LogRecord = logging.LogRecord
_StreamHandler = logging.StreamHandler
_TextIOWrapper = io.TextIOWrapper
# Instance attributes that would shadow the methods a record goes through.
_SHADOWS = frozenset(
    "makeRecord handle callHandlers filter emit flush format acquire release".split()
)
# (logger, level, site, second, handler, formatter, prefix, route, sizes,
# datefmt, tags) of the line last set up here: ``route`` is what `_route`
# gave then, ``sizes`` the sizes of the handler's and the logger's __dict__
# (none of whose keys was in _SHADOWS: a new one would be), ``tags`` the
# version tags of the classes `_route` reads (squall._typetags).
_NO_LINE: tuple[Any, ...] = (None, -1, None, -1, None, None, "", (), (-1, -1), None, b"")
_line = _NO_LINE
# Whether tags_hold can answer True (the compiled build; the pure one
# cannot tell, and `_route` is read again): see _ROUTE_TYPES.
_TAGS_KNOWN = not isinstance(tags_hold, types.FunctionType)


def _route() -> tuple[Any, ...]:
    # The functions a record of a Logger goes through on its way to a
    # StreamHandler, and the record factory.
    return (
        _Logger.makeRecord,
        _Logger.handle,
        _Logger.callHandlers,
        _Logger.filter,
        _LogRecord.getMessage,
        _StreamHandler.handle,
        _StreamHandler.filter,
        _StreamHandler.emit,
        _StreamHandler.flush,
        _StreamHandler.format,
        _StreamHandler.acquire,
        _StreamHandler.release,
        LogFormatter.formatMessage,
        LogFormatter.formatTime,
        LogFormatter.format,
        logging.getLogRecordFactory(),
    )


def _only_handler(logger: logging.Logger) -> Any:
    # The one handler of the logger's chain (as callHandlers walks it), or
    # None when there are none or several.
    found: Any = None
    current: Any = logger
    while current is not None:
        handlers = current.handlers
        if handlers:
            if found is not None or len(handlers) != 1:
                return None
            found = handlers[0]
        current = current.parent if current.propagate else None
    return found


def _set_up_line(
    logger: logging.Logger,
    level: int,
    site: tuple[str, int, str],
    record: logging.LogRecord,
    route: tuple[Any, ...],
    tags: bytes,
) -> None:
    # After the general way has handled ``record``: keeps what the next lines
    # of this second, level and site need to be written directly, if they can.
    global _line
    if type(logger) is not _Logger or route[-4:] != _STOCK_FORMAT_ROUTE:
        return
    for function in route[:-4]:
        code = getattr(function, "__code__", None)
        if code is None or code.co_filename != _LOGGING_FILE:
            return
    handler = _only_handler(logger)
    if type(handler) is not _StreamHandler:
        return
    formatter = handler.formatter
    if type(formatter) is not LogFormatter:
        return
    if not _SHADOWS.isdisjoint(handler.__dict__) or not _SHADOWS.isdisjoint(logger.__dict__):
        return
    # The formatter's prefix is this record's unless another thread's record
    # came between (or the handler's level kept this one out: no asctime).
    key = (
        record.levelname,
        getattr(record, "asctime", None),
        record.module,
        record.lineno,
        getattr(record, "color", None),
    )
    prefix = formatter._prefix_for(key)
    if prefix is not None:
        second = int(record.created)
        sizes = (len(handler.__dict__), len(logger.__dict__))
        datefmt = formatter.datefmt
        _line = (
            logger,
            level,
            site,
            second,
            handler,
            formatter,
            prefix,
            route,
            sizes,
            datefmt,
            tags,
        )


def handle_line(
    logger: logging.Logger, level: int, site: tuple[str, int, str], msg: str, args: tuple[Any, ...]
) -> None:
    """``logger.handle(make_record(logger, level, site, msg, args))``: the same
    line reaches the same handlers.

    When the record's only handler is a `logging.StreamHandler` with a
    `LogFormatter` of the default layout and nothing else would see the
    record (see above), the line is written to the handler's stream under its
    lock without a record; a write that fails goes to the handler's
    ``handleError`` with the record, as from ``emit``.
    """
    (
        set_for,
        set_level,
        set_site,
        second,
        handler,
        formatter,
        prefix,
        set_route,
        sizes,
        datefmt,
        tags,
    ) = _line
    if (
        set_for is logger
        and set_level == level
        and set_site == site
        and second == int(time.time())
        and (
            (
                _TAGS_KNOWN
                and tags_hold(_ROUTE_TYPES, tags)
                and logging.getLogRecordFactory() is set_route[-1]
            )
            or _route() == set_route
        )
        and type(logger) is _Logger
        and not logger.disabled
        and not logger.filters
        and _only_handler(logger) is handler
        and type(handler) is _StreamHandler
        and formatter.datefmt is datefmt
        and handler.formatter is formatter
        and not handler.filters
        and level >= handler.level
        and (len(handler.__dict__), len(logger.__dict__)) == sizes
    ):
        try:
            # As LogRecord.getMessage: no arguments, no formatting.
            message = msg % args if args else msg
        except Exception:
            message = None
        if type(message) is str and "\n" not in message:
            # Handler.acquire and release (the route has logging's own).
            lock = handler.lock
            if lock:
                lock.acquire()
            try:
                stream = handler.stream
                terminator = handler.terminator
                stream.write(prefix + message + terminator)
                # StreamHandler.flush, under the lock already held, except
                # where the write has flushed the line already: a
                # line-buffered text stream (sys.stderr) and a line ending
                # in a newline.
                flushed = (
                    type(stream) is _TextIOWrapper and stream.line_buffering and "\n" in terminator
                )
                if not flushed and stream and hasattr(stream, "flush"):
                    stream.flush()
            except RecursionError:
                raise
            except Exception:
                handler.handleError(make_record(logger, level, site, msg, args))
            finally:
                if lock:
                    lock.release()
            return
        # Formatted (or its error reported) by the formatter.
    route = _route()
    tags = version_tags(_ROUTE_TYPES)  # of the classes as _route read them
    record = make_record(logger, level, site, msg, args)
    logger.handle(record)
    _set_up_line(logger, level, site, record, route, tags)


UNKNOWN_SITE = ("(unknown file)", 0, "(unknown function)")


def log_from_caller(logger: logging.Logger, level: int, msg: str, args: tuple[Any, ...]) -> None:
    """``logger.log(level, msg, *args)`` as called from the caller's line, with
    its record from `make_record` and the caller found without a walk up the
    stack (for lines logged per request)."""
    if not logger.isEnabledFor(level):
        return
    if logging._srcfile is None:  # caller lookup turned off
        site = UNKNOWN_SITE
    else:
        frame = sys._getframe(1)
        site = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    handle_line(logger, level, site, msg, args)


def _optional_import(name: str) -> Optional[types.ModuleType]:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# Both are optional: curses is missing on Windows and colorama is a
# third-party package. Either one lets LogFormatter colour its output.
curses = _optional_import("curses")
colorama = _optional_import("colorama")


def _stderr_supports_color() -> bool:
    """True if stderr is a terminal that understands colour codes."""
    try:
        if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
            return False
        if curses is not None:
            curses.setupterm()
            return bool(curses.tigetnum("colors") > 0)
        if colorama is not None:
            # colorama only translates ANSI codes on a stream it wrapped.
            wrapped = getattr(colorama.initialise, "wrapped_stderr", None)
            return wrapped is not None and sys.stderr is wrapped
    except Exception:
        # A terminal database that curses cannot read, an unknown $TERM...:
        # no colour rather than no logging.
        pass
    return False


def _safe_unicode(value: Union[str, bytes]) -> str:
    try:
        return to_unicode(value)
    except UnicodeDecodeError:
        return repr(value)


class LogFormatter(logging.Formatter):
    """Log formatter with optional colour, used by `enable_pretty_logging`.

    Each record becomes ``[L yymmdd hh:mm:ss module:line] message``, where
    ``L`` is the first letter of the level. On a colour terminal the bracketed
    prefix is coloured by level. Tracebacks and other continuation lines are
    indented by four spaces so that each record stands out.

    The format string may use ``%(color)s`` and ``%(end_color)s``, which are
    the escape codes that turn the level's colour on and off (empty strings
    when colour is off).
    """

    DEFAULT_FORMAT = (
        "%(color)s[%(levelname)1.1s %(asctime)s %(module)s:%(lineno)d]%(end_color)s %(message)s"
    )
    DEFAULT_DATE_FORMAT = "%y%m%d %H:%M:%S"
    # Terminal colour numbers, as taken by curses' "setaf" capability.
    DEFAULT_COLORS = {
        logging.DEBUG: 4,  # blue
        logging.INFO: 2,  # green
        logging.WARNING: 3,  # yellow
        logging.ERROR: 1,  # red
        logging.CRITICAL: 5,  # magenta
    }

    def __init__(
        self,
        fmt: str = DEFAULT_FORMAT,
        datefmt: str = DEFAULT_DATE_FORMAT,
        style: str = "%",
        color: bool = True,
        colors: dict[int, int] = DEFAULT_COLORS,
    ) -> None:
        """Create a formatter.

        Args:
            fmt: the log message format, in ``style``.
            datefmt: the `time.strftime` format of ``%(asctime)s``.
            style: ``%``, ``{`` or ``$``, as for `logging.Formatter`.
            color: colour the output if stderr is a colour terminal.
            colors: level number to terminal colour number (0-7).
        """
        if style not in ("%", "{", "$"):
            raise ValueError(f"style must be one of '%', '{{' or '$', not {style!r}")
        # A "%" format needs no field at all (plain text is a valid format),
        # so only the other styles are checked up front.
        super().__init__(
            fmt=fmt,
            datefmt=datefmt,
            style=cast(Literal["%", "{", "$"], style),
            validate=style != "%",
        )
        self._colors: dict[int, str] = {}
        self._normal = ""
        # The last second formatted by `_asctime`, and its text.
        self._second = -1
        self._second_text = ""
        self._second_format: Optional[str] = None
        if color and _stderr_supports_color():
            self._colors, self._normal = self._color_codes(colors)
        # The format is the default, whose only field after the prefix is
        # the message (see format()). No field defaults can be set here:
        # this constructor does not pass `logging.Formatter`'s ``defaults``.
        self._default_layout = fmt == self.DEFAULT_FORMAT and style == "%"
        self._prefix_key: Optional[tuple[Any, ...]] = None
        self._prefix = ""

    @staticmethod
    def _color_codes(colors: dict[int, int]) -> tuple[dict[int, str], str]:
        if curses is not None:
            # Ask the terminal database; "setf" is the older capability for
            # terminals that lack "setaf".
            foreground = curses.tigetstr("setaf") or curses.tigetstr("setf") or b""
            codes = {
                level: str(curses.tparm(foreground, number), "ascii")
                for level, number in colors.items()
            }
            return codes, str(curses.tigetstr("sgr0") or b"", "ascii")
        return {level: f"\033[2;3{number}m" for level, number in colors.items()}, "\033[0m"

    def _prefix_for(self, key: tuple[Any, ...]) -> Optional[str]:
        # For handle_line's direct path: the prefix made last, if it was
        # made for ``key`` in the default layout, else None.
        if self._default_layout and self._prefix_key == key:
            return self._prefix
        return None

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``; see the class docstring for the layout."""
        try:
            message = record.getMessage()
            if type(message) is not str:
                message = _safe_unicode(message)
        except Exception as exc:
            # A message whose arguments do not fit its format string should
            # still be logged, with enough detail to find the culprit.
            message = f"Bad message ({exc!r}): {record.__dict__!r}"
        record.message = message
        asctime = record.asctime = self._asctime(record)
        color = self._colors.get(record.levelno)
        if color is not None:
            end_color = self._normal
        else:
            color = end_color = ""
        record.color = color
        record.end_color = end_color
        if self._default_layout and type(self).formatMessage is _stock_format_message:
            # The default format, with its prefix (the same for every record
            # of one call site in one second) made once.
            key = (record.levelname, asctime, record.module, record.lineno, color)
            if key != self._prefix_key:
                self._prefix = self._style.format(record).removesuffix(message)
                self._prefix_key = key
            formatted = self._prefix + message
        else:
            formatted = self.formatMessage(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text or record.stack_info:
            lines = [formatted.rstrip()]
            for text in (record.exc_text, record.stack_info):
                if text:
                    lines.extend(_safe_unicode(line) for line in text.split("\n"))
            formatted = "\n".join(lines)
        if "\n" not in formatted:
            return formatted
        return formatted.replace("\n", "\n    ")

    def _asctime(self, record: logging.LogRecord) -> str:
        """``formatTime``, formatted once per second.

        `time.strftime` has no field finer than a second, so records of one
        second share their text (an access log writes thousands a second).
        A subclass's own ``formatTime`` or ``converter`` is called as it is.
        """
        if type(self).formatTime is not logging.Formatter.formatTime or (
            self.converter is not time.localtime
        ):
            return self.formatTime(record, self.datefmt)
        second = int(record.created)
        datefmt = self.datefmt
        if second != self._second or datefmt is not self._second_format:
            self._second_text = self.formatTime(record, datefmt)
            self._second = second
            self._second_format = datefmt
        return self._second_text


# The classes whose methods `_route` reads (their bases' methods too): while
# none of them has changed, only the record factory can have. Reading the
# sixteen methods again costs about 5k instructions a line; asking whether
# the classes kept their version tags, ~0.3k.
_ROUTE_TYPES = (_Logger, _LogRecord, _StreamHandler, LogFormatter)

# The end of `_route` when the formatter and the record factory are the stock ones.
_STOCK_FORMAT_ROUTE = (
    _stock_format_message,
    logging.Formatter.formatTime,
    LogFormatter.format,
    logging.LogRecord,
)


def _level_number(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise ValueError(
            f"Unknown log level {name!r}: use debug, info, warning, error, critical or none"
        )
    return level


def enable_pretty_logging(
    options: Optional[OptionParser] = None, logger: Optional[logging.Logger] = None
) -> None:
    """Configure ``logger`` (the root logger by default) from ``options``.

    Sets the level from ``options.logging`` (nothing is done if it is None or
    ``"none"``), adds a rotating file handler when ``log_file_prefix`` is set,
    and a colour-capable stderr handler when ``log_to_stderr`` is true, or is
    None and the logger has no handler yet.

    Args:
        options: the parser holding the options of `define_logging_options`;
            the global `squall.options.options` by default.
        logger: the logger to configure; the root logger by default.

    Raises:
        ValueError: for an unknown level or ``log_rotate_mode``.
    """
    if options is None:
        import squall.options

        options = squall.options.options
    opts: Any = options
    if opts.logging is None or opts.logging.lower() == "none":
        return
    if logger is None:
        logger = logging.getLogger()
    logger.setLevel(_level_number(opts.logging))
    if opts.log_file_prefix:
        mode = opts.log_rotate_mode
        handler: logging.Handler
        if mode == "size":
            handler = logging.handlers.RotatingFileHandler(
                filename=opts.log_file_prefix,
                mode="a",
                maxBytes=opts.log_file_max_size,
                backupCount=opts.log_file_num_backups,
                encoding="utf-8",
            )
        elif mode == "time":
            handler = logging.handlers.TimedRotatingFileHandler(
                filename=opts.log_file_prefix,
                when=opts.log_rotate_when,
                interval=opts.log_rotate_interval,
                backupCount=opts.log_file_num_backups,
                encoding="utf-8",
            )
        else:
            raise ValueError(f'log_rotate_mode must be "size" or "time", not {mode!r}')
        handler.setFormatter(LogFormatter(color=False))
        logger.addHandler(handler)
    if opts.log_to_stderr or (opts.log_to_stderr is None and not logger.handlers):
        stderr_handler = logging.StreamHandler()
        stderr_handler.setFormatter(LogFormatter())
        logger.addHandler(stderr_handler)


def define_logging_options(options: Optional[OptionParser] = None) -> None:
    """Define the options that `enable_pretty_logging` reads.

    They are ``logging``, ``log_to_stderr``, ``log_file_prefix``,
    ``log_file_max_size``, ``log_file_num_backups``, ``log_rotate_when``,
    ``log_rotate_interval`` and ``log_rotate_mode``. A parse callback is
    added so that each final parse of ``options`` applies them.

    Args:
        options: the parser to define them on; the global
            `squall.options.options` by default (which already has them).
    """
    if options is None:
        import squall.options

        options = squall.options.options
    options.define(
        "logging",
        default="info",
        help="Log level of the root logger: debug, info, warning, error or "
        "critical. 'none' leaves logging as the program set it up.",
        metavar="debug|info|warning|error|none",
    )
    options.define(
        "log_to_stderr",
        type=bool,
        default=None,
        help="Log to stderr, in colour on a colour terminal. Unset, stderr is "
        "used only when the logger has no other handler (such as the "
        "--log_file_prefix file).",
    )
    options.define(
        "log_file_prefix",
        type=str,
        default=None,
        metavar="PATH",
        help="Log to this file, rotated as --log_rotate_mode says. Each "
        "process needs its own file: put the port in the name when running "
        "several.",
    )
    options.define(
        "log_file_max_size",
        type=int,
        default=100 * 1000 * 1000,
        help="Size in bytes at which the log file is rotated (size mode)",
    )
    options.define(
        "log_file_num_backups",
        type=int,
        default=10,
        help="How many rotated log files are kept",
    )
    options.define(
        "log_rotate_when",
        type=str,
        default="midnight",
        help="When the log file is rotated (time mode): 'midnight', 'S', "
        "'M', 'H', 'D' or 'W0'-'W6', as for TimedRotatingFileHandler",
    )
    options.define(
        "log_rotate_interval",
        type=int,
        default=1,
        help="How many --log_rotate_when units between rotations (time mode)",
    )
    options.define(
        "log_rotate_mode",
        type=str,
        default="size",
        help="Rotate the log file by 'size' or by 'time'",
    )
    parser = options
    parser.add_parse_callback(lambda: enable_pretty_logging(parser))
