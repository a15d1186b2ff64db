"""`CurlAsyncHTTPClient`: an `~squall.httpclient.AsyncHTTPClient` over libcurl (``pycurl``).

Select it with ``AsyncHTTPClient.configure("squall.curl_httpclient.CurlAsyncHTTPClient")``
or make one directly. libcurl's multi interface runs on the IOLoop: libcurl
names the sockets to watch and the timer to set, the IOLoop tells it when
they are ready. Every `~squall.httpclient.HTTPRequest` option that applies is honoured,
including proxies (``proxy_host`` ..., basic or digest), ``network_interface``,
digest authentication and ``prepare_curl_callback`` (called with the
``pycurl.Curl`` handle last, to set anything else).

Bodies are bounded: ``max_body_size`` (100 MB) is measured after libcurl has
decoded the content (gzip, and br or zstd when libcurl was built with them),
and a ``streaming_callback`` gets the body through a bounded buffer that
pauses the transfer while the callback catches up.

Needs pycurl: ``pip install squall[curl]``.
"""

from __future__ import annotations

import collections
import functools
import inspect
import time
import unicodedata
import weakref
from collections.abc import Callable
from io import BytesIO
from typing import Any, Optional

from squall.util import _needs_extra

try:
    import pycurl  # type: ignore[import-untyped,unused-ignore]
except ImportError as _exc:  # pragma: no cover - depends on the installed extras
    raise _needs_extra(__name__, "pycurl", "curl", _exc) from _exc

from squall import gen, util
from squall.httpclient import AsyncHTTPClient, HTTPError, HTTPRequest, HTTPResponse
from squall.httputil import HTTPHeaders, HTTPInputError
from squall.httputil._headers import check_fields
from squall.ioloop import IOLoop, PeriodicCallback
from squall.log import app_log, gen_log
from squall.simple_httpclient._policy import (
    REDIRECT_CODES,
    USER_AGENT,
    ascii_url,
    check_method_body,
    redirected,
)

__all__ = ["CurlAsyncHTTPClient", "CurlError"]

# What Tornado's curl client sends when the request names none: a program
# written for Tornado (run under squall.compat) sends it too.
_TORNADO_CURL_USER_AGENT = "Mozilla/5.0 (compatible; pycurl)"


def _default_user_agent() -> str:
    return _TORNADO_CURL_USER_AGENT if util.running_as_tornado else USER_AGENT


_DEFAULT_MAX_BODY_SIZE = 100 * 1024 * 1024
_BAD_HEADER_CHARS = frozenset("\r\n\0")


class CurlError(HTTPError):
    """A transfer libcurl could not complete: code 599, with libcurl's ``errno``."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(599, message)
        self.errno = errno


class _Transfer:
    """What the client keeps about the request on one curl handle."""

    __slots__ = (
        "request",
        "callback",
        "start",
        "headers",
        "reason",
        "buffer",
        "stream",
        "received",
        "too_large",
        "status",
        "follows",
        "superseded",
        "malformed",
    )

    def __init__(
        self,
        request: HTTPRequest,
        callback: Callable[[HTTPResponse], None],
        start: Optional[float] = None,
    ) -> None:
        self.request = request
        self.callback = callback
        self.start = time.monotonic() if start is None else start
        # The header lines of the last response (a redirect's are dropped).
        self.headers: list[tuple[str, str]] = []
        self.reason = ""
        self.buffer = BytesIO()
        self.stream: Optional[_CurlStreamingBuffer] = None
        self.received = 0
        self.too_large = False
        # The status of the response being read.
        self.status = 0
        # follow_redirects: a redirect is followed by `CurlAsyncHTTPClient`.
        self.follows = False
        # The response being read is such a redirect: its body is nobody's.
        self.superseded = False
        # Why a line of the response's head was refused (the transfer then
        # stops there).
        self.malformed: Optional[str] = None

    def head_done(self) -> None:
        """The head of a response is complete: is it a redirect we follow?"""
        # An empty Location is no redirect (libcurl, which Tornado's curl
        # client leaves redirects to, returns such a response as it is).
        self.superseded = (
            self.follows
            and self.status in REDIRECT_CODES
            and any(name.lower() == "location" and value for name, value in self.headers)
        )


class _CurlStreamingBuffer:
    """Feeds a ``streaming_callback`` from libcurl's write callback, boundedly.

    libcurl calls `write` from inside ``socket_action``; the chunks are kept
    and handed to the callback from the IOLoop (`flush`), so that a slow or
    failing callback cannot stall or break libcurl. Past `max_buffer_size`
    bytes waiting, the transfer is paused (libcurl keeps the chunk it
    offered and offers it again) until the callback has caught up.
    """

    max_buffer_size = 1024 * 1024
    """Bytes waiting for the callback before the transfer is paused."""

    def __init__(
        self, client: CurlAsyncHTTPClient, curl: Any, callback: Callable[[bytes], Any]
    ) -> None:
        # Weak: a flush still queued on the IOLoop must not keep a closed client.
        self._client = weakref.ref(client)
        self._io_loop: IOLoop = client.io_loop
        self._max_body_size: int = client.max_body_size
        self.curl = curl
        self.callback = callback
        self.chunks: collections.deque[bytes] = collections.deque()
        self.size = 0
        self.total = 0
        self.paused = False
        self.body_too_large = False
        self._scheduled = False

    def write(self, chunk: bytes) -> int:
        """libcurl's WRITEFUNCTION: take ``chunk``, pause, or refuse (0) past max_body_size."""
        client = self._client()
        limit = client.max_body_size if client is not None else self._max_body_size
        if self.total + len(chunk) > limit:
            self.body_too_large = True
            return 0
        if self.size >= self.max_buffer_size:
            self.paused = True
            return pycurl.WRITEFUNC_PAUSE  # type: ignore[no-any-return]
        self.chunks.append(chunk)
        self.size += len(chunk)
        self.total += len(chunk)
        if not self._scheduled:
            self._scheduled = True
            self._io_loop.add_callback(self._scheduled_flush)
        return len(chunk)

    def _scheduled_flush(self) -> None:
        self._scheduled = False
        self.flush()

    def flush(self) -> None:
        """Hand the waiting chunks to the callback, then let a paused transfer go on."""
        while self.chunks:
            chunk = self.chunks.popleft()
            self.size -= len(chunk)
            try:
                self.callback(chunk)
            except Exception:
                # As an IOLoop callback's exception would be: logged, and the
                # transfer goes on.
                app_log.error("Exception in callback %r", self.callback, exc_info=True)
        if self.paused:
            self.paused = False
            try:
                self.curl.pause(pycurl.PAUSE_CONT)
            except pycurl.error:
                # The transfer failed while paused; libcurl reports it through
                # info_read, and the client finishes the request from there.
                return
            # libcurl before 8 does not ask for a socket_action by itself
            # after an unpause: ask for one now.
            client = self._client()
            if client is not None:
                client._set_timeout(0)


class CurlAsyncHTTPClient(AsyncHTTPClient):
    """An `~squall.httpclient.AsyncHTTPClient` over libcurl.

    Arguments are given to the constructor or `~squall.httpclient.AsyncHTTPClient.configure`.

    Args:
        max_clients: requests in progress at once; more wait in a queue.
        defaults: values for `~squall.httpclient.HTTPRequest` options a request leaves unset.
        max_body_size: largest response body, after decoding (100 MB), also
            with a ``streaming_callback``. Past it the fetch fails with a
            `CurlError` saying so (and, under the default, a log line).
    """

    def initialize(  # type: ignore[override]
        self,
        max_clients: int = 10,
        defaults: Optional[dict[str, Any]] = None,
        max_body_size: Optional[int] = None,
    ) -> None:
        super().initialize(defaults=defaults)
        self.max_clients = max_clients
        self.max_body_size = _DEFAULT_MAX_BODY_SIZE if max_body_size is None else max_body_size
        # A refusal under a limit the caller chose is reported by the error
        # alone; under the default one (that nobody chose) it is logged too.
        self._log_refusals = max_body_size is None
        self._multi: Any = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._set_timeout)
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._handle_socket)
        self._curls = [pycurl.Curl() for _ in range(max_clients)]
        self._free_list = list(self._curls)
        # Requests waiting for a handle, their callback, and when the fetch
        # started if this is a redirect we follow.
        self._requests: collections.deque[
            tuple[HTTPRequest, Callable[[HTTPResponse], None], Optional[float]]
        ] = collections.deque()
        self._transfers: dict[Any, _Transfer] = {}
        self._fds: dict[int, int] = {}
        self._timeout: Optional[object] = None
        # libcurl's timer callback has been seen to go missing; a slow tick
        # makes sure no transfer waits forever on it.
        self._force_timeout_callback = PeriodicCallback(self._handle_force_timeout, 1000)
        self._force_timeout_callback.start()

    def close(self) -> None:
        """Stop every transfer and release libcurl's handles and sockets."""
        if self._closed:
            return
        self._force_timeout_callback.stop()
        if self._timeout is not None:
            self.io_loop.remove_timeout(self._timeout)
            self._timeout = None
        for fd in list(self._fds):
            self.io_loop.remove_handler(fd)
        self._fds.clear()
        for curl in self._curls:
            curl.close()
        self._multi.close()
        self._transfers.clear()
        super().close()

    def fetch_impl(self, request: HTTPRequest, callback: Callable[[HTTPResponse], None]) -> None:
        """Queue ``request``; ``callback`` gets its response."""
        streaming = request.streaming_callback
        if streaming is not None and (
            inspect.iscoroutinefunction(streaming) or gen.is_coroutine_function(streaming)
        ):
            # The callback runs from libcurl's transfer loop: it cannot be waited on.
            raise TypeError("curl_httpclient does not support a coroutine streaming_callback")
        self._requests.append((request, callback, None))
        self._process_queue()
        self._set_timeout(0)

    # -- libcurl's multi interface on the IOLoop -------------------------------

    def _handle_socket(self, event: int, fd: int, multi: Any, data: Any) -> None:
        """libcurl's SOCKETFUNCTION: watch ``fd`` for what it asks, or stop."""
        events = {
            pycurl.POLL_NONE: IOLoop.NONE,
            pycurl.POLL_IN: IOLoop.READ,
            pycurl.POLL_OUT: IOLoop.WRITE,
            pycurl.POLL_INOUT: IOLoop.READ | IOLoop.WRITE,
        }
        if event == pycurl.POLL_REMOVE:
            if fd in self._fds:
                self.io_loop.remove_handler(fd)
                del self._fds[fd]
            return
        wanted = events[event]
        if fd not in self._fds:
            self.io_loop.add_handler(fd, self._handle_events, wanted)
        else:
            self.io_loop.update_handler(fd, wanted)
        self._fds[fd] = wanted

    def _set_timeout(self, msecs: int) -> None:
        """libcurl's TIMERFUNCTION: call socket_action in ``msecs`` (-1: never)."""
        if self._timeout is not None:
            self.io_loop.remove_timeout(self._timeout)
            self._timeout = None
        if msecs >= 0 and not self._closed:
            self._timeout = self.io_loop.call_later(msecs / 1000.0, self._handle_timeout)

    def _socket_action(self, fd: int, action: int) -> None:
        while True:
            try:
                ret, _running = self._multi.socket_action(fd, action)
            except pycurl.error as exc:
                ret = exc.args[0]
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._finish_pending_requests()

    def _handle_events(self, fd: int, events: int) -> None:
        action = 0
        if events & IOLoop.READ:
            action |= pycurl.CSELECT_IN
        if events & IOLoop.WRITE:
            action |= pycurl.CSELECT_OUT
        if events & IOLoop.ERROR:
            action |= pycurl.CSELECT_ERR
        self._socket_action(fd, action)

    def _handle_timeout(self) -> None:
        self._timeout = None
        self._socket_action(pycurl.SOCKET_TIMEOUT, 0)
        # socket_action may have changed what libcurl waits for without
        # calling the timer function: ask it again.
        if not self._closed:
            new_timeout = self._multi.timeout()
            if new_timeout >= 0:
                self._set_timeout(new_timeout)

    def _handle_force_timeout(self) -> None:
        if self._transfers:
            self._socket_action(pycurl.SOCKET_TIMEOUT, 0)

    def _finish_pending_requests(self) -> None:
        while not self._closed:
            num_q, ok_list, err_list = self._multi.info_read()
            for curl in ok_list:
                self._finish(curl)
            for curl, errnum, errmsg in err_list:
                self._finish(curl, errnum, errmsg)
            if num_q == 0:
                break
        self._process_queue()

    def _process_queue(self) -> None:
        while self._free_list and self._requests and not self._closed:
            request, callback, start = self._requests.popleft()
            curl = self._free_list.pop()
            transfer = _Transfer(request, callback, start)
            try:
                self._setup(curl, transfer)
            except Exception as exc:
                # A request that cannot be made (bad option, header...) fails
                # alone, with the reason.
                self._free_list.append(curl)
                callback(HTTPResponse(request=request, code=599, error=exc))
                continue
            self._transfers[curl] = transfer
            self._multi.add_handle(curl)

    def _finish(self, curl: Any, curl_error: Optional[int] = None, curl_message: str = "") -> None:
        transfer = self._transfers.pop(curl)
        self._multi.remove_handle(curl)
        self._free_list.append(curl)
        try:
            self._conclude(curl, transfer, curl_error, curl_message)
        except Exception as exc:
            # A fault of ours still ends the fetch: nothing else would.
            app_log.error("Exception finishing %s", transfer.request.url, exc_info=True)
            curl.reset()
            request = transfer.request
            response = HTTPResponse(
                request=getattr(request, "original_request", None) or request,
                code=599,
                error=exc,
                request_time=time.monotonic() - transfer.start,
                start_time=request.start_time,
            )
            try:
                transfer.callback(response)
            except Exception:
                app_log.error("Exception in callback %r", transfer.callback, exc_info=True)

    def _conclude(
        self, curl: Any, transfer: _Transfer, curl_error: Optional[int], curl_message: str
    ) -> None:
        """Make ``transfer``'s response (or follow its redirect) and hand it over."""
        request = transfer.request
        stream = transfer.stream
        too_large = transfer.too_large or (stream is not None and stream.body_too_large)
        if stream is not None:
            # What libcurl wrote before the end reaches the callback first.
            stream.flush()
        # Each field was checked as it came (_header_line).
        headers = HTTPHeaders._from_pairs(transfer.headers)
        error: Optional[BaseException] = None
        if transfer.superseded and curl_error == pycurl.E_BAD_CONTENT_ENCODING:
            # The body of a redirect we follow is nobody's: libcurl, which
            # Tornado's curl client leaves redirects to, does not decode it.
            curl_error = None
        if transfer.malformed is not None:
            error = CurlError(pycurl.E_WRITE_ERROR, f"Malformed HTTP message: {transfer.malformed}")
            code = 599
        elif too_large:
            coded = "Content-Encoding" in headers
            length = headers.get("Content-Length")
            if coded:
                why = "decompressed body too large"
            elif length is not None and length.isdigit() and int(length) > self.max_body_size:
                why = "Content-Length too long"
            else:
                why = "body too long"
            if self._log_refusals:
                gen_log.info("Refused the response from %s: %s", request.url, why)
            # Tornado's words first.
            error = CurlError(
                pycurl.E_WRITE_ERROR,
                f"body exceeded max_body_size of {self.max_body_size} bytes ({why})",
            )
            code = 599
        elif curl_error is not None:
            error = CurlError(curl_error, curl_message)
            code = error.code
        else:
            code = curl.getinfo(pycurl.HTTP_CODE)
            if transfer.superseded:
                # Dropped the handle's callbacks, which refer to this transfer.
                curl.reset()
                self._redirect(transfer, headers)
                return
        # The phases of the transfer, from libcurl's clock (seconds).
        info = {
            "namelookup": curl.getinfo(pycurl.NAMELOOKUP_TIME),
            "connect": curl.getinfo(pycurl.CONNECT_TIME),
            "appconnect": curl.getinfo(pycurl.APPCONNECT_TIME),
            "pretransfer": curl.getinfo(pycurl.PRETRANSFER_TIME),
            "starttransfer": curl.getinfo(pycurl.STARTTRANSFER_TIME),
            "total": curl.getinfo(pycurl.TOTAL_TIME),
            "redirect": curl.getinfo(pycurl.REDIRECT_TIME),
        }
        info["queue"] = max(0.0, time.monotonic() - transfer.start - info["total"])
        # libcurl has no effective URL for a URL it rejected (getinfo raises,
        # and the fetch would never end): a failed transfer's response names
        # the request's URL, as Tornado's does.
        effective_url = curl.getinfo(pycurl.EFFECTIVE_URL) if error is None else None
        buffer = transfer.buffer
        buffer.seek(0)
        # Drop the handle's callbacks, which refer to this transfer.
        curl.reset()
        response = HTTPResponse(
            request=getattr(request, "original_request", None) or request,
            code=code,
            headers=headers,
            buffer=None if error is not None else buffer,
            effective_url=effective_url,
            error=error,
            reason=transfer.reason or None,
            request_time=time.monotonic() - transfer.start,
            start_time=request.start_time,
            time_info=info,
        )
        try:
            transfer.callback(response)
        except Exception:
            app_log.error("Exception in callback %r", transfer.callback, exc_info=True)

    def _redirect(self, transfer: _Transfer, headers: HTTPHeaders) -> None:
        request = transfer.request
        original = getattr(request, "original_request", None) or request
        if (request.max_redirects or 0) <= 0:
            # As libcurl says when it follows.
            error = CurlError(
                pycurl.E_TOO_MANY_REDIRECTS,
                f"Maximum ({original.max_redirects or 0}) redirects followed",
            )
            response = HTTPResponse(
                request=original,
                code=599,
                error=error,
                request_time=time.monotonic() - transfer.start,
                start_time=original.start_time,
            )
            try:
                transfer.callback(response)
            except Exception:
                app_log.error("Exception in callback %r", transfer.callback, exc_info=True)
            return
        new = redirected(request, transfer.status, headers["Location"], self.defaults, original)
        self._requests.appendleft((new, transfer.callback, transfer.start))

    # -- one request ------------------------------------------------------------

    def _header_line(self, transfer: _Transfer, raw: bytes) -> Optional[int]:
        """libcurl's HEADERFUNCTION: one raw line of a response head.

        A field line the simple client would refuse (a name that is not a
        token, a control character in the value, a continuation with no
        field before it, a status line that does not start with ``HTTP/``)
        stops the transfer: returning 0 makes libcurl fail it, and `_finish`
        says why.
        """
        line = raw.decode("latin-1")
        callback = transfer.request.header_callback
        if callback is not None:
            callback(line)
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):
            # A new response (after a 1xx or a redirect): start its head afresh.
            transfer.headers = []
            parts = line.split(" ", 2)
            transfer.reason = parts[2] if len(parts) > 2 else ""
            transfer.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            return None
        if not line:
            transfer.head_done()
            return None
        fields = transfer.headers
        folded = line[0] in " \t"
        if folded:
            # obs-fold (RFC 9112 §5.2): a continuation of the previous field.
            if not fields:
                return _refuse(transfer, f"continuation line with no field before it: {line!r}")
            name, value = fields[-1]
            value = " ".join(part for part in (value, line.strip(" \t")) if part)
        else:
            name, colon, value = line.partition(":")
            if not colon:
                return _refuse(transfer, f"no colon in header line: {line!r}")
            value = value.strip(" \t")
        try:
            check_fields([(name, value)])
        except HTTPInputError as exc:
            return _refuse(transfer, str(exc))
        if folded:
            fields[-1] = (name, value)
        else:
            fields.append((name, value))
        return None

    def _write(self, transfer: _Transfer, chunk: bytes) -> int:
        """libcurl's WRITEFUNCTION without a streaming_callback: keep, up to max_body_size."""
        if transfer.superseded:
            return len(chunk)
        if transfer.received + len(chunk) > self.max_body_size:
            transfer.too_large = True
            return 0
        transfer.received += len(chunk)
        transfer.buffer.write(chunk)
        return len(chunk)

    def _setup(self, curl: Any, transfer: _Transfer) -> None:
        """Set every option of ``curl`` for ``transfer.request``.

        Raises:
            ValueError: an option that cannot be honoured (a header with CR or
                LF, an unknown auth_mode, a body where none belongs, ...).
        """
        request = transfer.request
        curl.reset()
        url = request.url
        if not url.isascii():
            # As the simple client sends it (libcurl sent a query's UTF-8 raw).
            url = ascii_url(url)
        curl.setopt(pycurl.URL, url.encode("utf-8"))
        curl.setopt(pycurl.NOSIGNAL, 1)

        header_lines = self._header_lines(request)
        curl.setopt(pycurl.HTTPHEADER, header_lines)
        curl.setopt(pycurl.HEADERFUNCTION, functools.partial(self._header_line, transfer))
        # Redirects are followed here, by the policy every client follows
        # (squall.simple_httpclient._policy), not by libcurl: libcurl sends
        # a caller's Proxy-Authorization on to another origin, keeps PUT
        # after a 303, and drops the body of a PUT redirected by 302.
        transfer.follows = bool(request.follow_redirects)
        if request.streaming_callback is not None:
            stream = transfer.stream = _CurlStreamingBuffer(self, curl, request.streaming_callback)
            if transfer.follows:

                def write(chunk: bytes) -> int:
                    return len(chunk) if transfer.superseded else stream.write(chunk)

                curl.setopt(pycurl.WRITEFUNCTION, write)
            else:
                curl.setopt(pycurl.WRITEFUNCTION, stream.write)
        else:
            curl.setopt(pycurl.WRITEFUNCTION, functools.partial(self._write, transfer))

        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        # Only HTTP(S), also where a redirect points (no file://, ftp://...).
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        if request.connect_timeout:
            curl.setopt(pycurl.CONNECTTIMEOUT_MS, int(1000 * request.connect_timeout))
        if request.request_timeout:
            curl.setopt(pycurl.TIMEOUT_MS, int(1000 * request.request_timeout))
        curl.setopt(pycurl.USERAGENT, _latin1(request.user_agent or _default_user_agent()))
        if request.network_interface:
            curl.setopt(pycurl.INTERFACE, request.network_interface)
        if request.decompress_response:
            # Ask for gzip, as the simple client does; libcurl decodes any
            # coding it was built with that the server sends.
            curl.setopt(pycurl.ACCEPT_ENCODING, "gzip")
        else:
            curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        curl.setopt(
            pycurl.IPRESOLVE,
            pycurl.IPRESOLVE_WHATEVER if request.allow_ipv6 else pycurl.IPRESOLVE_V4,
        )

        self._setup_proxy(curl, request)
        self._setup_tls(curl, request)
        self._setup_method(curl, request)
        self._setup_auth(curl, request)
        if request.prepare_curl_callback is not None:
            request.prepare_curl_callback(curl)

    def _header_lines(self, request: HTTPRequest) -> list[bytes]:
        lines: list[bytes] = []
        names: set[str] = set()
        for name, value in request.headers.get_all():
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            # RFC 9112 §2.2: a CR or LF would let the value inject fields.
            if _BAD_HEADER_CHARS.intersection(name) or ":" in name or not name.strip():
                raise ValueError(f"Invalid header name {name!r}")
            if _BAD_HEADER_CHARS.intersection(text):
                raise ValueError(f"Invalid header value {text!r} for {name}")
            names.add(name.lower())
            lines.append(_latin1(f"{name}: {text}"))
        if not request.expect_100_continue and "expect" not in names:
            # libcurl would add Expect: 100-continue to large bodies itself.
            lines.append(b"Expect:")
        elif request.expect_100_continue:
            lines.append(b"Expect: 100-continue")
        if request.method != "POST" and "content-type" not in names:
            # libcurl labels any body it sends as a form; only POST gets that.
            lines.append(b"Content-Type:")
        if "pragma" not in names:
            lines.append(b"Pragma:")
        return lines

    def _setup_proxy(self, curl: Any, request: HTTPRequest) -> None:
        if request.proxy_host and request.proxy_port:
            curl.setopt(pycurl.PROXY, request.proxy_host)
            curl.setopt(pycurl.PROXYPORT, request.proxy_port)
            if request.proxy_username:
                _set_auth(
                    curl,
                    (pycurl.PROXYAUTH, pycurl.PROXYUSERNAME, pycurl.PROXYPASSWORD),
                    "proxy_auth_mode",
                    request.proxy_auth_mode,
                    request.proxy_username,
                    request.proxy_password,
                )
        else:
            # No proxy for this request, whatever the environment says
            # (the simple client reads no proxy variables either).
            curl.setopt(pycurl.PROXY, "")

    def _setup_tls(self, curl: Any, request: HTTPRequest) -> None:
        if request.ssl_options is not None:
            # Tornado's wording.
            raise ValueError("ssl_options not supported in curl_httpclient")
        if request.validate_cert:
            curl.setopt(pycurl.SSL_VERIFYPEER, 1)
            curl.setopt(pycurl.SSL_VERIFYHOST, 2)
        else:
            curl.setopt(pycurl.SSL_VERIFYPEER, 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        if request.ca_certs is not None:
            curl.setopt(pycurl.CAINFO, request.ca_certs)
        if request.client_cert is not None:
            curl.setopt(pycurl.SSLCERT, request.client_cert)
        if request.client_key is not None:
            curl.setopt(pycurl.SSLKEY, request.client_key)

    def _setup_method(self, curl: Any, request: HTTPRequest) -> None:
        method = request.method
        body = request.body
        if request.body_producer is not None:
            raise ValueError("body_producer is not supported by curl_httpclient")
        check_method_body(method, body is not None, request.allow_nonstandard_methods)
        if method == "GET" and body is None:
            curl.setopt(pycurl.HTTPGET, 1)
        elif method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
        elif method == "POST":
            # POST (not a custom method), so that a 301/302/303 turns it into
            # a GET as browsers do.
            curl.setopt(pycurl.POST, 1)
        else:
            curl.setopt(pycurl.CUSTOMREQUEST, method)
        if body is not None:
            curl.setopt(pycurl.POSTFIELDSIZE_LARGE, len(body))
            curl.setopt(pycurl.COPYPOSTFIELDS, body)
        elif method == "POST":
            curl.setopt(pycurl.POSTFIELDSIZE_LARGE, 0)
            curl.setopt(pycurl.COPYPOSTFIELDS, b"")

    def _setup_auth(self, curl: Any, request: HTTPRequest) -> None:
        if request.auth_username is None:
            return
        _set_auth(
            curl,
            (pycurl.HTTPAUTH, pycurl.USERNAME, pycurl.PASSWORD),
            "auth_mode",
            request.auth_mode,
            request.auth_username,
            request.auth_password,
        )


def _set_auth(
    curl: Any,
    options: tuple[int, int, int],
    name: str,
    mode: Optional[str],
    username: str,
    password: Optional[str],
) -> None:
    # Basic or digest credentials, for the server or the proxy: ``options``
    # are libcurl's (auth scheme, user name, password) options for it.
    scheme, user_option, password_option = options
    mode = mode or "basic"
    if mode == "basic":
        curl.setopt(scheme, pycurl.HTTPAUTH_BASIC)
    elif mode == "digest":
        curl.setopt(scheme, pycurl.HTTPAUTH_DIGEST)
    else:
        # Tornado's wording (the mode unquoted).
        raise ValueError(f"Unsupported {name} {mode}")
    # RFC 7617 §2.1: UTF-8, in Normalization Form C.
    curl.setopt(user_option, _utf8_nfc(username))
    curl.setopt(password_option, _utf8_nfc(password or ""))


def _refuse(transfer: _Transfer, why: str) -> int:
    # A response head we will not read on: libcurl fails the transfer when
    # its header function takes fewer bytes than it was given.
    transfer.malformed = why
    return 0


def _latin1(text: str) -> bytes:
    # Header values beyond ASCII go out as ISO-8859-1, as the simple client sends them.
    return text.encode("latin-1", "replace") if not text.isascii() else text.encode("ascii")


def _utf8_nfc(text: str) -> bytes:
    return unicodedata.normalize("NFC", text).encode("utf-8")
