"""A handler class's traits: each hook the fast paths skip is still called when
a class overrides it, a mixin brings it, or a wrapper is patched onto the class
or the base class after the class has served requests (as agents do)."""

from __future__ import annotations

import itertools
from typing import Any
from unittest import mock

import pytest
import wrapt

from squall._traits import traits_of
from squall.testing import AsyncHTTPTestCase, gen_test
from squall.web import Application, RequestHandler
from squall.web.handler import HandlerTraits
from squall.websocket import WebSocketHandler, websocket_connect
from squall.websocket._handler import WebSocketTraits

HTTP_HOOKS = [attribute for _, attribute in HandlerTraits.HOOKS]
WS_HOOKS = [attribute for _, attribute in WebSocketTraits.HOOKS if attribute not in HTTP_HOOKS]

_paths = itertools.count()
# What the wrappers saw called, in order (cleared by each check).
CALLS: list[str] = []


def recording(base: type, name: str) -> Any:
    """A stand-in for ``base.name`` that records its call and does what it did."""
    original = base.__dict__.get(name) or getattr(base, name)
    if isinstance(original, property):
        getter = original.fget
        assert getter is not None

        def read(self: Any) -> Any:
            CALLS.append(name)
            return getter(self)

        return property(read)

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        CALLS.append(name)
        return original(self, *args, **kwargs)

    return wrapper


class Plain(RequestHandler):
    # Reads an argument and answers 204: every RequestHandler trait is consulted.
    def get(self) -> None:
        self.get_argument("a")
        self.set_status(204)


class PlainSocket(WebSocketHandler):
    def on_message(self, message: Any) -> None:
        self.write_message(message)


def wrapped(base: type, name: str) -> Any:
    """``base.name`` inside a wrapt ``FunctionWrapper`` that records its
    call (as APM agents patch): the wrapper compares equal to the function."""
    original = base.__dict__.get(name) or getattr(base, name)

    def record(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        CALLS.append(name)
        return wrapped(*args, **kwargs)

    proxy = wrapt.FunctionWrapper(original, record)
    assert proxy == original
    return proxy


def subclass(base: type, name: str) -> type:
    # A subclass that overrides the hook (delegating to the base class's).
    return type(f"Over_{name}", (base,), {name: recording(base, name)})


def with_mixin(base: type, name: str) -> type:
    mixin = type(f"Mixin_{name}", (), {name: recording(base, name)})
    return type(f"Mixed_{name}", (mixin, base), {})


@pytest.mark.parametrize("name", HTTP_HOOKS)
def test_traits_name_the_replaced_hook(name: str) -> None:
    assert not any(getattr(traits_of(Plain), t) for t, _ in HandlerTraits.HOOKS)
    trait = dict((a, t) for t, a in HandlerTraits.HOOKS)[name]
    for made in (subclass(Plain, name), with_mixin(Plain, name)):
        traits = traits_of(made)
        replaced = [t for t, _ in HandlerTraits.HOOKS if getattr(traits, t)]
        assert replaced == [trait], (made, replaced)


def test_a_class_that_changes_no_hook_shares_its_base_class_traits() -> None:
    child = type("Child", (Plain,), {"get": Plain.get})
    assert traits_of(child) is traits_of(RequestHandler)
    assert type(traits_of(type("S", (PlainSocket,), {}))) is WebSocketTraits


# (wrapped: a wrapt wrapper, equal to the function it wraps: told apart by identity.)
@pytest.mark.parametrize("wrapper", [recording, wrapped])
@pytest.mark.parametrize("base", [Plain, RequestHandler])
def test_traits_follow_a_patch_and_its_undoing(base: type, wrapper: Any) -> None:
    made = type("Made", (Plain,), {})
    assert not traits_of(made).decode_argument
    with mock.patch.object(base, "decode_argument", wrapper(RequestHandler, "decode_argument")):
        assert traits_of(made).decode_argument
    assert not traits_of(made).decode_argument


class TraitsServed(AsyncHTTPTestCase):
    """Each hook is called, however it came, through a real server."""

    def get_app(self) -> Application:
        self.app = Application([])
        return self.app

    def serve(self, handler: type) -> str:
        path = f"/h{next(_paths)}"
        self.app.add_handlers(".*", [(path, handler)])
        return path

    def check_http(self, path: str, name: str, called: bool) -> None:
        CALLS.clear()
        response = self.fetch(path + "?a=x")
        assert response.code == 204, (name, response)
        assert (name in CALLS) is called, (name, CALLS)

    async def check_ws(self, path: str, name: str, called: bool) -> None:
        CALLS.clear()
        ws = await websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}{path}")
        try:
            await ws.write_message("ping")
            assert await ws.read_message() == "ping"
        finally:
            ws.close()
        assert (name in CALLS) is called, (name, CALLS)

    def test_overrides_and_mixins(self) -> None:
        for name in HTTP_HOOKS:
            for made in (subclass(Plain, name), with_mixin(Plain, name)):
                self.check_http(self.serve(made), name, True)

    def test_patches_after_serving(self) -> None:
        for name in HTTP_HOOKS:
            for target in ("class", "base"):
                made = type("Served", (Plain,), {})
                path = self.serve(made)
                self.check_http(path, name, False)
                patched = made if target == "class" else RequestHandler
                with mock.patch.object(patched, name, recording(RequestHandler, name)):
                    self.check_http(path, name, True)
                self.check_http(path, name, False)

    def test_wrapt_wrappers_before_and_after_serving(self) -> None:
        # A wrapt wrapper compares equal to the function it wraps: each is
        # still called, whether patched before the class's first request
        # or after it served, and not once removed again.
        for name in HTTP_HOOKS:
            for target in ("class", "base"):
                made = type("Wrapped", (Plain,), {})
                path = self.serve(made)
                patched = made if target == "class" else RequestHandler
                with mock.patch.object(patched, name, wrapped(RequestHandler, name)):
                    self.check_http(path, name, True)
                self.check_http(path, name, False)
                with mock.patch.object(patched, name, wrapped(RequestHandler, name)):
                    self.check_http(path, name, True)
                self.check_http(path, name, False)

    def test_log_request_asks_a_replaced_get_status_as_tornado_does(self) -> None:
        # Once per comparison that chooses the log level, once for the line.
        class Failing(Plain):
            def get(self) -> None:
                self.set_status(404)

        for made, calls in ((Plain, 2), (Failing, 3)):
            path = self.serve(type("Status", (made,), {}))
            CALLS.clear()
            with mock.patch.object(
                RequestHandler, "get_status", wrapped(RequestHandler, "get_status")
            ):
                self.fetch(path + "?a=x")
            assert CALLS.count("get_status") == calls, (made, CALLS)

    @gen_test
    async def test_websocket_wrapt_wrappers_after_serving(self) -> None:
        for name in WS_HOOKS:
            if isinstance(getattr(WebSocketHandler, name), property):
                continue  # (wrapt wraps functions)
            made = type("Socket", (PlainSocket,), {})
            path = self.serve(made)
            await self.check_ws(path, name, False)
            with mock.patch.object(made, name, wrapped(WebSocketHandler, name)):
                await self.check_ws(path, name, True)
            await self.check_ws(path, name, False)

    @gen_test
    async def test_websocket_overrides_and_mixins(self) -> None:
        for name in WS_HOOKS:
            for made in (subclass(PlainSocket, name), with_mixin(PlainSocket, name)):
                await self.check_ws(self.serve(made), name, True)

    @gen_test
    async def test_websocket_patches_after_serving(self) -> None:
        for name in WS_HOOKS:
            for target in ("class", "base"):
                made = type("Socket", (PlainSocket,), {})
                path = self.serve(made)
                await self.check_ws(path, name, False)
                patched = made if target == "class" else WebSocketHandler
                with mock.patch.object(patched, name, recording(WebSocketHandler, name)):
                    await self.check_ws(path, name, True)
                await self.check_ws(path, name, False)


def test_a_websocket_handler_after_a_plain_base_with_own_traits_has_websocket_traits() -> None:
    # (JupyterHandler, WebSocketHandler): the first base replaced a hook,
    # so it holds plain handler traits of its own, found first in the MRO.

    class Base(RequestHandler):
        def set_default_headers(self) -> None:
            self.set_header("X-Base", "1")

    class Both(Base, WebSocketHandler):
        pass

    assert isinstance(Both._hook_traits, WebSocketTraits)
    assert Both._hook_traits.set_default_headers
