"""Fuzz c/quick.c against the Python parser (atheris, bounded run).

    .venv-fuzz/bin/python speedups/fuzz_quick.py [--seconds 120]

Builds c/quick.c twice into a temporary directory, plain and with
AddressSanitizer and UndefinedBehaviorSanitizer, then runs itself under
atheris twice, half the time each: coverage-guided with the plain build
(ASan's runtime would take over libFuzzer's coverage hooks), then with the
sanitized build and ASan preloaded, from the corpus the first run grew. Each input becomes one request head (the bytes up to the
first CRLF CRLF, a request line forced in front when the input has none, a
field-count limit from the first byte), given to the C function and to the
Python parser with the fast path off, on bytes and on a bytearray. It is a
crash when C accepts a head that Python refuses, when C's event differs
from Python's, when the parser with C in front gives another result or
error than without it, or on any sanitizer report. Coverage guidance comes
from the instrumented squall modules (the C code is not instrumented).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _fuzzing import main  # noqa: E402

SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p?q=1 HTTP/1.0\r\ncontent-length: 3\r\nX-A: 1\r\nx-a:2\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: caf\xe9 \t\r\nB:\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n x: fold\r\nA : b\r\nC: \x00\r\n\r\n",
]


def fuzz(ext: str, flags: list[str]) -> None:
    import importlib.util
    from importlib.machinery import ExtensionFileLoader

    import atheris

    with atheris.instrument_imports(include=["squall"]):
        from squall._h1 import RemoteProtocolError
        from squall._h1._heads import PythonHeadParser

    name = "squall._h1._quick"
    spec = importlib.util.spec_from_file_location(name, ext, loader=ExtensionFileLoader(name, ext))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    quick = module.request_head

    def outcome(parser: PythonHeadParser, buf: bytes | bytearray, le: int, end: int) -> object:
        try:
            req = parser.request(buf, 0, le, end)
        except RemoteProtocolError as exc:
            return ("error", str(exc), exc.status_hint)
        return (req.method, req.target, req.version, req.headers, req.fields)

    def target(data: bytes) -> None:
        if not data:
            return
        count = data[0] % 12 + 1
        head = data[1:]
        if b"\r\n" not in head.partition(b"\r\n\r\n")[0] + b"\r\n":
            head = b"GET / HTTP/1.1\r\n" + head
        end = head.find(b"\r\n\r\n")
        if end < 0:
            head += b"\r\n\r\n"
            end = head.find(b"\r\n\r\n")
        head = head[: end + 4]
        le = head.find(b"\r\n", 0, end + 2)
        python = PythonHeadParser(count, quick=None)
        fast = PythonHeadParser(count, quick=quick)
        expected = outcome(python, head, le, end)
        for buf in (head, bytearray(head)):
            got = quick(buf, 0, le, end, count)
            if got is not None:
                assert (got.method, got.target, got.version, got.headers, got.fields) == expected
            assert outcome(fast, buf, le, end) == expected

    atheris.Setup([sys.argv[0], *flags], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(
        __doc__,
        __file__,
        fuzz,
        "quick.c",
        "_quick",
        [b"\x05" + seed for seed in SEEDS],
        max_len=2048,
    )
