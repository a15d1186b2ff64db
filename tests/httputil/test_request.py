"""HTTPServerRequest and the delegate interfaces of squall.httputil."""

from __future__ import annotations

import http.cookies
import ssl
import sys
import time
import weakref
from typing import Any

import pytest

import squall.httputil
from squall.httputil import (
    HTTPConnection,
    HTTPFile,
    HTTPHeaders,
    HTTPInputError,
    HTTPMessageDelegate,
    HTTPServerConnectionDelegate,
    HTTPServerRequest,
    ParseBodyConfig,
    ParseUrlEncodedConfig,
    RequestStartLine,
    ResponseStartLine,
    set_parse_body_config,
)


def make(
    uri: str = "/", method: str = "GET", headers: HTTPHeaders | None = None, **kwargs: Any
) -> HTTPServerRequest:
    return HTTPServerRequest(
        start_line=RequestStartLine(method, uri, "HTTP/1.1"), headers=headers, **kwargs
    )


class Context:
    remote_ip = "10.1.2.3"
    protocol = "https"


class Connection(HTTPConnection):
    context = Context()


class PartialContext:
    remote_ip = "10.9.9.9"


class PartialConnection(HTTPConnection):
    context = PartialContext()


class TestConstruction:
    def test_minimal(self) -> None:
        req = make()
        assert (req.method, req.uri, req.version) == ("GET", "/", "HTTP/1.1")
        assert req.body == b"" and isinstance(req.body, bytes)
        assert isinstance(req.headers, HTTPHeaders) and len(req.headers) == 0
        assert req.files == {} and req.body_arguments == {}
        assert req.host == "127.0.0.1" and req.host_name == "127.0.0.1"
        assert req.remote_ip is None and req.protocol == "http"
        assert req.connection is None and req.server_connection is None

    def test_path_query_host(self) -> None:
        req = make("/a/b?x=1&y", headers=HTTPHeaders({"Host": "Example.COM:8080"}))
        assert (req.path, req.query) == ("/a/b", "x=1&y")
        assert req.host == "Example.COM:8080"
        assert req.host_name == "example.com"

    def test_context_from_connection(self) -> None:
        marker = object()
        req = make(connection=Connection(), server_connection=marker)
        assert req.remote_ip == "10.1.2.3" and req.protocol == "https"
        assert req.server_connection is marker
        assert req.full_url() == "https://127.0.0.1/"

    def test_given_body_files_headers_kept(self) -> None:
        headers = HTTPHeaders()
        files = {"f": [HTTPFile(filename="a", body=b"x", content_type="text/plain")]}
        req = make(headers=headers, body=b"data", files=files)
        assert req.headers is headers and req.files is files and req.body == b"data"

    def test_legacy_arguments_warn(self) -> None:
        with pytest.warns(DeprecationWarning, match="start_line"):
            req = HTTPServerRequest(method="POST", uri="/x?a=1")
        assert (req.method, req.uri, req.version) == ("POST", "/x?a=1", "HTTP/1.0")
        with pytest.warns(DeprecationWarning, match="host argument"):
            req = make(host="other:81")
        assert req.host == "other:81" and req.host_name == "other"

    @pytest.mark.parametrize(
        ("kwargs", "texts"),
        [
            ({}, ["The start_line argument to HTTPServerRequest will be required in Tornado 6.7."]),
            (
                {"method": "POST"},
                [
                    "The method, uri, and version arguments to HTTPServerRequest are deprecated"
                    " and will be removed in Tornado 6.7. Use the start_line argument instead.",
                    "The start_line argument to HTTPServerRequest will be required in Tornado 6.7.",
                ],
            ),
        ],
    )
    def test_without_start_line_defaults_and_warns_as_tornado(
        self, kwargs: dict[str, str], texts: list[str]
    ) -> None:
        # Tornado's defaults (GET /) and words: programs filter by the text.
        with pytest.warns(DeprecationWarning) as record:
            req = HTTPServerRequest(**kwargs)  # type: ignore[arg-type]
        assert [str(w.message) for w in record] == texts
        assert (req.method, req.uri, req.path) == (kwargs.get("method", "GET"), "/", "/")

    def test_query_field_limit(self) -> None:
        limit = squall.httputil._DEFAULT_PARSE_BODY_CONFIG.urlencoded.max_arguments
        req = make("/?" + "&".join(f"a={i}" for i in range(limit)))
        assert len(req.arguments["a"]) == limit
        with pytest.raises(HTTPInputError, match="Max number of fields exceeded"):
            make("/?" + "&".join(f"a={i}" for i in range(limit + 1)))

    def test_query_limit_follows_config(self) -> None:
        saved = squall.httputil._DEFAULT_PARSE_BODY_CONFIG
        set_parse_body_config(ParseBodyConfig(urlencoded=ParseUrlEncodedConfig(max_arguments=1)))
        try:
            make("/?a=1")
            with pytest.raises(HTTPInputError):
                make("/?a=1&b=2")
        finally:
            set_parse_body_config(saved)

    @pytest.mark.parametrize(
        ("uri", "fields", "connection"),
        [
            ("/", {}, None),
            ("/a?x=1&y", {"Host": "Example.com:81"}, Connection()),
            ("/b", {"Host": ""}, HTTPConnection()),
            # A context with only some of the attributes: the defaults fill in.
            ("/c", {}, PartialConnection()),
        ],
    )
    def test_for_server_builds_what_init_builds(
        self, uri: str, fields: dict[str, str], connection: Any
    ) -> None:
        start = RequestStartLine("GET", uri, "HTTP/1.1")
        before = time.time()
        slow = HTTPServerRequest(
            start_line=start,
            headers=HTTPHeaders(fields),
            connection=connection,
            server_connection="srv",
        )
        fast = HTTPServerRequest._for_server(connection, "srv", start, HTTPHeaders(fields))
        after = time.time()
        # Every slot a request fills in, but its start time (compared below)
        # and its cookies (parsed on first use).
        names = [
            name
            for name in HTTPServerRequest.__slots__
            if name not in ("_start_time", "_cookies", "__dict__", "__weakref__")
        ]
        for name in names + ["arguments", "host_name", "files", "body_arguments"]:
            assert getattr(fast, name) == getattr(slow, name), name
        # Both started when they were made (the wall clock, read between).
        assert before <= slow._start_time <= after and before <= fast._start_time <= after

    def test_for_server_joins_repeated_hosts_and_checks_the_query(self) -> None:
        headers = HTTPHeaders()
        headers.add("Host", "a")
        headers.add("Host", "b")
        req = HTTPServerRequest._for_server(
            Connection(), None, RequestStartLine("GET", "/", "HTTP/1.1"), headers
        )
        assert req.host == "a,b"
        limit = squall.httputil._DEFAULT_PARSE_BODY_CONFIG.urlencoded.max_arguments
        start = RequestStartLine("GET", "/?" + "&" * limit, "HTTP/1.1")
        with pytest.raises(HTTPInputError, match="Max number of fields exceeded"):
            HTTPServerRequest._for_server(Connection(), None, start, HTTPHeaders())

    def test_for_server_of_a_subclass_runs_its_init(self) -> None:
        class Mine(HTTPServerRequest):
            def __init__(self, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.mine = True

        req = Mine._for_server(
            Connection(), None, RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders()
        )
        assert isinstance(req, Mine) and req.mine and req.remote_ip == "10.1.2.3"

    def test_repr_hides_headers(self) -> None:
        req = make("/r", headers=HTTPHeaders({"Canary": "secret", "Host": "h"}))
        text = repr(req)
        assert text == (
            "HTTPServerRequest(protocol='http', host='h', method='GET', uri='/r',"
            " version='HTTP/1.1', remote_ip=None)"
        )
        assert "secret" not in text


class TestArguments:
    def test_query_arguments(self) -> None:
        req = make("/?a=1&b=%41+B&a=&c")
        assert req.query_arguments == {"a": [b"1", b""], "b": [b"A B"], "c": [b""]}
        assert req.arguments == req.query_arguments
        assert req.arguments["a"] is not req.query_arguments["a"]

    def test_latin1_query(self) -> None:
        assert make("/?k\xe9=v\xe9").query_arguments == {"k\xe9": [b"v\xe9"]}
        assert make("/?k=日").query_arguments == {"k": ["日".encode()]}

    def test_lazy(self) -> None:
        # The private fields stay unset (None) until the first read, in the
        # pure and the compiled build alike.
        req = make("/?a=1")
        assert req._arguments is None and req._query_arguments is None
        assert req.arguments == {"a": [b"1"]}
        assert req.arguments is req.arguments
        # Without a body, arguments is a parse of its own: query_arguments
        # stays unread until read, and then shares no list with it.
        assert req._query_arguments is None
        assert req.query_arguments == {"a": [b"1"]}
        req.arguments["a"].append(b"2")
        assert req.query_arguments == {"a": [b"1"]}
        # Read the other way round, arguments is a copy (no list shared).
        other = make("/?a=1")
        assert other.query_arguments == {"a": [b"1"]}
        other.arguments["a"].append(b"2")
        assert other.query_arguments == {"a": [b"1"]}
        assert req.files == {} and req.files is req.files
        assert req.body_arguments == {} and req.body_arguments is req.body_arguments

    def test_assignable(self) -> None:
        req = make("/?a=1")
        req.arguments = {"z": [b"9"]}
        req.query_arguments = {}
        assert req.arguments == {"z": [b"9"]} and req.query_arguments == {}

    def test_other_attributes_can_be_hung_on_a_request(self) -> None:
        req = make("/")
        req.my_session = {"user": 1}  # type: ignore[attr-defined]
        assert req.my_session == {"user": 1}  # type: ignore[attr-defined]
        assert weakref.ref(req)() is req

    def urlencoded(self, uri: str = "/?a=1", body: bytes = b"a=2&b=3") -> HTTPServerRequest:
        headers = HTTPHeaders({"Content-Type": "application/x-www-form-urlencoded"})
        return make(uri, "POST", headers=headers, body=body)

    def test_parse_body_before_arguments_are_read(self) -> None:
        req = self.urlencoded()
        req._parse_body()
        assert req.body_arguments == {"a": [b"2"], "b": [b"3"]}
        assert req.query_arguments == {"a": [b"1"]}
        assert req.arguments == {"a": [b"1", b"2"], "b": [b"3"]}

    def test_parse_body_after_arguments_were_read(self) -> None:
        req = self.urlencoded()
        assert req.arguments == {"a": [b"1"]}
        req._parse_body()
        assert req.arguments == {"a": [b"1", b"2"], "b": [b"3"]}
        assert req.query_arguments == {"a": [b"1"]}

    def test_parse_body_multipart_files(self) -> None:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="up"; filename="f.txt"\r\n\r\n'
            b"hello\r\n--b--\r\n"
        )
        headers = HTTPHeaders({"Content-Type": "multipart/form-data; boundary=b"})
        req = make("/", "POST", headers=headers, body=body)
        req._parse_body()
        assert req.files["up"][0].body == b"hello"
        assert req.arguments == {}

    def test_parse_body_errors(self) -> None:
        headers = HTTPHeaders(
            {"Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "br"}
        )
        req = make("/", "POST", headers=headers, body=b"a=1")
        with pytest.raises(HTTPInputError, match="Unsupported Content-Encoding: br"):
            req._parse_body()


class TestCookies:
    def test_parsed_once_into_simple_cookie(self) -> None:
        req = make(headers=HTTPHeaders({"Cookie": 'a=1; b="x y"; bad name=3'}))
        jar = req.cookies
        assert isinstance(jar, http.cookies.SimpleCookie)
        assert {k: m.value for k, m in jar.items()} == {"a": "1", "b": "x y"}
        assert req.cookies is jar

    def test_no_header(self) -> None:
        assert len(make().cookies) == 0

    def test_several_cookie_fields(self) -> None:
        headers = HTTPHeaders()
        headers.add("Cookie", "a=1")
        headers.add("Cookie", "b=2")
        assert sorted(make(headers=headers).cookies) == ["a", "b"]

    def test_is_read_only(self) -> None:
        req = make("/", headers=HTTPHeaders({"Cookie": "a=1"}))
        with pytest.raises(AttributeError):
            req.cookies = http.cookies.SimpleCookie()  # type: ignore[misc]
        assert req.cookies["a"].value == "1"

    @pytest.mark.parametrize(
        "field",
        [
            'a=1; b="x y"; bad name=3; expires=4; Path=/; c="q\\"r"; =v; d',
            "_xsrf=2|abcd|ef01|123; a=1; a=2",
            "",
        ],
    )
    def test_cookie_value_answers_as_the_jar(self, field: str) -> None:
        names = ["a", "b", "bad name", "expires", "Path", "c", "", "d", "_xsrf", "zz"]
        fresh = make(headers=HTTPHeaders({"Cookie": field}))
        jar = make(headers=HTTPHeaders({"Cookie": field})).cookies
        for name in names:
            morsel = jar.get(name)
            want = "dflt" if morsel is None else morsel.value
            assert fresh.cookie_value(name, "dflt") == want, name
        # The jar built after cookie_value holds the same cookies.
        assert {k: m.value for k, m in fresh.cookies.items()} == {
            k: m.value for k, m in jar.items()
        }

    def test_cookie_value_reads_the_jar_once_built(self) -> None:
        req = make(headers=HTTPHeaders({"Cookie": "a=1"}))
        assert req.cookie_value("a") == "1"
        req.cookies["a"] = "changed"
        req.cookies["new"] = "2"
        assert req.cookie_value("a") == "changed"
        assert req.cookie_value("new") == "2"
        assert req.cookie_value("gone") is None


class TestMisc:
    def test_request_time(self) -> None:
        before = time.time()
        req = make()
        taken = req.request_time()
        assert 0 <= taken <= time.time() - before
        req._start_time = 100.0
        req._finish_time = 102.5
        assert req.request_time() == 2.5

    def test_user_attributes_and_weakrefs(self) -> None:
        req = make()
        req.custom = "mine"  # type: ignore[attr-defined]
        assert req.custom == "mine"  # type: ignore[attr-defined]
        assert weakref.ref(req)() is req
        with pytest.raises(AttributeError, match="nothing_here"):
            req.nothing_here  # type: ignore[attr-defined]  # noqa: B018

    def test_hot_fields_are_not_in_the_instance_dict(self) -> None:
        # Slots in the pure build, native fields in the compiled one.
        req = make("/a?b=1")
        req.extra = 1  # type: ignore[attr-defined]
        assert vars(req) == {"extra": 1}
        for name in ("method", "uri", "headers", "body", "path", "query"):
            assert getattr(req, name) is not None


class FakeSocket:
    def __init__(self, error: bool = False) -> None:
        self.error = error

    def getpeercert(self, binary_form: bool = False) -> Any:
        if self.error:
            raise ssl.SSLError("handshake not done")
        return b"DER" if binary_form else {"subject": ()}


class StreamConnection(HTTPConnection):
    def __init__(self, sock: Any) -> None:
        self.stream = type("Stream", (), {"socket": sock})()


class TransportConnection(HTTPConnection):
    def __init__(self, ssl_object: Any) -> None:
        self.transport = type("T", (), {"get_extra_info": lambda _self, key: ssl_object})()


class TestSSLCertificate:
    def test_no_connection(self) -> None:
        assert make().get_ssl_certificate() is None

    def test_stream_socket(self) -> None:
        req = make(connection=StreamConnection(FakeSocket()))
        assert req.get_ssl_certificate() == {"subject": ()}
        assert req.get_ssl_certificate(binary_form=True) == b"DER"

    def test_binary_form_is_any_value_taken_by_its_truth(self) -> None:
        # As ssl's getpeercert takes it (the compiled build once refused all
        # but a bool); getpeercert itself is given a bool.
        seen: list[Any] = []

        class Recording(FakeSocket):
            def getpeercert(self, binary_form: bool = False) -> Any:
                seen.append(binary_form)
                return super().getpeercert(binary_form)

        req = make(connection=StreamConnection(Recording()))
        assert req.get_ssl_certificate(binary_form=1) == b"DER"
        assert req.get_ssl_certificate(None) == {"subject": ()}
        assert seen == [True, False]

    def test_ssl_error(self) -> None:
        assert (
            make(connection=StreamConnection(FakeSocket(error=True))).get_ssl_certificate() is None
        )

    def test_transport(self) -> None:
        req = make(connection=TransportConnection(FakeSocket()))
        assert req.get_ssl_certificate(True) == b"DER"
        assert make(connection=TransportConnection(None)).get_ssl_certificate() is None

    def test_plain_connection(self) -> None:
        assert make(connection=HTTPConnection()).get_ssl_certificate() is None


class TestDelegates:
    def test_server_connection_delegate(self) -> None:
        delegate = HTTPServerConnectionDelegate()
        with pytest.raises(NotImplementedError):
            delegate.start_request(object(), HTTPConnection())
        assert delegate.on_close(object()) is None

    def test_message_delegate_defaults(self) -> None:
        delegate = HTTPMessageDelegate()
        start = ResponseStartLine("HTTP/1.1", 200, "OK")
        assert delegate.headers_received(start, HTTPHeaders()) is None
        assert delegate.data_received(b"x") is None
        assert delegate.finish() is None
        assert delegate.on_connection_close() is None

    def test_connection_is_abstract(self) -> None:
        conn = HTTPConnection()
        with pytest.raises(NotImplementedError):
            conn.write_headers(RequestStartLine("GET", "/", "HTTP/1.1"), HTTPHeaders())
        with pytest.raises(NotImplementedError):
            conn.write(b"x")
        with pytest.raises(NotImplementedError):
            conn.finish()


def test_construction_is_cheap() -> None:
    # A regression guard, not a benchmark: the calls one construction makes
    # are counted (12 today, the start line's included: nothing is parsed
    # until it is read), which no machine's load changes.
    headers = HTTPHeaders._from_pairs([("Host", "h"), ("Cookie", "a=1")])
    start_line = RequestStartLine("GET", "/x?y=1", "HTTP/1.1")
    HTTPServerRequest(start_line=start_line, headers=headers)
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        for _ in range(10):
            HTTPServerRequest(start_line=start_line, headers=headers)
    finally:
        sys.setprofile(None)
    assert calls <= 10 * 20, calls / 10


def test_host_name_is_split_on_first_read_and_assignable() -> None:
    req = make("/", headers=HTTPHeaders({"Host": "Example.COM:8080"}))
    assert req._host_name is None
    assert req.host_name == "example.com"
    req.host_name = "other"
    assert req.host_name == "other"


def test_repeated_host_fields_are_joined_and_plain_mappings_work() -> None:
    headers = HTTPHeaders()
    headers.add("Host", "a")
    headers.add("Host", "b")
    assert make("/", headers=headers).host == "a,b"
    plain: Any = {"Host": "c:1"}
    assert make("/", headers=plain).host == "c:1"


def test_an_empty_host_field_stays_empty() -> None:
    # RFC 9112 section 3.2 allows it (a target without authority); Tornado
    # keeps it, so full_url() has no authority. Without the field, 127.0.0.1.
    req = make("/a", headers=HTTPHeaders({"Host": ""}))
    assert req.host == "" and req.host_name == ""
    assert req.full_url() == "http:///a"
    plain: Any = {"Host": ""}
    assert make("/", headers=plain).host == ""
    assert make("/", headers=HTTPHeaders()).host == "127.0.0.1"
