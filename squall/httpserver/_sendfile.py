"""A response body sent from a file by the kernel: sendfile(2) on the socket.

`send_file` is what ``_RequestConnection.sendfile`` runs once it has
checked the connection can (plain TCP, a Content-Length body) and counted
the bytes against the Content-Length. It works the same on asyncio's loop
and on uvloop's (which has no ``loop.sendfile``):

* the transport's own buffer is emptied first (what it holds goes before
  the file's bytes): its low-water mark is set to 0 for the wait, so that
  the protocol's ``resume_writing`` says when it is empty;
* then ``os.sendfile`` on a duplicate of the socket's descriptor, which the
  loop can watch for writability (the transport has the original
  registered, and both loops refuse a second watcher on it);
* the connection's drain waiters see a lost connection, so a client that
  goes away ends the wait at once; a client that stops reading is given the
  server's ``write_timeout``, as a buffered response is.

A file that ends before ``count`` bytes (truncated meanwhile) closes the
connection: the response cannot be completed, and the client must not wait
for bytes that will never come.
"""

from __future__ import annotations

import asyncio
import os
from typing import IO, TYPE_CHECKING

from squall.httputil import HTTPOutputError
from squall.iostream import StreamClosedError

if TYPE_CHECKING:
    from squall.httpserver._protocol import _HTTPProtocol

__all__ = ["send_file"]


def _ready(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _time_out(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


async def _wait(proto: _HTTPProtocol, waiter: asyncio.Future[None]) -> None:
    """Wait on ``waiter``, which a lost connection fails (a drain waiter)."""
    proto.add_drain_waiter(waiter)
    timeout = proto.write_timeout
    timer = None
    if timeout is not None:
        timer = proto.loop.call_later(timeout, _time_out, waiter)
    try:
        await waiter
    except TimeoutError:
        raise StreamClosedError() from None
    finally:
        if timer is not None:
            timer.cancel()
        proto.drop_drain_waiter(waiter)


async def _emptied(proto: _HTTPProtocol, transport: asyncio.Transport) -> None:
    """Wait until ``transport`` has written all it holds."""
    low, high = transport.get_write_buffer_limits()
    # Above a high-water mark of 0 the protocol is paused (pause_writing),
    # and at the low-water mark of 0 resumed: the buffer is then empty.
    transport.set_write_buffer_limits(high=0, low=0)
    try:
        while transport.get_write_buffer_size() and not transport.is_closing():
            await _wait(proto, proto.loop.create_future())
    finally:
        if not transport.is_closing():
            transport.set_write_buffer_limits(high=high, low=low)


async def send_file(
    proto: _HTTPProtocol, transport: asyncio.Transport, file: IO[bytes], count: int
) -> None:
    """Send ``count`` bytes of ``file`` from its current offset on ``transport``'s socket.

    Raises:
        StreamClosedError: the client went away or stopped reading for
            ``write_timeout`` (the connection is closed).
        HTTPOutputError: the file ended early (the connection is closed).
    """
    loop = proto.loop
    if transport.get_write_buffer_size():
        await _emptied(proto, transport)
    if transport.is_closing():
        raise StreamClosedError()
    sock = transport.get_extra_info("socket")
    out = os.dup(sock.fileno())
    watching = False
    offset = file.tell()
    source = file.fileno()
    try:
        while count > 0:
            try:
                sent = os.sendfile(out, source, offset, count)
            except (BlockingIOError, InterruptedError):
                waiter: asyncio.Future[None] = loop.create_future()
                loop.add_writer(out, _ready, waiter)
                watching = True
                await _wait(proto, waiter)
                loop.remove_writer(out)
                watching = False
                continue
            except OSError as exc:
                transport.abort()
                raise StreamClosedError(real_error=exc) from None
            if sent == 0:
                transport.abort()
                raise HTTPOutputError(f"the file ended {count} bytes short of its length")
            offset += sent
            count -= sent
    except StreamClosedError:
        transport.abort()
        raise
    finally:
        if watching:
            loop.remove_writer(out)
        os.close(out)
    file.seek(offset)
