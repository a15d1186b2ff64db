"""Fuzz c/fastpaths.c against squall/_fastpaths.py (atheris, bounded run).

    .venv-fuzz/bin/python speedups/fuzz_fastpaths.py [--seconds 120]

Builds c/fastpaths.c twice into a temporary directory, plain and with
AddressSanitizer and UndefinedBehaviorSanitizer, then runs itself under
atheris twice, half the time each (see `_fuzzing.campaign`). Each input is
read as a program for a coroutine (or a generator) that one to six steps
drive: each step of it sets a context variable, yields a value, returns a
value, raises an exception (StopIteration among them) or awaits nothing,
and each drive passes a context (a fresh copy, the same one again, one
entered already, or not a context at all). The same program runs through
the C `step` and through the Python one, each with its own coroutine and
contexts. Then `new_instance` is called on a class picked from the input
(plain, slotted, abstract, with its own ``__new__``, a built-in, not a
class). It is a crash when a result, an exception's type and message, the
values the contexts end with, or the coroutines' states differ, or on any
sanitizer report.
"""

from __future__ import annotations

import abc
import inspect
import re
import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzzing import main  # noqa: E402

SEEDS = [
    b"\x00\x01\x02\x03",
    b"\x01\x01\x01\x02\x00\x05",
    b"\x02\x03\x04\x01\x00",
    b"\x05\x00\x02\x02\x02\x03\x01",
    b"\x03\x04\x00\x01\x02\x03\x04\x05",
]


class _Yielded:
    """An awaitable that yields ``value`` once."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, Any, Any]:
        return (yield self.value)


class _Slotted:
    __slots__ = ("a",)


class _OwnNew:
    def __new__(cls) -> _OwnNew:
        raise AssertionError("new_instance must not call a class's own __new__")


class _Abstract(abc.ABC):
    @abc.abstractmethod
    def hook(self) -> None: ...


_CLASSES: list[Any] = [object, _Slotted, _OwnNew, _Abstract, int, dict, type(None), 5, "x", None]


def fuzz(ext: str, flags: list[str]) -> None:
    import contextvars
    import importlib.util
    from importlib.machinery import ExtensionFileLoader

    import atheris

    import squall._fastpaths as py_module

    name = "squall._fastpaths"
    spec = importlib.util.spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
    assert spec is not None and spec.loader is not None
    c_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(c_module)
    assert not isinstance(c_module.step, type(fuzz))

    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=-1)
    done = object()

    def program(data: Any) -> list[tuple[int, int]]:
        return [
            (data.ConsumeIntInRange(0, 5), data.ConsumeIntInRange(0, 9))
            for _ in range(data.ConsumeIntInRange(1, 6))
        ]

    async def coroutine(ops: list[tuple[int, int]]) -> Any:
        for op, value in ops:
            if op == 0:
                var.set(value)
            elif op == 1:
                await _Yielded(value)
            elif op == 2:
                return value
            elif op == 3:
                raise ValueError(f"refused {value}")
            elif op == 4:
                raise StopIteration(value)
        return var.get()

    def generator(ops: list[tuple[int, int]]) -> Generator[Any, Any, Any]:
        for op, value in ops:
            if op == 0:
                var.set(value)
            elif op == 1:
                yield value
            elif op == 2:
                return value
            elif op == 3:
                raise ValueError(f"refused {value}")
        return var.get()

    def state(running: Any) -> str:
        if inspect.iscoroutine(running):
            return inspect.getcoroutinestate(running)
        return inspect.getgeneratorstate(running)

    def drive(module: Any, ops: list[tuple[int, int]], kind: int, contexts: list[int]) -> Any:
        running = coroutine(ops) if kind == 0 else generator(ops)
        kept = contextvars.copy_context()
        log: list[Any] = []
        for how in contexts:
            context: Any = {0: contextvars.copy_context(), 1: kept, 2: kept, 3: "x"}[how]
            try:
                if how == 2:
                    got = kept.run(module.step, kept, running, done)
                else:
                    got = module.step(context, running, done)
                log.append(("ok", "done" if got is done else got))
            except Exception as exc:
                # Not a context: the Python step fails on the attribute, the
                # C one on the type; either way nothing ran.
                # (A context's repr names its address: each side has its own.)
                message = re.sub(r" at 0x[0-9a-f]+", "", str(exc))
                log.append(("raised", "refused" if how == 3 else (type(exc), message)))
            log.append(state(running))
        log.append(kept.get(var, None))
        if state(running) not in ("CORO_CLOSED", "GEN_CLOSED"):
            running.close()
        return log

    def outcome(func: Any, arg: Any) -> Any:
        try:
            made = func(arg)
        except Exception as exc:
            return ("raised", type(exc), str(exc))
        return ("ok", type(made))

    def target(raw: bytes) -> None:
        data = atheris.FuzzedDataProvider(raw)
        ops = program(data)
        kind = data.ConsumeIntInRange(0, 1)
        contexts = [data.ConsumeIntInRange(0, 3) for _ in range(data.ConsumeIntInRange(1, 6))]
        got = drive(c_module, ops, kind, contexts)
        expected = drive(py_module, ops, kind, contexts)
        assert got == expected, (ops, kind, contexts, got, expected)
        cls = _CLASSES[data.ConsumeIntInRange(0, len(_CLASSES) - 1)]
        got_new = outcome(c_module.new_instance, cls)
        assert got_new == outcome(py_module.new_instance, cls), (cls, got_new)

    for func in (target, drive, program, coroutine, generator, py_module.step):
        atheris.instrument_func(func)
    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(__doc__, __file__, fuzz, "fastpaths.c", "_fastpaths", SEEDS, max_len=256)
