"""h2spec, the HTTP/2 conformance suite (RFC 7540, RFC 7541), ``--strict``,
against ``HTTPServer(http2=True)``: h2c by prior knowledge and h2 by ALPN.

h2spec is found as ``$H2SPEC``, ``h2spec`` on PATH, or the project's shared
tool (``../shared/tools/h2spec``, which builds it on first use from source
with Debian's Go packages); without one, or where it cannot be built, the
tests skip and say why. ``make h2spec`` runs this module alone, verbosely.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

import pytest

pytest.importorskip("h2", reason="the http2 extra (h2) is not installed")

from squall.testing import AsyncHTTPSTestCase, AsyncHTTPTestCase, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# Cases that fail on purpose, with the reason in tests/COMPAT.md: on a plain
# port shared by HTTP/1.1 and h2c, bytes that are not the HTTP/2 preface are
# an HTTP/1.1 request, and a malformed one gets HTTP/1.1's 400.
SHARED_PORT_DEPARTURES = {("http2/3.5", "Sends invalid connection preface")}


@functools.cache
def find_h2spec() -> tuple[Optional[str], str]:
    """The h2spec command, built if needed; or None and why not."""
    candidates = [os.environ.get("H2SPEC"), shutil.which("h2spec")]
    # shared/ is beside the checkout, whose copy of the tests may be deeper
    # down (.venv-compiled/tree for the compiled run): every ancestor is tried.
    candidates += [str(up / "shared" / "tools" / "h2spec") for up in ROOT.parents]
    found = [c for c in candidates if c and os.access(c, os.X_OK)]
    if not found:
        return None, "h2spec not found (set H2SPEC, or put h2spec on PATH)"
    # The first run builds it (Go from Debian's packages): minutes at most.
    try:
        done = subprocess.run(
            [found[0], "--help"], capture_output=True, text=True, timeout=900, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{found[0]} did not run: {exc}"
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return None, f"{found[0]} could not be built or run: {' / '.join(why)}"
    return found[0], ""


class Root(RequestHandler):
    # h2spec needs 200 with a body for GET and POST on its path.
    def get(self) -> None:
        self.write("hello from squall")

    def post(self) -> None:
        self.write("posted")


async def run_h2spec(port: int, *tls: str) -> list[tuple[str, str, str]]:
    """Run every case against ``port``; return (section, case, outcome) each."""
    command, why = find_h2spec()
    if command is None:
        pytest.skip(why)
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "h2spec.xml")
        proc = await asyncio.create_subprocess_exec(
            command,
            "--strict",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-o",
            "5",
            "-j",
            report,
            *tls,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert os.path.exists(report), out.decode(errors="replace")[-2000:]
        cases = []
        for case in ET.parse(report).getroot().iter("testcase"):
            outcome = "passed"
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    outcome = f"{kind}: {(found.text or '').strip()}"
            cases.append((case.get("package", ""), case.get("classname", ""), outcome))
    summary = out.decode(errors="replace").strip().splitlines()[-1]
    print(f"h2spec --strict {' '.join(tls)}: {summary}")
    return cases


def failures(cases: list[tuple[str, str, str]]) -> set[tuple[str, str]]:
    return {(section, name) for section, name, outcome in cases if outcome != "passed"}


class H2specPlainTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        return Application([("/", Root)])

    def get_httpserver_options(self) -> dict[str, Any]:
        return {"http2": True}

    @gen_test(timeout=120)
    async def test_h2spec_strict_h2c_prior_knowledge(self) -> None:
        cases = await run_h2spec(self.get_http_port())
        assert len(cases) >= 146
        assert failures(cases) == SHARED_PORT_DEPARTURES, [c for c in cases if c[2] != "passed"]


class H2specTLSTest(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return Application([("/", Root)])

    def get_httpserver_options(self) -> dict[str, Any]:
        options = super().get_httpserver_options()
        options["http2"] = True
        return options

    @gen_test(timeout=120)
    async def test_h2spec_strict_tls_alpn(self) -> None:
        cases = await run_h2spec(self.get_http_port(), "-t", "-k")
        assert len(cases) >= 146
        assert failures(cases) == set(), [c for c in cases if c[2] != "passed"]
