import subprocess
import sys

import pytest

import squall


def test_version() -> None:
    assert isinstance(squall.version, str)
    assert squall.version_info[:3] == tuple(int(p) for p in squall.version.split("."))


def test_submodules_load_lazily() -> None:
    code = (
        "import sys, squall\n"
        "assert 'squall.web' not in sys.modules\n"
        "squall.web.RequestHandler\n"
        "assert 'squall.web' in sys.modules\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        squall.nope  # noqa: B018


def test_curl_client_needs_pycurl_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    monkeypatch.setitem(sys.modules, "pycurl", None)
    monkeypatch.delitem(sys.modules, "squall.curl_httpclient", raising=False)
    with pytest.raises(ImportError, match=r"pip install squall\[curl\]"):
        importlib.import_module("squall.curl_httpclient")
