"""The differential against Tornado 6.6.1 in small (compat/differential, `make differential`).

functions.py (Tornado's helpers and Squall's, the same Hypothesis
arguments), app_run.py (one application served by each, the same raw
requests) and client_run.py (each simple HTTP client against the same
scripted answers) run here on fixed seeds and few examples, with Tornado
taken from the hooks differential's venv (see tests/test_hooks_diff.py):
any difference tests/COMPAT.md does not list fails. `make differential`
runs them at length, on random seeds.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.test_hooks_diff import _tornado_python

pytest.importorskip("hypothesis")

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "compat" / "differential"


def _tornado_env() -> dict[str, str]:
    """This interpreter's environment, with Tornado 6.6.1 importable beside Squall."""
    found = subprocess.run(
        [
            _tornado_python(),
            "-c",
            "import os, tornado; print(os.path.dirname(os.path.dirname(tornado.__file__)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    site = found.stdout.strip()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
    return env


def _run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(DIFF / script), *args],
        env=_tornado_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


def _module(name: str) -> ModuleType:
    if str(DIFF) not in sys.path:
        sys.path.append(str(DIFF))  # (its runners import hunt.py, beside them)
    spec = importlib.util.spec_from_file_location(f"differential_{name}", DIFF / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_helper_functions_agree_with_tornados() -> None:
    out = _run("functions.py", "--examples", "60", "--seed", "1")
    assert out.count("same on 60 examples") == out.count("\n") >= 20


def test_one_application_answers_as_on_tornado() -> None:
    out = _run("app_run.py", "--requests", "250", "--seed", "1")
    assert ", 0 unexplained" in out.splitlines()[0]
    assert int(out.split(" requests")[0].rsplit(" ", 1)[1]) >= 250


def test_the_simple_client_fetches_as_tornados() -> None:
    out = _run("client_run.py", "--cases", "200", "--seed", "1")
    assert out.startswith("client_run: seed 1, 200 cases") and ", 0 unexplained" in out


def test_an_unlisted_difference_is_not_explained() -> None:
    # What the runs compare can fail: two answers apart in their body, or
    # in a field, are not among the departures tests/COMPAT.md lists.
    app_run = _module("app_run")
    request = b"GET /arg?a=1 HTTP/1.1\r\nHost: a\r\n\r\n"
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nServer: x\r\n\r\n"
    tornado = app_run.normal(answer + b"a", request)
    assert app_run.normal(answer + b"a", request) == tornado
    assert app_run.departure(request, tornado, app_run.normal(answer + b"b", request)) is None
    other_field = app_run.normal(answer.replace(b"Server: x", b"X-A: 1") + b"a", request)
    assert other_field != tornado
    assert app_run.departure(request, tornado, other_field) is None
    client_run = _module("client_run")
    case = {"request": {"method": "GET"}, "path": "/p", "script": []}
    result = {"code": 200, "body": "YQ==", "received": [], "header_lines": []}
    assert client_run.departure(case, result, dict(result, code=201)) is None


def test_a_half_close_departure_is_explained_only_as_listed() -> None:
    # Tornado's server drops a coroutine on_message's answers and the close
    # answer when the client half-closes; Squall sends them. Anything less
    # from Squall, or the same without the half-close, stays unexplained.
    app_run = _module("app_run")
    handshake = b"GET /ws?async HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    head = ("HTTP/1.1", "101", "Switching Protocols", (), b"")
    opened, echo, close = (
        (0x81, b"open None ()"),
        (0x81, b'{"echo": "hi", "n": 2}'),
        (0x88, b"\x03\xe8"),
    )
    tornado = [head, opened, "end"]
    squall = [head, opened, echo, close]
    reason = app_run.ws_departure((handshake, [], True), tornado, squall)
    assert reason is not None and "half-close" in reason
    assert app_run.ws_departure((handshake, [], False), tornado, squall) is None
    assert app_run.ws_departure((handshake, [], True), tornado, [head, opened, echo, "end"]) is None
    in_order = handshake.replace(b"?async", b"")
    assert app_run.ws_departure((in_order, [], True), tornado, squall) is None


def test_coroutine_primitives_agree_with_tornados() -> None:
    out = _run("concurrency.py", "--examples", "400", "--seed", "1")
    assert out.startswith("programs: same on 400 examples"), out


# Run in a subprocess with Tornado importable: the queues' and locks'
# checker must name a departure only where it is the one, and must find a
# condition that wakes its newest waiter first.
_CAUGHT = """
import logging, sys
sys.path.insert(0, sys.argv[1])
import concurrency
from hunt import hunt
import squall.locks

logging.disable(logging.CRITICAL)
spec = {"queue": "Queue", "maxsize": 0, "sem": 0, "bsem": 1, "tasks": [
    ("async", [("hold", "sem", 0.001)]), ("async", [("release", "sem"), ("cancel", 0)])]}
theirs = concurrency.run(concurrency.TORNADO, spec)
ours = concurrency.run(concurrency.SQUALL, spec)
other = (ours[0], ours[1][:-1] + (not ours[1][-1],), ours[2])
print("grant", theirs == ours, concurrency.explained(spec, ours),
      concurrency.explained(spec, other))
notify = squall.locks.Condition.notify
def newest_first(self, n=1):
    self._waiters.reverse()
    try:
        notify(self, n)
    finally:
        self._waiters.reverse()
squall.locks.Condition.notify = newest_first
found = hunt(concurrency.same_programs, 2000, 1)
print("not caught" if found is None else "caught " + found.splitlines()[-1])
"""


def _snippet(code: str) -> str:
    """The output of ``code`` run by this interpreter with Tornado importable
    and compat/differential on its path (its first argument)."""
    done = subprocess.run(
        [sys.executable, "-c", code, str(DIFF)],
        env=_tornado_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def test_a_condition_waking_out_of_turn_is_caught() -> None:
    lines = _snippet(_CAUGHT).splitlines()
    # A semaphore granted to a task cancelled in that loop turn: Squall
    # gives the permit back, Tornado keeps it; explained by that name for
    # Squall's run, and not if Squall's run also differed in the Event.
    grant = "a permit granted as its task is cancelled is given back"
    assert lines[0] == f"grant False {grant} None", lines
    assert lines[-1].startswith("caught   first difference:"), lines


def test_iostreams_read_and_write_as_tornados() -> None:
    out = _run("streams.py", "--examples", "300", "--seed", "1")
    assert out.startswith("streams: same on 300 examples"), out


_EARLY = """
import logging, sys
sys.path.insert(0, sys.argv[1])
import streams
from hunt import hunt
from squall.iostream import IOStream

logging.disable(logging.CRITICAL)
read_until = IOStream.read_until
def one_byte_early(self, delimiter, max_bytes=None):
    return read_until(self, delimiter, max_bytes - 1 if max_bytes and max_bytes > 1 else max_bytes)
IOStream.read_until = one_byte_early
found = hunt(streams.same_conversations, 2000, 1)
print("not caught" if found is None else "caught " + found.splitlines()[1])
"""


def test_a_max_bytes_one_byte_short_is_caught() -> None:
    out = _snippet(_EARLY)
    assert out.startswith("caught   conversation:"), out[-2000:]


def test_a_wsgi_application_runs_as_in_tornados_container() -> None:
    out = _run("wsgi_run.py", "--requests", "150", "--seed", "1")
    assert out.startswith("wsgi_run: seed 1, ") and ", 0 unexplained" in out, out


_LAST_CONTENT_TYPE = """
import squall.wsgi as w
environ = w.WSGIContainer.environ
def last_content_type(self, request):
    env = environ(self, request)
    types = request.headers.get_list("Content-Type")
    if types:
        env["CONTENT_TYPE"] = types[-1]
    return env
w.WSGIContainer.environ = last_content_type
"""


def test_a_container_giving_the_last_content_type_is_caught(tmp_path: Path) -> None:
    # What Squall's container did: of two Content-Type fields, the last alone.
    (tmp_path / "sitecustomize.py").write_text(_LAST_CONTENT_TYPE)
    env = _tornado_env()
    env["PYTHONPATH"] = os.pathsep.join((str(tmp_path), env["PYTHONPATH"]))
    done = subprocess.run(
        [sys.executable, str(DIFF / "wsgi_run.py"), "--requests", "200", "--seed", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert '"CONTENT_TYPE": ",text/plain"' in done.stdout, done.stdout[-2000:]


def test_detached_tls_streams_read_and_write_as_tornados() -> None:
    out = _run("streams.py", "--examples", "200", "--seed", "1", "--tls", "--detached")
    assert out.startswith("streams: same on 200 examples"), out
    # The peer reads how each session ends: Squall's detached stream sends
    # close_notify where Tornado's drops the connection.
    ended = re.search(r"closes with close_notify \(Tornado's, without\)': (\d+)", out)
    assert ended is not None and int(ended.group(1)) > 0, out


_TRUNCATED = """
import logging, sys
sys.path.insert(0, sys.argv[1])
import streams
from hunt import hunt
from squall.httpserver._stream import _TLSTransportStream

logging.disable(logging.CRITICAL)
streams.TLS["on"] = True
streams.MAKE["stream"] = streams.detached
def drop_the_session(self):
    self.transport.abort()
_TLSTransportStream.close_fd = drop_the_session
found = hunt(streams.same_conversations, 500, 1)
print("not caught" if found is None else "caught " + found.splitlines()[-1])
"""


def test_a_tls_session_dropped_at_close_is_caught() -> None:
    out = _snippet(_TRUNCATED)
    assert out.startswith("caught   differs (tornado, squall): {'tls_end'"), out[-2000:]
