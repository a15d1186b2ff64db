"""Serve a WSGI application (PEP 3333) with Squall's HTTP server.

`WSGIContainer` turns a WSGI application (Flask, Django, Bottle...) into the
request callback Squall's server and router take::

    container = WSGIContainer(flask_app, executor=ThreadPoolExecutor(8))
    server = HTTPServer(container)

or, next to Squall handlers, through `~squall.web.FallbackHandler`::

    Application([
        (r"/ws", ChatSocket),
        (r".*", FallbackHandler, dict(fallback=container)),
    ])

WSGI is synchronous: without an executor the application runs on the event
loop and blocks it while it works, so give a real application an executor.
The request body is read completely before the application is called. The
response is streamed: each piece the application's iterable yields is
written as it comes (with chunked coding or, for HTTP/1.0, until close,
unless the application set a Content-Length), and the iterable's
``close()`` is always called. A list or tuple response without a
Content-Length gets one. The connection's framing is the server's: the
hop-by-hop headers an application sets (``Transfer-Encoding``,
``Keep-Alive``...) are left out, and ``Connection: close`` closes the
connection once the response is sent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import sys
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Optional, TypeVar

import squall
from squall import escape
from squall.concurrent import dummy_executor
from squall.httputil import (
    HTTPHeaders,
    HTTPServerRequest,
    ResponseStartLine,
    split_host_and_port,
)
from squall.ioloop import IOLoop
from squall.log import access_log, app_log

__all__ = ["WSGIContainer"]

_ExcInfo = tuple[type[BaseException], BaseException, Optional[TracebackType]]
_Environ = dict[str, Any]
_StartResponse = Callable[..., Callable[[bytes], None]]
_WSGIApp = Callable[[_Environ, _StartResponse], Iterable[bytes]]
_T = TypeVar("_T")

# Tornado kept this alias when its WSGI adapter went away.
HTTPRequest = HTTPServerRequest

_SERVER_HEADER = "SquallServer/" + squall.version
# PEP 3333 forbids applications hop-by-hop headers: the server owns the
# framing and the connection. Applications set them anyway (Tornado passed
# them through, which for Transfer-Encoding gave a head that contradicts
# its own body), so, as gunicorn does, these are left out of the response;
# "Connection: close" alone is honoured (the connection closes after this
# response). Proxy-Authenticate is end-to-end for an application that
# answers as a proxy, so it is not in this set.
_DROPPED_HOP_BY_HOP = frozenset(("keep-alive", "te", "trailers", "transfer-encoding", "upgrade"))
_NO_BODY_STATUS = frozenset((204, 304))
_END = object()


def to_wsgi_str(s: bytes) -> str:
    """The PEP 3333 "native string" for bytes from the wire: decoded as latin-1."""
    if not isinstance(s, bytes):
        raise TypeError(f"to_wsgi_str takes bytes, not {type(s).__name__}")
    return s.decode("latin-1")


class WSGIContainer:
    """Runs a WSGI application as a Squall request callback.

    Args:
        wsgi_application: the WSGI callable ``app(environ, start_response)``.
        executor: a `concurrent.futures.Executor` to run the application
            (and each step of its response iterable) on, so that it does not
            block the event loop. Without one, the application runs on the
            loop, one request at a time.
    """

    def __init__(
        self,
        wsgi_application: _WSGIApp,
        executor: Optional[concurrent.futures.Executor] = None,
    ) -> None:
        self.wsgi_application = wsgi_application
        self.executor: concurrent.futures.Executor = (
            dummy_executor if executor is None else executor
        )

    def __call__(self, request: HTTPServerRequest) -> None:
        """Answer ``request`` (its body already read) from the application."""
        IOLoop.current().spawn_callback(self.handle_request, request)

    async def handle_request(self, request: HTTPServerRequest) -> None:
        """Run the application for ``request`` and write its response."""
        exchange = _WSGICall(self, request)
        await exchange.run()

    def environ(self, request: HTTPServerRequest) -> _Environ:
        """The PEP 3333 environ dict for ``request``."""
        host, port = split_host_and_port(request.host)
        if port is None:
            port = 443 if request.protocol == "https" else 80
        environ: _Environ = {
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            # PEP 3333: "native strings" holding the undecoded bytes, which
            # means latin-1 for the percent-decoded path.
            "PATH_INFO": to_wsgi_str(escape.url_unescape(request.path, encoding=None, plus=False)),
            "QUERY_STRING": request.query,
            "SERVER_NAME": host,
            "SERVER_PORT": str(port),
            "SERVER_PROTOCOL": request.version,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": request.protocol,
            "wsgi.input": io.BytesIO(escape.utf8(request.body or b"")),
            "wsgi.input_terminated": True,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self.executor is not dummy_executor,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if request.remote_ip:
            environ["REMOTE_ADDR"] = request.remote_ip
        for name, value in request.headers.get_all():
            lowered = name.lower()
            if lowered == "content-length":
                continue
            if lowered == "content-type":
                # Repeated, joined as any other field (as Tornado gives it):
                # an application sees that there were two.
                key = "CONTENT_TYPE"
            else:
                key = "HTTP_" + name.replace("-", "_").upper()
            if key in environ:
                # RFC 9110 section 5.3: repeated fields combine into a list
                # (joined with a bare comma, as Tornado and gunicorn give
                # them); cookies (RFC 6265 section 5.4) with "; ".
                sep = "; " if key == "HTTP_COOKIE" else ","
                environ[key] = environ[key] + sep + value
            else:
                environ[key] = value
        # The body is read already (and decoded if it was chunked or
        # compressed), so its real length is the one to give.
        if request.body or "Content-Length" in request.headers:
            environ["CONTENT_LENGTH"] = str(len(request.body or b""))
        return environ

    def _log(self, status_code: int, request: HTTPServerRequest) -> None:
        if status_code < 400:
            log = access_log.info
        elif status_code < 500:
            log = access_log.warning
        else:
            log = access_log.error
        log(
            "%d %s %s (%s) %.2fms",
            status_code,
            request.method,
            request.uri,
            request.remote_ip,
            1000.0 * request.request_time(),
        )


class _WSGICall:
    """One request's trip through the WSGI application."""

    __slots__ = (
        "_container",
        "_request",
        "_status",
        "_headers",
        "_pending",
        "_head_sent",
        "_status_code",
    )

    def __init__(self, container: WSGIContainer, request: HTTPServerRequest) -> None:
        self._container = container
        self._request = request
        self._status: Optional[str] = None
        self._headers: list[tuple[str, str]] = []
        # Bytes given to write() or yielded, not yet handed to the connection.
        self._pending: list[bytes] = []
        self._head_sent = False
        self._status_code = 500

    def _log(self, status_code: int) -> None:
        # The container's access-log hook, Tornado's WSGIContainer._log
        # (overridable; `squall run` replaces it with its own line).
        self._container._log(status_code, self._request)

    # -- the WSGI side (may run on an executor thread) --

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: Optional[_ExcInfo] = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self._head_sent:
                    # PEP 3333: too late to replace the response; re-raise.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._status is not None:
            raise RuntimeError("start_response called a second time without exc_info")
        if not isinstance(status, str):
            raise TypeError(f"WSGI status must be a str, not {type(status).__name__}")
        code, _, reason = status.partition(" ")
        if len(code) != 3 or not code.isdigit():
            raise ValueError(f"WSGI status must start with a 3-digit code: {status!r}")
        checked: list[tuple[str, str]] = []
        for item in headers:
            if not (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], str)
            ):
                raise TypeError(f"WSGI headers must be (str, str) tuples, got {item!r}")
            lowered = item[0].lower()
            if lowered in _DROPPED_HOP_BY_HOP:
                continue
            if lowered == "connection":
                if "close" not in (token.strip().lower() for token in item[1].split(",")):
                    continue
                item = ("Connection", "close")
            checked.append(item)
        self._status = status
        self._headers = checked
        return self.write

    def write(self, data: bytes) -> None:
        if not isinstance(data, bytes):
            raise TypeError(f"WSGI write() takes bytes, not {type(data).__name__}")
        if self._status is None:
            raise RuntimeError("WSGI write() called before start_response")
        if data:
            self._pending.append(data)

    # -- the loop side --

    async def _call(self, fn: Callable[..., _T], *args: Any) -> _T:
        executor = self._container.executor
        if executor is dummy_executor:
            return fn(*args)
        return await IOLoop.current().run_in_executor(executor, fn, *args)

    async def run(self) -> None:
        request = self._request
        container = self._container
        body: Optional[Iterable[bytes]] = None
        complete = False
        try:
            environ = container.environ(request)
            body = await self._call(container.wsgi_application, environ, self.start_response)
            if isinstance(body, (bytes, str)):
                raise TypeError("WSGI application returned a string, not an iterable of bytes")
            if isinstance(body, (list, tuple)):
                for chunk in body:
                    self._take(chunk)
                complete = await self._flush(last=True)
            else:
                chunks = await self._call(iter, body)
                while (chunk := await self._call(_next_or_end, chunks)) is not _END:
                    self._take(chunk)
                    if not await self._flush(last=False):
                        break  # the client went away
                    if self._container.executor is dummy_executor:
                        # Nothing above had to wait: let the loop send the
                        # chunk (and serve others) before the next one.
                        await asyncio.sleep(0)
                else:
                    complete = await self._flush(last=True)
        except Exception:
            self._fail()
            return
        finally:
            if body is not None:
                close = getattr(body, "close", None)
                if close is not None:
                    try:
                        await self._call(close)
                    except Exception:
                        app_log.error("Exception closing a WSGI response", exc_info=True)
        if complete:
            # Finished only now, so that the application's close() has run
            # (and logged) before the client sees the end of the response.
            connection = request.connection
            assert connection is not None
            connection.finish()
        self._log(self._status_code)

    def _take(self, chunk: Any) -> None:
        if not isinstance(chunk, bytes):
            raise TypeError(
                f"WSGI application yielded {type(chunk).__name__}, not bytes: {chunk!r:.80}"
            )
        if chunk:
            self._pending.append(chunk)

    async def _flush(self, last: bool) -> bool:
        """Hand pending bytes to the connection; False if the client went away."""
        connection = self._request.connection
        assert connection is not None
        if not self._head_sent:
            if not self._pending and not last:
                return True  # PEP 3333: the head waits for the first body bytes
            data = self._take_pending()
            head = self._head(data if last else None)
            self._head_sent = True
            future = connection.write_headers(head[0], head[1], data if self._has_body() else None)
        elif self._pending:
            data = self._take_pending()
            if not self._has_body():
                return True
            future = connection.write(data)
        else:
            future = None
        if future is not None and not last:
            try:
                await future
            except Exception:
                # The client is gone: stop producing (close() still runs).
                return False
        return True

    def _take_pending(self) -> bytes:
        data = b"".join(self._pending)
        self._pending.clear()
        return data

    def _has_body(self) -> bool:
        return self._request.method != "HEAD" and self._status_code not in _NO_BODY_STATUS

    def _head(self, whole_body: Optional[bytes]) -> tuple[ResponseStartLine, HTTPHeaders]:
        if self._status is None:
            raise RuntimeError("WSGI application did not call start_response")
        code, _, reason = self._status.partition(" ")
        self._status_code = status_code = int(code)
        headers = HTTPHeaders()
        names = set()
        for name, value in self._headers:
            headers.add(name, value)
            names.add(name.lower())
        if status_code not in _NO_BODY_STATUS and status_code >= 200:
            if whole_body is not None and "content-length" not in names:
                headers["Content-Length"] = str(len(whole_body))
            if "content-type" not in names:
                headers["Content-Type"] = "text/html; charset=UTF-8"
        if "server" not in names:
            headers["Server"] = _SERVER_HEADER
        return ResponseStartLine("HTTP/1.1", status_code, reason), headers

    def _fail(self) -> None:
        request = self._request
        connection = request.connection
        app_log.error(
            "Uncaught exception in WSGI application: %s %s",
            request.method,
            request.uri,
            exc_info=True,
        )
        self._status_code = 500
        if connection is None:
            return
        if self._head_sent:
            # Part of the response is out: the only honest end is a close.
            close = getattr(connection, "close", None)
            if close is not None:
                close()
            else:
                connection.finish()
        else:
            self._head_sent = True
            body = b"<html><title>500: Internal Server Error</title><body>500: Internal Server Error</body></html>"
            headers = HTTPHeaders()
            headers["Content-Type"] = "text/html; charset=UTF-8"
            headers["Content-Length"] = str(len(body))
            headers["Server"] = _SERVER_HEADER
            start = ResponseStartLine("HTTP/1.1", 500, "Internal Server Error")
            connection.write_headers(start, headers, body if request.method != "HEAD" else None)
            connection.finish()
        self._log(500)


def _next_or_end(chunks: Iterator[bytes]) -> Any:
    # StopIteration must not cross a Future (asyncio turns it into a
    # RuntimeError), so the end comes back as a sentinel.
    return next(chunks, _END)
