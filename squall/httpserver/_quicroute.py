"""QUIC datagrams routed to the worker that owns their connection ID.

Under ``squall run --workers N --http3`` the supervisor binds one UDP
socket per worker *slot* at each TLS address, all in one SO_REUSEPORT
group, and keeps them open for as long as it runs: a socket's position
in the group (the kernel's array of the group's sockets, in bind order)
then never changes, because Linux reorders that array only when a socket
of the group closes. A worker inherits its slot's sockets and issues
connection IDs that begin with the slot number and a check byte
(`issue_cid`); a classic BPF program attached to the group with
SO_ATTACH_REUSEPORT_CBPF (`filter_program`) reads them from each
datagram's destination connection ID and returns that position, so a
client whose address or port changes stays with its worker, and a worker
that drains keeps its connections while new ones go elsewhere.

A datagram whose connection ID names no slot with a worker (a new
client's Initial, whose ID the client chose; a connection whose worker
is gone) goes to one of the workers that accept new connections, picked
by the ID's first bytes, so that all of one new client's packets go to
the same one. The supervisor attaches a new program whenever a worker
becomes ready, starts draining or exits.

Limits: 256 slots (one byte); one client's random Initial ID in 256
passes the check byte, and if its first byte names a draining worker the
handshake fails (the client's next attempt picks another ID); the slot
byte is visible on the wire, so an observer can tell which worker a
migrating client talks to (not which connection: every connection of a
worker shares it); Linux only.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Sequence
from typing import Any, Optional, Union

__all__ = ["WorkerRoute", "adopt", "attach", "filter_program", "issue_cid", "slot_of"]

# <linux/asm-generic/socket.h>; Python's socket module does not name it.
SO_ATTACH_REUSEPORT_CBPF = 51
# aioquic's default, and what a short header's destination ID is parsed with.
CID_LENGTH = 8
MAX_SLOTS = 256
# What a program returns for "no opinion": the kernel then hashes the 4-tuple.
_FALLBACK = 0xFFFFFFFF

# Classic BPF opcodes (<linux/filter.h>).
_LD_B_ABS = 0x30
_LD_H_ABS = 0x28
_LD_W_LEN = 0x80
_LD_MEM = 0x60
_ST = 0x02
_TAX = 0x07
_ALU_MUL_K = 0x24
_ALU_ADD_K = 0x04
_ALU_AND_K = 0x54
_ALU_MOD_K = 0x94
_JEQ_K = 0x15
_JEQ_X = 0x1D
_JGE_K = 0x35
_JSET_K = 0x45
_JA = 0x05
_RET_K = 0x06

Insn = tuple[int, int, int, int]


# The check byte beside a slot in a connection ID we issued (see `_check`).
_CHECK_MUL = 167
_CHECK_ADD = 0x5A


def _check(slot: int) -> int:
    return (slot * _CHECK_MUL + _CHECK_ADD) & 0xFF


def issue_cid(slot: int) -> bytes:
    """A fresh connection ID that routes to ``slot``."""
    return bytes((slot, _check(slot))) + os.urandom(CID_LENGTH - 2)


def slot_of(cid: bytes) -> Optional[int]:
    """The slot ``cid`` routes to, or None for an ID that names none."""
    if len(cid) >= 2 and cid[1] == _check(cid[0]):
        return cid[0]
    return None


def adopt(quic: Any, slot: int) -> None:
    """Make a new server-side aioquic connection issue IDs that route to ``slot``.

    Called before its first datagram is handled: the initial ID is not yet
    in any packet or transport parameter. aioquic has no hook for the IDs
    it issues, so the method that makes the later ones is replaced on the
    instance. qh3's core makes the later IDs itself, with no way in: only
    the initial one is set there (`_quicstack.STACK`), so a client that
    moves to one of the later IDs (as on migration) is routed by the
    ID's bytes like a new one (see tests/h3/test_workers_by_cid.py).
    """
    from squall._quicstack import STACK

    if STACK == "qh3":
        # Read when the first datagram creates the connection's core.
        quic.host_cid = issue_cid(slot)
        return
    first = quic._host_cids[0]
    first.cid = issue_cid(slot)
    quic.host_cid = first.cid
    quic._local_initial_source_connection_id = first.cid
    cid_type = type(first)

    def replenish() -> None:
        # As aioquic's own: up to 8 IDs, or fewer if the peer takes fewer.
        while len(quic._host_cids) < min(8, quic._remote_active_connection_id_limit):
            quic._host_cids.append(
                cid_type(
                    cid=issue_cid(slot),
                    sequence_number=quic._host_cid_seq,
                    stateless_reset_token=os.urandom(16),
                )
            )
            quic._host_cid_seq += 1

    quic._replenish_connection_ids = replenish


class _Program:
    """Classic BPF with forward jumps to labels, resolved at the end."""

    def __init__(self) -> None:
        self.code: list[tuple[int, int, Any, Any, Any]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: Union[int, str] = 0, jt: Any = 0, jf: Any = 0) -> None:
        self.code.append((code, 0, jt, jf, k))

    def label(self, name: str) -> None:
        self.labels[name] = len(self.code)

    def _rel(self, target: Any, at: int) -> int:
        if isinstance(target, int):
            return target
        offset = self.labels[target] - at - 1
        assert offset >= 0
        return offset

    def assemble(self) -> list[Insn]:
        out: list[Insn] = []
        for i, (code, _, jt, jf, k) in enumerate(self.code):
            if code == _JA:
                out.append((code, 0, 0, self._rel(k, i)))
            else:
                t, f = self._rel(jt, i), self._rel(jf, i)
                if t > 255 or f > 255:
                    raise ValueError("BPF program too long for a conditional jump")
                out.append((code, t, f, k))
        return out


def _read_id(p: _Program, at: int) -> None:
    """The destination connection ID at byte ``at``, short header or long:
    M[0] is its slot byte and M[1] its first two bytes (a new client's
    pick); on to "owned" if the byte after the slot's is its check byte
    (`_check`'s, computed by the kernel), else to "pick" with M[1]."""
    p.op(_LD_H_ABS, at)
    p.op(_ST, 1)
    p.op(_LD_B_ABS, at)
    p.op(_ST, 0)
    p.op(_ALU_MUL_K, _CHECK_MUL)
    p.op(_ALU_ADD_K, _CHECK_ADD)
    p.op(_ALU_AND_K, 0xFF)
    p.op(_TAX)
    p.op(_LD_B_ABS, at + 1)
    p.op(_JEQ_X, 0, "owned", 0)
    p.op(_LD_MEM, 1)
    p.op(_JA, "pick")


def filter_program(routed: Sequence[int], accepting: Sequence[int]) -> list[Insn]:
    """The program that picks a socket of the group for each datagram.

    Args:
        routed: slots whose worker is alive (serving or draining): a
            datagram whose destination ID names one goes there.
        accepting: slots whose worker takes new connections: every other
            datagram goes to one of them, by its ID's first bytes.

    Returns:
        ``(code, jt, jf, k)`` instructions, for `attach`.
    """
    p = _Program()
    # The packet starts at the UDP payload. Too short for a QUIC header.
    p.op(_LD_W_LEN)
    p.op(_JGE_K, 3, 0, "any")
    p.op(_LD_B_ABS, 0)
    p.op(_JSET_K, 0x80, "long", 0)
    # Short header: the destination ID follows the first byte.
    _read_id(p, 1)
    # Long header: version (4 bytes), the ID's length, the ID.
    p.label("long")
    p.op(_LD_W_LEN)
    p.op(_JGE_K, 8, 0, "any")
    p.op(_LD_B_ABS, 5)
    p.op(_JGE_K, 2, 0, "any")
    _read_id(p, 6)
    # An ID with the check byte: its slot, if a worker has it.
    p.label("owned")
    p.op(_LD_MEM, 0)
    for slot in routed:
        p.op(_JEQ_K, slot, f"ret{slot}", 0)
    p.op(_LD_MEM, 1)
    p.op(_JA, "pick")
    p.label("any")
    p.op(_LD_W_LEN)
    # A: a number from the datagram, the same for all of a new client's.
    p.label("pick")
    if not accepting:
        p.op(_RET_K, _FALLBACK)
    else:
        p.op(_ALU_MOD_K, len(accepting))
        for n, slot in enumerate(accepting):
            p.op(_JEQ_K, n, f"ret{slot}", 0)
        p.op(_RET_K, accepting[0])
    for slot in sorted(set(routed) | set(accepting)):
        p.label(f"ret{slot}")
        p.op(_RET_K, slot)
    return p.assemble()


def attach(sock: socket.socket, program: Sequence[Insn]) -> None:
    """Attach ``program`` to the SO_REUSEPORT group ``sock`` belongs to.

    Raises:
        OSError: the kernel refused it (not Linux, or no CBPF for reuseport).
    """
    import ctypes

    code = b"".join(struct.pack("HBBI", *insn) for insn in program)
    buf = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, fprog)


class WorkerRoute:
    """A worker's slot and the UDP sockets it inherited, one per TLS address."""

    __slots__ = ("slot", "sockets")

    def __init__(self, slot: int, sockets: list[socket.socket]) -> None:
        self.slot = slot
        self.sockets = sockets

    def take(self, tcp: socket.socket) -> Optional[socket.socket]:
        """The inherited UDP socket bound where ``tcp`` listens (once), or None."""
        want = tcp.getsockname()[:2] if tcp.family in (socket.AF_INET, socket.AF_INET6) else None
        for udp in self.sockets:
            if udp.family == tcp.family and udp.getsockname()[:2] == want:
                self.sockets.remove(udp)
                return udp
        return None

    def to_env(self, fds: Sequence[int]) -> str:
        return f"{self.slot}:" + ",".join(map(str, fds))

    @classmethod
    def from_env(cls, text: str) -> WorkerRoute:
        slot, _, fds = text.partition(":")
        sockets = [socket.socket(fileno=int(fd)) for fd in fds.split(",") if fd]
        for udp in sockets:
            udp.setblocking(False)
        return cls(int(slot), sockets)


#: Set in a worker of ``squall run`` (by the supervisor's environment):
#: its HTTP/3 endpoints serve these sockets and issue IDs for this slot.
worker_route: Optional[WorkerRoute] = None
