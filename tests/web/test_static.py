"""StaticFileHandler: serving, validators, ranges, path safety, versions."""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any, Optional

import pytest

from squall.httputil import format_timestamp
from squall.testing import AsyncHTTPTestCase, ExpectLog
from squall.web import Application, HTTPError
from squall.web.static import StaticFileHandler, _read_file

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "web", "static")
DIGITS = b"0123456789abcdefghij"
DIGITS_HASH = hashlib.sha512(DIGITS).hexdigest()


class StaticTestCase(AsyncHTTPTestCase):
    def setUp(self) -> None:
        StaticFileHandler.reset()
        super().setUp()

    def tearDown(self) -> None:
        super().tearDown()
        StaticFileHandler.reset()


class ServingTest(StaticTestCase):
    def get_app(self) -> Application:
        return Application(static_path=DATA, static_handler_args={"default_filename": "index.html"})

    def test_get(self) -> None:
        response = self.fetch("/static/digits.txt")
        assert response.code == 200
        assert response.body == DIGITS
        assert response.headers["Content-Type"] == "text/plain"
        assert response.headers["Etag"] == f'"{DIGITS_HASH}"'
        assert response.headers["Accept-Ranges"] == "bytes"
        assert response.headers["Content-Length"] == "20"
        assert "Last-Modified" in response.headers
        assert "Cache-Control" not in response.headers

    def test_head_has_the_same_headers_and_no_body(self) -> None:
        response = self.fetch("/static/digits.txt", method="HEAD")
        assert response.code == 200
        assert response.body == b""
        assert response.headers["Content-Length"] == "20"
        assert response.headers["Etag"] == f'"{DIGITS_HASH}"'

    def test_versioned_url_is_cacheable(self) -> None:
        response = self.fetch("/static/digits.txt?v=1")
        assert response.headers["Cache-Control"] == f"max-age={StaticFileHandler.CACHE_MAX_AGE}"
        assert "Expires" in response.headers

    def test_content_types(self) -> None:
        assert self.fetch("/static/sub/site.css").headers["Content-Type"] == "text/css"

    def test_if_none_match(self) -> None:
        response = self.fetch("/static/digits.txt", headers={"If-None-Match": f'"{DIGITS_HASH}"'})
        assert response.code == 304
        assert "Content-Length" not in response.headers
        assert self.fetch("/static/digits.txt", headers={"If-None-Match": '"other"'}).code == 200

    def test_if_none_match_beats_if_modified_since(self) -> None:
        headers = {"If-None-Match": '"other"', "If-Modified-Since": format_timestamp(4102444800)}
        assert self.fetch("/static/digits.txt", headers=headers).code == 200

    def test_if_modified_since(self) -> None:
        mtime = int(os.stat(os.path.join(DATA, "digits.txt")).st_mtime)
        for since, code in [
            (format_timestamp(mtime), 304),
            (format_timestamp(mtime + 60), 304),
            (format_timestamp(mtime - 60), 200),
            ("Fri, 01 Jan 1960 00:00:00 GMT", 200),
            ("garbage", 200),
            ("Mon, 01 Jan 2099 00:00:00", 304),  # no zone: taken as UTC
        ]:
            response = self.fetch("/static/digits.txt", headers={"If-Modified-Since": since})
            assert response.code == code, since

    def test_ranges(self) -> None:
        for header, code, body, content_range in [
            ("bytes=0-3", 206, b"0123", "bytes 0-3/20"),
            ("bytes=18-", 206, b"ij", "bytes 18-19/20"),
            ("bytes=-3", 206, b"hij", "bytes 17-19/20"),
            ("bytes=5-1000", 206, DIGITS[5:], "bytes 5-19/20"),
            ("bytes=0-", 200, DIGITS, None),
            ("bytes=0-19", 200, DIGITS, None),
            ("bytes=-100", 200, DIGITS, None),
            ("bytes=1-2,5-6", 200, DIGITS, None),
            ("items=0-3", 200, DIGITS, None),
        ]:
            response = self.fetch("/static/digits.txt", headers={"Range": header})
            assert (response.code, response.body) == (code, body), header
            assert response.headers.get("Content-Range") == content_range, header
            assert response.headers["Content-Length"] == str(len(body)), header

    def test_unsatisfiable_ranges(self) -> None:
        for header in ["bytes=20-", "bytes=-0", "bytes=7-3", "bytes=100-200"]:
            response = self.fetch("/static/digits.txt", headers={"Range": header})
            assert response.code == 416, header
            assert response.headers["Content-Range"] == "bytes */20"

    def test_if_range(self) -> None:
        mtime = int(os.stat(os.path.join(DATA, "digits.txt")).st_mtime)
        for validator, code in [
            (f'"{DIGITS_HASH}"', 206),  # the file's entity tag: still the same file
            (format_timestamp(mtime), 206),  # its Last-Modified
            ('"an older version"', 200),  # changed since: the whole file
            (f'W/"{DIGITS_HASH}"', 200),  # a weak tag never matches (RFC 9110 13.1.5)
            (format_timestamp(mtime - 60), 200),
            (format_timestamp(mtime + 60), 200),  # only the exact date matches
            ("garbage", 200),
        ]:
            response = self.fetch(
                "/static/digits.txt", headers={"Range": "bytes=0-3", "If-Range": validator}
            )
            assert response.code == code, validator
            assert response.body == (b"0123" if code == 206 else DIGITS), validator
        # Without a Range, If-Range changes nothing.
        response = self.fetch("/static/digits.txt", headers={"If-Range": '"other"'})
        assert (response.code, response.body) == (200, DIGITS)

    def test_head_range(self) -> None:
        response = self.fetch("/static/digits.txt", method="HEAD", headers={"Range": "bytes=2-5"})
        assert (response.code, response.body) == (206, b"")
        assert response.headers["Content-Length"] == "4"

    def test_missing_is_404(self) -> None:
        assert self.fetch("/static/nope.txt").code == 404

    def test_traversal_is_403(self) -> None:
        with ExpectLog(
            "squall.general", ".*is not in root static directory", level=logging.WARNING
        ):
            assert self.fetch("/static/%2E%2E/data_outside.txt").code == 403

    def test_default_filename_and_redirect(self) -> None:
        assert self.fetch("/static/sub/").body == b"index page\n"
        response = self.fetch("/static/sub", follow_redirects=False)
        assert response.code == 301
        assert response.headers["Location"] == "/static/sub/"


class DirectoryWithoutDefaultTest(StaticTestCase):
    def get_app(self) -> Application:
        return Application([("/files/(.*)", StaticFileHandler, {"path": DATA})])

    def test_directory_is_403(self) -> None:
        with ExpectLog("squall.general", ".*is not a file", level=logging.WARNING):
            assert self.fetch("/files/sub").code == 403


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
class SymlinkTest(StaticTestCase):
    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.tmp)
        self.root = os.path.join(self.tmp, "root")
        self.outside = os.path.join(self.tmp, "outside")
        os.mkdir(self.root)
        os.mkdir(self.outside)
        for directory, name, text in [
            (self.root, "in.txt", "in"),
            (self.outside, "secret.txt", "secret"),
            (self.root, "index.html", "home"),
        ]:
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                f.write(text)
        os.symlink(os.path.join(self.outside, "secret.txt"), os.path.join(self.root, "out.txt"))
        os.symlink(os.path.join(self.root, "in.txt"), os.path.join(self.root, "alias.txt"))
        os.symlink(self.outside, os.path.join(self.root, "outdir"))
        os.symlink(os.path.join(self.outside, "missing"), os.path.join(self.root, "dangling"))
        os.mkdir(os.path.join(self.root, "d"))
        os.symlink(
            os.path.join(self.outside, "secret.txt"), os.path.join(self.root, "d", "index.html")
        )
        super().setUp()

    def get_app(self) -> Application:
        return Application(
            [
                (
                    "/strict/(.*)",
                    StaticFileHandler,
                    {"path": self.root, "default_filename": "index.html"},
                ),
                (
                    "/open/(.*)",
                    StaticFileHandler,
                    {"path": self.root, "allowed_symlink_directory": self.tmp},
                ),
                (
                    "/list/(.*)",
                    StaticFileHandler,
                    {"path": self.root, "allowed_symlink_directory": [self.root, self.outside]},
                ),
            ]
        )

    def escapes(self, path: str) -> int:
        with ExpectLog(
            "squall.general", ".*is not in root static directory", level=logging.WARNING
        ):
            return self.fetch(path, follow_redirects=False).code

    def test_links_inside_the_root_are_served(self) -> None:
        assert self.fetch("/strict/alias.txt").body == b"in"
        assert self.fetch("/strict/").body == b"home"

    def test_links_out_of_the_root_are_refused_alike(self) -> None:
        assert self.escapes("/strict/out.txt") == 403
        assert self.escapes("/strict/outdir/secret.txt") == 403
        assert self.escapes("/strict/outdir") == 403
        assert self.escapes("/strict/dangling") == 403
        assert self.escapes("/strict/d/") == 403

    def test_allowed_symlink_directory(self) -> None:
        assert self.fetch("/open/out.txt").body == b"secret"
        assert self.fetch("/list/outdir/secret.txt").body == b"secret"
        assert self.fetch("/list/in.txt").body == b"in"


class OpenRedirectTest(StaticTestCase):
    def get_app(self) -> Application:
        return Application(
            static_path=DATA,
            static_url_prefix="/",
            static_handler_args={"default_filename": "index.html"},
        )

    def get_http_client(self) -> Any:
        from squall.simple_httpclient import SimpleAsyncHTTPClient

        return SimpleAsyncHTTPClient()

    def test_no_protocol_relative_redirect(self) -> None:
        for path in [f"//evil.example/..{DATA}/sub", "/\\evil.example/../sub"]:
            with ExpectLog(
                "squall.general",
                ".*cannot redirect path with two initial slashes",
                level=logging.WARNING,
            ):
                response = self.fetch(path, follow_redirects=False)
            assert response.code == 403, path


class CustomContentTest(StaticTestCase):
    def get_app(self) -> Application:
        class Memory(StaticFileHandler):
            files = {"a.txt": b"alpha"}

            @classmethod
            def get_absolute_path(cls, root: str, path: str) -> str:
                return path

            def validate_absolute_path(self, root: str, absolute_path: str) -> Optional[str]:
                if absolute_path not in self.files:
                    raise HTTPError(404)
                return absolute_path

            @classmethod
            def get_content(
                cls, abspath: str, start: Optional[int] = None, end: Optional[int] = None
            ) -> bytes:
                return cls.files[abspath][start:end]

            def get_content_size(self) -> int:
                assert self.absolute_path is not None
                return len(self.files[self.absolute_path])

            def get_modified_time(self) -> Optional[datetime.datetime]:
                return datetime.datetime(2020, 1, 1)  # naive: UTC

            def set_extra_headers(self, path: str) -> None:
                self.set_header("X-Path", path)

        self.handler_class = Memory
        return Application([("/m/(.*)", Memory, {"path": "unused"})])

    def test_bytes_content_and_hooks(self) -> None:
        response = self.fetch("/m/a.txt", headers={"Range": "bytes=1-2"})
        assert (response.code, response.body) == (206, b"lp")
        assert response.headers["X-Path"] == "a.txt"
        assert response.headers["Last-Modified"] == "Wed, 01 Jan 2020 00:00:00 GMT"
        assert response.headers["Etag"] == f'"{hashlib.sha512(b"alpha").hexdigest()}"'
        since = {"If-Modified-Since": "Wed, 01 Jan 2020 00:00:00 GMT"}
        assert self.fetch("/m/a.txt", headers=since).code == 304


class VersionTest:
    """get_version and the version cache, without a server."""

    @pytest.fixture(autouse=True)
    def root(self) -> Iterator[str]:
        StaticFileHandler.reset()
        self.tmp = tempfile.mkdtemp()
        self.static = os.path.join(self.tmp, "static")
        os.mkdir(self.static)
        os.mkdir(os.path.join(self.static, "dir"))
        for name in ("a", "b", "c"):
            with open(os.path.join(self.static, name), "w", encoding="utf-8") as f:
                f.write(name * 3)
        with open(os.path.join(self.tmp, "secret"), "w", encoding="utf-8") as f:
            f.write("secret")
        yield self.static
        shutil.rmtree(self.tmp)
        StaticFileHandler.reset()

    def version(
        self, path: str, cls: type[StaticFileHandler] = StaticFileHandler, **settings: Any
    ) -> Optional[str]:
        return cls.get_version({"static_path": self.static, **settings}, path)

    def test_hash(self) -> None:
        assert self.version("a") == hashlib.sha512(b"aaa").hexdigest()

    def test_traversal_is_403(self) -> None:
        with pytest.raises(HTTPError) as info:
            self.version("../secret")
        assert info.value.status_code == 403

    @pytest.mark.skipif(os.name != "posix", reason="symlinks")
    def test_symlink_out_is_403_unless_allowed(self) -> None:
        os.symlink(os.path.join(self.tmp, "secret"), os.path.join(self.static, "link"))
        with pytest.raises(HTTPError):
            self.version("link")
        allowed = {"static_handler_args": {"allowed_symlink_directory": self.tmp}}
        assert self.version("link", **allowed) == hashlib.sha512(b"secret").hexdigest()

    @pytest.mark.skipif(os.name != "posix", reason="symlinks")
    def test_a_cached_version_is_not_resolved_again(self, monkeypatch: pytest.MonkeyPatch) -> None:
        resolved: list[str] = []
        realpath = os.path.realpath

        def counting(path: str) -> str:
            resolved.append(path)
            return realpath(path)

        monkeypatch.setattr(os.path, "realpath", counting)
        for _ in range(3):
            assert self.version("a") == hashlib.sha512(b"aaa").hexdigest()
        first = len(resolved)
        assert first > 0
        assert self.version("a") == hashlib.sha512(b"aaa").hexdigest()
        assert len(resolved) == first
        # Another set of allowed directories is checked on its own.
        self.version("a", static_handler_args={"allowed_symlink_directory": self.tmp})
        assert len(resolved) > first

    @pytest.mark.skipif(os.name != "posix", reason="symlinks")
    def test_a_link_allowed_for_one_app_is_refused_for_another(self) -> None:
        os.symlink(os.path.join(self.tmp, "secret"), os.path.join(self.static, "link"))
        allowed = {"static_handler_args": {"allowed_symlink_directory": self.tmp}}
        assert self.version("link", **allowed) == hashlib.sha512(b"secret").hexdigest()
        with pytest.raises(HTTPError) as info:
            self.version("link")  # its version is cached, for the other settings
        assert info.value.status_code == 403

    @pytest.mark.skipif(os.name != "posix", reason="symlinks")
    def test_an_evicted_version_is_checked_again(self) -> None:
        class Small(StaticFileHandler):
            MAX_CACHED_VERSIONS = 2

        Small.reset()
        link = os.path.join(self.static, "link")
        os.symlink(os.path.join(self.static, "a"), link)
        assert self.version("link", Small) == hashlib.sha512(b"aaa").hexdigest()
        # Two more versions evict the link's; then the link leads outside.
        self.version("b", Small)
        self.version("c", Small)
        os.remove(link)
        os.symlink(os.path.join(self.tmp, "secret"), link)
        with pytest.raises(HTTPError) as info:
            self.version("link", Small)
        assert info.value.status_code == 403

    def test_directory_has_no_version(self, caplog: pytest.LogCaptureFixture) -> None:
        with caplog.at_level(logging.ERROR):
            assert self.version("dir") is None
        assert "is not a file" in caplog.text

    @pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs")
    def test_fifo_has_no_version(self, caplog: pytest.LogCaptureFixture) -> None:
        os.mkfifo(os.path.join(self.static, "fifo"))
        with caplog.at_level(logging.ERROR):
            assert self.version("fifo") is None
        assert "is not a file" in caplog.text

    def test_size_limit(self, caplog: pytest.LogCaptureFixture) -> None:
        class Small(StaticFileHandler):
            MAX_VERSION_CONTENT_SIZE = 2

        Small.reset()
        with caplog.at_level(logging.ERROR):
            assert self.version("a", Small) is None
        assert "larger than 2 bytes" in caplog.text

    def test_the_classmethods_raise_what_tornado_66_raises(self) -> None:
        # Called directly (by a subclass, or a static_url of its own): a
        # path out of the root is a 403 already in get_absolute_path; what
        # is not a regular file is a 403, and past the size limit a
        # ValueError, in get_content_version.
        for path in ("../secret", "/etc/passwd", "dir/../../secret"):
            with pytest.raises(HTTPError) as info:
                StaticFileHandler.get_absolute_path(self.static, path)
            assert info.value.status_code == 403, path
        inside = StaticFileHandler.get_absolute_path(self.static, "dir/../a")
        assert inside == os.path.join(self.static, "a")
        with pytest.raises(HTTPError) as info:
            StaticFileHandler.get_content_version(os.path.join(self.static, "dir"))
        assert info.value.status_code == 403
        with pytest.raises(HTTPError) as info:
            StaticFileHandler.get_content_version(os.path.join(self.static, "missing"))
        assert info.value.status_code == 404

        class Small(StaticFileHandler):
            MAX_VERSION_CONTENT_SIZE = 2

        with pytest.raises(ValueError, match="larger than 2 bytes"):
            Small.get_content_version(os.path.join(self.static, "a"))

    def test_cache_is_bounded_lru(self) -> None:
        reads: list[str] = []

        class Limited(StaticFileHandler):
            MAX_CACHED_VERSIONS = 2

            @classmethod
            def get_content_version(cls, abspath: str) -> str:
                reads.append(os.path.basename(abspath))
                return super().get_content_version(abspath)

        Limited.reset()
        for name in ["a", "b", "a", "c", "a", "b"]:
            assert self.version(name, Limited) == hashlib.sha512(name.encode() * 3).hexdigest()
        assert reads == ["a", "b", "c", "b"]
        assert list(Limited._static_hashes) == [os.path.join(self.static, n) for n in ("a", "b")]

    def test_subclass_content_is_hashed(self) -> None:
        class Generated(StaticFileHandler):
            @classmethod
            def get_content(
                cls, abspath: str, start: Optional[int] = None, end: Optional[int] = None
            ) -> bytes:
                return b"generated"

        Generated.reset()
        assert self.version("a", Generated) == hashlib.sha512(b"generated").hexdigest()

    def test_make_static_url(self) -> None:
        settings = {"static_path": self.static, "static_url_prefix": "/s/"}
        # A 32-character prefix of the hash in the URL, the whole of it in the Etag.
        assert (
            StaticFileHandler.make_static_url(settings, "a")
            == f"/s/a?v={hashlib.sha512(b'aaa').hexdigest()[:32]}"
        )

        class Full(StaticFileHandler):
            VERSION_URL_LENGTH = None

        assert Full.make_static_url(settings, "a") == f"/s/a?v={hashlib.sha512(b'aaa').hexdigest()}"
        assert StaticFileHandler.make_static_url(settings, "a", include_version=False) == "/s/a"

    def test_static_path_of_several_directories(self) -> None:
        # Jupyter's FileFindHandler: static_path is a list of directories and
        # get_absolute_path searches them ("" when the file is in none).
        other = os.path.join(self.tmp, "other")
        os.mkdir(other)
        with open(os.path.join(other, "z"), "w", encoding="utf-8") as f:
            f.write("zzz")

        class Finder(StaticFileHandler):
            @classmethod
            def get_absolute_path(cls, root: Any, path: str) -> str:
                for directory in root:
                    candidate = os.path.join(directory, path)
                    if os.path.isfile(candidate):
                        return candidate
                return ""

        Finder.reset()
        settings = {"static_path": [self.static, other]}
        assert Finder.get_version(settings, "z") == hashlib.sha512(b"zzz").hexdigest()
        assert Finder.get_version(settings, "a") == hashlib.sha512(b"aaa").hexdigest()
        url = Finder.make_static_url(settings, "z")
        assert url == f"/static/z?v={hashlib.sha512(b'zzz').hexdigest()[:32]}"
        assert Finder.make_static_url(settings, "missing") == "/static/missing"


class TestVersion(VersionTest):
    pass


def test_read_file_chunks_and_bounds(tmp_path: Any) -> None:
    path = tmp_path / "big"
    data = bytes(range(256)) * 600  # more than two chunks
    path.write_bytes(data)
    chunks = list(_read_file(str(path), None, None))
    assert len(chunks) == 3 and b"".join(chunks) == data
    assert b"".join(_read_file(str(path), 10, 70000)) == data[10:70000]
    assert b"".join(_read_file(str(path), None, 5)) == data[:5]
    assert b"".join(_read_file(str(path), len(data) - 3, len(data) + 10)) == data[-3:]
