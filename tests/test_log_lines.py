"""squall.log.handle_line: an access line written without a record where
nothing but one StreamHandler would see it, the general way otherwise."""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

import squall.log
from squall.log import LogFormatter, handle_line

SITE = (squall.log.__file__, 77, "log_request")
MSG = "%d %s %.2fms"
ARGS = (200, "GET /x?y=1 (127.0.0.1)", 0.25)


class _Clock:
    """squall.log's ``time`` module, standing still (one second for the test)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def time_ns(self) -> int:
        return int(self.now * 1e9)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)  # localtime, strftime...


def _counting(setup: Setup) -> Any:
    real = squall.log.make_record

    def counting(*args: Any) -> logging.LogRecord:
        setup.records += 1
        return real(*args)

    return counting


class Setup:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.clock = _Clock(1_800_000_000.5)
        monkeypatch.setattr(squall.log, "time", self.clock)
        self.records = 0
        monkeypatch.setattr(squall.log, "make_record", _counting(self))
        monkeypatch.setattr(squall.log, "_line", squall.log._NO_LINE)
        # A chain of its own: parent (one handler) <- logger (none).
        self.parent = logging.getLogger("squall_line_test")
        self.logger = logging.getLogger("squall_line_test.access")
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.setFormatter(LogFormatter(color=False))
        self.parent.addHandler(self.handler)
        self.parent.propagate = False
        self.parent.setLevel(logging.INFO)

    def own(self) -> None:
        # pytest 9 adds its capture handlers to loggers that do not propagate
        # when a test's call begins: the chain gets its one handler back.
        self.parent.handlers[:] = [self.handler]

    def close(self) -> None:
        self.parent.removeHandler(self.handler)
        self.parent.propagate = True
        self.parent.setLevel(logging.NOTSET)
        self.logger.filters.clear()
        self.logger.handlers.clear()

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()


@pytest.fixture
def setup(monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    made = Setup(monkeypatch)
    yield made
    made.close()


def general_line(setup: Setup, msg: str = MSG, args: tuple[Any, ...] = ARGS) -> str:
    """The line logging writes for this record, through the record path."""
    setup.own()
    before = len(setup.lines())
    setup.logger.handle(squall.log.make_record(setup.logger, logging.INFO, SITE, msg, args))
    return setup.lines()[before]


def test_lines_written_directly_are_the_ones_logging_writes(setup: Setup) -> None:
    expected = general_line(setup)
    assert expected.endswith("] 200 GET /x?y=1 (127.0.0.1) 0.25ms")
    setup.records = 0
    for _ in range(5):
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    # The first line sets up the direct way, the other four take it.
    assert setup.records == 1
    assert setup.lines()[-5:] == [expected] * 5


def test_a_new_second_level_or_site_goes_the_general_way_once(setup: Setup) -> None:
    setup.own()
    for _ in range(2):
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.records == 1
    setup.clock.now += 1
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.records == 2
    handle_line(setup.logger, logging.WARNING, SITE, MSG, (404,) + ARGS[1:])
    assert setup.records == 3
    lines = setup.lines()
    assert lines[4].startswith("[W ")
    # The second line of each second was written directly, with its time.
    assert lines[0] == lines[1] != lines[2] == lines[3]


def direct_then(setup: Setup) -> None:
    # Two lines: the direct way is set up and taken.
    setup.own()
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.records == 1


def test_a_filter_on_the_logger_sees_every_record(setup: Setup) -> None:
    direct_then(setup)
    seen: list[logging.LogRecord] = []
    setup.logger.addFilter(lambda record: seen.append(record) or True)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert len(seen) == 1 and seen[0].getMessage().startswith("200 GET /x")


def test_a_second_handler_gets_the_record(setup: Setup) -> None:
    direct_then(setup)
    other = io.StringIO()
    extra = logging.StreamHandler(other)
    setup.logger.addHandler(extra)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert "200 GET /x" in other.getvalue()
    assert len(setup.lines()) == 3


def test_a_patched_call_handlers_is_called(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    # What an error reporter does to collect breadcrumbs.
    direct_then(setup)
    original = logging.Logger.callHandlers
    crumbs: list[str] = []

    def patched(self: logging.Logger, record: logging.LogRecord) -> None:
        crumbs.append(record.getMessage())
        original(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", patched)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert crumbs == ["200 GET /x?y=1 (127.0.0.1) 0.25ms"] * 2
    assert len(setup.lines()) == 4


@pytest.mark.parametrize(
    ("owner", "name"),
    [
        # Inherited by StreamHandler, Logger or LogFormatter: a change to the
        # base class is a change to the route as much as one to the class.
        (logging.Handler, "handle"),
        (logging.Filterer, "filter"),
        (logging.Formatter, "formatMessage"),
        (logging.Logger, "handle"),
    ],
)
def test_a_method_patched_on_a_class_or_its_base_sees_the_next_line(
    setup: Setup, monkeypatch: pytest.MonkeyPatch, owner: type, name: str
) -> None:
    direct_then(setup)
    original = getattr(owner, name)
    calls: list[str] = []

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(type(self).__name__)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, name, patched)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert calls, f"{owner.__name__}.{name} was passed by"
    assert setup.records == 2
    assert len(setup.lines()) == 3
    # With the method put back, the methods are logging's own again: the
    # direct way set up before the patch is taken again.
    monkeypatch.setattr(owner, name, original)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.records == 2
    assert len(setup.lines()) == 5


def test_an_attribute_set_on_a_class_of_the_route_is_checked_again(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not a method of the route: the lines stay direct, after one check of
    # the methods themselves (whatever the build can tell of the classes).
    direct_then(setup)
    monkeypatch.setattr(logging.StreamHandler, "squall_test_marker", 1, raising=False)
    for _ in range(3):
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.records == 1
    assert len(setup.lines()) == 5


def test_an_emit_set_on_the_handler_instance_is_called(setup: Setup) -> None:
    direct_then(setup)
    emitted: list[logging.LogRecord] = []
    setup.handler.emit = emitted.append  # type: ignore[method-assign]
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert len(emitted) == 1
    assert len(setup.lines()) == 2


def test_a_record_factory_is_used(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    direct_then(setup)
    made: list[logging.LogRecord] = []
    stock = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = stock(*args, **kwargs)
        made.append(record)
        return record

    logging.setLogRecordFactory(factory)
    try:
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    finally:
        logging.setLogRecordFactory(stock)
    assert len(made) == 1


def test_a_handler_subclass_is_given_the_record(setup: Setup) -> None:
    direct_then(setup)
    received: list[logging.LogRecord] = []

    class Recording(logging.StreamHandler):  # type: ignore[type-arg]
        def emit(self, record: logging.LogRecord) -> None:
            received.append(record)

    setup.parent.removeHandler(setup.handler)
    own = Recording(io.StringIO())
    own.setFormatter(LogFormatter(color=False))
    setup.parent.addHandler(own)
    try:
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    finally:
        setup.parent.removeHandler(own)
        setup.parent.addHandler(setup.handler)
    assert len(received) == 2


def test_the_handler_level_still_holds(setup: Setup) -> None:
    direct_then(setup)
    setup.handler.setLevel(logging.WARNING)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert len(setup.lines()) == 2
    handle_line(setup.logger, logging.WARNING, SITE, MSG, ARGS)
    assert len(setup.lines()) == 3


def test_a_message_with_a_newline_is_indented_by_the_formatter(setup: Setup) -> None:
    direct_then(setup)
    handle_line(setup.logger, logging.INFO, SITE, "%s", ("one\ntwo",))
    assert setup.lines()[-1] == "    two"


def test_arguments_that_do_not_fit_are_reported_by_the_formatter(setup: Setup) -> None:
    direct_then(setup)
    handle_line(setup.logger, logging.INFO, SITE, MSG, ("not a number",))
    assert "Bad message" in setup.lines()[-1]


def test_a_write_that_fails_goes_to_handle_error_with_the_record(setup: Setup) -> None:
    direct_then(setup)
    errors: list[logging.LogRecord] = []
    setup.handler.handleError = errors.append  # type: ignore[method-assign]
    setup.stream.close()
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert len(errors) == 1 and errors[0].getMessage().startswith("200 GET /x")


def test_the_application_access_line_is_the_documented_one(monkeypatch: pytest.MonkeyPatch) -> None:
    # log_request through handle_line, twice (the second line directly).
    from squall.testclient import TestClient
    from squall.web import Application, RequestHandler

    class Hello(RequestHandler):
        def get(self) -> None:
            self.write("hi")

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(LogFormatter(color=False))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        with TestClient(Application([("/", Hello)])) as client:
            for _ in range(3):
                assert client.get("/?a=1").body == b"hi"
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    lines = [line for line in stream.getvalue().splitlines() if "GET /?a=1" in line]
    assert len(lines) == 3
    for line in lines:
        assert " 200 GET /?a=1 (" in line and line.startswith("[I ") and line.endswith("ms")


def test_one_mapping_is_the_arguments_by_name_as_logging_has_it(setup: Setup) -> None:
    direct_then(setup)
    handle_line(setup.logger, logging.INFO, SITE, "%(user)s left", ({"user": "ann"},))
    assert setup.lines()[-1].endswith("] ann left")
    record = squall.log.make_record(setup.logger, logging.INFO, SITE, "%(user)s", ({"user": "b"},))
    assert record.args == {"user": "b"} and record.getMessage() == "b"


def test_a_new_date_format_shows_at_once(setup: Setup) -> None:
    direct_then(setup)
    formatter = setup.handler.formatter
    assert formatter is not None
    formatter.datefmt = "%Y"
    handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    assert setup.lines()[-1].startswith("[I 2027 ")


class _CountingRaw(io.RawIOBase):
    """A file's raw end: what reaches it, write by write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.writes.append(bytes(data))
        return len(data)


@pytest.mark.parametrize("line_buffering", [True, False], ids=["line-buffered", "block-buffered"])
def test_each_direct_line_reaches_the_file_at_once(setup: Setup, line_buffering: bool) -> None:
    expected = general_line(setup)
    raw = _CountingRaw()
    text = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8", line_buffering=line_buffering)
    setup.handler.setStream(text)
    setup.records = 0
    for _ in range(3):
        handle_line(setup.logger, logging.INFO, SITE, MSG, ARGS)
    # The first line sets up the direct way, the others take it; each line
    # is flushed to the file before handle_line returns.
    assert setup.records == 1
    assert raw.writes == [(expected + "\n").encode()] * 3
