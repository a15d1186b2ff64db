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

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEEDS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /p?q=1 HTTP/1.0\r\ncontent-length: 3\r\nX-A: 1\r\nx-a:2\r\n\r\n",
    b"GET / HTTP/1.1\r\nA: caf\xe9 \t\r\nB:\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\n x: fold\r\nA : b\r\nC: \x00\r\n\r\n",
]


def build(out_dir: Path, sanitize: bool) -> Path:
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    out_dir.mkdir()
    out = out_dir / ("_quick" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    flags = ["-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    subprocess.run(
        [*cc, *flags, f"-I{include}", str(HERE / "c" / "quick.c"), "-o", str(out)], check=True
    )
    return out


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--child", default="")
    args, rest = ap.parse_known_args()
    if args.child:
        fuzz(args.child, rest)
        return
    with tempfile.TemporaryDirectory() as tmp:
        plain = build(Path(tmp, "plain"), sanitize=False)
        sanitized = build(Path(tmp, "asan"), sanitize=True)
        corpus = Path(tmp, "corpus")
        corpus.mkdir()
        for i, seed in enumerate(SEEDS):
            (corpus / f"seed-{i}").write_bytes(b"\x05" + seed)
        asan = subprocess.run(
            ["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True, check=True
        ).stdout.strip()
        sanitizer_env = dict(
            os.environ,
            LD_PRELOAD=asan,
            ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
            UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        )
        codes = []
        for ext, env in ((plain, dict(os.environ)), (sanitized, sanitizer_env)):
            cmd = [sys.executable, __file__, "--child", str(ext)]
            cmd += [f"-max_total_time={max(1, args.seconds // 2)}", "-timeout=10"]
            cmd += ["-max_len=2048", f"-artifact_prefix={tmp}/", str(corpus)]
            codes.append(subprocess.run(cmd, env=env).returncode)
        crashes = [p for p in Path(tmp).iterdir() if p.name.startswith("crash-")]
        for crash in crashes:
            print(f"crash input: {crash.read_bytes()!r}", file=sys.stderr)
        print(f"corpus grown to {len(list(corpus.iterdir()))} inputs; exit codes {codes}")
        sys.exit(max(codes) or bool(crashes))


if __name__ == "__main__":
    main()
