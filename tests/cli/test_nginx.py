"""squall run behind a real nginx (Debian's package), over a Unix socket.

nginx is started by the test with ``tests/cli/nginx.conf``; the test skips
when nginx is not installed (``apt-get install nginx-light``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._wait import HANG_GUARD

from ._proc import HERE, Load, Squall

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (apt-get install nginx-light)"
)


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[tuple[tuple[str, int], Path]]:
    """nginx on a free loopback port, proxying to ``tmp_path/app.sock``."""
    assert NGINX is not None
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port = listener.getsockname()[1]
    sock_path = tmp_path / "app.sock"
    conf = (HERE / "nginx.conf").read_text()
    conf = conf.replace("@DIR@", str(tmp_path)).replace("@SOCKET@", str(sock_path))
    conf = conf.replace("@PORT@", str(port))
    # As root, nginx's workers would otherwise run as nobody, who cannot
    # reach the socket inside pytest's private temporary directory.
    conf = conf.replace("@USER@", "user root;" if os.geteuid() == 0 else "")
    (tmp_path / "nginx.conf").write_text(conf)
    env = dict(os.environ, NGINX=f"{listener.fileno()};")
    proc = subprocess.Popen(
        [
            NGINX,
            "-p",
            str(tmp_path),
            "-c",
            str(tmp_path / "nginx.conf"),
            "-e",
            str(tmp_path / "error.log"),
        ],
        pass_fds=(listener.fileno(),),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    listener.close()
    try:
        yield ("127.0.0.1", port), sock_path
    finally:
        proc.terminate()
        proc.wait(10)


def _get(address: tuple[str, int], path: str, headers: str = "") -> tuple[int, bytes]:
    with socket.create_connection(address, timeout=HANG_GUARD) as sock:
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{headers}\r\n".encode()
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_proxy_headers_and_websocket_through_nginx(nginx: tuple[tuple[str, int], Path]) -> None:
    address, sock_path = nginx
    with Squall("sample_apps:app", "--bind", f"unix:{sock_path}") as squall:
        squall.expect("serving")
        # What the client wrote in X-Forwarded-For or
        # Forwarded is not believed; nginx's own X-Forwarded-For (its peer,
        # this test's 127.0.0.1) is.
        for spoof in (
            "X-Forwarded-For: 203.0.113.5\r\n",
            "Forwarded: for=6.6.6.6;proto=https\r\n",
            "X-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n",
        ):
            status, body = _get(address, "/", spoof)
            assert status == 200, body
            seen = json.loads(body)
            assert (seen["remote_ip"], seen["protocol"]) == ("127.0.0.1", "http"), spoof

        from squall.websocket import websocket_connect

        async def talk() -> None:
            ws = await websocket_connect(f"ws://{address[0]}:{address[1]}/ws")
            await ws.write_message("through nginx")
            assert await ws.read_message() == "through nginx"
            ws.close()

        asyncio.run(asyncio.wait_for(talk(), HANG_GUARD))
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_rolling_restart_behind_nginx_has_zero_502s(nginx: tuple[tuple[str, int], Path]) -> None:
    address, sock_path = nginx
    with Squall("sample_apps:app", "--bind", f"unix:{sock_path}", "--workers", "2") as squall:
        old = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        load = Load(address, "/slow", clients=4)
        load.start()
        squall.signal(signal.SIGHUP)
        new = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        for _ in range(2):
            assert int(squall.expect(r"Worker (\d+) exited").group(1)) in old
        load.wait_ok(load.ok + 10)  # served by the new workers alone
        load.stop()
        assert load.failures == []  # a 502 would be a failure
        assert load.retried == 0  # nginx itself never closed on the clients
        assert load.pids & new
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_h2c_upgrade_does_not_pass_nginx(nginx: tuple[tuple[str, int], Path]) -> None:
    # Behind the README's nginx, "Upgrade: h2c" became a
    # 101 and the connection a tunnel nginx no longer read.
    address, sock_path = nginx
    with Squall("sample_apps:app", "--bind", f"unix:{sock_path}", "--http2") as squall:
        squall.expect("serving")
        with socket.create_connection(address, timeout=HANG_GUARD) as sock:
            sock.sendall(
                b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
                b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
            )
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        # Both requests answered over HTTP/1.1 by the application.
        assert data.startswith(b"HTTP/1.1 200 "), data[:200]
        assert data.count(b"HTTP/1.1 200 ") == 2, data
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
