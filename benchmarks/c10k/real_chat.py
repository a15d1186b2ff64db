"""Tornado's own ``demos/chat``, unchanged, checked out into the benchmark cache.

Tornado's sdist ships no demos, and the project vendors none of Tornado's
code, so the demo is taken out of a git copy of tornadoweb/tornado at run
time: ``$SQUALL_TORNADO_REPO`` (a bare git directory or a work tree), or a
blobless clone of https://github.com/tornadoweb/tornado made once in the
cache. What is taken is pinned by its git tree id, ``DEMO_TREE``: the
``demos/chat`` of Tornado 6.6.1 (the same tree since commit 77850925,
"demos: Fix open redirects", on both the 6.5 branch and master). The
demo keeps its Apache-2.0 notice in its header; Tornado's LICENSE is
checked out beside it.

The cache is ``$SQUALL_BENCH_CACHE`` or ``~/.cache/squall-bench``; the demo
lands in ``tornado-chat-<tree>/`` there, with ``chatdemo.py``,
``templates/`` and ``static/`` as in the repository.

Usage: python benchmarks/c10k/real_chat.py  (prints the checked-out path)
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

REPO_URL = "https://github.com/tornadoweb/tornado"
# `git rev-parse <6.6.1>:demos/chat`; a commit that has it, for the LICENSE.
DEMO_TREE = "5a2ff44b59a76c3c7942e8cc4df90ebb3236633e"
LICENSE_COMMIT = "e530031405e2154654dedc4c84d5656b557ea310"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "squall-bench"
    return Path(os.environ.get("SQUALL_BENCH_CACHE", str(default)))


def _git(gitdir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", gitdir, *args], capture_output=True, check=True
    ).stdout


def _gitdir(cache: Path) -> str:
    local = os.environ.get("SQUALL_TORNADO_REPO")
    if local:
        dotgit = Path(local) / ".git"
        return str(dotgit if dotgit.exists() else Path(local))
    clone = cache / "repos" / "tornadoweb+tornado"
    if not clone.exists():
        print(f"cloning {REPO_URL} (blobless) into {clone}", file=sys.stderr, flush=True)
        subprocess.run(
            ["git", "clone", "--bare", "--filter=blob:none", REPO_URL, str(clone)], check=True
        )
    return str(clone)


def demo_dir() -> Path:
    """The checked-out demo (made on first use): a directory holding chatdemo.py."""
    cache = cache_dir()
    dest = cache / f"tornado-chat-{DEMO_TREE[:12]}"
    stamp = dest / ".checked-out"
    if stamp.exists() and stamp.read_text().strip() == DEMO_TREE:
        return dest
    gitdir = _gitdir(cache)
    tar = _git(gitdir, "archive", "--format=tar", DEMO_TREE)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        archive.extractall(dest, filter="data")
    (dest / "LICENSE").write_bytes(_git(gitdir, "show", f"{LICENSE_COMMIT}:LICENSE"))
    stamp.write_text(DEMO_TREE + "\n")
    return dest


if __name__ == "__main__":
    print(demo_dir())
