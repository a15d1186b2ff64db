"""Fuzz c/xhtml.c against squall/_xhtml.py (atheris, bounded run).

    .venv-fuzz/bin/python speedups/fuzz_xhtml.py [--seconds 120]

Builds c/xhtml.c twice into a temporary directory, plain and with
AddressSanitizer and UndefinedBehaviorSanitizer, then runs itself under
atheris twice, half the time each: coverage-guided with the plain build,
then with the sanitized build and ASan preloaded, from the corpus the first
run grew. Each input's first byte picks how the rest becomes a str (UTF-8
with lone surrogates let through, Latin-1, UTF-16 or UTF-32, which between
them reach every storage width of a str); the str, a str subclass, the raw
bytes and a bytes subclass go to both modules' xhtml_escape, the str and an
int from the bytes to escape_value. It is a crash when a result, or an
exception's type and message, differs, or on any sanitizer report. Coverage
guidance comes from the instrumented Python side (the C code is not
instrumented).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzzing import HERE, main  # noqa: E402

SEEDS = [
    b"\x00<a href=\"x\">'&'</a>",
    b"\x01caf\xe9 <\xff>",
    b"\x02" + "\u20ac<&>\ud800".encode("utf-16-le", "surrogatepass"),
    b"\x03" + "\U0001f600\"'".encode("utf-32-le"),
    b"\x00\xff\xfe<",
]


class _Text(str):
    pass


class _Data(bytes):
    pass


def _as_text(data: bytes) -> str:
    mode, rest = data[0] % 4, data[1:]
    if mode == 0:
        return rest.decode("utf-8", "surrogatepass") if _utf8_ok(rest) else rest.decode("latin-1")
    if mode == 1:
        return rest.decode("latin-1")
    if mode == 2:
        return rest[: len(rest) // 2 * 2].decode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(rest[i : i + 4], "little") % 0x110000 for i in range(0, len(rest), 4)]
    return "".join(map(chr, units))


def _utf8_ok(data: bytes) -> bool:
    try:
        data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return False
    return True


def fuzz(ext: str, flags: list[str]) -> None:
    import importlib.util
    from importlib.machinery import ExtensionFileLoader

    import atheris

    name = "squall._xhtml"
    spec = importlib.util.spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
    assert spec is not None and spec.loader is not None
    c_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(c_module)
    source = HERE.parent / "squall" / "_xhtml.py"
    spec = importlib.util.spec_from_file_location("pure_xhtml", source)
    assert spec is not None and spec.loader is not None
    py_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py_module)

    def outcome(func: Any, *args: Any) -> object:
        try:
            result = func(*args)
        except Exception as exc:
            return ("raised", type(exc), str(exc))
        return ("ok", type(result), result)

    def target(data: bytes) -> None:
        if not data:
            return
        text = _as_text(data)
        for value in (text, _Text(text), data[1:], _Data(data[1:])):
            expected = outcome(py_module.xhtml_escape, value)
            assert outcome(c_module.xhtml_escape, value) == expected, value
        number = int.from_bytes(data[1:9], "little", signed=data[0] & 0x80 != 0)
        for value in (text, number, number % 1100, data[1:]):
            expected = outcome(py_module.escape_value, value, repr)
            assert outcome(c_module.escape_value, value, repr) == expected, value

    # Coverage guidance from the Python side (the C code is not instrumented).
    for func in (target, _as_text, py_module.xhtml_escape, py_module.escape_value):
        atheris.instrument_func(func)
    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(__doc__, __file__, fuzz, "xhtml.c", "_xhtml", SEEDS, max_len=4096)
