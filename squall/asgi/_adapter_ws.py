"""A `WebSocketHandler` over an ASGI ``websocket`` scope: messages in, messages out.

The handler's `WebSocketProtocol13` drives a connection through two objects:
a stream (where frames are written and read) and a `squall._ws.WSConnection`
(which turns messages into frames and bytes into events). Under an ASGI
server there are no frames to make: the server frames, parses, compresses
and answers pings itself. So `_ASGIConnection.detach` hands the protocol
`_ASGIChannel`, and the protocol takes the channel's `_ASGIMessages` as its
core in place of a `WSConnection`:

* what the protocol sends (``send_message``, ``send_close``) is queued as a
  ``websocket.send`` or ``websocket.close`` message at once, and the
  "frame" returned is empty; the protocol's write of those empty frames
  (one per message, or one for the messages of a callback, see
  ``_uncork``) returns the Future of the last message queued, which
  resolves once the ASGI server has taken it (messages go in order);
* each ``websocket.receive`` becomes a `squall._ws.Message` event, with the
  handler's ``max_message_size`` applied (1009, as the frame parser would);
  the protocol asks for events by handing the channel's token to
  ``receive_data``, from its direct receiver or its reading task, as it
  would hand read bytes over;
* the handler's pings are answered here with a pong event (ASGI has no
  ping message; the ASGI server keeps the real connection alive);
* ``websocket.disconnect`` becomes the close the client sent (its code), or
  the end of the connection.

Nothing is framed or parsed on the way.
"""

from __future__ import annotations

__all__: list[str] = []  # private to the adapter

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional, Union

from squall import _ws
from squall.iostream import StreamClosedError

if TYPE_CHECKING:
    from squall.asgi._adapter import _ASGIConnection


# Payload bytes (or characters) received and not yet taken by the handler
# before receive() waits for it.
_HIGH_WATER = 1024 * 1024
# Messages queued for the ASGI server and not yet taken by it past which
# `squall.websocket.broadcast` counts the connection as a slow reader.
_QUEUED_HIGH_WATER = 64
# What the channel hands over for "bytes received": it means only "events
# are waiting", which _ASGIMessages.receive_data then returns.
_TOKEN = b"\x00"


class _ASGIMessages:
    """The protocol's core for a WebSocket carried by ASGI, in place of `squall._ws.WSConnection`."""

    __slots__ = ("_channel", "close_sent", "max_message_size")

    # The server side, and no extension: the ASGI server compresses.
    client = False
    extension = None
    # No frames here: the byte counters of WSConnection stay at zero.
    message_bytes_in = message_bytes_out = wire_bytes_in = wire_bytes_out = 0

    def __init__(self, channel: _ASGIChannel, max_message_size: Optional[int]) -> None:
        self._channel = channel
        self.close_sent = False
        self.max_message_size = max_message_size

    def receive_data(self, data: bytes) -> list[_ws.Event]:
        """The events waiting in the channel (``data`` is its token)."""
        return self._channel.take_events()

    def send_message(self, data: Union[str, bytes], binary: bool = False) -> bytes:
        """Queues ``websocket.send``; returns the empty frame.

        Raises:
            LocalProtocolError: a close was sent, or text that is not UTF-8.
        """
        if self.close_sent:
            raise _ws.LocalProtocolError("the connection is closing: a close was sent")
        if binary:
            payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
            self._channel.queue_message({"type": "websocket.send", "bytes": payload})
            return b""
        if not isinstance(data, str):
            try:
                data = bytes(data).decode("utf-8")
            except UnicodeDecodeError:
                raise _ws.LocalProtocolError("a text message must be UTF-8") from None
        self._channel.queue_message({"type": "websocket.send", "text": data})
        return b""

    def send_frame(
        self, opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False
    ) -> bytes:
        """A whole data message, or a ping (answered here); returns the empty frame.

        Raises:
            LocalProtocolError: a close was sent, or a fragment (ASGI
                carries whole messages only).
        """
        if self.close_sent:
            raise _ws.LocalProtocolError("the connection is closing: a close was sent")
        if opcode == 0x9:
            # The client is alive as far as the handler needs to know.
            self._channel.answer_ping(payload)
        elif opcode in (0x1, 0x2) and fin and not rsv1:
            self.send_message(payload, binary=opcode == 0x2)
        elif opcode != 0xA:  # a pong answers a ping ASGI never delivers
            raise _ws.LocalProtocolError("ASGI carries whole messages, not frames")
        return b""

    def send_close(self, code: Optional[int] = None, reason: Optional[str] = None) -> bytes:
        """Queues ``websocket.close`` (once); returns the empty frame.

        Raises:
            LocalProtocolError: an invalid code or a reason over 123 bytes.
        """
        if self.close_sent:
            return b""
        _ws.build_close_payload(code, reason)  # RFC 6455 section 7.4's rules, checked
        self.close_sent = True
        self._channel.queue_close(1000 if code is None else code, reason or "")
        return b""


class _ASGIChannel:
    """The protocol's "stream" for a WebSocket carried by ASGI: a queue each way.

    It has the part of the `~squall.iostream.BaseIOStream` API that
    `WebSocketProtocol13` uses (``write``, ``read_bytes``, ``set_receiver``,
    ``set_receiving``, ``set_close_callback``, ``close``, ``closed``,
    ``set_nodelay``) and moves messages, not bytes: it is not an IOStream.
    """

    def __init__(self, conn: _ASGIConnection) -> None:
        self._conn = conn
        self.core = _ASGIMessages(self, None)
        self._events: deque[_ws.Event] = deque()
        self._held = 0
        self._space: Optional[asyncio.Future[None]] = None
        self._eof = False
        self._closed = False
        self._close_queued = False
        self._close_callback: Optional[Callable[[], None]] = None
        self._receiver: Optional[Callable[[bytes], None]] = None
        self._receiving = True
        self._read: Optional[asyncio.Future[bytes]] = None
        self._last: Optional[asyncio.Future[None]] = None
        self.error: Optional[BaseException] = None

    # -- what the protocol calls -----------------------------------------------------------

    def message_core(self, codec: _ws.WSConnection) -> _ASGIMessages:
        """The core the protocol uses instead of ``codec``, with its message size limit."""
        self.core.max_message_size = codec.max_message_size
        return self.core

    def write(self, data: Union[bytes, bytearray, memoryview]) -> asyncio.Future[None]:
        """The protocol's write of its (empty) frames: the Future of the last message queued.

        Raises:
            StreamClosedError: the channel is closed.
            ValueError: bytes other than the empty frames (there is no wire).
        """
        if self._closed:
            raise StreamClosedError()
        if data:
            raise ValueError("a WebSocket carried by ASGI takes messages, not bytes")
        last = self._last
        self._last = None
        if last is None:
            last = asyncio.get_running_loop().create_future()
            last.set_result(None)
        return last

    def read_bytes(self, num_bytes: int, partial: bool = False) -> asyncio.Future[bytes]:
        """The reading task's wait: resolves with the token once events wait.

        Raises:
            StreamClosedError: (through the Future) the client is gone and
                every event was taken.
        """
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._read = future
        self._wake_reader()
        return future

    def set_receiver(self, receiver: Optional[Callable[[bytes], None]]) -> bytes:
        """Hands each later arrival to ``receiver``; returns the token if events already wait."""
        self._receiver = receiver
        self._receiving = True
        return _TOKEN if self._events else b""

    def set_receiving(self, receiving: bool) -> None:
        """Pauses (False) or resumes what goes to the receiver."""
        self._receiving = receiving
        if receiving and self._events and self._receiver is not None:
            asyncio.get_running_loop().call_soon(self._deliver)

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        """Calls ``callback`` once the channel is closed."""
        self._close_callback = callback

    def writing_paused(self) -> bool:
        """Whether the ASGI server is behind: over ``_QUEUED_HIGH_WATER`` messages wait for it."""
        return self._conn.queued() >= _QUEUED_HIGH_WATER

    def get_write_buffer_size(self) -> int:
        """Bytes (or characters) of the messages queued and not yet taken by the ASGI server."""
        return self._conn.queued_bytes()

    def set_nodelay(self, value: bool) -> None:
        """The ASGI server owns the socket: nothing to set."""

    def closed(self) -> bool:
        """Whether the channel is closed."""
        return self._closed

    def close(self, exc_info: Any = False) -> None:
        """Closes the channel: the client is sent a close if none was, and the ASGI call ends."""
        if self._closed:
            return
        self._closed = True
        if exc_info:
            self.error = exc_info if isinstance(exc_info, BaseException) else StreamClosedError()
        conn = self._conn
        if not self._close_queued and not conn.gone:
            # The protocol closes its stream without a close of its own only
            # when it aborts (open() or on_message raised, send_error): where
            # the native server drops the connection, the client hears an
            # error too (1011), not a normal closure.
            self._close_queued = True
            conn.queue({"type": "websocket.close", "code": 1011})
        self._events.clear()
        self._release()
        read = self._read
        if read is not None:
            self._read = None
            if not read.done():
                read.set_exception(StreamClosedError())
                read.exception()
        conn.channel_closed()
        callback = self._close_callback
        self._close_callback = None
        if callback is not None:
            callback()

    # -- the protocol's core (_ASGIMessages) ------------------------------------------------

    def take_events(self) -> list[_ws.Event]:
        events = list(self._events)
        self._events.clear()
        self._held = 0
        self._release()
        return events

    def queue_message(self, message: dict[str, Any]) -> None:
        conn = self._conn
        if self._closed or conn.gone:
            return  # the client left: the message goes nowhere
        self._last = conn.queue(message, True)

    def queue_close(self, code: int, reason: str) -> None:
        if not self._close_queued:
            self._close_queued = True
            self.queue_message({"type": "websocket.close", "code": code, "reason": reason})

    def answer_ping(self, payload: bytes) -> None:
        asyncio.get_running_loop().call_soon(self._arrive, _ws.Pong(payload))

    # -- called by the connection ------------------------------------------------------------

    def on_message(self, message: dict[str, Any]) -> Optional[asyncio.Future[None]]:
        """A ``websocket.receive``: the handler's next message (or 1009 if too big).

        Returns:
            A Future to wait on before receiving more, while the handler
            has not taken over ``_HIGH_WATER`` of what came.
        """
        if self._closed or self._eof or self.core.close_sent:
            return None
        data: Union[str, bytes, None] = message.get("text")
        if data is None:
            data = bytes(message.get("bytes") or b"")
        size = len(data)
        limit = self.core.max_message_size
        if limit is not None and size * 4 > limit and type(data) is str:
            size = len(data.encode("utf-8"))
        if limit is not None and size > limit:
            # As the frame parser would (RFC 6455 section 7.4.1, 1009).
            self._eof = True
            self._arrive(_ws.ProtocolFailed(1009, "message too big"))
            return None
        self._held += size
        self._arrive(_ws.Message(data))
        if self._held >= _HIGH_WATER and not self._closed:
            space = self._space = asyncio.get_running_loop().create_future()
            return space
        return None

    def peer_gone(self, code: int, reason: str) -> None:
        """The client disconnected: the close it sent (unless none), then the end."""
        if self._closed or self._eof:
            return
        self._eof = True
        if code == 1005:
            self._arrive(_ws.CloseReceived(None, None))
        elif code != 1006:
            self._arrive(_ws.CloseReceived(code, reason or None))
        elif not self._events:
            self.close()

    # -- delivery ----------------------------------------------------------------------------

    def _arrive(self, event: _ws.Event) -> None:
        if self._closed:
            return
        self._events.append(event)
        if self._receiver is not None:
            if self._receiving:
                self._deliver()
        else:
            self._wake_reader()

    def _deliver(self) -> None:
        receiver = self._receiver
        if receiver is not None and self._receiving and self._events and not self._closed:
            receiver(_TOKEN)
        if self._eof and not self._events:
            # Every event taken and the client gone: the end, unless the
            # protocol closed first (on the close event, as it does).
            self.close()

    def _wake_reader(self) -> None:
        read = self._read
        if read is None or read.done():
            return
        if self._events:
            self._read = None
            read.set_result(_TOKEN)
        elif self._eof:
            self.close()  # fails the read

    def _release(self) -> None:
        space = self._space
        if space is not None:
            self._space = None
            if not space.done():
                space.set_result(None)
