"""Entry point of ``make demo``: serves the forum demo on http://127.0.0.1:8888/.

One process, SQLite in ``demos/forum/forum.sqlite3`` (created on first run,
with a few topics posted so that a first visit has something to read), live
updates in-process. Extra arguments go to the forum
(``demos/run.py --port=9000 --db=sqlite:///tmp/forum.sqlite3``; ``make demo
PORT=9000`` passes the port). The chat demo runs by itself:
``python demos/chat/app.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    spec = importlib.util.spec_from_file_location(
        "forum_demo", os.path.join(HERE, "forum", "app.py")
    )
    assert spec is not None and spec.loader is not None
    forum = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(forum)
    # Later arguments win, so the command line can override these defaults.
    forum.main([sys.argv[0], "--address=127.0.0.1", "--port=8888", "--seed", *sys.argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
