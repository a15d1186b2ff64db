"""``--metrics-bind``: Prometheus numbers across two workers, and the health endpoints."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from .._wait import HANG_GUARD
from ._proc import Load, Squall, get

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and fork are POSIX")
parser = pytest.importorskip("prometheus_client.parser", reason="needs squall[metrics]")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def scrape(address: tuple[str, int]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The metrics page as {(sample name, sorted labels): value}, through prometheus_client's parser."""
    status, body = get(address, "/metrics")
    assert status == 200
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in parser.text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


def test_two_workers_metrics_match_the_load_and_health_follows_the_lifecycle() -> None:
    metrics_address = ("127.0.0.1", _free_port())
    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--workers",
        "2",
        "--no-access-log",
        "--metrics-bind",
        f"{metrics_address[0]}:{metrics_address[1]}",
    ) as squall:
        address = squall.address()
        squall.expect(r"Metrics on http://127\.0\.0\.1:\d+/metrics")
        pids = {int(squall.expect(r"Worker (\d+) ready").group(1)) for _ in range(2)}
        assert get(metrics_address, "/livez") == (200, b"ok\n")
        assert get(metrics_address, "/readyz") == (200, b"ready\n")
        before = scrape(metrics_address)
        assert total(before, "squall_requests_total") == 0
        assert total(before, "squall_workers_ready") == 2
        load = Load(address, "/slow", clients=3)
        load.start()
        load.wait_ok(200)
        load.stop()
        assert load.failures == []
        for _ in range(5):
            assert get(address, "/items/7")[0] == 200
            assert get(address, "/nowhere")[0] == 404
        # Workers hand their counts over once a second: wait until all are in.
        deadline = time.monotonic() + HANG_GUARD  # a hang guard
        while total(scrape(metrics_address), "squall_requests_total") < load.ok + 10:
            assert time.monotonic() < deadline, scrape(metrics_address)
        # A worker killed and replaced: its counts stay, the restart is counted.
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        squall.expect(rf"Worker {victim} died")
        squall.expect(r"Worker (\d+) ready")
        after = scrape(metrics_address)
        served = load.ok
        assert total(after, "squall_requests_total", route="/slow", status="2xx") == served
        assert total(after, "squall_requests_total", route="item", method="GET") == 5
        assert total(after, "squall_requests_total", status="4xx") == 5
        assert total(after, "squall_request_duration_seconds_count", route="/slow") == served
        assert (
            total(after, "squall_request_duration_seconds_bucket", route="/slow", le="+Inf")
            == served
        )
        assert total(after, "squall_request_duration_seconds_sum", route="/slow") > 0
        assert total(after, "squall_worker_restarts_total") == 1
        assert total(after, "squall_server_draining") == 0
        # The load's connections are closed; the dead worker's gauges are gone.
        assert total(after, "squall_requests_in_flight") == 0
        assert total(after, "squall_open_connections", protocol="websocket") == 0
        squall.signal(signal.SIGTERM)
        squall.expect("Stopping 2 worker")
        assert squall.wait() == 0


def test_readiness_is_false_while_starting_and_while_draining(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    metrics_address = ("127.0.0.1", _free_port())
    with Squall(
        "gated_app:app",
        "--bind",
        "127.0.0.1:0",
        "--metrics-bind",
        f"{metrics_address[0]}:{metrics_address[1]}",
        env={"SQUALL_TEST_GATE": str(gate)},
    ) as squall:
        squall.expect(r"Metrics on")
        # The worker is importing the application (held at the gate).
        assert get(metrics_address, "/readyz") == (503, b"not ready: no worker ready yet\n")
        assert get(metrics_address, "/livez")[0] == 200
        with open(gate, "wb") as opened:
            opened.write(b"go")
        # Announced once a worker is ready (a target that fails is never).
        address = squall.address()
        worker = int(squall.expect(r"Worker (\d+) ready").group(1))
        assert get(metrics_address, "/readyz")[0] == 200
        held = http.client.HTTPConnection(*address, timeout=HANG_GUARD)
        held.request("GET", "/hold")
        response = held.getresponse()  # the head: the request is being served
        squall.signal(signal.SIGTERM)
        squall.expect("Stopping 1 worker")
        # The supervisor answers until its workers have drained.
        assert get(metrics_address, "/readyz") == (503, b"not ready: draining\n")
        os.kill(worker, signal.SIGUSR1)  # the held request ends
        assert response.read() == b"held\nreleased\n"
        held.close()
        assert squall.wait() == 0


class _Supervisor:
    """What the supervisor's collector and /readyz read."""

    stopping = False
    ever_ready = True
    target = 2
    restarts = 0

    def ready_pids(self) -> list[int]:
        return [101, 102]


def _supervisor_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from squall.cli._metrics import SupervisorMetrics

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return SupervisorMetrics(_Supervisor())  # type: ignore[arg-type]


def _serve_metrics(metrics: Any, path: str) -> tuple[int, bytes]:
    """One request to ``metrics.handle`` behind a real server on loopback."""
    import asyncio

    from squall.httpserver import HTTPServer
    from squall.testing import bind_unused_port

    async def fetch() -> tuple[int, bytes]:
        sock, port = bind_unused_port()
        server = HTTPServer(metrics.handle)
        server.add_sockets([sock])
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            answer = await reader.read()
            writer.close()
        finally:
            server.stop()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    return asyncio.run(fetch())


def test_a_scrape_leaves_out_a_file_a_worker_is_still_creating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = _supervisor_metrics(tmp_path, monkeypatch)
    # prometheus_client makes a worker's file, then sizes it: in between it
    # is empty, and reading it failed the whole scrape.
    (tmp_path / "counter_4242.db").write_bytes(b"")
    (tmp_path / "gauge_livesum_4242.db").write_bytes(b"\x00\x00")
    status, body = _serve_metrics(metrics, "/metrics")
    assert status == 200
    samples = {
        s.name: s.value
        for f in parser.text_string_to_metric_families(body.decode())
        for s in f.samples
    }
    assert samples["squall_workers_ready"] == 2
    metrics.close()


def test_a_scrape_that_fails_is_answered_500_with_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    metrics = _supervisor_metrics(tmp_path, monkeypatch)

    class Broken:
        def collect(self) -> Any:
            raise OSError("the disk went away")

    metrics.registry.register(Broken())
    status, body = _serve_metrics(metrics, "/metrics")
    assert (status, body) == (500, b"metrics unavailable: OSError: the disk went away\n")
    assert _serve_metrics(metrics, "/livez") == (200, b"ok\n")
    metrics.close()


def test_readyz_says_degraded_when_a_workers_pubsub_lost_its_broker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prometheus_client.core import GaugeMetricFamily

    metrics = _supervisor_metrics(tmp_path, monkeypatch)
    assert _serve_metrics(metrics, "/readyz") == (200, b"ready\n")

    class Worker:
        """What the workers' files say: two engines without their broker."""

        def collect(self) -> Any:
            yield GaugeMetricFamily("squall_pubsub_unhealthy", "x", value=2)

    metrics.registry.register(Worker())
    status, body = _serve_metrics(metrics, "/readyz")
    assert status == 200
    assert body.startswith(b"ready (degraded: the pub/sub broker is unreachable from 2 engine(s)")
    metrics.close()
