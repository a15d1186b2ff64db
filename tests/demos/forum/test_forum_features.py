"""What makes it a technical forum: Markdown with highlighted code, preview,
editing, deleting, quoting, numbered posts, search, user pages, unread
markers, pagination, the board index, mentions. On every database."""

from __future__ import annotations

import asyncio
import html
import json
import re
from pathlib import Path

from squall.httpclient import HTTPRequest
from squall.websocket import websocket_connect

from .._util import run
from ._client import LIMIT_REQUEST, Visitor, client, forum, forum_server

CODE = "Try this:\n\n```python\ndef f(x):\n    return x < 1\n```\n\nand `inline` too."


def posts_in(page: str) -> list[tuple[str, str]]:
    """(id, number) of each post on a topic page, in order."""
    return re.findall(
        r'<article class="post[^"]*" id="p(\d+)".*?title="Permalink">#(\d+)<', page, re.S
    )


def test_markdown_code_is_highlighted_and_html_never_gets_through() -> None:
    render = forum.make_renderer(forum.user_path)
    out = render(CODE)
    assert '<pre><code class="language-python"><span class="k">def</span>' in out
    assert 'x</span> <span class="o">&lt;</span>' in out
    assert "<code>inline</code>" in out
    hostile = render(
        "<script>alert(1)</script> <img src=x onerror=alert(1)> [a](javascript:alert(1))"
        " [b](JAVASCRIPT:alert(1)) ![c](https://tracker.example/p.gif) [ok](https://ok.example/)"
    )
    assert "<script" not in hostile and "<img src=x" not in hostile and 'onerror="' not in hostile
    assert 'href="javascript' not in hostile.lower() and 'tracker.example/p.gif"' not in hostile
    assert '<a href="https://ok.example/" rel="nofollow noopener">ok</a>' in hostile
    linked = render("see https://example.org/a_b. and @bob, not `@carol`")
    assert '<a href="https://example.org/a_b" rel="nofollow noopener">' in linked
    assert '<a href="/u/bob" class="mention" rel="nofollow noopener">@bob</a>,' in linked
    assert "/u/carol" not in linked
    # The allow-list by itself: whatever the renderer produced, only listed markup stays.
    from forumlib.markup import sanitize  # beside app.py, on the path once it is loaded

    assert (
        sanitize('<p onclick="x">a<iframe src="//x"></iframe><a href="vbscript:x" class="c">b</a>')
        == '<p>a<a class="c" rel="nofollow noopener">b</a></p>'
    )


def test_table_column_alignment_is_a_class_never_a_style_attribute() -> None:
    render = forum.make_renderer(forum.user_path)
    out = render("| name | score | note |\n|:-----|------:|:----:|\n| ann | 12 | ok |\n")
    assert '<th class="align-left">name</th>' in out
    assert '<th class="align-right">score</th>' in out
    assert '<td class="align-right">12</td>' in out
    assert '<td class="align-center">ok</td>' in out
    assert "style=" not in out
    from forumlib.markup import sanitize

    # Only a bare alignment becomes a class; any other style goes.
    assert sanitize(
        '<td style="text-align: RIGHT;">a</td><td style="color:red">b</td>'
        '<td style="text-align:right;background:url(x)">c</td><p style="text-align:left">d</p>'
    ) == ('<td class="align-right">a</td><td>b</td><td>c</td><p>d</p>')
    css = (Path(forum.__file__).parent / "static" / "forum.css").read_text()
    for side in ("left", "center", "right"):
        assert f".post-body .align-{side} {{ text-align: {side}; }}" in css


def test_search_excerpts_are_plain_escaped_text_with_the_words_marked() -> None:
    from forumlib.markup import excerpt

    body = "> quoted\n\nUse **write_message** with `<b>` & x > 1, *not* " + "filler " * 60 + "END"
    shown = excerpt(body, ["write_message", "end"])
    assert shown.startswith(
        "quoted Use <mark>write_message</mark> with <code>&lt;b&gt;</code> &amp; x &gt; 1,"
    )
    assert " not filler" in shown and shown.endswith("…")
    late = excerpt(body, ["END"])
    assert late.startswith("…filler") and late.endswith("<mark>END</mark>")
    table = "Figures:\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\nend | here"
    assert excerpt(table, ["end"]) == "Figures: a · b; 1 · 2; <mark>end</mark> | here"


def test_posts_are_markdown_numbered_with_permalinks_and_quotable(
    tmp_path: Path, db_url: str
) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, page_size=2) as (_, base), client() as http:
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            topic = await ann.new_topic("squall", "Code <review>", CODE)
            second, _ = await bob.reply(topic, "> looks fine\n\n**agreed**")
            third, location = await bob.reply(topic, "third")
            assert location == f"/t/{topic}?page=2#p{third}"
            first_page = (await ann.fetch(f"/t/{topic}")).body.decode()
            assert '<span class="k">def</span>' in first_page
            assert "<blockquote>\n<p>looks fine</p>\n</blockquote>" in first_page
            assert "<strong>agreed</strong>" in first_page
            assert [n for _, n in posts_in(first_page)] == ["1", "2"]
            assert [
                n for _, n in posts_in((await ann.fetch(f"/t/{topic}?page=2")).body.decode())
            ] == ["3"]
            # A permalink leads to the post's page and anchor.
            perma = await ann.fetch(f"/p/{third}")
            assert perma.code == 302 and perma.headers["Location"] == f"/t/{topic}?page=2#p{third}"
            assert (await ann.fetch("/p/99999")).code == 404
            # Quote: the reply box comes filled with the post, as Markdown.
            quoting = (await ann.fetch(f"/t/{topic}?page=last&quote={second}")).body.decode()
            box = re.search(r'<textarea id="body"[^>]*>(.*?)</textarea>', quoting, re.S)
            assert box is not None
            assert (
                html.unescape(box.group(1)) == "@bob wrote:\n> > looks fine\n> \n> **agreed**\n\n"
            )

    run(main())


def test_authors_edit_and_delete_their_own_posts_only(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (_, base), client() as http:
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            topic = await ann.new_topic("general", "typos", "teh first")
            reply, _ = await ann.reply(topic, "a reply")
            last, _ = await bob.reply(topic, "bob's")
            first = int(posts_in((await ann.fetch(f"/t/{topic}")).body.decode())[0][0])
            form = (await ann.fetch(f"/p/{first}/edit")).body.decode()
            assert "teh first</textarea>" in form
            assert (await bob.fetch(f"/p/{first}/edit")).code == 403
            assert (await bob.fetch(f"/p/{first}/edit", {"body": "hijacked"})).code == 403
            assert (await bob.fetch(f"/p/{reply}/delete", {})).code == 403
            assert 'name="title" value="typos"' in form  # the opening post carries the title
            assert 'name="title"' not in (await ann.fetch(f"/p/{reply}/edit")).body.decode()
            no_title = await ann.fetch(f"/p/{first}/edit", {"body": "the first"})
            assert no_title.code == 400 and b"title is required" in no_title.body
            edited = await ann.fetch(f"/p/{first}/edit", {"title": "Typos", "body": "the first"})
            assert edited.code == 302
            assert (await ann.fetch(f"/p/{reply}/delete", {})).code == 302
            page = (await bob.fetch(f"/t/{topic}")).body.decode()
            assert "the first" in page and "teh first" not in page and "hijacked" not in page
            assert '<h1 id="topic-title">Typos</h1>' in page
            assert page.count('class="edited muted"') == 1
            assert "a reply" not in page and "Deleted by its author." in page
            # Numbers do not move: bob's post is still #3.
            assert posts_in(page) == [(str(first), "1"), (str(reply), "2"), (str(last), "3")]
            # Ann's own page offers her edit links; bob sees none for ann's posts.
            assert f"/p/{first}/edit" in (await ann.fetch(f"/t/{topic}")).body.decode()
            assert f"/p/{first}/edit" not in page
            assert (await ann.fetch(f"/p/{reply}/edit", {"body": "back"})).code == 410

    run(main())


def test_search_finds_words_in_posts_and_titles(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, page_size=2) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("performance", "Tuning uvloop workers", "first body")
            await ann.reply(topic, "the websocket broadcast benchmark")
            gone, _ = await ann.reply(topic, "websocket secrets later deleted")
            await ann.fetch(f"/p/{gone}/delete", {})
            for i in range(3):
                await ann.reply(topic, f"websocket note number{i}")

            async def found(q: str, page: int = 1) -> tuple[int, list[str]]:
                body = (await ann.fetch(f"/search?q={q}&page={page}")).body.decode()
                count = re.search(r'id="result-count">(\d+) post', body)
                excerpts = [
                    re.sub(r"</?mark>", "", e)
                    for e in re.findall(r'<p class="excerpt">(.*?)</p>', body, re.S)
                ]
                return (int(count.group(1)) if count else -1), excerpts

            assert await found("broadcast+benchmark") == (1, ["the websocket broadcast benchmark"])
            assert (await found("uvloop"))[1] == ["first body"]  # by its topic's title
            assert (await found("secrets"))[0] == 0  # deleted posts are not found
            total, first_page = await found("websocket")
            assert total == 4 and len(first_page) == 2
            assert (await found("websocket", 2))[1] == [
                "websocket note number0",
                "the websocket broadcast benchmark",
            ]
            assert (await found("nothinglikethis"))[0] == 0
            # Words InnoDB's FULLTEXT index leaves out (under 3 letters,
            # stopwords) are found as whole words on every database.
            await ann.reply(topic, "asyncio alone")
            await ann.reply(topic, "asyncio and io at C speed")
            assert (await found("io"))[1] == ["asyncio and io at C speed"]
            assert (await found("IO+c"))[1] == ["asyncio and io at C speed"]
            assert (await found("asyncio+io"))[1] == ["asyncio and io at C speed"]
            assert (await found("asyncio"))[0] == 2
            assert (await found("io+nothinglikethis"))[0] == 0
            # Query syntax of the engines stays out of reach: no 500.
            for q in ['"', "NEAR(a", "a*", "-x", "%27%3B", "(((", "+-"]:
                assert (await ann.fetch(f"/search?q={q}")).code == 200, q

    run(main())


def test_user_pages_unread_markers_and_the_board_index(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, page_size=2) as (_, base), client() as http:
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            one = await ann.new_topic("general", "First topic", "hello")
            two = await ann.new_topic("general", "Second topic", "again")
            reply, _ = await bob.reply(one, "bob was here")

            user = (await bob.fetch("/u/ann")).body.decode()
            assert '<h1 id="user-name">ann</h1>' in user and "2 posts" in user
            assert "First topic" in user and "Second topic" in user
            assert (await bob.fetch("/u/nobody")).code == 404
            bobs = (await ann.fetch("/u/bob")).body.decode()
            assert "bob was here" in bobs and "None yet." in bobs

            def unread(board: str) -> set[tuple[str, str]]:
                return set(re.findall(r"<tr class=\"(unread|)\" data-topic=\"(\d+)\">", board))

            # Ann has not seen bob's reply in topic one; her own posts are not news.
            board = (await ann.fetch("/b/general")).body.decode()
            assert unread(board) == {("unread", str(one)), ("", str(two))}
            # Bob has read topic one (he replied last) but not topic two.
            board = (await bob.fetch("/b/general")).body.decode()
            assert unread(board) == {("", str(one)), ("unread", str(two))}
            await bob.fetch(f"/t/{two}")
            # Ann's link to topic one leads to the first post she has not seen.
            board = (await ann.fetch("/b/general")).body.decode()
            assert f'<a href="/p/{reply}">First topic</a>' in board
            assert f'<a href="/t/{two}">Second topic</a>' in board
            # Ann opens topic one: a line marks where the posts new to her begin.
            page = (await ann.fetch(f"/t/{one}")).body.decode()
            divider = page.index('<p class="new-since" id="new">')
            assert page.index("hello") < divider < page.index("bob was here")
            assert 'class="new-since"' not in (await ann.fetch(f"/t/{one}")).body.decode()
            for who in (ann, bob, Visitor(base, http)):
                assert 'class="unread"' not in (await who.fetch("/b/general")).body.decode()

            index = (await ann.fetch("/")).body.decode()
            general = index[index.index("/b/general") : index.index("/b/squall")]
            assert '<td class="num" data-label="Topics">2</td>' in general
            assert '<td class="num" data-label="Posts">3</td>' in general
            assert f'href="/p/{reply}" class="last-topic">First topic</a>' in general
            assert 'class="last-author">bob</a>' in general

    run(main())


def test_pagination_everywhere(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, page_size=2) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            for i in range(5):
                await ann.new_topic("general", f"topic {i}", f"body{i} words")
                fields = {"name": f"n{i}", "email": "a@b", "address": "x", "message": f"m{i}"}
                await ann.fetch("/messages", fields)
            for path in ["/b/general", "/u/ann", "/messages", "/search?q=words"]:
                joiner = "&" if "?" in path else "?"
                first = (await ann.fetch(path)).body.decode()
                last = (await ann.fetch(path + joiner + "page=3")).body.decode()
                assert f'{joiner}page=3">3</a>'.replace("&", "&amp;") in first, path
                assert '<span class="current" aria-current="page">3</span>' in last, path
                assert 'rel="prev"' in last and 'rel="next"' not in last, path
            msgs = (await ann.fetch("/messages?page=3")).body.decode()
            assert "m0" in msgs and "m4" not in msgs

    run(main())


def test_mentions_notify_live_and_are_listed(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url) as (app, base), client() as http:
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            conn = await websocket_connect(
                HTTPRequest(
                    base.replace("http", "ws") + "/notify",
                    headers={"Cookie": bob.cookie_header()},
                ),
                connect_timeout=LIMIT_REQUEST,
            )
            channel = forum.live.user_channel(2)
            while app.settings["pubsub"].subscribers(channel) == 0:
                await asyncio.sleep(0)  # the handshake's open() subscribes
            topic = await ann.new_topic("general", "Ping", "hey @bob, and @nobody, and @ann")
            note = json.loads(await conn.read_message())
            assert note["from"] == "ann" and note["title"] == "Ping"
            assert note["url"].startswith("/p/")
            reply, _ = await ann.reply(topic, "again @bob")
            assert json.loads(await conn.read_message())["url"] == f"/p/{reply}"
            conn.close()
            header = (await bob.fetch("/")).body.decode()
            assert re.search(r'<span class="badge" id="unseen">2</span>', header)
            listed = (await bob.fetch("/notifications")).body.decode()
            assert listed.count("mentioned you in") == 2
            assert 'id="unseen" hidden' in (await bob.fetch("/")).body.decode()
            # Nobody else was notified, and ann not by herself.
            assert "mentioned you in" not in (await ann.fetch("/notifications")).body.decode()
            anonymous = await Visitor(base, http).fetch("/notify")
            assert anonymous.code in (400, 403)

    run(main())


def test_preview_renders_a_draft(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            shown = await ann.fetch("/preview", {"body": "*hi* <b>x</b>"})
            assert json.loads(shown.body) == {"html": "<p><em>hi</em> &lt;b&gt;x&lt;/b&gt;</p>\n"}
            assert (await ann.fetch("/preview", {"body": "x"}, xsrf=False)).code == 403
            assert (await ann.fetch("/preview", {"body": "x" * 10_001})).code == 400

    run(main())


def test_unknown_urls_get_the_styled_404_and_the_favicon_is_served(tmp_path: Path) -> None:
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            ann = Visitor(base, http)
            for path in ["/nowhere", "/t/999", "/b/nowhere", "/static/none.css", "/u/x/y"]:
                response = await ann.fetch(path)
                assert response.code == 404, path
                assert b'class="card error-page"' in response.body, path
                assert b'href="/static/forum.css?v=' in response.body, path
            icon = await ann.fetch("/favicon.ico")
            assert icon.code == 200 and icon.body[:4] == b"\x00\x00\x01\x00"
            page = (await ann.fetch("/b/general")).body.decode()
            crumbs = re.search(r'<nav class="crumbs".*?</nav>', page, re.S)
            assert crumbs is not None and "›" not in crumbs.group(0)  # drawn by CSS between items

    run(main())


def test_every_field_has_a_label_and_every_page_one_h1(tmp_path: Path, db_url: str) -> None:
    async def main() -> None:
        async with forum_server(tmp_path, db_url, admins=("ann",)) as (_, base), client() as http:
            ann = Visitor(base, http)
            await ann.signup("ann")
            topic = await ann.new_topic("general", "labels", "text")
            post = int(posts_in((await ann.fetch(f"/t/{topic}")).body.decode())[0][0])
            paths = ["/", "/b/general", f"/t/{topic}", f"/p/{post}/edit", "/messages"]
            paths += ["/search?q=text", "/u/ann", "/notifications", "/nowhere"]
            for who, path in [(ann, p) for p in paths] + [
                (Visitor(base, http), p) for p in ("/login", "/signup")
            ]:
                page = (await who.fetch(path)).body.decode()
                labelled = set(re.findall(r'<label[^>]* for="([^"]+)"', page))
                for field in re.findall(r"<(?:input|textarea)\b[^>]*>", page):
                    if re.search(r'type="(hidden|submit)"', field):
                        continue
                    ident = re.search(r' id="([^"]+)"', field)
                    assert ident and ident.group(1) in labelled, (path, field)
                assert page.count("<h1") == 1, path
                assert '<main id="main">' in page and 'class="skip" href="#main"' in page, path

    run(main())


def _luminance(hex_colour: str) -> float:
    channels = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(one: str, two: str) -> float:
    """WCAG 2's contrast ratio of two #rrggbb colours."""
    a, b = sorted((_luminance(one), _luminance(two)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def test_text_colours_meet_wcag_aa_contrast_in_light_and_dark() -> None:
    from .._util import DEMOS

    css = (DEMOS / "forum" / "static" / "forum.css").read_text()
    blocks = re.findall(r":root \{(.*?)\}", css, re.S)
    assert len(blocks) == 2  # light, then dark inside prefers-color-scheme
    for block in blocks:
        colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", block))
        pairs = [
            ("text", "bg"),
            ("text", "surface"),
            ("text", "surface-2"),
            ("muted", "bg"),
            ("muted", "surface"),
            ("muted", "surface-2"),
            ("accent", "bg"),
            ("accent", "surface"),
            ("accent", "accent-soft"),
            ("accent-text", "accent"),
            ("danger", "surface"),
        ]
        for fg, bg in pairs:
            ratio = contrast(colours[fg], colours[bg])
            assert ratio >= 4.5, (fg, bg, round(ratio, 2), block[:40])
    assert round(contrast("#000000", "#ffffff"), 1) == 21.0


def test_a_post_notifies_a_user_once_and_writes_are_throttled(tmp_path: Path, db_url: str) -> None:
    # Five edits toggling "@bob" sent bob six notifications
    # for one post, and edits had no rate limit.
    async def main() -> None:
        limit = {"post_user_limit": (8, 600.0)}
        async with forum_server(tmp_path, db_url, **limit) as (_, base), client() as http:
            ann, bob = Visitor(base, http), Visitor(base, http)
            await ann.signup("ann")
            await bob.signup("bob")
            topic = await ann.new_topic("general", "Ping", "opening")
            reply, _ = await ann.reply(topic, "hey @bob")
            for n in range(5):
                body = "hey" if n % 2 == 0 else "hey @bob"
                assert (await ann.fetch(f"/p/{reply}/edit", {"body": body})).code == 302
            listed = (await bob.fetch("/notifications")).body.decode()
            assert listed.count("mentioned you in") == 1
            # 7 writes so far (topic, reply, 5 edits): the 8th is the last
            # this window allows, whichever kind it is.
            assert (await ann.fetch(f"/p/{reply}/edit", {"body": "last"})).code == 302
            refused = await ann.fetch(f"/p/{reply}/edit", {"body": "one too many"})
            assert refused.code == 429
            assert 0 < int(refused.headers["Retry-After"]) <= 600
            assert b"too many posts and edits" in refused.body
            assert (await ann.fetch(f"/t/{topic}", {"body": "a reply"})).code == 429
            # Per user: bob still writes.
            assert (await bob.fetch(f"/t/{topic}", {"body": "bob's"})).code == 302

    run(main())


def test_names_with_direction_or_invisible_characters_are_refused(tmp_path: Path) -> None:
    # The name "\u202eevil" showed as "live" (and
    # "bob\u200b" as "bob"): anyone could pass as another name. How titles
    # with such characters show is the browser test's (test_forum_browser).
    async def main() -> None:
        async with forum_server(tmp_path) as (_, base), client() as http:
            for name in ("\u202eevil", "bob\u200b", "a\u2067b"):
                refused = await Visitor(base, http).signup(name)
                assert refused.code == 400, name
                assert b"cannot hold control, format or direction" in refused.body
            assert (await Visitor(base, http).signup("\u05e9\u05dc\u05d5\u05dd")).code == 302

    run(main())
