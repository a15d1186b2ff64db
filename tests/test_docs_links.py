"""The documents' Markdown links hold in a checkout, as GitHub shows them.

The docs site resolves `{doc}` roles and generated pages (the `squall run`
reference, the API pages); a plain Markdown link is also followed by a
reader of the checkout, where a generated page does not exist. A link to
one is written as a `{doc}` role, or not at all.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# The links are to a checkout's files: the suite run against an installed
# squall (make test-compiled, make dist) runs from a copy without squall/,
# and the pure suite has checked the checkout.
pytestmark = pytest.mark.skipif(
    not (ROOT / "squall").is_dir() or not (ROOT / ".git").exists(),
    reason="checks a checkout's links (the pure suite runs it); this is a copy beside an install",
)


def documents() -> list[Path]:
    docs = ROOT / "docs"
    found = [ROOT / "README.md", *docs.glob("*.md"), *(docs / "guide").glob("*.md")]
    return sorted(found + [ROOT / "squall" / "resume" / "client" / "README.md"])


def local_links(text: str) -> list[str]:
    """Targets of Markdown links that name a file (no URL, no anchor alone)."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # code blocks
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.\-]*:|#|<", t)]


def test_the_reader_of_links() -> None:
    text = "[a](cli.rst) [b](https://x.org) [c](#x) [d](e.md#y)\n```\n[f](g.md)\n```"
    assert local_links(text) == ["cli.rst", "e.md#y"]


def ignored(paths: list[Path]) -> set[Path]:
    """Those of ``paths`` that git ignores (generated: a checkout has none of them)."""
    if not paths:
        return set()
    out = subprocess.run(
        ["git", "check-ignore", "--", *map(str, paths)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return {Path(line).resolve() for line in out.splitlines()}


def test_every_local_link_is_a_file_of_the_checkout() -> None:
    links = [
        (doc, target, (doc.parent / target.split("#")[0]).resolve())
        for doc in documents()
        for target in local_links(doc.read_text())
    ]
    generated = ignored([path for _, _, path in links if path.exists()])
    broken = [
        f"{doc.relative_to(ROOT)}: {target}"
        for doc, target, path in links
        if not path.exists() or path in generated
    ]
    assert not broken, "links a checkout does not have:\n" + "\n".join(broken)


def test_a_link_to_a_generated_page_is_caught() -> None:
    cli = ROOT / "docs" / "guide" / "cli.rst"
    assert cli in ignored([cli]) or not cli.exists()
