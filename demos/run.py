"""Entry point of ``make demo``: serves the chat demo on http://127.0.0.1:8888/.

Extra arguments go to the chat demo (``demos/run.py --port=9000``).
"""

from __future__ import annotations

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    spec = importlib.util.spec_from_file_location("chat_demo", os.path.join(HERE, "chat", "app.py"))
    assert spec is not None and spec.loader is not None
    chat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chat)
    # Later arguments win, so the command line can override these defaults.
    chat.main([sys.argv[0], "--address=127.0.0.1", "--port=8888", *sys.argv[1:]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
