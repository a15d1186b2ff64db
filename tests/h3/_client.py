"""An HTTP/3 client for the tests: aioquic's QUIC and H3 layers over a real UDP socket.

It does what it is told (streams, headers, bodies, resets), which makes it
the attacker too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any, Optional

from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

# A hang guard, not a property (tests/_wait.py's HANG_GUARD).
DEADLINE = 30.0


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        # A field section after the final head: the response's trailers.
        self.trailers: dict[str, str] = {}
        self.interim: list[list[tuple[str, str]]] = []
        self.body = b""
        self.ended = False
        self.reset: Optional[int] = None
        # The server's STOP_SENDING: the rest of the request is not wanted.
        self.stopped: Optional[int] = None


class H3Client(QuicConnectionProtocol):
    """One HTTP/3 connection driven by hand."""

    # A client that stops reading: while set, what arrives is dropped
    # unread (no acknowledgement, no flow-control credit goes back).
    deaf = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.responses: dict[int, Response] = {}
        self.events: list[H3Event] = []
        self.terminated: Optional[ConnectionTerminated] = None
        # What the server sent on its control stream (3), raw: GOAWAY is
        # read and dropped by aioquic's H3 layer.
        self.control = b""
        self._changed: Optional[asyncio.Future[None]] = None

    def datagram_received(self, data: Any, addr: Any) -> None:
        if not self.deaf:
            super().datagram_received(data, addr)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
        elif isinstance(event, StreamReset):
            self.responses.setdefault(event.stream_id, Response()).reset = event.error_code
        elif isinstance(event, StopSendingReceived):
            self.responses.setdefault(event.stream_id, Response()).stopped = event.error_code
        elif isinstance(event, StreamDataReceived) and event.stream_id == 3:
            self.control += event.data
        for h3_event in self.h3.handle_event(event):
            self.events.append(h3_event)
            if isinstance(h3_event, HeadersReceived):
                r = self.responses.setdefault(h3_event.stream_id, Response())
                fields = [(n.decode(), v.decode()) for n, v in h3_event.headers]
                status = int(dict(fields).get(":status", "0"))
                if r.status >= 200 and not status:
                    r.trailers.update(fields)
                elif 100 <= status < 200:
                    r.interim.append(fields)
                else:
                    r.status = status
                    r.headers.update(fields)
                r.ended = r.ended or h3_event.stream_ended
            elif isinstance(h3_event, DataReceived):
                r = self.responses.setdefault(h3_event.stream_id, Response())
                r.body += h3_event.data
                r.ended = r.ended or h3_event.stream_ended
        self.poke()

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Optional[list[tuple[str, str]]] = None,
        body: Optional[bytes] = None,
        end: bool = True,
        authority: str = "localhost",
    ) -> int:
        sid = self._quic.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority.encode()),
            (b":path", path.encode()),
        ] + [(n.encode(), v.encode()) for n, v in headers or []]
        self.h3.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.h3.send_data(sid, body, end_stream=end)
        self.responses[sid] = Response()
        self.transmit()
        return sid

    def send_body(self, sid: int, data: bytes, end: bool = False) -> None:
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    def poke(self) -> None:
        """Something ``until``'s predicate reads changed outside the client
        (the server's state, in the same loop): check it again now."""
        waiter = self._changed
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def until(self, predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("condition not reached")
            self._changed = loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._changed), left)
            except TimeoutError:
                pass

    async def fetch(self, path: str = "/", **kwargs: Any) -> Response:
        sid = self.request(path, **kwargs)
        r = self.responses[sid]
        await self.until(lambda: r.ended or r.reset is not None)
        return r


def client_configuration() -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    config.verify_mode = ssl.CERT_NONE
    return config


@contextlib.asynccontextmanager
async def h3_client(port: int, host: str = "127.0.0.1") -> AsyncIterator[H3Client]:
    async with connect(
        host, port, configuration=client_configuration(), create_protocol=H3Client
    ) as client:
        assert isinstance(client, H3Client)
        yield client
