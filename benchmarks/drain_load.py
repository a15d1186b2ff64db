"""Failed requests across worker restarts under keep-alive load (wrk), with and without nginx.

``squall run`` serves this file's ``app`` with two workers on a TCP port
(or, behind nginx, on a Unix socket nginx proxies to with upstream
keep-alive, tests/cli/nginx.conf); ``wrk -c20`` keeps 20 keep-alive
connections busy while the supervisor is made to replace workers:

- ``hup``: a SIGHUP rolling restart every second;
- ``ttin-ttou``: a worker added (TTIN) then the oldest retired (TTOU), every second;
- ``max-requests``: workers recycled by ``--max-requests 20000`` (with jitter).

With ``--think-ms 1`` each connection pauses 1 ms before each request, so
that a drain mostly finds connections between requests (with none, a
loaded server finds them busy).

wrk does not retry a request whose connection closed under it: each such
request is a "read" socket error. Prints, per case, wrk's requests,
non-2xx responses and socket errors, and how many workers drained.

Usage: python benchmarks/drain_load.py [--duration 10] [--only hup,ttin-ttou]
       [--proxy none,nginx] [--squall-path DIR]
(``--squall-path`` serves another checkout's squall, for a before/after.)
wrk and nginx come from Debian's packages (apt-get install wrk nginx-light).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from squall.web import Application, RequestHandler

HERE = Path(__file__).resolve().parent
NGINX_CONF = HERE.parent / "tests" / "cli" / "nginx.conf"


class Hello(RequestHandler):
    def get(self) -> None:
        self.write("hello")


app = Application([("/", Hello)])


class Server:
    """``squall run drain_load:app`` with its stderr read line by line."""

    def __init__(self, bind: str, extra: list[str], squall_path: Optional[str]) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if squall_path:
            env["PYTHONPATH"] = squall_path
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "squall", "run", "drain_load:app", "--app-dir", str(HERE)]
            + ["--bind", bind, "--workers", "2", "--no-access-log", *extra],
            env=env,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip())
                self.cond.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 30.0) -> list[str]:
        regex = re.compile(pattern)
        with self.cond:
            ok = self.cond.wait_for(
                lambda: sum(1 for line in self.lines if regex.search(line)) >= count, timeout
            )
            if not ok:
                raise RuntimeError(f"no {pattern!r} x{count}:\n" + "\n".join(self.lines[-30:]))
            return [line for line in self.lines if regex.search(line)]

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self.cond:
            return sum(1 for line in self.lines if regex.search(line))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def start_nginx(tmp: Path, sock_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    port = listener.getsockname()[1]
    conf = NGINX_CONF.read_text().replace("@DIR@", str(tmp)).replace("@SOCKET@", str(sock_path))
    conf = conf.replace("@PORT@", str(port))
    conf = conf.replace("@USER@", "user root;" if os.geteuid() == 0 else "")
    (tmp / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(
        [nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(tmp / "error.log")],
        pass_fds=(listener.fileno(),),
        env=dict(os.environ, NGINX=f"{listener.fileno()};"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listener.close()
    return proc, port


def run_wrk(port: int, duration: float, think_ms: int) -> dict[str, int]:
    cmd = ["wrk", "-t1", "-c20", f"-d{duration:g}s"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        if think_ms:
            # Each connection waits this long before its next request: idle
            # between requests, as clients with something else to do are.
            script.write(f"function delay()\n  return {think_ms}\nend\n")
            script.flush()
            cmd += ["-s", script.name]
        out = subprocess.run(
            cmd + [f"http://127.0.0.1:{port}/"], capture_output=True, text=True, check=True
        ).stdout
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if total is None:
        raise RuntimeError(f"wrk output not usable:\n{out}")
    got = {"requests": int(total.group(1)), "non2xx": int(non2xx.group(1)) if non2xx else 0}
    for name, value in zip(
        ("connect", "read", "write", "timeout"),
        errors.groups() if errors else (0, 0, 0, 0),
        strict=True,
    ):
        got[name] = int(value)
    return got


def case(
    name: str, proxy: str, duration: float, think_ms: int, squall_path: Optional[str]
) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sock_path = tmp / "app.sock"
        bind = f"unix:{sock_path}" if proxy == "nginx" else "127.0.0.1:0"
        extra = ["--max-requests", "20000", "--max-requests-jitter", "5000"]
        server = Server(bind, extra if name == "max-requests" else [], squall_path)
        nginx = None
        try:
            if proxy == "nginx":
                server.wait_for(r"Worker \d+ ready", 2)
                nginx, port = start_nginx(tmp, sock_path)
                deadline = time.monotonic() + 10
                while True:
                    try:
                        socket.create_connection(("127.0.0.1", port), 1).close()
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.05)
            else:
                line = server.wait_for(r"Listening on http://")[0]
                port = int(line.rsplit(":", 1)[1])
                server.wait_for(r"Worker \d+ ready", 2)
            stop = threading.Event()

            def signals() -> None:
                turn = 0
                while not stop.wait(1.0):
                    if name == "hup":
                        server.proc.send_signal(signal.SIGHUP)
                    elif name == "ttin-ttou":
                        sig = signal.SIGTTIN if turn % 2 == 0 else signal.SIGTTOU
                        server.proc.send_signal(sig)
                    turn += 1

            thread = threading.Thread(target=signals)
            thread.start()
            try:
                got = run_wrk(port, duration, think_ms)
            finally:
                stop.set()
                thread.join()
            got["drained"] = server.count(r"Worker \d+ draining")
            return got
        finally:
            if nginx is not None:
                nginx.terminate()
                nginx.wait(10)
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", default="hup,ttin-ttou,max-requests")
    parser.add_argument("--proxy", default="none,nginx")
    parser.add_argument("--squall-path", default=None)
    parser.add_argument(
        "--think-ms", default="0,1", help="pauses before each request (wrk delay()), ms"
    )
    args = parser.parse_args()
    print(
        f"{'case':<14}{'proxy':<7}{'requests':>10}{'non-2xx':>9}{'read':>6}{'write':>6}"
        f"{'connect':>8}{'timeout':>8}{'drained':>8}"
    )
    for think in (int(t) for t in args.think_ms.split(",")):
        for proxy in args.proxy.split(","):
            for name in args.only.split(","):
                got = case(name, proxy, args.duration, think, args.squall_path)
                print(
                    f"{name:<14}{proxy:<7}{think:>6}{got['requests']:>10}{got['non2xx']:>9}{got['read']:>6}"
                    f"{got['write']:>6}{got['connect']:>8}{got['timeout']:>8}{got['drained']:>8}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
