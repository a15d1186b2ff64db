"""Cookies: Set-Cookie formatting and validation, reading, clearing, signed cookies."""

from __future__ import annotations

import datetime
import email.utils
import http.cookies

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from squall.httputil import format_timestamp
from squall.testing import AsyncHTTPTestCase
from squall.web import Application, HTTPError, RequestHandler
from squall.web.cookies import format_set_cookie
from squall.web.signing import create_signed_value
from tests.web._extras_stub import StubHandler

# -- format_set_cookie -------------------------------------------------------


def test_plain_cookie() -> None:
    assert format_set_cookie("a", "b", {}) == "a=b"


@settings(max_examples=500)
@given(st.text(alphabet=st.characters(max_codepoint=0x17F), max_size=12))
def test_value_quoted_as_simplecookie_quotes_it(value: str) -> None:
    encoded = http.cookies.SimpleCookie().value_encode(value)[1]
    if encoded.isascii():
        assert format_set_cookie("a", value, {}) == f"a={encoded}"
    else:
        with pytest.raises(ValueError, match="beyond Latin-1"):
            format_set_cookie("a", value, {})


def test_attributes_come_in_morsel_order() -> None:
    line = format_set_cookie(
        "a",
        "b",
        {
            "secure": True,
            "path": "/p",
            "samesite": "Lax",
            "partitioned": True,
            "max-age": 5,
            "httponly": True,
            "domain": "example.com",
            "expires": 0,
            "comment": "hi",
            "version": "1",
        },
    )
    assert line == (
        "a=b; Comment=hi; Domain=example.com; expires=Thu, 01 Jan 1970 00:00:00 GMT; "
        "HttpOnly; Max-Age=5; Partitioned; Path=/p; SameSite=Lax; Secure; Version=1"
    )


def test_false_and_none_attributes_are_left_out() -> None:
    assert format_set_cookie("a", "b", {"secure": False, "domain": None, "httponly": 0}) == "a=b"


def test_expires_accepts_strings_tuples_and_datetimes() -> None:
    moment = datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    expected = "a=b; expires=Mon, 06 May 2030 07:08:09 GMT"
    assert format_set_cookie("a", "b", {"expires": moment}) == expected
    assert format_set_cookie("a", "b", {"expires": moment.utctimetuple()[:6]}) == expected
    assert format_set_cookie("a", "b", {"expires": "whenever"}) == "a=b; expires=whenever"


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a=b", '"a=b"'),
        ('a"b', '"a\\"b"'),
        ("a;b", '"a\\073b"'),
        ("", '""'),
        ("a b", '"a b"'),
        ("é", '"\\351"'),
        ("a b()/<=>?@[]{}", '"a b()/<=>?@[]{}"'),
        ("a,b", '"a\\054b"'),
        # A signed value: base64's "=" padding makes it quoted.
        ("2|1:0|10:1700000000|1:a|4:YQ==|ab12", '"2|1:0|10:1700000000|1:a|4:YQ==|ab12"'),
    ],
)
def test_values_are_quoted_like_simplecookie(value: str, encoded: str) -> None:
    assert format_set_cookie("n", value, {}) == f"n={encoded}"
    # What we write, the cookie parser reads back.
    jar = http.cookies.SimpleCookie()
    jar.load(f"n={encoded}")
    assert jar["n"].value == value


@pytest.mark.parametrize("char", ["\x00", "\t", "\n", "\r", "\x1f", " ", "\x7f", ";"])
def test_breaking_characters_in_the_name_are_refused(char: str) -> None:
    with pytest.raises(http.cookies.CookieError, match="Invalid cookie attribute name"):
        format_set_cookie(f"a{char}", "b", {})


@pytest.mark.parametrize("name", ["", "a=b", "a,b", 'a"'])
def test_illegal_names_are_refused(name: str) -> None:
    with pytest.raises(http.cookies.CookieError, match="Illegal cookie name"):
        format_set_cookie(name, "b", {})


def test_unknown_attribute_is_refused() -> None:
    with pytest.raises(http.cookies.CookieError, match="Unknown cookie attribute 'color'"):
        format_set_cookie("a", "b", {"color": "red"})


@pytest.mark.parametrize("bad", ["1; Path=/x", "ten", float("inf"), float("nan"), True, [1]])
def test_max_age_must_be_an_integer(bad: object) -> None:
    with pytest.raises(ValueError, match="max_age must be an integer"):
        format_set_cookie("a", "b", {"max-age": bad})


def test_max_age_accepts_integer_strings() -> None:
    assert format_set_cookie("a", "b", {"max-age": "30"}) == "a=b; Max-Age=30"
    assert format_set_cookie("a", "b", {"max-age": -1}) == "a=b; Max-Age=-1"


def test_max_age_is_whole_seconds_and_zero_sets_none() -> None:
    # As Tornado writes it (int(max_age), and nothing for a false one): a
    # max_age of 0 is no Max-Age attribute (a session cookie), not one that
    # expires at once.
    assert format_set_cookie("a", "b", {"max-age": 10.7}) == "a=b; Max-Age=10"
    assert format_set_cookie("a", "b", {"max-age": 0}) == "a=b"
    assert format_set_cookie("a", "b", {"max-age": 0.0}) == "a=b"
    assert format_set_cookie("a", "b", {"max-age": "0"}) == "a=b; Max-Age=0"


# -- CookieMixin without a server ---------------------------------------------


def test_get_cookie_and_cookies() -> None:
    handler = StubHandler(cookie='a=1; b="x y"')
    assert handler.get_cookie("a") == "1"
    assert handler.get_cookie("b") == "x y"
    assert handler.get_cookie("c") is None
    assert handler.get_cookie("c", "dflt") == "dflt"
    assert sorted(handler.cookies) == ["a", "b"]


def test_set_cookie_replaces_by_name_and_keeps_others() -> None:
    handler = StubHandler()
    handler.set_cookie("a", "1", domain="example.com")
    handler.set_cookie("b", b"2")
    handler.set_cookie("a", "3")
    assert handler.set_cookies() == ["b=2; Path=/", "a=3; Path=/"]


@pytest.mark.parametrize("attribute", ["domain", "path", "samesite", "comment"])
def test_an_empty_attribute_is_left_out(attribute: str) -> None:
    # As Tornado leaves it out (it tests each for truth): `samesite=""` is no
    # `SameSite=` with nothing after it.
    handler = StubHandler()
    handler.set_cookie("a", "b", **{attribute: ""})
    assert handler.set_cookies() == (["a=b"] if attribute == "path" else ["a=b; Path=/"])


def test_a_bad_attribute_is_reported_before_a_bad_expires_days() -> None:
    # Tornado checks the attributes first, then computes the date.
    handler = StubHandler()
    with pytest.raises(http.cookies.CookieError, match="domain"):
        handler.set_cookie("a", "b", domain="a b", expires_days="x")  # type: ignore[arg-type]
    with pytest.raises(http.cookies.CookieError, match="Illegal cookie name"):
        handler.set_cookie("(", "b", expires_days="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        handler.set_cookie("a", "b", expires_days="x")  # type: ignore[arg-type]
    assert handler.set_cookies() == []


@pytest.mark.parametrize("attribute", ["domain", "path", "samesite", "comment"])
def test_an_attribute_beyond_latin1_is_refused_when_set(attribute: str) -> None:
    # Tornado takes it and fails when the head is written (the client gets no answer).
    handler = StubHandler()
    with pytest.raises(ValueError, match=f"(?i)cookie attribute {attribute}=.*beyond Latin-1"):
        handler.set_cookie("a", "b", **{attribute: "\u2603"})
    assert handler.set_cookies() == []


def test_expires_zero_sets_no_expires() -> None:
    handler = StubHandler()
    handler.set_cookie("a", "b", expires=0)
    assert handler.set_cookies() == ["a=b; Path=/"]


@pytest.mark.parametrize("attribute", ["domain", "path", "samesite"])
def test_breaking_characters_in_attributes_are_refused(attribute: str) -> None:
    handler = StubHandler()
    with pytest.raises(http.cookies.CookieError, match=f"Invalid cookie attribute {attribute}"):
        handler.set_cookie("a", "b", **{attribute: "x;Secure"})
    assert handler.set_cookies() == []


@pytest.mark.parametrize(
    "attributes",
    [{"path": "/a b"}, {"domain": "a b"}, {"samesite": "Lax "}, {"comment": "a comment"}],
)
def test_a_space_in_an_attribute_is_refused(attributes: dict[str, str]) -> None:
    # As Tornado refuses it: a browser would end the attribute there.
    handler = StubHandler()
    with pytest.raises(http.cookies.CookieError, match="Invalid cookie attribute"):
        handler.set_cookie("a", "b", **attributes)
    assert handler.set_cookies() == []


@pytest.mark.parametrize("value", ["a b", "tab\t", "\x00", "new\nline", "\u00e9 \u00e9"])
def test_a_space_or_control_character_in_a_value_is_refused(value: str) -> None:
    # Tornado's rule, though the quoting could carry them: url_escape the
    # value first (or sign it). format_set_cookie itself still quotes them.
    handler = StubHandler()
    with pytest.raises(ValueError, match="Invalid cookie 'a'"):
        handler.set_cookie("a", value)
    assert handler.set_cookies() == []
    handler.set_cookie("a", "a,b;c\x7f\u00e9")
    assert handler.set_cookies() == ['a="a\\054b\\073c\\177\\351"; Path=/']


def test_refused_name_or_attribute_message_is_tornados() -> None:
    # "Invalid cookie attribute <label>=<value> for cookie <name>"; the name
    # is reported before a bad attribute, as Tornado checks it first.
    handler = StubHandler()
    with pytest.raises(http.cookies.CookieError) as info:
        handler.set_cookie("a b", "v", domain="x;y")
    assert str(info.value) == "Invalid cookie attribute name='a b' for cookie 'a b'"
    with pytest.raises(http.cookies.CookieError) as info:
        handler.set_cookie("c", "v", path="/p;q")
    assert str(info.value) == "Invalid cookie attribute path='/p;q' for cookie 'c'"


def test_breaking_characters_in_extra_attributes_name_the_given_spelling() -> None:
    handler = StubHandler()
    with (
        pytest.warns(DeprecationWarning),
        pytest.raises(http.cookies.CookieError, match="Invalid cookie attribute DoMaIn"),
    ):
        handler.set_cookie("a", "b", DoMaIn="x\r\n.com")


def test_capitalized_keywords_are_deprecated_but_work() -> None:
    handler = StubHandler()
    with pytest.warns(DeprecationWarning) as record:
        handler.set_cookie("a", "b", HttpOnly=True, pATH="/foo")
    # One warning naming both, in Tornado's words.
    (warning,) = record
    text = str(warning.message)
    assert text.startswith("Deprecated arguments to set_cookie: {")
    assert "'HttpOnly'" in text and "'pATH'" in text and text.endswith("} (should be lowercase)")
    assert handler.set_cookies() == ["a=b; HttpOnly; Path=/foo"]


def test_extra_morsel_attributes() -> None:
    handler = StubHandler()
    handler.set_cookie("a", "b", comment="note", max_age=3)
    assert handler.set_cookies() == ["a=b; Comment=note; Max-Age=3; Path=/"]
    with pytest.warns(DeprecationWarning):
        handler.set_cookie("a", "b", Max_Age=9)
    assert handler.set_cookies() == ["a=b; Max-Age=9; Path=/"]


def test_expires_days_and_explicit_expires() -> None:
    handler = StubHandler()
    days = datetime.timedelta(days=2)
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    handler.set_cookie("a", "b", expires_days=2)
    after = datetime.datetime.now(datetime.UTC)
    line = handler.set_cookies()[0]
    when = email.utils.parsedate_to_datetime(line.split("expires=")[1].split(";")[0])
    # Two days from when it was set (the header has whole seconds).
    assert before + days <= when <= after + days
    handler.set_cookie("a", "b", expires=86400, expires_days=100)
    assert handler.set_cookies() == [f"a=b; expires={format_timestamp(86400)}; Path=/"]


def test_flags() -> None:
    handler = StubHandler()
    handler.set_cookie("a", "1", secure=True, httponly=True, samesite="None", partitioned=True)
    assert handler.set_cookies() == ["a=1; HttpOnly; Partitioned; Path=/; SameSite=None; Secure"]


def test_clear_cookie_expires_it_with_the_same_attributes() -> None:
    handler = StubHandler()
    handler.clear_cookie("a", path="/x", domain="example.com", samesite="None", secure=True)
    (line,) = handler.set_cookies()
    assert line.startswith('a=""; Domain=example.com; expires=')
    # (Expired by its date alone, as Tornado sends it: no Max-Age.)
    assert line.endswith("; Path=/x; SameSite=None; Secure")
    assert "Max-Age" not in line
    when = email.utils.parsedate_to_datetime(line.split("expires=")[1].split(";")[0])
    assert when < datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=300)


@pytest.mark.parametrize("argument", ["expires", "max_age"])
def test_clear_cookie_refuses_expiry_arguments(argument: str) -> None:
    with pytest.raises(TypeError, match=argument):
        StubHandler().clear_cookie("a", **{argument: 1})


def test_clear_all_cookies() -> None:
    handler = StubHandler(cookie="a=1; b=2")
    handler.clear_all_cookies(path="/p")
    lines = sorted(handler.set_cookies())
    assert [line.split(";")[0] for line in lines] == ['a=""', 'b=""']
    assert all("Path=/p" in line for line in lines)


def test_signed_cookie_round_trip() -> None:
    writer = StubHandler(cookie_secret="s3cret")
    writer.set_signed_cookie("sid", "user-42", httponly=True)
    (line,) = writer.set_cookies()
    assert "HttpOnly" in line and "expires=" in line
    value = line.split(";")[0].split("=", 1)[1]
    reader = StubHandler(cookie=f"sid={value}", cookie_secret="s3cret")
    assert reader.get_signed_cookie("sid") == b"user-42"
    assert reader.get_secure_cookie("sid") == b"user-42"
    assert reader.get_signed_cookie("other") is None
    assert reader.get_signed_cookie_key_version("sid") == 0
    assert reader.get_secure_cookie_key_version("other") is None


def test_signed_cookie_value_argument_and_v1() -> None:
    handler = StubHandler(cookie_secret="k")
    signed = handler.create_signed_value("n", b"\xff", version=1)
    assert handler.get_signed_cookie("n", value=signed.decode()) == b"\xff"
    assert handler.get_signed_cookie("n", value=signed.decode(), min_version=2) is None
    assert handler.get_signed_cookie_key_version("n", value=signed.decode()) is None


def test_signed_cookie_with_rotating_keys() -> None:
    keys = {1: "old", 2: "new"}
    old = StubHandler(cookie_secret=keys, key_version=1)
    old.set_secure_cookie("sid", "v", expires_days=None)
    value = old.set_cookies()[0].split(";")[0].split("=", 1)[1]
    new = StubHandler(cookie=f"sid={value}", cookie_secret=keys, key_version=2)
    assert new.get_signed_cookie("sid") == b"v"
    assert new.get_signed_cookie_key_version("sid") == 1
    retired = StubHandler(cookie=f"sid={value}", cookie_secret={2: "new"}, key_version=2)
    assert retired.get_signed_cookie("sid") is None


def test_dict_secret_without_key_version_is_an_error() -> None:
    with pytest.raises(ValueError, match="key_version setting"):
        StubHandler(cookie_secret={1: "k"}).create_signed_value("n", "v")


def test_signed_cookies_need_a_secret() -> None:
    handler = StubHandler()
    for call in (
        lambda: handler.get_signed_cookie("a"),
        lambda: handler.set_signed_cookie("a", "b"),
        lambda: handler.get_signed_cookie_key_version("a"),
    ):
        with pytest.raises(Exception, match="cookie_secret"):
            call()


# -- through a server ---------------------------------------------------------


class CookieServerTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        class SetHandler(RequestHandler):
            def get(self) -> None:
                self.set_cookie("a", "1")
                self.set_cookie("b", "x;y", httponly=True)
                self.set_signed_cookie("s", "signed")

        class GetHandler(RequestHandler):
            def get(self) -> None:
                self.write(
                    {
                        "plain": self.get_cookie("a"),
                        "signed": (self.get_signed_cookie("s") or b"").decode(),
                    }
                )

        class BadHandler(RequestHandler):
            def get(self) -> None:
                try:
                    self.set_cookie("a", "b", path=self.get_argument("path"))
                except http.cookies.CookieError:
                    self.send_error(400)

        return Application(
            [("/set", SetHandler), ("/get", GetHandler), ("/bad", BadHandler)],
            cookie_secret="server secret",
        )

    def test_cookies_travel_both_ways(self) -> None:
        response = self.fetch("/set")
        lines = response.headers.get_list("Set-Cookie")
        assert lines[:2] == ["a=1; Path=/", 'b="x\\073y"; HttpOnly; Path=/']
        assert lines[2].startswith("s=2|1:0|")
        cookie = "; ".join(line.split(";")[0] for line in lines)
        data = self.fetch("/get", headers={"Cookie": cookie}).body
        assert data == b'{"plain": "1", "signed": "signed"}'

    def test_forged_signed_cookie_reads_as_none(self) -> None:
        forged = create_signed_value("another secret", "s", "admin").decode()
        data = self.fetch("/get", headers={"Cookie": f"a=1; s={forged}"}).body
        assert data == b'{"plain": "1", "signed": ""}'

    def test_attribute_injection_gets_400_and_no_cookie(self) -> None:
        response = self.fetch("/bad?path=/%3BSecure")
        assert response.code == 400
        assert "Set-Cookie" not in response.headers


def test_bytes_name_is_decoded() -> None:
    handler = StubHandler()
    handler.set_cookie(b"raw", "v")  # type: ignore[arg-type]
    assert handler.set_cookies() == ["raw=v; Path=/"]


def test_values_beyond_latin1_are_refused() -> None:
    with pytest.raises(ValueError, match="beyond Latin-1"):
        format_set_cookie("n", "\u20ac", {})


class CookieSurvivesErrorTest(AsyncHTTPTestCase):
    def get_app(self) -> Application:
        class Handler(RequestHandler):
            def get(self) -> None:
                self.set_cookie("kept", "yes")
                self.set_header("X-Dropped", "1")
                raise HTTPError(403)

        return Application([("/", Handler)])

    def test_cookie_set_before_an_error_is_sent_with_the_error_page(self) -> None:
        response = self.fetch("/")
        assert response.code == 403
        assert response.headers.get_list("Set-Cookie") == ["kept=yes; Path=/"]
        assert "X-Dropped" not in response.headers
