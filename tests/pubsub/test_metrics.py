"""`squall run --metrics-bind` samples every live PubSub's Status."""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("prometheus_client", reason="needs squall[metrics]")

from squall.cli._metrics import WorkerMetrics  # noqa: E402
from squall.pubsub import LocalPubSub, instances  # noqa: E402


def test_worker_metrics_sum_the_pubsub_counters_and_count_the_unhealthy() -> None:
    async def main() -> None:
        a = LocalPubSub(max_pending=1)
        b = LocalPubSub()
        sub = await a.subscribe("c")
        for text in ("1", "2", "3"):
            await a.publish("c", text)
        await b.publish("c", "nobody")
        b._set_healthy(False)  # as an engine does when its broker is gone
        b.status.round_trip = 0.25
        assert a in instances() and b in instances()
        metrics = WorkerMetrics()
        metrics.sample()
        value = {name: gauge._value.get() for name, gauge in metrics.pubsub.items()}
        assert value["published"] >= 4 and value["delivered"] >= 3 and value["dropped"] >= 2
        assert metrics.pubsub_unhealthy._value.get() >= 1
        assert metrics.pubsub_round_trip._value.get() >= 0.25
        sub.close()
        await b.close()
        assert b not in instances()
        await a.close()

    asyncio.run(asyncio.wait_for(main(), 2))
