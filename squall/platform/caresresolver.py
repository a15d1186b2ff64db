"""`CaresResolver`: asynchronous DNS over c-ares (``pycares``), on the IOLoop.

Needs pycares: ``pip install squall[cares]``. Deprecated in Tornado since
6.2 (the default resolver is asynchronous already), kept for programs that
configure it: ``Resolver.configure("squall.platform.caresresolver.CaresResolver")``.
"""

from __future__ import annotations

import socket
from typing import Any, Optional

from squall.util import _needs_extra

try:
    import pycares
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise _needs_extra(__name__, "pycares", "cares", _exc) from _exc

from squall.concurrent import Future
from squall.ioloop import IOLoop
from squall.netutil import Resolver, is_valid_ip

__all__ = ["CaresResolver"]

_BAD = pycares.ARES_SOCKET_BAD


class CaresResolver(Resolver):
    """A resolver over a c-ares channel whose sockets the IOLoop watches.

    c-ares reads ``/etc/hosts`` and ``/etc/resolv.conf`` itself; it does not
    consult NSS, so names that only nsswitch knows (mDNS, LDAP) do not
    resolve. A lookup may give several addresses, of the requested family.
    """

    def initialize(self) -> None:
        self.io_loop = IOLoop.current()
        self.channel: Any = pycares.Channel(sock_state_cb=self._sock_state_cb)
        self.fds: dict[int, int] = {}
        self._timer: Optional[object] = None
        self._pending = 0

    def close(self) -> None:
        """Cancel pending lookups and release the channel."""
        for fd in list(self.fds):
            self.io_loop.remove_handler(fd)
        self.fds.clear()
        if self._timer is not None:
            self.io_loop.remove_timeout(self._timer)
            self._timer = None
        close = getattr(self.channel, "close", None)
        if close is not None:
            close()
        else:  # pragma: no cover - pycares before 4.7
            self.channel.cancel()

    def _sock_state_cb(self, fd: int, readable: bool, writable: bool) -> None:
        # c-ares tells us which of its sockets to watch, and for what.
        state = (IOLoop.READ if readable else 0) | (IOLoop.WRITE if writable else 0)
        if not state:
            if fd in self.fds:
                self.io_loop.remove_handler(fd)
                del self.fds[fd]
        elif fd in self.fds:
            self.io_loop.update_handler(fd, state)
            self.fds[fd] = state
        else:
            self.io_loop.add_handler(fd, self._handle_events, state)
            self.fds[fd] = state

    def _handle_events(self, fd: int, events: int) -> None:
        read_fd = fd if events & IOLoop.READ else _BAD
        write_fd = fd if events & IOLoop.WRITE else _BAD
        self.channel.process_fd(read_fd, write_fd)

    def _tick(self) -> None:
        # c-ares retries and times out on its own clock: give it the chance
        # even when no socket is ready.
        self._timer = None
        self.channel.process_fd(_BAD, _BAD)
        self._schedule()

    def _schedule(self) -> None:
        if self._pending and self._timer is None:
            delay = self.channel.timeout()
            self._timer = self.io_loop.call_later(delay if delay else 1.0, self._tick)

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        """Resolve ``host`` to ``(family, address)`` pairs.

        Raises:
            OSError: c-ares's error, naming it and the host.
        """
        if is_valid_ip(host):
            found = socket.AF_INET6 if ":" in host else socket.AF_INET
            if family not in (socket.AF_UNSPEC, found):
                raise OSError(f"requested socket family {family!r} but got {found!r} for {host!r}")
            # (host, port) for either family, as Tornado gives: connect() takes it.
            return [(found, (host, port))]
        future: Future[Any] = Future()

        def done(result: Any, error: Optional[int]) -> None:
            if future.done():
                return
            if error:
                message = pycares.errno.strerror(error)
                if isinstance(message, bytes):
                    message = message.decode("ascii", "replace")
                future.set_exception(
                    OSError(f"C-Ares returned error {error}: {message} while resolving {host}")
                )
            else:
                future.set_result(result)

        self._pending += 1
        try:
            self.channel.getaddrinfo(
                host, port, family=family, type=socket.SOCK_STREAM, callback=done
            )
            self._schedule()
            result = await future
        finally:
            self._pending -= 1
            if not self._pending and self._timer is not None:
                self.io_loop.remove_timeout(self._timer)
                self._timer = None
        addresses: list[tuple[int, Any]] = []
        for node in result.nodes:
            node_family = socket.AF_INET6 if node.family == socket.AF_INET6 else socket.AF_INET
            if family not in (socket.AF_UNSPEC, node_family):
                continue
            address = node.addr[0]
            if isinstance(address, bytes):
                address = address.decode("ascii")
            entry = (node_family, (address, port))
            if entry not in addresses:
                addresses.append(entry)
        if not addresses:
            raise OSError(f"C-Ares found no address of family {family!r} for {host}")
        return addresses
