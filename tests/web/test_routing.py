"""squall.routing: matchers, rule routers, the literal-path index, reversing."""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

import pytest

from squall import httputil
from squall.routing import (
    AnyMatches,
    DefaultHostMatches,
    HostMatches,
    Matcher,
    PathMatches,
    ReversibleRouter,
    ReversibleRuleRouter,
    Router,
    Rule,
    RuleRouter,
    URLSpec,
    _CallableAdapter,
    _DefaultMessageDelegate,
    _RoutingDelegate,
    url,
)


class FakeConnection(httputil.HTTPConnection):
    """Records what a delegate writes."""

    def __init__(self) -> None:
        self.heads: list[tuple[Any, httputil.HTTPHeaders, Optional[bytes]]] = []
        self.chunks: list[bytes] = []
        self.finished = False

    def write_headers(self, start_line: Any, headers: Any, chunk: Optional[bytes] = None) -> Any:
        self.heads.append((start_line, headers, chunk))
        return None

    def write(self, chunk: bytes) -> Any:
        self.chunks.append(chunk)
        return None

    def finish(self) -> None:
        self.finished = True


def make_request(
    path: str = "/", method: str = "GET", headers: Optional[dict[str, str]] = None
) -> httputil.HTTPServerRequest:
    return httputil.HTTPServerRequest(
        start_line=httputil.RequestStartLine(method, path, "HTTP/1.1"),
        headers=httputil.HTTPHeaders(headers or {"Host": "example.com"}),
        connection=FakeConnection(),
    )


class Marker(httputil.HTTPMessageDelegate):
    """A delegate that remembers which rule produced it."""

    def __init__(self, label: str, params: Optional[dict[str, Any]] = None) -> None:
        self.label = label
        self.params = params or {}


class MarkRouter(Router):
    def __init__(self, label: str, decline: bool = False) -> None:
        self.label = label
        self.decline = decline

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        if self.decline:
            return None
        return Marker(self.label, kwargs)


def found(router: Router, path: str, **kw: Any) -> Optional[str]:
    delegate = router.find_handler(make_request(path, **kw))
    return None if delegate is None else delegate.label  # type: ignore[attr-defined]


# --- matchers -----------------------------------------------------------------


def test_any_matches_everything() -> None:
    assert AnyMatches().match(make_request("/whatever")) == {}
    assert Matcher().reverse() is None
    with pytest.raises(NotImplementedError):
        Matcher().match(make_request())


def test_host_matches_host_name_without_port() -> None:
    matcher = HostMatches(r"www\.example\.com")
    assert matcher.host_pattern.pattern.endswith("$")
    assert matcher.match(make_request(headers={"Host": "www.example.com:8080"})) == {}
    assert matcher.match(make_request(headers={"Host": "www.example.com.evil"})) is None
    compiled = HostMatches(re.compile("a.*"))
    assert compiled.match(make_request(headers={"Host": "abc"})) == {}
    assert HostMatches(".*").match(make_request(headers={"Host": "anything"})) == {}


def test_default_host_matches_follows_the_application() -> None:
    class App:
        default_host = "www.example.com"

    app = App()
    matcher = DefaultHostMatches(app, re.compile(r"www\.example\.com$"))
    assert matcher.match(make_request(headers={"Host": "other"})) == {}
    # Behind a proxy (X-Real-Ip), the default host does not apply.
    assert matcher.match(make_request(headers={"Host": "other", "X-Real-Ip": "1.2.3.4"})) is None
    app.default_host = "elsewhere"
    assert matcher.match(make_request()) is None


def test_path_matches_positional_groups_are_unquoted_bytes() -> None:
    matcher = PathMatches(r"/item/([^/]+)/(\d+)?")
    params = matcher.match(make_request("/item/a%2Fb%20c/"))
    assert params == {"path_args": [b"a/b c", None], "path_kwargs": {}}
    assert matcher.match(make_request("/other")) is None


def test_path_matches_named_groups() -> None:
    matcher = PathMatches(r"/(?P<slug>[a-z]+)")
    assert matcher.match(make_request("/abc")) == {"path_args": [], "path_kwargs": {"slug": b"abc"}}


def test_path_matches_anchors_at_the_end_only() -> None:
    matcher = PathMatches(r"/a.c")
    assert matcher.match(make_request("/abc")) == {}
    assert matcher.match(make_request("/abcd")) is None
    assert PathMatches(re.compile(r"/x")).match(make_request("/xyz")) == {}


def test_path_matches_rejects_mixed_groups() -> None:
    with pytest.raises(ValueError, match="all named or all positional"):
        PathMatches(r"/(?P<a>x)/(y)")


def test_literal_path_is_compared_without_regex() -> None:
    literal = PathMatches("/login")
    assert literal._literal == "/login"
    assert literal.match(make_request("/login")) == {}
    assert literal.match(make_request("/login/")) is None
    # A dot is regex syntax: such a pattern is not taken as literal.
    assert PathMatches("/robots.txt")._literal is None
    assert PathMatches(re.compile("/case", re.IGNORECASE))._literal is None


def test_reverse_fills_groups_with_escaped_values() -> None:
    assert PathMatches(r"/favicon\.ico").reverse() == "/favicon.ico"
    assert PathMatches(r"^/favicon\.ico$").reverse() == "/favicon.ico"
    assert PathMatches(r"/robots.txt").reverse() == "/robots.txt"
    matcher = PathMatches(r"/api\.v1/foo/([0-9]+)/icon\.png")
    assert matcher.reverse(5) == "/api.v1/foo/5/icon.png"
    by_name = PathMatches(r"/u/(?P<name>.+)")
    assert by_name.reverse("a b/é") == "/u/a%20b/%C3%A9"
    assert by_name.reverse(b"\xe9") == "/u/%E9"
    assert PathMatches(r"/100%/(x)").reverse("y") == "/100%/y"


@pytest.mark.parametrize(
    ("pattern", "args"),
    [
        (r"^/api/v\d+/foo/(\w+)$", ("x",)),
        (r"/((a)b)", (1, 2)),
        (r"/(a(b))", (1, 2)),
        (r"/a\(b(c)", ("x",)),
        (r"/a\)b", ()),
    ],
)
def test_patterns_without_a_place_for_each_argument_do_not_reverse(
    pattern: str, args: tuple[object, ...]
) -> None:
    # A class escape (\d) or nested or escaped parentheses: Tornado refuses
    # these too, or fails formatting them.
    with pytest.raises(ValueError, match="Cannot reverse"):
        PathMatches(pattern).reverse(*args)


@pytest.mark.parametrize(
    ("pattern", "args", "url"),
    [
        (r"/posts/(\d+)/?", (5,), "/posts/5/?"),
        (r"/api/items/?", (), "/api/items/?"),
        (r"/page/?(\d*)", (5,), "/page/?5"),
        (r"/a|b", (), "/a|b"),
        (r"/[ab]", (), "/[ab]"),
    ],
)
def test_regex_syntax_outside_groups_is_kept_as_tornado_keeps_it(
    pattern: str, args: tuple[object, ...], url: str
) -> None:
    # The trailing "/?" idiom reverses to a URL its route matches; a page
    # calling reverse_url for it renders, as on Tornado.
    assert PathMatches(pattern).reverse(*args) == url


# (pattern, _path, _group_count) as Tornado 6.6.1 computes them: OpenTelemetry
# names spans from _path, apispec's Tornado plugin builds OpenAPI paths from
# both, whatever regex syntax the pattern keeps outside its groups.
_TORNADO_PATHS = [
    (r"/hello/world/*", "/hello/world/*", 0),
    (r"/a/[0-9]+", "/a/[0-9]+", 0),
    (r"/robots.txt", "/robots.txt", 0),
    (r"/favicon\.ico", "/favicon.ico", 0),
    (r"/x?", "/x?", 0),
    (r"/x?/(\d+)", "/x?/%s", 1),
    (r"/a\(b(c)", None, None),
    (r"/((a)b)", "/%sb)", 2),
    (r"/(?P<id>\d+)/(?P<n>[a-z]+)", "/%s/%s", 2),
    (r"/(\d+)/(.*)$", "/%s/%s", 2),
    (r"^/a/(b)$", "/a/%s", 1),
    (r"/a\)b", "%sb", 0),
    (r"/a|b", "/a|b", 0),
    (r"/v\d+/(\w+)", None, None),
    (r"/100%/(x)", "/100%/%s", 1),
    (r"/a/(?:b)", None, None),
    (r"/(a(b))", "/a%s)", 2),
    (r"/a$b", "/a$b", 0),
    (r"/a\.b\-c\/d", "/a.b-c/d", 0),
    (r"/u/(?P<name>.+)", "/u/%s", 1),
    (r"/\w+", None, None),
    (r"/(a)\d(b)", None, None),
    (r"/a{2}", "/a{2}", 0),
    (r"/^x", "/^x", 0),
    (r".*", ".*", 0),
    (r"/static/(.*)", "/static/%s", 1),
    (r"/a\\b", "/a\\b", 0),
    (r"/(a)[(]b", None, None),
]


@pytest.mark.parametrize(("pattern", "path", "group_count"), _TORNADO_PATHS)
def test_path_and_group_count_are_tornados(
    pattern: str, path: str | None, group_count: int | None
) -> None:
    matcher = PathMatches(pattern)
    assert (matcher._path, matcher._group_count) == (path, group_count)


def test_reverse_is_the_path_with_its_groups_filled() -> None:
    # _path keeps "*" for the tracers, and reverse() gives it as Tornado
    # does; a "%" of the pattern stays one (Tornado's formatting fails).
    matcher = PathMatches("/files/*")
    assert matcher._path == matcher.reverse() == "/files/*"
    assert PathMatches(r"/100%/(x)").reverse("a b") == "/100%/a%20b"


def test_reverse_checks_the_argument_count() -> None:
    with pytest.raises(ValueError, match="takes 1 arguments, got 0"):
        PathMatches(r"/a/(\w+)").reverse()


# --- rules and rule routers ----------------------------------------------------------


def test_rule_resolves_dotted_targets_and_reprs() -> None:
    rule = Rule(PathMatches("/x"), "squall.routing.AnyMatches", {"a": 1}, "name")
    assert rule.target is AnyMatches
    assert "kwargs={'a': 1}" in repr(rule) and "name='name'" in repr(rule)
    assert rule.reverse() == "/x"


def test_urlspec_keeps_its_handler_and_kwargs() -> None:
    spec = url(r"/u/(\d+)", MarkRouter, {"k": 1}, name="user")
    assert isinstance(spec, URLSpec)
    assert spec.handler_class is MarkRouter and spec.kwargs == {"k": 1}
    assert spec.regex.pattern == r"/u/(\d+)$"
    assert spec.reverse(7) == "/u/7"
    assert repr(spec).startswith("URLSpec('/u/(\\\\d+)$'")


def test_rule_tuples_must_have_two_to_four_elements() -> None:
    with pytest.raises(ValueError, match="2 to 4 elements"):
        RuleRouter([("/only",)])
    with pytest.raises(TypeError, match="a rule is a Rule or a .* tuple, not 42"):
        RuleRouter([42])  # type: ignore[list-item]


def test_first_matching_rule_wins_across_literal_and_regex_rules() -> None:
    router = RuleRouter(
        [
            ("/a", MarkRouter("literal-a")),
            (r"/[ab]", MarkRouter("regex-ab")),
            ("/b", MarkRouter("literal-b")),
            ("/a", MarkRouter("literal-a-again")),
            (r"/.*", MarkRouter("catch-all")),
        ]
    )
    assert found(router, "/a") == "literal-a"
    # The regex rule comes before the literal "/b": it wins.
    assert found(router, "/b") == "regex-ab"
    assert found(router, "/zzz") == "catch-all"


def test_a_declining_literal_target_falls_through_in_order() -> None:
    router = RuleRouter(
        [
            ("/a", MarkRouter("declines", decline=True)),
            (r"/b", MarkRouter("b")),
            ("/a", MarkRouter("second-a")),
        ]
    )
    assert found(router, "/a") == "second-a"
    router.rules.pop()
    assert found(router, "/a") is None


def test_no_rule_matches() -> None:
    router = RuleRouter([(r"/x/(\d+)", MarkRouter("x"))])
    assert found(router, "/y") is None
    assert RuleRouter().find_handler(make_request()) is None


def test_changes_to_the_rule_list_reindex() -> None:
    router = RuleRouter([("/a", MarkRouter("a"))])
    assert found(router, "/a") == "a"
    router.rules.insert(0, Rule(PathMatches("/a"), MarkRouter("new-a")))
    assert found(router, "/a") == "new-a"
    router.rules[0] = Rule(PathMatches("/a"), MarkRouter("replaced"))
    assert found(router, "/a") == "replaced"
    del router.rules[0]
    assert found(router, "/a") == "a"
    router.rules.append(Rule(PathMatches("/b"), MarkRouter("b")))
    router.rules.extend([Rule(PathMatches("/c"), MarkRouter("c"))])
    router.rules += [Rule(PathMatches("/d"), MarkRouter("d"))]
    assert [found(router, p) for p in ("/b", "/c", "/d")] == ["b", "c", "d"]
    router.rules.remove(router.rules[-1])
    assert found(router, "/d") is None
    router.rules.reverse()
    router.rules.sort(key=lambda rule: rule.matcher.regex.pattern)  # type: ignore[attr-defined]
    assert found(router, "/a") == "a"
    router.rules.clear()
    assert found(router, "/a") is None
    router.rules = [Rule(PathMatches("/e"), MarkRouter("e"))]
    assert found(router, "/e") == "e"


def test_targets_receive_matcher_params_and_kwargs() -> None:
    router = RuleRouter(
        [
            Rule(PathMatches(r"/(\d+)"), MarkRouter("num"), {"extra": 1}),
            Rule(PathMatches("/lit"), MarkRouter("lit"), {"extra": 2}),
        ]
    )
    delegate = router.find_handler(make_request("/42"))
    assert delegate.params == {  # type: ignore[union-attr]
        "path_args": [b"42"],
        "path_kwargs": {},
        "target_kwargs": {"extra": 1},
    }
    assert router.find_handler(make_request("/lit")).params == {  # type: ignore[union-attr]
        "target_kwargs": {"extra": 2}
    }


def test_connection_delegate_and_callable_targets() -> None:
    class ConnDelegate(httputil.HTTPServerConnectionDelegate):
        def start_request(self, server_conn: object, request_conn: Any) -> Any:
            return Marker("conn")

    calls: list[httputil.HTTPServerRequest] = []
    router = RuleRouter(
        [
            ("/conn", ConnDelegate()),
            ("/call", calls.append),
            ("/none", 42),
        ]
    )
    assert found(router, "/conn") == "conn"
    assert isinstance(router.find_handler(make_request("/call")), _CallableAdapter)
    assert router.find_handler(make_request("/none")) is None


def test_callable_adapter_collects_the_body() -> None:
    received: list[httputil.HTTPServerRequest] = []
    conn = FakeConnection()
    adapter = _CallableAdapter(received.append, conn)
    adapter.headers_received(
        httputil.RequestStartLine("POST", "/p", "HTTP/1.1"),
        httputil.HTTPHeaders({"Content-Type": "application/x-www-form-urlencoded"}),
    )
    adapter.data_received(b"a=1&")
    adapter.data_received(b"b=2")
    adapter.finish()
    assert received[0].body == b"a=1&b=2"
    assert received[0].body_arguments == {"a": [b"1"], "b": [b"2"]}
    adapter.on_connection_close()
    assert adapter.chunks == []


def test_reversible_rule_router_names_and_nested_routers(caplog: pytest.LogCaptureFixture) -> None:
    inner = ReversibleRuleRouter([url(r"/inner/(\d+)", MarkRouter("i"), name="inner")])
    outer = ReversibleRuleRouter([url("/one", MarkRouter("1"), name="one"), ("/in.*", inner)])
    assert outer.reverse_url("one") == "/one"
    assert outer.reverse_url("inner", 3) == "/inner/3"
    assert outer.reverse_url("missing") is None
    with caplog.at_level(logging.WARNING, logger="squall.application"):
        outer.add_rules([url("/two", MarkRouter("2"), name="one")])
    assert "Multiple handlers named one" in caplog.text
    assert outer.reverse_url("one") == "/two"


def test_abstract_routers() -> None:
    with pytest.raises(NotImplementedError):
        Router().find_handler(make_request())
    with pytest.raises(NotImplementedError):
        ReversibleRouter().reverse_url("x")


# --- the routing delegate -------------------------------------------------------------


def test_routing_delegate_builds_the_request_and_forwards() -> None:
    events: list[Any] = []

    class Recorder(httputil.HTTPMessageDelegate):
        def headers_received(self, start_line: Any, headers: Any) -> None:
            events.append(("headers", start_line.path))

        def data_received(self, chunk: bytes) -> None:
            events.append(("data", chunk))

        def finish(self) -> None:
            events.append("finish")

        def on_connection_close(self) -> None:
            events.append("close")

    class R(Router):
        def find_handler(self, request: httputil.HTTPServerRequest, **kwargs: Any) -> Any:
            events.append(("request", request.path, request.server_connection))
            return Recorder()

    conn = FakeConnection()
    delegate = R().start_request("server-conn", conn)
    assert isinstance(delegate, _RoutingDelegate)
    delegate.on_connection_close()  # before any headers: nothing to forward to
    delegate.headers_received(
        httputil.RequestStartLine("POST", "/p?q=1", "HTTP/1.1"), httputil.HTTPHeaders()
    )
    delegate.data_received(b"x")
    delegate.finish()
    delegate.on_connection_close()
    assert events == [
        ("request", "/p", "server-conn"),
        ("headers", "/p?q=1"),
        ("data", b"x"),
        "finish",
        "close",
    ]


def test_routing_delegate_answers_404_when_nothing_matches() -> None:
    conn = FakeConnection()
    delegate = RuleRouter().start_request(None, conn)
    delegate.headers_received(
        httputil.RequestStartLine("GET", "/", "HTTP/1.1"), httputil.HTTPHeaders()
    )
    delegate.finish()
    start_line, headers, _ = conn.heads[0]
    assert start_line.code == 404 and headers["Content-Length"] == "0"
    assert conn.finished
    assert isinstance(_DefaultMessageDelegate(conn), httputil.HTTPMessageDelegate)
