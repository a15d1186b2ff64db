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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import socket
import sys
from types import ModuleType
from typing import Any, Optional

import tornado.httpserver as t_httpserver
import tornado.iostream as t_iostream
from hunt import hunt
from hypothesis import given
from hypothesis import strategies as st

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


def _drain(peer: socket.socket) -> bytes:
    """What the peer can read now, without waiting."""
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


async def detached(lib: Library, spec: dict[str, Any]) -> tuple[Any, socket.socket]:
    """The stream a request's ``connection.detach()`` gives the handler of
    the library's HTTPServer (what a WebSocket or another protocol after an
    upgrade reads and writes: Squall's is not an fd-based IOStream but one
    over the connection's asyncio transport), and the client's socket."""
    taken: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

    def handle(request: Any) -> None:
        taken.set_result(request.connection.detach())

    # The stream gets the conversation's limits once detached: a server
    # made with a small max_buffer_size would refuse the request itself.
    server = lib.httpserver.HTTPServer(handle)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    server.add_sockets([listener])
    peer = socket.create_connection(listener.getsockname())
    peer.sendall(b"GET / HTTP/1.1\r\nHost: peer\r\n\r\n")
    peer.setblocking(False)
    # A hang guard (a server that never detaches): not a measure of time.
    stream = await asyncio.wait_for(taken, 30)
    server.stop()
    if spec["max_buffer_size"] is not None:
        stream.max_buffer_size = spec["max_buffer_size"]
        stream.read_chunk_size = min(stream.read_chunk_size, max(1, spec["max_buffer_size"] // 2))
    if spec["read_chunk_size"] is not None:
        stream.read_chunk_size = spec["read_chunk_size"]
    stream.max_write_buffer_size = spec["max_write_buffer_size"]
    return stream, peer


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
# Where the stream comes from (--detached: from an HTTPServer's detach()).
MAKE: dict[str, Any] = {"stream": socket_pair}


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
    if k < 0 or len(b) != len(a) or a[:k] != b[:k] or theirs["closes"] != ours["closes"]:
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
        and b[k][3] == ("ok", None)
        and ours["received"].startswith(theirs["received"])
        and theirs["error"] == ours["error"]
    )


COUNTS: dict[str, int] = {"same": 0, "cut": 0, HALF_CLOSED: 0}


@given(conversations())
def same_conversations(spec: dict[str, Any]) -> None:
    theirs, ours, cut = _cut(run(TORNADO, spec), run(SQUALL, spec))
    if theirs != ours and _end_seen_later(spec, theirs, ours):
        COUNTS[HALF_CLOSED] += 1
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
    args = ap.parse_args()
    if args.detached:
        MAKE["stream"] = detached
    logging.disable(logging.CRITICAL)
    found = hunt(same_conversations, args.examples, args.seed)
    if found is not None:
        print(f"streams: DIFFERENT {found}")
        return 1
    print(
        f"streams: same on {args.examples} examples ({COUNTS['cut']} of them compared "
        "up to the first read that failed for the stream's close)"
    )
    print(f"  explained as '{HALF_CLOSED}': {COUNTS[HALF_CLOSED]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
