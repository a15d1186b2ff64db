"""`squall run --metrics-bind` samples every live PubSub's Status."""

from __future__ import annotations

import asyncio
import gc

import pytest

pytest.importorskip("prometheus_client", reason="needs squall[metrics]")

from squall.cli._metrics import WorkerMetrics  # noqa: E402
from squall.pubsub import LocalPubSub, RedisPubSub, instances  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ._redis_server import free_port  # noqa: E402


def sample() -> dict[str, float]:
    metrics = WorkerMetrics()
    metrics.sample()
    value = {name: float(gauge._value.get()) for name, gauge in metrics.pubsub.items()}
    value["unhealthy"] = metrics.pubsub_unhealthy._value.get()
    value["round_trip"] = metrics.pubsub_round_trip._value.get()
    return value


def test_worker_metrics_sum_the_pubsub_counters_and_count_the_unhealthy() -> None:
    """The gauges move by exactly what two engines of this test did (other
    tests' engines may still be alive: their figures are the baseline)."""

    async def main() -> None:
        before = sample()
        a = LocalPubSub(max_pending=1)
        # Unhealthy for real: a Redis that refuses connections.
        b = RedisPubSub(f"redis://127.0.0.1:{free_port()}/0", reconnect_delay=0.05)
        try:
            sub = await a.subscribe("c")
            for text in ("1", "2", "3"):
                await a.publish("c", text)
            await a.publish("other", "nobody")
            await b.wait_connected(timeout=HANG_GUARD, connected=False)
            await b.wait_until(lambda: not b.healthy, HANG_GUARD)
            assert a in instances() and b in instances()
            after = sample()
            assert after["published"] - before["published"] == 4 == a.status.published
            assert after["delivered"] - before["delivered"] == 3 == a.status.delivered
            assert after["dropped"] - before["dropped"] == 2 == sub.dropped
            assert after["renewed"] - before["renewed"] == 0 == a.status.renewed
            assert after["unhealthy"] - before["unhealthy"] == 1
            assert after["round_trip"] == max(p.status.round_trip for p in instances())
            sub.close()
        finally:
            await b.close()
        assert b not in instances()
        assert sample()["unhealthy"] == before["unhealthy"]
        await a.close()
        assert a not in instances()

    # Other tests' engines die at garbage collections (a WeakSet holds
    # them): none during the measurement.
    gc.collect()
    gc.disable()
    try:
        asyncio.run(asyncio.wait_for(main(), HANG_GUARD))
    finally:
        gc.enable()
