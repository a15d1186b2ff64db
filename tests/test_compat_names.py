"""Under the ``tornado`` alias, what programs and tools read back says Tornado:
module ``__name__``, class and function ``__module__``, post-import hooks keyed
on ``tornado.*`` names, and ``importlib.metadata``'s tornado distribution."""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import pickle
import subprocess
import sys
import typing
from collections.abc import Iterator

import pytest

import squall.compat


@pytest.fixture
def compat() -> Iterator[None]:
    squall.compat.install()
    try:
        yield
    finally:
        squall.compat.uninstall()


def test_module_and_class_names_are_tornado_s(compat: None) -> None:
    import tornado.web

    assert tornado.web.__name__ == "tornado.web"
    # OpenTelemetry names a 404's handler f"{cls.__module__}.{cls.__qualname__}".
    cls = tornado.web.ErrorHandler
    assert f"{cls.__module__}.{cls.__qualname__}" == "tornado.web.ErrorHandler"
    assert tornado.web.RequestHandler.__module__ == "tornado.web"
    assert tornado.web.HTTPError.__module__ == "tornado.web"
    assert tornado.web.authenticated.__module__ == "tornado.web"
    # A submodule Tornado does not have answers to the tornado spelling too,
    # and is imported under it, so that every __module__ names a module.
    method = tornado.web.RequestHandler._execute
    assert method.__module__ == "tornado.web.handler"
    assert sys.modules["tornado.web.handler"] is sys.modules["squall.web.handler"]
    assert sys.modules["tornado.web.handler"].__name__ == "tornado.web.handler"


def test_loaded_modules_are_presented_with_a_tornado_import() -> None:
    # In a new interpreter, so that which Squall modules are loaded is known.
    code = """
import sys
import squall.compat
squall.compat.install()
import tornado.web
# Loaded by squall.web, as tornado.web imports tornado.iostream on Tornado:
# presented (and imported under Tornado's name) with it.
assert sys.modules["tornado.iostream"] is sys.modules["squall.iostream"]
import squall.iostream
assert squall.iostream.StreamClosedError.__module__ == "tornado.iostream"
# Not loaded then: imported under its tornado name as soon as it loads, as
# every module is on Tornado (and a __module__ still names an imported
# module).
assert "squall.wsgi" not in sys.modules
import squall.wsgi
assert squall.wsgi.WSGIContainer.__module__ == "tornado.wsgi"
assert sys.modules["tornado.wsgi"] is squall.wsgi
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_modules_squall_loads_later_are_tornado_s_too() -> None:
    # AsyncHTTPClient() loads the simple client on first use: on Tornado its
    # class says tornado.simple_httpclient, and a hook waiting for that name
    # fires. Before the program's first tornado import nothing is renamed.
    code = """
import asyncio, importlib, sys
import squall.compat
squall.compat.install()
import squall.escape
assert squall.escape.__name__ == "squall.escape"
import tornado.httpclient
assert "squall.simple_httpclient" not in sys.modules
async def main():
    client = tornado.httpclient.AsyncHTTPClient()
    assert type(client).__module__ == "tornado.simple_httpclient", type(client).__module__
    assert sys.modules["tornado.simple_httpclient"] is sys.modules["squall.simple_httpclient"]
    importlib.import_module("tornado.websocket")
    # Its submodules were loaded while it was: presented with it, none left.
    left = [n for n, m in sys.modules.items()
            if n.startswith("squall.websocket") and not m.__name__.startswith("tornado.")]
    assert left == [], left
asyncio.run(main())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_tornado_import_brings_what_it_brings_on_tornado() -> None:
    # New Relic's agent instruments tornado.httpserver when that name is
    # imported; on Tornado, importing tornado.testing imports it, while
    # squall.testing imports squall.httpserver only when a test starts a
    # server. Under the alias, tornado.testing brings it as on Tornado.
    code = """
import sys
import squall.compat
squall.compat.install()
seen = []
class Watcher:
    def find_spec(self, name, path=None, target=None):
        if name.startswith("tornado."):
            seen.append(name)
        return None
sys.meta_path.insert(0, Watcher())
import tornado.testing
assert "tornado.httpserver" in seen, seen
assert "tornado.web" in seen and "tornado.httpclient" in seen, seen
assert sys.modules["tornado.httpserver"] is sys.modules["squall.httpserver"]
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_tornado_submodule_is_presented_on_its_own_import(compat: None) -> None:
    import tornado.platform
    import tornado.platform.asyncio

    assert tornado.platform.__name__ == "tornado.platform"
    assert tornado.platform.asyncio.__name__ == "tornado.platform.asyncio"
    assert tornado.platform.asyncio.AsyncIOLoop.__module__ == "tornado.platform.asyncio"


def test_introspection_keeps_working(compat: None) -> None:
    import tornado.escape
    import tornado.web

    assert inspect.getmodule(tornado.web.RequestHandler) is tornado.web
    assert (
        inspect.getmodule(tornado.web.RequestHandler._execute) is sys.modules["squall.web.handler"]
    )
    assert pickle.loads(pickle.dumps(tornado.web.RequestHandler)) is tornado.web.RequestHandler
    assert pickle.loads(pickle.dumps(tornado.escape.url_escape)) is tornado.escape.url_escape
    hints = typing.get_type_hints(tornado.escape.url_escape)
    assert hints["return"] is str
    # Squall's own names keep working beside them.
    import squall.web
    from squall.web.handler import RequestHandler

    assert RequestHandler is tornado.web.RequestHandler is squall.web.RequestHandler
    assert importlib.import_module("squall.web.handler").__name__ == "tornado.web.handler"


def test_uninstall_puts_squall_names_back() -> None:
    import squall.web

    # Without the alias, nothing is renamed.
    assert squall.web.__name__ == "squall.web"
    assert squall.web.ErrorHandler.__module__ == "squall.web"
    squall.compat.install()
    try:
        import tornado.web  # noqa: F401

        assert squall.web.ErrorHandler.__module__ == "tornado.web"
    finally:
        squall.compat.uninstall()
    assert squall.web.__name__ == "squall.web"
    assert squall.web.ErrorHandler.__module__ == "squall.web"
    assert squall.web.RequestHandler._execute.__module__ == "squall.web.handler"
    assert sys.modules["squall.web.handler"].__name__ == "squall.web.handler"
    assert not any(n == "tornado" or n.startswith("tornado.") for n in sys.modules)


def test_wrapt_post_import_hooks_keyed_on_tornado_names_fire() -> None:
    wrapt = pytest.importorskip("wrapt")
    seen: list[str] = []
    # Registered before the alias is installed (an APM agent's start-up),
    # and after (an instrumentor started by the application).
    wrapt.register_post_import_hook(lambda m: seen.append(m.__name__), "tornado.web")
    squall.compat.install()
    try:
        wrapt.register_post_import_hook(lambda m: seen.append(m.__name__), "tornado.ioloop")
        import tornado.ioloop  # noqa: F401
        import tornado.web

        assert sorted(seen) == ["tornado.ioloop", "tornado.web"]

        calls: list[str] = []

        async def wrapper(wrapped, instance, args, kwargs):  # type: ignore[no-untyped-def]
            calls.append(type(instance).__name__)
            return await wrapped(*args, **kwargs)

        original = tornado.web.RequestHandler._execute
        wrapt.wrap_function_wrapper("tornado.web", "RequestHandler._execute", wrapper)
        try:
            assert tornado.web.RequestHandler._execute is not original
        finally:
            tornado.web.RequestHandler._execute = original
    finally:
        squall.compat.uninstall()


def test_importlib_metadata_sees_tornado_while_the_alias_is_installed() -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("tornado")
    squall.compat.install()
    try:
        assert importlib.metadata.version("tornado") == squall.compat.TORNADO_VERSION
        dist = importlib.metadata.distribution("Tornado")
        assert "provided by Squall" in dist.metadata["Summary"]
        assert dist.requires == ["squall"]
        # Listings are left to what is installed: no tornado appears twice.
        assert all(d.metadata["Name"] != "tornado" for d in importlib.metadata.distributions())
    finally:
        squall.compat.uninstall()
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.version("tornado")


def test_opentelemetry_instrumentor_dependency_check_passes(compat: None) -> None:
    pytest.importorskip("opentelemetry.instrumentation.tornado")
    from opentelemetry.instrumentation.tornado import TornadoInstrumentor

    assert TornadoInstrumentor()._check_dependency_conflicts() is None


def test_names_tornado_modules_imported_from_the_standard_library(compat: None) -> None:
    # JupyterHub's user.py: ``from tornado.httputil import urlencode``.
    import datetime
    import urllib.parse

    import tornado
    import tornado.escape
    import tornado.httputil
    import tornado.log
    import tornado.routing
    import tornado.template
    import tornado.web
    from tornado.httputil import parse_qsl, urlencode, urlparse, urlunparse

    assert urlencode is urllib.parse.urlencode
    assert (urlparse, urlunparse, parse_qsl) == (
        urllib.parse.urlparse,
        urllib.parse.urlunparse,
        urllib.parse.parse_qsl,
    )
    assert tornado.web.urlencode is urllib.parse.urlencode
    assert tornado.escape.unicode_type is str
    assert tornado.log.basestring_type is str and tornado.log.unicode_type is str
    assert tornado.routing.basestring_type is str and tornado.routing.unicode_type is str
    assert tornado.template.unicode_type is str
    # Modules and typing constructs too, and what the package itself imported.
    assert tornado.httputil.datetime is datetime
    assert tornado.web.Optional is typing.Optional
    assert tornado.typing is typing
    assert "urlencode" in dir(tornado.httputil) and "typing" in dir(tornado)
    with pytest.raises(AttributeError, match="no_such_name"):
        tornado.httputil.no_such_name  # noqa: B018


def test_every_imported_name_of_the_snapshot_is_offered(compat: None) -> None:
    # The surface differential compares them by identity; this says the
    # same, directly, for each one (the generated homes cover them all).
    import json
    from pathlib import Path

    snapshot = Path(__file__).resolve().parent.parent / "compat/surface/tornado-6.6.1.json"
    names = json.loads(snapshot.read_text())["names"]
    imported = {key: desc for key, desc in names.items() if desc.startswith("imported ")}
    assert len(imported) > 400
    missing = []
    for key in sorted(imported):
        module, _, name = key.rpartition(".")
        if key == "websocket.de_dupe_gen_log":
            continue  # listed in compat/surface/known.json
        mod = importlib.import_module(f"tornado.{module}" if module else "tornado")
        if not hasattr(mod, name):
            missing.append(key)
    assert missing == []


def test_the_first_ioloop_is_made_from_tornado_platform_asyncio() -> None:
    # On Tornado, making the first IOLoop is what imports
    # tornado.platform.asyncio, so the loop's class says that module (in a
    # repr, in the log line of a failed callback) and a hook waiting for it
    # fires. A program that never imports it itself must see the same.
    code = """
import asyncio, sys
import squall.compat
squall.compat.install()
import tornado.ioloop
assert "tornado.platform.asyncio" not in sys.modules
async def main():
    loop = tornado.ioloop.IOLoop.current()
    assert type(loop).__module__ == "tornado.platform.asyncio", type(loop).__module__
    assert repr(loop).startswith("<tornado.platform.asyncio.AsyncIOMainLoop object"), repr(loop)
asyncio.run(main())
assert "tornado.platform.asyncio" in sys.modules
new = tornado.ioloop.IOLoop(make_current=False)
assert type(new).__module__ == "tornado.platform.asyncio"
new.close()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_without_the_alias_ioloops_keep_squall_names() -> None:
    code = """
import asyncio, sys
import squall.ioloop
async def main():
    loop = squall.ioloop.IOLoop.current()
    assert type(loop).__module__ == "squall.platform.asyncio", type(loop).__module__
asyncio.run(main())
assert not any(name == "tornado" or name.startswith("tornado.") for name in sys.modules)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
