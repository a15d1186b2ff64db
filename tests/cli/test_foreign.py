"""uvicorn's and gunicorn's spellings: each is mapped, or taken with a note."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

import pytest

import squall.cli
from squall.cli import h2c_note
from squall.cli._options import Config, UsageError, build_parser, parse_config
from squall.cli._target import ASGI2Adapter, serve_target
from squall.cli._worker import build_server, run_worker, warn_process_local_pubsub
from squall.pubsub import LocalPubSub
from squall.testing import ExpectLog, bind_unused_port
from squall.web import Application

from . import sample_apps
from .test_serving import fetch, run, start


@pytest.mark.parametrize(
    ("argv", "note"),
    [
        (["--http", "httptools"], "--http httptools: ignored, Squall parses HTTP/1.1 itself"),
        (["--http", "h11"], "--http h11: ignored"),
        (["--ws", "websockets"], "--ws websockets: ignored"),
        (["--ws", "wsproto"], "--ws wsproto: ignored"),
        (["--use-colors"], "--use-colors: ignored"),
        (["--no-use-colors"], "--use-colors: ignored"),
        (["--interface", "asgi3"], "--interface asgi3: ignored"),
        (["--interface", "wsgi"], "--interface wsgi: ignored"),
        (["-k", "uvicorn.workers.UvicornWorker"], "--worker-class uvicorn.workers.UvicornWorker"),
        (["--worker-class", "gthread"], "--worker-class gthread: ignored"),
        (["--preload"], "--preload: ignored"),
        (["--loop", "none"], "--loop none:"),
    ],
)
def test_options_with_no_meaning_here_are_taken_with_a_note(argv: list[str], note: str) -> None:
    config = parse_config(["m:app", *argv], environ={})
    assert len(config.notes) == 1 and config.notes[0].startswith(note), config.notes
    assert not config.http2  # "--http ..." is uvicorn's option, not an abbreviation


@pytest.mark.parametrize("argv", [[], ["--http", "auto"], ["--ws", "auto"], ["--loop", "auto"]])
def test_the_defaults_say_nothing(argv: list[str]) -> None:
    assert parse_config(["m:app", *argv], environ={}).notes == []


def test_the_notes_are_logged_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[Config] = []
    monkeypatch.setattr(squall.cli, "run", lambda config: ran.append(config) or 0)
    monkeypatch.setattr(squall.cli, "tornado_alias", lambda: None)
    # main() would set the process's logging up for good (handlers on
    # squall.access that later tests' records would go to instead).
    monkeypatch.setattr(squall.cli, "_setup_logging", lambda *args: None)
    with ExpectLog("squall.general", "--preload: ignored", level=logging.INFO):
        assert squall.cli.main(["run", "m:app", "--preload"]) == 0
    assert ran[0].notes == ["--preload: ignored, each worker imports TARGET itself"]


@pytest.mark.parametrize("loop", ["asyncio", "uvloop", "auto"])
def test_loop_chooses_the_event_loop(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop", reason="uvloop (the speedups extra) is not installed")
    config = parse_config(["m:app", "--loop", loop], environ={})
    assert config.loop == loop

    async def serve(*args: Any) -> int:
        return 1 if type(asyncio.get_running_loop()).__module__.startswith("uvloop") else 0

    monkeypatch.setattr("squall.cli._worker.serve", serve)
    on_uvloop = run_worker(config, [])
    if loop == "asyncio":
        assert on_uvloop == 0
    elif loop == "uvloop":
        assert on_uvloop == 1


def test_loop_uvloop_without_uvloop_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    with pytest.raises(UsageError, match="uvloop is not installed"):
        parse_config(["m:app", "--loop", "uvloop"], environ={})


def test_access_logfile_dash_is_the_access_log_and_a_file_is_refused() -> None:
    assert parse_config(["m:app", "--access-logfile", "-"], environ={}).access_log is True
    with pytest.raises(UsageError, match="--log-config"):
        parse_config(["m:app", "--access-logfile", "/var/log/access.log"], environ={})


def test_uvicorn_and_gunicorn_environments() -> None:
    env = {"UVICORN_PORT": "9001", "UVICORN_HOST": "0.0.0.0", "UVICORN_WORKERS": "3"}
    config = parse_config(["m:app"], environ=env)
    assert (config.bind, config.workers) == (["0.0.0.0:9001"], 3)
    # Ours win over uvicorn's; the command line over both.
    env["SQUALL_PORT"] = "9002"
    assert parse_config(["m:app"], environ=env).bind == ["0.0.0.0:9002"]
    assert parse_config(["m:app", "--port", "9003"], environ=env).bind == ["0.0.0.0:9003"]
    env = {"UVICORN_APP": "m:app", "UVICORN_SSL_CERTFILE": "c.pem", "UVICORN_SSL_KEYFILE": "k"}
    env["UVICORN_LIMIT_MAX_REQUESTS"] = "7"
    config = parse_config([], environ=env)
    assert (config.target, config.certfile, config.max_requests) == ("m:app", "c.pem", 7)
    env = {"GUNICORN_CMD_ARGS": "--workers=2 --bind 127.0.0.1:9004 --preload"}
    config = parse_config(["m:app", "--workers", "4"], environ=env)
    assert (config.workers, config.bind) == (4, ["127.0.0.1:9004"])
    assert config.notes == ["--preload: ignored, each worker imports TARGET itself"]


def test_header_needs_a_name_and_a_value() -> None:
    config = parse_config(["m:app", "--header", "X-A: 1", "--header", "X-B:two"], environ={})
    assert config.headers == ["X-A:1", "X-B:two"]
    assert parse_config(["m:app"], environ={"SQUALL_HEADERS": "X-A:1,X-B:2"}).headers == [
        "X-A:1",
        "X-B:2",
    ]
    for bad in ("no-colon", ":empty", "X A:1"):
        with pytest.raises(UsageError, match="expected NAME:VALUE"):
            parse_config(["m:app", "--header", bad], environ={})


@pytest.mark.parametrize(
    ("target", "path", "server"),
    [
        (sample_apps.make_app(), "/", "SquallServer/"),
        (sample_apps.asgi_app, "/a", None),
        (sample_apps.wsgi_app, "/w", "SquallServer/"),
    ],
    ids=["application", "asgi", "wsgi"],
)
def test_header_and_no_server_header_reach_every_kind_of_app(
    target: Any, path: str, server: str | None
) -> None:
    async def body() -> None:
        plain, port = start(target)
        _, fields, _ = await fetch(port, path)
        plain.stop()
        if server is not None:
            assert fields["server"].startswith(server)
        assert "x-frame-options" not in fields
        edited, port = start(
            target, headers=["X-Frame-Options:DENY", "X-Team:a b"], server_header=False
        )
        status, fields, _ = await fetch(port, path)
        edited.stop()
        assert status == 200
        assert (fields["x-frame-options"], fields["x-team"]) == ("DENY", "a b")
        assert "server" not in fields

    run(body)


def test_a_process_local_pubsub_under_workers_is_warned_once() -> None:
    app = Application(pubsub=LocalPubSub())
    with ExpectLog("squall.general", r"settings\['pubsub'\] is a process-local pub/sub"):
        assert warn_process_local_pubsub(app, 2)
    assert not warn_process_local_pubsub(Application(), 2)
    assert not warn_process_local_pubsub(sample_apps.asgi_app, 2)


def test_why_curl_http2_gets_http_1_1_is_said() -> None:
    note = h2c_note(Config(target="m:app", http2=True))
    assert "curl --http2-prior-knowledge" in note and "--h2c-upgrade" in note
    assert h2c_note(Config(target="m:app", http2=True, proxy_headers=False)) == ""
    assert h2c_note(Config(target="m:app", http2=True, h2c_upgrade=True)) == ""
    assert h2c_note(Config(target="m:app", http2=True, certfile="c", keyfile="k")) == ""
    assert h2c_note(Config(target="m:app")) == ""
    helped = " ".join(build_parser().format_help().split())
    assert "So `curl --http2` (which upgrades) gets HTTP/1.1 by default" in helped


def test_the_resume_examples_under_workers_warn_once_and_read_pubsub_url() -> None:
    from ._proc import Squall

    examples = Path(__file__).resolve().parents[2] / "docs" / "examples"
    args = ("resume_sse:make_app", "--bind", "127.0.0.1:0", "--workers", "2")
    with Squall(*args, cwd=examples, env={"PUBSUB_URL": "memory://"}) as squall:
        for _ in range(2):
            squall.expect(r"Worker \d+ ready", timeout=60)
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    warned = [line for line in squall.seen if "process-local pub/sub" in line]
    assert len(warned) == 1, squall.seen


@pytest.mark.parametrize("name", ["resume_sse", "resume_websocket", "resume_poll"])
def test_the_resume_examples_make_app_reads_pubsub_url(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # squall run calls make_app() with no argument: the broker comes from
    # the environment, as the examples' own main() takes it.
    import squall.pubsub
    from tests.test_docs import load

    asked: list[str] = []
    monkeypatch.setattr(squall.pubsub, "connect", lambda url, **kw: asked.append(url))
    monkeypatch.setenv("PUBSUB_URL", "redis://broker.example:6379/0")
    load(name).make_app()
    monkeypatch.delenv("PUBSUB_URL")
    load(name).make_app()
    assert asked == ["redis://broker.example:6379/0", "memory://"]


def test_the_startup_line_says_how_to_get_http2_on_a_plain_port() -> None:
    from ._proc import Squall

    with Squall("sample_apps:app", "--bind", "127.0.0.1:0", "--http2", "--ws", "wsproto") as squall:
        squall.expect(r"--ws wsproto: ignored", timeout=60)
        squall.expect(r"Listening on http://127\.0\.0\.1:\d+", timeout=60)
        squall.expect(r"curl --http2-prior-knowledge\).*--h2c-upgrade takes it", timeout=60)
        squall.expect(r"Worker \d+ serving", timeout=60)  # its signal handlers are set
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0


def test_interface_asgi2_is_taken_from_the_command_line_and_uvicorns_environment() -> None:
    config = parse_config(["m:app", "--interface", "asgi2"], environ={})
    assert (config.interface, config.notes) == ("asgi2", [])
    assert parse_config(["m:app"], environ={"UVICORN_INTERFACE": "asgi2"}).interface == "asgi2"
    assert parse_config(["m:app"], environ={}).interface == "auto"
    with pytest.raises(UsageError, match="--interface 'asgi4': expected one of auto, asgi3"):
        parse_config(["m:app"], environ={"SQUALL_INTERFACE": "asgi4"})


@pytest.mark.parametrize(
    ("target", "interface"),
    [
        (sample_apps.asgi2_function, "asgi2"),
        (sample_apps.ASGI2App, "asgi2"),
        # A class of ASGI 2's shape is found without the option, as uvicorn finds it.
        (sample_apps.ASGI2App, "auto"),
    ],
    ids=["function", "class", "class-by-shape"],
)
def test_an_asgi2_app_is_served_through_the_adapter(target: Any, interface: str) -> None:
    served = serve_target(target, "t:app", interface=interface)
    assert served.kind == "asgi" and served.app is target

    async def body() -> None:
        assert served.startup is not None and served.shutdown is not None
        await served.startup()  # an app that ignores the lifespan starts all the same
        server, _ = build_server(Config(target="t:app"), served)
        sock, port = bind_unused_port()
        server.add_sockets([sock])
        status, _, got = await fetch(port, "/two")
        server.stop()
        await served.shutdown()
        assert (status, got) == (200, b"asgi2 /two version=2.0")

    run(body)


def test_an_asgi2_function_without_the_option_or_an_application_with_it_is_refused() -> None:
    # A function of one argument could be anything: only --interface says it is ASGI 2.
    with pytest.raises(UsageError, match="with --interface asgi2"):
        serve_target(sample_apps.asgi2_function, "t:asgi2_function")
    with pytest.raises(UsageError, match="--interface asgi2: TARGET 't:app' is a squall"):
        serve_target(sample_apps.make_app(), "t:app", interface="asgi2")
    with pytest.raises(UsageError, match="--interface asgi2: TARGET 't:n' is a builtins.int"):
        serve_target(42, "t:n", interface="asgi2")
    # An ASGI 3 app or a WSGI app is served as before.
    assert serve_target(sample_apps.asgi_app, "t:a").callback.app is sample_apps.asgi_app
    assert serve_target(sample_apps.wsgi_app, "t:w").kind == "wsgi"
    assert not isinstance(serve_target(sample_apps.asgi_app, "t:a").callback.app, ASGI2Adapter)


def test_squall_run_interface_asgi2_serves_uvicorns_command_line() -> None:
    from ._proc import Squall, get

    args = ("sample_apps:asgi2_function", "--interface", "asgi2", "--bind", "127.0.0.1:0")
    with Squall(*args) as squall:
        address = squall.address()
        squall.expect(r"Worker \d+ serving", timeout=60)  # its signal handlers are set
        assert get(address, "/x") == (200, b"asgi2 /x version=2.0")
        squall.signal(signal.SIGTERM)
        assert squall.wait() == 0
    assert not [line for line in squall.seen if "--interface" in line], squall.seen
