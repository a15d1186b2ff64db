"""Every shell command of the README and the guides, as a newcomer types them.

The fast tests read the documents: each shell command they show is either
run by the slow test below or listed with the reason it cannot run on one
machine (a new command fails `test_every_shell_command_is_planned` until it
is placed); the README links only files of the repository; the guides'
examples listen on 127.0.0.1, away from the port `make demo` uses.

The slow test (``-m slow``; ``-m "not slow"`` leaves it out) copies the
checkout (its tracked and unignored files: what a fresh clone has), makes a
fresh venv, and runs the commands in the documents' order: installs outside,
servers and their clients inside a network namespace of its own (its own
loopback: no port of the machine is taken), each command bounded in time.
It writes each command's wall time and last line of output to
``$SQUALL_DOCS_COMMANDS_REPORT`` when set (and prints them). The installs
run with ``SQUALL_NO_EXTENSIONS=1``: the compiled build of the same
``pip install`` is what `make test`'s compiled suite installs and tests.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional
from unittest import mock

import pytest

import squall.web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "cluster"))
from services import Output  # noqa: E402  (a process's lines, awaited with a deadline)

SHELL_INFO = {"", "sh", "bash", "shell", "console"}


def documents() -> list[Path]:
    """The README and the documentation a newcomer follows."""
    docs = ROOT / "docs"
    return [
        ROOT / "README.md",
        docs / "index.md",
        docs / "walkthrough.md",
        docs / "migrating.md",
        *sorted((docs / "guide").glob("*.md")),
    ]


def fenced_blocks(text: str) -> Iterator[tuple[str, list[str]]]:
    """(info string, lines) of each fenced code block."""
    fence: Optional[str] = None
    info = ""
    body: list[str] = []
    for line in text.splitlines():
        found = re.match(r"^(`{3,}|~{3,})\s*(.*)$", line)
        if fence is None:
            if found:
                fence, info, body = found.group(1), found.group(2).strip(), []
        elif found and found.group(1).startswith(fence) and not found.group(2).strip():
            yield info, body
            fence = None
        else:
            body.append(line)


def block_commands(lines: list[str]) -> list[str]:
    """The commands of a shell block: continuations joined, comments and output left out."""
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]  # prompt, output
    joined: list[str] = []
    current = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1].strip() + " "
            continue
        joined.append(current + line.strip())
        current = ""
    commands = []
    for command in joined:
        command = re.sub(r"\s{2,}#.*$", "", command).strip()
        if command and not command.startswith("#"):
            commands.append(re.sub(r"\s+", " ", command))
    return commands


def shell_commands() -> list[tuple[str, str]]:
    """(document, command) for every command of every shell block, in order."""
    found = []
    for doc in documents():
        for info, lines in fenced_blocks(doc.read_text()):
            if info in SHELL_INFO:
                found += [(str(doc.relative_to(ROOT)), c) for c in block_commands(lines)]
    return found


RUN = "run"

# Each command: RUN (the slow test runs it, and checks what it does), or
# why it cannot run on one machine, or is run under another spelling.
PLAN: dict[str, str] = {
    # README.md
    "pip install '.[speedups]'": RUN,
    "python -m squall.speedups": RUN,
    "python -m squall.extras --install redis": RUN,
    "squall run app:app": RUN,
    "curl 'http://127.0.0.1:8000/?name=squall'": RUN,
    "python -m squall.compat app.py --port=8888": RUN,
    "python -m squall.compat --install-alias": RUN,
    "squall run app:app --workers 4 --bind unix:/run/myapp/squall.sock": RUN,
    "make demo": RUN,
    "make test": "CI's own entry point (.ci/run): this test runs inside it",
    # docs/index.md, docs/walkthrough.md
    "pip install .": RUN,
    "git clone <repository> squall && cd squall": "the test's copy of the checkout is the clone",
    "python3 -m venv .venv && . .venv/bin/activate": RUN,
    "squall run hello:make_app --workers 4": RUN,
    "squall run myapp:app --bind 0.0.0.0:8000 --workers 4 --proxy-headers "
    "--forwarded-allow-ips 10.0.0.1": "production behind a proxy at 10.0.0.1, on every interface",
    # docs/migrating.md, docs/guide/testing.md
    "python -m squall.compat --uninstall-alias": RUN,
    "python -m squall.compat --status": RUN,
    # docs/guide/compiled.md
    "pip install 'squall[speedups]'": "Squall is not on PyPI yet: the README installs the checkout",
    # docs/guide/http3.md, docs/guide/running.md
    "squall run app:app --http3 --certfile cert.pem --keyfile key.pem --port 4433": (
        "needs a certificate of the reader's and the http3 extra"
    ),
    "squall run myapp:app": "myapp stands for the reader's module (app:app runs above)",
    "squall run myapp:make_app --workers 4": "myapp stands for the reader's module "
    "(hello:make_app --workers 4 runs above)",
    "squall run myapp:app --reload": "myapp stands for the reader's module",
    "squall run myapp:app --bind 127.0.0.1:8000 --proxy-headers --forwarded-allow-ips "
    "127.0.0.1": "myapp stands for the reader's module",
    "squall run myapp:app --bind 0.0.0.0:443 --certfile cert.pem --keyfile key.pem --http2": (
        "needs a certificate of the reader's and port 443 on every interface"
    ),
    # docs/guide/many-machines.md
    "redis-server --port 6379 --bind 10.0.0.11 --cluster-enabled yes --cluster-config-file "
    "nodes.conf --cluster-node-timeout 5000 --appendonly no --save ''": (
        "one of six machines (make demo-cluster makes them on one, and runs here)"
    ),
    "redis-cli --cluster create 10.0.0.11:6379 10.0.0.12:6379 10.0.0.13:6379 10.0.0.14:6379 "
    "10.0.0.15:6379 10.0.0.16:6379 --cluster-replicas 1": "six machines (as above)",
    "redis-cli -h 10.0.0.11 cluster info": "six machines (as above)",
    "make demo-cluster NODES=4": RUN,
    # docs/guide/resuming.md (python -m squall.extras --install redis, above)
    "redis-server --port 6379 --save ''": RUN,
    "PUBSUB_URL=redis://127.0.0.1:6379/0 python docs/examples/resume_sse.py": RUN,
    "curl -d text=hello http://127.0.0.1:8000/rooms/lobby": RUN,
    # docs/guide/websocket-scale.md
    "make bench-c1m": "a benchmark of a million connections: it sets sysctls and takes "
    "the machine for an hour, not a first-contact command",
    'make bench-c1m C1M_ARGS="--kind aiohttp"': "as make bench-c1m",
    'make bench-c1m C1M_STEPS=100000 C1M_ARGS="--ping 30 --idle 90"': "as make bench-c1m",
}


def test_every_shell_command_is_planned() -> None:
    found = {command for _, command in shell_commands()}
    assert found, "no shell command found: the reader of the documents is broken"
    unplanned = sorted(found - set(PLAN))
    assert not unplanned, f"shell commands the slow test neither runs nor explains: {unplanned}"
    stale = sorted(set(PLAN) - found)
    assert not stale, f"planned commands no document shows any more: {stale}"


def test_the_reader_of_the_documents() -> None:
    text = "\n".join(
        [
            "```",
            "$ squall run a:b",
            "output, not a command",
            "```",
            "```python",
            "print('not shell')",
            "```",
            "````",
            "redis-cli --cluster create a \\",
            "    b    # two hosts",
            "# a comment line",
            "````",
        ]
    )
    blocks = list(fenced_blocks(text))
    assert [info for info, _ in blocks] == ["", "python", ""]
    assert block_commands(blocks[0][1]) == ["squall run a:b"]
    assert block_commands(blocks[2][1]) == ["redis-cli --cluster create a b"]


# -- the README's links


def readme_references() -> list[str]:
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    # Paths named in code spans, as ../shared/DESIGN.md once was.
    spans = re.findall(r"`((?:\.\./|\./)?[\w.\-]+(?:/[\w.\-]+)+\.(?:md|py|txt|toml|json))`", text)
    return [t for t in links + spans if not re.match(r"[a-z][a-z0-9+.\-]*:", t)]


def test_the_readme_links_only_files_of_the_repository() -> None:
    references = readme_references()
    assert "docs/design.md" in references
    for target in references:
        path = (ROOT / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"README.md points outside the repository: {target}"
        assert path.exists(), f"README.md points at {target}, which is not in the repository"


# -- the guides' examples


def demo_port() -> int:
    found = re.search(r"--port=(\d+)", (ROOT / "demos" / "run.py").read_text())
    assert found is not None
    return int(found.group(1))


class _Listened(Exception):
    pass


def what_main_listens_on(path: Path) -> tuple[Any, ...]:
    """(port, address) that the example's main() passes to Application.listen."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"_docs_listen_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen: list[tuple[Any, ...]] = []

    def listen(self: Any, port: int, address: str = "", **kwargs: Any) -> None:
        seen.append((port, address))
        raise _Listened

    with mock.patch.object(squall.web.Application, "listen", listen):
        with pytest.raises(_Listened):
            asyncio.run(module.main())
    return seen[0]


EXAMPLES_WITH_MAIN = sorted(
    p
    for p in (ROOT / "docs" / "examples").glob("*.py")
    if any(
        isinstance(node, ast.AsyncFunctionDef) and node.name == "main"
        for node in ast.parse(p.read_text()).body
    )
)


def test_there_are_examples_with_a_main() -> None:
    assert len(EXAMPLES_WITH_MAIN) >= 5


@pytest.mark.parametrize("path", EXAMPLES_WITH_MAIN, ids=lambda p: p.name)
def test_an_example_listens_on_loopback_away_from_the_demo(path: Path) -> None:
    port, address = what_main_listens_on(path)
    assert address == "127.0.0.1", f"{path.name} listens on {address or 'every interface'}"
    assert port != demo_port(), f"{path.name} takes make demo's port {port}"
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert f"127.0.0.1:{port}" in doc, f"{path.name}'s docstring does not say its address"
    assert "localhost" not in doc and "0.0.0.0" not in doc
    others = set(re.findall(r"http://127\.0\.0\.1:(\d+)", doc)) - {str(port)}
    assert not others, f"{path.name}'s docstring names other ports: {others}"


# -- the slow test: the commands on a fresh copy


class Process:
    """A server started by a command, its output read by `services.Output` (awaited with a deadline)."""

    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        self.out = Output(argv[-1], self.proc.stdout)

    @property
    def seen(self) -> list[str]:
        return list(self.out.seen)

    def expect(self, pattern: str, timeout: float) -> str:
        line: str = self.out.expect(pattern, timeout)
        return line

    def stop(self, sig: int = signal.SIGINT) -> str:
        """Ctrl-C (the process group), SIGKILL after 20 s; its last line."""
        for how, wait in ((sig, 20.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, how)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        for _ in range(100_000):  # the reader has the rest once the process is gone
            try:
                line = self.out.lines.get(timeout=5)
            except queue.Empty:
                break
            if line is None:
                break
            self.out.seen.append(line)
        return next((line for line in reversed(self.out.seen) if line.strip()), "")


class Session:
    """The copy, its venvs, the namespace, and the report of what each command did."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.clone = base / "squall"
        self.venv = base / "venv"  # the README's fresh venv
        self.netns = f"sqdocs{os.getpid() % 100000}"
        self.ran: set[str] = set()
        self.report: list[str] = []
        self.servers: list[Process] = []
        path = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
        keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
        self.env = {k: os.environ[k] for k in keep if k in os.environ}
        self.env.update(PATH=path, SQUALL_NO_EXTENSIONS="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

    def in_venv(self, venv: Path) -> dict[str, str]:
        """The environment of an activated ``venv``."""
        return dict(self.env, VIRTUAL_ENV=str(venv), PATH=f"{venv}/bin:{self.env['PATH']}")

    def note(self, command: str, seconds: float, last: str) -> None:
        self.ran.add(command)
        line = f"{seconds:7.1f} s  {command}\n           -> {last.strip()[:160]}"
        self.report.append(line)
        print(line, flush=True)

    def inside(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(
        self,
        command: str,
        env: dict[str, str],
        cwd: Optional[Path] = None,
        timeout: float = 60,
        netns: bool = False,
        argv: Optional[list[str]] = None,
        check: bool = True,
    ) -> str:
        """Runs a command to its end; its standard output (asserting exit 0 when ``check``)."""
        args = argv or ["bash", "-c", command]
        if netns:
            args = self.inside(args)
        start = time.monotonic()
        done = subprocess.run(
            args,
            cwd=cwd or self.clone,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        out = done.stdout + done.stderr
        last = next((line for line in reversed(out.splitlines()) if line.strip()), "")
        self.note(command, time.monotonic() - start, f"{last} (exit {done.returncode})")
        if check:
            assert done.returncode == 0, f"{command}: exit {done.returncode}\n{out[-3000:]}"
        return done.stdout

    def serve(
        self,
        command: str,
        env: dict[str, str],
        ready: str | int,
        cwd: Optional[Path] = None,
        timeout: float = 60,
        netns: bool = True,
    ) -> tuple[Process, float]:
        """Starts a server command; returns once it printed ``ready`` (a pattern) or
        listens on port ``ready``, with the time that took."""
        args = ["bash", "-c", command]  # a simple command: bash execs it
        start = time.monotonic()
        server = Process(self.inside(args) if netns else args, cwd or self.clone, env)
        self.servers.append(server)
        if isinstance(ready, int):
            self.listening(server, ready, timeout)
        else:
            server.expect(ready, timeout)
        return server, time.monotonic() - start

    def listening(self, server: Process, port: int, timeout: float = 30) -> None:
        """Until something listens on ``port`` in the namespace (at most 300 looks)
        while ``server`` runs."""
        deadline = time.monotonic() + timeout
        for _ in range(300):
            if server.proc.poll() is not None:
                last = server.stop()
                raise AssertionError(f"{server.argv} ended ({server.proc.returncode}): {last}")
            out = subprocess.run(
                self.inside(["ss", "-Hltn", f"sport = :{port}"]),
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout
            if out.strip():
                return
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)  # a look at the kernel's table, not a wait for a guess
        raise AssertionError(f"nothing listens on port {port} after {timeout}s")

    def stopped(self, command: str, server: Process, ready: float) -> None:
        """Ctrl-C to a server; noted with the time it took to be ready and its last line."""
        last = server.stop()
        self.note(command, ready, f"{last}   [a server: ready in {ready:.1f} s, then Ctrl-C]")
        self.servers.remove(server)

    def close(self) -> None:
        for server in self.servers:
            server.stop(signal.SIGKILL)
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True, timeout=20)


def can_make_namespace() -> tuple[bool, str]:
    if shutil.which("ip") is None and not os.path.exists("/usr/sbin/ip"):
        return False, "the ip command (iproute2) is missing"
    name = f"sqdocsprobe{os.getpid() % 100000}"
    done = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if done.returncode != 0:
        return False, f"`ip netns add` is not permitted: {done.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return True, ""


def copy_checkout(to: Path) -> None:
    """The tracked and unignored files of the checkout: what a clone of it holds."""
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            target = to / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def readme_program() -> str:
    """The README's app.py."""
    for info, lines in fenced_blocks((ROOT / "README.md").read_text()):
        if info == "python" and lines and lines[0].strip() == "# app.py":
            return "\n".join(lines) + "\n"
    raise AssertionError("the README shows no app.py")


# A Tornado program of the usual shape (its own main, tornado.options), for
# `python -m squall.compat app.py --port=8888`.
TORNADO_PROGRAM = """\
import asyncio

import tornado.options
import tornado.web

tornado.options.define("port", default=8000, type=int)


class Hello(tornado.web.RequestHandler):
    def get(self):
        self.write("hello from " + tornado.web.__name__)


async def main():
    tornado.options.parse_command_line()
    app = tornado.web.Application([("/", Hello)])
    app.listen(tornado.options.options.port, address="127.0.0.1")
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
"""

SLOW_REASONS = []
if not (ROOT / ".git").exists():
    SLOW_REASONS.append("needs the git checkout (this is a copy of the tree)")
for program in ("git", "curl", "make", "ss"):
    if shutil.which(program) is None:
        SLOW_REASONS.append(f"{program} is not installed")


@pytest.mark.slow
@pytest.mark.skipif(bool(SLOW_REASONS), reason="; ".join(SLOW_REASONS))
def test_the_documents_commands_on_a_fresh_copy(tmp_path: Path) -> None:
    allowed, why = can_make_namespace()
    if not allowed:
        pytest.skip(f"the servers run in a network namespace of their own: {why}")
    have_redis = shutil.which("redis-server") is not None
    have_nginx = shutil.which("nginx") is not None or os.access("/usr/sbin/nginx", os.X_OK)
    session = Session(tmp_path)
    subprocess.run(["ip", "netns", "add", session.netns], check=True, timeout=20)
    try:
        subprocess.run(
            ["ip", "-n", session.netns, "link", "set", "lo", "up"], check=True, timeout=20
        )
        copy_checkout(session.clone)
        run_all(session, have_redis, have_nginx)
    finally:
        session.close()
        report = os.environ.get("SQUALL_DOCS_COMMANDS_REPORT")
        if report:
            Path(report).write_text("\n".join(session.report) + "\n")
    skipped = set() if have_redis and have_nginx else {"make demo-cluster NODES=4"}
    if not have_redis:
        skipped |= {
            "python -m squall.extras --install redis",
            "redis-server --port 6379 --save ''",
            "PUBSUB_URL=redis://127.0.0.1:6379/0 python docs/examples/resume_sse.py",
        }
    planned = {c for c, how in PLAN.items() if how == RUN} - skipped
    assert planned <= session.ran, f"planned but not run: {sorted(planned - session.ran)}"


def run_all(s: Session, have_redis: bool, have_nginx: bool) -> None:
    clone = s.clone
    # The README, top to bottom, in a fresh venv.
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(s.venv)], check=True, timeout=120)
    s.note(f"{Path(sys.executable).name} -m venv (a fresh venv)", time.monotonic() - start, "")
    env = s.in_venv(s.venv)
    s.run("pip install '.[speedups]'", env, timeout=600)
    out = s.run("python -m squall.speedups", env)
    assert "pure Python" in out or "compiled" in out, out

    work = s.base / "work"
    work.mkdir()
    (work / "app.py").write_text(readme_program())
    server, took = s.serve("squall run app:app", env, r"Worker \d+ serving", cwd=work)
    answer = s.run("curl 'http://127.0.0.1:8000/?name=squall'", env, cwd=work, netns=True)
    assert json.loads(answer) == {"hello": "squall"}
    s.stopped("squall run app:app", server, took)

    tornado_dir = s.base / "tornado-program"
    tornado_dir.mkdir()
    (tornado_dir / "app.py").write_text(TORNADO_PROGRAM)
    command = "python -m squall.compat app.py --port=8888"
    server, took = s.serve(command, env, 8888, cwd=tornado_dir)
    body = s.run("curl -s http://127.0.0.1:8888/", env, netns=True)
    assert body == "hello from tornado.web", body  # names read back say tornado
    s.stopped(command, server, took)

    s.run("python -m squall.compat --install-alias", env)
    out = s.run("python -m squall.compat --status", env)
    assert "alias" in out and "no tornado alias" not in out, out
    out = s.run("python -c 'import tornado.web; print(tornado.web.RequestHandler)'", env)
    assert "tornado.web.RequestHandler" in out, out
    s.run("python -m squall.compat --uninstall-alias", env)

    # /run/myapp is the reader's directory; a temporary one stands for it.
    sockets = s.base / "run-myapp"
    sockets.mkdir()
    written = "squall run app:app --workers 4 --bind unix:/run/myapp/squall.sock"
    server, took = s.serve(
        written.replace("/run/myapp", str(sockets)),
        env,
        r"Worker \d+ serving",
        cwd=work,
        netns=False,
    )
    answer = s.run(
        f"curl -s --unix-socket {sockets}/squall.sock 'http://x/?name=unix'", env, netns=False
    )
    assert json.loads(answer) == {"hello": "unix"}
    s.stopped(written, server, took)

    # make demo: its install (outside the namespace: it needs the package
    # index), then the same target serving (inside), in the clone.
    plain = dict(s.env)
    s.run("make .venv/.demo-installed", plain, timeout=600)
    server, took = s.serve("make demo", plain, r"^    http://127\.0\.0\.1:8888/$")
    page = s.run("curl -s http://127.0.0.1:8888/", plain, netns=True)
    assert "Squall forum" in page
    s.stopped("make demo", server, took)
    installed = s.run(".venv/bin/python -m pip list --format=freeze", plain).lower()
    assert "aiosqlite==" in installed and "markdown-it-py==" in installed
    for tool in ("mypy", "sphinx", "twisted", "aioquic", "pycurl", "ruff"):
        assert f"\n{tool}==" not in "\n" + installed, f"make demo installed {tool}"

    # The walkthrough: its own venv in the clone, activated.
    s.run("python3 -m venv .venv && . .venv/bin/activate", plain)
    walk = s.in_venv(clone / ".venv")
    s.run("pip install .", walk, timeout=600)
    examples = clone / "docs" / "examples"
    command = "python hello.py"
    server, took = s.serve(command, walk, 8000, cwd=examples)
    assert s.run("curl -s http://127.0.0.1:8000/", walk, netns=True) == "Hello, world"
    s.stopped(command, server, took)
    server, took = s.serve(
        "squall run hello:make_app --workers 4", walk, r"Worker \d+ serving", cwd=examples
    )
    assert s.run("curl -s http://127.0.0.1:8000/", walk, netns=True) == "Hello, world"
    s.stopped("squall run hello:make_app --workers 4", server, took)

    if have_redis:
        resumes_across_a_restart(s, env)
    else:
        print("redis-server is not installed: the resuming guide's Redis commands skip")

    if have_redis and have_nginx:
        for loopback in (False, True):
            cluster_demo(s, plain, loopback)
    else:
        print("redis-server or nginx is not installed: make demo-cluster skips")


def resumes_across_a_restart(s: Session, env: dict[str, str]) -> None:
    """The resuming guide: over Redis a restart keeps the history; memory:// keeps nothing."""
    # The extra's requirements alone: squall itself is not built again.
    out = s.run("python -m squall.extras --install redis", env, timeout=600)
    assert not re.search(r"\bsquall-\d|wheel for squall", out), out
    assert s.run("python -c 'import redis, hiredis'", env) == ""
    redis, took = s.serve("redis-server --port 6379 --save ''", env, "Ready to accept connections")
    with_redis = "PUBSUB_URL=redis://127.0.0.1:6379/0 python docs/examples/resume_sse.py"
    for command, survives in ((with_redis, True), ("python docs/examples/resume_sse.py", False)):
        post = "curl -d text=hello http://127.0.0.1:8000/rooms/lobby"
        positions = []
        for round_ in range(2):
            server, took = s.serve(command, env, 8000)
            text = "hello" if round_ == 0 else "after the restart"
            answer = s.run(post.replace("hello", text.replace(" ", "+")), env, netns=True)
            positions.append(json.loads(answer)["position"])
            s.stopped(command, server, took)
        # Back at the first position, after the restart: what came next, or a reset.
        server, _ = s.serve(command, env, 8000)
        # The stream is read until the line that decides (the publication
        # replayed, or a reset), not for a length of time; then curl stops.
        url = f"http://127.0.0.1:8000/rooms/lobby/events?since={positions[0]}"
        reader = Process(s.inside(["bash", "-c", f"curl -sN '{url}'"]), s.clone, env)
        try:
            reader.expect(r"^(data: after the restart|event: reset)", 60)
        finally:
            reader.stop()
        events = "\n".join(reader.seen)
        server.stop()
        s.servers.remove(server)
        if survives:
            assert "data: after the restart" in events and "event: reset" not in events, events
        else:
            assert "event: reset" in events and "after the restart" not in events, events
    s.stopped("redis-server --port 6379 --save ''", redis, took)


def cluster_demo(s: Session, env: dict[str, str], loopback: bool) -> None:
    """make demo-cluster, as the guide gives it (4 nodes), with and without namespaces."""
    command = "make demo-cluster NODES=4"
    run_env = dict(env, SQUALL_NETLAB_LOOPBACK="1") if loopback else env
    server, took = s.serve(command, run_env, r"^\s+http://\S+/$", timeout=120, netns=False)
    url = server.seen[-1].strip()
    assert url.startswith("http://127.77." if loopback else "http://198.18."), url
    steps = [line for line in server.seen if line.startswith("== ")]
    assert any("starting a Redis Cluster" in line for line in steps), server.seen
    assert not any("Ready to accept" in line for line in server.seen), "logs shown: not quiet"
    upstreams = set()
    for n in range(1, 5):
        head = s.run(f"curl -s -o /dev/null -D - -b node={n} {url}", env, netns=False)
        assert head.startswith("HTTP/1.1 200"), head
        upstreams.add(re.search(r"X-Upstream: (\S+)", head).group(1))  # type: ignore[union-attr]
    assert len(upstreams) == 4, upstreams
    label = f"{command}{' (SQUALL_NETLAB_LOOPBACK=1)' if loopback else ''}"
    s.note(f"{label}: up", took, url)
    s.stopped(label, server, took)
    s.ran.add(command)
