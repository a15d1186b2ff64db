"""``squall run --http3``: workers serving HTTP/3, the access log, and the errors."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

import pytest

from squall.cli._options import Config, UsageError, parse_config
from squall.cli._target import serve_target
from squall.cli._worker import build_server
from tests._paths import CERTS
from tests.cli import sample_apps
from tests.cli._proc import Squall

from .._wait import HANG_GUARD
from ._stack import STACK

CERT, KEY = str(CERTS / "test.crt"), str(CERTS / "test.key")


def test_http3_needs_a_certificate() -> None:
    with pytest.raises(UsageError, match="--http3 needs --certfile"):
        parse_config(["m:app", "--http3"])


def test_flood_limits_reach_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
    monkeypatch.setenv("SQUALL_HTTP3_MAX_HALF_OPEN", "500")
    args = ["t:app", "--http3", "--certfile", CERT, "--keyfile", KEY]
    config = parse_config([*args, "--http3-retry-threshold", "0"])
    assert (config.http3_retry_threshold, config.http3_max_half_open) == (0, 500)
    served = serve_target(sample_apps.make_app(), "t:app", config.root_path)
    server, _ = build_server(config, served)
    assert server._h3_limits["retry_threshold"] == 0
    assert server._h3_limits["max_half_open"] == 500
    with pytest.raises(SystemExit):
        parse_config([*args, "--http3-max-half-open", "-1"])


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if no QUIC stack were installed (their submodules too, if loaded).
    for stack in ("aioquic", "qh3"):
        for name in [m for m in sys.modules if m == stack or m.startswith(f"{stack}.")]:
            monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.setitem(sys.modules, stack, None)
    monkeypatch.delitem(sys.modules, "squall._quicstack", raising=False)
    monkeypatch.delitem(sys.modules, "squall.httpserver._h3protocol", raising=False)
    monkeypatch.delitem(sys.modules, "squall.httpserver._h3setup", raising=False)
    config = Config(target="t:app", certfile=CERT, keyfile=KEY, http3=True)
    served = serve_target(sample_apps.make_app(), "t:app", config.root_path)
    with pytest.raises(
        UsageError, match=r"--http3: HTTP/3 needs a QUIC stack: pip install 'squall\[http3\]'"
    ):
        build_server(config, served)


def test_workers_serve_http3_and_log_it() -> None:
    pytest.importorskip("aioquic", reason="aioquic (the tests' QUIC peer) is not installed")
    from ._client import h3_client

    with Squall(
        "sample_apps:app",
        "--bind",
        "127.0.0.1:0",
        "--certfile",
        CERT,
        "--keyfile",
        KEY,
        "--http3",
        "--workers",
        "2",
    ) as squall:
        _, port = squall.address()
        # The stack is named at start (SQUALL_QUIC, if set, reaches the server too).
        squall.expect(rf"HTTP/3 on {STACK} ")
        squall.expect("Worker .* serving")
        squall.expect("Worker .* serving")

        async def fetch() -> Any:
            async with h3_client(port) as client:
                return await client.fetch("/")

        r = asyncio.run(asyncio.wait_for(fetch(), HANG_GUARD))
        assert r.status == 200
        assert json.loads(r.body)["protocol"] == "https"
        squall.expect(r'"GET / HTTP/3" 200')
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
        # aioquic's per-connection INFO lines are kept out of the server's log.
        assert not [line for line in squall.seen if "Negotiated protocol" in line]


def test_webtransport_limits_are_checked_and_reach_the_asgi_delegate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from squall.cli._options import webtransport_limits

    config = parse_config(["t:app", "--wt-max-streams", "3", "--wt-max-stream-buffer", "4096"])
    limits = webtransport_limits(config)
    assert limits == {"wt_max_streams": 3, "wt_max_stream_buffer": 4096}
    served = serve_target(sample_apps.asgi_app, "t:app", webtransport=limits)
    delegate = served.callback
    assert (delegate.wt_max_streams, delegate.wt_max_stream_buffer) == (3, 4096)
    assert (delegate.wt_max_sessions, delegate.wt_max_datagram_size) == (8, 1200)  # defaults
    for bad in (["--wt-max-sessions", "0"], ["--wt-max-streams", "many"]):
        with pytest.raises(SystemExit):
            parse_config(["t:app", *bad])
    with pytest.raises(UsageError, match=r"--wt-max-datagram-size 70000: at most 65536"):
        parse_config(["t:app", "--wt-max-datagram-size", "70000"])
    monkeypatch.setenv("SQUALL_WT_MAX_SESSIONS", "0")
    with pytest.raises(UsageError, match=r"--wt-max-sessions 0: must be at least 1"):
        parse_config(["t:app"])
    monkeypatch.setenv("SQUALL_WT_MAX_SESSIONS", "2")
    assert webtransport_limits(parse_config(["t:app"])) == {"wt_max_sessions": 2}
