"""The publisher of ``make bench-cluster`` for Squall: ``squall.pubsub`` at a fixed rate.

``python publisher.py URL CHANNELS RATE SECONDS`` publishes RATE messages a
second, channels in turn (``bench.0``, ``bench.1``, ...), each message
``"<channel> <sequence> <send time> <padding>"`` (sequence from 1 per
channel), then prints one JSON line: the count published per channel and
the publishes that failed (a broker fault that outlasted the engine's
``publish_timeout``: the message counts as published and lost, never
retried here, so that the loss is counted honestly).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import squall.pubsub

PAD = "x" * 40


async def main(url: str, channels: int, rate: float, seconds: float) -> None:
    pubsub = squall.pubsub.connect(url)
    total = round(rate * seconds)
    counts = [0] * channels
    failed = 0
    start = time.monotonic()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            ch = sent % channels
            counts[ch] += 1
            message = f"{ch} {counts[ch]} {time.time():.6f} {PAD}"
            sent += 1
            try:
                # Bounded by the engine (publish_timeout: it rides out a
                # failover); this bound is only a safety net.
                await asyncio.wait_for(pubsub.publish(f"bench.{ch}", message), 60.0)
            except (TimeoutError, OSError, ConnectionError, RuntimeError) as exc:
                failed += 1
                if failed <= 3:
                    print(f"publish failed: {exc!r}", file=sys.stderr, flush=True)
            except Exception as exc:  # redis-py's own errors
                failed += 1
                if failed <= 3:
                    print(f"publish failed: {exc!r}", file=sys.stderr, flush=True)
        await asyncio.sleep(0.002)
    await pubsub.close()
    print(json.dumps({"published": counts, "failed": failed}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
