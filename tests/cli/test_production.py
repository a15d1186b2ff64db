"""Production options in-process: JSON access log, request ids, log config, env file, TLS."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from squall.cli._logging import AccessHandler, apply_log_config
from squall.cli._options import UsageError, parse_config, read_env_file
from squall.cli._reload import Watcher

from . import sample_apps
from .test_serving import CERTS, fetch, run, start

HOSTILE_AGENTS = [
    'evil" "injected": "1',
    "line\nbreak\r\nX-Fake: 1",
    "back\\slash \\u0000 and \x00 nul",
    "unicode \u2028 \u00e9 \U0001f600",
    '} {"status": 200',
]
# A raw non-ASCII byte in a request target is refused (400) before any log.
HOSTILE_PATHS = ["/%22%7D%0A", '/a"b', "/x?q=%00&r=\\", "/%C3%A9<script>", "/"]


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "squall.access"]


@pytest.mark.parametrize("kind", ["squall", "asgi", "wsgi"])
def test_json_access_log_survives_hostile_agents_and_paths(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    target: Any = {
        "squall": sample_apps.make_app(),
        "asgi": sample_apps.asgi_app,
        "wsgi": sample_apps.wsgi_app,
    }[kind]

    async def body() -> None:
        server, port = start(target, access_log_format="json")
        with caplog.at_level(logging.INFO, logger="squall.access"):
            for agent, path in zip(HOSTILE_AGENTS, HOSTILE_PATHS, strict=True):
                # A header value cannot carry CR/LF on the wire: send what can.
                wire_agent = agent.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
                # (sent as UTF-8 bytes, which the server reads as ISO-8859-1).
                await fetch(port, path, f"User-Agent: {wire_agent}\r\nReferer: \"'<>\r\n")
        lines = _access_lines(caplog)
        assert len(lines) == len(HOSTILE_AGENTS)
        for line, agent, path in zip(lines, HOSTILE_AGENTS, HOSTILE_PATHS, strict=True):
            assert "\n" not in line and "\r" not in line
            record = json.loads(line)
            assert record["target"] == path
            assert record["method"] == "GET"
            assert isinstance(record["status"], int) and record["status"] in (200, 404)
            assert record["referer"] == "\"'<>"
            sent = agent.replace("\r", " ").replace("\n", " ").replace("\x00", " ")
            assert record["user_agent"] == sent.encode("utf-8").decode("latin-1")
            # Milliseconds with three decimals at most.
            assert record["duration_ms"] == round(record["duration_ms"], 3)
            assert record["pid"] == os.getpid()
        server.stop()

    run(body)


def test_text_format_rounds_durations_and_adds_no_prefix(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        server, port = start(sample_apps.make_app(), access_log_format="{duration_ms}|{status}")
        with caplog.at_level(logging.INFO, logger="squall.access"):
            await fetch(port, "/")
        (line,) = _access_lines(caplog)
        duration, status = line.split("|")
        assert status == "200"
        assert len(duration.partition(".")[2]) <= 3
        server.stop()

    run(body)


def test_access_handler_writes_each_loop_turn_in_order_and_whole_lines(tmp_path: Path) -> None:
    out = tmp_path / "access.log"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    handler = AccessHandler(fd)
    logger = logging.getLogger("squall.test_access_handler")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        # Outside a loop: written at once.
        logger.warning("first")
        assert out.read_text() == "first\n"

        async def body() -> None:
            logger.warning("second")
            logger.warning("x" * 5000)  # longer than a pipe's atomic write
            assert out.read_text() == "first\n"  # not yet: at the end of this turn
            await asyncio.sleep(0)
            assert out.read_text() == "first\nsecond\n" + "x" * 5000 + "\n"

        asyncio.run(body())
    finally:
        logger.removeHandler(handler)
        os.close(fd)


def test_request_id_generated_kept_from_trusted_proxy_and_replaced_otherwise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        server, port = start(
            sample_apps.make_app(),
            request_id=True,
            access_log_format="{request_id}",
        )
        with caplog.at_level(logging.INFO, logger="squall.access"):
            # 127.0.0.1 is the default trusted proxy.
            _, fields, _ = await fetch(port, "/", "X-Request-ID: from-the-proxy-42\r\n")
            assert fields["x-request-id"] == "from-the-proxy-42"
            _, fields, _ = await fetch(port, "/")
            generated = fields["x-request-id"]
            assert len(generated) == 32 and int(generated, 16) >= 0
            _, fields, _ = await fetch(port, "/", "X-Request-ID: bad id with spaces\r\n")
            assert fields["x-request-id"] != "bad id with spaces"
        assert _access_lines(caplog)[:2] == ["from-the-proxy-42", generated]
        server.stop()
        # From a peer that is not trusted, the client's own id is replaced.
        server, port = start(
            sample_apps.make_app(), request_id=True, forwarded_allow_ips=["10.9.9.9"]
        )
        _, fields, _ = await fetch(port, "/", "X-Request-ID: forged\r\n")
        assert fields["x-request-id"] != "forged" and len(fields["x-request-id"]) == 32
        server.stop()
        # Without proxy headers, and with the exchange followed (a limit): one id each.
        server, port = start(
            sample_apps.make_app(), request_id=True, proxy_headers=False, limit_concurrency=5
        )
        _, fields, _ = await fetch(port, "/")
        _, again, _ = await fetch(port, "/")
        assert len(fields["x-request-id"]) == 32 and fields["x-request-id"] != again["x-request-id"]
        server.stop()

    run(body)


def test_request_id_for_asgi(caplog: pytest.LogCaptureFixture) -> None:
    async def body() -> None:
        server, port = start(sample_apps.asgi_app, request_id=True, access_log_format="json")
        with caplog.at_level(logging.INFO, logger="squall.access"):
            _, fields, _ = await fetch(port, "/")
        assert json.loads(_access_lines(caplog)[0])["request_id"] == fields["x-request-id"]
        server.stop()

    run(body)


def test_log_config_json_ini_and_yaml(tmp_path: Path) -> None:
    out = tmp_path / "out.log"
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    target = logging.getLogger("squall.test_log_config")
    try:
        for name, text in [
            (
                "c.json",
                json.dumps(
                    {
                        "version": 1,
                        "formatters": {"f": {"format": "J %(message)s"}},
                        "handlers": {
                            "h": {
                                "class": "logging.FileHandler",
                                "filename": str(out),
                                "formatter": "f",
                            }
                        },
                        "loggers": {"squall.test_log_config": {"handlers": ["h"], "level": "INFO"}},
                    }
                ),
            ),
            (
                "c.ini",
                "[loggers]\nkeys=root,t\n[handlers]\nkeys=h\n[formatters]\nkeys=f\n"
                "[logger_root]\nhandlers=\n"
                "[logger_t]\nqualname=squall.test_log_config\nhandlers=h\nlevel=INFO\n"
                f"[handler_h]\nclass=FileHandler\nargs=({str(out)!r},)\nformatter=f\n"
                "[formatter_f]\nformat=I %(message)s\n",
            ),
        ]:
            path = tmp_path / name
            path.write_text(text)
            apply_log_config(str(path))
            target.info("hello")
            for handler in target.handlers:
                handler.close()
            target.handlers.clear()
        assert out.read_text().splitlines() == ["J hello", "I hello"]
        yaml_path = tmp_path / "c.yaml"
        yaml_path.write_text(
            "version: 1\nloggers:\n  squall.test_log_config:\n    level: WARNING\n"
        )
        try:
            import yaml  # type: ignore[import-untyped,unused-ignore]  # noqa: F401
        except ImportError:
            with pytest.raises(UsageError, match="YAML needs PyYAML"):
                apply_log_config(str(yaml_path))
        else:
            apply_log_config(str(yaml_path))
            assert target.level == logging.WARNING
        bad = tmp_path / "bad.json"
        bad.write_text('{"version": 1, "handlers": {"h": {"class": "no.such.Class"}}}')
        with pytest.raises(UsageError, match="--log-config .*bad.json"):
            apply_log_config(str(bad))
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        target.setLevel(logging.NOTSET)


def test_env_file_fills_the_environment_without_overriding(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(
        "# comment\nexport SQUALL_WORKERS=3\nAPP_SECRET='s3 cr#t'\nQUOTED=\"a\\nb\"\n"
        "PLAIN=x # trailing comment\nSQUALL_LOG_LEVEL=debug\n"
    )
    assert read_env_file(str(path)) == {
        "SQUALL_WORKERS": "3",
        "APP_SECRET": "s3 cr#t",
        "QUOTED": "a\nb",
        "PLAIN": "x",
        "SQUALL_LOG_LEVEL": "debug",
    }
    config = parse_config(
        ["m:app", "--env-file", str(path)], environ={"SQUALL_LOG_LEVEL": "warning"}
    )
    assert config.workers == 3 and config.log_level == "warning"
    path.write_text("NOT A LINE\n")
    with pytest.raises(UsageError, match="line 1: expected KEY=VALUE"):
        read_env_file(str(path))
    with pytest.raises(UsageError, match="--env-file"):
        read_env_file(str(tmp_path / "missing"))


def test_uvicorn_and_gunicorn_spellings_are_aliases() -> None:
    config = parse_config(
        [
            "m:app",
            "--uds",
            "/tmp/x.sock",
            "--fd",
            "7",
            "--ssl-certfile",
            "c.pem",
            "--ssl-keyfile",
            "k.pem",
            "--limit-max-requests",
            "100",
            "--limit-max-requests-jitter",
            "5",
            "--timeout",
            "12",
            "--graceful-timeout",
            "9",
            "--keep-alive",
            "4",
            "--ssl-cert-reqs",
            "2",
            "--ssl-ca-certs",
            "ca.pem",
        ],
        environ={"WEB_CONCURRENCY": "4", "FORWARDED_ALLOW_IPS": "10.0.0.1,10.0.0.2"},
    )
    assert config.bind == ["unix:/tmp/x.sock", "fd://7"]
    assert (config.certfile, config.keyfile) == ("c.pem", "k.pem")
    assert (config.max_requests, config.max_requests_jitter) == (100, 5)
    assert config.timeout_worker_healthcheck == 12
    assert config.timeout_graceful_shutdown == 9
    assert config.timeout_keep_alive == 4
    assert config.ssl_cert_reqs == "required"
    assert config.workers == 4
    assert config.forwarded_allow_ips == ["10.0.0.1", "10.0.0.2"]


def test_option_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_config(["m:app", "--work", "2"], environ={})  # no abbreviations
    assert "unrecognized arguments: --work" in capsys.readouterr().err
    with pytest.raises(UsageError, match="needs --ssl-ca-certs"):
        parse_config(
            ["m:app", "--certfile", "c", "--keyfile", "k", "--ssl-cert-reqs", "required"],
            environ={},
        )
    with pytest.raises(UsageError, match="need --certfile"):
        parse_config(["m:app", "--ssl-ciphers", "HIGH"], environ={})
    with pytest.raises(UsageError, match="--lifespan 'sometimes'"):
        parse_config(["m:app"], environ={"SQUALL_LIFESPAN": "sometimes"})
    with pytest.raises(UsageError, match="--log-config 'nope.json': no such file"):
        parse_config(["m:app", "--log-config", "nope.json"], environ={})


def test_reload_include_and_exclude(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "build").mkdir()
    watcher = Watcher([str(tmp_path)], includes=["*.jinja"], excludes=["build", "skip_*.py"])
    assert watcher.changed() is None
    for name in ["templates/page.jinja", "build/gen.py", "skip_me.py", "notes.txt"]:
        (tmp_path / name).write_text("x")
        assert watcher.changed() == (
            os.path.relpath(tmp_path / name) if name == "templates/page.jinja" else None
        ), name
    (tmp_path / "app.py").write_text("x")
    assert watcher.changed() == os.path.relpath(tmp_path / "app.py")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a client certificate it signed, and the server key encrypted with a password."""
    if subprocess.run(["which", "openssl"], capture_output=True).returncode != 0:
        pytest.skip("needs the openssl command (apt-get install openssl)")
    d = tmp_path_factory.mktemp("pki")
    subj = ("-subj",)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        *subj,
        "/CN=test ca",
        # Python 3.13's default contexts verify strictly (VERIFY_X509_STRICT):
        # a CA must say it signs certificates.
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "client.key",
        "-out",
        "client.csr",
        *subj,
        "/CN=client",
        cwd=d,
    )
    # And a certificate it signed names its issuer's key and its use.
    (d / "client.ext").write_text(
        "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n"
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\n"
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        "client.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "client.crt",
        "-days",
        "2",
        "-extfile",
        "client.ext",
        cwd=d,
    )
    _openssl(
        "pkey",
        "-in",
        str(CERTS / "test.key"),
        "-out",
        "server.key",
        "-aes256",
        "-passout",
        "pass:sesame",
        cwd=d,
    )
    return d


def test_mutual_tls_with_an_encrypted_key_and_ciphers(pki: Path) -> None:
    options: dict[str, Any] = {
        "certfile": str(CERTS / "test.crt"),
        "keyfile": str(pki / "server.key"),
        "ssl_keyfile_password": "sesame",
        "ssl_ca_certs": str(pki / "ca.crt"),
        "ssl_cert_reqs": "required",
        "ssl_ciphers": "ECDHE+AESGCM",
    }

    def client(with_cert: bool) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        if with_cert:
            context.load_cert_chain(pki / "client.crt", pki / "client.key")
        return context

    async def request(port: int, context: ssl.SSLContext) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        try:
            return await reader.read()
        finally:
            writer.close()

    async def body() -> None:
        server, port = start(sample_apps.make_app(), **options)
        assert (await request(port, client(True))).startswith(b"HTTP/1.1 200")
        try:
            data = await request(port, client(False))
        except (ssl.SSLError, ConnectionError):
            # TLS 1.3: the refusal may come after the handshake, as an alert
            # or as the end of the stream (no answer either way).
            data = b""
        assert not data.startswith(b"HTTP")
        server.stop()
        await server.close_all_connections()

    run(body)
    with pytest.raises(UsageError, match="cannot load"):
        start(sample_apps.make_app(), **{**options, "ssl_keyfile_password": "wrong"})
    with pytest.raises(UsageError, match="--ssl-ciphers 'NOPE'"):
        start(sample_apps.make_app(), **{**options, "ssl_ciphers": "NOPE"})


def test_opentelemetry_spans_for_squall_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    trace_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from squall import compat
    from squall.cli._otel import instrument_squall

    monkeypatch.setenv("SQUALL_TORNADO_ALIAS", "1")  # restored afterwards
    aliased_before = compat.installed()
    exporter = InMemorySpanExporter()
    provider = trace_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        # The instrumentation imports tornado: Squall's, through the alias.
        # Without the dependency check instrument_squall skips, it refuses
        # (no distribution named tornado is installed).
        try:
            instrument_squall(provider)
        except UsageError as exc:
            pytest.skip(str(exc))
        from opentelemetry.instrumentation.tornado import TornadoInstrumentor

        async def body() -> None:
            server, port = start(sample_apps.make_app())
            status, _, _ = await fetch(port, "/items/7", "User-Agent: probe\r\n")
            assert status == 200
            server.stop()

        try:
            run(body)
        finally:
            TornadoInstrumentor().uninstrument()
    finally:
        if not aliased_before:
            compat.uninstall()
    (span,) = exporter.get_finished_spans()
    assert span.kind.name == "SERVER"
    assert span.attributes is not None
    assert span.attributes["http.status_code"] == 200
    assert span.attributes["http.target"] == "/items/7"
    assert str(span.attributes["tornado.handler"]).endswith("sample_apps.Item")


def test_opentelemetry_spans_for_asgi_requests() -> None:
    trace_sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="needs opentelemetry-sdk")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from squall.cli._otel import wrap_asgi
    from squall.cli._target import serve_target
    from squall.cli._worker import build_server
    from squall.testing import bind_unused_port

    try:
        wrap_asgi(sample_apps.asgi_app)
    except UsageError as exc:
        pytest.skip(str(exc))
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    exporter = InMemorySpanExporter()
    provider = trace_sdk.TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def traced(app: Any) -> Any:
        assert isinstance(wrap_asgi(app), OpenTelemetryMiddleware)
        return OpenTelemetryMiddleware(app, tracer_provider=provider)

    async def body() -> None:
        from squall.cli._options import Config

        config = Config(target="t:app")
        served = serve_target(sample_apps.asgi_app, "t:app", asgi_wrapper=traced)
        server, _ = build_server(config, served)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        status, _, data = await fetch(port, "/traced")
        assert (status, data) == (200, b"asgi /traced root=")
        server.stop()

    run(body)
    server_spans = [s for s in exporter.get_finished_spans() if s.kind.name == "SERVER"]
    assert len(server_spans) == 1
    assert server_spans[0].attributes is not None
    assert server_spans[0].attributes["http.status_code"] == 200


def test_env_file_reaches_os_environ_for_the_application(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".env"
    path.write_text("SQUALL_TEST_SECRET=from-the-file\nSQUALL_TEST_KEPT=from-the-file\n")
    # Registered with monkeypatch, so that both are as before afterwards.
    monkeypatch.setenv("SQUALL_TEST_SECRET", "")
    monkeypatch.delenv("SQUALL_TEST_SECRET")
    monkeypatch.setenv("SQUALL_TEST_KEPT", "already set")
    parse_config(["m:app", "--env-file", str(path)])
    assert os.environ["SQUALL_TEST_SECRET"] == "from-the-file"
    assert os.environ["SQUALL_TEST_KEPT"] == "already set"


def test_websocket_options_become_application_settings() -> None:
    from squall.cli._options import Config
    from squall.cli._target import serve_target
    from squall.cli._worker import build_server

    app = sample_apps.make_app()
    config = Config(target="t:app", ws_max_size=1024, ws_ping_interval=0, ws_ping_timeout=7.5)
    server, _ = build_server(config, serve_target(app, "t:app"))
    assert app.settings["websocket_max_message_size"] == 1024
    assert app.settings["websocket_ping_interval"] is None  # 0: no pings
    assert app.settings["websocket_ping_timeout"] == 7.5
    asgi = serve_target(
        sample_apps.asgi_app, "t:app", ws_max_size=2048, ws_ping_interval=5.0, lifespan="off"
    )
    assert asgi.callback.ws_max_message_size == 2048
    assert asgi.callback.ws_ping_interval == 5.0
    assert asgi.callback.lifespan.mode == "off"
