"""Tests for squall.options."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

import squall.log
import squall.options
from squall.options import Error, OptionParser


class Color:
    """A user type built from its string form."""

    def __init__(self, name: str) -> None:
        if name not in ("red", "green"):
            raise ValueError(f"no such color {name!r}")
        self.name = name


def new_parser(**defs: dict[str, Any]) -> OptionParser:
    parser = OptionParser()
    for name, kwargs in defs.items():
        parser.define(name, **kwargs)
    return parser


# --- defining and accessing ---------------------------------------------------


def test_defaults_and_inferred_types() -> None:
    parser = new_parser(port={"default": 80}, name={}, ratio={"default": 0.5})
    assert parser.port == 80
    assert parser.name is None
    parser.parse_command_line(["prog", "--port=8080", "--name=x", "--ratio=2"])
    assert (parser.port, parser.name, parser.ratio) == (8080, "x", 2.0)


def test_attribute_and_item_access() -> None:
    parser = new_parser(port={"default": 80})
    parser.port = 81
    assert parser["port"] == 81
    parser["port"] = 82
    assert parser.port == 82
    assert "port" in parser
    assert "nope" not in parser


def test_unknown_option_access_raises_attribute_error() -> None:
    parser = OptionParser()
    with pytest.raises(AttributeError, match="nope"):
        _ = parser.nope
    with pytest.raises(AttributeError, match="nope"):
        parser.nope = 1
    with pytest.raises(AttributeError):
        parser["nope"]


def test_unknown_option_is_named_with_dashes_as_tornado_does() -> None:
    parser = OptionParser()
    for spelling in ("no_such_thing", "no-such_thing"):
        with pytest.raises(AttributeError, match="^Unrecognized option 'no-such-thing'$"):
            getattr(parser, spelling)
        with pytest.raises(AttributeError, match="^Unrecognized option 'no-such-thing'$"):
            setattr(parser, spelling, 1)


def test_set_checks_the_type() -> None:
    parser = new_parser(port={"default": 80}, hosts={"type": str, "multiple": True})
    with pytest.raises(Error, match=r"'port' is required to be a int \(str '81' given\)"):
        parser.port = "81"
    parser.port = None
    assert parser.port is None
    parser.hosts = ["a", None]
    with pytest.raises(Error, match="list of str"):
        parser.hosts = "a"
    with pytest.raises(Error, match="list of str"):
        parser.hosts = ["a", 1]


def test_callback_runs_on_set_and_parse() -> None:
    seen: list[Any] = []
    parser = new_parser(level={"default": 1, "callback": seen.append})
    parser.level = 2
    parser.parse_command_line(["prog", "--level=3"])
    assert seen == [2, 3]


def test_redefinition_is_an_error_whatever_the_spelling() -> None:
    parser = new_parser(**{"max-size": {}})
    with pytest.raises(Error, match=r"Option 'max-size' already defined in .*test_options\.py"):
        parser.define("max_size")
    with pytest.raises(Error, match="already defined in squall.options"):
        parser.define("help")


def test_dashes_and_underscores_are_interchangeable() -> None:
    parser = new_parser(**{"max-size": {"default": 1}, "min_size": {"default": 2}})
    parser.parse_command_line(["prog", "--max_size=10", "--min-size=20"])
    assert parser.max_size == 10
    assert parser["max-size"] == 10
    assert parser["min_size"] == parser["min-size"] == 20
    # Introspection keeps the names as defined.
    assert sorted(parser) == ["help", "max-size", "min_size"]


def test_introspection() -> None:
    parser = new_parser(a={"default": 1}, b={"default": 2, "group": "g"})
    assert parser.as_dict() == {"help": None, "a": 1, "b": 2}
    assert sorted(parser.items(), key=lambda kv: kv[0]) == [("a", 1), ("b", 2), ("help", None)]
    assert parser.groups() == {"", "g", __file__}
    assert parser.group_dict("g") == {"b": 2}
    assert parser.group_dict(__file__) == {"a": 1}
    assert parser.group_dict("") == parser.as_dict()
    assert parser.group_dict("missing") == {}


def test_module_level_define_records_the_callers_file() -> None:
    saved = dict(squall.options.options._options)
    try:
        squall.options.define("squall_test_only", default=3, help="temporary")
        assert squall.options.options.squall_test_only == 3
        assert squall.options.options.group_dict(__file__) == {"squall_test_only": 3}
    finally:
        squall.options.options._options.clear()
        squall.options.options._options.update(saved)


def test_logging_options_are_grouped_under_the_log_module() -> None:
    log_file = squall.log.__file__
    assert "log_rotate_mode" in squall.options.options.group_dict(log_file)


# --- command line ---------------------------------------------------------------


def test_parse_command_line_returns_what_follows_the_options() -> None:
    parser = new_parser(verbose={"default": False}, n={"default": 0})
    assert parser.parse_command_line(["prog", "--verbose", "-n=2", "run", "--x"]) == [
        "run",
        "--x",
    ]
    assert parser.verbose is True
    assert parser.n == 2
    assert parser.parse_command_line(["prog", "--n=3", "--", "--n=4"]) == ["--n=4"]
    assert parser.n == 3
    assert parser.parse_command_line(["prog"]) == []


def test_parse_command_line_defaults_to_sys_argv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["prog", "--n=5", "rest"])
    parser = new_parser(n={"default": 0})
    assert parser.parse_command_line() == ["rest"]
    assert parser.n == 5


def test_unknown_command_line_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OptionParser()
    with pytest.raises(Error, match="Unrecognized command line option: 'bogus'"):
        parser.parse_command_line(["prog", "--bogus=1"])
    assert "Usage:" in capsys.readouterr().err


def test_missing_value() -> None:
    parser = new_parser(n={"default": 0})
    with pytest.raises(Error, match="'n' requires a value"):
        parser.parse_command_line(["prog", "--n"])


def test_command_line_errors_name_the_option_with_dashes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = new_parser(max_size={"default": 0})
    with pytest.raises(Error, match="^Unrecognized command line option: 'max-sizes'$"):
        parser.parse_command_line(["prog", "--max_sizes=1"])
    with pytest.raises(Error, match="^Option 'max-size' requires a value$"):
        parser.parse_command_line(["prog", "--max_size"])
    capsys.readouterr()


def test_unparsable_value_is_an_error_and_a_value_error() -> None:
    parser = new_parser(n={"default": 0})
    with pytest.raises(Error, match="'n': cannot parse 'many' as int") as info:
        parser.parse_command_line(["prog", "--n=many"])
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("1", True), ("Yes", True), ("on", True), ("f", False), ("OFF", False)],
)
def test_bool_values(text: str, value: bool) -> None:
    parser = new_parser(debug={"type": bool})
    parser.parse_command_line(["prog", f"--debug={text}"])
    assert parser.debug is value


def test_bad_bool_value() -> None:
    parser = new_parser(debug={"type": bool})
    with pytest.raises(Error, match="expected true or false"):
        parser.parse_command_line(["prog", "--debug=maybe"])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2024-02-29 13:14:15", datetime.datetime(2024, 2, 29, 13, 14, 15)),
        ("2024-02-29 13:14", datetime.datetime(2024, 2, 29, 13, 14)),
        ("2024-02-29T13:14", datetime.datetime(2024, 2, 29, 13, 14)),
        ("20240229 13:14", datetime.datetime(2024, 2, 29, 13, 14)),
        ("20240229", datetime.datetime(2024, 2, 29)),
        ("13:14", datetime.datetime(1900, 1, 1, 13, 14)),
        ("Thu Feb 29 13:14:15 2024", datetime.datetime(2024, 2, 29, 13, 14, 15)),
        ("2024-02-29 13:14:15.250", datetime.datetime(2024, 2, 29, 13, 14, 15, 250000)),
    ],
)
def test_datetime_values(text: str, value: datetime.datetime) -> None:
    parser = new_parser(when={"type": datetime.datetime})
    parser.parse_command_line(["prog", f"--when={text}"])
    assert parser.when == value


def test_bad_datetime_value() -> None:
    parser = new_parser(when={"type": datetime.datetime})
    with pytest.raises(Error, match="unrecognized date/time format"):
        parser.parse_command_line(["prog", "--when=yesterday"])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("45", datetime.timedelta(seconds=45)),
        ("45s", datetime.timedelta(seconds=45)),
        ("1h 30m", datetime.timedelta(hours=1, minutes=30)),
        ("1h30min", datetime.timedelta(hours=1, minutes=30)),
        ("2 days 3 hours", datetime.timedelta(days=2, hours=3)),
        ("1w", datetime.timedelta(weeks=1)),
        ("1.5ms", datetime.timedelta(microseconds=1500)),
        ("10us", datetime.timedelta(microseconds=10)),
        ("-2m", datetime.timedelta(minutes=-2)),
        ("1e1S", datetime.timedelta(seconds=10)),
    ],
)
def test_timedelta_values(text: str, value: datetime.timedelta) -> None:
    parser = new_parser(wait={"type": datetime.timedelta})
    parser.parse_command_line(["prog", f"--wait={text}"])
    assert parser.wait == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("5 fortnights", "unknown time unit 'fortnights'"),
        ("1h x", "at 'x'"),
    ],
)
def test_bad_timedelta_value(text: str, message: str) -> None:
    parser = new_parser(wait={"type": datetime.timedelta})
    with pytest.raises(Error, match=message):
        parser.parse_command_line(["prog", f"--wait={text}"])


def test_user_type() -> None:
    parser = new_parser(color={"type": Color})
    parser.parse_command_line(["prog", "--color=red"])
    assert parser.color.name == "red"
    with pytest.raises(Error, match="no such color 'blue'"):
        parser.parse_command_line(["prog", "--color=blue"])


def test_multiple_values_and_ranges() -> None:
    parser = new_parser(
        ports={"type": int, "multiple": True},
        names={"multiple": True},
        flags={"type": bool, "multiple": True},
    )
    assert parser.ports == []
    parser.parse_command_line(["prog", "--ports=80,8000:8002,1:1", "--names=a,b:c", "--flags=1,0"])
    assert parser.ports == [80, 8000, 8001, 8002, 1]
    assert parser.names == ["a", "b:c"]
    assert parser.flags == [True, False]


def test_reversed_range_is_an_error() -> None:
    parser = new_parser(ports={"type": int, "multiple": True})
    with pytest.raises(Error, match="empty range '5:3'"):
        parser.parse_command_line(["prog", "--ports=5:3"])


def test_help_prints_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    parser = OptionParser()
    with pytest.raises(SystemExit) as info:
        parser.parse_command_line(["prog", "--help"])
    assert info.value.code == 0
    assert capsys.readouterr().err.startswith("Usage: ")
    parser.parse_command_line(["prog", "--help=false"])
    assert parser.help is False


# --- parse callbacks --------------------------------------------------------------


def test_parse_callbacks_run_after_each_final_parse(tmp_path: Path) -> None:
    calls: list[str] = []
    parser = OptionParser()
    parser.add_parse_callback(lambda: calls.append("a"))
    parser.add_parse_callback(lambda: calls.append("b"))
    parser.parse_command_line(["prog"], final=False)
    assert calls == []
    parser.parse_command_line(["prog"])
    assert calls == ["a", "b"]
    config = tmp_path / "c.cfg"
    config.write_text("x = 1\n")
    parser.parse_config_file(str(config), final=False)
    assert calls == ["a", "b"]
    parser.parse_config_file(str(config))
    parser.run_parse_callbacks()
    assert calls == ["a", "b"] * 3


def test_a_parse_callback_added_by_another_runs_in_the_same_pass() -> None:
    calls: list[str] = []
    parser = OptionParser()

    def first() -> None:
        calls.append("first")
        if calls.count("first") == 1:
            parser.add_parse_callback(lambda: calls.append("added"))

    parser.add_parse_callback(first)
    parser.add_parse_callback(lambda: calls.append("second"))
    parser.run_parse_callbacks()
    assert calls == ["first", "second", "added"]
    parser.run_parse_callbacks()
    assert calls == ["first", "second", "added"] * 2


# --- config files ------------------------------------------------------------------


def test_parse_config_file(tmp_path: Path) -> None:
    parser = new_parser(
        port={"default": 80},
        name={},
        **{"max-size": {"default": 1}},
        where={},
        ports={"type": int, "multiple": True},
        hosts={"multiple": True},
        wait={"type": datetime.timedelta},
        color={"type": Color},
    )
    config = tmp_path / "server.cfg"
    config.write_text(
        "import datetime\n"
        "port = 8000 + 1\n"
        "name = '\u674e'\n"
        "max_size = 5\n"
        "where = __file__\n"
        "ports = '1:3'\n"
        "hosts = ['a', 'b']\n"
        "wait = datetime.timedelta(seconds=5)\n"
        "color = 'green'\n"
        "unrelated = object()\n",
        encoding="utf-8",
    )
    parser.parse_config_file(str(config))
    assert parser.port == 8001
    assert parser.name == "\u674e"
    assert parser.max_size == 5
    assert parser.where == str(config)
    assert parser.ports == [1, 2, 3]
    assert parser.hosts == ["a", "b"]
    assert parser.wait == datetime.timedelta(seconds=5)
    assert parser.color.name == "green"


def test_config_file_strings_are_parsed_for_non_str_options(tmp_path: Path) -> None:
    parser = new_parser(port={"default": 80}, wait={"type": datetime.timedelta})
    config = tmp_path / "c.cfg"
    config.write_text("port = '81'\nwait = '2m'\n")
    parser.parse_config_file(str(config))
    assert parser.port == 81
    assert parser.wait == datetime.timedelta(minutes=2)


def test_config_file_errors(tmp_path: Path) -> None:
    parser = new_parser(ports={"type": int, "multiple": True}, port={"default": 80})
    config = tmp_path / "c.cfg"
    config.write_text("ports = 5\n")
    with pytest.raises(Error, match="list of int or a comma-separated string"):
        parser.parse_config_file(str(config))
    config.write_text("port = 1.5\n")
    with pytest.raises(Error, match="required to be a int"):
        parser.parse_config_file(str(config))
    config.write_text("port = (\n")
    with pytest.raises(SyntaxError) as info:
        parser.parse_config_file(str(config))
    assert info.value.filename == os.path.abspath(config)


def test_config_file_annotations_are_evaluated(tmp_path: Path) -> None:
    # The file is compiled on its own, not under squall.options' __future__
    # imports: an annotation is evaluated as in any module.
    parser = new_parser(port={"default": 80})
    config = tmp_path / "c.cfg"
    config.write_text("port: int = 81\nseen = __annotations__['port']\n")
    parser.parse_config_file(str(config))
    assert parser.port == 81
    config.write_text("port: undefined_name = 82\n")
    with pytest.raises(NameError, match="undefined_name"):
        parser.parse_config_file(str(config))


def test_config_file_can_use_the_global_options(tmp_path: Path) -> None:
    config = tmp_path / "c.cfg"
    config.write_text(
        "from squall.options import options\nlog_file_num_backups = options.log_file_num_backups + 1\n"
    )
    parser = new_parser(log_file_num_backups={"default": 0})
    parser.parse_config_file(str(config))
    assert parser.log_file_num_backups == squall.options.options.log_file_num_backups + 1


# --- help ------------------------------------------------------------------------------


def test_print_help_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["server.py"])
    parser = OptionParser()
    parser.define("port", default=80, help="port to listen on", group="net")
    parser.define("bind_address", default="", metavar="ADDR", group="net")
    parser.define(
        "a_really_long_option_name_that_overflows",
        help="a description long enough that it has to be wrapped onto a second line",
        group="net",
    )
    out = io.StringIO()
    parser.print_help(out)
    assert out.getvalue() == (
        "Usage: server.py [OPTIONS]\n"
        "\n"
        "Options:\n"
        "\n"
        "  --help                           show this help information\n"
        "\n"
        "net options:\n"
        "\n"
        "  --a-really-long-option-name-that-overflows \n"
        "                                   a description long enough that it has to be\n"
        "                                   wrapped onto a second line\n"
        "  --bind-address=ADDR              \n"
        "  --port                           port to listen on (default 80)\n"
        "\n"
    )


def test_module_print_help_uses_the_global_options(capsys: pytest.CaptureFixture[str]) -> None:
    squall.options.print_help()
    err = capsys.readouterr().err
    assert "--log-file-prefix=PATH" in err
    assert f"{os.path.normpath(squall.log.__file__)} options:" in err


# --- mocking --------------------------------------------------------------------------


def test_mockable_with_mock_patch() -> None:
    parser = new_parser(port={"default": 80})
    with mock.patch.object(parser.mockable(), "port", 81):
        assert parser.port == 81
        parser.port = 82
        with mock.patch.object(parser.mockable(), "port", 83):
            assert parser.port == 83
        assert parser.port == 82
    assert parser.port == 80


def test_one_mockable_can_be_reused_and_nested() -> None:
    parser = new_parser(port={"default": 80})
    mockable = parser.mockable()
    assert mockable.port == 80
    mockable.port = 1
    mockable.port = 2
    del mockable.port
    assert parser.port == 1
    del mockable.port
    assert parser.port == 80
    with pytest.raises(AttributeError, match="not set through this object"):
        del mockable.port


# --- the global parser -----------------------------------------------------------------


def test_module_functions_use_the_global_parser(tmp_path: Path) -> None:
    options = squall.options.options
    calls: list[int] = []
    saved = list(options._parse_callbacks)
    options._parse_callbacks[:] = []
    try:
        with mock.patch.object(options.mockable(), "log_rotate_interval", 1):
            squall.options.add_parse_callback(lambda: calls.append(1))
            rest = squall.options.parse_command_line(
                ["prog", "--log-rotate-interval=7", "x"], final=False
            )
            assert rest == ["x"]
            assert options.log_rotate_interval == 7
            config = tmp_path / "c.cfg"
            config.write_text("log_rotate_interval = 9\n")
            squall.options.parse_config_file(str(config))
            assert options.log_rotate_interval == 9
            assert calls == [1]
    finally:
        options._parse_callbacks[:] = saved


def _logs_hello(code: str, *args: str) -> bool:
    program = (
        "from squall.options import options, parse_command_line;"
        f"{code};"
        "import logging; logging.info('hello')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=30,
        check=True,
    )
    return b"hello" in proc.stdout


def test_command_line_parse_enables_pretty_logging() -> None:
    assert _logs_hello("options.logging = None; parse_command_line()", "--logging=info")
    assert not _logs_hello("parse_command_line()", "--logging=None")
