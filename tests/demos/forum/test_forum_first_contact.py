"""What a first visitor of the forum trips over: the index's header and its
message-board row, code in search results, and a post over the limit."""

from __future__ import annotations

import html
import re
from pathlib import Path

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
