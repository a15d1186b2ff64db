"""Command-line and config-file options, defined by the modules that use them.

Any module can declare the options it needs, at import time::

    from squall.options import define, options

    define("port", default=8888, help="port to listen on")
    define("db_hosts", default=["localhost"], multiple=True)

    def serve() -> None:
        app.listen(options.port)

and the program's entry point fills them in, from ``sys.argv``
(``--port=80 --db_hosts=a,b``) or from a Python config file (``port = 80``)::

    squall.options.parse_command_line()

Option values are typed: ``str``, ``int``, ``float``, ``bool``,
`datetime.datetime`, `datetime.timedelta` (``"1h 30m"``), or any class whose
constructor takes a string. ``multiple=True`` options take comma-separated
lists, and integer lists accept inclusive ranges (``1,3,5:7``). Dashes and
underscores in names are interchangeable.

The global parser also carries the logging options of `squall.log`; its
final parse configures logging (unless ``--logging=none``).
"""

from __future__ import annotations

import datetime
import numbers
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from typing import Any, Optional, TextIO

from squall.log import define_logging_options

__all__ = [
    "Error",
    "OptionParser",
    "add_parse_callback",
    "define",
    "options",
    "parse_command_line",
    "parse_config_file",
    "print_help",
]


class Error(Exception):
    """An option is unknown, defined twice, or given a value it cannot take."""


class _ValueError(Error, ValueError):
    """A value that does not parse; also a ValueError for callers expecting one."""


_UNSET: Any = object()

# Tried in order; the first that parses wins.
_DATETIME_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%Y%m%d %H:%M:%S",
    "%Y%m%d %H:%M",
    "%Y-%m-%d",
    "%Y%m%d",
    "%H:%M:%S",
    "%H:%M",
    "%a %b %d %H:%M:%S %Y",
)

_TIMEDELTA_UNITS = {
    "weeks": ("w", "wk", "week", "weeks"),
    "days": ("d", "day", "days"),
    "hours": ("h", "hr", "hour", "hours"),
    "minutes": ("m", "min", "minute", "minutes"),
    "seconds": ("", "s", "sec", "second", "seconds"),
    "milliseconds": ("ms", "millisecond", "milliseconds"),
    "microseconds": ("us", "microsecond", "microseconds"),
}
_TIMEDELTA_UNIT_NAMES = {
    alias: unit for unit, aliases in _TIMEDELTA_UNITS.items() for alias in aliases
}
# One "<number><unit>" term of a duration; terms may be separated by spaces.
_TIMEDELTA_TERM_RE = re.compile(
    r"\s*([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*([a-zA-Z]*)\s*"
)

_TRUE_WORDS = frozenset({"true", "t", "1", "yes", "y", "on"})
_FALSE_WORDS = frozenset({"false", "f", "0", "no", "n", "off"})


def _parse_datetime(text: str) -> datetime.datetime:
    for fmt in _DATETIME_FORMATS:
        try:
            return datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"unrecognized date/time format: {text!r}") from None


def _parse_timedelta(text: str) -> datetime.timedelta:
    total = datetime.timedelta()
    pos = 0
    if not text.strip():
        raise ValueError("empty duration")
    while pos < len(text):
        match = _TIMEDELTA_TERM_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"unrecognized duration {text!r} at {text[pos:]!r}")
        number, unit = match.groups()
        name = _TIMEDELTA_UNIT_NAMES.get(unit.lower())
        if name is None:
            raise ValueError(f"unknown time unit {unit!r} in {text!r}")
        total += datetime.timedelta(**{name: float(number)})
        pos = match.end()
    return total


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _parse_str(text: str) -> str:
    return text


_PARSERS: dict[Any, Callable[[str], Any]] = {
    datetime.datetime: _parse_datetime,
    datetime.timedelta: _parse_timedelta,
    bool: _parse_bool,
    str: _parse_str,
}


class _Option:
    """One defined option: its metadata and current value."""

    __slots__ = (
        "_value",
        "callback",
        "default",
        "file_name",
        "group_name",
        "help",
        "metavar",
        "multiple",
        "name",
        "type",
    )

    def __init__(
        self,
        name: str,
        default: Any,
        type: type,
        help: Optional[str],
        metavar: Optional[str],
        multiple: bool,
        file_name: str,
        group_name: str,
        callback: Optional[Callable[[Any], None]],
    ) -> None:
        if default is None and multiple:
            default = []
        self.name = name
        self.default = default
        self.type = type
        self.help = help
        self.metavar = metavar
        self.multiple = multiple
        self.file_name = file_name
        self.group_name = group_name
        self.callback = callback
        self._value: Any = _UNSET

    def value(self) -> Any:
        return self.default if self._value is _UNSET else self._value

    def _parse_one(self, text: str) -> Any:
        parser = _PARSERS.get(self.type, self.type)
        try:
            return parser(text)
        except (ValueError, TypeError) as exc:
            raise _ValueError(
                f"Option {self.name!r}: cannot parse {text!r} as {self.type.__name__}: {exc}"
            ) from exc

    def parse(self, text: str) -> Any:
        """Set the value from its string form; calls the callback."""
        if self.multiple:
            values: list[Any] = []
            is_integer = self.type is not bool and issubclass(self.type, numbers.Integral)
            for part in text.split(","):
                lo_text, colon, hi_text = part.partition(":")
                if is_integer and colon:
                    lo, hi = self._parse_one(lo_text), self._parse_one(hi_text)
                    if hi < lo:
                        raise _ValueError(f"Option {self.name!r}: empty range {part!r}")
                    values.extend(range(lo, hi + 1))
                else:
                    values.append(self._parse_one(part))
            self._value = values
        else:
            self._value = self._parse_one(text)
        if self.callback is not None:
            self.callback(self._value)
        return self.value()

    def set(self, value: Any) -> None:
        """Set the value from a Python object of the option's type."""
        if self.multiple:
            if not isinstance(value, list) or any(
                item is not None and not isinstance(item, self.type) for item in value
            ):
                raise Error(
                    f"Option {self.name!r} is required to be a list of {self.type.__name__}"
                    f" ({value!r} given)"
                )
        elif value is not None and not isinstance(value, self.type):
            raise Error(
                f"Option {self.name!r} is required to be a {self.type.__name__}"
                f" ({type(value).__name__} {value!r} given)"
            )
        self._value = value
        if self.callback is not None:
            self.callback(value)


def _normalize_name(name: str) -> str:
    # Options are keyed by their command-line spelling.
    return name.replace("_", "-")


class OptionParser:
    """A set of options, readable as attributes or items (``options.port``).

    Most programs use the global instance `options` through the module-level
    functions; a separate parser is useful for subcommands or tests.
    """

    def __init__(self) -> None:
        # __setattr__ is reserved for option values, so the parser's own
        # state goes straight into the instance dict.
        self.__dict__["_options"] = {}
        self.__dict__["_parse_callbacks"] = []
        self.define(
            "help",
            type=bool,
            help="show this help information",
            callback=self._help_callback,
        )

    def _option(self, name: str) -> _Option:
        opts: dict[str, _Option] = self.__dict__["_options"]
        normalized = _normalize_name(name)
        option = opts.get(normalized)
        if option is None:
            raise AttributeError(f"Unrecognized option {normalized!r}")
        return option

    def __getattr__(self, name: str) -> Any:
        return self._option(name).value()

    def __setattr__(self, name: str, value: Any) -> None:
        self._option(name).set(value)

    def __iter__(self) -> Iterator[str]:
        return (option.name for option in self._options.values())

    def __contains__(self, name: str) -> bool:
        return _normalize_name(name) in self._options

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def __setitem__(self, name: str, value: Any) -> None:
        self.__setattr__(name, value)

    def items(self) -> list[tuple[str, Any]]:
        """All options as ``(name, value)`` pairs, names as defined."""
        return [(option.name, option.value()) for option in self._options.values()]

    def groups(self) -> set[str]:
        """The names of all option groups (by default, the defining file)."""
        return {option.group_name for option in self._options.values()}

    def group_dict(self, group: str) -> dict[str, Any]:
        """The options of one group as a dict (all options if ``group`` is empty).

        Handy for passing a group of options as keyword arguments::

            define("template_path", group="application")
            app = Application(handlers, **options.group_dict("application"))
        """
        return {
            option.name: option.value()
            for option in self._options.values()
            if not group or option.group_name == group
        }

    def as_dict(self) -> dict[str, Any]:
        """All options as a dict of name to value."""
        return {option.name: option.value() for option in self._options.values()}

    def define(
        self,
        name: str,
        default: Any = None,
        type: Optional[type] = None,
        help: Optional[str] = None,
        metavar: Optional[str] = None,
        multiple: bool = False,
        group: Optional[str] = None,
        callback: Optional[Callable[[Any], None]] = None,
    ) -> None:
        """Define a new option.

        Args:
            name: the option's name; ``-`` and ``_`` are interchangeable.
            default: the value until one is parsed or set.
            type: the value's type; by default that of ``default``, or str.
            help: a description for `print_help`.
            metavar: the placeholder for the value in `print_help`.
            multiple: the value is a list, given comma-separated.
            group: the heading in `print_help` and the `group_dict` key;
                by default the path of the file that defines the option.
            callback: called with the new value whenever it changes.

        Raises:
            Error: if an option of this name is already defined.
        """
        normalized = _normalize_name(name)
        if normalized in self._options:
            raise Error(
                f"Option {normalized!r} already defined in "
                f"{self._options[normalized].file_name or 'squall.options'}"
            )
        file_name = _defining_file()
        if type is None:
            type = default.__class__ if default is not None and not multiple else str
        self._options[normalized] = _Option(
            name, default, type, help, metavar, multiple, file_name, group or file_name, callback
        )

    def parse_command_line(self, args: Optional[list[str]] = None, final: bool = True) -> list[str]:
        """Set options from ``--name=value`` arguments.

        Parsing stops at the first argument that does not start with ``-``
        or after ``--``. A bool option given without a value is set to True.

        Args:
            args: the command line including the program name
                (``sys.argv`` by default).
            final: run the parse callbacks (which apply the logging options)
                afterwards. Pass False when more parsing follows.

        Returns:
            The arguments left after the options.

        Raises:
            Error: for an unknown option, a missing or unparsable value.
        """
        if args is None:
            args = sys.argv
        remaining: list[str] = []
        for index in range(1, len(args)):
            arg = args[index]
            if not arg.startswith("-"):
                remaining = args[index:]
                break
            if arg == "--":
                remaining = args[index + 1 :]
                break
            name, equals, value = arg.lstrip("-").partition("=")
            name = _normalize_name(name)
            option = self._options.get(name)
            if option is None:
                self.print_help()
                raise Error(f"Unrecognized command line option: {name!r}")
            if not equals:
                if option.type is not bool:
                    raise Error(f"Option {name!r} requires a value")
                value = "true"
            option.parse(value)
        if final:
            self.run_parse_callbacks()
        return remaining

    def parse_config_file(self, path: str, final: bool = True) -> None:
        """Set options from a Python file.

        The file is executed (so never use an untrusted one), with
        ``__file__`` set to its absolute path. Each global it leaves whose
        name is a defined option sets that option: a value of the option's
        type is used as it is, a string is parsed as on the command line.

        Args:
            path: the config file, read as UTF-8.
            final: run the parse callbacks afterwards.

        Raises:
            Error: for a value of the wrong type or one that does not parse.
        """
        abspath = os.path.abspath(path)
        with open(path, "rb") as f:
            source = f.read().decode("utf-8")
        namespace: dict[str, Any] = {"__file__": abspath}
        # dont_inherit: the file is compiled as its own module would be, not
        # under this module's __future__ imports (lazy annotations).
        exec(compile(source, abspath, "exec", dont_inherit=True), namespace, namespace)
        for name, value in namespace.items():
            option = self._options.get(_normalize_name(name))
            if option is None:
                continue
            if option.multiple and not isinstance(value, (list, str)):
                raise Error(
                    f"Option {option.name!r} is required to be a list of "
                    f"{option.type.__name__} or a comma-separated string"
                )
            if isinstance(value, str) and (option.type is not str or option.multiple):
                option.parse(value)
            else:
                option.set(value)
        if final:
            self.run_parse_callbacks()

    def print_help(self, file: Optional[TextIO] = None) -> None:
        """Print the usage and all options, grouped, to ``file`` (stderr)."""
        out = sys.stderr if file is None else file
        print(f"Usage: {sys.argv[0] if sys.argv else ''} [OPTIONS]", file=out)
        print("\nOptions:\n", file=out)
        by_group: dict[str, list[_Option]] = {}
        for option in self._options.values():
            by_group.setdefault(option.group_name, []).append(option)
        for group_name, group in sorted(by_group.items()):
            if group_name:
                print(f"\n{os.path.normpath(group_name)} options:\n", file=out)
            for option in sorted(group, key=lambda o: o.name):
                print(_help_entry(option), file=out)
        print(file=out)

    def _help_callback(self, value: bool) -> None:
        if value:
            self.print_help()
            sys.exit(0)

    def add_parse_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after each final parse of these options."""
        self._parse_callbacks.append(callback)

    def run_parse_callbacks(self) -> None:
        """Call every parse callback, in the order they were added.

        A callback added by one of them runs in this same pass, after the
        others.
        """
        callbacks: list[Callable[[], None]] = self._parse_callbacks
        index = 0
        while index < len(callbacks):
            callbacks[index]()
            index += 1

    def mockable(self) -> _Mockable:
        """An object through which `unittest.mock.patch.object` can set options.

        ``mock.patch.object(options, "port", 8000)`` cannot work on the parser
        itself; use ``mock.patch.object(options.mockable(), "port", 8000)``.
        """
        return _Mockable(self)


_HELP_NAME_WIDTH = 30
_HELP_TEXT_WIDTH = 44


def _help_entry(option: _Option) -> str:
    """The lines for one option in print_help: name column, wrapped text."""
    label = _normalize_name(option.name)
    if option.metavar:
        label += "=" + option.metavar
    text = option.help or ""
    if option.default is not None and option.default != "":
        text += f" (default {option.default})"
    lines = textwrap.wrap(text, _HELP_TEXT_WIDTH)
    if not lines or len(label) > _HELP_NAME_WIDTH:
        # The description starts on its own line, under the others.
        lines.insert(0, "")
    indent = " " * (_HELP_NAME_WIDTH + 5)
    first = f"  --{label:<{_HELP_NAME_WIDTH}} {lines[0]}"
    return "\n".join([first] + [indent + line for line in lines[1:]])


class _Mockable:
    """Attribute access to an OptionParser that `mock.patch.object` can undo.

    mock.patch restores an attribute it did not find in the target's
    ``__dict__`` by deleting it; deleting here puts back the option's value
    from before the matching set.
    """

    def __init__(self, parser: OptionParser) -> None:
        self.__dict__["_parser"] = parser
        self.__dict__["_saved"] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._parser, name)

    def __setattr__(self, name: str, value: Any) -> None:
        saved: dict[str, list[Any]] = self._saved
        saved.setdefault(name, []).append(getattr(self._parser, name))
        setattr(self._parser, name, value)

    def __delattr__(self, name: str) -> None:
        saved: dict[str, list[Any]] = self._saved
        stack = saved.get(name)
        if not stack:
            raise AttributeError(f"Option {name!r} was not set through this object")
        setattr(self._parser, name, stack.pop())


def _defining_file() -> str:
    """The file whose code called ``define`` ("" for this module itself)."""
    here = _defining_file.__code__.co_filename
    # Frame 1 is OptionParser.define; frame 2 called it, maybe through the
    # module-level define() wrapper, which does not count as the definer.
    frame = sys._getframe(2)
    if frame.f_code.co_filename == here and frame.f_code.co_name == "define":
        frame = frame.f_back or frame
    file_name = frame.f_code.co_filename
    return "" if file_name == here else file_name


options = OptionParser()
"""The global option parser, used by the module-level functions."""


def define(
    name: str,
    default: Any = None,
    type: Optional[type] = None,
    help: Optional[str] = None,
    metavar: Optional[str] = None,
    multiple: bool = False,
    group: Optional[str] = None,
    callback: Optional[Callable[[Any], None]] = None,
) -> None:
    """Define an option on the global `options`; see `OptionParser.define`."""
    options.define(name, default, type, help, metavar, multiple, group, callback)


def parse_command_line(args: Optional[list[str]] = None, final: bool = True) -> list[str]:
    """Parse the command line into the global `options`.

    See `OptionParser.parse_command_line`.
    """
    return options.parse_command_line(args, final=final)


def parse_config_file(path: str, final: bool = True) -> None:
    """Parse a config file into the global `options`.

    See `OptionParser.parse_config_file`.
    """
    options.parse_config_file(path, final=final)


def print_help(file: Optional[TextIO] = None) -> None:
    """Print the help of the global `options`; see `OptionParser.print_help`."""
    options.print_help(file)


def add_parse_callback(callback: Callable[[], None]) -> None:
    """Call ``callback`` after each final parse of the global `options`."""
    options.add_parse_callback(callback)


define_logging_options(options)
