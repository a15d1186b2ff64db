"""What the C modules' fuzz scripts share: the two builds and the campaign.

A campaign builds the C source twice into a temporary directory, plain and
with AddressSanitizer and UndefinedBehaviorSanitizer, then runs the fuzz
script itself as a child under atheris twice, half the time each:
coverage-guided with the plain build (ASan's runtime would take over
libFuzzer's coverage hooks), then with the sanitized build and ASan
preloaded, from the corpus the first run grew.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent


def build(source: str, module: str, out_dir: Path, sanitize: bool) -> Path:
    """Compiles ``c/<source>`` into ``out_dir`` as extension ``module``."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    include = sysconfig.get_paths()["include"]
    out_dir.mkdir()
    out = out_dir / (module + str(sysconfig.get_config_var("EXT_SUFFIX")))
    flags = ["-shared", "-fPIC", "-O1", "-g", "-fno-omit-frame-pointer"]
    if sanitize:
        flags += ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    subprocess.run(
        [*cc, *flags, f"-I{include}", str(HERE / "c" / source), "-o", str(out)], check=True
    )
    return out


def campaign(
    script: str, source: str, module: str, seeds: list[bytes], seconds: int, max_len: int
) -> int:
    """Runs ``script --child EXT`` on both builds; returns the exit status
    (non-zero on a failing child or any crash input left behind)."""
    with tempfile.TemporaryDirectory() as tmp:
        plain = build(source, module, Path(tmp, "plain"), sanitize=False)
        sanitized = build(source, module, Path(tmp, "asan"), sanitize=True)
        corpus = Path(tmp, "corpus")
        corpus.mkdir()
        for i, seed in enumerate(seeds):
            (corpus / f"seed-{i}").write_bytes(seed)
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
            cmd = [sys.executable, script, "--child", str(ext)]
            cmd += [f"-max_total_time={max(1, seconds // 2)}", "-timeout=10"]
            cmd += [f"-max_len={max_len}", f"-artifact_prefix={tmp}/", str(corpus)]
            codes.append(subprocess.run(cmd, env=env).returncode)
        crashes = [p for p in Path(tmp).iterdir() if p.name.startswith("crash-")]
        for crash in crashes:
            print(f"crash input: {crash.read_bytes()!r}", file=sys.stderr)
        print(f"corpus grown to {len(list(corpus.iterdir()))} inputs; exit codes {codes}")
        return max(codes) or int(bool(crashes))


def main(
    doc: str | None,
    script: str,
    fuzz: Callable[[str, list[str]], None],
    source: str,
    module: str,
    seeds: list[bytes],
    max_len: int,
) -> None:
    """A fuzz script's command line: ``--seconds N`` runs the campaign; the
    campaign calls the script back with ``--child EXT`` (and libFuzzer's
    flags) for ``fuzz``."""
    ap = argparse.ArgumentParser(description=doc)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--child", default="")
    args, rest = ap.parse_known_args()
    if args.child:
        fuzz(args.child, rest)
        return
    sys.exit(campaign(script, source, module, seeds, args.seconds, max_len))
