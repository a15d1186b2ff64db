"""Entry point of `make demo`."""

import sys


def main() -> int:
    print("Squall demo: the HTTP server does not exist yet; nothing to serve.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
