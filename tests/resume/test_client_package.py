"""squall-resume as npm packs it: the files a front end installs, with no link that breaks."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests._paths import SQUALL_DIR

CLIENT = SQUALL_DIR / "resume" / "client"


def relative_links(markdown: str) -> list[str]:
    """Markdown link targets that are neither absolute URLs nor anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", markdown)
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.\-]*:|#", t)]


def test_the_reader_of_links() -> None:
    assert relative_links("[a](../../README.md) [b](https://x.org/) [c](#here)") == [
        "../../README.md"
    ]


def test_the_readme_has_no_link_that_breaks_once_packed() -> None:
    # Packed, the README is alone with the scripts: nothing relative exists.
    assert relative_links((CLIENT / "README.md").read_text()) == []


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_pack_makes_the_package_the_guide_installs(tmp_path: Path) -> None:
    packed = subprocess.run(
        ["npm", "pack", str(CLIENT), "--json", "--cache", str(tmp_path / "cache")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (found,) = json.loads(packed.stdout)
    version = json.loads((CLIENT / "package.json").read_text())["version"]
    assert found["filename"] == f"squall-resume-{version}.tgz"
    guide = (Path(__file__).resolve().parents[2] / "docs" / "guide" / "resuming.md").read_text()
    assert f"npm install ./squall-resume-{version}.tgz" in guide
    with tarfile.open(tmp_path / found["filename"]) as tar:
        names = sorted(tar.getnames())
    assert names == [
        "package/README.md",
        "package/package.json",
        "package/squall-resume.d.ts",
        "package/squall-resume.js",
        "package/squall-resume.mjs",
    ]
