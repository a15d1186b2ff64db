"""``python -m squall.extras``: an extra's requirements read from the installed
distribution's metadata, to add them without building squall again."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from squall import extras

# The tree's (a copy of it beside an installed squall has it too).
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def _declared() -> dict[str, list[str]]:
    with PYPROJECT.open("rb") as f:
        found: dict[str, list[str]] = tomllib.load(f)["project"]["optional-dependencies"]
    return found


def test_every_extra_of_pyproject_is_read_back_from_the_installed_metadata() -> None:
    declared = _declared()
    installed = extras.available()
    assert set(installed) == {extras._normalize(name) for name in declared}
    for name, reqs in declared.items():
        # (the metadata writes a requirement without spaces, as pyproject does here)
        assert extras.requirements(name) == reqs, name


def test_the_redis_extra_brings_hiredis() -> None:
    assert extras.requirements("redis") == ["redis[hiredis]>=5.0"]


def test_extras_are_merged_in_order_each_requirement_once() -> None:
    both = extras.requirements("speedups", "prebuilt", "nats")
    assert both == [*_declared()["speedups"], *_declared()["nats"]]


@pytest.mark.parametrize(
    "line, expected",
    [
        ('redis[hiredis]>=5.0; extra == "redis"', ("redis[hiredis]>=5.0", "redis", "")),
        (
            'uvloop>=0.19; sys_platform != "win32" and extra == "speedups"',
            ("uvloop>=0.19", "speedups", 'sys_platform != "win32"'),
        ),
        (
            "qh3>=2.1; extra == 'http3_qh3' and python_version < \"3.14\"",
            ("qh3>=2.1", "http3-qh3", 'python_version < "3.14"'),
        ),
        ("anyio>=4", ("anyio>=4", None, "")),
    ],
)
def test_a_requirement_keeps_its_other_markers(line: str, expected: tuple[str, Any, str]) -> None:
    assert extras._split(line) == expected


def test_an_unknown_extra_is_refused_naming_the_known_ones(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(KeyError):
        extras.requirements("redis", "no-such-extra")
    assert extras.main(["no-such-extra"]) == 2
    err = capsys.readouterr().err
    assert "no extra 'no-such-extra'" in err and "redis" in err and "nats" in err


def test_a_distribution_not_installed_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(metadata.PackageNotFoundError):
        extras.requirements("redis", distribution="squall-not-installed-here")


def test_printed_one_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert extras.main(["redis", "nats"]) == 0
    assert capsys.readouterr().out.splitlines() == ["redis[hiredis]>=5.0", "nats-py>=2.6"]


def test_install_runs_this_pythons_pip_on_the_requirements_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ran: list[list[str]] = []

    def run(command: list[str], check: bool) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 3)

    monkeypatch.setattr(extras.subprocess, "run", run)
    assert extras.main(["--install", "redis", "nats"]) == 3
    assert ran == [[sys.executable, "-m", "pip", "install", "redis[hiredis]>=5.0", "nats-py>=2.6"]]


def test_the_module_runs_as_a_script() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "squall.extras", "http3"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines() == _declared()["http3"]
