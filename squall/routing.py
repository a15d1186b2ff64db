"""Routing: choosing the delegate that handles each request.

A `Router` is an `.HTTPServerConnectionDelegate` that, for each request,
picks an `.HTTPMessageDelegate` with `Router.find_handler`. `RuleRouter`
holds an ordered list of `Rule` objects, each pairing a `Matcher` (what the
request must look like) with a target (a nested router, a connection
delegate, or a callable taking the request). The first rule that matches and
whose target yields a delegate wins. `.web.Application` is a router of this
kind whose targets are `.RequestHandler` classes.

Literal paths are the common case (``"/"``, ``"/login"``), so `RuleRouter`
finds them with a dictionary lookup instead of trying each rule's regex; the
regex rules before a literal hit are still tried first, so the result is the
same as trying every rule in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Optional, SupportsIndex, Union

from squall import httputil
from squall.escape import url_escape, url_unescape, utf8
from squall.httputil._delegates import _Forwarding
from squall.httputil._startline import StartLine
from squall.log import app_log
from squall.util import import_object, re_unescape

__all__ = [
    "AnyMatches",
    "DefaultHostMatches",
    "HostMatches",
    "Matcher",
    "PathMatches",
    "ReversibleRouter",
    "ReversibleRuleRouter",
    "Router",
    "Rule",
    "RuleRouter",
    "URLSpec",
    "url",
]


class Router(httputil.HTTPServerConnectionDelegate):
    """Abstract router: maps a request to the delegate that handles it."""

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        """Returns the delegate for ``request``, or ``None`` if nothing matches.

        Args:
            request: the request, with its headers but not yet its body.
            kwargs: parameters passed by an enclosing router.
        """
        raise NotImplementedError()

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return _RoutingDelegate(self, server_conn, request_conn)


class ReversibleRouter(Router):
    """A router that can also build the URL of a named route."""

    def reverse_url(self, name: str, *args: Any) -> Optional[str]:
        """Returns the URL of route ``name`` with ``args`` filled in, or ``None``."""
        raise NotImplementedError()


class _RoutingDelegate(_Forwarding):
    # Builds the request once the headers are in, asks the router for the
    # real delegate and forwards everything else to it.
    __slots__ = ("server_conn", "request_conn", "delegate", "router")

    def __init__(
        self, router: Router, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> None:
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.delegate: Optional[httputil.HTTPMessageDelegate] = None
        self.router = router

    def headers_received(
        self, start_line: StartLine, headers: httputil.HTTPHeaders
    ) -> Optional[Any]:
        assert isinstance(start_line, httputil.RequestStartLine)
        request = httputil.HTTPServerRequest._for_server(
            self.request_conn, self.server_conn, start_line, headers
        )
        delegate = self.router.find_handler(request)
        if delegate is None:
            app_log.debug(
                "Delegate for %s %s request not found", start_line.method, start_line.path
            )
            delegate = _DefaultMessageDelegate(self.request_conn)
        self.delegate = delegate
        return delegate.headers_received(start_line, headers)


class _DefaultMessageDelegate(httputil.HTTPMessageDelegate):
    # What answers when no rule matched: a bare 404.
    __slots__ = ("connection",)

    def __init__(self, connection: httputil.HTTPConnection) -> None:
        self.connection = connection

    def finish(self) -> None:
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 404, "Not Found"),
            httputil.HTTPHeaders({"Content-Length": "0"}),
        )
        self.connection.finish()


class _CallableAdapter(httputil.HTTPMessageDelegate):
    # Lets a plain ``callable(request)`` be a routing target: it is called
    # once the whole body has arrived.
    __slots__ = ("connection", "callback", "request", "chunks")

    def __init__(
        self,
        callback: Callable[[httputil.HTTPServerRequest], Any],
        connection: httputil.HTTPConnection,
    ) -> None:
        self.connection = connection
        self.callback = callback
        self.request: Optional[httputil.HTTPServerRequest] = None
        self.chunks: list[bytes] = []

    def headers_received(
        self, start_line: StartLine, headers: httputil.HTTPHeaders
    ) -> Optional[Any]:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.request = httputil.HTTPServerRequest(
            connection=self.connection, start_line=start_line, headers=headers
        )
        return None

    def data_received(self, chunk: bytes) -> Optional[Any]:
        self.chunks.append(chunk)
        return None

    def finish(self) -> None:
        assert self.request is not None
        self.request.body = b"".join(self.chunks)
        self.request._parse_body()
        self.callback(self.request)

    def on_connection_close(self) -> None:
        self.chunks = []


class Matcher:
    """Decides whether a rule applies to a request."""

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict[str, Any]]:
        """Returns the parameters for the target if ``request`` matches, else ``None``.

        An empty dict means "matches, with no parameters".
        """
        raise NotImplementedError()

    def reverse(self, *args: Any) -> Optional[str]:
        """Rebuilds the URL this matcher matches from ``args``, or ``None`` if it cannot."""
        return None


class AnyMatches(Matcher):
    """Matches every request."""

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict[str, Any]]:
        return {}


def _anchored(pattern: Union[str, re.Pattern[str]]) -> re.Pattern[str]:
    """A compiled pattern as it is; a string compiled, anchored at its end by ``$``."""
    if isinstance(pattern, str):
        return re.compile(pattern if pattern.endswith("$") else pattern + "$")
    return pattern


class HostMatches(Matcher):
    """Matches requests whose host name (no port) matches a regex.

    Args:
        host_pattern: a regex (string or compiled); a string is anchored at
            its end by adding ``$`` if missing.
    """

    def __init__(self, host_pattern: Union[str, re.Pattern[str]]) -> None:
        self.host_pattern = _anchored(host_pattern)
        # The wildcard host of Application is on every request's path.
        self._any = self.host_pattern.pattern in (".*$", ".*")

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict[str, Any]]:
        if self._any or self.host_pattern.match(request.host_name):
            return {}
        return None


class DefaultHostMatches(Matcher):
    """Matches when the application's ``default_host`` matches a host pattern.

    Requests that carry an ``X-Real-Ip`` header (that is, came through a proxy)
    never match.
    """

    def __init__(self, application: Any, host_pattern: re.Pattern[str]) -> None:
        self.application = application
        self.host_pattern = host_pattern

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict[str, Any]]:
        if "X-Real-Ip" not in request.headers:
            if self.host_pattern.match(self.application.default_host):
                return {}
        return None


def _unquote_or_none(value: Optional[str]) -> Optional[bytes]:
    # An optional group that did not take part in the match stays None.
    if value is None:
        return value
    return url_unescape(value, encoding=None, plus=False)


_REGEX_SPECIAL = frozenset("\\.^$*+?{}[]|()")


class PathMatches(Matcher):
    """Matches requests whose path matches a regex.

    The regex is anchored at its end (``$`` is added if missing). Groups
    become the handler's arguments: positional groups ``path_args``, named
    groups ``path_kwargs`` (a pattern may not mix the two). A pattern without
    regex syntax is a literal path, matched by string comparison.

    Args:
        path_pattern: a regex (string or compiled).

    Raises:
        ValueError: if the pattern mixes named and positional groups.
    """

    def __init__(self, path_pattern: Union[str, re.Pattern[str]]) -> None:
        self.regex = _anchored(path_pattern)
        if len(self.regex.groupindex) not in (0, self.regex.groups):
            raise ValueError(
                "groups in url regexes must either be all named or all positional: "
                f"{self.regex.pattern!r}"
            )
        self._path, self._group_count = self._find_groups()
        self._template = self._reverse_template()
        body = self.regex.pattern[:-1] if self.regex.pattern.endswith("$") else None
        self._literal: Optional[str] = None
        if body is not None and not (_REGEX_SPECIAL & set(body)) and not self.regex.flags & ~re.U:
            self._literal = body

    def match(self, request: httputil.HTTPServerRequest) -> Optional[dict[str, Any]]:
        if self._literal is not None:
            return {} if request.path == self._literal else None
        match = self.regex.match(request.path)
        if match is None:
            return None
        if not self.regex.groups:
            return {}
        path_args: list[Optional[bytes]] = []
        path_kwargs: dict[str, Optional[bytes]] = {}
        if self.regex.groupindex:
            path_kwargs = {str(k): _unquote_or_none(v) for k, v in match.groupdict().items()}
        else:
            path_args = [_unquote_or_none(s) for s in match.groups()]
        return {"path_args": path_args, "path_kwargs": path_kwargs}

    def reverse(self, *args: Any) -> Optional[str]:
        r"""Fills the pattern's groups with ``args`` (URL-escaped).

        Regex syntax outside the groups is kept as it is written, as Tornado
        keeps it: ``r"/posts/(\d+)/?"`` gives ``/posts/5/?``, a URL the
        pattern matches (its empty query aside).

        Raises:
            ValueError: if the pattern has an escape standing for a class
                (``\d``) or a parenthesis that is not a group's outside its
                groups, or if the number of ``args`` is not the number of
                groups.
        """
        if self._template is None:
            raise ValueError(f"Cannot reverse url regex {self.regex.pattern}")
        if len(args) != self.regex.groups:
            raise ValueError(
                f"{self.regex.pattern} takes {self.regex.groups} arguments, got {len(args)}"
            )
        converted = []
        for arg in args:
            if not isinstance(arg, (str, bytes)):
                arg = str(arg)
            converted.append(url_escape(utf8(arg), plus=False))
        return self._template % tuple(converted)

    def _find_groups(self) -> tuple[Optional[str], Optional[int]]:
        # What tracers (OpenTelemetry's span names) and apispec's Tornado
        # plugin read as the route's template: the pattern with each group
        # replaced by "%s" and escapes undone, whatever regex syntax is left
        # outside the groups ("/files/*" stays "/files/*"). Only a pattern
        # whose "(" count is not its group count, or that holds an escape
        # standing for a class (\d), has none.
        pieces = self._pieces()
        if pieces is None:
            return None, None
        return "".join(("%s" if group else "") + text for group, text in pieces), self.regex.groups

    def _reverse_template(self) -> Optional[str]:
        # The same template, with "%" in the literal text escaped for the
        # %-formatting (Tornado's reverse fails on "/100%/(x)").
        pieces = self._pieces()
        if pieces is None or sum(group for group, _ in pieces) != self.regex.groups:
            return None  # nested groups: no place for each argument
        return "".join(("%s" if group else "") + text.replace("%", "%%") for group, text in pieces)

    def _pieces(self) -> Optional[list[tuple[bool, str]]]:
        # The pattern cut at each "(": whether a group's place comes first,
        # and the literal text after it. Tornado's quirks are kept (text
        # before a ")" in a fragment is dropped; a fragment without one
        # gets no place), as plugins were written against them.
        pattern = _unanchored(self.regex.pattern)
        if self.regex.groups != pattern.count("("):
            return None
        pieces = []
        for fragment in pattern.split("("):
            close = fragment.find(")")
            try:
                pieces.append((close >= 0, re_unescape(fragment[close + 1 :])))
            except ValueError:
                return None  # an escape such as \d stands for a class
        return pieces


def _unanchored(pattern: str) -> str:
    if pattern.startswith("^"):
        pattern = pattern[1:]
    if pattern.endswith("$"):
        pattern = pattern[:-1]
    return pattern


class Rule:
    """A routing rule: a matcher, a target, and what to pass the target.

    Args:
        matcher: the `Matcher` deciding whether the rule applies.
        target: a `Router`, an `.HTTPServerConnectionDelegate`, a callable
            taking the request, a `.RequestHandler` class (in an
            `.Application`), a list of rules (a nested router), or the dotted
            name of one of these.
        target_kwargs: keyword arguments for the target (for a handler, the
            arguments of its ``initialize``).
        name: a name for ``reverse_url``.
    """

    def __init__(
        self,
        matcher: Matcher,
        target: Any,
        target_kwargs: Optional[dict[str, Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        if isinstance(target, str):
            target = import_object(target)
        self.matcher = matcher
        self.target = target
        self.target_kwargs = target_kwargs if target_kwargs else {}
        self.name = name

    def reverse(self, *args: Any) -> Optional[str]:
        """The URL of this rule with ``args`` filled in (see `~squall.routing.Matcher.reverse`)."""
        return self.matcher.reverse(*args)

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.matcher!r}, {self.target}, "
            f"kwargs={self.target_kwargs!r}, name={self.name!r})"
        )


_RuleLike = Union[Rule, Sequence[Any]]


class _RuleList(list[Rule]):
    # The rules of a RuleRouter; any change marks the router's literal-path
    # index stale (Application inserts rules into it directly).
    __slots__ = ("stale",)

    def __init__(self, rules: Iterable[Rule] = ()) -> None:
        super().__init__(rules)
        self.stale = True

    def _touch(self) -> None:
        self.stale = True

    def append(self, rule: Rule) -> None:
        self.stale = True
        super().append(rule)

    def insert(self, index: SupportsIndex, rule: Rule) -> None:
        self.stale = True
        super().insert(index, rule)

    def extend(self, rules: Iterable[Rule]) -> None:
        self.stale = True
        super().extend(rules)

    def __setitem__(self, index: Any, value: Any) -> None:
        self.stale = True
        super().__setitem__(index, value)

    def __delitem__(self, index: Any) -> None:
        self.stale = True
        super().__delitem__(index)

    def __iadd__(self, rules: Iterable[Rule]) -> _RuleList:  # type: ignore[override, misc]
        self.stale = True
        super().__iadd__(rules)
        return self

    def pop(self, index: SupportsIndex = -1) -> Rule:
        self.stale = True
        return super().pop(index)

    def remove(self, rule: Rule) -> None:
        self.stale = True
        super().remove(rule)

    def clear(self) -> None:
        self.stale = True
        super().clear()

    def sort(self, *args: Any, **kwargs: Any) -> None:
        self.stale = True
        super().sort(*args, **kwargs)

    def reverse(self) -> None:
        self.stale = True
        super().reverse()


class RuleRouter(Router):
    """A router that tries a list of `Rule` objects in order.

    Args:
        rules: `Rule` objects, or tuples ``(matcher_or_path, target[,
            target_kwargs[, name]])``; a string in first place is a path
            pattern (`~squall.routing.PathMatches`).
    """

    def __init__(self, rules: Optional[Sequence[_RuleLike]] = None) -> None:
        self._rules = _RuleList()
        self._literals: dict[str, int] = {}
        self._others: list[tuple[int, Rule]] = []
        if rules:
            self.add_rules(rules)

    @property
    def rules(self) -> list[Rule]:
        """The rules, in the order they are tried (may be changed in place)."""
        return self._rules

    @rules.setter
    def rules(self, rules: Iterable[Rule]) -> None:
        self._rules = _RuleList(rules)

    def add_rules(self, rules: Sequence[_RuleLike]) -> None:
        """Appends rules (see the class description for the accepted forms).

        Raises:
            ValueError: for a tuple that does not have 2 to 4 elements.
            TypeError: for a rule that is neither a `Rule` nor a tuple.
        """
        for rule in rules:
            if isinstance(rule, (tuple, list)):
                if len(rule) not in (2, 3, 4):
                    raise ValueError(
                        f"a rule tuple has 2 to 4 elements (matcher, target, kwargs, name), got {rule!r}"
                    )
                if isinstance(rule[0], str):
                    rule = Rule(PathMatches(rule[0]), *rule[1:])
                else:
                    rule = Rule(*rule)
            elif not isinstance(rule, Rule):
                raise TypeError(
                    f"a rule is a Rule or a (matcher, target[, kwargs[, name]]) tuple, not {rule!r}"
                )
            self._rules.append(self.process_rule(rule))

    def process_rule(self, rule: Rule) -> Rule:
        """Hook to adjust or replace each rule as it is added."""
        return rule

    def _reindex(self) -> None:
        literals: dict[str, int] = {}
        others: list[tuple[int, Rule]] = []
        for index, rule in enumerate(self._rules):
            matcher = rule.matcher
            if type(matcher) is PathMatches and matcher._literal is not None:
                literals.setdefault(matcher._literal, index)
            else:
                others.append((index, rule))
        self._literals = literals
        self._others = others
        self._rules.stale = False

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        if self._rules.stale:
            self._reindex()
        hit = self._literals.get(request.path)
        if hit is None:
            for _, rule in self._others:
                delegate = self._try(rule, request)
                if delegate is not None:
                    return delegate
            return None
        for index, rule in self._others:
            if index > hit:
                break
            delegate = self._try(rule, request)
            if delegate is not None:
                return delegate
        rule = self._rules[hit]
        params: dict[str, Any] = {"target_kwargs": rule.target_kwargs} if rule.target_kwargs else {}
        delegate = self.get_target_delegate(rule.target, request, **params)
        if delegate is not None:
            return delegate
        # The literal rule's target declined (a nested router with no
        # match): carry on in order after it.
        for rule in self._rules[hit + 1 :]:
            delegate = self._try(rule, request)
            if delegate is not None:
                return delegate
        return None

    def _try(
        self, rule: Rule, request: httputil.HTTPServerRequest
    ) -> Optional[httputil.HTTPMessageDelegate]:
        params = rule.matcher.match(request)
        if params is None:
            return None
        if rule.target_kwargs:
            params["target_kwargs"] = rule.target_kwargs
        return self.get_target_delegate(rule.target, request, **params)

    def get_target_delegate(
        self, target: Any, request: httputil.HTTPServerRequest, **target_params: Any
    ) -> Optional[httputil.HTTPMessageDelegate]:
        """Returns the delegate of a matched rule's target, or ``None``.

        Args:
            target: the rule's target.
            request: the request.
            target_params: the matcher's parameters and ``target_kwargs``.
        """
        if isinstance(target, Router):
            return target.find_handler(request, **target_params)
        if isinstance(target, httputil.HTTPServerConnectionDelegate):
            assert request.connection is not None
            return target.start_request(request.server_connection, request.connection)
        if callable(target):
            assert request.connection is not None
            return _CallableAdapter(partial(target, **target_params), request.connection)
        return None


class ReversibleRuleRouter(ReversibleRouter, RuleRouter):
    """A rule router whose rules may be named and reversed with ``reverse_url``."""

    def __init__(self, rules: Optional[Sequence[_RuleLike]] = None) -> None:
        self.named_rules: dict[str, Rule] = {}
        super().__init__(rules)

    def process_rule(self, rule: Rule) -> Rule:
        rule = super().process_rule(rule)
        if rule.name:
            if rule.name in self.named_rules:
                app_log.warning("Multiple handlers named %s; replacing previous value", rule.name)
            self.named_rules[rule.name] = rule
        return rule

    def reverse_url(self, name: str, *args: Any) -> Optional[str]:
        if name in self.named_rules:
            return self.named_rules[name].matcher.reverse(*args)
        for rule in self.rules:
            if isinstance(rule.target, ReversibleRouter):
                reversed_url = rule.target.reverse_url(name, *args)
                if reversed_url is not None:
                    return reversed_url
        return None


class URLSpec(Rule):
    """A rule matching the request path against a regex, for `.Application`.

    Args:
        pattern: the path regex (see `~squall.routing.PathMatches`).
        handler: the `.RequestHandler` class (or its dotted name).
        kwargs: arguments for the handler's ``initialize``.
        name: a name for `.Application.reverse_url`.
    """

    def __init__(
        self,
        pattern: Union[str, re.Pattern[str]],
        handler: Any,
        kwargs: Optional[dict[str, Any]] = None,
        name: Optional[str] = None,
    ) -> None:
        matcher = PathMatches(pattern)
        super().__init__(matcher, handler, kwargs, name)
        self.regex = matcher.regex
        self.handler_class = self.target
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.regex.pattern!r}, {self.handler_class}, "
            f"kwargs={self.kwargs!r}, name={self.name!r})"
        )


url = URLSpec
