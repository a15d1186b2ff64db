"""A request's Task is its own, over a real keep-alive
connection, for a `RequestHandler` and for an ASGI application.

Before: on Python 3.11 a handler's first step ran in a Task recycled from
the previous request that had kept none, so a name one request gave its Task
was read by the next one on the connection; and a Task whose request
suspended was initialised again, which dropped a name set before the first
``await``. A fresh Task per request (as Tornado makes) keeps each its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import pytest

from squall.asgi import ASGIServerDelegate
from squall.web import Application, RequestHandler

from ._serve import LOOPS, connect, read_response, run, serving

_PHASE: contextvars.ContextVar[str] = contextvars.ContextVar("_PHASE", default="unset")


def _rename(new_name: str) -> str:
    """Names the current task ``new_name``; returns the name it had."""
    task = asyncio.current_task()
    assert task is not None
    old = task.get_name()
    task.set_name(new_name)
    return old


def _name() -> str:
    task = asyncio.current_task()
    assert task is not None
    return task.get_name()


class Named(RequestHandler):
    async def get(self) -> None:
        before = _rename(f"request {self.get_argument('n')}")
        if self.get_argument("wait", None):
            await asyncio.sleep(0)
        self.write({"before": before, "after": _name()})


class Phases(RequestHandler):
    """Records the current Task and a context variable in prepare, the
    method and on_finish, with an await in the first two."""

    seen: list[tuple[str, Any, str]] = []

    async def prepare(self) -> None:
        _PHASE.set(f"prepare {self.get_argument('n')}")
        await asyncio.sleep(0)
        self.seen.append(("prepare", asyncio.current_task(), _PHASE.get()))

    async def get(self) -> None:
        self.seen.append(("get", asyncio.current_task(), _PHASE.get()))
        await asyncio.sleep(0)
        self.write("ok")

    def on_finish(self) -> None:
        self.seen.append(("on_finish", asyncio.current_task(), _PHASE.get()))


async def _names_over_one_connection(port: int, queries: list[str]) -> list[dict[str, str]]:
    reader, writer = await connect(port)
    answers = []
    try:
        for query in queries:
            writer.write(f"GET /named?{query} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
            status, headers, body = await read_response(reader)
            assert status == 200 and headers.get("connection") != "close"
            answers.append(json.loads(body))
    finally:
        writer.close()
    return answers


def _application() -> Application:
    return Application([("/named", Named), ("/phases", Phases)])


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_name_set_by_one_request_is_not_seen_by_the_next(loop: str) -> None:
    async def main() -> list[dict[str, str]]:
        async with serving(_application()) as (_, port):
            return await _names_over_one_connection(port, ["n=1", "n=2", "n=3"])

    answers = run(main, loop)
    befores = [answer["before"] for answer in answers]
    # Before: "request 1" and "request 2" came back as the next requests' names.
    assert not any(name.startswith("request ") for name in befores), befores
    assert len(set(befores)) == 3


@pytest.mark.parametrize("loop", LOOPS)
def test_a_task_name_set_before_the_first_await_persists_after_it(loop: str) -> None:
    async def main() -> list[dict[str, str]]:
        async with serving(_application()) as (_, port):
            return await _names_over_one_connection(port, ["n=1&wait=1", "n=2&wait=1"])

    answers = run(main, loop)
    # Before: the Task was initialised again at the await, with a new name.
    assert [answer["after"] for answer in answers] == ["request 1", "request 2"]


@pytest.mark.parametrize("loop", LOOPS)
def test_prepare_the_method_and_on_finish_share_one_task_and_context(loop: str) -> None:
    Phases.seen = []

    async def main() -> None:
        async with serving(_application()) as (_, port):
            reader, writer = await connect(port)
            try:
                for n in (1, 2):
                    writer.write(f"GET /phases?n={n} HTTP/1.1\r\nHost: a\r\n\r\n".encode())
                    status, _, body = await read_response(reader)
                    assert (status, body) == (200, b"ok")
            finally:
                writer.close()

    run(main, loop)
    assert [phase for phase, _, _ in Phases.seen] == ["prepare", "get", "on_finish"] * 2
    first, second = Phases.seen[:3], Phases.seen[3:]
    for seen, n in ((first, 1), (second, 2)):
        tasks = {id(task) for _, task, _ in seen}
        assert len(tasks) == 1 and seen[0][1] is not None
        assert [value for _, _, value in seen] == [f"prepare {n}"] * 3
    # Each request's Task is its own.
    assert first[0][1] is not second[0][1]


async def _named_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = dict(pair.split("=") for pair in scope["query_string"].decode().split("&"))
    before = _rename(f"request {query['n']}")
    if "wait" in query:
        await asyncio.sleep(0)
    body = json.dumps({"before": before, "after": _name()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("loop", LOOPS)
def test_an_asgi_apps_task_name_is_its_requests_alone(loop: str) -> None:
    async def main() -> list[dict[str, str]]:
        async with serving(ASGIServerDelegate(_named_app)) as (_, port):
            return await _names_over_one_connection(port, ["n=1", "n=2&wait=1", "n=3"])

    answers = run(main, loop)
    assert not any(answer["before"].startswith("request ") for answer in answers), answers
    assert [answer["after"] for answer in answers] == ["request 1", "request 2", "request 3"]
