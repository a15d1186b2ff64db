"""A TCP client that resolves a name and connects with Happy Eyeballs (RFC 8305).

`TCPClient.connect` resolves the host, then races connection attempts:
addresses are tried one at a time in the family of the first address the
resolver returned (the *primary* family); the other family starts
``_INITIAL_CONNECT_TIMEOUT`` seconds later, or at once when a primary attempt
fails (RFC 8305 section 5). The first connection wins and every other
attempt is closed. The race itself is ``_Connector``, which knows nothing of
sockets: it is given a function that starts one attempt.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import numbers
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Optional, TypeVar, Union, cast

from squall import gen
from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.iostream import IOStream
from squall.netutil import Resolver

__all__ = ["TCPClient"]

_T = TypeVar("_T")

# RFC 8305 section 5 recommends 250 ms before trying the other family.
_INITIAL_CONNECT_TIMEOUT = 0.3

_PRIMARY, _SECONDARY = 0, 1

# What ``_Connector`` is given to start one attempt: (family, address) ->
# (stream, future of the connected stream). It may raise to fail at once.
_ConnectFunc = Callable[[Any, Any], tuple[Any, "Future[Any]"]]


def _format_addr(addr: Any) -> str:
    """An address for a message: ``host:port``, ``[v6 host]:port``, else ``str()``."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        if ":" in str(host):
            return f"[{host}]:{port}"
        return f"{host}:{port}"
    return str(addr)


class _Connector:
    """Races connection attempts to resolved addresses (RFC 8305).

    Each family is worked through in order, one attempt at a time; a failed
    attempt moves on to the family's next address. The secondary family
    starts when `on_timeout` fires, or as soon as a primary attempt fails.

    Attributes:
        future: resolves to ``(family, address, stream)`` of the winner; it
            fails with the last attempt's error if every attempt failed, or
            with `TimeoutError` at the connect deadline. Cancelling it closes
            every stream.
        streams: every stream made by an attempt, except the winner's.
    """

    __slots__ = (
        "io_loop",
        "connect",
        "future",
        "streams",
        "_addrs",
        "_exhausted",
        "_secondary_started",
        "_pending",
        "_last_error",
        "_delay_handle",
        "_deadline_handle",
    )

    def __init__(self, addrinfo: list[tuple[Any, Any]], connect: _ConnectFunc) -> None:
        self.io_loop = IOLoop.current()
        self.connect = connect
        self.future: Future[tuple[Any, Any, Any]] = Future()
        self.streams: set[Any] = set()
        primary, secondary = self.split(addrinfo)
        self._addrs: list[Iterator[tuple[Any, Any]]] = [iter(primary), iter(secondary)]
        self._exhausted = [False, not secondary]
        self._secondary_started = False
        # The address of each attempt in flight, by its future.
        self._pending: dict[Future[Any], Any] = {}
        self._last_error: Optional[BaseException] = None
        self._delay_handle: Optional[object] = None
        self._deadline_handle: Optional[object] = None

    @staticmethod
    def split(
        addrinfo: list[tuple[Any, Any]],
    ) -> tuple[list[tuple[Any, Any]], list[tuple[Any, Any]]]:
        """Splits ``(family, address)`` pairs into the first one's family and the rest.

        Order within each family is kept.
        """
        if not addrinfo:
            return [], []
        first_family = addrinfo[0][0]
        primary = [info for info in addrinfo if info[0] == first_family]
        secondary = [info for info in addrinfo if info[0] != first_family]
        return primary, secondary

    def start(
        self,
        timeout: float = _INITIAL_CONNECT_TIMEOUT,
        connect_timeout: Union[float, datetime.timedelta, None] = None,
    ) -> Future[tuple[Any, Any, Any]]:
        """Starts the race and returns `future`.

        Args:
            timeout: seconds before the secondary family is tried.
            connect_timeout: a deadline (on the IOLoop clock, or a timedelta
                from now) at which the whole race fails with `TimeoutError`.
        """
        self.future.add_done_callback(self._on_done)
        self._advance(_PRIMARY)
        if not self.future.done():
            if not self._secondary_started and not self._exhausted[_SECONDARY]:
                # No timer when there is no other family to start (one
                # address, or one family: the common case).
                self._delay_handle = self.io_loop.add_timeout(
                    self.io_loop.time() + timeout, self.on_timeout
                )
            if connect_timeout is not None:
                self._deadline_handle = self.io_loop.add_timeout(
                    connect_timeout, self.on_connect_timeout
                )
        return self.future

    async def winner(
        self,
        timeout: float = _INITIAL_CONNECT_TIMEOUT,
        connect_timeout: Union[float, datetime.timedelta, None] = None,
    ) -> tuple[Any, Any, Any]:
        """Starts the race (as `start`) and waits for its winner.

        A caller cancelled once the winner is known but before it resumes
        (its deadline fired in the loop iteration that connected) does not
        get the winner, which nobody would then close: it is closed here.
        Cancelling `future` itself cannot do it, as it is already done.
        """
        future = self.start(timeout, connect_timeout)
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result()[2].close()
            raise

    def on_timeout(self) -> None:
        """The secondary family's delay is over: start it if still needed."""
        self._delay_handle = None
        if not self.future.done():
            self._start_secondary()

    def on_connect_timeout(self) -> None:
        """The connect deadline has come: fail the race and close every stream."""
        self._deadline_handle = None
        if not self.future.done():
            self.future.set_exception(TimeoutError(f"Timeout {self.connecting_phase()}"))
        self.close_streams()

    def connecting_phase(self) -> str:
        """What a timeout would interrupt now, for its message.

        ``"while connecting to 192.0.2.1:80, [2001:db8::1]:80"``: the
        addresses with an attempt in flight; ``"while connecting"`` if none.
        """
        pending = ", ".join(sorted(_format_addr(addr) for addr in self._pending.values()))
        return f"while connecting to {pending}" if pending else "while connecting"

    def close_streams(self) -> None:
        """Closes every stream but the winner's."""
        for stream in self.streams:
            stream.close()

    def _start_secondary(self) -> None:
        if self._secondary_started:
            return
        self._secondary_started = True
        self._cancel_delay()
        self._advance(_SECONDARY)

    def _advance(self, family: int) -> None:
        """Starts the next attempt of ``family``, skipping addresses that fail at once."""
        addrs = self._addrs[family]
        while not self.future.done():
            info = next(addrs, None)
            if info is None:
                self._exhausted[family] = True
                self._fail_if_finished()
                return
            af, addr = info
            try:
                stream, attempt = self.connect(af, addr)
            except Exception as e:
                # A synchronous failure (say, no IPv6 on this host) counts
                # like an attempt that failed at once.
                self._last_error = e
                if family == _PRIMARY:
                    self._start_secondary()
                continue
            self.streams.add(stream)
            self._pending[attempt] = addr
            attempt.add_done_callback(
                functools.partial(self._on_attempt_done, family, af, addr, stream)
            )
            return

    def _on_attempt_done(
        self, family: int, af: Any, addr: Any, stream: Any, attempt: Future[Any]
    ) -> None:
        self._pending.pop(attempt, None)
        if attempt.cancelled():
            stream.close()
            error: Optional[BaseException] = OSError(
                f"Connection attempt to {_format_addr(addr)} was cancelled"
            )
        else:
            error = attempt.exception()
        if error is None:
            connected = attempt.result()
            if self.future.done():
                # Lost the race (or the race was called off): not needed.
                connected.close()
                return
            self.streams.discard(connected)
            self.future.set_result((af, addr, connected))
            self.close_streams()
            return
        if self.future.done():
            return
        self._last_error = error
        if family == _PRIMARY:
            self._start_secondary()
        self._advance(family)

    def _fail_if_finished(self) -> None:
        if self.future.done() or self._pending or not all(self._exhausted):
            return
        error = self._last_error
        if error is None:
            error = OSError("No addresses to connect to")
        self.future.set_exception(error)

    def _cancel_delay(self) -> None:
        if self._delay_handle is not None:
            self.io_loop.remove_timeout(self._delay_handle)
            self._delay_handle = None

    def _on_done(self, future: Future[Any]) -> None:
        self._cancel_delay()
        if self._deadline_handle is not None:
            self.io_loop.remove_timeout(self._deadline_handle)
            self._deadline_handle = None
        if future.cancelled():
            self.close_streams()


async def _await_until(
    awaitable: Awaitable[_T], deadline: Optional[float], message: Callable[[], str]
) -> _T:
    """Awaits ``awaitable``, cancelling it and raising `TimeoutError` at ``deadline``.

    Cancelling the caller cancels ``awaitable`` too.
    """
    converted: Any = gen.convert_yielded(awaitable)
    if isinstance(converted, concurrent.futures.Future):
        converted = asyncio.wrap_future(converted)
    future = cast("asyncio.Future[_T]", converted)
    if deadline is None:
        return await future
    expired = False

    def on_deadline() -> None:
        nonlocal expired
        expired = True
        future.cancel()

    io_loop = IOLoop.current()
    handle = io_loop.add_timeout(deadline, on_deadline)
    try:
        return await future
    except asyncio.CancelledError:
        if expired:
            raise TimeoutError(message()) from None
        raise
    finally:
        io_loop.remove_timeout(handle)


class TCPClient:
    """Opens TCP (and TLS) connections to a host name.

    Args:
        resolver: the `~squall.netutil.Resolver` for host names; by default a new
            ``Resolver()``, closed by `close`.
    """

    def __init__(self, resolver: Optional[Resolver] = None) -> None:
        if resolver is None:
            self.resolver = Resolver()
            self._own_resolver = True
        else:
            self.resolver = resolver
            self._own_resolver = False

    def close(self) -> None:
        """Closes the resolver, if this client made it."""
        if self._own_resolver:
            self.resolver.close()

    async def connect(
        self,
        host: str,
        port: int,
        af: socket.AddressFamily = socket.AF_UNSPEC,
        ssl_options: Union[dict[str, Any], ssl.SSLContext, None] = None,
        max_buffer_size: Optional[int] = None,
        source_ip: Optional[str] = None,
        source_port: Optional[int] = None,
        timeout: Union[float, datetime.timedelta, None] = None,
    ) -> IOStream:
        """Connects to ``host``:``port`` and returns the connected stream.

        Args:
            host: a host name or address literal.
            port: the port.
            af: ``AF_INET`` or ``AF_INET6`` to keep to one family.
            ssl_options: an `ssl.SSLContext` or ``ssl_options`` dict: the
                connection then does a TLS handshake (checking the
                certificate against ``host``) and an `~squall.iostream.SSLIOStream` is returned.
            max_buffer_size: passed to the stream.
            source_ip: the local address to connect from.
            source_port: the local port to connect from.
            timeout: seconds (or a timedelta) for the whole connect:
                resolving, connecting and the TLS handshake.

        Raises:
            TimeoutError: if ``timeout`` passes; the message says at which step.
            OSError: if every attempt fails (the last attempt's error).
            TypeError: if ``timeout`` is neither a number nor a timedelta.
        """
        io_loop = IOLoop.current()
        deadline: Optional[float] = None
        if isinstance(timeout, datetime.timedelta):
            deadline = io_loop.time() + timeout.total_seconds()
        elif isinstance(timeout, numbers.Real):
            deadline = io_loop.time() + float(timeout)
        elif timeout is not None:
            raise TypeError(f"Unsupported timeout {timeout!r}: expected seconds or a timedelta")
        resolving = self.resolver.resolve(host, port, af)
        if deadline is None and asyncio.iscoroutine(resolving):
            # Awaited in place, not in a Task: no loop turn before the
            # lookup starts, and a resolver that fails at once (an address
            # of the wrong family, a test's stub) raises before connect()
            # first suspends, as on Tornado.
            addrinfo = await resolving
        else:
            addrinfo = await _await_until(
                resolving, deadline, lambda: f"Timeout while resolving {host}"
            )
        connector = _Connector(
            addrinfo,
            functools.partial(
                self._create_stream, max_buffer_size, source_ip=source_ip, source_port=source_port
            ),
        )
        _af, addr, stream = await connector.winner(connect_timeout=deadline)
        if ssl_options is None:
            return cast(IOStream, stream)
        handshake = stream.start_tls(False, ssl_options=ssl_options, server_hostname=host)
        tls_stream = await _await_until(
            handshake,
            deadline,
            lambda: f"Timeout during TLS handshake with {_format_addr(addr)}",
        )
        return cast(IOStream, tls_stream)

    def _create_stream(
        self,
        max_buffer_size: Optional[int],
        af: socket.AddressFamily,
        addr: Any,
        source_ip: Optional[str] = None,
        source_port: Optional[int] = None,
    ) -> tuple[IOStream, Future[IOStream]]:
        """Starts one connection attempt: a new socket, bound if asked, connecting."""
        sock = socket.socket(af)
        try:
            if source_ip is not None or source_port:
                # A port alone binds on every interface, so it works for any
                # destination.
                if source_ip is None:
                    source_ip = "::" if af == socket.AF_INET6 else "0.0.0.0"
                sock.bind((source_ip, source_port or 0))
            stream = IOStream(sock, max_buffer_size=max_buffer_size)
        except BaseException:
            sock.close()
            raise
        return stream, stream.connect(addr)
