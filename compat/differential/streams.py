"""Tornado's IOStream and Squall's, reading and writing the same Hypothesis-chosen conversations.

Run by ``make differential`` in ``.venv-differential`` (Tornado 6.6.1 and
Squall both importable): ``python compat/differential/streams.py
--examples 500``. A conversation is an `IOStream` over one end of a
socket pair (a chosen ``max_buffer_size``, ``read_chunk_size`` and
``max_write_buffer_size``) and a list of actions: the peer sends bytes,
half-closes or closes its end; the stream reads (``read_until`` and
``read_until_regex`` with and without ``max_bytes``, ``read_bytes`` and
``read_into`` whole or partial, ``read_until_close``), writes, or is
closed; a close callback is set. After each action the loop runs until
nothing is left to do (a bounded number of turns: a socket pair's bytes
are readable once sent). A read is started only when none is pending.

Compared: each read's result (the bytes, the count and the buffer's
contents, or the exception's class) and the action after which it came,
each write's result, how many times the close callback ran, the stream's ``error``,
and the bytes the peer received; reads after one that failed for the
stream's close are not (see `_cut`). Chunks take all a conversation sends
(see `conversations`). Any difference is printed with the smallest
conversation Hypothesis finds, and the run exits 1.

``--detached``: the stream an HTTPServer's ``detach()`` gives. ``--tls``:
over TLS (an SSLIOStream, or with ``--detached`` an HTTPS server's
stream), the peer a `TLSPeer`; how the peer saw the session end is
compared too. ``--pipe``: a PipeIOStream over a pipe's reading end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import socket
import ssl
import sys
from types import ModuleType
from typing import Any, Optional

import tornado.httpserver as t_httpserver
import tornado.iostream as t_iostream
from hunt import hunt
from hypothesis import given
from hypothesis import strategies as st
from tls import client_context, server_context

import squall.httpserver as s_httpserver
import squall.iostream as s_iostream

_CLOSED = (t_iostream.StreamClosedError, s_iostream.StreamClosedError)

# Loop turns after an action: enough for a read of bytes already sent to
# resolve and its callbacks to run (a few turns on either library).
SETTLE_TURNS = 40


def _outcome(future: Any) -> Any:
    exc = future.exception()
    if exc is not None:
        return ("err", type(exc).__name__)
    result = future.result()
    if isinstance(result, (bytes, bytearray, memoryview)):
        return ("ok", bytes(result))
    return ("ok", result)


async def _settle() -> None:
    for _ in range(SETTLE_TURNS):
        await asyncio.sleep(0)


def _drain(peer: Any) -> bytes:
    """What the peer can read now, without waiting."""
    if isinstance(peer, (TLSPeer, PipePeer)):
        return peer.drain()
    got = bytearray()
    while True:
        try:
            chunk = peer.recv(65536)
        except BlockingIOError:
            break
        except OSError as exc:
            if exc.errno in (errno.ECONNRESET, errno.EBADF):
                break
            raise
        if not chunk:
            break
        got += chunk
    return bytes(got)


async def socket_pair(lib: Library, spec: dict[str, Any]) -> tuple[Any, socket.socket]:
    """An IOStream over one end of a socket pair, and the other end."""
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    stream = lib.iostream.IOStream(
        ours,
        max_buffer_size=spec["max_buffer_size"],
        read_chunk_size=spec["read_chunk_size"],
        max_write_buffer_size=spec["max_write_buffer_size"],
    )
    return stream, peer


async def detached(lib: Library, spec: dict[str, Any]) -> tuple[Any, Any]:
    """The stream a request's ``connection.detach()`` gives the handler of
    the library's HTTPServer (what a WebSocket or another protocol after an
    upgrade reads and writes: Squall's is not an fd-based IOStream but one
    over the connection's asyncio transport), and the client's socket."""
    taken: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def handle(request: Any) -> None:
        taken.set_result(request.connection.detach())

    # The stream gets the conversation's limits once detached: a server
    # made with a small max_buffer_size would refuse the request itself.
    server = lib.httpserver.HTTPServer(handle, ssl_options=SERVER_CONTEXT if TLS["on"] else None)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    server.add_sockets([listener])
    peer: Any = socket.create_connection(listener.getsockname())
    peer.setblocking(False)
    # Each send goes out at once: with Nagle's algorithm a send behind one
    # not yet acknowledged waits for the server's delayed ACK (tens of
    # milliseconds, which the conversation's loop turns do not wait).
    peer.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TLS["on"]:
        peer = TLSPeer(peer)
        await _shake(peer, None)
    peer.send(b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n")
    # A hang guard (a server that never detaches): not a measure of time.
    stream = await asyncio.wait_for(taken, 30)
    server.stop()
    # The same for the stream's sends (after a TLS handshake's session
    # tickets, the first write would wait for the client's ACK).
    stream.set_nodelay(True)
    if spec["max_buffer_size"] is not None:
        stream.max_buffer_size = spec["max_buffer_size"]
        stream.read_chunk_size = min(stream.read_chunk_size, max(1, spec["max_buffer_size"] // 2))
    if spec["read_chunk_size"] is not None:
        stream.read_chunk_size = spec["read_chunk_size"]
    stream.max_write_buffer_size = spec["max_write_buffer_size"]
    return stream, peer


# The stream's side of a TLS conversation, on both libraries.
SERVER_CONTEXT = server_context()


class TLSPeer:
    """The client's end of a TLS conversation, driven by hand: an
    ``SSLObject`` over memory buffers and a non-blocking socket, so that
    each send, each ``close_notify`` and each abrupt close is one action
    at one moment, as the plain peer's are.

    ``shutdown`` sends ``close_notify`` and then the TCP end (TLS 1.3 lets
    the other side go on writing, RFC 8446 section 6.1); ``close`` drops
    the connection without ``close_notify`` (a truncation, as a client
    that crashes or loses its network looks)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = client_context().wrap_bio(
            self.incoming, self.outgoing, server_hostname="localhost"
        )
        #: How the stream's side ended the TLS session, as the peer read
        #: it: None (not yet), "close_notify", "truncated" (the TCP end
        #: without close_notify) or "reset".
        self.ending: Optional[str] = None

    def _push(self) -> None:
        data = self.outgoing.read()
        if data:
            # Records of at most a few hundred bytes: the socket pair's
            # buffer takes them whole.
            self.sock.sendall(data)

    def _pull(self) -> None:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ECONNRESET:
                    # (A socket closed with bytes unread resets.)
                    self.ending = self.ending or "reset"
                    return
                if exc.errno == errno.EBADF:
                    return
                raise
            if not chunk:
                self.incoming.write_eof()
                return
            self.incoming.write(chunk)

    def handshake_step(self) -> bool:
        """One step of the handshake; True once the client's side is done."""
        self._pull()
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._push()
            return False
        self._push()
        return True

    def send(self, data: bytes) -> None:
        if self.ending is None:
            # (Once the session has ended, the SSLObject refuses to write:
            # the peer's own business, not the stream's.)
            self.tls.write(data)
            self._push()

    def shutdown(self, how: int) -> None:
        with contextlib.suppress(ssl.SSLError):
            self.tls.unwrap()
        self._push()
        self.sock.shutdown(how)

    def close(self) -> None:
        self.sock.close()

    def drain(self) -> bytes:
        self._pull()
        got = bytearray()
        while True:
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError:
                # The TCP end came without close_notify (SSLEOFError).
                self.ending = self.ending or "truncated"
                break
            if not chunk:
                # (An SSLObject reads close_notify as b"", not as
                # SSLZeroReturnError.)
                self.ending = self.ending or "close_notify"
                break
            got += chunk
        return bytes(got)


async def _shake(peer: TLSPeer, stream_done: Optional[asyncio.Future[Any]]) -> None:
    """Runs the peer's handshake (and the loop, for the stream's) to its end."""
    for _ in range(100):
        peer_done = peer.handshake_step()
        await _settle()
        if peer_done and (stream_done is None or stream_done.done()):
            if stream_done is not None:
                stream_done.result()
            return
    raise RuntimeError("the TLS handshake did not end in 100 exchanges")


async def tls_pair(lib: Library, spec: dict[str, Any]) -> tuple[Any, TLSPeer]:
    """An SSLIOStream over the server's end of a socket pair (wrapped as
    TCPServer wraps an accepted socket), and a TLS client's end."""
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.setblocking(False)
    wrapped = SERVER_CONTEXT.wrap_socket(ours, server_side=True, do_handshake_on_connect=False)
    stream = lib.iostream.SSLIOStream(
        wrapped,
        max_buffer_size=spec["max_buffer_size"],
        read_chunk_size=spec["read_chunk_size"],
        max_write_buffer_size=spec["max_write_buffer_size"],
    )
    peer = TLSPeer(theirs)
    await _shake(peer, asyncio.ensure_future(stream.wait_for_handshake()))
    return stream, peer


class PipePeer:
    """The writing end of a pipe whose reading end is the stream's: it
    sends, and its shutdown and close are the same end of input; it
    receives nothing (the stream's writes go to a pipe's reading end)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def shutdown(self, how: int) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def drain(self) -> bytes:
        return b""


async def pipe_pair(lib: Library, spec: dict[str, Any]) -> tuple[Any, PipePeer]:
    """A PipeIOStream over a pipe's reading end, and the writing end."""
    ours, theirs = os.pipe()
    stream = lib.iostream.PipeIOStream(
        ours,
        max_buffer_size=spec["max_buffer_size"],
        read_chunk_size=spec["read_chunk_size"],
        max_write_buffer_size=spec["max_write_buffer_size"],
    )
    return stream, PipePeer(theirs)


async def converse(lib: Library, spec: dict[str, Any], make: Any) -> dict[str, Any]:
    if make is detached:
        # A detached stream reads its peer's end only while a read asks
        # (tests/COMPAT.md: it keeps a half-closed peer's connection open
        # for the answer, where Tornado's stream closes on the end it read
        # ahead): conversations with a detached stream close the peer's
        # end whole.
        spec = dict(
            spec,
            actions=[("peer_close",) if a[0] == "peer_shutdown" else a for a in spec["actions"]],
        )
    if make is pipe_pair:
        # The stream's end of a pipe only reads (a write to it fails the
        # stream at once, the same on both: compared in a few, not in every
        # other conversation).
        actions = spec["actions"]
        spec = dict(spec, actions=[a for a in actions if a[0] != "write" or a is actions[0]])
    stream, peer = await make(lib, spec)
    trace: list[Any] = []
    step = [0]
    closes: list[int] = []
    stream.set_close_callback(lambda: closes.append(step[0]))
    reading: Optional[Any] = None
    received = bytearray()
    peer_open = True
    for index, action in enumerate(spec["actions"]):
        step[0] = index
        kind = action[0]
        try:
            if kind == "send":
                if peer_open:
                    peer.send(action[1])
            elif kind == "peer_shutdown":
                if peer_open:
                    # A second one fails once the stream has closed its end
                    # (not when: see "closes"): the peer's own business.
                    with contextlib.suppress(OSError):
                        peer.shutdown(socket.SHUT_WR)
            elif kind == "peer_close":
                if peer_open:
                    received += _drain(peer)
                    peer.close()
                    peer_open = False
            elif kind == "close":
                stream.close()
            elif kind == "write":
                future = stream.write(action[1])
                future.add_done_callback(
                    lambda f, i=index: trace.append((step[0], "write", i, _outcome(f)))
                )
            elif reading is None or reading.done():
                reading = _read(stream, action, index, trace, step)
        except _CLOSED:
            # At the call or through the future, the same to `await`: when
            # each library learns of its peer's end differs (see "closes").
            trace.append((index, kind, index, ("err", "StreamClosedError")))
        except Exception as exc:
            trace.append((index, kind, index, ("raised", type(exc).__name__)))
        await _settle()
        if peer_open:
            received += _drain(peer)
    step[0] = len(spec["actions"])
    if peer_open:
        peer.close()
    await _settle()
    if not stream.closed():
        stream.close()
        await _settle()
    error = stream.error
    return {
        # How the peer saw the TLS session end (while it was open).
        "tls_end": peer.ending if isinstance(peer, TLSPeer) else None,
        "trace": trace,
        # How many times the close callback ran. Not when: a stream with no
        # read pending notices its peer's end at different times on the
        # two (tests/COMPAT.md, streams after a close: Tornado's listens
        # while idle once a close callback is set, Squall's when its buffer
        # is empty), and a read then sees the same bytes and the same end.
        "closes": len(closes),
        "error": None if error is None else type(error).__name__,
        "received": bytes(received),
    }


def _read(
    stream: Any, action: tuple[Any, ...], index: int, trace: list[Any], step: list[int]
) -> Any:
    kind = action[0]
    buffer: Optional[bytearray] = None
    if kind == "read_until":
        future = stream.read_until(action[1], action[2])
    elif kind == "read_until_regex":
        future = stream.read_until_regex(action[1], action[2])
    elif kind == "read_bytes":
        future = stream.read_bytes(action[1], action[2])
    elif kind == "read_into":
        buffer = bytearray(action[1])
        future = stream.read_into(buffer, action[2])
    elif kind == "read_until_close":
        future = stream.read_until_close()
    else:
        raise AssertionError(f"unknown action {action!r}")

    def done(f: Any) -> None:
        outcome = _outcome(f)
        if buffer is not None and outcome[0] == "ok":
            outcome = (*outcome, bytes(buffer[: outcome[1]]))
        trace.append((step[0], kind, index, outcome))

    future.add_done_callback(done)
    return future


class Library:
    def __init__(self, iostream: ModuleType, httpserver: ModuleType) -> None:
        self.iostream = iostream
        self.httpserver = httpserver


TORNADO = Library(t_iostream, t_httpserver)
SQUALL = Library(s_iostream, s_httpserver)
# Where the stream comes from (--detached: from an HTTPServer's detach();
# --tls: over TLS, an SSLIOStream or the detached stream of an HTTPS server).
MAKE: dict[str, Any] = {"stream": socket_pair}
TLS = {"on": False}


def run(lib: Library, spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(converse(lib, spec, MAKE["stream"]))
    finally:
        loop.close()


_ALPHABET = b"ab\r\n-"
_data = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes(_ALPHABET[x % len(_ALPHABET)] for x in b)
)
_delimiters = st.sampled_from([b"\n", b"\r\n", b"--", b"ab", b"\r\n\r\n"])
_regexes = st.sampled_from([rb"\n", rb"\r?\n", rb"b+-", rb"(?:ab){2}", rb"a|b"])
_max_bytes = st.one_of(st.none(), st.integers(1, 24))

_ACTION = st.one_of(
    st.tuples(st.just("send"), _data),
    st.tuples(st.just("send"), _data),
    st.tuples(st.just("send"), _data),
    st.tuples(st.just("read_until"), _delimiters, _max_bytes),
    st.tuples(st.just("read_until_regex"), _regexes, _max_bytes),
    st.tuples(st.just("read_bytes"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("read_into"), st.integers(0, 30), st.booleans()),
    st.tuples(st.just("read_until_close")),
    st.tuples(st.just("write"), _data),
    st.tuples(st.just("peer_shutdown")),
    st.tuples(st.just("peer_close")),
    st.tuples(st.just("close")),
)


@st.composite
def conversations(draw: Any) -> dict[str, Any]:
    spec = {
        "max_buffer_size": draw(st.sampled_from([None, 16, 40, 100])),
        "read_chunk_size": draw(st.sampled_from([None, 1, 3, 8])),
        "max_write_buffer_size": draw(st.sampled_from([None, 8, 64])),
        "actions": draw(st.lists(_ACTION, min_size=1, max_size=12)),
    }
    # How far a library reads ahead of what a read needs is its own:
    # Tornado's read loop looks for a delimiter each time its buffer has
    # doubled, Squall's at each chunk, so with chunks smaller than what is
    # waiting they leave different amounts in the socket, and see its end
    # at different times. Compared where one chunk takes all a
    # conversation sends (the default 64 KB chunk; a small buffer caps
    # the chunk at half of it), every read takes all there is, on both.
    sent = sum(len(action[1]) for action in spec["actions"] if action[0] == "send")
    if spec["read_chunk_size"] is not None and spec["read_chunk_size"] < sent:
        spec["read_chunk_size"] = None
    if spec["max_buffer_size"] is not None and spec["max_buffer_size"] // 2 < sent:
        spec["max_buffer_size"] = None
    limit = spec["max_buffer_size"]
    actions = []
    for action in spec["actions"]:
        if action[0] == "read_into" and limit is not None and action[1] > limit:
            # A read_into fills the caller's buffer, which Squall does not
            # count against max_buffer_size (tests/COMPAT.md); Tornado's
            # refuses one larger than it.
            action = (action[0], limit, action[2])
        actions.append(action)
    spec["actions"] = actions
    return spec


def _cut(
    theirs: dict[str, Any], ours: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """The two results with their traces cut after the first read that
    failed with StreamClosedError on either side, and whether they were.

    What reads do on a stream after one has failed for its close is not
    compared: Tornado's stream keeps the failed read's state (its future,
    its delimiter and max_bytes, a read_into's buffer as its own), so its
    later reads raise StreamClosedError or UnsatisfiableReadError, resolve
    with a count instead of bytes, or work again after another close();
    Squall's answer each from what is buffered, as the first
    (tests/COMPAT.md, streams after a close). The close callback, the
    error and what the peer received are still compared in full."""
    a, b = theirs["trace"], ours["trace"]
    for k in range(max(len(a), len(b))):
        if any(k < len(t) and t[k][3][1:] == ("StreamClosedError",) for t in (a, b)):
            return (
                dict(theirs, trace=a[: k + 1]),
                dict(ours, trace=b[: k + 1]),
                k + 1 < max(len(a), len(b)),
            )
    return theirs, ours, False


HALF_CLOSED = "a peer's end, read by Tornado's idle stream, not yet by Squall's"


def _end_seen_later(spec: dict[str, Any], theirs: dict[str, Any], ours: dict[str, Any]) -> bool:
    """Whether the runs are the same up to a write after the peer's end that
    Tornado's stream refused and Squall's sent (the rest of the trace not
    compared, as after any failure for the close).

    Tornado's stream, with a close callback set, reads while idle and
    closes on its peer's end; Squall's, idle with bytes still buffered,
    learns of the end at its next read (tests/COMPAT.md, streams after a
    close): after a half-close its write goes out, to a peer that may
    still read it, and what the peer received then has those bytes more."""
    a, b = theirs["trace"], ours["trace"]
    k = len(a) - 1
    # (Squall's, whose write went out, may go on: what follows is not
    # compared, as after any failure for the close.)
    longer = len(b) > len(a)
    if k < 0 or (len(b) != len(a) and not longer) or a[:k] != b[:k]:
        return False
    if theirs["closes"] != ours["closes"]:
        return False
    if not any(
        action[0] in ("peer_shutdown", "peer_close") for action in spec["actions"][: a[k][0]]
    ):
        return False
    if a[k] == b[k]:
        # Both writes failed: Tornado's stream was closed by the end it
        # read, Squall's by the write's broken pipe, its error.
        return bool(
            a[k][1] == "write"
            and theirs["error"] is None
            and ours["error"] in ("BrokenPipeError", "ConnectionResetError")
            and theirs["received"] == ours["received"]
        )
    return bool(
        a[k][1] == b[k][1] == "write"
        and a[k][3] == ("err", "StreamClosedError")
        and b[k][3] in (("ok", None), ("raised", "StreamBufferFullError"))
        and ours["received"].startswith(theirs["received"])
        # (The end Tornado's stream read may be an error of its own: over
        # TLS, a peer's close without close_notify after the reset that
        # Squall's write drew is SSLEOFError.)
        and (
            theirs["error"] == ours["error"]
            # (Its next write then failed: the reset of the peer's end.)
            or (
                theirs["error"] is None
                and ours["error"] in ("BrokenPipeError", "ConnectionResetError")
            )
            or (TLS["on"] and (ours["error"] is None or theirs["error"] in (None, "SSLEOFError")))
        )
    )


KEPT = (
    "bytes received and not yet read are read after close() (Tornado's, not read ahead, are lost)"
)


def _kept_after_close(spec: dict[str, Any], theirs: dict[str, Any], ours: dict[str, Any]) -> bool:
    """Whether the runs are the same up to a read after the stream's
    close() that got more on Squall (what Tornado got, then more), the
    rest not compared: Squall's detached stream keeps what its transport
    delivered and no read took yet; Tornado's has only what it read ahead
    (over TLS, a read_into leaves the rest in the TLS layer)."""
    a, b = theirs["trace"], ours["trace"]
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == min(len(a), len(b)) or a[k][:3] != b[k][:3]:
        return False
    index = a[k][2]
    if not any(act[0] == "close" for act in spec["actions"][:index]):
        return False
    got, more = a[k][3], b[k][3]
    if got == ("err", "StreamClosedError"):
        got = ("ok", b"")  # (Tornado's had nothing left to read)
    # (The bytes come last: a read_into's outcome also holds its count.)
    if got[0] != "ok" or more[0] != "ok":
        return False
    if not isinstance(got[-1], bytes) or not isinstance(more[-1], bytes):
        return False
    ends = (theirs["tls_end"], ours["tls_end"])
    return bool(
        len(more[-1]) > len(got[-1])
        and more[-1].startswith(got[-1])
        and theirs["closes"] == ours["closes"]
        and theirs["received"] == ours["received"]
        and (
            ends[0] == ends[1] or ends in (("truncated", "close_notify"), ("reset", "close_notify"))
        )
    )


SOONER = "a peer's end without close_notify, seen by Squall's idle TLS stream, not yet by Tornado's"
PARTIAL = "a partial read answered with what each had read so far"
CLOSE_NOTIFY = "a detached stream over TLS closes with close_notify (Tornado's, without)"


def _partial_sooner(spec: dict[str, Any], theirs: dict[str, Any], ours: dict[str, Any]) -> bool:
    """Whether the runs are the same up to a partial read to which one
    gave less, the start of what the other gave (the rest of the trace not
    compared: what follows reads what the two left in their buffers).

    A partial read answers with what is buffered. Tornado's stream with a
    close callback reads on while idle (over TLS, detached from its
    HTTPServer), so it may hold more by then; Squall's idle stream with
    bytes still buffered reads no further until a read asks; over TLS, a
    detached stream takes the TLS records its transport hands it as they
    come (tests/COMPAT.md, streams after a close)."""
    a, b = theirs["trace"], ours["trace"]
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]:
        k += 1
    if k == min(len(a), len(b)):
        return False
    step, kind, index, outcome = a[k]
    action = spec["actions"][index]
    if (
        b[k][:3] != (step, kind, index)
        or kind not in ("read_bytes", "read_into")
        or not action[2]
        or outcome[0] != b[k][3][0] != "err"
    ):
        return False
    if not isinstance(b[k][3][-1], bytes) or not isinstance(outcome[-1], bytes):
        return False
    # (Either way round: over TLS each library takes the records as they come.)
    got, more = sorted((b[k][3][-1], outcome[-1]), key=len)
    return bool(
        got
        and len(got) < len(more)
        and more.startswith(got)
        and all(theirs[key] == ours[key] for key in theirs if key != "trace")
    )


COUNTS: dict[str, int] = {
    "same": 0,
    "cut": 0,
    HALF_CLOSED: 0,
    SOONER: 0,
    KEPT: 0,
    PARTIAL: 0,
    CLOSE_NOTIFY: 0,
}


@given(conversations())
def same_conversations(spec: dict[str, Any]) -> None:
    theirs, ours, cut = _cut(run(TORNADO, spec), run(SQUALL, spec))
    if theirs != ours and _end_seen_later(spec, theirs, ours):
        COUNTS[HALF_CLOSED] += 1
        return
    peer_ended = any(a[0] in ("peer_shutdown", "peer_close") for a in spec["actions"])
    if (
        theirs != ours
        and TLS["on"]
        and MAKE["stream"] is detached
        and (
            _end_seen_later(spec, ours, theirs)
            # (Closed by the end already, Squall's stream keeps no error
            # from a later read that fails; Tornado's closes with it.)
            or (peer_ended and ours["error"] is None and dict(theirs, error=None) == ours)
        )
    ):
        # The other way round: over TLS, the TCP end under a detached
        # stream reaches asyncio's TLS layer even while the stream holds
        # reading back, and the stream closes (what it buffered still read).
        COUNTS[SOONER] += 1
        return
    if (
        theirs != ours
        and dict(theirs, tls_end=None) == dict(ours, tls_end=None)
        and None in (theirs["tls_end"], ours["tls_end"])
        and any(a[0] in ("peer_shutdown", "peer_close") for a in spec["actions"])
    ):
        # The peer's end came; the stream that read it closed while the
        # peer still listened, the other closed after the conversation.
        COUNTS[HALF_CLOSED] += 1
        return
    if theirs != ours and MAKE["stream"] is detached and _kept_after_close(spec, theirs, ours):
        COUNTS[KEPT] += 1
        return
    if theirs != ours and _partial_sooner(spec, theirs, ours):
        COUNTS[PARTIAL] += 1
        return
    if (
        MAKE["stream"] is detached
        and theirs["tls_end"] in ("truncated", "reset")
        and ours["tls_end"] == "close_notify"
        and dict(theirs, tls_end=None) == dict(ours, tls_end=None)
    ):
        COUNTS[CLOSE_NOTIFY] += 1
        return
    if theirs != ours:
        diff = {key: (theirs[key], ours[key]) for key in theirs if theirs[key] != ours[key]}
        raise AssertionError(f"\n  conversation: {spec!r}\n  differs (tornado, squall): {diff!r}")
    COUNTS["cut" if cut else "same"] += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--examples", type=int, default=500, help="conversations to run")
    ap.add_argument("--seed", type=int, help="Hypothesis seed (default: random)")
    ap.add_argument(
        "--detached", action="store_true", help="the stream an HTTPServer's detach() gives"
    )
    ap.add_argument("--tls", action="store_true", help="over TLS, the peer a client driven by hand")
    ap.add_argument("--pipe", action="store_true", help="a PipeIOStream over a pipe's reading end")
    args = ap.parse_args()
    TLS["on"] = args.tls
    if args.pipe:
        MAKE["stream"] = pipe_pair
    elif args.detached:
        MAKE["stream"] = detached
    elif args.tls:
        MAKE["stream"] = tls_pair
    logging.disable(logging.CRITICAL)
    found = hunt(same_conversations, args.examples, args.seed)
    if found is not None:
        print(f"streams: DIFFERENT {found}")
        return 1
    print(
        f"streams: same on {args.examples} examples ({COUNTS['cut']} of them compared "
        "up to the first read that failed for the stream's close)"
    )
    for reason in (HALF_CLOSED, SOONER, KEPT, PARTIAL, CLOSE_NOTIFY):
        print(f"  explained as '{reason}': {COUNTS[reason]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
