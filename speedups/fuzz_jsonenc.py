"""Fuzz c/jsonenc.c against squall/_jsonenc.py (atheris, bounded run).

    .venv-fuzz/bin/python speedups/fuzz_jsonenc.py [--seconds 120]

Builds c/jsonenc.c twice into a temporary directory, plain and with
AddressSanitizer and UndefinedBehaviorSanitizer, then runs itself under
atheris twice, half the time each: coverage-guided with the plain build,
then with the sanitized build and ASan preloaded, from the corpus the first
run grew. Each input is read as a program that builds one value: None,
bools, ints of any size, floats (NaN and the infinities too), strs of every
storage width with lone surrogates, lists, tuples and dicts (str keys, or
now and then another key), subclasses of int, float and str, a set, nested
past MAX_DEPTH at times, and a list that holds itself. It is a crash when
encode_plain's result, or its exception's type and message, differs
between C and Python, when a plain value's text is not json.dumps's with
every ``</`` written ``<\\/``, or on any sanitizer report. Coverage
guidance comes from the instrumented Python side (the C code is not
instrumented).
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzzing import HERE, main  # noqa: E402

SEEDS = [
    b"\x05\x03\x00\x01\x02abc\x04",
    b"\x04\x02\x07</script>\x01\x02\x00\x09",
    b"\x06" * 40,
    b"\x03\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x08\x00\x00\xf8\x7f",
    b"\x07\xd8\x00\xdc\x00\xe9\x00\x20\xac\x3c\x2f",
]


class _Int(int):
    pass


class _Float(float):
    pass


class _Text(str):
    pass


class _Level(enum.IntEnum):
    LOW = 1


def _text(data: Any) -> str:
    raw = data.ConsumeBytes(data.ConsumeIntInRange(0, 24))
    mode = data.ConsumeIntInRange(0, 2)
    if mode == 0:
        return raw.decode("latin-1")
    if mode == 1:
        return raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(raw[i : i + 3], "little") % 0x110000 for i in range(0, len(raw), 3)]
    return "".join(map(chr, units))


def _value(data: Any, depth: int) -> Any:
    if data.remaining_bytes() == 0:
        return None
    kind = data.ConsumeIntInRange(0, 15)
    if kind == 0:
        return None
    if kind == 1:
        return data.ConsumeBool()
    if kind == 2:
        return data.ConsumeInt(data.ConsumeIntInRange(1, 24))
    if kind == 3:
        return data.ConsumeRegularFloat() if data.ConsumeBool() else data.ConsumeFloat()
    if kind in (4, 5):
        return _text(data)
    if kind in (6, 7, 8) and depth < 40:
        items = [_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 4))]
        return tuple(items) if kind == 8 else items
    if kind in (9, 10) and depth < 40:
        out: dict[Any, Any] = {}
        for _ in range(data.ConsumeIntInRange(0, 4)):
            key: Any = _text(data)
            if kind == 10 and data.ConsumeIntInRange(0, 7) == 0:
                key = data.ConsumeIntInRange(0, 3) or None
            out[key] = _value(data, depth + 1)
        return out
    if kind == 11:
        choice = data.ConsumeIntInRange(0, 3)
        if choice == 0:
            return _Int(data.ConsumeInt(8))
        if choice == 1:
            return _Float(data.ConsumeFloat())
        if choice == 2:
            return _Text(_text(data))
        return _Level.LOW
    if kind == 12:
        return {data.ConsumeIntInRange(0, 9)}
    if kind == 13 and depth < 40:
        loop: list[Any] = [_value(data, depth + 1)]
        loop.append(loop)
        return loop
    return _text(data)


def fuzz(ext: str, flags: list[str]) -> None:
    import importlib.util
    from importlib.machinery import ExtensionFileLoader

    import atheris

    name = "squall._jsonenc"
    spec = importlib.util.spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
    assert spec is not None and spec.loader is not None
    c_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(c_module)
    source = HERE.parent / "squall" / "_jsonenc.py"
    spec = importlib.util.spec_from_file_location("pure_jsonenc", source)
    assert spec is not None and spec.loader is not None
    py_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(py_module)
    assert c_module.MAX_DEPTH == py_module.MAX_DEPTH

    def outcome(value: Any) -> object:
        try:
            result = value[0](value[1])
        except Exception as exc:
            return ("raised", type(exc), str(exc))
        return ("ok", type(result), result)

    def target(data: bytes) -> None:
        value = _value(atheris.FuzzedDataProvider(data), 0)
        expected = outcome((py_module.encode_plain, value))
        got = outcome((c_module.encode_plain, value))
        assert got == expected, (value, got, expected)
        if got[0] == "ok" and got[2] is not None:
            assert got[2] == json.dumps(value).replace("</", "<\\/"), value

    # Coverage guidance from the Python side (the C code is not instrumented).
    for func in (target, _value, _text, py_module.encode_plain, py_module._plain):
        atheris.instrument_func(func)
    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(__doc__, __file__, fuzz, "jsonenc.c", "_jsonenc", SEEDS, max_len=4096)
