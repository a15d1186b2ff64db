"""Entry point of `make demo`: serves the hello-world demo on 127.0.0.1:8888."""

from __future__ import annotations

import os
import sys


def main() -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "helloworld"))
    import app  # demos/helloworld/app.py

    app.main(int(sys.argv[1]) if len(sys.argv) > 1 else 8888)
    return 0


if __name__ == "__main__":
    sys.exit(main())
