"""An extra's requirements, for an existing install of Squall.

``pip install '.[redis]'`` from a checkout builds Squall again, compiled
modules included, to add a pure-Python client. What an extra adds is
listed in the installed distribution's metadata; this reads it there, so
the extra's packages can be installed alone::

    python -m squall.extras                  # every extra and what it adds
    python -m squall.extras redis nats       # their requirements, one a line
    python -m squall.extras --install redis  # python -m pip install them

The requirements keep the version bounds and environment markers that the
extra has (``redis[hiredis]>=5.0``), so pip installs what
``squall[redis]`` would.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from typing import Optional

__all__ = ["available", "main", "requirements"]

DISTRIBUTION = "squall"

_EXTRA_MARKER = re.compile(r"""extra\s*==\s*(['"])(?P<name>[^'"]+)\1""")


def _normalize(name: str) -> str:
    # PEP 685: extras compare as normalized names.
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(requirement: str) -> tuple[str, Optional[str], str]:
    """``(requirement, extra or None, the rest of its marker)``."""
    spec, _, marker = requirement.partition(";")
    found = _EXTRA_MARKER.search(marker)
    if found is None:
        return spec.strip(), None, marker.strip()
    # Drop the extra's clause and the "and" that joined it to the rest.
    rest = marker[: found.start()] + marker[found.end() :]
    rest = re.sub(r"^\s*and\s+|\s+and\s*$", "", rest.strip()).strip()
    return spec.strip(), _normalize(found.group("name")), rest


def available(distribution: str = DISTRIBUTION) -> dict[str, list[str]]:
    """Every extra of the installed ``distribution`` and its requirements.

    Raises:
        importlib.metadata.PackageNotFoundError: the distribution is not installed.
    """
    meta = metadata.metadata(distribution)
    extras: dict[str, list[str]] = {
        _normalize(name): [] for name in meta.get_all("Provides-Extra") or []
    }
    for requirement in metadata.requires(distribution) or []:
        spec, extra, rest = _split(requirement)
        if extra is not None:
            extras.setdefault(extra, []).append(f"{spec}; {rest}" if rest else spec)
    return extras


def requirements(*extras: str, distribution: str = DISTRIBUTION) -> list[str]:
    """The requirements ``extras`` add to the installed ``distribution``, in order,
    each once.

    Raises:
        KeyError: an extra the distribution does not have.
        importlib.metadata.PackageNotFoundError: the distribution is not installed.
    """
    known = available(distribution)
    found: list[str] = []
    for extra in extras:
        name = _normalize(extra)
        if name not in known:
            raise KeyError(extra)
        found.extend(r for r in known[name] if r not in found)
    return found


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m squall.extras``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m squall.extras",
        description="Print (or install) what an extra of the installed squall adds,"
        " without building squall again.",
    )
    parser.add_argument("extras", nargs="*", help="extras, e.g. redis nats http3")
    parser.add_argument(
        "--install", action="store_true", help="run `python -m pip install` on them"
    )
    args = parser.parse_args(argv)
    try:
        if not args.extras:
            for name, reqs in sorted(available().items()):
                print(f"{name}: {', '.join(reqs) or '(nothing to add)'}")
            return 0
        reqs = requirements(*args.extras)
    except metadata.PackageNotFoundError:
        print(f"{DISTRIBUTION} is not installed here ({sys.executable})", file=sys.stderr)
        return 2
    except KeyError as exc:
        known = ", ".join(sorted(available()))
        print(f"no extra {exc.args[0]!r}; the extras are: {known}", file=sys.stderr)
        return 2
    if not args.install:
        print("\n".join(reqs))
        return 0
    if not reqs:
        return 0
    return subprocess.run([sys.executable, "-m", "pip", "install", *reqs], check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
