"""The supervisor: worker processes sharing the listening sockets.

The supervisor binds the sockets and starts each worker as a fresh Python
process (``python -m squall __worker``) that inherits them; the kernel
hands each new connection to one of the workers waiting in ``accept``.
Because the sockets stay open in the supervisor, a worker that stops or
drains never loses a connection waiting in the backlog: another worker
(or its replacement) accepts it. That is why workers do not each bind an
SO_REUSEPORT socket of their own: Linux resets the connections queued on
a listening socket that closes, so every drain (HUP, TTOU,
``--max-requests``) would drop some. ``--reuse-port`` sets SO_REUSEPORT
on the shared socket instead, so that another server can bind the same
address beside this one.

Signals: TERM/INT stop (workers drain, up to ``--timeout-graceful-shutdown``,
then are killed); HUP replaces the workers one at a time, each new one
ready before the old one drains (a new one that fails to start leaves the
old ones serving); TTIN/TTOU add or remove a worker. A worker that exits
unasked is replaced, after a back-off that grows while it keeps crashing
soon after starting. With ``--reload``, a change to a watched source file
triggers the same rolling replacement.

Start-up failures are told apart from runtime exits by the worker's pipe
(`squall.cli._link`): a worker that never said it was ready failed to
start, and says why on the pipe; the supervisor logs that once. When no
worker is serving (a bad target, a lifespan startup that fails in every
worker), restarting cannot help: the server stops with a non-zero status,
as gunicorn does (with ``--reload`` it waits for the next edit instead).
A worker that served and then exits, whatever its status, is replaced.

Stuck workers: a serving worker sends a heartbeat from its event loop
every second or so. One silent for ``--timeout-worker-healthcheck``
seconds gets SIGABRT, on which `faulthandler` (enabled in every worker)
writes the Python stack of each of its threads to stderr before the
process dies; then it is replaced like any worker that died.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Optional

from squall.cli._link import STARTUP, USAGE, LinkReader, WorkerLink
from squall.cli._options import Config, StartupError, UsageError
from squall.cli._reload import Watcher

if TYPE_CHECKING:
    from squall.cli._quicslots import QuicSlots

__all__ = ["Supervisor", "worker_main"]

log = logging.getLogger("squall.general")

_MIN_BACKOFF = 0.1
_MAX_BACKOFF = 10.0
# A worker alive this long before crashing resets the back-off.
_STABLE_AFTER = 5.0
# Seconds a new worker has to become ready during a rolling restart.
_READY_TIMEOUT = 60.0
# What a worker exits with for a bad target or option, or another start-up failure.
_USAGE_ERROR = 3
_STARTUP_ERROR = 4
# Seconds a stuck worker has to write its stack after SIGABRT before SIGKILL.
_ABORT_GRACE = 5.0


class _Worker:
    def __init__(self, proc: asyncio.subprocess.Process, ready: asyncio.Future[None]) -> None:
        self.proc = proc
        self.ready = ready
        self.link = LinkReader()
        self.started = time.monotonic()
        self.retiring = False
        self.stuck = False
        # The HTTP/3 slot whose UDP sockets it serves (squall.cli._quicslots).
        self.slot: Optional[int] = None

    @property
    def pid(self) -> int:
        return self.proc.pid


class Supervisor:
    """Runs ``config.workers`` worker processes over ``sockets``.

    Args:
        config: the options (passed on to the workers).
        sockets: the bound listening sockets, inherited by every worker.
    """

    def __init__(
        self,
        config: Config,
        sockets: list[socket.socket],
        announce: Optional[Callable[[], None]] = None,
    ) -> None:
        self.config = config
        # Called when the first worker is ready: a target that fails in every
        # worker is then never announced as listening.
        self._announce = announce
        self.sockets = sockets
        self.target = config.workers
        self.workers: dict[int, _Worker] = {}
        self.stopping = False
        self.exit_code = 0
        self.backoff = _MIN_BACKOFF
        self._stopped: Optional[asyncio.Event] = None
        self._restarting = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._watcher: Optional[Watcher] = None
        #: Called whenever a worker becomes ready or exits (for tests and tools).
        self.on_change: Optional[Callable[[], None]] = None
        #: Workers started to replace others (for the metrics).
        self.restarts = 0
        # Workers started so far: the first says once what all of them would.
        self.spawned = 0
        #: Whether any worker has served yet.
        self.ever_ready = False
        self.metrics: Optional[object] = None
        self.quic: Optional[QuicSlots] = None
        if config.http3:
            from squall.cli._quicslots import QuicSlots

            self.quic = QuicSlots(sockets)

    async def run(self) -> int:
        """Start the workers and supervise them until told to stop."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        handlers = {
            signal.SIGTERM: self.stop,
            signal.SIGINT: self.interrupt,
            signal.SIGHUP: self.rolling_restart,
            signal.SIGTTIN: self.add_worker,
            signal.SIGTTOU: self.remove_worker,
        }
        for sig, handler in handlers.items():
            loop.add_signal_handler(sig, handler)
        if self.config.reload:
            # The first scan comes before any worker: an edit made once a
            # worker is up is then always a change.
            self._watcher = Watcher(
                self.config.reload_dirs or [os.getcwd()],
                self.config.reload_includes,
                self.config.reload_excludes,
            )
        if self.config.metrics_bind:
            from squall.cli._metrics import start_metrics_server

            self.metrics = await start_metrics_server(self, self.config.metrics_bind)
        log.debug("Supervisor %d starting %d worker(s)", os.getpid(), self.target)
        if self.config.timeout_worker_healthcheck:
            self._task(self._check_heartbeats(self.config.timeout_worker_healthcheck))
        await asyncio.gather(*(self._spawn() for _ in range(self.target)))
        if self._watcher is not None:
            self._task(self._watch_files(self._watcher))
        await self._stopped.wait()
        for sig in handlers:
            loop.remove_signal_handler(sig)
        for task in list(self._tasks):
            task.cancel()
        if self.quic is not None:
            self.quic.close()
        close = getattr(self.metrics, "close", None)
        if close is not None:
            close()
        return self.exit_code

    def _task(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- workers ---------------------------------------------------------------------

    async def _spawn(self) -> Optional[_Worker]:
        if self.stopping:
            return None  # (the listening sockets are closed)
        loop = asyncio.get_running_loop()
        rfd, wfd = os.pipe()
        fds = [s.fileno() for s in self.sockets]
        env = dict(os.environ)
        slot = self.quic.acquire() if self.quic is not None else None
        if slot is not None:
            env["SQUALL_WORKER_QUIC"] = f"{slot[0]}:" + ",".join(map(str, slot[1]))
        env["SQUALL_WORKER_CONFIG"] = self.config.to_env()
        self.spawned += 1
        if self.spawned == 1:
            env["SQUALL_WORKER_FIRST"] = "1"
        env["SQUALL_WORKER_FDS"] = ",".join(map(str, fds))
        env["SQUALL_WORKER_READY_FD"] = str(wfd)
        env["SQUALL_WORKER_LOG_LEVEL"] = self.config.log_level
        if self.config.log_config:
            env["SQUALL_WORKER_LOG_CONFIG"] = os.path.abspath(self.config.log_config)
        if self.metrics is not None:
            env.update(self.metrics.worker_env())  # type: ignore[attr-defined]
        if self.config.reload:
            # A .pyc is trusted when its source has the same size and mtime
            # in whole seconds: an edit within the second would be missed.
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "squall",
                "__worker",
                pass_fds=[*fds, *(slot[1] if slot is not None else ()), wfd],
                env=env,
            )
        except BaseException:
            if slot is not None and self.quic is not None:
                self.quic.release(slot[0])
            raise
        finally:
            os.close(wfd)
        ready: asyncio.Future[None] = loop.create_future()
        worker = _Worker(proc, ready)
        worker.slot = slot[0] if slot is not None else None
        link = worker.link

        def on_readable() -> None:
            try:
                data = os.read(rfd, 65536)
            except OSError:
                data = b""
            if data:
                link.feed(data)
                if link.ready and not ready.done():
                    ready.set_result(None)
                return
            loop.remove_reader(rfd)
            os.close(rfd)
            link.closed()
            if not ready.done():
                ready.set_exception(RuntimeError("the worker exited before serving"))
                ready.exception()

        loop.add_reader(rfd, on_readable)
        self.workers[proc.pid] = worker
        self._task(self._watch(worker))
        if self.stopping:
            # The stop came while this worker was being started (a recycle
            # or a restart under way): it must not outlive the others.
            self._retire(worker)
        try:
            await ready
        except RuntimeError:
            return None
        if not self.ever_ready:
            self.ever_ready = True
            if self._announce is not None:
                self._announce()
        log.info("Worker %d ready", proc.pid)
        self._changed()
        return worker

    async def _watch(self, worker: _Worker) -> None:
        code = await worker.proc.wait()
        if not worker.ready.done():
            # The pipe's end comes with the exit; let its reader run first.
            await asyncio.wait([worker.ready], timeout=1.0)
        self.workers.pop(worker.pid, None)
        if worker.slot is not None and self.quic is not None:
            self.quic.release(worker.slot)
        self._changed()
        if self.metrics is not None:
            self.metrics.worker_exited(worker.pid)  # type: ignore[attr-defined]
        if worker.retiring or self.stopping:
            log.info("Worker %d exited (%d)", worker.pid, code)
            self._check_stopped()
            return
        lived = time.monotonic() - worker.started
        if not worker.link.ready:
            self._failed_to_start(worker, code)
            return
        self.restarts += 1
        if worker.stuck:
            log.error(
                "Worker %d was stuck and is gone (%s); starting a new one",
                worker.pid,
                _exit_text(code),
            )
            self._task(self._spawn())
            return
        if code == 0:
            # It recycled itself (--max-requests): replace it at once.
            log.info("Worker %d finished after %.1fs; starting a new one", worker.pid, lived)
            self._task(self._spawn())
            return
        if lived >= _STABLE_AFTER:
            self.backoff = _MIN_BACKOFF
        delay = self.backoff
        self.backoff = min(self.backoff * 2, _MAX_BACKOFF)
        log.warning(
            "Worker %d died (%s) after %.1fs; restarting in %.1fs",
            worker.pid,
            _exit_text(code),
            lived,
            delay,
        )
        self._task(self._respawn_after(delay))

    def _failed_to_start(self, worker: _Worker, code: int) -> None:
        kind, message = worker.link.failure or (
            STARTUP,
            f"it exited before serving ({_exit_text(code)})",
        )
        if self.ready_pids():
            # Others serve (a replacement after a crash): try again later.
            delay = self.backoff
            self.backoff = min(self.backoff * 2, _MAX_BACKOFF)
            log.error(
                "Worker %d could not start: %s; retrying in %.1fs", worker.pid, message, delay
            )
            self._task(self._respawn_after(delay))
        elif self.config.reload:
            log.error("Worker %d could not start: %s; waiting for a change", worker.pid, message)
        elif not self.stopping:
            # Nobody serves and every start fails alike: restarting in a
            # loop with the sockets open would only hide it.
            self.exit_code = 2 if kind == USAGE else 1
            if kind == USAGE:
                sys.stderr.write(f"squall run: error: {message}\n")
                sys.stderr.flush()
            else:
                log.error(
                    "No worker could start, so the server stops. Worker %d: %s", worker.pid, message
                )
            self.stop()

    async def _check_heartbeats(self, timeout: float) -> None:
        """Abort the workers whose event loop has not turned for ``timeout`` seconds."""
        while True:
            await asyncio.sleep(min(1.0, timeout / 4))
            now = time.monotonic()
            for worker in list(self.workers.values()):
                link = worker.link
                if not link.ready or worker.stuck or link.failure is not None:
                    continue
                silent = now - link.last_beat
                if silent < timeout:
                    continue
                worker.stuck = True
                log.error(
                    "Worker %d has not turned its event loop for %.1fs "
                    "(--timeout-worker-healthcheck %g): aborting it; its stack follows",
                    worker.pid,
                    silent,
                    timeout,
                )
                self._signal(worker, signal.SIGABRT)
                self._task(self._kill_later(worker, _ABORT_GRACE))

    async def _kill_later(self, worker: _Worker, delay: float) -> None:
        await asyncio.sleep(delay)
        if worker.proc.returncode is None:
            self._signal(worker, signal.SIGKILL)

    @staticmethod
    def _signal(worker: _Worker, sig: signal.Signals) -> None:
        try:
            worker.proc.send_signal(sig)
        except ProcessLookupError:
            pass

    async def _respawn_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self.stopping and self._live_count() < self.target:
            await self._spawn()

    def _changed(self) -> None:
        self._reroute()
        if self.on_change is not None:
            self.on_change()

    def ready_pids(self) -> set[int]:
        """The workers serving and not asked to stop."""
        return {
            pid
            for pid, w in self.workers.items()
            if not w.retiring and not w.stuck and w.link.ready and not w.link.draining
        }

    def _live_count(self) -> int:
        return sum(1 for w in self.workers.values() if not w.retiring)

    def _reroute(self) -> None:
        """HTTP/3 datagrams: by connection ID to every worker that has a
        slot, new connections to the ready ones that are not draining."""
        if self.quic is None:
            return
        ready = self.ready_pids()
        routed = [w.slot for w in self.workers.values() if w.slot is not None]
        accepting = [
            w.slot for pid, w in self.workers.items() if w.slot is not None and pid in ready
        ]
        self.quic.route(routed, accepting)

    def _retire(self, worker: _Worker) -> None:
        worker.retiring = True
        self._reroute()
        try:
            worker.proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass

    # -- signals ---------------------------------------------------------------------

    def add_worker(self) -> None:
        """SIGTTIN: one worker more."""
        if self.stopping:
            return
        self.target += 1
        log.info("SIGTTIN: %d worker(s)", self.target)
        self._task(self._spawn())

    def remove_worker(self) -> None:
        """SIGTTOU: one worker fewer (never below one); the oldest drains."""
        if self.stopping or self.target <= 1:
            return
        self.target -= 1
        log.info("SIGTTOU: %d worker(s)", self.target)
        live = sorted((w for w in self.workers.values() if not w.retiring), key=lambda w: w.started)
        if live:
            self._retire(live[0])

    def rolling_restart(self) -> None:
        """SIGHUP: replace every worker, each new one ready before its old one drains."""
        if self.stopping or self._restarting:
            return
        self._task(self._roll())

    async def _roll(self) -> None:
        self._restarting = True
        try:
            old = [w for w in self.workers.values() if not w.retiring]
            log.info("Replacing %d worker(s)", len(old))
            for worker in old:
                if self.stopping:
                    return
                try:
                    new = await asyncio.wait_for(self._spawn(), _READY_TIMEOUT)
                except TimeoutError:
                    new = None
                if new is None:
                    log.error("A new worker failed to start: the old ones keep serving")
                    return
                self._retire(worker)
            # Workers that failed to start (a syntax error, fixed since).
            while not self.stopping and self._live_count() < self.target:
                if await self._spawn() is None:
                    break
        finally:
            self._restarting = False

    def stop(self) -> None:
        """SIGTERM/SIGINT: drain every worker, kill the ones past the deadline."""
        if self.stopping:
            return
        self._stop()

    def interrupt(self) -> None:
        """SIGINT: as `stop`; a second one kills the workers still draining."""
        if not self.stopping:
            self._stop()
            return
        for worker in list(self.workers.values()):
            log.warning("Interrupted again: killing worker %d", worker.pid)
            try:
                worker.proc.kill()
            except ProcessLookupError:
                pass

    def _stop(self) -> None:
        self.stopping = True
        if self._watcher is not None:
            self._watcher.stop()
        # No new connections from here. The workers close their copies of
        # the listening sockets as they start to drain; a connection the
        # kernel queued on a socket that this process alone still held
        # would wait for an accept that never comes, and be reset when the
        # supervisor exits, its request lost. Closed everywhere, the
        # socket refuses it at once, which a client can act on.
        for sock in self.sockets:
            sock.close()
        log.info("Stopping %d worker(s)", len(self.workers))
        for worker in list(self.workers.values()):
            self._retire(worker)
        self._check_stopped()
        self._task(self._kill_after(self.config.timeout_graceful_shutdown + 5.0))

    async def _kill_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        for worker in list(self.workers.values()):
            log.warning("Worker %d did not stop: killing it", worker.pid)
            try:
                worker.proc.kill()
            except ProcessLookupError:
                pass

    def _check_stopped(self) -> None:
        if self.stopping and not self.workers and self._stopped is not None:
            self._stopped.set()

    # -- reload ----------------------------------------------------------------------

    async def _watch_files(self, watcher: Watcher) -> None:
        while not self.stopping:
            changed = await asyncio.to_thread(watcher.wait_for_change, self.config.reload_delay)
            if changed and not self.stopping:
                log.info("Reloading: %s changed", changed)
                await self._roll()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit status {code}"


def worker_main() -> int:
    """The ``python -m squall __worker`` entry: serve the inherited sockets."""
    import faulthandler
    import traceback

    from squall.netutil import _remember_backlog

    config = Config.from_env(os.environ.pop("SQUALL_WORKER_CONFIG"))
    fds = [int(fd) for fd in os.environ.pop("SQUALL_WORKER_FDS").split(",") if fd]
    link = WorkerLink(int(os.environ.pop("SQUALL_WORKER_READY_FD")))
    # A stuck worker gets SIGABRT: its Python stack goes to stderr (the
    # supervisor's log), and no core file is left behind.
    faulthandler.enable(sys.stderr, all_threads=True)
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
    except (ImportError, OSError, ValueError):
        pass
    sockets = [socket.socket(fileno=fd) for fd in fds]
    quic = os.environ.pop("SQUALL_WORKER_QUIC", None)
    if quic:
        from squall.httpserver import _quicroute

        _quicroute.worker_route = _quicroute.WorkerRoute.from_env(quic)
    for sock in sockets:
        sock.setblocking(False)
        # Serving listens again: with --backlog (the kernel cannot tell a
        # Unix socket's).
        _remember_backlog(sock, config.backlog)
    # The supervisor handles the signals meant for the group.
    for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(sig, signal.SIG_IGN)
    from squall.cli._worker import run_worker

    try:
        return run_worker(config, sockets, link)
    except UsageError as exc:
        if link.sent_ready:
            raise
        link.fail(USAGE, str(exc))
        return _USAGE_ERROR
    except StartupError as exc:
        link.fail(STARTUP, str(exc))
        return _STARTUP_ERROR
    except Exception:
        if link.sent_ready:
            raise
        link.fail(STARTUP, traceback.format_exc().rstrip())
        return _STARTUP_ERROR
