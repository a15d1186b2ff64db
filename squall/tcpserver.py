"""A non-blocking TCP server that hands each connection to `TCPServer.handle_stream`.

Three ways to start one, as in Tornado:

1. `TCPServer.listen` in a running event loop (one process).
2. `~squall.netutil.bind_sockets`, `~squall.process.fork_processes`, then `TCPServer.add_sockets` in each
   worker's event loop (several processes sharing the listening sockets).
3. `TCPServer.bind` then `TCPServer.start` (deprecated: it forks after the
   server object exists, which is easy to get wrong). Deprecated in the
   documentation only, as in Tornado: no warning is emitted, because
   programs that turn warnings into errors (Bokeh's tests) call them.

With ``ssl_options`` the server speaks TLS: each accepted socket is wrapped
and handed over as an `~squall.iostream.SSLIOStream` whose handshake runs on its own; a
handshake failure is logged by the stream ("SSL Error", as a warning, with
no traceback) and closes it.
"""

from __future__ import annotations

import errno
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Optional, Union

from squall import gen, process
from squall._sizes import byte_count
from squall.ioloop import IOLoop
from squall.iostream import IOStream, SSLIOStream
from squall.log import app_log, gen_log
from squall.netutil import (
    _DEFAULT_BACKLOG,
    _check_ssl_option_keys,
    add_accept_handler,
    bind_sockets,
    ssl_options_to_context,
)

__all__ = ["TCPServer"]

# Errors wrapping an accepted socket in TLS that only mean the client left
# already (EINVAL is how macOS says it).
_GONE_ERRNOS = frozenset({errno.ECONNABORTED, errno.ECONNRESET, errno.ENOTCONN, errno.EINVAL})


def _check_ssl_options(ssl_options: Union[dict[str, Any], ssl.SSLContext]) -> None:
    """Checks a Tornado-style ``ssl_options`` dict's files by name.

    A typo gets a message that names the file, at construction rather than at
    the first connection. No context is made here: the options stay as given
    until one is needed (a test that mocks `ssl.SSLContext` passes a mock, and
    Tornado never looks into it before a connection arrives).
    """
    if isinstance(ssl_options, dict):
        if "certfile" not in ssl_options:
            # (Tornado's wording, which programs' tests match.)
            raise KeyError('missing key "certfile" in ssl_options')
        for key in ("certfile", "keyfile"):
            path = ssl_options.get(key)
            if path is not None and not os.path.exists(path):
                raise ValueError(f'{key} "{path}" does not exist')
        _check_ssl_option_keys(ssl_options)


# The ssl_options keys that name files a context is read from.
_SSL_FILE_KEYS = ("certfile", "keyfile", "ca_certs")


def _ssl_files_state(ssl_options: dict[str, Any]) -> Optional[tuple[Any, ...]]:
    """What the files an ``ssl_options`` dict names look like on disk now
    (modification time, size, inode of each); None while one is missing."""
    state: list[Any] = []
    for key in _SSL_FILE_KEYS:
        path = ssl_options.get(key)
        if path is None:
            state.append(None)
            continue
        try:
            st = os.stat(path)
        except (OSError, TypeError, ValueError):
            return None
        state.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(state)


def _log_unreadable_ssl_files(exc: BaseException) -> None:
    gen_log.warning(
        "ssl_options: the certificate files changed but do not load (%s); "
        "serving the previous certificate",
        exc,
    )


class TCPServer:
    """A non-blocking, single-threaded TCP server.

    Subclass it and override `handle_stream`, which gets an `~squall.iostream.IOStream` (an
    `~squall.iostream.SSLIOStream` with ``ssl_options``) for each accepted connection::

        class EchoServer(TCPServer):
            async def handle_stream(self, stream, address):
                while True:
                    try:
                        line = await stream.read_until(b"\\n")
                    except StreamClosedError:
                        break
                    await stream.write(line)

    Args:
        ssl_options: an `ssl.SSLContext`, or a dict of the old
            ``ssl.wrap_socket`` arguments (``certfile`` required, plus
            ``keyfile``, ``cert_reqs``, ``ca_certs``, ``ciphers``,
            ``ssl_version``), to serve TLS. A dict is turned into a context
            once, when the first listener or connection needs it.
        max_buffer_size: passed to each stream.
        read_chunk_size: passed to each stream.

    Raises:
        KeyError: if an ``ssl_options`` dict has no ``certfile``.
        ValueError: if its ``certfile`` or ``keyfile`` does not exist.

    A certificate or key that cannot be loaded raises `OSError` or
    `ssl.SSLError` where the context is first needed: `~squall.httpserver.HTTPServer`'s
    `listen`/`add_sockets`, or a plain `TCPServer`'s first connection
    (logged, and the connection closed). The files of a dict are read again
    for the next connection once they change on disk (a renewed
    certificate); files that then do not load are logged and the previous
    certificate serves on.
    """

    def __init__(
        self,
        ssl_options: Union[dict[str, Any], ssl.SSLContext, None] = None,
        max_buffer_size: Optional[int] = None,
        read_chunk_size: Optional[int] = None,
    ) -> None:
        self.ssl_options = ssl_options
        if ssl_options is not None:
            _check_ssl_options(ssl_options)
        # (the options it was made from, the context): made on first use.
        self._ssl_made: Optional[tuple[Any, ssl.SSLContext]] = None
        # How the files of an ssl_options dict looked when last read (see
        # _ssl_files_replaced).
        self._ssl_files: Optional[tuple[Any, ...]] = None
        self.max_buffer_size = byte_count("max_buffer_size", max_buffer_size)
        self.read_chunk_size = byte_count("read_chunk_size", read_chunk_size)
        # Listening sockets by file descriptor, with the function that stops
        # accepting on each.
        self._sockets: dict[int, socket.socket] = {}
        self._handlers: dict[int, Callable[[], None]] = {}
        # Bound by bind() and waiting for start().
        self._pending_sockets: list[socket.socket] = []
        self._started = False

    @property
    def _ssl_context(self) -> Optional[ssl.SSLContext]:
        """The server's TLS context, made from ``ssl_options`` the first time it is needed."""
        options = self.ssl_options
        if not isinstance(options, dict):
            # A context (or what a test put in its place) is used as given,
            # never inspected: isinstance against a mocked ssl.SSLContext raises.
            return options
        made = self._ssl_made
        if made is None or made[0] is not options:
            self._ssl_files = _ssl_files_state(options)
            made = self._ssl_made = (options, ssl_options_to_context(options, server_side=True))
        return made[1]

    def _ssl_files_replaced(self) -> bool:
        """Whether the files of the ``ssl_options`` dict changed on disk since
        they were last read or looked at (a renewed certificate).

        Tornado reads them again for every connection, so a certificate
        replaced on disk is served from the next connection on; Squall keeps
        the context and looks at the files' state (one ``stat`` each) instead.
        """
        options = self.ssl_options
        if not isinstance(options, dict) or self._ssl_made is None:
            return False
        state = _ssl_files_state(options)
        if state is None or state == self._ssl_files:
            # Unchanged, or a file missing (mid-replacement): keep serving.
            return False
        self._ssl_files = state
        return True

    def _reread_ssl_files(self) -> None:
        """Make the context again from the dict's files, if they were replaced."""
        if not self._ssl_files_replaced():
            return
        options = self.ssl_options
        assert isinstance(options, dict)
        try:
            context = ssl_options_to_context(options, server_side=True)
        except (OSError, ssl.SSLError, ValueError) as e:
            _log_unreadable_ssl_files(e)
            return
        self._ssl_made = (options, context)

    def listen(
        self,
        port: int,
        address: Optional[str] = None,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        backlog: int = _DEFAULT_BACKLOG,
        flags: Optional[int] = None,
        reuse_port: bool = False,
    ) -> None:
        """Starts accepting connections on ``port``, in the current IOLoop.

        The arguments are those of `squall.netutil.bind_sockets`; by default
        the server listens on every interface, IPv4 and IPv6.
        """
        sockets = bind_sockets(
            port,
            address=address,
            family=family,
            backlog=backlog,
            flags=flags,
            reuse_port=reuse_port,
        )
        self.add_sockets(sockets)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Starts accepting connections on listening sockets, in the current IOLoop.

        Use with `squall.netutil.bind_sockets` and
        `squall.process.fork_processes` to control how sockets are made and
        shared between processes.
        """
        for sock in sockets:
            fd = sock.fileno()
            self._sockets[fd] = sock
            self._handlers[fd] = add_accept_handler(sock, self._handle_connection)

    def add_socket(self, socket: socket.socket) -> None:
        """Starts accepting connections on one listening socket; see `add_sockets`."""
        self.add_sockets([socket])

    def bind(
        self,
        port: int,
        address: Optional[str] = None,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        backlog: int = _DEFAULT_BACKLOG,
        flags: Optional[int] = None,
        reuse_port: bool = False,
    ) -> None:
        """Binds listening sockets now, to be served once `start` is called.

        The arguments are those of `listen`. May be called several times
        before `start` to listen on several addresses.

        .. deprecated:: 6.3
            Use `listen`, or `~squall.netutil.bind_sockets`, `~squall.process.fork_processes` and
            `add_sockets`.
        """
        sockets = bind_sockets(
            port,
            address=address,
            family=family,
            backlog=backlog,
            flags=flags,
            reuse_port=reuse_port,
        )
        if self._started:
            self.add_sockets(sockets)
        else:
            self._pending_sockets.extend(sockets)

    def start(self, num_processes: Optional[int] = 1, max_restarts: Optional[int] = None) -> None:
        """Serves the sockets of `bind`, after forking workers if asked.

        With ``num_processes`` other than 1, `~squall.process.fork_processes` runs first (see
        there: None or <= 0 means one per CPU), and the sockets are served in
        each worker; the parent never returns. Only then may the IOLoop be
        created, so do not touch it before calling this.

        Args:
            num_processes: how many processes serve.
            max_restarts: passed to `~squall.process.fork_processes`.

        Raises:
            RuntimeError: if called twice.

        .. deprecated:: 6.3
            Use `listen`, or `~squall.netutil.bind_sockets`, `~squall.process.fork_processes` and
            `add_sockets`.
        """
        if self._started:
            raise RuntimeError("TCPServer.start() was already called")
        self._started = True
        if num_processes != 1:
            # Looked up now, not imported by name: a test's mock of
            # tornado.process.fork_processes must take effect here.
            process.fork_processes(num_processes, max_restarts)
        sockets, self._pending_sockets = self._pending_sockets, []
        self.add_sockets(sockets)

    def stop(self) -> None:
        """Stops accepting connections and closes the listening sockets.

        Connections already accepted stay open. Calling it again does nothing;
        it may be called from `handle_stream`.
        """
        for fd, sock in list(self._sockets.items()):
            self._handlers.pop(fd)()
            sock.close()
        self._sockets.clear()
        for sock in self._pending_sockets:
            sock.close()
        self._pending_sockets = []

    def handle_stream(self, stream: IOStream, address: Any) -> Optional[Awaitable[None]]:
        """Handles a new connection; override this.

        May be a coroutine: an exception it ends with is logged (to
        ``squall.application``), not raised.

        Args:
            stream: the connection; an `~squall.iostream.SSLIOStream` if the server has
                ``ssl_options`` (its handshake may not be done yet).
            address: the peer's address, as ``socket.accept`` gives it.
        """
        raise NotImplementedError()

    def _handle_connection(self, connection: socket.socket, address: Any) -> None:
        if self._ssl_made is not None:
            self._reread_ssl_files()
        context = self._ssl_context
        if context is not None:
            try:
                connection = context.wrap_socket(
                    connection, server_side=True, do_handshake_on_connect=False
                )
            except (ssl.SSLError, OSError) as e:
                connection.close()
                gone = isinstance(e, ssl.SSLEOFError) or e.errno in _GONE_ERRNOS
                if not gone:
                    app_log.error("Cannot start TLS with %s", address, exc_info=True)
                return
        stream: Optional[IOStream] = None
        try:
            if context is not None:
                stream = SSLIOStream(
                    connection,
                    max_buffer_size=self.max_buffer_size,
                    read_chunk_size=self.read_chunk_size,
                )
            else:
                stream = IOStream(
                    connection,
                    max_buffer_size=self.max_buffer_size,
                    read_chunk_size=self.read_chunk_size,
                )
            handled = self.handle_stream(stream, address)
            if handled is not None:
                IOLoop.current().add_future(gen.convert_yielded(handled), _raise_outcome)
        except Exception as e:
            app_log.error("Error in connection callback", exc_info=True)
            if stream is None:
                connection.close()
            elif isinstance(e, NotImplementedError) and type(self).handle_stream is _base_handler:
                # No handler at all: nobody else holds the connection.
                stream.close()
            # A handler that failed may have handed the stream on first (to
            # a task that serves it) before it raised: the stream stays
            # open, as on Tornado. One that nothing holds is closed when it
            # is collected.


_base_handler = TCPServer.handle_stream


def _raise_outcome(future: Any) -> None:
    # Run by the IOLoop, which logs the exception as "Exception in callback".
    future.result()
