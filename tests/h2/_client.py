"""A raw HTTP/2 client for the tests: the ``h2`` package over a real socket.

It does exactly what it is told, which makes it the attacker too.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, Optional

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

# A hang guard, not a property: a loaded machine (make test's stages side
# by side on two cores) must not decide a test.
DEADLINE = 30.0


class Response:
    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = b""
        self.reset: Optional[int] = None
        self.ended = False
        self.trailers: dict[str, str] = {}


class RawH2:
    """An HTTP/2 client connection driven by hand."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: h2.connection.H2Connection,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.events: list[h2.events.Event] = []
        self.responses: dict[int, Response] = {}
        self.goaway: Optional[h2.events.ConnectionTerminated] = None
        self.closed = False
        self.auto_ack = True
        self.raw = bytearray()  # everything received, for frames h2 would not parse

    @classmethod
    async def connect(
        cls,
        port: int,
        *,
        tls: bool = False,
        settings: Optional[dict[int, int]] = None,
        validate: bool = True,
        preface: bool = True,
    ) -> RawH2:
        ctx = None
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2"])
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx)
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=validate,
            normalize_outbound_headers=validate,
        )
        conn = h2.connection.H2Connection(config=config)
        if settings:
            conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        client = cls(reader, writer, conn)
        if preface:
            conn.initiate_connection()
            client.flush()
        return client

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.writer.write(data)

    def write_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def request(
        self,
        path: str = "/",
        method: str = "GET",
        headers: Optional[list[tuple[str, str]]] = None,
        body: Optional[bytes] = None,
        end: bool = True,
    ) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [
            (":method", method),
            (":path", path),
            (":scheme", "http"),
            (":authority", "localhost"),
        ] + list(headers or [])
        self.conn.send_headers(sid, fields, end_stream=end and not body)
        if body:
            self.conn.send_data(sid, body, end_stream=end)
        self.responses[sid] = Response()
        self.flush()
        return sid

    def _handle(self, events: list[h2.events.Event]) -> None:
        for ev in events:
            self.events.append(ev)
            if isinstance(ev, h2.events.ResponseReceived):
                r = self.responses.setdefault(ev.stream_id, Response())
                assert ev.headers is not None
                for name, value in ev.headers:
                    r.headers[str(name)] = str(value)
                r.status = int(r.headers[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                r = self.responses.setdefault(ev.stream_id, Response())
                r.body += ev.data or b""
                if self.auto_ack:
                    self.conn.acknowledge_received_data(
                        ev.flow_controlled_length or 0, ev.stream_id
                    )
            elif isinstance(ev, h2.events.TrailersReceived):
                r = self.responses.setdefault(ev.stream_id, Response())
                for name, value in ev.headers or []:
                    r.trailers[str(name)] = str(value)
            elif isinstance(ev, h2.events.StreamEnded):
                self.responses.setdefault(ev.stream_id, Response()).ended = True
            elif isinstance(ev, h2.events.StreamReset):
                self.responses.setdefault(ev.stream_id, Response()).reset = ev.error_code
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.goaway = ev
        self.flush()

    async def read_once(self, timeout: float = DEADLINE) -> bool:
        """Read and handle one chunk; False at EOF."""
        data = await asyncio.wait_for(self.reader.read(65536), timeout)
        if not data:
            self.closed = True
            return False
        self.raw += data
        try:
            self._handle(self.conn.receive_data(data))
        except h2.exceptions.ProtocolError:
            # After a GOAWAY the server may still send frames h2 rejects.
            pass
        return True

    async def until(self, predicate: Any, timeout: float = DEADLINE) -> None:
        """Read until ``predicate()`` is true (or fail at the deadline / EOF)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("condition not reached")
            if not await self.read_once(left):
                if predicate():
                    return
                raise ConnectionError("server closed the connection")

    async def until_closed(self, timeout: float = DEADLINE) -> None:
        """Read (and discard) until the server closes the connection."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.closed:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("server did not close")
            try:
                await self.read_once(left)
            except ConnectionError:
                # Reset, or a broken pipe: a write of ours after the server
                # closed fails the transport, and its reader with it.
                self.closed = True

    async def fetch(self, path: str = "/", **kwargs: Any) -> Response:
        sid = self.request(path, **kwargs)
        r = self.responses[sid]
        await self.until(lambda: r.ended or r.reset is not None)
        return r

    def frames(self) -> list[Any]:
        """Every frame received so far, parsed by hyperframe alone."""
        from hyperframe.frame import Frame

        out = []
        data = bytes(self.raw)
        pos = 0
        while pos + 9 <= len(data):
            frame, length = Frame.parse_frame_header(memoryview(data[pos : pos + 9]))
            frame.parse_body(memoryview(data[pos + 9 : pos + 9 + length]))
            out.append(frame)
            pos += 9 + length
        return out

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass


async def http1_head(port: int, request: bytes) -> bytes:
    """Send raw HTTP/1.1 ``request`` bytes; return the response head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), DEADLINE)
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
