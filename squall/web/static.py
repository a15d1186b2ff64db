"""StaticFileHandler: files from a directory, with versioned URLs, conditional and range requests.

Safety rules, each checked before anything is read:

* the requested path must stay inside the root directory (403 otherwise);
* symlinks must resolve inside the root, or inside the directories named by
  ``allowed_symlink_directory``, whether or not their target exists (so a
  link cannot be used to probe the file system);
* only regular files are served or hashed (a directory, device or FIFO is a
  403, or no version);
* a directory with ``default_filename`` is redirected to its slash form,
  never to a path starting with two slashes (a protocol-relative URL).
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import mimetypes
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Optional, Union

from squall._content_coding import choose_coding
from squall.httputil._fieldvalues import _get_content_range, _parse_request_range
from squall.iostream import StreamClosedError
from squall.log import gen_log
from squall.web.errors import HTTPError
from squall.web.handler import RequestHandler

__all__ = ["StaticFileHandler"]

_CHUNK_SIZE = 64 * 1024


def _within(path: str, directories: Sequence[str]) -> bool:
    """Whether the resolved ``path`` is one of ``directories`` (resolved) or below one."""
    for directory in directories:
        resolved = os.path.realpath(directory)
        if path == resolved or path.startswith(resolved.rstrip(os.sep) + os.sep):
            return True
    return False


def _lexically_within(root: str, absolute_path: str) -> bool:
    root = os.path.abspath(root)
    if not root.endswith(os.sep):
        root += os.sep
    return (absolute_path + os.sep).startswith(root)


def _allowed_directories(root: str, allowed: Union[None, str, Sequence[str]]) -> list[str]:
    if allowed is None:
        return [root]
    if isinstance(allowed, str):
        return [allowed]
    return list(allowed)


def _read_file(abspath: str, start: Optional[int], end: Optional[int]) -> Iterator[bytes]:
    with open(abspath, "rb") as file:
        if start is not None:
            file.seek(start)
        remaining = None if end is None else end - (start or 0)
        while remaining is None or remaining > 0:
            size = _CHUNK_SIZE if remaining is None else min(_CHUNK_SIZE, remaining)
            chunk = file.read(size)
            if not chunk:
                return
            if remaining is not None:
                remaining -= len(chunk)
            yield chunk


class StaticFileHandler(RequestHandler):
    """Serves the files of a directory.

    Routed with a path group, e.g. ``(r"/static/(.*)", StaticFileHandler,
    {"path": "/var/www"})``; the ``static_path`` setting adds such a route
    under ``static_url_prefix`` by itself.

    Responses carry an ``Etag`` (the SHA-512 of the content) and
    ``Last-Modified``, answer ``If-None-Match``/``If-Modified-Since`` with 304,
    and serve a single ``Range`` with 206 (or 416), while its ``If-Range``,
    if any, names the file's current version. Requests with a ``v``
    argument (from `~squall.web.RequestHandler.static_url`, which carries the first ``VERSION_URL_LENGTH``
    characters of the hash) are cacheable for ``CACHE_MAX_AGE`` seconds.

    With ``precompressed``, a file ``x`` is answered from a sibling
    ``x.br``, ``x.zst`` or ``x.gz`` made ahead of time, with its
    ``Content-Encoding``, when the request's ``Accept-Encoding`` takes that
    coding (by qvalue; ties go to br, zstd, gzip) and the sibling is a
    regular file no older than ``x``. Its ``Etag`` is the sibling's own hash.

    Subclasses change where content comes from with the class methods
    `get_absolute_path`, `get_content`, `get_content_version` and the methods
    `validate_absolute_path`, `get_content_size`, `get_modified_time`,
    `get_content_type`; and URLs with `make_static_url` and `parse_url_path`.

    Arguments are given to ``initialize``.

    Args:
        path: the root directory.
        default_filename: served for a request of a directory (e.g. ``"index.html"``).
        allowed_symlink_directory: a directory, or a list, that symlinks may
            resolve into (instead of the root; a list must name the root too
            for ordinary files to be served).
        precompressed: serve precompressed siblings: True for all of
            ``br``, ``zstd``, ``gzip``, or a list of those (best first).
            Decoding them is the client's business, so this needs no extra.
    """

    CACHE_MAX_AGE = 86400 * 365 * 10
    """Seconds a versioned response may be cached: ten years."""

    MAX_VERSION_CONTENT_SIZE = 64 * 1024 * 1024
    """Files larger than this get no version hash (hashing them would stall the server)."""

    MAX_CACHED_VERSIONS = 10_000
    """How many version hashes are kept; the least recently used go first."""

    VERSION_URL_LENGTH: Optional[int] = 32
    """Hex characters of the hash in a versioned URL (128 bits: plenty to tell
    versions apart); None puts the whole SHA-512 there, as Tornado does."""

    PRECOMPRESSED_SUFFIXES: ClassVar[dict[str, str]] = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}
    """File name suffix of the sibling for each content coding."""

    _static_hashes: ClassVar[OrderedDict[str, Optional[str]]] = OrderedDict()
    # (absolute path, allowed directories) that get_version found inside
    # them: resolved once while the path's version stays cached (a page
    # asks for the same few versions on every render, and resolving walks
    # every component of the path); forgotten when a version is evicted.
    _confined: ClassVar[dict[tuple[str, tuple[str, ...]], None]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    root: str
    default_filename: Optional[str]
    # On the class as well as on each handler, as on Tornado: the class
    # methods (get_absolute_path, validate_absolute_path on a subclass) and
    # a test's Mock(spec=StaticFileHandler) can read it there.
    allowed_symlink_directory: Union[None, str, Sequence[str]] = None
    path: str
    absolute_path: Optional[str]
    modified: Optional[datetime.datetime]
    # The file's stat, taken once per request; a class default (not a read of
    # the handler's __dict__, which on CPython 3.11 makes every later
    # attribute access on the handler dearer).
    _stat_result: Optional[os.stat_result] = None

    def initialize(
        self,
        path: str,
        default_filename: Optional[str] = None,
        allowed_symlink_directory: Union[None, str, Sequence[str]] = None,
        precompressed: Union[bool, Sequence[str]] = False,
    ) -> None:
        self.root = path
        self.default_filename = default_filename
        self.allowed_symlink_directory = allowed_symlink_directory
        if precompressed is True:
            codings: tuple[str, ...] = tuple(self.PRECOMPRESSED_SUFFIXES)
        elif not precompressed:
            codings = ()
        else:
            codings = tuple(c.strip().lower() for c in precompressed)
            unknown = [c for c in codings if c not in self.PRECOMPRESSED_SUFFIXES]
            if unknown:
                raise ValueError(
                    f"precompressed: unknown content coding(s) {unknown}; "
                    f"choose among {', '.join(self.PRECOMPRESSED_SUFFIXES)}"
                )
        self._precompressed = codings

    @classmethod
    def reset(cls) -> None:
        """Forgets every cached version hash (of this class and its subclasses that share it)."""
        with cls._lock:
            cls._static_hashes = OrderedDict()
            cls._confined = {}

    def head(self, path: str) -> Any:
        """Like GET without the body: the same status and headers."""
        return self.get(path, include_body=False)

    async def get(self, path: str, include_body: bool = True) -> None:
        """Serves ``path`` (relative to the root), or a 304, 206, 403, 404 or 416."""
        self.path = self.parse_url_path(path)
        del path  # the raw URL path must not be used past this point
        absolute_path = self.get_absolute_path(self.root, self.path)
        self.absolute_path = self.validate_absolute_path(self.root, absolute_path)
        if self.absolute_path is None:
            return
        self._served_path = self.absolute_path
        self._coding: Optional[str] = None
        if getattr(self, "_precompressed", ()):
            self._pick_precompressed(self.absolute_path)
        self.modified = self.get_modified_time()
        self.set_headers()
        if self.should_return_304():
            self.set_status(304)
            return
        size = self.get_content_size()
        start: Optional[int] = None
        end: Optional[int] = None
        range_header = self.request.headers.get("Range")
        request_range = (
            _parse_request_range(range_header) if range_header and self._if_range_holds() else None
        )
        if request_range is not None:
            start, end = request_range
            if start is not None and start < 0:
                start = max(start + size, 0)
            # RFC 9110 section 14.1.2: unsatisfiable when the first position
            # is past the end, or the range is empty ("bytes=-0").
            if (
                start is not None and (start >= size or (end is not None and start >= end))
            ) or end == 0:
                self.set_status(416)
                self.set_header("Content-Type", "text/plain")
                self.set_header("Content-Range", f"bytes */{size}")
                return
            if end is not None and end > size:
                end = size
            # Some clients refuse a 206 for the whole file ("bytes=0-"): send a 200.
            if (end if end is not None else size) - (start or 0) != size:
                self.set_status(206)
                self.set_header("Content-Range", _get_content_range(start, end, size))
            else:
                start = end = None
        self.set_header("Content-Length", (end if end is not None else size) - (start or 0))
        if not include_body:
            return
        content = self.get_content(self._served_path, start, end)
        chunks = [content] if isinstance(content, bytes) else content
        for chunk in chunks:
            try:
                self.write(chunk)
                await self.flush()
            except StreamClosedError:
                return

    def _pick_precompressed(self, absolute_path: str) -> None:
        """Serve a precompressed sibling of ``absolute_path`` if the client takes one."""
        # Caches must key on Accept-Encoding whichever representation is sent.
        vary = self._headers.get("Vary")
        if vary is None:
            self.set_header("Vary", "Accept-Encoding")
        elif "accept-encoding" not in vary.lower():
            self.set_header("Vary", vary + ", Accept-Encoding")
        # A client that cannot decode br or zstd gets them all the same: the
        # file is sent as it is, so this needs no package installed.
        accept = self.request.headers.get("Accept-Encoding")
        if not accept:
            return
        allowed = _allowed_directories(self.root, self.allowed_symlink_directory)
        offered = self._precompressed
        while offered:
            coding = choose_coding(accept, offered)
            if coding is None:
                return
            sibling = absolute_path + self.PRECOMPRESSED_SUFFIXES[coding]
            try:
                info = os.stat(sibling)
                original = os.stat(absolute_path)
            except OSError:
                info = None
            # A sibling older than the file is stale: it would serve old content.
            if (
                info is not None
                and stat.S_ISREG(info.st_mode)
                and info.st_mtime >= original.st_mtime
                and _within(os.path.realpath(sibling), allowed)
            ):
                self._served_path = sibling
                self._coding = coding
                self.set_header("Content-Encoding", coding)
                return
            offered = tuple(c for c in offered if c != coding)

    def compute_etag(self) -> Optional[str]:
        """The content's version hash, quoted (None if it has none)."""
        assert self.absolute_path is not None
        version = self._get_cached_version(getattr(self, "_served_path", self.absolute_path))
        return f'"{version}"' if version else None

    def set_headers(self) -> None:
        """Sets the validators, content type and caching headers of the response."""
        self.set_header("Accept-Ranges", "bytes")
        self.set_etag_header()
        if self.modified is not None:
            self.set_header("Last-Modified", self.modified)
        content_type = self.get_content_type()
        if content_type:
            self.set_header("Content-Type", content_type)
        cache_time = self.get_cache_time(self.path, self.modified, content_type)
        if cache_time > 0:
            self.set_header(
                "Expires",
                datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=cache_time),
            )
            self.set_header("Cache-Control", f"max-age={cache_time}")
        self.set_extra_headers(self.path)

    def should_return_304(self) -> bool:
        """Whether the client's cached copy is current (If-None-Match, else If-Modified-Since)."""
        # RFC 9110 section 13.2.2: If-None-Match takes precedence.
        if self.request.headers.get("If-None-Match"):
            return self.check_etag_header()
        since = self.request.headers.get("If-Modified-Since")
        if since is None or self.modified is None:
            return False
        when = _http_date(since)
        return when is not None and when >= _as_utc(self.modified)

    def _if_range_holds(self) -> bool:
        """Whether the request's ``Range`` applies: without ``If-Range``, or
        while its validator is the file's (RFC 9110 section 13.1.5). A
        client resuming a download sends one, so that a file changed since
        its first part comes whole (200) rather than as a part of another
        file. An entity tag matches strongly (a weak one never does), a date
        only when it is the file's ``Last-Modified``."""
        validator = self.request.headers.get("If-Range")
        if validator is None:
            return True
        validator = validator.strip()
        if validator.startswith('"'):
            return validator == self._headers.get("Etag")
        if validator.startswith("W/") or self.modified is None:
            return False
        when = _http_date(validator)
        return when is not None and when == _as_utc(self.modified)

    @classmethod
    def get_absolute_path(cls, root: str, path: str) -> str:
        """The absolute path of ``path`` under ``root``.

        Symlinks are not resolved here (`validate_absolute_path` does).

        Raises:
            HTTPError: 403 if ``path`` leads outside ``root`` (``..``, or a
                path of its own from the filesystem's root).
        """
        absolute = os.path.abspath(os.path.join(root, path))
        if not _lexically_within(root, absolute):
            raise HTTPError(403, "%s is not in root static directory", path)
        return absolute

    def validate_absolute_path(self, root: str, absolute_path: str) -> Optional[str]:
        """Checks that ``absolute_path`` may be served and returns the path to serve.

        Returns None when the response is already decided (a redirect of a
        directory to its slash form).

        Raises:
            HTTPError: 403 outside the root (also through a symlink) or not a
                file; 404 if missing (a path with a NUL is missing).
        """
        if not _lexically_within(root, absolute_path):
            raise HTTPError(403, "%s is not in root static directory", self.path)
        if os.name == "nt" and ":" in os.path.splitdrive(absolute_path)[1]:
            # NTFS alternate data streams ("file.txt:name") are not files of the directory.
            raise HTTPError(403, "%s is not a file", self.path)
        if "\0" in absolute_path:
            # No file name holds a NUL (os.path.realpath would raise on it).
            raise HTTPError(404, "a NUL in the path %r", self.path)
        allowed = _allowed_directories(root, self.allowed_symlink_directory)
        # Resolve before looking at the file at all, so that an escaping link
        # answers the same whether or not its target exists.
        if not _within(os.path.realpath(absolute_path), allowed):
            raise HTTPError(403, "%s is not in root static directory", self.path)
        if self.default_filename is not None and os.path.isdir(absolute_path):
            request_path = self.request.path
            if not request_path.endswith("/"):
                if request_path[:2].replace("\\", "/") == "//":
                    # "//host" or "/\host" in Location is another site.
                    raise HTTPError(403, "cannot redirect path with two initial slashes")
                self.redirect(request_path + "/", permanent=True)
                return None
            absolute_path = os.path.join(absolute_path, self.default_filename)
            if not _within(os.path.realpath(absolute_path), allowed):
                raise HTTPError(403, "%s is not in root static directory", self.path)
        if not os.path.exists(absolute_path):
            raise HTTPError(404)
        if not os.path.isfile(absolute_path):
            raise HTTPError(403, "%s is not a file", self.path)
        return absolute_path

    @classmethod
    def get_content(
        cls, abspath: str, start: Optional[int] = None, end: Optional[int] = None
    ) -> Union[bytes, Iterator[bytes]]:
        """The content of ``abspath`` from ``start`` to ``end`` (exclusive), in chunks.

        Returns a generator, so large files are never read whole; subclasses
        may return bytes instead.
        """
        return _read_file(abspath, start, end)

    @classmethod
    def get_content_version(cls, abspath: str) -> str:
        """The version of the file: the hex SHA-512 of its content.

        Raises:
            HTTPError: 404 if it is missing, 403 if it is not a regular file.
            ValueError: if it is larger than ``MAX_VERSION_CONTENT_SIZE``.
            OSError: if it cannot be read.
        """
        hasher = hashlib.sha512()
        if cls.get_content.__func__ is not StaticFileHandler.get_content.__func__:  # type: ignore[attr-defined]
            # A subclass keeps its content elsewhere: hash what it serves.
            content = cls.get_content(abspath)
            for chunk in [content] if isinstance(content, bytes) else content:
                hasher.update(chunk)
            return hasher.hexdigest()
        # Opening a FIFO for reading would wait for a writer, and a device may
        # never end: look at what the path is before reading, then again on
        # the open descriptor in case it changed in between.
        try:
            mode = os.stat(abspath).st_mode
        except FileNotFoundError:
            raise HTTPError(404) from None
        if not stat.S_ISREG(mode):
            raise HTTPError(403, "%s is not a file", abspath)
        fd = os.open(
            abspath, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        )
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise HTTPError(403, "%s is not a file", abspath)
            if info.st_size > cls.MAX_VERSION_CONTENT_SIZE:
                raise ValueError(f"{abspath} is larger than {cls.MAX_VERSION_CONTENT_SIZE} bytes")
            while chunk := file.read(_CHUNK_SIZE):
                hasher.update(chunk)
        return hasher.hexdigest()

    def _stat(self) -> os.stat_result:
        assert self.absolute_path is not None
        cached = self._stat_result
        if cached is None:
            cached = self._stat_result = os.stat(getattr(self, "_served_path", self.absolute_path))
        return cached

    def get_content_size(self) -> int:
        """The size of the file, in bytes."""
        return self._stat().st_size

    def get_modified_time(self) -> Optional[datetime.datetime]:
        """When the file was last modified (whole seconds, UTC); None if unknown."""
        return datetime.datetime.fromtimestamp(int(self._stat().st_mtime), datetime.UTC)

    def get_content_type(self) -> str:
        """The ``Content-Type``: guessed from the file name; compressed files are opaque."""
        assert self.absolute_path is not None
        mime_type, encoding = mimetypes.guess_type(self.absolute_path)
        # A .gz file is served as is, not as its content with Content-Encoding.
        if encoding == "gzip":
            return "application/gzip"
        if encoding is not None or mime_type is None:
            return "application/octet-stream"
        return mime_type

    def set_extra_headers(self, path: str) -> None:
        """Hook for subclasses to add headers to every response."""

    def get_cache_time(
        self, path: str, modified: Optional[datetime.datetime], mime_type: str
    ) -> int:
        """Seconds the response may be cached: ``CACHE_MAX_AGE`` for versioned URLs, else 0."""
        return self.CACHE_MAX_AGE if "v" in self.request.arguments else 0

    @classmethod
    def make_static_url(
        cls, settings: dict[str, Any], path: str, include_version: bool = True
    ) -> str:
        """The URL of ``path``: ``static_url_prefix`` + path, with ``?v=<version>`` if it has one."""
        url: str = settings.get("static_url_prefix", "/static/") + path
        if not include_version:
            return url
        version = cls.get_version(settings, path)
        if version and cls.VERSION_URL_LENGTH is not None:
            version = version[: cls.VERSION_URL_LENGTH]
        return f"{url}?v={version}" if version else url

    def parse_url_path(self, url_path: str) -> str:
        """The file path (relative to the root) for the URL path; the inverse of `make_static_url`."""
        if os.sep != "/":
            url_path = url_path.replace("/", os.sep)
        return url_path

    @classmethod
    def get_version(cls, settings: dict[str, Any], path: str) -> Optional[str]:
        """The version of the static file ``path`` (None if it cannot be read).

        ``static_path`` is handed to `get_absolute_path` as it is; when it is
        one directory, the path must stay inside it.

        Raises:
            HTTPError: 403 if ``path`` leads outside a ``static_path`` directory.
        """
        root = settings["static_path"]
        abs_path = cls.get_absolute_path(root, path)
        if isinstance(root, os.PathLike):
            root = os.fspath(root)
        if not isinstance(root, str):
            # A subclass that serves from something other than one directory
            # (Jupyter's FileFindHandler takes a list of them) resolves and
            # confines the path in its own get_absolute_path.
            return cls._get_cached_version(abs_path)
        if not _lexically_within(root, abs_path) or (
            os.name == "nt" and ":" in os.path.splitdrive(abs_path)[1]
        ):
            raise HTTPError(403, "%s is not in root static directory", path)
        allowed = _allowed_directories(
            root, settings.get("static_handler_args", {}).get("allowed_symlink_directory")
        )
        confined = (abs_path, tuple(allowed))
        if confined in cls._confined:
            return cls._get_cached_version(abs_path)
        resolved = os.path.realpath(abs_path)
        if os.path.isfile(resolved) and not _within(resolved, allowed):
            raise HTTPError(403, "%s is not in root static directory", path)
        version = cls._get_cached_version(abs_path)
        cls._confined[confined] = None
        return version

    @classmethod
    def _get_cached_version(cls, abs_path: str) -> Optional[str]:
        with cls._lock:
            hashes = cls._static_hashes
            if abs_path in hashes:
                hashes.move_to_end(abs_path)
                return hashes[abs_path]
        try:
            version: Optional[str] = cls.get_content_version(abs_path)
        except Exception as exc:
            gen_log.error("Could not open static file %r: %s", abs_path, exc)
            version = None
        with cls._lock:
            hashes = cls._static_hashes
            hashes[abs_path] = version
            hashes.move_to_end(abs_path)
            while len(hashes) > cls.MAX_CACHED_VERSIONS:
                hashes.popitem(last=False)
                cls._confined.clear()
        return version


def _as_utc(when: datetime.datetime) -> datetime.datetime:
    """``when``, taken as UTC if it carries no zone."""
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _http_date(text: str) -> Optional[datetime.datetime]:
    """An HTTP date (If-Modified-Since, If-Range) as an aware datetime;
    None if ``text`` is not one."""
    try:
        return _as_utc(email.utils.parsedate_to_datetime(text))
    except (TypeError, ValueError):
        return None
