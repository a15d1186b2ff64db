"""A small HTTP/3 load generator on aioquic, for ``make bench-h3``.

h2load cannot speak HTTP/3 here (Debian's nghttp2-client is built without
QUIC), so this keeps ``--streams`` requests in flight on each of
``--connections`` QUIC connections for ``--duration`` seconds and prints one
JSON line: the responses completed after ``--warm-up`` seconds and the time
they took. Run it in its own process, pinned to a core of its own: it is
Python, and it is usually the slower side.

    python benchmarks/h3load.py PORT [--connections 4] [--streams 16] [--duration 5]
                                     [--browser-head]

``--browser-head`` sends the fields a browser sends with each request
(`BROWSER_FIELDS`: 17 fields, about 900 bytes) where the plain request has
the four pseudo-headers alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
import time
from typing import Any

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import QuicEvent

# --browser-head: the fields Chromium sends with a fetch() beside the
# pseudo-headers (its client hints, user agent, a session cookie): 17
# fields and about 900 bytes in all, where the plain head is 4 and 50.
BROWSER_FIELDS = [
    (b"sec-ch-ua", b'"Chromium";v="156", "Not)A;Brand";v="24"'),
    (b"sec-ch-ua-mobile", b"?0"),
    (b"sec-ch-ua-platform", b'"Linux"'),
    (
        b"user-agent",
        b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
        b" Chrome/156.0.0.0 Safari/537.36",
    ),
    (b"accept", b"application/json, text/plain, */*"),
    (b"sec-fetch-site", b"same-origin"),
    (b"sec-fetch-mode", b"cors"),
    (b"sec-fetch-dest", b"empty"),
    (b"referer", b"https://localhost/lab/tree/nb.ipynb"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (
        b"cookie",
        b"_xsrf=2|8f1e6a3b|5b8d0c2e4f6a8b1c3d5e7f9a0b2c4d6e|1732912345; "
        b'username-localhost="2|1:0|10:1732912345|18:username-localhost|196:'
        + b"e" * 196
        + b"|"
        + b"0123456789abcdef" * 4
        + b'"',
    ),
    (b"priority", b"u=1, i"),
]


class Loader(QuicConnectionProtocol):
    """Keeps a fixed number of requests in flight until the deadline."""

    # The fields each request carries beside the pseudo-headers.
    fields: list[tuple[bytes, bytes]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.deadline = 0.0
        self.counting_from = 0.0
        self.done = 0
        self.errors = 0
        self.in_flight = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.request_head = [
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"localhost"),
            (b":path", b"/?n=bench"),
            *self.fields,
        ]

    def fire(self) -> None:
        sid = self._quic.get_next_available_stream_id()
        self.h3.send_headers(sid, self.request_head, end_stream=True)
        self.in_flight += 1

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                if h3_event.headers[0] != (b":status", b"200"):
                    self.errors += 1
                ended = h3_event.stream_ended
            elif isinstance(h3_event, DataReceived):
                ended = h3_event.stream_ended
            else:
                continue
            if ended:
                self.in_flight -= 1
                now = time.monotonic()
                if now >= self.counting_from:
                    self.done += 1
                if now < self.deadline:
                    self.fire()
                elif not self.in_flight and not self.finished.done():
                    self.finished.set_result(None)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warm-up", type=float, default=1.0)
    parser.add_argument("--browser-head", action="store_true", help="send BROWSER_FIELDS too")
    args = parser.parse_args()
    if args.browser_head:
        Loader.fields = BROWSER_FIELDS
    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    config.verify_mode = ssl.CERT_NONE
    start = time.monotonic()
    deadline = start + args.warm_up + args.duration
    async with contextlib_group(args.connections, args.port, config) as loaders:
        for loader in loaders:
            loader.deadline = deadline
            loader.counting_from = start + args.warm_up
            for _ in range(args.streams):
                loader.fire()
            loader.transmit()
        await asyncio.wait_for(
            asyncio.gather(*(loader.finished for loader in loaders)), args.duration * 3 + 10
        )
    elapsed = time.monotonic() - (start + args.warm_up)
    done = sum(loader.done for loader in loaders)
    errors = sum(loader.errors for loader in loaders)
    print(json.dumps({"requests": done, "seconds": elapsed, "errors": errors}))


class contextlib_group:
    """Open ``n`` connections; close them all on exit."""

    def __init__(self, n: int, port: int, config: QuicConfiguration) -> None:
        self.n = n
        self.port = port
        self.config = config
        self.managers: list[Any] = []

    async def __aenter__(self) -> list[Loader]:
        loaders = []
        for _ in range(self.n):
            # The server's UDP endpoint may still be starting: retry for a
            # while (a context manager that failed cannot be entered again).
            for attempt in range(10):
                manager = connect(
                    "127.0.0.1", self.port, configuration=self.config, create_protocol=Loader
                )
                try:
                    loaders.append(await manager.__aenter__())  # type: ignore[misc]
                    self.managers.append(manager)
                    break
                except ConnectionError:
                    if attempt == 9:
                        raise
                    await asyncio.sleep(0.2)
        return loaders

    async def __aexit__(self, *exc: Any) -> None:
        for manager in self.managers:
            await manager.__aexit__(*exc)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
    sys.exit(0)
