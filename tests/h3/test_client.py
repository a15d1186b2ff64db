"""squall.h3client.H3AsyncHTTPClient against Squall's HTTP/3 server.

The server records the protocol each request came by (``request.version``),
which is how a test tells HTTP/3 from a fallback to TCP.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
from typing import Any

import pytest

pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")

from squall.h3client import H3AsyncHTTPClient, parse_alt_svc  # noqa: E402
from squall.httpclient import HTTPClientError, HTTPResponse  # noqa: E402
from squall.iostream import UnsatisfiableReadError  # noqa: E402
from squall.simple_httpclient import HTTPStreamClosedError  # noqa: E402
from squall.testing import AsyncHTTPSTestCase, ExpectLog, gen_test  # noqa: E402
from squall.web import Application, RequestHandler  # noqa: E402

from .._wait import HANG_GUARD  # noqa: E402
from ..h2.test_attacks import condition  # noqa: E402
from ..h2.test_client import BigHead, Gzipped, Missing, Pieces, Redirect  # noqa: E402
from ._stack import only_on  # noqa: E402
from .test_server import FailsOnce  # noqa: E402

CERT = os.path.join(os.path.dirname(__import__("squall").__file__), "_certs", "test.crt")


class Info(RequestHandler):
    def get(self) -> None:
        self.write(
            {
                "version": self.request.version,
                "q": self.get_argument("q", ""),
                "ua": self.request.headers.get("User-Agent", ""),
                "authority": self.request.host,
            }
        )

    def post(self) -> None:
        self.write(f"{self.request.version} {len(self.request.body)}")


class Stall(RequestHandler):
    async def get(self) -> None:
        await self.settings["release"].wait()
        self.write("late")


class Trickle(RequestHandler):
    """A body in two pieces: the second once the test says so."""

    async def get(self) -> None:
        self.write(b"first;")
        await self.flush()
        await self.settings["go_on"].wait()
        self.write(b"second")


class Advertise(RequestHandler):
    """Points its clients at an HTTP/3 alternative that never answers."""

    def get(self) -> None:
        self.set_header("Alt-Svc", f'h3=":{self.settings["alt_port"]}"; ma=60')
        self.write(self.request.version)


class Bodiless(RequestHandler):
    """Responses without a body that give the length one would have had."""

    def head(self) -> None:
        self.set_header("Content-Length", "5000")

    def get(self) -> None:
        self.set_status(304)
        self.set_header("Content-Length", "77")


def make_app(**settings: Any) -> Application:
    return Application(
        [
            ("/info", Info),
            ("/redirect", Redirect),
            ("/gzip", Gzipped),
            ("/missing", Missing),
            ("/stall", Stall),
            ("/trickle", Trickle),
            ("/advertise", Advertise),
            ("/bodiless", Bodiless),
            ("/bighead", BigHead),
            ("/pieces", Pieces),
        ],
        release=asyncio.Event(),
        go_on=asyncio.Event(),
        **settings,
    )


class H3ServerCase(AsyncHTTPSTestCase):
    def get_app(self) -> Application:
        return make_app()

    def get_httpserver_options(self) -> dict[str, Any]:
        return {**super().get_httpserver_options(), "http3": True}

    async def started(self) -> None:
        await asyncio.gather(*self.http_server._h3_tasks)

    def tearDown(self) -> None:
        self._app.settings["release"].set()
        self._app.settings["go_on"].set()
        super().tearDown()


class PriorKnowledgeTest(H3ServerCase):
    def get_http_client(self) -> H3AsyncHTTPClient:
        return H3AsyncHTTPClient(
            force_instance=True, http3_prior_knowledge=True, defaults={"validate_cert": False}
        )

    @gen_test
    async def test_requests_share_one_quic_connection(self) -> None:
        await self.started()
        responses = await asyncio.gather(
            *(
                self.http_client.fetch(self.get_url(f"/info?q={i}"), user_agent="t/3")
                for i in range(20)
            )
        )
        bodies = [r.body.decode() for r in responses]
        assert all('"version": "HTTP/3"' in b and '"ua": "t/3"' in b for b in bodies)
        assert [f'"q": "{i}"' in b for i, b in enumerate(bodies)] == [True] * 20
        assert f'"authority": "127.0.0.1:{self.get_http_port()}"' in bodies[0]
        assert len(self.http_client._h2_conns) == 1
        # One connection on the server too, and it is the QUIC one.
        assert [type(c).__name__ for c in self.http_server._connections] == ["_H3Protocol"]

    @gen_test
    async def test_body_redirect_gzip_and_errors(self) -> None:
        await self.started()
        response = await self.http_client.fetch(
            self.get_url("/info"), method="POST", body=b"p" * 300_000
        )
        assert response.body == b"HTTP/3 300000"
        response = await self.http_client.fetch(self.get_url("/redirect"))
        assert '"q": "redirected"' in response.body.decode()
        assert response.effective_url.endswith("/info?q=redirected")
        response = await self.http_client.fetch(self.get_url("/gzip"))
        assert response.body == b"squeezed " * 50
        assert response.headers["X-Consumed-Content-Encoding"] == "gzip"
        with pytest.raises(HTTPClientError) as info:
            await self.http_client.fetch(self.get_url("/missing"))
        assert (info.value.code, info.value.response.body) == (404, b"nope")  # type: ignore[union-attr]

    @gen_test
    async def test_streaming_and_header_callbacks(self) -> None:
        await self.started()
        lines: list[str] = []
        pieces: list[bytes] = []
        response = await self.http_client.fetch(
            self.get_url("/info?q=s"),
            header_callback=lines.append,
            streaming_callback=pieces.append,
        )
        assert response.body == b""
        assert b'"q": "s"' in b"".join(pieces)
        assert lines[0] == "HTTP/3 200 \r\n"
        assert lines[-1] == "\r\n"
        assert any(line.lower().startswith("content-type: application/json") for line in lines)

    @gen_test
    async def test_request_timeout_resets_the_stream(self) -> None:
        await self.started()
        # The connection first: the timeout below is the stalled request's,
        # never the handshake's (which a loaded machine can take 0.2 s for).
        await self.http_client.fetch(self.get_url("/info?q=before"))
        (opened,) = self.http_client._h2_conns.values()
        with pytest.raises(HTTPClientError) as info:
            await self.http_client.fetch(self.get_url("/stall"), request_timeout=0.2)
        assert info.value.code == 599
        assert "Timeout" in str(info.value)
        (conn,) = self.http_client._h2_conns.values()
        assert conn is opened
        assert not conn.streams  # type: ignore[attr-defined]
        # The connection goes on serving.
        response = await self.http_client.fetch(self.get_url("/info?q=after"))
        assert '"q": "after"' in response.body.decode()

    @gen_test
    async def test_close_closes_the_quic_connection(self) -> None:
        await self.started()
        await self.http_client.fetch(self.get_url("/info"))
        (conn,) = self.http_client._h2_conns.values()
        self.http_client.close()
        assert conn.closed
        assert conn._transport.is_closing()  # type: ignore[attr-defined]


class SameAsHTTP1Test(H3ServerCase):
    """What a caller sees is what the HTTP/1.1 client gives it, where
    HTTP/3 does not say otherwise."""

    def get_http_client(self) -> H3AsyncHTTPClient:
        return H3AsyncHTTPClient(
            force_instance=True, http3_prior_knowledge=True, defaults={"validate_cert": False}
        )

    @gen_test
    async def test_bodiless_responses_with_a_content_length(self) -> None:
        # A HEAD response and a 304 carry the Content-Length of a body they
        # do not have (RFC 9110 §8.6). aioquic's check of the field against
        # the body closed the whole QUIC connection over it.
        await self.started()
        response = await self.http_client.fetch(self.get_url("/bodiless"), method="HEAD")
        assert (response.code, response.body) == (200, b"")
        assert response.headers["Content-Length"] == "5000"
        (conn,) = self.http_client._h2_conns.values()
        with pytest.raises(HTTPClientError) as info:
            await self.http_client.fetch(self.get_url("/bodiless"))
        assert info.value.code == 304
        # Both on the connection they came by, which serves on.
        response = await self.http_client.fetch(self.get_url("/info?q=after"))
        assert '"q": "after"' in response.body.decode()
        assert list(self.http_client._h2_conns.values()) == [conn]

    @gen_test
    async def test_header_callback_sees_only_the_final_response(self) -> None:
        await self.started()
        lines: list[str] = []
        response = await self.http_client.fetch(
            self.get_url("/redirect"), header_callback=lines.append
        )
        assert '"q": "redirected"' in response.body.decode()
        assert lines[0] == "HTTP/3 200 \r\n"
        assert lines.count("\r\n") == 1
        assert not any(line.lower().startswith("location:") for line in lines)

    @gen_test
    async def test_awaitable_streaming_callback_is_awaited(self) -> None:
        await self.started()
        events: list[str] = []

        async def on_piece(piece: bytes) -> None:
            events.append("start")
            await asyncio.sleep(0)
            events.append("end " + piece.decode())

        response = await self.http_client.fetch(
            self.get_url("/pieces"), streaming_callback=on_piece
        )
        assert response.body == b""
        assert [e[:3] for e in events] == ["sta", "end"] * (len(events) // 2)
        assert "".join(e[4:] for e in events if e.startswith("end ")) == "one;two;three"

    @gen_test
    async def test_close_lets_fetches_in_flight_complete(self) -> None:
        # As the HTTP/1.1 client's close(): the fetch in flight gets its
        # response, then the connection closes (it failed with "Connection closed").
        await self.started()
        await self.http_client.fetch(self.get_url("/info"))
        (conn,) = self.http_client._h2_conns.values()
        future = self.http_client.fetch(self.get_url("/stall"))
        # (Sent at once on the open connection.)
        assert conn.streams  # type: ignore[attr-defined]
        self.http_client.close()
        assert not conn.closed
        self._app.settings["release"].set()
        response = await asyncio.wait_for(future, HANG_GUARD)
        assert response.body == b"late"
        assert conn.closed

    @gen_test
    async def test_a_port_nothing_listens_on_is_refused_at_once(self) -> None:
        # The system reports the datagram refused (ICMP port unreachable):
        # the fetch fails with ConnectionRefusedError, as a refused TCP
        # connect does over HTTP/1.1, not with a timeout after connect_timeout.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        with pytest.raises(ConnectionRefusedError):
            # (connect_timeout only a hang guard: the refusal comes at once.)
            await self.http_client.fetch(f"https://127.0.0.1:{port}/", connect_timeout=HANG_GUARD)

    @gen_test
    async def test_a_server_closing_fails_fetches_with_the_http1_words(self) -> None:
        # A server closing its QUIC connection without an error, before the
        # response head: "Stream closed", as a TCP connection closed there
        # fails an HTTP/1.1 fetch (it was "HTTP/3 connection closed (...)").
        await self.started()
        await self.http_client.fetch(self.get_url("/info"))
        future = self.http_client.fetch(self.get_url("/stall"))
        (server_conn,) = self.http_server._connections
        # (Once the server has the request: its stream is open there.)
        await asyncio.wait_for(
            condition(lambda: bool(server_conn._streams)),
            HANG_GUARD,  # type: ignore[attr-defined]
        )
        server_conn._quic.close(error_code=0)  # type: ignore[attr-defined]
        server_conn.transmit()  # type: ignore[attr-defined]
        with pytest.raises(HTTPStreamClosedError) as info:
            await future
        assert str(info.value) == "Stream closed"

    @gen_test
    async def test_a_response_the_server_cannot_send_fails_the_fetch(self) -> None:
        # The server's QUIC stack raising on the response's head (a section
        # it refuses): the stream is reset, and the fetch fails with the
        # reset's code, where it waited out its request timeout.
        await self.started()
        await self.http_client.fetch(self.get_url("/info"))
        (server_conn,) = self.http_server._connections
        FailsOnce(server_conn.h3, "send_headers")  # type: ignore[attr-defined]
        with ExpectLog("squall.general", ".*could not be sent; reset", level=logging.ERROR):
            with pytest.raises(HTTPStreamClosedError, match=r"stream reset by the server \(258\)"):
                await self.http_client.fetch(self.get_url("/info"), request_timeout=HANG_GUARD)
        response = await self.http_client.fetch(self.get_url("/info?q=3"))
        assert '"q": "3"' in response.body.decode()

    @gen_test
    async def test_max_header_size_error_is_the_http1_clients(self) -> None:
        await self.started()
        client = H3AsyncHTTPClient(
            force_instance=True,
            http3_prior_knowledge=True,
            max_header_size=1000,
            defaults={"validate_cert": False},
        )
        try:
            with ExpectLog("squall.general", "Unsatisfiable read", level=logging.INFO):
                with pytest.raises(UnsatisfiableReadError, match="Header block too large"):
                    await client.fetch(self.get_url("/bighead"), raise_error=False)
            response = await client.fetch(self.get_url("/info?q=2"))
            assert '"q": "2"' in response.body.decode()
        finally:
            client.close()

    @gen_test
    async def test_a_head_far_over_max_header_size_fails_its_fetch_alone(self) -> None:
        # A HEADERS frame over four times the limit: qh3 closed the whole
        # connection as it read the frame's length, failing every fetch on
        # it ("HTTP/3 connection closed (Encoded field section exceeds the
        # configured limit)", and only once the close's drain period was
        # over). It is the fetch's error, as on aioquic and over HTTP/1.1.
        await self.started()
        client = H3AsyncHTTPClient(
            force_instance=True,
            http3_prior_knowledge=True,
            max_header_size=500,  # /bighead's head is over 3,000 bytes
            defaults={"validate_cert": False},
        )
        try:
            await client.fetch(self.get_url("/info"))
            (connection,) = client._h2_conns.values()
            with ExpectLog("squall.general", "Unsatisfiable read", level=logging.INFO):
                big, small = await asyncio.gather(
                    client.fetch(self.get_url("/bighead"), request_timeout=HANG_GUARD),
                    client.fetch(self.get_url("/info?q=4")),
                    return_exceptions=True,
                )
            assert isinstance(big, UnsatisfiableReadError), big
            assert str(big) == "Header block too large"
            assert isinstance(small, HTTPResponse) and '"q": "4"' in small.body.decode()
            assert list(client._h2_conns.values()) == [connection]
        finally:
            client.close()


class StreamsTest(H3ServerCase):
    """Many requests on one connection, a body as it arrives, a connection lost."""

    def get_http_client(self) -> H3AsyncHTTPClient:
        return H3AsyncHTTPClient(
            force_instance=True, http3_prior_knowledge=True, defaults={"validate_cert": False}
        )

    def count_datagrams(self) -> list[int]:
        """Counts the datagrams the client's one connection sends from now on."""
        (conn,) = self.http_client._h2_conns.values()
        transport = conn._transport  # type: ignore[attr-defined]
        sent = [0]
        sendto = transport.sendto

        def counting(data: bytes, addr: Any = None) -> None:
            sent[0] += 1
            sendto(data, addr)

        transport.sendto = counting
        return sent

    @only_on(
        "aioquic",
        "qh3 2.1.0 refuses a stream past the peer's credit ('Bidirectional stream"
        " limit 100 exceeded') where aioquic holds it until more is granted",
    )
    @gen_test
    async def test_many_streams_on_one_connection_leave_together(self) -> None:
        await self.started()
        await self.http_client.fetch(self.get_url("/info?q=first"))
        sent = self.count_datagrams()
        # More than the server's stream credit at once: QUIC holds the rest
        # back until it grants more.
        count = 150
        responses = await asyncio.wait_for(
            asyncio.gather(
                *(self.http_client.fetch(self.get_url(f"/info?q={i}")) for i in range(count))
            ),
            10,
        )
        bodies = [r.body.decode() for r in responses]
        assert [f'"q": "{i}"' in b for i, b in enumerate(bodies)] == [True] * count
        assert len(self.http_client._h2_conns) == 1
        # Requests made in one loop turn share datagrams (about 30 bytes of
        # HEADERS each), acknowledgements included: not one datagram each.
        assert 0 < sent[0] < count // 2, sent[0]

    @gen_test
    async def test_request_timeouts_share_one_timer(self) -> None:
        await self.started()
        await self.http_client.fetch(self.get_url("/info?q=first"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        # The later deadline first: the timer is armed for it, then brought
        # forward for the earlier one, then set again for the later one.
        late = self.http_client.fetch(self.get_url("/stall"), request_timeout=1.0)
        early = self.http_client.fetch(self.get_url("/stall"), request_timeout=0.1)
        # One timer, armed for the earlier of the two deadlines (by state,
        # not by when it fires: a busy machine may run it late).
        timer = self.http_client._stream_deadlines
        deadlines = sorted(f.deadline for f in self.http_client._timed)
        assert len(deadlines) == 2 and timer.handle is not None
        assert timer.when == deadlines[0]
        meanwhile = await self.http_client.fetch(self.get_url("/info?q=meanwhile"))
        assert '"q": "meanwhile"' in meanwhile.body.decode()
        with pytest.raises(HTTPClientError, match="Timeout during request"):
            await asyncio.wait_for(early, HANG_GUARD)
        early_at = loop.time() - start
        # The timer is set again for the later one, which times out too (a
        # timer not set again would leave it to the hang guard).
        with pytest.raises(HTTPClientError, match="Timeout during request"):
            await asyncio.wait_for(late, HANG_GUARD)
        late_at = loop.time() - start
        assert early_at >= 0.1 and late_at >= 1.0, (early_at, late_at)
        assert not self.http_client._timed  # type: ignore[attr-defined]

    @gen_test
    async def test_a_body_is_delivered_as_it_arrives(self) -> None:
        await self.started()
        pieces: list[bytes] = []
        go_on = self._app.settings["go_on"]

        def streaming(piece: bytes) -> None:
            pieces.append(piece)
            go_on.set()  # the second piece is sent once the first arrived

        response = await asyncio.wait_for(
            self.http_client.fetch(self.get_url("/trickle"), streaming_callback=streaming), 5
        )
        assert response.code == 200
        assert pieces[0] == b"first;"
        assert b"".join(pieces) == b"first;second"

    @gen_test
    async def test_a_connection_lost_mid_response_fails_the_request(self) -> None:
        await self.started()
        await self.http_client.fetch(self.get_url("/info"))
        arrived = asyncio.Event()
        waiting = self.http_client.fetch(
            self.get_url("/trickle"), streaming_callback=lambda piece: arrived.set()
        )
        others = [self.http_client.fetch(self.get_url("/stall")) for _ in range(3)]
        await asyncio.wait_for(arrived.wait(), HANG_GUARD)
        (server_conn,) = self.http_server._connections
        await server_conn.close()  # type: ignore[attr-defined]
        # The HTTP/1.1 client's words: after the head, and before it.
        for future, words in [(waiting, "Connection closed")] + [
            (other, "Stream closed") for other in others
        ]:
            with pytest.raises(HTTPClientError) as info:
                await asyncio.wait_for(future, HANG_GUARD)
            assert info.value.code == 599
            assert str(info.value) == words
        assert not self.http_client._h2_conns
        # The next request opens a new connection.
        response = await self.http_client.fetch(self.get_url("/info?q=again"))
        assert '"q": "again"' in response.body.decode()


class CertificateTest(H3ServerCase):
    @gen_test
    async def test_an_untrusted_certificate_fails_the_request(self) -> None:
        await self.started()
        client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
        try:
            with ExpectLog("quic", ".*self-signed certificate", required=False):
                # (aioquic names the reason; qh3 says "unacceptable".)
                with pytest.raises(
                    ConnectionError, match="HTTP/3 handshake .* (self-signed|unacceptable)"
                ):
                    await client.fetch(self.get_url("/info"), connect_timeout=5)
        finally:
            client.close()

    @only_on("aioquic", "qh3 refuses a CA certificate as the server's own, as the test one is")
    @gen_test
    async def test_a_trusted_certificate_is_accepted(self) -> None:
        await self.started()
        client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
        try:
            response = await client.fetch(self.get_url("/info"), ca_certs=CERT)
            assert '"version": "HTTP/3"' in response.body.decode()
        finally:
            client.close()


class DiscoveryTest(H3ServerCase):
    def get_http_client(self) -> H3AsyncHTTPClient:
        return H3AsyncHTTPClient(force_instance=True, defaults={"validate_cert": False})

    @gen_test
    async def test_alt_svc_moves_the_origin_to_http3(self) -> None:
        await self.started()
        first = await self.http_client.fetch(self.get_url("/info?q=1"))
        assert '"version": "HTTP/1.1"' in first.body.decode()
        assert first.headers["Alt-Svc"] == f'h3=":{self.get_http_port()}"; ma=86400'
        second = await self.http_client.fetch(self.get_url("/info?q=2"))
        assert '"version": "HTTP/3"' in second.body.decode()


class FallbackTest(AsyncHTTPSTestCase):
    """An advertised alternative that never answers: the request goes over TCP,
    and the alternative is not tried again for a while."""

    def setUp(self) -> None:
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        self.silent.setblocking(False)
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        self.silent.close()

    def get_app(self) -> Application:
        return make_app(alt_port=self.silent.getsockname()[1])

    def get_http_client(self) -> H3AsyncHTTPClient:
        return H3AsyncHTTPClient(
            force_instance=True, http3_handshake_timeout=0.3, defaults={"validate_cert": False}
        )

    def datagrams(self) -> int:
        count = 0
        while True:
            try:
                self.silent.recv(65536)
            except BlockingIOError:
                return count
            count += 1

    @gen_test
    async def test_a_failed_handshake_falls_back_to_tcp(self) -> None:
        first = await self.http_client.fetch(self.get_url("/advertise"))
        assert first.body == b"HTTP/1.1"
        assert self.datagrams() == 0
        second = await self.http_client.fetch(self.get_url("/advertise"))
        assert second.body == b"HTTP/1.1"
        assert self.datagrams() > 0  # the QUIC handshake was tried
        third = await self.http_client.fetch(self.get_url("/advertise"))
        assert third.body == b"HTTP/1.1"
        assert self.datagrams() == 0  # and not again


class _Wire(asyncio.DatagramTransport):
    """A client transport that keeps what is sent, for the test to carry."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[bytes] = []

    def sendto(self, data: Any, addr: Any = None) -> None:
        self.sent.append(bytes(data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 4433)}.get(name, default)


@only_on("aioquic", "the race is aioquic's wait_connected(), carried with aioquic's objects")
def test_a_handshake_completed_before_anyone_waits_is_seen() -> None:
    """aioquic's own wait_connected() misses a handshake that completed
    before it was called (a first connection then waited out its connect
    timeout, about one in three under uvloop)."""
    asyncio.run(_handshake_before_waiting())


async def _handshake_before_waiting() -> None:
    from aioquic.buffer import Buffer
    from aioquic.h3.connection import H3_ALPN
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection
    from aioquic.quic.packet import pull_quic_header

    from squall.simple_httpclient._h3 import _H3ClientProtocol

    server_config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    server_config.load_cert_chain(CERT, CERT.replace(".crt", ".key"))
    client_config = QuicConfiguration(is_client=True, alpn_protocols=list(H3_ALPN))
    client_config.verify_mode = ssl.CERT_NONE
    client = H3AsyncHTTPClient(force_instance=True, http3_prior_knowledge=True)
    try:
        proto = _H3ClientProtocol(QuicConnection(configuration=client_config), client, ("h3",))
        wire = _Wire()
        proto.connection_made(wire)
        proto.connect(("127.0.0.1", 4433))
        loop = asyncio.get_running_loop()
        first = pull_quic_header(Buffer(data=wire.sent[0]), host_cid_length=8)
        server = QuicConnection(
            configuration=server_config,
            original_destination_connection_id=first.destination_cid,
        )
        # The whole handshake, carried by hand with no turn of the loop in
        # between (as when the datagrams are read before the waiter runs).
        for _ in range(10):
            for data in wire.sent:
                server.receive_datagram(data, ("127.0.0.1", 50000), now=loop.time())
            wire.sent.clear()
            for data, _addr in server.datagrams_to_send(now=loop.time()):
                proto.datagram_received(data, ("127.0.0.1", 4433))
            proto.transmit()
            if proto.handshake.done():
                break
        await asyncio.wait_for(proto.handshake, HANG_GUARD)
    finally:
        client.close()


def test_parse_alt_svc() -> None:
    assert parse_alt_svc('h3=":443"') == [("h3", "", 443, 86400.0)]
    assert parse_alt_svc('h3-29=":8443"; ma=60, h3="alt.example:443"; ma=3600; persist=1') == [
        ("h3-29", "", 8443, 60.0),
        ("h3", "alt.example", 443, 3600.0),
    ]
    assert parse_alt_svc('h3="[::1]:9443"') == [("h3", "::1", 9443, 86400.0)]
    assert parse_alt_svc("clear") == []
    # An entry that cannot be read is skipped; a value with none readable is None.
    assert parse_alt_svc('h3=":99999", h3=":8443"') == [("h3", "", 8443, 86400.0)]
    assert parse_alt_svc("h3=:443") is None
    assert parse_alt_svc("") is None


def test_a_body_that_disagrees_with_its_content_length_fails_that_fetch_alone() -> None:
    """RFC 9114 section 4.1.2: a response whose body does not add up to its
    Content-Length is malformed. aioquic's stack checked it only when a
    DATA frame ended the stream, and the fetch failed as an "invalid
    response head"; qh3's took it as it came."""
    asyncio.run(asyncio.wait_for(_lengths_that_lie(), HANG_GUARD))


async def _lengths_that_lie() -> None:
    from aioquic.asyncio import QuicConnectionProtocol, serve
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    answers = {b"/short": (b"9", b"abc"), b"/long": (b"2", b"abcdef"), b"/fine": (b"3", b"abc")}

    class Lying(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)

        def quic_event_received(self, event: Any) -> None:
            for h3_event in self.h3.handle_event(event):
                if isinstance(h3_event, HeadersReceived):
                    declared, body = answers[dict(h3_event.headers)[b":path"]]
                    head = [(b":status", b"200"), (b"content-length", declared)]
                    self.h3.send_headers(h3_event.stream_id, head)
                    self.h3.send_data(h3_event.stream_id, body, end_stream=True)
            self.transmit()

    config = QuicConfiguration(is_client=False, alpn_protocols=list(H3_ALPN))
    config.load_cert_chain(CERT, CERT.replace(".crt", ".key"))
    server = await serve("127.0.0.1", 0, configuration=config, create_protocol=Lying)
    port = server._transport.get_extra_info("sockname")[1]
    client = H3AsyncHTTPClient(
        force_instance=True, http3_prior_knowledge=True, defaults={"validate_cert": False}
    )
    try:
        url = f"https://127.0.0.1:{port}"
        with pytest.raises(HTTPStreamClosedError) as short:
            await client.fetch(url + "/short")
        assert str(short.value) == (
            "HTTP/3 response: 3 bytes of body in all where Content-Length is 9"
        )
        with pytest.raises(HTTPStreamClosedError) as long:
            await client.fetch(url + "/long")
        assert str(long.value) == (
            "HTTP/3 response: 6 bytes of body so far where Content-Length is 2"
        )
        (conn,) = client._h2_conns.values()
        # The connection serves on.
        assert (await client.fetch(url + "/fine")).body == b"abc"
        assert list(client._h2_conns.values()) == [conn]
    finally:
        client.close()
        server.close()
