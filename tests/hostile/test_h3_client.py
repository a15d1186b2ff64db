"""A hostile HTTP/3 server against `H3AsyncHTTPClient`: response heads the
client must refuse before decoding them, as its HTTP/1.1 and HTTP/2 paths
refuse a head past 64 KiB.

The server is aioquic's, answering every request with raw frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from aioquic.asyncio.protocol import QuicConnectionProtocol  # noqa: E402
from aioquic.asyncio.server import QuicServer  # noqa: E402
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection, encode_frame  # noqa: E402
from aioquic.h3.events import HeadersReceived  # noqa: E402
from aioquic.quic.configuration import QuicConfiguration  # noqa: E402
from aioquic.quic.events import QuicEvent  # noqa: E402

from squall._quicstack import H3Connection as StackH3Connection  # noqa: E402
from squall.h3client import H3AsyncHTTPClient  # noqa: E402
from squall.httpserver._h3conn import GuardedH3Connection  # noqa: E402
from squall.iostream import UnsatisfiableReadError  # noqa: E402
from squall.simple_httpclient import HTTPStreamClosedError  # noqa: E402
from squall.testing import ExpectLog  # noqa: E402

from ._serve import LOOPS, run  # noqa: E402
from .test_h3 import encode_int  # noqa: E402

CERTS = os.path.join(os.path.dirname(__import__("squall").__file__), "_certs")

# (encoder-stream instructions, the response's field section)
Answer = tuple[bytes, bytes]


def qpack_bomb() -> Answer:
    # One entry of about 4 KB, then 16,000 one-byte references to it: 62 MiB
    # decoded. Required Insert Count 1 (encoded 2), Delta Base 0, :status 200.
    name, value = b"x-a", b"v" * (4096 - 32 - 3)
    insert = bytes([0x40 | len(name)]) + name + b"\x7f" + encode_int(len(value) - 127) + value
    return b"\x3f\xe1\x1f" + insert, b"\x02\x00\xd9" + b"\x80" * 16_000


def many_fields() -> Answer:
    # :status 200, then 60,000 static references (accept-encoding: gzip,
    # deflate, br, index 31): 60,000 fields in 60 KB.
    return b"", b"\x00\x00\xd9" + b"\xdf" * 60_000


def one_large_field() -> Answer:
    # :status 200, then one literal field of 70,000 bytes (a frame of 70 KB).
    value = b"v" * 70_000
    return b"", b"\x00\x00\xd9\x21x\x7f" + encode_int(len(value) - 127) + value


def far_too_large_field() -> Answer:
    # As one_large_field, of 300,000 bytes: over four times the client's
    # limit (qh3 refuses such a frame as its length is read).
    value = b"v" * 300_000
    return b"", b"\x00\x00\xd9\x21x\x7f" + encode_int(len(value) - 127) + value


class Hostile(QuicConnectionProtocol):
    answer: Answer = (b"", b"")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)

    def quic_event_received(self, event: QuicEvent) -> None:
        for h3_event in self.h3.handle_event(event):
            if isinstance(h3_event, HeadersReceived):
                instructions, section = self.answer
                if instructions:
                    encoder = self.h3._local_encoder_stream_id
                    self._quic.send_stream_data(encoder, instructions)
                frame = encode_frame(FrameType.HEADERS, section)
                self._quic.send_stream_data(h3_event.stream_id, frame, True)
                self.transmit()


@contextlib.asynccontextmanager
async def hostile_server(answer: Answer) -> AsyncIterator[int]:
    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.load_cert_chain(os.path.join(CERTS, "test.crt"), os.path.join(CERTS, "test.key"))
    protocol: Callable[..., Hostile] = type("Answering", (Hostile,), {"answer": answer})
    # Port 0: the system picks a free UDP port (a TCP port found free, then
    # closed and bound again for UDP, may be another suite's QUIC port).
    transport, server = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: QuicServer(configuration=config, create_protocol=protocol),
        local_addr=("127.0.0.1", 0),
    )
    try:
        yield transport.get_extra_info("sockname")[1]
    finally:
        server.close()


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize(
    "answer",
    [qpack_bomb, many_fields, one_large_field, far_too_large_field],
    ids=lambda f: f.__name__,
)
def test_response_head_refused_before_decoding(
    loop: str, answer: Callable[[], Answer], monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[int] = []
    original = StackH3Connection._decode_headers

    def counting(self: Any, stream_id: int, frame_data: Any, **where: Any) -> Any:
        headers = original(self, stream_id, frame_data, **where)
        if self._is_client:
            decoded.append(sum(len(n) + len(v) for n, v in headers))
        return headers

    monkeypatch.setattr(StackH3Connection, "_decode_headers", counting)

    async def main() -> None:
        async with hostile_server(answer()) as port:
            client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
            try:
                with ExpectLog("squall.general", ".*Malformed HTTP message", level=logging.WARNING):
                    with pytest.raises(HTTPStreamClosedError, match="head refused"):
                        await client.fetch(
                            f"https://127.0.0.1:{port}/", validate_cert=False, request_timeout=5
                        )
            finally:
                client.close()
            # Nothing of it decoded (it used to be kept whole: 62 MiB,
            # 60,000 fields, a 70 KB field).
            assert sum(decoded) <= 4 * 65536

    run(main, loop)


def test_the_client_states_its_limit_in_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # What Squall's H3 layer sends as SETTINGS (the hostile server is plain
    # aioquic's): read as it is made, the connection may be gone after.
    sent: list[dict[int, int]] = []
    original = GuardedH3Connection._get_local_settings

    def recording(self: GuardedH3Connection) -> dict[int, int]:
        settings = original(self)
        sent.append(settings)
        return settings

    monkeypatch.setattr(GuardedH3Connection, "_get_local_settings", recording)

    async def main() -> None:
        async with hostile_server(many_fields()) as port:
            client = H3AsyncHTTPClient(
                force_instance=True, http3_prior_knowledge=True, max_header_size=1000
            )
            try:
                # Over the caller's max_header_size (more than four times
                # over: on qh3, refused as its length is read): the HTTP/1.1
                # client's error and log line.
                with ExpectLog("squall.general", "Unsatisfiable read", level=logging.INFO):
                    with pytest.raises(UnsatisfiableReadError):
                        await client.fetch(
                            f"https://127.0.0.1:{port}/", validate_cert=False, request_timeout=5
                        )
                assert [s[0x6] for s in sent] == [1000]  # MAX_FIELD_SECTION_SIZE
            finally:
                client.close()

    run(main, "asyncio")


@pytest.mark.parametrize(
    "section",
    [
        # :status 200, then a literal field "x" whose value has a control
        # character (RFC 9110 §5.5 refuses every one but HTAB; aioquic's
        # rules, which squall._h3fields applies on qh3 too, refuse only NUL,
        # CR and LF), or space at its start.
        b"\x00\x00\xd9\x21x\x03a\x01b",
        b"\x00\x00\xd9\x21x\x03a\x7fb",
        b"\x00\x00\xd9\x21x\x03a\rb",
        b"\x00\x00\xd9\x21x\x03a\nb",
        b"\x00\x00\xd9\x21x\x03a\x00b",
        b"\x00\x00\xd9\x21x\x02 a",
        # No :status at all.
        b"\x00\x00\x21x\x01a",
    ],
    ids=["SOH", "DEL", "CR", "LF", "NUL", "leading-space", "no-status"],
)
def test_a_malformed_response_head_fails_its_fetch_alone(section: bytes) -> None:
    # Each fetch fails with a clear error, as the HTTP/1.1 client refuses
    # such a head; the connection stays (RFC 9114 §4.1.2: a malformed
    # response is a stream error). Some of these went through to the
    # caller; aioquic's own checks (NUL, CR, LF, edge whitespace, a missing
    # :status) closed the whole connection.
    async def main() -> None:
        async with hostile_server((b"", section)) as port:
            client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
            url = f"https://127.0.0.1:{port}/"
            try:
                with ExpectLog("squall.general", ".*Malformed HTTP message", level=logging.WARNING):
                    outcomes = await asyncio.gather(
                        *(client.fetch(url, validate_cert=False) for _ in range(2)),
                        return_exceptions=True,
                    )
                for outcome in outcomes:
                    assert isinstance(outcome, HTTPStreamClosedError), outcome
                    assert "invalid response head" in str(outcome), outcome
                # The connection is still there for the next request.
                assert len(client._h2_conns) == 1
            finally:
                client.close()

    run(main, "asyncio")
