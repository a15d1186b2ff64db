"""squall/_wswrite.py and its C replacement (speedups/c/wswrite.c).

The C module's write_method makes the native method the compiled build
installs as ``WebSocketHandler.write_message``: it does the usual case of a
loop over subscribers itself and calls the Python method for anything else.
Each case here is run through the native method and through the Python
method on twin set-ups, and must come out the same: the same frames on the
transport, the same result or the same exception. In the compiled run the
installed C module is tested; in the pure run the C source is compiled here
(skipped without a C compiler).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, Optional

import pytest

import squall._wswrite
from squall import _ws
from squall.websocket import WebSocketClosedError, WebSocketHandler
from squall.websocket._protocol import WebSocketProtocol13
from tests import _cext

INSTALLED = WebSocketHandler.__dict__["write_message"]
# The Python method (the compiled build's native one wraps it).
PY_WRITE: Callable[..., Any] = getattr(INSTALLED, "__wrapped__", INSTALLED)


c_module, py_module = _cext.twins(squall._wswrite, "write_method", "wswrite.c")


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


class Recorder(WebSocketProtocol13):
    """A protocol whose own write_message records its calls (another class
    than WebSocketProtocol13 for the native method: it goes to this method)."""

    __slots__ = ("calls",)
    calls: list[Any]

    def write_message(self, message: Any, binary: bool = False) -> Any:
        self.calls.append((message, binary))
        return "recorded"


DONE = object()


def protocol(kind: type = WebSocketProtocol13, sink: Optional[Sink] = None) -> Any:
    proto = kind(None, False)
    proto.conn = _ws.WSConnection(False, None, 1 << 20)
    proto._sink = proto._plain = sink
    proto._done = DONE
    if kind is Recorder:
        proto.calls = []
    return proto


def handler_classes(c_module: ModuleType) -> tuple[Any, Any]:
    class Native:
        ws_connection: Any = None
        write_message = c_module.write_method(PY_WRITE, WebSocketProtocol13)

    class Python:
        ws_connection: Any = None
        write_message = PY_WRITE

    return Native, Python


def outcome(handler: Any, call: Callable[[Any], Any]) -> tuple[Any, ...]:
    try:
        result = call(handler)
    except Exception as exc:
        return ("raised", type(exc), str(exc))
    # The shared future or a recorded answer itself; a new future by its type.
    return ("ok", result if result is DONE or isinstance(result, str) else type(result))


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


CALLS: list[Any] = [
    pytest.param(lambda h: h.write_message("hello"), id="text"),
    pytest.param(lambda h: h.write_message(b"\x00\x01"), id="bytes"),
    pytest.param(lambda h: h.write_message(b"bin", True), id="binary positional"),
    pytest.param(lambda h: h.write_message("text", binary=True), id="binary keyword"),
    pytest.param(lambda h: h.write_message("x" * 300), id="a longer frame"),
    pytest.param(lambda h: h.write_message({"a": [1, 2]}), id="a dict: JSON"),
    pytest.param(lambda h: h.write_message(message="m"), id="message by keyword"),
    pytest.param(lambda h: h.write_message(1), id="an int: refused"),
    pytest.param(lambda h: h.write_message(), id="no message"),
    pytest.param(lambda h: h.write_message("m", False, 3), id="too many arguments"),
    pytest.param(lambda h: h.write_message("m", other=1), id="an unknown keyword"),
]

SETUPS: list[Any] = [
    pytest.param(lambda: protocol(sink=Sink()), id="sink"),
    pytest.param(lambda: None, id="closed"),
    pytest.param(lambda: protocol(sink=None), id="no sink"),
    pytest.param(lambda: protocol(Recorder, Sink()), id="another protocol class"),
    pytest.param(lambda: protocol(sink=Sink(RuntimeError("gone"))), id="transport closed"),
    pytest.param(lambda: protocol(sink=Sink(OSError("broken"))), id="transport fails"),
]


@pytest.mark.parametrize("setup", SETUPS)
@pytest.mark.parametrize("call", CALLS)
def test_the_native_method_comes_out_as_the_python_one(
    c_module: ModuleType, setup: Callable[[], Any], call: Callable[[Any], Any]
) -> None:
    native_cls, python_cls = handler_classes(c_module)
    native, python = native_cls(), python_cls()
    native.ws_connection = setup()
    python.ws_connection = setup()
    # (A TypeError names the function it was raised for: the same one.)
    assert outcome(native, call) == outcome(python, call)
    assert sent(native) == sent(python)


class Stream:
    """A protocol's stream (what its close frame is written to): keeps what is written."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def closed(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))


def test_a_closing_connection_refuses_as_the_python_method_does(c_module: ModuleType) -> None:
    native_cls, python_cls = handler_classes(c_module)
    results = []
    for cls in (native_cls, python_cls):
        handler = cls()
        sink = Sink()
        proto = handler.ws_connection = protocol(sink=sink)
        proto.stream = stream = Stream()
        # What close() does first: the close frame, and no sink after it.
        proto._send_close(1000, None)
        assert stream.written == [b"\x88\x02\x03\xe8"]
        results.append(outcome(handler, lambda h: h.write_message("late")))
        assert sink.written == []
    assert results[0] == results[1]
    assert results[0][:2] == ("raised", WebSocketClosedError)


def test_the_usual_case_writes_one_frame_and_returns_the_shared_future(
    c_module: ModuleType,
) -> None:
    native_cls, _ = handler_classes(c_module)
    handler = native_cls()
    handler.ws_connection = protocol(sink=Sink())
    assert handler.write_message("hi") is DONE
    assert handler.ws_connection._sink.written == [b"\x81\x02hi"]
    with pytest.raises(WebSocketClosedError):
        handler.ws_connection = None
        handler.write_message("hi")


def test_a_slot_made_a_property_later_is_read_as_one(c_module: ModuleType) -> None:
    # The native method looks the protocol's attributes up on every call: a
    # change to the class is seen at once.
    calls: list[Any] = []

    class Proto:
        __slots__ = ("_sink", "conn", "_done")
        _sink: Any
        conn: Any
        _done: Any

        def write_message(self, message: Any, binary: bool = False) -> Any:
            calls.append(message)
            return "protocol's"

    class Handler:
        ws_connection: Any = None
        write_message = c_module.write_method(PY_WRITE, Proto)

    proto = Proto()
    proto._sink = Sink()
    proto.conn = _ws.WSConnection(False, None, 1 << 20)
    proto._done = DONE
    handler = Handler()
    handler.ws_connection = proto
    assert handler.write_message("one") is DONE
    cls: Any = Proto
    cls._sink = property(lambda self: None)
    assert handler.write_message("two") == "protocol's"
    assert calls == ["two"]
    del cls._sink
    # Without the slot's descriptor the attribute is missing: as in Python.
    with pytest.raises(AttributeError):
        handler.write_message("three")


class SlotProto:
    __slots__ = ("_sink", "conn", "_done")
    _sink: Any
    conn: Any
    _done: Any


def over(c_module: ModuleType, sink: Any) -> Any:
    """A handler whose native write_message writes to ``sink`` (through a
    SlotProto: the native method's own class)."""

    class Handler:
        ws_connection: Any = None
        write_message = c_module.write_method(PY_WRITE, SlotProto)

    proto = SlotProto()
    proto._sink = sink
    proto._done = DONE
    handler = Handler()
    handler.ws_connection = proto
    return handler


def test_a_method_replaced_on_the_transport_class_is_the_one_called(
    c_module: ModuleType,
) -> None:
    written: list[bytes] = []

    class Transport:
        __slots__ = ()

        def write(self, data: bytes) -> None:
            written.append(b"first:" + data)

    handler = over(c_module, Transport())
    handler.write_message("a")

    def second(self: Transport, data: bytes) -> None:
        written.append(b"second:" + data)

    Transport.write = second  # type: ignore[method-assign]
    handler.write_message("b")
    assert written == [b"first:\x81\x01a", b"second:\x81\x01b"]


def test_an_instance_attribute_hides_the_class_method(c_module: ModuleType) -> None:
    written: list[str] = []

    class Transport:  # instances with a __dict__: looked up on each call
        def write(self, data: bytes) -> None:
            written.append("class")

    transport = Transport()
    handler = over(c_module, transport)
    handler.write_message("a")
    transport.write = lambda data: written.append("instance")  # type: ignore[method-assign]
    handler.write_message("b")
    assert written == ["class", "instance"]


MESSAGES: list[Any] = [
    pytest.param("", id="empty text"),
    pytest.param("x" * 125, id="125 bytes"),
    pytest.param("x" * 126, id="126 bytes: a 16-bit length"),
    pytest.param(b"\x00" * 65535, id="65535 bytes"),
    pytest.param(b"\x01" * 65536, id="65536 bytes: a 64-bit length"),
    pytest.param("d\u00e9j\u00e0 \u2603 \U0001f600", id="text beyond ASCII"),
    pytest.param("y" * 5000, id="over the kept size"),
]


@pytest.mark.parametrize("binary", [False, True])
@pytest.mark.parametrize("message", MESSAGES)
def test_the_frames_are_the_servers(c_module: ModuleType, message: Any, binary: bool) -> None:
    sink = Sink()
    handler = over(c_module, sink)
    # Twice: made, then (when kept) the kept one.
    assert handler.write_message(message, binary) is DONE
    assert handler.write_message(message, binary=binary) is DONE
    expected = _ws.server_frame(message, binary)
    assert sink.written == [expected, expected]
    payload = message.encode() if isinstance(message, str) else message
    assert expected == _ws.build_frame(2 if binary else 1, payload)


def test_the_kept_frame_is_only_for_the_same_message_and_flag(c_module: ModuleType) -> None:
    sink = Sink()
    handler = over(c_module, sink)
    first = "".join(["ab", "c"])
    second = "".join(["a", "bc"])  # equal, another object
    handler.write_message(first)
    handler.write_message(first, True)
    handler.write_message(second)
    handler.write_message("other")
    handler.write_message(first)
    assert sink.written == [
        b"\x81\x03abc",
        b"\x82\x03abc",
        b"\x81\x03abc",
        b"\x81\x05other",
        b"\x81\x03abc",
    ]


def test_text_beyond_ascii_is_not_left_holding_a_utf8_copy(c_module: ModuleType) -> None:
    # (CPython's str keeps a UTF-8 copy once asked for one through the C API;
    # its size counts it.)
    message = "".join(["\u00e9"] * 3000)
    before = sys.getsizeof(message)
    sink = Sink()
    over(c_module, sink).write_message(message)
    assert sink.written == [_ws.server_frame(message)]
    assert sys.getsizeof(message) == before


def test_a_text_message_that_is_not_utf8_is_refused_as_in_python(c_module: ModuleType) -> None:
    native_cls, python_cls = handler_classes(c_module)
    results = []
    for cls in (native_cls, python_cls):
        handler = cls()
        handler.ws_connection = protocol(sink=Sink())
        results.append(outcome(handler, lambda h: h.write_message("\ud800")))
        assert handler.ws_connection._plain.written == []
    assert results[0] == results[1]
    assert results[0][:2] == ("raised", UnicodeEncodeError)


def test_a_flag_whose_truth_raises_is_told_before_the_text_is_encoded(
    c_module: ModuleType,
) -> None:
    # Found by speedups/fuzz_wswrite.py: of a flag whose truth raises and a
    # text that is not UTF-8-encodable, the native method raised the flag's
    # error and the Python one the encoding's. Both tell the flag first, as
    # Tornado decides the opcode before it encodes.
    class Truth:
        def __bool__(self) -> bool:
            raise ValueError("no truth here")

    native_cls, python_cls = handler_classes(c_module)
    results = []
    for cls in (native_cls, python_cls):
        handler = cls()
        handler.ws_connection = protocol(sink=Sink())
        results.append(outcome(handler, lambda h: h.write_message("\ud800x", Truth())))
        assert handler.ws_connection._plain.written == []
    assert results[0] == results[1]
    assert results[0][:2] == ("raised", ValueError)


def test_the_direct_path_does_not_count(c_module: ModuleType) -> None:
    # As with broadcast(): nothing of the connection's but the sink is read.
    native_cls, python_cls = handler_classes(c_module)
    for cls in (native_cls, python_cls):
        handler = cls()
        proto = handler.ws_connection = protocol(sink=Sink())
        handler.write_message("hello")
        assert proto._plain.written == [b"\x81\x05hello"]
        assert (proto._message_bytes_out, proto._wire_bytes_out) == (0, 0)
        # (What goes through the protocol is counted: "transport closed" above.)


def test_it_reads_as_the_python_method(c_module: ModuleType) -> None:
    native_cls, _ = handler_classes(c_module)
    method = native_cls.__dict__["write_message"]
    assert native_cls.write_message is method
    assert method.__wrapped__ is PY_WRITE
    for name in ("__name__", "__qualname__", "__doc__", "__module__"):
        assert getattr(method, name) == getattr(PY_WRITE, name)
    assert inspect.signature(method) == inspect.signature(PY_WRITE)
    handler = native_cls()
    bound = handler.write_message
    assert bound.__self__ is handler and bound.__func__ is method
    assert "write_message" in repr(method)

    class Sub(native_cls):  # type: ignore[misc, valid-type]
        def write_message(self, message: Any, binary: bool = False) -> Any:
            return ("sub", super().write_message(message, binary))

    sub = Sub()
    sub.ws_connection = protocol(sink=Sink())
    assert sub.write_message("x") == ("sub", DONE)


def test_the_installed_method_is_the_builds(c_module: ModuleType) -> None:
    if c_module is squall._wswrite:
        assert INSTALLED is not PY_WRITE
        assert INSTALLED.__wrapped__ is PY_WRITE
    else:
        assert INSTALLED is PY_WRITE


@pytest.mark.parametrize("which", ["c", "py"])
def test_wrong_arguments_are_refused_with_what_was_wrong(
    c_module: ModuleType, py_module: ModuleType, which: str
) -> None:
    module = c_module if which == "c" else py_module
    with pytest.raises(TypeError, match="fallback must be callable, not int"):
        module.write_method(1, WebSocketProtocol13)
    with pytest.raises(TypeError, match="protocol_class must be a class, not str"):
        module.write_method(PY_WRITE, "WebSocketProtocol13")
    with pytest.raises(TypeError):
        module.write_method(PY_WRITE)


def test_the_pure_module_returns_the_python_method(py_module: ModuleType) -> None:
    assert py_module.write_method(PY_WRITE, WebSocketProtocol13) is PY_WRITE


def test_only_what_the_native_method_cannot_do_reaches_the_python_one(
    c_module: ModuleType,
) -> None:
    # (Checked on the C module: the pure one is the Python method itself.)
    reached: list[Any] = []

    def fallback(self: Any, *args: Any, **kwargs: Any) -> Any:
        reached.append(args)
        return PY_WRITE(self, *args, **kwargs)

    class Handler:
        ws_connection: Any = None
        write_message = c_module.write_method(fallback, WebSocketProtocol13)

    handler = Handler()
    handler.ws_connection = protocol(sink=Sink())
    handler.write_message("a")
    handler.write_message(b"b", True)
    handler.write_message("c", binary=False)
    other = Handler()
    other.ws_connection = protocol(Recorder, Sink())
    assert other.write_message("d") == "recorded"
    assert reached == []
    handler.write_message({"e": 1})
    handler.ws_connection = None
    with pytest.raises(WebSocketClosedError):
        handler.write_message("f")
    assert reached == [({"e": 1},), ("f",)]


def test_a_write_that_changes_the_class_and_writes_again_completes(c_module: ModuleType) -> None:
    # The method called may run code that calls write_message again and
    # changes what the native method kept (here: the transport class's
    # write replaced, then used by a nested call).
    written: list[bytes] = []

    class Transport:
        __slots__ = ()

        def write(self, data: bytes) -> None:
            if data.endswith(b"outer"):
                Transport.write = later  # type: ignore[method-assign]
                inner.write_message("inner")
            written.append(b"first:" + data[2:])

    def later(self: Transport, data: bytes) -> None:
        written.append(b"later:" + data[2:])

    inner = over(c_module, Transport())
    outer = over(c_module, Transport())
    assert outer.write_message("outer") is DONE
    outer.write_message("again")
    assert written == [b"later:inner", b"first:outer", b"later:again"]
