"""Fuzz c/wswrite.c against WebSocketHandler's Python write_message (atheris, bounded run).

    .venv-fuzz/bin/python speedups/fuzz_wswrite.py [--seconds 120]

Builds c/wswrite.c twice into a temporary directory, plain and with
AddressSanitizer and UndefinedBehaviorSanitizer, then runs itself under
atheris twice, half the time each: coverage-guided with the plain build,
then with the sanitized build and ASan preloaded, from the corpus the first
run grew. Each input is read as a set-up (an open connection with a sink,
none, a closed handler, another protocol class, a transport that raises
RuntimeError or OSError once) and one to four calls of write_message: a
message (a str of every storage width with lone surrogates, bytes, a str or
bytes subclass, a bytearray, an int, a dict, the last message again), a
binary flag (bools, ints, None, an object whose truth raises) and the way it
is passed (positional, by keyword, too many, an unknown keyword). The same
calls go to a handler whose write_message is the native method and to one
whose method is the Python one, on twin set-ups. It is a crash when a result
or an exception's type and message differs, when the frames on the
transports or the connection's tallies differ, or on any sanitizer report.
Coverage guidance comes from the instrumented Python side (the C code is
not instrumented).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzzing import main  # noqa: E402

SEEDS = [
    b"\x00\x01\x00\x05hello\x00",
    b"\x00\x02\x01\x03\x00\x01\x02\x01\x02",
    b"\x01\x00\x00\x01a",
    b"\x02\x03\x05\x00\x06\x07",
    b"\x03\x01\x00\x04\xe9\x20\xac\x00",
    b"\x04\x02\x00\x02hi\x00\x08\x00",
    b"\x05\x01\x00\xff" + b"x" * 200,
]


class _Text(str):
    pass


class _Data(bytes):
    pass


class _Truth:
    def __bool__(self) -> bool:
        raise ValueError("no truth here")


class Sink:
    """A transport: keeps what is written; raises ``fail`` once, if set."""

    def __init__(self, fail: Optional[BaseException] = None) -> None:
        self.written: list[bytes] = []
        self.fail = fail

    def write(self, data: bytes) -> None:
        if self.fail is not None:
            fail, self.fail = self.fail, None
            raise fail
        self.written.append(bytes(data))


def _text(data: Any) -> str:
    raw = data.ConsumeBytes(data.ConsumeIntInRange(0, 300))
    mode = data.ConsumeIntInRange(0, 2)
    if mode == 0:
        return raw.decode("latin-1")
    if mode == 1:
        return raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
    units = [int.from_bytes(raw[i : i + 3], "little") % 0x110000 for i in range(0, len(raw), 3)]
    return "".join(map(chr, units))


def fuzz(ext: str, flags: list[str]) -> None:
    import importlib.util
    from importlib.machinery import ExtensionFileLoader

    import atheris

    # (Not instrumented: the whole of squall.websocket's imports would take
    # minutes; the Python method itself is, below.)
    from squall import _ws
    from squall.websocket import WebSocketHandler
    from squall.websocket._protocol import WebSocketProtocol13

    name = "squall._wswrite"
    spec = importlib.util.spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
    assert spec is not None and spec.loader is not None
    c_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(c_module)
    installed = WebSocketHandler.__dict__["write_message"]
    py_write = getattr(installed, "__wrapped__", installed)

    class Recorder(WebSocketProtocol13):
        __slots__ = ("calls",)
        calls: list[Any]

        def write_message(self, message: Any, binary: bool = False) -> Any:
            self.calls.append((message, binary))
            return "recorded"

    class Native:
        ws_connection: Any = None
        write_message = c_module.write_method(py_write, WebSocketProtocol13)

    class Python:
        ws_connection: Any = None
        write_message = py_write

    done = object()

    def protocol(setup: int) -> Any:
        if setup == 1:
            return None
        kind = Recorder if setup == 3 else WebSocketProtocol13
        sink = {0: Sink(), 2: None, 3: Sink(), 4: Sink(RuntimeError("gone"))}.get(
            setup, Sink(OSError("broken"))
        )
        proto = kind(None, False)
        proto.conn = _ws.WSConnection(False, None, 1 << 20)
        proto._sink = proto._plain = sink
        proto._done = done
        if kind is Recorder:
            proto.calls = []
        return proto

    def sent(handler: Any) -> Any:
        proto = handler.ws_connection
        if proto is None:
            return None
        sink = proto._plain
        return (
            sink.written if sink is not None else None,
            proto.conn.message_bytes_out,
            proto.conn.wire_bytes_out,
            getattr(proto, "calls", None),
        )

    def outcome(handler: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> object:
        try:
            result = handler.write_message(*args, **kwargs)
        except Exception as exc:
            return ("raised", type(exc), str(exc))
        return ("ok", result if result is done or isinstance(result, str) else type(result))

    def message(data: Any, last: Any) -> Any:
        kind = data.ConsumeIntInRange(0, 9)
        if kind == 9 and last is not None:
            return last
        if kind in (0, 1, 2):
            return _text(data)
        if kind == 3:
            return data.ConsumeBytes(data.ConsumeIntInRange(0, 300))
        if kind == 4:
            return _Text(_text(data))
        if kind == 5:
            return _Data(data.ConsumeBytes(20))
        if kind == 6:
            return bytearray(data.ConsumeBytes(20))
        if kind == 7:
            return data.ConsumeIntInRange(-5, 5)
        return {"k": _text(data)}

    def binary(data: Any) -> Any:
        return [False, True, 0, 1, None, 2, _Truth()][data.ConsumeIntInRange(0, 6)]

    def target(raw: bytes) -> None:
        data = atheris.FuzzedDataProvider(raw)
        setup = data.ConsumeIntInRange(0, 5)
        native, python = Native(), Python()
        native.ws_connection = protocol(setup)
        python.ws_connection = protocol(setup)
        last = None
        for _ in range(data.ConsumeIntInRange(1, 4)):
            value = message(data, last)
            last = value
            form = data.ConsumeIntInRange(0, 6)
            args: tuple[Any, ...] = (value,)
            kwargs: dict[str, Any] = {}
            if form == 1:
                args = (value, binary(data))
            elif form == 2:
                kwargs = {"binary": binary(data)}
            elif form == 3:
                args, kwargs = (), {"message": value}
            elif form == 4:
                args = (value, binary(data), 3)
            elif form == 5:
                kwargs = {"other": 1}
            got = outcome(native, args, kwargs)
            expected = outcome(python, args, kwargs)
            assert got == expected, (setup, args, kwargs, got, expected)
            assert sent(native) == sent(python), (setup, args, kwargs)

    for func in (target, message, binary, _text, py_write):
        atheris.instrument_func(func)
    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(__doc__, __file__, fuzz, "wswrite.c", "_wswrite", SEEDS, max_len=2048)
