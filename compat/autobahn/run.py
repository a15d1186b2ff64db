"""Run Autobahn|Testsuite against Squall's WebSocket server and client.

The suite (``autobahntestsuite``) is Python 2 only: it is installed in a
Python 2.7 virtualenv (``.venv-autobahn27``, made from pyenv's 2.7 or a
``python2.7`` on PATH). Then:

* ``wstest -m fuzzingclient`` drives Squall's echo server (peers.py server);
* ``wstest -m fuzzingserver`` is driven by Squall's client (peers.py client).

All cases run, compression (12.*, 13.*) included. Reports go to
compat/autobahn/reports/{servers,clients}; a summary of behaviours per side
is printed and written to reports/summary.json. Exits non-zero if a case
FAILED.

Usage: python compat/autobahn/run.py [server|client|both] [--cases 1.*,2.*]
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENV27 = ROOT / ".venv-autobahn27"
REPORTS = HERE / "reports"
PEERS = HERE / "peers.py"
TAG = [""]


def python27() -> str:
    root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
    found = sorted(glob.glob(os.path.join(root or "~/.pyenv", "versions/2.7*/bin/python2.7")))
    if found:
        return found[-1]
    exe = shutil.which("python2.7") or shutil.which("python2")
    if exe:
        return exe
    sys.exit("autobahn: no Python 2.7 found (pyenv install 2.7.18, or apt's python2.7)")


def ensure_wstest() -> Path:
    wstest = VENV27 / "bin" / "wstest"
    if wstest.exists():
        return wstest
    py = python27()
    print(f"autobahn: making {VENV27} with {py}", flush=True)
    # The 2.7 pip can still install from the package index; virtualenv 20.15
    # is the last release that creates Python 2.7 environments.
    subprocess.run([py, "-m", "pip", "install", "-q", "virtualenv==20.15.1"], check=True)
    subprocess.run([py, "-m", "virtualenv", "-q", str(VENV27)], check=True)
    subprocess.run([str(VENV27 / "bin" / "pip"), "install", "-q", "autobahntestsuite"], check=True)
    return wstest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)  # polling a child process's port, not a test
    raise RuntimeError(f"nothing listens on {port}")


def summarise(index: Path, agent: str) -> dict[str, object]:
    data = json.loads(index.read_text())[agent]
    counts: collections.Counter[str] = collections.Counter()
    closes: collections.Counter[str] = collections.Counter()
    failed = []
    for case, result in sorted(data.items()):
        counts[result["behavior"]] += 1
        closes[result["behaviorClose"]] += 1
        if "FAILED" in (result["behavior"], result["behaviorClose"]):
            failed.append(case)
    return {
        "cases": len(data),
        "behavior": dict(counts),
        "behaviorClose": dict(closes),
        "failed": failed,
    }


def run_server_side(wstest: Path, cases: list[str], exclude: list[str]) -> dict[str, object]:
    port = free_port()
    outdir = REPORTS / ("servers" + TAG[0])
    shutil.rmtree(outdir, ignore_errors=True)
    spec = {
        "outdir": str(outdir),
        "servers": [{"agent": "squall", "url": f"ws://127.0.0.1:{port}"}],
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    spec_path = REPORTS / f"fuzzingclient{TAG[0]}.json"
    spec_path.write_text(json.dumps(spec))
    python = os.environ.get("AUTOBAHN_PYTHON", sys.executable)
    server = subprocess.Popen([python, str(PEERS), "server", str(port)])
    try:
        wait_port(port, time.monotonic() + 20)
        subprocess.run([str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)], check=True)
    finally:
        server.terminate()
        server.wait(10)
    return summarise(outdir / "index.json", "squall")


def run_client_side(wstest: Path, cases: list[str], exclude: list[str]) -> dict[str, object]:
    port = free_port()
    outdir = REPORTS / ("clients" + TAG[0])
    shutil.rmtree(outdir, ignore_errors=True)
    spec = {
        "url": f"ws://127.0.0.1:{port}",
        "outdir": str(outdir),
        "cases": cases,
        "exclude-cases": exclude,
        "exclude-agent-cases": {},
    }
    spec_path = REPORTS / f"fuzzingserver{TAG[0]}.json"
    spec_path.write_text(json.dumps(spec))
    suite = subprocess.Popen(
        [str(wstest), "-m", "fuzzingserver", "-s", str(spec_path), "--webport", "0"]
    )
    try:
        wait_port(port, time.monotonic() + 60)
        subprocess.run(
            [
                os.environ.get("AUTOBAHN_PYTHON", sys.executable),
                str(PEERS),
                "client",
                f"ws://127.0.0.1:{port}",
                "squall",
            ],
            check=True,
        )
    finally:
        suite.terminate()
        suite.wait(10)
    return summarise(outdir / "index.json", "squall")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("side", nargs="?", default="both", choices=["server", "client", "both"])
    ap.add_argument("--cases", default="*", help="comma-separated case patterns")
    ap.add_argument("--exclude", default="", help="comma-separated case patterns to skip")
    ap.add_argument("--tag", default="", help="suffix for the summary file")
    args = ap.parse_args()
    cases = args.cases.split(",")
    exclude = [c for c in args.exclude.split(",") if c]
    TAG[0] = args.tag
    wstest = ensure_wstest()
    REPORTS.mkdir(exist_ok=True)
    summary: dict[str, object] = {}
    if args.side in ("server", "both"):
        summary["server"] = run_server_side(wstest, cases, exclude)
    if args.side in ("client", "both"):
        summary["client"] = run_client_side(wstest, cases, exclude)
    text = json.dumps(summary, indent=2)
    (REPORTS / f"summary-{args.side}{args.tag}.json").write_text(text + "\n")
    print(text)
    if any(side["failed"] for side in summary.values()):  # type: ignore[index]
        sys.exit(1)


if __name__ == "__main__":
    main()
