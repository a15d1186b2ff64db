"""A subscriber in its own process: ``python _subscriber.py URL CHANNEL COUNT``.

Prints ``ready`` once Redis confirmed the subscription, then each of COUNT
messages on its own line, then exits.
"""

from __future__ import annotations

import asyncio
import sys

from squall.pubsub import RedisPubSub


async def main(url: str, channel: str, count: int) -> None:
    pubsub = RedisPubSub(url)
    sub = await pubsub.subscribe(channel)
    print("ready", flush=True)
    for _ in range(count):
        print(await sub.get(), flush=True)
    await pubsub.close()


if __name__ == "__main__":
    # A hang guard (tests/_wait.py's HANG_GUARD; this script runs outside the package).
    asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2], int(sys.argv[3])), 30.0))
