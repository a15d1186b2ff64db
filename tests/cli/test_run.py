"""The real ``squall run`` command in a subprocess: serving, workers, signals, reload."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import pytest

from tests._wait import HANG_GUARD

from ._proc import Load, Squall, free_listener, get, get_json

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")


def test_serves_an_application_and_drains_on_sigterm_with_busy_clients() -> None:
    with Squall("sample_apps:app", "--bind", "127.0.0.1:0") as squall:
        address = squall.address()
        squall.expect("serving")
        assert get_json(address)["path"] == "/"
        # Without a supervisor, HUP would end the process: it is ignored.
        squall.signal(signal.SIGHUP)
        squall.expect("SIGHUP ignored")
        load = Load(address, "/slow?hold=1", clients=4, first="/slow")
        load.start()
        # Busy: every client waits on a response, held until the drain has
        # begun. (A client between two requests is kept for a grace: see
        # test_drain.)
        load.wait_all_in_flight()
        squall.signal(signal.SIGTERM)
        squall.expect("draining")
        squall.signal(signal.SIGUSR1)  # the held responses go out
        load.stop()
        assert squall.wait() == 0
        assert load.failures == []
        assert load.ok >= 8  # each client's first response and the one in flight
        assert any("stopped" in line for line in squall.seen)


def test_fd_bind_and_access_log() -> None:
    listener = free_listener()
    address = listener.getsockname()
    try:
        with Squall(
            "sample_apps:app",
            "--bind",
            f"fd://{listener.fileno()}",
            "--access-log-format",
            "ACCESS {method} {path} {status} {size}",
            pass_fds=(listener.fileno(),),
        ) as squall:
            squall.expect("serving")
            status, body = get(address, "/slow")
            assert status == 200 and body.startswith(b"slow")
            match = squall.expect(r"ACCESS (\S+) (\S+) (\d+) (\d+)")
            assert match.groups() == ("GET", "/slow", "200", str(len(body)))
            squall.signal(signal.SIGINT)
            assert squall.wait() == 0
    finally:
        listener.close()


def test_unix_socket_and_proxy_headers(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    with Squall("sample_apps:app", "--bind", f"unix:{path}", "--root-path", "/api") as squall:
        squall.expect(r"Listening on unix:")
        squall.expect("serving")
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(path))
        sock.sendall(
            b"GET /api/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
            b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        sock.close()
        assert data.startswith(b"HTTP/1.1 200")
        body = data.partition(b"\r\n\r\n")[2]
        assert b'"remote_ip": "203.0.113.7"' in body
        assert b'"protocol": "https"' in body
        assert b'"path": "/"' in body
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    assert not path.exists()


def test_workers_serve_and_a_killed_worker_is_replaced() -> None:
    with Squall("sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2") as squall:
        address = squall.address()
        pids = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        assert len(pids) == 2 and os.getpid() not in pids
        assert get_json(address)["pid"] in pids
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        squall.expect(rf"Worker {victim} died \(signal SIGKILL\)")
        new = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert new not in pids
        # Every request is served, by the survivor or the replacement.
        for _ in range(5):
            assert get_json(address)["pid"] in (pids - {victim}) | {new}
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_sighup_rolls_workers_with_zero_failed_requests() -> None:
    with Squall("sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2") as squall:
        address = squall.address()
        old = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        load = Load(address, "/slow", clients=3)
        load.start()
        squall.signal(signal.SIGHUP)
        new = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        assert not new & old
        for _ in range(2):
            assert int(squall.expect(r"Worker (\d+) exited").group(1)) in old
        load.wait_ok(load.ok + 10)  # served by the new workers alone
        load.stop()
        assert load.failures == []
        # No connection was closed under a request (a client that does not
        # retry, as wrk, would count each as an error).
        assert load.retried == 0
        assert load.pids & new
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_max_requests_recycles_a_worker() -> None:
    with Squall(
        "sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "1", "--max-requests", "3"
    ) as squall:
        address = squall.address()
        first = int(squall.expect(r"Worker (\d+) ready").group(1))
        for _ in range(3):
            assert get_json(address)["pid"] == first
        squall.expect(rf"Worker {first} draining \(served 3 requests")
        second = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert second != first
        assert get_json(address)["pid"] == second
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_reload_picks_up_an_edit(tmp_path: Path) -> None:
    module = tmp_path / "reloaded_app.py"
    source = (
        "from squall.web import Application, RequestHandler\n"
        "class H(RequestHandler):\n"
        "    def get(self):\n"
        "        self.write('version {}')\n"
        "app = Application([('/', H)])\n"
    )
    module.write_text(source.format(1))
    with Squall(
        "reloaded_app:app",
        "--bind",
        "127.0.0.1:0",
        "--reload",
        "--reload-dir",
        str(tmp_path),
        "--app-dir",
        str(tmp_path),
    ) as squall:
        address = squall.address()
        old = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert get(address) == (200, b"version 1")
        module.write_text(source.format(2))  # the same size, likely the same second
        squall.expect(r"Reloading: .*reloaded_app\.py changed")
        squall.expect(r"Worker (\d+) ready")
        squall.expect(rf"Worker {old} exited")  # until then, either may answer
        assert get(address) == (200, b"version 2")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_a_bad_target_is_a_clear_error() -> None:
    # The other shapes of bad target are tested in-process (test_options).
    with Squall("sample_apps:not_an_app", "--bind", "127.0.0.1:0") as squall:
        squall.expect(r"squall run: error: .*is a builtins\.int: expected a squall/Tornado")
        assert squall.wait() == 2


def test_a_bad_target_stops_the_supervisor() -> None:
    with Squall("sample_apps:not_an_app", "--bind", "127.0.0.1:0", "--workers", "2") as squall:
        squall.expect(r"squall run: error: .*expected a squall/Tornado Application")
        assert squall.wait() == 2


def test_sigterm_closes_websockets_with_1001_ends_event_streams_and_finishes_long_polls() -> None:
    from squall.websocket import websocket_connect

    with Squall("sample_apps:app", "--bind", "127.0.0.1:0") as squall:
        host, port = squall.address()
        squall.expect("serving")

        async def body() -> None:
            ws = await websocket_connect(f"ws://{host}:{port}/ws")
            await ws.write_message("hello")
            assert await ws.read_message() == "hello"
            events, events_writer = await asyncio.open_connection(host, port)
            events_writer.write(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
            assert b"data: hello\n\n" in await events.readuntil(b"data: hello\n\n")
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"GET /slow?hold=1 HTTP/1.1\r\nHost: t\r\n\r\n")
            await writer.drain()
            # Sent, perhaps not yet read: the drain reads what is already
            # buffered before it closes idle connections.
            squall.signal(signal.SIGTERM)
            assert await ws.read_message() is None
            assert ws.close_code == 1001
            # The event stream ended properly (its last chunk), not cut.
            assert (await events.read()).endswith(b"\r\n0\r\n\r\n")
            events_writer.close()
            squall.signal(signal.SIGUSR1)  # the long poll's answer
            response = await reader.read()
            assert response.startswith(b"HTTP/1.1 200")
            assert b"Connection: close" in response
            assert response.endswith(b"slow " + str(squall.proc.pid).encode())
            writer.close()

        asyncio.run(asyncio.wait_for(body(), HANG_GUARD))
        assert squall.wait() == 0


def _signal_if_alive(pid: int, signum: int) -> bool:
    """Sends ``signum`` to ``pid``; False when the process has already exited."""
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_to_the_process_group_drains_the_workers() -> None:
    with Squall("sample_apps:app", "--bind", "127.0.0.1:0", "--workers", "2") as squall:
        address = squall.address()
        pids = [int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)]
        load = Load(address, "/slow?hold=1", clients=4, first="/slow")
        load.start()
        load.wait_all_in_flight()
        # What a terminal's Ctrl-C does: INT to every process of the group;
        # then the supervisor's TERM reaches workers already draining (sent
        # here again, once they surely are).
        os.killpg(squall.proc.pid, signal.SIGINT)
        squall.expect("Stopping 2 worker")
        # The kernel may have given every client to one worker: the other
        # then holds nothing, drains at once and may be gone before it is
        # signalled. The four held requests keep at least one of them.
        for pid in pids:
            squall.expect(rf"Worker {pid} draining")
            _signal_if_alive(pid, signal.SIGTERM)
        released = [pid for pid in pids if _signal_if_alive(pid, signal.SIGUSR1)]
        assert released, "no worker was left holding the requests"
        load.stop()
        assert squall.wait() == 0
        assert load.failures == []
        assert not any("Traceback" in line for line in squall.seen)


def test_workers_recycled_under_load_fail_no_request() -> None:
    # Each recycle is the graceful stop of one worker while clients are busy.
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--max-requests",
        "25",
        "--max-requests-jitter",
        "10",
        "--no-access-log",
    ) as squall:
        address = squall.address()
        first = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        load = Load(address, "/slow", clients=4)
        load.start()
        for _ in range(2):
            squall.expect(r"Worker (\d+) draining \(served \d+ requests")
        replacements = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        assert not replacements & first
        load.wait_ok(load.ok + 20)
        load.stop()
        assert load.failures == []
        assert load.retried == 0
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
