"""Form bodies, multipart, header parameters and cookies in squall.httputil."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import squall.httputil
from squall.httputil import (
    HTTPFile,
    HTTPHeaders,
    HTTPInputError,
    ParseBodyConfig,
    ParseMultipartConfig,
    ParseUrlEncodedConfig,
    _encode_header,
    _parse_header,
    _parse_qs_bytes,
    _unquote_cookie,
    parse_body_arguments,
    parse_cookie,
    parse_multipart_form_data,
    set_parse_body_config,
)

Args = dict[str, list[bytes]]
Files = dict[str, list[HTTPFile]]


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode("utf-8")


@pytest.fixture
def restore_config() -> Iterator[None]:
    saved = squall.httputil._DEFAULT_PARSE_BODY_CONFIG
    yield
    set_parse_body_config(saved)


class TestConfigs:
    def test_defaults(self) -> None:
        config = ParseBodyConfig()
        assert config.multipart == ParseMultipartConfig(True, 100, 10240)
        assert config.urlencoded == ParseUrlEncodedConfig(1000)
        assert "max_parts=100" in repr(config)
        assert squall.httputil._DEFAULT_PARSE_BODY_CONFIG == config

    def test_independent_defaults(self) -> None:
        a, b = ParseBodyConfig(), ParseBodyConfig()
        a.multipart.max_parts = 1
        assert b.multipart.max_parts == 100

    def test_set_parse_body_config(self, restore_config: None) -> None:
        config = ParseBodyConfig(urlencoded=ParseUrlEncodedConfig(max_arguments=2))
        set_parse_body_config(config)
        assert squall.httputil._DEFAULT_PARSE_BODY_CONFIG is config
        args: Args = {}
        with pytest.raises(HTTPInputError, match="Max number of fields exceeded"):
            parse_body_arguments("application/x-www-form-urlencoded", b"a=1&b=2&c=3", args, {})
        parse_body_arguments("application/x-www-form-urlencoded", b"a=1&b=2", args, {})
        assert args == {"a": [b"1"], "b": [b"2"]}


class TestUrlEncoded:
    def parse(self, body: bytes, content_type: str = "application/x-www-form-urlencoded") -> Args:
        args: Args = {}
        files: Files = {}
        parse_body_arguments(content_type, body, args, files)
        assert files == {}
        return args

    def test_basic(self) -> None:
        assert self.parse(b"a=1&b=2&a=3") == {"a": [b"1", b"3"], "b": [b"2"]}

    def test_decoding(self) -> None:
        assert self.parse(b"na+me=v+a%20l%E9&%41=%zz") == {"na me": [b"v a l\xe9"], "A": [b"%zz"]}

    def test_blank_and_odd_fields(self) -> None:
        assert self.parse(b"&a&b=&=c&&") == {"a": [b""], "b": [b""], "": [b"c"]}

    def test_names_are_latin1(self) -> None:
        assert self.parse("é=1".encode()) == {"Ã©": [b"1"]}

    def test_media_type_parameters_and_case(self) -> None:
        assert self.parse(b"a=1", "Application/X-WWW-Form-Urlencoded; charset=UTF-8") == {
            "a": [b"1"]
        }

    def test_str_body(self) -> None:
        args: Args = {}
        parse_body_arguments("application/x-www-form-urlencoded", "a=é", args, {})  # type: ignore[arg-type]
        assert args == {"a": [b"\xe9"]}

    def test_other_content_types_ignored(self) -> None:
        assert self.parse(b"a=1", "text/plain") == {}
        assert self.parse(b"a=1", "") == {}

    def test_extends_existing(self) -> None:
        args: Args = {"a": [b"0"]}
        parse_body_arguments("application/x-www-form-urlencoded", b"a=1", args, {})
        assert args == {"a": [b"0", b"1"]}

    def test_limit(self) -> None:
        self.parse(b"&".join([b"a=1"] * 1000))
        with pytest.raises(HTTPInputError, match="Max number of fields exceeded"):
            self.parse(b"&".join([b"a=1"] * 1001))

    def test_explicit_config(self) -> None:
        config = ParseBodyConfig(urlencoded=ParseUrlEncodedConfig(max_arguments=1))
        with pytest.raises(HTTPInputError, match="x-www-form-urlencoded"):
            parse_body_arguments("application/x-www-form-urlencoded", b"a&b", {}, {}, config=config)

    def test_content_encoding_refused(self) -> None:
        headers = HTTPHeaders({"Content-Encoding": "gzip"})
        with pytest.raises(HTTPInputError, match="Unsupported Content-Encoding: gzip"):
            parse_body_arguments("application/x-www-form-urlencoded", b"x", {}, {}, headers)
        with pytest.raises(HTTPInputError, match="Unsupported Content-Encoding: gzip"):
            parse_body_arguments("multipart/form-data; boundary=b", b"x", {}, {}, headers)
        args: Args = {}
        parse_body_arguments("application/x-www-form-urlencoded", b"a=1", args, {}, HTTPHeaders())
        assert args == {"a": [b"1"]}

    def test_encoded_bodies_that_are_not_forms_are_left_to_the_application(self) -> None:
        # A compressed JSON upload the handler decodes itself: no 400.
        headers = HTTPHeaders({"Content-Encoding": "gzip"})
        for content_type in ("application/json", "text/plain", ""):
            args: Args = {}
            parse_body_arguments(content_type, b"\x1f\x8b...", args, {}, headers)
            assert args == {}

    @settings(max_examples=80, deadline=None)
    @given(st.binary(max_size=40))
    def test_matches_stdlib(self, data: bytes) -> None:
        expected = {
            k: [v.encode("latin1") for v in vs]
            for k, vs in urllib.parse.parse_qs(
                data.decode("latin1"), keep_blank_values=True, encoding="latin1"
            ).items()
        }
        assert _parse_qs_bytes(data, None) == expected

    def test_a_request_query_is_parsed_as_its_latin1_bytes(self) -> None:
        # A server's target is latin-1 text (the bytes as received); one set
        # by hand may hold more, and is parsed as its UTF-8 bytes.
        from squall.httputil import HTTPServerRequest, RequestStartLine

        def request(target: str) -> HTTPServerRequest:
            return HTTPServerRequest(start_line=RequestStartLine("GET", target, "HTTP/1.1"))

        received = request("/?n%C3%A9=%E9+x&\xe9=\xff&a")
        assert received.query_arguments == {
            "né".encode().decode("latin1"): [b"\xe9 x"],
            "\xe9": [b"\xff"],
            "a": [b""],
        }
        by_hand = request("/?k=\u20ac&\u20ac=1")
        euro = "\u20ac".encode()
        assert by_hand.query_arguments == {"k": [euro], euro.decode("latin1"): [b"1"]}


class TestMultipart:
    BODY = crlf(
        """--1234
Content-Disposition: form-data; name="files"; filename="ab.txt"
Content-Type: text/plain

Foo
--1234
Content-Disposition: form-data; name=field

value
--1234--
"""
    )

    def parse(
        self, data: bytes, boundary: bytes = b"1234", config: ParseMultipartConfig | None = None
    ) -> tuple[Args, Files]:
        args: Args = {}
        files: Files = {}
        parse_multipart_form_data(boundary, data, args, files, config=config)
        return args, files

    def test_files_and_fields(self) -> None:
        args, files = self.parse(self.BODY)
        assert args == {"field": [b"value"]}
        upload = files["files"][0]
        assert isinstance(upload, HTTPFile)
        assert upload == {"filename": "ab.txt", "body": b"Foo", "content_type": "text/plain"}
        assert (upload.filename, upload.body, upload.content_type) == (
            "ab.txt",
            b"Foo",
            "text/plain",
        )

    def test_httpfile_attributes(self) -> None:
        upload = HTTPFile(filename="a")
        assert upload.filename == "a"
        with pytest.raises(AttributeError, match="body"):
            upload.body  # noqa: B018
        upload.body = b"x"
        assert upload["body"] == b"x"
        assert not isinstance(HTTPFile.__dict__["content_type"], property)
        assert HTTPFile.content_type is HTTPFile.__dict__["content_type"]

    def test_via_parse_body_arguments(self) -> None:
        args: Args = {}
        files: Files = {}
        parse_body_arguments('multipart/form-data; boundary="1234"', self.BODY, args, files)
        assert args == {"field": [b"value"]}
        assert files["files"][0].body == b"Foo"

    def test_missing_boundary_parameter(self) -> None:
        with pytest.raises(HTTPInputError, match="no boundary"):
            parse_body_arguments("multipart/form-data", self.BODY, {}, {})

    def test_content_type_sent_twice(self) -> None:
        # Two fields arrive joined by a comma: the same value twice is that value.
        args: Args = {}
        parse_body_arguments(
            "application/x-www-form-urlencoded,application/x-www-form-urlencoded",
            b"a=1",
            args,
            {},
        )
        assert args == {"a": [b"1"]}
        args = {}
        files: Files = {}
        parse_body_arguments(
            "multipart/form-data; boundary=1234, multipart/form-data; boundary=1234",
            self.BODY,
            args,
            files,
        )
        assert args == {"field": [b"value"]} and files["files"][0].body == b"Foo"
        # Different values are no form type...
        args = {}
        parse_body_arguments("application/x-www-form-urlencoded,text/plain", b"a=1", args, {})
        assert args == {}
        # ...and two boundaries are refused, whichever the body uses.
        for joined in (
            "multipart/form-data; boundary=1234,multipart/form-data; boundary=x",
            "multipart/form-data; boundary=x,multipart/form-data; boundary=1234",
        ):
            with pytest.raises(HTTPInputError, match="more than one boundary"):
                parse_body_arguments(joined, self.BODY, args, files)

    def test_boundary_parameter_given_twice(self) -> None:
        for content_type in (
            "multipart/form-data; boundary=x; boundary=1234",
            "multipart/form-data; boundary=1234; BOUNDARY=1234",
            "multipart/form-data; boundary=1234; boundary*=UTF-8''x",
        ):
            args: Args = {}
            with pytest.raises(HTTPInputError, match="more than one boundary"):
                parse_body_arguments(content_type, self.BODY, args, {})
            assert args == {}
        # A quoted "boundary=" inside another parameter is no second one.
        args = {}
        parse_body_arguments(
            'multipart/form-data; boundary=1234; x="; boundary=y"', self.BODY, args, {}
        )
        assert args == {"field": [b"value"]}

    @pytest.mark.parametrize(
        "body",
        [
            crlf("--1234\nX-Other: 1\n\nFoo\n--1234--"),
            crlf("--1234\nnocolon\nContent-Disposition: form-data; name=a\n\nx\n--1234--"),
            crlf("--1234\nContent-Disposition: form-data\n\nFoo\n--1234--"),
            crlf("--1234\n\nFoo\n--1234--"),
            b"--1234\r\n" + b"x" * 20_000 + b"\r\n\r\nv\r\n--1234--",
        ],
    )
    def test_body_errors_name_multipart_first(self, body: bytes) -> None:
        # As on Tornado, every multipart error that reaches the log (as
        # "Invalid body: ...") starts with the same words.
        with pytest.raises(HTTPInputError) as info:
            parse_body_arguments("multipart/form-data; boundary=1234", body, {}, {})
        assert str(info.value).startswith("Invalid multipart/form-data: ")
        assert not str(info.value).startswith("Invalid multipart/form-data: Invalid")

    def test_quoted_boundary(self) -> None:
        assert self.parse(self.BODY, b'"1234"')[0] == {"field": [b"value"]}

    def test_empty_boundary(self) -> None:
        with pytest.raises(HTTPInputError, match="empty boundary"):
            self.parse(self.BODY, b'""')

    def test_default_content_type(self) -> None:
        body = crlf('--b\nContent-Disposition: form-data; name="f"; filename="x"\n\ndata\n--b--')
        assert self.parse(body, b"b")[1]["f"][0].content_type == "application/unknown"

    def test_bare_name_or_filename(self) -> None:
        body = crlf("--b\nContent-Disposition: form-data; name=f; filename\n\nv\n--b--")
        assert self.parse(body, b"b") == ({"f": [b"v"]}, {})
        body = crlf("--b\nContent-Disposition: form-data; name\n\nv\n--b--")
        with pytest.raises(HTTPInputError, match="missing name"):
            self.parse(body, b"b")

    def test_empty_filename_is_a_field(self) -> None:
        body = crlf('--b\nContent-Disposition: form-data; name="f"; filename=""\n\n\n--b--')
        assert self.parse(body, b"b") == ({"f": [b""]}, {})

    def test_header_only_part_has_empty_body(self) -> None:
        body = crlf('--b\nContent-Disposition: form-data; name="f"; filename="a"\n\n--b--')
        assert self.parse(body, b"b")[1]["f"][0].body == b""

    def test_preamble_and_epilogue_ignored(self) -> None:
        body = b"preamble\r\n" + self.BODY + b"epilogue"
        assert self.parse(body)[0] == {"field": [b"value"]}

    def test_a_part_without_its_opening_delimiter_is_kept(self) -> None:
        body = crlf('Content-Disposition: form-data; name="a"\n\n1\n--b--\n')
        assert self.parse(body, b"b") == ({"a": [b"1"]}, {})
        # Nothing before the final boundary but its CRLF: an empty form.
        assert self.parse(b"\r\n--b--\r\n", b"b") == ({}, {})

    @pytest.mark.parametrize(
        "body",
        [
            # LF line ends throughout.
            b'--b\nContent-Disposition: form-data; name="a"\n\n1\n--b--\n',
            # Blanks after the boundary on its delimiter line.
            crlf('--b  \nContent-Disposition: form-data; name="a"\n\n1\n--b--\n'),
            crlf('--b\t\nContent-Disposition: form-data; name="a"\n\n1\n--b--\n'),
        ],
    )
    def test_content_without_any_delimiter_is_an_error(self, body: bytes) -> None:
        # Not a preamble to drop: the form would arrive empty, without a word.
        with pytest.raises(HTTPInputError, match=r"no delimiter b'--b' followed by CRLF"):
            self.parse(body, b"b")

    def test_binary_body_with_crlf(self) -> None:
        body = (
            b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\n'
            + b"\r\n\x00\xff\r\n"
            + b"\r\n--b--\r\n"
        )
        assert self.parse(body, b"b")[0] == {"f": [b"\r\n\x00\xff\r\n"]}

    def test_non_ascii_names(self) -> None:
        body = crlf(
            '--b\nContent-Disposition: form-data; name="имя"; filename="测试.txt"\n\nx\n--b--'
        )
        args, files = self.parse(body, b"b")
        assert files["имя"][0].filename == "测试.txt"

    def test_rfc5987_filename(self) -> None:
        body = crlf(
            "--b\nContent-Disposition: form-data; name=f; filename=a.txt;"
            " filename*=UTF-8''%C3%A1b.txt\n\nx\n--b--"
        )
        assert self.parse(body, b"b")[1]["f"][0].filename == "áb.txt"

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (b"--1234\r\n\r\nFoo\r\n", "no final boundary"),
            (crlf("--1234\n\nFoo\n--1234--"), "missing headers"),
            (crlf("--1234\nContent-Disposition: form-data; name=a\nFoo\n--1234--"), "missing"),
            (
                crlf('--1234\nContent-Disposition: invalid; name="a"\n\nFoo\n--1234--'),
                "not form-data",
            ),
            (crlf("--1234\nContent-Type: text/plain\n\nFoo\n--1234--"), "not form-data"),
            (crlf('--1234\nContent-Disposition: form-data; name="a"\n\nFoo--1234--'), "CRLF"),
            (crlf('--1234\nContent-Disposition: form-data; filename="a"\n\nFoo\n--1234--'), "name"),
            (
                b"--1234\r\nContent-Disposition: form-data; name=\xff\r\n\r\nx\r\n--1234--",
                "not UTF-8",
            ),
            (crlf('--1234\nContent-Disposition: form-data; name="a\rb"\n\nx\n--1234--'), "value"),
            # The part's header block ends at CRLF CRLF; a CR before it is
            # the header's own, not part of a line ending.
            (crlf('--1234\nContent-Disposition: form-data; name="a"\r\n\nx\n--1234--'), "value"),
            (crlf("--1234\n Content-Disposition: form-data; name=a\n\nx\n--1234--"), "obs-fold"),
        ],
    )
    def test_malformed(self, body: bytes, message: str) -> None:
        args: Args = {}
        files: Files = {}
        with pytest.raises(HTTPInputError, match=message):
            parse_multipart_form_data(b"1234", body, args, files)
        assert args == {} and files == {}

    def test_nothing_added_when_a_later_part_fails(self) -> None:
        body = crlf(
            '--1234\nContent-Disposition: form-data; name="ok"\n\nfine\n'
            "--1234\nContent-Disposition: form-data\n\nbad\n--1234--"
        )
        args: Args = {}
        with pytest.raises(HTTPInputError):
            parse_multipart_form_data(b"1234", body, args, {})
        assert args == {}

    def test_part_limit(self) -> None:
        part = '--1234\nContent-Disposition: form-data; name="a"\n\nx\n'
        assert (
            len(
                self.parse(crlf(part * 3 + "--1234--"), config=ParseMultipartConfig(max_parts=3))[
                    0
                ]["a"]
            )
            == 3
        )
        with pytest.raises(HTTPInputError, match="too many parts"):
            self.parse(crlf(part * 4 + "--1234--"), config=ParseMultipartConfig(max_parts=3))
        with pytest.raises(HTTPInputError, match="too many parts"):
            self.parse(self.BODY, config=ParseMultipartConfig(max_parts=0))

    def test_header_size_limit(self) -> None:
        with pytest.raises(HTTPInputError, match="header too large"):
            self.parse(self.BODY, config=ParseMultipartConfig(max_part_header_size=10))

    def test_disabled(self) -> None:
        with pytest.raises(HTTPInputError, match="disabled"):
            self.parse(self.BODY, config=ParseMultipartConfig(enabled=False))
        config = ParseBodyConfig(multipart=ParseMultipartConfig(enabled=False))
        with pytest.raises(HTTPInputError, match="disabled"):
            parse_body_arguments(
                "multipart/form-data; boundary=1234", self.BODY, {}, {}, config=config
            )

    def test_default_config_is_used(self, restore_config: None) -> None:
        set_parse_body_config(ParseBodyConfig(multipart=ParseMultipartConfig(max_parts=1)))
        with pytest.raises(HTTPInputError, match="too many parts"):
            self.parse(self.BODY)

    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.text(
                    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters='"\\;'),
                    min_size=1,
                ).filter(lambda s: s == s.strip()),
                st.binary(max_size=20),
                st.booleans(),
            ),
            max_size=5,
        )
    )
    def test_round_trip(self, parts: list[tuple[str, bytes, bool]]) -> None:
        assume(not any(b"--xyz" in value for _, value, _ in parts))
        chunks = []
        expected_args: Args = {}
        expected_files: dict[str, list[tuple[str, bytes]]] = {}
        for name, value, is_file in parts:
            extra = f'; filename="{name}.bin"' if is_file else ""
            chunks.append(
                f'--xyz\r\nContent-Disposition: form-data; name="{name}"{extra}\r\n\r\n'.encode()
            )
            chunks.append(value + b"\r\n")
            if is_file:
                expected_files.setdefault(name, []).append((f"{name}.bin", value))
            else:
                expected_args.setdefault(name, []).append(value)
        chunks.append(b"--xyz--\r\n")
        args, files = self.parse(b"".join(chunks), b"xyz")
        assert args == expected_args
        assert {k: [(f.filename, f.body) for f in v] for k, v in files.items()} == expected_files

    @settings(max_examples=80, deadline=None)
    @given(st.binary(max_size=200))
    def test_arbitrary_bodies_fail_cleanly(self, tail: bytes) -> None:
        try:
            self.parse(b"--1234\r\n" + tail + b"\r\n--1234--")
        except HTTPInputError:
            pass


class TestHeaderParameters:
    def test_plain(self) -> None:
        assert _parse_header("text/html") == ("text/html", {})
        assert _parse_header("") == ("", {})

    def test_params(self) -> None:
        assert _parse_header(' form-data ; NAME = "a b" ; flag ; x=1 ') == (
            "form-data",
            {"name": "a b", "x": "1"},
        )

    def test_semicolons_and_escapes_inside_quotes(self) -> None:
        key, params = _parse_header(r'form-data; a="x;y\";z"; b="c:\temp\\d"; c=";"')
        assert key == "form-data"
        assert params == {"a": 'x;y";z', "b": r"c:\temp\d", "c": ";"}

    def test_backslash_outside_quotes_is_literal(self) -> None:
        assert _parse_header(r"a; b=c\;d") == ("a", {"b": "c\\"})
        assert _parse_header(r"a; b=c\d")[1] == {"b": r"c\d"}

    def test_extended_value(self) -> None:
        params = _parse_header("a; filename=plain.txt; filename*=UTF-8'en'%E2%82%AC%20x.txt")[1]
        assert params == {"filename": "€ x.txt"}

    def test_extended_value_comes_first(self) -> None:
        params = _parse_header("a; filename*=UTF-8''%C3%A9; filename=plain")[1]
        assert params["filename"] == "é"

    def test_extended_latin1_and_unknown_charset(self) -> None:
        assert _parse_header("a; f*=iso-8859-1''%E9")[1]["f"] == "é"
        assert _parse_header("a; f*=no-such-charset''%C3%A9")[1]["f"] == "é"
        assert _parse_header("a; f*=%C3%A9")[1]["f"] == "é"
        assert _parse_header("a; f*=\"UTF-8''%C3%A9\"")[1]["f"] == "é"

    def test_continuations(self) -> None:
        params = _parse_header("a; t*0*=UTF-8''%C3%A9; t*1=\"-x\"; t*2*=%C3%A9")[1]
        assert params == {"t": "é-xé"}
        # Out-of-order sections are sorted; a gap drops the value.
        assert _parse_header("a; t*1=b; t*0=a")[1] == {"t": "ab"}
        assert _parse_header("a; t*0=a; t*2=c")[1] == {}
        # A star in an unexpected place is just part of the name.
        assert _parse_header("a; t*x=1")[1] == {"t*x": "1"}

    def test_linear_in_quoted_semicolons(self) -> None:
        params = _parse_header('form-data; x="' + ";" * 200_000 + '"; name=f')[1]
        assert params["name"] == "f"
        assert len(params["x"]) == 200_000

    def test_a_star_outside_rfc_2231_forms_is_part_of_the_name(self) -> None:
        for text, name in (("x**=1", "x**"), ("a-b*=1", "a-b*"), ("*=1", "*"), ("*0=1", "*0")):
            assert _parse_header(f"a; {text}")[1] == {name: "1"}
        assert _parse_header("a; f*0=x; f*1*=%41")[1] == {"f": "xA"}

    def test_bare_names_are_left_out(self) -> None:
        # As Tornado's: callers test ``name in params`` and use the value.
        text = "permessage-deflate; client_max_window_bits; server_max_window_bits=10"
        key, params = _parse_header(text)
        assert params == {"server_max_window_bits": "10"}
        assert _encode_header(key, {**params, "client_max_window_bits": None}) == text
        assert _parse_header("a; ; =x")[1] == {"": "x"}
        assert _parse_header('form-data; filename; name="f"')[1] == {"name": "f"}

    def test_encode(self) -> None:
        assert _encode_header("text/html", {}) == "text/html"
        assert _encode_header("a", {"z": 1, "b": None, "c": "d"}) == "a; b; c=d; z=1"


class TestCookies:
    def test_basic(self) -> None:
        assert parse_cookie("a=1; b=2") == {"a": "1", "b": "2"}
        assert parse_cookie("") == {}
        assert parse_cookie(";;") == {}

    def test_lenient_forms(self) -> None:
        assert parse_cookie("a=b=c; d") == {"a": "b=c", "": "d"}
        assert parse_cookie("  =  b  ;  ;  =  ;   c  =  ;  ") == {"": "b", "c": ""}
        assert parse_cookie("a=1; a=2") == {"a": "2"}
        assert parse_cookie("saint=André") == {"saint": "André"}

    def test_every_semicolon_splits(self) -> None:
        assert parse_cookie('k="a;b"') == {"k": '"a', "": 'b"'}

    @pytest.mark.parametrize(
        ("raw", "value"),
        [
            ('"plain"', "plain"),
            (r'"a\"b"', 'a"b'),
            (r'"\\"', "\\"),
            (r'"\042\134\377"', '"\\\xff'),
            (r'"\400\42"', "40042"),
            (r'"\\042"', "\\042"),
            ('"', '"'),
            ('"unterminated', '"unterminated'),
            ("noquotes\\", "noquotes\\"),
        ],
    )
    def test_unquote(self, raw: str, value: str) -> None:
        assert _unquote_cookie(raw) == value
        assert parse_cookie(f"a={raw}")["a"] == value

    def test_unquote_large_is_linear(self) -> None:
        value = parse_cookie('a="' + "\\\\" * 200_000 + '"')["a"]
        assert value == "\\" * 200_000

    @settings(max_examples=80, deadline=None)
    @given(st.text())
    def test_never_raises(self, header: str) -> None:
        for key, value in parse_cookie(header).items():
            assert isinstance(key, str) and isinstance(value, str)


def test_multipart_part_without_opening_delimiter_is_kept() -> None:
    body = (
        b"Content-Disposition: form-data; name=first\r\n\r\none\r\n"
        b"--xyz\r\nContent-Disposition: form-data; name=second\r\n\r\ntwo\r\n--xyz--\r\n"
    )
    args: dict[str, list[bytes]] = {}
    files: dict[str, list[HTTPFile]] = {}
    parse_multipart_form_data(b"xyz", body, args, files)
    assert args == {"first": [b"one"], "second": [b"two"]}


def test_multipart_preamble_that_is_not_a_part_is_ignored() -> None:
    body = b"this is a preamble\r\n\r\nstill\r\n--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--xyz--"
    args: dict[str, list[bytes]] = {}
    parse_multipart_form_data(b"xyz", body, args, {})
    assert args == {"a": [b"v"]}
