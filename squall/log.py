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
import logging
import logging.handlers
import sys
import time
import types
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, cast

from squall.escape import to_unicode

if TYPE_CHECKING:
    from squall.options import OptionParser

__all__ = [
    "LogFormatter",
    "access_log",
    "app_log",
    "define_logging_options",
    "enable_pretty_logging",
    "gen_log",
]

access_log = logging.getLogger("squall.access")
app_log = logging.getLogger("squall.application")
gen_log = logging.getLogger("squall.general")


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

    def format(self, record: logging.LogRecord) -> str:
        """Format ``record``; see the class docstring for the layout."""
        try:
            record.message = _safe_unicode(record.getMessage())
        except Exception as exc:
            # A message whose arguments do not fit its format string should
            # still be logged, with enough detail to find the culprit.
            record.message = f"Bad message ({exc!r}): {record.__dict__!r}"
        record.asctime = self._asctime(record)
        if record.levelno in self._colors:
            record.color = self._colors[record.levelno]
            record.end_color = self._normal
        else:
            record.color = record.end_color = ""
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
