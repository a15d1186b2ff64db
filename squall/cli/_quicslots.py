"""The supervisor's UDP sockets for HTTP/3, one per worker slot and address.

See `squall.httpserver._quicroute` for why the supervisor binds them and
never closes one while it runs, and how datagrams find their worker.
Slots are handed out lowest first and reused once their worker exits; a
slot is bound (at every TLS address) the first time it is needed, so a
rolling restart of N workers binds N+1 slots, not 2N.
"""

from __future__ import annotations

import logging
import socket
from typing import Optional

from squall.httpserver._quicroute import MAX_SLOTS, attach, filter_program

__all__ = ["QuicSlots"]

log = logging.getLogger("squall.general")

# Beyond this many slots the program's jumps would not reach (8-bit offsets).
_SLOT_LIMIT = min(MAX_SLOTS, 96)


class QuicSlots:
    """Slots of UDP sockets (SO_REUSEPORT groups) and the program that routes to them.

    Args:
        tcp: the supervisor's listening sockets; a UDP group is made for
            each IPv4/IPv6 one.
    """

    def __init__(self, tcp: list[socket.socket]) -> None:
        self._addresses = [
            (s.family, s.getsockname()[:2])
            for s in tcp
            if s.family in (socket.AF_INET, socket.AF_INET6)
        ]
        # _groups[address index][slot]: bound in slot order, never closed.
        self._groups: list[list[socket.socket]] = [[] for _ in self._addresses]
        self._used: set[int] = set()
        self.enabled = bool(self._addresses)

    def acquire(self) -> Optional[tuple[int, list[int]]]:
        """A free slot and its sockets' descriptors (None: routing is off or full)."""
        if not self.enabled:
            return None
        slot = next((n for n in range(_SLOT_LIMIT) if n not in self._used), None)
        if slot is None:
            log.warning("HTTP/3: %d worker slots in use; a new worker binds its own", _SLOT_LIMIT)
            return None
        if slot >= len(self._groups[0]):
            try:
                self._bind_slot()
            except OSError as exc:
                log.warning("HTTP/3: connection-ID routing off (%s)", exc)
                self.enabled = False
                return None
        self._used.add(slot)
        return slot, [group[slot].fileno() for group in self._groups]

    def _bind_slot(self) -> None:
        for (family, address), group in zip(self._addresses, self._groups, strict=True):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                if family == socket.AF_INET6:
                    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                udp.bind(address)
            except BaseException:
                udp.close()
                raise
            group.append(udp)

    def release(self, slot: int) -> None:
        """The slot's worker has exited."""
        self._used.discard(slot)

    def route(self, routed: list[int], accepting: list[int]) -> None:
        """Send datagrams by connection ID to ``routed``, new ones to ``accepting``."""
        if not self.enabled or not self._groups[0]:
            return
        program = filter_program(sorted(routed), sorted(accepting))
        for group in self._groups:
            try:
                attach(group[0], program)
            except OSError as exc:
                log.warning("HTTP/3: connection-ID routing off (%s)", exc)
                self.enabled = False
                return

    def close(self) -> None:
        for group in self._groups:
            for udp in group:
                udp.close()
        self._groups = [[] for _ in self._addresses]
