"""The exchange contract: ``request.connection``, one HTTP message exchange
as the application sees it, whatever protocol carries it.

`HTTPConnection` (in ``_contract``, interpreted) declares what the
application (`.RequestHandler`, a WSGI container, a router's delegate) may
call, and what each call raises.
`Exchange` is the part of it that does not depend on the protocol, written
once: the response's phase, the Content-Length accounting and the close
callback. A driver subclasses it and writes only its emit hooks
(`Exchange._emit_head`, `_emit_body`, `_emit_end`, `_refuse`).

Who implements what (docs/guide/seam.md draws it; one conformance suite,
tests/httputil/test_exchange_conformance.py, runs over all of them):

* Every implementation subclasses `Exchange`: HTTP/2
  (``httpserver/_h2stream._H2Stream``), HTTP/3 (``_h3stream._H3Stream``), the
  ASGI adapter (``asgi/_adapter._ASGIConnection``), the test client
  (``testclient._Connection``) and the wrappers over another connection
  (``httputil/_wrapped.WrappedConnection``: the runner's
  ``cli/_serving._AppConnection``, which follows the response for the
  access log, and ``httpserver/_altsvc._AltSvcConnection``, which adds
  Alt-Svc) write the emit hooks only.
* The HTTP/1.1 drivers, `.HTTP1Connection` (over an IOStream, client and
  server) and ``httpserver/_h1exchange._RequestConnection`` (the server's
  protocol, on the hot path), write their own `write_headers`: the sans-I/O
  core renders the head and keeps the Content-Length accounting (it frames
  the message by it, RFC 9112 section 6). `write`, `finish`, the phase,
  `head_written` and the close callback are Exchange's. This module is
  compiled by mypyc with the HTTP/1.1 server's driver, so the hooks cost no
  more than the methods they replaced there.

Optional capabilities are declared methods that may decline (return None,
having done nothing): `HTTPConnection.write_rendered_head` and
`HTTPConnection.sendfile`.

The phase of a response, in this order (one field, ``_phase``)::

    IDLE --write_headers--> HEAD --write--> BODY --finish--> DONE
      \\________________________\\______________\\--lost/reset--> GONE

``GONE``: the peer went away, or the exchange was reset or closed; nothing
more goes out, and writes return a future failed with `.StreamClosedError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Optional

from squall._compiled import mypyc_attr
from squall.httputil._contract import HTTPConnection, check_informational
from squall.httputil._headers import HTTPHeaders, HTTPOutputError
from squall.httputil._startline import ResponseStartLine, StartLine
from squall.iostream import StreamClosedError
from squall.log import app_log

if TYPE_CHECKING:
    from squall.httputil._delegates import HTTPMessageDelegate

__all__ = [
    "BODY",
    "DONE",
    "GONE",
    "HEAD",
    "IDLE",
    "Exchange",
    "HTTPConnection",
    "OneShot",
    "RequestContextBase",
    "check_informational",
    "close_by_attribute",
    "closed_future",
    "loop_of",
    "report_closed",
    "silenced",
]

IDLE: Final = 0  # nothing written
HEAD: Final = 1  # the head is written (a driver may still hold it)
BODY: Final = 2  # body bytes followed the head
DONE: Final = 3  # finish() ended the response
GONE: Final = 4  # lost, reset or closed: nothing more goes out


def close_by_attribute(connection: Any) -> bool:
    """Whether ``connection`` has the `HTTPConnection.close_callback_attribute`
    capability (``is True``: a stand-in such as a Mock answers any attribute);
    a duck-typed connection without the attribute has not. Raises nothing."""
    try:
        return connection.close_callback_attribute is True
    except AttributeError:
        return False


# Not Final: tests count its calls (see loop_of).
_get_running_loop = asyncio.get_running_loop
# A C variable in the compiled build (a module global is a dict lookup).
_ResponseStartLine: Final = ResponseStartLine


def loop_of(connection: object) -> asyncio.AbstractEventLoop:
    """The loop a request on ``connection`` runs on: the one its driver
    names (`Exchange.loop`), else asyncio's running loop, which is a getpid
    system call per call on Python 3.11.

    Raises:
        RuntimeError: neither (no loop is running).
    """
    loop = connection.loop if isinstance(connection, Exchange) else None
    if loop is None:
        loop = _get_running_loop()
    return loop


def _content_length(values: list[str]) -> int:
    """The response's declared length, from its Content-Length values.

    Raises:
        HTTPOutputError: not one value of ASCII digits (RFC 9110 section
            8.6: int() would also take "+1", "1_0" or other scripts'
            digits). Raised before anything is sent: the application may
            still answer with an error (head_written stays False).
    """
    value = values[0] if values else ""
    if len(values) != 1 or not value:
        raise HTTPOutputError(f"invalid Content-Length {value!r}")
    # Read digit by digit: compiled, a few instructions a digit, where
    # int() of a str costs some hundred.
    length = 0
    for char in value:
        digit = ord(char) - 48
        if digit < 0 or digit > 9:
            raise HTTPOutputError(f"invalid Content-Length {value!r}")
        length = length * 10 + digit
    return length


def closed_future() -> asyncio.Future[None]:
    """What a write to a gone peer returns: a future failed with `.StreamClosedError`."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.set_exception(StreamClosedError())
    future.exception()  # nobody has to look at a write to a closed connection
    return future


def silenced() -> None:
    """What ``set_close_callback(None)`` leaves in ``close_callback``: a
    callback that does nothing. ``None`` there means that no one has chosen
    yet, and an application relying on the close_callback_attribute
    capability then sets its own once its first step has returned (see
    `HTTPConnection.close_callback_attribute`): a choice of no callback made
    in that step (Tornado's way to silence the notification) must stand."""


def report_closed(
    delegate: Optional[HTTPMessageDelegate], callback: Optional[Callable[[], None]]
) -> None:
    """Tells the application that its exchange is gone: ``delegate`` (whose
    request was still being read) and the close ``callback`` (whose response
    was unfinished), each guarded: what they raise is logged."""
    if delegate is not None:
        try:
            delegate.on_connection_close()
        except Exception:
            app_log.error("Uncaught exception in on_connection_close", exc_info=True)
    if callback is not None:
        try:
            callback()
        except Exception:
            app_log.error("Uncaught exception in close callback", exc_info=True)


@mypyc_attr(allow_interpreted_subclasses=True)
class RequestContextBase:
    """The two fields of a connection's context that every request copies:
    ``remote_ip`` and ``protocol`` (the server's ``_HTTPRequestContext``
    adds the rest).

    Compiled with `HTTPServerRequest` (speedups/squall_build.py), they are
    native fields, which the request reads without an attribute lookup.
    """

    __slots__ = ("remote_ip", "protocol", "derived")

    # Any: Tornado's context holds whatever a program or a proxy model sets.
    remote_ip: Any
    protocol: Any
    # What a layer above works out once per connection from this context
    # and keeps for the connection's later requests (the ASGI adapter: the
    # scope's port, server address and extensions); None until then. It
    # goes with the context, where a table keyed by contexts would hold
    # every closed connection's until it was cleared.
    derived: Any


@mypyc_attr(allow_interpreted_subclasses=True)
class Exchange(HTTPConnection):
    """`HTTPConnection` written once: the phase, Content-Length accounting
    and close callback; a driver writes the emit hooks.

    Hooks (each called at most as the phases allow):

    * `_emit_head`: the head (and first chunk) was accepted; send or hold it.
    * `_emit_body`: a body chunk was counted; send it (may be empty).
    * `_emit_end`: the response ended (``phase`` is what it was before).
    * `_emit_raw`: `write` before any head (default: refused).
    * `_emit_informational`: an interim (1xx) head before the response;
      send it and return True, or decline with False (the default).
    * `_refuse`: the application broke the Content-Length; abort the
      exchange (its phase may move to `GONE` by `_report_gone`).

    A driver calls `_report_gone` when the peer goes away or the exchange is reset.

    ``loop``: the event loop whose callbacks call this exchange's message
    delegate, where the driver knows it (the HTTP/1.1 server's connection;
    a wrapper passes on the one it wraps), else None. The application
    starts a request's coroutine on it without asking asyncio, whose
    ``get_running_loop`` makes a getpid system call per call on Python
    3.11.

    Compiled by mypyc with the HTTP/1.1 driver (speedups/squall_build.py):
    its fields are then native attributes (mypyc passes ``__slots__`` over),
    and the HTTP/1.1 server's `_RequestConnection` and HTTP/2's `_H2Stream`,
    native subclasses, call the hooks natively; interpreted subclasses
    (HTTP/3, ASGI, the test client, the runner's) override them as usual.
    """

    __slots__ = (
        "context",
        "close_callback_attribute",
        "close_callback",
        "_phase",
        "_declared",
        "_written",
        "_bodiless",
    )

    # See the class's docstring. A class attribute, not a slot: a driver
    # that knows its loop sets it after __init__ (a slot of its own, in the
    # pure build), the others leave it None without a word. Compiled, it
    # is a native field that starts as None.
    loop: Optional[asyncio.AbstractEventLoop] = None

    def __init__(
        self, context: Any, bodiless: bool = False, close_callback_attribute: bool = False
    ) -> None:
        # Both annotated here, though HTTPConnection declares them: mypyc
        # makes a field only of what the compiled class itself declares, and
        # stored anything else in an instance __dict__ (one dict per
        # exchange, made for every request, and read by dictionary lookups).
        self.context: Any = context
        # The capability (see HTTPConnection.close_callback_attribute) is
        # the driver's to declare: without it, a driver may report a close
        # from the application's own call (a reset by close(), a refused
        # write). A slot, read faster than the class's.
        self.close_callback_attribute: bool = close_callback_attribute
        self.close_callback: Optional[Callable[[], None]] = None
        self._phase = IDLE
        self._declared: Optional[int] = None
        self._written = 0
        # No body may follow the head (a HEAD request, 1xx, 204, 304):
        # what is written is counted, not sent.
        self._bodiless = bodiless

    # -- the contract -----------------------------------------------------------------

    def write_headers(
        self, start_line: StartLine, headers: HTTPHeaders, chunk: Optional[bytes] = None
    ) -> asyncio.Future[None]:
        """Writes the response head, and optionally the first piece of the body.

        Raises:
            HTTPOutputError: a head already written, an invalid
                Content-Length, a first chunk longer than it, or fields the
                protocol refuses.
        """
        phase = self._phase
        if phase == GONE:
            return closed_future()
        if phase != IDLE:
            raise HTTPOutputError("the response has already started: its head was already written")
        assert isinstance(start_line, _ResponseStartLine)
        code = start_line.code
        lengths = headers._as_list.get("Content-Length")
        if lengths is not None:
            self._declared = _content_length(lengths)
        self._phase = HEAD
        if code in (204, 304) or 100 <= code < 200:
            self._bodiless = True
        if chunk:
            self._count(len(chunk))
        else:
            chunk = b""
        return self._emit_head(start_line, headers, chunk)

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Writes a piece of the body.

        Raises:
            HTTPOutputError: more than the Content-Length, or no head written
                (see `_emit_raw`).
        """
        phase = self._phase
        if phase >= DONE:
            return closed_future()
        if phase == IDLE:
            return self._emit_raw(chunk)
        if chunk:
            # _count, inlined: a call fewer per chunk.
            written = self._written = self._written + len(chunk)
            declared = self._declared
            if declared is not None and written > declared:
                self._refuse()
                raise HTTPOutputError("Tried to write more data than Content-Length")
        self._phase = BODY
        return self._emit_body(chunk)

    def finish(self) -> None:
        """Ends the response.

        Raises:
            HTTPOutputError: fewer bytes written than the Content-Length.
        """
        phase = self._phase
        if phase >= DONE:
            if phase == GONE:
                self._emit_end(GONE)
            return
        self._phase = DONE
        declared = self._declared
        if declared is not None and self._written < declared and not self._bodiless:
            self._refuse()
            raise HTTPOutputError(
                f"Tried to write {declared - self._written} bytes less than Content-Length"
            )
        self._emit_end(phase)

    def write_informational(self, code: int, headers: HTTPHeaders) -> bool:
        """Sends an interim head while no response has started (see
        `HTTPConnection.write_informational`); the driver's
        `_emit_informational` sends it or declines.

        Raises:
            HTTPOutputError: not an interim status, or a field the protocol refuses.
        """
        check_informational(code)
        if self._phase != IDLE:
            return False
        return self._emit_informational(code, headers)

    def send_now(self) -> None:
        """Put what this exchange has written on the wire now.

        `RequestHandler.flush` calls it before the response's end, and
        `RequestHandler.finish` after it where code of the application's
        may follow: Tornado writes both to the socket before they return,
        so a handler that answers and then blocks (a synchronous step, a
        webhook's slow work after its answer, ``on_finish``) has its client
        see the bytes meanwhile. A driver that holds output for the end of
        the loop's round (the HTTP/1.1 server's write queue, an HTTP/2 or
        HTTP/3 connection's one write per round) overrides this; the others
        send at once already.
        """

    @property
    def head_written(self) -> bool:
        """Whether a head was accepted (see `HTTPConnection.head_written`)."""
        return self._phase != IDLE

    def set_close_callback(self, callback: Optional[Callable[[], None]]) -> None:
        """Call ``callback`` if the exchange is lost before the response is
        finished; ``None``: call nothing (`silenced` is kept in its place)."""
        self.close_callback = silenced if callback is None else callback

    # -- for the driver ---------------------------------------------------------------

    def _count(self, n: int) -> None:
        self._written += n
        declared = self._declared
        if declared is not None and self._written > declared:
            self._refuse()
            raise HTTPOutputError("Tried to write more data than Content-Length")

    def _report_gone(self, delegate: Optional[HTTPMessageDelegate] = None) -> int:
        """The exchange is lost: nothing more goes out. Tells ``delegate``
        (pass it only while the request is still read) and the close
        callback (if the response was unfinished); returns the phase the
        exchange was in (`GONE` if it already was)."""
        phase = self._phase
        self._phase = GONE
        callback = self.close_callback
        self.close_callback = None
        if callback is None and phase < DONE and self.close_callback_attribute:
            # An application relying on the close_callback_attribute
            # capability sets the callback only once its first step has
            # returned, and the loss may come from that step's own calls (a
            # multiplexed stream reset by close() or a broken Content-Length):
            # look again on the next loop turn.
            self._report_later()
        report_closed(delegate, callback if phase < DONE else None)
        return phase

    def _report_later(self) -> None:
        loop = self.loop
        try:
            if loop is None:
                loop = asyncio.get_running_loop()
            loop.call_soon(self._report_late)
        except RuntimeError:
            pass  # no loop running, or it is closed: no application to tell

    def _report_late(self) -> None:
        callback = self.close_callback
        if callback is not None:
            self.close_callback = None
            report_closed(None, callback)

    # -- the emit hooks ---------------------------------------------------------------

    def _emit_head(
        self, start_line: ResponseStartLine, headers: HTTPHeaders, chunk: bytes
    ) -> asyncio.Future[None]:
        raise NotImplementedError()

    def _emit_body(self, chunk: bytes) -> asyncio.Future[None]:
        raise NotImplementedError()

    def _emit_end(self, phase: int) -> None:
        raise NotImplementedError()

    def _emit_raw(self, chunk: bytes) -> asyncio.Future[None]:
        raise HTTPOutputError("write_headers must come before write on this connection")

    def _emit_informational(self, code: int, headers: HTTPHeaders) -> bool:
        # A driver that can carry interim heads sends this one and says so.
        return False

    def _refuse(self) -> None:
        raise NotImplementedError()


class OneShot:
    """A wake-up that one waiter awaits and anyone may trigger, any number of times.

    `wait` returns a future (a new one once the last was triggered);
    `wake` resolves it. The ASGI drivers' send loops sleep on one.
    """

    __slots__ = ("_future",)

    def __init__(self) -> None:
        self._future: Optional[asyncio.Future[None]] = None

    def wait(self) -> asyncio.Future[None]:
        """The future the next `wake` resolves."""
        future = self._future
        if future is None or future.done():
            future = self._future = asyncio.get_running_loop().create_future()
        return future

    def wake(self) -> None:
        """Resolves the pending `wait`, if any."""
        future = self._future
        if future is not None:
            self._future = None
            if not future.done():
                future.set_result(None)
