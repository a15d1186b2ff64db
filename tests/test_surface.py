"""The surface differential against the checked-in Tornado 6.6.1 snapshot.

compat/surface/probe.py describes Squall as a Tornado program sees it (names
and signatures, objects' attributes after each step of their life, warnings,
where exceptions surface) and compat/surface/run.py compares that with
Tornado's description, recorded in compat/surface/tornado-6.6.1.json by
`make surface`. Every difference must be listed, with its reason, in
compat/surface/known.json (tests/COMPAT.md summarises them); a listed one
that no longer differs must be removed. So the list can only shrink unless a
new difference is deliberately written down.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import unittest
from pathlib import Path
from types import ModuleType

SURFACE = Path(__file__).resolve().parent.parent / "compat" / "surface"


def _runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location("surface_run", SURFACE / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _gone_from_this_stdlib(key: str) -> bool:
    """A TestCase method Tornado's classes inherited from unittest on the
    Python the snapshot was recorded on (3.11) that this Python's unittest
    no longer has (3.12 removed the old aliases, ``assertEquals`` and the
    like): not a difference between Tornado and Squall."""
    owner, _, name = key.rpartition(".")
    return owner.endswith("TestCase") and not hasattr(unittest.TestCase, name)


def _renamed_in_this_stdlib(diff: str) -> bool:
    """``re.error`` is named ``PatternError`` from 3.13 on: the same class,
    recorded in the snapshot under its 3.11 name."""
    name = re.error.__name__
    return name != "error" and diff == f"tornado: call: error / squall: call: {name}"


def test_every_difference_from_tornado_is_listed_with_a_reason() -> None:
    run = _runner()
    tornado = json.loads(run.SNAPSHOT.read_text())
    # A subprocess: the probe installs squall.compat and drives servers.
    squall = run.probe_with(sys.executable, "squall", run.SNAPSHOT)
    diffs = {
        key: diff
        for key, diff in run.differences(tornado, squall).items()
        if not _gone_from_this_stdlib(key) and not _renamed_in_this_stdlib(diff)
    }
    known = run.load_known()
    new = {key: diffs[key] for key in sorted(diffs) if key not in known}
    gone = sorted(key for key in known if key not in diffs)
    assert new == {}, "differences from Tornado not listed in compat/surface/known.json"
    assert gone == [], "listed in compat/surface/known.json but no longer differing"
    assert all(reason.strip() for reason in known.values())


def test_signature_compatibility_rule() -> None:
    compatible = _runner().compatible
    assert compatible("method(a, b=1)", "method(a, b=1, c=None)")
    assert compatible("function?", "function(key, data)")
    assert not compatible("method(a, b=1)", "method(a, b=1, c)")
    assert not compatible("method(a, b=1)", "method(a, b=2)")
    assert not compatible("method(a, b=1)", "method(b=1, a)")
    assert not compatible("data", "method()")


def test_the_snapshot_has_every_part() -> None:
    run = _runner()
    tornado = json.loads(run.SNAPSHOT.read_text())
    for part in run.PARTS:
        assert tornado[part], f"the snapshot's {part} part is empty"
    # What sentry-sdk checks before wrapping it, and a coroutine whose first
    # step raises on Tornado (a resolver that fails at once).
    assert tornado["coroutines"]["web.RequestHandler._execute"] == "coroutine function"
    assert tornado["first_step"]["tcpclient.connect.resolver_fails"] == "first step: gaierror"
    assert tornado["qualnames"]["web.RequestHandler"] == "tornado.web:RequestHandler"


def test_a_method_beyond_tornados_is_a_difference() -> None:
    # Jupyter Server audits the methods named after SUPPORTED_METHODS: a
    # method Squall adds to one of Tornado's classes is reported.
    run = _runner()
    empty = {part: {} for part in run.PARTS}
    tornado = {**empty, "names": {"web.H": "class", "web.H.get": "method()"}}
    squall = {
        **empty,
        "names": {"web.H": "class", "web.H.get": "method()", "web.H.connect": "method()"},
    }
    assert run.differences(tornado, squall) == {"extras:web.H.connect": "squall only: method()"}
    # Data members (slots, properties) are instance attributes on Tornado too.
    squall["names"]["web.H.connect"] = "data"
    assert run.differences(tornado, squall) == {}


def test_a_private_method_only_tornado_has_is_not_a_coroutine_difference() -> None:
    run = _runner()
    empty = {part: {} for part in run.PARTS}
    tornado = {
        **empty,
        "coroutines": {"web.H._run": "coroutine function", "web.H._execute": "coroutine function"},
    }
    squall = {**empty, "coroutines": {"web.H._execute": "function"}}
    assert run.differences(tornado, squall) == {
        "coroutines:web.H._execute": "tornado: coroutine function / squall: function"
    }


def _probe() -> ModuleType:
    spec = importlib.util.spec_from_file_location("surface_probe", SURFACE / "probe.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_snapshot_has_imported_names_and_descriptor_kinds() -> None:
    names = json.loads(_runner().SNAPSHOT.read_text())["names"]
    # What a Tornado module holds because it imported it, by identity.
    assert names["httputil.urlencode"] == "imported function urllib.parse:urlencode"
    assert names["web.urlencode"] == "imported function urllib.parse:urlencode"
    assert names["escape.unicode_type"] == "imported class builtins:str"
    assert names["httputil.datetime"] == "imported module datetime"
    assert names["web.Optional"] == "imported typing typing.Optional"
    # Plain attribute, read-only property or settable property.
    assert names["web.HTTPError.log_message"] == "property"
    assert names["websocket.WebSocketProtocol13.selected_subprotocol"] == "property(settable)"
    assert names["web.RequestHandler.SUPPORTED_METHODS"] == "data"


def test_the_snapshot_has_messages_and_log_sites() -> None:
    tornado = json.loads(_runner().SNAPSHOT.read_text())
    # ddtrace's test of run_on_executor asserts Tornado's words.
    assert (
        tornado["messages"]["concurrent.run_on_executor.function_and_keywords"]
        == "ValueError: cannot combine positional and keyword args"
    )
    # Instana counts a span per hop: each one is a call of the public fetch.
    assert tornado["call_shapes"]["web.redirected_twice.client"] == (
        "fetch(url) | fetch(HTTPRequest, raise_error=False) | fetch(HTTPRequest, raise_error=False)"
    )
    # A log format with %(filename)s shows web.py.
    uncaught = "tornado.application: Uncaught exception %s\n%r"
    assert tornado["log_sites"][uncaught] == "ERROR web.py web log_exception"


def test_descriptor_kinds() -> None:
    probe = _probe()

    class Shape:
        __slots__ = ("slot",)
        plain = 1

        @property
        def read_only(self) -> int:
            return 1

        @property
        def settable(self) -> int:
            return 1

        @settable.setter
        def settable(self, value: int) -> None:
            pass

    kinds = {name: probe.descriptor_kind(Shape, name) for name in ("slot", "plain")}
    kinds["read_only"] = probe.descriptor_kind(Shape, "read_only")
    kinds["settable"] = probe.descriptor_kind(Shape, "settable")
    assert kinds == {
        "slot": "data",
        "plain": "data",
        "read_only": "property",
        "settable": "property(settable)",
    }
    assert probe.class_members(Shape, "x")["read_only"] == "property"


def test_a_missing_imported_name_or_another_descriptor_kind_is_a_difference() -> None:
    run = _runner()
    empty = {part: {} for part in run.PARTS}
    tornado = {
        **empty,
        "names": {
            "httputil.urlencode": "imported function urllib.parse:urlencode",
            "web.E": "class",
            "web.E.log_message": "property",
        },
    }
    squall = {**empty, "names": {"web.E": "class", "web.E.log_message": "data"}}
    assert run.differences(tornado, squall) == {
        "names:httputil.urlencode": "tornado: imported function urllib.parse:urlencode"
        " / squall: (missing)",
        "names:web.E.log_message": "tornado: property / squall: data",
    }
    # A read-only property Squall adds where Tornado's instances have a
    # plain attribute refuses an assignment that works there.
    squall["names"]["web.E.log_message"] = "property"
    squall["names"]["web.E.code"] = "property"
    squall["names"]["web.E.ok"] = "property(settable)"
    assert run.differences(tornado, squall) == {
        "names:httputil.urlencode": "tornado: imported function urllib.parse:urlencode"
        " / squall: (missing)",
        "extras:web.E.code": "squall only: property",
    }
