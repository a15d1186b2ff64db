"""Coverage-guided fuzzing of Squall's parsers with atheris.

``python fuzz/run.py [--seconds 60] [TARGET ...]`` runs each target (see
targets.py) in its own process for a bounded time, with the squall modules
instrumented, starting from a small seed corpus written to fuzz/work/.
A crash leaves its input in fuzz/work/<target>/crash-*; copy it to
fuzz/regressions/<target>/ (replayed by tests/h1/test_fuzz_regressions.py)
once fixed. Prints and appends to fuzz/work/log.jsonl: seconds, executions
and crashes per target.

``python fuzz/run.py --one TARGET -- [libFuzzer flags]`` is the child.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = HERE / "work"


def seeds(target: str) -> list[bytes]:
    """A few valid inputs per target, so the fuzzer starts from real syntax."""
    req = [
        b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;e=1\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.1\r\n\r\n",
        b"GET /a?b HTTP/1.1\nHost: a\n\n",
    ]
    resp = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nX: a\r\n b\r\n\r\nbody",
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00",
    ]
    if target == "h1_request":
        return [bytes([c]) + r for r in req for c in (0, 1, 2, 57)]
    if target == "h1_response":
        return [bytes([c]) + r for r in resp for c in (0, 1, 4, 9)]
    if target == "ws_frames":
        masked_hello = b"\x81\x85\x01\x02\x03\x04" + bytes(
            b ^ k for b, k in zip(b"hello", b"\x01\x02\x03\x04\x01", strict=True)
        )
        return [
            b"\x00" + masked_hello,
            b"\x01\x81\x05hello",
            b"\x01\x01\x03hel\x80\x02lo\x89\x00\x88\x02\x03\xe8",
            b"\x03\xc1\x07\xf2H\xcd\xc9\xc9\x07\x00",
        ]
    if target == "ws_deflate":
        return [
            b"\x00"
            + b"permessage-deflate; client_max_window_bits".ljust(63)
            + b"\xf2H\xcd\xc9\xc9\x07\x00",
            b"\x04" + b"permessage-deflate; server_no_context_takeover".ljust(63) + b"hello" * 20,
        ]
    if target == "multipart":
        return [
            b"\x00--b\r\n"
            b'Content-Disposition: form-data; name="a"\r\n\r\n1\r\n--b\r\n'
            b'Content-Disposition: form-data; name="f"; filename="x.txt"\r\n'
            b"Content-Type: text/plain\r\n\r\nhi\r\n--b--\r\n",
            b"\x01a=1&b=%20&c",
        ]
    if target == "cookies":
        return [b'a=1; b="2"; c=%20; =x; d', b"session=abc123; Path=/"]
    if target == "template":
        return [
            b"{% for x in xs %}{{ x }}{% end %}",
            b"{% extends 'b.html' %}{% block a %}{% raw y %}{% end %}",
            b"{# c #}{% if a %}{% elif b %}{% else %}{% end %}{% set z = 1 %}{{! q }}",
            b"{% apply f %}t{% end %}{% try %}{% except %}{% finally %}{% end %}",
            b"{% while 0 %}{% break %}{% end %}{% autoescape None %}{% whitespace all %}",
            b"{% module Template('x') %}{% import os %}{% from a import b %}",
        ]
    return [b""]


def child(target: str, flags: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["squall"]):
        import targets

    fn = targets.TARGETS[target]
    atheris.Setup([sys.argv[0], *flags], fn)
    atheris.Fuzz()


def main() -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    ap.add_argument("--one", default="")
    ap.add_argument("targets", nargs="*")
    argv = sys.argv[1:]
    flags: list[str] = []
    if "--" in argv:
        # libFuzzer's flags and corpus directory go to the child untouched.
        flags = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = ap.parse_args(argv)
    if args.one:
        child(args.one, flags)
        return
    import targets

    names = args.targets or list(targets.TARGETS)
    WORK.mkdir(exist_ok=True)
    total_crashes = 0
    for name in names:
        corpus = WORK / name / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        for i, seed in enumerate(seeds(name)):
            (corpus / f"seed-{i}").write_bytes(seed)
        before = set(glob.glob(str(WORK / name / "crash-*")))
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                sys.executable,
                str(HERE / "run.py"),
                "--one",
                name,
                "--",
                f"-max_total_time={args.seconds}",
                "-timeout=10",
                "-rss_limit_mb=2048",
                "-max_len=4096",
                f"-artifact_prefix={WORK / name}/",
                str(corpus),
            ],
            # To a file, not memory: a long run's log can be large, and a
            # big parent would pass its peak RSS on to the next child, whose
            # libFuzzer then counts it against -rss_limit_mb.
            stdout=subprocess.DEVNULL,
            stderr=open(WORK / name / "last.log", "wb"),  # noqa: SIM115
        )
        elapsed = time.monotonic() - t0
        with open(WORK / name / "last.log", "rb") as f:
            f.seek(max(0, os.path.getsize(WORK / name / "last.log") - 200_000))
            log = f.read().decode("utf-8", "replace")
        execs = re.findall(r"#(\d+)\s+(?:DONE|pulse|NEW|REDUCE|INITED)", log)
        crashes = sorted(set(glob.glob(str(WORK / name / "crash-*"))) - before)
        crashes += sorted(set(glob.glob(str(WORK / name / "timeout-*"))) - before)
        total_crashes += len(crashes)
        cov = re.findall(r"cov: (\d+)", log)
        row = {
            "target": name,
            "seconds": round(elapsed, 1),
            "execs": int(execs[-1]) if execs else 0,
            "coverage": int(cov[-1]) if cov else 0,
            "corpus": len(os.listdir(corpus)),
            "crashes": [os.path.basename(c) for c in crashes],
            "exit": proc.returncode,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        if proc.returncode not in (0,) and not crashes:
            row["tail"] = log[-2000:]
        print(json.dumps(row), flush=True)
        with open(WORK / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if crashes:
            print(log[-4000:], flush=True)
    sys.exit(1 if total_crashes else 0)


if __name__ == "__main__":
    main()
