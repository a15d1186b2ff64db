"""Bridges to Twisted: `install`, `TwistedResolver`, and ``yield`` of a Deferred.

Deprecated in Tornado since 6.0, kept for programs that still use it; new code
should meet Twisted through asyncio (both run on the same event loop).

Importing this module registers Twisted's ``Deferred`` with
`squall.gen.convert_yielded`, so a ``@gen.coroutine`` may ``yield`` one
(native coroutines ``await`` a Deferred through ``Deferred.asFuture``).

Needs Twisted: ``pip install squall[twisted]``.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

from squall.util import _needs_extra

try:
    import twisted.internet.asyncioreactor
    import twisted.internet.defer
    import twisted.internet.error
    import twisted.names.cache
    import twisted.names.client
    import twisted.names.dns
    import twisted.names.error
    import twisted.names.hosts
    import twisted.names.resolve
    from twisted.internet.defer import Deferred
    from twisted.python.failure import Failure
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise _needs_extra(__name__, "Twisted", "twisted", _exc) from _exc

from squall import gen
from squall.concurrent import Future, future_set_exc_info
from squall.ioloop import IOLoop
from squall.netutil import Resolver, is_valid_ip

__all__ = ["TwistedResolver", "install"]


def install() -> None:
    """Install Twisted's ``AsyncioSelectorReactor`` as the global reactor.

    Deprecated (as in Tornado since 5.1): call
    ``twisted.internet.asyncioreactor.install()`` directly.
    """
    twisted.internet.asyncioreactor.install()  # type: ignore[no-untyped-call]


class TwistedResolver(Resolver):
    """A resolver over ``twisted.names``: no threads, and no ``getaddrinfo``.

    Looks in the hosts file, then a cache, then the DNS servers of
    ``/etc/resolv.conf``. It gives at most one address, ignores everything but
    ``host`` and ``family``, and is only worth it where threads cannot be used.
    Its reactor runs on the current IOLoop's asyncio loop (a selector loop).
    """

    def initialize(self) -> None:
        loop = getattr(IOLoop.current(), "asyncio_loop", None)
        try:
            self.reactor = twisted.internet.asyncioreactor.AsyncioSelectorReactor(loop)
        except TypeError as exc:
            # Twisted's reactor drives file descriptors through add_reader:
            # a proactor (or another non-selector) loop cannot host it.
            raise TypeError(f"TwistedResolver needs a selector event loop: {exc}") from exc
        names: Any = twisted.names  # untyped
        hosts = names.hosts.Resolver("/etc/hosts")
        cache = names.cache.CacheResolver(reactor=self.reactor)
        dns = names.client.Resolver("/etc/resolv.conf", reactor=self.reactor)
        self.resolver: Any = names.resolve.ResolverChain([hosts, cache, dns])

    async def resolve(
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        """Resolve ``host``: one ``(family, address)`` pair.

        Raises:
            OSError: the name does not resolve, or not in ``family``.
        """
        if is_valid_ip(host):
            address = host
        else:
            try:
                if family == socket.AF_UNSPEC:
                    address = await _future(self.resolver.getHostByName(host))
                else:
                    address = await self._lookup(host, family)
            except (twisted.names.error.DomainError, twisted.internet.error.DNSLookupError) as exc:
                raise OSError(f"cannot resolve {host!r}: {exc!r}") from exc
            except twisted.internet.defer.TimeoutError as exc:
                # DNSQueryTimeoutError, or the plain one when every server timed out.
                raise OSError(f"timed out resolving {host!r}") from exc
        found = socket.AF_INET6 if ":" in address else socket.AF_INET
        if family != socket.AF_UNSPEC and family != found:
            raise OSError(f"requested socket family {family!r} but got {found!r} for {host!r}")
        # (address, port) for either family, as Tornado gives: connect() takes it.
        return [(found, (address, port))]

    async def _lookup(self, host: str, family: socket.AddressFamily) -> str:
        """The first address record of ``family`` (A or AAAA) for ``host``."""
        if family == socket.AF_INET6:
            answers, _authority, _additional = await _future(self.resolver.lookupIPV6Address(host))
            wanted = twisted.names.dns.AAAA
        else:
            answers, _authority, _additional = await _future(self.resolver.lookupAddress(host))
            wanted = twisted.names.dns.A
        for record in answers:
            # A CNAME may come first: the address is the record of our type.
            if record.type == wanted:
                packed: bytes = record.payload.address
                return socket.inet_ntop(family, packed)
        raise OSError(f"no address of family {family!r} for {host!r}")


def _future(deferred: Deferred[Any]) -> Future[Any]:
    """A Future that gets the Deferred's result, or its failure as an exception."""
    future: Future[Any] = Future()

    def ok(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    def failed(failure: Failure) -> None:
        if future.done():
            return
        try:
            failure.raiseException()
        except BaseException:
            future_set_exc_info(future, sys.exc_info())

    deferred.addCallbacks(ok, failed)
    return future


@gen.convert_yielded.register(Deferred)
def _convert_deferred(deferred: Deferred[Any]) -> Future[Any]:
    return _future(deferred)
