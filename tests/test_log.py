"""Tests for squall.log."""

from __future__ import annotations

import io
import logging
import logging.handlers
import re
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import squall.log
import squall.options
from squall.log import (
    LogFormatter,
    access_log,
    app_log,
    define_logging_options,
    enable_pretty_logging,
    gen_log,
)
from squall.options import Error, OptionParser

PREFIX_RE = r"\[(?P<level>[DIWEC]) \d{6} \d\d:\d\d:\d\d test_log:\d+\]"


def make_record(
    msg: Any = "hello", level: int = logging.ERROR, args: Any = None, **kwargs: Any
) -> logging.LogRecord:
    record = logging.LogRecord("t", level, __file__, 10, msg, args, None, func="f")
    for key, value in kwargs.items():
        setattr(record, key, value)
    return record


class FakeCurses(types.ModuleType):
    """Enough of curses for colour detection, with no terminal involved."""

    def __init__(self, colors: int = 8) -> None:
        super().__init__("curses")
        self.colors = colors

    def setupterm(self) -> None:
        pass

    def tigetnum(self, name: str) -> int:
        assert name == "colors"
        return self.colors

    def tigetstr(self, name: str) -> bytes | None:
        return {"setaf": b"<fg%d>", "sgr0": b"<reset>"}.get(name)

    def tparm(self, template: bytes, number: int) -> bytes:
        return template % number


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger = logging.Logger("squall-test-log")
    logger.propagate = False
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter(color=False))
    logger.addHandler(handler)
    yield logger, stream
    handler.close()


def test_logger_names() -> None:
    assert access_log.name == "squall.access"
    assert app_log.name == "squall.application"
    assert gen_log.name == "squall.general"


def test_default_format(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.warning("x=%d", 5)
    logger.error("\u00e9t\u00e9")
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(PREFIX_RE + " x=5", lines[0])
    assert re.fullmatch(PREFIX_RE + " \u00e9t\u00e9", lines[1])


def test_bytes_message_is_shown_as_its_repr(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.error(b"\xe9")  # type: ignore[arg-type]
    assert stream.getvalue().rstrip().endswith("b'\\xe9'")


def test_traceback_lines_are_indented(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    try:
        raise KeyError("boom")
    except KeyError:
        logger.exception("failed\nsecond line")
    first, *rest = stream.getvalue().rstrip("\n").split("\n")
    assert re.fullmatch(PREFIX_RE + " failed", first)
    assert rest[0] == "    second line"
    assert rest[1] == "    Traceback (most recent call last):"
    assert all(line.startswith("    ") for line in rest)
    assert rest[-1] == "    KeyError: 'boom'"


def test_stack_info_is_included(capture: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = capture
    logger.error("here", stack_info=True)
    output = stream.getvalue()
    assert "\n    Stack (most recent call last):" in output
    assert "test_stack_info_is_included" in output


def test_bad_message_arguments_are_reported_not_raised() -> None:
    formatter = LogFormatter(color=False)
    output = formatter.format(make_record("%d items", args=("many",)))
    assert "Bad message (TypeError(" in output
    assert "%d items" in output


def test_precomputed_exc_text_is_used() -> None:
    formatter = LogFormatter(color=False)
    output = formatter.format(make_record(exc_text="Earlier\ntrace"))
    assert output.endswith("] hello\n    Earlier\n    trace")


def test_brace_and_dollar_styles() -> None:
    brace = LogFormatter(fmt="{color}{levelname}{end_color}: {message}", style="{", color=False)
    assert brace.format(make_record()) == "ERROR: hello"
    dollar = LogFormatter(fmt="$levelname $message", style="$", color=False)
    assert dollar.format(make_record(level=logging.INFO)) == "INFO hello"


def test_unknown_style_is_rejected() -> None:
    with pytest.raises(ValueError, match="style"):
        LogFormatter(style="#")


def test_format_without_fields() -> None:
    assert LogFormatter(fmt="-- marker --", color=False).format(make_record()) == "-- marker --"
    with pytest.raises(ValueError):
        LogFormatter(fmt="no fields", style="{")


def test_custom_date_format() -> None:
    formatter = LogFormatter(fmt="%(asctime)s", datefmt="%Y", color=False)
    assert re.fullmatch(r"\d{4}", formatter.format(make_record()))


def test_time_is_formatted_once_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    # An access log writes thousands of lines a second: strftime once.
    formatter = LogFormatter(fmt="%(asctime)s %(message)s", color=False)
    calls: list[float] = []
    real = logging.Formatter.formatTime

    def counted(self: logging.Formatter, record: logging.LogRecord, datefmt: Any = None) -> str:
        calls.append(record.created)
        return real(self, record, datefmt)

    monkeypatch.setattr(logging.Formatter, "formatTime", counted)
    monkeypatch.setattr(LogFormatter, "formatTime", counted, raising=False)
    first = [formatter.format(make_record(created=1_800_000_000.25 + i / 10)) for i in range(5)]
    assert len(calls) == 1 and len(set(first)) == 1
    assert formatter.format(make_record(created=1_800_000_001.0)) != first[0]
    formatter.datefmt = "%Y"
    assert formatter.format(make_record(created=1_800_000_001.5)).startswith("2027 ")
    assert len(calls) == 3


def test_own_format_time_is_called_each_time() -> None:
    class Stamped(LogFormatter):
        n = 0

        def formatTime(self, record: logging.LogRecord, datefmt: Any = None) -> str:
            self.n += 1
            return f"t{self.n}"

    formatter = Stamped(fmt="%(asctime)s", color=False)
    assert [formatter.format(make_record()) for _ in range(2)] == ["t1", "t2"]


def test_no_color_when_stderr_is_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "hello"


def test_curses_colors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", TTY())
    monkeypatch.setattr(squall.log, "curses", FakeCurses())
    formatter = LogFormatter(fmt="%(color)s%(levelname)s%(end_color)s %(message)s")
    assert formatter.format(make_record()) == "<fg1>ERROR<reset> hello"
    assert formatter.format(make_record(level=logging.DEBUG)) == "<fg4>DEBUG<reset> hello"
    # Levels without a colour get none.
    assert formatter.format(make_record(level=25)) == "Level 25 hello"


def test_custom_colors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", TTY())
    monkeypatch.setattr(squall.log, "curses", FakeCurses())
    formatter = LogFormatter(fmt="%(color)s%(message)s", colors={logging.ERROR: 6})
    assert formatter.format(make_record()) == "<fg6>hello"
    assert formatter.format(make_record(level=logging.INFO)) == "hello"


def test_terminal_without_colors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", TTY())
    monkeypatch.setattr(squall.log, "curses", FakeCurses(colors=-1))
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "hello"


def test_broken_terminal_database_means_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = FakeCurses()

    def setupterm() -> None:
        raise RuntimeError("no terminfo")

    broken.setupterm = setupterm  # type: ignore[method-assign]
    monkeypatch.setattr(sys, "stderr", TTY())
    monkeypatch.setattr(squall.log, "curses", broken)
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "hello"


def test_ansi_colors_through_colorama(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = TTY()
    colorama = types.ModuleType("colorama")
    colorama.initialise = types.SimpleNamespace(wrapped_stderr=stream)  # type: ignore[attr-defined]
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(squall.log, "curses", None)
    monkeypatch.setattr(squall.log, "colorama", colorama)
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "\033[2;31mhello\033[0m"
    # A stream colorama did not wrap gets no colour.
    monkeypatch.setattr(sys, "stderr", TTY())
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "hello"


def test_no_color_support_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stderr", TTY())
    monkeypatch.setattr(squall.log, "curses", None)
    monkeypatch.setattr(squall.log, "colorama", None)
    formatter = LogFormatter(fmt="%(color)s%(message)s%(end_color)s")
    assert formatter.format(make_record()) == "hello"


# --- enable_pretty_logging / define_logging_options ---------------------------


@pytest.fixture
def parser() -> OptionParser:
    options = OptionParser()
    define_logging_options(options)
    return options


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    logger = logging.Logger("squall-test-pretty")
    logger.propagate = False
    yield logger
    for handler in logger.handlers:
        handler.close()


def test_define_logging_options_defaults(parser: OptionParser) -> None:
    assert parser.logging == "info"
    assert parser.log_to_stderr is None
    assert parser.log_file_prefix is None
    assert parser.log_file_max_size == 100 * 1000 * 1000
    assert parser.log_file_num_backups == 10
    assert parser.log_rotate_when == "midnight"
    assert parser.log_rotate_interval == 1
    assert parser.log_rotate_mode == "size"


def test_global_options_already_have_logging_options() -> None:
    assert "log_file_prefix" in squall.options.options
    with pytest.raises(Error, match="already defined"):
        define_logging_options()


@pytest.mark.parametrize("value", [None, "none", "None"])
def test_logging_none_leaves_the_logger_alone(
    parser: OptionParser, logger: logging.Logger, value: str | None
) -> None:
    parser.logging = value
    enable_pretty_logging(parser, logger)
    assert logger.level == logging.NOTSET
    assert logger.handlers == []


def test_stderr_handler_when_logger_has_none(parser: OptionParser, logger: logging.Logger) -> None:
    parser.logging = "warning"
    enable_pretty_logging(parser, logger)
    assert logger.level == logging.WARNING
    [handler] = logger.handlers
    assert isinstance(handler, logging.StreamHandler)
    assert isinstance(handler.formatter, LogFormatter)


def test_no_stderr_handler_when_logger_has_one(
    parser: OptionParser, logger: logging.Logger
) -> None:
    existing = logging.NullHandler()
    logger.addHandler(existing)
    enable_pretty_logging(parser, logger)
    assert logger.handlers == [existing]
    parser.log_to_stderr = True
    enable_pretty_logging(parser, logger)
    assert len(logger.handlers) == 2


def test_log_to_stderr_false(parser: OptionParser, logger: logging.Logger) -> None:
    parser.log_to_stderr = False
    enable_pretty_logging(parser, logger)
    assert logger.handlers == []
    assert logger.level == logging.INFO


def test_unknown_level_is_rejected(parser: OptionParser, logger: logging.Logger) -> None:
    parser.logging = "chatty"
    with pytest.raises(ValueError, match="chatty"):
        enable_pretty_logging(parser, logger)


def test_size_rotated_log_file(
    parser: OptionParser, logger: logging.Logger, tmp_path: Path
) -> None:
    parser.log_file_prefix = str(tmp_path / "app.log")
    parser.log_file_max_size = 1234
    parser.log_file_num_backups = 3
    enable_pretty_logging(parser, logger)
    [handler] = logger.handlers
    assert isinstance(handler, logging.handlers.RotatingFileHandler)
    assert handler.maxBytes == 1234
    assert handler.backupCount == 3
    logger.error("written \u00e9")
    handler.flush()
    text = (tmp_path / "app.log").read_text(encoding="utf-8")
    assert re.fullmatch(r"\[E \d{6} \d\d:\d\d:\d\d test_log:\d+\] written \u00e9\n", text)


def test_time_rotated_log_file(
    parser: OptionParser, logger: logging.Logger, tmp_path: Path
) -> None:
    parser.log_file_prefix = str(tmp_path / "app.log")
    parser.log_rotate_mode = "time"
    parser.log_rotate_when = "H"
    parser.log_rotate_interval = 2
    enable_pretty_logging(parser, logger)
    [handler] = logger.handlers
    assert isinstance(handler, logging.handlers.TimedRotatingFileHandler)
    assert handler.when == "H"
    assert handler.interval == 2 * 3600


def test_bad_rotate_mode(parser: OptionParser, logger: logging.Logger, tmp_path: Path) -> None:
    parser.log_file_prefix = str(tmp_path / "app.log")
    parser.log_rotate_mode = "daily"
    with pytest.raises(ValueError, match="'daily'"):
        enable_pretty_logging(parser, logger)
    assert not (tmp_path / "app.log").exists()


def test_final_parse_applies_the_logging_options(
    parser: OptionParser, logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    monkeypatch.setattr(
        squall.log,
        "enable_pretty_logging",
        lambda options, logger=None: calls.append((options, logger)),
    )
    parser.parse_command_line(["prog", "--logging=debug"], final=False)
    assert calls == []
    parser.parse_command_line(["prog"])
    assert calls == [(parser, None)]


def test_defaults_to_the_global_options_and_root_logger(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with monkeypatch.context() as m:
        m.setattr(squall.options.options.mockable(), "logging", "error")
        m.setattr(squall.options.options.mockable(), "log_to_stderr", False)
        try:
            enable_pretty_logging()
            assert root.level == logging.ERROR
            assert root.handlers == handlers
        finally:
            root.setLevel(level)


# -- access records from a template (squall.log.make_record) ---------------------------

SITE = (__file__, 42, "site")
TIME_FIELDS = {"created", "msecs", "relativeCreated"}


def stock_record(logger: logging.Logger, level: int, args: tuple[Any, ...]) -> logging.LogRecord:
    return logger.makeRecord(logger.name, level, SITE[0], SITE[1], "%d %s", args, None, SITE[2])


def test_template_records_equal_the_stock_ones() -> None:
    logger = logging.getLogger("squall.test.records")
    for level, args in ((logging.INFO, (200, "a")), (logging.WARNING, (404, "b"))):
        for _ in range(2):  # the second comes from the template
            before = time.time()
            fast = squall.log.make_record(logger, level, SITE, "%d %s", args)
            stock = stock_record(logger, level, args)
            after = time.time()
            assert type(fast) is logging.LogRecord
            assert fast.__dict__.keys() == stock.__dict__.keys()
            same = {k: v for k, v in fast.__dict__.items() if k not in TIME_FIELDS}
            assert same == {k: v for k, v in stock.__dict__.items() if k not in TIME_FIELDS}
            # Each made when it was made: the clock's readings around them.
            assert before <= fast.created <= stock.created <= after
            assert 0 <= stock.relativeCreated - fast.relativeCreated <= (after - before) * 1000
            assert 0 <= fast.msecs < 1000
            assert fast.getMessage() == f"{args[0]} {args[1]}"


def test_template_records_follow_the_thread_and_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    logger = logging.getLogger("squall.test.records")
    here = squall.log.make_record(logger, logging.INFO, SITE, "%d %s", (1, "x"))
    names: list[Any] = []
    other = threading.Thread(
        target=lambda: names.append(
            squall.log.make_record(logger, logging.INFO, SITE, "%d %s", (1, "x")).threadName
        ),
        name="elsewhere",
    )
    other.start()
    other.join()
    assert (here.threadName, names) == (threading.current_thread().name, ["elsewhere"])
    monkeypatch.setattr(threading.current_thread(), "name", "renamed")
    assert (
        squall.log.make_record(logger, logging.INFO, SITE, "%d %s", (1, "x")).threadName
        == "renamed"
    )
    monkeypatch.setattr(logging, "logThreads", False)
    record = squall.log.make_record(logger, logging.INFO, SITE, "%d %s", (1, "x"))
    assert (record.thread, record.threadName) == (None, None)


def test_template_records_take_the_new_pid_after_a_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    logger = logging.getLogger("squall.test.records")
    assert squall.log.make_record(logger, logging.INFO, SITE, "%d", (1,)).process == os.getpid()
    monkeypatch.setattr(os, "getpid", lambda: 4242)
    squall.log._forget_templates()  # what os.register_at_fork runs in the child
    assert squall.log.make_record(logger, logging.INFO, SITE, "%d", (1,)).process == 4242


def test_a_record_factory_or_logger_class_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tagged(logging.LogRecord):
        pass

    logger = logging.getLogger("squall.test.records")
    monkeypatch.setattr(logging, "_logRecordFactory", Tagged)
    assert type(squall.log.make_record(logger, logging.INFO, SITE, "%d", (1,))) is Tagged
    monkeypatch.undo()

    class Own(logging.Logger):
        def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
            record = super().makeRecord(*args, **kwargs)
            record.own = True
            return record

    own = Own("squall.test.own")
    assert squall.log.make_record(own, logging.INFO, SITE, "%d", (1,)).own is True  # type: ignore[attr-defined]


def test_the_default_prefix_is_made_once_and_matches_the_format() -> None:
    fast = LogFormatter(color=False)
    plain = LogFormatter(color=False)
    plain._default_layout = False  # the format string itself, every time
    colored = LogFormatter(color=False)
    colored._colors, colored._normal = {logging.INFO: "<g>", logging.ERROR: "<r>"}, "</>"
    colored_plain = LogFormatter(color=False)
    colored_plain._colors, colored_plain._normal = colored._colors, colored._normal
    colored_plain._default_layout = False
    records = [
        make_record("one %s", logging.INFO, ("a",), created=1_800_000_000.1),
        make_record("two", logging.INFO, created=1_800_000_000.2, lineno=11),
        make_record("three", logging.ERROR, created=1_800_000_000.3, lineno=11),
        make_record("four\nlines", logging.ERROR, created=1_800_000_001.0, lineno=11),
        make_record("five", logging.ERROR, created=1_800_000_001.0, module="other"),
    ]
    for record in records:
        assert fast.format(record) == plain.format(record)
        assert colored.format(record) == colored_plain.format(record)
    assert colored.format(records[0]).startswith("<g>[I ")
    assert fast.format(records[3]).endswith("] four\n    lines")
    calls: list[str] = []
    style_format = fast._style.format

    def counted(record: logging.LogRecord) -> str:
        calls.append(record.getMessage())
        return style_format(record)

    fast._style.format = counted  # type: ignore[method-assign]
    for n in range(3):
        fast.format(make_record(f"again {n}", logging.INFO, created=1_800_000_002.0))
    assert calls == ["again 0"]


def test_log_from_caller_names_the_callers_line_as_logger_info_does() -> None:
    logger = logging.getLogger("squall.test.caller")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("%s", "stock")
        squall.log.log_from_caller(logger, logging.INFO, "%s", ("fast",))
        squall.log.log_from_caller(logger, logging.DEBUG, "%s", ("below the level",))
    finally:
        logger.removeHandler(handler)
    stock, fast = seen
    assert [r.getMessage() for r in seen] == ["stock", "fast"]
    assert (fast.pathname, fast.funcName, fast.module) == (
        stock.pathname,
        stock.funcName,
        stock.module,
    )
    assert fast.lineno == stock.lineno + 1
