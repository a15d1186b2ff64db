"""Django's ASGI handler served by ``squall run``: a smoke run of each kind of view.

Starts ``squall run app:application`` (compat/django_asgi/app.py) on a free
port, then checks over HTTP/1.1 (httpx): a sync view with a query string, an
async view that reports the scope (path, query, cookie, user agent), a 1 MB
POST body echoed back, a streaming response, a 3 MB FileResponse, a 404 and
a view that raises (500), on one keep-alive connection and on fresh ones.
Prints one line per check and exits non-zero on the first failure.

Usage: python compat/django_asgi/smoke.py (``make asgi-django`` installs
Django and httpx into the bench venv and runs it). Outside ``make test``:
it needs Django.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_listening(port: int, proc: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"squall run exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)  # polling a port another process opens: nothing to wait on
    raise RuntimeError("squall run did not start listening")


def check(name: str, ok: bool, detail: str = "") -> None:
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail and not ok else ''}")
    if not ok:
        raise SystemExit(1)


def run_checks(base: str, data: bytes) -> None:
    with httpx.Client(base_url=base, timeout=30) as client:
        r = client.get("/hello", params={"name": "squall"})
        check("sync view with a query string", r.text == "hello squall", r.text)
        r = client.get(
            "/info?x=1&y=%C3%A9",
            headers={"User-Agent": "smoke/1", "Cookie": "c=biscuit"},
        )
        got = r.json()
        check(
            "async view sees path, query, cookie, user agent",
            got
            == {
                "method": "GET",
                "path": "/info",
                "query": {"x": "1", "y": "\u00e9"},
                "cookie": "biscuit",
                "agent": "smoke/1",
                "scheme": "http",
            },
            repr(got),
        )
        body = os.urandom(1024 * 1024)
        r = client.post("/echo", content=body)
        check(
            "1 MB POST body echoed",
            r.content == body and r.headers["x-length"] == str(len(body)),
            f"{len(r.content)} bytes",
        )
        r = client.get("/stream")
        check(
            "streaming response",
            r.text == "".join(f"piece {i}\n" for i in range(5)),
            r.text,
        )
        r = client.get("/download")
        check(
            "3 MB FileResponse",
            r.content == data and r.headers.get("content-length") == str(len(data)),
            f"{len(r.content)} bytes, {r.headers}",
        )
        r = client.get("/nowhere")
        check("unknown path is 404", r.status_code == 404, str(r.status_code))
        r = client.get("/fail")
        check("a failing view is 500", r.status_code == 500, str(r.status_code))
        r = client.get("/hello")
        check("the connection still serves", r.text == "hello world", r.text)
    for _ in range(3):
        r = httpx.get(base + "/hello", params={"name": "again"}, timeout=30)
        check("fresh connection", r.text == "hello again", r.text)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data = os.urandom(3 * 1024 * 1024)
        served = Path(tmp) / "download.bin"
        served.write_bytes(data)
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["DJANGO_SMOKE_FILE"] = str(served)
        cmd = [sys.executable, "-m", "squall", "run", "app:application", "--app-dir", str(HERE)]
        cmd += ["--port", str(port), "--no-access-log", "--log-level", "error"]
        # From HERE's directory: python -m would otherwise import the squall
        # of the current directory (a checkout) instead of the installed one.
        server = subprocess.Popen(cmd, env=env, cwd=HERE)
        try:
            _wait_listening(port, server, time.monotonic() + 30)
            run_checks(f"http://127.0.0.1:{port}", data)
        finally:
            server.terminate()
            server.wait(15)
    print("== Django's ASGI handler on squall run: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
