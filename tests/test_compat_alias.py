"""python -m squall.compat --install-alias: `import tornado` gives Squall in every
program of an environment, through a .pth file in its site-packages."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import squall._tornado_dist
import squall.compat


def run_with_site(site_dir: Path, code: str) -> subprocess.CompletedProcess[str]:
    """A new interpreter that processes ``site_dir`` as site-packages (its .pth files)."""
    prologue = f"import site, sys; site.addsitedir({str(site_dir)!r}); "
    return subprocess.run(
        [sys.executable, "-c", prologue + code], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # No real Tornado for these tests, whatever the venv holds.
    monkeypatch.setattr(squall._tornado_dist, "real_tornado", lambda: None)
    return tmp_path


def test_alias_for_every_program(site_dir: Path) -> None:
    path = squall.compat.install_alias(str(site_dir))
    assert path == str(site_dir / squall.compat.ALIAS_PTH)
    code = (
        "assert 'squall' not in sys.modules, 'the hook imports squall only on demand'; "
        "import tornado.web, squall.web, tornado.ioloop, tornado; "
        "assert tornado.web is squall.web; "
        "assert tornado.web.RequestHandler is squall.web.RequestHandler; "
        "assert not [f for f in sys.meta_path if getattr(f, '_squall_pth', False)]; "
        "import squall.compat; assert squall.compat.installed(); "
        "print(tornado.version, tornado.squall_version)"
    )
    proc = run_with_site(site_dir, code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [squall.compat.TORNADO_VERSION, squall.version]


def test_other_imports_untouched(site_dir: Path) -> None:
    squall.compat.install_alias(str(site_dir))
    code = (
        "import json, importlib.util; "
        "assert importlib.util.find_spec('tornadox') is None; "
        "assert 'squall' not in sys.modules"
    )
    proc = run_with_site(site_dir, code)
    assert proc.returncode == 0, proc.stderr


def test_uninstall(site_dir: Path) -> None:
    squall.compat.install_alias(str(site_dir))
    assert squall.compat.uninstall_alias(str(site_dir)) == str(site_dir / squall.compat.ALIAS_PTH)
    assert squall.compat.uninstall_alias(str(site_dir)) is None
    proc = run_with_site(site_dir, "import tornado")
    assert proc.returncode == 1
    assert "No module named 'tornado'" in proc.stderr


def test_refused_beside_a_real_tornado(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "elsewhere" / "tornado"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(fake.parent))
    with pytest.raises(RuntimeError, match=r"a real Tornado is installed .*pip uninstall tornado"):
        squall.compat.install_alias(str(tmp_path))
    assert not (tmp_path / squall.compat.ALIAS_PTH).exists()


def test_command_line(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_get_paths = sysconfig.get_paths

    def get_paths(*args: object) -> dict[str, str]:
        return {**real_get_paths(), "purelib": str(site_dir)}

    monkeypatch.setattr(sysconfig, "get_paths", get_paths)
    for option, expected in [
        ("--install-alias", f"wrote {site_dir / squall.compat.ALIAS_PTH}"),
        ("--uninstall-alias", f"removed {site_dir / squall.compat.ALIAS_PTH}"),
        ("--uninstall-alias", "no alias was installed"),
    ]:
        monkeypatch.setattr(sys, "argv", ["squall.compat", option])
        with pytest.raises(SystemExit) as exit_:
            squall.compat.main()
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith(expected)
    monkeypatch.setattr(squall._tornado_dist, "real_tornado", lambda: "/x/tornado")
    monkeypatch.setattr(sys, "argv", ["squall.compat", "--install-alias"])
    with pytest.raises(SystemExit) as exit_:
        squall.compat.main()
    assert exit_.value.code == 1
    assert "pip uninstall tornado" in capsys.readouterr().err
    assert not os.path.exists(site_dir / squall.compat.ALIAS_PTH)


def test_tornado_distribution_for_importlib_metadata_and_pip(site_dir: Path) -> None:
    squall.compat.install_alias(str(site_dir))
    dist_info = site_dir / f"tornado-{squall.compat.TORNADO_VERSION}.dist-info"
    # pip uninstall tornado removes what RECORD lists: the alias goes with it.
    record = (dist_info / "RECORD").read_text().splitlines()
    assert f"{squall.compat.ALIAS_PTH},," in record
    assert f"{dist_info.name}/METADATA,," in record
    code = (
        "import importlib.metadata as m; "
        "print(m.version('tornado')); "
        "print(m.distribution('tornado').metadata['Summary']); "
        "assert 'squall' not in sys.modules, 'read without importing squall'; "
        # The distribution is Squall's, not a real Tornado that --install-alias refuses.
        "import squall._tornado_dist; assert squall._tornado_dist.real_tornado() is None"
    )
    proc = run_with_site(site_dir, code)
    assert proc.returncode == 0, proc.stderr
    version, summary = proc.stdout.splitlines()
    assert version == squall.compat.TORNADO_VERSION
    assert "provided by Squall" in summary
    squall.compat.uninstall_alias(str(site_dir))
    assert not dist_info.exists()
    assert list(site_dir.iterdir()) == []
