"""`make demo`'s forum: its port from the command line, and a few topics on first start."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .._util import run
from ._client import Visitor, client, forum, forum_server

ROOT = Path(__file__).resolve().parents[3]


def test_a_first_start_has_topics_to_read_and_a_second_adds_none(tmp_path: Path) -> None:
    from forumlib.seed import TOPICS, seed_if_empty

    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            db = await app.settings["db"].ready()
            assert await seed_if_empty(db) == len(TOPICS)
            assert await seed_if_empty(db) == 0  # not twice
            index = (await Visitor(base, http).fetch("/")).body.decode()
            for _, title, _ in TOPICS:
                assert title.split(":")[0] in index, title
            board = (await Visitor(base, http).fetch("/b/squall")).body.decode()
            found = re.search(r'href="/t/(\d+)"', board)
            assert found is not None, board
            topic = (await Visitor(base, http).fetch(f"/t/{found.group(1)}")).body.decode()
            assert "python -m squall.compat app.py" in topic
            hits = (await Visitor(base, http).fetch("/search?q=broadcast")).body.decode()
            assert "Many readers, one broadcast" in hits

    run(main())


def test_a_forum_in_use_is_not_seeded(tmp_path: Path) -> None:
    from forumlib.seed import seed_if_empty

    async def main() -> None:
        async with forum_server(tmp_path) as (app, base), client() as http:
            db = await app.settings["db"].ready()
            assert (await Visitor(base, http).signup("ada", "a long password")).code == 302
            assert await seed_if_empty(db) == 0

    run(main())


def test_make_demo_takes_its_port_from_the_command_line() -> None:
    def command(*args: str, **env: str) -> str:
        dry = subprocess.run(
            ["make", "-n", "demo", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin", **env},
        ).stdout
        return dry.splitlines()[-1]

    assert command("PORT=9001").endswith("demos/run.py --port=9001")
    assert command().endswith("demos/run.py --port=8888")
    # An environment's PORT is someone else's: not taken.
    assert command(PORT="7").endswith("demos/run.py --port=8888")
    # demos/run.py seeds the forum it starts; its own default port stays 8888.
    source = (ROOT / "demos" / "run.py").read_text()
    assert '"--seed"' in source and '"--port=8888"' in source
    assert forum.parse_options(["forum", "--seed"]).seed is True
