"""Requests through a real proxy process: absolute-form for http URLs, a
CONNECT tunnel then TLS for https URLs, basic Proxy-Authorization."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from typing import Any, Optional

from squall.simple_httpclient import SimpleAsyncHTTPClient
from squall.testing import AsyncTestCase, gen_test
from tests._paths import CERTS
from tests._wait import HANG_GUARD
from tests.client._server import MiniServer, Reply

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def start_proxy(credentials: Optional[str] = None) -> tuple[subprocess.Popen[str], int]:
    args = [sys.executable, "-m", "tests.client._proxy"] + ([credentials] if credentials else [])
    proc = subprocess.Popen(
        args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def stop_proxy(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    lines = proc.stdout.read().splitlines()
    proc.wait(timeout=HANG_GUARD)
    proc.stdout.close()
    return lines


class ProxyTest(AsyncTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.client = SimpleAsyncHTTPClient(force_instance=True)

    def tearDown(self) -> None:
        self.client.close()
        # Let the closed connections' transports finish closing.
        self.io_loop.run_sync(lambda: asyncio.sleep(0))
        super().tearDown()

    async def origin(self, tls: bool = False) -> MiniServer:
        ctx = None
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(os.path.join(CERTS, "test.crt"), os.path.join(CERTS, "test.key"))
        return await MiniServer(
            lambda r, b: Reply(200, body=f"{r.method} {r.target} {b.decode()}".encode()), ssl=ctx
        ).start()

    def via(self, port: int, **extra: Any) -> dict[str, Any]:
        return dict(proxy_host="127.0.0.1", proxy_port=port, **extra)

    @gen_test
    async def test_http_through_proxy_absolute_form(self) -> None:
        origin = await self.origin()
        proc, port = start_proxy()
        try:
            for path in ("/a", "/b?x=1"):
                response = await self.client.fetch(origin.url(path), **self.via(port))
                self.assertEqual(response.body, f"GET {path} ".encode())
            response = await self.client.fetch(
                origin.url("/p"), method="POST", body="hi", **self.via(port)
            )
            self.assertEqual(response.body, b"POST /p hi")
        finally:
            lines = stop_proxy(proc)
            await origin.stop()
        self.assertEqual(
            lines,
            [f"GET {origin.url('/a')}", f"GET {origin.url('/b?x=1')}", f"POST {origin.url('/p')}"],
        )
        # One connection to the proxy served all three requests.
        self.assertEqual(len(self.client.pool), 1)

    @gen_test
    async def test_https_through_connect_tunnel_with_auth(self) -> None:
        origin = await self.origin(tls=True)
        proc, port = start_proxy("user:secret")
        try:
            for _ in range(2):
                response = await self.client.fetch(
                    origin.url("/s", "https"),
                    validate_cert=False,
                    **self.via(port, proxy_username="user", proxy_password="secret"),
                )
                self.assertEqual(response.body, b"GET /s ")
            with self.assertRaisesRegex(Exception, "407"):
                await self.client.fetch(
                    origin.url("/s", "https"),
                    validate_cert=False,
                    **self.via(port, proxy_username="user", proxy_password="wrong"),
                )
        finally:
            lines = stop_proxy(proc)
            await origin.stop()
        # The tunnel was opened once and reused for the second request.
        self.assertEqual(lines[0], f"CONNECT 127.0.0.1:{origin.port}")
        self.assertEqual(lines.count(f"CONNECT 127.0.0.1:{origin.port}"), 1)
        self.assertEqual(origin.accepted, 1)

    @gen_test
    async def test_unsupported_proxy_auth_mode(self) -> None:
        with self.assertRaisesRegex(ValueError, "proxy_auth_mode"):
            await self.client.fetch(
                "http://127.0.0.1:1/",
                **self.via(1, proxy_username="u", proxy_password="p", proxy_auth_mode="digest"),
            )
