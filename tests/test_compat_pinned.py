"""A package that pins an older Tornado replaces the environment's alias:
`squall.compat.alias_state` (``python -m squall.compat --status``, the
warnings of ``python -m squall.compat script.py`` and ``squall run``) says
so, names the package and what to do; the pip ways to keep the alias work.

The packages are wheels made here (a ``tornado`` 6.4.2 stand-in and a
package requiring ``tornado<=6.4.2``), installed with ``--no-index``: no
network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import squall.compat


def _dist_info(site: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Dist: {req}" for req in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_state_of_a_site_whose_alias_was_replaced(tmp_path: Path) -> None:
    site = tmp_path
    assert squall.compat.alias_state(str(site)).state == "absent"
    squall.compat.install_alias(str(site))
    assert squall.compat.alias_state(str(site)).state == "active"
    # What pip does for a package requiring tornado<=6.4.2: the alias's
    # distribution goes (with the .pth its RECORD lists), Tornado comes.
    shutil.rmtree(site / f"tornado-{squall.compat.TORNADO_VERSION}.dist-info")
    (site / squall.compat.ALIAS_PTH).unlink()
    assert squall.compat.alias_state(str(site)).state == "removed"
    (site / "tornado").mkdir()
    (site / "tornado" / "__init__.py").write_text("version = '6.4.2'\n")
    _dist_info(site, "tornado", "6.4.2")
    _dist_info(site, "mitmproxy", "11.0.0", ("tornado<=6.4.2", "h2>=4"))
    _dist_info(site, "happy", "1.0", ("tornado>=6.0",))  # 6.6.1 satisfies it
    _dist_info(site, "optional", "1.0", ('tornado<6; extra == "old"',))
    state = squall.compat.alias_state(str(site))
    assert state.state == "replaced"
    assert f"replaced by tornado 6.4.2 ({site / 'tornado'})" in state.message
    assert "installed by pip for mitmproxy 11.0.0 requires tornado<=6.4.2:" in state.message
    assert "happy" not in state.message and "optional" not in state.message
    for remedy in ("pip install --no-deps", "tornado==6.6.1", "--install-alias"):
        assert remedy in state.message
    # --uninstall-alias forgets it: then a Tornado here is nobody's concern.
    squall.compat.uninstall_alias(str(site))
    assert squall.compat.alias_state(str(site)).state == "absent"


def _wheel(where: Path, name: str, version: str, requires: tuple[str, ...] = ()) -> Path:
    path = where / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    metadata = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"]
    metadata += [f"Requires-Dist: {req}\n" for req in requires]
    files = {
        f"{name}/__init__.py": f"version = {version!r}\n",
        f"{info}/METADATA": "".join(metadata),
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: squall-tests\n"
        "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{file},,\n" for file in [*files, f"{info}/RECORD"])
    with zipfile.ZipFile(path, "w") as whl:
        for file, text in files.items():
            whl.writestr(file, text)
        whl.writestr(f"{info}/RECORD", record)
    return path


def _pip_can_target_another_python() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "--python", sys.executable, "--version"],
        capture_output=True,
        timeout=60,
    )
    return proc.returncode == 0


def test_pip_replaces_the_alias_and_squall_says_so(tmp_path: Path) -> None:
    # Slow (pip runs five times: seconds, not a fraction of one) but it is
    # pip's own behaviour that this checks, which no fake can stand for.
    if not _pip_can_target_another_python():
        pytest.skip("needs pip >= 22.3 (pip --python) beside pytest")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _wheel(wheels, "tornado", "6.4.2")
    _wheel(wheels, "pinsold", "1.0", ("tornado<=6.4.2",))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The squall under test (the tree's, or the compiled build's), alone on
    # the new venv's path: a link to its package, not its whole site-packages.
    path = tmp_path / "path"
    path.mkdir()
    (path / "squall").symlink_to(Path(squall.compat.__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": str(path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("SQUALL_TORNADO_ALIAS", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args), capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path
        )

    def pip(*args: str) -> subprocess.CompletedProcess[str]:
        return run(sys.executable, "-m", "pip", "--python", python, *args)

    def status() -> subprocess.CompletedProcess[str]:
        return run(python, "-m", "squall.compat", "--status")

    install = ["install", "--no-index", "--find-links", str(wheels), "pinsold"]
    assert run(python, "-m", "squall.compat", "--install-alias").returncode == 0
    assert status().returncode == 0
    # The pip ways to keep the alias: a constraints file makes pip refuse...
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"tornado=={squall.compat.TORNADO_VERSION}\n")
    refused = pip(*install, "-c", str(constraints))
    assert refused.returncode != 0 and "ResolutionImpossible" in refused.stderr
    assert status().returncode == 0
    # ... and --no-deps installs the package beside the alias.
    assert pip(*install, "--no-deps").returncode == 0, "pip --no-deps failed"
    assert status().returncode == 0
    assert pip("uninstall", "-y", "pinsold").returncode == 0
    # Plain pip replaces the alias by the Tornado the package asks for.
    installed = pip(*install)
    assert installed.returncode == 0, installed.stderr
    assert "tornado-6.6.1" in installed.stdout or "tornado 6.6.1" in installed.stdout
    imported = run(python, "-c", "import tornado; print(tornado.version)")
    assert imported.stdout.strip() == "6.4.2"
    replaced = status()
    assert replaced.returncode == 1
    assert "replaced by tornado 6.4.2" in replaced.stderr
    assert "pinsold 1.0 requires tornado<=6.4.2" in replaced.stderr
    assert "pip install --no-deps" in replaced.stderr
    # A program run through squall.compat still gets Squall, with the warning.
    script = tmp_path / "app.py"
    script.write_text("import tornado.web, squall.web\nprint(tornado.web is squall.web)\n")
    ran = run(python, "-m", "squall.compat", str(script))
    assert ran.returncode == 0 and ran.stdout.strip() == "True"
    assert "warning: the tornado alias of" in ran.stderr
    # squall run decides on the real Tornado, and says why.
    decided = run(python, "-c", "import squall.cli as c; print(c.tornado_alias())")
    assert decided.stdout.strip() == "False"
    assert "replaced by tornado 6.4.2" in decided.stderr
    assert sysconfig.get_paths()["purelib"] not in replaced.stderr  # the venv's, not ours
