"""The concrete streams: `IOStream` (sockets), `SSLIOStream` (TLS), `PipeIOStream` (pipes)."""

from __future__ import annotations

import errno
import io
import os
import socket
import ssl
from typing import Any, Optional, Union

from squall.concurrent import Future
from squall.iostream._base import (
    _ERROR,
    _READ,
    _WRITE,
    FD_SLOTS,
    BaseIOStream,
    _mark_retrieved,
    gen_log,
)
from squall.iostream._errors import StreamClosedError, is_connreset

__all__ = ["IOStream", "PipeIOStream", "SSLIOStream"]

_SSLOptions = Union[dict[str, Any], ssl.SSLContext]

_default_contexts: dict[bool, ssl.SSLContext] = {}


def _default_ssl_context(server_side: bool) -> ssl.SSLContext:
    """The context used when no ``ssl_options`` are given: verify peers, as Python does."""
    context = _default_contexts.get(server_side)
    if context is None:
        purpose = ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH
        context = _default_contexts[server_side] = ssl.create_default_context(purpose)
    return context


def _wrap(
    sock: socket.socket,
    ssl_options: _SSLOptions,
    server_hostname: Optional[str],
    server_side: bool,
) -> ssl.SSLSocket:
    from squall.netutil import ssl_wrap_socket

    return ssl_wrap_socket(
        sock,
        ssl_options,
        server_hostname=server_hostname,
        server_side=server_side,
        do_handshake_on_connect=False,
    )


class IOStream(BaseIOStream):
    """A stream over a non-blocking socket.

    The socket may be connected already (for instance from ``accept()``) or
    not, in which case call `connect`. Data written before the connection
    is up is sent once it is.

    Args:
        socket: the socket; it is made non-blocking.
        *args: passed to `BaseIOStream` (max_buffer_size, read_chunk_size,
            max_write_buffer_size).
        **kwargs: as ``*args``.
    """

    __slots__ = ("socket", *FD_SLOTS)

    _short_io_means_blocked = True
    _read_slots = True

    def __init__(self, socket: socket.socket, *args: Any, **kwargs: Any) -> None:
        self.socket = socket
        self.socket.setblocking(False)
        super().__init__(*args, **kwargs)
        if type(self).read_from_fd is _stock_read_from_fd:
            self._recv = socket.recv
        if type(self).write_to_fd is _stock_write_to_fd:
            self._send = socket.send

    def fileno(self) -> socket.socket:
        """Return the socket (the IOLoop accepts objects with ``fileno()``)."""
        return self.socket

    def close_fd(self) -> None:
        """Close the socket; ``socket`` is None from then on."""
        self.socket.close()
        # Programs test ``stream.socket is None`` to know the connection is
        # gone (and fileno() then says None too), as on Tornado.
        self.socket = None  # type: ignore[assignment]

    def get_fd_error(self) -> Optional[Exception]:
        """Return the socket's pending error (``SO_ERROR``) as an `OSError`, if any."""
        code = self.socket.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            return OSError(code, os.strerror(code))
        return None

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Receive into ``buf``; None if nothing is there."""
        try:
            return self.socket.recv_into(buf)
        except BlockingIOError:
            return None

    def write_to_fd(self, data: memoryview) -> int:
        """Send ``data``; return the bytes sent."""
        return self.socket.send(data)

    def connect(self, address: Any, server_hostname: Optional[str] = None) -> Future[Any]:
        """Connect the socket to ``address`` without blocking.

        Writes made before the connection is up are sent once it is.

        Args:
            address: as for ``socket.connect`` (a ``(host, port)`` pair for IP).
            server_hostname: for `SSLIOStream`, the name to verify the
                server's certificate against; unused by a plain stream.

        Returns:
            A Future resolving to this stream once connected; it fails with
            `StreamClosedError` (cause in ``error``) if the connection fails.

        Raises:
            StreamClosedError: the stream is already closed (its Future
                would never resolve).
        """
        self._check_closed()
        self._connecting = True
        future: Future[Any] = self._new_future()
        self._connect_future = future
        try:
            self.socket.connect(address)
        except BlockingIOError:
            pass
        except OSError as e:
            # No log line: the error reaches the caller through the Future.
            self.close(exc_info=e)
            return future
        except BaseException:
            self._connecting = False
            self._connect_future = None
            raise
        self._set_state(_WRITE | _ERROR)
        return future

    def start_tls(
        self,
        server_side: bool,
        ssl_options: Optional[_SSLOptions] = None,
        server_hostname: Optional[str] = None,
    ) -> Future[SSLIOStream]:
        """Switch this connection to TLS; resolve with the new `SSLIOStream`.

        This stream is unusable afterwards; its close callback moves to the
        new stream. The stream must be idle: no pending reads or writes and
        nothing buffered. Cancelling the returned Future closes the connection.

        Args:
            server_side: whether this end is the TLS server.
            ssl_options: an `ssl.SSLContext` or a dict of ``ssl.wrap_socket``
                arguments; by default, Python's default context for the side.
            server_hostname: the name to verify the server's certificate
                against (client side).

        Raises:
            ValueError: if the stream is not idle.
        """
        if (
            self._read_future is not None
            or self._write_futures
            or self._connecting
            or self._closed
            or self._buffered()
            or len(self._write_buffer)
        ):
            raise ValueError("IOStream is not idle; cannot convert to SSL")
        if ssl_options is None:
            ssl_options = _default_ssl_context(server_side)
        sock = self.socket
        if self._state is not None:
            self._state = None
            self.io_loop.remove_handler(sock)
        ssl_sock = _wrap(sock, ssl_options, server_hostname, server_side)
        # The socket now belongs to the new stream; this one ends without
        # closing it or running callbacks (and, closed, lets go of it).
        self._closed = True
        self.socket = None  # type: ignore[assignment]
        close_callback = self._close_callback
        self._close_callback = None
        future: Future[SSLIOStream] = self._new_future()
        stream = SSLIOStream(
            ssl_sock,
            ssl_options=ssl_options,
            max_buffer_size=self.max_buffer_size,
            read_chunk_size=self.read_chunk_size,
            max_write_buffer_size=self.max_write_buffer_size,
        )
        stream._ssl_connect_future = future

        def on_done(f: Future[SSLIOStream]) -> None:
            if f.cancelled():
                stream.close()

        future.add_done_callback(on_done)
        stream.set_close_callback(close_callback)
        return future

    def set_nodelay(self, value: bool) -> None:
        """Set ``TCP_NODELAY`` on a TCP socket (no-op for other kinds)."""
        if self._closed or self.socket.family not in (socket.AF_INET, socket.AF_INET6):
            return
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1 if value else 0)
        except OSError as e:
            # The peer may have gone already, which some systems report as EINVAL.
            if e.errno != errno.EINVAL and not is_connreset(e):
                raise


# The methods as defined: a replacement on the class (a test's or an
# instrumentation's patch of IOStream.read_from_fd) is called, not bypassed.
_stock_read_from_fd = IOStream.read_from_fd
_stock_write_to_fd = IOStream.write_to_fd


class SSLIOStream(IOStream):
    """A TLS stream over a non-blocking socket.

    The handshake runs without blocking before any data moves; reads and
    writes made earlier wait for it. Use `wait_for_handshake` to know when
    it is done. A handshake failure is logged as "SSL Error" and closes the
    stream; the handshake Future fails with the real `ssl.SSLError`.

    Args:
        *args: as for `IOStream`. The socket is either an ``ssl.SSLSocket``
            made with ``do_handshake_on_connect=False`` (server side, as
            ``TCPServer`` does) or a plain socket to `connect` (client side).
        ssl_options: an `ssl.SSLContext` or a dict of ``ssl.wrap_socket``
            arguments, used when this stream wraps the socket itself.
        **kwargs: as for `IOStream`.
    """

    __slots__ = (
        "_ssl_options",
        "_ssl_accepting",
        "_ssl_connect_future",
        "_server_hostname",
        "_handshake_reading",
        "_handshake_writing",
    )

    _short_io_means_blocked = False

    def __init__(
        self, *args: Any, ssl_options: Optional[_SSLOptions] = None, **kwargs: Any
    ) -> None:
        # Only a client stream that wraps its own socket uses these; the
        # default context is made when that happens.
        self._ssl_options: Optional[_SSLOptions] = ssl_options
        self._ssl_accepting = True
        self._ssl_connect_future: Optional[Future[Any]] = None
        self._server_hostname: Optional[str] = None
        self._handshake_reading = False
        self._handshake_writing = False
        super().__init__(*args, **kwargs)
        try:
            self.socket.getpeername()
        except OSError:
            pass
        else:
            # Connected already: start the handshake on the next loop
            # iteration (the socket is writable at once).
            self._set_state(_WRITE | _ERROR)

    def reading(self) -> bool:
        """Whether a read is pending, or the handshake waits to read."""
        return self._handshake_reading or super().reading()

    def writing(self) -> bool:
        """Whether data waits to be sent, or the handshake waits to write."""
        return self._handshake_writing or super().writing()

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Receive decrypted bytes into ``buf``; None if none are ready."""
        if self._ssl_accepting:
            return None
        try:
            return self.socket.recv_into(buf)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
            return None

    def write_to_fd(self, data: memoryview) -> int:
        """Encrypt and send ``data``; return the bytes taken (0 if it would block)."""
        try:
            return self.socket.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            return 0

    def connect(self, address: Any, server_hostname: Optional[str] = None) -> Future[Any]:
        """Connect and complete the TLS handshake.

        Args:
            address: as for `IOStream.connect`.
            server_hostname: the name for SNI and certificate verification.

        Returns:
            A Future resolving to this stream once the handshake is done.
        """
        self._server_hostname = server_hostname
        connected = super().connect(address, server_hostname=None)
        # Its failure is reported through the handshake Future.
        connected.add_done_callback(_mark_retrieved)
        return self.wait_for_handshake()

    def wait_for_handshake(self) -> Future[Any]:
        """Return a Future resolving to this stream when the TLS handshake is done.

        Useful on the server side, where the handshake starts by itself;
        reads and writes wait for it anyway.

        Raises:
            RuntimeError: if a previous call's Future has not resolved yet.
        """
        if self._ssl_connect_future is not None:
            raise RuntimeError("Already waiting")
        future: Future[Any] = self._new_future()
        if not self._ssl_accepting:
            # The handshake succeeded; a close since then does not undo that.
            future.set_result(self)
        elif self._closed:
            future.set_exception(self._handshake_error())
            _mark_retrieved(future)
        else:
            self._ssl_connect_future = future
        return future

    def _handshake_error(self) -> BaseException:
        # A handshake waiter wants the TLS error itself, not a wrapper.
        if self.error is not None:
            return self.error
        return StreamClosedError()

    def _fail_setup_futures(self) -> None:
        future = self._ssl_connect_future
        if future is not None:
            self._ssl_connect_future = None
            if not future.done():
                future.set_exception(self._handshake_error())
                _mark_retrieved(future)

    _has_setup_phase = True

    def _in_setup(self) -> bool:
        return self._connecting or self._ssl_accepting

    def _handle_events(self, fd: Any, events: int) -> None:
        if self._ssl_accepting and not self._connecting:
            if not self._closed:
                try:
                    self._do_ssl_handshake()
                except Exception as e:
                    gen_log.error("Uncaught exception, closing connection.", exc_info=True)
                    self.close(exc_info=e)
            return
        super()._handle_events(fd, events)

    def _on_connected(self) -> None:
        # The IOLoop knows the fd by the socket object, which wrapping
        # replaces: re-register under the new one.
        if self._state is not None:
            self._state = None
            self.io_loop.remove_handler(self.socket)
        options = self._ssl_options
        if options is None:
            options = _default_ssl_context(False)
        try:
            self.socket = _wrap(self.socket, options, self._server_hostname, False)
        except Exception as e:
            self.close(exc_info=e)
            return
        self._do_ssl_handshake()

    def _do_ssl_handshake(self) -> None:
        self._handshake_reading = False
        self._handshake_writing = False
        try:
            self.socket.do_handshake()  # type: ignore[attr-defined]
        except ssl.SSLWantReadError:
            self._handshake_reading = True
            self._set_state(_READ | _ERROR)
            return
        except ssl.SSLWantWriteError:
            self._handshake_writing = True
            self._set_state(_WRITE | _ERROR)
            return
        except ssl.SSLError as e:
            if not isinstance(e, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
                gen_log.warning("SSL Error on %s %s: %s", self._fd_label(), self._peer(), e)
            self.close(exc_info=e)
            return
        except OSError as e:
            # A peer that hangs up mid-handshake is not worth a log line.
            if not (is_connreset(e) or e.errno == errno.EBADF):
                gen_log.warning("SSL Error on %s %s: %s", self._fd_label(), self._peer(), e)
            self.close(exc_info=e)
            return
        self._ssl_accepting = False
        self._drained = False
        future = self._ssl_connect_future
        if future is not None:
            self._ssl_connect_future = None
            if not future.done():
                future.set_result(self)
        self._on_handshake_done()

    def _on_handshake_done(self) -> None:
        BaseIOStream._on_connected(self)

    def _peer(self) -> Any:
        try:
            return self.socket.getpeername()
        except OSError:
            return "(not connected)"


class PipeIOStream(BaseIOStream):
    """A stream over a pipe (or any non-socket fd the IOLoop can watch).

    The stream takes ownership of ``fd`` and closes it. A pipe is one-way,
    so a stream is either for reading or for writing.

    Args:
        fd: the file descriptor; it is made non-blocking.
        *args: passed to `BaseIOStream`.
        **kwargs: as ``*args``.
    """

    __slots__ = ("fd", "_fio", *FD_SLOTS)

    _short_io_means_blocked = True
    _read_slots = True

    def __init__(self, fd: int, *args: Any, **kwargs: Any) -> None:
        self.fd = fd
        self._fio = io.FileIO(self.fd, "r+")
        os.set_blocking(fd, False)
        super().__init__(*args, **kwargs)

    def fileno(self) -> int:
        """Return the file descriptor (an int, for ``os.read`` and the like)."""
        return self.fd

    def close_fd(self) -> None:
        """Close the fd."""
        self._fio.close()

    def write_to_fd(self, data: memoryview) -> int:
        """Write ``data``; return the bytes written."""
        return os.write(self.fd, data)

    def read_from_fd(self, buf: Union[bytearray, memoryview]) -> Optional[int]:
        """Read into ``buf``; None if nothing is there."""
        try:
            return self._fio.readinto(buf)
        except OSError as e:
            if e.errno == errno.EBADF:
                # Watching the write end of a pipe for its close reports it
                # readable, and reading it fails so: that is the close.
                self.close(exc_info=e)
                return None
            raise
