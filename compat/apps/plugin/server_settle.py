"""Let instana's tests read their spans once the server has finished its requests.

Loaded by compat/apps/run.py with ``-p server_settle`` into instana's test
run, on both sides alike. Instana's Tornado server tests serve the app from a
thread and, as soon as their client has the response, count the spans
recorded. The server's span is ended in ``RequestHandler.on_finish``, which
runs on the server's thread after the response has been sent: whether the
count sees it is a race between two threads, lost now and then on Tornado and
on Squall alike (a span short, a different test each run).

This plugin removes the race without changing what is counted: it notes each
handler whose ``_execute`` has been called and drops it once its
``on_finish`` has returned (instana's wrappers run inside ours), and makes
the span recorder's ``queued_spans`` wait, for two seconds at most, until no
handler is in flight. A handler that never finishes still costs the test
its span after the wait, as it would without the plugin.
"""

from __future__ import annotations

import threading
from typing import Any

_WAIT = 2.0
_cond = threading.Condition()
_in_flight: set[int] = set()
_installed = False


def _wrap(cls: type, name: str, before: Any, after: Any) -> None:
    original = cls.__dict__[name]

    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        before(self)
        try:
            return original.__get__(self, type(self))(*args, **kwargs)
        finally:
            after(self)

    wrapper.__name__ = name
    wrapper.__qualname__ = f"{cls.__name__}.{name}"
    setattr(cls, name, wrapper)


def _started(handler: Any) -> None:
    with _cond:
        _in_flight.add(id(handler))


def _finished(handler: Any) -> None:
    with _cond:
        _in_flight.discard(id(handler))
        _cond.notify_all()


def _nothing(handler: Any) -> None:
    return None


def _settle(recorder: Any) -> None:
    with _cond:
        _cond.wait_for(lambda: not _in_flight, timeout=_WAIT)


def _forget(recorder: Any) -> None:
    # A new test: what an earlier one left in flight is not waited for.
    with _cond:
        _in_flight.clear()


def _install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    from instana.recorder import StanRecorder
    from tornado.web import RequestHandler

    # Outermost, so that instana's own wrappers run inside ours.
    _wrap(RequestHandler, "_execute", _started, _nothing)
    _wrap(RequestHandler, "on_finish", _nothing, _finished)
    _wrap(StanRecorder, "queued_spans", _settle, _nothing)
    _wrap(StanRecorder, "clear_spans", _forget, _nothing)


def pytest_collection_finish(session: Any) -> None:
    # The test modules have imported instana (which instruments tornado.web
    # when it is imported) by the end of the collection.
    _install()
