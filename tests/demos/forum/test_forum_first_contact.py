"""What a first visitor of the forum trips over: the index's header and its
message-board row, code in search results, a post over the limit, live
replies past a topic's first page, and the reader count after a worker died."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from squall.websocket import websocket_connect

from ..._wait import until_answer
from .._util import run
from ._client import Visitor, client, forum, forum_server

CSS = (Path(forum.__file__).parent / "static" / "forum.css").read_text()


def test_the_last_post_header_has_the_size_of_the_other_headers() -> None:
    # A rule that sets a font size on .last-col without naming td reaches
    # the column's <th> too, and beats ".list th" on specificity.
    for selectors, body in re.findall(r"([^{}]+)\{([^}]*)\}", CSS):
        for selector in selectors.split(","):
            if "last-col" in selector and "font-size" in body:
                assert "td" in selector, f"{selector.strip()} sizes the header too"


def test_the_message_board_row_has_no_empty_cell(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            index = (await ann.fetch("/")).body.decode()
            assert not re.findall(r"<td[^>]*>\s*</td>", index), index
            assert "No messages yet" in index
            sent = await ann.fetch(
                "/messages",
                {"name": "Bea", "email": "bea@example.com", "address": "x", "message": "hello"},
            )
            assert sent.code == 302
            index = (await ann.fetch("/")).body.decode()
            assert "Latest message" in index and "by Bea," in index

    run(main())


def test_search_results_keep_code_apart_from_prose() -> None:
    from forumlib.markup import excerpt

    body = "Try this:\n\n```python\nasync def main():\n    await server.drain()\n```\n\nIt drains."
    shown = excerpt(body, ["drain"])
    assert shown == (
        "Try this: <code>async def main():\n    await server.<mark>drain</mark>()</code>"
        " It <mark>drain</mark>s."
    )
    assert excerpt("call `x < y` now", []) == "call <code>x &lt; y</code> now"


def test_a_post_over_the_limit_comes_back_in_its_form(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "A topic", "first")
            text = "a <long> reply & more\n" * 500  # 10,999 characters once stripped: over 10,000
            response = await ann.fetch(f"/t/{topic}", {"body": text})
            assert response.code == 400
            page = response.body.decode()
            assert 'id="form-again"' in page and f'action="/t/{topic}"' in page
            assert f"body is over 10000 characters (it has {len(text.strip()):,})" in page
            area = re.search(
                r'<textarea id="again-body" name="body"[^>]*>(.*?)</textarea>', page, re.S
            )
            assert area is not None and html.unescape(area.group(1)) == text
            assert 'name="_xsrf"' in page
            # Shortened and sent again from that form, it is posted.
            reply, _ = await ann.reply(topic, text[:200])
            assert reply > 0
            # A new topic keeps its title as well.
            response = await ann.fetch("/b/general", {"title": "Kept title", "body": text})
            page = response.body.decode()
            assert response.code == 400 and 'id="again-title"' in page
            assert 'value="Kept title"' in page

    run(main())


def test_pages_before_the_last_say_where_replies_come_live(tmp_path: Path) -> None:
    # Live replies are shown on a topic's last page only: the other pages
    # say so, with a link, instead of staying silent.
    async def main() -> None:
        async with forum_server(tmp_path, page_size=2) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "Long", "first")
            for n in range(2):
                await ann.reply(topic, f"reply {n}")
            first = (await ann.fetch(f"/t/{topic}")).body.decode()
            last = (await ann.fetch(f"/t/{topic}?page=2")).body.decode()
            assert 'id="live"' not in first
            hint = re.search(r'<p id="live-elsewhere"[^>]*>(.*?)</p>', first, re.S)
            assert hint is not None, first
            assert f'href="/t/{topic}?page=2"' in hint.group(1)
            assert "last page" in html.unescape(hint.group(1))
            assert 'id="live"' in last and "live-elsewhere" not in last

    run(main())


def test_a_page_that_reconnects_elsewhere_is_counted_once(tmp_path: Path) -> None:
    # A page whose worker was killed reconnects to another worker: it joins
    # the topic's presence under the id it was rendered with, so the entry
    # the dead worker left (standing in here: joined and never left) is
    # taken over, not counted beside it until it expires.
    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "Counted", "first")
            page = (await ann.fetch(f"/t/{topic}")).body.decode()
            urls = dict(re.findall(r'data-(resume-socket|events)="([^"]+)"', page))
            reader = urls["resume-socket"].partition("?reader=")[2]
            assert re.fullmatch(r"[0-9a-f]{16}", reader), urls
            assert urls["events"].endswith(f"?reader={reader}")
            channel = f"forum:topic:{topic}"
            pubsub = app.settings["pubsub"]
            await pubsub.join(channel, reader, "a worker since killed")
            ws = await websocket_connect(base.replace("http", "ws") + urls["resume-socket"])
            await ws.write_message(json.dumps({"subscribe": channel, "since": None}))
            assert json.loads(await ws.read_message())["type"] == "subscribed"

            async def rejoined() -> bool:
                present: dict[str, str] = await pubsub.presence(channel)
                return "websocket" in present.values()

            await until_answer(rejoined)
            assert await pubsub.presence(channel) == {reader: "websocket"}
            assert await pubsub.presence_count(channel) == 1
            ws.close()

    run(main())
