"""The asyncio implementations of `squall.ioloop.IOLoop`.

`AsyncIOMainLoop` wraps an asyncio loop that already exists (the one that
`~squall.ioloop.IOLoop.current` finds running); `AsyncIOLoop` creates and
owns a new one (``IOLoop()`` builds it). Both share `BaseAsyncIOLoop`.

Event loops without ``add_reader`` (Windows' proactor loop) get their file
descriptor handlers from a `SelectorThread`, which runs ``select`` on a
thread of its own; `AddThreadSelectorEventLoop` attaches one to a loop.

uvloop is used when the application installs its event loop policy; Squall
never installs it by itself.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import errno
import functools
import select
import socket
import threading
import warnings
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Optional, TypeVar

from squall.ioloop import IOLoop, _app_log, _as_future, _peek_event_loop

__all__ = [
    "AddThreadSelectorEventLoop",
    "AsyncIOLoop",
    "AsyncIOMainLoop",
    "BaseAsyncIOLoop",
    "SelectorThread",
    "to_asyncio_future",
    "to_tornado_future",
]

_T = TypeVar("_T")

# (Private to asyncio, and in every CPython since 3.4; typeshed omits it.)
_SelectorSocketTransport: type = asyncio.selector_events._SelectorSocketTransport  # type: ignore[attr-defined]

# The most a socket transport of asyncio's selector loop reads at a time,
# once `_bound_reads` has set it: well under glibc's initial mmap threshold
# (128 KiB) and musl's, see there.
_READ_SIZE = 64 * 1024

# What start() runs once its loop has stopped (see _write_at_stop).
_writers_at_stop: list[Callable[[asyncio.AbstractEventLoop], None]] = []


def _write_at_stop(write_held: Callable[[asyncio.AbstractEventLoop], None]) -> None:
    """Have `IOLoop.start` call ``write_held(asyncio_loop)`` when its loop stops.

    A server that holds output for the loop's next round (the HTTP/1 write
    queue writes every connection's in one burst) registers here. Tornado
    writes a response to the socket before ``finish()`` returns, so a
    handler may finish and then stop the loop (a shutdown endpoint, a tool
    serving one page): asyncio's ``stop`` lets no callback scheduled in its
    last round run, and without this the answer would never leave before
    the program exits.
    """
    _writers_at_stop.append(write_held)


def _bound_reads(transport: object) -> None:
    """Have asyncio's socket transport read at most `_READ_SIZE` bytes a time.

    asyncio's selector transport reads with ``sock.recv(256 KiB)``: a bytes
    object of that size is allocated and then shrunk to what arrived, a few
    hundred bytes for a request. glibc serves an allocation that large with
    mmap until a process has freed one of at least that size (its threshold
    then rises), so until then every read cost mmap, mremap, munmap and two
    page faults: hello world at half speed. The compiled build's imports
    never raise the threshold (the pure build's do), so a compiled server on
    asyncio's loop read that way until its first connection closed, or for
    good. 64 KiB is served from the heap in any state; uvloop and the TLS
    transports read into buffers of their own and are left alone.
    """
    if type(transport) is _SelectorSocketTransport:
        transport.max_size = _READ_SIZE  # type: ignore[attr-defined]


def _needs_selector_thread(loop: asyncio.AbstractEventLoop) -> bool:
    # A loop that does not implement add_reader inherits the abstract
    # method, which raises NotImplementedError.
    add_reader = getattr(type(loop), "add_reader", None)
    return add_reader is None or add_reader is asyncio.AbstractEventLoop.add_reader


class BaseAsyncIOLoop(IOLoop):
    """An `~squall.ioloop.IOLoop` that delegates to an asyncio event loop."""

    def initialize(  # type: ignore[override]
        self, asyncio_loop: asyncio.AbstractEventLoop, **kwargs: Any
    ) -> None:
        """Wrap ``asyncio_loop``.

        Raises:
            RuntimeError: if that loop already has an `~squall.ioloop.IOLoop`.
        """
        self.asyncio_loop = asyncio_loop
        self.selector_loop: asyncio.AbstractEventLoop = asyncio_loop
        if _needs_selector_thread(asyncio_loop):
            self.selector_loop = AddThreadSelectorEventLoop(asyncio_loop)  # type: ignore[abstract]
        # fd -> (the object given to add_handler, its handler)
        self.handlers: dict[int, tuple[Any, Callable[..., None]]] = {}
        self.readers: set[int] = set()
        self.writers: set[int] = set()
        self.closing = False
        # Objects holding fds that the loop does not watch itself (an
        # HTTPServer's listeners and transports): close(all_fds=True) calls
        # their _close_fds(), as it closes the fds given to add_handler.
        self._fd_owners: weakref.WeakSet[Any] = weakref.WeakSet()
        # Forget loops that were closed without IOLoop.close (for instance
        # by asyncio.run); otherwise the map would grow without bound.
        for loop in list(self._ioloop_for_asyncio):
            if loop.is_closed():
                self._ioloop_for_asyncio.pop(loop, None)
        existing = self._ioloop_for_asyncio.setdefault(asyncio_loop, self)
        if existing is not self:
            if self.selector_loop is not asyncio_loop:
                self.selector_loop.close()
            raise RuntimeError(f"an IOLoop already exists for the asyncio loop {asyncio_loop!r}")
        super().initialize(**kwargs)

    def close(self, all_fds: bool = False) -> None:
        """Close the loop and the asyncio loop it wraps."""
        self.closing = True
        if all_fds:
            self._close_fd_owners()
        for fd in list(self.handlers):
            fileobj = self.handlers[fd][0]
            self.remove_handler(fd)
            if all_fds:
                self.close_fd(fileobj)
        if self._ioloop_for_asyncio.get(self.asyncio_loop) is self:
            del self._ioloop_for_asyncio[self.asyncio_loop]
        if self.selector_loop is not self.asyncio_loop:
            self.selector_loop.close()
        self.asyncio_loop.close()

    def _close_fd_owners(self) -> None:
        owners = list(self._fd_owners)
        self._fd_owners.clear()
        loop = self.asyncio_loop
        closed = loop.is_closed()
        for owner in owners:
            try:
                owner._close_fds()
            except Exception:
                # Once asyncio has closed its loop a transport can no longer
                # close (asyncio raises): only listening sockets could.
                if not closed:
                    _app_log.error("Exception closing the fds of %r", owner, exc_info=True)
        if not owners or closed or loop.is_running():
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            # A transport closes its socket in a callback of the next loop
            # turn: give it that turn, or the socket outlives the loop.
            loop.call_soon(loop.stop)
            loop.run_forever()

    def add_handler(self, fd: Any, handler: Callable[..., None], events: int) -> None:
        """Watch ``fd`` for ``events``; see `~squall.ioloop.IOLoop.add_handler`.

        Raises:
            ValueError: if ``fd`` (or its file descriptor) is already watched.
        """
        fileno, fileobj = self.split_fd(fd)
        if fileno in self.handlers:
            raise ValueError(f"fd {fileno} added twice")
        self.handlers[fileno] = (fileobj, handler)
        if events & IOLoop.READ:
            self.selector_loop.add_reader(fileno, self._handle_events, fileno, IOLoop.READ)
            self.readers.add(fileno)
        if events & IOLoop.WRITE:
            self.selector_loop.add_writer(fileno, self._handle_events, fileno, IOLoop.WRITE)
            self.writers.add(fileno)

    def update_handler(self, fd: Any, events: int) -> None:
        """Change the events a watched ``fd`` is watched for.

        Raises:
            ValueError: if ``fd`` is not watched.
        """
        fileno = self.split_fd(fd)[0]
        if fileno not in self.handlers:
            raise ValueError(f"fd {fileno} has no handler to update")
        want_read = bool(events & IOLoop.READ)
        if want_read and fileno not in self.readers:
            self.selector_loop.add_reader(fileno, self._handle_events, fileno, IOLoop.READ)
            self.readers.add(fileno)
        elif not want_read and fileno in self.readers:
            self.selector_loop.remove_reader(fileno)
            self.readers.remove(fileno)
        want_write = bool(events & IOLoop.WRITE)
        if want_write and fileno not in self.writers:
            self.selector_loop.add_writer(fileno, self._handle_events, fileno, IOLoop.WRITE)
            self.writers.add(fileno)
        elif not want_write and fileno in self.writers:
            self.selector_loop.remove_writer(fileno)
            self.writers.remove(fileno)

    def remove_handler(self, fd: Any) -> None:
        """Stop watching ``fd``; a no-op if it is not watched."""
        fileno = self.split_fd(fd)[0]
        if fileno not in self.handlers:
            return
        if fileno in self.readers:
            self.selector_loop.remove_reader(fileno)
            self.readers.remove(fileno)
        if fileno in self.writers:
            self.selector_loop.remove_writer(fileno)
            self.writers.remove(fileno)
        del self.handlers[fileno]

    def _handle_events(self, fd: int, events: int) -> None:
        entry = self.handlers.get(fd)
        if entry is None:
            return
        fileobj, handler = entry
        try:
            handler(fileobj, events)
        except Exception:
            _app_log.error("Exception in I/O handler for fd %s", fd, exc_info=True)

    def start(self) -> None:
        """Run the asyncio loop until `stop` is called.

        The loop is the thread's current event loop while it runs; the
        previous one is restored afterwards. Output a server still held for
        the loop's next round is written before this returns (see
        `_write_at_stop`).
        """
        old_loop = _peek_event_loop()
        try:
            asyncio.set_event_loop(self.asyncio_loop)
            self.asyncio_loop.run_forever()
            for write_held in _writers_at_stop:
                try:
                    write_held(self.asyncio_loop)
                except Exception:
                    _app_log.error("Exception writing output at the loop's stop", exc_info=True)
        finally:
            asyncio.set_event_loop(old_loop)

    def stop(self) -> None:
        """Stop the asyncio loop after its current iteration."""
        self.asyncio_loop.stop()

    def call_at(
        self, when: float, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> object:
        """Run ``callback`` at ``when`` (on the `time` clock)."""
        # time() is the wall clock while asyncio schedules on a monotonic
        # one, so convert to a delay.
        return self.asyncio_loop.call_later(
            max(0.0, when - self.time()),
            self._run_callback,
            functools.partial(callback, *args, **kwargs),
        )

    def remove_timeout(self, timeout: object) -> None:
        """Cancel a handle from `~squall.ioloop.IOLoop.call_at`,
        `~squall.ioloop.IOLoop.call_later` or `~squall.ioloop.IOLoop.add_timeout`.
        """
        # uvloop's handles are not asyncio.Handle subclasses: accept anything
        # a loop's call_at/call_later returns, i.e. that can be cancelled.
        cancel = getattr(timeout, "cancel", None)
        if cancel is None or not callable(cancel):
            raise TypeError(f"not a timeout handle: {timeout!r}")
        cancel()

    def add_callback(self, callback: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Run ``callback`` on the next iteration; safe from any thread."""
        try:
            in_loop = asyncio.get_running_loop() is self.asyncio_loop
        except RuntimeError:
            in_loop = False
        try:
            if in_loop:
                self.asyncio_loop.call_soon(
                    self._run_callback, functools.partial(callback, *args, **kwargs)
                )
            else:
                self.asyncio_loop.call_soon_threadsafe(
                    self._run_callback, functools.partial(callback, *args, **kwargs)
                )
        except (RuntimeError, AttributeError):
            # The loop is closed or being closed (by another thread): the
            # callback could never run, so it is dropped.
            pass

    def add_callback_from_signal(
        self, callback: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> None:
        """Deprecated: use `asyncio.loop.add_signal_handler` instead."""
        warnings.warn(
            "add_callback_from_signal is deprecated",
            DeprecationWarning,
            stacklevel=2,
        )
        try:
            self.asyncio_loop.call_soon_threadsafe(
                self._run_callback, functools.partial(callback, *args, **kwargs)
            )
        except RuntimeError:
            pass

    def run_in_executor(
        self,
        executor: Optional[concurrent.futures.Executor],
        func: Callable[..., _T],
        *args: Any,
    ) -> Awaitable[_T]:
        """Run ``func(*args)`` on ``executor`` through the asyncio loop."""
        return self.asyncio_loop.run_in_executor(executor, func, *args)

    def set_default_executor(self, executor: concurrent.futures.Executor) -> None:
        """Set the asyncio loop's default executor."""
        self.asyncio_loop.set_default_executor(executor)


class AsyncIOMainLoop(BaseAsyncIOLoop):
    """The `~squall.ioloop.IOLoop` of an asyncio loop that already exists.

    `~squall.ioloop.IOLoop.current` creates one for the running (or current) asyncio loop;
    it need not be created directly.
    """

    def initialize(self, **kwargs: Any) -> None:  # type: ignore[override]
        """Wrap the thread's current asyncio loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # Not asyncio.get_event_loop(): with no loop set it warns from
            # 3.12 and raises from 3.14. Make one current, as current() does.
            current = _peek_event_loop()
            if current is None:
                current = asyncio.new_event_loop()
                asyncio.set_event_loop(current)
            loop = current
        super().initialize(loop, **kwargs)

    def _make_current(self) -> None:
        # The wrapped loop is the current one already.
        pass


class AsyncIOLoop(BaseAsyncIOLoop):
    """An `~squall.ioloop.IOLoop` that creates and owns a new asyncio event loop.

    ``IOLoop()`` builds one. Closing it closes the asyncio loop. Pass
    ``asyncio_loop=`` to wrap a given loop instead of a new one.
    """

    def initialize(self, **kwargs: Any) -> None:  # type: ignore[override]
        """Create the asyncio loop (unless one is given) and wrap it."""
        self.is_current = False
        self.old_asyncio: Optional[asyncio.AbstractEventLoop] = None
        created: Optional[asyncio.AbstractEventLoop] = None
        if "asyncio_loop" not in kwargs:
            kwargs["asyncio_loop"] = created = asyncio.new_event_loop()
        try:
            super().initialize(**kwargs)
        except BaseException:
            if created is not None:
                created.close()
            raise

    def close(self, all_fds: bool = False) -> None:
        """Close the loop; if it is current, restore the previous one first."""
        if self.is_current:
            self._clear_current_hook()
        super().close(all_fds=all_fds)

    def _make_current(self) -> None:
        if not self.is_current:
            self.old_asyncio = _peek_event_loop()
            self.is_current = True
        asyncio.set_event_loop(self.asyncio_loop)

    def _clear_current_hook(self) -> None:
        if self.is_current:
            asyncio.set_event_loop(self.old_asyncio)
            self.is_current = False


def to_tornado_future(asyncio_future: asyncio.Future[_T]) -> asyncio.Future[_T]:
    """Return ``asyncio_future``: asyncio futures are Squall futures already."""
    return asyncio.ensure_future(asyncio_future)


def to_asyncio_future(tornado_future: Any) -> asyncio.Future[Any]:
    """Wrap a future, coroutine or other yieldable object as an asyncio future.

    Raises:
        TypeError: if the object is not awaitable.
    """
    fut = _as_future(tornado_future)
    if fut is None:
        raise TypeError(f"cannot convert {tornado_future!r} to an asyncio future")
    return fut


# --- Selector thread ---------------------------------------------------------

# Selector threads still running, closed at interpreter exit.
_selector_loops: set[SelectorThread] = set()


def _atexit_callback() -> None:
    for selector in list(_selector_loops):
        selector.close()


atexit.register(_atexit_callback)


class SelectorThread:
    """Run ``add_reader``/``add_writer`` callbacks for a loop that lacks them.

    A thread of its own waits in ``select``; when file descriptors become
    ready it hands them to ``real_loop``, whose thread runs the callbacks,
    and waits until they have run before selecting again (readiness is
    level-triggered, so selecting earlier would report them twice).
    """

    def __init__(self, real_loop: asyncio.AbstractEventLoop) -> None:
        self._real_loop = real_loop
        self._lock = threading.Lock()
        self._readers: dict[int, Callable[[], None]] = {}
        self._writers: dict[int, Callable[[], None]] = {}
        self._closed = False
        # Written to wake the thread when the set of fds changes or on close.
        self._waker_r, self._waker_w = socket.socketpair()
        self._waker_r.setblocking(False)
        self._waker_w.setblocking(False)
        self._dispatched = threading.Event()
        self._thread: Optional[threading.Thread] = None
        _selector_loops.add(self)
        # The thread is started from the loop, by an async generator: when
        # the loop shuts its async generators down (asyncio.run does), the
        # generator's cleanup stops the thread.
        self._thread_manager_task: Optional[asyncio.Future[None]] = None
        self._thread_manager_step: Optional[Awaitable[None]] = None
        real_loop.call_soon(self._start_thread_manager)

    def _start_thread_manager(self) -> None:
        if self._closed:
            return
        self._thread_manager_step = self._thread_manager().__anext__()
        self._thread_manager_task = asyncio.ensure_future(
            self._thread_manager_step, loop=self._real_loop
        )

    async def _thread_manager(self) -> AsyncIterator[None]:
        self._thread = threading.Thread(target=self._run, name="squall selector", daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self.close()

    def _wake(self) -> None:
        try:
            self._waker_w.send(b"x")
        except OSError:
            # Full (a wake-up is pending anyway) or closed.
            pass

    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                readers = list(self._readers)
                writers = list(self._writers)
            try:
                rs, ws, xs = select.select(
                    readers + [self._waker_r.fileno()], writers, readers + writers
                )
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                # An fd was closed while registered; report every fd as
                # ready so that its handler finds out and removes it.
                rs, ws, xs = readers, writers, []
            except ValueError:
                # A negative fd; the owner closed it.
                rs, ws, xs = readers, writers, []
            waker = self._waker_r.fileno()
            if waker in rs:
                try:
                    while self._waker_r.recv(4096):
                        pass
                except OSError:
                    pass
                rs = [fd for fd in rs if fd != waker]
            ready_r = set(rs) | set(xs)
            ready_w = set(ws) | set(xs)
            if not ready_r and not ready_w:
                continue
            self._dispatched.clear()
            with self._lock:
                # Checked after clear(): close() sets the event after
                # setting _closed, so the wait below cannot miss it.
                if self._closed:
                    return
            try:
                self._real_loop.call_soon_threadsafe(self._dispatch, ready_r, ready_w)
            except RuntimeError:
                return
            self._dispatched.wait()

    def _dispatch(self, ready_r: set[int], ready_w: set[int]) -> None:
        try:
            for fd in ready_r:
                callback = self._readers.get(fd)
                if callback is not None:
                    self._call(callback)
            for fd in ready_w:
                callback = self._writers.get(fd)
                if callback is not None:
                    self._call(callback)
        finally:
            self._dispatched.set()

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            _app_log.error("Exception in selector callback %r", callback, exc_info=True)

    def add_reader(self, fd: Any, callback: Callable[..., None], *args: Any) -> None:
        """Call ``callback(*args)`` when ``fd`` is readable."""
        with self._lock:
            self._readers[_fileno(fd)] = _in_caller_context(callback, args)
        self._wake()

    def add_writer(self, fd: Any, callback: Callable[..., None], *args: Any) -> None:
        """Call ``callback(*args)`` when ``fd`` is writable."""
        with self._lock:
            self._writers[_fileno(fd)] = _in_caller_context(callback, args)
        self._wake()

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading; returns whether it was watched."""
        with self._lock:
            found = self._readers.pop(_fileno(fd), None) is not None
        self._wake()
        return found

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing; returns whether it was watched."""
        with self._lock:
            found = self._writers.pop(_fileno(fd), None) is not None
        self._wake()
        return found

    def close(self) -> None:
        """Stop the thread and release its sockets; safe to call twice."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._readers.clear()
            self._writers.clear()
        task = self._thread_manager_task
        if task is not None and not task.done():
            # Scheduled but never run (the loop stopped first): it never
            # will, so it must not be reported as destroyed while pending.
            task.cancel()
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            # Nor may the generator step it wraps be reported as never
            # awaited (Python 3.13 warns for an async generator's asend).
            step = self._thread_manager_step
            close_step = getattr(step, "close", None)
            if close_step is not None:
                close_step()
            get_coro = getattr(task, "get_coro", None)
            coro = get_coro() if get_coro is not None else None
            if coro is not None and hasattr(coro, "close"):
                coro.close()
        self._thread_manager_step = None
        self._wake()
        # Release a thread waiting for a dispatch that will never run.
        self._dispatched.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._waker_r.close()
        self._waker_w.close()
        _selector_loops.discard(self)


def _in_caller_context(callback: Callable[..., Any], args: tuple[Any, ...]) -> Callable[[], None]:
    # Like the loop's own add_reader, run the callback in the context of
    # the code that registered it, not in the selector thread's.
    context = contextvars.copy_context()
    return functools.partial(context.run, callback, *args)


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else int(fd.fileno())


class AddThreadSelectorEventLoop(asyncio.AbstractEventLoop):
    """Wrap an event loop, adding ``add_reader`` and friends from a `SelectorThread`.

    Every other attribute is the wrapped loop's.
    """

    MY_ATTRIBUTES = {
        "_real_loop",
        "_selector",
        "add_reader",
        "add_writer",
        "close",
        "remove_reader",
        "remove_writer",
    }

    def __getattribute__(self, name: str) -> Any:
        if name in AddThreadSelectorEventLoop.MY_ATTRIBUTES:
            return super().__getattribute__(name)
        return getattr(super().__getattribute__("_real_loop"), name)

    def __init__(self, real_loop: asyncio.AbstractEventLoop) -> None:
        self._real_loop = real_loop
        self._selector = SelectorThread(real_loop)

    def close(self) -> None:
        """Stop the selector thread and close the wrapped loop."""
        self._selector.close()
        self._real_loop.close()

    def add_reader(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        """Call ``callback(*args)`` when ``fd`` is readable."""
        self._selector.add_reader(fd, callback, *args)

    def add_writer(self, fd: Any, callback: Callable[..., Any], *args: Any) -> None:  # type: ignore[override]
        """Call ``callback(*args)`` when ``fd`` is writable."""
        self._selector.add_writer(fd, callback, *args)

    def remove_reader(self, fd: Any) -> bool:
        """Stop watching ``fd`` for reading."""
        return self._selector.remove_reader(fd)

    def remove_writer(self, fd: Any) -> bool:
        """Stop watching ``fd`` for writing."""
        return self._selector.remove_writer(fd)


def __getattr__(name: str) -> Any:
    # AnyThreadEventLoopPolicy is built on first access because asyncio's
    # policy classes are themselves deprecated in newer Pythons.
    if name == "AnyThreadEventLoopPolicy":
        warnings.warn(
            "AnyThreadEventLoopPolicy is deprecated, use asyncio.run "
            "or asyncio.new_event_loop instead",
            DeprecationWarning,
            stacklevel=2,
        )
        return _any_thread_policy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _any_thread_policy_class() -> type[asyncio.AbstractEventLoopPolicy]:
    class AnyThreadEventLoopPolicy(asyncio.DefaultEventLoopPolicy):
        """An event loop policy that creates a loop for any thread on demand."""

        def get_event_loop(self) -> asyncio.AbstractEventLoop:
            try:
                loop: asyncio.AbstractEventLoop = super().get_event_loop()
                return loop
            except RuntimeError:
                loop = self.new_event_loop()
                self.set_event_loop(loop)
                return loop

    AnyThreadEventLoopPolicy.__module__ = __name__
    return AnyThreadEventLoopPolicy
