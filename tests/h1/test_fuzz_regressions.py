"""Replay the fuzz targets (fuzz/targets.py) on their seeds and on every
input kept in fuzz/regressions/<target>/ (inputs that once crashed a parser,
kept after the fix). A target raises only on a bug: an exception other than
the parser's documented error for bad input."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_fuzz_{name}", FUZZ / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


targets = _load("targets")
runner = _load("run")

CASES = [
    (name, f"seed-{i}", data)
    for name in targets.TARGETS
    for i, data in enumerate(runner.seeds(name))
] + [
    (path.parent.name, path.name, path.read_bytes())
    for path in sorted((FUZZ / "regressions").glob("*/*"))
    if path.is_file()
]


@pytest.mark.parametrize(("target", "label", "data"), CASES, ids=[f"{t}-{n}" for t, n, _ in CASES])
def test_fuzz_input_does_not_crash(target: str, label: str, data: bytes) -> None:
    targets.TARGETS[target](data)


def test_h1_request_target_reaches_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    # A request seed yields requests, not a silent no-op: the control byte
    # selects the backend and the split, and the rest is parsed.
    seen: list[str] = []
    original = targets.H1Connection.next_event

    def spy(self: object) -> object:
        ev = original(self)
        seen.append(type(ev).__name__)
        return ev

    monkeypatch.setattr(targets.H1Connection, "next_event", spy)
    targets.h1_request(b"\x01GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert "Request" in seen and "EndOfMessage" in seen


def test_extended_parameter_with_a_nul_in_its_charset_is_decoded_as_utf8() -> None:
    # Found by fuzzing the multipart target: the charset of an RFC 8187
    # parameter went to bytes.decode, which raises ValueError for a NUL.
    from squall.httputil import HTTPFile, parse_body_arguments

    args: dict[str, list[bytes]] = {}
    files: dict[str, list[HTTPFile]] = {}
    body = b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nv\r\n--b--\r\n'
    # The request's Content-Type is not checked for NULs before this parse.
    parse_body_arguments("multipart/form-data; boundary*=u\x00x''b", body, args, files)
    assert args == {"a": [b"v"]}
